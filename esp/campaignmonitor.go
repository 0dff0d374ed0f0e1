package esp

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Campaign Monitor (esp-platforms.md § campaignmonitor). Subscribers have no id: the email address is the
// key (Contact.ID = the address, ListID = the list). Every path ends in .json (JSON only with the suffix).
// Contacts reads list by list and, inside a list, the three state segments active.json, unsubscribed.json
// and bounced.json (deleted subscribers are not read), each page-numbered by date ascending with pagesize
// 1000; NumberOfPages tells when a segment ends, so no empty page is fetched. The platform has no
// changed-since filter (`date` is "added since"), so since is ignored and the caller rescans; the whole
// read's total is not known without extra calls (Page.Total = -1).
//
// Writes: fields are custom fields (created per list by EnsureFields), keyed by CampaignMonitorFieldKey of
// the canonical mf_* name; Campaign Monitor has no tags, so AddTag sets a custom field named after the tag to
// "true" (creating the field when missing). Unsubscribe is POST /subscribers/{list}/unsubscribe.json; Delete
// is DELETE /subscribers/{list}.json?email=… (the subscriber moves to the list's Deleted state), after a GET
// snapshot; a subscriber already in the Deleted state counts as gone.
//
// Offset (page-number) paging is not snapshot-consistent: a subscriber unsubscribed during the read of the
// active segment may shift the next page by one and is read again in the unsubscribed segment. The next
// run sees anyone skipped.

const (
	campaignmonitorBase    = "https://api.createsend.com" // the override replaces this host; paths start /api/v3.3
	campaignmonitorPageMax = 1000
	campaignmonitorTime    = "2006-01-02 15:04:05"
)

// cmCursors are this adapter's cursors: "cm1:…" (see cursorCodec).
var cmCursors = cursorCodec{platform: "campaignmonitor", prefix: "cm1:"}

// campaignmonitorStates are the segments read, in order, with the status they mean.
var campaignmonitorStates = []struct {
	path   string
	status Status
}{{"active", StatusSubscribed}, {"unsubscribed", StatusUnsubscribed}, {"bounced", StatusBounced}}

