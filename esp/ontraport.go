package esp

import (
	"bytes"
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

// Ontraport (esp-platforms.md § ontraport). Every call carries `Api-Appid` and `Api-Key`; answers are the
// envelope {"code":0,"data":…,"account_id":…}.
//
// Contacts are account-wide (ListID ""). They are read with GET /1/Contacts?start=0&range=50 (range at most
// 50) sorted by id ascending, with a `condition` of `id > <last id read>` (keyset paging expressed through
// the documented condition filter) instead of a growing `start` offset: write-backs and deletions between
// pages (the worker's own, or anyone's) then cannot shift a contact out of the read. Incremental reads add
// `dlm >= <since, Unix seconds>` to the condition (dlm is "date last modified"). The cursor is
// "o1:<since Unix s, 0 = full>:<last id>". There is no total and no end marker: a page shorter than the
// range ends the read, so a read whose size is a multiple of 50 costs one empty page more.
//
// "Lists" are the account's tags (object 14, GET /1/Tags) other than our own `mf_failed - …` tags, after the
// documented validation call GET /1/objects/meta?objectID=0. Ontraport has no custom-field write-back here:
// SetFields writes the tag `mf_failed - <reason>` (nothing when there is no reason); AddTag looks the tag up
// by name (GET /1/Tags with a tag_name condition), creates it when missing (POST /1/Tags), then applies it
// with PUT /1/objects/tag {"objectID":0,"add_list":"<tag id>","ids":"<contact id>"}; tag ids are cached per
// adapter. Unsubscribe sets bulk_mail 0 ("transactional only") with PUT /1/Contacts; Delete reads the
// contact (GET /1/Contact?id=…, the snapshot) then DELETE /1/Contact?id=….
//
// Statuses from bulk_mail: 1, 2 (single / double opt-in) → subscribed; 0 → unsubscribed; -2 (hard bounce) →
// bounced; -5 (under review) and any other negative value → unsubscribed. Ontraport has no spam-complaint
// state of its own, so complained never occurs.
//
// Unconfirmed details (kept here, mirrored by the fake): a missing contact answers 404; the Tags search
// uses the same condition syntax as Contacts; ids and timestamps may come as strings or numbers.

const (
	ontraportBase    = "https://api.ontraport.com"
	ontraportPageMax = 50
)

// opCursors are this adapter's cursors: "o1:…" (see cursorCodec).
var opCursors = cursorCodec{platform: "ontraport", prefix: "o1:"}

type ontraport struct {
	base string
	hdr  http.Header
	acct *Account
	size int
	caps Capabilities

	mu   sync.Mutex
	tags idsByName // tag name → tag id
}

func newOntraport(cfg Config) (Adapter, error) {
	base := cfg.baseURL(ontraportBase)
	app, key := cfg.Credentials["app_id"], cfg.Credentials["api_key"]
	h := http.Header{}
	h.Set("Api-Appid", app)
	h.Set("Api-Key", key)
	return &ontraport{
		base: base + "/1", hdr: h,
		acct: cfg.Client.Account("ontraport", app+"\x00"+key, cfg.Platform.Limits, DefaultThrottle),
		size: cfg.Options.pageSize("ontraport", ontraportPageMax),
		caps: cfg.Platform.Capabilities,
	}, nil
}

func (o *ontraport) Capabilities() Capabilities { return o.caps }

// opString accepts a JSON string or number (Ontraport returns ids and Unix times either way).
type opString string

func (s *opString) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*s = ""
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = opString(v)
		return nil
	}
	*s = opString(b)
	return nil
}

// ontraportCond is one clause of Ontraport's JSON condition filter.
func ontraportCond(field, op string, value any) map[string]any {
	return map[string]any{"field": map[string]string{"field": field}, "op": op, "value": map[string]any{"value": value}}
}

