package esp

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// HubSpot (esp-platforms.md § hubspot; HubSpot's own OpenAPI documents are not licensed for copying, so none
// is embedded). https://api.hubapi.com with `Authorization: Bearer <private app token>`.
//
// Lists validates the token with GET /crm/v3/objects/contacts?limit=1 (the contacts scope every read needs)
// and returns the account's contact lists (GET /contacts/v1/lists, 250 a page). Contacts are read
// account-wide (ListID ""): a full read pages GET /crm/v3/objects/contacts (100 a page, the maximum) with
// paging.next.after; an incremental read uses POST /crm/v3/objects/contacts/search filtering
// lastmodifieddate GTE since, sorted ascending, 100 a page.
//
// A search answers at most 10,000 results (asking past that is a 400), so the adapter re-windows: before
// `after` would reach 10,000 it starts a new search from the last lastmodifieddate seen (GTE). Contacts
// already read at exactly that millisecond (the trailing run, carried in the cursor) are skipped in the new
// window, so nobody comes twice. So that cursor stays small, and so a window never stalls when more than
// 10,000 contacts share one millisecond (an import), a run of more than 200 contacts at one millisecond is
// not followed in the window: the adapter stops there and finishes that millisecond with an id keyset
// (lastmodifieddate EQ t, hs_object_id GT last, sorted by hs_object_id, skipping the ≤ 200 already
// returned), then continues with lastmodifieddate GT t.
// Searches have their own lower limit (about 4–5/s), so the adapter paces them at 4/s on top of the
// account limiter (per adapter; a search throttle from concurrent adapters is retried like any 429), unless
// the client's limits for hubspot are unlimited.
//
// Statuses come from two standard properties: hs_email_hard_bounce_reason_enum set → bounced;
// hs_email_optout "true" → unsubscribed (HubSpot records spam reports as opt-outs); else subscribed.
//
// Writes: fields are contact properties (PATCH /crm/v3/objects/contacts/{id}); EnsureFields creates the
// mf_* properties (POST /crm/v3/properties/contacts) when missing. HubSpot has no tags: AddTag sets a
// property named after the tag (HubSpotProperty: "mf_failed - typo" → mf_failed_typo) to "true",
// creating the property on first use. Unsubscribe reads the contact's subscription statuses
// (GET /communication-preferences/v3/status/email/{email}) and unsubscribes it from every subscription it
// is still subscribed to (POST /communication-preferences/v3/unsubscribe): repeating it is harmless, where
// unsubscribing twice would be a 400. Delete archives the contact (DELETE …/contacts/{id}) after a GET
// snapshot.

const (
	hubspotBase      = "https://api.hubapi.com"
	hubspotPageMax   = 100
	hubspotListsMax  = 250
	hubspotSearchCap = 10000 // results one search can return
	hubspotCursor    = "h1:"
	hubspotRunMax    = 200 // contacts of one millisecond a window returns before finishing it by id
	hubspotProps     = "email,lastmodifieddate,hs_email_optout,hs_email_hard_bounce_reason_enum"
)

// HubSpotProperty returns the property name a canonical field or tag is stored under: lower case, letters,
// digits and single '_' (HubSpot's rule for internal names), starting with a letter.
func HubSpotProperty(name string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			under = false
		} else if !under && b.Len() > 0 {
			b.WriteByte('_')
			under = true
		}
	}
	s := strings.TrimRight(b.String(), "_")
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		s = "mf_" + s
	}
	return s
}

type hubspot struct {
	base   string
	hdr    http.Header
	acct   *Account
	search *rate.Limiter
	size   int
	caps   Capabilities

	mu    sync.Mutex
	props map[string]bool // properties known to exist
}

