package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/autofloss/autofloss/api"
	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/esp/esptest"
	"github.com/autofloss/autofloss/internal/testenv"
	"github.com/autofloss/autofloss/store"
)

// standIns are the platforms of the seed whose adapter or fake may not exist yet: until both do, the test
// drives their connect step through the klaviyo fake (see testAdapters), so every API rule for them (field
// validation, SSRF, idempotency, storage) still runs for real.
var standIns = map[string]bool{"activecampaign": true, "convertkit": true}

// realPlatform: the registry has the adapter and esptest has the fake.
func realPlatform(reg *esp.Registry, slug string) bool {
	p, ok := reg.Lookup(slug)
	_, fake := esptest.Lookup(slug)
	return ok && p.New != nil && fake
}

// testAdapters opens real adapters where both adapter and fake exist; the stand-ins go to the klaviyo
// fake with their api_key.
type testAdapters struct {
	real api.RegistryAdapters
}

func (a testAdapters) Available(slug string) bool {
	return a.real.Available(slug) || standIns[slug]
}

func (a testAdapters) Open(slug string, creds map[string]string) (esp.Adapter, error) {
	if realPlatform(a.real.Registry, slug) || !standIns[slug] {
		return a.real.Open(slug, creds)
	}
	return a.real.Open("klaviyo", map[string]string{"api_key": creds["api_key"]})
}

type envOpts struct {
	rateLimit  int
	maxBody    int64
	adminToken string
	klFaults   esptest.Faults
	klDown     bool // klaviyo's base URL points at a closed port
	redisAddr  string
	override   map[string]string // extra base-URL overrides
}

