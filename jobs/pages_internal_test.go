package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/autofloss/autofloss/esp"
	"github.com/autofloss/autofloss/internal/testenv"
	"github.com/autofloss/autofloss/policy"
	"github.com/autofloss/autofloss/store"
	"github.com/autofloss/autofloss/verify"
	"github.com/autofloss/autofloss/verify/verifytest"
)

// pageHarness drives a run's prepare and commit stages directly (no platform: pages are given).
type pageHarness struct {
	t    *testing.T
	ctx  context.Context
	st   *store.Store
	f    *floss
	fl   *flow
	acct store.Account
}

func newPageHarness(t *testing.T, credits int64) *pageHarness {
	ctx := context.Background()
	st := testenv.Store(t, testenv.SQLite(t))
	world, err := verifytest.NewWorld(verifytest.WorldOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(world.Close)
	vo, err := world.EngineOptions()
	if err != nil {
		t.Fatal(err)
	}
	eng, err := verify.New(vo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	r, err := NewRunner(Deps{Store: st, Registry: esp.Platforms(), Client: esp.NewClient(esp.ClientOptions{}), Engine: eng,
		Log: zerolog.Nop(), Settings: Settings{ReverifyWindow: 24 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	acct, err := st.CreateAccount(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddCredits(ctx, acct.ID, credits, "", "grant"); err != nil {
		t.Fatal(err)
	}
	settings, _ := json.Marshal(map[string]any{"aggressiveness": "normal", "on_failure": OnFailureUpdateFields})
	cnx, err := st.CreateConnection(ctx, store.NewConnection{AccountID: acct.ID, Type: "mailchimp", Name: "t",
		Settings: settings, Credentials: store.Credentials{"api_key": "k-us1"}})
	if err != nil {
		t.Fatal(err)
	}
	run, _, err := st.OpenOrCreateRun(ctx, store.NewRun{ConnectionID: cnx.ID, Kind: store.RunFull})
	if err != nil {
		t.Fatal(err)
	}
	set := parseSettings(cnx.Settings)
	f := &floss{r: r, cnx: cnx, run: run, runID: run.ID, set: set, rules: compileRules(nil), want: policy.WantedChecks(set.Policy),
		log: zerolog.Nop()}
	fl := &flow{created: run.CreatedAt, index: newRunIndex()}
	return &pageHarness{t: t, ctx: ctx, st: st, f: f, fl: fl, acct: acct}
}

// prep reads (lookup) and prepares a page read at cursor from whose next cursor is next.
func (h *pageHarness) prep(from, next string, cs ...esp.Contact) *prepared {
	h.t.Helper()
	p, err := h.f.lookup(h.ctx, h.fl, esp.Page{Contacts: cs, Next: esp.Cursor(next), Total: -1}, from)
	if err != nil {
		h.t.Fatal(err)
	}
	if p, err = h.f.prepare(h.ctx, h.fl, p); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// TestPrepareSeesPagesInFlight drives the prepare stage over pages whose predecessors are not committed
// (as in the pipeline, where up to three pages are ahead of the commit): an address prepared on an
// uncommitted page is reused, not verified or charged again, on the next page; and the credits a
// prepared page will charge are reserved, so the next page sees only what is left.
func TestPrepareSeesPagesInFlight(t *testing.T) {
	h := newPageHarness(t, 3)
	prep := func(from string, cs ...esp.Contact) *prepared { return h.prep(from, "next", cs...) }
	fl := h.fl
	ok := verifytest.MailboxOK + "ann@" + verifytest.DomainGood
	// Page 1: two addresses verified, two credits reserved (of 3), nothing committed.
	p1 := prep("", esp.Contact{ID: "c1", ListID: "a", Email: ok, Status: esp.StatusSubscribed},
		esp.Contact{ID: "c2", ListID: "a", Email: verifytest.MailboxOK + "bob@" + verifytest.DomainGood, Status: esp.StatusSubscribed})
	if p1.charge != 2 || !p1.items[0].verify || p1.items[0].raw.Reason != verify.ReasonValid {
		t.Fatalf("page 1: charge %d, first item verify=%v reason %s", p1.charge, p1.items[0].verify, p1.items[0].raw.Reason)
	}
	// Page 2: the same address (another audience, other case) is reused from page 1, at no cost; a new
	// address takes the last credit; a third finds none left (the reservation, not the stored balance of 3).
	p2 := prep("next", esp.Contact{ID: "c1", ListID: "b", Email: strings.ToUpper(ok), Status: esp.StatusSubscribed},
		esp.Contact{ID: "c3", ListID: "b", Email: verifytest.MailboxOK + "cy@" + verifytest.DomainGood, Status: esp.StatusSubscribed},
		esp.Contact{ID: "c4", ListID: "b", Email: verifytest.MailboxOK + "di@" + verifytest.DomainGood, Status: esp.StatusSubscribed})
	reused := p2.items[0]
	if reused.verify || reused.prev == nil || !reused.res.Reused || reused.res.Reason != p1.items[0].res.Reason {
		t.Fatalf("page 2, same address: verify=%v prev=%v reused=%v reason %q (page 1: %q)", reused.verify, reused.prev != nil,
			reused.res.Reused, reused.res.Reason, p1.items[0].res.Reason)
	}
	if p2.charge != 1 || !p2.partial || !p2.items[1].verify || p2.items[2].verify {
		t.Fatalf("page 2: charge %d partial %v, verified %v/%v; want the one credit left for the first new address",
			p2.charge, p2.partial, p2.items[1].verify, p2.items[2].verify)
	}
	if fl.pending != 3 {
		t.Fatalf("pending %d, want 3", fl.pending)
	}
}

// TestCommittedPagesAreRemembered: the store's re-verify index does not hold a running run's results
// (it is merged when the run stops), so the pages a Sync committed are remembered in memory (runIndex).
// An address committed five pages earlier — out of the three-page overlay — is reused at no cost under
// another list, and the same contact read again (offset pagination shifting) is not stored twice.
func TestCommittedPagesAreRemembered(t *testing.T) {
	h := newPageHarness(t, 100)
	if _, err := h.st.StartRun(h.ctx, h.f.runID); err != nil {
		t.Fatal(err)
	}
	addr := func(n string) string { return verifytest.MailboxOK + n + "@" + verifytest.DomainGood }
	sub := func(id, list, email string) esp.Contact {
		return esp.Contact{ID: id, ListID: list, Email: email, Status: esp.StatusSubscribed}
	}
	commit := func(p *prepared) {
		t.Helper()
		if _, err := h.f.commit(h.ctx, h.fl, p); err != nil {
			t.Fatal(err)
		}
	}
	commit(h.prep("", "p1", sub("c1", "a", addr("ann")), sub("c2", "a", addr("bob"))))
	for i, cur := range []string{"p1", "p2", "p3", "p4"} {
		commit(h.prep(cur, fmt.Sprint("p", i+2), sub(fmt.Sprint("f", i), "a", addr(fmt.Sprint("filler", i)))))
	}
	p6 := h.prep("p5", "", sub("c1", "a", strings.ToUpper(addr("ann"))), sub("c2", "b", addr("bob")))
	if p6.charge != 0 || p6.items[0].verify || p6.items[1].verify {
		t.Fatalf("page 6 verifies again (charge %d): the committed pages are not remembered", p6.charge)
	}
	if !p6.items[0].stored || p6.items[1].stored || !p6.items[1].res.Reused {
		t.Fatalf("page 6: ann stored=%v (want true: same list and contact), bob stored=%v reused=%v (want a new reused result)",
			p6.items[0].stored, p6.items[1].stored, p6.items[1].res.Reused)
	}
	commit(p6)
	run, err := h.st.RunByID(h.ctx, h.f.runID)
	if err != nil {
		t.Fatal(err)
	}
	if run.Counts.Verified != 6 || run.Counts.Reused != 1 || run.CreditsUsed != 6 {
		t.Fatalf("run: verified %d reused %d credits %d; want 6, 1, 6", run.Counts.Verified, run.Counts.Reused, run.CreditsUsed)
	}
	res, _, err := h.st.ListResults(h.ctx, h.acct.ID, h.f.cnx.ID, store.ResultFilter{RunID: h.f.runID}, store.Page{Limit: 100})
	if err != nil || len(res) != 7 {
		t.Fatalf("%d results (%v), want 7: one per list and contact", len(res), err)
	}
}
