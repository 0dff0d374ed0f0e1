package esp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Sendlane (esp-platforms.md § sendlane). `Authorization: Bearer <key>` on every call; answers are
// {"data":…,"links":{…,"next"},"meta":{"current_page","last_page","per_page","total"}}.
//
// Contacts are read list by list (a contact in two lists comes twice, with its ListID) with page-number
// paging GET /v2/lists/{id}/contacts?page=N&limit=100 (limit at most 100); meta.last_page ends a list, so a
// read costs exactly one request per page. Sendlane has no changed-since filter: since is ignored and every
// run is a full rescan. The cursor is "s1:<list index>:<list id>:<page>".
//
// Page numbers shift when contacts before the page disappear. The adapter remembers how many contacts it
// deleted since its last page and steps the next page back by ceil(deleted/limit) pages: at worst some
// contacts are read twice (harmless: results are reused and write-backs are idempotent), never skipped.
// Deletions by someone else during a read can still shift a contact out of this run; the next run sees it.
//
// Tags instead of fields: SetFields writes `mf_failed - <reason>` (nothing without a reason). AddTag finds
// the tag's id by name (GET /v2/tags, paged), creates it when missing (POST /v2/tags {"name"}), then
// POST /v2/contacts/{id}/tags {"tag_ids":[id]}; ids are cached per adapter. Unsubscribe is
// POST /v2/contacts/{id}/unsubscribe; Delete reads GET /v2/contacts/{id} (the snapshot) then
// DELETE /v2/contacts/{id}.
//
// Unconfirmed details (kept here, mirrored by the fake): the contact status values `subscribed`,
// `unsubscribed`, `bounced` and `complained`; the tag bodies above; a too-large limit answers 422.

const (
	sendlaneBase    = "https://api.sendlane.com"
	sendlanePageMax = 100
)

// slCursors are this adapter's cursors: "s1:…" (see cursorCodec).
var slCursors = cursorCodec{platform: "sendlane", prefix: "s1:"}

type sendlane struct {
	base string
	hdr  http.Header
	acct *Account
	size int
	caps Capabilities

	mu      sync.Mutex
	lists   listCache
	tags    idsByName // tag name → tag id (a number)
	deleted int       // contacts deleted since the last page was read
}

func newSendlane(cfg Config) (Adapter, error) {
	base := cfg.baseURL(sendlaneBase)
	key := cfg.Credentials["api_key"]
	h := http.Header{}
	h.Set("Authorization", "Bearer "+key)
	return &sendlane{
		base: base + "/v2", hdr: h,
		acct: cfg.Client.Account("sendlane", key, cfg.Platform.Limits, DefaultThrottle),
		size: cfg.Options.pageSize("sendlane", sendlanePageMax),
		caps: cfg.Platform.Capabilities,
	}, nil
}

func (s *sendlane) Capabilities() Capabilities { return s.caps }

type sendlaneMeta struct {
	CurrentPage int `json:"current_page"`
	LastPage    int `json:"last_page"`
}

// pages walks a paged collection, calling each for every element of data. A page's decode can run more
// than once (retries): start is called before each attempt, commit after the page succeeded.
func (s *sendlane) pages(ctx context.Context, path string, start func(), each func(*json.Decoder) error, commit func()) error {
	for page := 1; ; page++ {
		var meta sendlaneMeta
		u := fmt.Sprintf("%s%s?page=%d&limit=%d", s.base, path, page, sendlanePageMax)
		if err := s.acct.DoJSON(ctx, http.MethodGet, u, s.hdr, nil, func(d *json.Decoder) error {
			meta = sendlaneMeta{}
			start()
			return DecodeObject(d, map[string]func(*json.Decoder) error{
				"data": func(d *json.Decoder) error { return DecodeArray(d, each) },
				"meta": Into(&meta),
			})
		}); err != nil {
			return err
		}
		commit()
		if page >= meta.LastPage {
			return nil
		}
	}
}

func (s *sendlane) Lists(ctx context.Context) ([]List, error) {
	var out, pg []List
	err := s.pages(ctx, "/lists", func() { pg = pg[:0] }, func(d *json.Decoder) error {
		var l struct {
			ID   json.Number `json:"id"`
			Name string      `json:"name"`
		}
		if err := d.Decode(&l); err != nil {
			return eof(err)
		}
		pg = append(pg, List{ID: l.ID.String(), Name: l.Name})
		return nil
	}, func() { out = append(out, pg...) })
	if err != nil {
		return nil, err
	}
	return s.lists.remember(out), nil
}

type slCursor struct {
	list   int
	listID string
	page   int
}

func (c slCursor) String() string { return slCursors.encode(c.list, c.listID, c.page) }

func parseSendlaneCursor(s string) (slCursor, error) {
	var c slCursor
	if err := slCursors.decode(s, &c.list, &c.listID, &c.page); err != nil {
		return slCursor{}, err
	}
	if c.list < 0 || c.page < 1 {
		return slCursor{}, slCursors.malformed()
	}
	return c, nil
}

type sendlaneContact struct {
	ID        json.Number `json:"id"`
	Email     string      `json:"email"`
	Status    string      `json:"status"`
	UpdatedAt string      `json:"updated_at"`
}

func sendlaneStatus(s string) Status {
	switch s {
	case "unsubscribed":
		return StatusUnsubscribed
	case "bounced":
		return StatusBounced
	case "complained":
		return StatusComplained
	}
	return StatusSubscribed
}

