// Package esptest runs faithful fakes of the email platforms on loopback for tests, the demo and the
// benchmarks: each fake speaks its platform's wire format (paths, auth, version headers, page-size maximums,
// paging, error and throttle bodies) over a deterministic, lazily generated contact store, records every
// write, enforces the platform's limits with its own throttle signal, and can inject faults.
//
// The common core is Fake; one file per platform defines its Spec (see fakes.go for the table).
package esptest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/autofloss/autofloss/esp"
)

// Spec is one platform's fake: what the core needs to know plus its routes.
type Spec struct {
	Slug string
	// Limits are the platform's own limits, enforced by the fake (Options.Limits replaces them).
	Limits esp.Limits
	// PerList: the adapter reads contacts list by list, so a contact comes once per list it is in (ListID
	// set). False: each contact comes once with ListID "".
	PerList bool
	// ContactID is the platform's id of a seeded contact (deterministic; unique).
	ContactID func(c SeedContact) string
	// ListID is the platform's id of list l (0-based).
	ListID func(l int) string
	// Credentials returns good (or, with good false, well-formed but wrong) credentials for the fake.
	Credentials func(f *Fake, good bool) map[string]string
	// Authorized checks a request's credentials.
	Authorized func(f *Fake, r *http.Request) bool
	// Unauthorized writes the platform's answer to bad credentials.
	Unauthorized func(w http.ResponseWriter, r *http.Request)
	// Throttle writes the platform's throttle signal; wait is when capacity returns (0 for injected faults).
	Throttle func(w http.ResponseWriter, wait time.Duration)
	// ServerError writes the platform's 5xx (nil: a plain 500 JSON body).
	ServerError func(w http.ResponseWriter)
	// Routes registers the platform's endpoints.
	Routes func(f *Fake, mux *http.ServeMux)
	// OpenAPI lists official documents under openapi/ (e.g. "klaviyo/get_profiles.json") every request
	// and response is validated against when Options.Validate is set.
	OpenAPI []string
	// Status maps a seeded contact's status to what the platform can express (nil: unchanged).
	Status func(esp.Status) esp.Status
	// FieldName maps a canonical mf_* field (or a tag stored as a field) to the name the platform stores
	// (nil: unchanged).
	FieldName func(canonical string) string
}

// Faults are injected failures; fractions are per request, drawn from a seeded generator.
type Faults struct {
	ServerErrors float64       // answer the platform's 5xx
	Throttles    float64       // answer the platform's throttle signal (wait 0)
	Drops        float64       // close the connection without an answer
	Truncations  float64       // send half the body then close
	Latency      time.Duration // added to every request
	Seed         int64
}

// Options configure a fake.
type Options struct {
	Seed   Seed
	Limits *esp.Limits // nil: Spec.Limits; &esp.Limits{}: unlimited
	Faults Faults
	// Validate checks every request and response against Spec.OpenAPI; violations are kept in
	// Fake.Violations (the contract suite fails on any).
	Validate bool
	// Secret is the good credential (default: a deterministic platform-looking key).
	Secret string
}

// Stats are the fake's counters.
type Stats struct {
	Requests          int64
	Throttled         int64 // answered with the throttle signal because the platform's limit was exceeded
	ThrottledBusy     int64 // of which because of the simultaneous-requests limit
	MaxInFlight       int64
	InjectedThrottles int64
	InjectedErrors    int64
	Drops             int64
	Truncations       int64
	Unauthorized      int64
}

// Writes count the write-backs the fake applied.
type Writes struct {
	Fields       int64 // field values set
	Tags         int64 // tags added
	Unsubscribes int64
	Deletes      int64
}

// Record is one contact as the fake holds it now.
type Record struct {
	SeedContact
	ID      string
	Status  esp.Status // current status as the platform reports it
	Lists   []int      // current lists
	Fields  map[string]string
	Tags    []string
	Deleted bool
}

type state struct {
	fields  map[string]string
	tags    []string
	status  esp.Status
	updated time.Time
	deleted bool
	removed map[int]bool
}

