package reliability_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/autofloss/autofloss/jobs"
	"github.com/autofloss/autofloss/store"
)

// tickLines returns the "scheduler tick" log lines of one process's log.
func tickLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, _ := os.ReadFile(path)
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && (m["message"] == "scheduler tick" || m["msg"] == "scheduler tick") {
			out = append(out, m)
		}
	}
	return out
}

// TestThreeSchedulersNoDuplicateRuns proves that three cmd/scheduler processes ticking together (every
// second, ten ticks each at least) over 1,000 due connections open exactly one run per connection and
// enqueue exactly one floss:sync task per run: runs == 1,000 with 1,000 distinct connections, the low
// queue holds 1,000 tasks whose ids are the 1,000 runs', and the schedulers' own tick logs add up to
// exactly 1,000 enqueued (every other offer was a duplicate asynq refused).
func TestThreeSchedulersNoDuplicateRuns(t *testing.T) {
	const conns = 1000
	c := newCluster(t, clusterOpts{noCnx: true})
	defer c.dumpLogs()
	acct, err := c.st.CreateAccount(c.ctx, "schedulers")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.st.AddCredits(c.ctx, acct.ID, 1_000_000, "", "grant"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < conns; i++ {
		if _, err := c.st.CreateConnection(c.ctx, store.NewConnection{AccountID: acct.ID, Type: "klaviyo", Name: fmt.Sprintf("c%d", i),
			AutoFlossEnabled: true, Settings: []byte(`{"on_failure":"update_fields"}`), Credentials: map[string]string{"api_key": fmt.Sprintf("pk_%032d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"AUTOFLOSS_SCHEDULER_TICK=@every 1s", "AUTOFLOSS_SCHEDULER_FLOSS_INTERVAL=24h", "AUTOFLOSS_SCHEDULER_BATCH_SIZE=200"}
	var ps []*proc
	for i := 0; i < 3; i++ {
		ps = append(ps, c.start("scheduler", env...))
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		done := 0
		for _, p := range ps {
			if len(tickLines(t, p.log)) >= 10 {
				done++
			}
		}
		if done == len(ps) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the schedulers did not tick ten times each within 2 minutes")
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, p := range ps {
		p.signal(t, syscall.SIGTERM, 30*time.Second)
	}
	var enqueued, ticks float64
	for _, p := range ps {
		for _, m := range tickLines(t, p.log) {
			ticks++
			e, _ := m["enqueued"].(float64)
			enqueued += e
		}
	}
	db := c.db()
	runs := queryInt(t, db, `SELECT COUNT(*) FROM floss_runs`)
	distinct := queryInt(t, db, `SELECT COUNT(DISTINCT connection_id) FROM floss_runs`)
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: c.redis})
	defer insp.Close()
	ids := map[string]bool{}
	for page := 1; ; page++ {
		tasks, err := insp.ListPendingTasks(jobs.QueueLow, asynq.PageSize(500), asynq.Page(page))
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range tasks {
			ids[ti.ID] = true
		}
		if len(tasks) < 500 {
			break
		}
	}
	qi, err := insp.GetQueueInfo(jobs.QueueLow)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(`SELECT id, connection_id FROM floss_runs`)
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	for rows.Next() {
		var id, cnx string
		_ = rows.Scan(&id, &cnx)
		if !ids["sync:"+cnx+":"+id] {
			missing++
		}
	}
	rows.Close()
	t.Logf("%v ticks, %v enqueued, %d runs, %d tasks (queue size %d)", ticks, enqueued, runs, len(ids), qi.Size)
	if runs != conns || distinct != conns || len(ids) != conns || qi.Size != conns || enqueued != conns || missing != 0 {
		t.Errorf("runs %d (distinct connections %d), tasks %d (queue size %d), enqueued per the logs %v, runs without their task %d; want %d each",
			runs, distinct, len(ids), qi.Size, enqueued, missing, conns)
	}
}
