package esp_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autofloss/autofloss/esp"
)

// Constant Contact answers both its per-second and its daily limit with 429, told apart by error_key. A
// throttled answer is retried; quota_exceeded is ErrThrottled with Quota set and a wait until 00:00 UTC,
// and is not retried (a loopback server answers with the platform's bodies).
func TestConstantContactThrottleKinds(t *testing.T) {
	for _, tc := range []struct {
		key      string
		quota    bool
		attempts int64
	}{{"throttled", false, 3}, {"quota_exceeded", true, 1}} {
		t.Run(tc.key, func(t *testing.T) {
			var n atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(429)
				w.Write([]byte(`[{"error_key":"` + tc.key + `","error_message":"Too many requests."}]`))
			}))
			defer srv.Close()
			c := esp.NewClient(esp.ClientOptions{Retry: esp.Retry{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond},
				Limits: map[string]esp.Limits{"constantcontact": {}}})
			a, err := esp.Platforms().Open("constantcontact", map[string]string{"access_token": "tok-1234567890", "refresh_token": "rt-1234567890"}, c,
				esp.Options{BaseURLs: map[string]string{"constantcontact": srv.URL}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = a.Lists(context.Background())
			var e *esp.Error
			if !errors.Is(err, esp.ErrThrottled) || !errors.As(err, &e) {
				t.Fatalf("got %v, want ErrThrottled", err)
			}
			if e.Quota != tc.quota || n.Load() != tc.attempts {
				t.Fatalf("quota %v after %d attempts, want %v after %d", e.Quota, n.Load(), tc.quota, tc.attempts)
			}
			if tc.quota {
				now := time.Now().UTC()
				midnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
				if d := midnight.Sub(now) - e.RetryAfter; d < -time.Minute || d > time.Minute {
					t.Fatalf("RetryAfter %s, want about %s (until 00:00 UTC)", e.RetryAfter, midnight.Sub(now))
				}
			}
		})
	}
}
