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

// ActiveCampaign fake (esp-platforms.md § activecampaign; no official document could be copied). Its URL
// stands for the scheme and host of the account's api_url; routes live under /api/3. Enforces the
// `Api-Token` header (403 {"message":…} otherwise), limit ≤ 100 (422 otherwise), keyset paging with
// orders[id] and id_greater (meta.total counts what the query, id_greater included, still matches, as a
// string), filters[updated_after] (strictly after), include=contactLists side-loading, custom fields that
// must exist before a value is written (perstag unique), tags created before they are applied, per-list
// status writes through contactLists (1 active, 2 unsubscribed), DELETE (404 after), JSON bodies on writes,
// and 5 requests/s per account answered with 429 and Retry-After (seconds).

const acFakeURL = "https://autofloss-fake.api-us1.com"

func activecampaignSpec() Spec {
	return Spec{
		Slug:      "activecampaign",
		Limits:    esp.Limits{Rate: 5, Burst: 5},
		PerList:   false,
		ContactID: func(c SeedContact) string { return strconv.Itoa(c.Index + 1) },
		ListID:    func(l int) string { return strconv.Itoa(l + 1) },
		Credentials: func(f *Fake, good bool) map[string]string {
			if good {
				return map[string]string{"api_url": acFakeURL, "api_key": f.Secret()}
			}
			return map[string]string{"api_url": acFakeURL, "api_key": strings.Repeat("0", 72)}
		},
		Authorized: headerSecret("Api-Token", ""),
		Unauthorized: func(w http.ResponseWriter, r *http.Request) {
			acMessage(w, 403, "You are not authorized to access this resource")
		},
		Throttle: func(w http.ResponseWriter, wait time.Duration) {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			acMessage(w, 429, "Too Many Requests")
		},
		ServerError: func(w http.ResponseWriter) { acMessage(w, 500, "Internal Server Error") },
		Routes:      activecampaignRoutes,
		Status: func(s esp.Status) esp.Status {
			if s == esp.StatusComplained { // complaints are not reported per list
				return esp.StatusUnsubscribed
			}
			return s
		},
	}
}

func acMessage(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]string{"message": msg})
	WriteJSON(w, status, "application/json", b)
}

// acErrors writes ActiveCampaign's validation answer (422 with errors[]).
func acErrors(w http.ResponseWriter, status int, title, code, pointer string) {
	e := map[string]any{"title": title, "detail": "", "code": code}
	if pointer != "" {
		e["source"] = map[string]string{"pointer": pointer}
	}
	b, _ := json.Marshal(map[string]any{"errors": []any{e}})
	WriteJSON(w, status, "application/json", b)
}

func acWrite(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	WriteJSON(w, status, "application/json", b)
}

// acFakeTime is ActiveCampaign's date format: ISO 8601 in the account's zone (America/Chicago here, fixed).
func acFakeTime(t time.Time) string {
	return t.In(time.FixedZone("CST", -6*3600)).Format("2006-01-02T15:04:05-07:00")
}

type acFakeState struct {
	mu      sync.Mutex
	fields  []acField // id = index + 1
	tags    []string  // id = index + 1
	nextCTg int
}

type acField struct{ title, perstag, typ string }

func acLimit(w http.ResponseWriter, r *http.Request) (limit, offset int, ok bool) {
	q := r.URL.Query()
	limit = 20
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			acErrors(w, 422, "The limit must be between 1 and 100", "invalid", "/limit")
			return 0, 0, false
		}
		limit = n
	}
	if s := q.Get("offset"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			acErrors(w, 422, "The offset must be a non-negative integer", "invalid", "/offset")
			return 0, 0, false
		}
		offset = n
	}
	return limit, offset, true
}

func acContactOut(f *Fake, rec Record) map[string]any {
	id := rec.ID
	return map[string]any{
		"id": id, "email": rec.Email, "cdate": acFakeTime(rec.Created), "udate": acFakeTime(rec.Updated),
		"firstName": "", "lastName": "", "phone": "", "deleted": "0",
		"links": map[string]string{"contactLists": f.URL() + "/api/3/contacts/" + id + "/contactLists"},
	}
}

// acListStatus is a membership's status: 1 active, 2 unsubscribed, 3 bounced.
func acListStatus(s esp.Status) string {
	switch s {
	case esp.StatusUnsubscribed, esp.StatusComplained:
		return "2"
	case esp.StatusBounced:
		return "3"
	}
	return "1"
}

