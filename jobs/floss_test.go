package jobs_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/esp/esptest"
	"github.com/autofloss/autofloss/internal/testenv"
	"github.com/autofloss/autofloss/jobs"
	"github.com/autofloss/autofloss/store"
)

// checkContacts asserts every seeded contact's result in run (or absence, for skipped ones) and the
// write-backs on the fake, per on_failure. It returns how many contacts got a result.
func (e *env) checkContacts(run store.Run, preset, onFailure string, today string) int {
	t := e.t
	t.Helper()
	res := e.results(run.ID)
	n, bad := 0, 0
	for i := 0; i < e.fake.N() && bad < 10; i++ {
		sc := e.fake.Seeded(i)
		exp := expect(sc, preset)
		rec := e.fake.Record(i)
		r, ok := res[esptest.Key{ID: rec.ID}]
		if exp.skipped {
			if ok {
				t.Errorf("contact %d (%s): unsubscribed on the platform but has a result", i, sc.Kind)
				bad++
			}
			if len(rec.Fields) > 0 || rec.Deleted {
				t.Errorf("contact %d (%s): skipped but written to", i, sc.Kind)
				bad++
			}
			continue
		}
		if !ok {
			t.Errorf("contact %d (%s): no result", i, sc.Kind)
			bad++
			continue
		}
		n++
		wantAction := "none"
		if exp.writeBack && onFailure != jobs.OnFailureNone {
			wantAction = onFailure
		}
		if r.Reason != exp.reason || r.Status != exp.status || r.Passed != exp.passed || r.Action != wantAction {
			t.Errorf("contact %d (%s): got %s/%s passed=%v action=%s, want %s/%s passed=%v action=%s", i, sc.Kind,
				r.Status, r.Reason, r.Passed, r.Action, exp.status, exp.reason, exp.passed, wantAction)
			bad++
		}
		written := wantAction != "none"
		switch onFailure {
		case jobs.OnFailureUpdateFields:
			if !written {
				if len(rec.Fields) > 0 {
					t.Errorf("contact %d (%s, passed=%v): fields written: %v", i, sc.Kind, exp.passed, rec.Fields)
					bad++
				}
				continue
			}
			want := map[string]string{esp.FieldPassed: "false", esp.FieldReason: exp.reason, esp.FieldStatus: r.Status,
				esp.FieldMode: preset, esp.FieldFlossedOn: today, esp.FieldFixed: "false"}
			for k, v := range want {
				if got := rec.Fields[e.fake.FieldName(k)]; got != v {
					t.Errorf("contact %d (%s): field %s = %q, want %q", i, sc.Kind, k, got, v)
					bad++
				}
			}
		case jobs.OnFailureUnsubscribe:
			if got := rec.Status == esp.StatusUnsubscribed; got != written {
				t.Errorf("contact %d (%s): unsubscribed=%v, want %v", i, sc.Kind, got, written)
				bad++
			}
		case jobs.OnFailureDelete:
			if rec.Deleted != written {
				t.Errorf("contact %d (%s): deleted=%v, want %v", i, sc.Kind, rec.Deleted, written)
				bad++
			}
		case jobs.OnFailureNone:
			if len(rec.Fields) > 0 || rec.Deleted || (rec.Status == esp.StatusUnsubscribed) {
				t.Errorf("contact %d (%s): written to with on_failure none", i, sc.Kind)
				bad++
			}
		}
	}
	return n
}

