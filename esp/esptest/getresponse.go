package esptest

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/autofloss/autofloss/esp"
)

// GetResponse fake (esp-platforms.md § getresponse; the official OpenAPI document could not be copied).
// Enforces `X-Auth-Token: api-key <key>` (401 code 1014 otherwise), perPage ≤ 1000 (400 code 1000), page
// paging with bare-array bodies and the TotalCount / TotalPages / CurrentPage headers, the changedOn filter
// (query[changedOn][from], inclusive, date or date-time) with sort[changedOn], custom fields that must exist
// (created with POST /v3/custom-fields, set by id), tag names ^[_a-zA-Z0-9]{2,64}$ (400 otherwise), and
// 80 requests/s with 10 concurrent, answered with 429 code 1015 and context.timeToReset.
//
// Simplifications the shared suite forces (its identity is one id per seeded contact): a contact in two
// campaigns has the same contactId in both (GetResponse would give each membership its own), so DELETE
// removes it from both; GET /v3/contacts keeps listing an unsubscribed contact (GetResponse would drop it)
// because the suite expects every contact not deleted; every contact is reported subscribed (the platform
// has no status field). Tags are recorded for assertions in autofloss's form: the wire name
// `mf_failed_<reason>` (the only form the platform accepts) is recorded as `mf_failed - <reason>`.

var (
	grTagName   = regexp.MustCompile(`^[_a-zA-Z0-9]{2,64}$`)
	grFieldName = regexp.MustCompile(`^[_a-z0-9]{1,32}$`)
	grUUID      atomic.Int64
)

type grState struct {
	mu     sync.Mutex
	fields []grField // custom fields, in creation order
	tags   []grField // tags (id, name)
}

type grField struct{ id, name string }

func grID(prefix string, n uint64) string {
	const digits = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	var b []byte
	for n > 0 || len(b) == 0 {
		b = append(b, digits[n%62])
		n /= 62
	}
	return prefix + string(b)
}

func getresponseSpec() Spec {
	return Spec{
		Slug:        "getresponse",
		Limits:      esp.Limits{Rate: 49, Burst: 80, Concurrency: 10},
		PerList:     true,
		ContactID:   func(c SeedContact) string { return grID("", uint64(c.Index)*1000003+916132832) },
		ListID:      func(l int) string { return grID("V", uint64(l)*7919+3844) },
		Credentials: secretCredentials("api_key", "", "jfgs8jh4k5jhf7bq2l3k4j5h6g7f8d9s"),
		Authorized:  headerSecret("X-Auth-Token", "api-key "),
		Unauthorized: func(w http.ResponseWriter, r *http.Request) {
			grError(w, 401, 1014, "Problem during authentication process, check headers!",
				"Unable to authenticate request. Check credentials or authentication method details", map[string]any{"authenticationType": "auth_token"})
		},
		Throttle: func(w http.ResponseWriter, wait time.Duration) {
			s := math.Ceil(wait.Seconds()*1000) / 1000
			w.Header().Set("X-RateLimit-Limit", "30000")
			w.Header().Set("X-RateLimit-Remaining", "0")
			w.Header().Set("X-RateLimit-Reset", strconv.FormatFloat(s, 'f', -1, 64))
			grError(w, 429, 1015, "The throttling limit has been reached", "Too many requests", map[string]any{"timeToReset": s})
		},
		ServerError: func(w http.ResponseWriter) {
			grError(w, 500, 1, "Internal error", "Internal server error", []any{})
		},
		Routes: getresponseRoutes,
		Status: func(esp.Status) esp.Status { return esp.StatusSubscribed },
	}
}

func grError(w http.ResponseWriter, status, code int, desc, msg string, ctx any) {
	b, _ := json.Marshal(map[string]any{
		"httpStatus": status, "code": code, "codeDescription": desc, "message": msg,
		"moreInfo": fmt.Sprintf("https://app.getresponse.com/api/docs/errors/%d", code), "context": ctx,
		"uuid": fmt.Sprintf("00000000-0000-4000-a000-%012d", grUUID.Add(1)%1e12),
	})
	WriteJSON(w, status, "application/json", b)
}

func grInvalid(w http.ResponseWriter, field, why string) {
	grError(w, 400, 1000, "General error of validation process, more details should be in context section",
		"Request validation error", []any{map[string]any{"fieldName": []string{field}, "errorDescription": why}})
}

