-- autofloss schema v1 (SQLite). Times are TEXT in fixed-width RFC 3339 UTC with microseconds
-- ("2026-06-02T09:00:00.000000Z"), so they sort and compare as strings. JSON is TEXT.

CREATE TABLE accounts (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE api_keys (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    hash       TEXT NOT NULL UNIQUE,
    prefix     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX api_keys_account ON api_keys(account_id);

CREATE TABLE credit_balances (
    account_id TEXT PRIMARY KEY REFERENCES accounts(id),
    balance    INTEGER NOT NULL CHECK (balance >= 0),
    updated_at TEXT NOT NULL
);

CREATE TABLE credit_ledger (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id    TEXT NOT NULL REFERENCES accounts(id),
    delta         INTEGER NOT NULL,
    balance_after INTEGER NOT NULL,
    ref           TEXT NOT NULL UNIQUE,
    reason        TEXT NOT NULL,
    run_id        TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX credit_ledger_account ON credit_ledger(account_id, seq);

CREATE TABLE connections (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    id                  TEXT NOT NULL UNIQUE,
    account_id          TEXT NOT NULL REFERENCES accounts(id),
    type                TEXT NOT NULL,
    name                TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('active', 'disconnected')),
    disconnected_reason TEXT NOT NULL DEFAULT '',
    auto_floss_enabled  BOOLEAN NOT NULL,
    verify_first        BOOLEAN NOT NULL,
    settings            TEXT NOT NULL,
    credentials         BLOB NOT NULL,
    credentials_key_id  TEXT NOT NULL,
    webhook_secret      TEXT NOT NULL,
    last_synced_at      TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);
CREATE INDEX connections_account_type ON connections(account_id, type, seq);
CREATE INDEX connections_due ON connections(status, last_synced_at);

CREATE TABLE keyword_rules (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    connection_id TEXT NOT NULL REFERENCES connections(id),
    list          TEXT NOT NULL CHECK (list IN ('whitelist', 'blacklist')),
    keyword       TEXT NOT NULL,
    keyword_lower TEXT NOT NULL,
    match_on      TEXT NOT NULL CHECK (match_on IN ('local_part', 'domain', 'email')),
    created_at    TEXT NOT NULL,
    UNIQUE (connection_id, list, keyword_lower, match_on)
);

CREATE TABLE floss_runs (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    connection_id  TEXT NOT NULL REFERENCES connections(id),
    kind           TEXT NOT NULL CHECK (kind IN ('full', 'incremental')),
    state          TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'paused_no_credits')),
    task_id        TEXT NOT NULL DEFAULT '',
    cursor         TEXT NOT NULL DEFAULT '',
    at_end         BOOLEAN NOT NULL DEFAULT FALSE,
    since          TEXT,
    pages          INTEGER NOT NULL DEFAULT 0,
    seen           INTEGER NOT NULL DEFAULT 0,
    skipped        INTEGER NOT NULL DEFAULT 0,
    reused         INTEGER NOT NULL DEFAULT 0,
    verified       INTEGER NOT NULL DEFAULT 0,
    passed         INTEGER NOT NULL DEFAULT 0,
    failed         INTEGER NOT NULL DEFAULT 0,
    written_back   INTEGER NOT NULL DEFAULT 0,
    by_reason      TEXT NOT NULL DEFAULT '{}',
    credits_used   INTEGER NOT NULL DEFAULT 0,
    total          INTEGER,
    error_code     TEXT NOT NULL DEFAULT '',
    error_message  TEXT NOT NULL DEFAULT '',
    created_at     TEXT NOT NULL,
    started_at     TEXT,
    finished_at    TEXT,
    updated_at     TEXT NOT NULL
);
CREATE INDEX floss_runs_connection ON floss_runs(connection_id, seq);
-- Never two unfinished runs of one connection.
CREATE UNIQUE INDEX floss_runs_one_open ON floss_runs(connection_id)
    WHERE state IN ('queued', 'running', 'paused_no_credits');

CREATE TABLE results (
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
    verified_at   TEXT NOT NULL,
    UNIQUE (run_id, list_id, contact_id)
);
CREATE INDEX results_connection ON results(connection_id, seq);
CREATE INDEX results_reverify ON results(connection_id, email_lower, verified_at);

CREATE TABLE contact_snapshots (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    connection_id TEXT NOT NULL REFERENCES connections(id),
    run_id        TEXT NOT NULL DEFAULT '',
    contact_id    TEXT NOT NULL,
    list_id       TEXT NOT NULL DEFAULT '',
    data          TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX contact_snapshots_connection ON contact_snapshots(connection_id, seq);

CREATE TABLE idempotency_keys (
    account_id   TEXT NOT NULL REFERENCES accounts(id),
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('in_flight', 'done')),
    status       INTEGER NOT NULL DEFAULT 0,
    body         BLOB,
    ttl_seconds  INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    PRIMARY KEY (account_id, key)
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys(expires_at);

CREATE TABLE connection_leases (
    connection_id TEXT PRIMARY KEY REFERENCES connections(id),
    holder        TEXT NOT NULL,
    expires_at    TEXT NOT NULL
);
