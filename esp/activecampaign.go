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

// ActiveCampaign (esp-platforms.md § activecampaign). Contacts are account-wide: Contacts pages
// GET /api/3/contacts with keyset paging (orders[id]=ASC, id_greater=<last id>, limit ≤ 100) and
// include=contactLists for the per-list statuses, so each contact comes once with ListID "" and deletes
// never shift a page. The incremental read adds filters[updated_after]. Page.Total is the contacts read
// before this page (kept in the cursor) plus meta.total, which counts the contacts the query still matches
// (id_greater being one of its filters).
//
// Base URL: the account's own api_url (credential), which must be https on ActiveCampaign's domains
// (checkActiveCampaign; enforced again here, not only at connect time, because the URL is user-supplied and
// requests carry the key). The operator's override replaces the scheme and host of api_url (its path, if
// any, prefixes /api/3). URLs named in response bodies are never followed. The rate limit is per account
// (all keys of an account share it), so the limiter is keyed by the api_url host, not the key.
//
// Statuses: from the contact's list memberships (contactLists[].status: 1 active, 2 unsubscribed,
// 3 bounced): bounced when any list says bounced, unsubscribed when every list says unsubscribed, otherwise
// subscribed. Complaints are not reported: complained never occurs.
//
// Writes: fields are custom fields (title = the canonical mf_* name, perstag = its upper case) created by
// EnsureFields (or on first use) and written one value per POST /api/3/fieldValues, as the platform has no
// multi-field write in the documented endpoint; a tag is found by name or created, then applied with
// POST /api/3/contactTags; unsubscribe posts status 2 for every list the contact is in; delete is
// DELETE /api/3/contacts/{id} after GET /api/3/contacts/{id} as the snapshot.

const (
	acPageMax = 100
)

// acCursors are this adapter's cursors: "a1:…" (see cursorCodec).
var acCursors = cursorCodec{platform: "activecampaign", prefix: "a1:"}

type activeCampaign struct {
	base string // …/api/3
	hdr  http.Header
	acct *Account
	size int
	caps Capabilities

	mu     sync.Mutex
	fields map[string]string // perstag → field id
	tags   idsByName         // tag name → tag id
}

// activeCampaignBase returns the API base (…/api/3) for api_url, with the override's scheme and host in
// place of api_url's when override is set.
func activeCampaignBase(apiURL, override string) (string, error) {
	u, err := url.Parse(apiURL)
	if err != nil || u.Host == "" {
		return "", &CredentialError{Field: "api_url", Code: "invalid_credentials_format", Reason: "must be an absolute URL"}
	}
	path := strings.TrimSuffix(strings.TrimRight(u.Path, "/"), "/api/3")
	scheme, host := u.Scheme, u.Host
	if override != "" {
		o, err := url.Parse(override)
		if err != nil || o.Host == "" || (o.Scheme != "http" && o.Scheme != "https") {
			return "", errors.New("esp: activecampaign: malformed base-URL override")
		}
		scheme, host = o.Scheme, o.Host
		path = strings.TrimRight(o.Path, "/") + path
	}
	return scheme + "://" + host + path + "/api/3", nil
}

func newActiveCampaign(cfg Config) (Adapter, error) {
	if err := checkActiveCampaign(cfg.Credentials, cfg.BaseURL); err != nil {
		return nil, err
	}
	base, err := activeCampaignBase(cfg.Credentials["api_url"], cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.Credentials["api_url"])
	key := cfg.Credentials["api_key"]
	h := http.Header{}
	h.Set("Api-Token", key)
	h.Set("Accept", "application/json")
	return &activeCampaign{
		base: base, hdr: h,
		acct: cfg.Client.Account("activecampaign", strings.ToLower(u.Host), cfg.Platform.Limits, DefaultThrottle),
		size: cfg.Options.pageSize("activecampaign", acPageMax),
		caps: cfg.Platform.Capabilities,
	}, nil
}

func (a *activeCampaign) Capabilities() Capabilities { return a.caps }

type acMeta struct {
	Total json.Number `json:"total"` // a string in ActiveCampaign's answers
}

