package esptest

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/esp/internal/jsonw"
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
			key, dc := strings.CutSuffix(p, "-us19")
			return ok && dc && key == f.Secret()
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

// The member fields the fake writes, in its order; a member body is written by mcAppendMember (the hot
// path of page reads and write-backs), byte for byte what encoding/json writes for the same member
// (TestMailchimpMemberEncoding keeps the two equal).
const (
	mcfID = 1 << iota
	mcfEmail
	mcfUniqueID
	mcfEmailType
	mcfStatus
	mcfMerge
	mcfTags
	mcfSignup
	mcfLastChanged
	mcfListID
	mcfLinks
	mcfAll = 1<<iota - 1
)

var mcMemberFieldNames = map[string]uint16{
	"id": mcfID, "email_address": mcfEmail, "unique_email_id": mcfUniqueID, "email_type": mcfEmailType,
	"status": mcfStatus, "merge_fields": mcfMerge, "tags": mcfTags, "timestamp_signup": mcfSignup,
	"last_changed": mcfLastChanged, "list_id": mcfListID, "_links": mcfLinks,
}

// mcExclude returns the member fields to write given the request's exclude_fields (Mailchimp's
// comma-separated dot paths; prefix is "members." on a member page, "" for one member). Paths outside the
// member, and the fields parameter, are not interpreted (the fake writes no top-level _links; the adapter
// asks for member fields with exclude_fields only).
func mcExclude(excl, prefix string) uint16 {
	mask := uint16(mcfAll)
	for excl != "" {
		var p string
		p, excl, _ = strings.Cut(excl, ",")
		if name, ok := strings.CutPrefix(strings.TrimSpace(p), prefix); ok {
			mask &^= mcMemberFieldNames[name]
		}
	}
	return mask
}

// mcAppendMember appends member rec of list l with the fields of mask (merge_fields and tags as the
// platform writes them: FNAME and LNAME always present, tags as {id, name}).
func mcAppendMember(b []byte, f *Fake, rec Record, l int, mask uint16) []byte {
	b = append(b, '{')
	sep := func() {
		if b[len(b)-1] != '{' {
			b = append(b, ',')
		}
	}
	if mask&mcfID != 0 {
		b = append(b, `"id":`...)
		b = jsonw.String(b, rec.ID)
	}
	if mask&mcfEmail != 0 {
		sep()
		b = append(b, `"email_address":`...)
		b = jsonw.String(b, rec.Email)
	}
	if mask&mcfUniqueID != 0 {
		sep()
		b = append(b, `"unique_email_id":`...)
		b = jsonw.String(b, rec.ID[:10])
	}
	if mask&mcfEmailType != 0 {
		sep()
		b = append(b, `"email_type":"html"`...)
	}
	if mask&mcfStatus != 0 {
		sep()
		b = append(b, `"status":`...)
		b = jsonw.String(b, mcStatusName(rec.Status))
	}
	if mask&mcfMerge != 0 {
		sep()
		b = append(b, `"merge_fields":`...)
		if len(rec.Fields) == 0 {
			b = append(b, `{"FNAME":"","LNAME":""}`...)
		} else {
			m := make(map[string]string, len(rec.Fields)+2)
			m["FNAME"], m["LNAME"] = "", ""
			for k, v := range rec.Fields {
				m[k] = v
			}
			b = jsonw.StringMap(b, m)
		}
	}
	if mask&mcfTags != 0 {
		sep()
		b = append(b, `"tags":[`...)
		for n, t := range rec.Tags {
			if n > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"id":`...)
			b = strconv.AppendInt(b, int64(n+1), 10)
			b = append(b, `,"name":`...)
			b = jsonw.String(b, t)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if mask&mcfSignup != 0 {
		sep()
		b = append(b, `"timestamp_signup":"`...)
		b = mcAppendTime(b, rec.Created)
		b = append(b, '"')
	}
	if mask&mcfLastChanged != 0 {
		sep()
		b = append(b, `"last_changed":"`...)
		b = mcAppendTime(b, rec.Updated)
		b = append(b, '"')
	}
	if mask&mcfListID != 0 {
		sep()
		b = append(b, `"list_id":`...)
		b = jsonw.String(b, f.ListID(l))
	}
	if mask&mcfLinks != 0 {
		sep()
		b = append(b, `"_links":[{"href":`...)
		b = jsonw.String(b, f.URL()+"/3.0/lists/"+f.ListID(l)+"/members/"+rec.ID)
		b = append(b, `,"method":"GET","rel":"self"}]`...)
	}
	return append(b, '}')
}

// mcAppendTime appends t as Mailchimp writes times, 2006-01-02T15:04:05+00:00 (UTC; years 0–9999, as
// every seeded and written time is; others take time's own formatting).
func mcAppendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		return t.AppendFormat(b, "2006-01-02T15:04:05+00:00")
	}
	h, mi, sec := t.Clock()
	two := func(n int) { b = append(b, byte('0'+n/10), byte('0'+n%10)) }
	two(y / 100)
	two(y % 100)
	b = append(b, '-')
	two(int(mo))
	b = append(b, '-')
	two(d)
	b = append(b, 'T')
	two(h)
	b = append(b, ':')
	two(mi)
	b = append(b, ':')
	two(sec)
	return append(b, "+00:00"...)
}

