package api_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/autofloss/autofloss/esp/esptest"
)

// TestErrorRows produces every error row of api.md (and the API's own 4xx) and checks that none of them
// changes the store.
func TestErrorRows(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	kl := e.fakes["klaviyo"]
	good := mustJSON(map[string]any{"credentials": map[string]string{"api_key": kl.Secret()}})
	r := e.call(req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: good})
	expect(t, "setup connect", r, 201, "")
	kid := r.str("id")
	_, revoked := e.newAccount(ctx, "Revoked", 10)
	if k, err := e.st.AuthenticateAPIKey(ctx, revoked); err != nil {
		t.Fatal(err)
	} else if _, err := e.st.RevokeAPIKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	_, broke := e.newAccount(ctx, "No credits", 0)
	ac := func(url string) string {
		return mustJSON(map[string]any{"credentials": map[string]string{"api_url": url, "api_key": kl.Secret()}})
	}
	big := `{"name":"` + strings.Repeat("a", 1<<20) + `","credentials":{"api_key":"x"}}`
	cnx := cnxPath("klaviyo", kid)

	cases := []struct {
		name   string
		rq     req
		status int
		code   string
		field  string
		msg    string // a substring of the message
	}{
		// Authentication.
		{name: "no key", rq: req{method: "GET", path: "/v1/integrations", key: "-"}, status: 401, code: "missing_api_key"},
		{name: "basic auth", rq: req{method: "GET", path: "/v1/integrations", key: "-", header: map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}}, status: 401, code: "missing_api_key"},
		{name: "empty bearer", rq: req{method: "GET", path: "/v1/integrations", key: "-", header: map[string]string{"Authorization": "Bearer "}}, status: 401, code: "missing_api_key"},
		{name: "unknown key", rq: req{method: "GET", path: "/v1/integrations", key: "mf_live_00000000000000000000000000000000"}, status: 401, code: "invalid_api_key"},
		{name: "not a key", rq: req{method: "GET", path: "/v1/integrations", key: "' OR 1=1 --"}, status: 401, code: "invalid_api_key"},
		{name: "revoked key", rq: req{method: "GET", path: "/v1/integrations", key: revoked}, status: 401, code: "invalid_api_key"},
		{name: "auth before body", rq: req{method: "POST", path: "/v1/integrations/klaviyo/connections", key: "-", body: big}, status: 401, code: "missing_api_key"},
		// Connect, in api.md's order of checks.
		{name: "unknown type", rq: req{method: "POST", path: "/v1/integrations/myspace/connections", body: good}, status: 404, code: "unknown_integration_type"},
		{name: "sendinblue connect", rq: req{method: "POST", path: "/v1/integrations/sendinblue/connections", body: good}, status: 404, code: "unknown_integration_type", msg: `use "brevo"`},
		{name: "sendinblue get", rq: req{method: "GET", path: "/v1/integrations/sendinblue"}, status: 404, code: "unknown_integration_type", msg: "brevo"},
		{name: "SQL-looking type", rq: req{method: "GET", path: "/v1/integrations/klaviyo'%20OR%20'1'='1"}, status: 404, code: "unknown_integration_type"},
		{name: "not connectable", rq: req{method: "POST", path: "/v1/integrations/constantcontact/connections", body: `{"credentials":{"access_token":"a","refresh_token":"b"}}`}, status: 422, code: "type_not_connectable"},
		{name: "not connectable beats a bad body", rq: req{method: "POST", path: "/v1/integrations/constantcontact/connections", body: `{`}, status: 422, code: "type_not_connectable"},
		{name: "no credentials", rq: req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: `{"name":"x"}`}, status: 400, code: "missing_credentials", field: "credentials"},
		{name: "null credentials", rq: req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: `{"credentials":null}`}, status: 400, code: "missing_credentials", field: "credentials"},
		{name: "empty credentials", rq: req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: `{"credentials":{}}`}, status: 400, code: "missing_credentials", field: "credentials.api_key"},
		{name: "empty api_key", rq: req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: `{"credentials":{"api_key":"  "}}`}, status: 400, code: "missing_credentials", field: "credentials.api_key"},
		{name: "missing api_secret", rq: req{method: "POST", path: "/v1/integrations/convertkit/connections", body: `{"credentials":{"api_key":"k"}}`}, status: 400, code: "missing_credentials", field: "credentials.api_secret"},
		{name: "credentials not an object", rq: req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: `{"credentials":"pk_x"}`}, status: 400, code: "invalid_credentials_format", field: "credentials"},
		{name: "credential not a string", rq: req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: `{"credentials":{"api_key":12345}}`}, status: 400, code: "invalid_credentials_format", field: "credentials.api_key"},
		{name: "unknown credential", rq: req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: `{"credentials":{"api_key":"k","password":"p"}}`}, status: 400, code: "invalid_credentials_format", field: "credentials.password"},
		{name: "mailchimp key without dc", rq: req{method: "POST", path: "/v1/integrations/mailchimp/connections", body: `{"credentials":{"api_key":"0123456789abcdef"}}`}, status: 400, code: "invalid_credentials_format", field: "credentials.api_key"},
		{name: "ac api_url http", rq: req{method: "POST", path: "/v1/integrations/activecampaign/connections", body: ac("http://acct.api-us1.com")}, status: 400, code: "invalid_credentials_format", field: "credentials.api_url"},
		{name: "ac api_url foreign domain", rq: req{method: "POST", path: "/v1/integrations/activecampaign/connections", body: ac("https://api-us1.com.evil.example")}, status: 400, code: "invalid_credentials_format", field: "credentials.api_url"},
		{name: "ac api_url 127.0.0.1", rq: req{method: "POST", path: "/v1/integrations/activecampaign/connections", body: ac("https://127.0.0.1/")}, status: 400, code: "invalid_credentials_format", field: "credentials.api_url"},
		{name: "ac api_url 127.0.0.1 other port", rq: req{method: "POST", path: "/v1/integrations/activecampaign/connections", body: ac("http://127.0.0.1:6379")}, status: 400, code: "invalid_credentials_format", field: "credentials.api_url"},
		{name: "ac api_url 10.x", rq: req{method: "POST", path: "/v1/integrations/activecampaign/connections", body: ac("https://10.0.0.8")}, status: 400, code: "invalid_credentials_format", field: "credentials.api_url"},
		{name: "ac api_url metadata", rq: req{method: "POST", path: "/v1/integrations/activecampaign/connections", body: ac("http://169.254.169.254/latest/meta-data/")}, status: 400, code: "invalid_credentials_format", field: "credentials.api_url"},
		{name: "ac api_url userinfo", rq: req{method: "POST", path: "/v1/integrations/activecampaign/connections", body: ac("https://x@127.0.0.1@acct.api-us1.com")}, status: 400, code: "invalid_credentials_format", field: "credentials.api_url"},
		{name: "no credits", rq: req{method: "POST", path: "/v1/integrations/klaviyo/connections", key: broke, body: good}, status: 402, code: "insufficient_credits"},
		{name: "format before credits", rq: req{method: "POST", path: "/v1/integrations/klaviyo/connections", key: broke, body: `{"credentials":{}}`}, status: 400, code: "missing_credentials"},
		{name: "rejected", rq: req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: `{"credentials":{"api_key":"pk_0000000000000000000000000000000000"}}`}, status: 400, code: "credentials_rejected"},
		{name: "SQL-looking key rejected", rq: req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: `{"credentials":{"api_key":"'; DROP TABLE connections; --"}}`}, status: 400, code: "credentials_rejected"},
		// Bodies.
		{name: "empty body", rq: req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: ""}, status: 400, code: "invalid_json"},
		{name: "malformed JSON", rq: req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: `{"credentials":{"api_key":"x"}`}, status: 400, code: "invalid_json"},
		{name: "trailing data", rq: req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: good + `{"x":1}`}, status: 400, code: "invalid_json"},
		{name: "array body", rq: req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: `[` + good + `]`}, status: 400, code: "invalid_json"},
		{name: "null body", rq: req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: `null`}, status: 400, code: "invalid_json"},
		{name: "invalid UTF-8", rq: req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: []byte("{\"name\":\"\xff\xfe\",\"credentials\":{\"api_key\":\"" + kl.Secret() + "\"}}")}, status: 400, code: "invalid_json"},
		{name: "unknown field", rq: req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: `{"credentials":{"api_key":"x"},"plan":"pro"}`}, status: 400, code: "unknown_field", field: "plan"},
		{name: "name wrong type", rq: req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: `{"name":42,"credentials":{"api_key":"x"}}`}, status: 400, code: "invalid_field", field: "name"},
		{name: "name too long", rq: req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: `{"name":"` + strings.Repeat("é", 101) + `","credentials":{"api_key":"x"}}`}, status: 400, code: "invalid_field", field: "name"},
		{name: "huge body", rq: req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: big}, status: 413, code: "request_too_large"},
		{name: "huge patch", rq: req{method: "PATCH", path: cnx, body: big}, status: 413, code: "request_too_large"},
		{name: "patch malformed", rq: req{method: "PATCH", path: cnx, body: `{"name":`}, status: 400, code: "invalid_json"},
		{name: "patch invalid UTF-8", rq: req{method: "PATCH", path: cnx, body: []byte("{\"name\":\"\xc3\x28\"}")}, status: 400, code: "invalid_json"},
		{name: "reconnect unknown field", rq: req{method: "POST", path: cnx + "/reconnect", body: `{"force":true}`}, status: 400, code: "unknown_field", field: "force"},
		{name: "reconnect bad credentials", rq: req{method: "POST", path: cnx + "/reconnect", body: `{"credentials":{"api_key":""}}`}, status: 400, code: "missing_credentials", field: "credentials.api_key"},
		{name: "sync with a body", rq: req{method: "POST", path: cnx + "/sync", body: `{"full":true}`}, status: 400, code: "unknown_field", field: "full"},
		// Connections.
		{name: "missing connection", rq: req{method: "GET", path: cnxPath("klaviyo", "cnx_000000000000000000000000")}, status: 404, code: "connection_not_found"},
		{name: "SQL-looking connection id", rq: req{method: "GET", path: cnxPath("klaviyo", "cnx_1'%20OR%20'1'='1")}, status: 404, code: "connection_not_found"},
		{name: "SQL-looking id on patch", rq: req{method: "PATCH", path: cnxPath("klaviyo", "x';DELETE%20FROM%20connections;--"), body: `{"name":"x"}`}, status: 404, code: "connection_not_found"},
		{name: "wrong type", rq: req{method: "DELETE", path: cnxPath("brevo", kid)}, status: 404, code: "connection_not_found"},
		{name: "unknown type on connection", rq: req{method: "GET", path: cnxPath("sendinblue", kid)}, status: 404, code: "unknown_integration_type"},
		// Keyword rules.
		{name: "rule no keyword", rq: req{method: "POST", path: cnx + "/whitelist", body: `{"match_on":"domain"}`}, status: 400, code: "invalid_field", field: "keyword"},
		{name: "rule empty keyword", rq: req{method: "POST", path: cnx + "/whitelist", body: `{"keyword":"   "}`}, status: 400, code: "invalid_field", field: "keyword"},
		{name: "rule inner whitespace", rq: req{method: "POST", path: cnx + "/blacklist", body: `{"keyword":"' OR 1=1 --"}`}, status: 400, code: "invalid_field", field: "keyword"},
		{name: "rule too long", rq: req{method: "POST", path: cnx + "/blacklist", body: `{"keyword":"` + strings.Repeat("k", 255) + `"}`}, status: 400, code: "invalid_field", field: "keyword"},
		{name: "rule bad match_on", rq: req{method: "POST", path: cnx + "/blacklist", body: `{"keyword":"x","match_on":"header"}`}, status: 400, code: "invalid_field", field: "match_on"},
		{name: "rule keyword not a string", rq: req{method: "POST", path: cnx + "/blacklist", body: `{"keyword":["x"]}`}, status: 400, code: "invalid_field", field: "keyword"},
		{name: "rule unknown field", rq: req{method: "POST", path: cnx + "/blacklist", body: `{"keyword":"x","list":"whitelist"}`}, status: 400, code: "unknown_field", field: "list"},
		{name: "bulk empty", rq: req{method: "POST", path: cnx + "/whitelist/bulk", body: `{"rules":[]}`}, status: 400, code: "invalid_field", field: "rules"},
		{name: "bulk missing", rq: req{method: "POST", path: cnx + "/whitelist/bulk", body: `{}`}, status: 400, code: "invalid_field", field: "rules"},
		{name: "bulk one bad", rq: req{method: "POST", path: cnx + "/whitelist/bulk", body: `{"rules":[{"keyword":"ok"},{"keyword":"not ok"}]}`}, status: 400, code: "invalid_field", field: "rules[1].keyword"},
		{name: "bulk unknown nested", rq: req{method: "POST", path: cnx + "/whitelist/bulk", body: `{"rules":[{"keyword":"ok","x":1}]}`}, status: 400, code: "unknown_field", field: "rules[0].x"},
		{name: "bulk nested wrong type", rq: req{method: "POST", path: cnx + "/whitelist/bulk", body: `{"rules":[{"keyword":"ok","match_on":3}]}`}, status: 400, code: "invalid_field", field: "rules[0].match_on"},
		{name: "bulk not objects", rq: req{method: "POST", path: cnx + "/whitelist/bulk", body: `{"rules":["info"]}`}, status: 400, code: "invalid_field", field: "rules[0]"},
		{name: "bulk 1001", rq: req{method: "POST", path: cnx + "/blacklist/bulk", body: bulkBody(1001)}, status: 400, code: "too_many_rules", field: "rules"},
		{name: "delete missing rule", rq: req{method: "DELETE", path: cnx + "/whitelist/kwr_000000000000000000000000"}, status: 404, code: "rule_not_found"},
		// Listings.
		{name: "per_page 0", rq: req{method: "GET", path: "/v1/integrations?per_page=0"}, status: 400, code: "invalid_field", field: "per_page"},
		{name: "per_page 101", rq: req{method: "GET", path: cnx + "/runs?per_page=101"}, status: 400, code: "invalid_field", field: "per_page"},
		{name: "per_page abc", rq: req{method: "GET", path: cnx + "/whitelist?per_page=abc"}, status: 400, code: "invalid_field", field: "per_page"},
		{name: "bad cursor", rq: req{method: "GET", path: cnx + "/results?cursor=bm90LWEtY3Vyc29y"}, status: 400, code: "invalid_cursor", field: "cursor"},
		{name: "bad integrations cursor", rq: req{method: "GET", path: "/v1/integrations?cursor=%27%20OR%201=1"}, status: 400, code: "invalid_cursor", field: "cursor"},
		{name: "bad status filter", rq: req{method: "GET", path: cnx + "/results?status=great"}, status: 400, code: "invalid_field", field: "status"},
		{name: "bad reason filter", rq: req{method: "GET", path: cnx + "/results?reason=x%27%3BDROP%20TABLE%20results--"}, status: 400, code: "invalid_field", field: "reason"},
		// Routing and headers.
		{name: "unknown path", rq: req{method: "GET", path: "/v1/nothing"}, status: 404, code: "not_found"},
		{name: "wrong method", rq: req{method: "PUT", path: cnx, body: `{}`}, status: 405, code: "method_not_allowed"},
		{name: "idempotency key too long", rq: req{method: "POST", path: cnx + "/sync", header: map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}}, status: 400, code: "invalid_idempotency_key", field: "Idempotency-Key"},
		{name: "idempotency key not ASCII", rq: req{method: "POST", path: cnx + "/sync", header: map[string]string{"Idempotency-Key": "clé"}}, status: 400, code: "invalid_idempotency_key"},
	}
	before := e.snapshot()
	for _, tc := range cases {
		r := e.call(tc.rq)
		if r.Status != tc.status || r.errCode() != tc.code {
			t.Errorf("%s: got %d %s, want %d %s: %.300s", tc.name, r.Status, r.errCode(), tc.status, tc.code, r.Body)
			continue
		}
		if tc.field != "" && r.errField() != tc.field {
			t.Errorf("%s: field %q, want %q", tc.name, r.errField(), tc.field)
		}
		env := r.JSON["error"].(map[string]any)
		if env["request_id"] != r.Header.Get("X-Request-Id") || env["message"] == "" {
			t.Errorf("%s: envelope %v vs X-Request-Id %q", tc.name, env, r.Header.Get("X-Request-Id"))
		}
		if tc.msg != "" && !strings.Contains(env["message"].(string), tc.msg) {
			t.Errorf("%s: message %q lacks %q", tc.name, env["message"], tc.msg)
		}
		if strings.Contains(string(r.Body), kl.Secret()) {
			t.Errorf("%s: the answer contains the credential", tc.name)
		}
		if tc.status == 401 && r.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate", tc.name)
		}
		if tc.status == 405 && !strings.Contains(r.Header.Get("Allow"), "PATCH") {
			t.Errorf("%s: Allow = %q", tc.name, r.Header.Get("Allow"))
		}
	}
	assertUnchanged(t, e, before, "error rows")

	// A SQL-looking keyword without whitespace is a valid keyword: stored verbatim, nothing else happens.
	r = e.call(req{method: "POST", path: cnx + "/blacklist", body: `{"keyword":"';DROP_TABLE_connections;--","match_on":"local_part"}`})
	expect(t, "SQL-looking keyword", r, 201, "")
	if r.str("keyword") != "';DROP_TABLE_connections;--" || e.count("connections") != 1 {
		t.Fatalf("SQL-looking keyword: %s", r.Body)
	}
	// The configured override is the one loopback URL an ActiveCampaign connection may use.
	r = e.call(req{method: "POST", path: "/v1/integrations/activecampaign/connections", body: mustJSON(map[string]any{"credentials": e.seedCredentials("activecampaign")})})
	expect(t, "ac at the configured override", r, 201, "")
}

