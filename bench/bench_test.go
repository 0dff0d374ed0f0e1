package bench

import (
	"context"
	"os"
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
