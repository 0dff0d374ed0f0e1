package esp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Moosend (esp-platforms.md § moosend). The API key is a query parameter (`?apikey=`) on every call; the
// client's errors never carry query strings and this adapter never builds errors from URLs, so it stays out
// of errors and logs. Every answer is the envelope {"Code":0,"Error":null,"Context":…}: Code ≠ 0 is an
// error even on HTTP 200 (Code 429 "RATE-LIMITING" is the throttle signal, handled by MoosendThrottle).
//
// Contacts reads list by list and, inside a list, the segments Subscribed, Unsubscribed and Bounced
// (Removed subscribers are deleted ones and are not read), page-numbered with PageSize 500;
// Paging.TotalPageCount tells when a segment ends. There is no changed-since filter (since is ignored) and
// no whole-read total (Page.Total = -1).
//
// Writes: POST /subscribers/{list}/update/{id}.json replaces ALL custom fields (omitted ones are cleared),
// so SetFields and AddTag first read the subscriber (view.json) and send every existing field and tag back
// with the new values merged in. Unsubscribe and Delete (remove.json) go by email.

const (
	moosendBase    = "https://api.moosend.com" // the override replaces this host; paths start /v3
	moosendPageMax = 500
)

// moosendCursors are this adapter's cursors: "mo1:<list index>:<list id>:<state>:<page>" (see cursorCodec).
var moosendCursors = cursorCodec{platform: "moosend", prefix: "mo1:"}

var moosendStates = []struct {
	path   string
	status Status
}{{"Subscribed", StatusSubscribed}, {"Unsubscribed", StatusUnsubscribed}, {"Bounced", StatusBounced}}

var moosendDate = regexp.MustCompile(`^/Date\((-?\d+)([+-]\d{4})?\)/$`)

// MoosendTime parses Moosend's `/Date(ms±zzzz)/` timestamps.
func MoosendTime(s string) (time.Time, bool) {
	m := moosendDate.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(ms).UTC(), true
}

type moosend struct {
	base string
	key  string
	acct *Account
	size int
	caps Capabilities

	lists listCache
}

func newMoosend(cfg Config) (Adapter, error) {
	base := cfg.baseURL(moosendBase)
	key := cfg.Credentials["api_key"]
	return &moosend{
		base: base + "/v3", key: key,
		acct: cfg.Client.Account("moosend", key, cfg.Platform.Limits, MoosendThrottle),
		size: cfg.Options.pageSize("moosend", moosendPageMax),
		caps: cfg.Platform.Capabilities,
	}, nil
}

func (m *moosend) Capabilities() Capabilities { return m.caps }

// url builds base+path?apikey=…&q.
func (m *moosend) url(path string, q url.Values) string {
	if q == nil {
		q = url.Values{}
	}
	q.Set("apikey", m.key)
	return m.base + path + "?" + q.Encode()
}

// call sends one request and decodes the envelope; ctx decodes Context (nil: skipped). A non-zero Code is
// turned into the matching typed error.
func (m *moosend) call(c context.Context, method, path string, q url.Values, body any, ctxDecode func(*json.Decoder) error) error {
	u := m.url(path, q)
	var code int
	var msg string
	err := m.acct.DoJSON(c, method, u, nil, body, func(d *json.Decoder) error {
		code, msg = 0, ""
		h := ctxDecode
		if h == nil {
			h = SkipValue
		}
		return DecodeObject(d, map[string]func(*json.Decoder) error{
			"Code": Into(&code),
			"Error": func(d *json.Decoder) error {
				var s *string
				err := Into(&s)(d)
				if s != nil {
					msg = *s
				}
				return err
			},
			"Context": h,
		})
	})
	if err != nil {
		return err
	}
	if code == 0 {
		return nil
	}
	kind := ErrBadRequest
	switch up := strings.ToUpper(msg); {
	case strings.Contains(up, "API_KEY") || strings.Contains(up, "UNAUTHORIZED") || strings.Contains(up, "AUTHENTICATION"):
		kind = ErrCredentialsRejected
	case strings.Contains(up, "NOT_FOUND") || strings.Contains(up, "NOT FOUND") || strings.Contains(up, "DOES_NOT_EXIST"):
		kind = ErrNotFound
	}
	return &Error{Platform: "moosend", Method: method, Path: RedactPath(u), Status: http.StatusOK, Kind: kind,
		Err: fmt.Errorf("code %d %s", code, strings.Map(func(r rune) rune {
			if r == '@' {
				return -1
			}
			return r
		}, msg))}
}