// TestFlossRun20k is the acceptance run: 20,000 contacts of the Klaviyo fake through a real asynq worker
// (real Redis), the real store on SQLite and the loopback DNS+SMTP world.
func TestFlossRun20k(t *testing.T) {
	const n, credits = 20000, 1_000_000
	e := newEnv(t, envOpts{n: n, seed: 7, credits: credits})
	addr := testenv.Redis(t)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: addr})
	defer client.Close()
	startWorker(t, addr, e.runner)
	fresh, err := jobs.EnqueueRun(e.ctx, e.st, client, e.cnx, time.Minute, jobs.QueueDefault, time.Now(), nil, "test")
	if err != nil || !fresh {
		t.Fatalf("enqueue: fresh=%v err=%v", fresh, err)
	}
	open, err := e.st.OpenRun(e.ctx, e.cnx.ID)
	if err != nil {
		t.Fatal(err)
	}
	if open.Kind != store.RunFull {
		t.Fatalf("first run kind %s, want full", open.Kind)
	}
	run := e.waitRun(open.ID, 80*time.Second, store.RunDone, store.RunFailed)
	if run.State != store.RunDone {
		t.Fatalf("run %s: %+v", run.State, run.Error)
	}
	today := time.Now().UTC().Format("2006-01-02")
	got := e.checkContacts(run, "normal", jobs.OnFailureUpdateFields, today)
	if run.Counts.Seen != n {
		t.Errorf("seen %d, want %d", run.Counts.Seen, n)
	}
	if int(run.Counts.Verified) != got || run.Counts.Seen-run.Counts.Skipped != int64(got) || run.Counts.Reused != 0 {
		t.Errorf("counts %+v, %d results", run.Counts, got)
	}
	if run.CreditsUsed != run.Counts.Verified || e.debited() != run.Counts.Verified || e.balance() != credits-run.Counts.Verified {
		t.Errorf("credits used %d, debited %d, balance %d, verified %d", run.CreditsUsed, e.debited(), e.balance(), run.Counts.Verified)
	}
	if p := run.Progress(); p == nil || *p != 1 {
		t.Errorf("progress %v", p)
	}
	cnx, _ := e.st.ConnectionByID(e.ctx, e.cnx.ID)
	if cnx.LastSyncedAt == nil || run.StartedAt == nil || !cnx.LastSyncedAt.Equal(*run.StartedAt) {
		t.Errorf("last_synced_at %v, run started %v", cnx.LastSyncedAt, run.StartedAt)
	}
	if run.Cursor != "" {
		t.Errorf("cursor not cleared: %q", run.Cursor)
	}
	if v := e.fake.Violations(); len(v) > 0 {
		t.Errorf("platform fake saw invalid requests: %v", v[:min(3, len(v))])
	}
	// Metrics: tasks by type and outcome, credits, platform requests by status; no address in any label.
	mfs, err := e.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "@") {
					t.Errorf("metric %s label %s carries an address", mf.GetName(), l.GetName())
				}
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			vals[key] += m.GetCounter().GetValue()
		}
	}
	if got := vals["autofloss_credits_spent_total"]; got != float64(run.Counts.Verified) {
		t.Errorf("credits metric %v, verified %d", got, run.Counts.Verified)
	}
	if got := vals["autofloss_tasks_total,outcome=ok,type=floss:sync"]; got != 1 {
		t.Errorf("tasks metric %v (%v)", got, vals)
	}
	if vals["autofloss_platform_requests_total,platform=klaviyo,status=200"] < float64(n/100) {
		t.Errorf("platform requests metric: %v", vals)
	}
	if got := vals["autofloss_contacts_total,reason=disposable,verdict=failed"]; got == 0 {
		t.Errorf("contacts metric: %v", vals)
	}
	t.Logf("run: %+v by_reason %v", run.Counts, run.ByReason)
}

// TestWriteBackActions runs each on_failure on a small fake (PostgreSQL for one of them).
func TestWriteBackActions(t *testing.T) {
	cases := []struct {
		name, onFailure, preset, db string
	}{
		{"unsubscribe", jobs.OnFailureUnsubscribe, "normal", ""},
		{"delete_aggressive", jobs.OnFailureDelete, "aggressive", ""},
		{"none", jobs.OnFailureNone, "normal", ""},
		{"update_fields_postgres", jobs.OnFailureUpdateFields, "aggressive", "postgres"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := ""
			if tc.db == "postgres" {
				db = testenv.Postgres(t)
			}
			e := newEnv(t, envOpts{db: db, n: 300, seed: 3, credits: 10000, onFailure: tc.onFailure, preset: tc.preset, pageSize: 50})
			run, outcome, err := e.runner.Sync(e.ctx, jobs.SyncPayload{ConnectionID: e.cnx.ID}, jobs.SyncOptions{TaskID: "t"})
			if err != nil || outcome != jobs.OutcomeDone {
				t.Fatalf("sync: %s %v", outcome, err)
			}
			got := e.checkContacts(run, tc.preset, tc.onFailure, time.Now().UTC().Format("2006-01-02"))
			if int64(got) != run.Counts.Verified || e.debited() != run.Counts.Verified {
				t.Errorf("results %d, counts %+v, debited %d", got, run.Counts, e.debited())
			}
			if tc.onFailure == jobs.OnFailureDelete {
				snaps, _, err := e.st.ListSnapshots(e.ctx, e.cnx.ID, store.Page{Limit: 100})
				if err != nil || len(snaps) == 0 {
					t.Fatalf("no snapshots of deleted contacts (%v)", err)
				}
				if e.fake.Writes().Deletes != run.Counts.WrittenBack {
					t.Errorf("deletes %d, written back %d", e.fake.Writes().Deletes, run.Counts.WrittenBack)
				}
			}
			// A replay of the whole run (a crash after the platform writes, before the commits) writes the
			// same again and charges nothing more: run it again as a fresh full run with reuse.
		})
	}
}

