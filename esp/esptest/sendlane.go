package esptest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/autofloss/autofloss/esp"
)

// Sendlane fake (esp-platforms.md § sendlane; no official document). Enforces `Authorization: Bearer <key>`
// (401 {"message":"Unauthenticated."}), page ≥ 1 and limit 1–100 (422 with a Laravel validation body),
// page-number paging with links.next and meta.last_page, 240 requests per minute answered with a bare 429
// {"message":"Too Many Attempts."} (no headers), 404 {"message":"No query results …"} for missing contacts.
// Contacts are per list (ids index+1, list ids 9001+l); tags are objects with ids ("mf_failed - …" tags
// are created through POST /v2/tags before POST /v2/contacts/{id}/tags can attach them).

func sendlaneSpec() Spec {
	return Spec{
		Slug:        "sendlane",
		Limits:      esp.Limits{Rate: 4, Burst: 6},
		PerList:     true,
		ContactID:   func(c SeedContact) string { return strconv.Itoa(c.Index + 1) },
		ListID:      func(l int) string { return strconv.Itoa(9001 + l) },
		Credentials: secretCredentials("api_key", "", "0000000000000000000000000000000000000000"),
		Authorized:  headerSecret("Authorization", "Bearer "),
		Unauthorized: func(w http.ResponseWriter, r *http.Request) {
			slMessage(w, 401, "Unauthenticated.", nil)
		},
		Throttle: func(w http.ResponseWriter, _ time.Duration) {
			slMessage(w, 429, "Too Many Attempts.", nil)
		},
		ServerError: func(w http.ResponseWriter) {
			slMessage(w, 500, "Server Error", nil)
		},
		Routes: sendlaneRoutes,
	}
}

func slMessage(w http.ResponseWriter, status int, msg string, errs map[string][]string) {
	body := map[string]any{"message": msg}
	if errs != nil {
		body["errors"] = errs
	}
	b, _ := json.Marshal(body)
	WriteJSON(w, status, "application/json", b)
}

func slWrite(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	WriteJSON(w, status, "application/json", b)
}

func slStatus(s esp.Status) string {
	switch s {
	case esp.StatusUnsubscribed, esp.StatusBounced, esp.StatusComplained:
		return string(s)
	}
	return "subscribed"
}

func slTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

func slContact(rec Record) map[string]any {
	return map[string]any{
		"id": rec.Index + 1, "email": rec.Email, "first_name": "", "last_name": "", "phone": nil,
		"status": slStatus(rec.Status), "created_at": slTime(rec.Created), "updated_at": slTime(rec.Updated),
	}
}

// slPaging reads page and limit (defaults 1 and 25, like Laravel paginators).
func slPaging(w http.ResponseWriter, r *http.Request) (page, limit int, ok bool) {
	q := r.URL.Query()
	page, limit = 1, 25
	if s := q.Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			slMessage(w, 422, "The page must be at least 1.", map[string][]string{"page": {"The page must be at least 1."}})
			return 0, 0, false
		}
		page = n
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			slMessage(w, 422, "The limit may not be greater than 100.", map[string][]string{"limit": {"The limit must be between 1 and 100."}})
			return 0, 0, false
		}
		limit = n
	}
	return page, limit, true
}

// slPage writes one Laravel-style page of total items.
func slPage(w http.ResponseWriter, r *http.Request, f *Fake, data []any, page, limit, total int) {
	last := max((total+limit-1)/limit, 1)
	link := func(p int) any {
		if p < 1 || p > last {
			return nil
		}
		return fmt.Sprintf("%s%s?page=%d&limit=%d", f.URL(), r.URL.Path, p, limit)
	}
	from, to := (page-1)*limit+1, (page-1)*limit+len(data)
	var fromV, toV any
	if len(data) > 0 {
		fromV, toV = from, to
	}
	slWrite(w, 200, map[string]any{
		"data":  data,
		"links": map[string]any{"first": link(1), "last": link(last), "prev": link(page - 1), "next": link(page + 1)},
		"meta": map[string]any{"current_page": page, "from": fromV, "last_page": last, "path": f.URL() + r.URL.Path,
			"per_page": limit, "to": toV, "total": total},
	})
}

