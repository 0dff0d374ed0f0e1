package jobs

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/autofloss/autofloss/store"
)

// WebhookPlatforms are the platforms whose webhooks announce new subscribers (the hooks package parses
// them). verify_first connections of every other platform are polled on the shorter verify_first interval.
var WebhookPlatforms = map[string]bool{"mailchimp": true, "activecampaign": true, "convertkit": true, "mailerlite": true}

// pgOpeners is how many windows of due connections a PostgreSQL tick opens at once.
const pgOpeners = 2

// SchedulerConfig are the scheduler's settings (config.Scheduler).
type SchedulerConfig struct {
	FlossInterval       time.Duration // auto-floss connections are due this long after their last sync
	VerifyFirstInterval time.Duration // verify_first connections of platforms without webhooks are polled this often
	BatchSize           int           // due connections per query, their runs opened in one transaction (0 = 2000: 100,000 due in 9.7 s vs 14.9 s with 500, BENCHMARKS.md)
	IncrementalLookback time.Duration
	// StaleAfter: a queued/running run not updated for this long is considered abandoned and its connection
	// is enqueued again (0 = 1 hour).
	StaleAfter time.Duration
	// ResumeWindow is the time window of the TaskID of a resumed run (paused for credits, or stale): one such
	// task per run and window (0 = VerifyFirstInterval, at least 1 minute).
	ResumeWindow time.Duration
	// Concurrency: tasks sent to Redis at once (0 = 64; the window's runs are opened in one transaction
	// first). With NewPipelinedClient the concurrent enqueues share pipelines, so more of them mean deeper
	// pipelines (100,000 tasks on PostgreSQL: Go CPU 5.3 s at 16, 4.1 s at 64; Redis CPU 1.7 s -> 1.3 s).
	Concurrency int
}

// Scheduler selects due connections and enqueues their floss runs. Several replicas may tick at the same
// time: the run is opened in the store first (at most one unfinished run per connection, enforced by a
// unique index), and the task's TaskID is derived from the connection and that run, so replicas that race
// end up offering the same TaskID and asynq keeps one (asynq.ErrTaskIDConflict is not an error here).
type Scheduler struct {
	st  *store.Store
	enq Enqueuer
	cfg SchedulerConfig
	log zerolog.Logger
	m   *Metrics
	now func() time.Time
}

// NewScheduler builds a scheduler. now may be nil (time.Now); m may be nil.
func NewScheduler(st *store.Store, enq Enqueuer, cfg SchedulerConfig, log zerolog.Logger, m *Metrics, now func() time.Time) *Scheduler {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 2000
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = time.Hour
	}
	if cfg.ResumeWindow <= 0 {
		cfg.ResumeWindow = max(cfg.VerifyFirstInterval, time.Minute)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	if now == nil {
		now = time.Now
	}
	return &Scheduler{st: st, enq: enq, cfg: cfg, log: log, m: m, now: now}
}

// TickStats count what one tick did.
type TickStats struct {
	Due        int // connections the store selected
	Enqueued   int // tasks newly enqueued
	Duplicates int // tasks already enqueued (by another replica, the API or an earlier tick)
	Skipped    int // selected but not due here (verify_first on a webhook platform)
}

// Tick selects due connections in batches and enqueues a floss:sync for each.
func (s *Scheduler) Tick(ctx context.Context) error {
	_, err := s.TickStats(ctx)
	return err
}

