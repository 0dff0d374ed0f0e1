package reliability_test

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/autofloss/autofloss/jobs"
	"github.com/autofloss/autofloss/store"
)

// killContacts is the size of the killed runs: contacts of the Mailchimp fake in one list (pages of
// 1,000), no rate limit, on_failure update_fields. The issue asks for 100,000, and that is what the suite
// runs now that the worker flosses ~10,000 contacts/s (both cases together: 187 s with -race on this
// 2-core machine; it was 30,000 when the worker managed ~3,000/s). AUTOFLOSS_RELIABILITY_CONTACTS
// overrides it (e.g. 30000 for a quicker local run).
func killContacts() int {
	if n, err := strconv.Atoi(os.Getenv("AUTOFLOSS_RELIABILITY_CONTACTS")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

// startRun opens the connection's run and enqueues its floss:sync task as the API's POST …/sync does.
func (c *cluster) startRun() store.Run {
	c.t.Helper()
	run, _, err := c.st.OpenOrCreateRun(c.ctx, jobs.NewRunFor(c.cnx, time.Minute))
	if err != nil {
		c.t.Fatal(err)
	}
	task, err := jobs.NewSyncTask(jobs.SyncPayload{ConnectionID: c.cnx.ID, RunID: run.ID}, jobs.QueueDefault)
	if err != nil {
		c.t.Fatal(err)
	}
	cl := asynq.NewClient(asynq.RedisClientOpt{Addr: c.redis})
	defer cl.Close()
	if _, err := cl.EnqueueContext(c.ctx, task); err != nil {
		c.t.Fatal(err)
	}
	return run
}

// waitProgress waits (bounded) until the run has committed more than `after` pages or is done.
func (c *cluster) waitProgress(runID string, after int64, within time.Duration) store.Run {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		run, err := c.st.RunByID(c.ctx, runID)
		if err != nil {
			c.t.Fatal(err)
		}
		if run.Pages > after || run.State == store.RunDone || run.State == store.RunFailed {
			return run
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("run %s made no progress past page %d within %s (state %s)", runID, after, within, run.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// expireDeadWorker stands in for the time that passes after a worker dies: it expires the dead worker's
// asynq task lease (asynq recovers a task 30 s after its lease ran out, checking once a minute) and its
// connection lease (jobs.Settings.LeaseTTL, 60 s) — exactly what waiting ~90 s would do — so ten crashes
// take seconds, not a quarter of an hour. Nothing else is touched: the restarted worker's asynq recoverer
// finds the task, and the runner takes the freed lease and resumes from the checkpoint.
func (c *cluster) expireDeadWorker() {
	c.t.Helper()
	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: c.redis})
	defer rc.Close()
	past := float64(time.Now().Add(-2 * time.Minute).Unix())
	for _, q := range []string{jobs.QueueCritical, jobs.QueueDefault, jobs.QueueLow} {
		key := "asynq:{" + q + "}:lease"
		ids, err := rc.ZRange(ctx, key, 0, -1).Result()
		if err != nil {
			c.t.Fatal(err)
		}
		for _, id := range ids {
			if err := rc.ZAddXX(ctx, key, redis.Z{Score: past, Member: id}).Err(); err != nil {
				c.t.Fatal(err)
			}
		}
	}
	db := openDB(c.t, c.dbPath)
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM connection_leases WHERE connection_id = ?`, c.cnx.ID); err != nil {
		c.t.Fatal(err)
	}
}

// TestWorkerKilled proves, with the real cmd/worker binary over a floss of 100,000 contacts (see
// killContacts), that a worker
// stopped at ten random moments mid-run — each time after it committed at least one page in its life,
// then a random 0–300 ms later — and restarted each time loses nothing and charges once:
//
//   - SIGKILL: the run ends `done`; every contact has exactly one result for the run, with the reason
//     the mail world gives its kind; credits debited (ledger) == run.credits_used == non-reused results ==
//     verified; every failed contact's write-back is on the fake and no passed contact was written to.
//   - SIGTERM (graceful): the same, and no page is verified twice: every page of contacts (a distinct
//     GET …/members?offset=… URL, counted by a proxy in front of the fake) is read from the platform
//     exactly once, so no contact was verified, or written back, twice.
//
// The seed of the kill moments is logged. After a SIGKILL the test expires the dead worker's leases
// (expireDeadWorker) instead of waiting for them.
func TestWorkerKilled(t *testing.T) {
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
	}{{"sigkill", syscall.SIGKILL}, {"sigterm", syscall.SIGTERM}} {
		t.Run(tc.name, func(t *testing.T) {
			n := killContacts()
			c := newCluster(t, clusterOpts{n: n, count: true})
			start := time.Now()
			defer c.dumpLogs()
			run := c.startRun()
			seed := time.Now().UnixNano()
			rng := rand.New(rand.NewPCG(uint64(seed), 8))
			t.Logf("kill seed %d", seed)
			var pages int64
			kills := 0
			for kills < 10 {
				w := c.start("worker")
				r := c.waitProgress(run.ID, pages, 90*time.Second)
				if r.State == store.RunDone {
					break
				}
				time.Sleep(time.Duration(rng.Int64N(int64(300 * time.Millisecond))))
				w.signal(t, tc.sig, 60*time.Second)
				kills++
				r, _ = c.st.RunByID(c.ctx, run.ID)
				pages = r.Pages
				t.Logf("%v #%d at page %d (%s) after %s", tc.sig, kills, pages, r.State, time.Since(start).Round(time.Millisecond))
				if tc.sig == syscall.SIGKILL {
					c.expireDeadWorker()
				}
				if r.State == store.RunDone {
					break
				}
			}
			if kills < 10 {
				t.Fatalf("the run finished after %d stops; ten were wanted mid-run", kills)
			}
			c.start("worker")
			c.waitRun(run.ID, 3*time.Minute, store.RunDone, store.RunFailed)
			t.Logf("run done after %s", time.Since(start).Round(time.Millisecond))
			c.checkRun(run.ID)
			distinct, twice := c.reads.pageReads("/members?")
			t.Logf("%d distinct pages read, %d read more than once", distinct, len(twice))
			if distinct < n/1000 {
				t.Errorf("only %d distinct pages read", distinct)
			}
			if tc.sig == syscall.SIGTERM && len(twice) > 0 {
				t.Errorf("pages read (and verified) twice after graceful stops: %v", twice)
			}
		})
	}
}
