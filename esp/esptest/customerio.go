package esptest

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/autofloss/autofloss/esp"
)

// Customer.io fake (esp-platforms.md § customerio; no official document). One server serves both APIs, as
// the adapter's single base-URL override expects: App API paths /v1/… require `Authorization: Bearer
// <app_api_key>`, Track API paths /api/v1/… require HTTP Basic site_id:track_api_key (401
// {"meta":{"error":"Unauthorized request"}} otherwise). Enforces the identifiers search (POST /v1/customers
// with a filter body; limit 1–1000, 400 otherwise; `next` token paging, "" at the end), the attributes
// lookup (1–100 ids, 400 otherwise), `_update` PUTs that never create customers, deletes that succeed
// whether or not the customer exists (Track is idempotent), 10 requests per second answered 429 with
// Retry-After. The fake's one limiter also covers Track paths (the real Track API has a soft limit and no
// documented 429). Profiles carry `unsubscribed`; bounces and complaints are suppressions outside the
// profile, so those seed as unsubscribed.

func customerioSpec() Spec {
	return Spec{
		Slug:      "customerio",
		Limits:    esp.Limits{Rate: 10, Burst: 10},
		PerList:   false,
		ContactID: func(c SeedContact) string { return strconv.Itoa(100000 + c.Index) },
		ListID:    func(l int) string { return strconv.Itoa(l + 1) },
		Credentials: func(f *Fake, good bool) map[string]string {
			if good {
				return map[string]string{"app_api_key": f.Secret(), "site_id": "site" + f.Secret()[len(f.Secret())-6:],
					"track_api_key": "trk" + f.Secret(), "region": "us"}
			}
			return map[string]string{"app_api_key": "0000000000000000", "site_id": "site000000", "track_api_key": "trk00000000", "region": "us"}
		},
		Authorized: func(f *Fake, r *http.Request) bool {
			good := f.Credentials(true)
			if strings.HasPrefix(r.URL.Path, "/api/") {
				u, p, ok := r.BasicAuth()
				return ok && u == good["site_id"] && p == good["track_api_key"]
			}
			return r.Header.Get("Authorization") == "Bearer "+good["app_api_key"]
		},
		Unauthorized: func(w http.ResponseWriter, r *http.Request) {
			cioError(w, 401, "Unauthorized request")
		},
		Throttle: func(w http.ResponseWriter, wait time.Duration) {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			cioError(w, 429, "Too many requests")
		},
		ServerError: func(w http.ResponseWriter) { cioError(w, 500, "Internal server error") },
		Routes:      customerioRoutes,
		Status: func(s esp.Status) esp.Status {
			if s == esp.StatusBounced || s == esp.StatusComplained {
				return esp.StatusUnsubscribed
			}
			return s
		},
	}
}

func cioError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]any{"meta": map[string]any{"error": msg}})
	WriteJSON(w, status, "application/json", b)
}

func cioWrite(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	WriteJSON(w, 200, "application/json", b)
}

func cioCustomer(f *Fake, rec Record) map[string]any {
	attrs := map[string]any{"email": rec.Email, "id": rec.ID, "created_at": strconv.FormatInt(rec.Created.Unix(), 10)}
	if rec.Status != esp.StatusSubscribed {
		attrs["unsubscribed"] = "true"
	}
	for k, v := range rec.Fields {
		attrs[k] = v
	}
	return map[string]any{
		"id": rec.ID, "cio_id": fmt.Sprintf("%x", mix64(uint64(rec.Index))>>8), "attributes": attrs,
		"timestamps":   map[string]any{"created_at": rec.Created.Unix(), "updated_at": rec.Updated.Unix()},
		"unsubscribed": rec.Status != esp.StatusSubscribed, "devices": []any{},
	}
}

