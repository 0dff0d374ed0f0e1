package esptest

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/autofloss/autofloss/esp"
)

// Brevo fake (esp-platforms.md § brevo; validated against the official Swagger, openapi/brevo). Its URL
// stands for https://api.brevo.com/v3, so routes have no /v3 prefix (the document's basePath). Enforces
// the `api-key` header (401 {"code":"unauthorized"} otherwise), limit ≤ 1000 on /contacts and ≤ 50 on
// /contacts/lists (400 out_of_range), offset paging in creation order (sort desc by default, asc on
// request) with count, modifiedSince (strictly after; 400 invalid_parameter when unparseable), attributes
// that must exist before a PUT sets them (400 invalid_parameter), attribute creation (201; duplicate 400),
// emailBlacklisted for unsubscribes, DELETE (204; 404 document_not_found after), JSON bodies on writes, and
// 10 requests/s answered with 429 and x-sib-ratelimit-* headers (no Retry-After).

var brevoDefaultAttrs = []string{"EMAIL", "FIRSTNAME", "LASTNAME", "SMS"}

func brevoSpec() Spec {
	return Spec{
		Slug:        "brevo",
		Limits:      esp.Limits{Rate: 10, Burst: 10},
		PerList:     false,
		ContactID:   func(c SeedContact) string { return strconv.Itoa(c.Index + 1) },
		ListID:      func(l int) string { return strconv.Itoa(l + 2) },
		Credentials: secretCredentials("api_key", "", "xkeysib-"+strings.Repeat("0", 64)+"-AbCdEfGhIjKlMnOp"),
		Authorized:  headerSecret("api-key", ""),
		Unauthorized: func(w http.ResponseWriter, r *http.Request) {
			brevoError(w, 401, "unauthorized", "Key not found")
		},
		Throttle: func(w http.ResponseWriter, wait time.Duration) {
			w.Header().Set("x-sib-ratelimit-limit", "10")
			w.Header().Set("x-sib-ratelimit-remaining", "0")
			w.Header().Set("x-sib-ratelimit-reset", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			brevoError(w, 429, "too_many_requests", "The expected rate limit is exceeded.")
		},
		ServerError: func(w http.ResponseWriter) {
			brevoError(w, 500, "internal_error", "Internal server error")
		},
		Routes:  brevoRoutes,
		OpenAPI: []string{"brevo/swagger.yaml"},
		Status: func(s esp.Status) esp.Status {
			if s == esp.StatusSubscribed {
				return s
			}
			return esp.StatusUnsubscribed // bounces and complaints are blacklists on Brevo
		},
		FieldName: esp.BrevoAttribute,
	}
}

func brevoError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(map[string]string{"code": code, "message": msg})
	WriteJSON(w, status, "application/json; charset=utf-8", b)
}

func brevoWrite(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	WriteJSON(w, status, "application/json; charset=utf-8", b)
}

func brevoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// brevoPaging reads limit (def, at most max) and offset.
func brevoPaging(w http.ResponseWriter, r *http.Request, def, max int) (limit, offset int, ok bool) {
	q := r.URL.Query()
	limit = def
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			brevoError(w, 400, "invalid_parameter", "limit should be a positive integer")
			return 0, 0, false
		}
		if n > max {
			brevoError(w, 400, "out_of_range", fmt.Sprintf("Limit exceeds max value %d", max))
			return 0, 0, false
		}
		if n > 0 {
			limit = n
		}
	}
	if s := q.Get("offset"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			brevoError(w, 400, "invalid_parameter", "offset should be a positive integer")
			return 0, 0, false
		}
		offset = n
	}
	switch q.Get("sort") {
	case "", "asc", "desc":
	default:
		brevoError(w, 400, "invalid_parameter", "sort should be asc or desc")
		return 0, 0, false
	}
	return limit, offset, true
}

type brevoState struct {
	mu    sync.Mutex
	attrs map[string]string // name → type
}

func brevoContactOut(f *Fake, rec Record) map[string]any {
	attrs := map[string]any{}
	for k, v := range rec.Fields {
		attrs[k] = v
	}
	lists := make([]int, 0, len(rec.Lists))
	for _, l := range rec.Lists {
		lists = append(lists, l+2)
	}
	id, _ := strconv.Atoi(rec.ID)
	return map[string]any{
		"email": rec.Email, "id": id, "emailBlacklisted": rec.Status != esp.StatusSubscribed, "smsBlacklisted": false,
		"createdAt": brevoTime(rec.Created), "modifiedAt": brevoTime(rec.Updated), "listIds": lists, "attributes": attrs,
	}
}