func acContactLists(f *Fake, rec Record) []any {
	out := make([]any, 0, len(rec.Lists))
	for _, l := range rec.Lists {
		out = append(out, map[string]any{
			"id": strconv.Itoa(rec.Index*8 + l + 1), "contact": rec.ID, "list": f.ListID(l), "status": acListStatus(rec.Status),
		})
	}
	return out
}

func activecampaignRoutes(f *Fake, mux *http.ServeMux) {
	st := &acFakeState{}
	body := func(w http.ResponseWriter, r *http.Request, v any) bool {
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			acErrors(w, 415, "Content-Type must be application/json", "unsupported_media_type", "")
			return false
		}
		if err := json.NewDecoder(r.Body).Decode(v); err != nil {
			acErrors(w, 400, "Invalid JSON", "invalid", "")
			return false
		}
		return true
	}
	contact := func(w http.ResponseWriter, id string) (int, bool) {
		i, ok := f.IndexOf(id)
		if !ok || !f.Alive(i, -1) {
			acMessage(w, 404, "No Result found for Subscriber with id "+id)
			return 0, false
		}
		return i, true
	}
	// ids in bodies come as strings or numbers
	idOf := func(v json.Number) string { return v.String() }

	mux.HandleFunc("GET /api/3/lists", func(w http.ResponseWriter, r *http.Request) {
		limit, offset, ok := acLimit(w, r)
		if !ok {
			return
		}
		lists := []any{}
		for l := offset; l < f.Lists() && l < offset+limit; l++ {
			lists = append(lists, map[string]any{"id": f.ListID(l), "stringid": fmt.Sprintf("list-%d", l+1), "name": fmt.Sprintf("List %d", l+1)})
		}
		acWrite(w, 200, map[string]any{"lists": lists, "meta": map[string]string{"total": strconv.Itoa(f.Lists())}})
	})
	mux.HandleFunc("GET /api/3/contacts", func(w http.ResponseWriter, r *http.Request) {
		limit, offset, ok := acLimit(w, r)
		if !ok {
			return
		}
		q := r.URL.Query()
		desc := false
		switch q.Get("orders[id]") {
		case "", "ASC", "asc":
		case "DESC", "desc":
			desc = true
		default:
			acErrors(w, 422, "orders[id] must be ASC or DESC", "invalid", "/orders/id")
			return
		}
		after := int64(-1)
		if s := q.Get("id_greater"); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				acErrors(w, 422, "id_greater must be a non-negative integer", "invalid", "/id_greater")
				return
			}
			after = n - 1 // ids are index + 1
		}
		// The matching indexes in id order.
		var idx []int
		if s := q.Get("filters[updated_after]"); s != "" {
			var since time.Time
			var err error
			for _, l := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02"} {
				if since, err = time.Parse(l, s); err == nil {
					break
				}
			}
			if err != nil {
				acErrors(w, 422, "filters[updated_after] is not a valid date", "invalid", "/filters/updated_after")
				return
			}
			for _, k := range f.Changed(-1, since, false) {
				if int64(k.Index) > after {
					idx = append(idx, k.Index)
				}
			}
			sort.Ints(idx)
		}
		var page []int
		var total int
		switch {
		case q.Get("filters[updated_after]") != "":
			if desc {
				sort.Sort(sort.Reverse(sort.IntSlice(idx)))
			}
			total = len(idx)
			if offset < len(idx) {
				page = idx[offset:min(offset+limit, len(idx))]
			}
		case !desc:
			// Only the page is materialised; the count of what matches is the alive contacts above after.
			recs, _ := f.After(-1, int(after), offset+limit)
			for k := offset; k < len(recs); k++ {
				page = append(page, recs[k].Index)
			}
			total = f.Len(-1)
			for i := 0; i <= int(after) && i < f.N(); i++ {
				if f.Alive(i, -1) {
					total--
				}
			}
		default:
			recs, _ := f.After(-1, int(after), math.MaxInt32)
			for k := len(recs) - 1 - offset; k >= 0 && k > len(recs)-1-offset-limit; k-- {
				page = append(page, recs[k].Index)
			}
			total = len(recs)
		}
		contacts := make([]any, 0, len(page))
		cls := []any{}
		for _, i := range page {
			rec := f.Record(i)
			c := acContactOut(f, rec)
			if strings.Contains(q.Get("include"), "contactLists") {
				var ids []string
				for _, cl := range acContactLists(f, rec) {
					cls = append(cls, cl)
					ids = append(ids, cl.(map[string]any)["id"].(string))
				}
				c["contactLists"] = ids
			}
			contacts = append(contacts, c)
		}
		out := map[string]any{"contacts": contacts, "meta": map[string]any{"total": strconv.Itoa(total), "page_input": map[string]any{"limit": limit, "offset": offset}}}
		if strings.Contains(q.Get("include"), "contactLists") {
			out["contactLists"] = cls
		}
		acWrite(w, 200, out)
	})
	mux.HandleFunc("GET /api/3/contacts/{id}", func(w http.ResponseWriter, r *http.Request) {
		i, ok := contact(w, r.PathValue("id"))
		if !ok {
			return
		}
		rec := f.Record(i)
		fv := []any{}
		st.mu.Lock()
		for n, fl := range st.fields {
			if v, ok := rec.Fields[fl.title]; ok {
				fv = append(fv, map[string]any{"contact": rec.ID, "field": strconv.Itoa(n + 1), "value": v})
			}
		}
		st.mu.Unlock()
		acWrite(w, 200, map[string]any{"contact": acContactOut(f, rec), "contactLists": acContactLists(f, rec), "fieldValues": fv})
	})
	mux.HandleFunc("DELETE /api/3/contacts/{id}", func(w http.ResponseWriter, r *http.Request) {
		i, ok := contact(w, r.PathValue("id"))
		if !ok {
			return
		}
		if !f.Delete(i) {
			acMessage(w, 404, "No Result found for Subscriber with id "+r.PathValue("id"))
			return
		}
		acWrite(w, 200, map[string]any{})
	})
	mux.HandleFunc("GET /api/3/contacts/{id}/contactLists", func(w http.ResponseWriter, r *http.Request) {
		i, ok := contact(w, r.PathValue("id"))
		if !ok {
			return
		}
		acWrite(w, 200, map[string]any{"contactLists": acContactLists(f, f.Record(i))})
	})
	mux.HandleFunc("POST /api/3/contactLists", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			ContactList struct {
				List    json.Number `json:"list"`
				Contact json.Number `json:"contact"`
				Status  json.Number `json:"status"`
			} `json:"contactList"`
		}
		if !body(w, r, &b) {
			return
		}
		cl := b.ContactList
		l, ok := f.ListIndex(idOf(cl.List))
		if !ok {
			acErrors(w, 422, "List not found", "related_missing", "/data/attributes/list")
			return
		}
		i, ok := contact(w, idOf(cl.Contact))
		if !ok {
			return
		}
		if !f.Alive(i, l) {
			acErrors(w, 422, "The contact is not on this list", "invalid", "/data/attributes/list")
			return
		}
		switch cl.Status.String() {
		case "2":
			f.Unsubscribe(i)
		default:
			acErrors(w, 422, "This fake only records unsubscribes (status 2)", "invalid", "/data/attributes/status")
			return
		}
		rec := f.Record(i)
		acWrite(w, 201, map[string]any{"contacts": []any{acContactOut(f, rec)},
			"contactList": map[string]any{"list": f.ListID(l), "contact": rec.ID, "status": "2"}})
	})
	mux.HandleFunc("GET /api/3/fields", func(w http.ResponseWriter, r *http.Request) {
		limit, offset, ok := acLimit(w, r)
		if !ok {
			return
		}
		st.mu.Lock()
		out := []any{}
		for n := offset; n < len(st.fields) && n < offset+limit; n++ {
			fl := st.fields[n]
			out = append(out, map[string]any{"id": strconv.Itoa(n + 1), "title": fl.title, "perstag": fl.perstag, "type": fl.typ})
		}
		total := len(st.fields)
		st.mu.Unlock()
		acWrite(w, 200, map[string]any{"fields": out, "meta": map[string]string{"total": strconv.Itoa(total)}})
	})
	mux.HandleFunc("POST /api/3/fields", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			Field struct {
				Type    string `json:"type"`
				Title   string `json:"title"`
				Perstag string `json:"perstag"`
			} `json:"field"`
		}
		if !body(w, r, &b) {
			return
		}
		fl := b.Field
		if fl.Title == "" || fl.Type == "" {
			acErrors(w, 422, "Field title and type are required", "field_missing", "/data/attributes/title")
			return
		}
		tag := strings.ToUpper(fl.Perstag)
		if tag == "" {
			tag = strings.ToUpper(strings.ReplaceAll(fl.Title, " ", "_"))
		}
		st.mu.Lock()
		for _, x := range st.fields {
			if x.perstag == tag {
				st.mu.Unlock()
				acErrors(w, 422, "The personalization tag is already in use", "duplicate", "/data/attributes/perstag")
				return
			}
		}
		st.fields = append(st.fields, acField{title: fl.Title, perstag: tag, typ: fl.Type})
		id := len(st.fields)
		st.mu.Unlock()
		acWrite(w, 201, map[string]any{"field": map[string]any{"id": strconv.Itoa(id), "title": fl.Title, "perstag": tag, "type": fl.Type}})
	})
	mux.HandleFunc("POST /api/3/fieldValues", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			FieldValue struct {
				Contact json.Number `json:"contact"`
				Field   json.Number `json:"field"`
				Value   string      `json:"value"`
			} `json:"fieldValue"`
		}
		if !body(w, r, &b) {
			return
		}
		fv := b.FieldValue
		i, ok := contact(w, idOf(fv.Contact))
		if !ok {
			return
		}
		n, err := strconv.Atoi(idOf(fv.Field))
		st.mu.Lock()
		var fl acField
		found := err == nil && n >= 1 && n <= len(st.fields)
		if found {
			fl = st.fields[n-1]
		}
		st.mu.Unlock()
		if !found {
			acErrors(w, 422, "Field not found", "related_missing", "/data/attributes/field")
			return
		}
		f.SetField(i, fl.title, fv.Value)
		acWrite(w, 200, map[string]any{"contacts": []any{acContactOut(f, f.Record(i))},
			"fieldValue": map[string]any{"contact": idOf(fv.Contact), "field": strconv.Itoa(n), "value": fv.Value}})
	})
	mux.HandleFunc("GET /api/3/tags", func(w http.ResponseWriter, r *http.Request) {
		limit, offset, ok := acLimit(w, r)
		if !ok {
			return
		}
		search := strings.ToLower(r.URL.Query().Get("search"))
		st.mu.Lock()
		var match []any
		for n, t := range st.tags {
			if strings.Contains(strings.ToLower(t), search) {
				match = append(match, map[string]any{"id": strconv.Itoa(n + 1), "tag": t, "tagType": "contact"})
			}
		}
		st.mu.Unlock()
		out := []any{}
		if offset < len(match) {
			out = match[offset:min(offset+limit, len(match))]
		}
		acWrite(w, 200, map[string]any{"tags": out, "meta": map[string]string{"total": strconv.Itoa(len(match))}})
	})
	mux.HandleFunc("POST /api/3/tags", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			Tag struct {
				Tag     string `json:"tag"`
				TagType string `json:"tagType"`
			} `json:"tag"`
		}
		if !body(w, r, &b) {
			return
		}
		if b.Tag.Tag == "" {
			acErrors(w, 422, "Tag name is required", "field_missing", "/data/attributes/tag")
			return
		}
		st.mu.Lock()
		for _, t := range st.tags {
			if t == b.Tag.Tag {
				st.mu.Unlock()
				acErrors(w, 422, "The tag already exists", "duplicate", "/data/attributes/tag")
				return
			}
		}
		st.tags = append(st.tags, b.Tag.Tag)
		id := len(st.tags)
		st.mu.Unlock()
		acWrite(w, 201, map[string]any{"tag": map[string]any{"id": strconv.Itoa(id), "tag": b.Tag.Tag, "tagType": "contact"}})
	})
	mux.HandleFunc("POST /api/3/contactTags", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			ContactTag struct {
				Contact json.Number `json:"contact"`
				Tag     json.Number `json:"tag"`
			} `json:"contactTag"`
		}
		if !body(w, r, &b) {
			return
		}
		i, ok := contact(w, idOf(b.ContactTag.Contact))
		if !ok {
			return
		}
		n, err := strconv.Atoi(idOf(b.ContactTag.Tag))
		st.mu.Lock()
		var name string
		if err == nil && n >= 1 && n <= len(st.tags) {
			name = st.tags[n-1]
		}
		st.nextCTg++
		ctID := st.nextCTg
		st.mu.Unlock()
		if name == "" {
			acErrors(w, 422, "Tag not found", "related_missing", "/data/attributes/tag")
			return
		}
		f.AddTag(i, name)
		acWrite(w, 201, map[string]any{"contactTag": map[string]any{"id": strconv.Itoa(ctID), "contact": idOf(b.ContactTag.Contact), "tag": strconv.Itoa(n)}})
	})
}