// ontraportWhere joins clauses with "AND" the way the condition syntax expects.
func ontraportWhere(clauses ...map[string]any) string {
	var all []any
	for i, c := range clauses {
		if i > 0 {
			all = append(all, "AND")
		}
		all = append(all, c)
	}
	b, _ := json.Marshal(all)
	return string(b)
}

// data decodes the envelope's data member with fn (the rest is skipped).
func ontraportData(fn func(*json.Decoder) error) func(*json.Decoder) error {
	return func(d *json.Decoder) error {
		return DecodeObject(d, map[string]func(*json.Decoder) error{"data": fn})
	}
}

type ontraportTag struct {
	ID   opString `json:"tag_id"`
	Name string   `json:"tag_name"`
}

func (o *ontraport) Lists(ctx context.Context) ([]List, error) {
	if err := o.acct.DoJSON(ctx, http.MethodGet, o.base+"/objects/meta?objectID=0&format=byId", o.hdr, nil, nil); err != nil {
		return nil, err
	}
	var out []List
	for start := 0; ; start += ontraportPageMax {
		var page []ontraportTag
		u := fmt.Sprintf("%s/Tags?start=%d&range=%d&sort=tag_id&sortDir=asc", o.base, start, ontraportPageMax)
		if err := o.acct.DoJSON(ctx, http.MethodGet, u, o.hdr, nil, ontraportData(Into(&page))); err != nil {
			return nil, err
		}
		for _, t := range page {
			if !strings.HasPrefix(t.Name, FailedTag("")) {
				out = append(out, List{ID: string(t.ID), Name: t.Name})
			}
		}
		if len(page) < ontraportPageMax {
			return out, nil
		}
	}
}

type opCursor struct {
	since int64
	last  int64
}

func parseOntraportCursor(s string) (opCursor, error) {
	var c opCursor
	if err := opCursors.decode(s, &c.since, &c.last); err != nil {
		return opCursor{}, err
	}
	if c.since < 0 || c.last < 0 {
		return opCursor{}, opCursors.malformed()
	}
	return c, nil
}

type ontraportContact struct {
	ID       opString `json:"id"`
	Email    string   `json:"email"`
	DLM      opString `json:"dlm"`
	BulkMail opString `json:"bulk_mail"`
}

func ontraportStatus(bulk string) Status {
	switch bulk {
	case "", "1", "2":
		return StatusSubscribed
	case "-2":
		return StatusBounced
	}
	return StatusUnsubscribed // 0 (transactional only), -5 (under review), anything else not mailable
}

func (o *ontraport) Contacts(ctx context.Context, cursor Cursor, since time.Time) (Page, error) {
	var c opCursor
	if cursor == "" {
		if !since.IsZero() {
			c.since = max(since.Unix(), 1)
		}
	} else {
		var err error
		if c, err = parseOntraportCursor(string(cursor)); err != nil {
			return Page{}, err
		}
	}
	clauses := []map[string]any{ontraportCond("id", ">", c.last)}
	if c.since > 0 {
		clauses = append(clauses, ontraportCond("dlm", ">=", c.since))
	}
	q := url.Values{}
	q.Set("start", "0")
	q.Set("range", strconv.Itoa(o.size))
	q.Set("sort", "id")
	q.Set("sortDir", "asc")
	q.Set("condition", ontraportWhere(clauses...))
	q.Set("listFields", "id,email,dlm,bulk_mail")
	var page Page
	err := o.acct.DoJSON(ctx, http.MethodGet, o.base+"/Contacts?"+q.Encode(), o.hdr, nil, func(d *json.Decoder) error {
		page = Page{Total: -1, Contacts: make([]Contact, 0, o.size)}
		return ontraportData(func(d *json.Decoder) error {
			return DecodeArray(d, func(d *json.Decoder) error {
				var oc ontraportContact
				if err := d.Decode(&oc); err != nil {
					return eof(err)
				}
				ct := Contact{ID: string(oc.ID), Email: oc.Email, Status: ontraportStatus(string(oc.BulkMail))}
				if s, err := strconv.ParseInt(string(oc.DLM), 10, 64); err == nil && s > 0 {
					ct.UpdatedAt = time.Unix(s, 0).UTC()
				}
				page.Contacts = append(page.Contacts, ct)
				return nil
			})
		})(d)
	})
	if err != nil {
		return Page{}, err
	}
	if len(page.Contacts) < o.size {
		return page, nil
	}
	last, err := strconv.ParseInt(page.Contacts[len(page.Contacts)-1].ID, 10, 64)
	if err != nil || last <= c.last {
		return Page{}, errors.New("esp: ontraport: contact ids not ascending")
	}
	page.Next = Cursor(opCursors.encode(c.since, last))
	return page, nil
}

