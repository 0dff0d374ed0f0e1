package esptest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/autofloss/autofloss/esp"
)

// Klaviyo fake (esp-platforms.md § klaviyo; OpenAPI slices in openapi/klaviyo). Enforces the
// `Authorization: Klaviyo-API-Key` header, the required `revision` header, page[size] 1–100 (profiles) and
// 1–10 (lists), JSON:API bodies and content type on writes; pages with page[cursor] and links.next;
// incremental reads with filter=greater-than(updated,…) (and greater-or-equal) sorted by updated.

const kvJSONAPI = "application/vnd.api+json"

var kvRevision = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$`)

func klaviyoSpec() Spec {
	return Spec{
		Slug:    "klaviyo",
		Limits:  esp.Limits{Rate: 700.0 / 60, Burst: 75},
		PerList: false,
		ContactID: func(c SeedContact) string {
			return fmt.Sprintf("01J%015X%08X", mix64(uint64(c.Index))>>4, c.Index)
		},
		ListID:      func(l int) string { return fmt.Sprintf("Kl%04d", l+1) },
		Credentials: secretCredentials("api_key", "", "pk_0000000000000000000000000000000000"),
		Authorized:  headerSecret("Authorization", "Klaviyo-API-Key "),
		Unauthorized: func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") == "" {
				kvError(w, 401, "not_authenticated", "Authentication credentials were not provided.", "Missing private key.", "")
				return
			}
			kvError(w, 401, "authentication_failed", "Incorrect authentication credentials.", "Incorrect authentication credentials.", "")
		},
		Throttle: func(w http.ResponseWriter, wait time.Duration) {
			s := int(math.Ceil(wait.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(s))
			kvError(w, 429, "throttled", "Request was throttled.", fmt.Sprintf("Request was throttled. Expected available in %d second.", s), "")
		},
		ServerError: func(w http.ResponseWriter) {
			kvError(w, 500, "error", "A server error occurred.", "A server error occurred.", "")
		},
		Routes: klaviyoRoutes,
		OpenAPI: []string{"klaviyo/get_lists.json", "klaviyo/get_profiles.json", "klaviyo/get_profiles_for_list.json",
			"klaviyo/update_profile.json", "klaviyo/bulk_unsubscribe_profiles.json", "klaviyo/request_profile_deletion.json"},
		// Tags are stored as profile properties named after the tag.
	}
}

var kvErrN atomic.Int64

func kvError(w http.ResponseWriter, status int, code, title, detail, param string) {
	e := map[string]any{"id": fmt.Sprintf("00000000-0000-4000-8000-%012d", kvErrN.Add(1)%1e12), "status": status, "code": code, "title": title, "detail": detail}
	if param != "" {
		e["source"] = map[string]any{"parameter": param}
	}
	b, _ := json.Marshal(map[string]any{"errors": []any{e}})
	WriteJSON(w, status, kvJSONAPI, b)
}

func kvTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000-07:00") }

func klaviyoRoutes(f *Fake, mux *http.ServeMux) {
	h := func(pattern string, fn http.HandlerFunc) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			rev := r.Header.Get("revision")
			if rev == "" {
				kvError(w, 400, "invalid", "Invalid input.", "Missing required header 'revision'.", "revision")
				return
			}
			if !kvRevision.MatchString(rev) {
				kvError(w, 400, "invalid", "Invalid input.", "Invalid revision header.", "revision")
				return
			}
			if r.Method != http.MethodGet && !strings.HasPrefix(r.Header.Get("Content-Type"), kvJSONAPI) {
				kvError(w, 415, "unsupported_media_type", "Unsupported media type.", "Content-Type must be "+kvJSONAPI+".", "")
				return
			}
			fn(w, r)
		})
	}
	h("GET /api/lists", func(w http.ResponseWriter, r *http.Request) { kvLists(f, w, r) })
	h("GET /api/profiles", func(w http.ResponseWriter, r *http.Request) { kvProfiles(f, w, r, -1) })
	h("GET /api/lists/{id}/profiles", func(w http.ResponseWriter, r *http.Request) {
		l, ok := f.ListIndex(r.PathValue("id"))
		if !ok {
			kvError(w, 404, "not_found", "Not found.", "A list with id "+r.PathValue("id")+" does not exist.", "")
			return
		}
		kvProfiles(f, w, r, l)
	})
	h("GET /api/profiles/{id}", func(w http.ResponseWriter, r *http.Request) {
		i, ok := f.IndexOf(r.PathValue("id"))
		if !ok || !f.Alive(i, -1) {
			kvError(w, 404, "not_found", "Not found.", "A profile with that id does not exist.", "")
			return
		}
		subs := strings.Contains(r.URL.Query().Get("additional-fields[profile]"), "subscriptions")
		kvWrite(w, 200, map[string]any{"data": kvProfile(f, f.Record(i), subs), "links": map[string]string{"self": f.URL() + r.URL.Path}})
	})
	h("PATCH /api/profiles/{id}", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Data struct {
				Type       string `json:"type"`
				ID         string `json:"id"`
				Attributes struct {
					Properties map[string]any `json:"properties"`
				} `json:"attributes"`
			} `json:"data"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Data.Type != "profile" {
			kvError(w, 400, "invalid", "Invalid input.", "Malformed JSON:API document.", "")
			return
		}
		id := r.PathValue("id")
		if body.Data.ID != id {
			kvError(w, 409, "conflict", "Conflict.", "The id in the body does not match the URL.", "")
			return
		}
		i, ok := f.IndexOf(id)
		if !ok || !f.Alive(i, -1) {
			kvError(w, 404, "not_found", "Not found.", "A profile with that id does not exist.", "")
			return
		}
		for k, v := range body.Data.Attributes.Properties {
			f.SetField(i, k, fmt.Sprint(v))
		}
		kvWrite(w, 200, map[string]any{"data": kvProfile(f, f.Record(i), false)})
	})
	h("POST /api/profile-subscription-bulk-delete-jobs", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Data struct {
				Type       string `json:"type"`
				Attributes struct {
					Profiles struct {
						Data []struct {
							Attributes struct {
								Email string `json:"email"`
							} `json:"attributes"`
						} `json:"data"`
					} `json:"profiles"`
				} `json:"attributes"`
			} `json:"data"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Data.Type != "profile-subscription-bulk-delete-job" {
			kvError(w, 400, "invalid", "Invalid input.", "Malformed JSON:API document.", "")
			return
		}
		ps := body.Data.Attributes.Profiles.Data
		if len(ps) == 0 || len(ps) > 100 {
			kvError(w, 400, "invalid", "Invalid input.", "Between 1 and 100 profiles per job.", "")
			return
		}
		for _, p := range ps {
			if i, ok := f.IndexOfEmail(strings.ToLower(p.Attributes.Email)); ok && f.Alive(i, -1) {
				f.Unsubscribe(i)
			}
		}
		w.WriteHeader(http.StatusAccepted)
	})
	h("POST /api/data-privacy-deletion-jobs", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Data struct {
				Type       string `json:"type"`
				Attributes struct {
					Profile struct {
						Data struct {
							ID         string `json:"id"`
							Attributes struct {
								Email string `json:"email"`
							} `json:"attributes"`
						} `json:"data"`
					} `json:"profile"`
				} `json:"attributes"`
			} `json:"data"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Data.Type != "data-privacy-deletion-job" {
			kvError(w, 400, "invalid", "Invalid input.", "Malformed JSON:API document.", "")
			return
		}
		p := body.Data.Attributes.Profile.Data
		i, ok := -1, false
		if p.ID != "" {
			i, ok = f.IndexOf(p.ID)
		} else if p.Attributes.Email != "" {
			i, ok = f.IndexOfEmail(strings.ToLower(p.Attributes.Email))
		}
		if !ok || !f.Delete(i) {
			kvError(w, 404, "not_found", "Not found.", "No profile matches.", "")
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
}

func kvWrite(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	WriteJSON(w, status, kvJSONAPI, b)
}

func kvPageSize(w http.ResponseWriter, r *http.Request, def, max int) (int, bool) {
	s := r.URL.Query().Get("page[size]")
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		kvError(w, 400, "invalid", "Invalid input.", fmt.Sprintf("'page[size]' must be between 1 and %d.", max), "page[size]")
		return 0, false
	}
	return n, true
}