func customerioRoutes(f *Fake, mux *http.ServeMux) {
	index := func(id string) (int, bool) {
		n, err := strconv.Atoi(id)
		if err != nil || n < 100000 || !f.Alive(n-100000, -1) {
			return 0, false
		}
		return n - 100000, true
	}

	// ---- App API ----
	mux.HandleFunc("GET /v1/segments", func(w http.ResponseWriter, r *http.Request) {
		segs := []any{}
		for l := 0; l < f.Lists(); l++ {
			segs = append(segs, map[string]any{"id": l + 1, "name": fmt.Sprintf("Segment %d", l+1), "type": "manual", "state": "finished"})
		}
		cioWrite(w, map[string]any{"segments": segs})
	})
	mux.HandleFunc("POST /v1/customers", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit := 50
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 1000 {
				cioError(w, 400, "limit must be between 1 and 1000")
				return
			}
			limit = n
		}
		after := -1
		if s := q.Get("start"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				cioError(w, 400, "invalid start token")
				return
			}
			after = n
		}
		var body struct {
			Filter *struct {
				And []struct {
					Attribute *struct {
						Field    string `json:"field"`
						Operator string `json:"operator"`
					} `json:"attribute"`
				} `json:"and"`
			} `json:"filter"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Filter == nil || len(body.Filter.And) == 0 {
			cioError(w, 400, "a filter is required")
			return
		}
		for _, c := range body.Filter.And {
			if c.Attribute == nil || c.Attribute.Field != "email" || c.Attribute.Operator != "exists" {
				cioError(w, 400, "this fake supports only the filter: email exists")
				return
			}
		}
		recs, more := f.After(-1, after, limit)
		ids := make([]any, 0, len(recs))
		idents := make([]any, 0, len(recs))
		for _, rec := range recs {
			c := cioCustomer(f, rec)
			ids = append(ids, rec.ID)
			idents = append(idents, map[string]any{"id": rec.ID, "email": rec.Email, "cio_id": c["cio_id"]})
		}
		next := ""
		if more && len(recs) > 0 {
			next = strconv.Itoa(recs[len(recs)-1].Index)
		}
		cioWrite(w, map[string]any{"identifiers": idents, "ids": ids, "next": next})
	})
	mux.HandleFunc("POST /v1/customers/attributes", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			IDs []string `json:"ids"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.IDs) == 0 || len(body.IDs) > 100 {
			cioError(w, 400, "ids: between 1 and 100 ids are required")
			return
		}
		out := []any{}
		for _, id := range body.IDs {
			if i, ok := index(id); ok {
				out = append(out, cioCustomer(f, f.Record(i)))
			}
		}
		cioWrite(w, map[string]any{"customers": out})
	})
	mux.HandleFunc("GET /v1/customers/{id}/attributes", func(w http.ResponseWriter, r *http.Request) {
		i, ok := index(r.PathValue("id"))
		if !ok {
			b, _ := json.Marshal(map[string]any{"errors": []any{map[string]any{"detail": "customer not found", "status": "404"}}})
			WriteJSON(w, 404, "application/json", b)
			return
		}
		cioWrite(w, map[string]any{"customer": cioCustomer(f, f.Record(i))})
	})

	// ---- Track API ----
	mux.HandleFunc("GET /api/v1/accounts/region", func(w http.ResponseWriter, r *http.Request) {
		cioWrite(w, map[string]any{"url": "https://track.customer.io", "data_center": "us", "environment_id": 90210})
	})
	mux.HandleFunc("PUT /api/v1/customers/{id}", func(w http.ResponseWriter, r *http.Request) {
		var attrs map[string]any
		if err := json.NewDecoder(r.Body).Decode(&attrs); err != nil {
			cioError(w, 400, "invalid JSON body")
			return
		}
		i, ok := index(r.PathValue("id"))
		if !ok {
			if upd, _ := attrs["_update"].(bool); upd {
				cioWrite(w, map[string]any{}) // _update never creates: nothing happens
				return
			}
			cioError(w, 400, "this fake does not create customers")
			return
		}
		for k, v := range attrs {
			switch {
			case k == "_update":
			case k == "unsubscribed":
				if v == true || v == "true" {
					f.Unsubscribe(i)
				}
			default:
				switch x := v.(type) {
				case string:
					f.SetField(i, k, x)
				default:
					b, _ := json.Marshal(x)
					f.SetField(i, k, string(b))
				}
			}
		}
		cioWrite(w, map[string]any{})
	})
	mux.HandleFunc("DELETE /api/v1/customers/{id}", func(w http.ResponseWriter, r *http.Request) {
		if i, ok := index(r.PathValue("id")); ok {
			f.Delete(i)
		}
		cioWrite(w, map[string]any{})
	})
}
