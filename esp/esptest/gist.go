package esptest

import (
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

// Gist fake (esp-platforms.md § gist; Gist publishes no OpenAPI document). Enforces
// `Authorization: Bearer <key>` (401 otherwise), per_page 1–60 (400 above: the spec page's maximum),
// page ≥ 1, order_by created_at/updated_at with order asc/desc, page-number paging with a pages object, and
// 5 requests per second answered with 429 and Retry-After.
//
// Gist's own quirks are reproduced: contact ids are integers; every fifth contact carries
// unsubscribed_from_emails as a string ("false"/"true") instead of a boolean; an upsert that carries
// unsubscribed_from_emails overwrites the status — false re-subscribes the contact, and the fake records
// that as a violation, because the adapter must never send it except to unsubscribe. Tags are native: a
// POST /tags creates the tag when missing and applies it to the listed contacts. The fake's lists are tags
// ("Newsletter 1", …) carried by their members. Creating contacts is not modelled (404 for unknown ids).

func gistErr(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(map[string]any{"errors": []any{map[string]string{"code": code, "message": msg}}})
	WriteJSON(w, status, "application/json; charset=utf-8", b)
}

func gistSpec() Spec {
	return Spec{
		Slug:    "gist",
		Limits:  esp.Limits{Rate: 5, Burst: 5},
		PerList: false,
		ContactID: func(c SeedContact) string {
			return strconv.Itoa(31_000_000 + c.Index)
		},
		ListID:      func(l int) string { return strconv.Itoa(7001 + l) },
		Credentials: secretCredentials("api_key", "", "gist_0000000000000000000000000000"),
		Authorized:  headerSecret("Authorization", "Bearer "),
		Unauthorized: func(w http.ResponseWriter, r *http.Request) {
			gistErr(w, 401, "unauthorized", "Access Token Invalid")
		},
		Throttle: func(w http.ResponseWriter, wait time.Duration) {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			gistErr(w, 429, "rate_limit_exceeded", "Too many requests. Please slow down.")
		},
		ServerError: func(w http.ResponseWriter) {
			gistErr(w, 500, "server_error", "Something went wrong on our end.")
		},
		Routes: gistRoutes,
		Status: func(s esp.Status) esp.Status {
			switch s {
			case esp.StatusComplained:
				return esp.StatusUnsubscribed
			case esp.StatusBounced: // Gist has no bounce state on contacts
				return esp.StatusSubscribed
			}
			return s
		},
	}
}

func gistWrite(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	WriteJSON(w, status, "application/json; charset=utf-8", b)
}

type gistTags struct {
	mu    sync.Mutex
	ids   map[string]int // written tag name → id
	names []string
}

func (t *gistTags) id(name string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if id, ok := t.ids[name]; ok {
		return id
	}
	id := 9001 + len(t.names)
	t.ids[name] = id
	t.names = append(t.names, name)
	return id
}

func gistContact(f *Fake, tags *gistTags, rec Record) map[string]any {
	id, _ := strconv.Atoi(rec.ID)
	unsub := rec.Status == esp.StatusUnsubscribed
	var unsubOut any = unsub
	if rec.Index%5 == 3 { // Gist's quirk: sometimes a string
		unsubOut = strconv.FormatBool(unsub)
	}
	tl := make([]any, 0, len(rec.Lists)+len(rec.Tags))
	for _, l := range rec.Lists {
		lid, _ := strconv.Atoi(f.ListID(l))
		tl = append(tl, map[string]any{"id": lid, "name": fmt.Sprintf("Newsletter %d", l+1)})
	}
	for _, t := range rec.Tags {
		tl = append(tl, map[string]any{"id": tags.id(t), "name": t})
	}
	props := map[string]any{}
	for k, v := range rec.Fields {
		props[k] = v
	}
	return map[string]any{
		"type": "contact", "id": id, "email": rec.Email, "user_id": nil, "name": nil,
		"created_at": rec.Created.Unix(), "updated_at": rec.Updated.Unix(), "last_seen_at": nil,
		"unsubscribed_from_emails": unsubOut, "tags": tl, "custom_properties": props, "segments": []any{},
	}
}

func gistRoutes(f *Fake, mux *http.ServeMux) {
	tags := &gistTags{ids: map[string]int{}}
	find := func(w http.ResponseWriter, id, email string) (int, bool) {
		var i int
		ok := false
		switch {
		case id != "":
			i, ok = f.IndexOf(id)
		case email != "":
			i, ok = f.IndexOfEmail(strings.ToLower(email))
		}
		if !ok || !f.Alive(i, -1) {
			gistErr(w, 404, "not_found", "Contact Not Found")
			return 0, false
		}
		return i, true
	}

	mux.HandleFunc("GET /tags", func(w http.ResponseWriter, r *http.Request) {
		out := []any{}
		for l := 0; l < f.Lists(); l++ {
			lid, _ := strconv.Atoi(f.ListID(l))
			out = append(out, map[string]any{"id": lid, "name": fmt.Sprintf("Newsletter %d", l+1)})
		}
		tags.mu.Lock()
		for _, n := range tags.names {
			out = append(out, map[string]any{"id": tags.ids[n], "name": n})
		}
		tags.mu.Unlock()
		gistWrite(w, 200, map[string]any{"tags": out})
	})
	mux.HandleFunc("POST /tags", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Name     string `json:"name"`
			Contacts []struct {
				ID    json.RawMessage `json:"id"`
				Email string          `json:"email"`
			} `json:"contacts"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || strings.TrimSpace(body.Name) == "" {
			gistErr(w, 400, "parameter_invalid", "name is required")
			return
		}
		var idx []int
		for _, c := range body.Contacts {
			i, ok := find(w, strings.Trim(string(c.ID), `"`), c.Email)
			if !ok {
				return
			}
			idx = append(idx, i)
		}
		id := tags.id(body.Name)
		for _, i := range idx {
			f.AddTag(i, body.Name)
		}
		gistWrite(w, 200, map[string]any{"tag": map[string]any{"id": id, "name": body.Name}})
	})
	mux.HandleFunc("GET /contacts", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		num := func(name string, def, max int) (int, bool) {
			s := q.Get(name)
			if s == "" {
				return def, true
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > max {
				gistErr(w, 400, "parameter_invalid", fmt.Sprintf("%s must be between 1 and %d", name, max))
				return 0, false
			}
			return n, true
		}
		per, ok := num("per_page", 50, 60)
		if !ok {
			return
		}
		page, ok := num("page", 1, math.MaxInt32)
		if !ok {
			return
		}
		if ob := q.Get("order_by"); ob != "" && ob != "created_at" && ob != "updated_at" {
			gistErr(w, 400, "parameter_invalid", "order_by must be created_at or updated_at")
			return
		}
		order := q.Get("order")
		if order != "" && order != "asc" && order != "desc" {
			gistErr(w, 400, "parameter_invalid", "order must be asc or desc")
			return
		}
		total := f.Len(-1)
		var recs []Record
		if q.Get("order_by") == "updated_at" {
			keys := f.Changed(-1, time.Time{}, true)
			if order == "desc" {
				for a, b := 0, len(keys)-1; a < b; a, b = a+1, b-1 {
					keys[a], keys[b] = keys[b], keys[a]
				}
			}
			for k := (page - 1) * per; k < len(keys) && k < page*per; k++ {
				recs = append(recs, f.Record(keys[k].Index))
			}
		} else if order == "desc" {
			for k := total - 1 - (page-1)*per; k >= 0 && k > total-1-page*per; k-- {
				recs = append(recs, f.Slice(-1, k, 1)...)
			}
		} else {
			recs = f.Slice(-1, (page-1)*per, per)
		}
		out := make([]any, 0, len(recs))
		for _, rec := range recs {
			out = append(out, gistContact(f, tags, rec))
		}
		tp := (total + per - 1) / per
		pages := map[string]any{"page": page, "per_page": per, "total_pages": tp}
		if page < tp {
			nq := r.URL.Query()
			nq.Set("page", strconv.Itoa(page+1))
			pages["next"] = "https://api.getgist.com/contacts?" + nq.Encode()
		}
		gistWrite(w, 200, map[string]any{"contacts": out, "pages": pages})
	})
	mux.HandleFunc("POST /contacts", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			gistErr(w, 400, "parameter_invalid", "The request body is not valid JSON.")
			return
		}
		var email string
		_ = json.Unmarshal(body["email"], &email)
		id := strings.Trim(string(body["id"]), `"`)
		if id == "" && email == "" {
			gistErr(w, 400, "parameter_invalid", "id, user_id or email is required")
			return
		}
		i, ok := find(w, id, email)
		if !ok {
			return
		}
		if raw, ok := body["custom_properties"]; ok {
			var props map[string]any
			if err := json.Unmarshal(raw, &props); err != nil {
				gistErr(w, 400, "parameter_invalid", "custom_properties must be an object")
				return
			}
			for k, v := range props {
				s, isStr := v.(string)
				if !isStr {
					s = fmt.Sprint(v)
				}
				f.SetField(i, k, s)
			}
		}
		if raw, ok := body["unsubscribed_from_emails"]; ok {
			switch strings.ToLower(strings.Trim(string(raw), `"`)) {
			case "true", "1":
				f.Unsubscribe(i)
			default:
				// Writing false overwrites the status: the contact is subscribed again.
				f.mu.Lock()
				s := f.st(i)
				s.status = esp.StatusSubscribed
				s.updated = nowUTC()
				f.mu.Unlock()
				f.violation("gist: POST /contacts sent unsubscribed_from_emails=" + string(raw) + ": that overwrites the contact's status")
			}
		}
		gistWrite(w, 200, map[string]any{"contact": gistContact(f, tags, f.Record(i))})
	})
	mux.HandleFunc("GET /contacts/{id}", func(w http.ResponseWriter, r *http.Request) {
		if i, ok := find(w, r.PathValue("id"), ""); ok {
			gistWrite(w, 200, map[string]any{"contact": gistContact(f, tags, f.Record(i))})
		}
	})
	mux.HandleFunc("DELETE /contacts/{id}", func(w http.ResponseWriter, r *http.Request) {
		if i, ok := find(w, r.PathValue("id"), ""); ok {
			f.Delete(i)
			id, _ := strconv.Atoi(r.PathValue("id"))
			gistWrite(w, 200, map[string]any{"id": id, "deleted": true})
		}
	})
}
