package jobs_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/autofloss/autofloss/internal/testenv"
	"github.com/autofloss/autofloss/jobs"
	"github.com/autofloss/autofloss/store"
)

// TestStopAfterPageAndResume: a graceful stop reads no further page, commits the pages in hand (the
// committed one that saw the stop plus at most the three behind it in the pipeline) and returns
// ErrStopping with the checkpoint; the next call resumes there; every contact has one result and is
// charged once.
func TestStopAfterPageAndResume(t *testing.T) {
	e := newEnv(t, envOpts{n: 1000, seed: 21, credits: 10000, pageSize: 100})
	stop := make(chan struct{})
	var pages atomic.Int64
	run, outcome, err := e.runner.Sync(e.ctx, jobs.SyncPayload{ConnectionID: e.cnx.ID}, jobs.SyncOptions{TaskID: "a", Stop: stop,
		Progress: func(r store.Run) {
			if r.Pages == 3 && pages.Add(1) == 1 {
				close(stop)
			}
		}})
	if !errors.Is(err, jobs.ErrStopping) || outcome != jobs.OutcomeStopped || jobs.IsFailure(err) {
		t.Fatalf("stop: %s %v", outcome, err)
	}
	if run.State != store.RunRunning || run.Pages < 3 || run.Pages > 6 || run.Cursor == "" {
		t.Fatalf("stopped run: state %s pages %d cursor %q", run.State, run.Pages, run.Cursor)
	}
	run, outcome, err = e.runner.Sync(e.ctx, jobs.SyncPayload{ConnectionID: e.cnx.ID, RunID: run.ID}, jobs.SyncOptions{TaskID: "b"})
	if err != nil || outcome != jobs.OutcomeDone {
		t.Fatalf("resume: %s %v", outcome, err)
	}
	got := e.checkContacts(run, "normal", jobs.OnFailureUpdateFields, time.Now().UTC().Format("2006-01-02"))
	if int64(got) != run.Counts.Verified || e.debited() != run.Counts.Verified || run.Counts.Seen != 1000 {
		t.Errorf("results %d, counts %+v, debited %d", got, run.Counts, e.debited())
	}
}

// TestLeaseOneRunAtATime: two tasks for one connection at once: one runs, the other is told to retry
// (ErrLeaseBusy, not a failure); retried afterwards it finds the run done and does nothing.
func TestLeaseOneRunAtATime(t *testing.T) {
	e := newEnv(t, envOpts{n: 400, seed: 23, credits: 10000, pageSize: 50})
	nr := jobs.NewRunFor(e.cnx, time.Minute)
	run, _, err := e.st.OpenOrCreateRun(e.ctx, nr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	type res struct {
		outcome jobs.Outcome
		err     error
	}
	out := make([]res, 2)
	start := make(chan struct{})
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, o, err := e.runner.Sync(e.ctx, jobs.SyncPayload{ConnectionID: e.cnx.ID, RunID: run.ID}, jobs.SyncOptions{TaskID: []string{"x", "y"}[i]})
			out[i] = res{o, err}
		}()
	}
	close(start)
	wg.Wait()
	done, busy := 0, 0
	for _, r := range out {
		switch {
		case r.err == nil && r.outcome == jobs.OutcomeDone:
			done++
		case errors.Is(r.err, jobs.ErrLeaseBusy) && !jobs.IsFailure(r.err):
			busy++
		default:
			t.Errorf("unexpected %s %v", r.outcome, r.err)
		}
	}
	if done != 1 || busy != 1 {
		t.Fatalf("done %d busy %d", done, busy)
	}
	// The retried task: the run is done, nothing happens, no new run.
	_, o, err := e.runner.Sync(e.ctx, jobs.SyncPayload{ConnectionID: e.cnx.ID, RunID: run.ID}, jobs.SyncOptions{TaskID: "y"})
	if err != nil || o != jobs.OutcomeNothing {
		t.Fatalf("retry after done: %s %v", o, err)
	}
	if _, err := e.st.OpenRun(e.ctx, e.cnx.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a second run was opened: %v", err)
	}
	final, _ := e.st.RunByID(e.ctx, run.ID)
	if e.debited() != final.Counts.Verified {
		t.Errorf("debited %d, verified %d", e.debited(), final.Counts.Verified)
	}
}

// TestPlatformOutage: 5xx answers make asynq retry the task from its checkpoint without failing the run;
// a platform that stays down fails the run only when the retries are exhausted, and the connection stays
// active.
func TestPlatformOutage(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failFor  int64 // requests answered 503 after the first few
		maxRetry int
		want     string
	}{{"recovers", 6, 5, store.RunDone}, {"stays_down", 1 << 40, 1, store.RunFailed}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{n: 400, seed: 31, credits: 10000, pageSize: 50})
			target, _ := url.Parse(e.fake.URL())
			proxy := httputil.NewSingleHostReverseProxy(target)
			var n atomic.Int64
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if k := n.Add(1); k > 10 && k <= 10+tc.failFor {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusServiceUnavailable)
					_, _ = w.Write([]byte(`{"errors":[{"status":503,"code":"service_unavailable","title":"Service unavailable","detail":"try later"}]}`))
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
			run, _, err := e.st.OpenOrCreateRun(e.ctx, jobs.NewRunFor(e.cnx, time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			task, _ := jobs.NewSyncTask(jobs.SyncPayload{ConnectionID: e.cnx.ID, RunID: run.ID}, jobs.QueueDefault)
			if _, err := client.Enqueue(task, asynq.MaxRetry(tc.maxRetry)); err != nil {
				t.Fatal(err)
			}
			startWorker(t, addr, runner)
			final := e.waitRun(run.ID, 40*time.Second, store.RunDone, store.RunFailed)
			if final.State != tc.want {
				t.Fatalf("run %s (%+v), want %s", final.State, final.Error, tc.want)
			}
			if tc.want == store.RunFailed && (final.Error == nil || final.Error.Code != "platform_unavailable") {
				t.Errorf("error %+v", final.Error)
			}
			cnx, _ := e.st.ConnectionByID(e.ctx, e.cnx.ID)
			if cnx.Status != store.StatusActive {
				t.Errorf("connection %s after an outage", cnx.Status)
			}
			if e.debited() != final.Counts.Verified {
				t.Errorf("debited %d, verified %d", e.debited(), final.Counts.Verified)
			}
		})
	}
}

// TestVerifyContactHandOff: on a platform without a changed-since filter (MailerLite) a webhook's contact
// cannot be found cheaply, so floss:verify_contact hands it to a sync run of its connection.
func TestVerifyContactHandOff(t *testing.T) {
	addr := testenv.Redis(t)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: addr})
	defer client.Close()
	e := newEnv(t, envOpts{slug: "mailerlite", n: 50, seed: 1, credits: 100, enqueuer: client})
	_, outcome, err := e.runner.VerifyContact(e.ctx, jobs.VerifyContactPayload{ConnectionID: e.cnx.ID, ContactID: e.fake.Record(3).ID,
		ReceivedAt: time.Now().Unix()}, "verify:x")
	if err != nil || outcome != jobs.OutcomeNothing {
		t.Fatalf("verify_contact: %s %v", outcome, err)
	}
	run, err := e.st.OpenRun(e.ctx, e.cnx.ID)
	if err != nil {
		t.Fatalf("no run opened: %v", err)
	}
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: addr})
	defer insp.Close()
	ti, err := insp.GetTaskInfo(jobs.QueueDefault, "sync:"+e.cnx.ID+":"+run.ID)
	if err != nil || ti.Type != jobs.TypeSync {
		t.Fatalf("sync task: %+v %v", ti, err)
	}
}
