package reliability_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/autofloss/autofloss/config"
	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/esp/esptest"
	"github.com/autofloss/autofloss/internal/app"
	"github.com/autofloss/autofloss/internal/testenv"
	"github.com/autofloss/autofloss/sandbox"
	"github.com/autofloss/autofloss/store"
)

// binaries are cmd/worker and cmd/scheduler, built once per test binary (without -race: the processes
// under test are the shipped ones; the test process itself runs with -race when asked).
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	if os.Getenv(envStoreChild) != "" {
		os.Exit(storeChild())
	}
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary returns the path of the built command (worker or scheduler).
func binary(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "autofloss-reliability-bin-")
		if buildErr != nil {
			return
		}
		for _, c := range []string{"worker", "scheduler"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, c), "./cmd/"+c)
			cmd.Dir = ".."
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build ./cmd/%s: %v\n%s", c, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, name)
}

// cluster is one test's deployment: a SQLite file shared by the test and its child processes (same key
// ring), a Redis, the sandbox mail world, one platform fake (optionally behind a counting proxy), one
// account with credits and one connection.
type cluster struct {
	t       *testing.T
	ctx     context.Context
	dir     string
	dbPath  string
	keysEnv string
	redis   string // host:port
	world   *sandbox.World
	fake    *esptest.Fake
	fakeURL string // what the workers are pointed at (the proxy when counting)
	slug    string
	st      *store.Store
	account store.Account
	cnx     store.Connection
	reads   *readCounter

	mu    sync.Mutex
	procs []*proc
}

type clusterOpts struct {
	n       int
	slug    string // "" = mailchimp
	faults  esptest.Faults
	redis   string // "" = a private testenv-like redis-server
	credits int64  // 0 = 2n
	count   bool   // count page reads through a proxy
	noCnx   bool   // no account/connection (the scheduler test makes its own)
}

