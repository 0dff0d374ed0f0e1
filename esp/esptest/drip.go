package esptest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/autofloss/autofloss/esp"
)

// Drip fake (esp-platforms.md § drip; validated against the vendor's REST v2 fragments through the wrapper
// openapi/drip/rest-v2.yaml). Enforces HTTP Basic with the API token as user name and an empty password
// (401 otherwise), a User-Agent naming the integration (400 when missing or Go's default: Drip asks every
// integration to send one), the account id in the path (403 authorization_error for an account the token
// cannot reach), per_page 1–1000 and page ≥ 1 (422), the status filter (default active), page-number paging
// with meta.total_pages/total_count, and 3,600 requests per hour per account answered with 429 and
// X-RateLimit-Limit/X-RateLimit-Remaining (no Retry-After: Drip sends none).
//
// Drip has no lists; the fake's lists are tags ("Newsletter 1", …) carried by their members. Statuses are
// active and unsubscribed only: spam complainers are unsubscribed, bounced people stay active (Drip's
// separate undeliverable filter still finds them). Upserts (POST /subscribers) find the person by id or
// email; creating new people is not modelled (422).

const dripAccountID = "4817263"

const dripUA = "Go-http-client/"

func dripErr(w http.ResponseWriter, status int, code, attr, msg string) {
	e := map[string]string{"code": code, "message": msg}
	if attr != "" {
		e["attribute"] = attr
	}
	b, _ := json.Marshal(map[string]any{"errors": []any{e}})
	WriteJSON(w, status, "application/json; charset=utf-8", b)
}

func dripSpec() Spec {
	return Spec{
		Slug:    "drip",
		Limits:  esp.Limits{Rate: 1, Burst: 3600}, // 3,600 per hour
		PerList: false,
		ContactID: func(c SeedContact) string {
			return fmt.Sprintf("%012x%08d", mix64(uint64(c.Index)+3)>>16, c.Index)
		},
		ListID: func(l int) string { return fmt.Sprintf("Newsletter %d", l+1) },
		Credentials: func(f *Fake, good bool) map[string]string {
			if good {
				return map[string]string{"api_key": f.Secret(), "account_id": dripAccountID}
			}
			return map[string]string{"api_key": "00000000000000000000000000000000", "account_id": dripAccountID}
		},
		Authorized: func(f *Fake, r *http.Request) bool {
			u, p, ok := r.BasicAuth()
			return ok && u == f.Secret() && p == ""
		},
		Unauthorized: func(w http.ResponseWriter, r *http.Request) {
			dripErr(w, 401, "authentication_error", "", "You must be authenticated to access this resource")
		},
		Throttle: func(w http.ResponseWriter, _ time.Duration) {
			w.Header().Set("X-RateLimit-Limit", "3600")
			w.Header().Set("X-RateLimit-Remaining", "0")
			dripErr(w, 429, "too_many_requests", "", "API rate limit exceeded. Please try again in an hour.")
		},
		ServerError: func(w http.ResponseWriter) {
			dripErr(w, 500, "internal_server_error", "", "An unexpected error occurred.")
		},
		Routes:  dripRoutes,
		OpenAPI: []string{"drip/rest-v2.yaml"},
		Status: func(s esp.Status) esp.Status {
			switch s {
			case esp.StatusComplained:
				return esp.StatusUnsubscribed
			case esp.StatusBounced:
				return esp.StatusSubscribed
			}
			return s
		},
	}
}

func dripWrite(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	WriteJSON(w, status, "application/json; charset=utf-8", b)
}

