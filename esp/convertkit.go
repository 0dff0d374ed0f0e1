package esp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kit / ConvertKit v3 (esp-platforms.md § convertkit). The key + secret pair is the v3 API: private calls
// carry api_secret, public ones api_key, as query parameters on reads and JSON body parameters on writes
// (never in a header). The override replaces https://api.convertkit.com; /v3 is appended.
//
// Lists: GET /v3/account (checks the secret) and GET /v3/tags (checks the key); Kit segments with tags, so
// the account's tags are its lists (our own `mf_…` tags excluded). Contacts are account-wide:
// GET /v3/subscribers?page=N&sort_order=asc, 50 per page fixed by the platform (no page-size parameter), each
// subscriber once with ListID ""; Page.Total is total_subscribers. Incremental: updated_from=<YYYY-MM-DD>,
// which is day-granular; since is moved back by a lookback (Kit's reads lag its writes by minutes) before
// taking the date, so a run sees at worst a day of extra contacts, never fewer.
//
// Statuses: active → subscribed; inactive and cancelled → unsubscribed; bounced → bounced; complained →
// complained.
//
// Writes: fields = PUT /v3/subscribers/{id} {api_secret, fields:{key: value}} with custom fields whose key is
// the canonical mf_* name (created by EnsureFields with POST /v3/custom_fields, label = the name); tag =
// POST /v3/tags/{tag_id}/subscribe {api_key, email} (the tag found by name or created); unsubscribe =
// PUT /v3/unsubscribe {api_secret, email}. Kit v3 cannot delete a subscriber: Delete returns the
// subscriber (GET /v3/subscribers/{id}) and unsubscribes it; a subscriber already cancelled counts as gone
// (ErrNotFound, no snapshot).

const (
	convertkitBase     = "https://api.convertkit.com"
	convertkitPageSize = 50 // fixed by the platform
	convertkitCursor   = "c1:"
	convertkitLookback = 15 * time.Minute
)

type convertkit struct {
	base   string // …/v3
	key    string
	secret string
	acct   *Account
	caps   Capabilities

	mu     sync.Mutex
	fields map[string]bool   // custom field keys known to exist
	tags   map[string]string // tag name → id
}

func newConvertKit(cfg Config) (Adapter, error) {
	base := cfg.baseURL(convertkitBase)
	key, secret := cfg.Credentials["api_key"], cfg.Credentials["api_secret"]
	return &convertkit{
		base: base + "/v3", key: key, secret: secret,
		acct: cfg.Client.Account("convertkit", key+"\x00"+secret, cfg.Platform.Limits, DefaultThrottle),
		caps: cfg.Platform.Capabilities,
	}, nil
}

func (k *convertkit) Capabilities() Capabilities { return k.caps }

var ckHeader = http.Header{"Accept": {"application/json"}}

// get sends a read with the credential as a query parameter (the client's errors never carry the query).
func (k *convertkit) get(ctx context.Context, path string, q url.Values, private bool, decode func(*json.Decoder) error) error {
	if q == nil {
		q = url.Values{}
	}
	if private {
		q.Set("api_secret", k.secret)
	} else {
		q.Set("api_key", k.key)
	}
	return k.acct.DoJSON(ctx, http.MethodGet, k.base+path+"?"+q.Encode(), ckHeader, nil, decode)
}

// send sends a write with the credential in the JSON body.
func (k *convertkit) send(ctx context.Context, method, path string, body map[string]any, private bool, decode func(*json.Decoder) error) error {
	if private {
		body["api_secret"] = k.secret
	} else {
		body["api_key"] = k.key
	}
	return k.acct.DoJSON(ctx, method, k.base+path, ckHeader, body, decode)
}

type ckTag struct {
	ID   json.Number `json:"id"`
	Name string      `json:"name"`
}

