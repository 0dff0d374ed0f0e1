package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/autofloss/autofloss/store"
)

// Enqueuer puts tasks on the asynq queues (*asynq.Client satisfies it).
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Handlers are the worker's asynq task handlers.
type Handlers struct {
	r    *Runner
	stop <-chan struct{}
	log  zerolog.Logger
}

// NewHandlers builds the handlers over a runner. stop (may be nil) closes when the worker starts shutting
// down: a floss run then reads no further page, commits the pages in hand and returns, to be resumed from
// its checkpoint.
func NewHandlers(r *Runner, stop <-chan struct{}) *Handlers {
	return &Handlers{r: r, stop: stop, log: r.d.Log}
}

// NewServeMux registers the task handlers behind the logging/metrics/panic-recovery middleware. It is
// what cmd/worker, `autofloss serve` and the sandbox serve.
func NewServeMux(h *Handlers) *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.Use(h.middleware)
	mux.HandleFunc(TypeSync, h.HandleSync)
	mux.HandleFunc(TypeVerifyContact, h.HandleVerifyContact)
	return mux
}

// ServerConfig is the asynq server configuration of a worker: concurrency, queue weights (critical >
// default > low), shutdown timeout and the retry delay that honours the platform's retry-after.
func ServerConfig(concurrency int, critical, def, low int, shutdown time.Duration) asynq.Config {
	return asynq.Config{
		Concurrency:     concurrency,
		Queues:          map[string]int{QueueCritical: critical, QueueDefault: def, QueueLow: low},
		ShutdownTimeout: shutdown,
		RetryDelayFunc:  RetryDelay,
		IsFailure:       IsFailure,
	}
}

// IsFailure is the asynq IsFailure rule: a run stopped for a graceful shutdown or waiting for a lease is
// retried without counting as a failed attempt (so shutdowns and crashes never use up a run's retries).
// A crash is asynq.ErrLeaseExpired: asynq's recoverer hands the task of a dead worker back with it; counted
// as a failure, every crash doubled the next retry's backoff (the sixth crash of one run waited over 30 s
// more, found by reliability.TestWorkerKilled) and ate one of the run's retries.
func IsFailure(err error) bool {
	return !errors.Is(err, ErrStopping) && !errors.Is(err, ErrLeaseBusy) && !errors.Is(err, ErrLeaseLost) &&
		!errors.Is(err, asynq.ErrLeaseExpired)
}

// RetryDelay is the asynq RetryDelayFunc: the wait a RetryableError names (the platform's retry-after, a
// lease's TTL) plus a little jitter, else exponential backoff from 2 s capped at 5 min.
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	if w := waitOf(err); w > 0 {
		return w + time.Duration(rand.Int64N(int64(time.Second)))
	}
	d := 2 * time.Second << min(n, 10)
	if d > 5*time.Minute {
		d = 5 * time.Minute
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// waitOf is the longest Wait of the RetryableErrors in err's chain.
func waitOf(err error) time.Duration {
	var w time.Duration
	for err != nil {
		var re *RetryableError
		if !errors.As(err, &re) {
			break
		}
		w = max(w, re.Wait)
		err = re.Err
	}
	return w
}

// progressJSON is what a task reports through its result writer (asynqmon shows it): ids and counts only.
type progressJSON struct {
	ConnectionID string           `json:"connection_id"`
	RunID        string           `json:"run_id,omitempty"`
	Kind         string           `json:"kind,omitempty"`
	State        string           `json:"state,omitempty"`
	Counts       map[string]int64 `json:"counts,omitempty"`
	CreditsUsed  int64            `json:"credits_used"`
	Progress     *float64         `json:"progress"`
	Outcome      string           `json:"outcome,omitempty"`
}

func progressOf(cnxID string, run store.Run) progressJSON {
	c := run.Counts
	return progressJSON{ConnectionID: cnxID, RunID: run.ID, Kind: run.Kind, State: run.State, CreditsUsed: run.CreditsUsed,
		Progress: run.Progress(), Counts: map[string]int64{"seen": c.Seen, "skipped": c.Skipped, "reused": c.Reused,
			"verified": c.Verified, "passed": c.Passed, "failed": c.Failed, "written_back": c.WrittenBack}}
}

// HandleSync is the floss:sync handler.
func (h *Handlers) HandleSync(ctx context.Context, t *asynq.Task) error {
	var p SyncPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.ConnectionID == "" {
		return fmt.Errorf("jobs: bad floss:sync payload: %w", asynq.SkipRetry)
	}
	taskID, _ := asynq.GetTaskID(ctx)
	rw := t.ResultWriter()
	write := func(pj progressJSON) {
		if rw != nil {
			if b, err := json.Marshal(pj); err == nil {
				_, _ = rw.Write(b)
			}
		}
	}
	run, outcome, err := h.r.Sync(ctx, p, SyncOptions{TaskID: taskID, Stop: h.stop,
		Progress: func(r store.Run) { write(progressOf(p.ConnectionID, r)) }})
	pj := progressOf(p.ConnectionID, run)
	pj.Outcome = string(outcome)
	write(pj)
	return h.settle(ctx, run.ID, err)
}

// settle turns a runner error into what asynq should do: nil; a PermanentError → SkipRetry; a retryable
// error → retried, except on the last allowed attempt, where the run is marked failed and not retried.
func (h *Handlers) settle(ctx context.Context, runID string, err error) error {
	if err == nil {
		return nil
	}
	var pe *PermanentError
	if errors.As(err, &pe) {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	if ok && retried >= maxRetry && !errors.Is(err, ErrStopping) {
		if runID != "" {
			h.r.FailRun(ctx, runID, err)
		}
		return fmt.Errorf("%w (retries exhausted): %w", err, asynq.SkipRetry)
	}
	return err
}

// middleware logs every task (type, id, outcome, duration: never a payload), counts it, and recovers a
// panic into a retryable error (so a panicking run is retried from its checkpoint and only marked failed
// when retries are exhausted, like any other error).
func (h *Handlers) middleware(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) (err error) {
		start := time.Now()
		taskID, _ := asynq.GetTaskID(ctx)
		defer func() {
			if p := recover(); p != nil {
				h.log.Error().Str("task_type", t.Type()).Str("task_id", taskID).Str("panic", fmt.Sprintf("%T", p)).
					Bytes("stack", debug.Stack()).Msg("task panicked")
				err = h.settle(ctx, runIDOf(t), &RetryableError{Err: fmt.Errorf("jobs: task panicked (%T)", p)})
			}
			outcome := "ok"
			switch {
			case err == nil:
			case errors.Is(err, asynq.SkipRetry):
				outcome = "failed"
			default:
				outcome = "retry"
			}
			d := time.Since(start)
			h.r.d.Metrics.task(t.Type(), outcome, d)
			ev := h.log.Info()
			if err != nil {
				ev = h.log.Warn().Err(err)
			}
			ev.Str("task_type", t.Type()).Str("task_id", taskID).Str("outcome", outcome).Dur("duration", d).Msg("task")
		}()
		return next.ProcessTask(ctx, t)
	})
}

// runIDOf reads the run id of a sync payload, for failing the run after a panic on the last attempt.
func runIDOf(t *asynq.Task) string {
	if t.Type() != TypeSync {
		return ""
	}
	var p SyncPayload
	_ = json.Unmarshal(t.Payload(), &p)
	return p.RunID
}