// Fake is one running platform fake.
type Fake struct {
	spec   Spec
	opts   Options
	seed   *seeder
	srv    *http.Server
	ln     net.Listener
	url    string
	secret string
	val    *Validator

	lim      *rate.Limiter
	limits   esp.Limits
	inflight atomic.Int64
	stats    struct {
		requests, throttled, busy, maxInflight, injThrottles, injErrors, drops, truncs, unauth atomic.Int64
	}
	writes struct{ fields, tags, unsubs, deletes atomic.Int64 }

	rndMu sync.Mutex
	rnd   *rand.Rand

	mu      sync.RWMutex
	over    map[int]*state
	all     []int32   // alive contacts in index order
	members [][]int32 // per list, alive members in index order
	idxOnce sync.Once // builds byID and byEmail (immutable afterwards, read without mu)
	byID    map[string]int
	byEmail map[string]int
	listIDs []string // ListID of every list, computed once (Spec.ListID formats a string)
	touches int
	mviol   sync.Mutex
	viol    []string
}

// Start starts the fake of the platform with slug on 127.0.0.1:0.
func Start(slug string, o Options) (*Fake, error) {
	s, ok := Lookup(slug)
	if !ok {
		return nil, fmt.Errorf("esptest: no fake for %q", slug)
	}
	return StartSpec(s, o)
}

// StartSpec starts a fake from a Spec.
func StartSpec(s Spec, o Options) (*Fake, error) {
	f := &Fake{spec: s, opts: o, seed: newSeeder(o.Seed), over: map[int]*state{}}
	f.secret = o.Secret
	if f.secret == "" {
		f.secret = fmt.Sprintf("fake-%s-key-%016x", s.Slug, mix64(uint64(o.Seed.Seed)+7))
	}
	f.rnd = rand.New(rand.NewPCG(uint64(o.Faults.Seed), 99))
	f.limits = s.Limits
	if o.Limits != nil {
		f.limits = *o.Limits
	}
	if f.limits.Rate > 0 {
		// Slack over the platform's burst absorbs scheduling jitter between a client taking its token and
		// the request arriving here: one request, or 50 ms worth of the rate, whichever is more. A client
		// without a limiter still gets throttled at once.
		slack := max(1, int(math.Ceil(f.limits.Rate*0.05)))
		f.lim = rate.NewLimiter(rate.Limit(f.limits.Rate), f.limits.Burst+slack)
	}
	n := o.Seed.N
	f.all = make([]int32, n)
	f.members = make([][]int32, f.seed.lists)
	for i := 0; i < n; i++ {
		f.all[i] = int32(i)
		for _, l := range f.seed.listsOf(i) {
			f.members[l] = append(f.members[l], int32(i))
		}
	}
	if o.Validate && len(s.OpenAPI) > 0 {
		v, err := LoadValidator(s.OpenAPI...)
		if err != nil {
			return nil, err
		}
		f.val = v
	}
	f.listIDs = make([]string, f.seed.lists)
	for l := range f.listIDs {
		f.listIDs[l] = s.ListID(l)
	}
	mux := http.NewServeMux()
	s.Routes(f, mux)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f.ln = ln
	f.url = "http://" + ln.Addr().String()
	f.srv = &http.Server{Handler: f.middleware(mux), ErrorLog: log.New(io.Discard, "", 0), ReadHeaderTimeout: 10 * time.Second}
	go f.srv.Serve(ln)
	return f, nil
}

// listsOf is the cheap primary/secondary list computation (same as contact(i).Lists, without the strings).
func (z *seeder) listsOf(i int) []int {
	h3 := mix64(mix64(mix64(z.salt ^ uint64(i))))
	p := i % z.lists
	if z.lists > 1 && (h3>>40)%4 == 0 {
		return []int{p, (p + 1) % z.lists}
	}
	return []int{p}
}

// Close stops the fake.
func (f *Fake) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := f.srv.Shutdown(ctx); err != nil {
		return f.srv.Close()
	}
	return nil
}

// URL is the fake's base URL, to use as the platform's base-URL override.
func (f *Fake) URL() string { return f.url }

// Spec returns the fake's platform spec.
func (f *Fake) Spec() Spec { return f.spec }

// Secret is the good credential.
func (f *Fake) Secret() string { return f.secret }

// Credentials returns good or wrong credentials for the platform.
func (f *Fake) Credentials(good bool) map[string]string { return f.spec.Credentials(f, good) }

