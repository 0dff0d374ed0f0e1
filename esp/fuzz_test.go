package esp_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/esp/esptest"
)

// Fuzzing of every platform's page decoders (issue 8): one target for all adapters, so a platform added to
// the registry and to esptest is fuzzed without touching this file.
//
// Each input is a response body (plus a small number for the paging headers some platforms send). A loopback
// server, set as every platform's base-URL override, answers every request with status 200 and that body;
// each adapter — built with its fake's good credentials through the registry, on a client that never retries —
// then runs Lists, Contacts from the start (and, when the body yields a cursor, the page after it), and an
// incremental Contacts where the platform supports one. Properties:
//   - no panic;
//   - no hang: each call returns within its context deadline (a watchdog panics when it does not), and the
//     server stops answering 200 after fuzzMaxRequests requests of one call, so an adapter that pages forever
//     over the same body ends with an error rather than the deadline;
//   - either an error or a page whose contacts all have a non-empty ID (the write-back key, esp.Contact) and
//     whose Total is a count or -1.
//
// The seed corpus is the real bodies of each fake (recorded through a forwarding proxy while the real
// adapter reads from it), so the fuzzer starts from valid shapes of every platform.

const (
	fuzzCallTimeout = 2 * time.Second
	fuzzWatchdog    = 15 * time.Second
	fuzzMaxRequests = 40
)

// fuzzServer answers every request with the current body.
type fuzzServer struct {
	mu    sync.Mutex
	body  []byte
	pages uint8
	calls atomic.Int64
}

func (s *fuzzServer) set(body []byte, pages uint8) {
	s.mu.Lock()
	s.body, s.pages = body, pages
	s.mu.Unlock()
}