func brevoRoutes(f *Fake, mux *http.ServeMux) {
	st := &brevoState{attrs: map[string]string{}}
	for _, a := range brevoDefaultAttrs {
		st.attrs[a] = "text"
	}
	// writes need a JSON body
	jsonBody := func(w http.ResponseWriter, r *http.Request, v any) bool {
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			brevoError(w, 415, "not_acceptable", "Content-Type must be application/json")
			return false
		}
		if err := json.NewDecoder(r.Body).Decode(v); err != nil {
			brevoError(w, 400, "bad_request", "Input must be a valid JSON object")
			return false
		}
		return true
	}
	contact := func(w http.ResponseWriter, r *http.Request) (int, bool) {
		id := r.PathValue("identifier")
		i, ok := f.IndexOf(id)
		if !ok && strings.Contains(id, "@") {
			i, ok = f.IndexOfEmail(strings.ToLower(id))
		}
		if !ok || !f.Alive(i, -1) {
			brevoError(w, 404, "document_not_found", "Contact does not exist")
			return 0, false
		}
		return i, true
	}

	mux.HandleFunc("GET /contacts/lists", func(w http.ResponseWriter, r *http.Request) {
		limit, offset, ok := brevoPaging(w, r, 10, 50)
		if !ok {
			return
		}
		n := f.Lists()
		idx := make([]int, 0, limit)
		for k := offset; k < n && k < offset+limit; k++ {
			l := k
			if r.URL.Query().Get("sort") != "asc" {
				l = n - 1 - k
			}
			idx = append(idx, l)
		}
		lists := make([]any, 0, len(idx))
		for _, l := range idx {
			m := f.Len(l)
			lists = append(lists, map[string]any{"id": l + 2, "name": fmt.Sprintf("List %d", l+1), "totalBlacklisted": 0,
				"totalSubscribers": m, "uniqueSubscribers": m, "folderId": 1})
		}
		brevoWrite(w, 200, map[string]any{"lists": lists, "count": n})
	})
	mux.HandleFunc("GET /contacts", func(w http.ResponseWriter, r *http.Request) {
		limit, offset, ok := brevoPaging(w, r, 50, 1000)
		if !ok {
			return
		}
		q := r.URL.Query()
		asc := q.Get("sort") == "asc"
		var recs []Record
		var total int
		if s := q.Get("modifiedSince"); s != "" {
			since, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				brevoError(w, 400, "invalid_parameter", "modifiedSince is not a valid date-time (YYYY-MM-DDTHH:mm:ss.SSSZ)")
				return
			}
			keys := f.Changed(-1, since, false)
			sort.Slice(keys, func(a, b int) bool { return keys[a].Index < keys[b].Index }) // creation order
			if !asc {
				for a, b := 0, len(keys)-1; a < b; a, b = a+1, b-1 {
					keys[a], keys[b] = keys[b], keys[a]
				}
			}
			total = len(keys)
			for k := offset; k < len(keys) && k < offset+limit; k++ {
				recs = append(recs, f.Record(keys[k].Index))
			}
		} else if total = f.Len(-1); asc {
			recs = f.Slice(-1, offset, limit)
		} else if offset < total {
			start := max(total-offset-limit, 0)
			recs = f.Slice(-1, start, total-offset-start)
			for a, b := 0, len(recs)-1; a < b; a, b = a+1, b-1 {
				recs[a], recs[b] = recs[b], recs[a]
			}
		}
		out := make([]any, 0, len(recs))
		for _, rec := range recs {
			out = append(out, brevoContactOut(f, rec))
		}
		brevoWrite(w, 200, map[string]any{"contacts": out, "count": total})
	})
	mux.HandleFunc("GET /contacts/{identifier}", func(w http.ResponseWriter, r *http.Request) {
		i, ok := contact(w, r)
		if !ok {
			return
		}
		c := brevoContactOut(f, f.Record(i))
		c["statistics"] = map[string]any{}
		brevoWrite(w, 200, c)
	})
	mux.HandleFunc("PUT /contacts/{identifier}", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Attributes       map[string]any `json:"attributes"`
			EmailBlacklisted *bool          `json:"emailBlacklisted"`
		}
		if !jsonBody(w, r, &body) {
			return
		}
		i, ok := contact(w, r)
		if !ok {
			return
		}
		st.mu.Lock()
		for k := range body.Attributes {
			if _, known := st.attrs[strings.ToUpper(k)]; !known {
				st.mu.Unlock()
				brevoError(w, 400, "invalid_parameter", "Attribute "+k+" does not exist")
				return
			}
		}
		st.mu.Unlock()
		for k, v := range body.Attributes {
			f.SetField(i, strings.ToUpper(k), fmt.Sprint(v))
		}
		if body.EmailBlacklisted != nil && *body.EmailBlacklisted {
			f.Unsubscribe(i)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /contacts/{identifier}", func(w http.ResponseWriter, r *http.Request) {
		i, ok := contact(w, r)
		if !ok {
			return
		}
		if !f.Delete(i) {
			brevoError(w, 404, "document_not_found", "Contact does not exist")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /contacts/attributes", func(w http.ResponseWriter, r *http.Request) {
		st.mu.Lock()
		names := make([]string, 0, len(st.attrs))
		for n := range st.attrs {
			names = append(names, n)
		}
		sort.Strings(names)
		out := make([]any, 0, len(names))
		for _, n := range names {
			out = append(out, map[string]string{"name": n, "category": "normal", "type": st.attrs[n]})
		}
		st.mu.Unlock()
		brevoWrite(w, 200, map[string]any{"attributes": out})
	})
	mux.HandleFunc("POST /contacts/attributes/{category}/{name}", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Type string `json:"type"`
		}
		if !jsonBody(w, r, &body) {
			return
		}
		if r.PathValue("category") != "normal" {
			brevoError(w, 400, "invalid_parameter", "This fake only creates normal attributes")
			return
		}
		name := strings.ToUpper(r.PathValue("name"))
		switch body.Type {
		case "text", "date", "float", "boolean":
		default:
			brevoError(w, 400, "invalid_parameter", "type is not valid for a normal attribute")
			return
		}
		st.mu.Lock()
		_, dup := st.attrs[name]
		if !dup {
			st.attrs[name] = body.Type
		}
		st.mu.Unlock()
		if dup {
			brevoError(w, 400, "duplicate_parameter", "Attribute name must be unique")
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
}
