package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

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
	if s.dialect == Postgres {
		return s.openOrCreateRunsPG(ctx, uniq, now, out)
	}
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

// openOrCreateRunsPG is OpenOrCreateRuns on PostgreSQL in two statements whatever the batch size (the
// generic path needs three per 500 connections): the batch goes in as arrays, one INSERT … SELECT FROM
// unnest(…) JOIN connections (connections deleted meanwhile drop out) in the batch's connection order, then
// one SELECT of the unfinished runs WHERE connection_id = ANY(…) on the unique index of unfinished runs.
// uniq is sorted by connection id (see OpenOrCreateRuns).
func (s *Store) openOrCreateRunsPG(ctx context.Context, uniq []NewRun, now any, out map[string]OpenedRun) (map[string]OpenedRun, error) {
	n := len(uniq)
	ids, cnx, kinds, tasks := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	since := make([]*time.Time, n)
	offered := make(map[string]string, n) // connection -> the run id this call offers
	for i, nr := range uniq {
		ids[i], cnx[i], kinds[i], tasks[i] = NewID(PrefixRun), nr.ConnectionID, string(nr.Kind), nr.TaskID
		if nr.Since != nil && !nr.Since.IsZero() {
			t := norm(*nr.Since)
			since[i] = &t
		}
		offered[nr.ConnectionID] = ids[i]
	}
	err := s.withTx(ctx, func(tx *sqlx.Tx) error {
		// ORDER BY v.ord: rows go in (and take the unique index's locks) in connection order.
		if _, err := tx.ExecContext(ctx, `INSERT INTO floss_runs (id, connection_id, kind, state, task_id, since, created_at, updated_at)
			SELECT v.id, v.cnx, v.kind, 'queued', v.task, v.since, $6, $6
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) WITH ORDINALITY AS v(id, cnx, kind, task, since, ord)
			JOIN connections c ON c.id = v.cnx
			ORDER BY v.ord
			ON CONFLICT (connection_id) WHERE state IN ('queued', 'running', 'paused_no_credits') DO NOTHING`,
			ids, cnx, kinds, tasks, since, now); err != nil {
			return fmt.Errorf("store: create runs: %w", err)
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+runCols+` FROM floss_runs
			WHERE connection_id = ANY($1::text[]) AND state IN ('queued', 'running', 'paused_no_credits')`, cnx)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRun(rows)
			if err != nil {
				return err
			}
			out[r.ConnectionID] = OpenedRun{Run: r, Created: r.ID == offered[r.ConnectionID]}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DueBatch is DueConnections for the scheduler's walk over all connections: the same connections in the
// same order (the conditions are DueConnections', and a test holds the two together), but each call looks
// at a bounded window of connections — the next Page.Limit connections by seq after the cursor — and
// returns the due ones among them (possibly none) and the cursor past the window ("" once the walk is
// done). DueConnections asks for the first Limit due connections after the cursor instead, which a
// planner may answer by reading every connection after the cursor and sorting the due ones: PostgreSQL
// does (its estimate of the due rows is far too low, whatever the statistics), which made a tick over
// 100,000 due connections quadratic (a page of 2,000 read the 50,000 connections after the middle cursor
// in 260 ms). Here the window is an index range on the primary key, so each call reads at most Limit
// connections whatever plan is chosen.
func (s *Store) DueBatch(ctx context.Context, q DueQuery) ([]Connection, string, error) {
	q, after, limit, now, err := s.dueDefaults(q)
	if err != nil {
		return nil, "", err
	}
	var window struct {
		N    int           `db:"n"`
		Last sql.NullInt64 `db:"last"`
	}
	if err := s.db.GetContext(ctx, &window, s.q(`SELECT COUNT(*) AS n, MAX(seq) AS last
		FROM (SELECT seq FROM connections WHERE seq > ? ORDER BY seq LIMIT ?) w`), after, limit); err != nil {
		return nil, "", err
	}
	if window.N == 0 || !window.Last.Valid {
		return nil, "", nil
	}
	cols := "c." + strings.Join(strings.Split(connCols, ", "), ", c.")
	// +c.status / c.status || '': as in DueConnections, keep the planner off connections_due (status,
	// last_synced_at), which would read every active connection for a window of Limit.
	status := "c.status || ''"
	if s.dialect == SQLite {
		status = "+c.status"
	}
	// The balance is a scalar subquery, not DueConnections' JOIN: hiding status leaves PostgreSQL
	// expecting a handful of rows, and it joined them to a materialised scan of credit_balances compared
	// row by row (2,000 connections x 1,000 accounts: 375 ms a window); the subquery is one primary-key
	// probe per connection whatever the estimate (13 ms a window).
	query := `SELECT ` + cols + `, c.seq FROM connections c
		WHERE c.seq > ? AND c.seq <= ? AND ` + status + ` = 'active'
		AND (SELECT b.balance FROM credit_balances b WHERE b.account_id = c.account_id) > 0 ` + duePredicate + `
		ORDER BY c.seq`
	args := []any{after, window.Last.Int64, true, s.tv(now.Add(-q.FlossInterval)), true, s.tv(now.Add(-q.VerifyFirstInterval)),
		s.tv(now.Add(-q.StaleAfter))}
	cs, _, err := s.queryConnections(ctx, query, args, limit) // at most limit rows: no page cut
	if err != nil {
		return nil, "", err
	}
	next := ""
	if window.N == limit {
		next = encodeCursor(window.Last.Int64)
	}
	return cs, next, nil
}