func sendlaneRoutes(f *Fake, mux *http.ServeMux) {
	var tmu sync.Mutex
	var tags []string // tag id = index+1
	contact := func(w http.ResponseWriter, r *http.Request) (int, bool) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil || !f.Alive(id-1, -1) {
			slMessage(w, 404, "No query results for model [App\\Models\\Contact].", nil)
			return 0, false
		}
		return id - 1, true
	}

	mux.HandleFunc("GET /v2/lists", func(w http.ResponseWriter, r *http.Request) {
		page, limit, ok := slPaging(w, r)
		if !ok {
			return
		}
		data := []any{}
		for l := (page - 1) * limit; l < f.Lists() && l < page*limit; l++ {
			data = append(data, map[string]any{"id": 9001 + l, "name": fmt.Sprintf("List %d", l+1), "subscriber_count": f.Len(l)})
		}
		slPage(w, r, f, data, page, limit, f.Lists())
	})
	mux.HandleFunc("GET /v2/lists/{list}/contacts", func(w http.ResponseWriter, r *http.Request) {
		l, ok := f.ListIndex(r.PathValue("list"))
		if !ok {
			slMessage(w, 404, "No query results for model [App\\Models\\MailingList].", nil)
			return
		}
		page, limit, ok := slPaging(w, r)
		if !ok {
			return
		}
		data := []any{}
		for _, rec := range f.Slice(l, (page-1)*limit, limit) {
			data = append(data, slContact(rec))
		}
		slPage(w, r, f, data, page, limit, f.Len(l))
	})
	mux.HandleFunc("GET /v2/contacts/{id}", func(w http.ResponseWriter, r *http.Request) {
		i, ok := contact(w, r)
		if !ok {
			return
		}
		slWrite(w, 200, map[string]any{"data": slContact(f.Record(i))})
	})
	mux.HandleFunc("DELETE /v2/contacts/{id}", func(w http.ResponseWriter, r *http.Request) {
		i, ok := contact(w, r)
		if !ok {
			return
		}
		f.Delete(i)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /v2/contacts/{id}/unsubscribe", func(w http.ResponseWriter, r *http.Request) {
		i, ok := contact(w, r)
		if !ok {
			return
		}
		f.Unsubscribe(i)
		slWrite(w, 200, map[string]any{"data": slContact(f.Record(i))})
	})
	mux.HandleFunc("GET /v2/tags", func(w http.ResponseWriter, r *http.Request) {
		page, limit, ok := slPaging(w, r)
		if !ok {
			return
		}
		tmu.Lock()
		data := []any{}
		for t := (page - 1) * limit; t < len(tags) && t < page*limit; t++ {
			data = append(data, map[string]any{"id": t + 1, "name": tags[t]})
		}
		n := len(tags)
		tmu.Unlock()
		slPage(w, r, f, data, page, limit, n)
	})
	mux.HandleFunc("POST /v2/tags", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Name string `json:"name"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || strings.TrimSpace(body.Name) == "" {
			slMessage(w, 422, "The name field is required.", map[string][]string{"name": {"The name field is required."}})
			return
		}
		tmu.Lock()
		for _, t := range tags {
			if t == body.Name {
				tmu.Unlock()
				slMessage(w, 422, "The name has already been taken.", map[string][]string{"name": {"The name has already been taken."}})
				return
			}
		}
		tags = append(tags, body.Name)
		id := len(tags)
		tmu.Unlock()
		slWrite(w, 201, map[string]any{"data": map[string]any{"id": id, "name": body.Name}})
	})
	mux.HandleFunc("POST /v2/contacts/{id}/tags", func(w http.ResponseWriter, r *http.Request) {
		i, ok := contact(w, r)
		if !ok {
			return
		}
		var body struct {
			TagIDs []int `json:"tag_ids"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.TagIDs) == 0 {
			slMessage(w, 422, "The tag ids field is required.", map[string][]string{"tag_ids": {"The tag ids field is required."}})
			return
		}
		var names []string
		tmu.Lock()
		for _, id := range body.TagIDs {
			if id < 1 || id > len(tags) {
				tmu.Unlock()
				slMessage(w, 422, "The selected tag ids is invalid.", map[string][]string{"tag_ids": {"The selected tag ids is invalid."}})
				return
			}
			names = append(names, tags[id-1])
		}
		tmu.Unlock()
		for _, n := range names {
			f.AddTag(i, n)
		}
		slWrite(w, 200, map[string]any{"data": slContact(f.Record(i))})
	})
}
