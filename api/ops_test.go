package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/autofloss/autofloss/api"
)

// TestOps: /healthz, /readyz, /metrics, /v1/openapi.json and the asynqmon mount behind the admin token.
func TestOps(t *testing.T) {
	e := newEnv(t, envOpts{adminToken: "s3cret-admin"})
	expect(t, "healthz", e.call(req{method: "GET", path: "/healthz", key: "-"}), 200, "")
	r := e.call(req{method: "GET", path: "/readyz", key: "-"})
	expect(t, "readyz", r, 200, "")
	if r.str("status") != "ok" {
		t.Fatalf("readyz: %s", r.Body)
	}
	r = e.call(req{method: "GET", path: "/v1/openapi.json", key: "-"})
	expect(t, "openapi.json", r, 200, "")
	if r.str("openapi") != "3.0.3" {
		t.Fatalf("openapi.json: %.200s", r.Body)
	}
	paths := r.JSON["paths"].(map[string]any)
	for _, p := range []string{"/v1/integrations", "/v1/integrations/{type}/connections/{id}/blacklist/bulk", "/readyz"} {
		if _, ok := paths[p]; !ok {
			t.Fatalf("openapi.json lacks %s", p)
		}
	}
	e.get("/v1/integrations")
	e.call(req{method: "GET", path: "/v1/integrations", key: "-"})
	r = e.call(req{method: "GET", path: "/metrics", key: "-"})
	expect(t, "metrics", r, 200, "")
	for _, want := range []string{
		`autofloss_api_requests_total{method="GET",route="/v1/integrations",status="200"} 1`,
		`autofloss_api_requests_total{method="GET",route="/v1/integrations",status="401"} 1`,
		`autofloss_api_request_duration_seconds_bucket{method="GET",route="/v1/integrations",le="+Inf"} 2`,
	} {
		if !strings.Contains(string(r.Body), want) {
			t.Fatalf("metrics lack %q:\n%s", want, r.Body)
		}
	}

	// The dashboard.
	get := func(path string, h map[string]string) *http.Response {
		rq, _ := http.NewRequest("GET", e.srv.URL+path, nil)
		for k, v := range h {
			rq.Header.Set(k, v)
		}
		resp, err := e.client.Do(rq)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := get("/ops/queues/", nil); resp.StatusCode != 401 {
		t.Fatalf("dashboard without token: %d", resp.StatusCode)
	}
	if resp := get("/ops/queues/", map[string]string{"Authorization": "Bearer wrong"}); resp.StatusCode != 401 {
		t.Fatalf("dashboard with a wrong token: %d", resp.StatusCode)
	}
	if resp := get("/ops/queues/", map[string]string{"Authorization": "Bearer s3cret-admin"}); resp.StatusCode != 200 {
		t.Fatalf("dashboard with bearer: %d", resp.StatusCode)
	}
	resp := get("/ops/queues/?token=s3cret-admin", nil)
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "autofloss_admin" {
			cookie = c
		}
	}
	if resp.StatusCode != 200 || cookie == nil || !cookie.HttpOnly || strings.Contains(cookie.Value, "s3cret") {
		t.Fatalf("dashboard with ?token=: %d, cookie %+v", resp.StatusCode, cookie)
	}
	if resp := get("/ops/queues/api/queues", map[string]string{"Cookie": "autofloss_admin=" + cookie.Value}); resp.StatusCode != 200 {
		t.Fatalf("dashboard API with the cookie: %d", resp.StatusCode)
	}

	// Disabled without a token.
	e2 := newEnv(t, envOpts{redisAddr: e.redis})
	if resp := func() *http.Response {
		rq, _ := http.NewRequest("GET", e2.srv.URL+"/ops/queues/", nil)
		rq.Header.Set("Authorization", "Bearer ")
		resp, err := e2.client.Do(rq)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}(); resp.StatusCode != 404 {
		t.Fatalf("dashboard without a configured token: %d", resp.StatusCode)
	}
}

