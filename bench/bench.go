// Package bench measures autofloss end to end on loopback: a floss run of up to 1,000,000 contacts from
// the Mailchimp fake through the real pipeline (jobs.Runner, SQLite store, verification engine over the
// sandbox mail world), a rate-limited floss against the Klaviyo fake at the platform's own limits, and one
// scheduler tick over 100,000 due connections into a private Redis. `autofloss bench` (make bench) runs
// them and prints each figure with the command that produced it and the machine it ran on.
//
// Nothing here is part of the service: the package only wires the service's own components together the
// way the worker does, with the platform and the mail servers replaced by the loopback fakes.
package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

// Machine describes where a figure was measured.
type Machine struct {
	Arch  string // uname -m
	CPU   string // model name from /proc/cpuinfo
	Cores int    // runtime.NumCPU
	Go    string // runtime.Version
}

// ThisMachine reads the machine's description.
func ThisMachine() Machine {
	m := Machine{Arch: runtime.GOARCH, Cores: runtime.NumCPU(), Go: runtime.Version(), CPU: "unknown"}
	if out, err := exec.Command("uname", "-m").Output(); err == nil {
		m.Arch = strings.TrimSpace(string(out))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

func (m Machine) String() string {
	return fmt.Sprintf("%s, %s, %d cores, %s", m.Arch, m.CPU, m.Cores, m.Go)
}

// LoadAvg is the 1-minute load average (/proc/loadavg), -1 when unknown.
func LoadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// PeakRSS is this process's peak resident set size in bytes (VmHWM of /proc/self/status), 0 when unknown.
func PeakRSS() int64 { return procStatus("VmHWM:") }

// RSS is this process's current resident set size in bytes (VmRSS).
func RSS() int64 { return procStatus("VmRSS:") }

func procStatus(key string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, key) {
			f := strings.Fields(line[len(key):])
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// Figure is one measured number with its goal.
type Figure struct {
	Name    string  // what was measured
	Value   string  // the figure, formatted
	Goal    string  // "" when the figure has no goal
	Met     *bool   // nil when the figure has no goal
	Load    float64 // 1-minute load average when the measurement ended
	Command string  // the command that produced it
	Note    string  // detail: sizes, counts, elapsed
}

// Met returns a pointer to b (for Figure.Met).
func Met(b bool) *bool { return &b }

func (f Figure) met() string {
	switch {
	case f.Met == nil:
		return "–"
	case *f.Met:
		return "met"
	}
	return "NOT met"
}

// PrintTable prints figures as a plain-text table (markdown false) or a Markdown table.
func PrintTable(w io.Writer, m Machine, figs []Figure, markdown bool) {
	if markdown {
		fmt.Fprintf(w, "Machine: %s\n\n", m)
		fmt.Fprintln(w, "| figure | value | goal | met | load (1 min) | detail | command |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
		for _, f := range figs {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %.2f | %s | `%s` |\n", f.Name, f.Value, dash(f.Goal), f.met(), f.Load, f.Note, f.Command)
		}
		return
	}
	fmt.Fprintf(w, "machine: %s\n\n", m)
	fmt.Fprintf(w, "%-44s %-16s %-12s %-8s %-6s %s\n", "FIGURE", "VALUE", "GOAL", "MET", "LOAD", "DETAIL")
	for _, f := range figs {
		fmt.Fprintf(w, "%-44s %-16s %-12s %-8s %-6.2f %s\n", f.Name, f.Value, dash(f.Goal), f.met(), f.Load, f.Note)
		fmt.Fprintf(w, "%-44s command: %s\n", "", f.Command)
	}
}

func dash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// MB formats bytes in MiB (as ps and /proc print sizes) with one decimal.
func MB(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

// Thousands formats n with thousands separators.
func Thousands(n float64) string {
	s := strconv.FormatInt(int64(n+0.5), 10)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}
