package esp

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Iterable (esp-platforms.md § iterable; official Swagger in esptest/openapi/iterable). `Api-Key: <key>` on
// every call; region eu uses https://api.eu.iterable.com.
//
// Contacts come from the user export GET /api/export/data.json?dataTypeName=user&range=All, a stream of
// newline-delimited JSON (one user per line, 4 requests per minute). The adapter never holds the export:
// it decodes it line by line and stops reading after one page.
//
// Paging the stream (a decision; Iterable has no export cursor):
//   - A read is pinned at its start: every request carries endDateTime = the start of the run (rounded up to
//     the second). Users changed during the run — including by our own write-backs — leave the window, so a
//     read always ends; a later run (full, or incremental since this run's start) sees them.
//   - Each page is one export request starting at startDateTime = S, the profileUpdatedAt second of the last
//     user handed out, skipping the K users of second S already handed out, then reading up to the page
//     size (10,000 users; a page is memory, not requests) plus one line of look-ahead to know whether more
//     follow. The connection is closed once the page is full.
//   - This relies on the export being ordered by profileUpdatedAt (ties in a stable order) — unconfirmed,
//     mirrored by the fake, and kept in this one place.
//   - Users of second S that this adapter writes back or deletes after the page leave the window, so the
//     next page skips fewer: the adapter remembers the page's tied users and subtracts those it wrote since.
//     A fresh adapter resuming a stored cursor cannot know about writes made by the process before it; the
//     worst case is a tied user missed by this run (the next run sees it).
//
// Cursor: "i1:<endDateTime Unix s>:<S Unix s, 0 = from the beginning>:<K>". Incremental reads start at
// startDateTime = since (to the second: a user changed earlier in that same second is read too, which is
// harmless). A page of 10,000 therefore costs one export request, the minimum the 4-per-minute limit allows.
//
// Exports get their own rate budget on the shared client (the account key with an "export" suffix: 3 per
// minute + 1 burst by default, never over 4 in a rolling minute); other endpoints share the account's
// budget. ClientOptions.Limits["iterable"], when set, replaces both (tests).
//
// Contacts are account-wide (ListID "", ID = the email). Status: a user with unsubscribedChannelIds is
// unsubscribed, otherwise subscribed (the profile carries no bounce or complaint state). Writes: fields =
// POST /api/users/update {"email","dataFields"} (canonical mf_* names); no tags → a data field named after
// the tag set to true; unsubscribe = POST /api/lists/unsubscribe {listId: the account's first list,
// subscribers:[{email}], channelUnsubscribe: true} (a channel-wide unsubscribe; the endpoint requires a
// list); delete = GET /api/users/{email} (the snapshot; an empty answer means the user is gone) then
// DELETE /api/users/{email}. Throttling is 429 with "code":"RateLimitExceeded" (IterableThrottle: Retry-After
// is not trusted, the client backs off exponentially).

const (
	iterableBase     = "https://api.iterable.com"
	iterableBaseEU   = "https://api.eu.iterable.com"
	iterablePageMax  = 10000
	iterableTimeForm = "2006-01-02 15:04:05"
)

// itCursors are this adapter's cursors: "i1:…" (see cursorCodec).
var itCursors = cursorCodec{platform: "iterable", prefix: "i1:"}

// iterableExportLimits keep exports under 4 per rolling minute (burst + rate × 60 s ≤ 4).
var iterableExportLimits = Limits{Rate: 3.0 / 60, Burst: 1}

type iterable struct {
	base   string
	hdr    http.Header
	acct   *Account
	export *Account
	size   int
	caps   Capabilities
	now    func() time.Time

	mu    sync.Mutex
	lists []List
	ties  map[Cursor]*iterableTies // per issued cursor: the tied users it skips
}

// iterableTies are the users of second S a cursor counts in K, and how many of them were written since.
type iterableTies struct {
	ids     map[string]bool
	written int
}

func newIterable(cfg Config) (Adapter, error) {
	base := iterableBase
	if cfg.Credentials["region"] == "eu" {
		base = iterableBaseEU
	}
	base = cfg.baseURL(base)
	key := cfg.Credentials["api_key"]
	h := http.Header{}
	h.Set("Api-Key", key)
	return &iterable{
		base: base, hdr: h,
		acct:   cfg.Client.Account("iterable", key, cfg.Platform.Limits, IterableThrottle),
		export: cfg.Client.Account("iterable", key+"\x00export", iterableExportLimits, IterableThrottle),
		size:   cfg.Options.pageSize("iterable", iterablePageMax),
		caps:   cfg.Platform.Capabilities,
		now:    time.Now,
		ties:   map[Cursor]*iterableTies{},
	}, nil
}

