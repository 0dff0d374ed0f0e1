// Command scheduler ticks on scheduler.tick and handles due connections until SIGINT/SIGTERM.
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
	// The pipeline issue replaces CountDue with the tick that enqueues floss:sync for due connections.
	if err := a.RunScheduler(ctx, a.CountDue); err != nil {
		a.Log.Error().Err(err).Msg("scheduler failed")
		return 1
	}
	return 0
}
