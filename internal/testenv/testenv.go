// Package testenv gives tests real services: a private redis-server, a fresh PostgreSQL database, a
// temporary SQLite file, and an opened, migrated store. Nothing is mocked and nothing is skipped: when a
// service is missing the test fails with a message saying what to install or start.
//
//	addr := testenv.Redis(t)                 // "127.0.0.1:<port>", a redis-server private to this test
//	url := testenv.Postgres(t)               // postgres://…/af_test_<random>, dropped at cleanup
//	url := testenv.SQLite(t)                 // sqlite:<t.TempDir()>/autofloss.db
//	st := testenv.Store(t, url)              // *store.Store, migrated, closed at cleanup
//	for _, url := range testenv.Databases(t) // both of the above, to run one table of cases on each
//
// PostgreSQL is reached at AUTOFLOSS_TEST_POSTGRES_URL, default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable (the admin database used to create and drop
// the per-test databases). redis-server must be on PATH.
package testenv

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/autofloss/autofloss/store"
	"github.com/autofloss/autofloss/store/seal"
)

// DefaultPostgresURL is the admin connection used when AUTOFLOSS_TEST_POSTGRES_URL is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Redis starts a private redis-server (no persistence) on a free loopback port with its files in
// t.TempDir(), waits until it answers PING, and kills it at cleanup. It returns host:port.
func Redis(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("testenv: redis-server not found on PATH (apt-get install -y redis-server): %v", err)
	}
	dir := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port := freePort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--protected-mode", "no", "--loglevel", "warning")
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("redis-%d.log", port)))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			t.Fatalf("testenv: start redis-server: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		if lastErr = waitRedis(addr, exited); lastErr == nil {
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
				logf.Close()
			})
			return addr
		}
		_ = cmd.Process.Kill()
		<-exited
		logf.Close()
	}
	t.Fatalf("testenv: redis-server did not come up: %v", lastErr)
	return ""
}

func waitRedis(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("redis-server on %s exited (port taken?)", addr)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
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

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// PostgresAdminURL is the admin connection URL tests create databases through.
func PostgresAdminURL() string {
	if v := os.Getenv("AUTOFLOSS_TEST_POSTGRES_URL"); v != "" {
		return v
	}
	return DefaultPostgresURL
}

// Postgres creates a fresh database and returns its URL; the database is dropped at cleanup. It fails
// the test when PostgreSQL is unreachable.
func Postgres(t testing.TB) string {
	t.Helper()
	admin := PostgresAdminURL()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("testenv: PostgreSQL unreachable at %s (start it, e.g. .ci/run does): %v", redacted(admin), err)
	}
	defer conn.Close(context.Background())
	name := "af_test_" + randHex(8)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testenv: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("testenv: admin url: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// SQLite returns the URL of a new SQLite file in t.TempDir().
func SQLite(t testing.TB) string {
	t.Helper()
	return "sqlite:" + filepath.Join(t.TempDir(), "autofloss.db")
}

// Databases returns one fresh SQLite URL and one fresh PostgreSQL URL, named "sqlite" and "postgres", so a
// table of store cases runs on both: for name, url := range testenv.Databases(t) { t.Run(name, …) }.
func Databases(t testing.TB) map[string]string {
	t.Helper()
	return map[string]string{"sqlite": SQLite(t), "postgres": Postgres(t)}
}

// KeyRing returns a key ring with one fresh random key "test1".
func KeyRing(t testing.TB) *seal.KeyRing {
	t.Helper()
	k, err := seal.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	r, err := seal.NewKeyRing([]seal.Key{{ID: "test1", Key: k}}, "")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Store opens and migrates the store at url with a fresh key ring (KeyRing) and closes it at cleanup.
func Store(t testing.TB, url string) *store.Store {
	t.Helper()
	return StoreWith(t, url, store.Options{Keys: KeyRing(t)})
}

// StoreWith is Store with explicit options (a shared key ring, a fake clock).
func StoreWith(t testing.TB, url string, opts store.Options) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := store.Open(ctx, url, opts)
	if err != nil {
		t.Fatalf("testenv: open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatalf("testenv: migrate store: %v", err)
	}
	return st
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable url)"
	}
	return u.Redacted()
}

// WaitRun polls st until the run is in one of states and returns it, failing t after timeout (a bound
// on a hang, not a speed assertion).
func WaitRun(t testing.TB, st *store.Store, runID string, timeout time.Duration, states ...string) store.Run {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		run, err := st.RunByID(context.Background(), runID)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(states, run.State) {
			return run
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s still %s after %s (pages %d, counts %+v, error %+v)", runID, run.State, timeout, run.Pages, run.Counts, run.Error)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
