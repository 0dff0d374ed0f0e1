package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/rs/zerolog"

	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/esp/esptest"
	"github.com/autofloss/autofloss/jobs"
	"github.com/autofloss/autofloss/sandbox"
	"github.com/autofloss/autofloss/store"
	"github.com/autofloss/autofloss/store/seal"
	"github.com/autofloss/autofloss/verify"
	"github.com/autofloss/autofloss/verify/verifytest"
)

// FlossWorld is the platform side of a floss benchmark: the sandbox mail world (loopback DNS and SMTP)
// and one platform fake seeded with the world-aligned sandbox seed.
type FlossWorld struct {
	World  *sandbox.World
	Fake   *esptest.Fake
	Slug   string
	engine verify.Options
}

// StartFlossWorld starts the world and the fake of slug with n contacts in one list (so n contacts are n
// results), seeded with sandbox.SeedOptions. limits nil: the platform's own limits, enforced by the fake
// with its throttle signal; &esp.Limits{}: unlimited.
func StartFlossWorld(slug string, n int, limits *esp.Limits) (*FlossWorld, error) {
	w, err := sandbox.StartWorld()
	if err != nil {
		return nil, err
	}
	eo, err := w.EngineOptions()
	if err != nil {
		w.Close()
		return nil, err
	}
	seed := sandbox.SeedOptions(n, sandbox.SeedFor(slug))
	seed.Lists = 1
	f, err := esptest.Start(slug, esptest.Options{Seed: seed, Limits: limits})
	if err != nil {
		w.Close()
		return nil, err
	}
	return &FlossWorld{World: w, Fake: f, Slug: slug, engine: eo}, nil
}

// Close stops the fake and the world.
func (fw *FlossWorld) Close() {
	_ = fw.Fake.Close()
	fw.World.Close()
}

// Spec is what the worker side needs to reach this world.
func (fw *FlossWorld) Spec() WorkerSpec {
	return WorkerSpec{
		Slug: fw.Slug, FakeURL: fw.Fake.URL(), Credentials: fw.Fake.Credentials(true), Contacts: fw.Fake.N(),
		DNSServers: fw.engine.DNSServers, HostPorts: fw.engine.HostPorts, DNSTimeout: fw.engine.DNSTimeout,
		StepTimeout: fw.engine.StepTimeout, HELO: fw.engine.HELO, MailFrom: fw.engine.MailFrom,
		OnFailure: jobs.OnFailureUpdateFields, Preset: "normal",
	}
}

// WorkerSpec is everything the worker side of a floss benchmark needs; it is JSON so that the worker can
// run in a child process, whose peak RSS is then the worker's alone (the fake keeps every write-back it
// receives in memory, which is the platform's memory, not ours).
type WorkerSpec struct {
	Slug        string            `json:"slug"`
	FakeURL     string            `json:"fake_url"`
	Credentials map[string]string `json:"credentials"`
	Contacts    int               `json:"contacts"`
	DNSServers  []string          `json:"dns_servers"`
	HostPorts   map[string]int    `json:"host_ports"`
	DNSTimeout  time.Duration     `json:"dns_timeout"`
	StepTimeout time.Duration     `json:"step_timeout"`
	HELO        string            `json:"helo"`
	MailFrom    string            `json:"mail_from"`
	OnFailure   string            `json:"on_failure"`
	Preset      string            `json:"preset"`
	// ClientLimits is the client's limiter for the platform; nil: the registry's default limits.
	ClientLimits *esp.Limits `json:"client_limits,omitempty"`
	// Duration stops the run after this long (0: run to the end).
	Duration time.Duration `json:"duration,omitempty"`
	// Dir holds the SQLite store ("" = a fresh temporary directory, removed afterwards).
	Dir string `json:"dir,omitempty"`
	// CPUProfile and MemProfile, when set, are written by the worker (pprof format; the memory profile is
	// the allocation profile at the end of the run).
	CPUProfile string `json:"cpu_profile,omitempty"`
	MemProfile string `json:"mem_profile,omitempty"`
}

// FlossResult is what the worker side measured.
type FlossResult struct {
	Outcome     string        `json:"outcome"`
	State       string        `json:"state"`
	Seen        int64         `json:"seen"`
	Skipped     int64         `json:"skipped"`
	Verified    int64         `json:"verified"`
	Reused      int64         `json:"reused"`
	Failed      int64         `json:"failed"`
	WrittenBack int64         `json:"written_back"`
	Pages       int64         `json:"pages"`
	Elapsed     time.Duration `json:"elapsed"` // the Sync calls only (store, account and connection set up before)
	PeakRSS     int64         `json:"peak_rss"`
	BaseRSS     int64         `json:"base_rss"` // RSS just before the run started
	HeapSys     uint64        `json:"heap_sys"` // runtime's heap from the OS at the end
	NumGC       uint32        `json:"num_gc"`
	Retries     int           `json:"retries"` // Sync calls after the first (retryable outcomes)
	TotalAlloc  uint64        `json:"total_alloc"`
}

// Rate is contacts read per second of the run.
func (r FlossResult) Rate() float64 { return float64(r.Seen) / r.Elapsed.Seconds() }

