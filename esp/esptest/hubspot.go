package esptest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/autofloss/autofloss/esp"
)

// HubSpot fake (esp-platforms.md § hubspot; HubSpot's OpenAPI documents may not be copied, so there is no
// validation document). Enforces `Authorization: Bearer <token>` (401 INVALID_AUTHENTICATION), limit 1–100
// on object reads and searches and count ≤ 250 on v1 lists (400 VALIDATION_ERROR), cursor paging with
// paging.next.after, and the search rules that matter: filterGroups (OR of ANDed filters) on
// lastmodifieddate and hs_object_id with EQ/GT/GTE/LT/LTE (values in epoch milliseconds or ISO 8601), one
// sort, results in (sort value, id) order, and at most 10,000 results per search — asking for after ≥ 10,000
// is a 400, exactly as HubSpot answers. Timestamps have millisecond precision, so contacts changed in the
// same millisecond tie.
//
// Limits: 100 requests per 10 s (10/s, burst 10) answered with 429, a RATE_LIMIT body naming the policy and
// X-HubSpot-RateLimit-* headers (no Retry-After); searches additionally 5 per second (SECONDLY) whenever the
// fake has limits at all. Properties must exist before a PATCH sets them (400 PROPERTY_DOESNT_EXIST); POST
// /crm/v3/properties/contacts creates them (409 when they exist). Unsubscribes go through the
// communication-preferences v3 API with one subscription type ("Marketing Information", id 7): unsubscribing
// someone already unsubscribed is a 400, as on HubSpot. Statuses: spam complaints are opt-outs
// (hs_email_optout), hard bounces set hs_email_hard_bounce_reason_enum.

const hsSubscription = "7"

var hsCorr atomic.Int64

func hsErr(w http.ResponseWriter, status int, category, msg string, extra map[string]any) {
	b := map[string]any{"status": "error", "message": msg, "category": category,
		"correlationId": fmt.Sprintf("0f5e7a1c-0000-4000-8000-%012d", hsCorr.Add(1)%1e12)}
	for k, v := range extra {
		b[k] = v
	}
	j, _ := json.Marshal(b)
	WriteJSON(w, status, "application/json;charset=utf-8", j)
}

func hsThrottle(w http.ResponseWriter, policy string, max int) {
	w.Header().Set("X-HubSpot-RateLimit-Interval-Milliseconds", "10000")
	w.Header().Set("X-HubSpot-RateLimit-Max", strconv.Itoa(max))
	w.Header().Set("X-HubSpot-RateLimit-Remaining", "0")
	hsErr(w, 429, "RATE_LIMITS", "You have reached your "+strings.ToLower(policy)+" limit.", map[string]any{"errorType": "RATE_LIMIT", "policyName": policy})
}

func hubspotSpec() Spec {
	return Spec{
		Slug:        "hubspot",
		Limits:      esp.Limits{Rate: 10, Burst: 10},
		PerList:     false,
		ContactID:   func(c SeedContact) string { return strconv.FormatInt(hsID(c.Index), 10) },
		ListID:      func(l int) string { return strconv.Itoa(l + 1) },
		Credentials: secretCredentials("access_token", "pat-na1-", "pat-na1-00000000-0000-0000-0000-000000000000"),
		Authorized:  headerSecret("Authorization", "Bearer pat-na1-"),
		Unauthorized: func(w http.ResponseWriter, r *http.Request) {
			hsErr(w, 401, "INVALID_AUTHENTICATION", "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview", nil)
		},
		Throttle: func(w http.ResponseWriter, _ time.Duration) { hsThrottle(w, "TEN_SECONDLY_ROLLING", 100) },
		ServerError: func(w http.ResponseWriter) {
			hsErr(w, 502, "INTERNAL_ERROR", "Bad Gateway", nil)
		},
		Routes: hubspotRoutes,
		Status: func(s esp.Status) esp.Status {
			if s == esp.StatusComplained {
				return esp.StatusUnsubscribed
			}
			return s
		},
		FieldName: esp.HubSpotProperty,
	}
}

