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

// Campaign Monitor fake (esp-platforms.md § campaignmonitor; no official document). Enforces HTTP Basic
// auth with the API key as username (401 Code 50 without it, Code 100 for a wrong key), the .json suffix on
// every path (404 otherwise), pagesize 10–1000 (400), page-numbered segments active / unsubscribed /
// bounced per list with Results[], NumberOfPages and TotalNumberOfRecords, ordered by date, and an
// (assumed, unpublished) 10 requests/s answered with 429 and Retry-After. Subscribers are keyed by email (no
// id). Custom fields must exist on the list, else their values are silently dropped (as Campaign Monitor
// does); PUT needs ConsentToTrack. DELETE moves a subscriber to the Deleted state: GET still answers it,
// with State "Deleted". Complaints are reported as unsubscribed (no such segment is read).

type cmState struct {
	mu     sync.Mutex
	fields map[int][]string // per list: custom field keys in creation order
}

func campaignmonitorSpec() Spec {
	return Spec{
		Slug:      "campaignmonitor",
		Limits:    esp.Limits{Rate: 10, Burst: 10},
		PerList:   true,
		ContactID: func(c SeedContact) string { return c.Email },
		ListID:    func(l int) string { return fmt.Sprintf("%016x%016x", mix64(uint64(l)+41), mix64(uint64(l)+43)) },
		Credentials: func(f *Fake, good bool) map[string]string {
			if good {
				return map[string]string{"api_key": f.Secret(), "client_id": "4a397ccaaa55eb4e6aa1221e1e2d7122"}
			}
			return map[string]string{"api_key": "0000000000000000000000000000000000000000000000000000000000000000", "client_id": "4a397ccaaa55eb4e6aa1221e1e2d7122"}
		},
		Authorized: func(f *Fake, r *http.Request) bool {
			u, _, ok := r.BasicAuth()
			return ok && u == f.Secret()
		},
		Unauthorized: func(w http.ResponseWriter, r *http.Request) {
			if _, _, ok := r.BasicAuth(); !ok {
				cmError(w, 401, 50, "Must supply a valid HTTP Basic Authorization header")
				return
			}
			cmError(w, 401, 100, "Invalid API Key")
		},
		Throttle: func(w http.ResponseWriter, wait time.Duration) {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			cmError(w, 429, 429, "Too many requests. Please slow down.")
		},
		ServerError: func(w http.ResponseWriter) { cmError(w, 500, 500, "An unexpected error occurred.") },
		Routes:      campaignmonitorRoutes,
		Status: func(s esp.Status) esp.Status {
			if s == esp.StatusComplained {
				return esp.StatusUnsubscribed
			}
			return s
		},
		FieldName: esp.CampaignMonitorFieldKey,
	}
}

func cmError(w http.ResponseWriter, status, code int, msg string) {
	b, _ := json.Marshal(map[string]any{"Code": code, "Message": msg})
	WriteJSON(w, status, "application/json; charset=utf-8", b)
}

func cmWrite(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	WriteJSON(w, status, "application/json; charset=utf-8", b)
}

func cmTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }

func cmStateName(s esp.Status) string {
	switch s {
	case esp.StatusUnsubscribed, esp.StatusComplained:
		return "Unsubscribed"
	case esp.StatusBounced:
		return "Bounced"
	}
	return "Active"
}

