// Command api serves the integrations API and the ops endpoints (/healthz, /readyz, /metrics, /ops/queues/)
// until SIGINT/SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/autofloss/autofloss/api"
	"github.com/autofloss/autofloss/internal/app"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("api", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := fs.String("config", "", "config file (default $AUTOFLOSS_CONFIG or ./config.yaml)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.Start(ctx, app.Options{ConfigPath: *cfg, LogOutput: stderr, Component: "api"})
	if err != nil {
		fmt.Fprintln(stderr, "api:", err)
		return 1
	}
	defer a.Close()
	h, closeAPI, err := api.FromApp(a, api.Shared{})
	if err != nil {
		fmt.Fprintln(stderr, "api:", err)
		return 1
	}
	defer closeAPI()
	if err := a.ServeHTTP(ctx, h, nil); err != nil {
		a.Log.Error().Err(err).Msg("api failed")
		return 1
	}
	return 0
}
