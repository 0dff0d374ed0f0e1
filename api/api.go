// Package api is autofloss's HTTP integrations API (shared/spec/api.md): routing, bearer-key auth, account
// scoping, the error envelope, strict JSON, per-key rate limits, Idempotency-Key, the connection, keyword-rule,
// run and result endpoints, the OpenAPI document, and the ops endpoints (/healthz, /readyz, /metrics and the
// asynqmon dashboard).
//
// Decisions where the contract is silent (each is repeated where it is implemented):
//   - Rate limits are an in-memory token bucket per API key (capacity = the per-minute limit, refilled
//     evenly): they hold per API replica, so N replicas allow up to N× the limit in total.
//   - Idempotency-Key: 2xx and final 4xx answers are stored (24 h by default) and replayed; 5xx answers
//     (502 esp_unavailable and 503 included) and the transient 402/409/429 answers are abandoned, so a retry
//     with the same key runs again once the cause is gone. A different body with a used key is 422 even while
//     the first request is in flight; the same body while in flight is 409.
//   - A connection's path type must match the connection: /v1/integrations/mailchimp/connections/<a klaviyo
//     connection> is 404 connection_not_found, like another account's connection.
//   - POST …/sync on a disconnected connection is 409 connection_disconnected.
//   - A type whose adapter is not available in this build is listed with connectable false and connect
//     answers 422 type_not_connectable.
//   - Request bodies are parsed as JSON whatever the Content-Type says (curl -d without -H works).
//   - /metrics is unauthenticated (route patterns and counts only); /ops/queues/ needs the admin token as
//     `Authorization: Bearer <token>` or `?token=<token>` once (which sets an HttpOnly cookie scoped to
//     /ops/queues/ so the dashboard's own XHR calls authenticate); an empty admin token disables it (404).
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/store"
)

// Enqueuer puts tasks on the asynq queues (*asynq.Client satisfies it).
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Checker reports whether a dependency is reachable (for /readyz).
type Checker interface {
	Check(ctx context.Context) error
}

// CheckFunc adapts a function to Checker.
type CheckFunc func(ctx context.Context) error

// Check implements Checker.
func (f CheckFunc) Check(ctx context.Context) error { return f(ctx) }

// Adapters opens platform adapters for live credential validation.
type Adapters interface {
	// Available reports whether this build can open an adapter of the type.
	Available(slug string) bool
	// Open builds the adapter for already validated credentials.
	Open(slug string, creds map[string]string) (esp.Adapter, error)
}

// RegistryAdapters opens adapters through the esp registry with the process's shared client and options.
type RegistryAdapters struct {
	Registry *esp.Registry
	Client   *esp.Client
	Options  esp.Options
}

// Available implements Adapters: the platform has a constructor.
func (a RegistryAdapters) Available(slug string) bool {
	p, ok := a.Registry.Lookup(slug)
	return ok && p.New != nil
}

// Open implements Adapters.
func (a RegistryAdapters) Open(slug string, creds map[string]string) (esp.Adapter, error) {
	return a.Registry.Open(slug, creds, a.Client, a.Options)
}

// Settings are the configuration values the API uses.
type Settings struct {
	MaxBodyBytes       int64         // request bodies above this get 413 (0 = 1 MiB)
	RateLimitPerMinute int           // per API key (0 = 10,000)
	AdminToken         string        // /ops/queues/ token; "" disables the dashboard
	IdempotencyTTL     time.Duration // how long an Idempotency-Key answer is kept (0 = 24 h)
	// ValidateTimeout bounds the live credential check of connect and reconnect, retries included
	// (0 = 30 s). A platform still failing then is 502 esp_unavailable.
	ValidateTimeout time.Duration
	// IncrementalLookback: an incremental run reads contacts changed since last_synced_at minus this.
	IncrementalLookback time.Duration
	// BaseURLs are the operator's per-platform base-URL overrides (the one SSRF exception for URLs inside
	// credentials).
	BaseURLs map[string]string
}

