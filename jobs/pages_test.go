package jobs_test

import (
	"strings"
	"testing"

	"github.com/autofloss/autofloss/jobs"
)

// TestPagesInFlightShareAddresses: Mailchimp puts a contact of two audiences on a page of each. Through
// the whole staged run (pages of five), every address is verified and charged once and its other copies
// reuse that result at no cost — from the store, or from memory when the first copy's page is still in
// flight (whether a copy lands in that window depends on timing here; TestPrepareSeesPagesInFlight covers
// the window deterministically).
func TestPagesInFlightShareAddresses(t *testing.T) {
	e := newEnv(t, envOpts{slug: "mailchimp", n: 120, seed: 31, credits: 10000, pageSize: 5})
	run, outcome, err := e.runner.Sync(e.ctx, jobs.SyncPayload{ConnectionID: e.cnx.ID}, jobs.SyncOptions{TaskID: "a"})
	if err != nil || outcome != jobs.OutcomeDone {
		t.Fatalf("sync: %s %v", outcome, err)
	}
	rs := e.results(run.ID) // fails on two results for one (list, contact)
	addrs := map[string]int{}
	for _, r := range rs {
		addrs[strings.ToLower(r.Email)]++
	}
	shared := 0
	for _, n := range addrs {
		if n > 1 {
			shared++
		}
	}
	if shared == 0 {
		t.Fatal("no address in two audiences: the test proves nothing")
	}
	if got, want := run.Counts.Verified, int64(len(addrs)); got != want {
		t.Errorf("verified %d, want one per distinct address (%d); %d addresses are in two audiences", got, want, shared)
	}
	if got, want := run.Counts.Reused, int64(len(rs)-len(addrs)); got != want {
		t.Errorf("reused %d, want %d", got, want)
	}
	if d := e.debited(); d != run.Counts.Verified {
		t.Errorf("debited %d, verified %d", d, run.Counts.Verified)
	}
}
