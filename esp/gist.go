package esp

import (
	"bytes"
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

// Gist (esp-platforms.md § gist; no official OpenAPI document exists). https://api.getgist.com with
// `Authorization: Bearer <key>`.
//
// Gist has no lists the API pages by; people are grouped by tags. Lists validates the key with GET /tags and
// returns the account's tags as its lists (id = the tag id), leaving out our own mf_* tags. Contacts are
// read account-wide (ListID "") with GET /contacts?page=N&per_page=60&order_by=created_at&order=asc: 60 is
// the page size the spec page settles on (the real maximum is unpublished); the read ends on a short page,
// or earlier when the answer's pages.total_pages says this was the last one. Gist has no changed-since
// filter: since is ignored and the caller rescans.
//
// As with Drip, the cursor is an absolute offset (creation order), and the adapter's own deletes move the
// next offset back, so deleting during a read never makes it skip anyone.
//
// Status: Gist exposes only unsubscribed_from_emails, which is sometimes the string "false" instead of a
// boolean, so it is decoded leniently (true/false, "true"/"false", "1"/"0", null). The adapter never sends
// that field except to unsubscribe: writing it overwrites the contact's status.
//
// Writes: Gist is a tag platform. SetFields applies the tag `mf_failed - <reason>` (POST /tags with the
// contact's id; Gist creates the tag on first use, so EnsureFields has nothing to do); only when the fields
// carry no reason are they stored as custom_properties (POST /contacts upsert by id). AddTag is the same tag
// call. Unsubscribe is the upsert with unsubscribed_from_emails true; Delete is DELETE /contacts/{id} after a
// GET snapshot.

const (
	gistBase    = "https://api.getgist.com"
	gistPageMax = 60
	gistCursor  = "g1:"
)

type gist struct {
	base string
	hdr  http.Header
	acct *Account
	size int
	caps Capabilities

	mu      sync.Mutex
	deleted int
}

func newGist(cfg Config) (Adapter, error) {
	base := cfg.baseURL(gistBase)
	key := cfg.Credentials["api_key"]
	h := http.Header{}
	h.Set("Authorization", "Bearer "+key)
	return &gist{
		base: base, hdr: h,
		acct: cfg.Client.Account("gist", key, cfg.Platform.Limits, DefaultThrottle),
		size: cfg.Options.pageSize("gist", gistPageMax),
		caps: cfg.Platform.Capabilities,
	}, nil
}

func (g *gist) Capabilities() Capabilities { return g.caps }

// flexID is an id Gist sends as a number (documented) or a string.
type flexID string

func (f *flexID) UnmarshalJSON(b []byte) error {
	*f = flexID(strings.Trim(string(b), `"`))
	if string(b) == "null" {
		*f = ""
	}
	return nil
}

// flexBool decodes true/false, "true"/"false", "1"/"0", 1/0 and null (false).
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	s := strings.ToLower(strings.Trim(string(bytes.TrimSpace(b)), `"`))
	switch s {
	case "true", "1", "yes":
		*f = true
	case "false", "0", "no", "", "null":
		*f = false
	default:
		return fmt.Errorf("esp: gist: unsubscribed_from_emails: unexpected value")
	}
	return nil
}