func bulkBody(n int) string { return bulkBodyOf("k", n) }

func bulkBodyOf(prefix string, n int) string {
	var b strings.Builder
	b.WriteString(`{"rules":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"keyword":"` + prefix + strconv.Itoa(i) + `"}`)
	}
	b.WriteString(`]}`)
	return b.String()
}

// TestBulkAllOrNothing adds 1,000 rules at once, and a batch whose last rule is invalid adds none.
func TestBulkAllOrNothing(t *testing.T) {
	e := newEnv(t, envOpts{})
	r := e.call(req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: mustJSON(map[string]any{"credentials": map[string]string{"api_key": e.fakes["klaviyo"].Secret()}})})
	expect(t, "connect", r, 201, "")
	cnx := cnxPath("klaviyo", r.str("id"))
	r = e.call(req{method: "POST", path: cnx + "/whitelist/bulk", body: bulkBody(1000)})
	expect(t, "bulk 1000", r, 201, "")
	if n := len(r.JSON["data"].([]any)); n != 1000 || e.count("keyword_rules") != 1000 {
		t.Fatalf("bulk 1000: %d returned, %d stored", n, e.count("keyword_rules"))
	}
	bad := strings.TrimSuffix(bulkBodyOf("b", 500), "]}") + `,{"keyword":"two words"}]}`
	r = e.call(req{method: "POST", path: cnx + "/blacklist/bulk", body: bad})
	expect(t, "bulk with a bad last rule", r, 400, "invalid_field")
	if r.errField() != "rules[500].keyword" || e.count("keyword_rules") != 1000 {
		t.Fatalf("bulk with a bad rule: field %q, %d stored", r.errField(), e.count("keyword_rules"))
	}
}