// N is the number of seeded contacts.
func (f *Fake) N() int { return f.opts.Seed.N }

// Lists is the number of lists.
func (f *Fake) Lists() int { return f.seed.lists }

// ListID is the platform id of list l.
func (f *Fake) ListID(l int) string {
	if l >= 0 && l < len(f.listIDs) {
		return f.listIDs[l]
	}
	return f.spec.ListID(l)
}

// ListIndex finds a list by its platform id.
func (f *Fake) ListIndex(id string) (int, bool) {
	for l, x := range f.listIDs {
		if x == id {
			return l, true
		}
	}
	return 0, false
}

// Stats returns the counters.
func (f *Fake) Stats() Stats {
	return Stats{
		Requests: f.stats.requests.Load(), Throttled: f.stats.throttled.Load(), ThrottledBusy: f.stats.busy.Load(), MaxInFlight: f.stats.maxInflight.Load(),
		InjectedThrottles: f.stats.injThrottles.Load(), InjectedErrors: f.stats.injErrors.Load(),
		Drops: f.stats.drops.Load(), Truncations: f.stats.truncs.Load(), Unauthorized: f.stats.unauth.Load(),
	}
}

// Writes returns the write counters.
func (f *Fake) Writes() Writes {
	return Writes{Fields: f.writes.fields.Load(), Tags: f.writes.tags.Load(), Unsubscribes: f.writes.unsubs.Load(), Deletes: f.writes.deletes.Load()}
}

// Violations are the OpenAPI validation failures seen so far (requests and responses).
func (f *Fake) Violations() []string {
	f.mviol.Lock()
	defer f.mviol.Unlock()
	return append([]string(nil), f.viol...)
}

func (f *Fake) violation(s string) {
	f.mviol.Lock()
	if len(f.viol) < 100 {
		f.viol = append(f.viol, s)
	}
	f.mviol.Unlock()
}

// Seeded returns seeded contact i as generated (before writes).
func (f *Fake) Seeded(i int) SeedContact { return f.seed.contact(i) }

func (f *Fake) status(s esp.Status) esp.Status {
	if f.spec.Status != nil {
		return f.spec.Status(s)
	}
	return s
}

// FieldName is the platform's stored name of a canonical field.
func (f *Fake) FieldName(canonical string) string {
	if f.spec.FieldName != nil {
		return f.spec.FieldName(canonical)
	}
	return canonical
}

// Record returns contact i as it is now.
func (f *Fake) Record(i int) Record {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.record(i)
}

func (f *Fake) record(i int) Record {
	sc := f.seed.contact(i)
	r := Record{SeedContact: sc, ID: f.spec.ContactID(sc), Status: f.status(sc.Status), Lists: sc.Lists}
	if st := f.over[i]; st != nil {
		if st.status != "" {
			r.Status = st.status
		}
		if !st.updated.IsZero() {
			r.Updated = st.updated
		}
		r.Deleted = st.deleted
		if len(st.removed) > 0 {
			r.Lists = nil
			for _, l := range sc.Lists {
				if !st.removed[l] {
					r.Lists = append(r.Lists, l)
				}
			}
		}
		if len(st.fields) > 0 {
			r.Fields = make(map[string]string, len(st.fields))
			for k, v := range st.fields {
				r.Fields[k] = v
			}
		}
		r.Tags = append([]string(nil), st.tags...)
	}
	return r
}

// Key identifies one (contact, list) pair as an adapter reports it.
type Key struct{ ID, ListID string }

// Expected returns every (contact, list) pair a full read must yield now, with the record.
func (f *Fake) Expected() map[Key]Record {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := map[Key]Record{}
	if !f.spec.PerList {
		for _, i := range f.all {
			r := f.record(int(i))
			out[Key{ID: r.ID}] = r
		}
		return out
	}
	for l, m := range f.members {
		lid := f.spec.ListID(l)
		for _, i := range m {
			r := f.record(int(i))
			out[Key{ID: r.ID, ListID: lid}] = r
		}
	}
	return out
}

