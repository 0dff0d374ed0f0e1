package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/autofloss/autofloss/bench"
	"github.com/autofloss/autofloss/esp"
)

// runBench is `autofloss bench`: the end-to-end benchmarks of BENCHMARKS.md (package bench), printed as a
// table of figures, each with the command that reproduces it and the machine it ran on. Every floss run's
// worker side runs in a child process (`autofloss bench -worker`, fed a bench.WorkerSpec on stdin), so its
// peak RSS is the worker's own; the platform fake and the mail world stay in this process.
func runBench(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	only := fs.String("only", "floss,rate,scheduler", "benchmarks to run (comma-separated): floss, rate, scheduler")
	sizes := fs.String("sizes", "10000,100000,1000000", "floss: contacts per run (comma-separated)")
	rateFor := fs.Duration("rate-duration", 150*time.Second, "rate: how long to floss against the limited Klaviyo fake")
	schedN := fs.Int("scheduler-connections", 100000, "scheduler: due connections in the store")
	schedConc := fs.Int("scheduler-concurrency", 0, "scheduler: enqueue concurrency (0 = the scheduler's default)")
	schedDBs := fs.String("scheduler-db", "sqlite,postgres", "scheduler: stores to tick over (sqlite, postgres)")
	pgURL := fs.String("postgres", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		"scheduler: PostgreSQL admin URL (a fresh database is created and dropped)")
	profile := fs.String("profile", "", "floss: write CPU and allocation profiles of the largest run into this directory")
	markdown := fs.Bool("markdown", false, "print the table as Markdown")
	worker := fs.Bool("worker", false, "internal: run the worker side of one floss (spec JSON on stdin, result JSON on stdout)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *worker {
		var spec bench.WorkerSpec
		if err := json.NewDecoder(stdin).Decode(&spec); err != nil {
			return err
		}
		res, err := bench.RunWorker(ctx, spec)
		if err != nil {
			return err
		}
		return json.NewEncoder(stdout).Encode(res)
	}
	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		want[strings.TrimSpace(s)] = true
	}
	m := bench.ThisMachine()
	fmt.Fprintf(stderr, "bench: %s\n", m)
	var figs []bench.Figure
	if want["floss"] {
		var ns []int
		for _, s := range strings.Split(*sizes, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n <= 0 {
				return fmt.Errorf("bad -sizes %q", *sizes)
			}
			ns = append(ns, n)
		}
		f, err := benchFloss(ctx, ns, *profile, stderr)
		figs = append(figs, f...)
		if err != nil {
			bench.PrintTable(stdout, m, figs, *markdown)
			return err
		}
	}
	if want["rate"] {
		f, err := benchRate(ctx, *rateFor, stderr)
		figs = append(figs, f...)
		if err != nil {
			bench.PrintTable(stdout, m, figs, *markdown)
			return err
		}
	}
	if want["scheduler"] {
		for _, db := range strings.Split(*schedDBs, ",") {
			f, err := benchScheduler(ctx, strings.TrimSpace(db), *schedN, *pgURL, *schedConc, stderr)
			figs = append(figs, f...)
			if err != nil {
				bench.PrintTable(stdout, m, figs, *markdown)
				return err
			}
		}
	}
	bench.PrintTable(stdout, m, figs, *markdown)
	return nil
}