func (m *moosend) Lists(ctx context.Context) ([]List, error) {
	var out []List
	for page := 1; ; page++ {
		var body struct {
			Paging struct {
				TotalPageCount int `json:"TotalPageCount"`
			} `json:"Paging"`
			MailingLists []struct {
				ID   string `json:"ID"`
				Name string `json:"Name"`
			} `json:"MailingLists"`
		}
		q := url.Values{"WithStatistics": {"false"}, "Page": {strconv.Itoa(page)}, "PageSize": {"100"}}
		if err := m.call(ctx, http.MethodGet, "/lists.json", q, nil, Into(&body)); err != nil {
			return nil, err
		}
		for _, l := range body.MailingLists {
			out = append(out, List{ID: l.ID, Name: l.Name})
		}
		if len(body.MailingLists) == 0 || page >= body.Paging.TotalPageCount {
			break
		}
	}
	return m.lists.remember(out), nil
}

func (m *moosend) Contacts(ctx context.Context, cursor Cursor, _ time.Time) (Page, error) {
	lists, err := m.lists.get(ctx, m.Lists)
	if err != nil {
		return Page{}, err
	}
	var list, state, pg int = 0, 0, 1
	if cursor != "" {
		var listID string
		if err := moosendCursors.decode(string(cursor), &list, &listID, &state, &pg); err != nil {
			return Page{}, err
		}
		if list < 0 || state < 0 || state >= len(moosendStates) || pg < 1 {
			return Page{}, moosendCursors.malformed()
		}
		var found bool
		if list, found = relocateList(lists, list, listID); !found { // the list is gone: continue with the one now at its index, from its start
			state, pg = 0, 1
		}
	}
	if list >= len(lists) {
		return Page{Total: -1}, nil
	}
	l, seg := lists[list], moosendStates[state]
	var page Page
	var pages int
	q := url.Values{"Page": {strconv.Itoa(pg)}, "PageSize": {strconv.Itoa(m.size)}}
	err = m.call(ctx, http.MethodGet, "/lists/"+url.PathEscape(l.ID)+"/subscribers/"+seg.path+".json", q, nil, func(d *json.Decoder) error {
		page = Page{Total: -1, Contacts: make([]Contact, 0, m.size)}
		pages = 0
		return DecodeObject(d, map[string]func(*json.Decoder) error{
			"Paging": func(d *json.Decoder) error {
				var p struct {
					TotalPageCount int `json:"TotalPageCount"`
				}
				err := Into(&p)(d)
				pages = p.TotalPageCount
				return err
			},
			"Subscribers": func(d *json.Decoder) error {
				return DecodeArray(d, func(d *json.Decoder) error {
					var s struct {
						ID        string `json:"ID"`
						Email     string `json:"Email"`
						UpdatedOn string `json:"UpdatedOn"`
					}
					if err := d.Decode(&s); err != nil {
						return eof(err)
					}
					c := Contact{ID: s.ID, ListID: l.ID, Email: s.Email, Status: seg.status}
					if t, ok := MoosendTime(s.UpdatedOn); ok {
						c.UpdatedAt = t
					}
					page.Contacts = append(page.Contacts, c)
					return nil
				})
			},
		})
	})
	if err != nil {
		return Page{}, err
	}
	switch {
	case pg < pages && len(page.Contacts) > 0:
		pg++
	case state+1 < len(moosendStates):
		state, pg = state+1, 1
	case list+1 < len(lists):
		list, state, pg = list+1, 0, 1
	default:
		return page, nil
	}
	page.Next = Cursor(moosendCursors.encode(list, lists[list].ID, state, pg))
	return page, nil
}

type moosendSubscriber struct {
	ID           string `json:"ID"`
	Name         string `json:"Name"`
	Email        string `json:"Email"`
	CustomFields []struct {
		Name  string `json:"Name"`
		Value string `json:"Value"`
	} `json:"CustomFields"`
	Tags []string `json:"Tags"`
}

