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

// Drip (esp-platforms.md § drip; the official REST v2 fragments in esptest/openapi/drip win where they
// differ). Everything lives under https://api.getdrip.com/v2/{account_id}/…, HTTP Basic with the API token
// as user name and an empty password, and a User-Agent naming the integration.
//
// Drip has no lists: people are grouped by tags. Lists validates the token (GET /v2/accounts, and the
// account_id must be among the token's accounts) and returns the account's tags as its lists (id = name =
// the tag), leaving out our own mf_* tags. Contacts are read account-wide (ListID ""), status=all, 1,000
// per page (the documented maximum) with page numbers; meta.total_pages ends the read and meta.total_count
// is Page.Total. Drip has no changed-since filter (subscribed_after is creation only), so since is ignored
// and the caller rescans.
//
// Page-number paging shifts when people are deleted, so the cursor is an absolute offset: the page that
// holds it is read and the contacts before it dropped; the adapter remembers how many people it deleted
// since its last page and moves the next offset back by that many, so its own deletes never make it skip
// anyone (at worst one extra request reads the few contacts that slid onto the previous page).
//
// Statuses: Drip reports only active and unsubscribed (spam complaints unsubscribe the person); bounced
// ("undeliverable") people keep their status, so they come as subscribed: telling them apart would take a
// second full read with status=undeliverable.
//
// Writes are upserts by Drip id (POST /subscribers with "id", never "email": an upsert by email would
// re-create someone deleted meanwhile): custom_fields under their canonical mf_* names (Drip creates
// custom fields on first use, so EnsureFields has nothing to do) and tags, which are native.
// Unsubscribe is POST …/unsubscribe_all (all mailings, not just campaigns); Delete is DELETE after a GET
// snapshot.

const (
	dripBase      = "https://api.getdrip.com"
	dripPageMax   = 1000
	dripCursor    = "d1:"
	dripUserAgent = "autofloss (+https://github.com/autofloss/autofloss)"
)

type drip struct {
	base   string // …/v2/{account_id}
	root   string // …/v2
	acctID string
	hdr    http.Header
	acct   *Account
	size   int
	caps   Capabilities

	mu      sync.Mutex
	deleted int // people this adapter deleted since its last page
}

func newDrip(cfg Config) (Adapter, error) {
	base := cfg.baseURL(dripBase)
	key, id := cfg.Credentials["api_key"], cfg.Credentials["account_id"]
	h := http.Header{}
	h.Set("Authorization", "Basic "+basicAuth(key, ""))
	h.Set("User-Agent", dripUserAgent)
	return &drip{
		root: base + "/v2", base: base + "/v2/" + url.PathEscape(id), acctID: id, hdr: h,
		// Drip's limit is per account (3,600 requests/hour): every token used on the account shares it.
		acct: cfg.Client.Account("drip", "account:"+id, cfg.Platform.Limits, DefaultThrottle),
		size: cfg.Options.pageSize("drip", dripPageMax),
		caps: cfg.Platform.Capabilities,
	}, nil
}

func (d *drip) Capabilities() Capabilities { return d.caps }

