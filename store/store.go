// Package store is autofloss's persistence: sqlx repositories over SQLite (default, one file under ./var)
// or PostgreSQL (several machines), embedded versioned migrations for both, and sealed credentials.
//
// Conventions every method follows:
//   - Methods the API calls take the caller's account id and treat another account's rows as missing
//     (ErrNotFound), so a guessed id reveals nothing. Methods named …ByID are unscoped and meant for the
//     worker, the scheduler and the admin CLI.
//   - Times are UTC with microsecond precision on both drivers (PostgreSQL's resolution); what a method
//     returns is exactly what a later read returns. SQLite stores them as fixed-width RFC 3339 text.
//   - Public ids are prefixed random strings (acc_, key_, cnx_, kwr_, run_, snp_ + 24 hex chars). Lists
//     are paginated by an opaque cursor (see Page).
//   - The per-connection run lease lives here (AcquireLease), not in Redis, so it holds across Redis
//     restarts and needs no extra moving part.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/jmoiron/sqlx"

	"github.com/autofloss/autofloss/config"
	"github.com/autofloss/autofloss/store/seal"
)

// Errors callers branch on (errors.Is).
var (
	ErrNotFound            = errors.New("store: not found")
	ErrInsufficientCredits = errors.New("store: insufficient credits")
	ErrInvalidCursor       = errors.New("store: invalid pagination cursor")
	ErrStaleCursor         = errors.New("store: run is not at the page's cursor (already committed or not running)")
	ErrNoKeyRing           = errors.New("store: no key ring configured for credentials")
	ErrInvalid             = errors.New("store: invalid argument")
)

// Dialect is the SQL flavour behind a Store.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Options are a Store's dependencies besides the database URL.
type Options struct {
	Keys *seal.KeyRing    // seals connection credentials; required for connection writes and reads of secrets
	Now  func() time.Time // clock; nil = time.Now
}

// Store is the repository over one database. It is safe for concurrent use.
type Store struct {
	db      *sqlx.DB
	dialect Dialect
	keys    *seal.KeyRing
	clock   func() time.Time
	ckpt    *walCheckpointer // SQLite: checkpoints off the commit path; nil on PostgreSQL
}

// Open connects to the database named by url (`sqlite:<path>` or `postgres://…`), creating the SQLite
// file's directory if needed. It does not migrate; call Migrate.
func Open(ctx context.Context, dbURL string, opts Options) (*Store, error) {
	driver, target, err := config.ParseDatabaseURL(dbURL)
	if err != nil {
		return nil, fmt.Errorf("store: database url: %w", err)
	}
	s := &Store{keys: opts.Keys, clock: opts.Now}
	if s.clock == nil {
		s.clock = time.Now
	}
	switch driver {
	case config.DriverSQLite:
		s.dialect = SQLite
		path, query, _ := strings.Cut(target, "?")
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("store: create database directory: %w", err)
			}
		}
		q, err := url.ParseQuery(query)
		if err != nil {
			return nil, fmt.Errorf("store: sqlite options: %w", err)
		}
		for k, v := range map[string]string{
			"_journal_mode": "WAL", "_busy_timeout": "10000", "_foreign_keys": "on",
			"_txlock": "immediate", "_synchronous": "NORMAL",
		} {
			if q.Get(k) == "" {
				q.Set(k, v)
			}
		}
		db := sqlx.NewDb(sql.OpenDB(sqliteConnector{dsn: "file:" + path + "?" + q.Encode()}), "sqlite3")
		db.SetMaxOpenConns(8)
		db.SetMaxIdleConns(8)
		s.db = db
		s.ckpt = startCheckpointer(db.DB)
	case config.DriverPostgres:
		s.dialect = Postgres
		db, err := sqlx.Open("pgx", target)
		if err != nil {
			return nil, fmt.Errorf("store: open postgres: %w", err)
		}
		db.SetMaxOpenConns(20)
		db.SetMaxIdleConns(10)
		db.SetConnMaxIdleTime(5 * time.Minute)
		s.db = db
	}
	if err := s.db.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: connect %s: %w", s.dialect, err)
	}
	return s, nil
}

// Close releases the connection pool.
func (s *Store) Close() error {
	if s.ckpt != nil {
		s.ckpt.Close()
	}
	return s.db.Close()
}

// Ping checks the database answers (for /readyz).
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Dialect tells which database is behind the store.
func (s *Store) Dialect() Dialect { return s.dialect }

// DB exposes the pool for tests and diagnostics; application code uses the methods.
func (s *Store) DB() *sqlx.DB { return s.db }

// now is the store clock in the stored precision.
func (s *Store) now() time.Time { return norm(s.clock()) }

// norm is the one time normalisation: UTC, microseconds.
func norm(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

const timeLayout = "2006-01-02T15:04:05.000000Z"

// tv turns a time into the driver's parameter.
func (s *Store) tv(t time.Time) any {
	t = norm(t)
	if s.dialect == SQLite {
		return t.Format(timeLayout)
	}
	return t
}

// tvp is tv for optional times (nil or zero = NULL).
func (s *Store) tvp(t *time.Time) any {
	if t == nil || t.IsZero() {
		return nil
	}
	return s.tv(*t)
}

// q rewrites ? placeholders for the driver.
func (s *Store) q(query string) string { return s.db.Rebind(query) }

// dbTime scans a time from either driver's representation.
type dbTime struct {
	T     time.Time
	Valid bool
}

func (d *dbTime) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*d = dbTime{}
		return nil
	case time.Time:
		*d = dbTime{T: norm(x), Valid: true}
		return nil
	case string:
		return d.parse(x)
	case []byte:
		return d.parse(string(x))
	}
	return fmt.Errorf("store: cannot scan %T as time", v)
}

func (d *dbTime) parse(s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("store: bad stored time %q: %w", s, err)
	}
	*d = dbTime{T: norm(t), Valid: true}
	return nil
}

func (d dbTime) ptr() *time.Time {
	if !d.Valid {
		return nil
	}
	t := d.T
	return &t
}

// withTx runs fn in a transaction, committing when it returns nil.
func (s *Store) withTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	return s.withTxOn(ctx, s.db, fn)
}

// withTxOn is withTx on a given pool or connection (sqlx.DB or sqlx.Conn).
func (s *Store) withTxOn(ctx context.Context, db interface {
	BeginTxx(context.Context, *sql.TxOptions) (*sqlx.Tx, error)
}, fn func(tx *sqlx.Tx) error) error {
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	if s.ckpt != nil {
		s.ckpt.Kick()
	}
	return nil
}

// forUpdate is the row-lock suffix (SQLite's immediate transactions already hold the write lock).
func (s *Store) forUpdate() string {
	if s.dialect == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}
