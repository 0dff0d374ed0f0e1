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

// Ontraport fake (esp-platforms.md § ontraport; no official document). Enforces the `Api-Appid` and
// `Api-Key` headers (401 "Invalid AppID / Key Combination" otherwise), range ≤ 50 (400), offset paging with
// start/range, sort=id|dlm with sortDir, the JSON `condition` filter (clauses joined by "AND" on id, dlm,
// date, email, tag_name with =, >, >=, <, <=), listFields, the {"code":0,"data":…,"account_id":…}
// envelope, 180 requests per minute answered with 429 and X-Rate-Limit-{Limit,Remaining,Reset}. Contact ids
// are index+1; bulk_mail carries the status (0 unsubscribed, -2 hard bounce; complaints do not exist).
// Tags are objects with tag_id/tag_name ("List N" for the seeded lists, then created ones); a missing contact
// answers 404.

const opAccount = "50123"

func ontraportSpec() Spec {
	return Spec{
		Slug:      "ontraport",
		Limits:    esp.Limits{Rate: 3, Burst: 6},
		PerList:   false,
		ContactID: func(c SeedContact) string { return strconv.Itoa(c.Index + 1) },
		ListID:    func(l int) string { return strconv.Itoa(l + 1) },
		Credentials: func(f *Fake, good bool) map[string]string {
			if good {
				return map[string]string{"app_id": "2_50123_" + f.Secret()[len(f.Secret())-8:], "api_key": f.Secret()}
			}
			return map[string]string{"app_id": "2_50123_00000000", "api_key": "0000000000000000"}
		},
		Authorized: func(f *Fake, r *http.Request) bool {
			good := f.Credentials(true)
			return r.Header.Get("Api-Appid") == good["app_id"] && r.Header.Get("Api-Key") == good["api_key"]
		},
		Unauthorized: func(w http.ResponseWriter, r *http.Request) {
			WriteJSON(w, 401, "text/html; charset=UTF-8", []byte("Invalid AppID / Key Combination"))
		},
		Throttle: func(w http.ResponseWriter, wait time.Duration) {
			w.Header().Set("X-Rate-Limit-Limit", "180")
			w.Header().Set("X-Rate-Limit-Remaining", "0")
			w.Header().Set("X-Rate-Limit-Reset", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			WriteJSON(w, 429, "text/html; charset=UTF-8", []byte("Rate limit exceeded"))
		},
		ServerError: func(w http.ResponseWriter) {
			WriteJSON(w, 500, "text/html; charset=UTF-8", []byte("Internal Server Error"))
		},
		Routes: ontraportRoutes,
		Status: func(s esp.Status) esp.Status {
			if s == esp.StatusComplained { // no complaint state: the contact is transactional-only
				return esp.StatusUnsubscribed
			}
			return s
		},
	}
}

func opWrite(w http.ResponseWriter, data any) {
	b, _ := json.Marshal(map[string]any{"code": 0, "data": data, "account_id": opAccount})
	WriteJSON(w, 200, "application/json", b)
}

func opBad(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, "text/html; charset=UTF-8", []byte(msg))
}

func opBulkMail(s esp.Status) string {
	switch s {
	case esp.StatusUnsubscribed, esp.StatusComplained:
		return "0"
	case esp.StatusBounced:
		return "-2"
	}
	return "2"
}

// opClause is one parsed condition clause.
type opClause struct {
	field, op string
	value     string
}