func (d *drip) Lists(ctx context.Context) ([]List, error) {
	found := false
	err := d.acct.DoJSON(ctx, http.MethodGet, d.root+"/accounts", d.hdr, nil, func(dec *json.Decoder) error {
		found = false
		return DecodeObject(dec, map[string]func(*json.Decoder) error{
			"accounts": func(dec *json.Decoder) error {
				return DecodeArray(dec, func(dec *json.Decoder) error {
					var a struct {
						ID json.RawMessage `json:"id"` // a string in the document; tolerate a number
					}
					if err := dec.Decode(&a); err != nil {
						return eof(err)
					}
					if strings.Trim(string(a.ID), `"`) == d.acctID {
						found = true
					}
					return nil
				})
			},
		})
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("esp: drip: account_id is not among the accounts of this API token: %w", ErrCredentialsRejected)
	}
	var tags struct {
		Tags []string `json:"tags"`
	}
	if err := d.acct.DoJSON(ctx, http.MethodGet, d.base+"/tags", d.hdr, nil, Into(&tags)); err != nil {
		return nil, err
	}
	out := make([]List, 0, len(tags.Tags))
	for _, t := range tags.Tags {
		if strings.HasPrefix(t, "mf_") {
			continue
		}
		out = append(out, List{ID: t, Name: t})
	}
	return out, nil
}

func dripStatus(s string) Status {
	if s == "unsubscribed" {
		return StatusUnsubscribed
	}
	return StatusSubscribed
}

func (d *drip) Contacts(ctx context.Context, cursor Cursor, _ time.Time) (Page, error) {
	offset := 0
	if cursor != "" {
		s, ok := strings.CutPrefix(string(cursor), dripCursor)
		n, err := strconv.Atoi(s)
		if !ok || err != nil || n < 0 {
			return Page{}, errors.New("esp: drip: foreign cursor")
		}
		offset = n
	}
	d.mu.Lock()
	if cursor != "" {
		offset = max(offset-d.deleted, 0)
	}
	d.deleted = 0
	d.mu.Unlock()
	page := offset/d.size + 1
	skip := offset % d.size
	u := fmt.Sprintf("%s/subscribers?status=all&page=%d&per_page=%d", d.base, page, d.size)
	var out Page
	var meta struct {
		TotalPages int `json:"total_pages"`
		TotalCount int `json:"total_count"`
	}
	err := d.acct.DoJSON(ctx, http.MethodGet, u, d.hdr, nil, func(dec *json.Decoder) error {
		out = Page{Total: -1, Contacts: make([]Contact, 0, d.size-skip)}
		meta.TotalPages, meta.TotalCount = 0, -1
		n := 0
		return DecodeObject(dec, map[string]func(*json.Decoder) error{
			"subscribers": func(dec *json.Decoder) error {
				return DecodeArray(dec, func(dec *json.Decoder) error {
					var s struct {
						ID     string `json:"id"`
						Email  string `json:"email"`
						Status string `json:"status"`
					}
					if err := dec.Decode(&s); err != nil {
						return eof(err)
					}
					if n++; n <= skip {
						return nil
					}
					out.Contacts = append(out.Contacts, Contact{ID: s.ID, Email: s.Email, Status: dripStatus(s.Status)})
					return nil
				})
			},
			"meta": Into(&meta),
		})
	})
	if err != nil {
		return Page{}, err
	}
	out.Total = meta.TotalCount
	if page < meta.TotalPages {
		out.Next = Cursor(dripCursor + strconv.Itoa(page*d.size))
	}
	return out, nil
}

func (d *drip) EnsureFields(context.Context) error { return nil } // custom fields are created on first write

func (d *drip) subscriber(c Contact) (string, error) {
	if c.ID == "" {
		return "", errors.New("esp: drip: contact without id")
	}
	return d.base + "/subscribers/" + url.PathEscape(c.ID), nil
}

func (d *drip) upsert(ctx context.Context, c Contact, s map[string]any) error {
	if c.ID == "" {
		return errors.New("esp: drip: contact without id")
	}
	s["id"] = c.ID
	return d.acct.DoJSON(ctx, http.MethodPost, d.base+"/subscribers", d.hdr, map[string]any{"subscribers": []any{s}}, nil)
}

func (d *drip) SetFields(ctx context.Context, c Contact, f Fields) error {
	cf := make(map[string]string, len(f))
	for k, v := range f {
		cf[k] = v
	}
	return d.upsert(ctx, c, map[string]any{"custom_fields": cf})
}

func (d *drip) AddTag(ctx context.Context, c Contact, tag string) error {
	return d.upsert(ctx, c, map[string]any{"tags": []string{tag}})
}

func (d *drip) Unsubscribe(ctx context.Context, c Contact) error {
	u, err := d.subscriber(c)
	if err != nil {
		return err
	}
	return d.acct.DoJSON(ctx, http.MethodPost, u+"/unsubscribe_all", d.hdr, nil, nil)
}

func (d *drip) Delete(ctx context.Context, c Contact) (json.RawMessage, error) {
	u, err := d.subscriber(c)
	if err != nil {
		return nil, err
	}
	// goneIsDone: a 404 on the DELETE means gone since the snapshot (e.g. a retried DELETE whose first answer was lost): done.
	snap, err := d.acct.snapshotDelete(ctx, u, u, d.hdr, true)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.deleted++
	d.mu.Unlock()
	return snap, nil
}
