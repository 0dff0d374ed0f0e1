package api_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/autofloss/autofloss/policy"
	"github.com/autofloss/autofloss/store"
)

// seedCredentials are the credentials of the seed's three connect calls for this env: the platform's own
// fake where adapter and fake exist, else the klaviyo stand-in (see testAdapters).
func (e *env) seedCredentials(slug string) map[string]string {
	if f, ok := e.fakes[slug]; ok && slug != "klaviyo" {
		return f.Credentials(true)
	}
	kl := e.fakes["klaviyo"]
	switch slug {
	case "klaviyo":
		return map[string]string{"api_key": kl.Secret()}
	case "activecampaign":
		return map[string]string{"api_url": e.baseURLs["activecampaign"], "api_key": kl.Secret()}
	case "convertkit":
		return map[string]string{"api_key": kl.Secret(), "api_secret": "kit-secret-0123456789"}
	}
	panic(slug)
}

func settingsOf(t *testing.T, r response) map[string]any {
	t.Helper()
	s, ok := r.JSON["settings"].(map[string]any)
	if !ok {
		t.Fatalf("no settings in %s", r.Body)
	}
	return s
}

func checksOf(t *testing.T, r response) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for k, v := range settingsOf(t, r)["checks"].(map[string]any) {
		out[k] = v.(bool)
	}
	return out
}

func equalGates(t *testing.T, what string, got, want map[string]bool) {
	t.Helper()
	if len(got) != 15 {
		t.Fatalf("%s: %d gates listed, want all 15: %v", what, len(got), got)
	}
	for g, on := range want {
		if got[g] != on {
			t.Fatalf("%s: gate %s = %v, want %v (all: %v)", what, g, got[g], on, got)
		}
	}
}

