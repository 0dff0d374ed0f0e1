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
-- The hash is computed here with md5(); the store computes the same value in Go (addrHash).

ALTER TABLE results ADD COLUMN addr_hash BIGINT NOT NULL DEFAULT 0;
UPDATE results SET addr_hash = ('x' || substr(md5(email_lower), 1, 16))::bit(64)::bigint;
DROP INDEX results_unique;

ALTER TABLE floss_runs ADD COLUMN indexed_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE floss_runs ADD COLUMN cursor_seq BIGINT NOT NULL DEFAULT 0;

CREATE TABLE result_index (
    connection_id TEXT NOT NULL,
    addr_hash     BIGINT NOT NULL,
    verified_at   TIMESTAMPTZ NOT NULL,
    seq           BIGINT NOT NULL,
    PRIMARY KEY (connection_id, addr_hash)
);

INSERT INTO result_index (connection_id, addr_hash, verified_at, seq)
SELECT DISTINCT ON (connection_id, addr_hash) connection_id, addr_hash, verified_at, seq FROM results
ORDER BY connection_id, addr_hash, verified_at DESC, seq DESC
ON CONFLICT (connection_id, addr_hash) DO UPDATE SET verified_at = excluded.verified_at, seq = excluded.seq
WHERE excluded.verified_at > result_index.verified_at
   OR (excluded.verified_at = result_index.verified_at AND excluded.seq > result_index.seq);

UPDATE floss_runs SET indexed_seq = COALESCE((SELECT MAX(seq) FROM results WHERE results.run_id = floss_runs.id), 0);
UPDATE floss_runs SET cursor_seq = indexed_seq;
