package esptest

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/autofloss/autofloss/esp"
)

// Mailchimp fake (esp-platforms.md § mailchimp; no official document could be copied). Enforces HTTP Basic
// auth with the key as password, count ≤ 1000 (400 otherwise), offset paging with total_items, the
// since_last_changed filter (strictly after) with sort_field=last_changed, merge fields that must exist
// before a PATCH sets them (400 "Invalid Resource"), tags (204), archive by DELETE (204; 404 after), and
// the 10-simultaneous-connections limit answered with 429. Member state (fields, tags, status) is kept per
// contact, not per audience: a simplification that tests do not observe.

var mcDefaultMerge = []string{"FNAME", "LNAME", "ADDRESS", "PHONE", "BIRTHDAY"}

type mcState struct {
	mu    sync.Mutex
	merge map[int]map[string]bool // per list
}

var mcProblemN atomic.Int64

func mcProblem(w http.ResponseWriter, status int, title, detail string, errs []map[string]string) {
	body := map[string]any{
		"type":     "https://mailchimp.com/developer/marketing/docs/errors/",
		"title":    title,
		"status":   status,
		"detail":   detail,
		"instance": fmt.Sprintf("00000000-0000-4000-9000-%012d", mcProblemN.Add(1)%1e12),
	}
	if errs != nil {
		body["errors"] = errs
	}
	b, _ := json.Marshal(body)
	WriteJSON(w, status, "application/problem+json; charset=utf-8", b)
}

func mailchimpSpec() Spec {
	return Spec{
		Slug:    "mailchimp",
		Limits:  esp.Limits{Concurrency: 10},
		PerList: true,
		ContactID: func(c SeedContact) string {
			h := md5.Sum([]byte(strings.ToLower(c.Email)))
			return hex.EncodeToString(h[:])
		},
		ListID: func(l int) string { return fmt.Sprintf("a%09x", mix64(uint64(l)+11)>>28) },
		Credentials: func(f *Fake, good bool) map[string]string {
			if good {
				return map[string]string{"api_key": f.Secret() + "-us19"}
			}
			return map[string]string{"api_key": "00000000000000000000000000000000-us19"}
		},
		Authorized: func(f *Fake, r *http.Request) bool {
			_, p, ok := r.BasicAuth()
			return ok && p == f.Secret()+"-us19"
		},
		Unauthorized: func(w http.ResponseWriter, r *http.Request) {
			mcProblem(w, 401, "API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter.", nil)
		},
		Throttle: func(w http.ResponseWriter, _ time.Duration) {
			mcProblem(w, 429, "Too Many Requests", "You have exceeded the limit of 10 simultaneous connections.", nil)
		},
		ServerError: func(w http.ResponseWriter) {
			mcProblem(w, 500, "Internal Server Error", "An unexpected internal error has occurred.", nil)
		},
		Routes: mailchimpRoutes,
		Status: func(s esp.Status) esp.Status {
			if s == esp.StatusComplained { // abuse reports are unsubscribes on Mailchimp
				return esp.StatusUnsubscribed
			}
			return s
		},
		FieldName: esp.MailchimpMergeTag,
	}
}

func mcStatusName(s esp.Status) string {
	switch s {
	case esp.StatusUnsubscribed, esp.StatusComplained:
		return "unsubscribed"
	case esp.StatusBounced:
		return "cleaned"
	}
	return "subscribed"
}

func mcTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05+00:00") }

func mcWrite(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	WriteJSON(w, 200, "application/json; charset=utf-8", b)
}

func mcCount(w http.ResponseWriter, r *http.Request) (count, offset int, ok bool) {
	q := r.URL.Query()
	count, offset = 10, 0
	if s := q.Get("count"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			mcProblem(w, 400, "Invalid Resource", "The resource submitted could not be validated.", []map[string]string{{"field": "count", "message": "count must be between 1 and 1000"}})
			return 0, 0, false
		}
		count = n
	}
	if s := q.Get("offset"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			mcProblem(w, 400, "Invalid Resource", "The resource submitted could not be validated.", []map[string]string{{"field": "offset", "message": "offset must be a non-negative integer"}})
			return 0, 0, false
		}
		offset = n
	}
	return count, offset, true
}

type mcMemberOut struct {
	ID          string            `json:"id"`
	Email       string            `json:"email_address"`
	UniqueID    string            `json:"unique_email_id"`
	EmailType   string            `json:"email_type"`
	Status      string            `json:"status"`
	MergeFields map[string]string `json:"merge_fields,omitempty"`
	Tags        []map[string]any  `json:"tags"`
	Signup      string            `json:"timestamp_signup"`
	LastChanged string            `json:"last_changed"`
	ListID      string            `json:"list_id"`
	Links       []any             `json:"_links,omitempty"`
}

