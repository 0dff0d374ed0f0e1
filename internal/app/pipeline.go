package app

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/autofloss/autofloss/hooks"
	"github.com/autofloss/autofloss/jobs"
)

// Pipeline is the floss pipeline of a started process: the Prometheus registry its series live on, the
// runner (one shared esp.Client, one verify engine) and, when the process has Redis, an asynq client to
// enqueue with. cmd/worker, cmd/scheduler, `autofloss serve`, `autofloss sync` and the sandbox build it
// the same way.
type Pipeline struct {
	Metrics  *prometheus.Registry
	Jobs     *jobs.Metrics
	Runner   *jobs.Runner
	Enqueuer *asynq.Client // nil without Redis (autofloss sync)
	// schedEnqueuer is the scheduler's client: enqueues of a tick go through go-redis's autopipeliner
	// (jobs.NewPipelinedClient; BENCHMARKS.md, scheduler tick).
	schedEnqueuer *asynq.Client
	closeSched    func() error
	closeFn       func()
}

// NewPipeline builds the pipeline from the process's config (read it after any sandbox rewrote it). reg
// may be nil: a fresh registry with the Go and process collectors is made.
func (a *App) NewPipeline(reg *prometheus.Registry) (*Pipeline, error) {
	if reg == nil {
		reg = NewMetricsRegistry()
	}
	m, err := jobs.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	d, closeEngine, err := jobs.DepsFromConfig(a.Config, a.Store, a.Log, m)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{Metrics: reg, Jobs: m, closeFn: closeEngine}
	if a.RedisOpt != nil {
		p.Enqueuer = asynq.NewClient(a.RedisOpt)
		d.Enqueuer = p.Enqueuer
		p.schedEnqueuer, p.closeSched = jobs.NewPipelinedClient(a.RedisOpt)
	}
	if p.Runner, err = jobs.NewRunner(d); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// NewMetricsRegistry is a fresh registry with the Go and process collectors.
func NewMetricsRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Close releases the asynq client and the engine's pooled SMTP sessions.
func (p *Pipeline) Close() {
	if p.Enqueuer != nil {
		_ = p.Enqueuer.Close()
	}
	if p.closeSched != nil {
		_ = p.closeSched()
	}
	if p.closeFn != nil {
		p.closeFn()
	}
}

// RunPipelineWorker runs the asynq worker with the pipeline's handlers until ctx ends. When ctx ends a
// floss run commits the pages in hand (those already read) and stops (to be resumed from its checkpoint), within
// worker.shutdown_timeout.
func (a *App) RunPipelineWorker(ctx context.Context, p *Pipeline) error {
	mux := jobs.NewServeMux(jobs.NewHandlers(p.Runner, ctx.Done()))
	return a.RunWorker(ctx, mux, func(c *asynq.Config) {
		c.RetryDelayFunc = jobs.RetryDelay
		c.IsFailure = jobs.IsFailure
	})
}

// Scheduler is the enqueueing scheduler tick of the config (pass its Tick to RunScheduler).
func (a *App) Scheduler(p *Pipeline) (*jobs.Scheduler, error) {
	if p.schedEnqueuer == nil {
		return nil, errors.New("scheduler: no Redis")
	}
	s := a.Config.Scheduler
	return jobs.NewScheduler(a.Store, p.schedEnqueuer, jobs.SchedulerConfig{
		FlossInterval: s.FlossInterval, VerifyFirstInterval: s.VerifyFirstInterval, BatchSize: s.BatchSize,
		IncrementalLookback: s.IncrementalLookback,
	}, a.Log, p.Jobs, nil), nil
}

// Hooks is the verify_first webhook handler; mount it at /v1/hooks/.
func (a *App) Hooks(p *Pipeline) http.Handler {
	return hooks.New(hooks.Deps{Store: a.Store, Enqueuer: p.Enqueuer, Log: a.Log, MaxBody: a.Config.Server.MaxBodyBytes})
}

// ServeMetrics serves /metrics (the pipeline's registry), /healthz and /readyz on worker.metrics_listen
// until ctx ends; it returns at once when the address is empty, and logs (without failing the worker)
// when the address cannot be bound.
func (a *App) ServeMetrics(ctx context.Context, p *Pipeline) error {
	addr := a.Config.Worker.MetricsListen
	if addr == "" {
		return nil
	}
	mux := a.OpsMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.Metrics, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		// The worker's job is the queue: a metrics port taken by something else is reported, not fatal.
		a.Log.Error().Err(err).Str("addr", addr).Msg("metrics listener not started")
		return nil
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	a.Log.Info().Str("addr", ln.Addr().String()).Msg("metrics listening")
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
