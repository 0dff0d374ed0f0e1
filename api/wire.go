package api

import (
	"context"
	"net/http"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/esp/espconfig"
	"github.com/autofloss/autofloss/internal/app"
)

// Shared are the parts of a process that the API shares with the pipeline when both run in one process
// (`autofloss serve`): one esp.Client (connect checks and floss runs of an account share its rate limiter),
// one Prometheus registry (/metrics shows every series) and one enqueuer. A nil field is created by FromApp.
type Shared struct {
	Client   *esp.Client
	Metrics  *prometheus.Registry
	Enqueuer Enqueuer
}

// FromApp builds the API handler of a started process (cmd/api, `autofloss serve`): the esp registry and
// client from the config, an asynq client on the process's Redis, a Prometheus registry with the Go and
// process collectors — each unless shared gives it. close releases what FromApp created.
func FromApp(a *app.App, shared Shared) (h http.Handler, close func(), err error) {
	reg := esp.Platforms()
	opts, copts := espconfig.Options(a.Config.ESP)
	if shared.Client == nil {
		shared.Client = esp.NewClient(copts)
	}
	closeFn := func() {}
	if shared.Enqueuer == nil {
		enq := asynq.NewClient(a.RedisOpt)
		shared.Enqueuer, closeFn = enq, func() { _ = enq.Close() }
	}
	if shared.Metrics == nil {
		shared.Metrics = prometheus.NewRegistry()
		shared.Metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	srv := a.Config.Server
	h, err = New(Deps{
		Store:    a.Store,
		Registry: reg,
		Adapters: RegistryAdapters{Registry: reg, Client: shared.Client, Options: opts},
		Enqueuer: shared.Enqueuer,
		Redis:    CheckFunc(func(ctx context.Context) error { return a.Redis.Ping(ctx).Err() }),
		Queues:   a.RedisOpt,
		Settings: Settings{
			MaxBodyBytes: srv.MaxBodyBytes, RateLimitPerMinute: srv.RateLimitPerMinute, AdminToken: srv.AdminToken,
			IdempotencyTTL: srv.IdempotencyTTL, IncrementalLookback: a.Config.Scheduler.IncrementalLookback,
			BaseURLs: opts.BaseURLs,
		},
		Metrics: shared.Metrics,
		Logger:  a.Log,
	})
	if err != nil {
		closeFn()
		return nil, nil, err
	}
	return h, closeFn, nil
}