func mcMember(f *Fake, rec Record, l int, links bool) mcMemberOut {
	m := mcMemberOut{
		ID: rec.ID, Email: rec.Email, UniqueID: rec.ID[:10], EmailType: "html", Status: mcStatusName(rec.Status),
		MergeFields: map[string]string{"FNAME": "", "LNAME": ""}, Tags: []map[string]any{},
		Signup: mcTime(rec.Created), LastChanged: mcTime(rec.Updated), ListID: f.ListID(l),
	}
	for k, v := range rec.Fields {
		m.MergeFields[k] = v
	}
	for n, t := range rec.Tags {
		m.Tags = append(m.Tags, map[string]any{"id": n + 1, "name": t})
	}
	if links {
		m.Links = []any{map[string]string{"rel": "self", "href": f.URL() + "/3.0/lists/" + f.ListID(l) + "/members/" + rec.ID, "method": "GET"}}
	}
	return m
}

func mailchimpRoutes(f *Fake, mux *http.ServeMux) {
	st := &mcState{merge: map[int]map[string]bool{}}
	mergeOf := func(l int) map[string]bool {
		m := st.merge[l]
		if m == nil {
			m = map[string]bool{}
			for _, t := range mcDefaultMerge {
				m[t] = true
			}
			st.merge[l] = m
		}
		return m
	}
	list := func(w http.ResponseWriter, r *http.Request) (int, bool) {
		l, ok := f.ListIndex(r.PathValue("list"))
		if !ok {
			mcProblem(w, 404, "Resource Not Found", "The requested resource could not be found.", nil)
		}
		return l, ok
	}
	member := func(w http.ResponseWriter, r *http.Request) (i, l int, ok bool) {
		if l, ok = list(w, r); !ok {
			return
		}
		i, ok = f.IndexOf(r.PathValue("hash"))
		if !ok || !f.Alive(i, l) {
			mcProblem(w, 404, "Resource Not Found", "The requested resource could not be found.", nil)
			return 0, 0, false
		}
		return i, l, true
	}

	mux.HandleFunc("GET /3.0/ping", func(w http.ResponseWriter, r *http.Request) {
		mcWrite(w, map[string]string{"health_status": "Everything's Chimpy!"})
	})
	mux.HandleFunc("GET /3.0/lists", func(w http.ResponseWriter, r *http.Request) {
		count, offset, ok := mcCount(w, r)
		if !ok {
			return
		}
		lists := []any{}
		for l := offset; l < f.Lists() && l < offset+count; l++ {
			lists = append(lists, map[string]any{"id": f.ListID(l), "web_id": l + 1, "name": fmt.Sprintf("Audience %d", l+1),
				"stats": map[string]int{"member_count": f.Len(l)}})
		}
		mcWrite(w, map[string]any{"lists": lists, "total_items": f.Lists()})
	})
	mux.HandleFunc("GET /3.0/lists/{list}/members", func(w http.ResponseWriter, r *http.Request) {
		l, ok := list(w, r)
		if !ok {
			return
		}
		count, offset, ok := mcCount(w, r)
		if !ok {
			return
		}
		q := r.URL.Query()
		links := !strings.Contains(q.Get("exclude_fields"), "members._links")
		var recs []Record
		var total int
		if s := q.Get("since_last_changed"); s != "" {
			since, err := time.Parse(time.RFC3339, s)
			if err != nil {
				mcProblem(w, 400, "Invalid Resource", "The resource submitted could not be validated.", []map[string]string{{"field": "since_last_changed", "message": "invalid date"}})
				return
			}
			keys := f.Changed(l, since, false)
			if q.Get("sort_field") == "last_changed" && q.Get("sort_dir") == "DESC" {
				for a, b := 0, len(keys)-1; a < b; a, b = a+1, b-1 {
					keys[a], keys[b] = keys[b], keys[a]
				}
			}
			total = len(keys)
			for k := offset; k < len(keys) && k < offset+count; k++ {
				recs = append(recs, f.Record(keys[k].Index))
			}
		} else {
			total = f.Len(l)
			recs = f.Slice(l, offset, count)
		}
		out := make([]mcMemberOut, 0, len(recs))
		for _, rec := range recs {
			out = append(out, mcMember(f, rec, l, links))
		}
		mcWrite(w, map[string]any{"members": out, "list_id": f.ListID(l), "total_items": total})
	})
	mux.HandleFunc("GET /3.0/lists/{list}/members/{hash}", func(w http.ResponseWriter, r *http.Request) {
		i, l, ok := member(w, r)
		if !ok {
			return
		}
		mcWrite(w, mcMember(f, f.Record(i), l, false))
	})
	mux.HandleFunc("PATCH /3.0/lists/{list}/members/{hash}", func(w http.ResponseWriter, r *http.Request) {
		i, l, ok := member(w, r)
		if !ok {
			return
		}
		var body struct {
			Status      string            `json:"status"`
			MergeFields map[string]string `json:"merge_fields"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			mcProblem(w, 400, "JSON Schema Validation Failed", "The request body is not valid JSON.", nil)
			return
		}
		st.mu.Lock()
		known := mergeOf(l)
		var bad []map[string]string
		for k := range body.MergeFields {
			if !known[k] {
				bad = append(bad, map[string]string{"field": "merge_fields." + k, "message": "Merge field does not exist"})
			}
		}
		st.mu.Unlock()
		if bad != nil {
			mcProblem(w, 400, "Invalid Resource", "Your merge fields were invalid.", bad)
			return
		}
		switch body.Status {
		case "":
		case "unsubscribed":
			f.Unsubscribe(i)
		default:
			mcProblem(w, 400, "Invalid Resource", "The status is not supported by this fake.", nil)
			return
		}
		for k, v := range body.MergeFields {
			f.SetField(i, k, v)
		}
		mcWrite(w, mcMember(f, f.Record(i), l, false))
	})
	mux.HandleFunc("DELETE /3.0/lists/{list}/members/{hash}", func(w http.ResponseWriter, r *http.Request) {
		i, l, ok := member(w, r)
		if !ok {
			return
		}
		f.RemoveFromList(i, l)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /3.0/lists/{list}/members/{hash}/tags", func(w http.ResponseWriter, r *http.Request) {
		i, _, ok := member(w, r)
		if !ok {
			return
		}
		var body struct {
			Tags []struct {
				Name   string `json:"name"`
				Status string `json:"status"`
			} `json:"tags"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Tags) == 0 {
			mcProblem(w, 400, "Invalid Resource", "The resource submitted could not be validated.", nil)
			return
		}
		for _, t := range body.Tags {
			if t.Status == "active" && t.Name != "" {
				f.AddTag(i, t.Name)
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /3.0/lists/{list}/merge-fields", func(w http.ResponseWriter, r *http.Request) {
		l, ok := list(w, r)
		if !ok {
			return
		}
		if _, _, ok := mcCount(w, r); !ok {
			return
		}
		st.mu.Lock()
		var tags []string
		for t := range mergeOf(l) {
			tags = append(tags, t)
		}
		st.mu.Unlock()
		sort.Strings(tags)
		out := []any{}
		for n, t := range tags {
			out = append(out, map[string]any{"merge_id": n + 1, "tag": t, "name": t, "type": "text", "list_id": f.ListID(l)})
		}
		mcWrite(w, map[string]any{"merge_fields": out, "list_id": f.ListID(l), "total_items": len(out)})
	})
	mux.HandleFunc("POST /3.0/lists/{list}/merge-fields", func(w http.ResponseWriter, r *http.Request) {
		l, ok := list(w, r)
		if !ok {
			return
		}
		var body struct {
			Tag  string `json:"tag"`
			Name string `json:"name"`
			Type string `json:"type"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Name == "" || body.Type == "" {
			mcProblem(w, 400, "Invalid Resource", "The resource submitted could not be validated.", nil)
			return
		}
		if len(body.Tag) > 10 || body.Tag != strings.ToUpper(body.Tag) {
			mcProblem(w, 400, "Invalid Resource", "The merge tag is invalid.", []map[string]string{{"field": "tag", "message": "at most 10 upper-case characters"}})
			return
		}
		st.mu.Lock()
		m := mergeOf(l)
		dup := m[body.Tag]
		m[body.Tag] = true
		id := len(m)
		st.mu.Unlock()
		if dup {
			mcProblem(w, 400, "Invalid Resource", fmt.Sprintf("A Merge Field with the tag \"%s\" already exists for this list.", body.Tag), nil)
			return
		}
		mcWrite(w, map[string]any{"merge_id": id, "tag": body.Tag, "name": body.Name, "type": body.Type, "list_id": f.ListID(l)})
	})
}