// benchFloss runs one floss per size from the Mailchimp fake (no limits, update_fields).
func benchFloss(ctx context.Context, ns []int, profile string, stderr io.Writer) ([]bench.Figure, error) {
	var figs []bench.Figure
	largest := 0
	for _, n := range ns {
		largest = max(largest, n)
	}
	var rates []float64
	for _, n := range ns {
		fmt.Fprintf(stderr, "bench: floss %d contacts from the mailchimp fake...\n", n)
		fw, err := bench.StartFlossWorld("mailchimp", n, &esp.Limits{})
		if err != nil {
			return figs, err
		}
		spec := fw.Spec()
		if profile != "" && n == largest {
			if err := os.MkdirAll(profile, 0o755); err != nil {
				fw.Close()
				return figs, err
			}
			spec.CPUProfile = filepath.Join(profile, fmt.Sprintf("floss-%d.cpu.pprof", n))
			spec.MemProfile = filepath.Join(profile, fmt.Sprintf("floss-%d.allocs.pprof", n))
		}
		parent0 := selfCPU()
		res, childCPU, err := childWorker(ctx, spec, stderr)
		parentCPU := selfCPU() - parent0
		stats, writes := fw.Fake.Stats(), fw.Fake.Writes()
		fw.Close()
		if err != nil {
			return figs, err
		}
		rate := res.Rate()
		rates = append(rates, rate)
		cmd := fmt.Sprintf("go run ./cmd/autofloss bench -only floss -sizes %d", n)
		load := bench.LoadAvg()
		perContact := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(max(res.Seen, 1)) }
		cpuNote := fmt.Sprintf("CPU per contact: worker %.0f µs, fake+mail world %.0f µs (ceiling on %d idle cores ≈ %s/s)",
			perContact(childCPU), perContact(parentCPU), runtime.NumCPU(),
			bench.Thousands(float64(runtime.NumCPU())*1e6/(perContact(childCPU)+perContact(parentCPU))))
		note := fmt.Sprintf("%s contacts in %.1f s; verified %s, failed %s, written back %s (%s field values); %s platform requests; %d GCs, %s allocated",
			bench.Thousands(float64(res.Seen)), res.Elapsed.Seconds(), bench.Thousands(float64(res.Verified)),
			bench.Thousands(float64(res.Failed)), bench.Thousands(float64(res.WrittenBack)), bench.Thousands(float64(writes.Fields)),
			bench.Thousands(float64(stats.Requests)), res.NumGC, bench.MB(int64(res.TotalAlloc)))
		figs = append(figs,
			bench.Figure{Name: fmt.Sprintf("floss %s: contacts/s", bench.Thousands(float64(n))), Value: bench.Thousands(rate),
				Goal: "≥ 20,000", Met: bench.Met(rate >= 20000), Load: load, Command: cmd, Note: note + "; " + cpuNote},
			bench.Figure{Name: fmt.Sprintf("floss %s: worker peak RSS", bench.Thousands(float64(n))), Value: bench.MB(res.PeakRSS),
				Goal: "≤ 200 MB", Met: bench.Met(res.PeakRSS <= 200<<20), Load: load, Command: cmd,
				Note: fmt.Sprintf("VmHWM of the worker process (store, engine, runner); RSS before the run %s", bench.MB(res.BaseRSS))})
		fmt.Fprintf(stderr, "bench: floss %d: %.0f contacts/s, peak RSS %s\n", n, rate, bench.MB(res.PeakRSS))
	}
	if len(rates) > 1 {
		lo, hi := rates[0], rates[0]
		for _, r := range rates {
			lo, hi = min(lo, r), max(hi, r)
		}
		flat := lo >= 0.5*hi
		figs = append(figs, bench.Figure{Name: "floss: throughput flat across sizes", Value: fmt.Sprintf("min/max %.2f", lo/hi),
			Goal: "no super-linear step (min/max ≥ 0.5)", Met: bench.Met(flat), Load: bench.LoadAvg(),
			Command: "go run ./cmd/autofloss bench -only floss", Note: "contacts/s of the smallest vs largest size above"})
	}
	return figs, nil
}

// selfCPU is this process's CPU time so far (user + system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// childWorker runs bench.RunWorker in a child process of this binary and returns its result and CPU time.
func childWorker(ctx context.Context, spec bench.WorkerSpec, stderr io.Writer) (bench.FlossResult, time.Duration, error) {
	var res bench.FlossResult
	exe, err := os.Executable()
	if err != nil {
		return res, 0, err
	}
	in, err := json.Marshal(spec)
	if err != nil {
		return res, 0, err
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, exe, "bench", "-worker")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(in), &out, stderr
	if err := cmd.Run(); err != nil {
		return res, 0, fmt.Errorf("bench worker: %w", err)
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return res, cpu, fmt.Errorf("bench worker output: %w", err)
	}
	return res, cpu, nil
}

