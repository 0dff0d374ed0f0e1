package main

import (
	"context"
	"net/http"

	"github.com/autofloss/autofloss/api"
	"github.com/autofloss/autofloss/internal/app"
)

// serveHandler is serve's HTTP surface: the integrations API and the verify_first webhooks (/v1/hooks/) on
// one mux. The API is built like api.FromApp but on the pipeline's Prometheus registry (so /metrics shows
// the pipeline's series too) and with the pipeline's esp.Client (one per process: connect checks and
// floss runs of an account share its rate limiter). close releases the API's asynq client.
func serveHandler(a *app.App, p *app.Pipeline) (http.Handler, func(), error) {
	d := p.Runner.Deps()
	srv := a.Config.Server
	h, err := api.New(api.Deps{
		Store:    a.Store,
		Registry: d.Registry,
		Adapters: api.RegistryAdapters{Registry: d.Registry, Client: d.Client, Options: d.ESP},
		Enqueuer: p.Enqueuer,
		Redis:    api.CheckFunc(func(ctx context.Context) error { return a.Redis.Ping(ctx).Err() }),
		Queues:   a.RedisOpt,
		Settings: api.Settings{
			MaxBodyBytes: srv.MaxBodyBytes, RateLimitPerMinute: srv.RateLimitPerMinute, AdminToken: srv.AdminToken,
			IdempotencyTTL: srv.IdempotencyTTL, IncrementalLookback: a.Config.Scheduler.IncrementalLookback,
			BaseURLs: d.ESP.BaseURLs,
		},
		Metrics: p.Metrics,
		Logger:  a.Log,
	})
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/hooks/", a.Hooks(p))
	mux.Handle("/", h)
	return mux, func() {}, nil
}