func dripSubscriber(f *Fake, rec Record) map[string]any {
	st := "active"
	if rec.Status == esp.StatusUnsubscribed {
		st = "unsubscribed"
	}
	tags := make([]string, 0, len(rec.Lists)+len(rec.Tags))
	for _, l := range rec.Lists {
		tags = append(tags, f.ListID(l))
	}
	tags = append(tags, rec.Tags...)
	cf := map[string]any{}
	for k, v := range rec.Fields {
		cf[k] = v
	}
	return map[string]any{
		"id": rec.ID, "status": st, "email": rec.Email, "time_zone": "Etc/UTC", "utc_offset": 0,
		"custom_fields": cf, "tags": tags, "prospect": false, "lead_score": 0, "lifetime_value": 0,
		"created_at": rec.Created.UTC().Format(time.RFC3339),
		"href":       "https://api.getdrip.com/v2/" + dripAccountID + "/subscribers/" + rec.ID,
		"links":      map[string]string{"account": dripAccountID},
	}
}

var dripLinks = map[string]string{"subscribers.account": "https://api.getdrip.com/v2/accounts/{subscribers.account}"}

func dripRoutes(f *Fake, mux *http.ServeMux) {
	var mu sync.Mutex
	written := map[string]bool{} // tags applied through the API
	h := func(pattern string, account bool, fn func(w http.ResponseWriter, r *http.Request)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if ua := r.UserAgent(); ua == "" || strings.HasPrefix(ua, dripUA) {
				dripErr(w, 400, "user_agent_error", "", "Please include a User-Agent header that identifies your integration.")
				return
			}
			if account && r.PathValue("account_id") != dripAccountID {
				dripErr(w, 403, "authorization_error", "", "You are not authorized to access this resource")
				return
			}
			fn(w, r)
		})
	}
	find := func(w http.ResponseWriter, key string) (int, bool) {
		var i int
		var ok bool
		if strings.Contains(key, "@") {
			i, ok = f.IndexOfEmail(strings.ToLower(key))
		} else {
			i, ok = f.IndexOf(key)
		}
		if !ok || !f.Alive(i, -1) {
			dripErr(w, 404, "not_found_error", "", "The resource you requested was not found")
			return 0, false
		}
		return i, true
	}
	one := func(w http.ResponseWriter, i int) {
		dripWrite(w, 200, map[string]any{"links": dripLinks, "subscribers": []any{dripSubscriber(f, f.Record(i))}})
	}

	h("GET /v2/accounts", false, func(w http.ResponseWriter, r *http.Request) {
		dripWrite(w, 200, map[string]any{
			"links": map[string]string{"accounts.broadcasts": "https://api.getdrip.com/v2/{accounts.id}/broadcasts"},
			"accounts": []any{map[string]any{
				"id": dripAccountID, "name": "Fake Drip account", "url": "www.example.com",
				"enable_third_party_cookies": false, "created_at": "2019-03-01T10:00:00Z",
				"href": "https://api.getdrip.com/v2/accounts/" + dripAccountID,
			}},
		})
	})
	h("GET /v2/{account_id}/tags", true, func(w http.ResponseWriter, r *http.Request) {
		tags := []string{}
		for l := 0; l < f.Lists(); l++ {
			tags = append(tags, f.ListID(l))
		}
		mu.Lock()
		var extra []string
		for t := range written {
			extra = append(extra, t)
		}
		mu.Unlock()
		sort.Strings(extra)
		dripWrite(w, 200, map[string]any{"tags": append(tags, extra...)})
	})
	h("GET /v2/{account_id}/subscribers", true, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		num := func(name string, def, max int) (int, bool) {
			s := q.Get(name)
			if s == "" {
				return def, true
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > max {
				msg := fmt.Sprintf("%s must be a positive integer", name)
				if max < 1<<30 {
					msg = fmt.Sprintf("%s must be between 1 and %d", name, max)
				}
				dripErr(w, 422, "invalid_value_error", name, msg)
				return 0, false
			}
			return n, true
		}
		per, ok := num("per_page", 100, 1000)
		if !ok {
			return
		}
		page, ok := num("page", 1, 1<<30)
		if !ok {
			return
		}
		status := q.Get("status")
		if status == "" {
			status = "active"
		}
		var recs []Record
		total := 0
		offset := (page - 1) * per
		switch status {
		case "all":
			total = f.Len(-1)
			recs = f.Slice(-1, offset, per)
		case "active", "unsubscribed", "active_or_unsubscribed", "undeliverable":
			var all []Record
			for _, rec := range f.Slice(-1, 0, f.Len(-1)) {
				undeliverable := rec.Kind == KindBounced && rec.Status != esp.StatusUnsubscribed
				keep := false
				switch status {
				case "active":
					keep = rec.Status != esp.StatusUnsubscribed && !undeliverable
				case "unsubscribed":
					keep = rec.Status == esp.StatusUnsubscribed
				case "active_or_unsubscribed":
					keep = !undeliverable
				case "undeliverable":
					keep = undeliverable
				}
				if keep {
					all = append(all, rec)
				}
			}
			total = len(all)
			if offset < len(all) {
				recs = all[offset:min(offset+per, len(all))]
			}
		default:
			dripErr(w, 422, "invalid_value_error", "status", "status must be one of all, active, unsubscribed, active_or_unsubscribed, undeliverable")
			return
		}
		subs := make([]any, 0, len(recs))
		for _, rec := range recs {
			subs = append(subs, dripSubscriber(f, rec))
		}
		dripWrite(w, 200, map[string]any{
			"links":       dripLinks,
			"meta":        map[string]int{"page": page, "count": len(subs), "total_pages": (total + per - 1) / per, "total_count": total},
			"subscribers": subs,
		})
	})
	h("POST /v2/{account_id}/subscribers", true, func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Subscribers []struct {
				ID           string         `json:"id"`
				Email        string         `json:"email"`
				CustomFields map[string]any `json:"custom_fields"`
				Tags         []string       `json:"tags"`
				Status       string         `json:"status"`
			} `json:"subscribers"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			dripErr(w, 400, "invalid_json_error", "", "The request body is not valid JSON.")
			return
		}
		if len(body.Subscribers) != 1 {
			dripErr(w, 422, "length_error", "subscribers", "Exactly one subscriber is required; use the batch API for more.")
			return
		}
		s := body.Subscribers[0]
		var i int
		var ok bool
		switch {
		case s.ID != "":
			if i, ok = find(w, s.ID); !ok {
				return
			}
		case s.Email != "":
			if i, ok = f.IndexOfEmail(strings.ToLower(s.Email)); !ok || !f.Alive(i, -1) {
				dripErr(w, 422, "unsupported_error", "email", "Creating subscribers is not modelled by this fake.")
				return
			}
		default:
			dripErr(w, 422, "presence_error", "email", "Email is required")
			return
		}
		for k, v := range s.CustomFields {
			sv, isStr := v.(string)
			if !isStr {
				sv = fmt.Sprint(v)
			}
			f.SetField(i, k, sv)
		}
		for _, t := range s.Tags {
			if t == "" {
				continue
			}
			f.AddTag(i, t)
			mu.Lock()
			written[t] = true
			mu.Unlock()
		}
		if s.Status == "unsubscribed" {
			f.Unsubscribe(i)
		}
		one(w, i)
	})
	h("GET /v2/{account_id}/subscribers/{id_or_email}", true, func(w http.ResponseWriter, r *http.Request) {
		if i, ok := find(w, r.PathValue("id_or_email")); ok {
			one(w, i)
		}
	})
	h("DELETE /v2/{account_id}/subscribers/{id_or_email}", true, func(w http.ResponseWriter, r *http.Request) {
		if i, ok := find(w, r.PathValue("id_or_email")); ok {
			f.Delete(i)
			w.WriteHeader(http.StatusNoContent)
		}
	})
	h("POST /v2/{account_id}/subscribers/{id_or_email}/unsubscribe_all", true, func(w http.ResponseWriter, r *http.Request) {
		if i, ok := find(w, r.PathValue("id_or_email")); ok {
			f.Unsubscribe(i)
			one(w, i)
		}
	})
}
