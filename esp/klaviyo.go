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
	"time"
)

// Klaviyo (esp-platforms.md § klaviyo). Profiles are account-wide: Contacts pages GET /api/profiles, so each
// profile comes once with ListID "" (a write-back is per profile anyway). Tags do not exist on profiles, so
// AddTag sets a custom property named after the tag to true; fields are custom properties under their
// canonical mf_* names.

const (
	klaviyoBase     = "https://a.klaviyo.com"
	klaviyoRevision = "2026-07-15" // the revision of spec/openapi/klaviyo; pin another via Options.Revisions
	klaviyoPageMax  = 100
	klaviyoListsMax = 10
	klaviyoJSONAPI  = "application/vnd.api+json"
)

type klaviyo struct {
	base string
	hdr  http.Header
	acct *Account
	size int
	caps Capabilities
}

func newKlaviyo(cfg Config) (Adapter, error) {
	base := cfg.baseURL(klaviyoBase)
	key := cfg.Credentials["api_key"]
	h := http.Header{}
	h.Set("Authorization", "Klaviyo-API-Key "+key)
	h.Set("revision", cfg.Options.revision("klaviyo", klaviyoRevision))
	h.Set("Accept", klaviyoJSONAPI)
	return &klaviyo{
		base: base, hdr: h,
		acct: cfg.Client.Account("klaviyo", key, cfg.Platform.Limits, DefaultThrottle),
		size: cfg.Options.pageSize("klaviyo", klaviyoPageMax),
		caps: cfg.Platform.Capabilities,
	}, nil
}

func (k *klaviyo) Capabilities() Capabilities { return k.caps }

func (k *klaviyo) headers(write bool) http.Header {
	h := k.hdr.Clone()
	if write {
		h.Set("Content-Type", klaviyoJSONAPI)
	}
	return h
}

type klaviyoLinks struct {
	Next string `json:"next"`
}