func newHubSpot(cfg Config) (Adapter, error) {
	base := cfg.baseURL(hubspotBase)
	tok := cfg.Credentials["access_token"]
	// Searches are paced at 4/s unless the operator's limits for HubSpot say "unlimited" (Rate 0: fakes,
	// benchmarks) or allow less.
	lim := cfg.Platform.Limits
	if l, ok := cfg.Client.limits["hubspot"]; ok {
		lim = l
	}
	search := rate.NewLimiter(rate.Inf, 0)
	if lim.Rate > 0 {
		search = rate.NewLimiter(rate.Limit(min(4, lim.Rate)), 1)
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+tok)
	return &hubspot{
		base: base, hdr: h,
		acct:   cfg.Client.Account("hubspot", tok, cfg.Platform.Limits, HubSpotThrottle),
		search: search,
		size:   cfg.Options.pageSize("hubspot", hubspotPageMax),
		caps:   cfg.Platform.Capabilities,
		props:  map[string]bool{},
	}, nil
}

// HubSpotThrottle: 429 with a JSON body naming the policy (TEN_SECONDLY_ROLLING, SECONDLY, DAILY) and
// X-HubSpot-RateLimit-* headers but no Retry-After. The daily cap is a Quota verdict; otherwise the wait is
// Retry-After when present, else the client's exponential backoff.
func HubSpotThrottle(status int, h http.Header, peek []byte) Throttle {
	if status != http.StatusTooManyRequests {
		return Throttle{}
	}
	if bytes.Contains(peek, []byte(`"DAILY"`)) {
		return Throttle{Throttled: true, Quota: true}
	}
	return Throttle{Throttled: true, Wait: HeaderWait(h)}
}

func (s *hubspot) Capabilities() Capabilities { return s.caps }

func (s *hubspot) Lists(ctx context.Context) ([]List, error) {
	if err := s.acct.DoJSON(ctx, http.MethodGet, s.base+"/crm/v3/objects/contacts?limit=1&archived=false", s.hdr, nil, nil); err != nil {
		return nil, err
	}
	out := []List{}
	for offset := 0; ; {
		var page struct {
			Lists []struct {
				ListID json.Number `json:"listId"`
				Name   string      `json:"name"`
			} `json:"lists"`
			Offset  int  `json:"offset"`
			HasMore bool `json:"has-more"`
		}
		u := s.base + "/contacts/v1/lists?count=" + strconv.Itoa(hubspotListsMax) + "&offset=" + strconv.Itoa(offset)
		if err := s.acct.DoJSON(ctx, http.MethodGet, u, s.hdr, nil, Into(&page)); err != nil {
			return nil, err
		}
		for _, l := range page.Lists {
			out = append(out, List{ID: l.ListID.String(), Name: l.Name})
		}
		if !page.HasMore || page.Offset <= offset {
			return out, nil
		}
		offset = page.Offset
	}
}

// hsCur is the decoded cursor. M: "l" full read, "w" search window, "i" id keyset inside one millisecond.
type hsCur struct {
	M  string   `json:"m"`
	A  string   `json:"a,omitempty"`  // after within the current request series
	T  int64    `json:"t,omitempty"`  // window start (ms); in "i" the millisecond being finished
	G  bool     `json:"g,omitempty"`  // window start exclusive (GT)
	X  []string `json:"x,omitempty"`  // ids at T already returned
	RT int64    `json:"rt,omitempty"` // timestamp of the trailing run of returned contacts
	RI []string `json:"ri,omitempty"` // ids of that run
	I  string   `json:"i,omitempty"`  // "i": last id (GT)
}

func (c hsCur) encode() Cursor {
	b, _ := json.Marshal(c)
	return Cursor(hubspotCursor + base64.RawURLEncoding.EncodeToString(b))
}

