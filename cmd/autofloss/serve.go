package main

import (
	"context"
	"io"

	"golang.org/x/sync/errgroup"

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
	p, err := a.NewPipeline(nil)
	if err != nil {
		return err
	}
	defer p.Close()
	h, closeAPI, err := serveHandler(a, p)
	if err != nil {
		return err
	}
	defer closeAPI()
	sched, err := a.Scheduler(p)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.ServeHTTP(ctx, h, nil) })
	g.Go(func() error { return a.RunPipelineWorker(ctx, p) })
	g.Go(func() error { return a.RunScheduler(ctx, sched.Tick) })
	return g.Wait()
}
