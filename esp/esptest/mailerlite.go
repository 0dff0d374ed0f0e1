package esptest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/autofloss/autofloss/esp"
)

// MailerLite fake (esp-platforms.md § mailerlite; no official document). Enforces `Authorization: Bearer`,
// `Accept: application/json` (406 otherwise: MailerLite is a Laravel app that answers HTML without it),
// limit ≤ 100 on GET /subscribers (422 with Laravel's validation body), cursor paging (meta.next_cursor,
// links.next; the cursor is an opaque base64 keyset position), 120 requests per minute answered with 429
// `{"message":"Too Many Attempts."}`, Retry-After and X-RateLimit-* headers. Custom fields must exist
// before a PUT sets them (422 otherwise); tags are groups (POST /groups, then
// POST /subscribers/{id}/groups/{group_id}). Statuses: complained is reported as `junk`.

var mliteDefaultFields = []string{"name", "last_name", "company", "country", "city", "phone", "state", "z_i_p"}

type mliteState struct {
	mu     sync.Mutex
	fields []string          // keys, in creation order
	groups []mliteGroupState // created groups (tags), after the seeded lists
}

type mliteGroupState struct{ id, name string }

func mailerliteSpec() Spec {
	return Spec{
		Slug:    "mailerlite",
		Limits:  esp.Limits{Rate: 1.95, Burst: 2},
		PerList: false,
		ContactID: func(c SeedContact) string {
			return strconv.FormatUint(70000000000000000+uint64(c.Index)*1000003+mix64(uint64(c.Index))%1000003, 10)
		},
		ListID:      func(l int) string { return strconv.FormatUint(60000000000000000+uint64(l)*7919, 10) },
		Credentials: secretCredentials("api_key", "", "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.invalid"),
		Authorized:  headerSecret("Authorization", "Bearer "),
		Unauthorized: func(w http.ResponseWriter, r *http.Request) {
			mliteJSON(w, 401, map[string]any{"message": "Unauthenticated."})
		},
		Throttle: func(w http.ResponseWriter, wait time.Duration) {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds())))) // 0 for injected faults
			w.Header().Set("X-RateLimit-Limit", "120")
			w.Header().Set("X-RateLimit-Remaining", "0")
			mliteJSON(w, 429, map[string]any{"message": "Too Many Attempts."})
		},
		ServerError: func(w http.ResponseWriter) {
			mliteJSON(w, 500, map[string]any{"message": "Server Error"})
		},
		Routes: mailerliteRoutes,
		Status: func(s esp.Status) esp.Status { return s },
	}
}

func mliteJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	WriteJSON(w, status, "application/json", b)
}

func mliteInvalid(w http.ResponseWriter, field, msg string) {
	mliteJSON(w, 422, map[string]any{"message": msg, "errors": map[string][]string{field: {msg}}})
}

func mliteNotFound(w http.ResponseWriter) {
	mliteJSON(w, 404, map[string]any{"message": "Resource not found."})
}

func mliteStatusName(s esp.Status) string {
	switch s {
	case esp.StatusUnsubscribed:
		return "unsubscribed"
	case esp.StatusBounced:
		return "bounced"
	case esp.StatusComplained:
		return "junk"
	}
	return "active"
}

func mliteTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }

func mliteSubscriber(f *Fake, st *mliteState, rec Record) map[string]any {
	fields := map[string]any{}
	st.mu.Lock()
	for _, k := range st.fields {
		fields[k] = nil
	}
	st.mu.Unlock()
	for k, v := range rec.Fields {
		fields[k] = v
	}
	groups := []any{}
	for _, t := range rec.Tags {
		if id := st.groupID(t); id != "" {
			groups = append(groups, map[string]any{"id": id, "name": t})
		}
	}
	var unsubAt any
	if rec.Status == esp.StatusUnsubscribed {
		unsubAt = mliteTime(rec.Updated)
	}
	return map[string]any{
		"id": rec.ID, "email": rec.Email, "status": mliteStatusName(rec.Status), "source": "api",
		"sent": 0, "opens_count": 0, "clicks_count": 0, "open_rate": 0, "click_rate": 0, "ip_address": nil,
		"subscribed_at": mliteTime(rec.Created), "unsubscribed_at": unsubAt,
		"created_at": mliteTime(rec.Created), "updated_at": mliteTime(rec.Updated),
		"fields": fields, "groups": groups, "opted_in_at": nil, "optin_ip": nil,
	}
}

func (st *mliteState) groupID(name string) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, g := range st.groups {
		if g.name == name {
			return g.id
		}
	}
	return ""
}

func mliteFieldKey(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(name)) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

type mliteCursor struct {
	After int  `json:"subscribers.id"`
	Next  bool `json:"_pointsToNextItems"`
}

