//! PostgreSQL schema and work-claim SQL for the shared-store backend (issue 17).
//!
//! The PostgreSQL schema starts at the SQLite schema's current shape (version 5)
//! in one step, because no PostgreSQL database predates it; later versions are
//! appended to both lists. Timestamps stay ISO-8601 TEXT like SQLite's, so both
//! backends hand the same strings to the callers; only the claim leases are
//! `timestamptz`, compared with the server's clock so agents' clocks never matter.
//! Not wired to a driver yet: this module is the schema and the claim queries the
//! PostgreSQL backend will run, tested through psql in `tests/store_postgres.rs`.

/// Schema migrations for PostgreSQL; entry `i` takes the database from version `i`
/// to `i + 1`, recorded in `schema_version`. Append only.
pub const PG_MIGRATIONS: &[&str] = &[PG_SCHEMA_V1];

/// Version 1: everything SQLite's versions 1–5 built, plus the claim columns
/// (`claimed_by`, `lease_until`) on callbacks and campaign rows and the agent that
/// carries each call (`agent`), so a survivor can close a dead agent's calls.
const PG_SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
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
    interruptible BOOLEAN NOT NULL DEFAULT TRUE,
    interrupted BOOLEAN NOT NULL DEFAULT FALSE,
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
    dialled_call_id BIGINT,
    claimed_by TEXT,
    lease_until TIMESTAMPTZ
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
    lease_until TIMESTAMPTZ,
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
";

/// Claims the next pending campaign row nobody holds a live lease on, for agent
/// `$1` for `$2` seconds. `SKIP LOCKED` lets two agents claim at once without
/// waiting on each other or taking the same row; an expired lease (its agent
/// died) makes the row claimable again. Returns `campaign_id, line, target`.
pub const CLAIM_CAMPAIGN_ROW: &str = "
UPDATE campaign_rows SET claimed_by = $1, lease_until = now() + $2 * interval '1 second'
WHERE (campaign_id, line) = (
    SELECT campaign_id, line FROM campaign_rows
    WHERE status = 'pending' AND (lease_until IS NULL OR lease_until < now())
    ORDER BY campaign_id, line
    LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING campaign_id, line, target";

/// Claims the next due callback (`due_at <= $3`) the same way. Returns `id, target`.
pub const CLAIM_CALLBACK: &str = "
UPDATE callbacks SET claimed_by = $1, lease_until = now() + $2 * interval '1 second'
WHERE id = (
    SELECT id FROM callbacks
    WHERE status = 'pending' AND due_at <= $3 AND (lease_until IS NULL OR lease_until < now())
    ORDER BY due_at, id
    LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id, target";
