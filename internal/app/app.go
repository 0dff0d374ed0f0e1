// Package app is the start-up every autofloss process shares: config → logger → key ring → store
// (opened and migrated) → Redis, plus the three long-running parts (HTTP server, asynq worker, scheduler
// cron) as functions that run until their context ends and then stop cleanly. cmd/api, cmd/worker,
// cmd/scheduler and `autofloss serve` are thin wrappers around it; later issues plug their handlers in.
package app

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/autofloss/autofloss/config"
	"github.com/autofloss/autofloss/store"
	"github.com/autofloss/autofloss/store/seal"
)

// Options say what a process needs.
type Options struct {
	ConfigPath string              // "" = AUTOFLOSS_CONFIG or ./config.yaml
	Getenv     func(string) string // nil = os.Getenv
	LogOutput  io.Writer           // where logs go (stderr)
	Component  string              // "api", "worker", "scheduler", "serve", "cli": tags every log line
	NoRedis    bool                // admin commands that only touch the store
	// LocalRedis starts a redis-server under ./var/redis when nothing answers on a loopback redis.url
	// (`make run` on a fresh machine); it stops with Close.
	LocalRedis bool
}

// App holds a started process's dependencies.
type App struct {
	Config config.Config
	Log    zerolog.Logger
	Keys   *seal.KeyRing
	Store  *store.Store
	// RedisOpt is for asynq (client, server, inspector); Redis is a plain client for pings and leases.
	RedisOpt asynq.RedisConnOpt
	Redis    *redis.Client

	local *localRedis
}

// Start loads the config, builds the logger and key ring, opens and migrates the store, and connects to
// Redis (waiting up to 10 s for it to answer). Close releases everything.
func Start(ctx context.Context, o Options) (*App, error) {
	if o.Getenv == nil {
		o.Getenv = osGetenv
	}
	cfg, err := config.Load(config.PathFrom(o.ConfigPath, o.Getenv), o.Getenv)
	if err != nil {
		return nil, err
	}
	log, err := NewLogger(cfg.Log, o.LogOutput, o.Component)
	if err != nil {
		return nil, err
	}
	keys, err := KeyRing(cfg.Secrets, log)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, cfg.Database.URL, store.Options{Keys: keys})
	if err != nil {
		return nil, err
	}
	n, err := st.Migrate(ctx)
	if err != nil {
		st.Close()
		return nil, err
	}
	if n > 0 {
		log.Info().Int("applied", n).Str("dialect", string(st.Dialect())).Msg("database migrated")
	}
	a := &App{Config: cfg, Log: log, Keys: keys, Store: st}
	if o.NoRedis {
		return a, nil
	}
	a.RedisOpt, err = asynq.ParseRedisURI(cfg.Redis.URL)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("config: redis.url: %w", err)
	}
	ropt, err := redis.ParseURL(cfg.Redis.URL)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("config: redis.url: %w", err)
	}
	if o.LocalRedis {
		if a.local, err = startLocalRedis(ctx, ropt, "./var/redis", log); err != nil {
			st.Close()
			return nil, err
		}
	}
	a.Redis = redis.NewClient(ropt)
	if err := waitRedis(ctx, a.Redis, 10*time.Second); err != nil {
		a.Close()
		return nil, fmt.Errorf("redis at %s: %w", ropt.Addr, err)
	}
	log.Info().Str("database", string(st.Dialect())).Str("redis", ropt.Addr).Msg("started")
	return a, nil
}

func waitRedis(ctx context.Context, c *redis.Client, max time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, max)
	defer cancel()
	for {
		err := c.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not answering: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Close releases the store and the Redis client.
func (a *App) Close() {
	if a.Redis != nil {
		_ = a.Redis.Close()
	}
	if a.Store != nil {
		_ = a.Store.Close()
	}
	a.local.stop()
}

// Ready checks the store and Redis answer (for /readyz).
func (a *App) Ready(ctx context.Context) error {
	if err := a.Store.Ping(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if a.Redis != nil {
		if err := a.Redis.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("redis: %w", err)
		}
	}
	return nil
}

// NewLogger builds the zerolog logger: JSON lines by default, human-readable with format console.
func NewLogger(c config.Log, w io.Writer, component string) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(c.Level)
	if err != nil {
		return zerolog.Logger{}, fmt.Errorf("config: log.level: %w", err)
	}
	if c.Format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	l := zerolog.New(w).Level(level).With().Timestamp()
	if component != "" {
		l = l.Str("component", component)
	}
	return l.Logger(), nil
}

// KeyRing builds the credential key ring from config. With no keys configured it uses (creating once)
// the key file and warns: a laptop default, not a production setup.
func KeyRing(c config.Secrets, log zerolog.Logger) (*seal.KeyRing, error) {
	if len(c.Keys) == 0 {
		k, created, err := seal.LoadOrCreateKeyFile(c.KeyFile)
		if err != nil {
			return nil, err
		}
		ev := log.Warn().Str("key_file", c.KeyFile)
		if created {
			ev.Msg("no secrets.keys configured: generated a credential key into the key file; back it up or configure secrets.keys")
		} else {
			ev.Msg("no secrets.keys configured: using the credential key from the key file; configure secrets.keys in production")
		}
		return seal.NewKeyRing([]seal.Key{{ID: "file", Key: k}}, "file")
	}
	keys := make([]seal.Key, 0, len(c.Keys))
	for _, k := range c.Keys {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(k.Key))
		if err != nil {
			return nil, fmt.Errorf("config: secrets.keys[%s]: not base64", k.ID)
		}
		keys = append(keys, seal.Key{ID: k.ID, Key: raw})
	}
	r, err := seal.NewKeyRing(keys, c.ActiveID)
	if err != nil {
		return nil, fmt.Errorf("config: secrets: %w", err)
	}
	return r, nil
}
