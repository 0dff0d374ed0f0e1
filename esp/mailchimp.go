package esp

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/autofloss/autofloss/esp/internal/jsonw"
)

// Mailchimp (esp-platforms.md § mailchimp). Contacts are read audience by audience with offset paging
// (count 1000); a contact in two audiences comes twice, with its ListID, because writes are per audience
// member. The cursor encodes the audience (index and id) and the offset, so a fresh adapter resumes.
//
// Offset paging is not snapshot-consistent, and the worker writes back between pages, so the adapter reads
// in an order where its own writes cannot make it skip anyone:
//   - full reads use the default member order, which writes do not change;
//   - incremental reads (since_last_changed) sort by last_changed DESCENDING: a contact written (or changed
//     by anyone) during the run moves to the front, before the offset, so at worst a few are read twice
//     (harmless: results are reused and write-backs are idempotent), never skipped;
//   - a Delete (archive) removes a member before the offset; the adapter remembers how many it archived per
//     audience and moves the next offset back by that many.
// Archives made by someone else during a full read can still shift a contact out of this run; the next run
// sees it.
//
// Statuses: cleaned → bounced; unsubscribed and archived → unsubscribed; subscribed, pending and
// transactional → subscribed. Mailchimp records abuse complaints as unsubscribes, so complained never occurs.

const (
	mailchimpPageMax = 1000
)

// mcCursors are this adapter's cursors: "m1:…" (see cursorCodec).
var mcCursors = cursorCodec{platform: "mailchimp", prefix: "m1:"}

// mailchimpMergeTags maps the canonical fields to merge tags (at most 10 upper-case characters).
var mailchimpMergeTags = map[string]string{
	FieldPassed:     "MF_PASSED",
	FieldReason:     "MF_REASON",
	FieldMode:       "MF_MODE",
	FieldFlossedOn:  "MF_FLOSSED",
	FieldStatus:     "MF_STATUS",
	FieldFixed:      "MF_FIXED",
	FieldSuggestion: "MF_SUGGEST",
}

// MailchimpMergeTag returns the merge tag of a canonical field (or of any other name: upper-cased, letters,
// digits and '_' kept, cut to 10 characters).
func MailchimpMergeTag(name string) string {
	if t, ok := mailchimpMergeTags[name]; ok {
		return t
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(name) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		}
		if b.Len() == 10 {
			break
		}
	}
	return b.String()
}

type mailchimp struct {
	base string
	hdr  http.Header
	acct *Account
	size int
	caps Capabilities

	mu       sync.Mutex
	lists    listCache
	archived map[string]int // per audience: members this adapter archived since its last page there
}

func newMailchimp(cfg Config) (Adapter, error) {
	key := cfg.Credentials["api_key"]
	dc, ok := MailchimpDC(key)
	if !ok {
		return nil, &CredentialError{Field: "api_key", Code: "invalid_credentials_format", Reason: "must end in -<dc>"}
	}
	base := cfg.baseURL("https://" + dc + ".api.mailchimp.com")
	h := http.Header{}
	h.Set("Authorization", "Basic "+basicAuth("autofloss", key))
	return &mailchimp{
		base: base + "/3.0", hdr: h,
		acct: cfg.Client.Account("mailchimp", key, cfg.Platform.Limits, MailchimpThrottle),
		size: cfg.Options.pageSize("mailchimp", mailchimpPageMax),
		caps: cfg.Platform.Capabilities,
	}, nil
}