// parseOpCondition parses Ontraport's JSON condition: [{"field":{"field":F},"op":O,"value":{"value":V}},
// "AND", …]. Only AND is supported (as the adapter uses it).
func parseOpCondition(s string) ([]opClause, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf("condition is not a JSON array")
	}
	var out []opClause
	for k, r := range raw {
		if k%2 == 1 {
			var j string
			if json.Unmarshal(r, &j) != nil || !strings.EqualFold(j, "AND") {
				return nil, fmt.Errorf("unsupported condition joiner")
			}
			continue
		}
		var c struct {
			Field struct {
				Field string `json:"field"`
			} `json:"field"`
			Op    string `json:"op"`
			Value struct {
				Value json.RawMessage `json:"value"`
			} `json:"value"`
		}
		if err := json.Unmarshal(r, &c); err != nil || c.Field.Field == "" {
			return nil, fmt.Errorf("malformed condition clause")
		}
		switch c.Op {
		case "=", ">", ">=", "<", "<=":
		default:
			return nil, fmt.Errorf("unsupported operator")
		}
		v := string(c.Value.Value)
		var sv string
		if json.Unmarshal(c.Value.Value, &sv) == nil {
			v = sv
		}
		out = append(out, opClause{field: c.Field.Field, op: c.Op, value: v})
	}
	return out, nil
}

func opCompare(op string, a, b int64) bool {
	switch op {
	case "=":
		return a == b
	case ">":
		return a > b
	case ">=":
		return a >= b
	case "<":
		return a < b
	}
	return a <= b
}

func (c opClause) match(rec Record) (bool, error) {
	var n int64
	switch c.field {
	case "id":
		n = int64(rec.Index + 1)
	case "dlm":
		n = rec.Updated.Unix()
	case "date":
		n = rec.Created.Unix()
	case "email":
		return c.op == "=" && strings.EqualFold(rec.Email, c.value), nil
	default:
		return false, fmt.Errorf("unknown condition field")
	}
	v, err := strconv.ParseInt(c.value, 10, 64)
	if err != nil {
		return false, fmt.Errorf("condition value is not a number")
	}
	return opCompare(c.op, n, v), nil
}

func opContact(rec Record, fields []string) map[string]any {
	m := map[string]any{
		"id": strconv.Itoa(rec.Index + 1), "owner": "1", "firstname": "", "lastname": "", "email": rec.Email,
		"date": strconv.FormatInt(rec.Created.Unix(), 10), "dlm": strconv.FormatInt(rec.Updated.Unix(), 10),
		"bulk_mail": opBulkMail(rec.Status), "bulk_sms": "0", "contact_cat": "",
	}
	if len(rec.Tags) > 0 {
		m["contact_cat"] = "*/*" + strings.Join(rec.Tags, "*/*") + "*/*"
	}
	if len(fields) > 0 {
		out := map[string]any{}
		for _, k := range fields {
			if v, ok := m[k]; ok {
				out[k] = v
			}
		}
		return out
	}
	return m
}

type opTags struct {
	mu    sync.Mutex
	names []string // tag id = index+1
}

func (t *opTags) find(name string) int {
	for i, n := range t.names {
		if n == name {
			return i + 1
		}
	}
	return 0
}

