package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"math"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"
)

// Migrations are plain SQL files named NNNN_name.sql, one directory per dialect, applied in order. The
// runner is deliberately small: the whole migration happens in ONE transaction that first takes the
// database's write lock (SQLite's immediate transaction; a PostgreSQL advisory lock), so several processes
// starting together never race, and a failed migration leaves nothing half-applied (DDL is transactional in
// both databases).
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

type migration struct {
	version int64
	name    string
	sql     string
}

func (s *Store) migrations() ([]migration, error) {
	dir := "migrations/" + string(s.dialect)
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("store: bad migration file name %q", e.Name())
		}
		b, err := fs.ReadFile(migrationFS, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// Migrate applies every pending migration and returns how many it applied.
func (s *Store) Migrate(ctx context.Context) (int, error) { return s.migrateTo(ctx, math.MaxInt64) }

// migrateTo applies the pending migrations up to version upTo (tests of a migration start below it).
func (s *Store) migrateTo(ctx context.Context, upTo int64) (int, error) {
	ms, err := s.migrations()
	if err != nil {
		return 0, err
	}
	applied := 0
	err = s.withTx(ctx, func(tx *sqlx.Tx) error {
		if s.dialect == Postgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(727361001)`); err != nil {
				return fmt.Errorf("store: migration lock: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
			return fmt.Errorf("store: create schema_migrations: %w", err)
		}
		var have []int64
		if err := tx.SelectContext(ctx, &have, `SELECT version FROM schema_migrations`); err != nil {
			return fmt.Errorf("store: read schema_migrations: %w", err)
		}
		done := map[int64]bool{}
		for _, v := range have {
			done[v] = true
		}
		for _, m := range ms {
			if done[m.version] || m.version > upTo {
				continue
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("store: migration %s: %w", m.name, err)
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
				m.version, m.name, s.now().Format(timeLayout)); err != nil {
				return fmt.Errorf("store: record migration %s: %w", m.name, err)
			}
			applied++
		}
		return nil
	})
	return applied, err
}

// SchemaVersion is the highest applied migration (0 before the first).
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	var v *int64
	if err := s.db.GetContext(ctx, &v, `SELECT MAX(version) FROM schema_migrations`); err != nil {
		return 0, err
	}
	if v == nil {
		return 0, nil
	}
	return *v, nil
}
