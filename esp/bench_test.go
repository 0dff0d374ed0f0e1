package esp_test

import (
	"context"
	"testing"
	"time"

	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/esp/esptest"
)

// BenchmarkAdapter pages through each platform's fake (no limits, no faults, no validation) and reports
// contacts/s and requests per 1,000 contacts (read requests only, the lists call included).
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
