package verify_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autofloss/autofloss/verify"
	"github.com/autofloss/autofloss/verify/verifytest"
)

func world(t testing.TB) *verifytest.World {
	t.Helper()
	w, err := verifytest.NewWorld(verifytest.WorldOptions{SlowDelay: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

func engine(t testing.TB, w *verifytest.World, tweak func(*verify.Options)) *verify.Engine {
	t.Helper()
	o, err := w.EngineOptions()
	if err != nil {
		t.Fatal(err)
	}
	if tweak != nil {
		tweak(&o)
	}
	e, err := verify.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestTenThousandContactsOneDomainOneLookup(t *testing.T) {
	w := world(t)
	e := engine(t, w, nil)
	want := verify.ChecksOf(verify.ReasonIllegitimate) // DNS only
	ins := make([]verify.Input, 10000)
	for i := range ins {
		ins[i] = verify.Input{Email: fmt.Sprintf("ok.user%d@%s", i, verifytest.BulkDomain(7))}
	}
	before := w.DNSQueries()
	// half through one batch, half through concurrent single calls
	var wg sync.WaitGroup
	var bad atomic.Int64
	for g := 0; g < 50; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < 5000; i += 50 {
				if r := e.Verify(context.Background(), ins[i], want); r.Reason != verify.ReasonValid {
					bad.Add(1)
				}
			}
		}()
	}
	res := e.VerifyBatch(context.Background(), ins[5000:], want)
	wg.Wait()
	for _, r := range res {
		if r.Reason != verify.ReasonValid || len(r.Evidence.MX) != 1 || r.Evidence.MX[0] != "mx.b007.test" {
			t.Fatalf("unexpected result %+v", r)
		}
	}
	if bad.Load() != 0 {
		t.Fatalf("%d bad results", bad.Load())
	}
	if got := w.DNSQueries() - before; got != 1 {
		t.Fatalf("10,000 contacts at one domain made %d DNS queries, want 1", got)
	}
	if s := e.Stats(); s.DNSQueries != 1 || s.SMTPConnections != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCacheTTLs(t *testing.T) {
	w := world(t)
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	e := engine(t, w, func(o *verify.Options) {
		o.Now = func() time.Time { return time.Unix(0, now.Load()) }
		o.PositiveTTL = time.Hour
		o.NegativeTTL = time.Minute
	})
	want := verify.ChecksOf(verify.ReasonIllegitimate)
	pos := verify.Input{Email: "ok.a@" + verifytest.DomainGood}
	neg := verify.Input{Email: "ok.a@" + verifytest.DomainNXDomain}
	step := func(d time.Duration, wantQueries int64) {
		t.Helper()
		now.Add(int64(d))
		b := w.DNSQueries()
		e.VerifyBatch(context.Background(), []verify.Input{pos, neg}, want)
		if got := w.DNSQueries() - b; got != wantQueries {
			t.Fatalf("after +%v: %d queries, want %d", d, got, wantQueries)
		}
	}
	step(0, 2)              // both looked up
	step(30*time.Second, 0) // both cached
	step(31*time.Second, 1) // negative expired (61s)
	step(time.Hour, 2)      // both expired
	r := e.Verify(context.Background(), pos, want)
	if !r.Evidence.DNSCached {
		t.Fatal("want a cached answer")
	}
}

func TestGatesOffSkipWork(t *testing.T) {
	w := world(t)
	e := engine(t, w, nil)
	ctx := context.Background()
	normal := verify.ChecksOf(verify.ReasonInvalid, verify.ReasonIllegitimate, verify.ReasonSpam, verify.ReasonBanned,
		verify.ReasonComplainer, verify.ReasonBounced, verify.ReasonDisposable) // no SMTP-based gate, no role
	before := w.SMTPConnections("mailbox")
	cases := []struct {
		email string
		want  verify.Reason
	}{
		{"info@" + verifytest.DomainGood, verify.ReasonValid},            // role off: not looked up
		{"nobody.x@" + verifytest.DomainGood, verify.ReasonValid},        // no SMTP gate: no probe
		{"ok.x@" + verifytest.DomainNXDomain, verify.ReasonIllegitimate}, // DNS still runs
		{"x@mailinator.com", verify.ReasonDisposable},                    // on
	}
	for _, c := range cases {
		r := e.Verify(ctx, verify.Input{Email: c.email}, normal)
		if r.Reason != c.want {
			t.Errorf("%s: got %s want %s", c.email, r.Reason, c.want)
		}
		if r.Role {
			t.Errorf("%s: role looked up with the role gate off", c.email)
		}
	}
	if got := w.SMTPConnections("mailbox") - before; got != 0 {
		t.Fatalf("SMTP gates off but %d SMTP connections were made", got)
	}
	// disposable off: not reported; DNS and SMTP not needed either when nothing wants them
	r := e.Verify(ctx, verify.Input{Email: "x@mailinator.com"}, verify.ChecksOf(verify.ReasonRole))
	if r.Reason != verify.ReasonValid || r.Disposable {
		t.Fatalf("disposable gate off: %+v", r)
	}
	// early stop: a disposable address with every gate on never touches DNS
	b := w.DNSQueries()
	if r := e.Verify(ctx, verify.Input{Email: "y@yopmail.com"}, verify.AllChecks); r.Reason != verify.ReasonDisposable {
		t.Fatalf("got %s", r.Reason)
	}
	if w.DNSQueries() != b {
		t.Fatal("early stop: a failed contact still made DNS queries")
	}
	// NoEarlyStop: full picture, table precedence decides
	r = e.Verify(ctx, verify.Input{Email: "info@" + verifytest.DomainNXDomain}, verify.AllChecks|verify.NoEarlyStop)
	if r.Reason != verify.ReasonIllegitimate || !r.Role {
		t.Fatalf("NoEarlyStop: %+v", r)
	}
	r = e.Verify(ctx, verify.Input{Email: "info@" + verifytest.DomainNXDomain}, verify.AllChecks)
	if r.Reason != verify.ReasonRole {
		t.Fatalf("early stop: %+v", r)
	}
}

func TestBatchSharesOneSessionWithRSET(t *testing.T) {
	w := world(t)
	e := engine(t, w, func(o *verify.Options) { o.RcptPerTransaction = 25 })
	var ins []verify.Input
	for i := 0; i < 120; i++ {
		p := "ok."
		if i%3 == 0 {
			p = "nobody."
		}
		ins = append(ins, verify.Input{Email: fmt.Sprintf("%su%d@%s", p, i, verifytest.DomainGood)})
	}
	c0, r0 := w.SMTPConnections("mailbox"), w.Resets("mailbox")
	res := e.VerifyBatch(context.Background(), ins, verify.AllChecks)
	for i, r := range res {
		want := verify.ReasonValid
		if i%3 == 0 {
			want = verify.ReasonNonexistent
		}
		if r.Reason != want {
			t.Fatalf("%d: %s want %s", i, r.Reason, want)
		}
	}
	if got := w.SMTPConnections("mailbox") - c0; got != 1 {
		t.Fatalf("120 recipients of one domain used %d SMTP sessions, want 1", got)
	}
	if got := w.Resets("mailbox") - r0; got < 4 {
		t.Fatalf("want at least 4 RSETs (every 25 recipients), got %d", got)
	}
	r := res[0]
	if r.Evidence.MXHost != "mx.good.test" || r.Evidence.SMTPCode != 550 || r.Evidence.SMTPStep != "rcpt" {
		t.Fatalf("evidence %+v", r.Evidence)
	}
	if strings.Contains(r.Evidence.SMTPText, "nobody") {
		t.Fatalf("evidence leaks the address: %q", r.Evidence.SMTPText)
	}
	if s := e.Stats(); s.SMTPConnections != 1 || s.SMTPProbes != 120 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCatchAllProbedOncePerDomain(t *testing.T) {
	w := world(t)
	e := engine(t, w, nil)
	for round := 0; round < 3; round++ {
		res := e.VerifyBatch(context.Background(), []verify.Input{{Email: "a@catchall.test"}, {Email: "b@catchall.test"}}, verify.AllChecks)
		for _, r := range res {
			if r.Reason != verify.ReasonAcceptAll || r.Evidence.CatchAll == nil || !*r.Evidence.CatchAll {
				t.Fatalf("round %d: %+v", round, r)
			}
		}
	}
	if got := w.SMTPConnections("catchall"); got != 1 {
		t.Fatalf("catch-all domain probed in %d sessions, want 1 (cached)", got)
	}
	// accept_all gate off: no catch-all probe, an accepted address is valid
	e2 := engine(t, w, nil)
	r := e2.Verify(context.Background(), verify.Input{Email: "c@catchall.test"}, verify.AllChecks.Without(verify.ReasonAcceptAll))
	if r.Reason != verify.ReasonValid || r.Evidence.CatchAll != nil {
		t.Fatalf("accept_all off: %+v", r)
	}
}

func TestPerHostConcurrencyCap(t *testing.T) {
	w := world(t)
	e := engine(t, w, func(o *verify.Options) { o.PerHostConcurrency = 2; o.DomainConcurrency = 32; o.RcptPerSession = 5 })
	var ins []verify.Input
	for d := 0; d < 40; d++ {
		for u := 0; u < 3; u++ {
			ins = append(ins, verify.Input{Email: fmt.Sprintf("ok.u%d@%s", u, verifytest.SharedDomain(100+d))})
		}
	}
	res := e.VerifyBatch(context.Background(), ins, verify.AllChecks)
	for _, r := range res {
		if r.Reason != verify.ReasonValid {
			t.Fatalf("%+v", r)
		}
	}
	if m := w.MaxConcurrentSessions("mailbox"); m > 2 || m < 1 {
		t.Fatalf("max concurrent sessions at mx.good.test = %d, cap 2", m)
	}
	if s := e.Stats(); s.SMTPConnections > 2 || s.SMTPProbes != 120 {
		t.Fatalf("24 sessions' worth of work should reuse ≤ 2 pooled connections: %+v", s)
	}
}

func TestSessionsSharedAcrossDomainsAndBatches(t *testing.T) {
	w := world(t)
	e := engine(t, w, nil)
	batch := func(k int) {
		var ins []verify.Input
		for d := 0; d < 50; d++ {
			ins = append(ins, verify.Input{Email: fmt.Sprintf("ok.k%d@%s", k, verifytest.SharedDomain(d))})
		}
		for _, r := range e.VerifyBatch(context.Background(), ins, verify.AllChecks) {
			if r.Reason != verify.ReasonValid {
				t.Fatalf("%+v", r)
			}
		}
	}
	c0 := w.SMTPConnections("mailbox")
	batch(1)
	batch(2)
	if got := w.SMTPConnections("mailbox") - c0; got != 1 {
		t.Fatalf("two batches over 50 domains with one exchanger used %d sessions, want 1", got)
	}
	e.Close()
	// without keeping idle sessions, each batch opens its own
	e2 := engine(t, w, func(o *verify.Options) { o.IdleTimeout = -1 })
	e = e2
	c0 = w.SMTPConnections("mailbox")
	batch(3)
	batch(4)
	if got := w.SMTPConnections("mailbox") - c0; got != 2 {
		t.Fatalf("IdleTimeout<0: %d sessions, want 2", got)
	}
}

func TestTimeoutsAndCancellation(t *testing.T) {
	w := world(t)
	e := engine(t, w, func(o *verify.Options) { o.StepTimeout = 300 * time.Millisecond })
	ctx := context.Background()
	start := time.Now()
	if r := e.Verify(ctx, verifytest.SlowCase().Input, verify.AllChecks); r.Reason != verify.ReasonUnverified || r.Evidence.DNSError != "timeout" {
		t.Fatalf("slow DNS: %+v", r)
	}
	r := e.Verify(ctx, verify.Input{Email: "ok.a@hang.test"}, verify.AllChecks)
	if r.Reason != verify.ReasonFailedExchange {
		t.Fatalf("hang: %+v", r)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("timeouts not bounded: %v", d)
	}
	// a cancelled context ends a hanging session promptly
	e2 := engine(t, w, func(o *verify.Options) { o.StepTimeout = 30 * time.Second })
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	r = e2.Verify(cctx, verify.Input{Email: "ok.b@hang.test"}, verify.AllChecks)
	if time.Since(start) > 3*time.Second {
		t.Fatalf("cancellation ignored: %v", time.Since(start))
	}
	if r.Reason != verify.ReasonFailedExchange && r.Reason != verify.ReasonUnverified {
		t.Fatalf("cancelled: %+v", r)
	}
}

func TestSecondMXAfterFirstDown(t *testing.T) {
	w := world(t)
	e := engine(t, w, nil)
	r := e.Verify(context.Background(), verify.Input{Email: "ok.z@backup.test"}, verify.AllChecks)
	if r.Reason != verify.ReasonValid || r.Evidence.MXHost != "mx2.backup.test" ||
		strings.Join(r.Evidence.MX, ",") != "mx1.backup.test,mx2.backup.test" {
		t.Fatalf("%+v", r)
	}
}

func TestProviderRulesNeverProbe(t *testing.T) {
	w := world(t)
	e := engine(t, w, func(o *verify.Options) {
		o.ProviderRules = verify.NewProviderRules(
			verify.ProviderRule{Kind: "domain", Name: "good.test", Verdict: verify.ReasonAcceptAll})
	})
	b, c := w.DNSQueries(), w.SMTPConnections("mailbox")
	r := e.Verify(context.Background(), verify.Input{Email: "nobody.q@good.test"}, verify.AllChecks)
	if r.Reason != verify.ReasonAcceptAll || r.Evidence.Provider != "good.test" {
		t.Fatalf("%+v", r)
	}
	if w.DNSQueries() != b || w.SMTPConnections("mailbox") != c {
		t.Fatal("a provider-rule domain was looked up or probed")
	}
}

func TestPooledSessionDroppedByServer(t *testing.T) {
	w, err := verifytest.NewWorld(verifytest.WorldOptions{ServerIdleTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	e := engine(t, w, nil) // keeps idle sessions 10s, longer than the server does
	defer e.Close()
	for k := 0; k < 2; k++ {
		if r := e.Verify(context.Background(), verify.Input{Email: fmt.Sprintf("ok.%d@good.test", k)}, verify.AllChecks); r.Reason != verify.ReasonValid {
			t.Fatalf("round %d: %+v", k, r)
		}
		time.Sleep(500 * time.Millisecond) // the server drops the idle session
	}
	if got := w.SMTPConnections("mailbox"); got != 2 {
		t.Fatalf("want a fresh session after the server dropped the idle one: %d sessions", got)
	}
}

func TestSuggestionOnResults(t *testing.T) {
	w := world(t)
	e := engine(t, w, nil)
	for _, c := range []struct {
		in, sugg string
		reason   verify.Reason
	}{
		{"jane@gmailcom", "jane@gmail.com", verify.ReasonInvalid},
		{"jane@gmial.cmo", "jane@gmail.com", verify.ReasonIllegitimate},
		{"jane@gmail.com", "", verify.ReasonValid},
		{"jane@acme.con", "jane@acme.com", verify.ReasonIllegitimate},
	} {
		r := e.Verify(context.Background(), verify.Input{Email: c.in}, verify.AllChecks)
		if r.Suggestion != c.sugg || r.Reason != c.reason {
			t.Errorf("%s: suggestion %q reason %s; want %q %s", c.in, r.Suggestion, r.Reason, c.sugg, c.reason)
		}
	}
}

func TestPlatformStatus(t *testing.T) {
	w := world(t)
	e := engine(t, w, nil)
	for _, c := range []struct {
		st   string
		want verify.Reason
	}{{verify.PlatformBounced, verify.ReasonBounced}, {verify.PlatformComplained, verify.ReasonComplainer}, {verify.PlatformSubscribed, verify.ReasonValid}} {
		r := e.Verify(context.Background(), verify.Input{Email: "ok.p@good.test", PlatformStatus: c.st}, verify.AllChecks)
		if r.Reason != c.want {
			t.Errorf("%s: %s want %s", c.st, r.Reason, c.want)
		}
	}
}
