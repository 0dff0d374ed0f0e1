package esp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/esp/esptest"
)

// The contract suite: every platform with an adapter (registry New != nil) runs against its fake
// (esptest table). Nothing here is per platform: adding a platform adds it to this suite.

// harness is one fake plus a client and an adapter factory pointed at it.
type harness struct {
	t      *testing.T
	slug   string
	fake   *esptest.Fake
	client *esp.Client
	opts   esp.Options
	reg    *esp.Registry
}

type setup struct {
	seed       esptest.Seed
	fakeLimits *esp.Limits // nil: unlimited for speed
	clientLim  *esp.Limits // nil: unlimited
	faults     esptest.Faults
	pageSize   int
}

func newHarness(t *testing.T, slug string, s setup) *harness {
	t.Helper()
	lim := s.fakeLimits
	if lim == nil {
		lim = &esp.Limits{}
	}
	f, err := esptest.Start(slug, esptest.Options{Seed: s.seed, Limits: lim, Faults: s.faults, Validate: true})
	if err != nil {
		t.Fatal(err)
	}
	cl := esp.Limits{}
	if s.clientLim != nil {
		cl = *s.clientLim
	}
	client := esp.NewClient(esp.ClientOptions{
		Retry:          esp.Retry{MaxAttempts: 40, BaseDelay: time.Millisecond, MaxDelay: 20 * time.Millisecond, MaxElapsed: 30 * time.Second},
		RequestTimeout: 10 * time.Second,
		Limits:         map[string]esp.Limits{slug: cl},
	})
	opts := esp.Options{BaseURLs: map[string]string{slug: f.URL()}}
	if s.pageSize > 0 {
		opts.PageSize = map[string]int{slug: s.pageSize}
	}
	h := &harness{t: t, slug: slug, fake: f, client: client, opts: opts, reg: esp.Platforms()}
	t.Cleanup(func() {
		for _, v := range f.Violations() {
			t.Errorf("OpenAPI: %s", v)
		}
		f.Close()
	})
	return h
}

func (h *harness) adapter(good bool) esp.Adapter {
	h.t.Helper()
	a, err := h.reg.Open(h.slug, h.fake.Credentials(good), h.client, h.opts)
	if err != nil {
		h.t.Fatalf("open: %v", err)
	}
	return a
}

type got struct {
	c     esp.Contact
	count int
}

// readAll pages from cursor to the end and returns what came, keyed by (id, list).
func readAll(ctx context.Context, t *testing.T, a esp.Adapter, cursor esp.Cursor, since time.Time, stopAfter int) (map[esptest.Key]*got, esp.Cursor, error) {
	out := map[esptest.Key]*got{}
	pages := 0
	for {
		p, err := a.Contacts(ctx, cursor, since)
		if err != nil {
			return out, cursor, err
		}
		for _, c := range p.Contacts {
			k := esptest.Key{ID: c.ID, ListID: c.ListID}
			if g := out[k]; g != nil {
				g.count++
			} else {
				out[k] = &got{c: c, count: 1}
			}
		}
		pages++
		cursor = p.Next
		if cursor == "" || (stopAfter > 0 && pages >= stopAfter) {
			return out, cursor, nil
		}
	}
}

// exactlyOnce checks that got holds each expected key once, with the right email and status.
func exactlyOnce(t *testing.T, f *esptest.Fake, want map[esptest.Key]esptest.Record, have map[esptest.Key]*got) {
	t.Helper()
	bad := 0
	for k, r := range want {
		g := have[k]
		switch {
		case g == nil:
			t.Errorf("missing contact %d (%s) in list %q", r.Index, r.Kind, k.ListID)
		case g.count != 1:
			t.Errorf("contact %d in list %q came %d times", r.Index, k.ListID, g.count)
		case !strings.EqualFold(g.c.Email, r.Email):
			t.Errorf("contact %d: wrong email", r.Index)
		case g.c.Status != r.Status:
			t.Errorf("contact %d (%s): status %q, want %q", r.Index, r.Kind, g.c.Status, r.Status)
		default:
			continue
		}
		if bad++; bad > 10 {
			t.Fatal("too many errors")
		}
	}
	for k := range have {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected contact %q in list %q", k.ID, k.ListID)
			if bad++; bad > 10 {
				t.Fatal("too many errors")
			}
		}
	}
}

