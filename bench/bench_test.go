package bench

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/autofloss/autofloss/esp"
)

// BenchmarkFloss10k is the in-process floss of 10,000 contacts from the Mailchimp fake (no limits,
// update_fields). The fake, the mail world and the worker share the process, so only contacts/s is
// reported here; `autofloss bench` measures the worker's peak RSS in a process of its own.
//
//	go test ./bench -run '^$' -bench Floss10k -benchtime 1x
func BenchmarkFloss10k(b *testing.B) {
	for range b.N {
		fw, err := StartFlossWorld("mailchimp", 10000, &esp.Limits{})
		if err != nil {
			b.Fatal(err)
		}
		spec := fw.Spec()
		if v := os.Getenv("BENCH_ON_FAILURE"); v != "" {
			spec.OnFailure = v
		}
		res, err := RunWorker(context.Background(), spec)
		fw.Close()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.Rate(), "contacts/s")
	}
}

// BenchmarkSchedulerTick10k is one scheduler tick over 10,000 due connections on SQLite into a private
// Redis (`autofloss bench -only scheduler` runs 100,000).
//
//	go test ./bench -run '^$' -bench SchedulerTick10k -benchtime 1x
func BenchmarkSchedulerTick10k(b *testing.B) {
	for range b.N {
		db, conc := "sqlite", 0
		if v := os.Getenv("BENCH_DB"); v != "" {
			db = v
		}
		if v := os.Getenv("BENCH_CONCURRENCY"); v != "" {
			conc, _ = strconv.Atoi(v)
		}
		n := 10000
		if v := os.Getenv("BENCH_CONNECTIONS"); v != "" { // e.g. 100000, to profile the full-size tick
			n, _ = strconv.Atoi(v)
		}
		r, err := Scheduler(context.Background(), db, n, "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", conc)
		if err != nil {
			b.Fatal(err)
		}
		if r.Stats.Enqueued != n {
			b.Fatalf("enqueued %d of %d", r.Stats.Enqueued, n)
		}
		b.ReportMetric(r.Elapsed.Seconds(), "s/tick")
		b.ReportMetric(float64(r.RedisAfter-r.RedisBefore)/1e6, "redis-MB")
	}
}
