package esp

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Throttle is a throttle parser's verdict on one response.
type Throttle struct {
	Throttled bool
	Wait      time.Duration // the platform's wait, 0 when it gave none (the client backs off exponentially)
	Quota     bool          // a long quota is exhausted (e.g. a daily cap): do not retry within this run
}

// ThrottleFunc decides whether a response is the platform's throttle signal. peek is the start of the body
// (up to 512 bytes on 2xx answers, up to 64 KiB otherwise) so body codes can be seen — Moosend throttles
// with HTTP 200. It runs before any other status handling.
type ThrottleFunc func(status int, h http.Header, peek []byte) Throttle

// now is the clock of the header parsers (a variable only so date arithmetic is testable).
var now = time.Now

// DefaultThrottle: 429 is throttling; the wait comes from Retry-After, else a reset header.
func DefaultThrottle(status int, h http.Header, _ []byte) Throttle {
	if status != http.StatusTooManyRequests {
		return Throttle{}
	}
	return Throttle{Throttled: true, Wait: HeaderWait(h)}
}

// HeaderWait reads the wait from Retry-After (seconds or HTTP date), else from the common reset headers
// (RateLimit-Reset, X-RateLimit-Reset, X-Rate-Limit-Reset, x-sib-ratelimit-reset: seconds to wait, or a Unix
// time when the number is that large). 0 when none is present.
func HeaderWait(h http.Header) time.Duration {
	if d, ok := RetryAfter(h.Get("Retry-After")); ok {
		return d
	}
	for _, k := range []string{"RateLimit-Reset", "X-RateLimit-Reset", "X-Rate-Limit-Reset", "X-Sib-Ratelimit-Reset"} {
		if d, ok := resetValue(h.Get(k)); ok {
			return d
		}
	}
	return 0
}

// RetryAfter parses a Retry-After value: delta seconds or an HTTP date.
func RetryAfter(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil && n >= 0 {
		return time.Duration(n * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now())
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

func resetValue(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	if n > 1e9 { // a Unix time
		d := time.Unix(int64(n), 0).Sub(now())
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return time.Duration(n * float64(time.Second)), true
}

// MoosendThrottle: Moosend answers HTTP 200 with body {"Code":429,"Error":"RATE-LIMITING"}.
func MoosendThrottle(status int, h http.Header, peek []byte) Throttle {
	if t := DefaultThrottle(status, h, peek); t.Throttled {
		return t
	}
	var b struct{ Code int }
	if json.Unmarshal(peek, &b) == nil && b.Code == 429 {
		return Throttle{Throttled: true}
	}
	if bytes.Contains(peek, []byte(`"Code":429`)) {
		return Throttle{Throttled: true}
	}
	return Throttle{}
}

// IterableThrottle: 429 with body code RateLimitExceeded; Retry-After is not reliable, so it is ignored and
// the client backs off exponentially.
func IterableThrottle(status int, _ http.Header, peek []byte) Throttle {
	if status == http.StatusTooManyRequests || bytes.Contains(peek, []byte("RateLimitExceeded")) {
		return Throttle{Throttled: true}
	}
	return Throttle{}
}

// ConstantContactThrottle: 429 with error_key `throttled` (per second: back off) or `quota_exceeded` (the
// daily quota: lasts until 00:00 UTC, a Quota verdict).
func ConstantContactThrottle(status int, h http.Header, peek []byte) Throttle {
	if status != http.StatusTooManyRequests {
		return Throttle{}
	}
	if bytes.Contains(peek, []byte("quota_exceeded")) {
		n := now().UTC()
		midnight := time.Date(n.Year(), n.Month(), n.Day()+1, 0, 0, 0, 0, time.UTC)
		return Throttle{Throttled: true, Quota: true, Wait: midnight.Sub(n)}
	}
	return Throttle{Throttled: true, Wait: HeaderWait(h)}
}

// GetResponseThrottle: 429 with body {"code":1015,"context":{"timeToReset":…}} (seconds, sometimes with
// fractions) and X-RateLimit-Reset.
func GetResponseThrottle(status int, h http.Header, peek []byte) Throttle {
	var b struct {
		Code    int `json:"code"`
		Context struct {
			TimeToReset json.Number `json:"timeToReset"`
		} `json:"context"`
	}
	_ = json.Unmarshal(peek, &b)
	if status != http.StatusTooManyRequests && b.Code != 1015 {
		return Throttle{}
	}
	if f, err := b.Context.TimeToReset.Float64(); err == nil && f > 0 {
		return Throttle{Throttled: true, Wait: time.Duration(f * float64(time.Second))}
	}
	return Throttle{Throttled: true, Wait: HeaderWait(h)}
}

// MailchimpThrottle: 429, or at very high volume a bare 403 with no JSON body.
func MailchimpThrottle(status int, h http.Header, peek []byte) Throttle {
	if status == http.StatusTooManyRequests {
		return Throttle{Throttled: true, Wait: HeaderWait(h)}
	}
	if status == http.StatusForbidden && !bytes.Contains(peek, []byte("{")) {
		return Throttle{Throttled: true}
	}
	return Throttle{}
}