func (k *klaviyo) Lists(ctx context.Context) ([]List, error) {
	var out []List
	next := k.base + "/api/lists?page%5Bsize%5D=" + strconv.Itoa(klaviyoListsMax)
	for next != "" {
		var links klaviyoLinks
		err := k.acct.DoJSON(ctx, http.MethodGet, next, k.headers(false), nil, func(d *json.Decoder) error {
			links = klaviyoLinks{}
			page := out[:len(out):len(out)]
			err := DecodeObject(d, map[string]func(*json.Decoder) error{
				"data": func(d *json.Decoder) error {
					return DecodeArray(d, func(d *json.Decoder) error {
						var l struct {
							ID         string `json:"id"`
							Attributes struct {
								Name string `json:"name"`
							} `json:"attributes"`
						}
						if err := d.Decode(&l); err != nil {
							return eof(err)
						}
						page = append(page, List{ID: l.ID, Name: l.Attributes.Name})
						return nil
					})
				},
				"links": Into(&links),
			})
			if err == nil {
				out = page
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		if next, err = k.follow(links.Next, "/api/lists"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// follow turns a links.next URL into a URL on our base (never on a host the body names).
func (k *klaviyo) follow(next, prefix string) (string, error) {
	if next == "" {
		return "", nil
	}
	u, err := url.Parse(next)
	if err != nil || !strings.HasPrefix(u.Path, prefix) {
		return "", errors.New("esp: klaviyo: unexpected links.next")
	}
	return k.base + u.RequestURI(), nil
}

// Cursor format: "k1:" + the path and query of links.next (so resume needs no server state and never
// leaves our base URL).
const klaviyoCursor = "k1:"

type klaviyoProfile struct {
	ID         string `json:"id"`
	Attributes struct {
		Email         string `json:"email"`
		Updated       string `json:"updated"`
		Subscriptions *struct {
			Email *struct {
				Marketing *struct {
					Consent     string `json:"consent"`
					Suppression []struct {
						Reason string `json:"reason"`
					} `json:"suppression"`
				} `json:"marketing"`
			} `json:"email"`
		} `json:"subscriptions"`
	} `json:"attributes"`
}

func (p *klaviyoProfile) status() Status {
	s := p.Attributes.Subscriptions
	if s == nil || s.Email == nil || s.Email.Marketing == nil {
		return StatusSubscribed
	}
	m := s.Email.Marketing
	for _, sup := range m.Suppression {
		switch sup.Reason {
		case "HARD_BOUNCE", "INVALID_EMAIL":
			return StatusBounced
		case "SPAM_COMPLAINT":
			return StatusComplained
		}
	}
	if m.Consent == "UNSUBSCRIBED" || len(m.Suppression) > 0 {
		return StatusUnsubscribed
	}
	// SUBSCRIBED and NEVER_SUBSCRIBED (no explicit consent, still mailable) both count as subscribed.
	return StatusSubscribed
}

func (k *klaviyo) Contacts(ctx context.Context, cursor Cursor, since time.Time) (Page, error) {
	var u string
	switch {
	case cursor != "":
		s, ok := strings.CutPrefix(string(cursor), klaviyoCursor)
		if !ok {
			return Page{}, fmt.Errorf("esp: klaviyo: foreign cursor")
		}
		var err error
		if u, err = k.follow(s, "/api/profiles"); err != nil {
			return Page{}, err
		}
	default:
		q := "page%5Bsize%5D=" + strconv.Itoa(k.size) +
			"&additional-fields%5Bprofile%5D=subscriptions" +
			"&fields%5Bprofile%5D=email,updated,subscriptions"
		if !since.IsZero() {
			q += "&filter=" + url.QueryEscape("greater-than(updated,"+since.UTC().Format(time.RFC3339)+")") + "&sort=updated"
		}
		u = k.base + "/api/profiles?" + q
	}
	var page Page
	var links klaviyoLinks
	err := k.acct.DoJSON(ctx, http.MethodGet, u, k.headers(false), nil, func(d *json.Decoder) error {
		page = Page{Total: -1, Contacts: make([]Contact, 0, k.size)}
		links = klaviyoLinks{}
		return DecodeObject(d, map[string]func(*json.Decoder) error{
			"data": func(d *json.Decoder) error {
				return DecodeArray(d, func(d *json.Decoder) error {
					var p klaviyoProfile
					if err := d.Decode(&p); err != nil {
						return eof(err)
					}
					c := Contact{ID: p.ID, Email: p.Attributes.Email, Status: p.status()}
					if t, err := time.Parse(time.RFC3339Nano, p.Attributes.Updated); err == nil {
						c.UpdatedAt = t
					}
					page.Contacts = append(page.Contacts, c)
					return nil
				})
			},
			"links": Into(&links),
		})
	})
	if err != nil {
		return Page{}, err
	}
	if links.Next != "" {
		nu, err := url.Parse(links.Next)
		if err != nil {
			return Page{}, errors.New("esp: klaviyo: unexpected links.next")
		}
		page.Next = Cursor(klaviyoCursor + nu.RequestURI())
	}
	return page, nil
}

func (k *klaviyo) EnsureFields(context.Context) error { return nil } // properties need no creation

func (k *klaviyo) patchProperties(ctx context.Context, id string, props map[string]any) error {
	if id == "" {
		return errors.New("esp: klaviyo: contact without id")
	}
	body := map[string]any{"data": map[string]any{"type": "profile", "id": id, "attributes": map[string]any{"properties": props}}}
	return k.acct.DoJSON(ctx, http.MethodPatch, k.base+"/api/profiles/"+url.PathEscape(id), k.headers(true), body, nil)
}

func (k *klaviyo) SetFields(ctx context.Context, c Contact, f Fields) error {
	props := make(map[string]any, len(f))
	for n, v := range f {
		props[n] = v
	}
	return k.patchProperties(ctx, c.ID, props)
}

func (k *klaviyo) AddTag(ctx context.Context, c Contact, tag string) error {
	return k.patchProperties(ctx, c.ID, map[string]any{tag: true})
}

func (k *klaviyo) Unsubscribe(ctx context.Context, c Contact) error {
	if c.Email == "" {
		return errors.New("esp: klaviyo: unsubscribe needs the contact's email")
	}
	body := map[string]any{"data": map[string]any{
		"type": "profile-subscription-bulk-delete-job",
		"attributes": map[string]any{"profiles": map[string]any{"data": []any{map[string]any{
			"type": "profile",
			"attributes": map[string]any{
				"email":         c.Email,
				"subscriptions": map[string]any{"email": map[string]any{"marketing": map[string]any{"consent": "UNSUBSCRIBED"}}},
			},
		}}}},
	}}
	return k.acct.DoJSON(ctx, http.MethodPost, k.base+"/api/profile-subscription-bulk-delete-jobs", k.headers(true), body, nil)
}

func (k *klaviyo) Delete(ctx context.Context, c Contact) (json.RawMessage, error) {
	if c.ID == "" {
		return nil, errors.New("esp: klaviyo: contact without id")
	}
	var snap json.RawMessage
	err := k.acct.DoJSON(ctx, http.MethodGet, k.base+"/api/profiles/"+url.PathEscape(c.ID)+"?additional-fields%5Bprofile%5D=subscriptions", k.headers(false), nil, ReadRaw(&snap))
	if err != nil {
		return nil, err
	}
	body := map[string]any{"data": map[string]any{
		"type":       "data-privacy-deletion-job",
		"attributes": map[string]any{"profile": map[string]any{"data": map[string]any{"type": "profile", "id": c.ID, "attributes": map[string]any{}}}},
	}}
	if err := k.acct.DoJSON(ctx, http.MethodPost, k.base+"/api/data-privacy-deletion-jobs", k.headers(true), body, nil); err != nil {
		return nil, err
	}
	return snap, nil
}
