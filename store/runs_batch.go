package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"
)

// OpenedRun is one connection's unfinished run as OpenOrCreateRuns found or opened it.
type OpenedRun struct {
	Run     Run
	Created bool // opened by this call (false: an unfinished run was already there)
}

// openRunsChunk bounds the rows of one multi-row INSERT / IN list: 8 parameters a row stays far below
// SQLite's variable limit (32,766) and PostgreSQL's (65,535).
const openRunsChunk = 500

// OpenOrCreateRuns is OpenOrCreateRun for a whole batch of connections (the scheduler's page of due
// connections) in ONE transaction: a multi-row INSERT … ON CONFLICT DO NOTHING on the unique index of
// unfinished runs, then one SELECT of the unfinished runs of those connections. The result maps a
// connection id to its unfinished run; a connection that does not exist (deleted meanwhile) is absent.
// Concurrent callers (scheduler replicas, the API) still end up with at most one unfinished run per
// connection: the index decides, and Created is true only for the caller whose row was inserted. When a
// connection appears more than once in nrs, its first NewRun is used.
func (s *Store) OpenOrCreateRuns(ctx context.Context, nrs []NewRun) (map[string]OpenedRun, error) {
	out := make(map[string]OpenedRun, len(nrs))
	if len(nrs) == 0 {
		return out, nil
	}
	seen := make(map[string]bool, len(nrs))
	uniq := make([]NewRun, 0, len(nrs))
	for _, nr := range nrs {
		if nr.Kind != RunFull && nr.Kind != RunIncremental {
			return nil, fmt.Errorf("%w: run kind %q", ErrInvalid, nr.Kind)
		}
		if !seen[nr.ConnectionID] {
			seen[nr.ConnectionID] = true
			uniq = append(uniq, nr)
		}
	}
	// One order for every caller: concurrent batches then take the unique index's row locks in the same
	// order (no deadlock between PostgreSQL replicas whose pages overlap).
	slices.SortFunc(uniq, func(a, b NewRun) int { return strings.Compare(a.ConnectionID, b.ConnectionID) })
	now := s.tv(s.now())
	err := s.withTx(ctx, func(tx *sqlx.Tx) error {
		ids := make(map[string]string, len(uniq)) // connection -> the run id this call offers
		for start := 0; start < len(uniq); start += openRunsChunk {
			chunk := uniq[start:min(start+openRunsChunk, len(uniq))]
			cnx := make([]string, len(chunk))
			for i, nr := range chunk {
				cnx[i] = nr.ConnectionID
			}
			// Only existing connections get a run (floss_runs references connections; one bad id must not
			// fail the batch).
			q, args, err := sqlx.In(`SELECT id FROM connections WHERE id IN (?)`, cnx)
			if err != nil {
				return err
			}
			var exist []string
			if err := tx.SelectContext(ctx, &exist, s.q(q), args...); err != nil {
				return err
			}
			ok := make(map[string]bool, len(exist))
			for _, id := range exist {
				ok[id] = true
			}
			var b strings.Builder
			b.WriteString(`INSERT INTO floss_runs (id, connection_id, kind, state, task_id, since, created_at, updated_at) VALUES `)
			args = args[:0]
			n := 0
			for _, nr := range chunk {
				if !ok[nr.ConnectionID] {
					continue
				}
				if n > 0 {
					b.WriteString(", ")
				}
				b.WriteString(`(?, ?, ?, 'queued', ?, ?, ?, ?)`)
				id := NewID(PrefixRun)
				ids[nr.ConnectionID] = id
				args = append(args, id, nr.ConnectionID, nr.Kind, nr.TaskID, s.tvp(nr.Since), now, now)
				n++
			}
			if n == 0 {
				continue
			}
			b.WriteString(` ON CONFLICT (connection_id) WHERE state IN ('queued', 'running', 'paused_no_credits') DO NOTHING`)
			if _, err := tx.ExecContext(ctx, s.q(b.String()), args...); err != nil {
				return fmt.Errorf("store: create runs: %w", err)
			}
		}
		for start := 0; start < len(uniq); start += openRunsChunk {
			chunk := uniq[start:min(start+openRunsChunk, len(uniq))]
			cnx := make([]string, 0, len(chunk))
			for _, nr := range chunk {
				if _, ok := ids[nr.ConnectionID]; ok {
					cnx = append(cnx, nr.ConnectionID)
				}
			}
			if len(cnx) == 0 {
				continue
			}
			q, args, err := sqlx.In(`SELECT `+runCols+` FROM floss_runs
				WHERE connection_id IN (?) AND state IN ('queued', 'running', 'paused_no_credits')`, cnx)
			if err != nil {
				return err
			}
			rows, err := tx.QueryContext(ctx, s.q(q), args...)
			if err != nil {
				return err
			}
			for rows.Next() {
				r, err := scanRun(rows)
				if err != nil {
					rows.Close()
					return err
				}
				out[r.ConnectionID] = OpenedRun{Run: r, Created: r.ID == ids[r.ConnectionID]}
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
