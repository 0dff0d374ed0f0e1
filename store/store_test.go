package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/autofloss/autofloss/internal/testenv"
	"github.com/autofloss/autofloss/store"
	"github.com/autofloss/autofloss/store/seal"
)

// fakeClock is a settable clock shared by stores opened on the same database.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// env is what each case gets: a migrated store on one database, and the database URL to open more
// stores on it (other key rings, a fake clock).
type env struct {
	st    *store.Store
	url   string
	fresh func(t *testing.T) string // a new empty database of the same kind
}

func ctx() context.Context { return context.Background() }

func must[T any](t *testing.T) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func newAccount(t *testing.T, st *store.Store, credits int64) store.Account {
	t.Helper()
	a := must[store.Account](t)(st.CreateAccount(ctx(), "Acme "+store.NewID("")))
	if credits > 0 {
		if _, err := st.AddCredits(ctx(), a.ID, credits, "", "grant"); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

func newConnection(t *testing.T, st *store.Store, accountID, typ string, settings string) store.Connection {
	t.Helper()
	return must[store.Connection](t)(st.CreateConnection(ctx(), store.NewConnection{
		AccountID: accountID, Type: typ, Name: "My " + typ, AutoFlossEnabled: true,
		Settings: json.RawMessage(settings), Credentials: store.Credentials{"api_key": "pk_" + store.NewID("")},
	}))
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
}

var storeCases = []struct {
	name string
	run  func(t *testing.T, e env)
}{
	{"migrate is idempotent", func(t *testing.T, e env) {
		n, err := e.st.Migrate(ctx())
		if err != nil || n != 0 {
			t.Fatalf("second migrate: n=%d err=%v", n, err)
		}
		if v, err := e.st.SchemaVersion(ctx()); err != nil || v != 3 {
			t.Fatalf("version %d %v", v, err)
		}
	}},
	{"accounts and api keys", func(t *testing.T, e env) {
		st := e.st
		a := newAccount(t, st, 0)
		got := must[store.Account](t)(st.GetAccount(ctx(), a.ID))
		if got != a {
			t.Fatalf("got %+v want %+v", got, a)
		}
		_, err := st.CreateAccount(ctx(), "  ")
		wantErr(t, err, store.ErrInvalid)
		plain, key, err := st.CreateAPIKey(ctx(), a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^mf_live_[0-9A-Za-z]{32}$`).MatchString(plain) {
			t.Fatalf("key %q has the wrong shape", plain)
		}
		if !strings.HasPrefix(plain, key.Prefix) || len(key.Prefix) != 12 {
			t.Fatalf("prefix %q", key.Prefix)
		}
		var stored int
		if err := st.DB().Get(&stored, st.DB().Rebind(`SELECT COUNT(*) FROM api_keys WHERE hash = ? OR prefix = ?`), plain, plain); err != nil || stored != 0 {
			t.Fatalf("plaintext key stored: %d %v", stored, err)
		}
		auth := must[store.APIKey](t)(st.AuthenticateAPIKey(ctx(), plain))
		if auth.AccountID != a.ID || auth.ID != key.ID {
			t.Fatalf("auth %+v", auth)
		}
		_, err = st.AuthenticateAPIKey(ctx(), plain+"x")
		wantErr(t, err, store.ErrNotFound)
		_, err = st.AuthenticateAPIKey(ctx(), "' OR 1=1 --")
		wantErr(t, err, store.ErrNotFound)
		rev := must[store.APIKey](t)(st.RevokeAPIKey(ctx(), key.ID))
		if rev.RevokedAt == nil {
			t.Fatal("not revoked")
		}
		_, err = st.AuthenticateAPIKey(ctx(), plain)
		wantErr(t, err, store.ErrNotFound)
		keys := must[[]store.APIKey](t)(st.ListAPIKeys(ctx(), a.ID))
		if len(keys) != 1 || keys[0].RevokedAt == nil || !keys[0].RevokedAt.Equal(*rev.RevokedAt) {
			t.Fatalf("keys %+v", keys)
		}
		_, _, err = st.CreateAPIKey(ctx(), "acc_missing")
		wantErr(t, err, store.ErrNotFound)
	}},
	{"credits are idempotent by ref and never negative", func(t *testing.T, e env) {
		st := e.st
		a := newAccount(t, st, 0)
		if b := must[int64](t)(st.Balance(ctx(), a.ID)); b != 0 {
			t.Fatalf("balance %d", b)
		}
		if b := must[int64](t)(st.AddCredits(ctx(), a.ID, 100, "order-1", "")); b != 100 {
			t.Fatalf("balance %d", b)
		}
		if b := must[int64](t)(st.AddCredits(ctx(), a.ID, 100, "order-1", "")); b != 100 {
			t.Fatalf("replayed ref changed the balance: %d", b)
		}
		if b := must[int64](t)(st.AddCredits(ctx(), a.ID, 5, "", "")); b != 105 {
			t.Fatalf("balance %d", b)
		}
		_, err := st.AddCredits(ctx(), a.ID, -5, "", "")
		wantErr(t, err, store.ErrInvalid)
		_, err = st.AddCredits(ctx(), "acc_missing", 5, "", "")
		wantErr(t, err, store.ErrNotFound)
		_, err = st.Balance(ctx(), "acc_missing")
		wantErr(t, err, store.ErrNotFound)
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if b, err := st.AddCredits(ctx(), a.ID, 1000, "order-race", ""); err != nil || b < 1105 {
					t.Errorf("concurrent add: %d %v", b, err)
				}
			}()
		}
		wg.Wait()
		if b := must[int64](t)(st.Balance(ctx(), a.ID)); b != 1105 {
			t.Fatalf("one ref applied more than once: balance %d", b)
		}
		if b := must[int64](t)(st.AddCredits(ctx(), a.ID, 5, "", "")); b != 1110 {
			t.Fatalf("balance %d", b)
		}
		l, next, err := st.Ledger(ctx(), a.ID, store.Page{Limit: 1})
		if err != nil || len(l) != 1 || l[0].Delta != 5 || l[0].BalanceAfter != 1110 || next == "" {
			t.Fatalf("ledger %+v %q %v", l, next, err)
		}
		l, next, err = st.Ledger(ctx(), a.ID, store.Page{Cursor: next, Limit: 3})
		if err != nil || len(l) != 3 || l[0].Ref != "order-race" || l[2].Ref != "order-1" || next != "" {
			t.Fatalf("ledger page 2 %+v %q %v", l, next, err)
		}
	}},
	{"connections are scoped by account", func(t *testing.T, e env) {
		st := e.st
		a, b := newAccount(t, st, 0), newAccount(t, st, 0)
		c := newConnection(t, st, a.ID, "klaviyo", `{"verify_first":true,"on_failure":"none"}`)
		if !strings.HasPrefix(c.ID, "cnx_") || c.Status != store.StatusActive || !c.VerifyFirst || c.LastSyncedAt != nil || c.KeyID != "test1" {
			t.Fatalf("created %+v", c)
		}
		got := must[store.Connection](t)(st.GetConnection(ctx(), a.ID, c.ID))
		if fmt.Sprint(got) != fmt.Sprint(c) {
			t.Fatalf("read back differs:\n got %+v\nwant %+v", got, c)
		}
		_, err := st.GetConnection(ctx(), b.ID, c.ID)
		wantErr(t, err, store.ErrNotFound)
		name := "stolen"
		_, err = st.UpdateConnection(ctx(), b.ID, c.ID, store.ConnectionUpdate{Name: &name})
		wantErr(t, err, store.ErrNotFound)
		if l, _, _ := st.ListConnections(ctx(), b.ID, store.ConnectionFilter{}, store.Page{}); len(l) != 0 {
			t.Fatalf("account b sees %d connections", len(l))
		}
		_, err = st.CreateConnection(ctx(), store.NewConnection{AccountID: "acc_missing", Type: "brevo", Name: "x", Credentials: store.Credentials{}})
		wantErr(t, err, store.ErrNotFound)
		_, err = st.CreateConnection(ctx(), store.NewConnection{AccountID: a.ID, Type: "brevo", Name: "x", Settings: json.RawMessage(`[1]`)})
		wantErr(t, err, store.ErrInvalid)
	}},
	{"connections list with cursor pagination and counts", func(t *testing.T, e env) {
		st := e.st
		a := newAccount(t, st, 0)
		var ids []string
		for _, typ := range []string{"klaviyo", "brevo", "klaviyo"} {
			ids = append(ids, newConnection(t, st, a.ID, typ, `{}`).ID)
		}
		p1, next, err := st.ListConnections(ctx(), a.ID, store.ConnectionFilter{}, store.Page{Limit: 2})
		if err != nil || len(p1) != 2 || p1[0].ID != ids[0] || p1[1].ID != ids[1] || next == "" {
			t.Fatalf("page 1: %d %q %v", len(p1), next, err)
		}
		p2, next2, err := st.ListConnections(ctx(), a.ID, store.ConnectionFilter{}, store.Page{Cursor: next, Limit: 2})
		if err != nil || len(p2) != 1 || p2[0].ID != ids[2] || next2 != "" {
			t.Fatalf("page 2: %d %q %v", len(p2), next2, err)
		}
		kl, _, _ := st.ListConnections(ctx(), a.ID, store.ConnectionFilter{Type: "klaviyo"}, store.Page{})
		if len(kl) != 2 {
			t.Fatalf("klaviyo filter: %d", len(kl))
		}
		_, _, err = st.ListConnections(ctx(), a.ID, store.ConnectionFilter{}, store.Page{Cursor: "not-a-cursor!"})
		wantErr(t, err, store.ErrInvalidCursor)
		off := store.StatusDisconnected
		must[store.Connection](t)(st.UpdateConnection(ctx(), a.ID, ids[0], store.ConnectionUpdate{Status: &off}))
		counts := must[map[string]store.ConnectionCount](t)(st.ConnectionCounts(ctx(), a.ID))
		if counts["klaviyo"] != (store.ConnectionCount{Total: 2, Active: 1}) || counts["brevo"] != (store.ConnectionCount{Total: 1, Active: 1}) || len(counts) != 2 {
			t.Fatalf("counts %+v", counts)
		}
	}},
	{"connection updates", func(t *testing.T, e env) {
		st := e.st
		a := newAccount(t, st, 0)
		c := newConnection(t, st, a.ID, "mailchimp", `{}`)
		name, auto, off, on := "Renamed", false, store.StatusDisconnected, store.StatusActive
		u := must[store.Connection](t)(st.UpdateConnection(ctx(), a.ID, c.ID, store.ConnectionUpdate{
			Name: &name, AutoFlossEnabled: &auto, Settings: json.RawMessage(`{"verify_first": true, "checks": {"role": false}}`), Status: &off,
		}))
		if u.Name != name || u.AutoFlossEnabled || !u.VerifyFirst || u.Status != off || u.DisconnectedReason != store.ReasonUser ||
			string(u.Settings) != `{"verify_first": true, "checks": {"role": false}}` || u.UpdatedAt.Before(c.UpdatedAt) {
			t.Fatalf("updated %+v", u)
		}
		u = must[store.Connection](t)(st.UpdateConnection(ctx(), a.ID, c.ID, store.ConnectionUpdate{Status: &on}))
		if u.Status != on || u.DisconnectedReason != "" {
			t.Fatalf("reactivated %+v", u)
		}
		if err := st.MarkCredentialsRevoked(ctx(), c.ID); err != nil {
			t.Fatal(err)
		}
		u = must[store.Connection](t)(st.ConnectionByID(ctx(), c.ID))
		if u.Status != off || u.DisconnectedReason != store.ReasonCredentialsRevoked {
			t.Fatalf("revoked %+v", u)
		}
		bad := "paused"
		_, err := st.UpdateConnection(ctx(), a.ID, c.ID, store.ConnectionUpdate{Status: &bad})
		wantErr(t, err, store.ErrInvalid)
		_, err = st.UpdateConnection(ctx(), a.ID, c.ID, store.ConnectionUpdate{Settings: json.RawMessage(`{"verify_first":"yes"}`)})
		wantErr(t, err, store.ErrInvalid)
		must[store.Connection](t)(st.UpdateConnection(ctx(), a.ID, c.ID, store.ConnectionUpdate{Credentials: store.Credentials{"api_key": "new-key-us1"}}))
		creds := must[store.Credentials](t)(st.ConnectionCredentials(ctx(), c.ID))
		if creds["api_key"] != "new-key-us1" || len(creds) != 1 {
			t.Fatalf("credentials %v", creds)
		}
	}},
	{"times round-trip in UTC at microsecond precision", func(t *testing.T, e env) {
		clock := &fakeClock{t: time.Date(2026, 6, 2, 11, 0, 0, 123456789, time.FixedZone("CEST", 2*3600))}
		st := testenv.StoreWith(t, e.url, store.Options{Keys: testenv.KeyRing(t), Now: clock.Now})
		a := newAccount(t, st, 0)
		want := time.Date(2026, 6, 2, 9, 0, 0, 123456000, time.UTC)
		if a.CreatedAt != want {
			t.Fatalf("created_at %v (%s), want %v", a.CreatedAt, a.CreatedAt.Location(), want)
		}
		back := must[store.Account](t)(st.GetAccount(ctx(), a.ID))
		if back.CreatedAt != want || back.CreatedAt.Location() != time.UTC {
			t.Fatalf("read back %v (%s)", back.CreatedAt, back.CreatedAt.Location())
		}
		since := time.Date(2026, 5, 1, 0, 0, 0, 999, time.UTC)
		c := newConnection(t, st, a.ID, "drip", `{}`)
		run, _, err := st.OpenOrCreateRun(ctx(), store.NewRun{ConnectionID: c.ID, Kind: store.RunIncremental, Since: &since})
		if err != nil {
			t.Fatal(err)
		}
		if run.Since == nil || *run.Since != since.Truncate(time.Microsecond) || run.CreatedAt != want {
			t.Fatalf("run since %v created %v", run.Since, run.CreatedAt)
		}
	}},
	{"keyword rules", func(t *testing.T, e env) {
		st := e.st
		a, b := newAccount(t, st, 0), newAccount(t, st, 0)
		c := newConnection(t, st, a.ID, "brevo", `{}`)
		r1, created, err := st.AddRule(ctx(), a.ID, c.ID, store.NewRule{List: store.Whitelist, Keyword: "Info"})
		if err != nil || !created || !strings.HasPrefix(r1.ID, "kwr_") || r1.MatchOn != store.MatchLocalPart {
			t.Fatalf("add %+v %v %v", r1, created, err)
		}
		dup, created, err := st.AddRule(ctx(), a.ID, c.ID, store.NewRule{List: store.Whitelist, Keyword: "INFO", MatchOn: store.MatchLocalPart})
		if err != nil || created || dup != r1 {
			t.Fatalf("duplicate %+v %v %v", dup, created, err)
		}
		_, created, _ = st.AddRule(ctx(), a.ID, c.ID, store.NewRule{List: store.Blacklist, Keyword: "info"})
		if !created {
			t.Fatal("same keyword on the other list must be a new rule")
		}
		_, created, _ = st.AddRule(ctx(), a.ID, c.ID, store.NewRule{List: store.Whitelist, Keyword: "info", MatchOn: store.MatchDomain})
		if !created {
			t.Fatal("same keyword with another match_on must be a new rule")
		}
		_, _, err = st.AddRule(ctx(), b.ID, c.ID, store.NewRule{List: store.Whitelist, Keyword: "x"})
		wantErr(t, err, store.ErrNotFound)
		_, _, err = st.AddRule(ctx(), a.ID, c.ID, store.NewRule{List: "greylist", Keyword: "x"})
		wantErr(t, err, store.ErrInvalid)
		// Bulk: all or nothing.
		_, err = st.AddRules(ctx(), a.ID, c.ID, []store.NewRule{{List: store.Whitelist, Keyword: "a.com", MatchOn: store.MatchDomain}, {List: store.Whitelist, Keyword: "b", MatchOn: "nope"}})
		wantErr(t, err, store.ErrInvalid)
		bulk, err := st.AddRules(ctx(), a.ID, c.ID, []store.NewRule{
			{List: store.Whitelist, Keyword: "a.com", MatchOn: store.MatchDomain},
			{List: store.Whitelist, Keyword: "info"},                              // existing
			{List: store.Whitelist, Keyword: "A.COM", MatchOn: store.MatchDomain}, // duplicate within the batch
		})
		if err != nil || len(bulk) != 3 || bulk[1] != r1 || bulk[0] != bulk[2] {
			t.Fatalf("bulk %+v %v", bulk, err)
		}
		wl, next, err := st.ListRules(ctx(), a.ID, c.ID, store.Whitelist, store.Page{Limit: 2})
		if err != nil || len(wl) != 2 || wl[0] != r1 || next == "" {
			t.Fatalf("list %+v %q %v", wl, next, err)
		}
		wl2, next, _ := st.ListRules(ctx(), a.ID, c.ID, store.Whitelist, store.Page{Cursor: next, Limit: 2})
		if len(wl2) != 1 || next != "" {
			t.Fatalf("list page 2 %+v %q", wl2, next)
		}
		_, _, err = st.ListRules(ctx(), b.ID, c.ID, store.Whitelist, store.Page{})
		wantErr(t, err, store.ErrNotFound)
		wantErr(t, st.DeleteRule(ctx(), b.ID, c.ID, store.Whitelist, r1.ID), store.ErrNotFound)
		wantErr(t, st.DeleteRule(ctx(), a.ID, c.ID, store.Blacklist, r1.ID), store.ErrNotFound)
		if err := st.DeleteRule(ctx(), a.ID, c.ID, store.Whitelist, r1.ID); err != nil {
			t.Fatal(err)
		}
		wantErr(t, st.DeleteRule(ctx(), a.ID, c.ID, store.Whitelist, r1.ID), store.ErrNotFound)
		all := must[[]store.Rule](t)(st.RulesForConnection(ctx(), c.ID))
		if len(all) != 3 {
			t.Fatalf("all rules %d", len(all))
		}
	}},
	{"one unfinished run per connection", func(t *testing.T, e env) {
		st := e.st
		a := newAccount(t, st, 10)
		c := newConnection(t, st, a.ID, "klaviyo", `{}`)
		var wg sync.WaitGroup
		runs := make([]store.Run, 8)
		createdN := make([]bool, 8)
		errs := make([]error, 8)
		for i := range runs {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				runs[i], createdN[i], errs[i] = st.OpenOrCreateRun(ctx(), store.NewRun{ConnectionID: c.ID, Kind: store.RunFull})
			}(i)
		}
		wg.Wait()
		n := 0
		for i := range runs {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if createdN[i] {
				n++
			}
			if runs[i].ID != runs[0].ID {
				t.Fatalf("two open runs: %s %s", runs[i].ID, runs[0].ID)
			}
		}
		if n != 1 || runs[0].State != store.RunQueued {
			t.Fatalf("created %d, state %s", n, runs[0].State)
		}
		_, _, err := st.OpenOrCreateRun(ctx(), store.NewRun{ConnectionID: "cnx_missing", Kind: store.RunFull})
		wantErr(t, err, store.ErrNotFound)
	}},
	{"commit pages, charge once, pause and finish", func(t *testing.T, e env) {
		st := e.st
		a, other := newAccount(t, st, 3), newAccount(t, st, 0)
		c := newConnection(t, st, a.ID, "klaviyo", `{}`)
		run, _, err := st.OpenOrCreateRun(ctx(), store.NewRun{ConnectionID: c.ID, Kind: store.RunFull, TaskID: "floss:sync:x"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.CommitPage(ctx(), store.PageCommit{RunID: run.ID})
		wantErr(t, err, store.ErrStaleCursor) // not running yet
		run = must[store.Run](t)(st.StartRun(ctx(), run.ID))
		if run.State != store.RunRunning || run.StartedAt == nil {
			t.Fatalf("started %+v", run)
		}
		total := int64(5)
		page1 := store.PageCommit{RunID: run.ID, FromCursor: "", NextCursor: "p2", Seen: 3, Skipped: 1, Total: &total, Results: []store.NewResult{
			{ContactID: "1", ListID: "L", Email: "Ann@Example.com", Status: "passed", Reason: "valid", Passed: true, Evidence: json.RawMessage(`{"mx":"mx.example.com"}`)},
			{ContactID: "2", ListID: "L", Email: "bob@example.com", Status: "undeliverable", Reason: "nonexistent", Action: "update_fields", Reused: true},
		}}
		out, err := st.CommitPage(ctx(), page1)
		if err != nil || out.Inserted != 2 || out.Charged != 1 {
			t.Fatalf("page 1: %+v %v", out, err)
		}
		r := out.Run
		if r.Cursor != "p2" || r.AtEnd || r.Counts != (store.RunCounts{Seen: 3, Skipped: 1, Reused: 1, Verified: 1, Passed: 1, Failed: 1, WrittenBack: 1}) ||
			r.CreditsUsed != 1 || r.ByReason["valid"] != 1 || r.ByReason["nonexistent"] != 1 || r.Total == nil || *r.Total != 5 || r.Pages != 1 {
			t.Fatalf("run after page 1: %+v", r)
		}
		if p := r.Progress(); p == nil || *p != 0.6 {
			t.Fatalf("progress %v", p)
		}
		// A replay of page 1 (crash after commit) changes nothing.
		_, err = st.CommitPage(ctx(), page1)
		wantErr(t, err, store.ErrStaleCursor)
		// Page 2 needs 3 credits, 2 are left: nothing is stored.
		page2 := store.PageCommit{RunID: run.ID, FromCursor: "p2", NextCursor: "", Seen: 3, Results: []store.NewResult{
			{ContactID: "3", ListID: "L", Email: "c@example.com", Status: "risky", Reason: "role", Passed: true},
			{ContactID: "4", ListID: "L", Email: "d@example.com", Status: "passed", Reason: "valid", Passed: true},
			{ContactID: "5", ListID: "L", Email: "e@example.com", Status: "unknown", Reason: "accept_all", Passed: true},
		}}
		_, err = st.CommitPage(ctx(), page2)
		wantErr(t, err, store.ErrInsufficientCredits)
		if n, _, _ := st.ListResults(ctx(), a.ID, c.ID, store.ResultFilter{}, store.Page{}); len(n) != 2 {
			t.Fatalf("results after refused page: %d", len(n))
		}
		// Commit what the balance covers, keep the cursor, pause.
		partial := page2
		partial.KeepCursor, partial.Seen, partial.Results = true, 0, page2.Results[:2]
		out, err = st.CommitPage(ctx(), partial)
		if err != nil || out.Charged != 2 || out.Run.Cursor != "p2" {
			t.Fatalf("partial: %+v %v", out, err)
		}
		if b := must[int64](t)(st.Balance(ctx(), a.ID)); b != 0 {
			t.Fatalf("balance %d", b)
		}
		if err := st.PauseRun(ctx(), run.ID); err != nil {
			t.Fatal(err)
		}
		if open := must[store.Run](t)(st.OpenRun(ctx(), c.ID)); open.ID != run.ID || open.State != store.RunPausedNoCredits {
			t.Fatalf("open run %+v", open)
		}
		// Credits arrive; the resumed run commits the whole page: only contact 5 is new and charged.
		must[int64](t)(st.AddCredits(ctx(), a.ID, 10, "", ""))
		must[store.Run](t)(st.StartRun(ctx(), run.ID))
		out, err = st.CommitPage(ctx(), page2)
		if err != nil || out.Inserted != 1 || out.Charged != 1 || !out.Run.AtEnd || out.Run.Counts.Seen != 6 || out.Run.CreditsUsed != 4 {
			t.Fatalf("resume: %+v %v", out, err)
		}
		if b := must[int64](t)(st.Balance(ctx(), a.ID)); b != 9 {
			t.Fatalf("balance %d (each contact charged exactly once)", b)
		}
		done := must[store.Run](t)(st.FinishRun(ctx(), run.ID))
		if done.State != store.RunDone || done.FinishedAt == nil || done.Cursor != "" || *done.Progress() != 1 {
			t.Fatalf("done %+v", done)
		}
		cn := must[store.Connection](t)(st.ConnectionByID(ctx(), c.ID))
		if cn.LastSyncedAt == nil || !cn.LastSyncedAt.Equal(*done.StartedAt) {
			t.Fatalf("last_synced_at %v, started %v", cn.LastSyncedAt, done.StartedAt)
		}
		_, err = st.OpenRun(ctx(), c.ID)
		wantErr(t, err, store.ErrNotFound)
		last := must[store.Run](t)(st.LastCompletedRun(ctx(), c.ID))
		if last.ID != run.ID {
			t.Fatal("last completed run")
		}
		// Listings, scoped.
		res, _, err := st.ListResults(ctx(), a.ID, c.ID, store.ResultFilter{Reason: "valid"}, store.Page{})
		if err != nil || len(res) != 2 || res[0].ContactID != "4" || res[1].Email != "Ann@Example.com" || string(res[1].Evidence) != `{"mx":"mx.example.com"}` {
			t.Fatalf("results %+v %v", res, err)
		}
		res, _, _ = st.ListResults(ctx(), a.ID, c.ID, store.ResultFilter{Status: "undeliverable", RunID: run.ID}, store.Page{})
		if len(res) != 1 || !res[0].Reused || res[0].Action != "update_fields" || res[0].Passed {
			t.Fatalf("filtered %+v", res)
		}
		_, _, err = st.ListResults(ctx(), other.ID, c.ID, store.ResultFilter{}, store.Page{})
		wantErr(t, err, store.ErrNotFound)
		_, _, err = st.ListRuns(ctx(), other.ID, c.ID, store.Page{})
		wantErr(t, err, store.ErrNotFound)
		_, err = st.GetRun(ctx(), other.ID, c.ID, run.ID)
		wantErr(t, err, store.ErrNotFound)
		run2, created, err := st.OpenOrCreateRun(ctx(), store.NewRun{ConnectionID: c.ID, Kind: store.RunIncremental})
		if err != nil || !created {
			t.Fatal(err)
		}
		runs, _, err := st.ListRuns(ctx(), a.ID, c.ID, store.Page{})
		if err != nil || len(runs) != 2 || runs[0].ID != run2.ID || runs[1].ID != run.ID {
			t.Fatalf("runs newest first: %+v %v", runs, err)
		}
		if err := st.FailRun(ctx(), run2.ID, store.RunError{Code: "esp_unavailable", Message: "platform kept failing"}); err != nil {
			t.Fatal(err)
		}
		failed := must[store.Run](t)(st.GetRun(ctx(), a.ID, c.ID, run2.ID))
		if failed.State != store.RunFailed || failed.Error == nil || failed.Error.Code != "esp_unavailable" || failed.FinishedAt == nil {
			t.Fatalf("failed %+v", failed)
		}
		// Re-verify lookup: case-insensitive, newest.
		recent := must[map[string]store.Result](t)(st.RecentResults(ctx(), c.ID, []string{"ANN@example.COM", "nobody@example.com", "e@example.com"}, time.Now().Add(-time.Hour)))
		if len(recent) != 2 || recent["ann@example.com"].Reason != "valid" || recent["e@example.com"].Reason != "accept_all" {
			t.Fatalf("recent %+v", recent)
		}
		recent = must[map[string]store.Result](t)(st.RecentResults(ctx(), c.ID, []string{"ann@example.com"}, time.Now().Add(time.Hour)))
		if len(recent) != 0 {
			t.Fatalf("results older than since returned: %+v", recent)
		}
		// Ledger: one debit entry per charged page, refs unique.
		ledger, _, _ := st.Ledger(ctx(), a.ID, store.Page{Limit: 100})
		var debits int64
		for _, l := range ledger {
			if l.Delta < 0 {
				debits += -l.Delta
				if l.RunID != run.ID || l.Reason != "floss" {
					t.Fatalf("debit entry %+v", l)
				}
			}
		}
		if debits != 4 {
			t.Fatalf("debited %d, want 4", debits)
		}
	}},
	{"concurrent commits of one page apply once", func(t *testing.T, e env) {
		st := e.st
		a := newAccount(t, st, 100)
		c := newConnection(t, st, a.ID, "brevo", `{}`)
		run, _, _ := st.OpenOrCreateRun(ctx(), store.NewRun{ConnectionID: c.ID, Kind: store.RunFull})
		must[store.Run](t)(st.StartRun(ctx(), run.ID))
		page := store.PageCommit{RunID: run.ID, NextCursor: "next", Seen: 10}
		for i := 0; i < 10; i++ {
			page.Results = append(page.Results, store.NewResult{ContactID: fmt.Sprint(i), Email: fmt.Sprintf("u%d@example.com", i), Status: "passed", Reason: "valid", Passed: true})
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok, stale := 0, 0
		for i := 0; i < 6; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := st.CommitPage(ctx(), page)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ok++
				case errors.Is(err, store.ErrStaleCursor):
					stale++
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if ok != 1 || stale != 5 {
			t.Fatalf("ok=%d stale=%d", ok, stale)
		}
		if b := must[int64](t)(st.Balance(ctx(), a.ID)); b != 90 {
			t.Fatalf("balance %d", b)
		}
		if r := must[store.Run](t)(st.RunByID(ctx(), run.ID)); r.Counts.Seen != 10 || r.Counts.Verified != 10 {
			t.Fatalf("counts %+v", r.Counts)
		}
	}},
	{"idempotency records", func(t *testing.T, e env) {
		clock := &fakeClock{t: time.Now()}
		st := testenv.StoreWith(t, e.url, store.Options{Keys: testenv.KeyRing(t), Now: clock.Now})
		a, b := newAccount(t, st, 0), newAccount(t, st, 0)
		var wg sync.WaitGroup
		var mu sync.Mutex
		started := 0
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, s, err := st.BeginIdempotent(ctx(), a.ID, "key-1", "h1", 24*time.Hour)
				if err != nil {
					t.Error(err)
				}
				if s {
					mu.Lock()
					started++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if started != 1 {
			t.Fatalf("%d callers started the same key", started)
		}
		rec, s, err := st.BeginIdempotent(ctx(), a.ID, "key-1", "h2", 24*time.Hour)
		if err != nil || s || rec.State != store.IdemInFlight || rec.RequestHash != "h1" {
			t.Fatalf("in flight: %+v %v %v", rec, s, err)
		}
		if _, s, _ := st.BeginIdempotent(ctx(), b.ID, "key-1", "h1", 24*time.Hour); !s {
			t.Fatal("keys are per account")
		}
		if err := st.FinishIdempotent(ctx(), a.ID, "key-1", 201, []byte(`{"id":"cnx_1"}`)); err != nil {
			t.Fatal(err)
		}
		rec, s, err = st.BeginIdempotent(ctx(), a.ID, "key-1", "h1", 24*time.Hour)
		if err != nil || s || rec.State != store.IdemDone || rec.Status != 201 || string(rec.Body) != `{"id":"cnx_1"}` {
			t.Fatalf("done: %+v %v %v", rec, s, err)
		}
		clock.Add(23 * time.Hour)
		if _, err := st.LookupIdempotent(ctx(), a.ID, "key-1"); err != nil {
			t.Fatalf("expired early: %v", err)
		}
		clock.Add(2 * time.Hour)
		_, err = st.LookupIdempotent(ctx(), a.ID, "key-1")
		wantErr(t, err, store.ErrNotFound)
		if _, s, _ := st.BeginIdempotent(ctx(), a.ID, "key-1", "h3", 24*time.Hour); !s {
			t.Fatal("an expired key must be reusable")
		}
		// A stuck in-flight record (crashed replica) is taken over after the lease.
		_, _, _ = st.BeginIdempotent(ctx(), a.ID, "key-2", "h", 24*time.Hour)
		clock.Add(store.InFlightLease + time.Second)
		if _, s, _ := st.BeginIdempotent(ctx(), a.ID, "key-2", "h", 24*time.Hour); !s {
			t.Fatal("stale in-flight record not taken over")
		}
		if err := st.AbandonIdempotent(ctx(), a.ID, "key-2"); err != nil {
			t.Fatal(err)
		}
		if _, s, _ := st.BeginIdempotent(ctx(), a.ID, "key-2", "h", 24*time.Hour); !s {
			t.Fatal("abandoned key not free")
		}
		clock.Add(48 * time.Hour)
		if n := must[int64](t)(st.PurgeExpiredIdempotency(ctx())); n < 3 {
			t.Fatalf("purged %d", n)
		}
	}},
	{"connection lease", func(t *testing.T, e env) {
		clock := &fakeClock{t: time.Now()}
		st := testenv.StoreWith(t, e.url, store.Options{Keys: testenv.KeyRing(t), Now: clock.Now})
		a := newAccount(t, st, 0)
		c := newConnection(t, st, a.ID, "gist", `{}`)
		lease := func(holder string) bool {
			ok, err := st.AcquireLease(ctx(), c.ID, holder, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !lease("w1") || lease("w2") || !lease("w1") {
			t.Fatal("lease exclusivity")
		}
		if ok, _ := st.RenewLease(ctx(), c.ID, "w2", time.Minute); ok {
			t.Fatal("w2 renewed w1's lease")
		}
		clock.Add(2 * time.Minute)
		if ok, _ := st.RenewLease(ctx(), c.ID, "w1", time.Minute); ok {
			t.Fatal("renewed an expired lease")
		}
		if !lease("w2") {
			t.Fatal("expired lease not taken over")
		}
		if err := st.ReleaseLease(ctx(), c.ID, "w1"); err != nil || lease("w1") {
			t.Fatal("w1 released w2's lease")
		}
		if err := st.ReleaseLease(ctx(), c.ID, "w2"); err != nil || !lease("w1") {
			t.Fatal("release")
		}
	}},
	{"due connections", func(t *testing.T, e env) {
		clock := &fakeClock{t: time.Now()}
		st := testenv.StoreWith(t, e.url, store.Options{Keys: testenv.KeyRing(t), Now: clock.Now})
		rich, poor := newAccount(t, st, 100), newAccount(t, st, 0)
		never := newConnection(t, st, rich.ID, "klaviyo", `{}`)
		recent := newConnection(t, st, rich.ID, "klaviyo", `{}`)
		vf := newConnection(t, st, rich.ID, "mailchimp", `{"verify_first":true}`)
		gone := newConnection(t, st, rich.ID, "brevo", `{}`)
		_ = newConnection(t, st, poor.ID, "brevo", `{}`) // no credits: never due
		busy := newConnection(t, st, rich.ID, "drip", `{}`)
		off := store.StatusDisconnected
		must[store.Connection](t)(st.UpdateConnection(ctx(), rich.ID, gone.ID, store.ConnectionUpdate{Status: &off}))
		finish := func(c store.Connection) {
			r, _, err := st.OpenOrCreateRun(ctx(), store.NewRun{ConnectionID: c.ID, Kind: store.RunFull})
			if err != nil {
				t.Fatal(err)
			}
			must[store.Run](t)(st.StartRun(ctx(), r.ID))
			must[store.Run](t)(st.FinishRun(ctx(), r.ID))
		}
		finish(recent)
		finish(vf)
		must[store.Run](t)(func() (store.Run, error) {
			r, _, err := st.OpenOrCreateRun(ctx(), store.NewRun{ConnectionID: busy.ID, Kind: store.RunFull})
			return r, err
		}())
		clock.Add(10 * time.Minute)
		ids := func(q store.DueQuery) []string {
			var out []string
			for {
				cs, next, err := st.DueConnections(ctx(), q)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range cs {
					if c.AccountID == rich.ID || c.AccountID == poor.ID {
						out = append(out, c.ID)
					}
				}
				if next == "" {
					return out
				}
				q.Page.Cursor = next
			}
		}
		q := store.DueQuery{FlossInterval: 24 * time.Hour, VerifyFirstInterval: 5 * time.Minute, Page: store.Page{Limit: 1}}
		if got := ids(q); fmt.Sprint(got) != fmt.Sprint([]string{never.ID, vf.ID}) {
			t.Fatalf("due %v, want never=%s vf=%s", got, never.ID, vf.ID)
		}
		clock.Add(2 * time.Hour) // busy's queued run is now stale
		q.FlossInterval = time.Hour
		if got := ids(q); fmt.Sprint(got) != fmt.Sprint([]string{never.ID, recent.ID, vf.ID, busy.ID}) {
			t.Fatalf("due %v", got)
		}
	}},
	{"snapshots", func(t *testing.T, e env) {
		st := e.st
		a := newAccount(t, st, 0)
		c := newConnection(t, st, a.ID, "keap", `{}`)
		sn := must[store.Snapshot](t)(st.SaveSnapshot(ctx(), store.Snapshot{ConnectionID: c.ID, RunID: "run_x", ContactID: "42", Data: json.RawMessage(`{"id":42,"email":"x@example.com"}`)}))
		list, _, err := st.ListSnapshots(ctx(), c.ID, store.Page{})
		if err != nil || len(list) != 1 || fmt.Sprint(list[0]) != fmt.Sprint(sn) {
			t.Fatalf("snapshots %+v %v", list, err)
		}
		_, err = st.SaveSnapshot(ctx(), store.Snapshot{ConnectionID: c.ID, ContactID: "1"})
		wantErr(t, err, store.ErrInvalid)
	}},
	{"credentials seal, rotate and reject tampering", func(t *testing.T, e env) {
		k1, _ := seal.NewKey()
		k2, _ := seal.NewKey()
		ring1 := must[*seal.KeyRing](t)(seal.NewKeyRing([]seal.Key{{ID: "k1", Key: k1}}, ""))
		ring12 := must[*seal.KeyRing](t)(seal.NewKeyRing([]seal.Key{{ID: "k1", Key: k1}, {ID: "k2", Key: k2}}, "k2"))
		ring2 := must[*seal.KeyRing](t)(seal.NewKeyRing([]seal.Key{{ID: "k2", Key: k2}}, ""))
		url := e.fresh(t) // rotation touches every connection: use a database of its own
		st1 := testenv.StoreWith(t, url, store.Options{Keys: ring1})
		a := newAccount(t, st1, 0)
		secret := store.Credentials{"api_url": "https://acme.api-us1.com", "api_key": "sekret-" + store.NewID("")}
		c := must[store.Connection](t)(st1.CreateConnection(ctx(), store.NewConnection{AccountID: a.ID, Type: "activecampaign", Name: "AC", Credentials: secret}))
		if c.KeyID != "k1" {
			t.Fatalf("key id %q", c.KeyID)
		}
		if got := must[store.Credentials](t)(st1.ConnectionCredentials(ctx(), c.ID)); fmt.Sprint(got) != fmt.Sprint(secret) {
			t.Fatalf("round trip %v", got)
		}
		var raw []byte
		if err := st1.DB().Get(&raw, st1.DB().Rebind(`SELECT credentials FROM connections WHERE id = ?`), c.ID); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), secret["api_key"]) {
			t.Fatal("plaintext in the credentials column")
		}
		st2 := testenv.StoreWith(t, url, store.Options{Keys: ring2})
		if _, err := st2.ConnectionCredentials(ctx(), c.ID); !errors.Is(err, seal.ErrUnknownKey) {
			t.Fatalf("opened without its key: %v", err)
		}
		st12 := testenv.StoreWith(t, url, store.Options{Keys: ring12})
		n, err := st12.RotateCredentials(ctx())
		if err != nil || n != 1 {
			t.Fatalf("rotate %d %v", n, err)
		}
		if cn := must[store.Connection](t)(st2.ConnectionByID(ctx(), c.ID)); cn.KeyID != "k2" {
			t.Fatalf("key id after rotation %q", cn.KeyID)
		}
		if got := must[store.Credentials](t)(st2.ConnectionCredentials(ctx(), c.ID)); fmt.Sprint(got) != fmt.Sprint(secret) {
			t.Fatalf("after rotation %v", got)
		}
		// Flip one byte of the ciphertext: GCM must refuse it.
		var sealed []byte
		if err := st2.DB().Get(&sealed, st2.DB().Rebind(`SELECT credentials FROM connections WHERE id = ?`), c.ID); err != nil {
			t.Fatal(err)
		}
		sealed[len(sealed)/2] ^= 0x01
		if _, err := st2.DB().Exec(st2.DB().Rebind(`UPDATE connections SET credentials = ? WHERE id = ?`), sealed, c.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := st2.ConnectionCredentials(ctx(), c.ID); !errors.Is(err, seal.ErrOpen) {
			t.Fatalf("tampered ciphertext: %v", err)
		}
		// A ciphertext moved to another row does not open there (bound to the connection id).
		c2 := must[store.Connection](t)(st2.CreateConnection(ctx(), store.NewConnection{AccountID: a.ID, Type: "brevo", Name: "B", Credentials: store.Credentials{"api_key": "x"}}))
		var good []byte
		_ = st2.DB().Get(&good, st2.DB().Rebind(`SELECT credentials FROM connections WHERE id = ?`), c2.ID)
		if _, err := st2.DB().Exec(st2.DB().Rebind(`UPDATE connections SET credentials = ?, credentials_key_id = 'k2' WHERE id = ?`), good, c.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := st2.ConnectionCredentials(ctx(), c.ID); !errors.Is(err, seal.ErrOpen) {
			t.Fatalf("swapped ciphertext opened: %v", err)
		}
		if _, err := st1.RotateCredentials(ctx()); err == nil {
			t.Fatal("rotation with a ring missing the keys must fail")
		}
	}},
}

// TestStore runs every case against SQLite and PostgreSQL.
func TestStore(t *testing.T) {
	fresh := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return testenv.SQLite(t) },
		"postgres": func(t *testing.T) string { return testenv.Postgres(t) },
	}
	for name, url := range testenv.Databases(t) {
		t.Run(name, func(t *testing.T) {
			e := env{st: testenv.Store(t, url), url: url, fresh: fresh[name]}
			for _, c := range storeCases {
				t.Run(c.name, func(t *testing.T) { c.run(t, e) })
			}
		})
	}
}
