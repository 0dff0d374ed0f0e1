package esptest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/autofloss/autofloss/esp"
)

// Constant Contact fake (esp-platforms.md § constantcontact; no official document). Enforces `Authorization:
// Bearer <access_token>` (401 [{"error_key":"unauthorized",…}]), limit ≤ 500 (400), cursor paging through a
// RELATIVE `_links.next.href` (/v3/contacts?cursor=…), updated_after (strictly after), PUT /v3/contacts/{id}
// as a full replace that requires update_source and email_address, custom fields by id (created through
// /v3/contact_custom_fields), tags by id with the asynchronous taggings activity (201), 404 for missing
// contacts. Limits: 4 requests per second answered 429 [{"error_key":"throttled"}]; with the platform's own
// limits (no Options.Limits) also 10,000 requests per day answered 429 [{"error_key":"quota_exceeded"}].
// permission_to_send has no bounce or complaint state: those seed as unsubscribed.

// CCDailyQuota is the fake's daily request quota (the platform's 10,000), enforced only with the
// platform's own limits.
const CCDailyQuota = 10000

func constantcontactSpec() Spec {
	return Spec{
		Slug:    "constantcontact",
		Limits:  esp.Limits{Rate: 4, Burst: 4},
		PerList: false,
		ContactID: func(c SeedContact) string {
			return fmt.Sprintf("%08x-%04x-4%03x-8000-%012x", mix64(uint64(c.Index))>>32, c.Index>>16&0xffff, c.Index>>4&0xfff, c.Index)
		},
		ListID: func(l int) string { return fmt.Sprintf("%08x-0000-4000-9000-%012d", l+1, l+1) },
		Credentials: func(f *Fake, good bool) map[string]string {
			if good {
				return map[string]string{"access_token": f.Secret(), "refresh_token": "rt-" + f.Secret()}
			}
			return map[string]string{"access_token": "0000000000000000000000", "refresh_token": "rt-000000"}
		},
		Authorized: headerSecret("Authorization", "Bearer "),
		Unauthorized: func(w http.ResponseWriter, r *http.Request) {
			ccError(w, 401, "unauthorized", "Unauthorized")
		},
		Throttle: func(w http.ResponseWriter, _ time.Duration) {
			ccError(w, 429, "throttled", "Too many requests. Please try again later.")
		},
		ServerError: func(w http.ResponseWriter) {
			ccError(w, 500, "server_error", "There was a problem with our internal service.")
		},
		Routes: constantcontactRoutes,
		Status: func(s esp.Status) esp.Status {
			if s == esp.StatusBounced || s == esp.StatusComplained {
				return esp.StatusUnsubscribed
			}
			return s
		},
	}
}

func ccError(w http.ResponseWriter, status int, key, msg string) {
	b, _ := json.Marshal([]any{map[string]string{"error_key": key, "error_message": msg}})
	WriteJSON(w, status, "application/json", b)
}

func ccWrite(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	WriteJSON(w, status, "application/json", b)
}

type ccState struct {
	mu     sync.Mutex
	fields []string // custom field id = index → name
	tags   []string
	day    string
	count  int
}

func ccFieldID(i int) string { return fmt.Sprintf("cf000000-0000-4000-a000-%012d", i+1) }
func ccTagID(i int) string   { return fmt.Sprintf("7a900000-0000-4000-b000-%012d", i+1) }

func ccContact(f *Fake, rec Record, st *ccState) map[string]any {
	perm := "implicit"
	if rec.Status != esp.StatusSubscribed {
		perm = "unsubscribed"
	}
	lists := []string{}
	for _, l := range rec.Lists {
		lists = append(lists, f.ListID(l))
	}
	cfs := []any{}
	st.mu.Lock()
	for i, n := range st.fields {
		if v, ok := rec.Fields[n]; ok {
			cfs = append(cfs, map[string]any{"custom_field_id": ccFieldID(i), "value": v})
		}
	}
	var taggings []string
	for _, t := range rec.Tags {
		for i, n := range st.tags {
			if n == t {
				taggings = append(taggings, ccTagID(i))
			}
		}
	}
	st.mu.Unlock()
	return map[string]any{
		"contact_id": rec.ID,
		"email_address": map[string]any{"address": rec.Email, "permission_to_send": perm,
			"created_at": rec.Created.UTC().Format(time.RFC3339), "updated_at": rec.Updated.UTC().Format(time.RFC3339)},
		"first_name": "", "last_name": "", "create_source": "Account", "update_source": "Account",
		"created_at": rec.Created.UTC().Format(time.RFC3339), "updated_at": rec.Updated.UTC().Format(time.RFC3339),
		"list_memberships": lists, "custom_fields": cfs, "taggings": taggings,
	}
}

