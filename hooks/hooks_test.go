package hooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/esp/esptest"
	"github.com/autofloss/autofloss/hooks"
	"github.com/autofloss/autofloss/internal/testenv"
	"github.com/autofloss/autofloss/jobs"
	"github.com/autofloss/autofloss/store"
	"github.com/autofloss/autofloss/verify"
	"github.com/autofloss/autofloss/verify/verifytest"
)

func TestParsers(t *testing.T) {
	cases := []struct {
		typ, ct, body string
		want          []hooks.Contact
		err           bool
	}{
		{"mailchimp", "application/x-www-form-urlencoded",
			"type=subscribe&fired_at=2009-03-26+21%3A35%3A57&data%5Bid%5D=8a25ff1d98&data%5Blist_id%5D=a6b5da1054&data%5Bemail%5D=API%40mailchimp.com&data%5Bemail_type%5D=html",
			[]hooks.Contact{{ID: "6def22f266be37015519943ce0c3ae6b", ListID: "a6b5da1054"}}, false},
		{"mailchimp", "", "type=unsubscribe&data%5Bemail%5D=a%40b.c&data%5Blist_id%5D=x", nil, false},
		{"mailchimp", "", "type=subscribe&data%5Blist_id%5D=x", nil, true},
		{"activecampaign", "", "type=subscribe&date_time=2024-01-01&contact%5Bid%5D=42&contact%5Bemail%5D=a%40b.c&list=3",
			[]hooks.Contact{{ID: "42"}}, false},
		{"activecampaign", "", "type=contact_add&contact%5Bid%5D=43", []hooks.Contact{{ID: "43"}}, false},
		{"activecampaign", "", "type=sent&contact%5Bid%5D=43", nil, false},
		{"convertkit", "application/json", `{"subscriber":{"id":1234567,"first_name":"A","email_address":"a@b.c","state":"active"}}`,
			[]hooks.Contact{{ID: "1234567"}}, false},
		{"convertkit", "application/json", `{"nope":1}`, nil, true},
		{"convertkit", "application/json", `not json`, nil, true},
		{"mailerlite", "application/json", `{"events":[{"type":"subscriber.created","data":{"subscriber":{"id":111,"email":"a@b.c"}}},{"type":"subscriber.updated","data":{"subscriber":{"id":112}}}]}`,
			[]hooks.Contact{{ID: "111"}}, false},
		{"mailerlite", "application/json", `{"id":"98765","email":"a@b.c","status":"active","event":"subscriber.created"}`,
			[]hooks.Contact{{ID: "98765"}}, false},
		{"mailerlite", "application/json", `{"id":"98765","email":"a@b.c","status":"active"}`, []hooks.Contact{{ID: "98765"}}, false},
		{"mailerlite", "application/json", `{"id":"98765","event":"subscriber.deleted"}`, nil, false},
	}
	for i, tc := range cases {
		got, err := hooks.Parsers[tc.typ](tc.ct, []byte(tc.body))
		if (err != nil) != tc.err || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%d %s: got %v %v, want %v err=%v", i, tc.typ, got, err, tc.want, tc.err)
		}
	}
}

