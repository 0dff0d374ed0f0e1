// Command worker runs the asynq server that executes floss tasks (floss:sync, floss:verify_contact) until
// SIGINT/SIGTERM, then commits the pages in hand of each run (those already read) and stops within worker.shutdown_timeout; it
// serves /metrics, /healthz and /readyz on worker.metrics_listen.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/autofloss/autofloss/internal/app"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := fs.String("config", "", "config file (default $AUTOFLOSS_CONFIG or ./config.yaml)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.Start(ctx, app.Options{ConfigPath: *cfg, LogOutput: stderr, Component: "worker"})
	if err != nil {
		fmt.Fprintln(stderr, "worker:", err)
		return 1
	}
	defer a.Close()
	p, err := a.NewPipeline(nil)
	if err != nil {
		a.Log.Error().Err(err).Msg("worker: pipeline")
		return 1
	}
	defer p.Close()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.ServeMetrics(gctx, p) })
	g.Go(func() error { return a.RunPipelineWorker(gctx, p) })
	if err := g.Wait(); err != nil {
		a.Log.Error().Err(err).Msg("worker failed")
		return 1
	}
	return 0
}
