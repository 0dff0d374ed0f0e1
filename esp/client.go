package esp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// ErrBadRequest is the platform refusing a request for a reason other than credentials, throttling or a
// missing object (its 400/409/422…). Added to the sentinel set of adapter.go because callers must tell "our
// request is wrong / the data is refused" (do not retry, report) from the four retry-relevant cases.
var ErrBadRequest = errors.New("esp: request refused by the platform")

// Observer receives one call per HTTP attempt, so the worker can feed Prometheus without esp importing it.
// status is 0 when no response arrived (connection refused, dropped, timed out).
type Observer interface {
	Request(platform string, status int, d time.Duration)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(platform string, status int, d time.Duration)

// Request implements Observer.
func (f ObserverFunc) Request(platform string, status int, d time.Duration) { f(platform, status, d) }

// Retry bounds the client's retries of throttled, unavailable and dropped attempts. Zero fields take the
// defaults (8 attempts, 500 ms base, 30 s max delay, 5 min total). Waits are jittered exponential
// (uniform in [½, 1] × base·2^n, capped), or the platform's own wait when it says one and that is longer.
type Retry struct {
	MaxAttempts int
	BaseDelay   time.Duration
	MaxDelay    time.Duration
	MaxElapsed  time.Duration
}

// ClientOptions configure the shared client. The zero value is usable.
type ClientOptions struct {
	HTTP           *http.Client // nil: a client with sane transport timeouts
	Observer       Observer     // nil: none
	Retry          Retry
	RequestTimeout time.Duration     // per attempt, body included; default 120 s (Mailchimp's own timeout)
	Limits         map[string]Limits // per slug, replaces the registry's default limits (tests scale these down)
}

// Client is the one HTTP client every adapter of the process uses. It owns one rate limiter (and optional
// concurrency cap) per platform account, so every run and write-back of that account shares the budget.
type Client struct {
	http     *http.Client
	obs      Observer
	retry    Retry
	timeout  time.Duration
	limits   map[string]Limits
	mu       sync.Mutex
	accounts map[string]*account
}

// NewClient builds the shared client.
func NewClient(o ClientOptions) *Client {
	r := o.Retry
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = 8
	}
	if r.BaseDelay <= 0 {
		r.BaseDelay = 500 * time.Millisecond
	}
	if r.MaxDelay <= 0 {
		r.MaxDelay = 30 * time.Second
	}
	if r.MaxElapsed <= 0 {
		r.MaxElapsed = 5 * time.Minute
	}
	hc := o.HTTP
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 32
		tr.ResponseHeaderTimeout = 120 * time.Second
		hc = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	t := o.RequestTimeout
	if t <= 0 {
		t = 120 * time.Second
	}
	return &Client{http: hc, obs: o.Observer, retry: r, timeout: t, limits: o.Limits, accounts: map[string]*account{}}
}

type account struct {
	lim   *rate.Limiter // nil: no rate limit
	sem   chan struct{}
	pause atomic.Int64 // Unix ns; nobody sends to this account before this (set by a throttle answer); 0: none
}

// Account is one platform account's handle on the client: its shared limiter, its throttle parser.
type Account struct {
	c        *Client
	platform string
	a        *account
	throttle ThrottleFunc
}

// Account returns the handle for (platform, credential). credential is whatever identifies the account
// (the API key, or key + account id); only a hash of it is kept. def are the platform's default limits,
// replaced by ClientOptions.Limits[platform] when set. throttle nil means DefaultThrottle. Every handle with
// the same platform and credential shares one limiter.
func (c *Client) Account(platform, credential string, def Limits, throttle ThrottleFunc) *Account {
	if l, ok := c.limits[platform]; ok {
		def = l
	}
	h := sha256.Sum256([]byte(credential))
	k := platform + "/" + hex.EncodeToString(h[:12])
	c.mu.Lock()
	a := c.accounts[k]
	if a == nil {
		a = &account{}
		if def.Rate > 0 {
			b := def.Burst
			if b < 1 {
				b = 1
			}
			a.lim = rate.NewLimiter(rate.Limit(def.Rate), b)
		}
		if def.Concurrency > 0 {
			a.sem = make(chan struct{}, def.Concurrency)
		}
		c.accounts[k] = a
	}
	c.mu.Unlock()
	if throttle == nil {
		throttle = DefaultThrottle
	}
	return &Account{c: c, platform: platform, a: a, throttle: throttle}
}

// Request is one HTTP call. Body is replayed on every attempt.
type Request struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
}

// Error is what the client returns for a failed call. It wraps one sentinel (ErrCredentialsRejected,
// ErrThrottled, ErrUnavailable, ErrNotFound, ErrBadRequest) and never contains credentials, query strings
// or email addresses: Path is the request path with any segment holding an '@' replaced.
type Error struct {
	Platform   string
	Method     string
	Path       string
	Status     int           // 0 when no response arrived
	Kind       error         // the sentinel
	RetryAfter time.Duration // the platform's wait, when it said one (throttled)
	Quota      bool          // a long quota (e.g. daily) is exhausted: retrying soon is pointless
	Err        error         // underlying cause (already free of secrets), may be nil
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "esp: %s %s %s", e.Platform, e.Method, e.Path)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
	}
	if e.Kind != nil {
		b.WriteString(": " + strings.TrimPrefix(e.Kind.Error(), "esp: "))
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter.Round(time.Millisecond))
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Unwrap exposes the sentinel and the cause to errors.Is/As.
func (e *Error) Unwrap() []error {
	out := []error{e.Kind}
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}

