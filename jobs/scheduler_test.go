package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/autofloss/autofloss/internal/testenv"
	"github.com/autofloss/autofloss/jobs"
	"github.com/autofloss/autofloss/store"
)

// TestSchedulersTickTogether: two schedulers (own asynq clients) tick at once over 1,000 due connections;
// each connection is enqueued exactly once, and a later tick enqueues nothing more. On SQLite with plain
// asynq clients, on PostgreSQL (two windows opened at once) with jobs.NewPipelinedClient.
func TestSchedulersTickTogether(t *testing.T) {
	for _, tc := range []struct {
		name      string
		url       func(testing.TB) string
		pipelined bool
	}{
		{"sqlite", testenv.SQLite, false},
		{"postgres pipelined", testenv.Postgres, true},
	} {
		t.Run(tc.name, func(t *testing.T) { testSchedulersTickTogether(t, tc.url(t), tc.pipelined) })
	}
}

func testSchedulersTickTogether(t *testing.T, url string, pipelined bool) {
	ctx := context.Background()
	st := testenv.Store(t, url)
	newClient := func(addr string) *asynq.Client {
		if pipelined {
			c, closeClient := jobs.NewPipelinedClient(asynq.RedisClientOpt{Addr: addr})
			t.Cleanup(func() { _ = closeClient() })
			return c
		}
		c := asynq.NewClient(asynq.RedisClientOpt{Addr: addr})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	acct, err := st.CreateAccount(ctx, "sched")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddCredits(ctx, acct.ID, 100, "", "grant"); err != nil {
		t.Fatal(err)
	}
	poor, _ := st.CreateAccount(ctx, "no credits")
	const n = 1000
	want := map[string]bool{}
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(8) // PostgreSQL commits one by one take seconds for 1,000
	for range n {
		g.Go(func() error {
			c, err := st.CreateConnection(ctx, store.NewConnection{AccountID: acct.ID, Type: "klaviyo", Name: "k", AutoFlossEnabled: true,
				Settings: json.RawMessage(`{"verify_first":false}`), Credentials: store.Credentials{"api_key": "pk_x"}})
			mu.Lock()
			want[c.ID] = err == nil
			mu.Unlock()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	// Not due: auto-floss off; verify_first on a webhook platform; an account without credits.
	for _, nc := range []store.NewConnection{
		{AccountID: acct.ID, Type: "klaviyo", Name: "off", AutoFlossEnabled: false, Settings: json.RawMessage(`{"verify_first":false}`)},
		{AccountID: acct.ID, Type: "mailchimp", Name: "hooked", AutoFlossEnabled: false, Settings: json.RawMessage(`{"verify_first":true}`)},
		{AccountID: poor.ID, Type: "klaviyo", Name: "poor", AutoFlossEnabled: true, Settings: json.RawMessage(`{}`)},
	} {
		nc.Credentials = store.Credentials{"api_key": "x-us1"}
		if _, err := st.CreateConnection(ctx, nc); err != nil {
			t.Fatal(err)
		}
	}
	// Due by polling: verify_first on a platform without webhooks.
	vf, err := st.CreateConnection(ctx, store.NewConnection{AccountID: acct.ID, Type: "klaviyo", Name: "vf", AutoFlossEnabled: false,
		Settings: json.RawMessage(`{"verify_first":true}`), Credentials: store.Credentials{"api_key": "pk_y"}})
	if err != nil {
		t.Fatal(err)
	}
	want[vf.ID] = true

	addr := testenv.Redis(t)
	cfg := jobs.SchedulerConfig{FlossInterval: 24 * time.Hour, VerifyFirstInterval: 5 * time.Minute, BatchSize: 300}
	now := time.Now()
	var wg sync.WaitGroup
	stats := make([]jobs.TickStats, 2)
	errs := make([]error, 2)
	for i := range 2 {
		client := newClient(addr)
		s := jobs.NewScheduler(st, client, cfg, zerolog.New(io.Discard), nil, func() time.Time { return now })
		wg.Add(1)
		go func() { defer wg.Done(); stats[i], errs[i] = s.TickStats(ctx) }()
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil {
			t.Fatalf("scheduler %d: %v", i, errs[i])
		}
	}
	if got := stats[0].Enqueued + stats[1].Enqueued; got != len(want) {
		t.Errorf("enqueued %d (%+v, %+v), want %d", got, stats[0], stats[1], len(want))
	}
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: addr})
	defer insp.Close()
	seen := map[string]int{}
	for page := 1; ; page++ {
		ts, err := insp.ListPendingTasks(jobs.QueueLow, asynq.PageSize(500), asynq.Page(page))
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range ts {
			var p jobs.SyncPayload
			if err := json.Unmarshal(ti.Payload, &p); err != nil || p.RunID == "" {
				t.Fatalf("payload %s: %v", ti.Payload, err)
			}
			seen[p.ConnectionID]++
		}
		if len(ts) < 500 {
			break
		}
	}
	if len(seen) != len(want) {
		t.Errorf("%d connections in the queue, want %d", len(seen), len(want))
	}
	for id, k := range seen {
		if !want[id] || k != 1 {
			t.Errorf("connection %s enqueued %d times (due %v)", id, k, want[id])
		}
	}
	// A second tick finds every due connection with a queued run: nothing more.
	client := newClient(addr)
	s := jobs.NewScheduler(st, client, cfg, zerolog.New(io.Discard), nil, func() time.Time { return now.Add(time.Minute) })
	again, err := s.TickStats(ctx)
	if err != nil || again.Enqueued != 0 {
		t.Errorf("second tick: %+v %v", again, err)
	}
}

// TestPipelinedClientTaskIDConflict: through the autopipeliner, 50 concurrent enqueues of one TaskID still
// give exactly one success and 49 asynq.ErrTaskIDConflict, and one pending task.
func TestPipelinedClientTaskIDConflict(t *testing.T) {
	addr := testenv.Redis(t)
	client, closeClient := jobs.NewPipelinedClient(asynq.RedisClientOpt{Addr: addr})
	defer closeClient()
	const n = 50
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = client.EnqueueContext(context.Background(), asynq.NewTask("floss:sync", []byte(`{}`)),
				asynq.TaskID("sync:cnx_1:run_1"), asynq.Queue(jobs.QueueLow))
		})
	}
	wg.Wait()
	ok, conflict := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, asynq.ErrTaskIDConflict):
			conflict++
		default:
			t.Fatalf("enqueue: %v", err)
		}
	}
	if ok != 1 || conflict != n-1 {
		t.Fatalf("%d enqueued, %d conflicts; want 1 and %d", ok, conflict, n-1)
	}
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: addr})
	defer insp.Close()
	if qi, err := insp.GetQueueInfo(jobs.QueueLow); err != nil || qi.Pending != 1 {
		t.Fatalf("queue %+v %v", qi, err)
	}
}
