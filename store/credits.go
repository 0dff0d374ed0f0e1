package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"
)

// Balance is the account's credits left.
func (s *Store) Balance(ctx context.Context, accountID string) (int64, error) {
	var b int64
	err := s.db.GetContext(ctx, &b, s.q(`SELECT balance FROM credit_balances WHERE account_id = ?`), accountID)
	return b, notFound(err)
}

// AddCredits adds amount (> 0) to the balance. ref makes it idempotent: a ref already in the ledger
// changes nothing and returns the current balance. An empty ref gets a unique one.
func (s *Store) AddCredits(ctx context.Context, accountID string, amount int64, ref, reason string) (int64, error) {
	if amount <= 0 {
		return 0, fmt.Errorf("%w: credit amount must be positive, got %d", ErrInvalid, amount)
	}
	if ref == "" {
		ref = NewID("grant_")
	}
	if reason == "" {
		reason = "grant"
	}
	var balance int64
	err := s.withTx(ctx, func(tx *sqlx.Tx) error {
		var n int
		if err := tx.GetContext(ctx, &n, s.q(`SELECT COUNT(*) FROM credit_ledger WHERE ref = ?`), ref); err != nil {
			return err
		}
		if n == 0 {
			var err error
			balance, err = s.applyDelta(ctx, tx, accountID, amount, ref, reason, "")
			return err
		}
		return tx.GetContext(ctx, &balance, s.q(`SELECT balance FROM credit_balances WHERE account_id = ?`), accountID)
	})
	if err != nil && isUniqueViolation(err) {
		// A concurrent call with the same ref won the race: it was applied once; report the balance.
		return s.Balance(ctx, accountID)
	}
	return balance, notFound(err)
}

// applyDelta changes the balance (never below zero) and writes the ledger entry, inside tx.
func (s *Store) applyDelta(ctx context.Context, tx *sqlx.Tx, accountID string, delta int64, ref, reason, runID string) (int64, error) {
	now := s.now()
	// One statement: the guarded update returns the new balance (no row: unknown account or not enough).
	var balance int64
	err := tx.QueryRowxContext(ctx, s.q(`UPDATE credit_balances SET balance = balance + ?, updated_at = ?
		WHERE account_id = ? AND balance + ? >= 0 RETURNING balance`), delta, s.tv(now), accountID, delta).Scan(&balance)
	if errors.Is(err, sql.ErrNoRows) {
		var exists int
		if err := tx.GetContext(ctx, &exists, s.q(`SELECT COUNT(*) FROM credit_balances WHERE account_id = ?`), accountID); err != nil {
			return 0, err
		}
		if exists == 0 {
			return 0, ErrNotFound
		}
		return 0, ErrInsufficientCredits
	}
	if err != nil {
		return 0, fmt.Errorf("store: update balance: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO credit_ledger (account_id, delta, balance_after, ref, reason, run_id, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`), accountID, delta, balance, ref, reason, nullString(runID), s.tv(now)); err != nil {
		return 0, fmt.Errorf("store: ledger: %w", err)
	}
	return balance, nil
}

// Ledger lists an account's credit history, newest first.
func (s *Store) Ledger(ctx context.Context, accountID string, p Page) ([]LedgerEntry, string, error) {
	after, err := p.after()
	if err != nil {
		return nil, "", err
	}
	q := `SELECT seq, delta, balance_after, ref, reason, COALESCE(run_id, ''), created_at FROM credit_ledger WHERE account_id = ?`
	args := []any{accountID}
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
	var out []LedgerEntry
	var seqs []int64
	for rows.Next() {
		var e LedgerEntry
		var seq int64
		var created dbTime
		if err := rows.Scan(&seq, &e.Delta, &e.BalanceAfter, &e.Ref, &e.Reason, &e.RunID, &created); err != nil {
			return nil, "", err
		}
		e.CreatedAt = created.T
		out = append(out, e)
		seqs = append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	out, next := trimPage(out, seqs, p.limit())
	return out, next, nil
}

// trimPage cuts a limit+1 read to limit and returns the next cursor when there was more.
func trimPage[T any](items []T, seqs []int64, limit int) ([]T, string) {
	if len(items) <= limit {
		return items, ""
	}
	return items[:limit], encodeCursor(seqs[limit-1])
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// isUniqueViolation recognises a unique-constraint error from either driver.
func isUniqueViolation(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "SQLSTATE 23505")
}