// benchRate flosses the Klaviyo fake at Klaviyo's own limits for d.
func benchRate(ctx context.Context, d time.Duration, stderr io.Writer) ([]bench.Figure, error) {
	fmt.Fprintf(stderr, "bench: rate-limited floss against the klaviyo fake for %s...\n", d)
	r, err := bench.RateLimited(ctx, d)
	if err != nil {
		return nil, err
	}
	load := bench.LoadAvg()
	cmd := fmt.Sprintf("go run ./cmd/autofloss bench -only rate -rate-duration %s", d)
	lim := fmt.Sprintf("limits %.0f burst + %.0f/min (fake: 429 + Retry-After; client limiter the same)", float64(r.Limits.Burst), r.Limits.Rate*60)
	return []bench.Figure{
		{Name: "rate-limited (klaviyo): budget used", Value: fmt.Sprintf("%.1f %%", 100*r.Used()), Goal: "≥ 95 %",
			Met: bench.Met(r.Used() >= 0.95), Load: load, Command: cmd,
			Note: fmt.Sprintf("%d requests served of %.0f allowed in %.1f s (%s); %s contacts read, %s written back",
				r.Accepted(), r.Budget(), r.Elapsed.Seconds(), lim, bench.Thousands(float64(r.Worker.Seen)), bench.Thousands(float64(r.Worker.WrittenBack)))},
		{Name: "rate-limited (klaviyo): throttled answers", Value: fmt.Sprintf("%.2f %%", 100*r.ThrottledShare()), Goal: "≤ 1 %",
			Met: bench.Met(r.ThrottledShare() <= 0.01), Load: load, Command: cmd,
			Note: fmt.Sprintf("%d throttled of %d requests", r.Throttled, r.Requests)},
	}, nil
}

// benchScheduler times one scheduler tick over n due connections.
func benchScheduler(ctx context.Context, db string, n int, pgURL string, conc int, stderr io.Writer) ([]bench.Figure, error) {
	fmt.Fprintf(stderr, "bench: scheduler tick over %d due connections (%s)...\n", n, db)
	r, err := bench.Scheduler(ctx, db, n, pgURL, conc)
	if err != nil {
		return nil, err
	}
	load := bench.LoadAvg()
	cmd := fmt.Sprintf("go run ./cmd/autofloss bench -only scheduler -scheduler-db %s -scheduler-connections %d", db, n)
	if conc > 0 {
		cmd += fmt.Sprintf(" -scheduler-concurrency %d", conc)
	}
	used := r.RedisAfter - r.RedisBefore
	ok := r.Elapsed <= 10*time.Second && r.Stats.Enqueued == n
	return []bench.Figure{
		{Name: fmt.Sprintf("scheduler tick, %s due (%s)", bench.Thousands(float64(n)), db), Value: fmt.Sprintf("%.1f s", r.Elapsed.Seconds()),
			Goal: "≤ 10 s", Met: bench.Met(ok), Load: load, Command: cmd,
			Note: fmt.Sprintf("due %d, enqueued %d, duplicates %d, pending in queue %d (%.0f tasks/s; set-up of the connections %.0f s, not timed)",
				r.Stats.Due, r.Stats.Enqueued, r.Stats.Duplicates, r.Pending, float64(r.Stats.Enqueued)/r.Elapsed.Seconds(), r.Setup.Seconds())},
		{Name: fmt.Sprintf("scheduler tick, %s due (%s): Redis memory", bench.Thousands(float64(n)), db), Value: bench.MB(used),
			Load: load, Command: cmd,
			Note: fmt.Sprintf("INFO memory used_memory %s before, %s after (%.0f bytes per task)", bench.MB(r.RedisBefore), bench.MB(r.RedisAfter),
				float64(used)/float64(max(r.Stats.Enqueued, 1)))},
	}, nil
}