// RedactPath returns u's path without query, with segments that look like email addresses replaced.
func RedactPath(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparseable url)"
	}
	segs := strings.Split(p.EscapedPath(), "/")
	for i, s := range segs {
		if strings.Contains(s, "@") || strings.Contains(strings.ToLower(s), "%40") {
			segs[i] = "{email}"
		}
	}
	return strings.Join(segs, "/")
}

// Do sends req, retrying throttled, 5xx, timed-out, dropped and truncated attempts within the retry budget
// and ctx. On a 2xx answer it calls handle with the response; the body is streamed, not buffered. handle
// may be called once per attempt (a body cut off mid-way is retried from scratch), so it must start afresh
// each time. A handle error that is a transport failure (unexpected EOF, reset) is retried; any other is
// returned as is.
func (a *Account) Do(ctx context.Context, req Request, handle func(*http.Response) error) error {
	r := a.c.retry
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := a.once(ctx, req, handle)
		if err == nil {
			return nil
		}
		var e *Error
		if !errors.As(err, &e) || !retryable(e) || attempt >= r.MaxAttempts || ctx.Err() != nil {
			return err
		}
		d := backoff(r, attempt)
		if e.RetryAfter > d {
			d = e.RetryAfter
		}
		if time.Since(start)+d > r.MaxElapsed {
			return err
		}
		if dl, ok := ctx.Deadline(); ok && time.Now().Add(d).After(dl) {
			return err
		}
		if errors.Is(e.Kind, ErrThrottled) {
			a.pauseFor(d)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

func retryable(e *Error) bool {
	if e.Quota {
		return false
	}
	return errors.Is(e.Kind, ErrThrottled) || errors.Is(e.Kind, ErrUnavailable)
}

func backoff(r Retry, attempt int) time.Duration {
	d := float64(r.BaseDelay) * math.Pow(2, float64(attempt-1))
	if d > float64(r.MaxDelay) {
		d = float64(r.MaxDelay)
	}
	return time.Duration(d * (0.5 + rand.Float64()/2))
}

func (a *Account) pauseFor(d time.Duration) {
	t := time.Now().Add(d).UnixNano()
	for {
		p := a.a.pause.Load()
		if t <= p || a.a.pause.CompareAndSwap(p, t) {
			return
		}
	}
}

func (a *Account) wait(ctx context.Context) error {
	if p := a.a.pause.Load(); p != 0 {
		if d := time.Until(time.Unix(0, p)); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
	}
	if a.a.lim == nil {
		return ctx.Err()
	}
	return a.a.lim.Wait(ctx)
}

const peekSize = 512

// readers recycles the 32 KB buffered readers of response bodies: one per request was half of all the
// bytes a floss run allocated (`autofloss bench -profile`). A reader is taken when a response arrives and
// returned when once() is done with it (handle has returned; the body is never read after that).
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 32<<10) }}