// TestIncremental: the second run is incremental, reads only what changed since the first (plus the
// lookback), and with the re-verify window spends no credit on unchanged addresses.
func TestIncremental(t *testing.T) {
	for _, tc := range []struct {
		name   string
		window time.Duration
	}{{"reuse_window", 30 * 24 * time.Hour}, {"no_window", time.Microsecond}} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 700
			e := newEnv(t, envOpts{n: n, seed: 11, credits: 100000, window: tc.window})
			first, outcome, err := e.runner.Sync(e.ctx, jobs.SyncPayload{ConnectionID: e.cnx.ID}, jobs.SyncOptions{})
			if err != nil || outcome != jobs.OutcomeDone || first.Kind != store.RunFull {
				t.Fatalf("first: %s %s %v", first.Kind, outcome, err)
			}
			touched := e.fake.Touch(25)
			changed := map[string]bool{}
			for _, i := range touched {
				changed[e.fake.Record(i).ID] = true
			}
			firstRes := e.results(first.ID)
			before := e.debited()
			writesBefore := e.fake.Writes()
			second, outcome, err := e.runner.Sync(e.ctx, jobs.SyncPayload{ConnectionID: e.cnx.ID}, jobs.SyncOptions{})
			if err != nil || outcome != jobs.OutcomeDone {
				t.Fatalf("second: %s %v", outcome, err)
			}
			if second.Kind != store.RunIncremental || second.Since == nil {
				t.Fatalf("second run kind %s since %v", second.Kind, second.Since)
			}
			res := e.results(second.ID)
			for _, i := range touched {
				sc := e.fake.Seeded(i)
				if _, ok := res[esptest.Key{ID: e.fake.Record(i).ID}]; !ok && !expect(sc, "normal").skipped {
					t.Errorf("touched contact %d not in the incremental run", i)
				}
			}
			// Everything read is either touched or was written back by the first run (our own writes
			// change the platform's updated time); nothing else.
			for k := range res {
				if !changed[k.ID] && firstRes[k].Action == "none" {
					t.Errorf("unchanged contact %s read again", k.ID)
				}
			}
			if len(res) >= n/2 {
				t.Errorf("incremental run has %d results of %d contacts", len(res), n)
			}
			spent := e.debited() - before
			if spent != second.CreditsUsed || spent != second.Counts.Verified {
				t.Errorf("spent %d, run credits %d, verified %d", spent, second.CreditsUsed, second.Counts.Verified)
			}
			if tc.window > time.Hour {
				if spent != 0 || second.Counts.Reused != int64(len(res)) {
					t.Errorf("window: spent %d, reused %d of %d", spent, second.Counts.Reused, len(res))
				}
				if w := e.fake.Writes(); w != writesBefore {
					t.Errorf("reused results written back again: %+v, before %+v", w, writesBefore)
				}
			} else if spent != int64(len(res)) || spent == 0 {
				t.Errorf("no window: spent %d for %d results", spent, len(res))
			}
		})
	}
}

