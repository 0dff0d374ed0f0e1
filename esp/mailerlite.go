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

// MailerLite (esp-platforms.md § mailerlite). Subscribers are account-wide: Contacts pages
// GET /subscribers (every status, no filter) with MailerLite's cursor (meta.next_cursor), so each subscriber
// comes once with ListID "". MailerLite has no changed-since filter: Capabilities().ChangedSince is false and
// the caller rescans. Fields are custom fields keyed by their canonical mf_* names (created with POST /fields
// by EnsureFields); tags are groups named after the tag (created when missing).
//
// Statuses: active and unconfirmed → subscribed; unsubscribed; bounced; junk (complaints and spam traps) →
// complained.

const (
	mailerliteBase    = "https://connect.mailerlite.com" // the override replaces this host; paths start /api
	mailerlitePageMax = 100                              // (unconfirmed upstream) GET /subscribers limit
	mailerliteCursor  = "ml1:"
	mailerliteTime    = "2006-01-02 15:04:05"
)

type mailerlite struct {
	base string
	hdr  http.Header
	acct *Account
	size int
	caps Capabilities

	mu     sync.Mutex
	groups map[string]string // tag group name → id
}

func newMailerlite(cfg Config) (Adapter, error) {
	base := cfg.baseURL(mailerliteBase)
	key := cfg.Credentials["api_key"]
	h := http.Header{}
	h.Set("Authorization", "Bearer "+key)
	h.Set("Accept", "application/json")
	return &mailerlite{
		base: base + "/api", hdr: h,
		acct:   cfg.Client.Account("mailerlite", key, cfg.Platform.Limits, DefaultThrottle),
		size:   cfg.Options.pageSize("mailerlite", mailerlitePageMax),
		caps:   cfg.Platform.Capabilities,
		groups: map[string]string{},
	}, nil
}

func (m *mailerlite) Capabilities() Capabilities { return m.caps }

type mailerliteGroup struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// groupPages reads GET /groups page by page (page-numbered, meta.last_page), extra being extra query
// parameters (e.g. a name filter).
func (m *mailerlite) groupPages(ctx context.Context, extra url.Values) ([]mailerliteGroup, error) {
	var out []mailerliteGroup
	for page := 1; ; page++ {
		q := url.Values{}
		for k, v := range extra {
			q[k] = v
		}
		q.Set("limit", "100")
		q.Set("page", strconv.Itoa(page))
		var body struct {
			Data []mailerliteGroup `json:"data"`
			Meta struct {
				LastPage int `json:"last_page"`
			} `json:"meta"`
		}
		if err := m.acct.DoJSON(ctx, http.MethodGet, m.base+"/groups?"+q.Encode(), m.hdr, nil, Into(&body)); err != nil {
			return nil, err
		}
		out = append(out, body.Data...)
		if len(body.Data) == 0 || page >= body.Meta.LastPage {
			return out, nil
		}
	}
}

func (m *mailerlite) Lists(ctx context.Context) ([]List, error) {
	gs, err := m.groupPages(ctx, nil)
	if err != nil {
		return nil, err
	}
	out := make([]List, 0, len(gs))
	for _, g := range gs {
		out = append(out, List{ID: g.ID, Name: g.Name})
	}
	return out, nil
}

type mailerliteSubscriber struct {
	ID        string `json:"id"`
	Email     string `json:"email"`
	Status    string `json:"status"`
	UpdatedAt string `json:"updated_at"`
}

func mailerliteStatus(s string) Status {
	switch s {
	case "unsubscribed":
		return StatusUnsubscribed
	case "bounced":
		return StatusBounced
	case "junk":
		return StatusComplained
	}
	return StatusSubscribed // active, unconfirmed
}

func (m *mailerlite) Contacts(ctx context.Context, cursor Cursor, _ time.Time) (Page, error) {
	q := url.Values{}
	q.Set("limit", strconv.Itoa(m.size))
	if cursor != "" {
		c, ok := strings.CutPrefix(string(cursor), mailerliteCursor)
		if !ok || c == "" {
			return Page{}, errors.New("esp: mailerlite: foreign cursor")
		}
		q.Set("cursor", c)
	}
	var page Page
	var next string
	err := m.acct.DoJSON(ctx, http.MethodGet, m.base+"/subscribers?"+q.Encode(), m.hdr, nil, func(d *json.Decoder) error {
		page = Page{Total: -1, Contacts: make([]Contact, 0, m.size)}
		next = ""
		return DecodeObject(d, map[string]func(*json.Decoder) error{
			"data": func(d *json.Decoder) error {
				return DecodeArray(d, func(d *json.Decoder) error {
					var s mailerliteSubscriber
					if err := d.Decode(&s); err != nil {
						return eof(err)
					}
					c := Contact{ID: s.ID, Email: s.Email, Status: mailerliteStatus(s.Status)}
					if t, err := time.Parse(mailerliteTime, s.UpdatedAt); err == nil {
						c.UpdatedAt = t
					}
					page.Contacts = append(page.Contacts, c)
					return nil
				})
			},
			"meta": func(d *json.Decoder) error {
				var meta struct {
					NextCursor *string `json:"next_cursor"`
				}
				if err := d.Decode(&meta); err != nil {
					return eof(err)
				}
				if meta.NextCursor != nil {
					next = *meta.NextCursor
				}
				return nil
			},
		})
	})
	if err != nil {
		return Page{}, err
	}
	if next != "" {
		page.Next = Cursor(mailerliteCursor + next)
	}
	return page, nil
}

