package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// NewRun opens a run.
type NewRun struct {
	ConnectionID string
	Kind         string     // RunFull | RunIncremental
	Since        *time.Time // incremental: read contacts changed at or after this
	TaskID       string     // the asynq task id, for operators
}

const runCols = `id, connection_id, kind, state, task_id, cursor, at_end, since, pages, seen, skipped, reused, verified, ` +
	`passed, failed, written_back, by_reason, credits_used, total, error_code, error_message, created_at, started_at, ` +
	`finished_at, updated_at`

func scanRun(sc interface{ Scan(...any) error }, extra ...any) (Run, error) {
	var r Run
	var since, created, started, finished, updated dbTime
	var byReason, code, msg string
	var total sql.NullInt64
	dst := append([]any{&r.ID, &r.ConnectionID, &r.Kind, &r.State, &r.TaskID, &r.Cursor, &r.AtEnd, &since, &r.Pages,
		&r.Counts.Seen, &r.Counts.Skipped, &r.Counts.Reused, &r.Counts.Verified, &r.Counts.Passed, &r.Counts.Failed,
		&r.Counts.WrittenBack, &byReason, &r.CreditsUsed, &total, &code, &msg, &created, &started, &finished, &updated}, extra...)
	if err := sc.Scan(dst...); err != nil {
		return Run{}, notFound(err)
	}
	r.ByReason = map[string]int64{}
	if err := json.Unmarshal([]byte(byReason), &r.ByReason); err != nil {
		return Run{}, fmt.Errorf("store: run %s by_reason: %w", r.ID, err)
	}
	if total.Valid {
		t := total.Int64
		r.Total = &t
	}
	if code != "" {
		r.Error = &RunError{Code: code, Message: msg}
	}
	r.Since, r.CreatedAt, r.StartedAt, r.FinishedAt, r.UpdatedAt = since.ptr(), created.T, started.ptr(), finished.ptr(), updated.T
	return r, nil
}

