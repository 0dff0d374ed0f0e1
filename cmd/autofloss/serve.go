package main

import (
	"context"
	"io"

	"github.com/hibiken/asynq"
	"golang.org/x/sync/errgroup"

	"github.com/autofloss/autofloss/api"
	"github.com/autofloss/autofloss/internal/app"
)

// runServe runs the api server, the asynq worker and the scheduler cron in one process (small installs
// and `make run`) until SIGINT/SIGTERM. Later issues plug in the API handler, the task handlers and the
// enqueueing tick.
func runServe(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, cfg := flags("serve", stderr)
	localRedis := fs.Bool("local-redis", false, "start a redis-server under ./var/redis when nothing answers on a loopback redis.url")
	sandboxOn := fs.Bool("sandbox", false, "run against loopback platform fakes and a loopback mail world, with a demo account (see demo.go)")
	if err := parse(fs, args); err != nil {
		return err
	}
	a, err := app.Start(ctx, app.Options{ConfigPath: *cfg, LogOutput: stderr, Component: "serve", LocalRedis: *localRedis})
	if err != nil {
		return err
	}
	defer a.Close()
	stopSandbox, err := startSandbox(ctx, a, *sandboxOn, stdout)
	if err != nil {
		return err
	}
	defer stopSandbox()
	h, closeAPI, err := api.FromApp(a)
	if err != nil {
		return err
	}
	defer closeAPI()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.ServeHTTP(ctx, h, nil) })
	g.Go(func() error { return a.RunWorker(ctx, asynq.NewServeMux()) })
	g.Go(func() error { return a.RunScheduler(ctx, a.CountDue) })
	return g.Wait()
}