// CampaignMonitorFieldKey is the custom-field key of a field name: letters, digits, '_' and '-' kept,
// everything else dropped (`mf_failed - typo` → `mf_failed-typo`). Reads show it in brackets.
func CampaignMonitorFieldKey(name string) string {
	var b strings.Builder
	for _, r := range name {
		if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '_' || r == '-' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

type campaignmonitor struct {
	base   string
	client string
	hdr    http.Header
	acct   *Account
	size   int
	caps   Capabilities

	mu     sync.Mutex
	lists  listCache
	fields map[string]bool // list id + "\x00" + key of custom fields known to exist
}

func newCampaignmonitor(cfg Config) (Adapter, error) {
	base := cfg.baseURL(campaignmonitorBase)
	key := cfg.Credentials["api_key"]
	h := http.Header{}
	h.Set("Authorization", "Basic "+basicAuth(key, "x"))
	return &campaignmonitor{
		base: base + "/api/v3.3", client: cfg.Credentials["client_id"], hdr: h,
		acct:   cfg.Client.Account("campaignmonitor", key+"\x00"+cfg.Credentials["client_id"], cfg.Platform.Limits, DefaultThrottle),
		size:   cfg.Options.pageSize("campaignmonitor", campaignmonitorPageMax),
		caps:   cfg.Platform.Capabilities,
		fields: map[string]bool{},
	}, nil
}

func (m *campaignmonitor) Capabilities() Capabilities { return m.caps }

func (m *campaignmonitor) Lists(ctx context.Context) ([]List, error) {
	var ls []struct {
		ListID string `json:"ListID"`
		Name   string `json:"Name"`
	}
	if err := m.acct.DoJSON(ctx, http.MethodGet, m.base+"/clients/"+url.PathEscape(m.client)+"/lists.json", m.hdr, nil, Into(&ls)); err != nil {
		var e *Error
		if errors.As(err, &e) { // the client id is part of the credentials: keep it out of errors
			e.Path = strings.ReplaceAll(e.Path, url.PathEscape(m.client), "{client_id}")
		}
		return nil, err
	}
	out := make([]List, 0, len(ls))
	for _, l := range ls {
		out = append(out, List{ID: l.ListID, Name: l.Name})
	}
	return m.lists.remember(out), nil
}

// cmCursor: list (index and id), state segment index, page number (1-based).
type cmCursor struct {
	list   int
	listID string
	state  int
	page   int
}

func (c cmCursor) String() string { return cmCursors.encode(c.list, c.listID, c.state, c.page) }

func parseCMCursor(s string) (cmCursor, error) {
	var c cmCursor
	if err := cmCursors.decode(s, &c.list, &c.listID, &c.state, &c.page); err != nil {
		return cmCursor{}, err
	}
	if c.list < 0 || c.state < 0 || c.state >= len(campaignmonitorStates) || c.page < 1 {
		return cmCursor{}, cmCursors.malformed()
	}
	return c, nil
}

func (m *campaignmonitor) Contacts(ctx context.Context, cursor Cursor, _ time.Time) (Page, error) {
	lists, err := m.lists.get(ctx, m.Lists)
	if err != nil {
		return Page{}, err
	}
	c := cmCursor{page: 1}
	if cursor != "" {
		if c, err = parseCMCursor(string(cursor)); err != nil {
			return Page{}, err
		}
		// Find the cursor's list again (lists may have been added or removed since).
		var found bool
		if c.list, found = relocateList(lists, c.list, c.listID); !found { // the list is gone: continue with the one now at its index, from its start
			c.state, c.page = 0, 1
		}
	}
	if c.list >= len(lists) {
		return Page{Total: -1}, nil
	}
	l := lists[c.list]
	c.listID = l.ID
	seg := campaignmonitorStates[c.state]
	q := url.Values{}
	q.Set("page", strconv.Itoa(c.page))
	q.Set("pagesize", strconv.Itoa(m.size))
	q.Set("orderfield", "date")
	q.Set("orderdirection", "asc")
	var page Page
	var pages int
	u := m.base + "/lists/" + url.PathEscape(l.ID) + "/" + seg.path + ".json?" + q.Encode()
	err = m.acct.DoJSON(ctx, http.MethodGet, u, m.hdr, nil, func(d *json.Decoder) error {
		page = Page{Total: -1, Contacts: make([]Contact, 0, m.size)}
		pages = 0
		return DecodeObject(d, map[string]func(*json.Decoder) error{
			"Results": func(d *json.Decoder) error {
				return DecodeArray(d, func(d *json.Decoder) error {
					var s struct {
						Email string `json:"EmailAddress"`
						Date  string `json:"Date"`
					}
					if err := d.Decode(&s); err != nil {
						return eof(err)
					}
					ct := Contact{ID: s.Email, ListID: l.ID, Email: s.Email, Status: seg.status}
					if t, err := time.Parse(campaignmonitorTime, s.Date); err == nil {
						ct.UpdatedAt = t
					}
					page.Contacts = append(page.Contacts, ct)
					return nil
				})
			},
			"NumberOfPages": Into(&pages),
		})
	})
	if err != nil {
		return Page{}, err
	}
	next := c
	switch {
	case c.page < pages && len(page.Contacts) > 0:
		next.page++
	case c.state+1 < len(campaignmonitorStates):
		next.state, next.page = c.state+1, 1
	case c.list+1 < len(lists):
		next = cmCursor{list: c.list + 1, listID: lists[c.list+1].ID, page: 1}
	default:
		return page, nil
	}
	page.Next = Cursor(next.String())
	return page, nil
}

func (m *campaignmonitor) subscriber(c Contact) (string, error) {
	if c.ListID == "" || c.ID == "" {
		return "", errors.New("esp: campaignmonitor: contact without list or email")
	}
	return m.base + "/subscribers/" + url.PathEscape(c.ListID) + ".json?email=" + url.QueryEscape(c.ID), nil
}

// ensureField creates the custom field name on list when it is not known to exist.
func (m *campaignmonitor) ensureField(ctx context.Context, list, name string, known map[string]bool) error {
	key := CampaignMonitorFieldKey(name)
	m.mu.Lock()
	done := m.fields[list+"\x00"+key]
	m.mu.Unlock()
	if done || known[key] {
		m.mu.Lock()
		m.fields[list+"\x00"+key] = true
		m.mu.Unlock()
		return nil
	}
	body := map[string]any{"FieldName": name, "DataType": "Text", "Options": []string{}, "VisibleInPreferenceCenter": false}
	err := m.acct.DoJSON(ctx, http.MethodPost, m.base+"/lists/"+url.PathEscape(list)+"/customfields.json", m.hdr, body, nil)
	if err != nil && !errors.Is(err, ErrBadRequest) { // 400: the field exists already
		return err
	}
	m.mu.Lock()
	m.fields[list+"\x00"+key] = true
	m.mu.Unlock()
	return nil
}

func (m *campaignmonitor) EnsureFields(ctx context.Context) error {
	lists, err := m.Lists(ctx)
	if err != nil {
		return err
	}
	for _, l := range lists {
		var have []struct {
			Key string `json:"Key"`
		}
		if err := m.acct.DoJSON(ctx, http.MethodGet, m.base+"/lists/"+url.PathEscape(l.ID)+"/customfields.json", m.hdr, nil, Into(&have)); err != nil {
			return err
		}
		known := map[string]bool{}
		for _, f := range have {
			known[strings.Trim(f.Key, "[]")] = true
		}
		for _, name := range FieldNames {
			if err := m.ensureField(ctx, l.ID, name, known); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *campaignmonitor) put(ctx context.Context, c Contact, f map[string]string) error {
	u, err := m.subscriber(c)
	if err != nil {
		return err
	}
	type kv struct {
		Key   string `json:"Key"`
		Value string `json:"Value"`
	}
	cf := make([]kv, 0, len(f))
	for k, v := range f {
		cf = append(cf, kv{Key: CampaignMonitorFieldKey(k), Value: v})
	}
	body := map[string]any{"EmailAddress": c.ID, "CustomFields": cf, "Resubscribe": false, "ConsentToTrack": "Unchanged"}
	return m.acct.DoJSON(ctx, http.MethodPut, u, m.hdr, body, nil)
}

func (m *campaignmonitor) SetFields(ctx context.Context, c Contact, f Fields) error {
	return m.put(ctx, c, f)
}

func (m *campaignmonitor) AddTag(ctx context.Context, c Contact, tag string) error {
	if c.ListID == "" {
		return errors.New("esp: campaignmonitor: contact without list")
	}
	if err := m.ensureField(ctx, c.ListID, tag, nil); err != nil {
		return err
	}
	return m.put(ctx, c, map[string]string{tag: "true"})
}

func (m *campaignmonitor) Unsubscribe(ctx context.Context, c Contact) error {
	if c.ListID == "" || c.ID == "" {
		return errors.New("esp: campaignmonitor: contact without list or email")
	}
	u := m.base + "/subscribers/" + url.PathEscape(c.ListID) + "/unsubscribe.json"
	return m.acct.DoJSON(ctx, http.MethodPost, u, m.hdr, map[string]string{"EmailAddress": c.ID}, nil)
}

func (m *campaignmonitor) Delete(ctx context.Context, c Contact) (json.RawMessage, error) {
	u, err := m.subscriber(c)
	if err != nil {
		return nil, err
	}
	var snap json.RawMessage
	if err := m.acct.DoJSON(ctx, http.MethodGet, u, m.hdr, nil, ReadRaw(&snap)); err != nil {
		return nil, err
	}
	var s struct {
		State string `json:"State"`
	}
	if json.Unmarshal(snap, &s) == nil && s.State == "Deleted" {
		return nil, &Error{Platform: "campaignmonitor", Method: http.MethodGet, Path: RedactPath(u), Status: http.StatusOK, Kind: ErrNotFound}
	}
	if err := m.acct.DoJSON(ctx, http.MethodDelete, u, m.hdr, nil, nil); err != nil {
		return nil, err
	}
	return snap, nil
}
