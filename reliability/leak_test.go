package reliability_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/autofloss/autofloss/api"
	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/esp/esptest"
	"github.com/autofloss/autofloss/internal/testenv"
	"github.com/autofloss/autofloss/store"
)

// leakContacts is the size of the fake's list: two pages of the Mailchimp adapter, so the run checkpoints
// between pages and the asynq task is re-read; small enough that the whole test stays well under 40 s.
const leakContacts = 2000

// TestNothingLeaks is issue 8's security test. A full run goes through the real parts: an account and API key
// in the store; the integrations API (api.New, the same SQLite store and Redis as the worker, a zerolog
// logger writing to a buffer the test keeps) on a real HTTP server; connect Mailchimp through the API with
// the fake's credentials (the base-URL override configured), PATCH on_failure update_fields, POST …/sync,
// the built cmd/worker binary (JSON log at debug level in a file) runs it to done (checkRun); a second
// connection with on_failure delete runs too, so contact snapshots exist. The fake injects 5xx, throttles,
// dropped connections and truncated bodies, so the retry and error paths log too. Failed requests are part
// of the run: a connect whose well-formed credentials the platform refuses, a call with a wrong API key, an
// admin call with a wrong token; an Idempotency-Key replay of the connect. Then every read endpoint is called: runs, results, /v1/integrations, /v1/integrations/mailchimp,
// each connection, /metrics of the API and of the worker, /readyz, and the asynqmon API under
// /ops/queues/api/ (queues, every task state of every queue, each task, servers).
//
// The needles are every plaintext credential (the api_key, the fake's secret inside it, the Basic
// credentials the adapter sends, the refused api_key, the account's API key, the admin token) and every
// seeded contact's address (case-insensitive, and its %40 query-escaped form). They are searched in:
//
//   - the SQLite file after PRAGMA wal_checkpoint(TRUNCATE), its -wal and -shm: credentials anywhere;
//     addresses in a VACUUM INTO copy from which results and contact_snapshots were deleted (then VACUUMed
//     again) — the only two tables allowed to hold addresses;
//   - the Redis keyspace, while the worker is up and after it stopped: every key name and every value of
//     every type (asynq's task hashes and server records included);
//   - every log line: the API's logger, the worker's log file, the redis-server log;
//   - every API response's headers and body: credentials everywhere, addresses everywhere but the results API.
//
// A hit is reported by source and needle index, never by value. Sanity checks prove the search can fail:
// the original database file and the results API do contain the addresses, the sent connect body contains
// the credential, the logs name the account and the run, Redis holds the run's task, asynqmon lists tasks,
// the copy still holds the run, every kind of fault was injected. The fake also proves the runs themselves
// (checkRun on the first). The file is package reliability_test, like the harness it uses.
func TestNothingLeaks(t *testing.T) {
	start := time.Now()
	c := newCluster(t, clusterOpts{n: leakContacts, noCnx: true, faults: esptest.Faults{ServerErrors: 0.05, Throttles: 0.03,
		Drops: 0.01, Truncations: 0.02, Seed: 8}})
	defer c.dumpLogs()
	ctx := c.ctx

	// Account, credits and API key, straight in the store (what `autofloss admin` does).
	var err error
	if c.account, err = c.st.CreateAccount(ctx, "leak test"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.st.AddCredits(ctx, c.account.ID, 10*leakContacts, "", "grant"); err != nil {
		t.Fatal(err)
	}
	apiKey, _, err := c.st.CreateAPIKey(ctx, c.account.ID)
	if err != nil {
		t.Fatal(err)
	}
	adminToken := randomHex(t, 24)

	// The integrations API on the same store and Redis, its log kept.
	apiLog := &testenv.Buffer{}
	reg := esp.Platforms()
	baseURLs := map[string]string{c.slug: c.fakeURL}
	client := esp.NewClient(esp.ClientOptions{Retry: esp.Retry{MaxAttempts: 8, BaseDelay: 5 * time.Millisecond,
		MaxDelay: 20 * time.Millisecond, MaxElapsed: 2 * time.Second}, RequestTimeout: 5 * time.Second})
	ropt := asynq.RedisClientOpt{Addr: c.redis}
	enq := asynq.NewClient(ropt)
	defer enq.Close()
	rdb := redis.NewClient(&redis.Options{Addr: c.redis})
	defer rdb.Close()
	h, err := api.New(api.Deps{
		Store:    c.st,
		Registry: reg,
		Adapters: api.RegistryAdapters{Registry: reg, Client: client, Options: esp.Options{BaseURLs: baseURLs}},
		Enqueuer: enq,
		Redis:    api.CheckFunc(func(ctx context.Context) error { return rdb.Ping(ctx).Err() }),
		Queues:   ropt,
		Settings: api.Settings{AdminToken: adminToken, ValidateTimeout: 5 * time.Second, IncrementalLookback: time.Hour,
			BaseURLs: baseURLs},
		Metrics: prometheus.NewRegistry(),
		Logger:  zerolog.New(apiLog).With().Timestamp().Logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	lr := &leakRun{t: t, base: srv.URL, key: apiKey}

	// Needles.
	creds := c.fake.Credentials(true)
	refused := "leakcanary" + randomHex(t, 11) + "-us19" // well-formed, refused by the fake
	var secrets needles
	for _, f := range sortedKeys(creds) {
		secrets.add("credential field "+f, creds[f])
		secrets.add("credential field "+f+" as Basic auth", base64.StdEncoding.EncodeToString([]byte("autofloss:"+creds[f])))
	}
	secrets.add("the fake's secret", c.fake.Secret())
	secrets.add("refused api_key", refused)
	secrets.add("API key", apiKey)
	secrets.add("admin token", adminToken)
	secretRep := secrets.replacer(false)
	var addrs needles
	for i := 0; i < c.fake.N(); i++ {
		e := strings.ToLower(c.fake.Seeded(i).Email)
		addrs.add(fmt.Sprintf("address of seeded contact #%d", i), e)
		if q := strings.ToLower(url.QueryEscape(e)); q != e {
			addrs.add(fmt.Sprintf("address of seeded contact #%d (query-escaped)", i), q)
		}
	}
	addrRep := addrs.replacer(true)

	// 1. Look, connect (a refused attempt first), configure, sync.
	lr.do("GET", "/v1/integrations", nil, nil, 200)
	lr.do("GET", "/v1/integrations/mailchimp", nil, nil, 200)
	lr.do("POST", "/v1/integrations/mailchimp/connections", map[string]any{"credentials": map[string]string{"api_key": refused}}, nil, 400)
	connectBody := map[string]any{"name": "Leak A", "credentials": creds}
	if sent, _ := json.Marshal(connectBody); len(hits(secretRep, sent, false)) == 0 {
		t.Fatal("sanity: the credential needles are not found in the connect body the test sent")
	}
	a := lr.do("POST", "/v1/integrations/mailchimp/connections", connectBody, map[string]string{"Idempotency-Key": "leak-a"}, 201)
	cnxA, _ := a["id"].(string)
	lr.do("PATCH", cnxPath(cnxA), map[string]any{"verify_first": false, "on_failure": "update_fields"}, nil, 200)
	runA, _ := lr.do("POST", cnxPath(cnxA, "sync"), nil, map[string]string{"Idempotency-Key": "leak-a-sync"}, 202)["run_id"].(string)

	metricsPort := freePort(t)
	w := c.start("worker", fmt.Sprintf("AUTOFLOSS_WORKER_METRICS_LISTEN=127.0.0.1:%d", metricsPort), "AUTOFLOSS_LOG_LEVEL=debug")
	c.waitRun(runA, 90*time.Second, store.RunDone, store.RunFailed)
	c.checkRun(runA) // the fake holds every write-back; credits once

	// 2. A second connection on the same fake deletes its failed contacts: snapshots are taken.
	b := lr.do("POST", "/v1/integrations/mailchimp/connections", map[string]any{"name": "Leak B", "credentials": creds}, nil, 201)
	cnxB, _ := b["id"].(string)
	lr.do("PATCH", cnxPath(cnxB), map[string]any{"verify_first": false, "on_failure": "delete"}, nil, 200)
	runB, _ := lr.do("POST", cnxPath(cnxB, "sync"), map[string]any{}, nil, 202)["run_id"].(string)
	rb := c.waitRun(runB, 90*time.Second, store.RunDone, store.RunFailed)
	if rb.State != store.RunDone {
		t.Fatalf("run B is %s: %+v", rb.State, rb.Error)
	}
	db := c.db()
	snaps := queryInt(t, db, `SELECT COUNT(*) FROM contact_snapshots WHERE run_id = ?`, runB)
	if snaps == 0 || rb.Counts.Failed == 0 {
		t.Fatalf("run B deleted nothing (failed %d, snapshots %d): the snapshot table is not exercised", rb.Counts.Failed, snaps)
	}
	t.Logf("runs done after %s: run B failed %d, %d snapshots", time.Since(start).Round(time.Millisecond), rb.Counts.Failed, snaps)
	if st := c.fake.Stats(); st.InjectedErrors == 0 || st.InjectedThrottles == 0 || st.Drops == 0 || st.Truncations == 0 {
		t.Errorf("sanity: not every fault was injected (the error paths' logs are part of the search): %+v", st)
	}

	// 3. Every read endpoint, and a few refused calls.
	lr.do("GET", "/v1/integrations", nil, nil, 200)
	lr.do("GET", "/v1/integrations/mailchimp", nil, nil, 200)
	for _, id := range []string{cnxA, cnxB} {
		lr.do("GET", cnxPath(id), nil, nil, 200)
		lr.do("GET", cnxPath(id, "runs"), nil, nil, 200)
		lr.do("GET", cnxPath(id, "whitelist"), nil, nil, 200)
		lr.results = true
		lr.do("GET", cnxPath(id, "results")+"?per_page=100", nil, nil, 200)
		lr.do("GET", cnxPath(id, "results")+"?per_page=100&status=undeliverable", nil, nil, 200)
		lr.results = false
	}
	lr.do("POST", "/v1/integrations/mailchimp/connections", connectBody, map[string]string{"Idempotency-Key": "leak-a"}, 201) // replay
	lr.do("GET", "/v1/integrations", nil, map[string]string{"Authorization": "Bearer " + apiKey + "x"}, 401)
	lr.do("GET", "/metrics", nil, nil, 200)
	lr.do("GET", "/readyz", nil, nil, 200)
	lr.do("GET", "/healthz", nil, nil, 200)
	lr.do("GET", fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort), nil, nil, 200)
	lr.do("GET", "/ops/queues/api/queues", nil, map[string]string{"Authorization": "Bearer " + adminToken + "x"}, 401)
	lr.do("GET", "/ops/queues/api/queues?token="+adminToken, nil, map[string]string{"Authorization": "-"}, 200)
	admin := map[string]string{"Authorization": "Bearer " + adminToken}
	var queues []string
	if qs, ok := lr.do("GET", "/ops/queues/api/queues", nil, admin, 200)["queues"].([]any); ok {
		for _, q := range qs {
			if m, ok := q.(map[string]any); ok {
				name, _ := m["queue"].(string)
				queues = append(queues, name)
			}
		}
	}
	if len(queues) == 0 {
		t.Fatal("sanity: asynqmon lists no queue")
	}
	tasksSeen := 0
	for _, q := range queues {
		lr.do("GET", "/ops/queues/api/queues/"+q, nil, admin, 200)
		lr.do("GET", "/ops/queues/api/queues/"+q+"/groups", nil, admin, 200)
		for _, state := range []string{"active", "pending", "scheduled", "retry", "archived", "completed"} {
			m := lr.do("GET", "/ops/queues/api/queues/"+q+"/"+state+"_tasks?page=1&page_size=100", nil, admin, 200)
			tasks, _ := m["tasks"].([]any)
			for _, tk := range tasks {
				if id, _ := tk.(map[string]any)["id"].(string); id != "" {
					lr.do("GET", "/ops/queues/api/queues/"+q+"/tasks/"+url.PathEscape(id), nil, admin, 200)
					tasksSeen++
				}
			}
		}
	}
	if tasksSeen == 0 {
		t.Error("sanity: asynqmon showed no task (the run's completed sync tasks should be listed)")
	}
	lr.do("GET", "/ops/queues/api/servers", nil, admin, 200)
	lr.do("GET", "/ops/queues/api/queue_stats", nil, admin, 200)
	lr.do("GET", "/ops/queues/api/scheduler_entries", nil, admin, 200)
	liveKeys := redisKeys(t, ctx, rdb)
	w.signal(t, syscall.SIGTERM, 30*time.Second) // its shutdown lines are logged too

	var leaks []string
	report := func(source string, hay []byte, rep *strings.Replacer, lower bool, ns *needles) int {
		hs := hits(rep, hay, lower)
		for _, i := range hs {
			leaks = append(leaks, fmt.Sprintf("%s: %s", source, ns.names[i]))
		}
		return len(hs)
	}

	// 4. API responses: credentials in none, addresses only in the results API.
	resultsAddrHits := 0
	for i, x := range lr.log {
		src := fmt.Sprintf("API response #%d (%s)", i, x.what)
		report(src, x.bytes(), secretRep, false, &secrets)
		if x.results {
			resultsAddrHits += len(hits(addrRep, x.bytes(), true))
			continue
		}
		report(src, x.bytes(), addrRep, true, &addrs)
	}
	if resultsAddrHits == 0 {
		t.Error("sanity: no seeded address found in the results API's answers: the address search does not see them")
	}

	// 5. The Redis keyspace: as the live worker left it (its server record) and after it stopped.
	keys := 0
	for i, blobs := range [][]redisKey{liveKeys, redisKeys(t, ctx, rdb)} {
		runTaskSeen := false
		for j, k := range blobs {
			src := fmt.Sprintf("Redis scan %d key #%d (%s, %s)", i+1, j+1, k.typ, redact(k.name, secretRep, addrRep))
			report(src, k.hay, secretRep, false, &secrets)
			report(src, k.hay, addrRep, true, &addrs)
			runTaskSeen = runTaskSeen || bytes.Contains(k.hay, []byte(runA))
		}
		keys += len(blobs)
		if len(blobs) == 0 || !runTaskSeen {
			t.Errorf("sanity: Redis scan %d: %d keys, run A's task seen: %v", i+1, len(blobs), runTaskSeen)
		}
	}

	// 6. Logs: the API's, the worker's file, the redis-server's.
	apiLines := apiLog.Bytes()
	if !bytes.Contains(apiLines, []byte(c.account.ID)) {
		t.Error("sanity: the API's access log does not name the account")
	}
	for i, line := range bytes.Split(apiLines, []byte("\n")) {
		report(fmt.Sprintf("API log line %d", i+1), line, secretRep, false, &secrets)
		report(fmt.Sprintf("API log line %d", i+1), line, addrRep, true, &addrs)
	}
	logFiles, _ := filepath.Glob(filepath.Join(c.dir, "*.log"))
	logFiles = append(logFiles, filepath.Join(c.dir, "redis", "redis.log"))
	workerMentionsRun := false
	for _, f := range logFiles {
		blob, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		workerMentionsRun = workerMentionsRun || bytes.Contains(blob, []byte(runB))
		for i, line := range bytes.Split(blob, []byte("\n")) {
			src := fmt.Sprintf("log %s line %d", filepath.Base(f), i+1)
			report(src, line, secretRep, false, &secrets)
			report(src, line, addrRep, true, &addrs)
		}
	}
	if !workerMentionsRun {
		t.Error("sanity: no log file names run B: the worker's log is not where the test reads")
	}

	// 7. The SQLite files: credentials nowhere; addresses only in results and contact_snapshots.
	var busy, logFrames, ckpt int
	if err := c.st.DB().QueryRowx(`PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &ckpt); err != nil || busy != 0 {
		t.Fatalf("wal_checkpoint(TRUNCATE): busy %d, err %v", busy, err)
	}
	dbFiles, _ := filepath.Glob(c.dbPath + "*")
	for _, f := range dbFiles {
		blob, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src := "SQLite file " + filepath.Base(f)
		report(src, blob, secretRep, false, &secrets)
		switch {
		case f == c.dbPath:
			if !bytes.Contains(blob, []byte(cnxA)) {
				t.Error("sanity: the database file does not hold connection A")
			}
			if n := len(hits(addrRep, blob, true)); n == 0 {
				t.Error("sanity: no seeded address found in the database file (its results table holds them)")
			}
		default: // -wal (empty after TRUNCATE) and -shm: no table is allowed here
			report(src, blob, addrRep, true, &addrs)
		}
	}
	cp := filepath.Join(t.TempDir(), "copy.db")
	if _, err := c.st.DB().Exec(`VACUUM INTO ` + sqlQuote(cp)); err != nil {
		t.Fatal(err)
	}
	cdb := openDB(t, cp)
	for _, q := range []string{`DELETE FROM results`, `DELETE FROM contact_snapshots`, `VACUUM`} {
		if _, err := cdb.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := cdb.Close(); err != nil {
		t.Fatal(err)
	}
	copyFiles, _ := filepath.Glob(cp + "*")
	for _, f := range copyFiles {
		blob, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if f == cp && !bytes.Contains(blob, []byte(runB)) {
			t.Error("sanity: the copy does not hold run B")
		}
		report("SQLite copy without results and contact_snapshots: "+filepath.Base(f), blob, addrRep, true, &addrs)
	}

	sort.Strings(leaks)
	if len(leaks) > 0 {
		show := leaks
		if len(show) > 60 {
			show = show[:60]
		}
		t.Errorf("%d leaks (source: needle; values not shown):\n  %s", len(leaks), strings.Join(show, "\n  "))
	}
	t.Logf("searched %d API responses, %d Redis keys, %d log files + the API log, %d database files + the copy, for %d credential and %d address needles, in %s",
		len(lr.log), keys, len(logFiles), len(dbFiles), len(secrets.vals), len(addrs.vals), time.Since(start).Round(time.Millisecond))
}

// needles are the values that must not appear, with a name for each that does not reveal it.
type needles struct {
	names, vals []string
}

func (n *needles) add(name, v string) {
	if v == "" {
		return
	}
	n.names = append(n.names, name)
	n.vals = append(n.vals, v)
}

const hitMark = "\x00LEAKHIT#"

// replacer replaces needle i by hitMark + i + "#" (a trie over all needles: one pass per haystack).
func (n *needles) replacer(lower bool) *strings.Replacer {
	args := make([]string, 0, 2*len(n.vals))
	for i, v := range n.vals {
		if lower {
			v = asciiLower(v)
		}
		args = append(args, v, hitMark+strconv.Itoa(i)+"#")
	}
	return strings.NewReplacer(args...)
}

// hits returns the indexes of the needles found in hay (ASCII case-insensitively when lower).
func hits(rep *strings.Replacer, hay []byte, lower bool) []int {
	if lower {
		hay = []byte(asciiLower(string(hay)))
	}
	out := rep.Replace(string(hay))
	var found []int
	for {
		i := strings.Index(out, hitMark)
		if i < 0 {
			return found
		}
		out = out[i+len(hitMark):]
		j := strings.IndexByte(out, '#')
		if k, err := strconv.Atoi(out[:j]); err == nil {
			found = append(found, k)
		}
		out = out[j+1:]
	}
}

// redact shows s with every needle replaced by its marker (for naming a Redis key safely).
func redact(s string, reps ...*strings.Replacer) string {
	s = asciiLower(s)
	for _, r := range reps {
		s = r.Replace(s)
	}
	return strings.ReplaceAll(s, hitMark, "<needle#")
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// redisKey is one key of the keyspace: its name, its type, and name and value as one haystack.
type redisKey struct {
	name, typ string
	hay       []byte
}

// redisKeys reads the whole keyspace (SCAN, then each key by its type).
func redisKeys(t *testing.T, ctx context.Context, rdb *redis.Client) []redisKey {
	t.Helper()
	var out []redisKey
	var cursor uint64
	for {
		ks, next, err := rdb.Scan(ctx, cursor, "*", 1000).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range ks {
			hay, typ := redisValue(t, ctx, rdb, k)
			out = append(out, redisKey{name: k, typ: typ, hay: hay})
		}
		if cursor = next; cursor == 0 {
			return out
		}
	}
}

// redisValue reads one key whatever its type; the key name is part of the haystack.
func redisValue(t *testing.T, ctx context.Context, rdb *redis.Client, k string) ([]byte, string) {
	t.Helper()
	typ, err := rdb.Type(ctx, k).Result()
	if err != nil {
		t.Fatal(err)
	}
	parts := []string{k}
	switch typ {
	case "string":
		v, err := rdb.Get(ctx, k).Result()
		if err != nil && err != redis.Nil {
			t.Fatal(err)
		}
		parts = append(parts, v)
	case "hash":
		m, err := rdb.HGetAll(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		for f, v := range m {
			parts = append(parts, f, v)
		}
	case "list":
		v, err := rdb.LRange(ctx, k, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, v...)
	case "set":
		v, err := rdb.SMembers(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, v...)
	case "zset":
		v, err := rdb.ZRange(ctx, k, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, v...)
	case "stream":
		v, err := rdb.XRange(ctx, k, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range v {
			for f, x := range m.Values {
				parts = append(parts, f, fmt.Sprint(x))
			}
		}
	case "none": // expired between SCAN and TYPE
	default:
		t.Fatalf("Redis key of type %s: the test cannot read it", typ)
	}
	return []byte(strings.Join(parts, "\n")), typ
}

// leakRun is the test's HTTP client: every answer (headers and body) is kept for the search.
type leakRun struct {
	t       *testing.T
	base    string
	key     string
	results bool // the next answers are the results API's
	log     []exchange
}

type exchange struct {
	what    string
	results bool
	header  http.Header
	body    []byte
}

func (x exchange) bytes() []byte {
	var b bytes.Buffer
	_ = x.header.Write(&b)
	b.WriteString("\n")
	b.Write(x.body)
	return b.Bytes()
}

// do calls the API (path relative to the server, or a full URL) and fails the test unless the status is
// want; header "Authorization: -" sends none. The JSON answer is returned decoded (nil when not JSON).
func (l *leakRun) do(method, path string, body any, header map[string]string, want int) map[string]any {
	l.t.Helper()
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			l.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	u := path
	if !strings.HasPrefix(u, "http") {
		u = l.base + path
	}
	r, err := http.NewRequest(method, u, rd)
	if err != nil {
		l.t.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer "+l.key)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	if r.Header.Get("Authorization") == "-" {
		r.Header.Del("Authorization")
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		l.t.Fatalf("%s %s: %v", method, redactQuery(path), err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	what := method + " " + redactQuery(path)
	l.log = append(l.log, exchange{what: what, results: l.results, header: resp.Header, body: b})
	if resp.StatusCode != want {
		l.t.Fatalf("%s: %d, want %d", what, resp.StatusCode, want)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// redactQuery drops a ?token= value from a path shown in the test's output.
func redactQuery(p string) string {
	if i := strings.Index(p, "token="); i >= 0 {
		return p[:i] + "token=…"
	}
	return p
}

func cnxPath(id string, rest ...string) string {
	p := "/v1/integrations/mailchimp/connections/" + id
	for _, r := range rest {
		p += "/" + r
	}
	return p
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func sqlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
