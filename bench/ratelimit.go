package bench

import (
	"context"
	"time"

	"github.com/autofloss/autofloss/esp"
)

// RateResult is what a rate-limited floss measured at the platform fake.
type RateResult struct {
	Limits    esp.Limits    // the platform's limits, enforced by the fake and configured in the client alike
	Elapsed   time.Duration // the run's duration
	Requests  int64         // requests the fake received
	Throttled int64         // of them answered with the platform's throttle signal (429 + Retry-After)
	Worker    FlossResult
}

// Accepted is requests the platform served (not throttled).
func (r RateResult) Accepted() int64 { return r.Requests - r.Throttled }

// Budget is the requests the platform allowed over Elapsed: the burst plus the steady rate.
func (r RateResult) Budget() float64 {
	return float64(r.Limits.Burst) + r.Limits.Rate*r.Elapsed.Seconds()
}

// Used is the share of the budget the run used.
func (r RateResult) Used() float64 { return float64(r.Accepted()) / r.Budget() }

// ThrottledShare is throttled answers per request.
func (r RateResult) ThrottledShare() float64 {
	if r.Requests == 0 {
		return 0
	}
	return float64(r.Throttled) / float64(r.Requests)
}

// RateLimited flosses the Klaviyo fake for d at Klaviyo's own limits (registry: 75 burst, 700/min steady),
// which the fake enforces with 429 + Retry-After and the client's limiter is configured with, and reports
// how much of the allowed request budget the run used and how often it was throttled. Everything runs in
// this process (the figure is about requests, not memory). The page reads and the update_fields
// write-backs share the one per-account limiter.
func RateLimited(ctx context.Context, d time.Duration) (RateResult, error) {
	p, _ := esp.Platforms().Lookup("klaviyo")
	// Enough contacts that the run is still going when d ends (about 10 requests per 100 contacts read
	// plus one per failed contact).
	n := max(20000, int(p.Limits.Rate*d.Seconds()*20))
	fw, err := StartFlossWorld("klaviyo", n, nil)
	if err != nil {
		return RateResult{}, err
	}
	defer fw.Close()
	spec := fw.Spec()
	spec.Duration = d
	lim := p.Limits
	spec.ClientLimits = &lim
	res, err := RunWorker(ctx, spec)
	if err != nil {
		return RateResult{}, err
	}
	st := fw.Fake.Stats()
	return RateResult{Limits: p.Limits, Elapsed: res.Elapsed, Requests: st.Requests, Throttled: st.Throttled, Worker: res}, nil
}