func (m acMeta) total() (int, bool) {
	n, err := strconv.Atoi(m.Total.String())
	return n, err == nil
}

func (a *activeCampaign) Lists(ctx context.Context) ([]List, error) {
	var out []List
	for offset := 0; ; {
		var page struct {
			Lists []struct {
				ID   json.Number `json:"id"`
				Name string      `json:"name"`
			} `json:"lists"`
			Meta acMeta `json:"meta"`
		}
		u := fmt.Sprintf("%s/lists?limit=%d&offset=%d", a.base, acPageMax, offset)
		if err := a.acct.DoJSON(ctx, http.MethodGet, u, a.hdr, nil, Into(&page)); err != nil {
			return nil, err
		}
		for _, l := range page.Lists {
			out = append(out, List{ID: l.ID.String(), Name: l.Name})
		}
		offset += len(page.Lists)
		total, ok := page.Meta.total()
		if len(page.Lists) == 0 || (ok && offset >= total) || (!ok && len(page.Lists) < acPageMax) {
			return out, nil
		}
	}
}

// acCur is the decoded resume point: "a1:<last id>:<since Unix s, 0 = full>:<contacts read before>".
type acCur struct {
	after int64
	since int64
	seen  int
}

func (c acCur) String() string { return acCursors.encode(c.after, c.since, c.seen) }

func parseACCursor(s string) (acCur, error) {
	var c acCur
	if err := acCursors.decode(s, &c.after, &c.since, &c.seen); err != nil {
		return acCur{}, err
	}
	if c.after < 0 || c.since < 0 || c.seen < 0 {
		return acCur{}, acCursors.malformed()
	}
	return c, nil
}

type acContact struct {
	ID    json.Number `json:"id"`
	Email string      `json:"email"`
	Udate string      `json:"udate"`
}

type acContactList struct {
	Contact json.Number `json:"contact"`
	List    json.Number `json:"list"`
	Status  json.Number `json:"status"`
}

// acStatus folds a contact's list statuses (1 active, 2 unsubscribed, 3 bounced) into one.
func acStatus(statuses []string) Status {
	if len(statuses) == 0 {
		return StatusSubscribed
	}
	unsub := 0
	for _, s := range statuses {
		switch s {
		case "3":
			return StatusBounced
		case "2":
			unsub++
		}
	}
	if unsub == len(statuses) {
		return StatusUnsubscribed
	}
	return StatusSubscribed
}

