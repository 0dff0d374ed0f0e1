package main

import (
	"net/http"

	"github.com/autofloss/autofloss/api"
	"github.com/autofloss/autofloss/internal/app"
)

// serveHandler is serve's HTTP surface: the integrations API and the verify_first webhooks (/v1/hooks/) on
// one mux. The API shares the pipeline's esp.Client (connect checks and floss runs of an account share its
// rate limiter), its Prometheus registry (/metrics shows the pipeline's series too) and its enqueuer.
func serveHandler(a *app.App, p *app.Pipeline) (http.Handler, func(), error) {
	shared := api.Shared{Client: p.Runner.Deps().Client, Metrics: p.Metrics}
	if p.Enqueuer != nil {
		shared.Enqueuer = p.Enqueuer
	}
	h, closeAPI, err := api.FromApp(a, shared)
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/hooks/", a.Hooks(p))
	mux.Handle("/", h)
	return mux, closeAPI, nil
}
