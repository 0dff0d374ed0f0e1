package jobs

import (
	"context"
	"encoding/json"
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

// TestPrepareSeesPagesInFlight drives the prepare stage over pages whose predecessors are not committed
// (as in the pipeline, where up to three pages are ahead of the commit): an address prepared on an
// uncommitted page is reused, not verified or charged again, on the next page; and the credits a
// prepared page will charge are reserved, so the next page sees only what is left.
func TestPrepareSeesPagesInFlight(t *testing.T) {
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
	if _, err := st.AddCredits(ctx, acct.ID, 3, "", "grant"); err != nil {
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
	fl := &flow{created: run.CreatedAt}
	prep := func(from string, cs ...esp.Contact) *prepared {
		t.Helper()
		p, err := f.lookup(ctx, fl, esp.Page{Contacts: cs, Next: "next", Total: -1}, from)
		if err != nil {
			t.Fatal(err)
		}
		if p, err = f.prepare(ctx, fl, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
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