func (k *convertkit) allTags(ctx context.Context) ([]ckTag, error) {
	var out struct {
		Tags []ckTag `json:"tags"`
	}
	if err := k.get(ctx, "/tags", nil, false, Into(&out)); err != nil {
		return nil, err
	}
	k.mu.Lock()
	if k.tags == nil {
		k.tags = map[string]string{}
	}
	for _, t := range out.Tags {
		k.tags[t.Name] = t.ID.String()
	}
	k.mu.Unlock()
	return out.Tags, nil
}

func (k *convertkit) Lists(ctx context.Context) ([]List, error) {
	if err := k.get(ctx, "/account", nil, true, nil); err != nil {
		return nil, err
	}
	tags, err := k.allTags(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]List, 0, len(tags))
	for _, t := range tags {
		if !strings.HasPrefix(t.Name, "mf_") {
			out = append(out, List{ID: t.ID.String(), Name: t.Name})
		}
	}
	return out, nil
}

func ckStatus(state string) Status {
	switch state {
	case "inactive", "cancelled":
		return StatusUnsubscribed
	case "bounced":
		return StatusBounced
	case "complained":
		return StatusComplained
	}
	return StatusSubscribed
}

// Cursor: "c1:<page>:<updated_from YYYY-MM-DD or empty>".
func (k *convertkit) Contacts(ctx context.Context, cursor Cursor, since time.Time) (Page, error) {
	page, from := 1, ""
	if cursor == "" {
		if !since.IsZero() {
			from = since.Add(-convertkitLookback).UTC().Format(time.DateOnly)
		}
	} else {
		rest, ok := strings.CutPrefix(string(cursor), convertkitCursor)
		p, f, ok2 := strings.Cut(rest, ":")
		n, err := strconv.Atoi(p)
		if !ok || !ok2 || err != nil || n < 1 {
			return Page{}, errors.New("esp: convertkit: foreign cursor")
		}
		if f != "" {
			if _, err := time.Parse(time.DateOnly, f); err != nil {
				return Page{}, errors.New("esp: convertkit: malformed cursor")
			}
		}
		page, from = n, f
	}
	q := url.Values{"page": {strconv.Itoa(page)}, "sort_order": {"asc"}}
	if from != "" {
		q.Set("updated_from", from)
	}
	var out Page
	var total, pages int
	err := k.get(ctx, "/subscribers", q, true, func(d *json.Decoder) error {
		out = Page{Total: -1, Contacts: make([]Contact, 0, convertkitPageSize)}
		total, pages = -1, 0
		return DecodeObject(d, map[string]func(*json.Decoder) error{
			"subscribers": func(d *json.Decoder) error {
				return DecodeArray(d, func(d *json.Decoder) error {
					var s struct {
						ID    json.Number `json:"id"`
						Email string      `json:"email_address"`
						State string      `json:"state"`
					}
					if err := d.Decode(&s); err != nil {
						return eof(err)
					}
					out.Contacts = append(out.Contacts, Contact{ID: s.ID.String(), Email: s.Email, Status: ckStatus(s.State)})
					return nil
				})
			},
			"total_subscribers": Into(&total),
			"total_pages":       Into(&pages),
		})
	})
	if err != nil {
		return Page{}, err
	}
	out.Total = total
	if len(out.Contacts) > 0 && page < pages {
		out.Next = Cursor(fmt.Sprintf("%s%d:%s", convertkitCursor, page+1, from))
	}
	return out, nil
}

func (k *convertkit) knownFields(ctx context.Context) (map[string]bool, error) {
	k.mu.Lock()
	have := k.fields
	k.mu.Unlock()
	if have != nil {
		return have, nil
	}
	var out struct {
		Fields []struct {
			Key string `json:"key"`
		} `json:"custom_fields"`
	}
	if err := k.get(ctx, "/custom_fields", nil, false, Into(&out)); err != nil {
		return nil, err
	}
	have = map[string]bool{}
	for _, f := range out.Fields {
		have[f.Key] = true
	}
	return have, nil
}