func (it *iterable) Capabilities() Capabilities { return it.caps }

func (it *iterable) Lists(ctx context.Context) ([]List, error) {
	var out []List
	err := it.acct.DoJSON(ctx, http.MethodGet, it.base+"/api/lists", it.hdr, nil, func(d *json.Decoder) error {
		out = nil
		return DecodeObject(d, map[string]func(*json.Decoder) error{
			"lists": func(d *json.Decoder) error {
				return DecodeArray(d, func(d *json.Decoder) error {
					var l struct {
						ID   json.Number `json:"id"`
						Name string      `json:"name"`
					}
					if err := d.Decode(&l); err != nil {
						return eof(err)
					}
					out = append(out, List{ID: l.ID.String(), Name: l.Name})
					return nil
				})
			},
		})
	})
	if err != nil {
		return nil, err
	}
	it.mu.Lock()
	it.lists = out
	it.mu.Unlock()
	return out, nil
}

type itCursor struct {
	end, sec int64
	skip     int
}

func (c itCursor) String() string { return itCursors.encode(c.end, c.sec, c.skip) }

func parseIterableCursor(s string) (itCursor, error) {
	var c itCursor
	if err := itCursors.decode(s, &c.end, &c.sec, &c.skip); err != nil {
		return itCursor{}, err
	}
	if c.end <= 0 || c.sec < 0 || c.skip < 0 {
		return itCursor{}, itCursors.malformed()
	}
	return c, nil
}

// iterableUser is the part of an exported user line the adapter reads.
type iterableUser struct {
	Email            string            `json:"email"`
	ProfileUpdatedAt string            `json:"profileUpdatedAt"`
	Unsubscribed     []json.RawMessage `json:"unsubscribedChannelIds"`
}

