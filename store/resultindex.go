package store

import (
	"context"
	"crypto/md5"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// The re-verify index (migration 0003): result_index holds, per connection and address, the newest
// result's verified_at and seq, keyed by addr_hash (no address in clear). It is NOT written by CommitPage:
// a page of results in random address order would dirty one index page per result, the store's biggest
// cost. A run's results are merged into it instead, sorted by address hash, when the run starts (a resumed
// run's earlier pages), pauses, fails or finishes (floss_runs.indexed_seq records how far). So:
//
//   - RecentResults sees every result of runs that are not running, and of a running run the results
//     committed before its last start. The floss worker keeps the results of the pages it committed
//     itself in memory (jobs/runindex.go), so nothing a run did is verified twice by that run.
//   - CommitContactResult (one contact, outside a run) updates the index in its own transaction.
//   - Two addresses of a connection with the same 64-bit hash (a chance of about 3 in a million for a
//     connection of 10 million addresses) share one index row: RecentResults checks the address of the
//     row it finds, so the only effect is that the older of the two is verified again.

// addrHash is the index key of a lower-cased address: the first 8 bytes of its MD5, big-endian, as a
// signed integer — what PostgreSQL computes as ('x' || substr(md5(a), 1, 16))::bit(64)::bigint and SQLite
// as autofloss_addr_hash(a) (registered on every connection, see sqlite.go).
func addrHash(lower string) int64 {
	sum := md5.Sum([]byte(lower))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// AddrHash is addrHash for the floss worker's in-memory index of the results it committed (jobs.flow):
// the same key as the store's, so both agree on what "the same address" is.
func AddrHash(lower string) int64 { return addrHash(lower) }

// indexRun merges the run's results not merged yet (seq > indexed_seq) into result_index in ONE sorted
// statement, and moves indexed_seq in the same transaction: idempotent, and safe to repeat after a crash.
// Sorting all of them at once is what makes the merge touch each index page once (in chunks of 100,000
// results a run of 1,000,000 took 5.2 s, every chunk rewriting most of the index). On SQLite the sort
// spills to temporary files: the merge runs on a connection of its own with temp_store = FILE, so a big
// run's sort (~70 bytes a result) does not land in the worker's memory.
func (s *Store) indexRun(ctx context.Context, runID string) error {
	merge := func(ctx context.Context, tx *sqlx.Tx) error {
		var from int64
		if err := tx.GetContext(ctx, &from, s.q(`SELECT indexed_seq FROM floss_runs WHERE id = ?`+s.forUpdate()), runID); err != nil {
			return notFound(err)
		}
		var upTo sql.NullInt64
		if err := tx.GetContext(ctx, &upTo, s.q(`SELECT MAX(seq) FROM results WHERE run_id = ? AND seq > ?`), runID, from); err != nil {
			return err
		}
		if !upTo.Valid {
			return nil
		}
		// Sorted by the index key, so consecutive upserts land on neighbouring index pages. PostgreSQL
		// refuses to upsert one row twice in a statement: DISTINCT ON keeps each address's newest.
		sel := `SELECT connection_id, addr_hash, verified_at, seq FROM results WHERE run_id = ? AND seq > ? AND seq <= ?
			ORDER BY connection_id, addr_hash, verified_at, seq`
		if s.dialect == Postgres {
			sel = `SELECT DISTINCT ON (connection_id, addr_hash) connection_id, addr_hash, verified_at, seq FROM results
				WHERE run_id = ? AND seq > ? AND seq <= ? ORDER BY connection_id, addr_hash, verified_at DESC, seq DESC`
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO result_index (connection_id, addr_hash, verified_at, seq) `+sel+`
			ON CONFLICT (connection_id, addr_hash) DO UPDATE SET verified_at = excluded.verified_at, seq = excluded.seq
			WHERE excluded.verified_at > result_index.verified_at
			   OR (excluded.verified_at = result_index.verified_at AND excluded.seq > result_index.seq)`),
			runID, from, upTo.Int64); err != nil {
			return fmt.Errorf("store: index run: %w", err)
		}
		_, err := tx.ExecContext(ctx, s.q(`UPDATE floss_runs SET indexed_seq = ? WHERE id = ?`), upTo.Int64, runID)
		return err
	}
	if s.dialect != SQLite {
		return s.withTx(ctx, func(tx *sqlx.Tx) error { return merge(ctx, tx) })
	}
	conn, err := s.db.Connx(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA temp_store = FILE`); err != nil {
		return err
	}
	// Back to the pool's setting (sqlitePragmas) whatever happens; if that fails the connection is
	// discarded instead of returned to the pool.
	defer func() {
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA temp_store = MEMORY`); err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	return s.withTxOn(ctx, conn, func(tx *sqlx.Tx) error { return merge(ctx, tx) })
}

// RecentResults returns, for each address (case-insensitive), the connection's newest result verified at
// or after since, among the results in the re-verify index (see above: a running run's own results
// committed since its last start are not there yet). Keys of the map are lower-cased addresses.
func (s *Store) RecentResults(ctx context.Context, cnxID string, emails []string, since time.Time) (map[string]Result, error) {
	asked := make(map[string]bool, len(emails))
	var seqs []int64
	const chunk = 400
	for start := 0; start < len(emails); start += chunk {
		end := min(start+chunk, len(emails))
		hashes := make([]any, 0, end-start)
		for _, e := range emails[start:end] {
			lower := strings.ToLower(e)
			asked[lower] = true
			hashes = append(hashes, addrHash(lower))
		}
		q, args, err := sqlx.In(`SELECT seq FROM result_index WHERE connection_id = ? AND addr_hash IN (?) AND verified_at >= ?`,
			cnxID, hashes, s.tv(since))
		if err != nil {
			return nil, err
		}
		var found []int64
		if err := s.db.SelectContext(ctx, &found, s.q(q), args...); err != nil {
			return nil, err
		}
		seqs = append(seqs, found...)
	}
	rows, err := s.ResultsBySeq(ctx, cnxID, seqs)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Result, len(rows))
	for _, r := range rows {
		// A hash collision finds another address's row: only the addresses asked for are answers.
		if lower := strings.ToLower(r.Email); asked[lower] {
			out[lower] = r
		}
	}
	return out, nil
}

// ResultsBySeq returns the connection's stored results with the given seqs (the floss worker's in-memory
// index of a run's committed results points at them), keyed by seq; seqs not found are absent.
func (s *Store) ResultsBySeq(ctx context.Context, cnxID string, seqs []int64) (map[int64]Result, error) {
	out := make(map[int64]Result, len(seqs))
	const chunk = 400
	for start := 0; start < len(seqs); start += chunk {
		end := min(start+chunk, len(seqs))
		q, args, err := sqlx.In(`SELECT `+resultCols+`, seq FROM results WHERE connection_id = ? AND seq IN (?)`, cnxID, seqs[start:end])
		if err != nil {
			return nil, err
		}
		rows, err := s.db.QueryContext(ctx, s.q(q), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var seq int64
			r, err := scanResult(rows, &seq)
			if err != nil {
				rows.Close()
				return nil, err
			}
			out[seq] = r
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