// buildIndex builds the id and email indexes once; they depend on the seed only (ids and emails never
// change), so lookups read them without f.mu.
func (f *Fake) buildIndex() {
	f.idxOnce.Do(func() {
		byID := make(map[string]int, f.opts.Seed.N)
		byEmail := make(map[string]int, f.opts.Seed.N)
		for i := 0; i < f.opts.Seed.N; i++ {
			sc := f.seed.contact(i)
			byID[f.spec.ContactID(sc)] = i
			byEmail[sc.Email] = i
		}
		f.byID, f.byEmail = byID, byEmail
	})
}

// IndexOf finds a contact by platform id (deleted ones included). The index is built on first use.
func (f *Fake) IndexOf(id string) (int, bool) {
	f.buildIndex()
	i, ok := f.byID[id]
	return i, ok
}

// IndexOfEmail finds a contact by email (case-insensitive as stored: seeded emails are lower case).
func (f *Fake) IndexOfEmail(email string) (int, bool) {
	f.buildIndex()
	i, ok := f.byEmail[email]
	return i, ok
}

// Alive reports whether contact i exists (in list l when l >= 0).
func (f *Fake) Alive(i, l int) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.alive(i, l)
}

func (f *Fake) alive(i, l int) bool {
	if i < 0 || i >= f.opts.Seed.N {
		return false
	}
	st := f.over[i]
	if st != nil && st.deleted {
		return false
	}
	if l < 0 {
		return true
	}
	for _, x := range f.seed.listsOf(i) {
		if x == l {
			return st == nil || !st.removed[l]
		}
	}
	return false
}

func (f *Fake) st(i int) *state {
	s := f.over[i]
	if s == nil {
		s = &state{}
		f.over[i] = s
	}
	return s
}

func nowUTC() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// SetField records a field write on contact i.
func (f *Fake) SetField(i int, name, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.st(i)
	if s.fields == nil {
		s.fields = map[string]string{}
	}
	s.fields[name] = value
	s.updated = nowUTC()
	f.writes.fields.Add(1)
}

// SetFields records several field writes on contact i at once (one lock, one change time), in the
// order of names (values[k] is the value of names[k]).
func (f *Fake) SetFields(i int, names, values []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.st(i)
	if s.fields == nil {
		s.fields = make(map[string]string, len(names))
	}
	for k, n := range names {
		s.fields[n] = values[k]
	}
	s.updated = nowUTC()
	f.writes.fields.Add(int64(len(names)))
}

// AddTag records a tag on contact i (adding an existing tag changes nothing but the counter).
func (f *Fake) AddTag(i int, tag string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.st(i)
	f.writes.tags.Add(1)
	for _, t := range s.tags {
		if t == tag {
			return
		}
	}
	s.tags = append(s.tags, tag)
	s.updated = nowUTC()
}

// Unsubscribe records an unsubscribe of contact i.
func (f *Fake) Unsubscribe(i int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.st(i)
	s.status = f.status(esp.StatusUnsubscribed)
	s.updated = nowUTC()
	f.writes.unsubs.Add(1)
}

// Delete removes contact i everywhere. It reports false when it was already gone.
func (f *Fake) Delete(i int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.alive(i, -1) {
		return false
	}
	s := f.st(i)
	s.deleted = true
	s.updated = nowUTC()
	f.all = remove(f.all, i)
	for l := range f.members {
		f.members[l] = remove(f.members[l], i)
	}
	f.writes.deletes.Add(1)
	return true
}

// RemoveFromList removes contact i from list l (a per-list delete/archive). False when it was not there.
func (f *Fake) RemoveFromList(i, l int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.alive(i, l) {
		return false
	}
	s := f.st(i)
	if s.removed == nil {
		s.removed = map[int]bool{}
	}
	s.removed[l] = true
	s.updated = nowUTC()
	f.members[l] = remove(f.members[l], i)
	f.writes.deletes.Add(1)
	return true
}

func remove(s []int32, i int) []int32 {
	j := sort.Search(len(s), func(k int) bool { return s[k] >= int32(i) })
	if j < len(s) && s[j] == int32(i) {
		return append(s[:j], s[j+1:]...)
	}
	return s
}