func newCluster(t *testing.T, o clusterOpts) *cluster {
	t.Helper()
	if o.slug == "" {
		o.slug = "mailchimp"
	}
	c := &cluster{t: t, ctx: context.Background(), dir: t.TempDir(), slug: o.slug}
	c.dbPath = filepath.Join(c.dir, "autofloss.db")
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	c.keysEnv = "rel1:" + base64.StdEncoding.EncodeToString(key)
	ring, err := app.KeyRing(config.Secrets{Keys: []config.SecretKey{{ID: "rel1", Key: base64.StdEncoding.EncodeToString(key)}}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	c.st, err = store.Open(c.ctx, "sqlite:"+c.dbPath, store.Options{Keys: ring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.st.Close() })
	if _, err := c.st.Migrate(c.ctx); err != nil {
		t.Fatal(err)
	}
	c.redis = o.redis
	if c.redis == "" {
		c.redis = startRedis(t, filepath.Join(c.dir, "redis"), 0, false).addr
	}
	if c.world, err = sandbox.StartWorld(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.world.Close)
	if o.n > 0 {
		seed := sandbox.SeedOptions(o.n, sandbox.SeedFor(o.slug))
		seed.Lists = 1
		c.fake, err = esptest.Start(o.slug, esptest.Options{Seed: seed, Limits: &esp.Limits{}, Faults: o.faults})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.fake.Close() })
		c.fakeURL = c.fake.URL()
		if o.count {
			c.reads = newReadCounter(t, c.fake.URL())
			c.fakeURL = c.reads.url
		}
	}
	t.Cleanup(c.stopAll)
	if o.noCnx {
		return c
	}
	if c.account, err = c.st.CreateAccount(c.ctx, "reliability"); err != nil {
		t.Fatal(err)
	}
	if o.credits == 0 {
		o.credits = 2 * int64(o.n)
	}
	if _, err := c.st.AddCredits(c.ctx, c.account.ID, o.credits, "", "grant"); err != nil {
		t.Fatal(err)
	}
	settings, _ := json.Marshal(map[string]any{"aggressiveness": "normal", "verify_first": false, "on_failure": "update_fields"})
	c.cnx, err = c.st.CreateConnection(c.ctx, store.NewConnection{AccountID: c.account.ID, Type: o.slug, Name: "reliability",
		AutoFlossEnabled: true, Settings: settings, Credentials: c.fake.Credentials(true)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// env is the child processes' configuration: AUTOFLOSS_* variables only (the -config file does not exist).
func (c *cluster) env(extra ...string) []string {
	hp := make([]string, 0)
	eo, err := c.world.EngineOptions()
	if err != nil {
		c.t.Fatal(err)
	}
	for h, p := range eo.HostPorts {
		hp = append(hp, fmt.Sprintf("%s=%d", h, p))
	}
	sort.Strings(hp)
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + c.dir,
		"AUTOFLOSS_DATABASE_URL=sqlite:" + c.dbPath,
		"AUTOFLOSS_REDIS_URL=redis://" + c.redis + "/0",
		"AUTOFLOSS_SECRETS_KEYS=" + c.keysEnv,
		"AUTOFLOSS_LOG_FORMAT=json", "AUTOFLOSS_LOG_LEVEL=info",
		"AUTOFLOSS_VERIFY_DNS_SERVERS=" + c.world.Resolver,
		config.EnvHostPorts + "=" + strings.Join(hp, ","),
		"AUTOFLOSS_VERIFY_DNS_TIMEOUT=1s", "AUTOFLOSS_VERIFY_CONNECT_TIMEOUT=2s", "AUTOFLOSS_VERIFY_COMMAND_TIMEOUT=2s",
		"AUTOFLOSS_VERIFY_HELO_NAME=verify.sandbox.autofloss.localhost",
		"AUTOFLOSS_VERIFY_MAIL_FROM=probe@verify.sandbox.autofloss.localhost",
		"AUTOFLOSS_WORKER_CONCURRENCY=2", "AUTOFLOSS_WORKER_SHUTDOWN_TIMEOUT=30s",
		"AUTOFLOSS_WORKER_METRICS_LISTEN=127.0.0.1:0",
		"AUTOFLOSS_CREDITS_REVERIFY_WINDOW=720h",
		"AUTOFLOSS_ESP_RETRY_BASE_DELAY=20ms", // injected faults are retried quickly; the backoff shape is esp's own test
	}
	if c.fakeURL != "" {
		env = append(env, "AUTOFLOSS_ESP_"+strings.ToUpper(c.slug)+"_BASE_URL="+c.fakeURL)
	}
	return append(env, extra...)
}

// proc is one child process; its stderr (zerolog JSON) is kept in a file of the cluster's directory.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

func (c *cluster) start(name string, extraEnv ...string) *proc {
	c.t.Helper()
	c.mu.Lock()
	n := len(c.procs)
	c.mu.Unlock()
	p := &proc{name: name, log: filepath.Join(c.dir, fmt.Sprintf("%02d-%s.log", n, name)), exited: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		c.t.Fatal(err)
	}
	p.cmd = exec.Command(binary(c.t, name), "-config", filepath.Join(c.dir, "absent.yaml"))
	p.cmd.Env = c.env(extraEnv...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); f.Close(); close(p.exited) }()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p
}

// signal sends sig and waits (bounded) for the process to exit.
func (p *proc) signal(t *testing.T, sig syscall.Signal, within time.Duration) {
	t.Helper()
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(within):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Fatalf("%s did not exit within %s of %v", p.name, within, sig)
	}
}

func (c *cluster) stopAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
}

// logs returns every log line the cluster's processes wrote.
func (c *cluster) logs() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	var all []byte
	for _, p := range c.procs {
		b, _ := os.ReadFile(p.log)
		all = append(all, b...)
	}
	return all
}

// dumpLogs prints the tail of the processes' logs when the test failed.
func (c *cluster) dumpLogs() {
	if !c.t.Failed() {
		return
	}
	b := c.logs()
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	c.t.Logf("process logs (tail):\n%s", b)
}