// OpenOrCreateRun returns the connection's unfinished run (queued, running or paused_no_credits) with
// created=false, or opens a new queued one. A database constraint guarantees at most one unfinished run
// per connection, even under concurrent callers.
func (s *Store) OpenOrCreateRun(ctx context.Context, nr NewRun) (run Run, created bool, err error) {
	if nr.Kind != RunFull && nr.Kind != RunIncremental {
		return Run{}, false, fmt.Errorf("%w: run kind %q", ErrInvalid, nr.Kind)
	}
	now := s.now()
	id := NewID(PrefixRun)
	err = s.withTx(ctx, func(tx *sqlx.Tx) error {
		var n int
		if err := tx.GetContext(ctx, &n, s.q(`SELECT COUNT(*) FROM connections WHERE id = ?`), nr.ConnectionID); err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO floss_runs (id, connection_id, kind, state, task_id, since, created_at, updated_at)
			VALUES (?, ?, ?, 'queued', ?, ?, ?, ?)
			ON CONFLICT (connection_id) WHERE state IN ('queued', 'running', 'paused_no_credits') DO NOTHING`),
			id, nr.ConnectionID, nr.Kind, nr.TaskID, s.tvp(nr.Since), s.tv(now), s.tv(now))
		if err != nil {
			return fmt.Errorf("store: create run: %w", err)
		}
		rows, _ := res.RowsAffected()
		created = rows == 1
		return nil
	})
	if err != nil {
		return Run{}, false, err
	}
	if created {
		run, err = s.RunByID(ctx, id)
	} else {
		run, err = s.OpenRun(ctx, nr.ConnectionID)
	}
	return run, created, err
}

// OpenRun returns the connection's unfinished run, or ErrNotFound.
func (s *Store) OpenRun(ctx context.Context, cnxID string) (Run, error) {
	return scanRun(s.db.QueryRowContext(ctx, s.q(`SELECT `+runCols+` FROM floss_runs
		WHERE connection_id = ? AND state IN ('queued', 'running', 'paused_no_credits')`), cnxID))
}

// RunByID reads any run (worker).
func (s *Store) RunByID(ctx context.Context, runID string) (Run, error) {
	return scanRun(s.db.QueryRowContext(ctx, s.q(`SELECT `+runCols+` FROM floss_runs WHERE id = ?`), runID))
}

// GetRun reads a run of the account's connection.
func (s *Store) GetRun(ctx context.Context, accountID, cnxID, runID string) (Run, error) {
	return scanRun(s.db.QueryRowContext(ctx, s.q(`SELECT `+runCols+` FROM floss_runs WHERE id = ? AND connection_id = ?
		AND connection_id IN (SELECT id FROM connections WHERE id = ? AND account_id = ?)`), runID, cnxID, cnxID, accountID))
}

// LastCompletedRun is the connection's most recent done run, or ErrNotFound (full vs incremental choice).
func (s *Store) LastCompletedRun(ctx context.Context, cnxID string) (Run, error) {
	return scanRun(s.db.QueryRowContext(ctx, s.q(`SELECT `+runCols+` FROM floss_runs
		WHERE connection_id = ? AND state = 'done' ORDER BY seq DESC LIMIT 1`), cnxID))
}

// ListRuns lists the runs of the account's connection, newest first.
func (s *Store) ListRuns(ctx context.Context, accountID, cnxID string, p Page) ([]Run, string, error) {
	after, err := p.after()
	if err != nil {
		return nil, "", err
	}
	if err := s.ownsConnection(ctx, s.db, accountID, cnxID); err != nil {
		return nil, "", err
	}
	q := `SELECT ` + runCols + `, seq FROM floss_runs WHERE connection_id = ?`
	args := []any{cnxID}
	if after > 0 {
		q += ` AND seq < ?`
		args = append(args, after)
	}
	q += ` ORDER BY seq DESC LIMIT ?`
	args = append(args, p.limit()+1)
	rows, err := s.db.QueryContext(ctx, s.q(q), args...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []Run
	var seqs []int64
	for rows.Next() {
		var seq int64
		r, err := scanRun(rows, &seq)
		if err != nil {
			return nil, "", err
		}
		out, seqs = append(out, r), append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	out, next := trimPage(out, seqs, p.limit())
	return out, next, nil
}

// StartRun moves a queued or paused run to running (started_at is set the first time only). The results
// a resumed run committed before are merged into the re-verify index first (see resultindex.go).
func (s *Store) StartRun(ctx context.Context, runID string) (Run, error) {
	if err := s.indexRun(ctx, runID); err != nil {
		return Run{}, err
	}
	now := s.now()
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE floss_runs SET state = 'running', started_at = COALESCE(started_at, ?), updated_at = ?
		WHERE id = ? AND state IN ('queued', 'running', 'paused_no_credits')`), s.tv(now), s.tv(now), runID)
	if err != nil {
		return Run{}, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.RunByID(ctx, runID); err != nil {
			return Run{}, err
		}
		return Run{}, fmt.Errorf("%w: run %s is finished", ErrInvalid, runID)
	}
	return s.RunByID(ctx, runID)
}

// PauseRun marks a running run paused_no_credits; its cursor is kept for the resume. PauseRun and FailRun
// merge the run's results into the re-verify index first.
func (s *Store) PauseRun(ctx context.Context, runID string) error {
	return s.setRunState(ctx, runID, RunPausedNoCredits, nil, false)
}

// FailRun marks an unfinished run failed with an error (never containing credentials or addresses).
func (s *Store) FailRun(ctx context.Context, runID string, e RunError) error {
	return s.setRunState(ctx, runID, RunFailed, &e, true)
}

// Heartbeat touches a running run so the scheduler does not consider it stale.
func (s *Store) Heartbeat(ctx context.Context, runID string) error {
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE floss_runs SET updated_at = ? WHERE id = ?`), s.tv(s.now()), runID)
	return err
}

func (s *Store) setRunState(ctx context.Context, runID, state string, e *RunError, finish bool) error {
	if err := s.indexRun(ctx, runID); err != nil {
		return err
	}
	now := s.now()
	sets := `state = ?, updated_at = ?`
	args := []any{state, s.tv(now)}
	if e != nil {
		sets += `, error_code = ?, error_message = ?`
		args = append(args, e.Code, e.Message)
	}
	if finish {
		sets += `, finished_at = ?`
		args = append(args, s.tv(now))
	}
	args = append(args, runID)
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE floss_runs SET `+sets+` WHERE id = ? AND state IN ('queued', 'running', 'paused_no_credits')`), args...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.RunByID(ctx, runID); err != nil {
			return err
		}
		return fmt.Errorf("%w: run %s is finished", ErrInvalid, runID)
	}
	return nil
}

