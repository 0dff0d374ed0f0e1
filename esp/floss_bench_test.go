package esp_test

import (
	"context"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/esp/esptest"
)

// cpuNow is this process's CPU time so far (user + system).
func cpuNow(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// mailchimpFlossSetup starts the Mailchimp fake (its own limits: 10 simultaneous connections) with n
// contacts in one audience and opens the adapter with the registry's default limits, as the floss
// benchmark (bench/floss.go) does.
func mailchimpFlossSetup(b *testing.B, n int) (*esptest.Fake, esp.Adapter) {
	b.Helper()
	f, err := esptest.Start("mailchimp", esptest.Options{Seed: esptest.Seed{N: n, Seed: 1, Lists: 1}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	c := esp.NewClient(esp.ClientOptions{})
	a, err := esp.Platforms().Open("mailchimp", f.Credentials(true), c, esp.Options{BaseURLs: map[string]string{"mailchimp": f.URL()}})
	if err != nil {
		b.Fatal(err)
	}
	if err := a.EnsureFields(context.Background()); err != nil {
		b.Fatal(err)
	}
	return f, a
}

// BenchmarkMailchimpFloss measures the two requests of a Mailchimp floss run, client and fake in this one
// process, and reports the process's CPU per request (cpu-µs/op; a page is 1,000 members). Split client vs
// fake with -cpuprofile: the fake's side is everything under net/http.(*conn).serve.
//
//	go test ./esp/ -run '^$' -bench MailchimpFloss -benchtime 200x   (page)
//	go test ./esp/ -run '^$' -bench MailchimpFloss/patch -benchtime 20000x
func BenchmarkMailchimpFloss(b *testing.B) {
	const n = 20000
	b.Run("page", func(b *testing.B) {
		_, a := mailchimpFlossSetup(b, n)
		ctx := context.Background()
		var cur esp.Cursor
		b.ReportAllocs()
		b.ResetTimer()
		c0 := cpuNow(b)
		for range b.N {
			pg, err := a.Contacts(ctx, cur, time.Time{})
			if err != nil {
				b.Fatal(err)
			}
			if len(pg.Contacts) == 0 {
				b.Fatal("empty page")
			}
			cur = pg.Next
		}
		b.ReportMetric(float64((cpuNow(b)-c0).Microseconds())/float64(b.N), "cpu-µs/op")
	})
	b.Run("patch", func(b *testing.B) {
		f, a := mailchimpFlossSetup(b, n)
		ctx := context.Background()
		pg, err := a.Contacts(ctx, "", time.Time{})
		if err != nil {
			b.Fatal(err)
		}
		cs := pg.Contacts
		reasons := []string{"mailbox_does_not_exist", "disposable", "role_account", "domain_does_not_exist"}
		var next atomic.Int64
		w0 := f.Writes().Fields
		b.ReportAllocs()
		b.SetParallelism(4) // 8 in flight on 2 cores, as the worker's write-back pool
		b.ResetTimer()
		c0 := cpuNow(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				k := int(next.Add(1))
				fs := esp.Fields{
					esp.FieldPassed: "false", esp.FieldReason: reasons[k%len(reasons)], esp.FieldMode: "normal",
					esp.FieldFlossedOn: "2025-06-01", esp.FieldStatus: "invalid", esp.FieldFixed: "false",
				}
				if k%3 == 0 {
					fs[esp.FieldSuggestion] = "someone@gmail.com"
				}
				if err := a.SetFields(ctx, cs[k%len(cs)], fs); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64((cpuNow(b)-c0).Microseconds())/float64(b.N), "cpu-µs/op")
		if got := f.Writes().Fields - w0; got < int64(b.N)*6 {
			b.Fatalf("fake recorded %d field writes, want at least %d", got, b.N*6)
		}
	})
}