func (g *gist) Lists(ctx context.Context) ([]List, error) {
	var out []List
	err := g.acct.DoJSON(ctx, http.MethodGet, g.base+"/tags", g.hdr, nil, func(d *json.Decoder) error {
		out = out[:0]
		return DecodeObject(d, map[string]func(*json.Decoder) error{
			"tags": func(d *json.Decoder) error {
				return DecodeArray(d, func(d *json.Decoder) error {
					var t struct {
						ID   flexID `json:"id"`
						Name string `json:"name"`
					}
					if err := d.Decode(&t); err != nil {
						return eof(err)
					}
					if !strings.HasPrefix(t.Name, "mf_") {
						out = append(out, List{ID: string(t.ID), Name: t.Name})
					}
					return nil
				})
			},
		})
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []List{}
	}
	return out, nil
}

func (g *gist) Contacts(ctx context.Context, cursor Cursor, _ time.Time) (Page, error) {
	offset := 0
	if cursor != "" {
		s, ok := strings.CutPrefix(string(cursor), gistCursor)
		n, err := strconv.Atoi(s)
		if !ok || err != nil || n < 0 {
			return Page{}, errors.New("esp: gist: foreign cursor")
		}
		offset = n
	}
	g.mu.Lock()
	if cursor != "" {
		offset = max(offset-g.deleted, 0)
	}
	g.deleted = 0
	g.mu.Unlock()
	page, skip := offset/g.size+1, offset%g.size
	u := fmt.Sprintf("%s/contacts?page=%d&per_page=%d&order_by=created_at&order=asc", g.base, page, g.size)
	var out Page
	var n int
	var pages struct {
		TotalPages int `json:"total_pages"`
	}
	err := g.acct.DoJSON(ctx, http.MethodGet, u, g.hdr, nil, func(d *json.Decoder) error {
		out = Page{Total: -1, Contacts: make([]Contact, 0, g.size-skip)}
		n, pages.TotalPages = 0, 0
		return DecodeObject(d, map[string]func(*json.Decoder) error{
			"contacts": func(d *json.Decoder) error {
				return DecodeArray(d, func(d *json.Decoder) error {
					var c struct {
						ID           flexID   `json:"id"`
						Email        string   `json:"email"`
						UpdatedAt    int64    `json:"updated_at"`
						Unsubscribed flexBool `json:"unsubscribed_from_emails"`
					}
					if err := d.Decode(&c); err != nil {
						return eof(err)
					}
					if n++; n <= skip {
						return nil
					}
					ct := Contact{ID: string(c.ID), Email: c.Email, Status: StatusSubscribed}
					if c.Unsubscribed {
						ct.Status = StatusUnsubscribed
					}
					if c.UpdatedAt > 0 {
						ct.UpdatedAt = time.Unix(c.UpdatedAt, 0).UTC()
					}
					out.Contacts = append(out.Contacts, ct)
					return nil
				})
			},
			"pages": Into(&pages),
		})
	})
	if err != nil {
		return Page{}, err
	}
	if n == g.size && (pages.TotalPages == 0 || page < pages.TotalPages) {
		out.Next = Cursor(gistCursor + strconv.Itoa(page*g.size))
	}
	return out, nil
}

func (g *gist) EnsureFields(context.Context) error { return nil } // tags are created on first use

func (g *gist) tag(ctx context.Context, c Contact, tag string) error {
	if c.ID == "" {
		return errors.New("esp: gist: contact without id")
	}
	body := map[string]any{"name": tag, "contacts": []any{map[string]string{"id": c.ID}}}
	return g.acct.DoJSON(ctx, http.MethodPost, g.base+"/tags", g.hdr, body, nil)
}

func (g *gist) upsert(ctx context.Context, c Contact, body map[string]any) error {
	if c.ID == "" {
		return errors.New("esp: gist: contact without id")
	}
	body["id"] = c.ID
	return g.acct.DoJSON(ctx, http.MethodPost, g.base+"/contacts", g.hdr, body, nil)
}

func (g *gist) SetFields(ctx context.Context, c Contact, f Fields) error {
	if r := f[FieldReason]; r != "" {
		return g.tag(ctx, c, FailedTag(r))
	}
	props := make(map[string]string, len(f))
	for k, v := range f {
		props[k] = v
	}
	return g.upsert(ctx, c, map[string]any{"custom_properties": props})
}

func (g *gist) AddTag(ctx context.Context, c Contact, tag string) error { return g.tag(ctx, c, tag) }

func (g *gist) Unsubscribe(ctx context.Context, c Contact) error {
	return g.upsert(ctx, c, map[string]any{"unsubscribed_from_emails": true})
}

func (g *gist) Delete(ctx context.Context, c Contact) (json.RawMessage, error) {
	if c.ID == "" {
		return nil, errors.New("esp: gist: contact without id")
	}
	u := g.base + "/contacts/" + url.PathEscape(c.ID)
	// goneIsDone: a 404 on the DELETE means gone since the snapshot (e.g. a retried DELETE whose first answer was lost): done.
	snap, err := g.acct.snapshotDelete(ctx, u, u, g.hdr, true)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.deleted++
	g.mu.Unlock()
	return snap, nil
}
