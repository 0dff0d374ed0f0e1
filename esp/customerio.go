package esp

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Customer.io (esp-platforms.md § customerio). Two APIs with two credentials:
//   - reads: the App API https://api.customer.io/v1/… (EU api-eu.customer.io), `Authorization: Bearer
//     <app_api_key>`;
//   - writes: the Track API https://track.customer.io/api/v1/… (EU track-eu.customer.io), HTTP Basic
//     site_id:track_api_key.
//
// Base-URL override: one URL replaces BOTH hosts (App paths stay /v1/…, Track paths /api/v1/…, which do not
// collide), so a single fake — or a single proxy — serves both path sets. Validation (Lists) checks both
// credentials: GET /api/v1/accounts/region (Track) and GET /v1/segments (App); segments are the lists.
//
// Contacts are account-wide (ListID "", ID = the customer id). A page is POST /v1/customers?start=<next>
// &limit=1000 with the filter "email exists" → {identifiers:[{id,email,cio_id}], next} (limit at most
// 1000), then the subscription state of its ids through POST /v1/customers/attributes, 100 ids per call
// (its maximum): 11 requests per 1,000 contacts, the minimum these two endpoints allow. Status:
// unsubscribed when the customer's `unsubscribed` is true, else subscribed (suppressions for bounces and
// complaints are not part of the profile). Customer.io has no changed-since filter: since is ignored and
// every run is a full scan. Cursor: "c1:" + the platform's `next` token.
//
// Writes: fields = Track PUT /api/v1/customers/{id} {"mf_…":…, "_update": true} (attributes under their
// canonical names; _update never creates a customer); no tags → an attribute named after the tag set to
// true; unsubscribe = the same PUT {"unsubscribed": true, "_update": true}; delete = App GET
// /v1/customers/{id}/attributes (the snapshot; 404 = already gone) then Track DELETE /api/v1/customers/{id}.
// The App API throttles with 429 + Retry-After (DefaultThrottle); the Track API documents no 429, and the
// same parser is harmless there.

const (
	customerioApp      = "https://api.customer.io"
	customerioAppEU    = "https://api-eu.customer.io"
	customerioTrack    = "https://track.customer.io"
	customerioTrackEU  = "https://track-eu.customer.io"
	customerioPageMax  = 1000
	customerioAttrsMax = 100
	customerioCursor   = "c1:"
)

// customerioFilter selects every customer with an email (the identifiers search requires a filter).
var customerioFilter = map[string]any{"filter": map[string]any{"and": []any{
	map[string]any{"attribute": map[string]any{"field": "email", "operator": "exists"}},
}}}

type customerio struct {
	app, track       string
	appHdr, trackHdr http.Header
	acct             *Account
	size             int
	caps             Capabilities
}

func newCustomerio(cfg Config) (Adapter, error) {
	app, track := customerioApp, customerioTrack
	if cfg.Credentials["region"] == "eu" {
		app, track = customerioAppEU, customerioTrackEU
	}
	if cfg.BaseURL != "" {
		app = strings.TrimRight(cfg.BaseURL, "/")
		track = app
	}
	ak, site, tk := cfg.Credentials["app_api_key"], cfg.Credentials["site_id"], cfg.Credentials["track_api_key"]
	ah := http.Header{}
	ah.Set("Authorization", "Bearer "+ak)
	th := http.Header{}
	th.Set("Authorization", "Basic "+basicAuth(site, tk))
	return &customerio{
		app: app + "/v1", track: track + "/api/v1", appHdr: ah, trackHdr: th,
		acct: cfg.Client.Account("customerio", ak+"\x00"+site, cfg.Platform.Limits, DefaultThrottle),
		size: cfg.Options.pageSize("customerio", customerioPageMax),
		caps: cfg.Platform.Capabilities,
	}, nil
}

func (c *customerio) Capabilities() Capabilities { return c.caps }

