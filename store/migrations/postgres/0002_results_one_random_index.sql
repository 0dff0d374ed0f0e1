-- schema v2: results get ONE index in random (address) order instead of two (see the SQLite file of the
-- same name for the reasoning). UNIQUE (run_id, list_id, contact_id) and results_reverify give way to
--
--   UNIQUE results_unique (connection_id, email_lower, run_id, list_id, contact_id)
--
-- whose prefix serves the re-verify lookup (connection, address). A result is unique per run, list,
-- contact AND address: a contact whose address changed on the platform while a run read it twice gets a
-- second result for the new address (verified, counted and charged); the same contact with the same
-- address read again inserts and charges nothing, as before. results_run (run_id, seq) keeps the results
-- API's run filter indexed.

ALTER TABLE results DROP CONSTRAINT results_run_id_list_id_contact_id_key;
DROP INDEX results_reverify;
CREATE UNIQUE INDEX results_unique ON results (connection_id, email_lower, run_id, list_id, contact_id);
CREATE INDEX results_run ON results (run_id, seq);
