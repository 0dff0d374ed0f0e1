package reliability_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/autofloss/autofloss/store"
	"github.com/autofloss/autofloss/store/seal"
)

const (
	envStoreChild = "AUTOFLOSS_RELIABILITY_STORE_CHILD" // the child's SQLite URL
	storePageSize = 50
)

// storeChild is the re-executed test binary: it opens the store named by envStoreChild, finds the run of
// the only connection and commits pages of storePageSize results forever, printing "committed <n>" after
// each CommitPage returns, until it is killed.
func storeChild() int {
	ctx := context.Background()
	k, _ := seal.NewKey()
	ring, _ := seal.NewKeyRing([]seal.Key{{ID: "child", Key: k}}, "")
	st, err := store.Open(ctx, os.Getenv(envStoreChild), store.Options{Keys: ring})
	if err != nil {
		fmt.Println("open:", err)
		return 1
	}
	runID := os.Getenv(envStoreChild + "_RUN")
	w := bufio.NewWriter(os.Stdout)
	run, err := st.RunByID(ctx, runID)
	if err != nil {
		fmt.Println("run:", err)
		return 1
	}
	for p := int(run.Pages); ; p++ {
		pc := store.PageCommit{RunID: runID, FromCursor: cursorOf(p), NextCursor: cursorOf(p + 1), Seen: storePageSize}
		for i := 0; i < storePageSize; i++ {
			id := fmt.Sprintf("c%07d", p*storePageSize+i)
			pc.Results = append(pc.Results, store.NewResult{ContactID: id, Email: id + "@example.test", Status: "deliverable",
				Reason: "valid", Passed: true, Action: "none", VerifiedAt: time.Now()})
		}
		if _, err := st.CommitPage(ctx, pc); err != nil {
			fmt.Fprintln(w, "error:", err)
			w.Flush()
			return 1
		}
		fmt.Fprintf(w, "committed %d\n", p+1)
		w.Flush()
	}
}

func cursorOf(p int) string {
	if p == 0 {
		return ""
	}
	return "page-" + strconv.Itoa(p)
}

// TestStoreSurvivesKillMidTransaction proves: a SQLite store (WAL) whose writer is SIGKILLed in the middle
// of its page transactions reopens with exactly the pages it committed — every page's results, counters,
// credit debit and cursor together or not at all (design.md "A result is committed with its cursor and
// its credit debit, or not at all"). A child process (this test binary re-executed) commits pages of 50
// results in a loop and reports each commit on stdout; it is killed at a random moment (three rounds).
// After reopening: results == pages × 50, run.pages == pages, seen == results, the cursor names the page
// after the last committed one, the ledger holds one debit per result, and the store accepts the next
// page at exactly that cursor (and refuses the previous one as stale). The pages the child reported are
// a lower bound (a commit can land before its report is printed): at most one more page may be present.
func TestStoreSurvivesKillMidTransaction(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	url := "sqlite:" + filepath.Join(dir, "autofloss.db")
	k, _ := seal.NewKey()
	ring, _ := seal.NewKeyRing([]seal.Key{{ID: "parent", Key: k}}, "")
	st, err := store.Open(ctx, url, store.Options{Keys: ring})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	acct, _ := st.CreateAccount(ctx, "wal")
	if _, err := st.AddCredits(ctx, acct.ID, 1_000_000_000, "", "grant"); err != nil {
		t.Fatal(err)
	}
	cnx, err := st.CreateConnection(ctx, store.NewConnection{AccountID: acct.ID, Type: "klaviyo", Name: "wal", Settings: []byte(`{}`),
		Credentials: map[string]string{"api_key": "pk_x"}})
	if err != nil {
		t.Fatal(err)
	}
	run, _, err := st.OpenOrCreateRun(ctx, store.NewRun{ConnectionID: cnx.ID, Kind: store.RunFull})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.StartRun(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	st.Close()

	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	for round := 0; round < 3; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envStoreChild+"="+url, envStoreChild+"_RUN="+run.ID)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill after a random number of further pages (20..120), while the next transaction is in flight.
		killAt := 20 + int((seed>>(round*8))&0x7f)%100
		sc := bufio.NewScanner(out)
		reported, seenLines := 0, 0
		done := make(chan struct{})
		go func() {
			defer close(done)
			for sc.Scan() {
				line := sc.Text()
				if n, ok := strings.CutPrefix(line, "committed "); ok {
					reported, _ = strconv.Atoi(n)
					if seenLines++; seenLines == killAt {
						_ = cmd.Process.Signal(syscall.SIGKILL)
					}
					continue
				}
				t.Errorf("child: %s", line)
			}
		}()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatal("store child did not reach its kill point within 60 s")
		}
		_ = cmd.Wait()
		if seenLines < killAt {
			t.Fatalf("round %d: child exited after %d pages without being killed", round, seenLines)
		}

		st, err := store.Open(ctx, url, store.Options{Keys: ring})
		if err != nil {
			t.Fatal(err)
		}
		r, err := st.RunByID(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		pages := int(r.Pages)
		if pages < reported || pages > reported+1 {
			t.Fatalf("round %d: %d pages committed, child reported %d", round, pages, reported)
		}
		db := openDB(t, filepath.Join(dir, "autofloss.db"))
		results := queryInt(t, db, `SELECT COUNT(*) FROM results WHERE run_id = ?`, run.ID)
		debits := -queryInt(t, db, `SELECT COALESCE(SUM(delta),0) FROM credit_ledger WHERE run_id = ? AND delta < 0`, run.ID)
		maxID := queryInt(t, db, `SELECT COALESCE(MAX(CAST(SUBSTR(contact_id, 2) AS INTEGER)), -1) FROM results WHERE run_id = ?`, run.ID)
		db.Close()
		if results != int64(pages*storePageSize) || r.Counts.Seen != results || debits != results || r.CreditsUsed != results ||
			maxID != results-1 || r.Cursor != cursorOf(pages) {
			t.Fatalf("round %d: pages %d, results %d, seen %d, debits %d, credits_used %d, highest contact %d, cursor %q",
				round, pages, results, r.Counts.Seen, debits, r.CreditsUsed, maxID, r.Cursor)
		}
		// The checkpoint is usable: the previous page is stale, the next one commits.
		if pages > 0 {
			_, err := st.CommitPage(ctx, store.PageCommit{RunID: run.ID, FromCursor: cursorOf(pages - 1), NextCursor: cursorOf(pages), Seen: 1})
			if err == nil {
				t.Fatalf("round %d: a page at the previous cursor was accepted", round)
			}
		}
		t.Logf("round %d: killed after %d reported pages; %d pages (%d results) on reopening", round, reported, pages, results)
		st.Close()
	}
}
