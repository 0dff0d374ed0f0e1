package esp

import (
	"context"
	"encoding/base64"
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

// Keap (esp-platforms.md § keap; the vendor's OpenAPI 3.1 document esptest/openapi/keap/swagger.yml wins
// where they differ). The document's server is https://api.keap.com/crm (the spec page's
// api.infusionsoft.com/crm is the legacy host of the same API) and every path starts with /rest/v2, so
// the base-URL override replaces https://api.keap.com/crm. Auth is the header `X-Keap-API-Key: <key>`
// (personal access token or service account key).
//
// Keap has no lists: people are grouped by tags. Lists validates the key with GET /rest/v2/tags and returns
// the account's tags as its lists (id = the tag id), leaving out our own mf_* tags. Contacts are read
// account-wide (ListID "") with GET /rest/v2/contacts, 1,000 a page (the documented maximum), following
// next_page_token (Keap's own keyset token, so writes between pages cannot shift the read); only id, email_addresses and update_time are asked for. Incremental reads add
// filter=start_update_time==<since> (ISO 8601 with milliseconds, the format the document requires). The
// cursor holds the page token (and the filter), so a fresh adapter resumes.
//
// Status comes from the EMAIL1 address's email_opt_status: BOUNCE, HARD_BOUNCE and INVALID → bounced; SPAM
// and FEEDBACK → complained; LIST_UNSUBSCRIBE, MANUAL, ADMIN, SYSTEM, LOCKDOWN and DEACTIVATED (opted out
// or blocked) → unsubscribed; the marketable and not-yet-confirmed states → subscribed.
//
// Writes: Keap is a tag platform. SetFields applies `mf_failed - <reason>`, AddTag any tag: the tag id is
// looked up by name (GET /rest/v2/tags?filter=name==…), created when missing (POST /rest/v2/tags; a 409
// means another run created it: looked up again), cached, then applied with
// POST /rest/v2/tags/{tag_id}/contacts:applyTags. Unsubscribe opts the email address out with
// PATCH /rest/v2/emailAddresses/{email}/status {"opted_in":false} (the path the spec page left
// unconfirmed, as the document gives it). Delete is DELETE /rest/v2/contacts/{id} after a GET snapshot.

const (
	keapBase    = "https://api.keap.com/crm"
	keapPageMax = 1000
	keapCursor  = "kp1:"
)

type keap struct {
	base string
	hdr  http.Header
	acct *Account
	size int
	caps Capabilities

	mu   sync.Mutex
	tags idsByName // tag name → id
}

func newKeap(cfg Config) (Adapter, error) {
	base := cfg.baseURL(keapBase)
	key := cfg.Credentials["api_key"]
	h := http.Header{}
	h.Set("X-Keap-API-Key", key)
	return &keap{
		base: base + "/rest/v2", hdr: h,
		acct: cfg.Client.Account("keap", key, cfg.Platform.Limits, KeapThrottle),
		size: cfg.Options.pageSize("keap", keapPageMax),
		caps: cfg.Platform.Capabilities,
	}, nil
}

// KeapThrottle: 429 with x-keap-* throttle and quota headers and, when present, Retry-After. A quota
// header at 0 (x-keap-product-quota-available / x-keap-tenant-quota-available: the daily 30,000) is a Quota
// verdict; otherwise the wait is Retry-After (else the client's exponential backoff).
func KeapThrottle(status int, h http.Header, _ []byte) Throttle {
	if status != http.StatusTooManyRequests {
		return Throttle{}
	}
	for _, k := range []string{"X-Keap-Product-Quota-Available", "X-Keap-Tenant-Quota-Available"} {
		if v := strings.TrimSpace(h.Get(k)); v == "0" {
			return Throttle{Throttled: true, Quota: true, Wait: HeaderWait(h)}
		}
	}
	return Throttle{Throttled: true, Wait: HeaderWait(h)}
}

func (k *keap) Capabilities() Capabilities { return k.caps }

type keapTag struct {
	ID   json.RawMessage `json:"id"` // a string in the document; tolerate a number
	Name string          `json:"name"`
}

func rawID(b json.RawMessage) string { return strings.Trim(string(b), `"`) }

func (k *keap) Lists(ctx context.Context) ([]List, error) {
	out := []List{}
	token := ""
	for {
		q := url.Values{}
		q.Set("page_size", strconv.Itoa(keapPageMax))
		if token != "" {
			q.Set("page_token", token)
		}
		var page struct {
			Tags []keapTag `json:"tags"`
			Next string    `json:"next_page_token"`
		}
		if err := k.acct.DoJSON(ctx, http.MethodGet, k.base+"/tags?"+q.Encode(), k.hdr, nil, Into(&page)); err != nil {
			return nil, err
		}
		for _, t := range page.Tags {
			if !strings.HasPrefix(t.Name, "mf_") {
				out = append(out, List{ID: rawID(t.ID), Name: t.Name})
			}
		}
		if page.Next == "" || page.Next == token || len(page.Tags) == 0 {
			return out, nil
		}
		token = page.Next
	}
}

func keapStatus(s string) Status {
	switch s {
	case "BOUNCE", "HARD_BOUNCE", "INVALID":
		return StatusBounced
	case "SPAM", "FEEDBACK":
		return StatusComplained
	case "LIST_UNSUBSCRIBE", "MANUAL", "ADMIN", "SYSTEM", "LOCKDOWN", "DEACTIVATED":
		return StatusUnsubscribed
	}
	return StatusSubscribed
}

// keapCur is the decoded cursor: the filter's since (Unix ms, 0 = full read) and Keap's page token.
type keapCur struct {
	since int64
	token string
}

func (c keapCur) encode() Cursor {
	return Cursor(keapCursor + strconv.FormatInt(c.since, 10) + ":" + base64.RawURLEncoding.EncodeToString([]byte(c.token)))
}

func parseKeapCursor(s string) (keapCur, error) {
	rest, ok := strings.CutPrefix(s, keapCursor)
	a, b, ok2 := strings.Cut(rest, ":")
	since, err := strconv.ParseInt(a, 10, 64)
	tok, err2 := base64.RawURLEncoding.DecodeString(b)
	if !ok || !ok2 || err != nil || err2 != nil || since < 0 {
		return keapCur{}, errors.New("esp: keap: foreign cursor")
	}
	return keapCur{since: since, token: string(tok)}, nil
}

func (k *keap) Contacts(ctx context.Context, cursor Cursor, since time.Time) (Page, error) {
	var c keapCur
	if cursor != "" {
		var err error
		if c, err = parseKeapCursor(string(cursor)); err != nil {
			return Page{}, err
		}
	} else if !since.IsZero() {
		c.since = max(since.UnixMilli(), 1)
	}
	q := url.Values{}
	q.Set("page_size", strconv.Itoa(k.size))
	q.Set("fields", "id,email_addresses,update_time")
	if c.since != 0 {
		q.Set("filter", "start_update_time=="+time.UnixMilli(c.since).UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	if c.token != "" {
		q.Set("page_token", c.token)
	}
	var out Page
	var next string
	err := k.acct.DoJSON(ctx, http.MethodGet, k.base+"/contacts?"+q.Encode(), k.hdr, nil, func(d *json.Decoder) error {
		out = Page{Total: -1, Contacts: make([]Contact, 0, k.size)}
		next = ""
		return DecodeObject(d, map[string]func(*json.Decoder) error{
			"contacts": func(d *json.Decoder) error {
				return DecodeArray(d, func(d *json.Decoder) error {
					var ct struct {
						ID     json.RawMessage `json:"id"`
						Emails []struct {
							Email  string `json:"email"`
							Field  string `json:"field"`
							Status string `json:"email_opt_status"`
						} `json:"email_addresses"`
						Updated string `json:"update_time"`
					}
					if err := d.Decode(&ct); err != nil {
						return eof(err)
					}
					x := Contact{ID: rawID(ct.ID), Status: StatusSubscribed}
					for n, e := range ct.Emails { // EMAIL1, else the first address
						if e.Field == "EMAIL1" || n == 0 {
							x.Email, x.Status = e.Email, keapStatus(e.Status)
						}
						if e.Field == "EMAIL1" {
							break
						}
					}
					if t, err := time.Parse(time.RFC3339Nano, ct.Updated); err == nil {
						x.UpdatedAt = t
					}
					out.Contacts = append(out.Contacts, x)
					return nil
				})
			},
			"next_page_token": Into(&next),
		})
	})
	if err != nil {
		return Page{}, err
	}
	if next != "" && next != c.token && len(out.Contacts) > 0 {
		out.Next = keapCur{since: c.since, token: next}.encode()
	}
	return out, nil
}

func (k *keap) EnsureFields(context.Context) error { return nil } // tags are created when first needed

// tagID finds (or creates) the tag named name.
func (k *keap) tagID(ctx context.Context, name string) (string, error) {
	lookup := func() (string, error) {
		var page struct {
			Tags []keapTag `json:"tags"`
		}
		q := url.Values{}
		q.Set("filter", "name=="+name)
		q.Set("page_size", "10")
		if err := k.acct.DoJSON(ctx, http.MethodGet, k.base+"/tags?"+q.Encode(), k.hdr, nil, Into(&page)); err != nil {
			return "", err
		}
		for _, t := range page.Tags {
			if t.Name == name {
				return rawID(t.ID), nil
			}
		}
		return "", nil
	}
	return k.tags.resolve(name, lookup, func() (id string, err error) {
		var t keapTag
		err = k.acct.DoJSON(ctx, http.MethodPost, k.base+"/tags", k.hdr, map[string]any{"name": name, "description": "Written by autofloss (email list hygiene)."}, Into(&t))
		switch {
		case err == nil:
			id = rawID(t.ID)
		case errors.Is(err, ErrBadRequest): // 409: created meanwhile
			if id, err = lookup(); err != nil {
				return "", err
			}
		default:
			return "", err
		}
		if id == "" {
			return "", fmt.Errorf("esp: keap: tag could not be created: %w", ErrBadRequest)
		}
		return id, nil
	})
}

func (k *keap) AddTag(ctx context.Context, c Contact, tag string) error {
	if c.ID == "" {
		return errors.New("esp: keap: contact without id")
	}
	id, err := k.tagID(ctx, tag)
	if err != nil {
		return err
	}
	var res struct {
		Results map[string]string `json:"results"`
	}
	u := k.base + "/tags/" + url.PathEscape(id) + "/contacts:applyTags"
	if err := k.acct.DoJSON(ctx, http.MethodPost, u, k.hdr, map[string]any{"contact_ids": []string{c.ID}}, Into(&res)); err != nil {
		return err
	}
	if r := res.Results[c.ID]; strings.Contains(strings.ToUpper(r), "NOT_FOUND") {
		return fmt.Errorf("esp: keap: apply tag: contact %w", ErrNotFound)
	}
	return nil
}

func (k *keap) SetFields(ctx context.Context, c Contact, f Fields) error {
	r := f[FieldReason]
	if r == "" {
		return fmt.Errorf("esp: keap: no %s to write as a tag: %w", FieldReason, ErrBadRequest)
	}
	return k.AddTag(ctx, c, FailedTag(r))
}

func (k *keap) Unsubscribe(ctx context.Context, c Contact) error {
	if c.Email == "" {
		return errors.New("esp: keap: unsubscribe needs the contact's email")
	}
	body := map[string]any{"opted_in": false, "reason": "Opted out by the account's list hygiene (autofloss)."}
	return k.acct.DoJSON(ctx, http.MethodPatch, k.base+"/emailAddresses/"+url.PathEscape(c.Email)+"/status", k.hdr, body, nil)
}

func (k *keap) Delete(ctx context.Context, c Contact) (json.RawMessage, error) {
	if c.ID == "" {
		return nil, errors.New("esp: keap: contact without id")
	}
	u := k.base + "/contacts/" + url.PathEscape(c.ID)
	// goneIsDone: a 404 on the DELETE means gone since the snapshot (e.g. a retried DELETE whose first answer was lost): done.
	snap, err := k.acct.snapshotDelete(ctx, u+"?fields="+url.QueryEscape("id,given_name,family_name,email_addresses,tag_ids,custom_fields,create_time,update_time"), u, k.hdr, true)
	if err != nil {
		return nil, err
	}
	return snap, nil
}