// Touch marks n alive contacts as changed now (spread over the store, deterministic) and returns their
// indexes, so incremental reads can be tested.
func (f *Fake) Touch(n int) []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n > len(f.all) {
		n = len(f.all)
	}
	if n == 0 {
		return nil
	}
	step := len(f.all) / n
	now := nowUTC()
	out := make([]int, 0, n)
	for k := 0; k < n; k++ {
		i := int(f.all[(k*step+f.touches)%len(f.all)])
		f.st(i).updated = now
		out = append(out, i)
	}
	f.touches++
	return out
}

// Len is the number of alive contacts in list l (l < 0: the whole account).
func (f *Fake) Len(l int) int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.members0(l))
}

func (f *Fake) members0(l int) []int32 {
	if l < 0 {
		return f.all
	}
	if l >= len(f.members) {
		return nil
	}
	return f.members[l]
}

// Slice returns up to limit alive records of list l (l < 0: account) from offset, in index order: offset
// paging.
func (f *Fake) Slice(l, offset, limit int) []Record {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m := f.members0(l)
	if offset >= len(m) || offset < 0 {
		return nil
	}
	end := min(offset+limit, len(m))
	out := make([]Record, 0, end-offset)
	for _, i := range m[offset:end] {
		out = append(out, f.record(int(i)))
	}
	return out
}

// After returns up to limit alive records of list l (l < 0: account) whose index is greater than after
// (-1: from the start), in index order, and whether more follow: keyset/cursor paging.
func (f *Fake) After(l, after, limit int) (recs []Record, more bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m := f.members0(l)
	j := sort.Search(len(m), func(k int) bool { return m[k] > int32(after) })
	end := min(j+limit, len(m))
	for _, i := range m[j:end] {
		recs = append(recs, f.record(int(i)))
	}
	return recs, end < len(m)
}

// ChangedKey orders records of an incremental read: by updated time, then index.
type ChangedKey struct {
	Updated time.Time
	Index   int
}

// Changed returns the indexes of alive contacts of list l (l < 0: account) updated strictly after since
// (or at/after it when inclusive), sorted by (updated, index).
func (f *Fake) Changed(l int, since time.Time, inclusive bool) []ChangedKey {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []ChangedKey
	for _, i := range f.members0(l) {
		u := f.seed.updatedOf(int(i))
		if st := f.over[int(i)]; st != nil && !st.updated.IsZero() {
			u = st.updated
		}
		if u.After(since) || inclusive && u.Equal(since) {
			out = append(out, ChangedKey{u, int(i)})
		}
	}
	sort.Slice(out, func(a, b int) bool {
		if !out[a].Updated.Equal(out[b].Updated) {
			return out[a].Updated.Before(out[b].Updated)
		}
		return out[a].Index < out[b].Index
	})
	return out
}

func (z *seeder) updatedOf(i int) time.Time { return z.contact(i).Updated }

// ---- middleware: limiter, faults, auth, validation ----

type capture struct {
	h      http.Header
	status int
	buf    bytes.Buffer
}

// captures recycles the response buffers of the middleware (a page of 1,000 members is a few hundred KB;
// one buffer per request was the fake's largest allocation). Buffers over 4 MiB are not kept.
var captures = sync.Pool{New: func() any { return new(capture) }}

func putCapture(c *capture) {
	if c.buf.Cap() > 4<<20 {
		return
	}
	c.h, c.status = nil, 0
	c.buf.Reset()
	captures.Put(c)
}

// reqBody is the request body as the middleware read it, replayable: handlers get it as r.Body, and
// requestBody hands them the bytes without another copy.
type reqBody struct {
	bytes.Reader
	b []byte
}

func (*reqBody) Close() error { return nil }

func newReqBody(b []byte) *reqBody {
	rb := &reqBody{b: b}
	rb.Reset(b)
	return rb
}

// requestBody returns r's whole body (the middleware's bytes when r came through it).
func requestBody(r *http.Request) ([]byte, error) {
	if rb, ok := r.Body.(*reqBody); ok {
		return rb.b, nil
	}
	return io.ReadAll(r.Body)
}

