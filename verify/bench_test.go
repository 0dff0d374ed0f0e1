package verify_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/autofloss/autofloss/verify"
	"github.com/autofloss/autofloss/verify/verifytest"
)

// localChecks are the gates that need no network.
var localChecks = verify.ChecksOf(verify.ReasonInvalid, verify.ReasonSpam, verify.ReasonRole, verify.ReasonBanned,
	verify.ReasonComplainer, verify.ReasonBounced, verify.ReasonDisposable)

func localInputs() []verify.Input {
	doms := []string{"gmail.com", "yahoo.com", "acme-widgets.com", "mailinator.com", "gmial.com", "example.org", "hotmail.co.uk", "bücher.de"}
	locs := []string{"jane.doe", "info", "j.smith+news", "bob_1984", "sales", "x.shit.y", "firstname.lastname.long.local.part"}
	var ins []verify.Input
	for i := 0; i < 1024; i++ {
		ins = append(ins, verify.Input{Email: fmt.Sprintf("%s%d@%s", locs[i%len(locs)], i%7, doms[i%len(doms)])})
	}
	ins[5].Email = "not an address"
	return ins
}

// BenchmarkLocalChecks measures syntax + lists + typo suggestion (no network), one core.
func BenchmarkLocalChecks(b *testing.B) {
	e, err := verify.New(verify.Options{DNSServers: []string{"127.0.0.1:1"}})
	if err != nil {
		b.Fatal(err)
	}
	ins := localInputs()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Verify(ctx, ins[i&1023], localChecks)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "addrs/s")
}

// BenchmarkLocalChecksBatch is the same through VerifyBatch (1,024 per call).
func BenchmarkLocalChecksBatch(b *testing.B) {
	e, err := verify.New(verify.Options{DNSServers: []string{"127.0.0.1:1"}})
	if err != nil {
		b.Fatal(err)
	}
	ins := localInputs()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.VerifyBatch(ctx, ins, localChecks)
	}
	b.ReportMetric(float64(b.N*len(ins))/b.Elapsed().Seconds(), "addrs/s")
}

// BenchmarkWorld10k verifies 10,000 addresses over 200 domains through the
// loopback DNS+SMTP world with every check on, a fresh engine (cold caches)
// per iteration, in batches of 1,000 as the pipeline would. cpu_µs/addr is the
// CPU time of this process per address (engine construction excluded); with
// BENCH_WORLD=proc the world runs in a child process and world_µs/addr is its
// share, cpu_µs/addr the engine's alone.
func BenchmarkWorld10k(b *testing.B) {
	bw := newBenchWorld(b)
	ins := verifytest.BulkAddresses(10000)
	var dnsQ, conns, probes int64
	cpu := cpuClock{bw: bw}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e := bw.engine(b, func(o *verify.Options) { o.PerHostConcurrency = 8 })
		b.StartTimer()
		cpu.start()
		for s := 0; s < len(ins); s += 1000 {
			for _, r := range e.VerifyBatch(context.Background(), ins[s:s+1000], verify.AllChecks) {
				if r.Reason != verify.ReasonValid && r.Reason != verify.ReasonNonexistent {
					b.Fatalf("unexpected %s", r.Reason)
				}
			}
		}
		st := e.Stats()
		e.Close()
		cpu.stop()
		dnsQ += st.DNSQueries
		conns += st.SMTPConnections
		probes += st.SMTPProbes
	}
	b.ReportMetric(float64(dnsQ)/float64(b.N), "dns_queries/run")
	b.ReportMetric(float64(conns)*1000/float64(probes), "smtp_conns/1000_probes")
	b.ReportMetric(float64(b.N*len(ins))/b.Elapsed().Seconds(), "addrs/s")
	cpu.report(b, b.N*len(ins))
}

// BenchmarkWorld10kSharedMX is BenchmarkWorld10k over 200 domains that share
// one exchanger (a hosted provider): their recipients share sessions.
func BenchmarkWorld10kSharedMX(b *testing.B) {
	bw := newBenchWorld(b)
	ins := verifytest.BulkAddresses(10000)
	for i := range ins {
		ins[i].Email = strings.Replace(ins[i].Email, "@b", "@s", 1)
	}
	var conns, probes int64
	cpu := cpuClock{bw: bw}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e := bw.engine(b, func(o *verify.Options) { o.PerHostConcurrency = 8 })
		b.StartTimer()
		cpu.start()
		for s := 0; s < len(ins); s += 1000 {
			e.VerifyBatch(context.Background(), ins[s:s+1000], verify.AllChecks)
		}
		conns += e.Stats().SMTPConnections
		probes += e.Stats().SMTPProbes
		e.Close()
		cpu.stop()
	}
	b.ReportMetric(float64(conns)*1000/float64(probes), "smtp_conns/1000_probes")
	b.ReportMetric(float64(b.N*len(ins))/b.Elapsed().Seconds(), "addrs/s")
	cpu.report(b, b.N*len(ins))
}

// BenchmarkWorldCachedDNS is Verify throughput on the world with DNS cached
// (SMTP still probed), one address per call.
func BenchmarkWorldCachedDNS(b *testing.B) {
	bw := newBenchWorld(b)
	e := bw.engine(b, func(o *verify.Options) { o.PerHostConcurrency = 16 })
	defer e.Close()
	ins := verifytest.BulkAddresses(2000)
	e.VerifyBatch(context.Background(), ins, verify.AllChecks) // warm
	cpu := cpuClock{bw: bw}
	b.ResetTimer()
	cpu.start()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			e.Verify(context.Background(), ins[i%len(ins)], verify.AllChecks)
			i++
		}
	})
	cpu.stop()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "addrs/s")
	cpu.report(b, b.N)
}

// BenchmarkWorldWarm is the steady state of a long floss: one engine (DNS,
// typo and catch-all caches warm, idle sessions reused) verifying batches of
// 1,000 addresses over the sandbox seed's good domains (good.test, six bulk
// domains with an exchanger each, four domains sharing mx.good.test), every
// check on. ns/op and cpu_µs/addr are per address.
func BenchmarkWorldWarm(b *testing.B) {
	bw := newBenchWorld(b)
	doms := []string{verifytest.DomainGood}
	for i := 0; i < 6; i++ {
		doms = append(doms, verifytest.BulkDomain(i))
	}
	for i := 0; i < 4; i++ {
		doms = append(doms, verifytest.SharedDomain(i))
	}
	ins := verifytest.BulkAddresses(10000)
	for i := range ins {
		at := strings.LastIndexByte(ins[i].Email, '@')
		ins[i].Email = ins[i].Email[:at+1] + doms[i%len(doms)]
	}
	e := bw.engine(b, func(o *verify.Options) { o.PerHostConcurrency = 8 })
	defer e.Close()
	e.VerifyBatch(context.Background(), ins[:1000], verify.AllChecks) // warm
	cpu := cpuClock{bw: bw}
	b.ReportAllocs()
	b.ResetTimer()
	cpu.start()
	for n := 0; n < b.N; n += 1000 {
		s := n % len(ins)
		k := min(1000, b.N-n)
		for _, r := range e.VerifyBatch(context.Background(), ins[s:s+k], verify.AllChecks) {
			if r.Reason != verify.ReasonValid && r.Reason != verify.ReasonNonexistent {
				b.Fatalf("unexpected %s", r.Reason)
			}
		}
	}
	cpu.stop()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "addrs/s")
	cpu.report(b, b.N)
}