// acTime parses ActiveCampaign's dates (ISO 8601 with offset, or "YYYY-MM-DD hh:mm:ss").
func acTime(s string) time.Time {
	for _, l := range []string{time.RFC3339Nano, "2006-01-02 15:04:05"} {
		if t, err := time.Parse(l, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

func (a *activeCampaign) Contacts(ctx context.Context, cursor Cursor, since time.Time) (Page, error) {
	var c acCur
	if cursor == "" {
		if !since.IsZero() {
			c.since = max(since.Unix(), 1) // whole seconds, floored: nothing at since is missed
		}
	} else {
		var err error
		if c, err = parseACCursor(string(cursor)); err != nil {
			return Page{}, err
		}
	}
	q := url.Values{}
	q.Set("limit", strconv.Itoa(a.size))
	q.Set("orders[id]", "ASC")
	q.Set("id_greater", strconv.FormatInt(c.after, 10))
	q.Set("include", "contactLists")
	if c.since != 0 {
		q.Set("filters[updated_after]", time.Unix(c.since, 0).UTC().Format(time.RFC3339))
	}
	var page Page
	var meta acMeta
	var statuses map[string][]string
	err := a.acct.DoJSON(ctx, http.MethodGet, a.base+"/contacts?"+q.Encode(), a.hdr, nil, func(d *json.Decoder) error {
		page = Page{Total: -1, Contacts: make([]Contact, 0, a.size)}
		meta = acMeta{}
		statuses = map[string][]string{}
		return DecodeObject(d, map[string]func(*json.Decoder) error{
			"contacts": func(d *json.Decoder) error {
				return DecodeArray(d, func(d *json.Decoder) error {
					var ac acContact
					if err := d.Decode(&ac); err != nil {
						return eof(err)
					}
					page.Contacts = append(page.Contacts, Contact{ID: ac.ID.String(), Email: ac.Email, UpdatedAt: acTime(ac.Udate)})
					return nil
				})
			},
			"contactLists": func(d *json.Decoder) error {
				return DecodeArray(d, func(d *json.Decoder) error {
					var cl acContactList
					if err := d.Decode(&cl); err != nil {
						return eof(err)
					}
					statuses[cl.Contact.String()] = append(statuses[cl.Contact.String()], cl.Status.String())
					return nil
				})
			},
			"meta": Into(&meta),
		})
	})
	if err != nil {
		return Page{}, err
	}
	n := len(page.Contacts)
	var last int64
	for k := range page.Contacts {
		ct := &page.Contacts[k]
		ct.Status = acStatus(statuses[ct.ID])
		id, err := strconv.ParseInt(ct.ID, 10, 64)
		if err != nil || id <= c.after {
			return Page{}, errors.New("esp: activecampaign: contacts out of id order")
		}
		last = id
	}
	remaining, ok := meta.total()
	if ok {
		page.Total = c.seen + remaining
	}
	if n > 0 && ((ok && remaining > n) || (!ok && n == a.size)) {
		page.Next = Cursor(acCur{after: last, since: c.since, seen: c.seen + n}.String())
	}
	return page, nil
}

func acPerstag(canonical string) string { return strings.ToUpper(canonical) }

// listFields reads every custom field's id by perstag.
func (a *activeCampaign) listFields(ctx context.Context) (map[string]string, error) {
	ids := map[string]string{}
	for offset := 0; ; {
		var page struct {
			Fields []struct {
				ID      json.Number `json:"id"`
				Perstag string      `json:"perstag"`
			} `json:"fields"`
			Meta acMeta `json:"meta"`
		}
		u := fmt.Sprintf("%s/fields?limit=%d&offset=%d", a.base, acPageMax, offset)
		if err := a.acct.DoJSON(ctx, http.MethodGet, u, a.hdr, nil, Into(&page)); err != nil {
			return nil, err
		}
		for _, f := range page.Fields {
			ids[strings.ToUpper(f.Perstag)] = f.ID.String()
		}
		offset += len(page.Fields)
		total, ok := page.Meta.total()
		if len(page.Fields) == 0 || (ok && offset >= total) || (!ok && len(page.Fields) < acPageMax) {
			return ids, nil
		}
	}
}

// fieldIDs returns the ids of the mf_* custom fields by perstag, creating the missing ones (cached per
// adapter once all exist).
func (a *activeCampaign) fieldIDs(ctx context.Context) (map[string]string, error) {
	a.mu.Lock()
	have := a.fields
	a.mu.Unlock()
	if have != nil {
		return have, nil
	}
	ids, err := a.listFields(ctx)
	if err != nil {
		return nil, err
	}
	for _, name := range FieldNames {
		tag := acPerstag(name)
		if ids[tag] != "" {
			continue
		}
		var created struct {
			Field struct {
				ID json.Number `json:"id"`
			} `json:"field"`
		}
		body := map[string]any{"field": map[string]any{"type": "text", "title": name, "perstag": tag, "visible": 1}}
		err := a.acct.DoJSON(ctx, http.MethodPost, a.base+"/fields", a.hdr, body, Into(&created))
		if errors.Is(err, ErrBadRequest) { // the perstag is taken: created meanwhile by another run
			again, err2 := a.listFields(ctx)
			if err2 != nil {
				return nil, err2
			}
			if again[tag] == "" {
				return nil, err
			}
			ids[tag] = again[tag]
			continue
		}
		if err != nil {
			return nil, err
		}
		ids[tag] = created.Field.ID.String()
	}
	a.mu.Lock()
	a.fields = ids
	a.mu.Unlock()
	return ids, nil
}

func (a *activeCampaign) EnsureFields(ctx context.Context) error {
	_, err := a.fieldIDs(ctx)
	return err
}

func acContactID(c Contact) (string, error) {
	if _, err := strconv.ParseInt(c.ID, 10, 64); err != nil {
		return "", errors.New("esp: activecampaign: contact without id")
	}
	return c.ID, nil
}

func (a *activeCampaign) SetFields(ctx context.Context, c Contact, f Fields) error {
	id, err := acContactID(c)
	if err != nil {
		return err
	}
	ids, err := a.fieldIDs(ctx)
	if err != nil {
		return err
	}
	for _, name := range sortedKeys(f) {
		fid := ids[acPerstag(name)]
		if fid == "" {
			return fmt.Errorf("esp: activecampaign: no custom field for %s", name)
		}
		body := map[string]any{"fieldValue": map[string]any{"contact": id, "field": fid, "value": f[name]}}
		if err := a.acct.DoJSON(ctx, http.MethodPost, a.base+"/fieldValues", a.hdr, body, nil); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys(f Fields) []string {
	var out []string
	for _, n := range FieldNames {
		if _, ok := f[n]; ok {
			out = append(out, n)
		}
	}
	for k := range f {
		if !contains(FieldNames, k) {
			out = append(out, k)
		}
	}
	return out
}

// tagID finds the tag by name (exact match among the search results) or creates it.
func (a *activeCampaign) tagID(ctx context.Context, tag string) (string, error) {
	return a.tags.resolve(tag, func() (string, error) {
		var found struct {
			Tags []struct {
				ID  json.Number `json:"id"`
				Tag string      `json:"tag"`
			} `json:"tags"`
		}
		q := url.Values{"search": {tag}, "limit": {strconv.Itoa(acPageMax)}}
		if err := a.acct.DoJSON(ctx, http.MethodGet, a.base+"/tags?"+q.Encode(), a.hdr, nil, Into(&found)); err != nil {
			return "", err
		}
		id := ""
		for _, t := range found.Tags {
			if t.Tag == tag {
				id = t.ID.String()
			}
		}
		return id, nil
	}, func() (string, error) {
		var created struct {
			Tag struct {
				ID json.Number `json:"id"`
			} `json:"tag"`
		}
		body := map[string]any{"tag": map[string]any{"tag": tag, "tagType": "contact", "description": "autofloss"}}
		if err := a.acct.DoJSON(ctx, http.MethodPost, a.base+"/tags", a.hdr, body, Into(&created)); err != nil {
			return "", err
		}
		return created.Tag.ID.String(), nil
	})
}

func (a *activeCampaign) AddTag(ctx context.Context, c Contact, tag string) error {
	id, err := acContactID(c)
	if err != nil {
		return err
	}
	tid, err := a.tagID(ctx, tag)
	if err != nil {
		return err
	}
	body := map[string]any{"contactTag": map[string]any{"contact": id, "tag": tid}}
	return a.acct.DoJSON(ctx, http.MethodPost, a.base+"/contactTags", a.hdr, body, nil)
}

func (a *activeCampaign) Unsubscribe(ctx context.Context, c Contact) error {
	id, err := acContactID(c)
	if err != nil {
		return err
	}
	var have struct {
		ContactLists []acContactList `json:"contactLists"`
	}
	if err := a.acct.DoJSON(ctx, http.MethodGet, a.base+"/contacts/"+id+"/contactLists", a.hdr, nil, Into(&have)); err != nil {
		return err
	}
	for _, cl := range have.ContactLists {
		if cl.Status.String() == "2" {
			continue
		}
		body := map[string]any{"contactList": map[string]any{"list": cl.List.String(), "contact": id, "status": 2}}
		if err := a.acct.DoJSON(ctx, http.MethodPost, a.base+"/contactLists", a.hdr, body, nil); err != nil {
			return err
		}
	}
	return nil
}

func (a *activeCampaign) Delete(ctx context.Context, c Contact) (json.RawMessage, error) {
	id, err := acContactID(c)
	if err != nil {
		return nil, err
	}
	snap, err := a.acct.snapshotDelete(ctx, a.base+"/contacts/"+id, a.base+"/contacts/"+id, a.hdr, false)
	if err != nil {
		return nil, err
	}
	return snap, nil
}