func (m *mailerlite) subscriber(c Contact) (string, error) {
	if c.ID == "" {
		return "", errors.New("esp: mailerlite: contact without id")
	}
	return m.base + "/subscribers/" + url.PathEscape(c.ID), nil
}

func (m *mailerlite) EnsureFields(ctx context.Context) error {
	have := map[string]bool{}
	for page := 1; ; page++ {
		var body struct {
			Data []struct {
				Key string `json:"key"`
			} `json:"data"`
			Meta struct {
				LastPage int `json:"last_page"`
			} `json:"meta"`
		}
		u := m.base + "/fields?limit=100&page=" + strconv.Itoa(page)
		if err := m.acct.DoJSON(ctx, http.MethodGet, u, m.hdr, nil, Into(&body)); err != nil {
			return err
		}
		for _, f := range body.Data {
			have[f.Key] = true
		}
		if len(body.Data) == 0 || page >= body.Meta.LastPage {
			break
		}
	}
	for _, name := range FieldNames {
		if have[name] {
			continue
		}
		err := m.acct.DoJSON(ctx, http.MethodPost, m.base+"/fields", m.hdr, map[string]string{"name": name, "type": "text"}, nil)
		if err != nil && !errors.Is(err, ErrBadRequest) { // 422: created meanwhile by another run
			return err
		}
	}
	return nil
}

func (m *mailerlite) SetFields(ctx context.Context, c Contact, f Fields) error {
	u, err := m.subscriber(c)
	if err != nil {
		return err
	}
	return m.acct.DoJSON(ctx, http.MethodPut, u, m.hdr, map[string]any{"fields": map[string]string(f)}, nil)
}

// group returns the id of the group named name, creating it when missing.
func (m *mailerlite) group(ctx context.Context, name string) (string, error) {
	m.mu.Lock()
	id := m.groups[name]
	m.mu.Unlock()
	if id != "" {
		return id, nil
	}
	gs, err := m.groupPages(ctx, url.Values{"filter[name]": {name}}) // a partial match: compare exactly
	if err != nil {
		return "", err
	}
	for _, g := range gs {
		if g.Name == name {
			id = g.ID
			break
		}
	}
	if id == "" {
		var created struct {
			Data mailerliteGroup `json:"data"`
		}
		if err := m.acct.DoJSON(ctx, http.MethodPost, m.base+"/groups", m.hdr, map[string]string{"name": name}, Into(&created)); err != nil {
			return "", err
		}
		if id = created.Data.ID; id == "" {
			return "", errors.New("esp: mailerlite: group created without id")
		}
	}
	m.mu.Lock()
	m.groups[name] = id
	m.mu.Unlock()
	return id, nil
}

func (m *mailerlite) AddTag(ctx context.Context, c Contact, tag string) error {
	u, err := m.subscriber(c)
	if err != nil {
		return err
	}
	g, err := m.group(ctx, tag)
	if err != nil {
		return err
	}
	return m.acct.DoJSON(ctx, http.MethodPost, u+"/groups/"+url.PathEscape(g), m.hdr, nil, nil)
}

func (m *mailerlite) Unsubscribe(ctx context.Context, c Contact) error {
	u, err := m.subscriber(c)
	if err != nil {
		return err
	}
	return m.acct.DoJSON(ctx, http.MethodPut, u, m.hdr, map[string]string{"status": "unsubscribed"}, nil)
}

// Delete removes the subscriber from the account (DELETE /subscribers/{id}); the snapshot is the "data"
// object of GET /subscribers/{id}.
func (m *mailerlite) Delete(ctx context.Context, c Contact) (json.RawMessage, error) {
	u, err := m.subscriber(c)
	if err != nil {
		return nil, err
	}
	var snap json.RawMessage
	err = m.acct.DoJSON(ctx, http.MethodGet, u, m.hdr, nil, func(d *json.Decoder) error {
		snap = nil
		return DecodeObject(d, map[string]func(*json.Decoder) error{"data": ReadRaw(&snap)})
	})
	if err != nil {
		return nil, err
	}
	if snap == nil {
		return nil, errors.New("esp: mailerlite: subscriber answer without data")
	}
	if err := m.acct.DoJSON(ctx, http.MethodDelete, u, m.hdr, nil, nil); err != nil {
		return nil, err
	}
	return snap, nil
}