// TestWebhookVerifiesNewSubscriber: a Mailchimp subscribe webhook for a new (disposable) subscriber goes
// through the handler, Redis and a real asynq worker, and ends as a verified result in the store and the
// mf_* fields on the fake platform.
func TestWebhookVerifiesNewSubscriber(t *testing.T) {
	ctx := context.Background()
	st := testenv.Store(t, testenv.SQLite(t))
	var world *verifytest.World
	var err error
	for range 5 { // NewWorld's free-port pick can lose a race on a busy machine
		if world, err = verifytest.NewWorld(verifytest.WorldOptions{}); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer world.Close()
	vo, _ := world.EngineOptions()
	eng, err := verify.New(vo)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	d := esptest.DefaultDomains()
	d.Good, d.First = []string{verifytest.SharedDomain(0)}, []string{"ok"}
	fake, err := esptest.Start("mailchimp", esptest.Options{Seed: esptest.Seed{N: 300, Seed: 2, Domains: &d}, Limits: &esp.Limits{}})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	addr := testenv.Redis(t)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: addr})
	defer client.Close()
	log := zerolog.New(io.Discard)
	runner, err := jobs.NewRunner(jobs.Deps{Store: st, Registry: esp.Platforms(), Engine: eng, Log: log, Enqueuer: client,
		Client:   esp.NewClient(esp.ClientOptions{Limits: map[string]esp.Limits{"mailchimp": {}}}),
		ESP:      esp.Options{BaseURLs: map[string]string{"mailchimp": fake.URL()}},
		Settings: jobs.Settings{IncrementalLookback: time.Minute, ReverifyWindow: 30 * 24 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := jobs.ServerConfig(2, 6, 3, 1, 2*time.Second)
	cfg.LogLevel = asynq.FatalLevel
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: addr}, cfg)
	if err := srv.Start(jobs.NewServeMux(jobs.NewHandlers(runner, nil))); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()

	acct, _ := st.CreateAccount(ctx, "hooks")
	if _, err := st.AddCredits(ctx, acct.ID, 10, "", "grant"); err != nil {
		t.Fatal(err)
	}
	cnx, err := st.CreateConnection(ctx, store.NewConnection{AccountID: acct.ID, Type: "mailchimp", Name: "mc", AutoFlossEnabled: true,
		Settings:    json.RawMessage(`{"aggressiveness":"normal","verify_first":true,"on_failure":"update_fields"}`),
		Credentials: fake.Credentials(true)})
	if err != nil {
		t.Fatal(err)
	}
	// The new subscriber: a disposable address, just changed on the platform.
	idx := -1
	for i := 0; i < fake.N(); i++ {
		if fake.Seeded(i).Kind == esptest.KindDisposable {
			idx = i
			break
		}
	}
	fake.AddTag(idx, "joined")
	sc := fake.Seeded(idx)
	h := httptest.NewServer(hooks.New(hooks.Deps{Store: st, Enqueuer: client, Log: log}))
	defer h.Close()
	base := h.URL + "/v1/hooks/mailchimp/" + cnx.ID + "/"

	// Validation ping and wrong secrets.
	if code := get(t, base+cnx.WebhookSecret); code != 200 {
		t.Errorf("validation ping: %d", code)
	}
	for _, u := range []string{base + "wrong", h.URL + "/v1/hooks/klaviyo/" + cnx.ID + "/" + cnx.WebhookSecret,
		h.URL + "/v1/hooks/mailchimp/cnx_nope/" + cnx.WebhookSecret} {
		if code := post(t, u, "application/x-www-form-urlencoded", "type=subscribe"); code != 404 {
			t.Errorf("POST %s: %d, want 404", u[len(h.URL):], code)
		}
	}
	form := url.Values{"type": {"subscribe"}, "fired_at": {"2026-01-01 10:00:00"}, "data[id]": {"8a25ff1d98"},
		"data[email]": {sc.Email}, "data[list_id]": {fake.ListID(sc.Lists[0])}, "data[email_type]": {"html"}}
	if code := post(t, base+cnx.WebhookSecret, "application/x-www-form-urlencoded", form.Encode()); code != 200 {
		t.Fatalf("webhook: %d", code)
	}
	// Mailchimp delivers twice sometimes: the duplicate is absorbed.
	if code := post(t, base+cnx.WebhookSecret, "application/x-www-form-urlencoded", form.Encode()); code != 200 {
		t.Fatalf("webhook again: %d", code)
	}
	deadline := time.Now().Add(20 * time.Second)
	var res []store.Result
	for {
		res, _, err = st.ListResults(ctx, acct.ID, cnx.ID, store.ResultFilter{}, store.Page{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(res) != 1 {
		t.Fatalf("%d results, want 1", len(res))
	}
	r := res[0]
	if r.Reason != "disposable" || r.Passed || r.Action != "update_fields" || r.ContactID != fake.Record(idx).ID {
		t.Errorf("result %+v", r)
	}
	rec := fake.Record(idx)
	if got := rec.Fields[fake.FieldName(esp.FieldReason)]; got != "disposable" {
		t.Errorf("platform field mf_reason = %q (fields %v)", got, rec.Fields)
	}
	if b, _ := st.Balance(ctx, acct.ID); b != 9 {
		t.Errorf("balance %d, want 9", b)
	}
	run, err := st.RunByID(ctx, r.RunID)
	if err != nil || run.State != store.RunDone || run.CreditsUsed != 1 {
		t.Errorf("mini-run %+v %v", run, err)
	}
	c2, _ := st.ConnectionByID(ctx, cnx.ID)
	if c2.LastSyncedAt != nil {
		t.Errorf("a verify_contact mini-run moved last_synced_at")
	}
}

func get(t *testing.T, u string) int {
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func post(t *testing.T, u, ct, body string) int {
	resp, err := http.Post(u, ct, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(b), "@") {
		t.Errorf("response echoes an address: %s", b)
	}
	return resp.StatusCode
}
