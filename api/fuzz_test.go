package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/esp/esptest"
	"github.com/autofloss/autofloss/internal/testenv"
	"github.com/autofloss/autofloss/store"
)

// Fuzzing of the API's JSON decoding (issue 8): the connect, PATCH and keyword-rule bodies (single and bulk).
// The single rule goes through the pure decoder the handler uses (checkBody + parseRule); connect, PATCH and
// bulk decode inside their handlers, so those targets drive the real handler in process (no socket) over a
// real SQLite store, real platform fakes for connect's live check and a real asynq client on a private Redis.
// Properties, per target:
//   - no panic and no 5xx: every body is answered 2xx or 400;
//   - a rejected body is a 400 whose field is empty only for errors about the whole body (invalid_json,
//     no_fields) and otherwise names a field of the request or a key the body holds;
//   - an accepted body re-encodes (json.Marshal of its decoded value) to a body that is accepted too and
//     gives the same result;
//   - an accepted body holds only the request's fields, spelled exactly;
//   - PATCH: an accepted body never holds both aggressiveness and checks, checks makes aggressiveness custom,
//     and a rejected body changes nothing;
//   - connect: a rejected body's answer never quotes a secret-looking credential value.

// fuzzAPI is one API handler over a private store, with an account and a connection to patch.
type fuzzAPI struct {
	h       http.Handler
	st      *store.Store
	key     string
	account string
	cnx     string // a klaviyo connection
	fakes   map[string]*esptest.Fake
}

// connectPlatforms are the types the connect target sends to (one field; -dc check; api_url SSRF rule;
// optional enum).
var connectPlatforms = []string{"klaviyo", "mailchimp", "activecampaign", "iterable"}

func newFuzzAPI(f *testing.F) *fuzzAPI {
	f.Helper()
	ctx := context.Background()
	st := testenv.Store(f, testenv.SQLite(f))
	ropt := asynq.RedisClientOpt{Addr: testenv.Redis(f)}
	enq := asynq.NewClient(ropt)
	f.Cleanup(func() { enq.Close() })
	a := &fuzzAPI{st: st, fakes: map[string]*esptest.Fake{}}
	base := map[string]string{}
	for _, slug := range connectPlatforms {
		fk, err := esptest.Start(slug, esptest.Options{Seed: esptest.Seed{N: 3, Seed: 1}, Limits: &esp.Limits{}})
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { fk.Close() })
		a.fakes[slug] = fk
		base[slug] = fk.URL()
	}
	// ActiveCampaign's fake credentials name its own https host; the override (fake URL) replaces it, and
	// the SSRF rule accepts an api_url equal to the override.
	reg := esp.Platforms()
	client := esp.NewClient(esp.ClientOptions{Retry: esp.Retry{MaxAttempts: 1}, RequestTimeout: 5 * time.Second,
		Limits: map[string]esp.Limits{"klaviyo": {}, "mailchimp": {}, "activecampaign": {}, "iterable": {}}})
	h, err := New(Deps{
		Store: st, Registry: reg,
		Adapters: RegistryAdapters{Registry: reg, Client: client, Options: esp.Options{BaseURLs: base}},
		Enqueuer: enq,
		Redis:    CheckFunc(func(context.Context) error { return enq.Ping() }),
		Settings: Settings{RateLimitPerMinute: 1 << 30, ValidateTimeout: 5 * time.Second, BaseURLs: base},
		Metrics:  prometheus.NewRegistry(),
		Logger:   zerolog.Nop(),
	})
	if err != nil {
		f.Fatal(err)
	}
	a.h = h
	acct, err := st.CreateAccount(ctx, "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	a.account = acct.ID
	if a.key, _, err = st.CreateAPIKey(ctx, acct.ID); err != nil {
		f.Fatal(err)
	}
	if _, err := st.AddCredits(ctx, acct.ID, 1_000_000, "", ""); err != nil {
		f.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"name": "fuzz", "credentials": a.fakes["klaviyo"].Credentials(true)})
	status, resp := a.do("POST", "/v1/integrations/klaviyo/connections", body)
	if status != http.StatusCreated {
		f.Fatalf("connect: %d %s", status, resp)
	}
	var c struct{ ID string }
	if err := json.Unmarshal(resp, &c); err != nil || c.ID == "" {
		f.Fatalf("connect: %s", resp)
	}
	a.cnx = c.ID
	return a
}

func (a *fuzzAPI) do(method, path string, body []byte) (int, []byte) {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+a.key)
	w := httptest.NewRecorder()
	a.h.ServeHTTP(w, r)
	return w.Code, w.Body.Bytes()
}

type fuzzEnvelope struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

