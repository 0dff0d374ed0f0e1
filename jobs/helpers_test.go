package jobs_test

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/esp/esptest"
	"github.com/autofloss/autofloss/internal/testenv"
	"github.com/autofloss/autofloss/jobs"
	"github.com/autofloss/autofloss/store"
	"github.com/autofloss/autofloss/verify"
	"github.com/autofloss/autofloss/verify/verifytest"
)

// worldDomains maps esptest's seed material onto domains the verifytest world serves: good addresses live
// on the shared domains (MX mx.good.test, the mailbox server) with an "ok." local part (mailbox accepts).
func worldDomains() *esptest.Domains {
	d := esptest.DefaultDomains()
	d.Good = []string{verifytest.SharedDomain(0), verifytest.SharedDomain(1), verifytest.SharedDomain(2), verifytest.SharedDomain(3)}
	d.First = []string{"ok"}
	return &d
}

// Rules every test connection has: the typo domain gmial.com is whitelisted, local parts containing
// "roberts" are blacklisted.
const (
	whiteDomain = "gmial.com"
	blackLocal  = "roberts"
)

// expectation is what a seeded contact must end as (normal preset, the rules above).
type expectation struct {
	skipped   bool // unsubscribed on the platform: no result
	reason    string
	status    string
	passed    bool
	writeBack bool
}

func expect(sc esptest.SeedContact, preset string) expectation {
	var found, status string
	switch sc.Kind {
	case esptest.KindUnsubscribed:
		return expectation{skipped: true}
	case esptest.KindGood:
		found, status = "valid", "passed"
	case esptest.KindTypo, esptest.KindDisposable: // the seed's typo domains are on the disposable list
		found, status = "disposable", "risky"
	case esptest.KindRole:
		if preset == "aggressive" {
			found, status = "role", "risky"
		} else { // role gate off: dept<i>.<good> does not resolve
			found, status = "illegitimate", "undeliverable"
		}
	case esptest.KindBadDomain:
		found, status = "illegitimate", "undeliverable"
	case esptest.KindBounced:
		found, status = "bounced", "risky"
	case esptest.KindComplained:
		found, status = "complainer", "risky"
	}
	local, domain, _ := strings.Cut(sc.Email, "@")
	switch {
	case domain == whiteDomain:
		return expectation{reason: found, status: status, passed: true}
	case strings.Contains(local, blackLocal):
		return expectation{reason: "blacklisted", status: "risky", writeBack: true}
	}
	return expectation{reason: found, status: status, passed: found == "valid", writeBack: found != "valid"}
}

// env is one test's world: store, DNS+SMTP world, platform fake, runner, one account and connection.
type env struct {
	t       *testing.T
	ctx     context.Context
	st      *store.Store
	world   *verifytest.World
	fake    *esptest.Fake
	runner  *jobs.Runner
	deps    jobs.Deps
	account store.Account
	cnx     store.Connection
	metrics *prometheus.Registry
}

