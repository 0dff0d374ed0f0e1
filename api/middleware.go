package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/autofloss/autofloss/store"
)

// reqState is what the middlewares learn about one request, shared through its context.
type reqState struct {
	requestID string
	route     string // the matched pattern, "unmatched" before routing
	accountID string
	keyID     string
	body      []byte
}

type stateKey struct{}

func stateOf(ctx context.Context) *reqState {
	if st, ok := ctx.Value(stateKey{}).(*reqState); ok {
		return st
	}
	return &reqState{}
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "req_" + hex.EncodeToString(b[:])
}

// statusWriter remembers the status and size written.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// outer is the handler around the router: request id, panic recovery, metrics and the access log. The log
// line carries the method, route pattern, status, duration, request id and account id — never the path's
// query, a header, a key, a credential or an address.
func (s *server) outer() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		st := &reqState{requestID: newRequestID(), route: "unmatched"}
		w.Header().Set("X-Request-Id", st.requestID)
		sw := &statusWriter{ResponseWriter: w}
		r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error().Str("request_id", st.requestID).Str("route", st.route).Interface("panic", p).Msg("handler panic")
				if sw.status == 0 {
					s.fail(sw, r, internal())
				}
			}
			if sw.status == 0 {
				sw.status = http.StatusOK
			}
			d := time.Since(start)
			s.metrics.observe(st.route, r.Method, sw.status, d)
			ev := s.log.Info()
			if sw.status >= 500 {
				ev = s.log.Warn()
			}
			ev.Str("method", r.Method).Str("route", st.route).Int("status", sw.status).
				Float64("duration_ms", float64(d.Microseconds())/1000).Str("request_id", st.requestID).
				Str("account_id", st.accountID).Int("bytes", sw.bytes).Msg("request")
		}()
		if _, pattern := s.mux.Handler(r); pattern == "" {
			s.unmatched(sw, r)
			return
		}
		s.mux.ServeHTTP(sw, r)
	})
}

// headerRecorder captures what the mux's own 404/405 handler would answer.
type headerRecorder struct {
	h      http.Header
	status int
}

func (h *headerRecorder) Header() http.Header         { return h.h }
func (h *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (h *headerRecorder) WriteHeader(code int)        { h.status = code }

// unmatched answers requests no pattern matches, in the envelope: 405 (with Allow) when the path exists
// with other methods, else 404.
func (s *server) unmatched(w http.ResponseWriter, r *http.Request) {
	h, _ := s.mux.Handler(r)
	rec := &headerRecorder{h: http.Header{}}
	h.ServeHTTP(rec, r)
	if rec.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", rec.h.Get("Allow"))
		s.fail(w, r, errf(http.StatusMethodNotAllowed, typeInvalid, "method_not_allowed", r.Method+" is not allowed here"))
		return
	}
	if rec.status >= 300 && rec.status < 400 && rec.h.Get("Location") != "" {
		http.Redirect(w, r, rec.h.Get("Location"), rec.status)
		return
	}
	s.fail(w, r, errf(http.StatusNotFound, typeNotFound, "not_found", "no such endpoint"))
}

type routeOpts struct {
	body, idempotency bool
}

type routeOpt func(*routeOpts)

// withBody reads the request body (size-limited) before the handler.
func withBody(o *routeOpts) { o.body = true }

// withIdempotency honours the Idempotency-Key header.
func withIdempotency(o *routeOpts) { o.idempotency = true }

// public labels an unauthenticated route.
func (s *server) public(pattern string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stateOf(r.Context()).route = pattern
		h.ServeHTTP(w, r)
	})
}

// route wraps an authenticated /v1 handler: auth, rate limit, body, idempotency.
func (s *server) route(pattern string, h http.HandlerFunc, opts ...routeOpt) http.Handler {
	var o routeOpts
	for _, f := range opts {
		f(&o)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := stateOf(r.Context())
		st.route = pattern
		if err := s.authenticate(r, st); err != nil {
			s.fail(w, r, err)
			return
		}
		if wait, ok := s.limits.allow(st.keyID); !ok {
			s.fail(w, r, rateLimited(wait))
			return
		}
		if o.body {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.d.Settings.MaxBodyBytes))
			if err != nil {
				var mb *http.MaxBytesError
				if errors.As(err, &mb) {
					s.fail(w, r, errf(http.StatusRequestEntityTooLarge, typeInvalid, "request_too_large",
						"the request body is larger than the limit of "+humanBytes(s.d.Settings.MaxBodyBytes)))
					return
				}
				s.fail(w, r, invalid("invalid_body", "", "the request body could not be read"))
				return
			}
			st.body = body
		}
		if o.idempotency && r.Header.Get("Idempotency-Key") != "" {
			s.idempotent(w, r, h)
			return
		}
		if o.idempotency && len(r.Header.Values("Idempotency-Key")) > 0 {
			s.fail(w, r, invalid("invalid_idempotency_key", "Idempotency-Key", "Idempotency-Key must be 1–255 printable ASCII characters"))
			return
		}
		h(w, r)
	})
}