// wholeBody are the 400 codes about the body as a whole (no field to name).
var wholeBody = map[string]bool{"invalid_json": true, "no_fields": true}

// fieldRoot is the top-level member a field path names: "checks.verify_mx" → checks, "rules[3].keyword" → rules.
func fieldRoot(field string) string {
	if i := strings.IndexAny(field, ".["); i > 0 {
		return field[:i]
	}
	return field
}

// namesKnown: field is a member of the body (any spelling, "[x" included) or a path under a request field or
// a body member.
func namesKnown(field string, body []byte, fields ...string) bool {
	keys := topKeys(body)
	root := fieldRoot(field)
	return keys[field] || keys[root] || contains(fields, root)
}

// topKeys returns the body's top-level member names (nil when it is not an object).
func topKeys(body []byte) map[string]bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return nil
	}
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

// checkRejected asserts a 400 names the body or a field of the request / the body.
func checkRejected(t *testing.T, what string, status int, resp, body []byte, fields ...string) fuzzEnvelope {
	t.Helper()
	var e fuzzEnvelope
	if status != http.StatusBadRequest {
		t.Fatalf("%s: status %d (want 2xx or 400): %s", what, status, resp)
	}
	if err := json.Unmarshal(resp, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("%s: 400 without an error envelope: %s", what, resp)
	}
	if e.Error.Field == "" {
		// credentials_rejected is the platform's verdict on the credentials as a whole (connect).
		if !wholeBody[e.Error.Code] && !(e.Error.Code == "credentials_rejected" && contains(fields, "credentials")) &&
			!(e.Error.Code == "unknown_field" && topKeys(body)[""]) {
			t.Fatalf("%s: 400 %s names no field: %s", what, e.Error.Code, resp)
		}
		return e
	}
	if !namesKnown(e.Error.Field, body, fields...) {
		t.Fatalf("%s: 400 names field %q, which is neither a field of the request nor in the body: %s", what, e.Error.Field, resp)
	}
	return e
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// onlyFields asserts an accepted body's members are all fields of the request, spelled exactly.
func onlyFields(t *testing.T, what string, body []byte, fields ...string) {
	t.Helper()
	for k := range topKeys(body) {
		if !contains(fields, k) {
			t.Fatalf("%s: accepted a body with the member %q, which is not a field of the request", what, k)
		}
	}
}

func FuzzRuleBody(f *testing.F) {
	for _, s := range []string{
		`{"keyword":"info"}`, `{"keyword":"example.com","match_on":"domain"}`, `{"keyword":"a@b.co","match_on":"email"}`,
		`{"keyword":" Info ","match_on":"local_part"}`, `{"keyword":"","match_on":"x"}`, `{"keyword":null}`, `{}`, ``,
		`{"keyword":"a b"}`, `{"keyword":"x","extra":1}`, `{"Keyword":"x"}`, `{"keyword":"x"} {}`, `[]`, `{"keyword":1}`,
		`{"keyword":"\u00e9t\u00e9","match_on":"local_part"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// As addRule: the body check, then the rule decoder.
		nr, err := func() (store.NewRule, error) {
			if _, err := checkBody(body, true); err != nil {
				return store.NewRule{}, err
			}
			return parseRule(body, "")
		}()
		if err != nil {
			e, ok := err.(*apiError)
			if !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if e.Status != http.StatusBadRequest || e.Code == "" {
				t.Fatalf("rejected with %d %s", e.Status, e.Code)
			}
			if e.Field == "" && !wholeBody[e.Code] && !(e.Code == "unknown_field" && topKeys(body)[""]) {
				t.Fatalf("400 %s names no field", e.Code)
			}
			if e.Field != "" && !namesKnown(e.Field, body, "keyword", "match_on") {
				t.Fatalf("400 names field %q, neither a rule field nor in the body", e.Field)
			}
			return
		}
		onlyFields(t, "rule", body, "keyword", "match_on")
		if nr.Keyword == "" || nr.MatchOn == "" {
			t.Fatalf("accepted rule %+v has an empty part", nr)
		}
		// Re-encoding the decoded value gives the same rule.
		var in ruleInput
		if err := json.Unmarshal(body, &in); err != nil {
			t.Fatalf("accepted body does not decode as a rule: %v", err)
		}
		re, _ := json.Marshal(in)
		nr2, err := parseRule(re, "")
		if err != nil || nr2 != nr {
			t.Fatalf("re-encoded %s: %+v, %v; want %+v", re, nr2, err, nr)
		}
		// The normalised rule is a fixed point.
		norm, _ := json.Marshal(map[string]string{"keyword": nr.Keyword, "match_on": nr.MatchOn})
		if nr3, err := parseRule(norm, ""); err != nil || nr3 != nr {
			t.Fatalf("normalised %s: %+v, %v; want %+v", norm, nr3, err, nr)
		}
	})
}

func FuzzBulkRulesBody(f *testing.F) {
	for _, s := range []string{
		`{"rules":[{"keyword":"info"},{"keyword":"example.com","match_on":"domain"}]}`, `{"rules":[]}`, `{"rules":null}`,
		`{"rules":[1]}`, `{"rules":[{"keyword":"a","x":1}]}`, `{"rules":[{"keyword":"a"}],"more":true}`, `{"Rules":[{"keyword":"a"}]}`,
		`{"rules":[{"keyword":"a b"}]}`, `{"rules":{}}`, `{"rules":[{"keyword":"x","match_on":"email"}]}`,
	} {
		f.Add([]byte(s))
	}
	a := newFuzzAPI(f)
	path := "/v1/integrations/klaviyo/connections/" + a.cnx + "/blacklist/bulk"
	f.Fuzz(func(t *testing.T, body []byte) {
		status, resp := a.do("POST", path, body)
		if status != http.StatusCreated {
			checkRejected(t, "bulk", status, resp, body, "rules")
			return
		}
		onlyFields(t, "bulk", body, "rules")
		var in struct {
			Rules []map[string]json.RawMessage `json:"rules"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			t.Fatalf("accepted bulk body does not decode: %v", err)
		}
		for i, r := range in.Rules {
			for k := range r {
				if k != "keyword" && k != "match_on" {
					t.Fatalf("accepted rules[%d] with the member %q", i, k)
				}
			}
		}
		var out struct {
			Data []struct{ ID, Keyword, MatchOn string } `json:"data"`
		}
		if err := json.Unmarshal(resp, &out); err != nil || len(out.Data) != len(in.Rules) {
			t.Fatalf("201 with %d rules for %d sent: %s", len(out.Data), len(in.Rules), resp)
		}
		// Re-encoded, the same rules come back (existing equal rules are returned as they are).
		var dec struct {
			Rules []ruleInput `json:"rules"`
		}
		if err := json.Unmarshal(body, &dec); err != nil {
			t.Fatal(err)
		}
		re, _ := json.Marshal(dec)
		status2, resp2 := a.do("POST", path, re)
		var out2 struct {
			Data []struct{ ID, Keyword, MatchOn string } `json:"data"`
		}
		if status2 != http.StatusCreated || json.Unmarshal(resp2, &out2) != nil || !reflect.DeepEqual(out.Data, out2.Data) {
			t.Fatalf("re-encoded %s: %d %s; first answer %s", re, status2, resp2, resp)
		}
	})
}