type envOpts struct {
	db        string // database URL; "" = SQLite
	slug      string // "" = klaviyo
	n         int
	seed      int64
	onFailure string
	preset    string
	credits   int64
	window    time.Duration // re-verify window; 0 = 30 days
	pageSize  int
	enqueuer  jobs.Enqueuer
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	ctx := context.Background()
	if o.db == "" {
		o.db = testenv.SQLite(t)
	}
	if o.slug == "" {
		o.slug = "klaviyo"
	}
	if o.onFailure == "" {
		o.onFailure = jobs.OnFailureUpdateFields
	}
	if o.preset == "" {
		o.preset = "normal"
	}
	if o.window == 0 {
		o.window = 30 * 24 * time.Hour
	}
	st := testenv.Store(t, o.db)
	world := newWorld(t)
	vo, err := world.EngineOptions()
	if err != nil {
		t.Fatal(err)
	}
	vo.PerHostConcurrency = 8
	vo.RcptPerSession = 1000
	vo.RcptPerTransaction = 200
	eng, err := verify.New(vo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	fake, err := esptest.Start(o.slug, esptest.Options{Seed: esptest.Seed{N: o.n, Seed: o.seed, Domains: worldDomains()}, Limits: &esp.Limits{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fake.Close() })
	reg := prometheus.NewRegistry()
	m, err := jobs.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	eo := esp.Options{BaseURLs: map[string]string{o.slug: fake.URL()}}
	if o.pageSize > 0 {
		eo.PageSize = map[string]int{o.slug: o.pageSize}
	}
	d := jobs.Deps{
		Store: st, Registry: esp.Platforms(), ESP: eo, Engine: eng, Metrics: m, Enqueuer: o.enqueuer,
		Client: esp.NewClient(esp.ClientOptions{Limits: map[string]esp.Limits{o.slug: {}}, Observer: m.Observer(),
			Retry: esp.Retry{MaxAttempts: 2, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}}),
		Log:      zerolog.New(io.Discard),
		Settings: jobs.Settings{IncrementalLookback: time.Minute, ReverifyWindow: o.window, LeaseTTL: 3 * time.Second},
	}
	runner, err := jobs.NewRunner(d)
	if err != nil {
		t.Fatal(err)
	}
	acct, err := st.CreateAccount(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	if o.credits > 0 {
		if _, err := st.AddCredits(ctx, acct.ID, o.credits, "", "grant"); err != nil {
			t.Fatal(err)
		}
	}
	settings, _ := json.Marshal(map[string]any{"aggressiveness": o.preset, "verify_first": true, "on_failure": o.onFailure})
	cnx, err := st.CreateConnection(ctx, store.NewConnection{AccountID: acct.ID, Type: o.slug, Name: "test", AutoFlossEnabled: true,
		Settings: settings, Credentials: fake.Credentials(true)})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []store.NewRule{{List: store.Whitelist, Keyword: whiteDomain, MatchOn: store.MatchDomain},
		{List: store.Blacklist, Keyword: blackLocal, MatchOn: store.MatchLocalPart}} {
		if _, _, err := st.AddRule(ctx, acct.ID, cnx.ID, r); err != nil {
			t.Fatal(err)
		}
	}
	return &env{t: t, ctx: ctx, st: st, world: world, fake: fake, runner: runner, deps: runner.Deps(), account: acct, cnx: cnx, metrics: reg}
}

// results returns every result of the connection keyed by (list, contact id), failing on duplicates
// within one run.
func (e *env) results(runID string) map[esptest.Key]store.Result {
	e.t.Helper()
	out := map[esptest.Key]store.Result{}
	p := store.Page{Limit: 100}
	for {
		rs, next, err := e.st.ListResults(e.ctx, e.account.ID, e.cnx.ID, store.ResultFilter{RunID: runID}, p)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, r := range rs {
			k := esptest.Key{ID: r.ContactID, ListID: r.ListID}
			if _, dup := out[k]; dup {
				e.t.Fatalf("two results for contact %s list %q in run %s", r.ContactID, r.ListID, runID)
			}
			out[k] = r
		}
		if next == "" {
			return out
		}
		p.Cursor = next
	}
}

func (e *env) balance() int64 {
	e.t.Helper()
	b, err := e.st.Balance(e.ctx, e.account.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// debited sums the floss debits of the account's ledger.
func (e *env) debited() int64 {
	e.t.Helper()
	var sum int64
	p := store.Page{Limit: 100}
	for {
		es, next, err := e.st.Ledger(e.ctx, e.account.ID, p)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, le := range es {
			if le.Delta < 0 {
				sum += -le.Delta
			}
		}
		if next == "" {
			return sum
		}
		p.Cursor = next
	}
}

// startWorker runs a real asynq server on the Redis at addr with the pipeline's mux until cleanup.
func startWorker(t *testing.T, addr string, r *jobs.Runner) {
	t.Helper()
	cfg := jobs.ServerConfig(4, 6, 3, 1, 5*time.Second)
	cfg.LogLevel = asynq.FatalLevel
	cfg.DelayedTaskCheckInterval = 100 * time.Millisecond
	cfg.TaskCheckInterval = 50 * time.Millisecond
	cfg.RetryDelayFunc = func(n int, err error, task *asynq.Task) time.Duration { return 100 * time.Millisecond }
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: addr}, cfg)
	if err := srv.Start(jobs.NewServeMux(jobs.NewHandlers(r, nil))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
}

// waitRun polls the store until the run reaches one of states.
func (e *env) waitRun(runID string, timeout time.Duration, states ...string) store.Run {
	e.t.Helper()
	return testenv.WaitRun(e.t, e.st, runID, timeout, states...)
}

// newWorld starts the loopback DNS+SMTP world, retrying a few times: NewWorld picks free ports and listens
// on them again, which another process on a busy machine can win in between ("address already in use").
func newWorld(t *testing.T) *verifytest.World {
	t.Helper()
	var err error
	for range 5 {
		var w *verifytest.World
		if w, err = verifytest.NewWorld(verifytest.WorldOptions{}); err == nil {
			t.Cleanup(w.Close)
			return w
		}
	}
	t.Fatalf("verify world: %v", err)
	return nil
}