// TestCreditsRunOut: the balance ends mid-page; the run pauses with its checkpoint; credits arrive, the
// scheduler re-enqueues it, a real worker resumes it; every contact is charged exactly once.
func TestCreditsRunOut(t *testing.T) {
	const n = 600
	e := newEnv(t, envOpts{n: n, seed: 5, credits: 233, pageSize: 100})
	run, outcome, err := e.runner.Sync(e.ctx, jobs.SyncPayload{ConnectionID: e.cnx.ID}, jobs.SyncOptions{TaskID: "first"})
	if err != nil || outcome != jobs.OutcomePaused {
		t.Fatalf("first attempt: %s %v", outcome, err)
	}
	run, _ = e.st.RunByID(e.ctx, run.ID)
	if run.State != store.RunPausedNoCredits || run.Cursor == "" || run.CreditsUsed != 233 || e.balance() != 0 {
		t.Fatalf("paused run: state %s cursor %q credits %d balance %d", run.State, run.Cursor, run.CreditsUsed, e.balance())
	}
	// Without credits a retry changes nothing.
	if _, outcome, err := e.runner.Sync(e.ctx, jobs.SyncPayload{ConnectionID: e.cnx.ID, RunID: run.ID}, jobs.SyncOptions{}); err != nil || outcome != jobs.OutcomePaused {
		t.Fatalf("retry without credits: %s %v", outcome, err)
	}
	addr := testenv.Redis(t)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: addr})
	defer client.Close()
	sched := jobs.NewScheduler(e.st, client, jobs.SchedulerConfig{FlossInterval: 24 * time.Hour, VerifyFirstInterval: 5 * time.Minute}, e.deps.Log, nil, nil)
	if st, err := sched.TickStats(e.ctx); err != nil || st.Enqueued != 0 {
		t.Fatalf("tick without credits: %+v %v", st, err)
	}
	if _, err := e.st.AddCredits(e.ctx, e.account.ID, 5000, "", "grant"); err != nil {
		t.Fatal(err)
	}
	st, err := sched.TickStats(e.ctx)
	if err != nil || st.Enqueued != 1 {
		t.Fatalf("tick with credits: %+v %v", st, err)
	}
	startWorker(t, addr, e.runner)
	run = e.waitRun(run.ID, 30*time.Second, store.RunDone, store.RunFailed)
	if run.State != store.RunDone {
		t.Fatalf("resumed run %s %+v", run.State, run.Error)
	}
	got := e.checkContacts(run, "normal", jobs.OnFailureUpdateFields, time.Now().UTC().Format("2006-01-02"))
	if int64(got) != run.Counts.Verified+run.Counts.Reused || run.Counts.Reused != 0 {
		t.Errorf("results %d, counts %+v", got, run.Counts)
	}
	if e.debited() != run.Counts.Verified || run.CreditsUsed != run.Counts.Verified || e.balance() != 5233-run.Counts.Verified {
		t.Errorf("debited %d, credits used %d, verified %d, balance %d", e.debited(), run.CreditsUsed, run.Counts.Verified, e.balance())
	}
	if run.Counts.Seen != n {
		t.Errorf("seen %d, want %d", run.Counts.Seen, n)
	}
}

// TestCredentialsRevokedMidRun: the platform starts answering 401 after a few pages; the connection is
// disconnected with credentials_revoked, the run failed, and the task is not retried.
func TestCredentialsRevokedMidRun(t *testing.T) {
	e := newEnv(t, envOpts{n: 600, seed: 9, credits: 10000, pageSize: 50})
	target, _ := url.Parse(e.fake.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	var requests atomic.Int64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) > 40 {
			w.Header().Set("Content-Type", "application/vnd.api+json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"errors":[{"id":"x","status":401,"code":"not_authenticated","title":"Authentication credentials were not provided.","detail":"Missing or invalid private key.","source":{"pointer":"/data/"}}]}`))
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	d := e.deps
	d.ESP.BaseURLs = map[string]string{"klaviyo": front.URL}
	runner, err := jobs.NewRunner(d)
	if err != nil {
		t.Fatal(err)
	}
	addr := testenv.Redis(t)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: addr})
	defer client.Close()
	if _, err := jobs.EnqueueRun(e.ctx, e.st, client, e.cnx, time.Minute, jobs.QueueDefault, time.Now(), nil, "test"); err != nil {
		t.Fatal(err)
	}
	open, _ := e.st.OpenRun(e.ctx, e.cnx.ID)
	startWorker(t, addr, runner)
	run := e.waitRun(open.ID, 30*time.Second, store.RunDone, store.RunFailed)
	if run.State != store.RunFailed || run.Error == nil || run.Error.Code != "credentials_revoked" {
		t.Fatalf("run %s error %+v", run.State, run.Error)
	}
	if run.Counts.Seen == 0 {
		t.Errorf("no page committed before the revocation")
	}
	cnx, _ := e.st.ConnectionByID(e.ctx, e.cnx.ID)
	if cnx.Status != store.StatusDisconnected || cnx.DisconnectedReason != store.ReasonCredentialsRevoked {
		t.Errorf("connection %s/%s", cnx.Status, cnx.DisconnectedReason)
	}
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: addr})
	defer insp.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		archived, _ := insp.ListArchivedTasks(jobs.QueueDefault)
		if len(archived) == 1 {
			if archived[0].Retried != 0 {
				t.Errorf("task retried %d times", archived[0].Retried)
			}
			break
		}
		if time.Now().After(deadline) {
			q, _ := insp.GetQueueInfo(jobs.QueueDefault)
			t.Fatalf("task not archived (queue %+v)", q)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The credit debit covers exactly the committed pages.
	if e.debited() != run.Counts.Verified {
		t.Errorf("debited %d, verified %d", e.debited(), run.Counts.Verified)
	}
}
