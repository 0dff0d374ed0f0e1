package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"gopkg.in/yaml.v3"
)

// OpenAPIYAML is the OpenAPI 3 document of this API (api/openapi.yaml), served as JSON at /v1/openapi.json.
//
//go:embed openapi.yaml
var OpenAPIYAML []byte

// specJSON converts the embedded YAML document to JSON.
func specJSON() ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(OpenAPIYAML, &v); err != nil {
		return nil, fmt.Errorf("api: openapi.yaml: %w", err)
	}
	b, err := json.Marshal(stringKeys(v))
	if err != nil {
		return nil, fmt.Errorf("api: openapi.yaml to JSON: %w", err)
	}
	return b, nil
}

// stringKeys turns YAML's map[any]any (for non-string keys such as response codes) into JSON objects.
func stringKeys(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = stringKeys(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = stringKeys(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = stringKeys(e)
		}
		return x
	}
	return v
}

// GET /v1/openapi.json (no auth)
func (s *server) openapi(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(s.spec)
}

// GET /healthz: the process is up.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// GET /readyz: the store and Redis answer within 2 s each; 503 naming which one does not. The causes are
// logged, not returned.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	checks := map[string]string{}
	ok := true
	for name, f := range map[string]func(context.Context) error{"store": s.st.Ping, "redis": s.d.Redis.Check} {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		err := f(ctx)
		cancel()
		if err != nil {
			ok = false
			checks[name] = "unavailable"
			s.log.Warn().Str("check", name).Err(err).Msg("readiness check failed")
			continue
		}
		checks[name] = "ok"
	}
	status, code := "ok", http.StatusOK
	if !ok {
		status, code = "unavailable", http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"status": status, "checks": checks})
}

// metrics are the API's Prometheus series.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	gatherer prometheus.Gatherer
}

func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "autofloss_api_requests_total", Help: "API requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "autofloss_api_request_duration_seconds", Help: "API request latency by route pattern and method.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method"}),
		gatherer: reg,
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("api: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) observe(route, method string, status int, d time.Duration) {
	if _, path, ok := strings.Cut(route, " "); ok {
		route = path // the method is its own label
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route, method).Observe(d.Seconds())
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.gatherer, promhttp.HandlerOpts{})
}

const adminCookie = "autofloss_admin"

// queues is the asynqmon dashboard behind the admin token, or nil when it is disabled (no token or no
// Redis connection). The token is accepted as `Authorization: Bearer <token>`, as a cookie set by a
// successful `?token=<token>` visit (HttpOnly, SameSite=Strict, path /ops/queues/; it holds an HMAC of the
// token, not the token), or as ?token= itself. Payloads and results show ids only.
func (s *server) queues() (http.Handler, error) {
	tok := s.d.Settings.AdminToken
	if tok == "" || s.d.Queues == nil {
		return nil, nil
	}
	mon := asynqmon.New(asynqmon.Options{
		RootPath:         "/ops/queues",
		RedisConnOpt:     s.d.Queues,
		PayloadFormatter: asynqmon.PayloadFormatterFunc(func(_ string, b []byte) string { return IDsOnly(b) }),
		ResultFormatter:  asynqmon.ResultFormatterFunc(func(_ string, b []byte) string { return IDsOnly(b) }),
	})
	mac := hmac.New(sha256.New, []byte(tok))
	mac.Write([]byte("asynqmon"))
	cookieValue := hex.EncodeToString(mac.Sum(nil))
	eq := func(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		authed := false
		if scheme, t, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") && eq(strings.TrimSpace(t), tok) {
			authed = true
		}
		if c, err := r.Cookie(adminCookie); err == nil && eq(c.Value, cookieValue) {
			authed = true
		}
		if t := r.URL.Query().Get("token"); t != "" && eq(t, tok) {
			authed = true
			http.SetCookie(w, &http.Cookie{Name: adminCookie, Value: cookieValue, Path: "/ops/queues/", HttpOnly: true,
				SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
		}
		if !authed {
			w.Header().Set("WWW-Authenticate", `Bearer realm="autofloss-ops"`)
			s.fail(w, r, errf(http.StatusUnauthorized, typeAuth, "invalid_admin_token", "the admin token is missing or wrong"))
			return
		}
		mon.ServeHTTP(w, r)
	}), nil
}

// IDsOnly renders a task payload or result for the dashboard: the members whose names are "id" or end in
// "_id" (connection_id, run_id, contact_id, …) and hold no '@', sorted; everything else — addresses,
// anything unknown — is hidden.
func IDsOnly(b []byte) string {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		if len(b) == 0 {
			return ""
		}
		return fmt.Sprintf("(%d bytes hidden)", len(b))
	}
	keys := make([]string, 0, len(m))
	for k, v := range m {
		// Some platforms use the address as the contact id: a value with an '@' is hidden too.
		if str, isString := v.(string); (k == "id" || strings.HasSuffix(k, "_id")) && isString && !strings.Contains(str, "@") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make(map[string]any, len(keys))
	for _, k := range keys {
		out[k] = m[k]
	}
	enc, _ := json.Marshal(out)
	if hidden := len(m) - len(keys); hidden > 0 {
		return fmt.Sprintf("%s (+%d fields hidden)", enc, hidden)
	}
	return string(enc)
}