// view reads the subscriber (raw, for snapshots, and parsed).
func (m *moosend) view(ctx context.Context, c Contact) (json.RawMessage, moosendSubscriber, error) {
	var raw json.RawMessage
	var s moosendSubscriber
	if c.ListID == "" || c.Email == "" {
		return nil, s, errors.New("esp: moosend: contact without list or email")
	}
	err := m.call(ctx, http.MethodGet, "/subscribers/"+url.PathEscape(c.ListID)+"/view.json", url.Values{"Email": {c.Email}}, nil, ReadRaw(&raw))
	if err != nil {
		return nil, s, err
	}
	if err := json.Unmarshal(raw, &s); err != nil || s.ID == "" {
		return nil, s, errors.New("esp: moosend: unexpected subscriber answer")
	}
	return raw, s, nil
}

// update sends every custom field and tag the subscriber has, with fields and the extra tag merged in.
func (m *moosend) update(ctx context.Context, c Contact, fields map[string]string, tag string) error {
	_, s, err := m.view(ctx, c)
	if err != nil {
		return err
	}
	merged := map[string]string{}
	var order []string
	for _, f := range s.CustomFields {
		if _, dup := merged[f.Name]; !dup {
			order = append(order, f.Name)
		}
		merged[f.Name] = f.Value
	}
	for k, v := range fields {
		if _, ok := merged[k]; !ok {
			order = append(order, k)
		}
		merged[k] = v
	}
	cf := make([]string, 0, len(order))
	for _, k := range order {
		cf = append(cf, k+"="+merged[k])
	}
	tags := append([]string{}, s.Tags...)
	if tag != "" && !contains(tags, tag) {
		tags = append(tags, tag)
	}
	body := map[string]any{"Email": s.Email, "Name": s.Name, "HasExternalDoubleOptIn": false, "CustomFields": cf, "Tags": tags}
	return m.call(ctx, http.MethodPost, "/subscribers/"+url.PathEscape(c.ListID)+"/update/"+url.PathEscape(s.ID)+".json", nil, body, nil)
}

func (m *moosend) EnsureFields(ctx context.Context) error {
	lists, err := m.Lists(ctx)
	if err != nil {
		return err
	}
	for _, l := range lists {
		var det struct {
			Defs []struct {
				Name string `json:"Name"`
			} `json:"CustomFieldsDefinition"`
		}
		if err := m.call(ctx, http.MethodGet, "/lists/"+url.PathEscape(l.ID)+"/details.json", nil, nil, Into(&det)); err != nil {
			return err
		}
		have := map[string]bool{}
		for _, d := range det.Defs {
			have[d.Name] = true
		}
		for _, name := range FieldNames {
			if have[name] {
				continue
			}
			body := map[string]any{"Name": name, "CustomFieldType": "Text", "IsRequired": false}
			err := m.call(ctx, http.MethodPost, "/lists/"+url.PathEscape(l.ID)+"/customfields/create.json", nil, body, nil)
			if err != nil && !errors.Is(err, ErrBadRequest) { // exists already (created by another run)
				return err
			}
		}
	}
	return nil
}

func (m *moosend) SetFields(ctx context.Context, c Contact, f Fields) error {
	return m.update(ctx, c, f, "")
}

func (m *moosend) AddTag(ctx context.Context, c Contact, tag string) error {
	return m.update(ctx, c, nil, tag)
}

func (m *moosend) Unsubscribe(ctx context.Context, c Contact) error {
	if c.ListID == "" || c.Email == "" {
		return errors.New("esp: moosend: contact without list or email")
	}
	return m.call(ctx, http.MethodPost, "/subscribers/"+url.PathEscape(c.ListID)+"/unsubscribe.json", nil, map[string]string{"Email": c.Email}, nil)
}

// Delete removes the subscriber from its list (remove.json); the snapshot is view.json's Context.
func (m *moosend) Delete(ctx context.Context, c Contact) (json.RawMessage, error) {
	raw, _, err := m.view(ctx, c)
	if err != nil {
		return nil, err
	}
	if err := m.call(ctx, http.MethodPost, "/subscribers/"+url.PathEscape(c.ListID)+"/remove.json", nil, map[string]string{"Email": c.Email}, nil); err != nil {
		return nil, err
	}
	return raw, nil
}