func (s *fuzzServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	if s.calls.Add(1) > fuzzMaxRequests {
		http.Error(w, `{"error":"fuzz: request budget of this call spent"}`, http.StatusServiceUnavailable)
		return
	}
	s.mu.Lock()
	body, pages := s.body, s.pages
	s.mu.Unlock()
	h := w.Header()
	h.Set("Content-Type", "application/json")
	// GetResponse keeps its paging state in headers: plausible values derived from the input.
	h.Set("TotalPages", strconv.Itoa(int(pages%4)))
	h.Set("CurrentPage", "1")
	h.Set("TotalCount", strconv.Itoa(int(pages)*7))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// fuzzTarget is one platform's adapter pointed at the fuzz server.
type fuzzTarget struct {
	slug string
	a    esp.Adapter
}

// fuzzPlatforms returns the slugs that have both an adapter and a fake.
func fuzzPlatforms(reg *esp.Registry) []string {
	var out []string
	for _, p := range reg.All() {
		if _, ok := esptest.Lookup(p.Slug); ok && p.New != nil {
			out = append(out, p.Slug)
		}
	}
	return out
}

// pointAt replaces the fake's URL inside credential values (ActiveCampaign's api_url) with base.
func pointAt(creds map[string]string, fakeURL, base string) map[string]string {
	out := make(map[string]string, len(creds))
	for k, v := range creds {
		out[k] = string(bytes.ReplaceAll([]byte(v), []byte(fakeURL), []byte(base)))
	}
	return out
}

// noRetryClient never retries and has no rate limit, so one input costs one request per adapter step.
func noRetryClient(slugs []string) *esp.Client {
	lim := map[string]esp.Limits{}
	for _, s := range slugs {
		lim[s] = esp.Limits{}
	}
	return esp.NewClient(esp.ClientOptions{Retry: esp.Retry{MaxAttempts: 1}, RequestTimeout: fuzzCallTimeout, Limits: lim})
}

type seedBody struct {
	body  []byte
	pages uint8
}

// recordSeeds reads a little from every fake through a forwarding proxy and returns the 200 bodies it saw.
func recordSeeds(tb testing.TB, reg *esp.Registry, slugs []string) []seedBody {
	tb.Helper()
	var seeds []seedBody
	seen := map[string]bool{}
	var mu sync.Mutex
	for _, slug := range slugs {
		fake, err := esptest.Start(slug, esptest.Options{Seed: esptest.Seed{N: 12, Seed: 1, Lists: 2}, Limits: &esp.Limits{}})
		if err != nil {
			tb.Fatal(err)
		}
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			req, err := http.NewRequestWithContext(r.Context(), r.Method, fake.URL()+r.URL.RequestURI(), r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			req.Header = r.Header.Clone()
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			for k, v := range resp.Header {
				w.Header()[k] = v
			}
			w.WriteHeader(resp.StatusCode)
			_, _ = w.Write(b)
			if resp.StatusCode == http.StatusOK && len(b) > 0 {
				tp, _ := strconv.Atoi(resp.Header.Get("TotalPages"))
				mu.Lock()
				if !seen[string(b)] {
					seen[string(b)] = true
					seeds = append(seeds, seedBody{body: b, pages: uint8(tp)})
				}
				mu.Unlock()
			}
		}))
		client := esp.NewClient(esp.ClientOptions{Retry: esp.Retry{MaxAttempts: 3, BaseDelay: time.Millisecond}, RequestTimeout: 10 * time.Second,
			Limits: map[string]esp.Limits{slug: {}}})
		opts := esp.Options{BaseURLs: map[string]string{slug: proxy.URL}, PageSize: map[string]int{slug: 10}}
		a, err := reg.Open(slug, pointAt(fake.Credentials(true), fake.URL(), proxy.URL), client, opts)
		if err != nil {
			tb.Fatalf("%s: open: %v", slug, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if _, err := a.Lists(ctx); err != nil {
			tb.Errorf("%s: seed Lists: %v", slug, err)
		}
		p, err := a.Contacts(ctx, "", time.Time{})
		if err != nil {
			tb.Errorf("%s: seed Contacts: %v", slug, err)
		} else if p.Next != "" {
			if _, err := a.Contacts(ctx, p.Next, time.Time{}); err != nil {
				tb.Errorf("%s: seed Contacts(next): %v", slug, err)
			}
		}
		if a.Capabilities().ChangedSince {
			if _, err := a.Contacts(ctx, "", time.Now().Add(-24*time.Hour)); err != nil {
				tb.Errorf("%s: seed Contacts(since): %v", slug, err)
			}
		}
		cancel()
		proxy.Close()
		fake.Close()
	}
	return seeds
}

func FuzzPageDecoders(f *testing.F) {
	reg := esp.Platforms()
	slugs := fuzzPlatforms(reg)
	if len(slugs) == 0 {
		f.Fatal("no platform has both an adapter and a fake")
	}
	for _, s := range recordSeeds(f, reg, slugs) {
		f.Add(s.body, s.pages)
	}
	for _, b := range []string{"", "{}", "[]", "null", `{"data":[{}]}`, `[{}]`, `{"contacts":[{}],"meta":{"total":"-3"}}`, "{\"a\":\n"} {
		f.Add([]byte(b), uint8(2))
	}

	srv := &fuzzServer{}
	hs := httptest.NewServer(srv)
	f.Cleanup(hs.Close)
	client := noRetryClient(slugs)
	var targets []fuzzTarget
	for _, slug := range slugs {
		// Good credentials of the fake (so every platform-side format rule passes), base URL on the fuzz server.
		fake, err := esptest.Start(slug, esptest.Options{Seed: esptest.Seed{N: 1, Seed: 1}})
		if err != nil {
			f.Fatal(err)
		}
		creds := pointAt(fake.Credentials(true), fake.URL(), hs.URL)
		fake.Close()
		a, err := reg.Open(slug, creds, client, esp.Options{BaseURLs: map[string]string{slug: hs.URL}, PageSize: map[string]int{slug: 5}})
		if err != nil {
			f.Fatalf("%s: open: %v", slug, err)
		}
		targets = append(targets, fuzzTarget{slug: slug, a: a})
	}
	since := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

	f.Fuzz(func(t *testing.T, body []byte, pages uint8) {
		srv.set(body, pages)
		for _, tg := range targets {
			call := func(what string, fn func(ctx context.Context) error) {
				srv.calls.Store(0)
				ctx, cancel := context.WithTimeout(context.Background(), fuzzCallTimeout)
				defer cancel()
				dog := time.AfterFunc(fuzzWatchdog, func() {
					panic(fmt.Sprintf("%s: %s did not return %v after its deadline", tg.slug, what, fuzzWatchdog-fuzzCallTimeout))
				})
				defer dog.Stop()
				_ = fn(ctx)
			}
			check := func(what string, p esp.Page) {
				for i, c := range p.Contacts {
					if c.ID == "" {
						t.Errorf("%s: %s: contact %d of %d has no ID", tg.slug, what, i, len(p.Contacts))
					}
				}
				if p.Total < -1 {
					t.Errorf("%s: %s: Total %d (want a count or -1)", tg.slug, what, p.Total)
				}
			}
			call("Lists", func(ctx context.Context) error {
				_, err := tg.a.Lists(ctx)
				return err
			})
			var next esp.Cursor
			call("Contacts", func(ctx context.Context) error {
				p, err := tg.a.Contacts(ctx, "", time.Time{})
				if err == nil {
					check("Contacts", p)
					next = p.Next
				}
				return err
			})
			if next != "" {
				call("Contacts(next)", func(ctx context.Context) error {
					p, err := tg.a.Contacts(ctx, next, time.Time{})
					if err == nil {
						check("Contacts(next)", p)
					}
					return err
				})
			}
			if tg.a.Capabilities().ChangedSince {
				call("Contacts(since)", func(ctx context.Context) error {
					p, err := tg.a.Contacts(ctx, "", since)
					if err == nil {
						check("Contacts(since)", p)
					}
					return err
				})
			}
		}
	})
}