// readBody reads a request body whole, in one allocation when its length is declared.
func readBody(r *http.Request) ([]byte, error) {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if n := r.ContentLength; n > 0 && n <= 64<<20 {
		b := make([]byte, n)
		if _, err := io.ReadFull(r.Body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	return io.ReadAll(r.Body)
}

func (c *capture) Header() http.Header { return c.h }
func (c *capture) WriteHeader(s int) {
	if c.status == 0 {
		c.status = s
	}
}
func (c *capture) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = 200
	}
	return c.buf.Write(b)
}

func (f *Fake) roll(p float64) bool {
	if p <= 0 {
		return false
	}
	f.rndMu.Lock()
	defer f.rndMu.Unlock()
	return f.rnd.Float64() < p
}

func (f *Fake) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.stats.requests.Add(1)
		// In flight from arrival until the answer starts leaving: decremented before the response is written,
		// so the client cannot see an answer (and send its next request) while this one still counts.
		n := f.inflight.Add(1)
		var left bool // this goroutine only
		done := func() {
			if !left {
				left = true
				f.inflight.Add(-1)
			}
		}
		defer done()
		for {
			m := f.stats.maxInflight.Load()
			if n <= m || f.stats.maxInflight.CompareAndSwap(m, n) {
				break
			}
		}
		body, err := readBody(r)
		if err != nil {
			return
		}
		r.Body = newReqBody(body)
		if d := f.opts.Faults.Latency; d > 0 {
			time.Sleep(d)
		}
		fa := f.opts.Faults
		if f.roll(fa.Drops) {
			f.stats.drops.Add(1)
			done()
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		// The handler writes its headers straight into w's (nothing else has set any), its body into c.
		c := captures.Get().(*capture)
		defer putCapture(c) // after w.Write: the server has copied or sent the bytes by then
		c.h = w.Header()
		f.serve(c, r, next, body)
		if c.status == 0 {
			c.status = 200
		}
		if f.val != nil {
			r.Body = newReqBody(body)
			for _, v := range f.val.Check(r, c.status, c.h, c.buf.Bytes()) {
				f.violation(v)
			}
		}
		done()
		b := c.buf.Bytes()
		if c.status >= 200 && c.status < 300 && len(b) > 16 && f.roll(fa.Truncations) {
			f.stats.truncs.Add(1)
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.WriteHeader(c.status)
			w.Write(b[:len(b)/2])
			if fl, ok := w.(http.Flusher); ok {
				fl.Flush()
			}
			panic(http.ErrAbortHandler)
		}
		if len(b) > 0 || w.Header().Get("Content-Length") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		}
		w.WriteHeader(c.status)
		w.Write(b)
	})
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request, next http.Handler, body []byte) {
	if c := f.limits.Concurrency; c > 0 && f.inflight.Load() > int64(c) {
		f.stats.throttled.Add(1)
		f.stats.busy.Add(1)
		f.spec.Throttle(w, time.Second)
		return
	}
	if f.lim != nil && !f.lim.Allow() {
		f.stats.throttled.Add(1)
		wait := time.Duration((1 - f.lim.Tokens()) / float64(f.lim.Limit()) * float64(time.Second))
		f.spec.Throttle(w, wait)
		return
	}
	fa := f.opts.Faults
	if f.roll(fa.ServerErrors) {
		f.stats.injErrors.Add(1)
		if f.spec.ServerError != nil {
			f.spec.ServerError(w)
		} else {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"error":"internal server error"}`)
		}
		return
	}
	if f.roll(fa.Throttles) {
		f.stats.injThrottles.Add(1)
		f.spec.Throttle(w, 0)
		return
	}
	if !f.spec.Authorized(f, r) {
		f.stats.unauth.Add(1)
		f.spec.Unauthorized(w, r)
		return
	}
	next.ServeHTTP(w, r)
}

// ErrBody is a helper for fakes: writes status with a JSON body.
func WriteJSON(w http.ResponseWriter, status int, contentType string, body []byte) {
	if contentType == "" {
		contentType = "application/json"
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	w.Write(body)
}

// ErrNoFake is returned by Lookup users when a slug has no fake.
var ErrNoFake = errors.New("esptest: no fake for platform")

// StatusOf is what the platform reports for a contact of status s (Spec.Status applied).
func (s Spec) StatusOf(st esp.Status) esp.Status {
	if s.Status != nil {
		return s.Status(st)
	}
	return st
}