var hsDefaultProps = []string{"email", "firstname", "lastname", "createdate", "lastmodifieddate", "hs_object_id",
	"hs_email_optout", "hs_email_hard_bounce_reason_enum", "lifecyclestage"}

// hsHit is one search match: seeded index, lastmodifieddate (ms) and object id.
type hsHit struct {
	idx int
	ms  int64
	id  int64
}

// hsID is the HubSpot object id of seeded contact i (numeric, ascending with i).
func hsID(i int) int64 { return 1001 + int64(i) }

func hsTime(t time.Time) string {
	return t.UTC().Truncate(time.Millisecond).Format("2006-01-02T15:04:05.000Z")
}

func hsObject(rec Record, props []string) map[string]any {
	p := map[string]any{"createdate": hsTime(rec.Created), "lastmodifieddate": hsTime(rec.Updated), "hs_object_id": rec.ID}
	for _, name := range props {
		switch name {
		case "email":
			p["email"] = rec.Email
		case "hs_email_optout":
			p[name] = strconv.FormatBool(rec.Status == esp.StatusUnsubscribed)
		case "hs_email_hard_bounce_reason_enum":
			p[name] = nil
			if rec.Status == esp.StatusBounced {
				p[name] = "UNKNOWN_USER"
			}
		case "createdate", "lastmodifieddate", "hs_object_id":
		default:
			if v, ok := rec.Fields[name]; ok {
				p[name] = v
			} else {
				p[name] = nil
			}
		}
	}
	return map[string]any{"id": rec.ID, "properties": p, "createdAt": hsTime(rec.Created), "updatedAt": hsTime(rec.Updated), "archived": false}
}

func hsWrite(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	WriteJSON(w, status, "application/json;charset=utf-8", b)
}

type hsFilter struct {
	PropertyName string `json:"propertyName"`
	Operator     string `json:"operator"`
	Value        string `json:"value"`
}

func hsMillis(v string) (int64, bool) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n, true
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UnixMilli(), true
	}
	return 0, false
}

