package esptest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/autofloss/autofloss/esp"
)

// Kit / ConvertKit v3 fake (esp-platforms.md § convertkit; no official document). Its URL stands for
// https://api.convertkit.com; routes live under /v3. Enforces api_secret on private calls and api_key on
// public ones (query on reads, JSON body on writes; 401 {"error":"Authorization Failed",…} otherwise),
// 50 subscribers per page with page/total_pages/total_subscribers, sort_order, updated_from (a date, from
// 00:00 UTC), custom fields that must exist before a PUT sets them (422), tags by id, unsubscribes by email
// (state cancelled), and 120 requests per rolling 60 s answered with a bare 429 (no rate headers).

const ckPerPage = 50

func convertkitSpec() Spec {
	return Spec{
		Slug:      "convertkit",
		Limits:    esp.Limits{Rate: 2, Burst: 2},
		PerList:   false,
		ContactID: func(c SeedContact) string { return strconv.Itoa(c.Index + 100001) },
		ListID:    func(l int) string { return strconv.Itoa(l + 5001) },
		Credentials: func(f *Fake, good bool) map[string]string {
			if good {
				return map[string]string{"api_key": "pub-" + f.Secret(), "api_secret": f.Secret()}
			}
			return map[string]string{"api_key": "pub-" + strings.Repeat("0", 22), "api_secret": strings.Repeat("0", 43)}
		},
		Authorized: func(f *Fake, r *http.Request) bool {
			key, secret := ckCreds(r)
			return secret == f.Secret() || (secret == "" && key == "pub-"+f.Secret())
		},
		Unauthorized: func(w http.ResponseWriter, r *http.Request) {
			key, secret := ckCreds(r)
			msg := "API Key not valid"
			if secret != "" || key == "" {
				msg = "API Secret not valid"
			}
			ckError(w, 401, "Authorization Failed", msg)
		},
		Throttle: func(w http.ResponseWriter, _ time.Duration) {
			ckError(w, 429, "Too Many Requests", "Rate limit exceeded: 120 requests per 60 seconds")
		},
		ServerError: func(w http.ResponseWriter) { ckError(w, 500, "Internal Server Error", "Something went wrong") },
		Routes:      convertkitRoutes,
	}
}

// ckCreds reads api_key/api_secret from the query, or from a JSON body on writes.
func ckCreds(r *http.Request) (key, secret string) {
	q := r.URL.Query()
	key, secret = q.Get("api_key"), q.Get("api_secret")
	if r.Method != http.MethodGet && r.Body != nil {
		raw, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(raw)) // the handler reads it again
		var b struct {
			Key    string `json:"api_key"`
			Secret string `json:"api_secret"`
		}
		if json.Unmarshal(raw, &b) == nil {
			key, secret = b.Key, b.Secret
		}
	}
	return key, secret
}

func ckError(w http.ResponseWriter, status int, e, msg string) {
	b, _ := json.Marshal(map[string]string{"error": e, "message": msg})
	WriteJSON(w, status, "application/json; charset=utf-8", b)
}

func ckWrite(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	WriteJSON(w, 200, "application/json; charset=utf-8", b)
}

func ckState(s esp.Status) string {
	switch s {
	case esp.StatusUnsubscribed:
		return "cancelled"
	case esp.StatusBounced:
		return "bounced"
	case esp.StatusComplained:
		return "complained"
	}
	return "active"
}

func ckTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

type ckFakeState struct {
	mu     sync.Mutex
	fields []string // keys
	tags   []string // created tags (ids after the seeded lists)
}

func ckSubscriber(rec Record) map[string]any {
	fields := map[string]any{}
	for k, v := range rec.Fields {
		fields[k] = v
	}
	id, _ := strconv.Atoi(rec.ID)
	return map[string]any{"id": id, "first_name": nil, "email_address": rec.Email, "state": ckState(rec.Status),
		"created_at": ckTime(rec.Created), "fields": fields}
}

