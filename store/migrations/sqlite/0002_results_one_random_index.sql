-- schema v2: results get ONE index in random (address) order instead of two.
--
-- v1 had UNIQUE (run_id, list_id, contact_id) and results_reverify (connection_id, email_lower,
-- verified_at). Contact ids and addresses are both random in sort order, so every stored result dirtied a
-- page of each index; at a run's size those pages are all different, and each was written to the WAL at
-- commit and again at checkpoint: the floss worker's biggest cost. v2 has one unique index whose prefix
-- serves the re-verify lookup (RecentResults: connection and address) and which still makes a result unique
-- per run, list and contact:
--
--   UNIQUE results_unique (connection_id, email_lower, run_id, list_id, contact_id)
--
-- A result is unique per run, list, contact AND address. The difference only shows when a contact's address
-- changes on the platform while a run reads it twice (a page read again after a partial commit or a crash,
-- or offset pagination returning the contact again): the new address gets its own result, counted and
-- charged, because it was verified; the old address's result stays. Reading the same contact with the same
-- address again (the replays CommitPage exists for) inserts and charges nothing, as before.
--
-- results_run (run_id, seq) keeps the results API's run filter indexed; its inserts are sequential (one run
-- writes at the end of its own range), so it costs a few pages per commit, not one per result.
--
-- SQLite cannot drop a table constraint: the table is rebuilt (copy with the same seq values, keep the
-- AUTOINCREMENT high-water mark so a seq is never reused; pagination cursors are seqs). Nothing references
-- results, so the drop needs no foreign-key dance.

CREATE TABLE results_v2 (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id        TEXT NOT NULL REFERENCES floss_runs(id),
    connection_id TEXT NOT NULL REFERENCES connections(id),
    contact_id    TEXT NOT NULL,
    list_id       TEXT NOT NULL DEFAULT '',
    email         TEXT NOT NULL,
    email_lower   TEXT NOT NULL,
    status        TEXT NOT NULL,
    reason        TEXT NOT NULL,
    passed        BOOLEAN NOT NULL,
    suggestion    TEXT NOT NULL DEFAULT '',
    action        TEXT NOT NULL DEFAULT '',
    reused        BOOLEAN NOT NULL DEFAULT FALSE,
    evidence      TEXT NOT NULL DEFAULT '{}',
    verified_at   TEXT NOT NULL
);

INSERT INTO results_v2 (seq, run_id, connection_id, contact_id, list_id, email, email_lower, status, reason, passed,
    suggestion, action, reused, evidence, verified_at)
SELECT seq, run_id, connection_id, contact_id, list_id, email, email_lower, status, reason, passed,
    suggestion, action, reused, evidence, verified_at
FROM results ORDER BY seq;

-- The old table's AUTOINCREMENT high-water mark (>= every copied seq) becomes the new table's.
DELETE FROM sqlite_sequence WHERE name = 'results_v2';
UPDATE sqlite_sequence SET name = 'results_v2' WHERE name = 'results';

DROP TABLE results;
ALTER TABLE results_v2 RENAME TO results;

CREATE UNIQUE INDEX results_unique ON results(connection_id, email_lower, run_id, list_id, contact_id);
CREATE INDEX results_connection ON results(connection_id, seq);
CREATE INDEX results_run ON results(run_id, seq);
