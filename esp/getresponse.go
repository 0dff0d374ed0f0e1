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

// GetResponse (esp-platforms.md § getresponse). A campaign is a list and a contact belongs to one campaign
// (the same address in two campaigns is two contacts), so Contacts pages GET /v3/contacts account-wide with
// page/perPage (1000) and reports each contact with ListID = campaign.campaignId. The body is a bare array;
// paging state comes in the TotalPages / CurrentPage / TotalCount headers, so the last page is known without
// an extra request and Page.Total is TotalCount. Incremental reads use query[changedOn][from] sorted by
// changedOn ascending (a contact changed during the run moves behind the offset: read twice at worst, never
// skipped). GET /v3/contacts lists only subscribed contacts (GetResponse has no status field), so every
// contact read is StatusSubscribed.
//
// Writes: fields are custom fields named after the canonical mf_* names (POST /v3/custom-fields once,
// then POST /v3/contacts/{id}/custom-fields with their ids); tags must match ^[_a-zA-Z0-9]{2,64}$, so a tag
// is stored under GetResponseTagName (e.g. `mf_failed - typo` → `mf_failed_typo`). GetResponse has no
// separate unsubscribe: DELETE /v3/contacts/{id} with messageId unsubscribes "as if the contact clicked the
// unsubscribe link" of that message, so Unsubscribe passes the id of a newsletter of the contact's campaign
// (GET /v3/newsletters); a campaign that never had a newsletter leaves only the plain DELETE, which removes
// the contact (the spec page's "unsubscribe and delete = DELETE"). Delete is the plain DELETE after a GET
// snapshot.

const (
	getresponseBase    = "https://api.getresponse.com" // the override replaces this host; paths start /v3
	getresponsePageMax = 1000
	getresponseTime    = "2006-01-02T15:04:05-0700"
)

// grCursors are this adapter's cursors: "gr1:…" (see cursorCodec).
var grCursors = cursorCodec{platform: "getresponse", prefix: "gr1:"}

type getresponse struct {
	base string
	hdr  http.Header
	acct *Account
	size int
	caps Capabilities

	mu       sync.Mutex
	fieldIDs map[string]string // custom field name → id
	tagIDs   idsByName         // tag name → id
	messages map[string]string // campaign id → a newsletter id ("" = none)
}

func newGetresponse(cfg Config) (Adapter, error) {
	base := cfg.baseURL(getresponseBase)
	key := cfg.Credentials["api_key"]
	h := http.Header{}
	h.Set("X-Auth-Token", "api-key "+key)
	return &getresponse{
		base: base + "/v3", hdr: h,
		acct:     cfg.Client.Account("getresponse", key, cfg.Platform.Limits, GetResponseThrottle),
		size:     cfg.Options.pageSize("getresponse", getresponsePageMax),
		caps:     cfg.Platform.Capabilities,
		fieldIDs: map[string]string{}, messages: map[string]string{},
	}, nil
}

func (g *getresponse) Capabilities() Capabilities { return g.caps }

// GetResponseTagName turns a tag into a valid GetResponse tag name (^[_a-zA-Z0-9]{2,64}$): every run of
// other characters becomes one '_', cut to 64 characters.
func GetResponseTagName(tag string) string {
	var b strings.Builder
	under := false
	for _, r := range tag {
		ok := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		switch {
		case ok:
			b.WriteRune(r)
			under = r == '_'
		case !under:
			b.WriteByte('_')
			under = true
		}
	}
	s := b.String()
	if len(s) > 64 {
		s = s[:64]
	}
	for len(s) < 2 {
		s += "_"
	}
	return s
}

// pages reads a small bare-array collection page by page (TotalPages header) and hands each element to
// each, after the page arrived whole (a retried page is decoded afresh).
func (g *getresponse) pages(ctx context.Context, path string, q url.Values, each func(json.RawMessage) error) error {
	for page := 1; ; page++ {
		q.Set("page", strconv.Itoa(page))
		q.Set("perPage", "1000")
		var totalPages int
		var items []json.RawMessage
		err := g.acct.Do(ctx, Request{Method: http.MethodGet, URL: g.base + path + "?" + q.Encode(), Header: g.jsonHeader()}, func(r *http.Response) error {
			totalPages, _ = strconv.Atoi(r.Header.Get("TotalPages"))
			items = nil
			return eof(NewDecoder(r.Body).Decode(&items))
		})
		if err != nil {
			return err
		}
		for _, it := range items {
			if err := each(it); err != nil {
				return err
			}
		}
		if page >= totalPages || len(items) == 0 {
			return nil
		}
	}
}

func (g *getresponse) jsonHeader() http.Header {
	h := g.hdr.Clone()
	h.Set("Accept", "application/json")
	return h
}

