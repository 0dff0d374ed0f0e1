package esptest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"golang.org/x/time/rate"

	"github.com/autofloss/autofloss/esp"
)

// Iterable fake (esp-platforms.md § iterable; validated against the official Swagger, openapi/iterable).
// Enforces the `Api-Key` header (401 {"code":"BadApiKey"}), the user export GET /api/export/data.json
// (dataTypeName=user required, range Today|Yesterday|BeforeToday|All with Today the default,
// startDateTime ≥ / endDateTime < as "yyyy-MM-dd HH:mm:ss [ZZ]", onlyFields) streamed as
// newline-delimited JSON in profileUpdatedAt order (ties by creation), 4 exports per minute and 100
// requests per second elsewhere, both answered 429 {"code":"RateLimitExceeded"} (Retry-After is not sent:
// Iterable's is unreliable). Users are identified by email; GET /api/users/{email} answers {} for a user it
// does not have, DELETE answers 400 {"code":"NotFound"}. Unsubscribes are channel-wide
// (unsubscribedChannelIds); the profile carries no bounce or complaint state, so those seed as unsubscribed.

const itChannel = 41207

func iterableSpec() Spec {
	return Spec{
		Slug:        "iterable",
		Limits:      esp.Limits{Rate: 100, Burst: 100},
		PerList:     false,
		ContactID:   func(c SeedContact) string { return c.Email },
		ListID:      func(l int) string { return fmt.Sprint(720001 + l) },
		Credentials: secretCredentials("api_key", "", "00000000000000000000000000000000"),
		Authorized:  headerSecret("Api-Key", ""),
		Unauthorized: func(w http.ResponseWriter, r *http.Request) {
			itResponse(w, 401, "BadApiKey", "Invalid API key", map[string]any{"endpoint": r.URL.Path})
		},
		Throttle: func(w http.ResponseWriter, _ time.Duration) {
			itResponse(w, 429, "RateLimitExceeded", "Rate limit exceeded for this endpoint", nil)
		},
		ServerError: func(w http.ResponseWriter) {
			itResponse(w, 500, "GenericError", "Internal server error", nil)
		},
		Routes:  iterableRoutes,
		OpenAPI: []string{"iterable/api-docs.json"},
		Status: func(s esp.Status) esp.Status {
			if s == esp.StatusBounced || s == esp.StatusComplained {
				return esp.StatusUnsubscribed
			}
			return s
		},
	}
}

func itResponse(w http.ResponseWriter, status int, code, msg string, params map[string]any) {
	body := map[string]any{"msg": msg, "code": code}
	if params != nil {
		body["params"] = params
	}
	b, _ := json.Marshal(body)
	WriteJSON(w, status, "application/json", b)
}

func itTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 -07:00") }