// Deps are the API's dependencies, all required except where noted.
type Deps struct {
	Store    *store.Store
	Registry *esp.Registry
	Adapters Adapters
	Enqueuer Enqueuer
	Redis    Checker // /readyz
	// Queues is where asynqmon reads; nil disables the dashboard.
	Queues   asynq.RedisConnOpt
	Settings Settings
	Metrics  *prometheus.Registry // requests and latency are registered here (not the global registry)
	Logger   zerolog.Logger
	Now      func() time.Time // nil = time.Now
}

// server is the API's state.
type server struct {
	d       Deps
	st      *store.Store
	reg     *esp.Registry
	log     zerolog.Logger
	now     func() time.Time
	limits  *limiter
	metrics *metrics
	spec    []byte // the OpenAPI document as JSON
	mux     *http.ServeMux
}

// New builds the API handler.
func New(d Deps) (http.Handler, error) {
	if d.Store == nil || d.Registry == nil || d.Adapters == nil || d.Enqueuer == nil || d.Redis == nil || d.Metrics == nil {
		return nil, errors.New("api: Store, Registry, Adapters, Enqueuer, Redis and Metrics are required")
	}
	s := d.Settings
	if s.MaxBodyBytes <= 0 {
		s.MaxBodyBytes = 1 << 20
	}
	if s.RateLimitPerMinute <= 0 {
		s.RateLimitPerMinute = 10000
	}
	if s.IdempotencyTTL <= 0 {
		s.IdempotencyTTL = 24 * time.Hour
	}
	if s.ValidateTimeout <= 0 {
		s.ValidateTimeout = 30 * time.Second
	}
	d.Settings = s
	if d.Now == nil {
		d.Now = time.Now
	}
	spec, err := specJSON()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(d.Metrics)
	if err != nil {
		return nil, err
	}
	srv := &server{d: d, st: d.Store, reg: d.Registry, log: d.Logger, now: d.Now,
		limits: newLimiter(s.RateLimitPerMinute, d.Now), metrics: m, spec: spec, mux: http.NewServeMux()}
	if err := srv.routes(); err != nil {
		return nil, err
	}
	return srv.outer(), nil
}

// routes registers every endpoint. Patterns are Go 1.22 method+path patterns; the access log and metrics
// label requests with the pattern, never the raw path.
func (s *server) routes() error {
	const cnx = "/v1/integrations/{type}/connections/{id}"
	api := func(pattern string, h http.HandlerFunc, opts ...routeOpt) {
		s.mux.Handle(pattern, s.route(pattern, h, opts...))
	}
	api("GET /v1/integrations", s.listIntegrations)
	api("GET /v1/integrations/{type}", s.getIntegration)
	api("POST /v1/integrations/{type}/connections", s.connect, withBody, withIdempotency)
	api("GET "+cnx, s.getConnection)
	api("PATCH "+cnx, s.patchConnection, withBody)
	api("DELETE "+cnx, s.deleteConnection)
	api("POST "+cnx+"/reconnect", s.reconnect, withBody, withIdempotency)
	api("POST "+cnx+"/sync", s.sync, withBody, withIdempotency)
	api("GET "+cnx+"/runs", s.listRuns)
	api("GET "+cnx+"/results", s.listResults)
	for _, list := range []string{store.Whitelist, store.Blacklist} {
		api("GET "+cnx+"/"+list, s.listRules(list))
		api("POST "+cnx+"/"+list, s.addRule(list), withBody, withIdempotency)
		api("POST "+cnx+"/"+list+"/bulk", s.addRules(list), withBody, withIdempotency)
		api("DELETE "+cnx+"/"+list+"/{rule_id}", s.deleteRule(list))
	}
	open := func(pattern string, h http.Handler) { s.mux.Handle(pattern, s.public(pattern, h)) }
	open("GET /v1/openapi.json", http.HandlerFunc(s.openapi))
	open("GET /healthz", http.HandlerFunc(s.healthz))
	open("GET /readyz", http.HandlerFunc(s.readyz))
	open("GET /metrics", s.metrics.handler())
	q, err := s.queues()
	if err != nil {
		return err
	}
	if q != nil {
		s.mux.Handle("/ops/queues/", s.public("/ops/queues/", q))
	}
	return nil
}

// writeJSON writes v as the response body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(fmt.Sprintf(`{"error":{"code":"internal_error","message":"response encoding failed","type":"api_error","request_id":%q}}`, w.Header().Get("X-Request-Id")))
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