// db opens the SQLite file for direct counting queries.
func (c *cluster) db() *sql.DB {
	c.t.Helper()
	db, err := sql.Open("sqlite3", "file:"+c.dbPath+"?_busy_timeout=10000")
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = db.Close() })
	return db
}

func queryInt(t *testing.T, db *sql.DB, q string, args ...any) int64 {
	t.Helper()
	var n sql.NullInt64
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n.Int64
}

// waitRun polls the store until the run is in one of states, failing after timeout (a hang bound).
func (c *cluster) waitRun(runID string, timeout time.Duration, states ...string) store.Run {
	c.t.Helper()
	return testenv.WaitRun(c.t, c.st, runID, timeout, states...)
}

// checkRun asserts the guarantees of a finished run: it is done; every contact of the fake has exactly one
// result for it, with the reason the sandbox world gives its kind; credits debited (ledger) == the run's
// credits_used == its non-reused results == its verified count; every failed contact's write-back is on
// the fake (mf_* fields with the stored reason) and no passed contact was written to.
func (c *cluster) checkRun(runID string) store.Run {
	t := c.t
	t.Helper()
	run, err := c.st.RunByID(c.ctx, runID)
	if err != nil {
		t.Fatal(err)
	}
	if run.State != store.RunDone {
		t.Fatalf("run %s is %s (%+v)", runID, run.State, run.Error)
	}
	db := c.db()
	total := queryInt(t, db, `SELECT COUNT(*) FROM results WHERE run_id = ?`, runID)
	distinct := queryInt(t, db, `SELECT COUNT(*) FROM (SELECT DISTINCT contact_id, list_id FROM results WHERE run_id = ?)`, runID)
	charged := queryInt(t, db, `SELECT COUNT(*) FROM results WHERE run_id = ? AND NOT reused`, runID)
	debited := -queryInt(t, db, `SELECT COALESCE(SUM(delta), 0) FROM credit_ledger WHERE account_id = ? AND delta < 0`, c.account.ID)
	runDebit := -queryInt(t, db, `SELECT COALESCE(SUM(delta), 0) FROM credit_ledger WHERE run_id = ? AND delta < 0`, runID)
	if total != distinct {
		t.Errorf("%d results for %d distinct contacts: a contact has two results", total, distinct)
	}
	if debited != run.CreditsUsed || runDebit != run.CreditsUsed || charged != run.CreditsUsed || run.Counts.Verified != run.CreditsUsed {
		t.Errorf("credits: ledger debits %d (run's %d), run.credits_used %d, non-reused results %d, verified %d",
			debited, runDebit, run.CreditsUsed, charged, run.Counts.Verified)
	}
	// Every contact's result and write-back, against the fake's records.
	type row struct {
		reason, action string
		passed         bool
	}
	got := make(map[string]row, total)
	rows, err := db.Query(`SELECT contact_id, reason, action, passed FROM results WHERE run_id = ?`, runID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var r row
		if err := rows.Scan(&id, &r.reason, &r.action, &r.passed); err != nil {
			t.Fatal(err)
		}
		got[id] = r
	}
	rows.Close()
	exp := c.fake.Expected()
	want, bad, writes := 0, 0, 0
	fPassed, fReason := c.fake.FieldName(esp.FieldPassed), c.fake.FieldName(esp.FieldReason)
	for _, rec := range exp {
		if rec.Status == esp.StatusUnsubscribed && len(rec.Fields) == 0 {
			if _, ok := got[rec.ID]; ok {
				t.Errorf("contact %s: unsubscribed on the platform but has a result", rec.ID)
				bad++
			}
			continue
		}
		want++
		r, ok := got[rec.ID]
		if !ok {
			if bad++; bad < 10 {
				t.Errorf("contact %s (%s): no result", rec.ID, rec.Kind)
			}
			continue
		}
		wantReason := string(sandbox.ExpectedReason(rec.Kind, false))
		if r.reason != wantReason || r.passed != (wantReason == "valid") {
			if bad++; bad < 10 {
				t.Errorf("contact %s (%s): reason %s passed %v, want %s", rec.ID, rec.Kind, r.reason, r.passed, wantReason)
			}
		}
		switch {
		case r.passed:
			if len(rec.Fields) > 0 || r.action != "none" {
				if bad++; bad < 10 {
					t.Errorf("contact %s passed but action %s, fields %v", rec.ID, r.action, rec.Fields)
				}
			}
		default:
			writes++
			if r.action != "update_fields" || rec.Fields[fPassed] != "false" || rec.Fields[fReason] != r.reason {
				if bad++; bad < 10 {
					t.Errorf("contact %s (%s) failed (%s): action %s, write-back on the platform %v", rec.ID, rec.Kind, r.reason, r.action, rec.Fields)
				}
			}
		}
	}
	if int64(want) != total || run.Counts.Seen != int64(c.fake.N()) {
		t.Errorf("%d results, %d contacts to clean, seen %d of %d", total, want, run.Counts.Seen, c.fake.N())
	}
	if run.Counts.Failed != int64(writes) || run.Counts.WrittenBack != int64(writes) {
		t.Errorf("failed %d, written back %d, failed contacts on the platform %d", run.Counts.Failed, run.Counts.WrittenBack, writes)
	}
	t.Logf("run %s: %d results, %d verified, %d reused, %d written back, %d pages", runID, total, run.Counts.Verified,
		run.Counts.Reused, writes, run.Pages)
	return run
}

