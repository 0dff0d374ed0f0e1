// Command worker runs the asynq server that executes floss tasks until SIGINT/SIGTERM, then finishes or
// checkpoints the tasks in hand within worker.shutdown_timeout.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/hibiken/asynq"

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
	mux := asynq.NewServeMux() // task handlers are registered here by the pipeline issue (jobs)
	if err := a.RunWorker(ctx, mux); err != nil {
		a.Log.Error().Err(err).Msg("worker failed")
		return 1
	}
	return 0
}