// TestRedisDown: /readyz is 503 naming redis, and POST …/sync is 503 queue_unavailable; the queued run is
// kept and nothing else breaks.
func TestRedisDown(t *testing.T) {
	e := newEnv(t, envOpts{redisAddr: "127.0.0.1:1"})
	r := e.call(req{method: "GET", path: "/readyz", key: "-"})
	expect(t, "readyz", r, 503, "")
	if r.JSON["checks"].(map[string]any)["redis"] != "unavailable" || r.JSON["checks"].(map[string]any)["store"] != "ok" {
		t.Fatalf("readyz: %s", r.Body)
	}
	c := e.call(req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: connectBody(e, "x")})
	expect(t, "connect", c, 201, "")
	expect(t, "sync", e.call(req{method: "POST", path: cnxPath("klaviyo", c.str("id"), "sync"),
		header: map[string]string{"Idempotency-Key": "s"}}), 503, "queue_unavailable")
	if e.count("floss_runs") != 1 || e.count("idempotency_keys") != 0 {
		t.Fatalf("after a failed enqueue: %d runs, %d idempotency records", e.count("floss_runs"), e.count("idempotency_keys"))
	}
}

// TestRateLimit: a key over its budget gets 429 rate_limited with Retry-After; another key is unaffected.
func TestRateLimit(t *testing.T) {
	e := newEnv(t, envOpts{rateLimit: 3})
	for i := 0; i < 3; i++ {
		expect(t, "within budget", e.get("/v1/integrations"), 200, "")
	}
	r := e.get("/v1/integrations")
	expect(t, "over budget", r, 429, "rate_limited")
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
		t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	expect(t, "other key", e.call(req{method: "GET", path: "/v1/integrations", key: e.key2}), 200, "")
}

// TestIDsOnly: the dashboard shows ids, never an address or anything else of a payload.
func TestIDsOnly(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"connection_id":"cnx_1","run_id":"run_2"}`, `{"connection_id":"cnx_1","run_id":"run_2"}`},
		{`{"connection_id":"cnx_1","contact_id":"jane@example.org","email":"jane@example.org"}`, `{"connection_id":"cnx_1"} (+2 fields hidden)`},
		{`not json jane@example.org`, `(25 bytes hidden)`},
		{``, ``},
	} {
		if got := api.IDsOnly([]byte(tc.in)); got != tc.want {
			t.Errorf("IDsOnly(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestValidatorCatchesDrift proves the response validator the suite runs on every answer fails on a
// response that differs from the document.
func TestValidatorCatchesDrift(t *testing.T) {
	v := newValidator(t, "http://127.0.0.1:1")
	rq, _ := http.NewRequest("GET", "http://127.0.0.1:1/v1/integrations/klaviyo/connections/cnx_1", nil)
	h := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"req_1"}}
	good, _ := json.Marshal(map[string]any{"error": map[string]any{"code": "x", "message": "m", "type": "api_error", "request_id": "req_1"}})
	if why := v.check(rq, 404, h, good); why != "" {
		t.Fatalf("a valid error envelope was refused: %s", why)
	}
	for name, body := range map[string]string{
		"connection without settings": `{"id":"cnx_1","type":"klaviyo","name":"n","status":"active","auto_floss_enabled":true,"created_at":"2026-06-02T09:00:00Z","last_synced_at":null}`,
		"extra field":                 `{"error":{"code":"x","message":"m","type":"api_error","request_id":"req_1","secret":"s"}}`,
		"unknown error type":          `{"error":{"code":"x","message":"m","type":"oops","request_id":"req_1"}}`,
	} {
		status := 200
		if strings.HasPrefix(body, `{"error"`) {
			status = 400
		}
		if why := v.check(rq, status, h, []byte(body)); why == "" {
			t.Errorf("%s: the validator accepted a response that breaks the document", name)
		}
	}
}