func kvLists(f *Fake, w http.ResponseWriter, r *http.Request) {
	size, ok := kvPageSize(w, r, 10, 10)
	if !ok {
		return
	}
	start := 0
	if c := r.URL.Query().Get("page[cursor]"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(b), "l:"))
		if err != nil || err2 != nil || n < 0 {
			kvError(w, 400, "invalid", "Invalid input.", "Invalid page cursor.", "page[cursor]")
			return
		}
		start = n
	}
	var data []any
	for l := start; l < f.Lists() && l < start+size; l++ {
		t := kvTime(time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(l) * time.Hour))
		data = append(data, map[string]any{
			"type": "list", "id": f.ListID(l),
			"attributes": map[string]any{"name": fmt.Sprintf("List %d", l+1), "created": t, "updated": t, "opt_in_process": "single_opt_in"},
			"links":      map[string]string{"self": f.URL() + "/api/lists/" + f.ListID(l)},
		})
	}
	links := map[string]string{"self": f.URL() + r.URL.RequestURI()}
	if start+size < f.Lists() {
		links["next"] = kvNext(f, r, base64.RawURLEncoding.EncodeToString([]byte("l:"+strconv.Itoa(start+size))))
	}
	if data == nil {
		data = []any{}
	}
	kvWrite(w, 200, map[string]any{"data": data, "links": links})
}