// TestSeedFlow drives the seed's whole sequence over real HTTP: list, drill in, connect the three kinds of
// platform, read, configure (each PATCH rule and each rejection), keyword rules (each operation), sync,
// runs and results, disconnect and reconnect — asserting status codes, bodies and the store.
func TestSeedFlow(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()

	// 1. See what's connected.
	r := e.get("/v1/integrations")
	expect(t, "list integrations", r, 200, "")
	data := r.JSON["data"].([]any)
	if len(data) != 18 {
		t.Fatalf("listed %d integrations, want 18", len(data))
	}
	bySlug := map[string]map[string]any{}
	for _, d := range data {
		m := d.(map[string]any)
		bySlug[m["type"].(string)] = m
	}
	if _, ok := bySlug["sendinblue"]; ok {
		t.Fatal("sendinblue is listed")
	}
	if bySlug["constantcontact"]["connectable"] != false || bySlug["klaviyo"]["connectable"] != true {
		t.Fatalf("connectable flags wrong: %v / %v", bySlug["constantcontact"], bySlug["klaviyo"])
	}
	if bySlug["klaviyo"]["connected"] != false || bySlug["klaviyo"]["connection_count"] != float64(0) {
		t.Fatalf("klaviyo before connecting: %v", bySlug["klaviyo"])
	}
	ac := bySlug["activecampaign"]["credential_fields"].([]any)
	if len(ac) != 2 || ac[0].(map[string]any)["name"] != "api_url" || ac[1].(map[string]any)["secret"] != true {
		t.Fatalf("activecampaign credential fields: %v", ac)
	}
	// Pagination walks the same 18 in pages.
	seen, cursor := 0, ""
	for pages := 0; ; pages++ {
		path := "/v1/integrations?per_page=5"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := e.get(path)
		expect(t, "page of integrations", r, 200, "")
		seen += len(r.JSON["data"].([]any))
		next, _ := r.JSON["pagination"].(map[string]any)["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if seen != 18 {
		t.Fatalf("pages held %d integrations, want 18", seen)
	}

	// … or drill into one platform.
	r = e.get("/v1/integrations/klaviyo")
	expect(t, "get klaviyo", r, 200, "")
	if len(r.JSON["connections"].([]any)) != 0 {
		t.Fatalf("connections before connecting: %s", r.Body)
	}

	// 2. Connect the three shapes of credentials.
	type step struct {
		slug, name, wantName string
	}
	ids := map[string]string{}
	for _, s := range []step{
		{"klaviyo", "Marketing Klaviyo", "Marketing Klaviyo"},
		{"activecampaign", "", "ActiveCampaign"},
		{"convertkit", "", "Kit (ConvertKit)"},
	} {
		if realPlatform(e.reg, s.slug) {
			t.Logf("%s: its own adapter against its esptest fake", s.slug)
		} else {
			t.Logf("%s: no adapter or fake yet: validated live through the klaviyo stand-in", s.slug)
		}
		creds := e.seedCredentials(s.slug)
		body := map[string]any{"credentials": creds}
		if s.name != "" {
			body["name"] = s.name
		}
		r := e.call(req{method: "POST", path: "/v1/integrations/" + s.slug + "/connections", body: body})
		expect(t, "connect "+s.slug, r, 201, "")
		if r.str("name") != s.wantName || r.str("type") != s.slug || r.str("status") != "active" ||
			r.JSON["auto_floss_enabled"] != true || r.JSON["last_synced_at"] != nil || !strings.HasPrefix(r.str("id"), "cnx_") {
			t.Fatalf("connect %s: %s", s.slug, r.Body)
		}
		set := settingsOf(t, r)
		if set["aggressiveness"] != "normal" || set["verify_first"] != true || set["on_failure"] != "update_fields" {
			t.Fatalf("default settings: %v", set)
		}
		equalGates(t, "new connection", checksOf(t, r), policy.Preset(policy.PresetNormal))
		for _, v := range creds {
			if strings.Contains(string(r.Body), v) && !strings.HasPrefix(v, "http") {
				t.Fatalf("connect %s: a credential is in the response: %s", s.slug, r.Body)
			}
		}
		id := r.str("id")
		ids[s.slug] = id
		// The store holds it, sealed.
		c, err := e.st.GetConnection(ctx, e.account, id)
		if err != nil || c.Type != s.slug || c.Status != store.StatusActive {
			t.Fatalf("store after connect %s: %+v %v", s.slug, c, err)
		}
		var sealed []byte
		if err := e.st.DB().Get(&sealed, "SELECT credentials FROM connections WHERE id = ?", id); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(sealed), creds["api_key"]) {
			t.Fatalf("credentials stored in plaintext")
		}
		got, err := e.st.ConnectionCredentials(ctx, id)
		if err != nil || got["api_key"] != creds["api_key"] {
			t.Fatalf("stored credentials do not open to what was sent: %v", err)
		}
	}
	if n := e.count("connections"); n != 3 {
		t.Fatalf("%d connections stored, want 3", n)
	}
	kid := ids["klaviyo"]
	r = e.get("/v1/integrations/klaviyo")
	expect(t, "get klaviyo after connect", r, 200, "")
	if r.JSON["connected"] != true || r.JSON["connection_count"] != float64(1) || len(r.JSON["connections"].([]any)) != 1 {
		t.Fatalf("klaviyo after connect: %s", r.Body)
	}

	// 3. Read it.
	r = e.get(cnxPath("klaviyo", kid))
	expect(t, "get connection", r, 200, "")
	if r.str("id") != kid || r.str("name") != "Marketing Klaviyo" {
		t.Fatalf("get connection: %s", r.Body)
	}
	// Under another type's path it does not exist.
	expect(t, "connection under the wrong type", e.get(cnxPath("mailchimp", kid)), 404, "connection_not_found")

	// 4. Configure cleaning: each rule.
	patch := func(body any) response {
		return e.call(req{method: "PATCH", path: cnxPath("klaviyo", kid), body: body})
	}
	r = patch(map[string]any{"verify_first": false, "aggressiveness": "aggressive"})
	expect(t, "patch aggressive", r, 200, "")
	if s := settingsOf(t, r); s["aggressiveness"] != "aggressive" || s["verify_first"] != false {
		t.Fatalf("patch aggressive: %v", s)
	}
	equalGates(t, "aggressive", checksOf(t, r), policy.Preset(policy.PresetAggressive))

	r = patch(map[string]any{"checks": map[string]bool{"role": false, "accept_all": false}})
	expect(t, "patch checks", r, 200, "")
	want := policy.Preset(policy.PresetAggressive)
	want["role"], want["accept_all"] = false, false
	if settingsOf(t, r)["aggressiveness"] != "custom" {
		t.Fatalf("checks did not switch to custom: %s", r.Body)
	}
	equalGates(t, "checks changes only the named gates", checksOf(t, r), want)

	r = patch(map[string]any{"aggressiveness": "custom"})
	expect(t, "patch custom alone", r, 200, "")
	equalGates(t, "custom alone keeps the gates", checksOf(t, r), want)

	r = patch(map[string]any{"aggressiveness": "normal"})
	expect(t, "patch normal", r, 200, "")
	equalGates(t, "normal resets every gate", checksOf(t, r), policy.Preset(policy.PresetNormal))

	r = patch(map[string]any{"name": "Renamed", "auto_floss_enabled": false, "on_failure": "unsubscribe"})
	expect(t, "patch additions", r, 200, "")
	if r.str("name") != "Renamed" || r.JSON["auto_floss_enabled"] != false || settingsOf(t, r)["on_failure"] != "unsubscribe" {
		t.Fatalf("patch additions: %s", r.Body)
	}
	c, _ := e.st.GetConnection(ctx, e.account, kid)
	var stored map[string]any
	_ = json.Unmarshal(c.Settings, &stored)
	if c.Name != "Renamed" || c.AutoFlossEnabled || stored["on_failure"] != "unsubscribe" || stored["aggressiveness"] != "normal" || c.VerifyFirst {
		t.Fatalf("store after patches: %+v %s", c, c.Settings)
	}

	// … and each rejection, changing nothing.
	before := e.snapshot()
	for _, tc := range []struct {
		name, body, code, field string
	}{
		{"empty body", "", "no_fields", ""},
		{"empty object", "{}", "no_fields", ""},
		{"aggressiveness with checks", `{"aggressiveness":"normal","checks":{"role":true}}`, "aggressiveness_checks_exclusive", "checks"},
		{"unknown gate", `{"checks":{"telepathy":true}}`, "unknown_field", "checks.telepathy"},
		{"non-bool gate", `{"checks":{"role":"yes"}}`, "invalid_field", "checks.role"},
		{"null gate", `{"checks":{"role":null}}`, "invalid_field", "checks.role"},
		{"checks not an object", `{"checks":[true]}`, "invalid_field", "checks"},
		{"unknown field", `{"colour":"blue"}`, "unknown_field", "colour"},
		{"unknown field beside a good one", `{"name":"x","colour":"blue"}`, "unknown_field", "colour"},
		{"bad aggressiveness", `{"aggressiveness":"extreme"}`, "invalid_field", "aggressiveness"},
		{"verify_first not bool", `{"verify_first":"true"}`, "invalid_field", "verify_first"},
		{"auto_floss_enabled not bool", `{"auto_floss_enabled":1}`, "invalid_field", "auto_floss_enabled"},
		{"bad on_failure", `{"on_failure":"explode"}`, "invalid_field", "on_failure"},
		{"empty name", `{"name":"  "}`, "invalid_field", "name"},
		{"long name", `{"name":"` + strings.Repeat("n", 101) + `"}`, "invalid_field", "name"},
		{"credentials are not settable", `{"credentials":{"api_key":"x"}}`, "unknown_field", "credentials"},
	} {
		r := e.call(req{method: "PATCH", path: cnxPath("klaviyo", kid), body: tc.body})
		expect(t, "patch "+tc.name, r, 400, tc.code)
		if r.errField() != tc.field {
			t.Fatalf("patch %s: field %q, want %q", tc.name, r.errField(), tc.field)
		}
	}
	assertUnchanged(t, e, before, "PATCH rejections")

	// Keyword rules: each operation on both lists.
	for _, list := range []string{"whitelist", "blacklist"} {
		base := cnxPath("klaviyo", kid, list)
		r := e.call(req{method: "POST", path: base, body: `{"keyword":"info"}`})
		expect(t, list+" add", r, 201, "")
		if r.str("match_on") != "local_part" || r.str("keyword") != "info" || !strings.HasPrefix(r.str("id"), "kwr_") {
			t.Fatalf("%s add: %s", list, r.Body)
		}
		first := r.str("id")
		r = e.call(req{method: "POST", path: base, body: `{"keyword":"  INFO ","match_on":"local_part"}`})
		expect(t, list+" add existing", r, 200, "")
		if r.str("id") != first {
			t.Fatalf("%s: existing rule not returned: %s", list, r.Body)
		}
		expect(t, list+" add domain", e.call(req{method: "POST", path: base, body: `{"keyword":"example.com","match_on":"domain"}`}), 201, "")
		r = e.call(req{method: "POST", path: base + "/bulk", body: `{"rules":[{"keyword":"jane@example.org","match_on":"email"},{"keyword":"info"},{"keyword":"sales"}]}`})
		expect(t, list+" bulk", r, 201, "")
		bulk := r.JSON["data"].([]any)
		if len(bulk) != 3 || bulk[1].(map[string]any)["id"] != first {
			t.Fatalf("%s bulk: %s", list, r.Body)
		}
		r = e.get(base)
		expect(t, list+" list", r, 200, "")
		rules := r.JSON["data"].([]any)
		if len(rules) != 4 {
			t.Fatalf("%s holds %d rules, want 4: %s", list, len(rules), r.Body)
		}
		r = e.get(base + "?per_page=3")
		if next, _ := r.JSON["pagination"].(map[string]any)["next_cursor"].(string); len(r.JSON["data"].([]any)) != 3 || next == "" {
			t.Fatalf("%s page 1: %s", list, r.Body)
		} else if r2 := e.get(base + "?per_page=3&cursor=" + next); len(r2.JSON["data"].([]any)) != 1 {
			t.Fatalf("%s page 2: %s", list, r2.Body)
		}
		expect(t, list+" delete", e.call(req{method: "DELETE", path: base + "/" + first}), 204, "")
		expect(t, list+" delete again", e.call(req{method: "DELETE", path: base + "/" + first}), 404, "rule_not_found")
		if n := len(e.get(base).JSON["data"].([]any)); n != 3 {
			t.Fatalf("%s after delete: %d rules", list, n)
		}
	}
	// A rule of one list cannot be deleted through the other.
	wl := e.get(cnxPath("klaviyo", kid, "whitelist")).JSON["data"].([]any)[0].(map[string]any)["id"].(string)
	expect(t, "delete whitelist rule via blacklist", e.call(req{method: "DELETE", path: cnxPath("klaviyo", kid, "blacklist", wl)}), 404, "rule_not_found")
	if n := e.count("keyword_rules"); n != 6 {
		t.Fatalf("%d keyword rules stored, want 6", n)
	}

	// Another account sees none of it.
	for _, rq := range []req{
		{method: "GET", path: cnxPath("klaviyo", kid)},
		{method: "PATCH", path: cnxPath("klaviyo", kid), body: `{"name":"mine"}`},
		{method: "DELETE", path: cnxPath("klaviyo", kid)},
		{method: "POST", path: cnxPath("klaviyo", kid, "reconnect")},
		{method: "POST", path: cnxPath("klaviyo", kid, "sync")},
		{method: "GET", path: cnxPath("klaviyo", kid, "runs")},
		{method: "GET", path: cnxPath("klaviyo", kid, "results")},
		{method: "GET", path: cnxPath("klaviyo", kid, "whitelist")},
		{method: "POST", path: cnxPath("klaviyo", kid, "whitelist"), body: `{"keyword":"x"}`},
		{method: "POST", path: cnxPath("klaviyo", kid, "blacklist", "bulk"), body: `{"rules":[{"keyword":"x"}]}`},
		{method: "DELETE", path: cnxPath("klaviyo", kid, "whitelist", wl)},
	} {
		rq.key = e.key2
		expect(t, "account B: "+rq.method+" "+rq.path, e.call(rq), 404, "connection_not_found")
	}
	if r := e.call(req{method: "GET", path: "/v1/integrations/klaviyo", key: e.key2}); r.JSON["connection_count"] != float64(0) {
		t.Fatalf("account B sees A's connections: %s", r.Body)
	}

	// Sync now, runs and results.
	r = e.call(req{method: "POST", path: cnxPath("klaviyo", kid, "sync")})
	expect(t, "sync", r, 202, "")
	runID, taskID := r.str("run_id"), r.str("task_id")
	info, err := e.insp.GetTaskInfo("default", taskID)
	if err != nil {
		t.Fatalf("the sync task is not in the default queue: %v", err)
	}
	if info.Type != "floss:sync" || !strings.Contains(string(info.Payload), kid) || !strings.Contains(string(info.Payload), runID) {
		t.Fatalf("enqueued task: %s %s", info.Type, info.Payload)
	}
	r = e.call(req{method: "POST", path: cnxPath("klaviyo", kid, "sync")})
	expect(t, "sync again", r, 202, "")
	if r.str("run_id") != runID || r.str("task_id") != taskID {
		t.Fatalf("second sync opened another run: %s", r.Body)
	}
	if n := e.count("floss_runs"); n != 1 {
		t.Fatalf("%d runs, want 1", n)
	}
	r = e.get(cnxPath("klaviyo", kid, "runs"))
	expect(t, "runs", r, 200, "")
	runs := r.JSON["data"].([]any)
	if len(runs) != 1 || runs[0].(map[string]any)["state"] != "queued" || runs[0].(map[string]any)["kind"] != "full" {
		t.Fatalf("runs: %s", r.Body)
	}
	// The worker's side, through the store: one page of two results.
	if _, err := e.st.StartRun(ctx, runID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.CommitPage(ctx, store.PageCommit{RunID: runID, NextCursor: "", Seen: 2, Results: []store.NewResult{
		{ContactID: "c1", Email: "jane@example.org", Status: "passed", Reason: "valid", Passed: true},
		{ContactID: "c2", Email: "bob@gmial.com", Status: "undeliverable", Reason: "illegitimate", Suggestion: "bob@gmail.com", Action: "unsubscribe"},
	}}); err != nil {
		t.Fatal(err)
	}
	r = e.get(cnxPath("klaviyo", kid, "results"))
	expect(t, "results", r, 200, "")
	if n := len(r.JSON["data"].([]any)); n != 2 {
		t.Fatalf("results: %s", r.Body)
	}
	r = e.get(cnxPath("klaviyo", kid, "results") + "?status=undeliverable&reason=illegitimate&run_id=" + runID)
	res := r.JSON["data"].([]any)
	if len(res) != 1 || res[0].(map[string]any)["suggestion"] != "bob@gmail.com" || res[0].(map[string]any)["action"] != "unsubscribe" {
		t.Fatalf("filtered results: %s", r.Body)
	}
	r = e.get(cnxPath("klaviyo", kid, "results") + "?per_page=1")
	next, _ := r.JSON["pagination"].(map[string]any)["next_cursor"].(string)
	if len(r.JSON["data"].([]any)) != 1 || next == "" {
		t.Fatalf("results page 1: %s", r.Body)
	}
	if r := e.get(cnxPath("klaviyo", kid, "results") + "?per_page=1&cursor=" + next); len(r.JSON["data"].([]any)) != 1 || r.JSON["pagination"].(map[string]any)["next_cursor"] != nil {
		t.Fatalf("results page 2: %s", r.Body)
	}
	r = e.get(cnxPath("klaviyo", kid, "runs"))
	if run := r.JSON["data"].([]any)[0].(map[string]any); run["state"] != "running" || run["credits_used"] != float64(2) ||
		run["counts"].(map[string]any)["seen"] != float64(2) || run["by_reason"].(map[string]any)["illegitimate"] != float64(1) {
		t.Fatalf("run after a page: %s", r.Body)
	}

	// 5. Disconnect: the record, settings, rules and results stay; repeating is a no-op.
	r = e.call(req{method: "DELETE", path: cnxPath("klaviyo", kid)})
	expect(t, "disconnect", r, 200, "")
	if r.str("status") != "disconnected" || r.str("disconnected_reason") != "user" || r.str("name") != "Renamed" {
		t.Fatalf("disconnect: %s", r.Body)
	}
	r2 := e.call(req{method: "DELETE", path: cnxPath("klaviyo", kid)})
	expect(t, "disconnect again", r2, 200, "")
	if r2.str("status") != "disconnected" {
		t.Fatalf("disconnect again: %s", r2.Body)
	}
	if e.count("connections") != 3 || e.count("keyword_rules") != 6 || e.count("results") != 2 {
		t.Fatal("disconnect removed data")
	}
	if r := e.get("/v1/integrations/klaviyo"); r.JSON["connected"] != false || r.JSON["connection_count"] != float64(1) {
		t.Fatalf("klaviyo after disconnect: %s", r.Body)
	}
	expect(t, "sync while disconnected", e.call(req{method: "POST", path: cnxPath("klaviyo", kid, "sync")}), 409, "connection_disconnected")

	// Reconnect: wrong new credentials are refused and change nothing; the stored ones re-validate.
	r = e.call(req{method: "POST", path: cnxPath("klaviyo", kid, "reconnect"), body: `{"credentials":{"api_key":"pk_wrong_0000000000000000000000"}}`})
	expect(t, "reconnect with rejected credentials", r, 400, "credentials_rejected")
	if c, _ := e.st.GetConnection(ctx, e.account, kid); c.Status != store.StatusDisconnected {
		t.Fatal("a failed reconnect changed the status")
	}
	r = e.call(req{method: "POST", path: cnxPath("klaviyo", kid, "reconnect")})
	expect(t, "reconnect", r, 200, "")
	if r.str("status") != "active" || r.JSON["disconnected_reason"] != nil {
		t.Fatalf("reconnect: %s", r.Body)
	}
	r = e.call(req{method: "POST", path: cnxPath("klaviyo", kid, "reconnect"), body: map[string]any{"credentials": e.seedCredentials("klaviyo")}})
	expect(t, "reconnect an active connection with new credentials", r, 200, "")
	if c, _ := e.st.GetConnection(ctx, e.account, kid); c.Status != store.StatusActive || c.DisconnectedReason != "" {
		t.Fatalf("store after reconnect: %+v", c)
	}
	// The other two connections re-validate through their own (or stand-in) platform too.
	for _, slug := range []string{"activecampaign", "convertkit"} {
		expect(t, "reconnect "+slug, e.call(req{method: "POST", path: cnxPath(slug, ids[slug], "reconnect"), body: `{}`}), 200, "")
	}
	if t.Failed() {
		return
	}
	// No secret, key or address reached the logs.
	logs := e.logs.String()
	for _, secret := range []string{e.key, e.key2, e.fakes["klaviyo"].Secret(), "jane@example.org", "bob@gmial.com"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("the logs contain a secret or an address (%.12s…)", secret)
		}
	}
	if !strings.Contains(logs, `"route":"POST /v1/integrations/{type}/connections"`) || !strings.Contains(logs, `"account_id":"`+e.account+`"`) {
		t.Fatalf("access log lines lack route or account: %.2000s", logs)
	}
}

func assertUnchanged(t *testing.T, e *env, before map[string]int, what string) {
	t.Helper()
	after := e.snapshot()
	if len(after) != len(before) {
		t.Fatalf("%s changed the store: %v → %v", what, before, after)
	}
	for k, v := range before {
		if after[k] != v {
			t.Fatalf("%s changed the store: %v → %v", what, before, after)
		}
	}
}
