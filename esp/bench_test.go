package esp_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/esp/esptest"
)

// BenchmarkAdapter pages through each platform's fake (no limits, no faults, no validation) and reports
// contacts/s and requests per 1,000 contacts (contact pages only; the once-per-adapter lists call is made
// before measuring).
func BenchmarkAdapter(b *testing.B) {
	reg := esp.Platforms()
	for _, p := range reg.All() {
		if p.New == nil {
			continue
		}
		if _, ok := esptest.Lookup(p.Slug); !ok {
			continue
		}
		b.Run(p.Slug, func(b *testing.B) {
			const n = 20000
			f, err := esptest.Start(p.Slug, esptest.Options{Seed: esptest.Seed{N: n, Seed: 1, Lists: 1}, Limits: &esp.Limits{}})
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			c := esp.NewClient(esp.ClientOptions{Limits: map[string]esp.Limits{p.Slug: {}}})
			a, err := reg.Open(p.Slug, f.Credentials(true), c, esp.Options{BaseURLs: map[string]string{p.Slug: f.URL()}})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			// The account's lists are read once per adapter (validation, audience discovery): not per page.
			if _, err := a.Lists(ctx); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			start, req0, contacts := time.Now(), f.Stats().Requests, 0
			for range b.N {
				var cur esp.Cursor
				for {
					pg, err := a.Contacts(ctx, cur, time.Time{})
					if err != nil {
						b.Fatal(err)
					}
					contacts += len(pg.Contacts)
					if cur = pg.Next; cur == "" {
						break
					}
				}
			}
			el := time.Since(start)
			b.ReportMetric(float64(contacts)/el.Seconds(), "contacts/s")
			b.ReportMetric(float64(f.Stats().Requests-req0)*1000/float64(contacts), "req/1k")
		})
	}
}

// BenchmarkMailchimpMillion pages 1,000,000 contacts (3 audiences) from the Mailchimp fake and reports the
// peak heap in use, sampled every 10 ms. The fake runs in the same process and generates contacts lazily
// by index, so the figure includes the fake (about 8 MB of membership indexes plus one page being encoded):
// an upper bound for the adapter side. Goal: < 100 MB.
func BenchmarkMailchimpMillion(b *testing.B) {
	const n = 1_000_000
	for range b.N {
		f, err := esptest.Start("mailchimp", esptest.Options{Seed: esptest.Seed{N: n, Seed: 1, Lists: 3}, Limits: &esp.Limits{}})
		if err != nil {
			b.Fatal(err)
		}
		c := esp.NewClient(esp.ClientOptions{Limits: map[string]esp.Limits{"mailchimp": {Concurrency: 10}}})
		a, err := esp.Platforms().Open("mailchimp", f.Credentials(true), c, esp.Options{BaseURLs: map[string]string{"mailchimp": f.URL()}})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var peak atomic.Uint64
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			t := time.NewTicker(10 * time.Millisecond)
			defer t.Stop()
			var ms runtime.MemStats
			for {
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
				select {
				case <-stop:
					return
				case <-t.C:
				}
			}
		}()
		start := time.Now()
		total := 0
		var cur esp.Cursor
		for {
			pg, err := a.Contacts(context.Background(), cur, time.Time{})
			if err != nil {
				b.Fatal(err)
			}
			total += len(pg.Contacts)
			if cur = pg.Next; cur == "" {
				break
			}
		}
		el := time.Since(start)
		close(stop)
		<-done
		f.Close()
		if total < n {
			b.Fatalf("read %d contacts, want at least %d", total, n)
		}
		b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MB")
		b.ReportMetric(float64(total)/el.Seconds(), "contacts/s")
		b.ReportMetric(float64(total), "contacts")
	}
}