// TickStats is Tick returning its counts.
func (s *Scheduler) TickStats(ctx context.Context) (TickStats, error) {
	now := s.now().UTC()
	q := store.DueQuery{Now: now, FlossInterval: s.cfg.FlossInterval, VerifyFirstInterval: s.cfg.VerifyFirstInterval,
		StaleAfter: s.cfg.StaleAfter, Page: store.Page{Limit: s.cfg.BatchSize}}
	var due, enq, dup, skip atomic.Int64
	// Three stages: a selector reads the due connections of the next window of BatchSize connections
	// (store.DueBatch: each connection is read once per tick); openers open each window's runs in ONE
	// store transaction (store.OpenOrCreateRuns); a bounded pool sends the opened windows' tasks to Redis
	// (asynq has no batch enqueue). So the next window is selected while one is opened and the previous
	// one is enqueued. On PostgreSQL pgOpeners windows are opened at once (disjoint
	// connections; each transaction takes its locks in connection order, so replicas cannot deadlock);
	// SQLite has one writer, so one opener.
	type window struct {
		want []store.Connection
		nrs  []store.NewRun
	}
	type batch struct {
		want   []store.Connection
		opened map[string]store.OpenedRun // nil: the batch open failed; open one by one
	}
	windows := make(chan window, 1)
	batches := make(chan batch, 1)
	var qerr error
	go func() {
		defer close(windows)
		for {
			cs, next, err := s.st.DueBatch(ctx, q)
			if err != nil {
				qerr = err
				return
			}
			due.Add(int64(len(cs)))
			var w window
			for _, c := range cs {
				if !s.wanted(ctx, c, now) {
					skip.Add(1)
					continue
				}
				w.want = append(w.want, c)
				w.nrs = append(w.nrs, NewRunFor(c, s.cfg.IncrementalLookback))
			}
			if len(w.want) > 0 {
				select {
				case windows <- w:
				case <-ctx.Done():
					return
				}
			}
			if next == "" {
				return
			}
			q.Page.Cursor = next
		}
	}()
	openers := 1
	if s.st.Dialect() == store.Postgres {
		openers = pgOpeners
	}
	var ow sync.WaitGroup
	for range openers {
		ow.Go(func() {
			for w := range windows {
				opened, err := s.st.OpenOrCreateRuns(ctx, w.nrs)
				if err != nil && ctx.Err() != nil {
					continue // drain: the selector stops at the next send
				}
				if err != nil {
					// A failed batch (e.g. a PostgreSQL deadlock abort) falls back to one transaction per
					// connection, so one connection's trouble still does not stop the tick.
					s.log.Warn().Err(err).Int("connections", len(w.want)).Msg("batch open runs failed; opening one by one")
					opened = nil
				}
				select {
				case batches <- batch{want: w.want, opened: opened}:
				case <-ctx.Done():
				}
			}
		})
	}
	go func() { ow.Wait(); close(batches) }()
	opts := enqueueOptions{staleAfter: s.cfg.StaleAfter, window: s.cfg.ResumeWindow}
	var g errgroup.Group
	g.SetLimit(s.cfg.Concurrency)
	for b := range batches {
		for _, c := range b.want {
			g.Go(func() error {
				var fresh bool
				var err error
				if b.opened == nil {
					fresh, err = EnqueueRun(ctx, s.st, s.enq, c, s.cfg.IncrementalLookback, QueueLow, now, s.m, "scheduler", opts)
				} else if o, ok := b.opened[c.ID]; ok {
					fresh, err = enqueueOpened(ctx, s.enq, c, o.Run, o.Created, QueueLow, now, s.m, "scheduler", opts)
				} else {
					err = store.ErrNotFound // deleted since it was selected
				}
				if err != nil {
					s.log.Error().Err(err).Str("connection_id", c.ID).Msg("enqueue floss:sync")
					return nil // one connection's trouble does not stop the tick
				}
				if fresh {
					enq.Add(1)
				} else {
					dup.Add(1)
				}
				return nil
			})
		}
	}
	_ = g.Wait() // the pool's functions never fail: errors are logged per connection
	if qerr != nil {
		return TickStats{}, qerr
	}
	st := TickStats{Due: int(due.Load()), Enqueued: int(enq.Load()), Duplicates: int(dup.Load()), Skipped: int(skip.Load())}
	s.log.Info().Int("due", st.Due).Int("enqueued", st.Enqueued).Int("duplicates", st.Duplicates).Int("skipped", st.Skipped).Msg("scheduler tick")
	return st, ctx.Err()
}