func constantcontactRoutes(f *Fake, mux *http.ServeMux) {
	st := &ccState{}
	quota := f.opts.Limits == nil
	limitOf := func(w http.ResponseWriter, r *http.Request, def int) (int, bool) {
		s := r.URL.Query().Get("limit")
		if s == "" {
			return def, true
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			ccError(w, 400, "query.param.invalid", "The limit must be between 1 and 500.")
			return 0, false
		}
		return n, true
	}
	contact := func(w http.ResponseWriter, r *http.Request) (int, bool) {
		i, ok := f.IndexOf(r.PathValue("id"))
		if !ok || !f.Alive(i, -1) {
			ccError(w, 404, "not_found", "The requested resource was not found.")
			return 0, false
		}
		return i, true
	}
	handle := func(pattern string, h http.HandlerFunc) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if quota {
				day := time.Now().UTC().Format(time.DateOnly)
				st.mu.Lock()
				if st.day != day {
					st.day, st.count = day, 0
				}
				st.count++
				over := st.count > CCDailyQuota
				st.mu.Unlock()
				if over {
					f.stats.throttled.Add(1)
					ccError(w, 429, "quota_exceeded", "The daily request quota of this application is exhausted.")
					return
				}
			}
			h(w, r)
		})
	}

	handle("GET /v3/contact_lists", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := limitOf(w, r, 50); !ok {
			return
		}
		lists := []any{}
		for l := 0; l < f.Lists(); l++ {
			lists = append(lists, map[string]any{"list_id": f.ListID(l), "name": fmt.Sprintf("List %d", l+1), "membership_count": f.Len(l)})
		}
		ccWrite(w, 200, map[string]any{"lists": lists, "lists_count": len(lists)})
	})
	handle("GET /v3/contacts", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit, ok := limitOf(w, r, 50)
		if !ok {
			return
		}
		if s := q.Get("status"); s != "" && s != "all" && s != "active" && s != "unsubscribed" {
			ccError(w, 400, "query.param.invalid", "Invalid status.")
			return
		}
		var since time.Time
		if s := q.Get("updated_after"); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				ccError(w, 400, "query.param.invalid", "updated_after must be an ISO-8601 date-time.")
				return
			}
			since = t
		}
		// The cursor token: "a<last index>" (keyset, full reads) or "u<offset>" (incremental reads).
		cur := q.Get("cursor")
		var recs []Record
		more := false
		next := url.Values{}
		next.Set("limit", strconv.Itoa(limit))
		for _, k := range []string{"status", "updated_after"} {
			if v := q.Get(k); v != "" {
				next.Set(k, v)
			}
		}
		if since.IsZero() {
			after := -1
			if cur != "" {
				n, err := strconv.Atoi(strings.TrimPrefix(cur, "a"))
				if err != nil || !strings.HasPrefix(cur, "a") {
					ccError(w, 400, "query.param.invalid", "Invalid cursor.")
					return
				}
				after = n
			}
			recs, more = f.After(-1, after, limit)
			if more && len(recs) > 0 {
				next.Set("cursor", "a"+strconv.Itoa(recs[len(recs)-1].Index))
			}
		} else {
			off := 0
			if cur != "" {
				n, err := strconv.Atoi(strings.TrimPrefix(cur, "u"))
				if err != nil || !strings.HasPrefix(cur, "u") {
					ccError(w, 400, "query.param.invalid", "Invalid cursor.")
					return
				}
				off = n
			}
			keys := f.Changed(-1, since, false)
			for k := off; k < len(keys) && k < off+limit; k++ {
				recs = append(recs, f.Record(keys[k].Index))
			}
			more = off+limit < len(keys)
			next.Set("cursor", "u"+strconv.Itoa(off+limit))
		}
		out := make([]any, 0, len(recs))
		for _, rec := range recs {
			out = append(out, ccContact(f, rec, st))
		}
		body := map[string]any{"contacts": out}
		if more {
			body["_links"] = map[string]any{"next": map[string]string{"href": "/v3/contacts?" + next.Encode()}}
		}
		ccWrite(w, 200, body)
	})
	handle("GET /v3/contacts/{id}", func(w http.ResponseWriter, r *http.Request) {
		i, ok := contact(w, r)
		if !ok {
			return
		}
		ccWrite(w, 200, ccContact(f, f.Record(i), st))
	})
	handle("DELETE /v3/contacts/{id}", func(w http.ResponseWriter, r *http.Request) {
		i, ok := contact(w, r)
		if !ok {
			return
		}
		f.Delete(i)
		w.WriteHeader(http.StatusNoContent)
	})
	handle("PUT /v3/contacts/{id}", func(w http.ResponseWriter, r *http.Request) {
		i, ok := contact(w, r)
		if !ok {
			return
		}
		var body struct {
			UpdateSource string `json:"update_source"`
			Email        *struct {
				Address    string `json:"address"`
				Permission string `json:"permission_to_send"`
			} `json:"email_address"`
			CustomFields []struct {
				ID    string `json:"custom_field_id"`
				Value string `json:"value"`
			} `json:"custom_fields"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			ccError(w, 400, "json.parse.error", "The request body is not valid JSON.")
			return
		}
		if body.UpdateSource != "Account" && body.UpdateSource != "Contact" {
			ccError(w, 400, "json.field.invalid", "update_source is required (Account or Contact).")
			return
		}
		if body.Email == nil || !strings.EqualFold(body.Email.Address, f.Record(i).Email) {
			ccError(w, 400, "json.field.invalid", "email_address.address is required (this fake does not change addresses).")
			return
		}
		names := map[string]string{}
		st.mu.Lock()
		for _, cf := range body.CustomFields {
			found := false
			for k := range st.fields {
				if ccFieldID(k) == cf.ID {
					names[st.fields[k]] = cf.Value
					found = true
				}
			}
			if !found {
				st.mu.Unlock()
				ccError(w, 400, "json.field.invalid", "Unknown custom_field_id.")
				return
			}
		}
		st.mu.Unlock()
		if body.Email.Permission == "unsubscribed" && f.Record(i).Status != esp.StatusUnsubscribed {
			f.Unsubscribe(i)
		}
		for n, v := range names {
			if f.Record(i).Fields[n] != v {
				f.SetField(i, n, v)
			}
		}
		ccWrite(w, 200, ccContact(f, f.Record(i), st))
	})
	list := func(pattern, key, idKey string, names *[]string, id func(int) string, field string) {
		handle("GET "+pattern, func(w http.ResponseWriter, r *http.Request) {
			limit, ok := limitOf(w, r, 50)
			if !ok {
				return
			}
			after := -1
			if c := r.URL.Query().Get("cursor"); c != "" {
				n, err := strconv.Atoi(c)
				if err != nil {
					ccError(w, 400, "query.param.invalid", "Invalid cursor.")
					return
				}
				after = n
			}
			st.mu.Lock()
			out := []any{}
			k := after + 1
			for ; k < len(*names) && len(out) < limit; k++ {
				out = append(out, map[string]any{idKey: id(k), field: (*names)[k], "type": "string"})
			}
			more := k < len(*names)
			st.mu.Unlock()
			body := map[string]any{key: out}
			if more {
				body["_links"] = map[string]any{"next": map[string]string{"href": fmt.Sprintf("%s?limit=%d&cursor=%d", pattern, limit, k-1)}}
			}
			ccWrite(w, 200, body)
		})
		handle("POST "+pattern, func(w http.ResponseWriter, r *http.Request) {
			var body map[string]any
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
				ccError(w, 400, "json.parse.error", "The request body is not valid JSON.")
				return
			}
			n, _ := body[field].(string)
			if strings.TrimSpace(n) == "" {
				ccError(w, 400, "json.field.invalid", field+" is required.")
				return
			}
			st.mu.Lock()
			defer st.mu.Unlock()
			for _, x := range *names {
				if x == n {
					ccError(w, 409, "conflict", "An object with this "+field+" already exists.")
					return
				}
			}
			*names = append(*names, n)
			ccWrite(w, 201, map[string]any{idKey: id(len(*names) - 1), field: n, "type": "string"})
		})
	}
	list("/v3/contact_custom_fields", "custom_fields", "custom_field_id", &st.fields, ccFieldID, "label")
	list("/v3/contact_tags", "tags", "tag_id", &st.tags, ccTagID, "name")
	handle("POST /v3/activities/contacts_taggings_add", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Source struct {
				ContactIDs []string `json:"contact_ids"`
			} `json:"source"`
			TagIDs []string `json:"tag_ids"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Source.ContactIDs) == 0 || len(body.TagIDs) == 0 {
			ccError(w, 400, "json.field.invalid", "source.contact_ids and tag_ids are required.")
			return
		}
		var names []string
		st.mu.Lock()
		for _, t := range body.TagIDs {
			found := false
			for k, n := range st.tags {
				if ccTagID(k) == t {
					names, found = append(names, n), true
				}
			}
			if !found {
				st.mu.Unlock()
				ccError(w, 400, "json.field.invalid", "Unknown tag id.")
				return
			}
		}
		st.mu.Unlock()
		for _, id := range body.Source.ContactIDs {
			if i, ok := f.IndexOf(id); ok && f.Alive(i, -1) {
				for _, n := range names {
					f.AddTag(i, n)
				}
			}
		}
		ccWrite(w, 201, map[string]any{"activity_id": fmt.Sprintf("act-%d", time.Now().UnixNano()), "state": "initialized"})
	})
}