func parseHSCursor(s string) (hsCur, error) {
	var c hsCur
	rest, ok := strings.CutPrefix(s, hubspotCursor)
	if !ok {
		return c, errors.New("esp: hubspot: foreign cursor")
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || json.Unmarshal(b, &c) != nil || (c.M != "l" && c.M != "w" && c.M != "i") {
		return c, errors.New("esp: hubspot: malformed cursor")
	}
	return c, nil
}

type hsObject struct {
	ID         string `json:"id"`
	Properties struct {
		Email        string `json:"email"`
		LastModified string `json:"lastmodifieddate"`
		OptOut       string `json:"hs_email_optout"`
		HardBounce   string `json:"hs_email_hard_bounce_reason_enum"`
	} `json:"properties"`
}

func (o *hsObject) contact() (Contact, int64) {
	c := Contact{ID: o.ID, Email: o.Properties.Email, Status: StatusSubscribed}
	switch {
	case o.Properties.HardBounce != "":
		c.Status = StatusBounced
	case strings.EqualFold(o.Properties.OptOut, "true"):
		c.Status = StatusUnsubscribed
	}
	var ms int64
	if t, err := time.Parse(time.RFC3339Nano, o.Properties.LastModified); err == nil {
		c.UpdatedAt, ms = t, t.UnixMilli()
	} else if n, err := strconv.ParseInt(o.Properties.LastModified, 10, 64); err == nil {
		c.UpdatedAt, ms = time.UnixMilli(n).UTC(), n
	}
	return c, ms
}

type hsPaging struct {
	Next *struct {
		After string `json:"after"`
	} `json:"next"`
}

// page sends one read and decodes its results and paging.
func (s *hubspot) page(ctx context.Context, method, u string, body any, each func(hsObject)) (next string, err error) {
	err = s.acct.DoJSON(ctx, method, u, s.hdr, body, func(d *json.Decoder) error {
		var p struct {
			Paging hsPaging `json:"paging"`
		}
		var objs []hsObject
		err := DecodeObject(d, map[string]func(*json.Decoder) error{
			"results": func(d *json.Decoder) error {
				return DecodeArray(d, func(d *json.Decoder) error {
					var o hsObject
					if err := d.Decode(&o); err != nil {
						return eof(err)
					}
					objs = append(objs, o)
					return nil
				})
			},
			"paging": Into(&p.Paging),
		})
		if err != nil {
			return err
		}
		for _, o := range objs { // only once the whole answer arrived: a retried attempt starts afresh
			each(o)
		}
		next = ""
		if p.Paging.Next != nil {
			next = p.Paging.Next.After
		}
		return nil
	})
	return next, err
}

func (s *hubspot) Contacts(ctx context.Context, cursor Cursor, since time.Time) (Page, error) {
	var c hsCur
	switch {
	case cursor != "":
		var err error
		if c, err = parseHSCursor(string(cursor)); err != nil {
			return Page{}, err
		}
	case since.IsZero():
		c = hsCur{M: "l"}
	default:
		c = hsCur{M: "w", T: since.UnixMilli()}
		c.RT = c.T
	}
	out := Page{Total: -1, Contacts: make([]Contact, 0, s.size)}
	if c.M == "l" {
		q := url.Values{}
		q.Set("limit", strconv.Itoa(s.size))
		q.Set("properties", hubspotProps)
		q.Set("archived", "false")
		if c.A != "" {
			q.Set("after", c.A)
		}
		next, err := s.page(ctx, http.MethodGet, s.base+"/crm/v3/objects/contacts?"+q.Encode(), nil, func(o hsObject) {
			ct, _ := o.contact()
			out.Contacts = append(out.Contacts, ct)
		})
		if err != nil {
			return Page{}, err
		}
		if next != "" {
			out.Next = hsCur{M: "l", A: next}.encode()
		}
		return out, nil
	}
	if err := s.search.Wait(ctx); err != nil {
		return Page{}, &Error{Platform: "hubspot", Method: http.MethodPost, Path: "/crm/v3/objects/contacts/search", Kind: ErrUnavailable, Err: err}
	}
	skip := make(map[string]bool, len(c.X))
	for _, id := range c.X {
		skip[id] = true
	}
	ts := strconv.FormatInt(c.T, 10)
	body := map[string]any{"limit": s.size, "properties": strings.Split(hubspotProps, ",")}
	if c.A != "" {
		body["after"] = c.A
	}
	var lastID string
	if c.M == "w" {
		op := "GTE"
		if c.G {
			op = "GT"
		}
		body["filterGroups"] = []any{map[string]any{"filters": []any{
			map[string]string{"propertyName": "lastmodifieddate", "operator": op, "value": ts},
		}}}
		body["sorts"] = []any{map[string]string{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}}
	} else {
		body["filterGroups"] = []any{map[string]any{"filters": []any{
			map[string]string{"propertyName": "lastmodifieddate", "operator": "EQ", "value": ts},
			map[string]string{"propertyName": "hs_object_id", "operator": "GT", "value": c.I},
		}}}
		body["sorts"] = []any{map[string]string{"propertyName": "hs_object_id", "direction": "ASCENDING"}}
		lastID = c.I
	}
	run := append([]string(nil), c.RI...)
	rt := c.RT
	held := false // window mode: stopped at a millisecond with too many contacts to carry their ids
	next, err := s.page(ctx, http.MethodPost, s.base+"/crm/v3/objects/contacts/search", body, func(o hsObject) {
		ct, ms := o.contact()
		if held {
			return
		}
		if c.M == "i" {
			lastID = o.ID
		}
		if ms == c.T && skip[o.ID] {
			return
		}
		if c.M == "w" && ms == rt && len(run) >= hubspotRunMax {
			held = true
			return
		}
		out.Contacts = append(out.Contacts, ct)
		if c.M == "w" {
			if ms == rt {
				run = append(run, o.ID)
			} else {
				rt, run = ms, []string{o.ID}
			}
		}
	})
	if err != nil {
		return Page{}, err
	}
	after, _ := strconv.Atoi(next)
	switch {
	case held:
		// Finish the crowded millisecond by id, skipping the run already returned; then continue after it.
		out.Next = hsCur{M: "i", T: rt, X: run, I: "0"}.encode()
	case c.M == "w" && next == "":
		// done
	case c.M == "w" && after+s.size <= hubspotSearchCap && after < hubspotSearchCap:
		out.Next = hsCur{M: "w", A: next, T: c.T, G: c.G, X: c.X, RT: rt, RI: run}.encode()
	case c.M == "w" && rt > c.T:
		// Re-window from the last timestamp seen; the run at that millisecond was returned already.
		out.Next = hsCur{M: "w", T: rt, X: run, RT: rt, RI: run}.encode()
	case c.M == "w":
		// A whole window at one millisecond: finish it by id.
		out.Next = hsCur{M: "i", T: c.T, X: run, I: "0"}.encode()
	case next == "":
		out.Next = hsCur{M: "w", T: c.T, G: true, RT: c.T}.encode()
	case after+s.size <= hubspotSearchCap && after < hubspotSearchCap:
		out.Next = hsCur{M: "i", A: next, T: c.T, X: c.X, I: c.I}.encode()
	default:
		out.Next = hsCur{M: "i", T: c.T, X: c.X, I: lastID}.encode()
	}
	return out, nil
}

func (s *hubspot) known(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.props[name]
}

func (s *hubspot) createProperty(ctx context.Context, name, label string) error {
	body := map[string]any{"name": name, "label": label, "type": "string", "fieldType": "text",
		"groupName": "contactinformation", "description": "Written by autofloss (email list hygiene)."}
	err := s.acct.DoJSON(ctx, http.MethodPost, s.base+"/crm/v3/properties/contacts", s.hdr, body, nil)
	if err != nil && !errors.Is(err, ErrBadRequest) { // 409: it exists (created meanwhile)
		return err
	}
	s.mu.Lock()
	s.props[name] = true
	s.mu.Unlock()
	return nil
}

func (s *hubspot) EnsureFields(ctx context.Context) error {
	var have struct {
		Results []struct {
			Name string `json:"name"`
		} `json:"results"`
	}
	if err := s.acct.DoJSON(ctx, http.MethodGet, s.base+"/crm/v3/properties/contacts?archived=false", s.hdr, nil, Into(&have)); err != nil {
		return err
	}
	s.mu.Lock()
	for _, p := range have.Results {
		s.props[p.Name] = true
	}
	s.mu.Unlock()
	for _, n := range FieldNames {
		if p := HubSpotProperty(n); !s.known(p) {
			if err := s.createProperty(ctx, p, n); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *hubspot) patch(ctx context.Context, c Contact, props map[string]string) error {
	if c.ID == "" {
		return errors.New("esp: hubspot: contact without id")
	}
	return s.acct.DoJSON(ctx, http.MethodPatch, s.base+"/crm/v3/objects/contacts/"+url.PathEscape(c.ID), s.hdr, map[string]any{"properties": props}, nil)
}

// setProps PATCHes props; a 400 (a property that does not exist yet) creates the missing ones and retries.
func (s *hubspot) setProps(ctx context.Context, c Contact, props map[string]string, labels map[string]string) error {
	err := s.patch(ctx, c, props)
	if err == nil || !errors.Is(err, ErrBadRequest) {
		return err
	}
	created := false
	for p := range props {
		if !s.known(p) {
			if err := s.createProperty(ctx, p, labels[p]); err != nil {
				return err
			}
			created = true
		}
	}
	if !created {
		return err
	}
	return s.patch(ctx, c, props)
}

func (s *hubspot) SetFields(ctx context.Context, c Contact, f Fields) error {
	props := make(map[string]string, len(f))
	labels := make(map[string]string, len(f))
	for k, v := range f {
		p := HubSpotProperty(k)
		props[p], labels[p] = v, k
	}
	return s.setProps(ctx, c, props, labels)
}

func (s *hubspot) AddTag(ctx context.Context, c Contact, tag string) error {
	p := HubSpotProperty(tag)
	return s.setProps(ctx, c, map[string]string{p: "true"}, map[string]string{p: tag})
}

func (s *hubspot) Unsubscribe(ctx context.Context, c Contact) error {
	if c.Email == "" {
		return errors.New("esp: hubspot: unsubscribe needs the contact's email")
	}
	var st struct {
		Statuses []struct {
			ID     json.Number `json:"id"`
			Status string      `json:"status"`
		} `json:"subscriptionStatuses"`
	}
	u := s.base + "/communication-preferences/v3/status/email/" + url.PathEscape(c.Email)
	if err := s.acct.DoJSON(ctx, http.MethodGet, u, s.hdr, nil, Into(&st)); err != nil {
		return err
	}
	for _, x := range st.Statuses {
		if x.Status != "SUBSCRIBED" {
			continue
		}
		body := map[string]any{"emailAddress": c.Email, "subscriptionId": x.ID.String(),
			"legalBasis": "LEGITIMATE_INTEREST_OTHER", "legalBasisExplanation": "Unsubscribed by the account's list hygiene (autofloss)."}
		if err := s.acct.DoJSON(ctx, http.MethodPost, s.base+"/communication-preferences/v3/unsubscribe", s.hdr, body, nil); err != nil {
			return err
		}
	}
	return nil
}

func (s *hubspot) Delete(ctx context.Context, c Contact) (json.RawMessage, error) {
	if c.ID == "" {
		return nil, errors.New("esp: hubspot: contact without id")
	}
	u := s.base + "/crm/v3/objects/contacts/" + url.PathEscape(c.ID)
	snap, err := s.acct.snapshotDelete(ctx, u+"?properties="+url.QueryEscape(hubspotProps+",firstname,lastname,createdate"), u, s.hdr, true)
	if err != nil {
		return nil, err
	}
	return snap, nil
}