func ontraportRoutes(f *Fake, mux *http.ServeMux) {
	tags := &opTags{}
	for l := 0; l < f.Lists(); l++ {
		tags.names = append(tags.names, fmt.Sprintf("List %d", l+1))
	}
	paging := func(w http.ResponseWriter, r *http.Request) (start, rng int, conds []opClause, ok bool) {
		q := r.URL.Query()
		start, rng = 0, 50
		if s := q.Get("start"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				opBad(w, 400, "Invalid start")
				return 0, 0, nil, false
			}
			start = n
		}
		if s := q.Get("range"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 50 {
				opBad(w, 400, "Invalid range: the maximum range is 50")
				return 0, 0, nil, false
			}
			rng = n
		}
		if d := q.Get("sortDir"); d != "" && d != "asc" && d != "desc" {
			opBad(w, 400, "Invalid sortDir")
			return 0, 0, nil, false
		}
		if s := q.Get("condition"); s != "" {
			c, err := parseOpCondition(s)
			if err != nil {
				opBad(w, 400, "Invalid condition: "+err.Error())
				return 0, 0, nil, false
			}
			conds = c
		}
		return start, rng, conds, true
	}
	contact := func(w http.ResponseWriter, r *http.Request) (int, bool) {
		id, err := strconv.Atoi(r.URL.Query().Get("id"))
		if err != nil || !f.Alive(id-1, -1) {
			b, _ := json.Marshal(map[string]any{"code": 1, "data": "Object not found", "account_id": opAccount})
			WriteJSON(w, 404, "application/json", b)
			return 0, false
		}
		return id - 1, true
	}

	mux.HandleFunc("GET /1/objects/meta", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("objectID") != "0" {
			opBad(w, 400, "Invalid objectID")
			return
		}
		opWrite(w, map[string]any{"0": map[string]any{"name": "Contact", "fields": map[string]any{
			"email": map[string]string{"alias": "Email", "type": "email"},
			"dlm":   map[string]string{"alias": "Date Modified", "type": "timestamp"},
		}}})
	})
	mux.HandleFunc("GET /1/Contacts", func(w http.ResponseWriter, r *http.Request) {
		start, rng, conds, ok := paging(w, r)
		if !ok {
			return
		}
		q := r.URL.Query()
		if s := q.Get("sort"); s != "" && s != "id" && s != "dlm" {
			opBad(w, 400, "Invalid sort field")
			return
		}
		var fields []string
		if lf := q.Get("listFields"); lf != "" {
			fields = strings.Split(lf, ",")
		}
		// Fast path: a pure id lower bound pages the index directly; anything else scans.
		var recs []Record
		lower, other := -1, false
		for _, c := range conds {
			if c.field == "id" && (c.op == ">" || c.op == ">=") {
				v, err := strconv.Atoi(c.value)
				if err != nil {
					opBad(w, 400, "Invalid condition: value is not a number")
					return
				}
				if c.op == ">=" {
					v--
				}
				lower = max(lower, v-1) // index > v-1  ⇔  id > v
			} else {
				other = true
			}
		}
		if !other {
			recs, _ = f.After(-1, lower, start+rng)
			if start < len(recs) {
				recs = recs[start:]
			} else {
				recs = nil
			}
		} else {
			keys := f.Changed(-1, time.Time{}, true)
			sort.Slice(keys, func(a, b int) bool { return keys[a].Index < keys[b].Index })
			skipped := 0
			for _, k := range keys {
				rec := f.Record(k.Index)
				match := true
				for _, c := range conds {
					m, err := c.match(rec)
					if err != nil {
						opBad(w, 400, "Invalid condition: "+err.Error())
						return
					}
					match = match && m
				}
				if !match {
					continue
				}
				if skipped < start {
					skipped++
					continue
				}
				recs = append(recs, rec)
				if len(recs) == rng {
					break
				}
			}
		}
		if q.Get("sort") == "dlm" {
			sort.SliceStable(recs, func(a, b int) bool { return recs[a].Updated.Before(recs[b].Updated) })
		}
		if q.Get("sortDir") == "desc" {
			for a, b := 0, len(recs)-1; a < b; a, b = a+1, b-1 {
				recs[a], recs[b] = recs[b], recs[a]
			}
		}
		out := make([]any, 0, len(recs))
		for _, rec := range recs {
			out = append(out, opContact(rec, fields))
		}
		b, _ := json.Marshal(map[string]any{"code": 0, "data": out, "account_id": opAccount, "misc": []any{}})
		WriteJSON(w, 200, "application/json", b)
	})
	mux.HandleFunc("GET /1/Contact", func(w http.ResponseWriter, r *http.Request) {
		i, ok := contact(w, r)
		if !ok {
			return
		}
		opWrite(w, opContact(f.Record(i), nil))
	})
	mux.HandleFunc("DELETE /1/Contact", func(w http.ResponseWriter, r *http.Request) {
		i, ok := contact(w, r)
		if !ok {
			return
		}
		f.Delete(i)
		opWrite(w, "Deleted")
	})
	mux.HandleFunc("PUT /1/Contacts", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			ID       json.Number `json:"id"`
			BulkMail *int        `json:"bulk_mail"`
		}
		d := json.NewDecoder(r.Body)
		d.UseNumber()
		if err := d.Decode(&body); err != nil || body.ID == "" {
			opBad(w, 400, "Invalid request: id is required")
			return
		}
		id, err := strconv.Atoi(body.ID.String())
		if err != nil || !f.Alive(id-1, -1) {
			opBad(w, 400, "Invalid contact id")
			return
		}
		if body.BulkMail != nil {
			switch *body.BulkMail {
			case 0:
				f.Unsubscribe(id - 1)
			case 1, 2:
			default:
				opBad(w, 400, "Invalid bulk_mail value")
				return
			}
		}
		opWrite(w, map[string]any{"attrs": opContact(f.Record(id-1), []string{"id", "bulk_mail", "dlm"})})
	})
	mux.HandleFunc("GET /1/Tags", func(w http.ResponseWriter, r *http.Request) {
		start, rng, conds, ok := paging(w, r)
		if !ok {
			return
		}
		tags.mu.Lock()
		defer tags.mu.Unlock()
		out := []any{}
		skipped := 0
		for i, n := range tags.names {
			match := true
			for _, c := range conds {
				switch {
				case c.field == "tag_name" && c.op == "=":
					match = match && n == c.value
				case c.field == "tag_id":
					v, err := strconv.ParseInt(c.value, 10, 64)
					match = match && err == nil && opCompare(c.op, int64(i+1), v)
				default:
					opBad(w, 400, "Invalid condition: unknown field")
					return
				}
			}
			if !match {
				continue
			}
			if skipped < start {
				skipped++
				continue
			}
			if len(out) == rng {
				break
			}
			out = append(out, map[string]any{"tag_id": strconv.Itoa(i + 1), "tag_name": n, "group_id": "0", "object_type_id": "0"})
		}
		opWrite(w, out)
	})
	mux.HandleFunc("POST /1/Tags", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Name string `json:"tag_name"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || strings.TrimSpace(body.Name) == "" {
			opBad(w, 400, "Invalid request: tag_name is required")
			return
		}
		tags.mu.Lock()
		id := tags.find(body.Name)
		if id == 0 {
			tags.names = append(tags.names, body.Name)
			id = len(tags.names)
		}
		tags.mu.Unlock()
		opWrite(w, map[string]any{"tag_id": strconv.Itoa(id), "tag_name": body.Name, "group_id": "0", "object_type_id": "0"})
	})
	mux.HandleFunc("PUT /1/objects/tag", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			ObjectID json.Number `json:"objectID"`
			AddList  string      `json:"add_list"`
			IDs      string      `json:"ids"`
		}
		d := json.NewDecoder(r.Body)
		d.UseNumber()
		if err := d.Decode(&body); err != nil || body.ObjectID.String() != "0" || body.AddList == "" || body.IDs == "" {
			opBad(w, 400, "Invalid request: objectID, add_list and ids are required")
			return
		}
		var names []string
		tags.mu.Lock()
		for _, s := range strings.Split(body.AddList, ",") {
			t, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || t < 1 || t > len(tags.names) {
				tags.mu.Unlock()
				opBad(w, 400, "Invalid tag id")
				return
			}
			names = append(names, tags.names[t-1])
		}
		tags.mu.Unlock()
		var idx []int
		for _, s := range strings.Split(body.IDs, ",") {
			id, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || !f.Alive(id-1, -1) {
				opBad(w, 400, "Invalid contact id")
				return
			}
			idx = append(idx, id-1)
		}
		for _, i := range idx {
			for _, n := range names {
				f.AddTag(i, n)
			}
		}
		opWrite(w, "The tag is now being processed.")
	})
}