// patchBody is a PATCH body's decoded value.
type patchBody struct {
	Name             *string          `json:"name,omitempty"`
	VerifyFirst      *bool            `json:"verify_first,omitempty"`
	Aggressiveness   *string          `json:"aggressiveness,omitempty"`
	Checks           *map[string]bool `json:"checks,omitempty"`
	AutoFlossEnabled *bool            `json:"auto_floss_enabled,omitempty"`
	OnFailure        *string          `json:"on_failure,omitempty"`
}

func FuzzPatchBody(f *testing.F) {
	for _, s := range []string{
		`{"name":"Main list"}`, `{"verify_first":false}`, `{"aggressiveness":"aggressive"}`, `{"aggressiveness":"custom"}`,
		`{"checks":{"verify_mx":false}}`, `{"checks":{}}`, `{"auto_floss_enabled":false,"on_failure":"delete"}`,
		`{"aggressiveness":"normal","checks":{}}`, `{}`, ``, `{"checks":{"nope":true}}`, `{"checks":{"verify_mx":1}}`,
		`{"name":"  "}`, `{"name":null}`, `{"Name":"x"}`, `{"on_failure":"explode"}`, `{"name":"a"}x`,
	} {
		f.Add([]byte(s))
	}
	a := newFuzzAPI(f)
	ctx := context.Background()
	baseName, on := "fuzz", true
	baseline := store.ConnectionUpdate{Name: &baseName, AutoFlossEnabled: &on, Settings: defaultSettings().raw()}
	path := "/v1/integrations/klaviyo/connections/" + a.cnx
	reset := func(t *testing.T) []byte {
		if _, err := a.st.UpdateConnection(ctx, a.account, a.cnx, baseline); err != nil {
			t.Fatal(err)
		}
		status, resp := a.do("GET", path, nil)
		if status != http.StatusOK {
			t.Fatalf("GET: %d %s", status, resp)
		}
		return resp
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		before := reset(t)
		status, resp := a.do("PATCH", path, body)
		if status != http.StatusOK {
			checkRejected(t, "PATCH", status, resp, body)
			if _, after := a.do("GET", path, nil); !bytes.Equal(after, before) {
				t.Fatalf("a rejected PATCH changed the connection:\nbefore %s\nafter  %s", before, after)
			}
			return
		}
		keys := topKeys(body)
		if keys["aggressiveness"] && keys["checks"] {
			t.Fatal("accepted a PATCH with both aggressiveness and checks")
		}
		onlyFields(t, "PATCH", body, "name", "verify_first", "aggressiveness", "checks", "auto_floss_enabled", "on_failure")
		var got struct {
			Settings struct {
				Aggressiveness string `json:"aggressiveness"`
			} `json:"settings"`
		}
		if err := json.Unmarshal(resp, &got); err != nil {
			t.Fatal(err)
		}
		if keys["checks"] && got.Settings.Aggressiveness != "custom" {
			t.Fatalf("checks accepted but aggressiveness is %q", got.Settings.Aggressiveness)
		}
		var p patchBody
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("accepted PATCH body does not decode: %v", err)
		}
		re, _ := json.Marshal(p)
		reset(t)
		status2, resp2 := a.do("PATCH", path, re)
		if status2 != http.StatusOK || !bytes.Equal(resp2, resp) {
			t.Fatalf("re-encoded %s: %d %s\nfirst answer %s", re, status2, resp2, resp)
		}
	})
}

