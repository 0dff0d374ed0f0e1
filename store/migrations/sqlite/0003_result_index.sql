-- schema v3: the results table gets no index in address order at all; the re-verify lookup reads a
-- separate, compact index that is filled in address order when a run stops (store/resultindex.go).
--
-- v2's results_unique (connection_id, email_lower, …) was the last random-order index of the table: every
-- stored result dirtied one of its pages (BenchmarkCommitPage: 29 µs per result at 100,000 results and
-- growing with the table, against 8 µs flat without it). v3:
--
--   - results.addr_hash: the first 8 bytes of MD5(email_lower) as a signed 64-bit integer (addrHash).
--   - result_index (connection_id, addr_hash) → the newest result's verified_at and seq: one row per
--     connection and address, no address in clear (only results and contact_snapshots hold addresses).
--     A run's results are merged into it in one statement sorted by addr_hash when the run starts,
--     pauses, fails or finishes (floss_runs.indexed_seq: the run's results up to this seq are merged), so
--     the merge touches each index page about once instead of once per result.
--   - floss_runs.cursor_seq: the run's highest result seq when its cursor last moved. A page committed
--     again at the same cursor (after a partial commit, PageCommit.KeepCursor) finds its stored results
--     as the run's results above cursor_seq, so uniqueness per run, list, contact and address no longer
--     needs an index.
--
-- autofloss_addr_hash is registered by the store on every SQLite connection (store/sqlite.go).

ALTER TABLE results ADD COLUMN addr_hash INTEGER NOT NULL DEFAULT 0;
UPDATE results SET addr_hash = autofloss_addr_hash(email_lower);
DROP INDEX results_unique;

ALTER TABLE floss_runs ADD COLUMN indexed_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE floss_runs ADD COLUMN cursor_seq INTEGER NOT NULL DEFAULT 0;

CREATE TABLE result_index (
    connection_id TEXT NOT NULL,
    addr_hash     INTEGER NOT NULL,
    verified_at   TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    PRIMARY KEY (connection_id, addr_hash)
) WITHOUT ROWID;

INSERT INTO result_index (connection_id, addr_hash, verified_at, seq)
SELECT connection_id, addr_hash, verified_at, seq FROM results WHERE true
ORDER BY connection_id, addr_hash, verified_at, seq
ON CONFLICT (connection_id, addr_hash) DO UPDATE SET verified_at = excluded.verified_at, seq = excluded.seq
WHERE excluded.verified_at > result_index.verified_at
   OR (excluded.verified_at = result_index.verified_at AND excluded.seq > result_index.seq);

UPDATE floss_runs SET indexed_seq = COALESCE((SELECT MAX(seq) FROM results WHERE results.run_id = floss_runs.id), 0);
UPDATE floss_runs SET cursor_seq = indexed_seq;
