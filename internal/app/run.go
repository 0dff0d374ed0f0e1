package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/hibiken/asynq"
	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"github.com/autofloss/autofloss/store"
)

func osGetenv(k string) string { return os.Getenv(k) }

// OpsMux returns a mux with the ops endpoints every HTTP process has: GET /healthz (the process is up)
// and GET /readyz (store and Redis answer; 503 otherwise).
func (a *App) OpsMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		if err := a.Ready(ctx); err != nil {
			a.Log.Warn().Err(err).Msg("not ready")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"unavailable"}` + "\n"))
			return
		}
		_, _ = w.Write([]byte(`{"status":"ready"}` + "\n"))
	})
	return mux
}

// ServeHTTP listens on server.listen and serves h until ctx ends, then drains for server.shutdown_timeout.
// ready, when not nil, receives the bound address once listening (tests use ":0").
func (a *App) ServeHTTP(ctx context.Context, h http.Handler, ready func(addr string)) error {
	ln, err := net.Listen("tcp", a.Config.Server.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", a.Config.Server.Listen, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       a.Config.Server.ReadTimeout,
		WriteTimeout:      a.Config.Server.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          nil,
	}
	a.Log.Info().Str("addr", ln.Addr().String()).Msg("http server listening")
	if ready != nil {
		ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), a.Config.Server.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	a.Log.Info().Msg("http server stopped")
	return nil
}

// Queue names (asynq), by priority.
const (
	QueueCritical = "critical"
	QueueDefault  = "default"
	QueueLow      = "low"
)

// RunWorker runs an asynq server with the configured concurrency and queue weights, serving h, until ctx
// ends; then it stops taking tasks and waits up to worker.shutdown_timeout for the ones in hand. opts
// adjust the asynq config before the server starts (the pipeline sets its retry delay and failure rule).
func (a *App) RunWorker(ctx context.Context, h asynq.Handler, opts ...func(*asynq.Config)) error {
	w := a.Config.Worker
	cfg := asynq.Config{
		Concurrency:     w.Concurrency,
		Queues:          map[string]int{QueueCritical: w.Queues.Critical, QueueDefault: w.Queues.Default, QueueLow: w.Queues.Low},
		ShutdownTimeout: w.ShutdownTimeout,
		Logger:          asynqLogger{a.Log},
		LogLevel:        asynq.WarnLevel,
		BaseContext:     func() context.Context { return context.WithoutCancel(ctx) },
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv := asynq.NewServer(a.RedisOpt, cfg)
	if err := srv.Start(h); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	a.Log.Info().Int("concurrency", w.Concurrency).Msg("worker started")
	<-ctx.Done()
	srv.Shutdown()
	a.Log.Info().Msg("worker stopped")
	return nil
}

// Tick is one scheduler tick.
type Tick func(ctx context.Context) error

// RunScheduler runs tick on scheduler.tick until ctx ends (a tick in progress finishes first). Ticks never
// overlap within one process; several replicas dedupe through asynq task ids.
func (a *App) RunScheduler(ctx context.Context, tick Tick) error {
	c := cron.New(cron.WithChain(cron.SkipIfStillRunning(cron.DiscardLogger)))
	_, err := c.AddFunc(a.Config.Scheduler.Tick, func() {
		if ctx.Err() != nil {
			return
		}
		if err := tick(ctx); err != nil && ctx.Err() == nil {
			a.Log.Error().Err(err).Msg("scheduler tick failed")
		}
	})
	if err != nil {
		return fmt.Errorf("config: scheduler.tick: %w", err)
	}
	c.Start()
	a.Log.Info().Str("tick", a.Config.Scheduler.Tick).Msg("scheduler started")
	<-ctx.Done()
	<-c.Stop().Done()
	a.Log.Info().Msg("scheduler stopped")
	return nil
}

// CountDue is the scheduler tick until the pipeline issue provides the enqueueing one: it counts the
// connections that are due and logs the number.
func (a *App) CountDue(ctx context.Context) error {
	q := store.DueQuery{
		FlossInterval: a.Config.Scheduler.FlossInterval, VerifyFirstInterval: a.Config.Scheduler.VerifyFirstInterval,
		Page: store.Page{Limit: a.Config.Scheduler.BatchSize},
	}
	total := 0
	for {
		cs, next, err := a.Store.DueConnections(ctx, q)
		if err != nil {
			return err
		}
		total += len(cs)
		if next == "" {
			break
		}
		q.Page.Cursor = next
	}
	a.Log.Info().Int("due_connections", total).Msg("scheduler tick")
	return nil
}

// asynqLogger routes asynq's logs through zerolog.
type asynqLogger struct{ l zerolog.Logger }

func (l asynqLogger) Debug(args ...any) { l.l.Debug().Msg(fmt.Sprint(args...)) }
func (l asynqLogger) Info(args ...any)  { l.l.Info().Msg(fmt.Sprint(args...)) }
func (l asynqLogger) Warn(args ...any)  { l.l.Warn().Msg(fmt.Sprint(args...)) }
func (l asynqLogger) Error(args ...any) { l.l.Error().Msg(fmt.Sprint(args...)) }
func (l asynqLogger) Fatal(args ...any) { l.l.Error().Msg(fmt.Sprint(args...)) }
