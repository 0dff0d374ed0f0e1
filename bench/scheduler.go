package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/autofloss/autofloss/jobs"
	"github.com/autofloss/autofloss/store"
)

// SchedulerResult is one scheduler tick over many due connections.
type SchedulerResult struct {
	DB          string // sqlite or postgres
	Connections int
	Concurrency int           // the scheduler's enqueue concurrency (0 = its default)
	Setup       time.Duration // creating accounts and connections (not measured)
	Elapsed     time.Duration // the tick
	Stats       jobs.TickStats
	Pending     int64 // tasks pending in the queue after the tick
	RedisBefore int64 // used_memory before the tick
	RedisAfter  int64 // used_memory after
}

// Scheduler creates n due connections (100 per account, each account with credits, auto-floss on, never
// synced) in a fresh store (db "sqlite": a temporary file; "postgres": a fresh database created through
// pgAdminURL and dropped afterwards), starts a private redis-server, and times one jobs.Scheduler tick
// enqueueing through jobs.NewPipelinedClient (concurrency: the scheduler's enqueue concurrency, 0 = its
// default).
func Scheduler(ctx context.Context, db string, n int, pgAdminURL string, concurrency int) (SchedulerResult, error) {
	res := SchedulerResult{DB: db, Connections: n, Concurrency: concurrency}
	dir, err := os.MkdirTemp("", "autofloss-bench-sched-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	var dbURL string
	switch db {
	case "sqlite":
		dbURL = "sqlite:" + dir + "/autofloss.db"
	case "postgres":
		u, drop, err := freshPostgres(ctx, pgAdminURL)
		if err != nil {
			return res, err
		}
		defer drop()
		dbURL = u
	default:
		return res, fmt.Errorf("bench: unknown store %q", db)
	}
	st, err := OpenStore(ctx, dbURL)
	if err != nil {
		return res, err
	}
	defer st.Close()
	addr, stop, err := StartRedis(dir)
	if err != nil {
		return res, err
	}
	defer stop()

	t0 := time.Now()
	settings, _ := json.Marshal(map[string]any{"aggressiveness": "normal", "verify_first": false, "on_failure": "update_fields"})
	creds := map[string]string{"api_key": "bench-key-us1"}
	const perAccount = 100
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for a := 0; a < (n+perAccount-1)/perAccount; a++ {
		g.Go(func() error {
			acct, err := st.CreateAccount(gctx, fmt.Sprintf("bench-%d", a))
			if err != nil {
				return err
			}
			if _, err := st.AddCredits(gctx, acct.ID, 1_000_000, "", "grant"); err != nil {
				return err
			}
			for i := a * perAccount; i < min(n, (a+1)*perAccount); i++ {
				if _, err := st.CreateConnection(gctx, store.NewConnection{AccountID: acct.ID, Type: "mailchimp",
					Name: fmt.Sprintf("c%d", i), AutoFlossEnabled: true, Settings: settings, Credentials: creds}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return res, err
	}
	res.Setup = time.Since(t0)

	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	if res.RedisBefore, err = usedMemory(ctx, rdb); err != nil {
		return res, err
	}
	client, closeClient := jobs.NewPipelinedClient(asynq.RedisClientOpt{Addr: addr})
	defer closeClient()
	sch := jobs.NewScheduler(st, client, jobs.SchedulerConfig{FlossInterval: 24 * time.Hour, VerifyFirstInterval: time.Hour,
		IncrementalLookback: time.Hour, Concurrency: concurrency}, zerolog.New(io.Discard), nil, nil)
	t1 := time.Now()
	stats, err := sch.TickStats(ctx)
	res.Elapsed = time.Since(t1)
	res.Stats = stats
	if err != nil {
		return res, err
	}
	if res.RedisAfter, err = usedMemory(ctx, rdb); err != nil {
		return res, err
	}
	ins := asynq.NewInspector(asynq.RedisClientOpt{Addr: addr})
	defer ins.Close()
	if qi, err := ins.GetQueueInfo(jobs.QueueLow); err == nil {
		res.Pending = int64(qi.Pending)
	}
	return res, nil
}

func usedMemory(ctx context.Context, rdb *redis.Client) (int64, error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("bench: no used_memory in INFO memory")
}

// StartRedis starts a private redis-server (no persistence) on a free loopback port with its files in
// dir, like internal/testenv.Redis, and returns its address and a stop function.
func StartRedis(dir string) (string, func(), error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, fmt.Errorf("bench: redis-server not found on PATH: %w", err)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", nil, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--protected-mode", "no", "--loglevel", "warning")
		if err := cmd.Start(); err != nil {
			return "", nil, err
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		if lastErr = waitPong(addr, exited); lastErr == nil {
			var once sync.Once
			return addr, func() { once.Do(func() { _ = cmd.Process.Kill(); <-exited }) }, nil
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	return "", nil, fmt.Errorf("bench: redis-server did not come up: %w", lastErr)
}

func waitPong(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("redis-server on %s exited", addr)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			_ = c.SetDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte("PING\r\n"))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "+PONG") {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no PONG from %s", addr)
}

// freshPostgres creates a database through the admin URL and returns its URL and a drop function.
func freshPostgres(ctx context.Context, admin string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("bench: PostgreSQL unreachable: %w", err)
	}
	defer conn.Close(context.Background())
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "af_bench_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, err
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
	return u.String(), drop, nil
}