// secretLike are credential values an error message could leak recognisably.
var secretLike = regexp.MustCompile(`^[A-Za-z0-9_-]{20,}$`)

func FuzzConnectBody(f *testing.F) {
	a := newFuzzAPI(f)
	for i, slug := range connectPlatforms {
		good, _ := json.Marshal(map[string]any{"name": "Shop " + slug, "credentials": a.fakes[slug].Credentials(true)})
		bad, _ := json.Marshal(map[string]any{"credentials": a.fakes[slug].Credentials(false)})
		f.Add(good, uint8(i))
		f.Add(bad, uint8(i))
	}
	for _, s := range []string{`{}`, ``, `{"credentials":null}`, `{"credentials":{"api_key":1}}`, `{"credentials":"x"}`,
		`{"name":"","credentials":{}}`, `{"credentials":{"api_key":"k","other":"v"}}`, `{"Credentials":{}}`,
		`{"credentials":{"api_url":"http://127.0.0.1:1","api_key":"k"}}`, `{"credentials":{"api_key":"abc-us19"}}`} {
		f.Add([]byte(s), uint8(0))
	}
	f.Fuzz(func(t *testing.T, body []byte, which uint8) {
		slug := connectPlatforms[int(which)%len(connectPlatforms)]
		path := "/v1/integrations/" + slug + "/connections"
		status, resp := a.do("POST", path, body)
		if status != http.StatusCreated {
			e := checkRejected(t, "connect", status, resp, body, "name", "credentials")
			var in struct {
				Credentials map[string]json.RawMessage `json:"credentials"`
			}
			_ = json.Unmarshal(body, &in)
			for k, raw := range in.Credentials {
				var v string
				if json.Unmarshal(raw, &v) != nil || !secretLike.MatchString(v) || strings.Contains(k, v) {
					continue
				}
				if strings.Contains(e.Error.Message, v) {
					t.Fatalf("connect: the 400 quotes the value of credentials.%s: %s", k, resp)
				}
			}
			return
		}
		onlyFields(t, "connect", body, "name", "credentials")
		var in struct {
			Name        *string           `json:"name,omitempty"`
			Credentials map[string]string `json:"credentials"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			t.Fatalf("accepted connect body does not decode: %v", err)
		}
		re, _ := json.Marshal(in)
		status2, resp2 := a.do("POST", path, re)
		if status2 != http.StatusCreated {
			t.Fatalf("re-encoded %s: %d %s", re, status2, resp2)
		}
		var c1, c2 struct {
			ID, Name string
		}
		_ = json.Unmarshal(resp, &c1)
		_ = json.Unmarshal(resp2, &c2)
		if c1.Name != c2.Name {
			t.Fatalf("re-encoded body named the connection %q, the first %q", c2.Name, c1.Name)
		}
		cr1, err1 := a.st.ConnectionCredentials(context.Background(), c1.ID)
		cr2, err2 := a.st.ConnectionCredentials(context.Background(), c2.ID)
		if err1 != nil || err2 != nil || !reflect.DeepEqual(cr1, cr2) {
			t.Fatalf("re-encoded body stored other credentials (%v, %v)", err1, err2)
		}
	})
}
