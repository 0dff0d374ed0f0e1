package store

import (
	"context"
	"database/sql/driver"
	"fmt"

	"github.com/mattn/go-sqlite3"
)

// sqlitePragmas are set on every new SQLite connection, beyond what go-sqlite3's DSN options cover. They
// are tuned for CommitPage, whose page of 1,000 results dirties ~1,000 pages of the results_unique index
// (random order; see migration 0002), and measured with BenchmarkCommitPage:
//
//   - temp_store = MEMORY: a multi-row INSERT inside a transaction keeps a statement journal (the original
//     of every page the statement changes, to undo just that statement on an error). In a temporary file it
//     nearly doubled the bytes a commit wrote; in memory it is a few MB for the statement's duration.
//   - wal_autocheckpoint = 10000 pages (40 MB): with the default 1,000 pages every commit checkpointed (and
//     fsynced); now a checkpoint comes every ~10 pages of results and copies an index page changed by
//     several of them once.
//   - journal_size_limit = 64 MB: the WAL file is truncated back after a checkpoint reset, so a burst (or a
//     long reader holding a checkpoint back) does not leave a big file behind.
//   - cache_size = 8 MB per connection (default 2 MB): holds a commit's dirty pages, which SQLite would
//     otherwise spill to the WAL in the middle of the transaction and write again at commit. Larger caches
//     did not pay (and each pooled connection has its own).
var sqlitePragmas = []string{
	"PRAGMA temp_store = MEMORY",
	"PRAGMA wal_autocheckpoint = 10000",
	"PRAGMA journal_size_limit = 67108864",
	"PRAGMA cache_size = -8192",
}

// sqliteDriver is the store's own driver value (no global registration, no init): go-sqlite3 with a
// ConnectHook that sets sqlitePragmas.
var sqliteDriver = &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
	for _, p := range sqlitePragmas {
		if _, err := c.Exec(p, nil); err != nil {
			return fmt.Errorf("store: %s: %w", p, err)
		}
	}
	return nil
}}

// sqliteConnector opens connections to one SQLite DSN through sqliteDriver (for sql.OpenDB).
type sqliteConnector struct{ dsn string }

func (c sqliteConnector) Connect(context.Context) (driver.Conn, error) {
	return sqliteDriver.Open(c.dsn)
}
func (c sqliteConnector) Driver() driver.Driver { return sqliteDriver }
