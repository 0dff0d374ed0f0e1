// Command scheduler ticks on scheduler.tick and enqueues a floss:sync for every due connection until
// SIGINT/SIGTERM; several replicas may run (they never enqueue a connection twice).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/autofloss/autofloss/internal/app"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("scheduler", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := fs.String("config", "", "config file (default $AUTOFLOSS_CONFIG or ./config.yaml)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.Start(ctx, app.Options{ConfigPath: *cfg, LogOutput: stderr, Component: "scheduler"})
	if err != nil {
		fmt.Fprintln(stderr, "scheduler:", err)
		return 1
	}
	defer a.Close()
	p, err := a.NewPipeline(nil)
	if err != nil {
		a.Log.Error().Err(err).Msg("scheduler: pipeline")
		return 1
	}
	defer p.Close()
	sched, err := a.Scheduler(p)
	if err != nil {
		a.Log.Error().Err(err).Msg("scheduler failed")
		return 1
	}
	if err := a.RunScheduler(ctx, sched.Tick); err != nil {
		a.Log.Error().Err(err).Msg("scheduler failed")
		return 1
	}
	return 0
}
