package esptest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/autofloss/autofloss/esp"
)

// Keap fake (esp-platforms.md § keap). Every exchange is validated against openapi/keap/adapter-paths.yaml:
// the vendor's OpenAPI 3.1 document (openapi/keap/swagger.yml, byte for byte) cut down by
// extract_adapter_paths.py to the paths used here and the components they reference, declared 3.0.3 (no
// 3.1-only keyword occurs in them). kin-openapi loads the full 3.1 file too, but validates 3.1 schemas by
// compiling a JSON Schema 2020 validator per value (~20 ms per exchange, far slower under -race), which
// made the fake too slow to be throttled at all. Serves the document's paths (/rest/v2/…, the server being
// https://api.keap.com/crm). Enforces `X-Keap-API-Key` (401 otherwise), page_size ≤ 1000
// (400), opaque page tokens, the filter language on contacts (start_update_time / end_update_time with
// milliseconds, email, ids) and tags (name), unique tag names (409), and the key limits: 10 per second
// and 240 per minute (a bucket of 10 refilled at 230/min) answered with 429, Retry-After and x-keap-*
// throttle headers, plus 30,000 per day (429 with the quota header at 0) whenever the fake has limits.
//
// The fake's lists are tags ("Newsletter 1", …) carried by their members. Opt-out: PATCH
// /rest/v2/emailAddresses/{email}/status with opted_in false sets the address to ADMIN (opted out);
// statuses otherwise are SINGLE_OPT_IN, HARD_BOUNCE and SPAM.

const keapDailyQuota = 30000

var keapErrN atomic.Int64

func keapErr(w http.ResponseWriter, status int, grpc, msg string) {
	keapErrN.Add(1)
	b, _ := json.Marshal(map[string]any{"code": status, "message": msg, "status": grpc, "details": []any{}})
	WriteJSON(w, status, "application/json", b)
}

func keapSpec() Spec {
	return Spec{
		Slug:        "keap",
		Limits:      esp.Limits{Rate: 230.0 / 60, Burst: 10},
		PerList:     false,
		ContactID:   func(c SeedContact) string { return strconv.Itoa(2001 + c.Index) },
		ListID:      func(l int) string { return strconv.Itoa(101 + l) },
		Credentials: secretCredentials("api_key", "KeapAK-", "KeapAK-00000000000000000000000000000000"),
		Authorized:  headerSecret("X-Keap-API-Key", "KeapAK-"),
		Unauthorized: func(w http.ResponseWriter, r *http.Request) {
			keapErr(w, 401, "UNAUTHENTICATED", "Invalid Key")
		},
		Throttle: func(w http.ResponseWriter, wait time.Duration) {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			w.Header().Set("X-Keap-Product-Throttle-Limit", "240")
			w.Header().Set("X-Keap-Product-Throttle-Available", "0")
			w.Header().Set("X-Keap-Product-Quota-Limit", strconv.Itoa(keapDailyQuota))
			keapErr(w, 429, "RESOURCE_EXHAUSTED", "Too Many Requests")
		},
		ServerError: func(w http.ResponseWriter) {
			keapErr(w, 500, "INTERNAL", "Internal Server Error")
		},
		Routes:  keapRoutes,
		OpenAPI: []string{"keap/adapter-paths.yaml"},
	}
}

func keapWrite(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	WriteJSON(w, status, "application/json", b)
}

func keapTime(t time.Time) string {
	return t.UTC().Truncate(time.Millisecond).Format("2006-01-02T15:04:05.000Z")
}

func keapOptStatus(s esp.Status) (string, bool) {
	switch s {
	case esp.StatusUnsubscribed:
		return "ADMIN", false
	case esp.StatusBounced:
		return "HARD_BOUNCE", false
	case esp.StatusComplained:
		return "SPAM", false
	}
	return "SINGLE_OPT_IN", true
}

type keapTagStore struct {
	mu    sync.Mutex
	byID  map[string]string // created tag id → name
	ids   map[string]string // created tag name → id
	order []string
}

func keapContact(f *Fake, tags *keapTagStore, rec Record, fields map[string]bool) map[string]any {
	st, in := keapOptStatus(rec.Status)
	out := map[string]any{"id": rec.ID}
	add := func(name string, v any) {
		if fields == nil || fields[name] {
			out[name] = v
		}
	}
	add("email_addresses", []any{map[string]any{"email": rec.Email, "field": "EMAIL1", "email_opt_status": st, "is_opt_in": in}})
	add("given_name", strings.SplitN(rec.Email, ".", 2)[0])
	add("create_time", keapTime(rec.Created))
	add("update_time", keapTime(rec.Updated))
	ids := []string{}
	for _, l := range rec.Lists {
		ids = append(ids, f.ListID(l))
	}
	tags.mu.Lock()
	for _, t := range rec.Tags {
		if id := tags.ids[t]; id != "" {
			ids = append(ids, id)
		}
	}
	tags.mu.Unlock()
	add("tag_ids", ids)
	add("custom_fields", []any{})
	return out
}