// mcBufs recycles the member page buffers (WriteJSON copies the body out before a buffer is put back).
var mcBufs = sync.Pool{New: func() any { return new([]byte) }}

// mcWriteMember answers one member (no _links, as the single-member answers always did).
func mcWriteMember(w http.ResponseWriter, f *Fake, rec Record, l int) {
	WriteJSON(w, 200, "application/json; charset=utf-8", mcAppendMember(make([]byte, 0, 512), f, rec, l, mcfAll&^mcfLinks))
}

// mcFastFields reads a write-back body {"merge_fields":{"TAG":"value",…}} in its plain form: JSON
// whitespace allowed, keys and values printable ASCII without escapes, no other key, no tag twice. ok false:
// the body is something else, and encoding/json decides about it (so validity and meaning are
// encoding/json's in every case; this only spares the reflection on the write-back path).
func mcFastFields(b []byte) (names, values []string, ok bool) {
	i := 0
	ws := func() {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
			i++
		}
	}
	lit := func(c byte) bool {
		ws()
		if i < len(b) && b[i] == c {
			i++
			return true
		}
		return false
	}
	str := func() (string, bool) {
		if !lit('"') {
			return "", false
		}
		j := i
		for j < len(b) && b[j] != '"' {
			if b[j] < 0x20 || b[j] >= 0x7f || b[j] == '\\' {
				return "", false
			}
			j++
		}
		if j == len(b) {
			return "", false
		}
		v := string(b[i:j])
		i = j + 1
		return v, true
	}
	if !lit('{') {
		return nil, nil, false
	}
	if k, ok := str(); !ok || k != "merge_fields" || !lit(':') || !lit('{') {
		return nil, nil, false
	}
	names, values = make([]string, 0, 8), make([]string, 0, 8)
	if !lit('}') {
		for {
			k, ok := str()
			if !ok || !lit(':') {
				return nil, nil, false
			}
			v, ok := str()
			if !ok || slices.Contains(names, k) {
				return nil, nil, false
			}
			names, values = append(names, k), append(values, v)
			if lit('}') {
				break
			}
			if !lit(',') {
				return nil, nil, false
			}
		}
	}
	if !lit('}') {
		return nil, nil, false
	}
	ws()
	return names, values, i == len(b)
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
		mask := mcExclude(q.Get("exclude_fields"), "members.")
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
		bp := mcBufs.Get().(*[]byte)
		b := append((*bp)[:0], `{"list_id":`...)
		b = jsonw.String(b, f.ListID(l))
		b = append(b, `,"members":[`...)
		for n, rec := range recs {
			if n > 0 {
				b = append(b, ',')
			}
			b = mcAppendMember(b, f, rec, l, mask)
		}
		b = append(b, `],"total_items":`...)
		b = strconv.AppendInt(b, int64(total), 10)
		b = append(b, '}')
		WriteJSON(w, 200, "application/json; charset=utf-8", b)
		if cap(b) <= 4<<20 {
			*bp = b
			mcBufs.Put(bp)
		}
	})
	mux.HandleFunc("GET /3.0/lists/{list}/members/{hash}", func(w http.ResponseWriter, r *http.Request) {
		i, l, ok := member(w, r)
		if !ok {
			return
		}
		mcWriteMember(w, f, f.Record(i), l)
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
		raw, err := requestBody(r)
		names, values, fast := mcFastFields(raw)
		if err == nil && !fast {
			err = json.Unmarshal(raw, &body)
			names = make([]string, 0, len(body.MergeFields))
			values = make([]string, 0, len(body.MergeFields))
			for k, v := range body.MergeFields {
				names, values = append(names, k), append(values, v)
			}
		}
		if err != nil {
			mcProblem(w, 400, "JSON Schema Validation Failed", "The request body is not valid JSON.", nil)
			return
		}
		var bad []map[string]string
		st.mu.Lock()
		known := mergeOf(l)
		for _, k := range names {
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
		if len(names) > 0 {
			f.SetFields(i, names, values)
		}
		mcWriteMember(w, f, f.Record(i), l)
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