func getReader(r io.Reader) *bufio.Reader {
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func putReader(br *bufio.Reader) {
	br.Reset(nil) // drop the body so the pool does not keep the connection's reader alive
	readers.Put(br)
}

func (a *Account) once(ctx context.Context, req Request, handle func(*http.Response) error) error {
	fail := func(status int, kind error, cause error) *Error {
		return &Error{Platform: a.platform, Method: req.Method, Path: RedactPath(req.URL), Status: status, Kind: kind, Err: cause}
	}
	// The concurrency slot first, the rate token second: a token taken and then held while waiting for a
	// slot would let several requests leave together later, bunched beyond the platform's burst.
	if a.a.sem != nil {
		select {
		case a.a.sem <- struct{}{}:
			defer func() { <-a.a.sem }()
		case <-ctx.Done():
			return fail(0, ErrUnavailable, ctx.Err())
		}
	}
	if err := a.wait(ctx); err != nil {
		return fail(0, ErrUnavailable, ctxCause(ctx, err))
	}
	actx, cancel := context.WithTimeout(ctx, a.c.timeout)
	defer cancel()
	var body io.Reader
	if req.Body != nil {
		body = bytes.NewReader(req.Body)
	}
	hr, err := http.NewRequestWithContext(actx, req.Method, req.URL, body)
	if err != nil {
		return fail(0, ErrBadRequest, errors.New("malformed request"))
	}
	for k, v := range req.Header {
		hr.Header[k] = v
	}
	t0 := time.Now()
	resp, err := a.c.http.Do(hr)
	if err != nil {
		a.observe(0, t0)
		if ctx.Err() != nil {
			return fail(0, ErrUnavailable, ctx.Err())
		}
		return fail(0, ErrUnavailable, transportCause(err))
	}
	raw := resp.Body // handle sees it behind the pooled reader; drained and closed here, not through it
	defer func() {
		io.Copy(io.Discard, io.LimitReader(raw, 64<<10))
		raw.Close()
	}()
	a.observe(resp.StatusCode, t0)
	br := getReader(raw)
	defer putReader(br) // after handle returned: nothing reads br any more
	var peek []byte
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if ok {
		peek, _ = br.Peek(peekSize)
	} else {
		peek, _ = io.ReadAll(io.LimitReader(br, 64<<10))
	}
	if th := a.throttle(resp.StatusCode, resp.Header, peek); th.Throttled {
		e := fail(resp.StatusCode, ErrThrottled, nil)
		e.RetryAfter, e.Quota = th.Wait, th.Quota
		return e
	}
	switch {
	case ok:
		resp.Body = struct {
			io.Reader
			io.Closer
		}{br, raw}
		if err := handle(resp); err != nil {
			if ctx.Err() == nil && transient(err) {
				return fail(resp.StatusCode, ErrUnavailable, transportCause(err))
			}
			if ctx.Err() != nil {
				return fail(resp.StatusCode, ErrUnavailable, ctx.Err())
			}
			return err
		}
		return nil
	case resp.StatusCode == 401 || resp.StatusCode == 403:
		return fail(resp.StatusCode, ErrCredentialsRejected, nil)
	case resp.StatusCode == 404 || resp.StatusCode == 410:
		return fail(resp.StatusCode, ErrNotFound, nil)
	case resp.StatusCode == 408 || resp.StatusCode >= 500:
		return fail(resp.StatusCode, ErrUnavailable, nil)
	default:
		return fail(resp.StatusCode, ErrBadRequest, nil)
	}
}

func (a *Account) observe(status int, t0 time.Time) {
	if a.c.obs != nil {
		a.c.obs.Request(a.platform, status, time.Since(t0))
	}
}

func ctxCause(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// transient reports whether err is a transport failure worth a retry (timeout, reset, cut-off body).
func transient(err error) bool {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "connection reset") || strings.Contains(s, "broken pipe") || strings.Contains(s, "unexpected EOF")
}

// transportCause strips the URL (which may hold keys in its query) from a transport error.
func transportCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// DoJSON sends body as JSON (when non-nil; contentType defaults to application/json) and hands a 2xx
// answer's body to decode as a streaming decoder (nil decode: the body is ignored).
func (a *Account) DoJSON(ctx context.Context, method, url string, h http.Header, body any, decode func(*json.Decoder) error) error {
	req, err := a.jsonRequest(method, url, h, body)
	if err != nil {
		return err
	}
	if decode == nil {
		return a.Do(ctx, req, ignoreBody)
	}
	return a.Do(ctx, req, func(r *http.Response) error { return decode(NewDecoder(r.Body)) })
}

func ignoreBody(*http.Response) error { return nil }

// scanJSON is DoJSON for the hottest page decoders: the 2xx body is read with a scanner (jsonscan.go).
func (a *Account) scanJSON(ctx context.Context, method, url string, h http.Header, body any, read func(*scanner) error) error {
	req, err := a.jsonRequest(method, url, h, body)
	if err != nil {
		return err
	}
	return a.Do(ctx, req, func(r *http.Response) error {
		s := newScanner(r.Body)
		defer s.release()
		return read(s)
	})
}

// rawJSON is a request body already encoded as JSON (adapters build their hottest bodies by hand with
// esp/internal/jsonw); DoJSON sends it as it is.
type rawJSON []byte

var jsonHeaderValue = []string{"application/json"} // shared, never modified

// jsonRequest builds DoJSON's request. The header is a fresh map sharing h's value slices (the client
// never modifies a header value), plus Content-Type and Accept when h has none.
func (a *Account) jsonRequest(method, url string, h http.Header, body any) (Request, error) {
	req := Request{Method: method, URL: url, Header: make(http.Header, len(h)+2)}
	for k, v := range h {
		req.Header[k] = v
	}
	if body != nil {
		if raw, ok := body.(rawJSON); ok {
			req.Body = raw
		} else {
			b, err := json.Marshal(body)
			if err != nil {
				return Request{}, fmt.Errorf("esp: %s: encode request: %w", a.platform, err)
			}
			req.Body = b
		}
		if req.Header.Get("Content-Type") == "" {
			req.Header["Content-Type"] = jsonHeaderValue
		}
	}
	if req.Header.Get("Accept") == "" {
		req.Header["Accept"] = jsonHeaderValue
	}
	return req, nil
}

// ReadRaw returns a handler-friendly decode that captures the whole (small) body, e.g. a delete snapshot.
// Bodies over 1 MiB are refused.
func ReadRaw(dst *json.RawMessage) func(*json.Decoder) error {
	return func(d *json.Decoder) error {
		var m json.RawMessage
		if err := d.Decode(&m); err != nil {
			return eof(err)
		}
		if len(m) > 1<<20 {
			return errors.New("esp: snapshot over 1 MiB")
		}
		*dst = m
		return nil
	}
}