func TestContract(t *testing.T) {
	reg := esp.Platforms()
	n := 0
	for _, p := range reg.All() {
		if p.New == nil {
			continue
		}
		if _, ok := esptest.Lookup(p.Slug); !ok {
			t.Errorf("%s has an adapter but no fake in esptest/fakes.go", p.Slug)
			continue
		}
		n++
		p := p
		t.Run(p.Slug, func(t *testing.T) {
			t.Parallel()
			contract(t, p)
		})
	}
	if n == 0 {
		t.Fatal("no platform has both an adapter and a fake")
	}
}

func contract(t *testing.T, p esp.Platform) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	slug := p.Slug

	t.Run("credentials", func(t *testing.T) {
		h := newHarness(t, slug, setup{seed: esptest.Seed{N: 20, Seed: 1, Lists: 3}})
		lists, err := h.adapter(true).Lists(ctx)
		if err != nil {
			t.Fatalf("good credentials: %v", err)
		}
		if len(lists) != h.fake.Lists() {
			t.Fatalf("lists: got %d, want %d", len(lists), h.fake.Lists())
		}
		seen := map[string]bool{}
		for _, l := range lists {
			if _, ok := h.fake.ListIndex(l.ID); !ok || seen[l.ID] || l.Name == "" {
				t.Errorf("bad list %+v", l)
			}
			seen[l.ID] = true
		}
		bad := h.fake.Credentials(false)
		_, err = h.adapter(false).Lists(ctx)
		if !errors.Is(err, esp.ErrCredentialsRejected) {
			t.Fatalf("bad credentials: got %v, want ErrCredentialsRejected", err)
		}
		for _, v := range bad {
			if len(v) > 3 && strings.Contains(err.Error(), v) {
				t.Fatalf("error echoes a credential: %v", err)
			}
		}
		if got := h.adapter(true).Capabilities(); got != p.Capabilities {
			t.Errorf("Capabilities() = %+v, registry says %+v", got, p.Capabilities)
		}
	})

	t.Run("paging", func(t *testing.T) {
		h := newHarness(t, slug, setup{seed: esptest.Seed{N: 10001, Seed: 2, Lists: 3}})
		have, _, err := readAll(ctx, t, h.adapter(true), "", time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		exactlyOnce(t, h.fake, h.fake.Expected(), have)
	})

	t.Run("resume", func(t *testing.T) {
		// 50 per page (every platform allows it), stop after 11 pages: mid-list, past the first list.
		h := newHarness(t, slug, setup{seed: esptest.Seed{N: 1001, Seed: 3, Lists: 3}, pageSize: 50})
		first, cur, err := readAll(ctx, t, h.adapter(true), "", time.Time{}, 11)
		if err != nil {
			t.Fatal(err)
		}
		if cur == "" {
			t.Fatal("11 pages read everything; the fake is too small to test resume")
		}
		// A new adapter (a restarted worker) continues from the stored cursor.
		rest, _, err := readAll(ctx, t, h.adapter(true), cur, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		for k, g := range first {
			if rest[k] != nil {
				t.Fatalf("contact %q list %q read again after resume", k.ID, k.ListID)
			}
			rest[k] = g
		}
		exactlyOnce(t, h.fake, h.fake.Expected(), rest)
	})

	t.Run("incremental", func(t *testing.T) {
		h := newHarness(t, slug, setup{seed: esptest.Seed{N: 600, Seed: 4, Lists: 3}, pageSize: 10})
		mark := time.Now().Add(-time.Second)
		touched := h.fake.Touch(25)
		have, _, err := readAll(ctx, t, h.adapter(true), "", mark, 0)
		if err != nil {
			t.Fatal(err)
		}
		all := h.fake.Expected()
		if !p.Capabilities.ChangedSince {
			exactlyOnce(t, h.fake, all, have) // since is ignored: a full rescan
			return
		}
		want := map[esptest.Key]esptest.Record{}
		isTouched := map[int]bool{}
		for _, i := range touched {
			isTouched[i] = true
		}
		for k, r := range all {
			if isTouched[r.Index] {
				want[k] = r
			}
		}
		exactlyOnce(t, h.fake, want, have)
	})

	t.Run("writeback", func(t *testing.T) { writeback(ctx, t, p) })

	t.Run("limiter", func(t *testing.T) {
		// A scaled-down platform limit, the client configured the same: the fake must never throttle,
		// even with three readers of the same account at once.
		l := esp.Limits{Rate: 60, Burst: 3}
		if p.Limits.Concurrency > 0 {
			l.Concurrency = 2
		}
		h := newHarness(t, slug, setup{seed: esptest.Seed{N: 150, Seed: 5, Lists: 3}, fakeLimits: &l, clientLim: &l, pageSize: 10})
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for g := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := h.adapter(true)
				have, _, err := readAll(ctx, t, a, "", time.Time{}, 0)
				if err == nil && len(have) != len(h.fake.Expected()) {
					err = fmt.Errorf("read %d, want %d", len(have), len(h.fake.Expected()))
				}
				errs[g] = err
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		st := h.fake.Stats()
		if st.Throttled != 0 {
			t.Fatalf("the fake throttled %d of %d requests: %+v", st.Throttled, st.Requests, st)
		}
		if st.Requests < int64(3*l.Burst) { // three readers, each past the burst
			t.Fatalf("only %d requests: the test does not exercise the limiter", st.Requests)
		}
		// The converse: a client without a limiter (and without retries) is throttled by the fake with the
		// platform's own signal, which the client reports as ErrThrottled.
		// Its fake allows a slow steady rate, so even a -race build on a loaded machine outruns it.
		slow := esp.Limits{Rate: 0.5, Burst: 3}
		hs := newHarness(t, slug, setup{seed: esptest.Seed{N: 150, Seed: 5, Lists: 3}, fakeLimits: &slow, clientLim: &slow, pageSize: 10})
		free := esp.NewClient(esp.ClientOptions{Retry: esp.Retry{MaxAttempts: 1}, Limits: map[string]esp.Limits{slug: {}}})
		a, err := hs.reg.Open(slug, hs.fake.Credentials(true), free, hs.opts)
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			if _, _, err = readAll(ctx, t, a, "", time.Time{}, 0); err != nil {
				break
			}
		}
		if !errors.Is(err, esp.ErrThrottled) || hs.fake.Stats().Throttled == 0 {
			t.Fatal("an unlimited client was never throttled: the fake does not enforce the limit")
		}
	})

	t.Run("faults", func(t *testing.T) {
		h := newHarness(t, slug, setup{
			seed:     esptest.Seed{N: 1500, Seed: 6, Lists: 3},
			faults:   esptest.Faults{ServerErrors: 0.10, Throttles: 0.05, Drops: 0.02, Truncations: 0.02, Seed: 6},
			pageSize: 10,
		})
		have, _, err := readAll(ctx, t, h.adapter(true), "", time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		exactlyOnce(t, h.fake, h.fake.Expected(), have)
		st := h.fake.Stats()
		if st.InjectedErrors == 0 || st.InjectedThrottles == 0 {
			t.Fatalf("faults were not exercised: %+v", st)
		}
	})
}

func writeback(ctx context.Context, t *testing.T, p esp.Platform) {
	h := newHarness(t, p.Slug, setup{seed: esptest.Seed{N: 40, Seed: 7, Lists: 2, Mix: esptest.Mix{esptest.KindGood: 1}}})
	a := h.adapter(true)
	f := h.fake
	page, err := a.Contacts(ctx, "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Contacts) < 4 {
		t.Fatalf("first page has %d contacts", len(page.Contacts))
	}
	idx := func(c esp.Contact) int {
		i, ok := f.IndexOf(c.ID)
		if !ok {
			t.Fatalf("contact id %q unknown to the fake", c.ID)
		}
		return i
	}
	// pick four distinct contacts
	var cs []esp.Contact
	used := map[int]bool{}
	for _, c := range page.Contacts {
		if i := idx(c); !used[i] {
			used[i] = true
			cs = append(cs, c)
		}
	}
	if len(cs) < 4 {
		t.Fatalf("need 4 distinct contacts, got %d", len(cs))
	}
	for range 2 {
		if err := a.EnsureFields(ctx); err != nil {
			t.Fatalf("EnsureFields: %v", err)
		}
	}

	fields := esp.Fields{esp.FieldPassed: "false", esp.FieldReason: "typo", esp.FieldMode: "normal",
		esp.FieldFlossedOn: "2026-06-02", esp.FieldStatus: "undeliverable", esp.FieldFixed: "false", esp.FieldSuggestion: "x@example.com"}
	for range 2 {
		if err := a.SetFields(ctx, cs[0], fields); err != nil {
			t.Fatalf("SetFields: %v", err)
		}
	}
	r := f.Record(idx(cs[0]))
	if p.Capabilities.Tags {
		if !hasTag(r, esp.FailedTag("typo")) {
			t.Errorf("SetFields on a tag platform: tag %q missing, tags %v", esp.FailedTag("typo"), r.Tags)
		}
	} else {
		for k, v := range fields {
			if got := r.Fields[f.FieldName(k)]; got != v {
				t.Errorf("field %s (%s) = %q, want %q", k, f.FieldName(k), got, v)
			}
		}
	}

	tag := esp.FailedTag("disposable")
	for range 2 {
		if err := a.AddTag(ctx, cs[1], tag); err != nil {
			t.Fatalf("AddTag: %v", err)
		}
	}
	r = f.Record(idx(cs[1]))
	if !hasTag(r, tag) && r.Fields[f.FieldName(tag)] == "" {
		t.Errorf("AddTag: %q neither a tag nor a field: %+v %+v", tag, r.Tags, r.Fields)
	}
	if n := countTag(r, tag); n > 1 {
		t.Errorf("AddTag twice: tag present %d times", n)
	}

	for range 2 {
		if err := a.Unsubscribe(ctx, cs[2]); err != nil {
			t.Fatalf("Unsubscribe: %v", err)
		}
	}
	if r = f.Record(idx(cs[2])); r.Status != f.Spec().StatusOf(esp.StatusUnsubscribed) {
		t.Errorf("Unsubscribe: status %q", r.Status)
	}

	snap, err := a.Delete(ctx, cs[3])
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if !json.Valid(snap) || !strings.Contains(strings.ToLower(string(snap)), strings.ToLower(f.Seeded(idx(cs[3])).Email)) {
		t.Errorf("Delete: snapshot is not the contact as JSON")
	}
	l := -1
	if cs[3].ListID != "" {
		l, _ = f.ListIndex(cs[3].ListID)
	}
	noDelete := a.Capabilities().NoDelete
	switch {
	case noDelete && f.Record(idx(cs[3])).Status != f.Spec().StatusOf(esp.StatusUnsubscribed):
		t.Errorf("Delete on a platform without delete: contact not unsubscribed")
	case !noDelete && f.Alive(idx(cs[3]), l):
		t.Errorf("Delete: contact still there")
	}
	snap, err = a.Delete(ctx, cs[3])
	if !errors.Is(err, esp.ErrNotFound) || snap != nil {
		t.Errorf("Delete again: got %v (snapshot %d bytes), want ErrNotFound and no snapshot", err, len(snap))
	}
	wantDeletes := int64(1)
	if noDelete {
		wantDeletes = 0
	}
	if w := f.Writes(); w.Unsubscribes == 0 || w.Deletes != wantDeletes {
		t.Errorf("write counters %+v (want %d deletes)", w, wantDeletes)
	}
	// The platform reports the unsubscribe and no longer lists the deleted contact.
	have, _, err := readAll(ctx, t, a, "", time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	exactlyOnce(t, f, f.Expected(), have)
}

func hasTag(r esptest.Record, tag string) bool { return countTag(r, tag) > 0 }

func countTag(r esptest.Record, tag string) int {
	n := 0
	for _, x := range r.Tags {
		if x == tag {
			n++
		}
	}
	return n
}