// Contacts reads one page of one list; since is ignored (no changed-since filter: full rescan).
func (s *sendlane) Contacts(ctx context.Context, cursor Cursor, _ time.Time) (Page, error) {
	lists, err := s.lists.get(ctx, s.Lists)
	if err != nil {
		return Page{}, err
	}
	c := slCursor{page: 1}
	if cursor != "" {
		if c, err = parseSendlaneCursor(string(cursor)); err != nil {
			return Page{}, err
		}
	}
	if c.listID != "" {
		var found bool
		if c.list, found = relocateList(lists, c.list, c.listID); !found {
			c.page = 1 // the list is gone: continue with the one now at its index
		}
	}
	if c.list >= len(lists) {
		return Page{Total: -1}, nil
	}
	l := lists[c.list]
	s.mu.Lock()
	if s.deleted > 0 && cursor != "" {
		c.page = max(c.page-(s.deleted+s.size-1)/s.size, 1)
	}
	s.deleted = 0
	s.mu.Unlock()
	var page Page
	var meta sendlaneMeta
	u := fmt.Sprintf("%s/lists/%s/contacts?page=%d&limit=%d", s.base, url.PathEscape(l.ID), c.page, s.size)
	err = s.acct.DoJSON(ctx, http.MethodGet, u, s.hdr, nil, func(d *json.Decoder) error {
		page = Page{Total: -1, Contacts: make([]Contact, 0, s.size)}
		meta = sendlaneMeta{}
		return DecodeObject(d, map[string]func(*json.Decoder) error{
			"data": func(d *json.Decoder) error {
				return DecodeArray(d, func(d *json.Decoder) error {
					var sc sendlaneContact
					if err := d.Decode(&sc); err != nil {
						return eof(err)
					}
					ct := Contact{ID: sc.ID.String(), ListID: l.ID, Email: sc.Email, Status: sendlaneStatus(sc.Status)}
					if t, err := time.Parse(time.RFC3339, sc.UpdatedAt); err == nil {
						ct.UpdatedAt = t
					}
					page.Contacts = append(page.Contacts, ct)
					return nil
				})
			},
			"meta": Into(&meta),
		})
	})
	if err != nil {
		return Page{}, err
	}
	next := slCursor{list: c.list, listID: l.ID, page: c.page + 1}
	if len(page.Contacts) == 0 || c.page >= meta.LastPage {
		next = slCursor{list: c.list + 1, page: 1}
		if next.list >= len(lists) {
			return page, nil
		}
		next.listID = lists[next.list].ID
	}
	page.Next = Cursor(next.String())
	return page, nil
}

func (s *sendlane) EnsureFields(context.Context) error { return nil } // tags are created when first needed

func (s *sendlane) contactURL(c Contact) (string, error) {
	if _, err := strconv.ParseInt(c.ID, 10, 64); err != nil {
		return "", errors.New("esp: sendlane: contact without a numeric id")
	}
	return s.base + "/contacts/" + c.ID, nil
}

// SetFields writes the tag `mf_failed - <reason>`; without a reason there is nothing to write.
func (s *sendlane) SetFields(ctx context.Context, c Contact, f Fields) error {
	if f[FieldReason] == "" {
		return nil
	}
	return s.AddTag(ctx, c, FailedTag(f[FieldReason]))
}

func (s *sendlane) tagID(ctx context.Context, name string) (int64, error) {
	type tag struct {
		ID   json.Number `json:"id"`
		Name string      `json:"name"`
	}
	number := func(id string) (string, error) {
		if _, err := strconv.ParseInt(id, 10, 64); err != nil {
			return "", errors.New("esp: sendlane: tag without id")
		}
		return id, nil
	}
	id, err := s.tags.resolve(name, func() (string, error) {
		found := ""
		err := s.pages(ctx, "/tags", func() {}, func(d *json.Decoder) error {
			var t tag
			if err := d.Decode(&t); err != nil {
				return eof(err)
			}
			if t.Name == name && found == "" {
				found = t.ID.String()
			}
			return nil
		}, func() {})
		if err != nil || found == "" {
			return "", err
		}
		return number(found)
	}, func() (string, error) {
		var created struct {
			Data tag `json:"data"`
		}
		if err := s.acct.DoJSON(ctx, http.MethodPost, s.base+"/tags", s.hdr, map[string]string{"name": name}, Into(&created)); err != nil {
			return "", err
		}
		return number(created.Data.ID.String())
	})
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(id, 10, 64)
}

func (s *sendlane) AddTag(ctx context.Context, c Contact, tag string) error {
	u, err := s.contactURL(c)
	if err != nil {
		return err
	}
	id, err := s.tagID(ctx, tag)
	if err != nil {
		return err
	}
	return s.acct.DoJSON(ctx, http.MethodPost, u+"/tags", s.hdr, map[string]any{"tag_ids": []int64{id}}, nil)
}

func (s *sendlane) Unsubscribe(ctx context.Context, c Contact) error {
	u, err := s.contactURL(c)
	if err != nil {
		return err
	}
	return s.acct.DoJSON(ctx, http.MethodPost, u+"/unsubscribe", s.hdr, map[string]any{}, nil)
}

func (s *sendlane) Delete(ctx context.Context, c Contact) (json.RawMessage, error) {
	u, err := s.contactURL(c)
	if err != nil {
		return nil, err
	}
	snap, err := s.acct.snapshotDelete(ctx, u, u, s.hdr, false)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.deleted++
	s.mu.Unlock()
	return snap, nil
}