// TestESPUnavailable: a platform that cannot be reached, or answers 5xx through the client's retries, is
// 502 esp_unavailable; nothing is stored, and the Idempotency-Key is released so a retry runs again.
func TestESPUnavailable(t *testing.T) {
	redisAddr := ""
	for _, tc := range []struct {
		name string
		o    envOpts
	}{
		{"unreachable", envOpts{klDown: true}},
		{"5xx", envOpts{klFaults: esptest.Faults{ServerErrors: 1, Seed: 3}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.redisAddr = redisAddr
			e := newEnv(t, tc.o)
			redisAddr = e.redis
			body := mustJSON(map[string]any{"credentials": map[string]string{"api_key": e.fakes["klaviyo"].Secret()}})
			for i := 0; i < 2; i++ {
				r := e.call(req{method: "POST", path: "/v1/integrations/klaviyo/connections", body: body, header: map[string]string{"Idempotency-Key": "retry-me"}})
				expect(t, "connect", r, 502, "esp_unavailable")
				if r.Header.Get("Idempotent-Replayed") != "" {
					t.Fatal("a 502 was replayed")
				}
			}
			if e.count("connections") != 0 || e.count("idempotency_keys") != 0 {
				t.Fatalf("502 left rows: %d connections, %d idempotency records", e.count("connections"), e.count("idempotency_keys"))
			}
		})
	}
}