// FinishRun merges the run's results into the re-verify index, then marks the run done, clears its cursor
// and sets the connection's last_synced_at to the run's start time (contacts changed during the run are
// read again next time), in one transaction.
func (s *Store) FinishRun(ctx context.Context, runID string) (Run, error) {
	if err := s.indexRun(ctx, runID); err != nil {
		return Run{}, err
	}
	err := s.withTx(ctx, func(tx *sqlx.Tx) error {
		var cnxID, state string
		var started dbTime
		if err := tx.QueryRowxContext(ctx, s.q(`SELECT connection_id, state, started_at FROM floss_runs WHERE id = ?`+s.forUpdate()), runID).
			Scan(&cnxID, &state, &started); err != nil {
			return notFound(err)
		}
		if state != RunRunning && state != RunQueued {
			return fmt.Errorf("%w: run %s is %s", ErrInvalid, runID, state)
		}
		now := s.now()
		if !started.Valid {
			started = dbTime{T: now, Valid: true}
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE floss_runs SET state = 'done', cursor = '', at_end = ?, started_at = ?,
			finished_at = ?, updated_at = ? WHERE id = ?`), true, s.tv(started.T), s.tv(now), s.tv(now), runID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.q(`UPDATE connections SET last_synced_at = ?, updated_at = ? WHERE id = ?`),
			s.tv(started.T), s.tv(now), cnxID)
		return err
	})
	if err != nil {
		return Run{}, err
	}
	return s.RunByID(ctx, runID)
}

// NewResult is one contact's verdict to commit.
type NewResult struct {
	ContactID  string
	ListID     string
	Email      string
	Status     string
	Reason     string
	Passed     bool
	Suggestion string
	Action     string // write-back done ("" or "none" = nothing written)
	Reused     bool   // from the re-verify window: no credit
	Evidence   json.RawMessage
	VerifiedAt time.Time
}

// PageCommit is everything one page of a run changes, committed in ONE transaction by CommitPage.
type PageCommit struct {
	RunID string
	// FromCursor is the run cursor the page was read at; the commit applies only if the run is still
	// running at that cursor, so a replayed page after a crash changes nothing (ErrStaleCursor).
	FromCursor string
	NextCursor string // the platform cursor after this page; "" = this was the last page (sets AtEnd)
	// KeepCursor commits results without moving the cursor (a partial page before pausing for credits);
	// NextCursor is then ignored. Re-committing the same results later inserts nothing and charges nothing.
	KeepCursor bool
	Seen       int64  // contacts read on this page (pass 0 with KeepCursor; count them when the page completes)
	Skipped    int64  // of them not cleaned (already unsubscribed on the platform)
	Total      *int64 // contacts in the whole read, when the platform tells it
	Results    []NewResult
}

// PageOutcome is what CommitPage did.
type PageOutcome struct {
	Inserted int   // results newly stored (replays of stored ones are not)
	Charged  int64 // credits debited: newly inserted, not reused
	Run      Run   // the run after the commit
	// Seqs has the stored seq of each of PageCommit.Results, 0 for one not inserted (already stored).
	Seqs []int64
}

// CommitPage stores a page in one transaction: inserts the results (a result already stored for the same
// run, list, contact and address at this cursor is left alone, see below), adds the newly inserted ones
// to the run counters, debits one credit per newly inserted non-reused result (ledger ref
// "run:<id>:page:<n>"), and moves the run cursor. If the balance cannot cover the debit nothing is stored
// and ErrInsufficientCredits is returned: the caller pauses the run (check Balance first and commit only
// what it covers, with KeepCursor).
//
// Uniqueness is per run, list, contact AND lower-cased address, without an index (migration 0003): a page
// replayed after a crash is refused by the cursor check (ErrStaleCursor), a page committed again at the
// same cursor (after a KeepCursor commit) finds the results it already stored as the run's results above
// floss_runs.cursor_seq, and a contact twice in one page is stored once (its first occurrence). A
// contact read again on a LATER page (offset pagination shifting) is the caller's to recognise: the floss
// worker finds this run's result for it and does not commit it again (jobs.flow). Only when a contact's
// address changes on the platform while the run reads it twice does the new address get a result of its
// own, counted and charged: it was verified, and its verdict is what the re-verify window must find.
func (s *Store) CommitPage(ctx context.Context, pc PageCommit) (PageOutcome, error) {
	var out PageOutcome
	err := s.withTx(ctx, func(tx *sqlx.Tx) error {
		var cnxID, accountID, state, cursor, byReasonRaw string
		var atEnd bool
		var pages, cursorSeq int64
		err := tx.QueryRowxContext(ctx, s.q(`SELECT r.connection_id, c.account_id, r.state, r.cursor, r.at_end, r.pages, r.by_reason, r.cursor_seq
			FROM floss_runs r JOIN connections c ON c.id = r.connection_id WHERE r.id = ?`+s.forUpdate()), pc.RunID).
			Scan(&cnxID, &accountID, &state, &cursor, &atEnd, &pages, &byReasonRaw, &cursorSeq)
		if err != nil {
			return notFound(err)
		}
		if state != RunRunning || cursor != pc.FromCursor || atEnd {
			return ErrStaleCursor
		}
		byReason := map[string]int64{}
		if err := json.Unmarshal([]byte(byReasonRaw), &byReason); err != nil {
			return fmt.Errorf("store: run by_reason: %w", err)
		}
		var d RunCounts
		var maxSeq int64
		out.Seqs, maxSeq, err = s.insertResults(ctx, tx, pc.RunID, cnxID, cursorSeq, pc.Results)
		if err != nil {
			return err
		}
		for i, seq := range out.Seqs {
			if seq == 0 {
				continue
			}
			r := pc.Results[i]
			out.Inserted++
			if r.Reused {
				d.Reused++
			} else {
				d.Verified++
			}
			if r.Passed {
				d.Passed++
			} else {
				d.Failed++
			}
			if r.Action != "" && r.Action != "none" {
				d.WrittenBack++
			}
			byReason[r.Reason]++
		}
		out.Charged = d.Verified
		if out.Charged > 0 {
			ref := fmt.Sprintf("run:%s:page:%d", pc.RunID, pages+1)
			if _, err := s.applyDelta(ctx, tx, accountID, -out.Charged, ref, "floss", pc.RunID); err != nil {
				return err
			}
		}
		br, err := json.Marshal(byReason)
		if err != nil {
			return err
		}
		newCursor, newAtEnd, newCursorSeq := cursor, false, cursorSeq
		if !pc.KeepCursor {
			newCursor, newAtEnd, newCursorSeq = pc.NextCursor, pc.NextCursor == "", max(cursorSeq, maxSeq)
		}
		sets := `cursor = ?, at_end = ?, cursor_seq = ?, pages = pages + 1, seen = seen + ?, skipped = skipped + ?, reused = reused + ?,
			verified = verified + ?, passed = passed + ?, failed = failed + ?, written_back = written_back + ?, by_reason = ?,
			credits_used = credits_used + ?, updated_at = ?`
		args := []any{newCursor, newAtEnd, newCursorSeq, pc.Seen, pc.Skipped, d.Reused, d.Verified, d.Passed, d.Failed, d.WrittenBack,
			string(br), out.Charged, s.tv(s.now())}
		if pc.Total != nil {
			sets += `, total = ?`
			args = append(args, *pc.Total)
		}
		args = append(args, pc.RunID)
		// RETURNING: the run as committed, without a read after the transaction.
		out.Run, err = scanRun(tx.QueryRowxContext(ctx, s.q(`UPDATE floss_runs SET `+sets+` WHERE id = ? RETURNING `+runCols), args...))
		return err
	})
	if err != nil {
		return PageOutcome{}, err
	}
	return out, nil
}

// resultsChunk is the rows of one multi-row result INSERT: 15 parameters a row, 7,500 a statement, far
// below SQLite's variable limit (32,766) and PostgreSQL's (65,535).
const resultsChunk = 500

// resultKey is what makes a stored result unique within a run (with the run and connection, which are
// the same for a whole page).
type resultKey struct{ list, contact, emailLower string }

// insertResults inserts a page's results with multi-row INSERTs, in page order, leaving out those already
// stored at this cursor (the run's results above cursorSeq) and a contact's second occurrence in the page.
// It returns each result's new seq (0 = left out) and the highest seq of the run's results at this cursor.
func (s *Store) insertResults(ctx context.Context, tx *sqlx.Tx, runID, cnxID string, cursorSeq int64, rs []NewResult) ([]int64, int64, error) {
	seqs := make([]int64, len(rs))
	maxSeq := int64(0)
	have := map[resultKey]bool{}
	rows, err := tx.QueryContext(ctx, s.q(`SELECT list_id, contact_id, email_lower, seq FROM results WHERE run_id = ? AND seq > ?`), runID, cursorSeq)
	if err != nil {
		return nil, 0, fmt.Errorf("store: results at the cursor: %w", err)
	}
	for rows.Next() {
		var k resultKey
		var seq int64
		if err := rows.Scan(&k.list, &k.contact, &k.emailLower, &seq); err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("store: results at the cursor: %w", err)
		}
		have[k], maxSeq = true, max(maxSeq, seq)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, 0, fmt.Errorf("store: results at the cursor: %w", err)
	}
	var b strings.Builder
	todo := make([]int, 0, len(rs))
	lowers := make([]string, len(rs))
	for i, r := range rs {
		lowers[i] = strings.ToLower(r.Email)
		k := resultKey{r.ListID, r.ContactID, lowers[i]}
		if !have[k] {
			have[k] = true
			todo = append(todo, i)
		}
	}
	for start := 0; start < len(todo); start += resultsChunk {
		chunk := todo[start:min(start+resultsChunk, len(todo))]
		b.Reset()
		b.WriteString(`INSERT INTO results (run_id, connection_id, contact_id, list_id, email, email_lower, addr_hash, status, reason,
			passed, suggestion, action, reused, evidence, verified_at) VALUES `)
		args := make([]any, 0, 15*len(chunk))
		at := make(map[resultKey]int, len(chunk))
		for n, i := range chunk {
			r := rs[i]
			if n > 0 {
				b.WriteString(", ")
			}
			b.WriteString(`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
			ev := r.Evidence
			if len(ev) == 0 {
				ev = json.RawMessage(`{}`)
			}
			vat := r.VerifiedAt
			if vat.IsZero() {
				vat = s.now()
			}
			args = append(args, runID, cnxID, r.ContactID, r.ListID, r.Email, lowers[i], addrHash(lowers[i]), r.Status,
				r.Reason, r.Passed, r.Suggestion, r.Action, r.Reused, string(ev), s.tv(vat))
			at[resultKey{r.ListID, r.ContactID, lowers[i]}] = i
		}
		b.WriteString(` RETURNING list_id, contact_id, email_lower, seq`)
		rows, err := tx.QueryContext(ctx, s.q(b.String()), args...)
		if err != nil {
			return nil, 0, fmt.Errorf("store: insert results: %w", err)
		}
		for rows.Next() {
			var k resultKey
			var seq int64
			if err := rows.Scan(&k.list, &k.contact, &k.emailLower, &seq); err != nil {
				rows.Close()
				return nil, 0, fmt.Errorf("store: insert results: %w", err)
			}
			if i, ok := at[k]; ok {
				seqs[i], maxSeq = seq, max(maxSeq, seq)
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, 0, fmt.Errorf("store: insert results: %w", err)
		}
	}
	return seqs, maxSeq, nil
}

// ResultFilter narrows ListResults; empty fields match everything.
type ResultFilter struct {
	Status string
	Reason string
	RunID  string
}

const resultCols = `run_id, connection_id, contact_id, list_id, email, status, reason, passed, suggestion, action, reused, evidence, verified_at`

func scanResult(sc interface{ Scan(...any) error }, extra ...any) (Result, error) {
	var r Result
	var ev string
	var vat dbTime
	if err := sc.Scan(append([]any{&r.RunID, &r.ConnectionID, &r.ContactID, &r.ListID, &r.Email, &r.Status, &r.Reason,
		&r.Passed, &r.Suggestion, &r.Action, &r.Reused, &ev, &vat}, extra...)...); err != nil {
		return Result{}, notFound(err)
	}
	r.Evidence, r.VerifiedAt = json.RawMessage(ev), vat.T
	return r, nil
}

// ListResults lists the results of the account's connection, newest first.
func (s *Store) ListResults(ctx context.Context, accountID, cnxID string, f ResultFilter, p Page) ([]Result, string, error) {
	after, err := p.after()
	if err != nil {
		return nil, "", err
	}
	if err := s.ownsConnection(ctx, s.db, accountID, cnxID); err != nil {
		return nil, "", err
	}
	q := `SELECT ` + resultCols + `, seq FROM results WHERE connection_id = ?`
	args := []any{cnxID}
	if after > 0 {
		q += ` AND seq < ?`
		args = append(args, after)
	}
	for col, v := range map[string]string{"status": f.Status, "reason": f.Reason, "run_id": f.RunID} {
		if v != "" {
			q += ` AND ` + col + ` = ?`
			args = append(args, v)
		}
	}
	q += ` ORDER BY seq DESC LIMIT ?`
	args = append(args, p.limit()+1)
	rows, err := s.db.QueryContext(ctx, s.q(q), args...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []Result
	var seqs []int64
	for rows.Next() {
		var seq int64
		r, err := scanResult(rows, &seq)
		if err != nil {
			return nil, "", err
		}
		out, seqs = append(out, r), append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	out, next := trimPage(out, seqs, p.limit())
	return out, next, nil
}

// SaveSnapshot stores a contact as the platform returned it, before the pipeline deletes it there.
func (s *Store) SaveSnapshot(ctx context.Context, sn Snapshot) (Snapshot, error) {
	if sn.ConnectionID == "" || sn.ContactID == "" || len(sn.Data) == 0 {
		return Snapshot{}, fmt.Errorf("%w: snapshot needs connection, contact and data", ErrInvalid)
	}
	sn.ID, sn.CreatedAt = NewID(PrefixSnapshot), s.now()
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO contact_snapshots (id, connection_id, run_id, contact_id, list_id, data, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`), sn.ID, sn.ConnectionID, sn.RunID, sn.ContactID, sn.ListID, string(sn.Data), s.tv(sn.CreatedAt))
	if err != nil {
		return Snapshot{}, fmt.Errorf("store: save snapshot: %w", err)
	}
	return sn, nil
}

// ListSnapshots lists a connection's snapshots, newest first (restore tooling).
func (s *Store) ListSnapshots(ctx context.Context, cnxID string, p Page) ([]Snapshot, string, error) {
	after, err := p.after()
	if err != nil {
		return nil, "", err
	}
	q := `SELECT id, connection_id, run_id, contact_id, list_id, data, created_at, seq FROM contact_snapshots WHERE connection_id = ?`
	args := []any{cnxID}
	if after > 0 {
		q += ` AND seq < ?`
		args = append(args, after)
	}
	q += ` ORDER BY seq DESC LIMIT ?`
	args = append(args, p.limit()+1)
	rows, err := s.db.QueryContext(ctx, s.q(q), args...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []Snapshot
	var seqs []int64
	for rows.Next() {
		var sn Snapshot
		var data string
		var created dbTime
		var seq int64
		if err := rows.Scan(&sn.ID, &sn.ConnectionID, &sn.RunID, &sn.ContactID, &sn.ListID, &data, &created, &seq); err != nil {
			return nil, "", err
		}
		sn.Data, sn.CreatedAt = json.RawMessage(data), created.T
		out, seqs = append(out, sn), append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	out, next := trimPage(out, seqs, p.limit())
	return out, next, nil
}