func humanBytes(n int64) string {
	if n%(1<<20) == 0 {
		return itoa(n>>20) + " MiB"
	}
	if n%(1<<10) == 0 {
		return itoa(n>>10) + " KiB"
	}
	return itoa(n) + " bytes"
}

// authenticate checks `Authorization: Bearer <key>` against the store.
func (s *server) authenticate(r *http.Request, st *reqState) error {
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	scheme, tok, _ := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if h == "" || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		e := errf(http.StatusUnauthorized, typeAuth, "missing_api_key", "send your API key as `Authorization: Bearer <key>`")
		e.header = map[string]string{"WWW-Authenticate": `Bearer realm="autofloss"`}
		return e
	}
	key, err := s.st.AuthenticateAPIKey(r.Context(), tok)
	if errors.Is(err, store.ErrNotFound) {
		e := errf(http.StatusUnauthorized, typeAuth, "invalid_api_key", "the API key is unknown or revoked")
		e.header = map[string]string{"WWW-Authenticate": `Bearer realm="autofloss", error="invalid_token"`}
		return e
	}
	if err != nil {
		return err
	}
	st.accountID, st.keyID = key.AccountID, key.ID
	return nil
}

// limiter is the per-API-key token bucket. It lives in this process: with N API replicas a key may make up
// to N× its limit in total (documented in the package comment).
type limiter struct {
	mu     sync.Mutex
	perMin int
	now    func() time.Time
	keys   map[string]*rate.Limiter
}

func newLimiter(perMin int, now func() time.Time) *limiter {
	return &limiter{perMin: perMin, now: now, keys: map[string]*rate.Limiter{}}
}

// allow takes a token; when none is left it returns the whole seconds until one is.
func (l *limiter) allow(key string) (int, bool) {
	l.mu.Lock()
	lim := l.keys[key]
	if lim == nil {
		lim = rate.NewLimiter(rate.Limit(float64(l.perMin)/60), l.perMin)
		l.keys[key] = lim
	}
	l.mu.Unlock()
	now := l.now()
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return 60, false
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return int(math.Max(1, math.Ceil(d.Seconds()))), false
	}
	return 0, true
}

// recorder buffers a handler's answer so it can be stored before it is sent.
type recorder struct {
	h      http.Header
	status int
	buf    bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.buf.Write(b)
}

// storable says whether an answer is final for its request and so is kept for replay: 2xx and 4xx, except
// the transient 402 (credits can be added), 409 (state can change), 429 and 499; never a 5xx.
func storable(status int) bool {
	switch {
	case status >= 500, status == http.StatusPaymentRequired, status == http.StatusConflict,
		status == http.StatusTooManyRequests, status == 499:
		return false
	}
	return true
}

func validIdempotencyKey(k string) bool {
	if k == "" || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// idempotent runs h under the request's Idempotency-Key (api.md "Connect"): the record lives in the store,
// so the rule holds across API replicas and restarts.
func (s *server) idempotent(w http.ResponseWriter, r *http.Request, h http.HandlerFunc) {
	st := stateOf(r.Context())
	values := r.Header.Values("Idempotency-Key")
	key := values[0]
	if len(values) != 1 || !validIdempotencyKey(key) {
		s.fail(w, r, invalid("invalid_idempotency_key", "Idempotency-Key", "Idempotency-Key must be 1–255 printable ASCII characters"))
		return
	}
	sum := sha256.New()
	sum.Write([]byte(r.Method + " " + r.URL.Path + "\n"))
	sum.Write(st.body)
	hash := hex.EncodeToString(sum.Sum(nil))
	rec, started, err := s.st.BeginIdempotent(r.Context(), st.accountID, key, hash, s.d.Settings.IdempotencyTTL)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !started {
		switch {
		case rec.RequestHash != hash:
			s.fail(w, r, errf(http.StatusUnprocessableEntity, typeInvalid, "idempotency_key_reused",
				"this Idempotency-Key was already used with a different request"))
		case rec.State != store.IdemDone:
			s.fail(w, r, errf(http.StatusConflict, typeConflict, "idempotency_request_in_progress",
				"a request with this Idempotency-Key is still in progress; retry later"))
		default:
			w.Header().Set("Idempotent-Replayed", "true")
			if len(rec.Body) > 0 {
				w.Header().Set("Content-Type", "application/json")
			}
			w.WriteHeader(rec.Status)
			_, _ = w.Write(rec.Body)
		}
		return
	}
	bg := context.WithoutCancel(r.Context())
	done := false
	defer func() {
		if !done { // the handler panicked: free the key for a retry
			_ = s.st.AbandonIdempotent(bg, st.accountID, key)
		}
	}()
	rw := &recorder{h: w.Header().Clone()}
	h(rw, r)
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	if storable(rw.status) {
		err = s.st.FinishIdempotent(bg, st.accountID, key, rw.status, rw.buf.Bytes())
	} else {
		err = s.st.AbandonIdempotent(bg, st.accountID, key)
	}
	done = true
	if err != nil {
		s.log.Error().Str("request_id", st.requestID).Err(err).Msg("idempotency record")
	}
	for k, v := range rw.h {
		w.Header()[k] = v
	}
	w.WriteHeader(rw.status)
	_, _ = w.Write(rw.buf.Bytes())
}