type env struct {
	t        *testing.T
	st       *store.Store
	srv      *httptest.Server
	client   *http.Client
	reg      *esp.Registry
	fakes    map[string]*esptest.Fake
	baseURLs map[string]string
	redis    string
	insp     *asynq.Inspector
	metrics  *prometheus.Registry
	logs     *testenv.Buffer
	key      string // account A's API key
	account  string
	key2     string // account B's API key
	account2 string
	val      *validator
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, reg: esp.Platforms(), fakes: map[string]*esptest.Fake{}, baseURLs: map[string]string{}, logs: &testenv.Buffer{}}
	e.st = testenv.Store(t, testenv.SQLite(t))
	e.redis = o.redisAddr
	if e.redis == "" {
		e.redis = testenv.Redis(t)
	}
	kl, err := esptest.Start("klaviyo", esptest.Options{Seed: esptest.Seed{N: 20, Seed: 1}, Faults: o.klFaults})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kl.Close() })
	e.fakes["klaviyo"] = kl
	e.baseURLs["klaviyo"] = kl.URL()
	if o.klDown {
		down, err := esptest.Start("klaviyo", esptest.Options{Seed: esptest.Seed{N: 1, Seed: 1}})
		if err != nil {
			t.Fatal(err)
		}
		e.baseURLs["klaviyo"] = down.URL()
		down.Close()
	}
	for slug := range standIns {
		if !realPlatform(e.reg, slug) {
			continue
		}
		f, err := esptest.Start(slug, esptest.Options{Seed: esptest.Seed{N: 20, Seed: 1}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		e.fakes[slug] = f
		e.baseURLs[slug] = f.URL()
	}
	if _, ok := e.baseURLs["activecampaign"]; !ok {
		// The stand-in's api_url: the operator override, on loopback like a sandbox would be.
		e.baseURLs["activecampaign"] = kl.URL()
	}
	for k, v := range o.override {
		e.baseURLs[k] = v
	}
	client := esp.NewClient(esp.ClientOptions{Retry: esp.Retry{MaxAttempts: 2, BaseDelay: 5 * time.Millisecond,
		MaxDelay: 20 * time.Millisecond, MaxElapsed: 2 * time.Second}, RequestTimeout: 5 * time.Second})
	ropt := asynq.RedisClientOpt{Addr: e.redis}
	enq := asynq.NewClient(ropt)
	t.Cleanup(func() { enq.Close() })
	e.insp = asynq.NewInspector(ropt)
	t.Cleanup(func() { e.insp.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: e.redis})
	t.Cleanup(func() { rdb.Close() })
	e.metrics = prometheus.NewRegistry()
	h, err := api.New(api.Deps{
		Store:    e.st,
		Registry: e.reg,
		Adapters: testAdapters{real: api.RegistryAdapters{Registry: e.reg, Client: client, Options: esp.Options{BaseURLs: e.baseURLs}}},
		Enqueuer: enq,
		Redis:    api.CheckFunc(func(ctx context.Context) error { return rdb.Ping(ctx).Err() }),
		Queues:   ropt,
		Settings: api.Settings{MaxBodyBytes: o.maxBody, RateLimitPerMinute: o.rateLimit, AdminToken: o.adminToken,
			ValidateTimeout: 3 * time.Second, IncrementalLookback: time.Hour, BaseURLs: e.baseURLs},
		Metrics: e.metrics,
		Logger:  zerolog.New(e.logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	e.val = newValidator(t, e.srv.URL)
	e.client = &http.Client{Transport: &validating{base: http.DefaultTransport, t: t, v: e.val}, Timeout: 30 * time.Second}
	e.account, e.key = e.newAccount(ctx, "Account A", 1000)
	e.account2, e.key2 = e.newAccount(ctx, "Account B", 1000)
	return e
}

func (e *env) newAccount(ctx context.Context, name string, credits int64) (id, key string) {
	a, err := e.st.CreateAccount(ctx, name)
	if err != nil {
		e.t.Fatal(err)
	}
	key, _, err = e.st.CreateAPIKey(ctx, a.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	if credits > 0 {
		if _, err := e.st.AddCredits(ctx, a.ID, credits, "", ""); err != nil {
			e.t.Fatal(err)
		}
	}
	return a.ID, key
}

// response is one answer, its body decoded when it is JSON.
type response struct {
	Status int
	Header http.Header
	Body   []byte
	JSON   map[string]any
}

func (r response) errCode() string {
	if e, ok := r.JSON["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

func (r response) errField() string {
	if e, ok := r.JSON["error"].(map[string]any); ok {
		s, _ := e["field"].(string)
		return s
	}
	return ""
}

func (r response) str(k string) string { s, _ := r.JSON[k].(string); return s }

// req describes one call. Body: nil (none), string or []byte (raw), anything else (JSON-encoded).
type req struct {
	method, path string
	body         any
	key          string // "" = account A's; "-" = none
	header       map[string]string
}

func (e *env) call(rq req) response {
	e.t.Helper()
	var body io.Reader
	switch b := rq.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		body = bytes.NewReader(j)
	}
	r, err := http.NewRequest(rq.method, e.srv.URL+rq.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	switch rq.key {
	case "":
		r.Header.Set("Authorization", "Bearer "+e.key)
	case "-":
	default:
		r.Header.Set("Authorization", "Bearer "+rq.key)
	}
	for k, v := range rq.header {
		r.Header.Set(k, v)
	}
	resp, err := e.client.Do(r)
	if err != nil {
		e.t.Fatalf("%s %s: %v", rq.method, rq.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && len(b) > 0 {
		if err := json.Unmarshal(b, &out.JSON); err != nil {
			e.t.Fatalf("%s %s: response is not JSON: %v: %s", rq.method, rq.path, err, b)
		}
	}
	return out
}

func (e *env) get(path string) response { return e.call(req{method: "GET", path: path}) }

// expect fails the test unless the response has the status (and, for errors, the code).
func expect(t *testing.T, what string, r response, status int, code string) {
	t.Helper()
	if r.Status != status || (code != "" && r.errCode() != code) {
		t.Fatalf("%s: got %d %s, want %d %s: %s", what, r.Status, r.errCode(), status, code, r.Body)
	}
}

// count returns the rows of a table.
func (e *env) count(table string) int {
	e.t.Helper()
	var n int
	if err := e.st.DB().Get(&n, "SELECT COUNT(*) FROM "+table); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// snapshot counts every table a request could change.
func (e *env) snapshot() map[string]int {
	out := map[string]int{}
	for _, tb := range []string{"connections", "keyword_rules", "floss_runs", "idempotency_keys", "credit_ledger"} {
		out[tb] = e.count(tb)
	}
	var settings string
	_ = e.st.DB().Get(&settings, "SELECT COALESCE(group_concat(name || status || settings || auto_floss_enabled, '|'), '') FROM connections")
	out["connections_digest:"+settings] = 1
	return out
}

// validator checks every response against api/openapi.yaml.
type validator struct {
	doc    *openapi3.T
	router routers.Router
}

func newValidator(t *testing.T, serverURL string) *validator {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPIYAML)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: serverURL}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &validator{doc: doc, router: router}
}

// check returns why the response does not match the document ("" when it does).
func (v *validator) check(r *http.Request, status int, h http.Header, body []byte) string {
	if h.Get("X-Request-Id") == "" || !strings.HasPrefix(h.Get("X-Request-Id"), "req_") {
		return "no X-Request-Id header"
	}
	if strings.HasPrefix(r.URL.Path, "/ops/queues/") {
		return ""
	}
	route, params, err := v.router.FindRoute(r)
	if err != nil {
		// No documented operation (unknown path or method): it must be the error envelope.
		var doc any
		if err := json.Unmarshal(body, &doc); err != nil {
			return "undocumented route answered non-JSON: " + string(body)
		}
		if err := v.doc.Components.Schemas["Error"].Value.VisitJSON(doc); err != nil {
			return "undocumented route answered something other than the error envelope: " + err.Error()
		}
		return ""
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status: status, Header: h,
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return err.Error()
	}
	return ""
}

// validating is the test client's transport: every response is validated against the document and the
// test fails on any mismatch.
type validating struct {
	base http.RoundTripper
	t    *testing.T
	v    *validator
}

func (vt *validating) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := vt.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	if why := vt.v.check(r, resp.StatusCode, resp.Header, b); why != "" {
		vt.t.Errorf("OpenAPI mismatch: %s %s → %d: %s\nbody: %.500s", r.Method, r.URL.Path, resp.StatusCode, why, b)
	}
	return resp, nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func cnxPath(typ, id string, rest ...string) string {
	p := fmt.Sprintf("/v1/integrations/%s/connections/%s", typ, id)
	for _, r := range rest {
		p += "/" + r
	}
	return p
}
