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

// Brevo (esp-platforms.md § brevo; official Swagger in esptest/openapi/brevo). Contacts are account-wide:
// Contacts pages GET /contacts (limit ≤ 1000, offset, sort=asc by creation), so each contact comes once with
// ListID "" (writes are per contact anyway). The incremental read adds modifiedSince. Page.Total is the
// body's count.
//
// Base URL: the override replaces https://api.brevo.com/v3, the documented base (the Swagger's host +
// basePath, and the BasePath of Brevo's own SDKs), so a proxy or sandbox is given with its version path.
//
// Fields are "normal" text attributes named in upper case (mf_reason → MF_REASON, see BrevoAttribute); they
// must exist before a contact can carry them, so EnsureFields creates them, and AddTag (Brevo has no tags)
// sets a boolean attribute named after the tag (`mf_failed - typo` → MF_FAILED_TYPO), creating it first
// when the platform says it is missing. Unsubscribe sets emailBlacklisted; Delete deletes the contact.
//
// Statuses: emailBlacklisted → unsubscribed, otherwise subscribed (Brevo blacklists hard bounces and
// complainers too and does not say which in the contact: bounced and complained never occur).
//
// Offset paging is not snapshot-consistent: writes by this adapter do not move contacts (the order is by
// creation), and its own deletes are compensated by moving the next offset back. Contacts deleted by
// someone else during a read can shift a contact out of this run; the next run sees it.

const (
	brevoBase      = "https://api.brevo.com/v3"
	brevoPageMax   = 1000
	brevoListsMax  = 50
	brevoSinceForm = "2006-01-02T15:04:05.000Z07:00" // UTC ISO 8601 with milliseconds and zone
)

// brevoCursors are this adapter's cursors: "b1:…" (see cursorCodec).
var brevoCursors = cursorCodec{platform: "brevo", prefix: "b1:"}

// BrevoAttribute returns the Brevo attribute name of a canonical field or tag: upper case, every run of
// characters other than letters and digits turned into one '_' (mf_reason → MF_REASON,
// "mf_failed - disposable" → MF_FAILED_DISPOSABLE).
func BrevoAttribute(name string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.ToUpper(name) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			under = false
			continue
		}
		if !under && b.Len() > 0 {
			b.WriteByte('_')
			under = true
		}
	}
	return strings.TrimRight(b.String(), "_")
}

type brevo struct {
	base string
	hdr  http.Header
	acct *Account
	size int
	caps Capabilities

	mu      sync.Mutex
	deleted int // contacts this adapter deleted since its last page
}

func newBrevo(cfg Config) (Adapter, error) {
	base := cfg.baseURL(brevoBase)
	key := cfg.Credentials["api_key"]
	h := http.Header{}
	h.Set("api-key", key)
	h.Set("Accept", "application/json")
	return &brevo{
		base: base, hdr: h,
		acct: cfg.Client.Account("brevo", key, cfg.Platform.Limits, DefaultThrottle), // 429 + x-sib-ratelimit-reset
		size: cfg.Options.pageSize("brevo", brevoPageMax),
		caps: cfg.Platform.Capabilities,
	}, nil
}

func (b *brevo) Capabilities() Capabilities { return b.caps }

func (b *brevo) Lists(ctx context.Context) ([]List, error) {
	var out []List
	for offset := 0; ; {
		var page struct {
			Lists []struct {
				ID   json.Number `json:"id"`
				Name string      `json:"name"`
			} `json:"lists"`
			Count int `json:"count"`
		}
		u := fmt.Sprintf("%s/contacts/lists?limit=%d&offset=%d&sort=asc", b.base, brevoListsMax, offset)
		if err := b.acct.DoJSON(ctx, http.MethodGet, u, b.hdr, nil, Into(&page)); err != nil {
			return nil, err
		}
		for _, l := range page.Lists {
			out = append(out, List{ID: l.ID.String(), Name: l.Name})
		}
		offset += len(page.Lists)
		if len(page.Lists) == 0 || offset >= page.Count {
			return out, nil
		}
	}
}

// brevoCur is the decoded resume point: "b1:<offset>:<since in Unix ms, 0 = full read>".
type brevoCur struct {
	offset  int
	sinceMS int64
}

func (c brevoCur) String() string { return brevoCursors.encode(c.offset, c.sinceMS) }

func parseBrevoCursor(s string) (brevoCur, error) {
	var c brevoCur
	if err := brevoCursors.decode(s, &c.offset, &c.sinceMS); err != nil {
		return brevoCur{}, err
	}
	if c.offset < 0 || c.sinceMS < 0 {
		return brevoCur{}, brevoCursors.malformed()
	}
	return c, nil
}

type brevoContact struct {
	ID          json.Number `json:"id"`
	Email       string      `json:"email"`
	Blacklisted bool        `json:"emailBlacklisted"`
	ModifiedAt  string      `json:"modifiedAt"`
}

