//! PostgreSQL schema for the shared-store backend (issue 17).
//!
//! PostgreSQL databases start at the SQLite schema's shape of version 6 in one
//! step, because no PostgreSQL database predates it; later versions are appended
//! to both lists with the same numbers. The column types are the ones both
//! engines can hand the same values through [`super::db::Value`]: BIGINT (also
//! for flags, 0/1), DOUBLE PRECISION and TEXT. Timestamps stay ISO-8601 TEXT like
//! SQLite's; claim leases are UTC text written from the database's clock
//! (`NOW_UTC` in [`super::db`]), so agents' clocks never decide a lease.

/// Schema migrations for PostgreSQL: `(version, sql)`, each taking the database
/// from the previous entry's version to `version` (recorded in `schema_version`).
/// Append only.
pub const PG_MIGRATIONS: &[(i64, &str)] = &[(6, PG_SCHEMA_V6)];

/// Version 6: everything SQLite's versions 1–6 built, and `instr` (SQLite's
/// substring search, which the store's shared SQL uses).
const PG_SCHEMA_V6: &str = "
CREATE OR REPLACE FUNCTION instr(haystack TEXT, needle TEXT) RETURNS INTEGER
    LANGUAGE sql IMMUTABLE AS 'SELECT strpos(haystack, needle)';
CREATE TABLE IF NOT EXISTS calls (
    id BIGSERIAL PRIMARY KEY,
    script TEXT NOT NULL,
    direction TEXT NOT NULL DEFAULT 'text',
    peer TEXT,
    vars_json TEXT NOT NULL DEFAULT '{}',
    started_at TEXT NOT NULL,
    ended_at TEXT,
    outcome TEXT,
    callback_at TEXT,
    steps_json TEXT NOT NULL DEFAULT '[]',
    mode TEXT NOT NULL DEFAULT 'normal',
    recording TEXT,
    voice_message TEXT,
    sip_call_id TEXT,
    agent TEXT
);
CREATE TABLE IF NOT EXISTS turns (
    id BIGSERIAL PRIMARY KEY,
    call_id BIGINT NOT NULL REFERENCES calls(id),
    seq BIGINT NOT NULL,
    at TEXT NOT NULL,
    speaker TEXT NOT NULL CHECK (speaker IN ('agent', 'callee', 'operator')),
    text TEXT NOT NULL,
    asr_confidence DOUBLE PRECISION,
    step TEXT,
    intent TEXT,
    interruptible BIGINT NOT NULL DEFAULT 1,
    interrupted BIGINT NOT NULL DEFAULT 0,
    t_speech_end BIGINT,
    t_endpoint BIGINT,
    t_asr_done BIGINT,
    t_reply_chosen BIGINT,
    t_first_reply_rtp BIGINT
);
CREATE INDEX IF NOT EXISTS turns_call ON turns(call_id, seq);
CREATE TABLE IF NOT EXISTS fields (
    call_id BIGINT NOT NULL REFERENCES calls(id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (call_id, key)
);
CREATE TABLE IF NOT EXISTS callbacks (
    id BIGSERIAL PRIMARY KEY,
    call_id BIGINT NOT NULL REFERENCES calls(id),
    due_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'cancelled', 'failed')),
    created_at TEXT NOT NULL,
    target TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    dialled_call_id BIGINT
);
CREATE INDEX IF NOT EXISTS callbacks_due ON callbacks(status, due_at);
CREATE TABLE IF NOT EXISTS campaigns (
    id BIGSERIAL PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS campaign_rows (
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id),
    line BIGINT NOT NULL,
    target TEXT NOT NULL,
    vars_json TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'skipped')),
    attempts BIGINT NOT NULL DEFAULT 0,
    outcome TEXT,
    last_call_id BIGINT,
    next_at TEXT,
    claimed_by TEXT,
    lease_until TEXT,
    PRIMARY KEY (campaign_id, line)
);
CREATE TABLE IF NOT EXISTS do_not_call (
    target TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS transfers (
    id BIGSERIAL PRIMARY KEY,
    call_id BIGINT NOT NULL REFERENCES calls(id),
    at TEXT NOT NULL,
    reason TEXT NOT NULL,
    method TEXT NOT NULL,
    target TEXT NOT NULL,
    result TEXT NOT NULL,
    code BIGINT,
    ring_ms BIGINT,
    answer_ms BIGINT,
    summary TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS transfers_call ON transfers(call_id);
CREATE TABLE IF NOT EXISTS person_callbacks (
    id BIGSERIAL PRIMARY KEY,
    call_id BIGINT NOT NULL REFERENCES calls(id),
    due_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'cancelled')),
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS person_callbacks_status ON person_callbacks(status, due_at);
CREATE TABLE IF NOT EXISTS agents (
    name TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    console TEXT
);
";
