package verify_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/autofloss/autofloss/verify"
	"github.com/autofloss/autofloss/verify/verifytest"
)

// envWorldChild makes the test binary serve a loopback world instead of
// running tests: it prints the world's address book as one JSON line and
// serves until its stdin closes. Benchmarks use it (BENCH_WORLD=proc) so that
// the engine's CPU and the world's CPU can be told apart.
const envWorldChild = "VERIFY_BENCH_WORLD_CHILD"

type worldBook struct {
	DNSAddr   string         `json:"dns_addr"`
	HostPorts map[string]int `json:"host_ports"`
}

func TestMain(m *testing.M) {
	if os.Getenv(envWorldChild) == "1" {
		os.Exit(serveWorldChild())
	}
	os.Exit(m.Run())
}

func serveWorldChild() int {
	w, err := verifytest.NewWorld(verifytest.WorldOptions{SlowDelay: 3 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer w.Close()
	if path := os.Getenv("BENCH_WORLD_CPUPROFILE"); path != "" { // the world's own profile
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	if err := json.NewEncoder(os.Stdout).Encode(worldBook{DNSAddr: w.DNSAddr, HostPorts: w.HostPorts}); err != nil {
		return 1
	}
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until EOF
	return 0
}

// benchWorld is the world a benchmark talks to: in process (default) or, with
// BENCH_WORLD=proc, a child process whose CPU time is measured apart.
type benchWorld struct {
	opts  func(tb testing.TB) verify.Options
	child *exec.Cmd
}

// newBenchWorld starts the world for a benchmark.
func newBenchWorld(b *testing.B) *benchWorld {
	b.Helper()
	if os.Getenv("BENCH_WORLD") != "proc" {
		w := world(b)
		return &benchWorld{opts: func(tb testing.TB) verify.Options {
			o, err := w.EngineOptions()
			if err != nil {
				tb.Fatal(err)
			}
			return o
		}}
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envWorldChild+"=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = in.Close()
		_ = cmd.Wait()
	})
	var book worldBook
	if err := json.NewDecoder(out).Decode(&book); err != nil {
		b.Fatal(err)
	}
	return &benchWorld{child: cmd, opts: func(tb testing.TB) verify.Options {
		l, err := verifytest.TrapLists()
		if err != nil {
			tb.Fatal(err)
		}
		return verify.Options{
			DNSServers: []string{book.DNSAddr}, DNSTimeout: 300 * time.Millisecond, StepTimeout: time.Second,
			HostPorts: book.HostPorts, HELO: "verifier.test", MailFrom: "probe@verifier.test", Lists: l,
		}
	}}
}

func (bw *benchWorld) engine(tb testing.TB, tweak func(*verify.Options)) *verify.Engine {
	o := bw.opts(tb)
	if tweak != nil {
		tweak(&o)
	}
	e, err := verify.New(o)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// cpuClock sums the CPU time (user+system) of this process and of the world
// child, if any.
type cpuClock struct {
	bw          *benchWorld
	self, world time.Duration
	s0, w0      time.Duration
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// childCPU reads utime+stime of the child from /proc (clock ticks, 100 Hz).
func (bw *benchWorld) childCPU() time.Duration {
	if bw.child == nil {
		return 0
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", bw.child.Process.Pid))
	if err != nil {
		return 0
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

func (c *cpuClock) start() { c.s0, c.w0 = selfCPU(), c.bw.childCPU() }
func (c *cpuClock) stop() {
	c.self += selfCPU() - c.s0
	c.world += c.bw.childCPU() - c.w0
}

// report adds cpu_µs/addr (this process: engine, plus the world when it runs
// in process) and, with a child world, world_µs/addr.
func (c *cpuClock) report(b *testing.B, addrs int) {
	b.ReportMetric(float64(c.self.Microseconds())/float64(addrs), "cpu_µs/addr")
	if c.bw.child != nil {
		b.ReportMetric(float64(c.world.Microseconds())/float64(addrs), "world_µs/addr")
	}
}