func (g *getresponse) Lists(ctx context.Context) ([]List, error) {
	var out []List
	err := g.pages(ctx, "/campaigns", url.Values{"fields": {"campaignId,name"}}, func(m json.RawMessage) error {
		var c struct {
			ID   string `json:"campaignId"`
			Name string `json:"name"`
		}
		if err := json.Unmarshal(m, &c); err != nil {
			return err
		}
		out = append(out, List{ID: c.ID, Name: c.Name})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// grCursor: page to read next and the since filter (Unix seconds, 0 = full read).
func parseGRCursor(s string) (page int, since int64, err error) {
	if err := grCursors.decode(s, &page, &since); err != nil {
		return 0, 0, err
	}
	if page < 1 || since < 0 {
		return 0, 0, grCursors.malformed()
	}
	return page, since, nil
}

func (g *getresponse) Contacts(ctx context.Context, cursor Cursor, since time.Time) (Page, error) {
	page, sinceUnix := 1, int64(0)
	if cursor != "" {
		var err error
		if page, sinceUnix, err = parseGRCursor(string(cursor)); err != nil {
			return Page{}, err
		}
	} else if !since.IsZero() {
		sinceUnix = max(since.Unix(), 1)
	}
	q := url.Values{}
	q.Set("page", strconv.Itoa(page))
	q.Set("perPage", strconv.Itoa(g.size))
	q.Set("fields", "contactId,email,changedOn,createdOn,campaign")
	if sinceUnix != 0 {
		q.Set("query[changedOn][from]", time.Unix(sinceUnix, 0).UTC().Format(getresponseTime))
		q.Set("sort[changedOn]", "ASC")
	} else {
		q.Set("sort[createdOn]", "ASC")
	}
	var out Page
	var totalPages int
	err := g.acct.Do(ctx, Request{Method: http.MethodGet, URL: g.base + "/contacts?" + q.Encode(), Header: g.jsonHeader()}, func(r *http.Response) error {
		out = Page{Total: -1, Contacts: make([]Contact, 0, g.size)}
		totalPages, _ = strconv.Atoi(r.Header.Get("TotalPages"))
		if n, err := strconv.Atoi(r.Header.Get("TotalCount")); err == nil {
			out.Total = n
		}
		return DecodeArray(NewDecoder(r.Body), func(d *json.Decoder) error {
			var c struct {
				ID        string `json:"contactId"`
				Email     string `json:"email"`
				ChangedOn string `json:"changedOn"`
				CreatedOn string `json:"createdOn"`
				Campaign  struct {
					ID string `json:"campaignId"`
				} `json:"campaign"`
			}
			if err := d.Decode(&c); err != nil {
				return eof(err)
			}
			ct := Contact{ID: c.ID, ListID: c.Campaign.ID, Email: c.Email, Status: StatusSubscribed}
			for _, s := range []string{c.ChangedOn, c.CreatedOn} {
				if t, err := time.Parse(getresponseTime, s); err == nil {
					ct.UpdatedAt = t
					break
				}
			}
			out.Contacts = append(out.Contacts, ct)
			return nil
		})
	})
	if err != nil {
		return Page{}, err
	}
	if page < totalPages && len(out.Contacts) > 0 {
		out.Next = Cursor(grCursors.encode(page+1, sinceUnix))
	}
	return out, nil
}

func (g *getresponse) contact(c Contact) (string, error) {
	if c.ID == "" {
		return "", errors.New("esp: getresponse: contact without id")
	}
	return g.base + "/contacts/" + url.PathEscape(c.ID), nil
}

// loadFields fills the custom-field id cache.
func (g *getresponse) loadFields(ctx context.Context) (map[string]string, error) {
	ids := map[string]string{}
	err := g.pages(ctx, "/custom-fields", url.Values{"fields": {"customFieldId,name"}}, func(m json.RawMessage) error {
		var f struct {
			ID   string `json:"customFieldId"`
			Name string `json:"name"`
		}
		if err := json.Unmarshal(m, &f); err != nil {
			return err
		}
		ids[f.Name] = f.ID
		return nil
	})
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	for k, v := range ids {
		g.fieldIDs[k] = v
	}
	g.mu.Unlock()
	return ids, nil
}

func (g *getresponse) EnsureFields(ctx context.Context) error {
	have, err := g.loadFields(ctx)
	if err != nil {
		return err
	}
	for _, name := range FieldNames {
		if have[name] != "" {
			continue
		}
		var created struct {
			ID string `json:"customFieldId"`
		}
		body := map[string]any{"name": name, "type": "text", "hidden": "false", "values": []string{}}
		err := g.acct.DoJSON(ctx, http.MethodPost, g.base+"/custom-fields", g.hdr, body, Into(&created))
		if errors.Is(err, ErrBadRequest) { // created meanwhile by another run
			continue
		}
		if err != nil {
			return err
		}
		g.mu.Lock()
		g.fieldIDs[name] = created.ID
		g.mu.Unlock()
	}
	return nil
}

func (g *getresponse) SetFields(ctx context.Context, c Contact, f Fields) error {
	u, err := g.contact(c)
	if err != nil {
		return err
	}
	g.mu.Lock()
	missing := false
	for name := range f {
		missing = missing || g.fieldIDs[name] == ""
	}
	g.mu.Unlock()
	if missing {
		if _, err := g.loadFields(ctx); err != nil {
			return err
		}
	}
	type value struct {
		ID    string   `json:"customFieldId"`
		Value []string `json:"value"`
	}
	vals := make([]value, 0, len(f))
	g.mu.Lock()
	for name, v := range f {
		id := g.fieldIDs[name]
		if id == "" {
			g.mu.Unlock()
			return fmt.Errorf("esp: getresponse: custom field %q does not exist (EnsureFields first)", name)
		}
		vals = append(vals, value{ID: id, Value: []string{v}})
	}
	g.mu.Unlock()
	return g.acct.DoJSON(ctx, http.MethodPost, u+"/custom-fields", g.hdr, map[string]any{"customFieldValues": vals}, nil)
}

// tagID finds the tag named name, creating it when missing.
func (g *getresponse) tagID(ctx context.Context, name string) (string, error) {
	find := func() (string, error) {
		id := ""
		err := g.pages(ctx, "/tags", url.Values{"query[name]": {name}}, func(m json.RawMessage) error {
			var t struct {
				ID   string `json:"tagId"`
				Name string `json:"name"`
			}
			if err := json.Unmarshal(m, &t); err != nil {
				return err
			}
			if t.Name == name {
				id = t.ID
			}
			return nil
		})
		return id, err
	}
	return g.tagIDs.resolve(name, find, func() (string, error) {
		var created struct {
			ID string `json:"tagId"`
		}
		id := ""
		err := g.acct.DoJSON(ctx, http.MethodPost, g.base+"/tags", g.hdr, map[string]string{"name": name}, Into(&created))
		switch {
		case errors.Is(err, ErrBadRequest): // created meanwhile: look again
			if id, err = find(); err != nil {
				return "", err
			}
		case err != nil:
			return "", err
		default:
			id = created.ID
		}
		if id == "" {
			return "", errors.New("esp: getresponse: tag could not be created")
		}
		return id, nil
	})
}

func (g *getresponse) AddTag(ctx context.Context, c Contact, tag string) error {
	u, err := g.contact(c)
	if err != nil {
		return err
	}
	id, err := g.tagID(ctx, GetResponseTagName(tag))
	if err != nil {
		return err
	}
	return g.acct.DoJSON(ctx, http.MethodPost, u+"/tags", g.hdr, map[string]any{"tags": []map[string]string{{"tagId": id}}}, nil)
}

// message returns the id of a newsletter of campaign ("" when it has none).
func (g *getresponse) message(ctx context.Context, campaign string) (string, error) {
	g.mu.Lock()
	id, ok := g.messages[campaign]
	g.mu.Unlock()
	if ok {
		return id, nil
	}
	var list []struct {
		ID string `json:"newsletterId"`
	}
	q := url.Values{"query[campaignId]": {campaign}, "perPage": {"1"}, "fields": {"newsletterId"}}
	if err := g.acct.DoJSON(ctx, http.MethodGet, g.base+"/newsletters?"+q.Encode(), g.hdr, nil, Into(&list)); err != nil {
		return "", err
	}
	if len(list) > 0 {
		id = list[0].ID
	}
	g.mu.Lock()
	g.messages[campaign] = id
	g.mu.Unlock()
	return id, nil
}

func (g *getresponse) Unsubscribe(ctx context.Context, c Contact) error {
	u, err := g.contact(c)
	if err != nil {
		return err
	}
	if c.ListID != "" {
		msg, err := g.message(ctx, c.ListID)
		if err != nil {
			return err
		}
		if msg != "" {
			u += "?messageId=" + url.QueryEscape(msg)
		}
	}
	err = g.acct.DoJSON(ctx, http.MethodDelete, u, g.hdr, nil, nil)
	if errors.Is(err, ErrNotFound) { // already gone: as unsubscribed as it gets
		return nil
	}
	return err
}

func (g *getresponse) Delete(ctx context.Context, c Contact) (json.RawMessage, error) {
	u, err := g.contact(c)
	if err != nil {
		return nil, err
	}
	snap, err := g.acct.snapshotDelete(ctx, u, u, g.hdr, false)
	if err != nil {
		return nil, err
	}
	return snap, nil
}
