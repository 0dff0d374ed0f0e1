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

// Constant Contact (esp-platforms.md § constantcontact). OAuth only: the registry marks it not connectable
// through the API; once a token exists, the adapter sends `Authorization: Bearer <access_token>` (refreshing
// it is the OAuth flow's job, outside this adapter: an expired token is ErrCredentialsRejected).
//
// Base URL https://api.cc.email, paths under /v3 (an override replaces the host part). Validation lists
// GET /v3/contact_lists?limit=500. Contacts are account-wide (ListID "", ID = contact_id): GET
// /v3/contacts?limit=500 (max 500) with status=all, then the `_links.next.href` the answer gives (relative:
// prefixed with our base, never another host); incremental reads add updated_after=<ISO 8601>. Cursor:
// "cc1:" + that relative href. Status: email_address.permission_to_send `unsubscribed` → unsubscribed,
// anything else (implicit, explicit, pending_confirmation, temp_hold, not_set) → subscribed; bounces and
// complaints are not part of the contact.
//
// Writes: fields are custom fields named after the canonical mf_* names, created by EnsureFields (or on
// first use) through GET/POST /v3/contact_custom_fields; SetFields and Unsubscribe read the contact and PUT
// it back whole (PUT replaces the top-level properties, update_source "Account" required), merging the
// custom fields or setting permission_to_send "unsubscribed". AddTag finds or creates the tag
// (GET/POST /v3/contact_tags) and applies it with POST /v3/activities/contacts_taggings_add (an
// asynchronous activity, 201). Delete reads the contact (the snapshot) then DELETE /v3/contacts/{id}.
//
// Throttling (ConstantContactThrottle): 429 error_key `throttled` (4 per second) backs off and retries;
// `quota_exceeded` (10,000 per day) lasts until 00:00 UTC: ErrThrottled with Quota set and RetryAfter until
// midnight, never retried within the run.

const (
	constantContactBase    = "https://api.cc.email"
	constantContactPageMax = 500
	constantContactCursor  = "cc1:"
)

type constantContact struct {
	base string // …/v3
	host string // what relative hrefs are joined to
	hdr  http.Header
	acct *Account
	size int
	caps Capabilities

	mu     sync.Mutex
	fields map[string]string // custom field name → id
	tags   map[string]string // tag name → id
}

func newConstantContact(cfg Config) (Adapter, error) {
	host := cfg.baseURL(constantContactBase)
	tok := cfg.Credentials["access_token"]
	h := http.Header{}
	h.Set("Authorization", "Bearer "+tok)
	return &constantContact{
		base: host + "/v3", host: host, hdr: h,
		acct: cfg.Client.Account("constantcontact", tok, cfg.Platform.Limits, ConstantContactThrottle),
		size: cfg.Options.pageSize("constantcontact", constantContactPageMax),
		caps: cfg.Platform.Capabilities,
	}, nil
}

func (cc *constantContact) Capabilities() Capabilities { return cc.caps }

type ccLinks struct {
	Next struct {
		Href string `json:"href"`
	} `json:"next"`
}

// follow turns a relative next href into a URL on our host, refusing anything else.
func (cc *constantContact) follow(href, prefix string) (string, error) {
	u, err := url.Parse(href)
	if err != nil || u.IsAbs() || u.Host != "" || !strings.HasPrefix(u.Path, prefix) {
		return "", errors.New("esp: constantcontact: unexpected _links.next.href")
	}
	return cc.host + u.RequestURI(), nil
}

