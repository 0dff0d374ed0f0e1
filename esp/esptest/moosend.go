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

// Moosend fake (esp-platforms.md § moosend; no official document). Enforces the `apikey` query parameter,
// the {"Code","Error","Context"} envelope with errors as HTTP 200 and a non-zero Code (Moosend's
// convention), PageSize ≤ 500, page-numbered segments Subscribed / Unsubscribed / Bounced per list with
// Context.Paging.TotalPageCount, /Date(ms)/ timestamps, and throttles with HTTP 200
// {"Code":429,"Error":"RATE-LIMITING"}. An update REPLACES the custom fields: every defined field missing
// from the body is cleared (recorded as an empty value), so an adapter that sends only what it changes
// loses data. Each list has a seeded custom field "City" with a value per contact. Complaints are
// reported as unsubscribed.

const moosendSeedField = "City"

type moosendState struct {
	mu     sync.Mutex
	fields map[int][]string // per list: custom field names (after the seeded one)
}

func moosendSpec() Spec {
	return Spec{
		Slug:    "moosend",
		Limits:  esp.Limits{Rate: 5, Burst: 5},
		PerList: true,
		ContactID: func(c SeedContact) string {
			h := mix64(uint64(c.Index) + 777)
			return fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", uint32(h), uint16(h>>32), (h>>48)&0xfff, c.Index>>40&0xfff, c.Index&0xffffffffff)
		},
		ListID: func(l int) string {
			h := mix64(uint64(l) + 99)
			return fmt.Sprintf("%08x-%04x-4%03x-b%03x-%012x", uint32(h), uint16(h>>32), (h>>48)&0xfff, l&0xfff, h&0xffffffffff)
		},
		Credentials: secretCredentials("api_key", "", "00000000-0000-4000-8000-000000000000"),
		Authorized:  func(f *Fake, r *http.Request) bool { return r.URL.Query().Get("apikey") == f.Secret() },
		Unauthorized: func(w http.ResponseWriter, r *http.Request) {
			moosendEnvelope(w, 102, "INVALID_API_KEY", nil)
		},
		Throttle: func(w http.ResponseWriter, _ time.Duration) {
			moosendEnvelope(w, 429, "RATE-LIMITING", nil)
		},
		ServerError: func(w http.ResponseWriter) {
			b, _ := json.Marshal(moosendBody{Code: 500, Error: moosendPtr("INTERNAL_SERVER_ERROR")})
			WriteJSON(w, 500, "application/json; charset=utf-8", b)
		},
		Routes: moosendRoutes,
		Status: func(s esp.Status) esp.Status {
			if s == esp.StatusComplained {
				return esp.StatusUnsubscribed
			}
			return s
		},
	}
}

type moosendBody struct {
	Code    int     `json:"Code"`
	Error   *string `json:"Error"`
	Context any     `json:"Context"`
}

func moosendPtr(s string) *string { return &s }

func moosendEnvelope(w http.ResponseWriter, code int, errMsg string, ctx any) {
	b := moosendBody{Code: code, Context: ctx}
	if errMsg != "" {
		b.Error = moosendPtr(errMsg)
	}
	out, _ := json.Marshal(b)
	WriteJSON(w, 200, "application/json; charset=utf-8", out)
}

func moosendDate(t time.Time) string { return fmt.Sprintf("/Date(%d+0000)/", t.UnixMilli()) }

func moosendStatus(s esp.Status) (name string, code int) {
	switch s {
	case esp.StatusUnsubscribed, esp.StatusComplained:
		return "Unsubscribed", 2
	case esp.StatusBounced:
		return "Bounced", 3
	}
	return "Subscribed", 1
}