// wanted filters what the store selected: a connection due only for verify_first polling is skipped when
// its platform sends webhooks (those contacts arrive through floss:verify_contact), unless it holds a run
// paused for credits.
func (s *Scheduler) wanted(ctx context.Context, c store.Connection, now time.Time) bool {
	old := func(iv time.Duration) bool { return c.LastSyncedAt == nil || !c.LastSyncedAt.After(now.Add(-iv)) }
	if c.AutoFlossEnabled && old(s.cfg.FlossInterval) {
		return true
	}
	if c.VerifyFirst && old(s.cfg.VerifyFirstInterval) && !WebhookPlatforms[c.Type] {
		return true
	}
	run, err := s.st.OpenRun(ctx, c.ID)
	return err == nil && run.State == store.RunPausedNoCredits
}

// NewPipelinedClient is the asynq client for the scheduler (and anything else that enqueues from many
// goroutines at once): its Redis commands go through go-redis's autopipeliner, so the script calls of
// concurrent enqueues share one write and one read instead of a round trip each. Each task is still its
// own EVALSHA in Redis (atomic; a TaskID conflict is still reported to its own caller), in submission
// order. Measured on one tick over 100,000 due connections (PostgreSQL, 64 at once): Go CPU 5.9 s -> 4.1 s,
// Redis CPU 2.6 s -> 1.3 s against asynq.NewClient. Options that do not make a plain *redis.Client
// (Sentinel, Cluster) get asynq.NewClient. close releases the client and its connections.
func NewPipelinedClient(opt asynq.RedisConnOpt) (client *asynq.Client, close func() error) {
	made := opt.MakeRedisClient()
	rc, ok := made.(*redis.Client)
	if !ok {
		if c, ok := made.(io.Closer); ok {
			_ = c.Close()
		}
		c := asynq.NewClient(opt)
		return c, c.Close
	}
	ap, err := rc.AutoPipeline()
	if err != nil { // only for a closed client or invalid options; fall back to one round trip per task
		_ = rc.Close()
		c := asynq.NewClient(opt)
		return c, c.Close
	}
	c := asynq.NewClientFromRedisClient(ap)
	return c, func() error {
		_ = c.Close() // shared connection: closes nothing of the Redis client
		return errors.Join(ap.Close(), rc.Close())
	}
}

type enqueueOptions struct {
	staleAfter time.Duration
	window     time.Duration
}

// EnqueueRun opens (or finds) the connection's unfinished run and enqueues the floss:sync task naming it.
// A fresh queued run gets the TaskID "sync:<cnx>:<run>" (the API's manual sync uses the same one); a run
// paused for credits or stale gets one per run and time window. fresh is false when asynq already had the
// task (asynq.ErrTaskIDConflict), which is not an error.
func EnqueueRun(ctx context.Context, st *store.Store, enq Enqueuer, c store.Connection, lookback time.Duration, queue string,
	now time.Time, m *Metrics, source string, opts ...enqueueOptions) (fresh bool, err error) {
	o := enqueueOptions{staleAfter: time.Hour, window: 5 * time.Minute}
	if len(opts) > 0 {
		o = opts[0]
	}
	nr := NewRunFor(c, lookback)
	run, created, err := st.OpenOrCreateRun(ctx, nr)
	if err != nil {
		return false, err
	}
	return enqueueOpened(ctx, enq, c, run, created, queue, now, m, source, o)
}

// enqueueOpened is EnqueueRun after the run was opened or found (created: opened by this caller).
func enqueueOpened(ctx context.Context, enq Enqueuer, c store.Connection, run store.Run, created bool, queue string,
	now time.Time, m *Metrics, source string, o enqueueOptions) (fresh bool, err error) {
	resume := !created && (run.State == store.RunPausedNoCredits || now.Sub(run.UpdatedAt) > o.staleAfter)
	if !created && !resume && run.State == store.RunRunning {
		m.enqueue(source, "duplicate")
		return false, nil // a live run is in progress
	}
	task, err := NewScheduledSyncTask(c.ID, run.ID, now.Truncate(o.window), resume)
	if err != nil {
		return false, err
	}
	_, err = enq.EnqueueContext(ctx, task, asynq.Queue(queue))
	switch {
	case err == nil:
		m.enqueue(source, "enqueued")
		return true, nil
	case errors.Is(err, asynq.ErrTaskIDConflict), errors.Is(err, asynq.ErrDuplicateTask):
		m.enqueue(source, "duplicate")
		return false, nil
	}
	return false, err
}