func (cc *constantContact) Lists(ctx context.Context) ([]List, error) {
	var out []List
	next := cc.base + "/contact_lists?limit=500"
	for next != "" {
		var links ccLinks
		var page []List
		err := cc.acct.DoJSON(ctx, http.MethodGet, next, cc.hdr, nil, func(d *json.Decoder) error {
			page, links = nil, ccLinks{}
			return DecodeObject(d, map[string]func(*json.Decoder) error{
				"lists": func(d *json.Decoder) error {
					return DecodeArray(d, func(d *json.Decoder) error {
						var l struct {
							ID   string `json:"list_id"`
							Name string `json:"name"`
						}
						if err := d.Decode(&l); err != nil {
							return eof(err)
						}
						page = append(page, List{ID: l.ID, Name: l.Name})
						return nil
					})
				},
				"_links": Into(&links),
			})
		})
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		next = ""
		if links.Next.Href != "" {
			if next, err = cc.follow(links.Next.Href, "/v3/contact_lists"); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

type ccContact struct {
	ID    string `json:"contact_id"`
	Email struct {
		Address    string `json:"address"`
		Permission string `json:"permission_to_send"`
	} `json:"email_address"`
	UpdatedAt string `json:"updated_at"`
}

func (cc *constantContact) Contacts(ctx context.Context, cursor Cursor, since time.Time) (Page, error) {
	var u string
	if cursor != "" {
		href, ok := strings.CutPrefix(string(cursor), constantContactCursor)
		if !ok {
			return Page{}, errors.New("esp: constantcontact: foreign cursor")
		}
		var err error
		if u, err = cc.follow(href, "/v3/contacts"); err != nil {
			return Page{}, err
		}
	} else {
		q := url.Values{}
		q.Set("limit", strconv.Itoa(cc.size))
		q.Set("status", "all")
		if !since.IsZero() {
			q.Set("updated_after", since.UTC().Format(time.RFC3339))
		}
		u = cc.base + "/contacts?" + q.Encode()
	}
	var page Page
	var links ccLinks
	err := cc.acct.DoJSON(ctx, http.MethodGet, u, cc.hdr, nil, func(d *json.Decoder) error {
		page, links = Page{Total: -1, Contacts: make([]Contact, 0, cc.size)}, ccLinks{}
		return DecodeObject(d, map[string]func(*json.Decoder) error{
			"contacts": func(d *json.Decoder) error {
				return DecodeArray(d, func(d *json.Decoder) error {
					var c ccContact
					if err := d.Decode(&c); err != nil {
						return eof(err)
					}
					ct := Contact{ID: c.ID, Email: c.Email.Address, Status: StatusSubscribed}
					if c.Email.Permission == "unsubscribed" {
						ct.Status = StatusUnsubscribed
					}
					if t, err := time.Parse(time.RFC3339, c.UpdatedAt); err == nil {
						ct.UpdatedAt = t
					}
					page.Contacts = append(page.Contacts, ct)
					return nil
				})
			},
			"_links": Into(&links),
		})
	})
	if err != nil {
		return Page{}, err
	}
	if links.Next.Href != "" {
		if _, err := cc.follow(links.Next.Href, "/v3/contacts"); err != nil {
			return Page{}, err
		}
		page.Next = Cursor(constantContactCursor + links.Next.Href)
	}
	return page, nil
}

// named finds an object id by name in a listing (custom fields, tags), creating it when missing.
func (cc *constantContact) named(ctx context.Context, cache *map[string]string, list, key, idKey, name string, create map[string]any) (string, error) {
	cc.mu.Lock()
	if *cache == nil {
		*cache = map[string]string{}
	}
	id := (*cache)[name]
	cc.mu.Unlock()
	if id != "" {
		return id, nil
	}
	next := cc.base + "/" + list + "?limit=100"
	for next != "" && id == "" {
		var links ccLinks
		err := cc.acct.DoJSON(ctx, http.MethodGet, next, cc.hdr, nil, func(d *json.Decoder) error {
			links = ccLinks{}
			return DecodeObject(d, map[string]func(*json.Decoder) error{
				key: func(d *json.Decoder) error {
					return DecodeArray(d, func(d *json.Decoder) error {
						var o map[string]any
						if err := d.Decode(&o); err != nil {
							return eof(err)
						}
						n, _ := o["name"].(string)
						if l, _ := o["label"].(string); n == "" {
							n = l
						}
						if v, _ := o[idKey].(string); n == name && v != "" {
							id = v
						}
						return nil
					})
				},
				"_links": Into(&links),
			})
		})
		if err != nil {
			return "", err
		}
		next = ""
		if links.Next.Href != "" {
			if next, err = cc.follow(links.Next.Href, "/v3/"+list); err != nil {
				return "", err
			}
		}
	}
	if id == "" {
		var created map[string]any
		if err := cc.acct.DoJSON(ctx, http.MethodPost, cc.base+"/"+list, cc.hdr, create, Into(&created)); err != nil {
			return "", err
		}
		id, _ = created[idKey].(string)
		if id == "" {
			return "", errors.New("esp: constantcontact: created object without id")
		}
	}
	cc.mu.Lock()
	(*cache)[name] = id
	cc.mu.Unlock()
	return id, nil
}

func (cc *constantContact) fieldID(ctx context.Context, name string) (string, error) {
	return cc.named(ctx, &cc.fields, "contact_custom_fields", "custom_fields", "custom_field_id", name,
		map[string]any{"label": name, "type": "string"})
}

func (cc *constantContact) EnsureFields(ctx context.Context) error {
	for _, n := range FieldNames {
		if _, err := cc.fieldID(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

func (cc *constantContact) contactURL(c Contact) (string, error) {
	if c.ID == "" {
		return "", errors.New("esp: constantcontact: contact without id")
	}
	return cc.base + "/contacts/" + url.PathEscape(c.ID), nil
}

// rewrite reads the contact, lets edit change it, and PUTs it back whole (PUT replaces top-level properties).
func (cc *constantContact) rewrite(ctx context.Context, c Contact, edit func(map[string]any)) error {
	u, err := cc.contactURL(c)
	if err != nil {
		return err
	}
	var cur map[string]any
	if err := cc.acct.DoJSON(ctx, http.MethodGet, u+"?include=custom_fields", cc.hdr, nil, Into(&cur)); err != nil {
		return err
	}
	body := map[string]any{"update_source": "Account"}
	for _, k := range []string{"email_address", "first_name", "last_name", "job_title", "company_name", "custom_fields", "list_memberships"} {
		if v, ok := cur[k]; ok {
			body[k] = v
		}
	}
	if ea, ok := body["email_address"].(map[string]any); ok { // only the writable parts of email_address
		body["email_address"] = map[string]any{"address": ea["address"], "permission_to_send": ea["permission_to_send"]}
	}
	edit(body)
	return cc.acct.DoJSON(ctx, http.MethodPut, u, cc.hdr, body, nil)
}

func (cc *constantContact) SetFields(ctx context.Context, c Contact, f Fields) error {
	ids := map[string]string{}
	for k := range f {
		id, err := cc.fieldID(ctx, k)
		if err != nil {
			return err
		}
		ids[id] = f[k]
	}
	return cc.rewrite(ctx, c, func(b map[string]any) {
		var out []any
		if have, ok := b["custom_fields"].([]any); ok {
			for _, x := range have {
				if m, ok := x.(map[string]any); ok {
					if id, _ := m["custom_field_id"].(string); ids[id] == "" {
						out = append(out, map[string]any{"custom_field_id": id, "value": m["value"]})
					}
				}
			}
		}
		for id, v := range ids {
			out = append(out, map[string]any{"custom_field_id": id, "value": v})
		}
		b["custom_fields"] = out
	})
}

func (cc *constantContact) AddTag(ctx context.Context, c Contact, tag string) error {
	if c.ID == "" {
		return errors.New("esp: constantcontact: contact without id")
	}
	id, err := cc.named(ctx, &cc.tags, "contact_tags", "tags", "tag_id", tag, map[string]any{"name": tag})
	if err != nil {
		return err
	}
	body := map[string]any{"source": map[string]any{"contact_ids": []string{c.ID}}, "tag_ids": []string{id}}
	return cc.acct.DoJSON(ctx, http.MethodPost, cc.base+"/activities/contacts_taggings_add", cc.hdr, body, nil)
}

func (cc *constantContact) Unsubscribe(ctx context.Context, c Contact) error {
	return cc.rewrite(ctx, c, func(b map[string]any) {
		ea, _ := b["email_address"].(map[string]any)
		if ea == nil {
			ea = map[string]any{"address": c.Email}
		}
		ea["permission_to_send"] = "unsubscribed"
		b["email_address"] = ea
	})
}

func (cc *constantContact) Delete(ctx context.Context, c Contact) (json.RawMessage, error) {
	u, err := cc.contactURL(c)
	if err != nil {
		return nil, err
	}
	snap, err := cc.acct.snapshotDelete(ctx, u+"?include=custom_fields,list_memberships,taggings", u, cc.hdr, false)
	if err != nil {
		return nil, err
	}
	return snap, nil
}
