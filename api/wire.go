package api

import (
	"context"
	"net/http"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/autofloss/autofloss/config"
	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/internal/app"
)

// ESPOptions glues the ESP section of the config to the esp package: base-URL overrides, API revisions,
// and per-platform limits for the shared client.
func ESPOptions(c config.ESP) (esp.Options, esp.ClientOptions) {
	o := esp.Options{BaseURLs: map[string]string{}, Revisions: map[string]string{}}
	co := esp.ClientOptions{RequestTimeout: c.Timeout, Limits: map[string]esp.Limits{}}
	if c.MaxRetries > 0 {
		co.Retry.MaxAttempts = c.MaxRetries + 1
	}
	reg := esp.Platforms()
	for slug, p := range c.Platforms {
		if p.BaseURL != "" {
			o.BaseURLs[slug] = p.BaseURL
		}
		if p.Revision != "" {
			o.Revisions[slug] = p.Revision
		}
		if p.RatePerSecond > 0 || p.Burst > 0 {
			def, _ := reg.Lookup(slug)
			l := def.Limits
			if p.RatePerSecond > 0 {
				l.Rate = p.RatePerSecond
			}
			if p.Burst > 0 {
				l.Burst = p.Burst
			}
			co.Limits[slug] = l
		}
	}
	return o, co
}

// FromApp builds the API handler of a started process (cmd/api, `autofloss serve`): the esp registry and
// shared client from the config, an asynq client on the process's Redis, a fresh Prometheus registry with
// the Go and process collectors. close releases the asynq client.
func FromApp(a *app.App) (h http.Handler, close func(), err error) {
	reg := esp.Platforms()
	opts, copts := ESPOptions(a.Config.ESP)
	client := esp.NewClient(copts)
	enq := asynq.NewClient(a.RedisOpt)
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv := a.Config.Server
	h, err = New(Deps{
		Store:    a.Store,
		Registry: reg,
		Adapters: RegistryAdapters{Registry: reg, Client: client, Options: opts},
		Enqueuer: enq,
		Redis:    CheckFunc(func(ctx context.Context) error { return a.Redis.Ping(ctx).Err() }),
		Queues:   a.RedisOpt,
		Settings: Settings{
			MaxBodyBytes: srv.MaxBodyBytes, RateLimitPerMinute: srv.RateLimitPerMinute, AdminToken: srv.AdminToken,
			IdempotencyTTL: srv.IdempotencyTTL, IncrementalLookback: a.Config.Scheduler.IncrementalLookback,
			BaseURLs: opts.BaseURLs,
		},
		Metrics: metrics,
		Logger:  a.Log,
	})
	if err != nil {
		_ = enq.Close()
		return nil, nil, err
	}
	return h, func() { _ = enq.Close() }, nil
}