func hubspotRoutes(f *Fake, mux *http.ServeMux) {
	var mu sync.Mutex
	props := map[string]bool{}
	for _, p := range hsDefaultProps {
		props[p] = true
	}
	var cache struct {
		mu   sync.Mutex
		key  string
		ver  int64
		hits []hsHit
	}
	var search *rate.Limiter
	if f.limits.Rate > 0 {
		search = rate.NewLimiter(5, 5)
	}
	find := func(w http.ResponseWriter, id string) (int, bool) {
		i, ok := f.IndexOf(id)
		if !ok || !f.Alive(i, -1) {
			hsErr(w, 404, "OBJECT_NOT_FOUND", "resource not found", nil)
			return 0, false
		}
		return i, true
	}
	limit := func(w http.ResponseWriter, s string, def, max int) (int, bool) {
		if s == "" {
			return def, true
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > max {
			hsErr(w, 400, "VALIDATION_ERROR", fmt.Sprintf("limit must be between 1 and %d", max), nil)
			return 0, false
		}
		return n, true
	}
	propList := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, ",")
	}

	mux.HandleFunc("GET /crm/v3/objects/contacts", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		n, ok := limit(w, q.Get("limit"), 10, 100)
		if !ok {
			return
		}
		after := -1
		if a := q.Get("after"); a != "" {
			x, err := strconv.Atoi(a)
			if err != nil || x < 0 {
				hsErr(w, 400, "VALIDATION_ERROR", "Invalid after value", nil)
				return
			}
			after = x - 1
		}
		recs, more := f.After(-1, after, n)
		results := make([]any, 0, len(recs))
		for _, rec := range recs {
			results = append(results, hsObject(rec, propList(q.Get("properties"))))
		}
		out := map[string]any{"results": results}
		if more && len(recs) > 0 {
			next := strconv.Itoa(recs[len(recs)-1].Index + 1)
			nq := r.URL.Query()
			nq.Set("after", next)
			out["paging"] = map[string]any{"next": map[string]string{"after": next, "link": "https://api.hubapi.com/crm/v3/objects/contacts?" + nq.Encode()}}
		}
		hsWrite(w, 200, out)
	})
	mux.HandleFunc("GET /crm/v3/objects/contacts/{id}", func(w http.ResponseWriter, r *http.Request) {
		if i, ok := find(w, r.PathValue("id")); ok {
			hsWrite(w, 200, hsObject(f.Record(i), propList(r.URL.Query().Get("properties"))))
		}
	})
	mux.HandleFunc("PATCH /crm/v3/objects/contacts/{id}", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Properties map[string]any `json:"properties"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			hsErr(w, 400, "VALIDATION_ERROR", "Invalid input JSON", nil)
			return
		}
		i, ok := find(w, r.PathValue("id"))
		if !ok {
			return
		}
		mu.Lock()
		var bad []string
		for k := range body.Properties {
			if !props[k] {
				bad = append(bad, k)
			}
		}
		mu.Unlock()
		if len(bad) > 0 {
			sort.Strings(bad)
			hsErr(w, 400, "VALIDATION_ERROR", fmt.Sprintf("Property values were not valid: [{\"isValid\":false,\"message\":\"Property \\\"%s\\\" does not exist\",\"error\":\"PROPERTY_DOESNT_EXIST\",\"name\":\"%s\"}]", bad[0], bad[0]), nil)
			return
		}
		for k, v := range body.Properties {
			s, isStr := v.(string)
			if !isStr {
				s = fmt.Sprint(v)
			}
			f.SetField(i, k, s)
		}
		var names []string
		for k := range body.Properties {
			names = append(names, k)
		}
		hsWrite(w, 200, hsObject(f.Record(i), names))
	})
	mux.HandleFunc("DELETE /crm/v3/objects/contacts/{id}", func(w http.ResponseWriter, r *http.Request) {
		// HubSpot answers 204 for an id that is already archived or unknown.
		if i, ok := f.IndexOf(r.PathValue("id")); ok {
			f.Delete(i)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /crm/v3/objects/contacts/search", func(w http.ResponseWriter, r *http.Request) {
		if search != nil && !search.Allow() {
			f.stats.throttled.Add(1)
			hsThrottle(w, "SECONDLY", 5)
			return
		}
		var body struct {
			FilterGroups []struct {
				Filters []hsFilter `json:"filters"`
			} `json:"filterGroups"`
			Sorts []struct {
				PropertyName string `json:"propertyName"`
				Direction    string `json:"direction"`
			} `json:"sorts"`
			Properties []string `json:"properties"`
			Limit      int      `json:"limit"`
			After      string   `json:"after"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			hsErr(w, 400, "VALIDATION_ERROR", "Invalid input JSON", nil)
			return
		}
		n := body.Limit
		if n == 0 {
			n = 10
		}
		if n < 1 || n > 100 {
			hsErr(w, 400, "VALIDATION_ERROR", "limit must be between 1 and 100", nil)
			return
		}
		after := 0
		if body.After != "" {
			x, err := strconv.Atoi(body.After)
			if err != nil || x < 0 {
				hsErr(w, 400, "VALIDATION_ERROR", "Invalid after value", nil)
				return
			}
			after = x
		}
		if after >= 10000 {
			hsErr(w, 400, "VALIDATION_ERROR", "Cannot page beyond 10000 results; narrow the search or re-window with a filter.", nil)
			return
		}
		if len(body.FilterGroups) > 5 || len(body.Sorts) > 1 {
			hsErr(w, 400, "VALIDATION_ERROR", "At most 5 filterGroups and one sort", nil)
			return
		}
		for _, g := range body.FilterGroups {
			for _, fl := range g.Filters {
				if fl.PropertyName != "lastmodifieddate" && fl.PropertyName != "hs_object_id" && fl.PropertyName != "createdate" {
					hsErr(w, 400, "VALIDATION_ERROR", "The fake filters on lastmodifieddate, createdate and hs_object_id only", nil)
					return
				}
				if _, ok := hsMillis(fl.Value); !ok {
					hsErr(w, 400, "VALIDATION_ERROR", "Invalid filter value", nil)
					return
				}
				switch fl.Operator {
				case "EQ", "GT", "GTE", "LT", "LTE":
				default:
					hsErr(w, 400, "VALIDATION_ERROR", "Unsupported operator "+fl.Operator, nil)
					return
				}
			}
		}
		// Match and sort on (index, millisecond, id) only; records are built for the answered page alone.
		value := func(h hsHit, prop string) int64 {
			switch prop {
			case "hs_object_id":
				return h.id
			case "createdate":
				return f.Seeded(h.idx).Created.UnixMilli()
			}
			return h.ms
		}
		match := func(h hsHit) bool {
			if len(body.FilterGroups) == 0 {
				return true
			}
			for _, g := range body.FilterGroups {
				ok := true
				for _, fl := range g.Filters {
					v, _ := hsMillis(fl.Value)
					x := value(h, fl.PropertyName)
					switch fl.Operator {
					case "EQ":
						ok = ok && x == v
					case "GT":
						ok = ok && x > v
					case "GTE":
						ok = ok && x >= v
					case "LT":
						ok = ok && x < v
					case "LTE":
						ok = ok && x <= v
					}
				}
				if ok {
					return true
				}
			}
			return false
		}
		// The matching set is computed once per query and reused for its following pages until the store
		// changes (a write or a Touch), as a live search index would answer.
		qkey, _ := json.Marshal([]any{body.FilterGroups, body.Sorts})
		f.mu.RLock()
		ver := f.writes.fields.Load() + f.writes.tags.Load() + f.writes.unsubs.Load() + f.writes.deletes.Load() + int64(f.touches)
		f.mu.RUnlock()
		cache.mu.Lock()
		hits, ok := cache.hits, cache.key == string(qkey) && cache.ver == ver
		cache.mu.Unlock()
		if !ok {
			hits = nil
			for _, k := range f.Changed(-1, time.Time{}, true) {
				h := hsHit{idx: k.Index, ms: k.Updated.UnixMilli(), id: hsID(k.Index)}
				if match(h) {
					hits = append(hits, h)
				}
			}
			sortProp, desc := "hs_object_id", false
			if len(body.Sorts) == 1 {
				sortProp, desc = body.Sorts[0].PropertyName, body.Sorts[0].Direction == "DESCENDING"
			}
			sort.SliceStable(hits, func(a, b int) bool {
				va, vb := value(hits[a], sortProp), value(hits[b], sortProp)
				if va != vb {
					return (va < vb) != desc
				}
				return hits[a].id < hits[b].id
			})
			cache.mu.Lock()
			cache.key, cache.ver, cache.hits = string(qkey), ver, hits
			cache.mu.Unlock()
		}
		total := len(hits)
		end := min(after+n, total, 10000)
		results := []any{}
		for k := after; k < end; k++ {
			results = append(results, hsObject(f.Record(hits[k].idx), body.Properties))
		}
		out := map[string]any{"total": total, "results": results}
		if end < total {
			out["paging"] = map[string]any{"next": map[string]string{"after": strconv.Itoa(end)}}
		}
		hsWrite(w, 200, out)
	})
	mux.HandleFunc("GET /crm/v3/properties/contacts", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		var names []string
		for p := range props {
			names = append(names, p)
		}
		mu.Unlock()
		sort.Strings(names)
		res := make([]any, 0, len(names))
		for _, n := range names {
			res = append(res, map[string]any{"name": n, "label": n, "type": "string", "fieldType": "text", "groupName": "contactinformation"})
		}
		hsWrite(w, 200, map[string]any{"results": res})
	})
	mux.HandleFunc("POST /crm/v3/properties/contacts", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Name      string `json:"name"`
			Label     string `json:"label"`
			Type      string `json:"type"`
			FieldType string `json:"fieldType"`
			GroupName string `json:"groupName"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Name == "" || body.Label == "" || body.Type == "" || body.FieldType == "" || body.GroupName == "" {
			hsErr(w, 400, "VALIDATION_ERROR", "name, label, type, fieldType and groupName are required", nil)
			return
		}
		if body.Name != esp.HubSpotProperty(body.Name) {
			hsErr(w, 400, "VALIDATION_ERROR", "Property names must be lower case letters, digits and underscores", nil)
			return
		}
		mu.Lock()
		dup := props[body.Name]
		props[body.Name] = true
		mu.Unlock()
		if dup {
			hsErr(w, 409, "OBJECT_ALREADY_EXISTS", fmt.Sprintf("Property named '%s' already exists.", body.Name), nil)
			return
		}
		hsWrite(w, 201, map[string]any{"name": body.Name, "label": body.Label, "type": body.Type, "fieldType": body.FieldType, "groupName": body.GroupName})
	})
	mux.HandleFunc("GET /contacts/v1/lists", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		count, ok := limit(w, q.Get("count"), 20, 250)
		if !ok {
			return
		}
		offset, _ := strconv.Atoi(q.Get("offset"))
		lists := []any{}
		for l := offset; l < f.Lists() && l < offset+count; l++ {
			lid, _ := strconv.Atoi(f.ListID(l))
			lists = append(lists, map[string]any{"listId": lid, "name": fmt.Sprintf("Newsletter %d", l+1), "listType": "STATIC", "dynamic": false,
				"metaData": map[string]any{"size": f.Len(l)}})
		}
		end := min(offset+count, f.Lists())
		hsWrite(w, 200, map[string]any{"lists": lists, "offset": end, "has-more": end < f.Lists()})
	})
	email := func(w http.ResponseWriter, e string) (int, bool) {
		i, ok := f.IndexOfEmail(strings.ToLower(e))
		if !ok || !f.Alive(i, -1) {
			hsErr(w, 400, "VALIDATION_ERROR", "No contact with that email address", nil)
			return 0, false
		}
		return i, true
	}
	mux.HandleFunc("GET /communication-preferences/v3/status/email/{email}", func(w http.ResponseWriter, r *http.Request) {
		i, ok := email(w, r.PathValue("email"))
		if !ok {
			return
		}
		rec := f.Record(i)
		st := "SUBSCRIBED"
		if rec.Status == esp.StatusUnsubscribed {
			st = "NOT_SUBSCRIBED"
		}
		hsWrite(w, 200, map[string]any{"recipient": rec.Email, "subscriptionStatuses": []any{map[string]any{
			"id": hsSubscription, "name": "Marketing Information", "description": "Marketing offers and updates.",
			"status": st, "sourceOfStatus": "SUBSCRIPTION_STATUS", "legalBasis": nil, "legalBasisExplanation": nil,
		}}})
	})
	mux.HandleFunc("POST /communication-preferences/v3/unsubscribe", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			EmailAddress   string `json:"emailAddress"`
			SubscriptionID string `json:"subscriptionId"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.EmailAddress == "" || body.SubscriptionID == "" {
			hsErr(w, 400, "VALIDATION_ERROR", "emailAddress and subscriptionId are required", nil)
			return
		}
		if body.SubscriptionID != hsSubscription {
			hsErr(w, 400, "VALIDATION_ERROR", "Subscription "+body.SubscriptionID+" does not exist", nil)
			return
		}
		i, ok := email(w, body.EmailAddress)
		if !ok {
			return
		}
		rec := f.Record(i)
		if rec.Status == esp.StatusUnsubscribed {
			hsErr(w, 400, "VALIDATION_ERROR", "The recipient is already unsubscribed from subscription "+hsSubscription, nil)
			return
		}
		f.Unsubscribe(i)
		hsWrite(w, 200, map[string]any{"recipient": rec.Email, "subscriptionStatuses": []any{map[string]any{
			"id": hsSubscription, "name": "Marketing Information", "status": "NOT_SUBSCRIBED", "sourceOfStatus": "SUBSCRIPTION_STATUS",
		}}})
	})
}