func convertkitRoutes(f *Fake, mux *http.ServeMux) {
	st := &ckFakeState{}
	// private calls need the secret; the middleware accepted key-only requests for public calls
	private := func(w http.ResponseWriter, r *http.Request) bool {
		if _, s := ckCreds(r); s != f.Secret() {
			ckError(w, 401, "Authorization Failed", "API Secret not valid")
			return false
		}
		return true
	}
	readBody := func(w http.ResponseWriter, r *http.Request, v any) bool {
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			ckError(w, 415, "Unsupported Media Type", "Content-Type must be application/json")
			return false
		}
		if err := json.NewDecoder(r.Body).Decode(v); err != nil {
			ckError(w, 400, "Bad Request", "Invalid JSON")
			return false
		}
		return true
	}
	mux.HandleFunc("GET /v3/account", func(w http.ResponseWriter, r *http.Request) {
		if !private(w, r) {
			return
		}
		ckWrite(w, map[string]any{"name": "Autofloss Fake", "plan_type": "creator", "primary_email_address": "owner@fake.invalid"})
	})
	allTags := func() []any {
		out := []any{}
		for l := 0; l < f.Lists(); l++ {
			id, _ := strconv.Atoi(f.ListID(l))
			out = append(out, map[string]any{"id": id, "name": fmt.Sprintf("Segment %d", l+1), "created_at": ckTime(time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC))})
		}
		st.mu.Lock()
		for n, t := range st.tags {
			out = append(out, map[string]any{"id": 5001 + f.Lists() + n, "name": t, "created_at": ckTime(time.Date(2023, 1, 2, 0, 0, 0, 0, time.UTC))})
		}
		st.mu.Unlock()
		return out
	}
	mux.HandleFunc("GET /v3/tags", func(w http.ResponseWriter, r *http.Request) { ckWrite(w, map[string]any{"tags": allTags()}) })
	mux.HandleFunc("GET /v3/subscribers", func(w http.ResponseWriter, r *http.Request) {
		if !private(w, r) {
			return
		}
		q := r.URL.Query()
		page := 1
		if s := q.Get("page"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				ckError(w, 422, "Unprocessable Entity", "page must be a positive integer")
				return
			}
			page = n
		}
		desc := false
		switch q.Get("sort_order") {
		case "", "asc":
		case "desc":
			desc = true
		default:
			ckError(w, 422, "Unprocessable Entity", "sort_order must be asc or desc")
			return
		}
		var idx []int
		var total int
		if s := q.Get("updated_from"); s != "" {
			day, err := time.Parse(time.DateOnly, s)
			if err != nil {
				ckError(w, 422, "Unprocessable Entity", "updated_from must be a date (YYYY-MM-DD)")
				return
			}
			for _, k := range f.Changed(-1, day, true) {
				idx = append(idx, k.Index)
			}
			sort.Ints(idx)
			total = len(idx)
		} else {
			total = f.Len(-1)
		}
		pages := max(int(math.Ceil(float64(total)/ckPerPage)), 1)
		off := (page - 1) * ckPerPage
		if desc {
			off = total - page*ckPerPage
		}
		var recs []Record
		switch {
		case idx != nil:
			for k := max(off, 0); k < len(idx) && k < off+ckPerPage; k++ {
				recs = append(recs, f.Record(idx[k]))
			}
		case off+ckPerPage > 0:
			recs = f.Slice(-1, max(off, 0), min(ckPerPage, off+ckPerPage))
		}
		if desc {
			sort.Slice(recs, func(a, b int) bool { return recs[a].Index > recs[b].Index })
		}
		subs := make([]any, 0, len(recs))
		for _, rec := range recs {
			subs = append(subs, ckSubscriber(rec))
		}
		ckWrite(w, map[string]any{"total_subscribers": total, "page": page, "total_pages": pages, "subscribers": subs})
	})
	subscriber := func(w http.ResponseWriter, id string) (int, bool) {
		i, ok := f.IndexOf(id)
		if !ok || !f.Alive(i, -1) {
			ckError(w, 404, "Not Found", "The entity you were trying to find doesn't exist")
			return 0, false
		}
		return i, true
	}
	mux.HandleFunc("GET /v3/subscribers/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !private(w, r) {
			return
		}
		i, ok := subscriber(w, r.PathValue("id"))
		if !ok {
			return
		}
		ckWrite(w, map[string]any{"subscriber": ckSubscriber(f.Record(i))})
	})
	mux.HandleFunc("PUT /v3/subscribers/{id}", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			Secret string            `json:"api_secret"`
			Fields map[string]string `json:"fields"`
		}
		if !readBody(w, r, &b) {
			return
		}
		if b.Secret != f.Secret() {
			ckError(w, 401, "Authorization Failed", "API Secret not valid")
			return
		}
		i, ok := subscriber(w, r.PathValue("id"))
		if !ok {
			return
		}
		st.mu.Lock()
		for k := range b.Fields {
			found := false
			for _, x := range st.fields {
				found = found || x == k
			}
			if !found {
				st.mu.Unlock()
				ckError(w, 422, "Unprocessable Entity", "Custom field "+k+" does not exist")
				return
			}
		}
		st.mu.Unlock()
		for k, v := range b.Fields {
			f.SetField(i, k, v)
		}
		ckWrite(w, map[string]any{"subscriber": ckSubscriber(f.Record(i))})
	})
	mux.HandleFunc("GET /v3/custom_fields", func(w http.ResponseWriter, r *http.Request) {
		st.mu.Lock()
		out := []any{}
		for n, k := range st.fields {
			out = append(out, map[string]any{"id": n + 1, "name": fmt.Sprintf("ck_field_%d_%s", n+1, k), "key": k, "label": k})
		}
		st.mu.Unlock()
		ckWrite(w, map[string]any{"custom_fields": out})
	})
	mux.HandleFunc("POST /v3/custom_fields", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			Secret string `json:"api_secret"`
			Label  string `json:"label"`
		}
		if !readBody(w, r, &b) {
			return
		}
		if b.Secret != f.Secret() {
			ckError(w, 401, "Authorization Failed", "API Secret not valid")
			return
		}
		key := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(b.Label), " ", "_"))
		if key == "" {
			ckError(w, 422, "Unprocessable Entity", "Label can't be blank")
			return
		}
		st.mu.Lock()
		for _, x := range st.fields {
			if x == key {
				st.mu.Unlock()
				ckError(w, 422, "Unprocessable Entity", "Label has already been taken")
				return
			}
		}
		st.fields = append(st.fields, key)
		id := len(st.fields)
		st.mu.Unlock()
		ckWrite(w, map[string]any{"id": id, "name": fmt.Sprintf("ck_field_%d_%s", id, key), "key": key, "label": b.Label})
	})
	mux.HandleFunc("POST /v3/tags", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			Secret string `json:"api_secret"`
			Tag    struct {
				Name string `json:"name"`
			} `json:"tag"`
		}
		if !readBody(w, r, &b) {
			return
		}
		if b.Secret != f.Secret() {
			ckError(w, 401, "Authorization Failed", "API Secret not valid")
			return
		}
		if b.Tag.Name == "" {
			ckError(w, 422, "Unprocessable Entity", "Name can't be blank")
			return
		}
		st.mu.Lock()
		for _, t := range st.tags {
			if t == b.Tag.Name {
				st.mu.Unlock()
				ckError(w, 422, "Unprocessable Entity", "Tag already exists")
				return
			}
		}
		st.tags = append(st.tags, b.Tag.Name)
		id := 5001 + f.Lists() + len(st.tags) - 1
		st.mu.Unlock()
		ckWrite(w, map[string]any{"id": id, "name": b.Tag.Name, "created_at": ckTime(time.Now())})
	})
	mux.HandleFunc("POST /v3/tags/{id}/subscribe", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			Key   string `json:"api_key"`
			Email string `json:"email"`
		}
		if !readBody(w, r, &b) {
			return
		}
		n, err := strconv.Atoi(r.PathValue("id"))
		st.mu.Lock()
		name := ""
		if k := n - 5001 - f.Lists(); err == nil && k >= 0 && k < len(st.tags) {
			name = st.tags[k]
		}
		st.mu.Unlock()
		if name == "" {
			ckError(w, 404, "Not Found", "Tag not found")
			return
		}
		i, ok := f.IndexOfEmail(strings.ToLower(b.Email))
		if !ok || !f.Alive(i, -1) {
			ckError(w, 404, "Not Found", "Subscriber not found")
			return
		}
		f.AddTag(i, name)
		rec := f.Record(i)
		ckWrite(w, map[string]any{"subscription": map[string]any{"id": i + 1, "state": "active", "subscribable_id": n, "subscribable_type": "tag",
			"subscriber": map[string]any{"id": rec.ID}}})
	})
	mux.HandleFunc("PUT /v3/unsubscribe", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			Secret string `json:"api_secret"`
			Email  string `json:"email"`
		}
		if !readBody(w, r, &b) {
			return
		}
		if b.Secret != f.Secret() {
			ckError(w, 401, "Authorization Failed", "API Secret not valid")
			return
		}
		i, ok := f.IndexOfEmail(strings.ToLower(b.Email))
		if !ok || !f.Alive(i, -1) {
			ckError(w, 404, "Not Found", "Subscriber not found")
			return
		}
		f.Unsubscribe(i)
		ckWrite(w, map[string]any{"subscriber": ckSubscriber(f.Record(i))})
	})
}