func mailerliteRoutes(f *Fake, mux *http.ServeMux) {
	st := &mliteState{fields: append([]string(nil), mliteDefaultFields...)}
	h := func(pattern string, fn http.HandlerFunc) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if !strings.Contains(r.Header.Get("Accept"), "application/json") {
				mliteJSON(w, 406, map[string]any{"message": "The Accept header must be application/json."})
				return
			}
			fn(w, r)
		})
	}
	subscriber := func(w http.ResponseWriter, r *http.Request) (int, bool) {
		i, ok := f.IndexOf(r.PathValue("id"))
		if !ok || !f.Alive(i, -1) {
			mliteNotFound(w)
			return 0, false
		}
		return i, true
	}
	pageArgs := func(w http.ResponseWriter, r *http.Request, def, maxLimit int) (limit, page int, ok bool) {
		q := r.URL.Query()
		limit, page = def, 1
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				mliteInvalid(w, "limit", "The limit must be at least 1.")
				return 0, 0, false
			}
			if n > maxLimit {
				mliteInvalid(w, "limit", fmt.Sprintf("The limit must not be greater than %d.", maxLimit))
				return 0, 0, false
			}
			limit = n
		}
		if s := q.Get("page"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				mliteInvalid(w, "page", "The page must be at least 1.")
				return 0, 0, false
			}
			page = n
		}
		return limit, page, true
	}
	paged := func(w http.ResponseWriter, r *http.Request, items []any, limit, page int) {
		if items == nil {
			items = []any{}
		}
		total := len(items)
		last := max(1, (total+limit-1)/limit)
		from := min((page-1)*limit, total)
		to := min(from+limit, total)
		mliteJSON(w, 200, map[string]any{
			"data":  items[from:to],
			"links": map[string]any{"first": nil, "last": nil, "prev": nil, "next": nil},
			"meta":  map[string]any{"current_page": page, "from": from + 1, "last_page": last, "per_page": limit, "to": to, "total": total, "path": f.URL() + r.URL.Path},
		})
	}

	h("GET /api/groups", func(w http.ResponseWriter, r *http.Request) {
		limit, page, ok := pageArgs(w, r, 25, 1000)
		if !ok {
			return
		}
		name := r.URL.Query().Get("filter[name]")
		var items []any
		add := func(id, n string) {
			if name == "" || strings.Contains(strings.ToLower(n), strings.ToLower(name)) {
				items = append(items, map[string]any{"id": id, "name": n, "active_count": 0, "sent_count": 0, "opens_count": 0,
					"open_rate": map[string]any{"float": 0, "string": "0%"}, "created_at": "2024-01-01 00:00:00"})
			}
		}
		for l := 0; l < f.Lists(); l++ {
			add(f.ListID(l), fmt.Sprintf("Group %d", l+1))
		}
		st.mu.Lock()
		for _, g := range st.groups {
			add(g.id, g.name)
		}
		st.mu.Unlock()
		paged(w, r, items, limit, page)
	})
	h("POST /api/groups", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Name string `json:"name"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Name == "" || len(body.Name) > 255 {
			mliteInvalid(w, "name", "The name field is required.")
			return
		}
		st.mu.Lock()
		id := strconv.FormatUint(61000000000000000+uint64(len(st.groups)+1)*7919, 10)
		st.groups = append(st.groups, mliteGroupState{id: id, name: body.Name})
		st.mu.Unlock()
		mliteJSON(w, 201, map[string]any{"data": map[string]any{"id": id, "name": body.Name, "active_count": 0, "created_at": mliteTime(time.Now())}})
	})
	h("GET /api/fields", func(w http.ResponseWriter, r *http.Request) {
		limit, page, ok := pageArgs(w, r, 100, 100)
		if !ok {
			return
		}
		st.mu.Lock()
		items := make([]any, 0, len(st.fields))
		for n, k := range st.fields {
			items = append(items, map[string]any{"id": strconv.Itoa(n + 1), "name": k, "key": k, "type": "text"})
		}
		st.mu.Unlock()
		paged(w, r, items, limit, page)
	})
	h("POST /api/fields", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Name string `json:"name"`
			Type string `json:"type"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Name == "" {
			mliteInvalid(w, "name", "The name field is required.")
			return
		}
		if body.Type != "text" && body.Type != "number" && body.Type != "date" {
			mliteInvalid(w, "type", "The selected type is invalid.")
			return
		}
		key := mliteFieldKey(body.Name)
		st.mu.Lock()
		for _, k := range st.fields {
			if k == key {
				st.mu.Unlock()
				mliteInvalid(w, "name", "The name has already been taken.")
				return
			}
		}
		st.fields = append(st.fields, key)
		id := len(st.fields)
		st.mu.Unlock()
		mliteJSON(w, 201, map[string]any{"data": map[string]any{"id": strconv.Itoa(id), "name": body.Name, "key": key, "type": body.Type}})
	})
	h("GET /api/subscribers", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit := 25
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				mliteInvalid(w, "limit", "The limit must be at least 1.")
				return
			}
			if n > 100 {
				mliteInvalid(w, "limit", "The limit must not be greater than 100.")
				return
			}
			limit = n
		}
		var want string
		if s := q.Get("filter[status]"); s != "" {
			switch s {
			case "active", "unsubscribed", "unconfirmed", "bounced", "junk":
				want = s
			default:
				mliteInvalid(w, "filter.status", "The selected filter.status is invalid.")
				return
			}
		}
		after := -1
		if c := q.Get("cursor"); c != "" {
			var cur mliteCursor
			b, err := base64.RawURLEncoding.DecodeString(c)
			if err != nil || json.Unmarshal(b, &cur) != nil || !cur.Next || cur.After < 0 {
				mliteInvalid(w, "cursor", "The cursor is invalid.")
				return
			}
			after = cur.After
		}
		var recs []Record
		more := false
		for len(recs) < limit {
			batch, m := f.After(-1, after, limit-len(recs))
			for _, rec := range batch {
				after = rec.Index
				if want == "" || mliteStatusName(rec.Status) == want {
					recs = append(recs, rec)
				}
			}
			if more = m; !m {
				break
			}
		}
		data := make([]any, 0, len(recs))
		for _, rec := range recs {
			data = append(data, mliteSubscriber(f, st, rec))
		}
		var next, nextURL any
		if more {
			b, _ := json.Marshal(mliteCursor{After: after, Next: true})
			c := base64.RawURLEncoding.EncodeToString(b)
			next, nextURL = c, f.URL()+"/api/subscribers?cursor="+c
		}
		mliteJSON(w, 200, map[string]any{
			"data":  data,
			"links": map[string]any{"first": nil, "last": nil, "prev": nil, "next": nextURL},
			"meta":  map[string]any{"path": f.URL() + "/api/subscribers", "per_page": limit, "next_cursor": next, "prev_cursor": nil},
		})
	})
	h("GET /api/subscribers/{id}", func(w http.ResponseWriter, r *http.Request) {
		i, ok := subscriber(w, r)
		if !ok {
			return
		}
		mliteJSON(w, 200, map[string]any{"data": mliteSubscriber(f, st, f.Record(i))})
	})
	h("PUT /api/subscribers/{id}", func(w http.ResponseWriter, r *http.Request) {
		i, ok := subscriber(w, r)
		if !ok {
			return
		}
		var body struct {
			Fields map[string]*string `json:"fields"`
			Status string             `json:"status"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			mliteJSON(w, 400, map[string]any{"message": "The request body is not valid JSON."})
			return
		}
		st.mu.Lock()
		known := map[string]bool{}
		for _, k := range st.fields {
			known[k] = true
		}
		st.mu.Unlock()
		for k := range body.Fields {
			if !known[k] {
				mliteInvalid(w, "fields."+k, "The selected fields."+k+" is invalid.")
				return
			}
		}
		switch body.Status {
		case "":
		case "unsubscribed":
			f.Unsubscribe(i)
		case "active", "unconfirmed", "bounced", "junk":
			mliteInvalid(w, "status", "This fake only supports unsubscribing.")
			return
		default:
			mliteInvalid(w, "status", "The selected status is invalid.")
			return
		}
		for k, v := range body.Fields {
			val := ""
			if v != nil {
				val = *v
			}
			f.SetField(i, k, val)
		}
		mliteJSON(w, 200, map[string]any{"data": mliteSubscriber(f, st, f.Record(i))})
	})
	h("POST /api/subscribers/{id}/groups/{group}", func(w http.ResponseWriter, r *http.Request) {
		i, ok := subscriber(w, r)
		if !ok {
			return
		}
		gid := r.PathValue("group")
		var name string
		if l, ok := f.ListIndex(gid); ok {
			name = fmt.Sprintf("Group %d", l+1)
		} else {
			st.mu.Lock()
			for _, g := range st.groups {
				if g.id == gid {
					name = g.name
				}
			}
			st.mu.Unlock()
		}
		if name == "" {
			mliteNotFound(w)
			return
		}
		if _, seeded := f.ListIndex(gid); !seeded {
			f.AddTag(i, name)
		}
		mliteJSON(w, 200, map[string]any{"data": map[string]any{"id": gid, "name": name}})
	})
	h("DELETE /api/subscribers/{id}", func(w http.ResponseWriter, r *http.Request) {
		i, ok := subscriber(w, r)
		if !ok {
			return
		}
		f.Delete(i)
		w.WriteHeader(http.StatusNoContent)
	})
}
