package store_test

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/autofloss/autofloss/internal/testenv"
	"github.com/autofloss/autofloss/store"
)

// BenchmarkCommitPage commits pages of 1,000 results (platform-like random contact ids — Mailchimp's are
// MD5 hashes — and random addresses, evidence of a realistic size) into one run and reports the store's cost
// per result. The database file sizes are logged. BENCH_DB=postgres
// runs it on PostgreSQL; BENCH_PAGES sets the pages per iteration (default 100 = 100,000 results). The
// run's FinishRun is part of the time (it merges the results into the re-verify index).
func BenchmarkCommitPage(b *testing.B) {
	url := testenv.SQLite(b)
	if os.Getenv("BENCH_DB") == "postgres" {
		url = testenv.Postgres(b)
	}
	pages := 100
	if v := os.Getenv("BENCH_PAGES"); v != "" {
		fmt.Sscan(v, &pages)
	}
	st := testenv.Store(b, url)
	a, err := st.CreateAccount(ctx(), "Acme")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.AddCredits(ctx(), a.ID, 1<<40, "", "grant"); err != nil {
		b.Fatal(err)
	}
	c, err := st.CreateConnection(ctx(), store.NewConnection{AccountID: a.ID, Type: "mailchimp", Name: "m",
		AutoFlossEnabled: true, Settings: json.RawMessage(`{}`), Credentials: store.Credentials{"api_key": "k-us1"}})
	if err != nil {
		b.Fatal(err)
	}
	ev := json.RawMessage(`{"mx":["mx1.example-mail.test","mx2.example-mail.test"],"smtp_code":250,"smtp_message":"2.1.5 OK","catch_all":false,"found_status":"valid","found_reason":"accepted_email","free":true}`)
	n := 0
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		b.StopTimer()
		run, _, err := st.OpenOrCreateRun(ctx(), store.NewRun{ConnectionID: c.ID, Kind: store.RunFull})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.StartRun(ctx(), run.ID); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		cursor := ""
		for p := 0; p < pages; p++ {
			pc := store.PageCommit{RunID: run.ID, FromCursor: cursor, NextCursor: fmt.Sprint("p", p+1), Seen: 1000}
			if p == pages-1 {
				pc.NextCursor = ""
			}
			now := time.Now()
			for i := 0; i < 1000; i++ {
				n++
				// Real addresses are random in sort order: the local part is hex of a hash, so neither the
				// address nor the contact id clusters within a page.
				l := md5.Sum(fmt.Appendf(nil, "local %d %d", n, it))
				email := fmt.Sprintf("%s@domain%d.example", hex.EncodeToString(l[:6]), n%977)
				h := md5.Sum([]byte(email))
				pc.Results = append(pc.Results, store.NewResult{ContactID: hex.EncodeToString(h[:]), ListID: "list1", Email: email,
					Status: "valid", Reason: "accepted_email", Passed: true, Action: "none", Evidence: ev, VerifiedAt: now})
			}
			if _, err := st.CommitPage(ctx(), pc); err != nil {
				b.Fatal(err)
			}
			cursor = pc.NextCursor
		}
		// FinishRun is timed: it merges the run's results into the re-verify index (resultindex.go).
		t0 := time.Now()
		if _, err := st.FinishRun(ctx(), run.ID); err != nil {
			b.Fatal(err)
		}
		b.Logf("FinishRun (index merge of %d results): %v", pages*1000, time.Since(t0).Round(time.Millisecond))
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(n), "µs/result")
	if path, ok := strings.CutPrefix(url, "sqlite:"); ok {
		for _, f := range []string{path, path + "-wal"} {
			if fi, err := os.Stat(f); err == nil {
				b.Logf("%s: %d MB", filepath.Base(f), fi.Size()>>20)
			}
		}
	}
}