func keapToken(kind string, n int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + strconv.Itoa(n)))
}

func keapParseToken(tok, kind string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, false
	}
	s, ok := strings.CutPrefix(string(b), kind+":")
	n, err := strconv.Atoi(s)
	return n, ok && err == nil && n >= 0
}

// keapFilter parses `a==b;c==d` (operators == only, which is all the fake needs).
func keapFilter(s string) (map[string]string, bool) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "==")
		if !ok || k == "" {
			return nil, false
		}
		out[k] = v
	}
	return out, true
}

func keapRoutes(f *Fake, mux *http.ServeMux) {
	tags := &keapTagStore{byID: map[string]string{}, ids: map[string]string{}}
	var day atomic.Int64
	h := func(pattern string, fn http.HandlerFunc) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if f.limits.Rate > 0 && day.Add(1) > keapDailyQuota {
				f.stats.throttled.Add(1)
				w.Header().Set("X-Keap-Product-Quota-Limit", strconv.Itoa(keapDailyQuota))
				w.Header().Set("X-Keap-Product-Quota-Available", "0")
				keapErr(w, 429, "RESOURCE_EXHAUSTED", "Daily quota exceeded")
				return
			}
			fn(w, r)
		})
	}
	pageSize := func(w http.ResponseWriter, r *http.Request) (int, bool) {
		s := r.URL.Query().Get("page_size")
		if s == "" {
			return 1000, true
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 1000 {
			keapErr(w, 400, "INVALID_ARGUMENT", "page_size must be between 0 and 1000")
			return 0, false
		}
		if n == 0 {
			n = 1000
		}
		return n, true
	}
	find := func(w http.ResponseWriter, id string) (int, bool) {
		i, ok := f.IndexOf(id)
		if !ok || !f.Alive(i, -1) {
			keapErr(w, 404, "NOT_FOUND", "Contact not found")
			return 0, false
		}
		return i, true
	}
	tagName := func(id string) (string, bool) {
		if l, ok := f.ListIndex(id); ok {
			return fmt.Sprintf("Newsletter %d", l+1), true
		}
		tags.mu.Lock()
		defer tags.mu.Unlock()
		n, ok := tags.byID[id]
		return n, ok
	}

	h("GET /rest/v2/tags", func(w http.ResponseWriter, r *http.Request) {
		n, ok := pageSize(w, r)
		if !ok {
			return
		}
		q := r.URL.Query()
		flt, ok := keapFilter(q.Get("filter"))
		if !ok {
			keapErr(w, 400, "INVALID_ARGUMENT", "Invalid filter")
			return
		}
		start := 0
		if t := q.Get("page_token"); t != "" {
			if start, ok = keapParseToken(t, "t"); !ok {
				keapErr(w, 400, "INVALID_ARGUMENT", "Invalid page_token")
				return
			}
		}
		type tag struct{ id, name string }
		var all []tag
		for l := 0; l < f.Lists(); l++ {
			all = append(all, tag{f.ListID(l), fmt.Sprintf("Newsletter %d", l+1)})
		}
		tags.mu.Lock()
		for _, name := range tags.order {
			all = append(all, tag{tags.ids[name], name})
		}
		tags.mu.Unlock()
		if name, ok := flt["name"]; ok {
			var m []tag
			for _, t := range all {
				if t.name == name {
					m = append(m, t)
				}
			}
			all = m
		}
		out := []any{}
		for k := start; k < len(all) && k < start+n; k++ {
			out = append(out, map[string]any{"id": all[k].id, "name": all[k].name, "create_time": "2024-01-10T08:00:00Z"})
		}
		next := ""
		if start+n < len(all) {
			next = keapToken("t", start+n)
		}
		keapWrite(w, 200, map[string]any{"tags": out, "next_page_token": next})
	})
	h("POST /rest/v2/tags", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Name string `json:"name"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || strings.TrimSpace(body.Name) == "" {
			keapErr(w, 400, "INVALID_ARGUMENT", "name is required")
			return
		}
		dup := strings.HasPrefix(body.Name, "Newsletter ")
		tags.mu.Lock()
		if _, ok := tags.ids[body.Name]; ok {
			dup = true
		}
		var id string
		if !dup {
			id = strconv.Itoa(5001 + len(tags.order))
			tags.ids[body.Name], tags.byID[id] = id, body.Name
			tags.order = append(tags.order, body.Name)
		}
		tags.mu.Unlock()
		if dup {
			keapErr(w, 409, "ALREADY_EXISTS", "A tag with this name already exists")
			return
		}
		keapWrite(w, 201, map[string]any{"id": id, "name": body.Name, "create_time": keapTime(time.Now()), "update_time": keapTime(time.Now())})
	})
	h("POST /rest/v2/tags/{tag_id}/contacts:applyTags", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			ContactIDs []string `json:"contact_ids"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.ContactIDs) == 0 || len(body.ContactIDs) > 1000 {
			keapErr(w, 400, "INVALID_ARGUMENT", "contact_ids must hold 1 to 1000 ids")
			return
		}
		name, ok := tagName(r.PathValue("tag_id"))
		if !ok {
			keapErr(w, 404, "NOT_FOUND", "Tag not found")
			return
		}
		res := map[string]string{}
		for _, id := range body.ContactIDs {
			i, ok := f.IndexOf(id)
			if !ok || !f.Alive(i, -1) {
				res[id] = "NOT_FOUND"
				continue
			}
			f.AddTag(i, name)
			res[id] = "SUCCESS"
		}
		keapWrite(w, 200, map[string]any{"results": res})
	})
	h("GET /rest/v2/contacts", func(w http.ResponseWriter, r *http.Request) {
		n, ok := pageSize(w, r)
		if !ok {
			return
		}
		q := r.URL.Query()
		flt, ok := keapFilter(q.Get("filter"))
		if !ok {
			keapErr(w, 400, "INVALID_ARGUMENT", "Invalid filter")
			return
		}
		var fields map[string]bool
		if s := q.Get("fields"); s != "" {
			fields = map[string]bool{}
			for _, x := range strings.Split(s, ",") {
				fields[x] = true
			}
		}
		after := -1
		if t := q.Get("page_token"); t != "" {
			if after, ok = keapParseToken(t, "c"); !ok {
				keapErr(w, 400, "INVALID_ARGUMENT", "Invalid page_token")
				return
			}
		}
		var recs []Record
		more := false
		if len(flt) == 0 {
			recs, more = f.After(-1, after, n)
		} else {
			var from, until time.Time
			for k, v := range flt {
				switch k {
				case "start_update_time", "end_update_time":
					t, err := time.Parse("2006-01-02T15:04:05.000Z07:00", v)
					if err != nil {
						keapErr(w, 400, "INVALID_ARGUMENT", k+" must be an ISO-8601 date-time with milliseconds")
						return
					}
					if k == "start_update_time" {
						from = t
					} else {
						until = t
					}
				case "email":
				default:
					keapErr(w, 400, "INVALID_ARGUMENT", "The fake filters on start_update_time, end_update_time and email only")
					return
				}
			}
			var idx []int
			for _, k := range f.Changed(-1, from, true) {
				if !until.IsZero() && k.Updated.After(until) {
					continue
				}
				if e, ok := flt["email"]; ok && f.Seeded(k.Index).Email != strings.ToLower(e) {
					continue
				}
				if k.Index > after {
					idx = append(idx, k.Index)
				}
			}
			sort.Ints(idx)
			for _, i := range idx[:min(n, len(idx))] {
				recs = append(recs, f.Record(i))
			}
			more = len(idx) > n
		}
		out := make([]any, 0, len(recs))
		for _, rec := range recs {
			out = append(out, keapContact(f, tags, rec, fields))
		}
		next := ""
		if more && len(recs) > 0 {
			next = keapToken("c", recs[len(recs)-1].Index)
		}
		keapWrite(w, 200, map[string]any{"contacts": out, "next_page_token": next})
	})
	h("GET /rest/v2/contacts/{contact_id}", func(w http.ResponseWriter, r *http.Request) {
		if i, ok := find(w, r.PathValue("contact_id")); ok {
			keapWrite(w, 200, keapContact(f, tags, f.Record(i), nil))
		}
	})
	h("DELETE /rest/v2/contacts/{contact_id}", func(w http.ResponseWriter, r *http.Request) {
		if i, ok := find(w, r.PathValue("contact_id")); ok {
			f.Delete(i)
			w.WriteHeader(http.StatusNoContent)
		}
	})
	h("PATCH /rest/v2/emailAddresses/{email}/status", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			OptedIn *bool   `json:"opted_in"`
			Reason  *string `json:"reason"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.OptedIn == nil || body.Reason == nil {
			keapErr(w, 400, "INVALID_ARGUMENT", "opted_in and reason are required")
			return
		}
		i, ok := f.IndexOfEmail(strings.ToLower(r.PathValue("email")))
		if !ok || !f.Alive(i, -1) {
			keapErr(w, 404, "NOT_FOUND", "Email address not found")
			return
		}
		if *body.OptedIn {
			f.mu.Lock()
			s := f.st(i)
			s.status, s.updated = esp.StatusSubscribed, nowUTC()
			f.mu.Unlock()
		} else {
			f.Unsubscribe(i)
		}
		rec := f.Record(i)
		st, in := keapOptStatus(rec.Status)
		keapWrite(w, 200, map[string]any{"email": rec.Email, "opted_in": in, "status": st, "create_time": keapTime(rec.Created)})
	})
}
