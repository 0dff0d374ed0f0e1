package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/mattn/go-sqlite3"
)

// sqlitePragmas are set on every new SQLite connection, beyond what go-sqlite3's DSN options cover. They
// were tuned for CommitPage when a page of 1,000 results dirtied ~1,000 pages of a random-order index
// (migration 0002; since 0003 the results table has none), and measured with BenchmarkCommitPage:
//
//   - temp_store = MEMORY: a multi-row INSERT inside a transaction keeps a statement journal (the original
//     of every page the statement changes, to undo just that statement on an error). In a temporary file it
//     nearly doubled the bytes a commit wrote; in memory it is a few MB for the statement's duration.
//   - wal_autocheckpoint = 20000 pages (80 MB): checkpoints are walCheckpointer's job; this is its safety
//     net (with the default 1,000 pages every commit checkpointed inline, fsyncs included).
//   - journal_size_limit = 128 MB: the WAL file is truncated back after a checkpoint reset, so a burst (or a
//     long reader holding checkpoints back) does not leave a big file behind.
//
// cache_size stays at SQLite's default (2 MB a connection) on purpose: 8 MB holds a whole commit's dirty
// pages (no spill to the WAL mid-transaction) and took ~20% off CommitPage's CPU at 300,000 results, but
// raised the benchmark's peak RSS by ~40 MB (88 vs 46 MB; likely glibc's per-thread malloc arenas, one per
// OS thread cgo calls land on, each keeping freed cache pages), too much for the worker's 200 MB goal.
var sqlitePragmas = []string{
	"PRAGMA temp_store = MEMORY",
	"PRAGMA wal_autocheckpoint = 20000",
	"PRAGMA journal_size_limit = 134217728",
}

// sqliteDriver is the store's own driver value (no global registration, no init): go-sqlite3 with a
// ConnectHook that sets sqlitePragmas and registers autofloss_addr_hash (addrHash, for migration 0003).
var sqliteDriver = &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
	for _, p := range sqlitePragmas {
		if _, err := c.Exec(p, nil); err != nil {
			return fmt.Errorf("store: %s: %w", p, err)
		}
	}
	if err := c.RegisterFunc("autofloss_addr_hash", addrHash, true); err != nil {
		return fmt.Errorf("store: register autofloss_addr_hash: %w", err)
	}
	return nil
}}

// sqliteConnector opens connections to one SQLite DSN through sqliteDriver (for sql.OpenDB).
type sqliteConnector struct{ dsn string }

func (c sqliteConnector) Connect(context.Context) (driver.Conn, error) {
	return sqliteDriver.Open(c.dsn)
}
func (c sqliteConnector) Driver() driver.Driver { return sqliteDriver }

// walCheckpointer runs SQLite's WAL checkpoints on a goroutine of its own instead of in the committing
// call. A checkpoint copies the WAL's pages into the database file and fsyncs both; done inline (SQLite's
// wal_autocheckpoint) that fsync sat on CommitPage's path — ~40 µs of wall time per stored result on this
// disk (BenchmarkCommitPage: 130-190 → 75-85 µs per result at 50,000 results on a loaded box, CPU no
// higher). Commits (withTx) kick it; it waits checkpointDelay so several commits share one checkpoint (an index page
// changed by several is copied once), then runs a PASSIVE checkpoint, which never blocks readers or the
// writer. wal_autocheckpoint stays as the safety net: if the goroutine falls behind (or never catches up
// with a writer that never pauses), the writer checkpoints inline at wal_autocheckpoint (20,000 pages), so the WAL
// stays bounded. Checkpoint errors are not reported: the next one (or the safety net) redoes the work.
type walCheckpointer struct {
	db   *sql.DB
	kick chan struct{}
	stop context.CancelFunc
	done chan struct{}
}

const checkpointDelay = 100 * time.Millisecond

func startCheckpointer(db *sql.DB) *walCheckpointer {
	ctx, stop := context.WithCancel(context.Background())
	c := &walCheckpointer{db: db, kick: make(chan struct{}, 1), stop: stop, done: make(chan struct{})}
	go c.loop(ctx)
	return c
}

func (c *walCheckpointer) loop(ctx context.Context) {
	defer close(c.done)
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		}
		t.Reset(checkpointDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		_, _ = c.db.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)
	}
}

// Kick asks for a checkpoint soon (after a commit); it never blocks.
func (c *walCheckpointer) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Close stops the goroutine and waits for it (before the pool closes).
func (c *walCheckpointer) Close() {
	c.stop()
	<-c.done
}