func campaignmonitorRoutes(f *Fake, mux *http.ServeMux) {
	st := &cmState{fields: map[int][]string{}}
	const p = "/api/v3.3"
	subscriber := func(rec Record, l int, state string) map[string]any {
		cf := []any{}
		st.mu.Lock()
		for _, k := range st.fields[l] {
			if v, ok := rec.Fields[k]; ok {
				cf = append(cf, map[string]string{"Key": k, "Value": v})
			}
		}
		st.mu.Unlock()
		return map[string]any{"EmailAddress": rec.Email, "Name": "", "Date": cmTime(rec.Created), "ListJoinedDate": cmTime(rec.Created),
			"State": state, "CustomFields": cf, "ReadsEmailWith": "", "ConsentToTrack": "Yes"}
	}
	list := func(w http.ResponseWriter, id string) (int, bool) {
		l, ok := f.ListIndex(id)
		if !ok {
			cmError(w, 400, 101, "Invalid ListID")
		}
		return l, ok
	}
	// jsonFile strips the mandatory .json suffix of the last path segment.
	jsonFile := func(w http.ResponseWriter, seg string) (string, bool) {
		s, ok := strings.CutSuffix(seg, ".json")
		if !ok {
			cmError(w, 404, 404, "Not found: this API answers JSON only, with the .json suffix")
		}
		return s, ok
	}
	member := func(w http.ResponseWriter, r *http.Request, l int) (int, bool) {
		i, ok := f.IndexOfEmail(strings.ToLower(r.URL.Query().Get("email")))
		if !ok || !f.Alive(i, l) {
			cmError(w, 400, 203, "Subscriber not in list or has already been removed.")
			return 0, false
		}
		return i, true
	}

	mux.HandleFunc("GET "+p+"/clients/{client}/{file}", func(w http.ResponseWriter, r *http.Request) {
		name, ok := jsonFile(w, r.PathValue("file"))
		if !ok {
			return
		}
		if name != "lists" {
			cmError(w, 404, 404, "Not found")
			return
		}
		out := []any{}
		for l := 0; l < f.Lists(); l++ {
			out = append(out, map[string]string{"ListID": f.ListID(l), "Name": fmt.Sprintf("List %d", l+1)})
		}
		cmWrite(w, 200, out)
	})
	mux.HandleFunc("GET "+p+"/lists/{list}/{file}", func(w http.ResponseWriter, r *http.Request) {
		name, ok := jsonFile(w, r.PathValue("file"))
		if !ok {
			return
		}
		l, ok := list(w, r.PathValue("list"))
		if !ok {
			return
		}
		if name == "customfields" {
			out := []any{}
			st.mu.Lock()
			for _, k := range st.fields[l] {
				out = append(out, map[string]any{"FieldName": k, "Key": "[" + k + "]", "DataType": "Text", "FieldOptions": []string{}, "VisibleInPreferenceCenter": false})
			}
			st.mu.Unlock()
			cmWrite(w, 200, out)
			return
		}
		var want esp.Status
		switch name {
		case "active":
			want = esp.StatusSubscribed
		case "unsubscribed":
			want = esp.StatusUnsubscribed
		case "bounced":
			want = esp.StatusBounced
		default:
			cmError(w, 404, 404, "Not found")
			return
		}
		q := r.URL.Query()
		page, size := 1, 1000
		if s := q.Get("page"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				cmError(w, 400, 1, "Invalid page number")
				return
			}
			page = n
		}
		if s := q.Get("pagesize"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 10 || n > 1000 {
				cmError(w, 400, 1, "Invalid page size: must be between 10 and 1000")
				return
			}
			size = n
		}
		if of := q.Get("orderfield"); of != "" && of != "date" && of != "email" && of != "name" {
			cmError(w, 400, 1, "Invalid order field")
			return
		}
		desc := strings.EqualFold(q.Get("orderdirection"), "desc")
		var from time.Time
		if s := q.Get("date"); s != "" {
			t, err := time.Parse("2006-01-02 15:04", s)
			if err != nil {
				if t, err = time.Parse("2006-01-02", s); err != nil {
					cmError(w, 400, 1, "Invalid date")
					return
				}
			}
			from = t
		}
		var seg []Record
		for _, rec := range f.Slice(l, 0, f.Len(l)) {
			if cmStateName(rec.Status) == cmStateName(want) && !rec.Created.Before(from) {
				seg = append(seg, rec)
			}
		}
		if desc {
			for a, b := 0, len(seg)-1; a < b; a, b = a+1, b-1 {
				seg[a], seg[b] = seg[b], seg[a]
			}
		}
		start := min((page-1)*size, len(seg))
		end := min(start+size, len(seg))
		res := make([]any, 0, end-start)
		for _, rec := range seg[start:end] {
			res = append(res, subscriber(rec, l, cmStateName(rec.Status)))
		}
		dir := "asc"
		if desc {
			dir = "desc"
		}
		cmWrite(w, 200, map[string]any{"Results": res, "ResultsOrderedBy": "date", "OrderDirection": dir, "PageNumber": page,
			"PageSize": size, "RecordsOnThisPage": len(res), "TotalNumberOfRecords": len(seg), "NumberOfPages": (len(seg) + size - 1) / size})
	})
	mux.HandleFunc("POST "+p+"/lists/{list}/{file}", func(w http.ResponseWriter, r *http.Request) {
		name, ok := jsonFile(w, r.PathValue("file"))
		if !ok {
			return
		}
		l, ok := list(w, r.PathValue("list"))
		if !ok {
			return
		}
		if name != "customfields" {
			cmError(w, 404, 404, "Not found")
			return
		}
		var body struct {
			FieldName string   `json:"FieldName"`
			DataType  string   `json:"DataType"`
			Options   []string `json:"Options"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.FieldName == "" || len(body.FieldName) > 100 {
			cmError(w, 400, 1, "Invalid field name")
			return
		}
		if body.DataType != "Text" && body.DataType != "Number" && body.DataType != "Date" {
			cmError(w, 400, 1, "Invalid DataType")
			return
		}
		key := esp.CampaignMonitorFieldKey(body.FieldName)
		st.mu.Lock()
		for _, k := range st.fields[l] {
			if k == key {
				st.mu.Unlock()
				cmError(w, 400, 255, "A field with that key already exists")
				return
			}
		}
		st.fields[l] = append(st.fields[l], key)
		st.mu.Unlock()
		cmWrite(w, 201, "["+key+"]")
	})
	mux.HandleFunc("GET "+p+"/subscribers/{file}", func(w http.ResponseWriter, r *http.Request) {
		id, ok := jsonFile(w, r.PathValue("file"))
		if !ok {
			return
		}
		l, ok := list(w, id)
		if !ok {
			return
		}
		i, ok := f.IndexOfEmail(strings.ToLower(r.URL.Query().Get("email")))
		if !ok {
			cmError(w, 400, 203, "Subscriber not in list or has already been removed.")
			return
		}
		rec := f.Record(i)
		in := false
		for _, x := range rec.SeedContact.Lists {
			in = in || x == l
		}
		if !in {
			cmError(w, 400, 203, "Subscriber not in list or has already been removed.")
			return
		}
		state := cmStateName(rec.Status)
		if !f.Alive(i, l) {
			state = "Deleted"
		}
		cmWrite(w, 200, subscriber(rec, l, state))
	})
	mux.HandleFunc("PUT "+p+"/subscribers/{file}", func(w http.ResponseWriter, r *http.Request) {
		id, ok := jsonFile(w, r.PathValue("file"))
		if !ok {
			return
		}
		l, ok := list(w, id)
		if !ok {
			return
		}
		i, ok := member(w, r, l)
		if !ok {
			return
		}
		var body struct {
			EmailAddress   string `json:"EmailAddress"`
			ConsentToTrack string `json:"ConsentToTrack"`
			CustomFields   []struct {
				Key   string `json:"Key"`
				Value string `json:"Value"`
			} `json:"CustomFields"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.EmailAddress == "" {
			cmError(w, 400, 1, "Invalid Email Address")
			return
		}
		switch body.ConsentToTrack {
		case "Yes", "No", "Unchanged":
		default:
			cmError(w, 400, 1, "ConsentToTrack is required: Yes, No or Unchanged")
			return
		}
		if !strings.EqualFold(body.EmailAddress, f.Seeded(i).Email) {
			cmError(w, 400, 1, "Changing the email address is not supported by this fake")
			return
		}
		st.mu.Lock()
		known := map[string]bool{}
		for _, k := range st.fields[l] {
			known[k] = true
		}
		st.mu.Unlock()
		for _, kv := range body.CustomFields {
			if k := strings.Trim(kv.Key, "[]"); known[k] { // unknown fields are dropped silently
				f.SetField(i, k, kv.Value)
			}
		}
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("DELETE "+p+"/subscribers/{file}", func(w http.ResponseWriter, r *http.Request) {
		id, ok := jsonFile(w, r.PathValue("file"))
		if !ok {
			return
		}
		l, ok := list(w, id)
		if !ok {
			return
		}
		i, ok := member(w, r, l)
		if !ok {
			return
		}
		f.RemoveFromList(i, l)
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("POST "+p+"/subscribers/{list}/{file}", func(w http.ResponseWriter, r *http.Request) {
		name, ok := jsonFile(w, r.PathValue("file"))
		if !ok {
			return
		}
		l, ok := list(w, r.PathValue("list"))
		if !ok {
			return
		}
		if name != "unsubscribe" {
			cmError(w, 404, 404, "Not found")
			return
		}
		var body struct {
			EmailAddress string `json:"EmailAddress"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.EmailAddress == "" {
			cmError(w, 400, 1, "Invalid Email Address")
			return
		}
		i, ok := f.IndexOfEmail(strings.ToLower(body.EmailAddress))
		if !ok || !f.Alive(i, l) {
			cmError(w, 400, 203, "Subscriber not in list or has already been removed.")
			return
		}
		f.Unsubscribe(i)
		w.WriteHeader(http.StatusOK)
	})
}
