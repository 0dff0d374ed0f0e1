package store_test

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/autofloss/autofloss/internal/testenv"
	"github.com/autofloss/autofloss/store"
)

// TestResultUniqueness pins what makes a stored result unique (migration 0002): run, list, contact and
// lower-cased address. Replays with the same address insert and charge nothing; a contact read again with
// a changed address gets a result of its own, counted and charged.
func TestResultUniqueness(t *testing.T) {
	for name, url := range testenv.Databases(t) {
		t.Run(name, func(t *testing.T) {
			st := testenv.Store(t, url)
			a := newAccount(t, st, 100)
			c := newConnection(t, st, a.ID, "mailchimp", `{}`)
			run, _, err := st.OpenOrCreateRun(ctx(), store.NewRun{ConnectionID: c.ID, Kind: store.RunFull})
			if err != nil {
				t.Fatal(err)
			}
			must[store.Run](t)(st.StartRun(ctx(), run.ID))
			res := func(contact, email, reason string) store.NewResult {
				return store.NewResult{ContactID: contact, ListID: "L", Email: email, Status: "passed", Reason: reason, Passed: true}
			}
			cases := []struct {
				name     string
				results  []store.NewResult
				inserted int
				byReason map[string]int64 // the run's by_reason after the commit
			}{
				{"new contacts; a duplicate with the same address in other case is one result",
					[]store.NewResult{res("1", "Ann@Example.com", "a"), res("1", "ann@example.COM", "b"), res("2", "bob@example.com", "a")},
					2, map[string]int64{"a": 2}},
				{"re-commit with the same addresses changes nothing",
					[]store.NewResult{res("2", "BOB@example.com", "b"), res("1", "ann@example.com", "b")},
					0, map[string]int64{"a": 2}},
				{"an address changed on the platform is a new result",
					[]store.NewResult{res("1", "ann@example.com", "c"), res("2", "robert@example.com", "c")},
					1, map[string]int64{"a": 2, "c": 1}},
				{"one contact twice with two addresses in a page: both stored",
					[]store.NewResult{res("3", "c1@example.com", "d"), res("3", "c2@example.com", "e"), res("4", "d@example.com", "d")},
					3, map[string]int64{"a": 2, "c": 1, "d": 2, "e": 1}},
				{"same contact id in another list is another result",
					[]store.NewResult{{ContactID: "1", ListID: "M", Email: "ann@example.com", Status: "passed", Reason: "f", Passed: true}},
					1, map[string]int64{"a": 2, "c": 1, "d": 2, "e": 1, "f": 1}},
			}
			charged := int64(0)
			for _, tc := range cases {
				out, err := st.CommitPage(ctx(), store.PageCommit{RunID: run.ID, KeepCursor: true, Results: tc.results})
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				charged += int64(tc.inserted)
				if out.Inserted != tc.inserted || out.Charged != int64(tc.inserted) || out.Run.CreditsUsed != charged ||
					fmt.Sprint(out.Run.ByReason) != fmt.Sprint(tc.byReason) {
					t.Fatalf("%s: inserted %d charged %d, run credits %d by_reason %v; want %d, %v", tc.name, out.Inserted,
						out.Charged, out.Run.CreditsUsed, out.Run.ByReason, tc.inserted, tc.byReason)
				}
			}
			if b := must[int64](t)(st.Balance(ctx(), a.ID)); b != 100-charged {
				t.Fatalf("balance %d, want %d", b, 100-charged)
			}
			recent := must[map[string]store.Result](t)(st.RecentResults(ctx(), c.ID,
				[]string{"bob@example.com", "Robert@Example.com", "c1@example.com", "c2@example.com"}, time.Now().Add(-time.Hour)))
			if len(recent) != 4 || recent["bob@example.com"].Reason != "a" || recent["robert@example.com"].Reason != "c" ||
				recent["c2@example.com"].Reason != "e" {
				t.Fatalf("recent %+v", recent)
			}
			all, _, err := st.ListResults(ctx(), a.ID, c.ID, store.ResultFilter{RunID: run.ID}, store.Page{Limit: 100})
			if err != nil || len(all) != int(charged) {
				t.Fatalf("listed %d results, want %d: %v", len(all), charged, err)
			}
		})
	}
}