// parseIterableTime reads Iterable's "yyyy-MM-dd HH:mm:ss[.SSS] [+00:00]" timestamps.
func parseIterableTime(s string) (time.Time, bool) {
	for _, f := range []string{"2006-01-02 15:04:05.999999999 -07:00", "2006-01-02 15:04:05 -07:00", "2006-01-02 15:04:05.999999999", time.RFC3339Nano} {
		if t, err := time.Parse(f, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

func (it *iterable) Contacts(ctx context.Context, cursor Cursor, since time.Time) (Page, error) {
	var c itCursor
	if cursor == "" {
		c.end = it.now().Unix() + 1
		if !since.IsZero() {
			c.sec = max(since.Unix(), 1)
		}
	} else {
		var err error
		if c, err = parseIterableCursor(string(cursor)); err != nil {
			return Page{}, err
		}
		it.mu.Lock()
		if t := it.ties[cursor]; t != nil {
			c.skip = max(c.skip-t.written, 0)
			delete(it.ties, cursor)
		}
		it.mu.Unlock()
	}
	q := url.Values{}
	q.Set("dataTypeName", "user")
	q.Set("range", "All")
	if c.sec > 0 {
		q.Set("startDateTime", time.Unix(c.sec, 0).UTC().Format(iterableTimeForm))
	}
	q.Set("endDateTime", time.Unix(c.end, 0).UTC().Format(iterableTimeForm))
	for _, f := range []string{"email", "profileUpdatedAt", "unsubscribedChannelIds"} {
		q.Add("onlyFields", f)
	}
	var (
		page Page
		more bool
		next itCursor
		ties map[string]bool
	)
	handle := func(r *http.Response) error {
		page = Page{Total: -1, Contacts: make([]Contact, 0, min(it.size, 1024))}
		more, next, ties = false, itCursor{end: c.end, sec: c.sec}, map[string]bool{}
		d := NewDecoder(r.Body)
		for n := 0; ; n++ {
			var u iterableUser
			if err := d.Decode(&u); err != nil {
				if err == io.EOF {
					return nil // the export ended
				}
				return err // cut off or malformed: the client retries a cut-off body
			}
			if n >= c.skip+len(page.Contacts) && len(page.Contacts) == it.size {
				more = true // look-ahead: one more line exists
				return nil
			}
			t, ok := parseIterableTime(u.ProfileUpdatedAt)
			if !ok {
				return errors.New("esp: iterable: export line without profileUpdatedAt")
			}
			sec := t.Unix()
			if sec != next.sec {
				next.sec, next.skip, ties = sec, 0, map[string]bool{}
			}
			next.skip++
			ties[u.Email] = true
			if n < c.skip {
				continue // handed out by an earlier page
			}
			status := StatusSubscribed
			if len(u.Unsubscribed) > 0 {
				status = StatusUnsubscribed
			}
			page.Contacts = append(page.Contacts, Contact{ID: u.Email, Email: u.Email, Status: status, UpdatedAt: t})
		}
	}
	req := Request{Method: http.MethodGet, URL: it.base + "/api/export/data.json?" + q.Encode(), Header: it.hdr.Clone()}
	req.Header.Set("Accept", "application/x-json-stream")
	if err := it.export.Do(ctx, req, handle); err != nil {
		return Page{}, err
	}
	if !more {
		return page, nil
	}
	page.Next = Cursor(next.String())
	it.mu.Lock()
	if len(it.ties) >= 16 { // abandoned reads: forget the oldest state rather than grow
		for k := range it.ties {
			delete(it.ties, k)
			break
		}
	}
	it.ties[page.Next] = &iterableTies{ids: ties}
	it.mu.Unlock()
	return page, nil
}

// wrote notes a write-back of a user: if it is one of a pending cursor's tied users, it has left the
// export window and that cursor skips one user fewer.
func (it *iterable) wrote(email string) {
	it.mu.Lock()
	defer it.mu.Unlock()
	for _, t := range it.ties {
		if t.ids[email] {
			delete(t.ids, email)
			t.written++
		}
	}
}

func (it *iterable) EnsureFields(context.Context) error { return nil } // data fields are created on first write

func iterableEmail(c Contact) (string, error) {
	e := c.Email
	if e == "" {
		e = c.ID
	}
	if !strings.Contains(e, "@") {
		return "", errors.New("esp: iterable: contact without email")
	}
	return e, nil
}

func (it *iterable) update(ctx context.Context, c Contact, data map[string]any) error {
	email, err := iterableEmail(c)
	if err != nil {
		return err
	}
	body := map[string]any{"email": email, "dataFields": data}
	if err := it.acct.DoJSON(ctx, http.MethodPost, it.base+"/api/users/update", it.hdr, body, nil); err != nil {
		return err
	}
	it.wrote(email)
	return nil
}

func (it *iterable) SetFields(ctx context.Context, c Contact, f Fields) error {
	data := make(map[string]any, len(f))
	for k, v := range f {
		data[k] = v
	}
	return it.update(ctx, c, data)
}

func (it *iterable) AddTag(ctx context.Context, c Contact, tag string) error {
	return it.update(ctx, c, map[string]any{tag: true})
}

func (it *iterable) Unsubscribe(ctx context.Context, c Contact) error {
	email, err := iterableEmail(c)
	if err != nil {
		return err
	}
	it.mu.Lock()
	lists := it.lists
	it.mu.Unlock()
	if lists == nil {
		if lists, err = it.Lists(ctx); err != nil {
			return err
		}
	}
	if len(lists) == 0 {
		return errors.New("esp: iterable: the account has no list to unsubscribe through")
	}
	id, err := strconv.ParseInt(lists[0].ID, 10, 64)
	if err != nil {
		return errors.New("esp: iterable: non-numeric list id")
	}
	body := map[string]any{"listId": id, "subscribers": []any{map[string]string{"email": email}}, "channelUnsubscribe": true}
	if err := it.acct.DoJSON(ctx, http.MethodPost, it.base+"/api/lists/unsubscribe", it.hdr, body, nil); err != nil {
		return err
	}
	it.wrote(email)
	return nil
}

func (it *iterable) Delete(ctx context.Context, c Contact) (json.RawMessage, error) {
	email, err := iterableEmail(c)
	if err != nil {
		return nil, err
	}
	u := it.base + "/api/users/" + url.PathEscape(email)
	var snap json.RawMessage
	if err := it.acct.DoJSON(ctx, http.MethodGet, u, it.hdr, nil, ReadRaw(&snap)); err != nil {
		return nil, err
	}
	var probe struct {
		User *struct {
			Email string `json:"email"`
		} `json:"user"`
	}
	if json.Unmarshal(snap, &probe) != nil || probe.User == nil || probe.User.Email == "" {
		// Iterable answers {} for a user it does not have.
		return nil, &Error{Platform: "iterable", Method: http.MethodGet, Path: RedactPath(u), Status: http.StatusOK, Kind: ErrNotFound}
	}
	if err := it.acct.DoJSON(ctx, http.MethodDelete, u, it.hdr, nil, nil); err != nil {
		return nil, err
	}
	it.wrote(email)
	return snap, nil
}