func grNotFound(w http.ResponseWriter) {
	grError(w, 404, 1013, "Resource not found", "Resource not found", []any{})
}

func grTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05+0000") }

func grWrite(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	WriteJSON(w, status, "application/json", b)
}

// grPage writes one page of a bare-array collection with GetResponse's paging headers.
func grPage(w http.ResponseWriter, items []any, total, page, perPage int) {
	if items == nil {
		items = []any{}
	}
	pages := (total + perPage - 1) / perPage
	w.Header().Set("TotalCount", strconv.Itoa(total))
	w.Header().Set("TotalPages", strconv.Itoa(pages))
	w.Header().Set("CurrentPage", strconv.Itoa(page))
	grWrite(w, 200, items)
}

func grPaging(w http.ResponseWriter, r *http.Request) (page, perPage int, ok bool) {
	q := r.URL.Query()
	page, perPage = 1, 100
	if s := q.Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			grInvalid(w, "page", "This value should be 1 or more.")
			return 0, 0, false
		}
		page = n
	}
	if s := q.Get("perPage"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			grInvalid(w, "perPage", "This value should be 1 or more.")
			return 0, 0, false
		}
		if n > 1000 {
			grInvalid(w, "perPage", "This value should be 1000 or less.")
			return 0, 0, false
		}
		perPage = n
	}
	return page, perPage, true
}

func grSlice(items []any, page, perPage int) []any {
	from := min((page-1)*perPage, len(items))
	return items[from:min(from+perPage, len(items))]
}