func moosendRoutes(f *Fake, mux *http.ServeMux) {
	st := &moosendState{fields: map[int][]string{}}
	defs := func(l int) []string {
		st.mu.Lock()
		defer st.mu.Unlock()
		return append([]string{moosendSeedField}, st.fields[l]...)
	}
	value := func(rec Record, name string) string {
		if v, ok := rec.Fields[name]; ok {
			return v
		}
		if name == moosendSeedField {
			return fmt.Sprintf("City %d", rec.Index%97)
		}
		return ""
	}
	subscriber := func(rec Record, l int) map[string]any {
		cf := []any{}
		for n, name := range defs(l) {
			if v := value(rec, name); v != "" {
				cf = append(cf, map[string]any{"CustomFieldID": fmt.Sprintf("%08d-0000-4000-8000-%012d", n+1, l), "Name": name, "Value": v})
			}
		}
		_, code := moosendStatus(rec.Status)
		var unsub any
		if code == 2 {
			unsub = moosendDate(rec.Updated)
		}
		tags := append([]string{}, rec.Tags...)
		return map[string]any{"ID": rec.ID, "Name": "", "Email": rec.Email, "CreatedOn": moosendDate(rec.Created), "UpdatedOn": moosendDate(rec.Updated),
			"UnsubscribedOn": unsub, "UnsubscribedFromID": nil, "SubscribeType": code, "SubscribeMethod": 1, "CustomFields": cf, "RemovedOn": nil, "Tags": tags}
	}
	list := func(w http.ResponseWriter, r *http.Request) (int, bool) {
		l, ok := f.ListIndex(r.PathValue("list"))
		if !ok {
			moosendEnvelope(w, 1, "MAILING_LIST_NOT_FOUND", nil)
		}
		return l, ok
	}
	paging := func(w http.ResponseWriter, r *http.Request, maxSize int) (page, size int, ok bool) {
		q := r.URL.Query()
		page, size = 1, 500
		if s := q.Get("Page"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				moosendEnvelope(w, 1, "INVALID_PAGE", nil)
				return 0, 0, false
			}
			page = n
		}
		if s := q.Get("PageSize"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > maxSize {
				moosendEnvelope(w, 1, fmt.Sprintf("INVALID_PAGE_SIZE: PageSize must be between 1 and %d", maxSize), nil)
				return 0, 0, false
			}
			size = n
		}
		return page, size, true
	}
	pagingOut := func(page, size, total int) map[string]any {
		return map[string]any{"PageSize": size, "CurrentPage": page, "TotalResults": total, "TotalPageCount": (total + size - 1) / size,
			"SortExpression": "CreatedOn", "SortIsAscending": true}
	}
	emailBody := func(w http.ResponseWriter, r *http.Request, l int) (int, bool) {
		var body struct {
			Email string `json:"Email"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Email == "" {
			moosendEnvelope(w, 1, "INVALID_EMAIL", nil)
			return 0, false
		}
		i, ok := f.IndexOfEmail(strings.ToLower(body.Email))
		if !ok || !f.Alive(i, l) {
			moosendEnvelope(w, 1, "MEMBER_NOT_FOUND", nil)
			return 0, false
		}
		return i, true
	}

	mux.HandleFunc("GET /v3/lists.json", func(w http.ResponseWriter, r *http.Request) {
		page, size, ok := paging(w, r, 1000)
		if !ok {
			return
		}
		var ls []any
		for l := (page - 1) * size; l < f.Lists() && l < page*size; l++ {
			ls = append(ls, map[string]any{"ID": f.ListID(l), "Name": fmt.Sprintf("List %d", l+1), "ActiveMemberCount": f.Len(l), "CreatedOn": moosendDate(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))})
		}
		if ls == nil {
			ls = []any{}
		}
		moosendEnvelope(w, 0, "", map[string]any{"Paging": pagingOut(page, size, f.Lists()), "MailingLists": ls})
	})
	mux.HandleFunc("GET /v3/lists/{list}/details.json", func(w http.ResponseWriter, r *http.Request) {
		l, ok := list(w, r)
		if !ok {
			return
		}
		var d []any
		for n, name := range defs(l) {
			d = append(d, map[string]any{"ID": fmt.Sprintf("%08d-0000-4000-8000-%012d", n+1, l), "Name": name, "Context": nil, "IsRequired": false, "Type": 0})
		}
		moosendEnvelope(w, 0, "", map[string]any{"ID": f.ListID(l), "Name": fmt.Sprintf("List %d", l+1), "CustomFieldsDefinition": d})
	})
	mux.HandleFunc("POST /v3/lists/{list}/customfields/create.json", func(w http.ResponseWriter, r *http.Request) {
		l, ok := list(w, r)
		if !ok {
			return
		}
		var body struct {
			Name string `json:"Name"`
			Type string `json:"CustomFieldType"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Name == "" || strings.Contains(body.Name, "=") {
			moosendEnvelope(w, 1, "INVALID_CUSTOM_FIELD_NAME", nil)
			return
		}
		for _, n := range defs(l) {
			if strings.EqualFold(n, body.Name) {
				moosendEnvelope(w, 1, "CUSTOM_FIELD_ALREADY_EXISTS", nil)
				return
			}
		}
		st.mu.Lock()
		st.fields[l] = append(st.fields[l], body.Name)
		n := len(st.fields[l]) + 1
		st.mu.Unlock()
		moosendEnvelope(w, 0, "", fmt.Sprintf("%08d-0000-4000-8000-%012d", n, l))
	})
	mux.HandleFunc("GET /v3/lists/{list}/subscribers/{file}", func(w http.ResponseWriter, r *http.Request) {
		l, ok := list(w, r)
		if !ok {
			return
		}
		want, ok := strings.CutSuffix(r.PathValue("file"), ".json")
		if !ok || (want != "Subscribed" && want != "Unsubscribed" && want != "Bounced" && want != "Removed") {
			moosendEnvelope(w, 1, "INVALID_STATUS", nil)
			return
		}
		page, size, ok := paging(w, r, 500)
		if !ok {
			return
		}
		var seg []Record
		if want != "Removed" { // removed members are deleted ones: the fake keeps none listed
			for _, rec := range f.Slice(l, 0, f.Len(l)) {
				if n, _ := moosendStatus(rec.Status); n == want {
					seg = append(seg, rec)
				}
			}
		}
		start := min((page-1)*size, len(seg))
		end := min(start+size, len(seg))
		subs := make([]any, 0, end-start)
		for _, rec := range seg[start:end] {
			subs = append(subs, subscriber(rec, l))
		}
		moosendEnvelope(w, 0, "", map[string]any{"Paging": pagingOut(page, size, len(seg)), "Subscribers": subs})
	})
	mux.HandleFunc("GET /v3/subscribers/{list}/view.json", func(w http.ResponseWriter, r *http.Request) {
		l, ok := list(w, r)
		if !ok {
			return
		}
		i, ok := f.IndexOfEmail(strings.ToLower(r.URL.Query().Get("Email")))
		if !ok || !f.Alive(i, l) {
			moosendEnvelope(w, 1, "MEMBER_NOT_FOUND", nil)
			return
		}
		moosendEnvelope(w, 0, "", subscriber(f.Record(i), l))
	})
	mux.HandleFunc("POST /v3/subscribers/{list}/update/{file}", func(w http.ResponseWriter, r *http.Request) {
		l, ok := list(w, r)
		if !ok {
			return
		}
		id, ok := strings.CutSuffix(r.PathValue("file"), ".json")
		i, found := f.IndexOf(id)
		if !ok || !found || !f.Alive(i, l) {
			moosendEnvelope(w, 1, "MEMBER_NOT_FOUND", nil)
			return
		}
		var body struct {
			Email        string   `json:"Email"`
			CustomFields []string `json:"CustomFields"`
			Tags         []string `json:"Tags"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || !strings.EqualFold(body.Email, f.Seeded(i).Email) {
			moosendEnvelope(w, 1, "INVALID_EMAIL", nil)
			return
		}
		given := map[string]string{}
		for _, kv := range body.CustomFields {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				moosendEnvelope(w, 1, "INVALID_CUSTOM_FIELD_FORMAT", nil)
				return
			}
			given[k] = v
		}
		rec := f.Record(i)
		for _, name := range defs(l) { // unknown names are ignored; omitted defined fields are CLEARED
			v, ok := given[name]
			switch {
			case ok && value(rec, name) != v:
				f.SetField(i, name, v)
			case ok:
				if _, set := rec.Fields[name]; !set {
					f.SetField(i, name, v)
				}
			case value(rec, name) != "":
				f.SetField(i, name, "")
			}
		}
		for _, t := range body.Tags {
			if t != "" {
				f.AddTag(i, t)
			}
		}
		moosendEnvelope(w, 0, "", subscriber(f.Record(i), l))
	})
	mux.HandleFunc("POST /v3/subscribers/{list}/unsubscribe.json", func(w http.ResponseWriter, r *http.Request) {
		l, ok := list(w, r)
		if !ok {
			return
		}
		i, ok := emailBody(w, r, l)
		if !ok {
			return
		}
		f.Unsubscribe(i)
		moosendEnvelope(w, 0, "", nil)
	})
	mux.HandleFunc("POST /v3/subscribers/{list}/remove.json", func(w http.ResponseWriter, r *http.Request) {
		l, ok := list(w, r)
		if !ok {
			return
		}
		i, ok := emailBody(w, r, l)
		if !ok {
			return
		}
		f.RemoveFromList(i, l)
		moosendEnvelope(w, 0, "", nil)
	})
}
