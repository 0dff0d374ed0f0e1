package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"
)

// ContactResult is the verdict for one contact verified outside a floss run (verify_first: a webhook
// announced a new subscriber). Added for the pipeline (jobs: floss:verify_contact).
type ContactResult struct {
	ConnectionID string
	// Ref makes the commit idempotent: a ref already committed changes nothing (a retried task). It is
	// also the ledger ref of the debit.
	Ref    string
	TaskID string
	Result NewResult
}

// CommitContactResult stores one contact's result in a dedicated mini-run, in ONE transaction: a run of
// kind incremental that is born done (seen 1, its counters, by_reason, credits used), the result, and the
// credit debit (one credit unless the result is Reused). It never touches the connection's last_synced_at
// (a mini-run read one contact, not the changes since the last sync) and never conflicts with the one
// unfinished run a connection may have. A Ref already in the ledger or the runs returns the earlier run with
// charged=false. ErrInsufficientCredits when a verified result cannot be paid for: nothing is stored.
func (s *Store) CommitContactResult(ctx context.Context, cr ContactResult) (run Run, charged bool, err error) {
	if cr.ConnectionID == "" || cr.Ref == "" || cr.Result.ContactID == "" {
		return Run{}, false, fmt.Errorf("%w: contact result needs connection, ref and contact", ErrInvalid)
	}
	runID := NewID(PrefixRun)
	err = s.withTx(ctx, func(tx *sqlx.Tx) error {
		var accountID string
		if err := tx.GetContext(ctx, &accountID, s.q(`SELECT account_id FROM connections WHERE id = ?`), cr.ConnectionID); err != nil {
			return notFound(err)
		}
		// The ref is stored as the run's task_id prefix-free marker: "ref:<ref>".
		var existing string
		err := tx.GetContext(ctx, &existing, s.q(`SELECT id FROM floss_runs WHERE connection_id = ? AND task_id = ?`),
			cr.ConnectionID, "ref:"+cr.Ref)
		if err == nil {
			runID = existing
			return nil
		}
		if err = notFound(err); err != ErrNotFound {
			return err
		}
		r := cr.Result
		now := s.now()
		vat := r.VerifiedAt
		if vat.IsZero() {
			vat = now
		}
		var verified, reused, passed, failed, written int64
		if r.Reused {
			reused = 1
		} else {
			verified = 1
		}
		if r.Passed {
			passed = 1
		} else {
			failed = 1
		}
		if r.Action != "" && r.Action != "none" {
			written = 1
		}
		br, _ := json.Marshal(map[string]int64{r.Reason: 1})
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO floss_runs (id, connection_id, kind, state, task_id, cursor, at_end, since,
			pages, seen, skipped, reused, verified, passed, failed, written_back, by_reason, credits_used, created_at, started_at,
			finished_at, updated_at) VALUES (?, ?, 'incremental', 'done', ?, '', ?, NULL, 1, 1, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			runID, cr.ConnectionID, "ref:"+cr.Ref, true, reused, verified, passed, failed, written, string(br), verified,
			s.tv(now), s.tv(now), s.tv(now), s.tv(now)); err != nil {
			return fmt.Errorf("store: contact run: %w", err)
		}
		ev := r.Evidence
		if len(ev) == 0 {
			ev = json.RawMessage(`{}`)
		}
		lower := strings.ToLower(r.Email)
		var seq int64
		if err := tx.QueryRowxContext(ctx, s.q(`INSERT INTO results (run_id, connection_id, contact_id, list_id, email, email_lower,
			addr_hash, status, reason, passed, suggestion, action, reused, evidence, verified_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`),
			runID, cr.ConnectionID, r.ContactID, r.ListID, r.Email, lower, addrHash(lower), r.Status, r.Reason, r.Passed,
			r.Suggestion, r.Action, r.Reused, string(ev), s.tv(vat)).Scan(&seq); err != nil {
			return fmt.Errorf("store: contact result: %w", err)
		}
		// The mini-run is born done: its one result goes into the re-verify index now (resultindex.go).
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO result_index (connection_id, addr_hash, verified_at, seq) VALUES (?, ?, ?, ?)
			ON CONFLICT (connection_id, addr_hash) DO UPDATE SET verified_at = excluded.verified_at, seq = excluded.seq
			WHERE excluded.verified_at > result_index.verified_at
			   OR (excluded.verified_at = result_index.verified_at AND excluded.seq > result_index.seq)`),
			cr.ConnectionID, addrHash(lower), s.tv(vat), seq); err != nil {
			return fmt.Errorf("store: contact result index: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE floss_runs SET indexed_seq = ?, cursor_seq = ? WHERE id = ?`), seq, seq, runID); err != nil {
			return fmt.Errorf("store: contact run: %w", err)
		}
		if verified > 0 {
			if _, err := s.applyDelta(ctx, tx, accountID, -1, "contact:"+cr.Ref, "floss", runID); err != nil {
				return err
			}
			charged = true
		}
		return nil
	})
	if err != nil {
		return Run{}, false, err
	}
	run, err = s.RunByID(ctx, runID)
	return run, charged, err
}