func getresponseRoutes(f *Fake, mux *http.ServeMux) {
	st := &grState{}
	campaign := func(l int) map[string]any {
		return map[string]any{"campaignId": f.ListID(l), "name": fmt.Sprintf("campaign_%d", l+1), "href": f.URL() + "/v3/campaigns/" + f.ListID(l)}
	}
	contact := func(rec Record, l int, full bool) map[string]any {
		c := map[string]any{
			"contactId": rec.ID, "href": f.URL() + "/v3/contacts/" + rec.ID, "name": "", "origin": "api",
			"timeZone": "UTC", "activities": f.URL() + "/v3/contacts/" + rec.ID + "/activities",
			"changedOn": grTime(rec.Updated), "createdOn": grTime(rec.Created), "campaign": campaign(l),
			"email": rec.Email, "dayOfCycle": nil, "scoring": nil, "engagementScore": nil, "note": nil, "ipAddress": "127.0.0.1",
		}
		if full {
			tags := []any{}
			for _, t := range rec.Tags {
				name := t
				if r, ok := strings.CutPrefix(t, "mf_failed - "); ok {
					name = "mf_failed_" + r
				}
				st.mu.Lock()
				for _, x := range st.tags {
					if x.name == name {
						tags = append(tags, map[string]any{"tagId": x.id, "name": x.name, "href": f.URL() + "/v3/tags/" + x.id, "color": ""})
					}
				}
				st.mu.Unlock()
			}
			cfv := []any{}
			st.mu.Lock()
			for _, fd := range st.fields {
				if v, ok := rec.Fields[fd.name]; ok {
					cfv = append(cfv, map[string]any{"customFieldId": fd.id, "name": fd.name, "value": []string{v}, "values": []string{v},
						"type": "text", "fieldType": "text", "valueType": "string"})
				}
			}
			st.mu.Unlock()
			c["tags"], c["customFieldValues"] = tags, cfv
		}
		return c
	}
	find := func(w http.ResponseWriter, r *http.Request) (int, bool) {
		i, ok := f.IndexOf(r.PathValue("id"))
		if !ok || !f.Alive(i, -1) {
			grNotFound(w)
			return 0, false
		}
		return i, true
	}
	newsletter := func(l int) string { return "nl" + f.ListID(l) }

	mux.HandleFunc("GET /v3/campaigns", func(w http.ResponseWriter, r *http.Request) {
		page, per, ok := grPaging(w, r)
		if !ok {
			return
		}
		var items []any
		for l := 0; l < f.Lists(); l++ {
			items = append(items, campaign(l))
		}
		grPage(w, grSlice(items, page, per), len(items), page, per)
	})
	mux.HandleFunc("GET /v3/contacts", func(w http.ResponseWriter, r *http.Request) {
		page, per, ok := grPaging(w, r)
		if !ok {
			return
		}
		q := r.URL.Query()
		offset := (page - 1) * per
		var out []any
		total := 0
		if s := q.Get("query[changedOn][from]"); s != "" {
			var since time.Time
			var err error
			for _, layout := range []string{"2006-01-02T15:04:05-0700", time.RFC3339, "2006-01-02 15:04:05", "2006-01-02"} {
				if since, err = time.Parse(layout, s); err == nil {
					break
				}
			}
			if err != nil {
				grInvalid(w, "query[changedOn][from]", "This value is not a valid date.")
				return
			}
			if sd := q.Get("sort[changedOn]"); sd != "" && sd != "ASC" && sd != "DESC" {
				grInvalid(w, "sort[changedOn]", "The value you selected is not a valid choice.")
				return
			}
			for _, k := range f.Changed(-1, since, true) {
				rec := f.Record(k.Index)
				for _, l := range rec.Lists {
					if total >= offset && total < offset+per {
						out = append(out, contact(rec, l, false))
					}
					total++
				}
			}
		} else {
			o := offset
			for l := 0; l < f.Lists(); l++ {
				n := f.Len(l)
				total += n
				if o >= n || len(out) >= per {
					o = max(o-n, 0)
					continue
				}
				for _, rec := range f.Slice(l, o, per-len(out)) {
					out = append(out, contact(rec, l, false))
				}
				o = 0
			}
		}
		grPage(w, out, total, page, per)
	})
	mux.HandleFunc("GET /v3/contacts/{id}", func(w http.ResponseWriter, r *http.Request) {
		i, ok := find(w, r)
		if !ok {
			return
		}
		rec := f.Record(i)
		grWrite(w, 200, contact(rec, rec.Lists[0], true))
	})
	mux.HandleFunc("DELETE /v3/contacts/{id}", func(w http.ResponseWriter, r *http.Request) {
		i, ok := find(w, r)
		if !ok {
			return
		}
		if m := r.URL.Query().Get("messageId"); m != "" {
			rec := f.Record(i)
			for _, l := range rec.Lists {
				if newsletter(l) == m { // unsubscribe "as if the unsubscribe link of message m was clicked"
					f.Unsubscribe(i)
					w.WriteHeader(http.StatusNoContent)
					return
				}
			}
			grInvalid(w, "messageId", "Message not found for this contact.")
			return
		}
		f.Delete(i)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /v3/contacts/{id}/custom-fields", func(w http.ResponseWriter, r *http.Request) {
		i, ok := find(w, r)
		if !ok {
			return
		}
		var body struct {
			Values []struct {
				ID    string   `json:"customFieldId"`
				Value []string `json:"value"`
			} `json:"customFieldValues"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Values) == 0 {
			grInvalid(w, "customFieldValues", "This value should not be blank.")
			return
		}
		names := make([]string, len(body.Values))
		st.mu.Lock()
		for n, v := range body.Values {
			for _, fd := range st.fields {
				if fd.id == v.ID {
					names[n] = fd.name
				}
			}
		}
		st.mu.Unlock()
		for n, v := range body.Values {
			if names[n] == "" {
				grError(w, 400, 1002, "Forbidden/invalid resource", "Custom field not found", map[string]any{"customFieldId": v.ID})
				return
			}
			if len(v.Value) != 1 {
				grInvalid(w, "customFieldValues.value", "A text field takes exactly one value.")
				return
			}
		}
		for n, v := range body.Values {
			f.SetField(i, names[n], v.Value[0])
		}
		rec := f.Record(i)
		grWrite(w, 200, contact(rec, rec.Lists[0], true))
	})
	mux.HandleFunc("POST /v3/contacts/{id}/tags", func(w http.ResponseWriter, r *http.Request) {
		i, ok := find(w, r)
		if !ok {
			return
		}
		var body struct {
			Tags []struct {
				ID string `json:"tagId"`
			} `json:"tags"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Tags) == 0 {
			grInvalid(w, "tags", "This value should not be blank.")
			return
		}
		var names []string
		st.mu.Lock()
		for _, t := range body.Tags {
			for _, x := range st.tags {
				if x.id == t.ID {
					names = append(names, x.name)
				}
			}
		}
		st.mu.Unlock()
		if len(names) != len(body.Tags) {
			grError(w, 400, 1002, "Forbidden/invalid resource", "Tag not found", []any{})
			return
		}
		for _, n := range names {
			if r, ok := strings.CutPrefix(n, "mf_failed_"); ok {
				n = esp.FailedTag(r)
			}
			f.AddTag(i, n)
		}
		rec := f.Record(i)
		grWrite(w, 200, contact(rec, rec.Lists[0], true))
	})
	mux.HandleFunc("GET /v3/custom-fields", func(w http.ResponseWriter, r *http.Request) {
		page, per, ok := grPaging(w, r)
		if !ok {
			return
		}
		var items []any
		st.mu.Lock()
		for _, fd := range st.fields {
			items = append(items, map[string]any{"customFieldId": fd.id, "name": fd.name, "type": "text", "valueType": "string",
				"format": "text", "fieldType": "text", "hidden": "false", "values": []string{}, "href": f.URL() + "/v3/custom-fields/" + fd.id})
		}
		st.mu.Unlock()
		grPage(w, grSlice(items, page, per), len(items), page, per)
	})
	mux.HandleFunc("POST /v3/custom-fields", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Name   string   `json:"name"`
			Type   string   `json:"type"`
			Hidden string   `json:"hidden"`
			Values []string `json:"values"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || !grFieldName.MatchString(body.Name) {
			grInvalid(w, "name", "This value is not valid.")
			return
		}
		if body.Type != "text" || body.Hidden == "" || body.Values == nil {
			grInvalid(w, "type", "type, hidden and values are required.")
			return
		}
		st.mu.Lock()
		for _, fd := range st.fields {
			if fd.name == body.Name {
				st.mu.Unlock()
				grError(w, 409, 1008, "Requested resource already exists", "Custom field with this name already exists", []any{})
				return
			}
		}
		fd := grField{id: grID("cf", uint64(len(st.fields)+1)*97), name: body.Name}
		st.fields = append(st.fields, fd)
		st.mu.Unlock()
		grWrite(w, 201, map[string]any{"customFieldId": fd.id, "name": fd.name, "type": "text", "valueType": "string",
			"format": "text", "fieldType": "text", "hidden": body.Hidden, "values": []string{}, "href": f.URL() + "/v3/custom-fields/" + fd.id})
	})
	mux.HandleFunc("GET /v3/tags", func(w http.ResponseWriter, r *http.Request) {
		page, per, ok := grPaging(w, r)
		if !ok {
			return
		}
		name := r.URL.Query().Get("query[name]")
		var items []any
		st.mu.Lock()
		for _, x := range st.tags {
			if name == "" || strings.Contains(x.name, name) {
				items = append(items, map[string]any{"tagId": x.id, "name": x.name, "href": f.URL() + "/v3/tags/" + x.id, "color": "", "createdAt": grTime(time.Now())})
			}
		}
		st.mu.Unlock()
		grPage(w, grSlice(items, page, per), len(items), page, per)
	})
	mux.HandleFunc("POST /v3/tags", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Name string `json:"name"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || !grTagName.MatchString(body.Name) {
			grInvalid(w, "name", "This value is not valid. Allowed: ^[_a-zA-Z0-9]{2,64}$")
			return
		}
		st.mu.Lock()
		for _, x := range st.tags {
			if x.name == body.Name {
				st.mu.Unlock()
				grError(w, 409, 1008, "Requested resource already exists", "Tag with this name already exists", []any{})
				return
			}
		}
		x := grField{id: grID("tg", uint64(len(st.tags)+1)*89), name: body.Name}
		st.tags = append(st.tags, x)
		st.mu.Unlock()
		grWrite(w, 201, map[string]any{"tagId": x.id, "name": x.name, "href": f.URL() + "/v3/tags/" + x.id, "color": "", "createdAt": grTime(time.Now())})
	})
	mux.HandleFunc("GET /v3/newsletters", func(w http.ResponseWriter, r *http.Request) {
		page, per, ok := grPaging(w, r)
		if !ok {
			return
		}
		cid := r.URL.Query().Get("query[campaignId]")
		var items []any
		for l := 0; l < f.Lists(); l++ {
			if cid == "" || cid == f.ListID(l) {
				items = append(items, map[string]any{"newsletterId": newsletter(l), "name": "Welcome", "subject": "Welcome",
					"type": "broadcast", "status": "enabled", "campaign": campaign(l), "createdOn": grTime(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))})
			}
		}
		grPage(w, grSlice(items, page, per), len(items), page, per)
	})
}
