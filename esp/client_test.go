package esp

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestThrottleParsers(t *testing.T) {
	h := func(kv ...string) http.Header {
		x := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			x.Set(kv[i], kv[i+1])
		}
		return x
	}
	now = func() time.Time { return time.Date(2026, 6, 2, 23, 0, 0, 0, time.UTC) }
	defer func() { now = time.Now }()
	cases := []struct {
		name   string
		fn     ThrottleFunc
		status int
		h      http.Header
		body   string
		want   Throttle
	}{
		{"plain 200", DefaultThrottle, 200, nil, `{}`, Throttle{}},
		{"429 seconds", DefaultThrottle, 429, h("Retry-After", "3"), ``, Throttle{Throttled: true, Wait: 3 * time.Second}},
		{"429 date", DefaultThrottle, 429, h("Retry-After", "Tue, 02 Jun 2026 23:00:10 GMT"), ``, Throttle{Throttled: true, Wait: 10 * time.Second}},
		{"429 reset header", DefaultThrottle, 429, h("X-RateLimit-Reset", "7"), ``, Throttle{Throttled: true, Wait: 7 * time.Second}},
		{"429 reset epoch", DefaultThrottle, 429, h("RateLimit-Reset", "1780441205"), ``, Throttle{Throttled: true, Wait: 5 * time.Second}},
		{"brevo reset", DefaultThrottle, 429, h("x-sib-ratelimit-reset", "2"), ``, Throttle{Throttled: true, Wait: 2 * time.Second}},
		{"moosend 200 body", MoosendThrottle, 200, nil, `{"Code":429,"Error":"RATE-LIMITING","Context":null}`, Throttle{Throttled: true}},
		{"moosend ok", MoosendThrottle, 200, nil, `{"Code":0,"Error":null,"Context":{}}`, Throttle{}},
		{"iterable body", IterableThrottle, 429, h("Retry-After", "60"), `{"code":"RateLimitExceeded","msg":"…"}`, Throttle{Throttled: true}},
		{"cc throttled", ConstantContactThrottle, 429, nil, `[{"error_key":"throttled","error_message":"…"}]`, Throttle{Throttled: true}},
		{"cc quota", ConstantContactThrottle, 429, nil, `[{"error_key":"quota_exceeded","error_message":"…"}]`, Throttle{Throttled: true, Quota: true, Wait: time.Hour}},
		{"getresponse 1015", GetResponseThrottle, 429, nil, `{"httpStatus":429,"code":1015,"context":{"timeToReset":12.5}}`, Throttle{Throttled: true, Wait: 12500 * time.Millisecond}},
		{"mailchimp bare 403", MailchimpThrottle, 403, nil, ``, Throttle{Throttled: true}},
		{"mailchimp json 403", MailchimpThrottle, 403, nil, `{"title":"Forbidden"}`, Throttle{}},
	}
	for _, c := range cases {
		if got := c.fn(c.status, c.h, []byte(c.body)); got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestRedactPath(t *testing.T) {
	for in, want := range map[string]string{
		"https://api.moosend.com/v3/lists.json?apikey=SECRET":          "/v3/lists.json",
		"https://api.iterable.com/api/users/jo%40example.com":          "/api/users/{email}",
		"https://api.brevo.com/v3/contacts/jo@example.com?x=1":         "/v3/contacts/{email}",
		"https://x.api.mailchimp.com/3.0/lists/abc/members/0123456789": "/3.0/lists/abc/members/0123456789",
	} {
		if got := RedactPath(in); got != want {
			t.Errorf("RedactPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestClientRetriesAndErrors runs the client against a real loopback server that misbehaves in turn.
func TestClientRetriesAndErrors(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/flaky": // 503, 429, truncated, then fine
			switch n.Add(1) {
			case 1:
				w.WriteHeader(503)
			case 2:
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(429)
			case 3:
				w.Header().Set("Content-Length", "100")
				w.Write([]byte(`{"data":[1,2`))
			default:
				w.Write([]byte(`{"data":[1,2,3]}`))
			}
		case "/401":
			w.WriteHeader(401)
			w.Write([]byte(`{"error":"bad key"}`))
		case "/404":
			w.WriteHeader(404)
		case "/422":
			w.WriteHeader(422)
		case "/always503":
			w.WriteHeader(503)
		}
	}))
	defer srv.Close()
	var obs sync.Map
	c := NewClient(ClientOptions{
		Retry: Retry{MaxAttempts: 5, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond},
		Observer: ObserverFunc(func(p string, s int, _ time.Duration) {
			v, _ := obs.LoadOrStore(s, new(atomic.Int64))
			v.(*atomic.Int64).Add(1)
		}),
	})
	a := c.Account("test", "key", Limits{}, nil)
	ctx := context.Background()
	var got struct{ Data []int }
	if err := a.DoJSON(ctx, "GET", srv.URL+"/flaky?api_key=SECRET", nil, nil, Into(&got)); err != nil || len(got.Data) != 3 {
		t.Fatalf("flaky: %v %v", err, got)
	}
	for path, want := range map[string]error{"/401": ErrCredentialsRejected, "/404": ErrNotFound, "/422": ErrBadRequest, "/always503": ErrUnavailable} {
		err := a.DoJSON(ctx, "GET", srv.URL+path+"?api_key=SECRET", nil, nil, nil)
		if !errors.Is(err, want) {
			t.Errorf("%s: got %v, want %v", path, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: error leaks the query: %v", path, err)
		}
	}
	for _, s := range []int{503, 429, 200, 401, 404, 422} {
		if v, ok := obs.Load(s); !ok || v.(*atomic.Int64).Load() == 0 {
			t.Errorf("observer saw no %d", s)
		}
	}
	// a connection refused is ErrUnavailable without the URL's query
	srv2 := httptest.NewServer(http.NotFoundHandler())
	u := srv2.URL
	srv2.Close()
	err := a.DoJSON(ctx, "GET", u+"/x?apikey=SECRET", nil, nil, nil)
	if !errors.Is(err, ErrUnavailable) || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("refused: %v", err)
	}
}

func TestAccountLimiterIsShared(t *testing.T) {
	c := NewClient(ClientOptions{})
	a := c.Account("p", "key-1", Limits{Rate: 1, Burst: 1}, nil)
	b := c.Account("p", "key-1", Limits{Rate: 1, Burst: 1}, nil)
	o := c.Account("p", "key-2", Limits{Rate: 1, Burst: 1}, nil)
	if a.a != b.a || a.a == o.a {
		t.Fatal("handles of one account must share one limiter, others must not")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := a.wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.wait(ctx); err == nil {
		t.Fatal("the second handle got a token the first one used")
	}
	if err := o.wait(ctx); err != nil {
		t.Fatal("another account was slowed down")
	}
}