func basicAuth(user, pass string) string {
	r := &http.Request{Header: http.Header{}}
	r.SetBasicAuth(user, pass)
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

func (m *mailchimp) Capabilities() Capabilities { return m.caps }

func (m *mailchimp) Lists(ctx context.Context) ([]List, error) {
	var out []List
	for offset := 0; ; {
		var page struct {
			Lists []struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"lists"`
			Total int `json:"total_items"`
		}
		u := fmt.Sprintf("%s/lists?count=%d&offset=%d&fields=lists.id,lists.name,total_items", m.base, mailchimpPageMax, offset)
		if err := m.acct.DoJSON(ctx, http.MethodGet, u, m.hdr, nil, Into(&page)); err != nil {
			return nil, err
		}
		for _, l := range page.Lists {
			out = append(out, List{ID: l.ID, Name: l.Name})
		}
		offset += len(page.Lists)
		if len(page.Lists) == 0 || offset >= page.Total {
			break
		}
	}
	return m.lists.remember(out), nil
}

// mcCursor is the decoded resume point.
type mcCursor struct {
	list   int
	listID string
	offset int
	since  int64 // Unix seconds of since_last_changed; 0 = full read
}

func (c mcCursor) String() string { return mcCursors.encode(c.list, c.listID, c.offset, c.since) }

func parseMCCursor(s string) (mcCursor, error) {
	var c mcCursor
	if err := mcCursors.decode(s, &c.list, &c.listID, &c.offset, &c.since); err != nil {
		return mcCursor{}, err
	}
	if c.list < 0 || c.offset < 0 {
		return mcCursor{}, mcCursors.malformed()
	}
	return c, nil
}

// mcKey matches a JSON key as encoding/json matches struct fields: exactly, else case-insensitively.
func mcKey(k []byte, name string) bool {
	return string(k) == name || len(k) == len(name) && strings.EqualFold(string(k), name)
}

// scanMCMember reads one member of a page (an object; null is an empty member, as encoding/json decodes
// it): id, email_address, status (mcStatus) and last_changed (RFC 3339; unparseable: no UpdatedAt); every
// other field is skipped.
func scanMCMember(s *scanner) (Contact, error) {
	ct := Contact{Status: StatusSubscribed}
	err := s.object(func(k []byte) error {
		switch {
		case mcKey(k, "id"):
			return s.strInto(&ct.ID)
		case mcKey(k, "email_address"):
			return s.strInto(&ct.Email)
		case mcKey(k, "status"):
			b, null, err := s.strBytes()
			if err == nil && !null {
				ct.Status = mcStatus(string(b))
			}
			return err
		case mcKey(k, "last_changed"):
			b, null, err := s.strBytes()
			if err == nil && !null {
				ct.UpdatedAt = time.Time{}
				if t, err := time.Parse(time.RFC3339, string(b)); err == nil {
					ct.UpdatedAt = t
				}
			}
			return err
		}
		return s.skip()
	})
	return ct, err
}

func mcStatus(s string) Status {
	switch s {
	case "cleaned":
		return StatusBounced
	case "unsubscribed", "archived":
		return StatusUnsubscribed
	}
	return StatusSubscribed
}

func (m *mailchimp) Contacts(ctx context.Context, cursor Cursor, since time.Time) (Page, error) {
	lists, err := m.lists.get(ctx, m.Lists)
	if err != nil {
		return Page{}, err
	}
	var c mcCursor
	if cursor == "" {
		if !since.IsZero() {
			c.since = max(since.Unix(), 1)
		}
	} else if c, err = parseMCCursor(string(cursor)); err != nil {
		return Page{}, err
	}
	// Find the cursor's audience again (audiences may have been added or removed since).
	if c.listID != "" {
		var found bool
		if c.list, found = relocateList(lists, c.list, c.listID); !found {
			c.offset = 0 // the audience is gone: continue with the one now at its index
		}
	}
	if c.list >= len(lists) {
		return Page{Total: -1}, nil
	}
	l := lists[c.list]
	m.mu.Lock()
	if d := m.archived[l.ID]; d > 0 && cursor != "" {
		c.offset = max(c.offset-d, 0)
	}
	m.archived = nil // archives always concern the page read just before this one
	m.mu.Unlock()
	q := url.Values{}
	q.Set("count", strconv.Itoa(m.size))
	q.Set("offset", strconv.Itoa(c.offset))
	q.Set("exclude_fields", "members._links,members.merge_fields,members.tags,members.stats,members.location,_links")
	if c.since != 0 {
		q.Set("since_last_changed", time.Unix(c.since, 0).UTC().Format(time.RFC3339))
		q.Set("sort_field", "last_changed")
		q.Set("sort_dir", "DESC")
	}
	var page Page
	var total int
	err = m.acct.scanJSON(ctx, http.MethodGet, m.base+"/lists/"+url.PathEscape(l.ID)+"/members?"+q.Encode(), m.hdr, nil, func(s *scanner) error {
		page, total = Page{Total: -1, Contacts: make([]Contact, 0, m.size)}, 0
		return s.object(func(k []byte) error {
			switch {
			case string(k) == "members": // page keys match exactly (DecodeObject did)
				return s.array(func() error {
					ct, err := scanMCMember(s)
					if err != nil {
						return err
					}
					ct.ListID = l.ID
					page.Contacts = append(page.Contacts, ct)
					return nil
				})
			case string(k) == "total_items":
				return s.intInto(&total)
			}
			return s.skip()
		})
	})
	if err != nil {
		return Page{}, err
	}
	n := len(page.Contacts)
	next := mcCursor{list: c.list, listID: l.ID, offset: c.offset + n, since: c.since}
	if n == 0 || c.offset+n >= total {
		next = mcCursor{list: c.list + 1, since: c.since}
		if next.list >= len(lists) {
			return page, nil
		}
		next.listID = lists[next.list].ID
	}
	page.Next = Cursor(next.String())
	return page, nil
}

func (m *mailchimp) member(c Contact) (string, error) {
	if c.ListID == "" {
		return "", errors.New("esp: mailchimp: contact without audience")
	}
	h := c.ID
	if h == "" {
		if c.Email == "" {
			return "", errors.New("esp: mailchimp: contact without id")
		}
		s := md5.Sum([]byte(strings.ToLower(c.Email)))
		h = hex.EncodeToString(s[:])
	}
	return m.base + "/lists/" + url.PathEscape(c.ListID) + "/members/" + url.PathEscape(h), nil
}

func (m *mailchimp) EnsureFields(ctx context.Context) error {
	lists, err := m.Lists(ctx)
	if err != nil {
		return err
	}
	for _, l := range lists {
		var have struct {
			Fields []struct {
				Tag string `json:"tag"`
			} `json:"merge_fields"`
		}
		u := m.base + "/lists/" + url.PathEscape(l.ID) + "/merge-fields?count=1000&fields=merge_fields.tag"
		if err := m.acct.DoJSON(ctx, http.MethodGet, u, m.hdr, nil, Into(&have)); err != nil {
			return err
		}
		exists := map[string]bool{}
		for _, f := range have.Fields {
			exists[f.Tag] = true
		}
		for _, name := range FieldNames {
			tag := MailchimpMergeTag(name)
			if exists[tag] {
				continue
			}
			body := map[string]any{"tag": tag, "name": name, "type": "text", "required": false, "public": false}
			err := m.acct.DoJSON(ctx, http.MethodPost, m.base+"/lists/"+url.PathEscape(l.ID)+"/merge-fields", m.hdr, body, nil)
			if err != nil && !errors.Is(err, ErrBadRequest) { // 400: created meanwhile by another run
				return err
			}
		}
	}
	return nil
}

func (m *mailchimp) SetFields(ctx context.Context, c Contact, f Fields) error {
	u, err := m.member(c)
	if err != nil {
		return err
	}
	return m.acct.DoJSON(ctx, http.MethodPatch, u, m.hdr, mcFieldsBody(f), nil)
}

// mcFieldsBody is {"merge_fields":{…}} with the merge tags sorted, byte for byte what encoding/json writes
// for map[string]any{"merge_fields": map[string]string{…}} (the write-back is the hottest request).
func mcFieldsBody(f Fields) rawJSON {
	mf := make(map[string]string, len(f))
	for k, v := range f {
		mf[MailchimpMergeTag(k)] = v
	}
	b := make([]byte, 0, 32+len(f)*48)
	b = append(b, `{"merge_fields":`...)
	b = jsonw.StringMap(b, mf)
	return append(b, '}')
}

func (m *mailchimp) AddTag(ctx context.Context, c Contact, tag string) error {
	u, err := m.member(c)
	if err != nil {
		return err
	}
	body := map[string]any{"tags": []any{map[string]string{"name": tag, "status": "active"}}}
	return m.acct.DoJSON(ctx, http.MethodPost, u+"/tags", m.hdr, body, nil)
}

func (m *mailchimp) Unsubscribe(ctx context.Context, c Contact) error {
	u, err := m.member(c)
	if err != nil {
		return err
	}
	return m.acct.DoJSON(ctx, http.MethodPatch, u, m.hdr, map[string]any{"status": "unsubscribed"}, nil)
}

// Delete archives the member in its audience (DELETE …/members/{hash}); the snapshot is the member as
// GET returned it. Permanent deletion is not used: archiving is reversible, as the design asks.
func (m *mailchimp) Delete(ctx context.Context, c Contact) (json.RawMessage, error) {
	u, err := m.member(c)
	if err != nil {
		return nil, err
	}
	snap, err := m.acct.snapshotDelete(ctx, u+"?exclude_fields=_links", u, m.hdr, false)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	if m.archived == nil {
		m.archived = map[string]int{}
	}
	m.archived[c.ListID]++
	m.mu.Unlock()
	return snap, nil
}