func (c *customerio) Lists(ctx context.Context) ([]List, error) {
	if err := c.acct.DoJSON(ctx, http.MethodGet, c.track+"/accounts/region", c.trackHdr, nil, nil); err != nil {
		return nil, err
	}
	var out []List
	err := c.acct.DoJSON(ctx, http.MethodGet, c.app+"/segments", c.appHdr, nil, func(d *json.Decoder) error {
		out = nil
		return DecodeObject(d, map[string]func(*json.Decoder) error{
			"segments": func(d *json.Decoder) error {
				return DecodeArray(d, func(d *json.Decoder) error {
					var s struct {
						ID   json.Number `json:"id"`
						Name string      `json:"name"`
					}
					if err := d.Decode(&s); err != nil {
						return eof(err)
					}
					out = append(out, List{ID: s.ID.String(), Name: s.Name})
					return nil
				})
			},
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Contacts reads one page of identifiers and their subscription state; since is ignored (full scan).
func (c *customerio) Contacts(ctx context.Context, cursor Cursor, _ time.Time) (Page, error) {
	start := ""
	if cursor != "" {
		s, ok := strings.CutPrefix(string(cursor), customerioCursor)
		if !ok || s == "" {
			return Page{}, errors.New("esp: customerio: foreign cursor")
		}
		start = s
	}
	q := url.Values{}
	if start != "" {
		q.Set("start", start)
	}
	q.Set("limit", strconv.Itoa(c.size))
	var page Page
	var next string
	err := c.acct.DoJSON(ctx, http.MethodPost, c.app+"/customers?"+q.Encode(), c.appHdr, customerioFilter, func(d *json.Decoder) error {
		page = Page{Total: -1, Contacts: make([]Contact, 0, c.size)}
		next = ""
		return DecodeObject(d, map[string]func(*json.Decoder) error{
			"identifiers": func(d *json.Decoder) error {
				return DecodeArray(d, func(d *json.Decoder) error {
					var id struct {
						ID    string `json:"id"`
						Email string `json:"email"`
					}
					if err := d.Decode(&id); err != nil {
						return eof(err)
					}
					page.Contacts = append(page.Contacts, Contact{ID: id.ID, Email: id.Email, Status: StatusSubscribed})
					return nil
				})
			},
			"next": Into(&next),
		})
	})
	if err != nil {
		return Page{}, err
	}
	if err := c.statuses(ctx, page.Contacts); err != nil {
		return Page{}, err
	}
	if next != "" && len(page.Contacts) > 0 {
		page.Next = Cursor(customerioCursor + next)
	}
	return page, nil
}

// statuses fills Status and UpdatedAt from POST /v1/customers/attributes, 100 ids per call.
func (c *customerio) statuses(ctx context.Context, cs []Contact) error {
	for lo := 0; lo < len(cs); lo += customerioAttrsMax {
		batch := cs[lo:min(lo+customerioAttrsMax, len(cs))]
		at := make(map[string]int, len(batch))
		ids := make([]string, 0, len(batch))
		for i, ct := range batch {
			if ct.ID != "" {
				at[ct.ID] = i
				ids = append(ids, ct.ID)
			}
		}
		err := c.acct.DoJSON(ctx, http.MethodPost, c.app+"/customers/attributes", c.appHdr, map[string]any{"ids": ids}, func(d *json.Decoder) error {
			return DecodeObject(d, map[string]func(*json.Decoder) error{
				"customers": func(d *json.Decoder) error {
					return DecodeArray(d, func(d *json.Decoder) error {
						var cu struct {
							ID           string `json:"id"`
							Unsubscribed bool   `json:"unsubscribed"`
							Timestamps   struct {
								UpdatedAt json.Number `json:"updated_at"`
							} `json:"timestamps"`
						}
						if err := d.Decode(&cu); err != nil {
							return eof(err)
						}
						i, ok := at[cu.ID]
						if !ok {
							return nil
						}
						batch[i].Status = StatusSubscribed
						if cu.Unsubscribed {
							batch[i].Status = StatusUnsubscribed
						}
						if s, err := cu.Timestamps.UpdatedAt.Int64(); err == nil && s > 0 {
							batch[i].UpdatedAt = time.Unix(s, 0).UTC()
						}
						return nil
					})
				},
			})
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *customerio) EnsureFields(context.Context) error { return nil } // attributes need no creation

func (c *customerio) customer(ct Contact) (string, error) {
	if ct.ID == "" {
		return "", errors.New("esp: customerio: contact without id")
	}
	return "/customers/" + url.PathEscape(ct.ID), nil
}

func (c *customerio) put(ctx context.Context, ct Contact, attrs map[string]any) error {
	p, err := c.customer(ct)
	if err != nil {
		return err
	}
	attrs["_update"] = true
	return c.acct.DoJSON(ctx, http.MethodPut, c.track+p, c.trackHdr, attrs, nil)
}

func (c *customerio) SetFields(ctx context.Context, ct Contact, f Fields) error {
	attrs := make(map[string]any, len(f)+1)
	for k, v := range f {
		attrs[k] = v
	}
	return c.put(ctx, ct, attrs)
}

func (c *customerio) AddTag(ctx context.Context, ct Contact, tag string) error {
	return c.put(ctx, ct, map[string]any{tag: true})
}

func (c *customerio) Unsubscribe(ctx context.Context, ct Contact) error {
	return c.put(ctx, ct, map[string]any{"unsubscribed": true})
}

func (c *customerio) Delete(ctx context.Context, ct Contact) (json.RawMessage, error) {
	p, err := c.customer(ct)
	if err != nil {
		return nil, err
	}
	var snap json.RawMessage
	if err := c.acct.DoJSON(ctx, http.MethodGet, c.app+p+"/attributes", c.appHdr, nil, ReadRaw(&snap)); err != nil {
		return nil, err
	}
	if err := c.acct.DoJSON(ctx, http.MethodDelete, c.track+p, c.trackHdr, nil, nil); err != nil {
		return nil, err
	}
	return snap, nil
}