// TestMigrationResultsIndex upgrades a v1 database holding results to v2: every result survives with its
// seq, a seq is never reused (SQLite's AUTOINCREMENT high-water mark is kept), and the re-verify lookup,
// listings and page commits work on the upgraded table.
func TestMigrationResultsIndex(t *testing.T) {
	for name, url := range testenv.Databases(t) {
		t.Run(name, func(t *testing.T) {
			st, err := store.Open(ctx(), url, store.Options{Keys: testenv.KeyRing(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if n, err := st.MigrateTo(ctx(), 1); err != nil || n != 1 {
				t.Fatalf("migrate to v1: %d %v", n, err)
			}
			a := newAccount(t, st, 10)
			c := newConnection(t, st, a.ID, "brevo", `{}`)
			for i := 0; i < 3; i++ {
				_, _, err := st.CommitContactResult(ctx(), store.ContactResult{ConnectionID: c.ID, Ref: fmt.Sprint("hook", i),
					Result: store.NewResult{ContactID: fmt.Sprint(i), Email: fmt.Sprintf("U%d@example.com", i), Status: "passed", Reason: "valid", Passed: true}})
				if err != nil {
					t.Fatal(err)
				}
			}
			var maxSeq int64
			if err := st.DB().Get(&maxSeq, `SELECT MAX(seq) FROM results`); err != nil {
				t.Fatal(err)
			}
			if _, err := st.DB().Exec(st.DB().Rebind(`DELETE FROM results WHERE seq = ?`), maxSeq); err != nil {
				t.Fatal(err)
			}
			if n, err := st.Migrate(ctx()); err != nil || n != 1 {
				t.Fatalf("migrate to v2: %d %v", n, err)
			}
			if v := must[int64](t)(st.SchemaVersion(ctx())); v != 2 {
				t.Fatalf("version %d", v)
			}
			listed, _, err := st.ListResults(ctx(), a.ID, c.ID, store.ResultFilter{}, store.Page{})
			if err != nil || len(listed) != 2 || listed[0].ContactID != "1" || listed[1].Email != "U0@example.com" {
				t.Fatalf("results after upgrade: %+v %v", listed, err)
			}
			recent := must[map[string]store.Result](t)(st.RecentResults(ctx(), c.ID, []string{"u0@example.com", "u1@EXAMPLE.com"}, time.Now().Add(-time.Hour)))
			if len(recent) != 2 {
				t.Fatalf("recent after upgrade: %+v", recent)
			}
			if _, _, err := st.CommitContactResult(ctx(), store.ContactResult{ConnectionID: c.ID, Ref: "hook-new",
				Result: store.NewResult{ContactID: "9", Email: "n@example.com", Status: "passed", Reason: "valid", Passed: true}}); err != nil {
				t.Fatal(err)
			}
			var newSeq int64
			if err := st.DB().Get(&newSeq, `SELECT MAX(seq) FROM results`); err != nil {
				t.Fatal(err)
			}
			if newSeq <= maxSeq {
				t.Fatalf("new result seq %d reuses a seq (old high-water %d)", newSeq, maxSeq)
			}
			run, _, err := st.OpenOrCreateRun(ctx(), store.NewRun{ConnectionID: c.ID, Kind: store.RunFull})
			if err != nil {
				t.Fatal(err)
			}
			must[store.Run](t)(st.StartRun(ctx(), run.ID))
			page := store.PageCommit{RunID: run.ID, KeepCursor: true, Results: []store.NewResult{
				{ContactID: "0", Email: "u0@example.com", Status: "passed", Reason: "valid", Passed: true, Reused: true}}}
			for want := 1; want >= 0; want-- {
				out, err := st.CommitPage(ctx(), page)
				if err != nil || out.Inserted != want {
					t.Fatalf("commit after upgrade: inserted %d, want %d: %v", out.Inserted, want, err)
				}
			}
		})
	}
}

// TestSQLitePragmas checks every pooled SQLite connection carries the store's tuning (set by the
// driver's ConnectHook, see sqlitePragmas) besides the DSN options.
func TestSQLitePragmas(t *testing.T) {
	st := testenv.Store(t, testenv.SQLite(t))
	conns := make([]*sql.Conn, 3) // several at once: each is a new connection of the pool
	for i := range conns {
		c, err := st.DB().Conn(ctx())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	for i, c := range conns {
		for pragma, want := range map[string]string{"temp_store": "2", "wal_autocheckpoint": "20000",
			"journal_size_limit": "134217728", "journal_mode": "wal", "foreign_keys": "1"} {
			var got string
			if err := c.QueryRowContext(ctx(), "PRAGMA "+pragma).Scan(&got); err != nil || got != want {
				t.Errorf("connection %d: PRAGMA %s = %q (%v), want %q", i, pragma, got, err, want)
			}
		}
	}
}

// TestSQLiteBackgroundCheckpoint checks committed pages reach the database file without a checkpoint in
// the committing call: the store's checkpointer copies the WAL into the file shortly after a commit (the
// file, opened immutable so the WAL is ignored, ends up holding the results).
func TestSQLiteBackgroundCheckpoint(t *testing.T) {
	url := testenv.SQLite(t)
	st := testenv.Store(t, url)
	a := newAccount(t, st, 10_000)
	c := newConnection(t, st, a.ID, "mailchimp", `{}`)
	run, _, err := st.OpenOrCreateRun(ctx(), store.NewRun{ConnectionID: c.ID, Kind: store.RunFull})
	if err != nil {
		t.Fatal(err)
	}
	must[store.Run](t)(st.StartRun(ctx(), run.ID))
	pc := store.PageCommit{RunID: run.ID, NextCursor: "p2", Seen: 1000}
	for i := range 1000 {
		pc.Results = append(pc.Results, store.NewResult{ContactID: fmt.Sprint(i), Email: fmt.Sprintf("u%d@example.com", i), Status: "passed", Reason: "valid", Passed: true})
	}
	if _, err := st.CommitPage(ctx(), pc); err != nil {
		t.Fatal(err)
	}
	file, err := sql.Open("sqlite3", "file:"+strings.TrimPrefix(url, "sqlite:")+"?immutable=1&mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	file.SetMaxOpenConns(1)
	var n int
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		// immutable: each query must see the file as it is now, so a new connection each time.
		file.SetMaxIdleConns(0)
		if err := file.QueryRow(`SELECT COUNT(*) FROM results`).Scan(&n); err == nil && n == 1000 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("database file holds %d results (err %v), want 1000: no checkpoint after the commit", n, err)
		}
	}
}