func kvNext(f *Fake, r *http.Request, cursor string) string {
	q := r.URL.Query()
	q.Set("page[cursor]", cursor)
	return f.URL() + r.URL.Path + "?" + q.Encode()
}

var kvFilter = regexp.MustCompile(`^(greater-than|greater-or-equal)\(updated,([^)]+)\)$`)

func kvProfiles(f *Fake, w http.ResponseWriter, r *http.Request, list int) {
	q := r.URL.Query()
	size, ok := kvPageSize(w, r, 20, 100)
	if !ok {
		return
	}
	var since time.Time
	inclusive, filtered := false, false
	if fl := q.Get("filter"); fl != "" {
		m := kvFilter.FindStringSubmatch(fl)
		var err error
		if m != nil {
			since, err = time.Parse(time.RFC3339Nano, strings.Trim(m[2], `'"`))
		}
		if m == nil || err != nil {
			kvError(w, 400, "invalid", "Invalid input.", "Unsupported filter.", "filter")
			return
		}
		inclusive, filtered = m[1] == "greater-or-equal", true
	}
	if s := q.Get("sort"); s != "" && s != "updated" && s != "id" {
		kvError(w, 400, "invalid", "Invalid input.", "Unsupported sort.", "sort")
		return
	}
	subs := strings.Contains(q.Get("additional-fields[profile]"), "subscriptions")
	var cur []byte
	if c := q.Get("page[cursor]"); c != "" {
		var err error
		if cur, err = base64.RawURLEncoding.DecodeString(c); err != nil {
			kvError(w, 400, "invalid", "Invalid input.", "Invalid page cursor.", "page[cursor]")
			return
		}
	}
	var recs []Record
	var next string
	if !filtered {
		after := -1
		if cur != nil {
			n, err := strconv.Atoi(strings.TrimPrefix(string(cur), "i:"))
			if err != nil {
				kvError(w, 400, "invalid", "Invalid input.", "Invalid page cursor.", "page[cursor]")
				return
			}
			after = n
		}
		var more bool
		recs, more = f.After(list, after, size)
		if more && len(recs) > 0 {
			next = "i:" + strconv.Itoa(recs[len(recs)-1].Index)
		}
	} else {
		keys := f.Changed(list, since, inclusive)
		start := 0
		if cur != nil {
			var ns int64
			var idx int
			if _, err := fmt.Sscanf(string(cur), "u:%d:%d", &ns, &idx); err != nil {
				kvError(w, 400, "invalid", "Invalid input.", "Invalid page cursor.", "page[cursor]")
				return
			}
			t := time.Unix(0, ns).UTC()
			for start < len(keys) && (keys[start].Updated.Before(t) || keys[start].Updated.Equal(t) && keys[start].Index <= idx) {
				start++
			}
		}
		end := min(start+size, len(keys))
		for _, k := range keys[start:end] {
			recs = append(recs, f.Record(k.Index))
		}
		if end < len(keys) && end > start {
			k := keys[end-1]
			next = fmt.Sprintf("u:%d:%d", k.Updated.UnixNano(), k.Index)
		}
	}
	data := make([]any, 0, len(recs))
	for _, rec := range recs {
		data = append(data, kvProfile(f, rec, subs))
	}
	links := map[string]string{"self": f.URL() + r.URL.RequestURI()}
	if next != "" {
		links["next"] = kvNext(f, r, base64.RawURLEncoding.EncodeToString([]byte(next)))
	}
	kvWrite(w, 200, map[string]any{"data": data, "links": links})
}

func kvProfile(f *Fake, rec Record, subs bool) map[string]any {
	props := map[string]any{}
	for k, v := range rec.Fields {
		props[k] = v
	}
	attrs := map[string]any{
		"email": rec.Email, "created": kvTime(rec.Created), "updated": kvTime(rec.Updated), "properties": props,
	}
	if subs {
		consent, canReceive := "SUBSCRIBED", true
		var sup []any
		ts := kvTime(rec.Updated)
		switch rec.Status {
		case esp.StatusUnsubscribed:
			consent, canReceive = "UNSUBSCRIBED", false
		case esp.StatusBounced:
			canReceive = false
			sup = append(sup, map[string]any{"reason": "HARD_BOUNCE", "timestamp": ts})
		case esp.StatusComplained:
			consent, canReceive = "UNSUBSCRIBED", false
			sup = append(sup, map[string]any{"reason": "SPAM_COMPLAINT", "timestamp": ts})
		}
		if sup == nil {
			sup = []any{}
		}
		attrs["subscriptions"] = map[string]any{"email": map[string]any{"marketing": map[string]any{
			"can_receive_email_marketing": canReceive, "consent": consent, "suppression": sup, "list_suppressions": []any{},
		}}}
	}
	return map[string]any{"type": "profile", "id": rec.ID, "attributes": attrs, "links": map[string]string{"self": f.URL() + "/api/profiles/" + url.PathEscape(rec.ID)}}
}