// readCounter is a reverse proxy in front of the fake counting GET requests per full URL: every page of
// contacts has its own URL (list, offset/cursor), so a URL read twice is a page read — and verified —
// twice.
type readCounter struct {
	url string
	mu  sync.Mutex
	n   map[string]int
}

func newReadCounter(t *testing.T, target string) *readCounter {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	rc := &readCounter{n: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			rc.mu.Lock()
			rc.n[r.URL.RequestURI()]++
			rc.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	rc.url = srv.URL
	return rc
}

// pageReads returns, for GET URLs containing sub, how many distinct URLs were read and those read more
// than once.
func (rc *readCounter) pageReads(sub string) (distinct int, twice []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for u, k := range rc.n {
		if !strings.Contains(u, sub) {
			continue
		}
		distinct++
		if k > 1 {
			twice = append(twice, fmt.Sprintf("%s ×%d", u, k))
		}
	}
	return distinct, twice
}

// redisServer is a private redis-server on a fixed loopback port that can be stopped and restarted on the
// same port and data directory (persist: appendonly with fsync always, so what was acknowledged survives).
type redisServer struct {
	t       *testing.T
	addr    string
	port    int
	dir     string
	persist bool
	cmd     *exec.Cmd
	exited  chan struct{}
}

func startRedis(t *testing.T, dir string, port int, persist bool) *redisServer {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if port == 0 {
		port = freePort(t)
	}
	r := &redisServer{t: t, port: port, addr: fmt.Sprintf("127.0.0.1:%d", port), dir: dir, persist: persist}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *redisServer) start() {
	r.t.Helper()
	args := []string{"--port", fmt.Sprint(r.port), "--bind", "127.0.0.1", "--dir", r.dir, "--protected-mode", "no", "--loglevel", "warning"}
	if r.persist {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always", "--save", "")
	} else {
		args = append(args, "--appendonly", "no", "--save", "")
	}
	r.cmd = exec.Command("redis-server", args...)
	logf, _ := os.OpenFile(filepath.Join(r.dir, "redis.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("redis-server (apt-get install -y redis-server): %v", err)
	}
	r.exited = make(chan struct{})
	go func() { _ = r.cmd.Wait(); logf.Close(); close(r.exited) }()
	cl := redis.NewClient(&redis.Options{Addr: r.addr})
	defer cl.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err := cl.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		select {
		case <-r.exited:
			b, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			r.t.Fatalf("redis-server on %s exited: %s", r.addr, b)
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on %s: %v", r.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills the server (SIGKILL: what was not persisted is lost).
func (r *redisServer) stop() {
	if r.cmd == nil {
		return
	}
	select {
	case <-r.exited:
	default:
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	return db
}