func itParseTime(s string) (time.Time, bool) {
	for _, f := range []string{"2006-01-02 15:04:05", "2006-01-02 15:04:05 -07:00", "2006-01-02 15:04:05 Z07:00"} {
		if t, err := time.Parse(f, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

func itUser(f *Fake, rec Record) map[string]any {
	lists := make([]any, 0, len(rec.Lists))
	for _, l := range rec.Lists {
		lists = append(lists, 720001+l)
	}
	unsub := []any{}
	if rec.Status != esp.StatusSubscribed {
		unsub = append(unsub, itChannel)
	}
	u := map[string]any{
		"email": rec.Email, "userId": fmt.Sprintf("u%07d", rec.Index), "signupDate": itTime(rec.Created),
		"profileUpdatedAt": itTime(rec.Updated), "emailListIds": lists, "unsubscribedChannelIds": unsub,
		"firstName": "", "itblInternal": map[string]any{"emailDomain": rec.Email[strings.IndexByte(rec.Email, '@')+1:]},
	}
	for k, v := range rec.Fields {
		if v == "true" {
			u[k] = true
		} else {
			u[k] = v
		}
	}
	return u
}

// itLeanLine writes the export line of rec with only the adapter's projected fields.
func itLeanLine(buf *bytes.Buffer, rec Record, only map[string]bool) {
	buf.WriteByte('{')
	sep := ""
	if only["email"] {
		e, _ := json.Marshal(rec.Email)
		buf.WriteString(`"email":`)
		buf.Write(e)
		sep = ","
	}
	if only["profileUpdatedAt"] {
		buf.WriteString(sep + `"profileUpdatedAt":"` + itTime(rec.Updated) + `"`)
		sep = ","
	}
	if only["unsubscribedChannelIds"] {
		if rec.Status != esp.StatusSubscribed {
			buf.WriteString(sep + `"unsubscribedChannelIds":[` + fmt.Sprint(itChannel) + `]`)
		} else {
			buf.WriteString(sep + `"unsubscribedChannelIds":[]`)
		}
	}
	buf.WriteString("}\n")
}

var itDecoderOnce sync.Once

func iterableRoutes(f *Fake, mux *http.ServeMux) {
	// The export is documented as application/x-json-stream with a string schema: let the validator read it
	// as text (registered once per process, idempotent).
	itDecoderOnce.Do(func() {
		openapi3filter.RegisterBodyDecoder("application/x-json-stream", openapi3filter.FileBodyDecoder)
	})
	// The export's own limit (4 per minute) applies when the fake runs with the platform's limits; tests
	// that scale limits down (Options.Limits) get only the core limiter.
	var exportLim *rate.Limiter
	if f.opts.Limits == nil {
		exportLim = rate.NewLimiter(rate.Limit(4.0/60), 4)
	}
	user := func(w http.ResponseWriter, r *http.Request) (int, bool) {
		i, ok := f.IndexOfEmail(strings.ToLower(r.PathValue("email")))
		if !ok || !f.Alive(i, -1) {
			return 0, false
		}
		return i, true
	}

	mux.HandleFunc("GET /api/lists", func(w http.ResponseWriter, r *http.Request) {
		lists := []any{}
		for l := 0; l < f.Lists(); l++ {
			lists = append(lists, map[string]any{"id": 720001 + l, "name": fmt.Sprintf("List %d", l+1),
				// The official document types createdAt as int32 (although it describes epoch milliseconds):
				// the document wins, so the fake sends epoch seconds, which fit.
				"createdAt": 1704067200 + l, "listType": "Standard"})
		}
		b, _ := json.Marshal(map[string]any{"lists": lists})
		WriteJSON(w, 200, "application/json", b)
	})
	mux.HandleFunc("GET /api/export/data.json", func(w http.ResponseWriter, r *http.Request) {
		if exportLim != nil && !exportLim.Allow() {
			f.stats.throttled.Add(1)
			itResponse(w, 429, "RateLimitExceeded", "Rate limit exceeded: 4 requests per minute", nil)
			return
		}
		q := r.URL.Query()
		if q.Get("dataTypeName") != "user" {
			itResponse(w, 400, "BadParams", "dataTypeName: only user is supported by this fake", nil)
			return
		}
		var from, to time.Time
		now := time.Now().UTC()
		day := now.Truncate(24 * time.Hour)
		switch q.Get("range") {
		case "", "Today":
			from, to = day, day.Add(24*time.Hour)
		case "Yesterday":
			from, to = day.Add(-24*time.Hour), day
		case "BeforeToday":
			to = day
		case "All":
		default:
			itResponse(w, 400, "BadParams", "range: unknown value", nil)
			return
		}
		for _, p := range []struct {
			name string
			dst  *time.Time
		}{{"startDateTime", &from}, {"endDateTime", &to}} {
			if s := q.Get(p.name); s != "" {
				t, ok := itParseTime(s)
				if !ok {
					itResponse(w, 400, "BadParams", p.name+": expected yyyy-MM-dd HH:mm:ss", nil)
					return
				}
				*p.dst = t
			}
		}
		only := map[string]bool{}
		for _, v := range q["onlyFields"] {
			for _, s := range strings.Split(v, ",") {
				only[s] = true
			}
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		lean := len(only) > 0 // the adapter's projection: written without building a map
		for name := range only {
			lean = lean && (name == "email" || name == "profileUpdatedAt" || name == "unsubscribedChannelIds")
		}
		for _, k := range f.Changed(-1, from, true) {
			if !to.IsZero() && !k.Updated.Before(to) {
				break
			}
			rec := f.Record(k.Index)
			if lean {
				itLeanLine(&buf, rec, only)
				continue
			}
			u := itUser(f, rec)
			if len(only) > 0 {
				for name := range u {
					if !only[name] {
						delete(u, name)
					}
				}
			}
			enc.Encode(u)
		}
		WriteJSON(w, 200, "application/x-json-stream", buf.Bytes())
	})
	mux.HandleFunc("GET /api/users/{email}", func(w http.ResponseWriter, r *http.Request) {
		i, ok := user(w, r)
		if !ok {
			WriteJSON(w, 200, "application/json", []byte(`{}`))
			return
		}
		u := itUser(f, f.Record(i))
		data := map[string]any{}
		for k, v := range u {
			if k != "email" && k != "userId" {
				data[k] = v
			}
		}
		b, _ := json.Marshal(map[string]any{"user": map[string]any{"email": u["email"], "userId": u["userId"], "dataFields": data}})
		WriteJSON(w, 200, "application/json", b)
	})
	mux.HandleFunc("DELETE /api/users/{email}", func(w http.ResponseWriter, r *http.Request) {
		i, ok := user(w, r)
		if !ok {
			itResponse(w, 400, "NotFound", "User does not exist", nil)
			return
		}
		f.Delete(i)
		itResponse(w, 200, "Success", "User deleted", nil)
	})
	mux.HandleFunc("POST /api/users/update", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Email      string         `json:"email"`
			DataFields map[string]any `json:"dataFields"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			itResponse(w, 400, "BadJsonBody", "Could not parse the request body", nil)
			return
		}
		i, ok := f.IndexOfEmail(strings.ToLower(body.Email))
		if !ok || !f.Alive(i, -1) {
			// The real endpoint creates the user; the fake's store is seeded only.
			itResponse(w, 400, "BadParams", "The fake only updates existing users", nil)
			return
		}
		for k, v := range body.DataFields {
			switch x := v.(type) {
			case string:
				f.SetField(i, k, x)
			case bool:
				f.SetField(i, k, fmt.Sprint(x))
			default:
				b, _ := json.Marshal(x)
				f.SetField(i, k, string(b))
			}
		}
		itResponse(w, 200, "Success", "", nil)
	})
	mux.HandleFunc("POST /api/lists/unsubscribe", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			ListID             *int64 `json:"listId"`
			ChannelUnsubscribe bool   `json:"channelUnsubscribe"`
			Subscribers        []struct {
				Email string `json:"email"`
			} `json:"subscribers"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.ListID == nil {
			itResponse(w, 400, "BadParams", "listId and subscribers are required", nil)
			return
		}
		l, ok := f.ListIndex(fmt.Sprint(*body.ListID))
		if !ok {
			itResponse(w, 400, "BadParams", "Unknown listId", nil)
			return
		}
		success, invalid := 0, []string{}
		for _, s := range body.Subscribers {
			i, ok := f.IndexOfEmail(strings.ToLower(s.Email))
			if !ok || !f.Alive(i, -1) {
				invalid = append(invalid, s.Email)
				continue
			}
			if body.ChannelUnsubscribe {
				f.Unsubscribe(i)
			} else {
				f.RemoveFromList(i, l)
			}
			success++
		}
		b, _ := json.Marshal(map[string]any{"successCount": success, "failCount": len(invalid), "invalidEmails": invalid,
			"invalidUserIds": []string{}, "failedUpdates": map[string]any{}})
		WriteJSON(w, 200, "application/json", b)
	})
}