func (o *ontraport) EnsureFields(context.Context) error { return nil } // tags are created when first needed

func (o *ontraport) contactID(c Contact) (string, error) {
	if _, err := strconv.ParseInt(c.ID, 10, 64); err != nil {
		return "", errors.New("esp: ontraport: contact without a numeric id")
	}
	return c.ID, nil
}

// SetFields writes the tag `mf_failed - <reason>`; without a reason there is nothing to write.
func (o *ontraport) SetFields(ctx context.Context, c Contact, f Fields) error {
	if f[FieldReason] == "" {
		return nil
	}
	return o.AddTag(ctx, c, FailedTag(f[FieldReason]))
}

// tagID finds (or creates) the tag and caches its id.
func (o *ontraport) tagID(ctx context.Context, name string) (string, error) {
	noID := errors.New("esp: ontraport: tag without id")
	return o.tags.resolve(name, func() (string, error) {
		var found []ontraportTag
		q := url.Values{}
		q.Set("condition", ontraportWhere(ontraportCond("tag_name", "=", name)))
		q.Set("range", "1")
		if err := o.acct.DoJSON(ctx, http.MethodGet, o.base+"/Tags?"+q.Encode(), o.hdr, nil, ontraportData(Into(&found))); err != nil {
			return "", err
		}
		if len(found) > 0 && found[0].Name == name {
			if found[0].ID == "" {
				return "", noID
			}
			return string(found[0].ID), nil
		}
		return "", nil
	}, func() (string, error) {
		var created ontraportTag
		if err := o.acct.DoJSON(ctx, http.MethodPost, o.base+"/Tags", o.hdr, map[string]any{"tag_name": name}, ontraportData(Into(&created))); err != nil {
			return "", err
		}
		if created.ID == "" {
			return "", noID
		}
		return string(created.ID), nil
	})
}

func (o *ontraport) AddTag(ctx context.Context, c Contact, tag string) error {
	id, err := o.contactID(c)
	if err != nil {
		return err
	}
	tid, err := o.tagID(ctx, tag)
	if err != nil {
		return err
	}
	body := map[string]any{"objectID": 0, "add_list": tid, "ids": id}
	return o.acct.DoJSON(ctx, http.MethodPut, o.base+"/objects/tag", o.hdr, body, nil)
}

func (o *ontraport) Unsubscribe(ctx context.Context, c Contact) error {
	id, err := o.contactID(c)
	if err != nil {
		return err
	}
	return o.acct.DoJSON(ctx, http.MethodPut, o.base+"/Contacts", o.hdr, map[string]any{"id": id, "bulk_mail": 0}, nil)
}

func (o *ontraport) Delete(ctx context.Context, c Contact) (json.RawMessage, error) {
	id, err := o.contactID(c)
	if err != nil {
		return nil, err
	}
	var snap json.RawMessage
	u := o.base + "/Contact?id=" + url.QueryEscape(id)
	if err := o.acct.DoJSON(ctx, http.MethodGet, u, o.hdr, nil, ontraportData(ReadRaw(&snap))); err != nil {
		return nil, err
	}
	if err := o.acct.DoJSON(ctx, http.MethodDelete, u, o.hdr, nil, nil); err != nil {
		return nil, err
	}
	return snap, nil
}