func (b *brevo) Contacts(ctx context.Context, cursor Cursor, since time.Time) (Page, error) {
	var c brevoCur
	if cursor == "" {
		if !since.IsZero() {
			c.sinceMS = max(since.UnixMilli(), 1)
		}
	} else {
		var err error
		if c, err = parseBrevoCursor(string(cursor)); err != nil {
			return Page{}, err
		}
	}
	b.mu.Lock()
	if cursor != "" {
		c.offset = max(c.offset-b.deleted, 0)
	}
	b.deleted = 0 // deletes always concern the page read just before this one
	b.mu.Unlock()
	q := url.Values{}
	q.Set("limit", strconv.Itoa(b.size))
	q.Set("offset", strconv.Itoa(c.offset))
	q.Set("sort", "asc")
	if c.sinceMS != 0 {
		q.Set("modifiedSince", time.UnixMilli(c.sinceMS).UTC().Format(brevoSinceForm))
	}
	var page Page
	var count int
	err := b.acct.DoJSON(ctx, http.MethodGet, b.base+"/contacts?"+q.Encode(), b.hdr, nil, func(d *json.Decoder) error {
		page = Page{Total: -1, Contacts: make([]Contact, 0, b.size)}
		count = -1
		return DecodeObject(d, map[string]func(*json.Decoder) error{
			"contacts": func(d *json.Decoder) error {
				return DecodeArray(d, func(d *json.Decoder) error {
					var bc brevoContact
					if err := d.Decode(&bc); err != nil {
						return eof(err)
					}
					ct := Contact{ID: bc.ID.String(), Email: bc.Email, Status: StatusSubscribed}
					if bc.Blacklisted {
						ct.Status = StatusUnsubscribed
					}
					if t, err := time.Parse(time.RFC3339Nano, bc.ModifiedAt); err == nil {
						ct.UpdatedAt = t
					}
					page.Contacts = append(page.Contacts, ct)
					return nil
				})
			},
			"count": Into(&count),
		})
	})
	if err != nil {
		return Page{}, err
	}
	n := len(page.Contacts)
	if count >= 0 {
		page.Total = count
	}
	// An answer without count ends the read after a short page only.
	if n > 0 && ((count >= 0 && c.offset+n < count) || (count < 0 && n == b.size)) {
		page.Next = Cursor(brevoCur{offset: c.offset + n, sinceMS: c.sinceMS}.String())
	}
	return page, nil
}

func (b *brevo) contactURL(c Contact) (string, error) {
	if c.ID == "" {
		return "", errors.New("esp: brevo: contact without id")
	}
	return b.base + "/contacts/" + url.PathEscape(c.ID), nil
}

// createAttribute creates a normal attribute; one that exists already (400) counts as created.
func (b *brevo) createAttribute(ctx context.Context, name, typ string) error {
	err := b.acct.DoJSON(ctx, http.MethodPost, b.base+"/contacts/attributes/normal/"+url.PathEscape(name), b.hdr, map[string]any{"type": typ}, nil)
	if err != nil && !errors.Is(err, ErrBadRequest) {
		return err
	}
	return nil
}

func (b *brevo) EnsureFields(ctx context.Context) error {
	var have struct {
		Attributes []struct {
			Name     string `json:"name"`
			Category string `json:"category"`
		} `json:"attributes"`
	}
	if err := b.acct.DoJSON(ctx, http.MethodGet, b.base+"/contacts/attributes", b.hdr, nil, Into(&have)); err != nil {
		return err
	}
	exists := map[string]bool{}
	for _, a := range have.Attributes {
		if a.Category == "normal" {
			exists[strings.ToUpper(a.Name)] = true
		}
	}
	for _, n := range FieldNames {
		if name := BrevoAttribute(n); !exists[name] {
			if err := b.createAttribute(ctx, name, "text"); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *brevo) put(ctx context.Context, c Contact, body map[string]any) error {
	u, err := b.contactURL(c)
	if err != nil {
		return err
	}
	return b.acct.DoJSON(ctx, http.MethodPut, u, b.hdr, body, nil)
}

func (b *brevo) SetFields(ctx context.Context, c Contact, f Fields) error {
	attrs := make(map[string]any, len(f))
	for k, v := range f {
		attrs[BrevoAttribute(k)] = v
	}
	return b.put(ctx, c, map[string]any{"attributes": attrs})
}

// AddTag sets the boolean attribute named after the tag; when Brevo refuses the write (the attribute does
// not exist yet) it creates the attribute and writes once more.
func (b *brevo) AddTag(ctx context.Context, c Contact, tag string) error {
	name := BrevoAttribute(tag)
	if name == "" {
		return errors.New("esp: brevo: empty tag")
	}
	body := map[string]any{"attributes": map[string]any{name: true}}
	err := b.put(ctx, c, body)
	if !errors.Is(err, ErrBadRequest) {
		return err
	}
	if err := b.createAttribute(ctx, name, "boolean"); err != nil {
		return err
	}
	return b.put(ctx, c, body)
}

func (b *brevo) Unsubscribe(ctx context.Context, c Contact) error {
	return b.put(ctx, c, map[string]any{"emailBlacklisted": true})
}

// Delete returns GET /contacts/{id} (details and recent statistics) and then deletes the contact.
func (b *brevo) Delete(ctx context.Context, c Contact) (json.RawMessage, error) {
	u, err := b.contactURL(c)
	if err != nil {
		return nil, err
	}
	snap, err := b.acct.snapshotDelete(ctx, u, u, b.hdr, false)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.deleted++
	b.mu.Unlock()
	return snap, nil
}
