package reliability_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/autofloss/autofloss/esp/esptest"
	"github.com/autofloss/autofloss/store"
)

// TestPlatformFaults proves that a floss run of 20,000 contacts through the cmd/worker binary completes
// with nothing lost and no write-back lost while the platform fake answers 10% of requests with its 5xx,
// 5% with its throttle signal, drops 1% of connections without an answer, truncates 1% of response bodies
// (after applying the request: a write that "failed" for the client did happen, and its replay must be
// harmless) and adds 2 ms to every request: the run is done, every contact has one result, credits match,
// every failed contact's write-back is on the fake (checkRun). The fake's counters must show every kind of
// fault was actually injected.
func TestPlatformFaults(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 10_000, faults: esptest.Faults{ServerErrors: 0.10, Throttles: 0.05, Drops: 0.01,
		Truncations: 0.01, Latency: 2 * time.Millisecond, Seed: 42}})
	defer c.dumpLogs()
	run := c.startRun()
	c.start("worker")
	c.waitRun(run.ID, 4*time.Minute, store.RunDone, store.RunFailed)
	c.checkRun(run.ID)
	s := c.fake.Stats()
	t.Logf("fake: %+v", s)
	if s.InjectedErrors == 0 || s.InjectedThrottles == 0 || s.Drops == 0 || s.Truncations == 0 {
		t.Errorf("not every fault was injected: %+v", s)
	}
}

// TestRedisRestartMidRun proves what autofloss promises about its Redis: run state lives in the store
// (cursor, results, credits, the connection lease), the queue in Redis. With a Redis that persists what it
// acknowledges (appendonly, fsync always — the configuration the deployment guide must ask for), a
// redis-server SIGKILLed mid-run and restarted on the same port and data directory loses no task: the
// worker (cmd/worker, never restarted) reconnects, its run completes, and the run has the same guarantees
// as an undisturbed one (checkRun: done, one result per contact, credits once, every write-back present).
func TestRedisRestartMidRun(t *testing.T) {
	rs := startRedis(t, filepath.Join(t.TempDir(), "redis"), 0, true)
	c := newCluster(t, clusterOpts{n: 20_000, redis: rs.addr})
	defer c.dumpLogs()
	run := c.startRun()
	c.start("worker")
	r := c.waitProgress(run.ID, 2, 2*time.Minute)
	if r.State == store.RunDone {
		t.Fatalf("the run finished before Redis could be stopped")
	}
	rs.stop()
	t.Logf("redis stopped at page %d", r.Pages)
	time.Sleep(3 * time.Second)
	rs.start()
	r2, _ := c.st.RunByID(c.ctx, run.ID)
	t.Logf("redis restarted at page %d", r2.Pages)
	c.waitRun(run.ID, 4*time.Minute, store.RunDone, store.RunFailed)
	c.checkRun(run.ID)
}