// RunWorker runs the worker side: a fresh SQLite store, one account with credits, one connection to the
// fake (normal preset, the spec's on_failure), then jobs.Runner.Sync until the run is done (retrying as
// asynq would on a retryable outcome) or spec.Duration has passed.
func RunWorker(ctx context.Context, spec WorkerSpec) (FlossResult, error) {
	var res FlossResult
	dir := spec.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "autofloss-bench-")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	st, err := OpenStore(ctx, "sqlite:"+filepath.Join(dir, "autofloss.db"))
	if err != nil {
		return res, err
	}
	defer st.Close()
	lists, err := verifytest.TrapLists()
	if err != nil {
		return res, err
	}
	eng, err := verify.New(verify.Options{
		DNSServers: spec.DNSServers, DNSTimeout: spec.DNSTimeout, StepTimeout: spec.StepTimeout, HostPorts: spec.HostPorts,
		HELO: spec.HELO, MailFrom: spec.MailFrom, Lists: lists, Dial: sandbox.LoopbackDial,
	})
	if err != nil {
		return res, err
	}
	defer eng.Close()
	co := esp.ClientOptions{}
	if spec.ClientLimits != nil {
		co.Limits = map[string]esp.Limits{spec.Slug: *spec.ClientLimits}
	}
	runner, err := jobs.NewRunner(jobs.Deps{
		Store: st, Registry: esp.Platforms(), Client: esp.NewClient(co), Engine: eng, Log: zerolog.New(io.Discard),
		ESP:      esp.Options{BaseURLs: map[string]string{spec.Slug: spec.FakeURL}},
		Settings: jobs.Settings{IncrementalLookback: time.Minute, ReverifyWindow: 30 * 24 * time.Hour},
	})
	if err != nil {
		return res, err
	}
	acct, err := st.CreateAccount(ctx, "bench")
	if err != nil {
		return res, err
	}
	if _, err := st.AddCredits(ctx, acct.ID, int64(spec.Contacts)*2+1000, "", "grant"); err != nil {
		return res, err
	}
	settings, _ := json.Marshal(map[string]any{"aggressiveness": spec.Preset, "verify_first": false, "on_failure": spec.OnFailure})
	cnx, err := st.CreateConnection(ctx, store.NewConnection{AccountID: acct.ID, Type: spec.Slug, Name: "bench",
		AutoFlossEnabled: true, Settings: settings, Credentials: spec.Credentials})
	if err != nil {
		return res, err
	}
	if spec.CPUProfile != "" {
		f, err := os.Create(spec.CPUProfile)
		if err != nil {
			return res, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return res, err
		}
		defer pprof.StopCPUProfile()
	}
	runtime.GC()
	res.BaseRSS = RSS()
	runCtx := ctx
	if spec.Duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, spec.Duration)
		defer cancel()
	}
	start := time.Now()
	var run store.Run
	var outcome jobs.Outcome
	retries := -1
	for {
		var r store.Run
		r, outcome, err = runner.Sync(runCtx, jobs.SyncPayload{ConnectionID: cnx.ID}, jobs.SyncOptions{TaskID: "bench"})
		if r.ID != "" {
			run = r
		}
		retries++
		if outcome != jobs.OutcomeRetry || runCtx.Err() != nil {
			break
		}
		var re *jobs.RetryableError
		wait := 100 * time.Millisecond
		if errors.As(err, &re) && re.Wait > 0 {
			wait = re.Wait
		}
		select {
		case <-runCtx.Done():
		case <-time.After(wait):
		}
	}
	res.Elapsed = time.Since(start)
	if spec.Duration == 0 && outcome != jobs.OutcomeDone {
		return res, fmt.Errorf("bench: run ended %s: %v", outcome, err)
	}
	if spec.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	if spec.MemProfile != "" {
		f, err := os.Create(spec.MemProfile)
		if err != nil {
			return res, err
		}
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			f.Close()
			return res, err
		}
		f.Close()
	}
	// The stored run, for counters of a run cut short by Duration too.
	if r, err := st.RunByID(context.WithoutCancel(ctx), run.ID); err == nil {
		run = r
	}
	res.Outcome, res.State = string(outcome), run.State
	c := run.Counts
	res.Seen, res.Skipped, res.Verified, res.Reused, res.Failed, res.WrittenBack = c.Seen, c.Skipped, c.Verified, c.Reused, c.Failed, c.WrittenBack
	res.Pages, res.Retries = run.Pages, retries
	res.PeakRSS = PeakRSS()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.HeapSys, res.NumGC, res.TotalAlloc = ms.HeapSys, ms.NumGC, ms.TotalAlloc
	return res, nil
}

// OpenStore opens and migrates the store at url with a fresh random key ring.
func OpenStore(ctx context.Context, url string) (*store.Store, error) {
	k, err := seal.NewKey()
	if err != nil {
		return nil, err
	}
	ring, err := seal.NewKeyRing([]seal.Key{{ID: "bench1", Key: k}}, "")
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, url, store.Options{Keys: ring})
	if err != nil {
		return nil, err
	}
	if _, err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}
