package store_test

import (
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/autofloss/autofloss/internal/testenv"
	"github.com/autofloss/autofloss/store"
)

// TestResultUniqueness pins what makes a stored result unique at a cursor (migrations 0002, 0003): run,
// list, contact and lower-cased address. Replays with the same address insert and charge nothing; a
// contact read again with a changed address gets a result of its own, counted and charged. The re-verify
// lookup sees the run's results once the run stops (result_index is merged then), and ResultsBySeq finds
// each by the seq its commit returned.
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
			seqs := map[int64]string{} // seq → address, from the commits
			for _, tc := range cases {
				out, err := st.CommitPage(ctx(), store.PageCommit{RunID: run.ID, KeepCursor: true, Results: tc.results})
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if len(out.Seqs) != len(tc.results) {
					t.Fatalf("%s: %d seqs for %d results", tc.name, len(out.Seqs), len(tc.results))
				}
				for i, seq := range out.Seqs {
					if seq != 0 {
						seqs[seq] = tc.results[i].Email
					}
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
			asked := []string{"bob@example.com"}
			if recent := must[map[string]store.Result](t)(st.RecentResults(ctx(), c.ID, asked, time.Now().Add(-time.Hour))); len(recent) != 0 {
				t.Fatalf("a running run's results are in the re-verify index before it stops: %+v", recent)
			}
			if len(seqs) != int(charged) {
				t.Fatalf("%d seqs returned for %d inserted results", len(seqs), charged)
			}
			bySeq := must[map[int64]store.Result](t)(st.ResultsBySeq(ctx(), c.ID, slices.Collect(maps.Keys(seqs))))
			for seq, email := range seqs {
				if bySeq[seq].Email != email {
					t.Fatalf("ResultsBySeq(%d) = %q, want %q", seq, bySeq[seq].Email, email)
				}
			}
			must[store.Run](t)(st.FinishRun(ctx(), run.ID))
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

// TestMigrationResultsIndex upgrades a v1 database holding results to v3: every result survives with its
// seq, a seq is never reused (SQLite's AUTOINCREMENT high-water mark is kept by 0002), the re-verify index
// is filled with the hash the store computes in Go (0003's SQL computes it: md5 on PostgreSQL, the
// registered function on SQLite) and holds each address's newest result, and listings and page commits
// work on the upgraded tables.
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
			old, _, err := st.OpenOrCreateRun(ctx(), store.NewRun{ConnectionID: c.ID, Kind: store.RunFull})
			if err != nil {
				t.Fatal(err)
			}
			// v1 rows, as v1's CommitPage wrote them: U1 twice (the newer verdict must win), then one more
			// row deleted again (its seq must not come back).
			now := time.Now().UTC()
			for i, r := range []struct {
				contact, email, reason string
				at                     time.Time
			}{{"0", "U0@example.com", "valid", now}, {"1", "U1@example.com", "old", now.Add(-time.Minute)},
				{"1b", "u1@EXAMPLE.com", "new", now}, {"2", "U2@example.com", "gone", now}} {
				var at any = r.at.Format("2006-01-02T15:04:05.000000Z")
				if st.Dialect() == store.Postgres {
					at = r.at
				}
				if _, err := st.DB().Exec(st.DB().Rebind(`INSERT INTO results (run_id, connection_id, contact_id, list_id, email,
					email_lower, status, reason, passed, verified_at) VALUES (?, ?, ?, 'L', ?, ?, 'passed', ?, ?, ?)`),
					old.ID, c.ID, r.contact, r.email, strings.ToLower(r.email), r.reason, true, at); err != nil {
					t.Fatalf("v1 row %d: %v", i, err)
				}
			}
			var maxSeq int64
			if err := st.DB().Get(&maxSeq, `SELECT MAX(seq) FROM results`); err != nil {
				t.Fatal(err)
			}
			if _, err := st.DB().Exec(st.DB().Rebind(`DELETE FROM results WHERE seq = ?`), maxSeq); err != nil {
				t.Fatal(err)
			}
			if n, err := st.Migrate(ctx()); err != nil || n != 2 {
				t.Fatalf("migrate to v3: %d %v", n, err)
			}
			if v := must[int64](t)(st.SchemaVersion(ctx())); v != 3 {
				t.Fatalf("version %d", v)
			}
			listed, _, err := st.ListResults(ctx(), a.ID, c.ID, store.ResultFilter{}, store.Page{})
			if err != nil || len(listed) != 3 || listed[0].ContactID != "1b" || listed[2].Email != "U0@example.com" {
				t.Fatalf("results after upgrade: %+v %v", listed, err)
			}
			recent := must[map[string]store.Result](t)(st.RecentResults(ctx(), c.ID, []string{"u0@example.com", "U1@example.com", "u2@example.com"}, now.Add(-time.Hour)))
			if len(recent) != 2 || recent["u0@example.com"].ContactID != "0" || recent["u1@example.com"].Reason != "new" {
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
			if r := must[map[string]store.Result](t)(st.RecentResults(ctx(), c.ID, []string{"n@example.com"}, now.Add(-time.Hour))); r["n@example.com"].ContactID != "9" {
				t.Fatalf("a contact result is not in the re-verify index: %+v", r)
			}
			must[store.Run](t)(st.StartRun(ctx(), old.ID))
			page := store.PageCommit{RunID: old.ID, KeepCursor: true, Results: []store.NewResult{
				{ContactID: "5", Email: "u5@example.com", Status: "passed", Reason: "valid", Passed: true, Reused: true}}}
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