func (k *convertkit) EnsureFields(ctx context.Context) error {
	have, err := k.knownFields(ctx)
	if err != nil {
		return err
	}
	for _, n := range FieldNames {
		if have[n] {
			continue
		}
		err := k.send(ctx, http.MethodPost, "/custom_fields", map[string]any{"label": n}, true, nil)
		if err != nil && !errors.Is(err, ErrBadRequest) { // 422: created meanwhile
			return err
		}
		have[n] = true
	}
	k.mu.Lock()
	k.fields = have
	k.mu.Unlock()
	return nil
}

func ckID(c Contact) (string, error) {
	if _, err := strconv.ParseInt(c.ID, 10, 64); err != nil {
		return "", errors.New("esp: convertkit: contact without id")
	}
	return c.ID, nil
}

func (k *convertkit) SetFields(ctx context.Context, c Contact, f Fields) error {
	id, err := ckID(c)
	if err != nil {
		return err
	}
	if err := k.EnsureFields(ctx); err != nil {
		return err
	}
	vals := make(map[string]string, len(f))
	for n, v := range f {
		vals[n] = v
	}
	return k.send(ctx, http.MethodPut, "/subscribers/"+id, map[string]any{"fields": vals}, true, nil)
}

func (k *convertkit) tagID(ctx context.Context, tag string) (string, error) {
	k.mu.Lock()
	id := k.tags[tag]
	k.mu.Unlock()
	if id != "" {
		return id, nil
	}
	if _, err := k.allTags(ctx); err != nil {
		return "", err
	}
	k.mu.Lock()
	id = k.tags[tag]
	k.mu.Unlock()
	if id != "" {
		return id, nil
	}
	var created ckTag
	if err := k.send(ctx, http.MethodPost, "/tags", map[string]any{"tag": map[string]string{"name": tag}}, true, Into(&created)); err != nil {
		return "", err
	}
	k.mu.Lock()
	k.tags[tag] = created.ID.String()
	k.mu.Unlock()
	return created.ID.String(), nil
}

func (k *convertkit) AddTag(ctx context.Context, c Contact, tag string) error {
	if c.Email == "" {
		return errors.New("esp: convertkit: tagging needs the contact's email")
	}
	tid, err := k.tagID(ctx, tag)
	if err != nil {
		return err
	}
	return k.send(ctx, http.MethodPost, "/tags/"+url.PathEscape(tid)+"/subscribe", map[string]any{"email": c.Email}, false, nil)
}

func (k *convertkit) Unsubscribe(ctx context.Context, c Contact) error {
	if c.Email == "" {
		return errors.New("esp: convertkit: unsubscribe needs the contact's email")
	}
	return k.send(ctx, http.MethodPut, "/unsubscribe", map[string]any{"email": c.Email}, true, nil)
}

// Delete: v3 has no delete. The snapshot is GET /v3/subscribers/{id}; the subscriber is then unsubscribed
// (cancelled). One already cancelled is reported gone (ErrNotFound, nil snapshot).
func (k *convertkit) Delete(ctx context.Context, c Contact) (json.RawMessage, error) {
	id, err := ckID(c)
	if err != nil {
		return nil, err
	}
	var snap json.RawMessage
	if err := k.get(ctx, "/subscribers/"+id, nil, true, ReadRaw(&snap)); err != nil {
		return nil, err
	}
	var s struct {
		Subscriber struct {
			Email string `json:"email_address"`
			State string `json:"state"`
		} `json:"subscriber"`
	}
	if err := json.Unmarshal(snap, &s); err != nil {
		return nil, fmt.Errorf("esp: convertkit: unexpected subscriber body")
	}
	if s.Subscriber.State == "cancelled" {
		return nil, &Error{Platform: "convertkit", Method: http.MethodDelete, Path: "/v3/subscribers/{id}", Kind: ErrNotFound}
	}
	if err := k.Unsubscribe(ctx, Contact{ID: id, Email: s.Subscriber.Email}); err != nil {
		return nil, err
	}
	return snap, nil
}
