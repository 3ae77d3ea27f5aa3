//! Durable call records, written turn by turn, in SQLite (WAL mode; the embedded
//! default) or PostgreSQL (`[store] url`; several agents share it). Both backends
//! run the same SQL through [`db::Sql`].
//!
//! Each turn (what was heard, what was said, intents, fields) is one
//! transaction, committed before the agent's reply is handed to the driver, so
//! a crash (even `kill -9`) loses at most the turn in progress. The schema is
//! versioned (`PRAGMA user_version` in SQLite, `schema_version` in PostgreSQL) so
//! later issues can migrate it.
//! Per-turn timing columns (`t_speech_end` … `t_first_reply_rtp`, Unix epoch
//! milliseconds) are nullable: text mode fills what it knows, the phone
//! pipeline fills the rest.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

pub mod db;
pub use db::Dialect;
use db::{vals, Conn, Pg, Row, Sql};
mod agents;
pub use agents::{AgentRow, RemoteCall};

mod recovery;
pub use recovery::INTERRUPTED;
use serde::Serialize;

mod campaigns;
pub use campaigns::{CallbackState, CampaignRow, RowStatus};
pub mod pg_schema;
mod transfers;
pub use transfers::{PersonCallback, TransferRow};

/// Current schema version (`PRAGMA user_version`): one per entry of [`MIGRATIONS`].
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Schema migrations, applied in order; entry `i` takes the database from
/// version `i` to `i + 1`. Append only: a released entry never changes, because
/// databases in the field have already run it.
const MIGRATIONS: &[&str] = &[
    SCHEMA_V1,
    SCHEMA_V2,
    SCHEMA_V3,
    campaigns::SCHEMA_V4,
    transfers::SCHEMA_V5,
    agents::SCHEMA_V6,
];

/// Errors of the record store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the records database {path}: {source} (check [store] path in the config or TINGSHUO_DATA)")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create the records directory {path}: {source}")]
    Dir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("records database {path} has schema version {found}, newer than this tingshuo ({SCHEMA_VERSION}); upgrade tingshuo")]
    TooNew { path: String, found: i64 },
    #[error("no call with id {0} (see `tingshuo records list`)")]
    NotFound(String),
    #[error("records database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("[store] url {url} is not a PostgreSQL URL: {reason} (expected postgres://USER@HOST:PORT/DB, password in {DB_PASSWORD_ENV})")]
    PgUrl { url: String, reason: String },
    #[error("cannot connect to the records database {url}: {source} (is PostgreSQL running and reachable, and is {DB_PASSWORD_ENV} set to the password?)")]
    PgConnect {
        url: String,
        #[source]
        source: postgres::Error,
    },
    #[error("records database: {0}")]
    Pg(#[from] postgres::Error),
    #[error("records database has an unexpected shape: {0}")]
    Schema(String),
}

impl StoreError {
    /// Whether the database could not be reached (a restart, a network blip): the
    /// write may succeed after a reconnect, unlike a constraint or schema error.
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::PgConnect { .. } => true,
            StoreError::Pg(e) => {
                let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
                // SQLSTATE classes 08 (connection exception) and 57 (operator
                // intervention: shutdown, crash recovery).
                let class = e.code().map(|c| &c.code()[..2]);
                e.is_closed() || io || matches!(class, Some("08") | Some("57"))
            }
            _ => false,
        }
    }
}

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    script TEXT NOT NULL,
    direction TEXT NOT NULL DEFAULT 'text',
    peer TEXT,
    vars_json TEXT NOT NULL DEFAULT '{}',
    started_at TEXT NOT NULL,
    ended_at TEXT,
    outcome TEXT,
    callback_at TEXT,
    steps_json TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id INTEGER NOT NULL REFERENCES calls(id),
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    speaker TEXT NOT NULL CHECK (speaker IN ('agent', 'callee')),
    text TEXT NOT NULL,
    asr_confidence REAL,
    step TEXT,
    intent TEXT,
    interruptible INTEGER NOT NULL DEFAULT 1,
    interrupted INTEGER NOT NULL DEFAULT 0,
    t_speech_end INTEGER,
    t_endpoint INTEGER,
    t_asr_done INTEGER,
    t_reply_chosen INTEGER,
    t_first_reply_rtp INTEGER
);
CREATE INDEX IF NOT EXISTS turns_call ON turns(call_id, seq);
CREATE TABLE IF NOT EXISTS fields (
    call_id INTEGER NOT NULL REFERENCES calls(id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (call_id, key)
);
CREATE TABLE IF NOT EXISTS callbacks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id INTEGER NOT NULL REFERENCES calls(id),
    due_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'cancelled', 'failed')),
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS callbacks_due ON callbacks(status, due_at);
";

/// Version 2: what later issues need on a call and a callback.
/// `mode`: `normal` or `emergency` (the degraded script ran); `recording`: the
/// call's WAV file; `voice_message`: a message the caller left in emergency
/// mode; `sip_call_id`: to correlate with SIP traces. Callbacks learn whom to
/// dial (`target`, falling back to the call's peer) and keep their attempts.
const SCHEMA_V2: &str = "
ALTER TABLE calls ADD COLUMN mode TEXT NOT NULL DEFAULT 'normal';
ALTER TABLE calls ADD COLUMN recording TEXT;
ALTER TABLE calls ADD COLUMN voice_message TEXT;
ALTER TABLE calls ADD COLUMN sip_call_id TEXT;
ALTER TABLE callbacks ADD COLUMN target TEXT;
ALTER TABLE callbacks ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE callbacks ADD COLUMN last_error TEXT;
ALTER TABLE callbacks ADD COLUMN dialled_call_id INTEGER;
";

/// Version 3: operators' take-over lines are part of the transcript, so the
/// `speaker` check admits `operator` (SQLite cannot alter a CHECK: the table is
/// rebuilt with the same columns in the same order).
const SCHEMA_V3: &str = "
CREATE TABLE turns_v3 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id INTEGER NOT NULL REFERENCES calls(id),
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    speaker TEXT NOT NULL CHECK (speaker IN ('agent', 'callee', 'operator')),
    text TEXT NOT NULL,
    asr_confidence REAL,
    step TEXT,
    intent TEXT,
    interruptible INTEGER NOT NULL DEFAULT 1,
    interrupted INTEGER NOT NULL DEFAULT 0,
    t_speech_end INTEGER,
    t_endpoint INTEGER,
    t_asr_done INTEGER,
    t_reply_chosen INTEGER,
    t_first_reply_rtp INTEGER
);
INSERT INTO turns_v3 SELECT * FROM turns;
DROP TABLE turns;
ALTER TABLE turns_v3 RENAME TO turns;
CREATE INDEX IF NOT EXISTS turns_call ON turns(call_id, seq);
";

/// One line of a turn.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TurnLine {
    pub speaker: String,
    pub text: String,
    pub asr_confidence: Option<f64>,
    pub step: Option<String>,
    pub intent: Option<String>,
    pub interruptible: bool,
    pub interrupted: bool,
}

/// Timing of a turn (Unix epoch milliseconds), each optional.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct TurnTiming {
    pub t_speech_end: Option<i64>,
    pub t_endpoint: Option<i64>,
    pub t_asr_done: Option<i64>,
    pub t_reply_chosen: Option<i64>,
    pub t_first_reply_rtp: Option<i64>,
}

/// Everything one turn writes, committed together.
#[derive(Debug, Clone, Default)]
pub struct TurnWrite {
    pub at: String,
    pub lines: Vec<TurnLine>,
    pub fields: Vec<(String, String)>,
    pub callback_due: Option<String>,
    pub timing: TurnTiming,
    pub steps: Vec<String>,
}

/// A row of `records list`.
#[derive(Debug, Clone, Serialize)]
pub struct CallRow {
    pub id: i64,
    pub script: String,
    pub direction: String,
    pub peer: Option<String>,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub outcome: Option<String>,
    pub callback_at: Option<String>,
    pub turns: i64,
    /// The agent that carried the call (`[store] agent`), when it said.
    pub agent: Option<String>,
    /// The call's WAV recording, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording: Option<String>,
}

/// A stored turn line with its timing.
#[derive(Debug, Clone, Serialize)]
pub struct StoredTurn {
    pub seq: i64,
    pub at: String,
    #[serde(flatten)]
    pub line: TurnLine,
    #[serde(flatten)]
    pub timing: TurnTiming,
}

/// A callback row.
#[derive(Debug, Clone, Serialize)]
pub struct CallbackRow {
    pub id: i64,
    pub call_id: i64,
    pub due_at: String,
    pub status: String,
}

/// A whole call for `records show`.
#[derive(Debug, Clone, Serialize)]
pub struct CallDetail {
    #[serde(flatten)]
    pub call: CallRow,
    pub vars: serde_json::Value,
    pub steps: Vec<String>,
    pub fields: BTreeMap<String, String>,
    pub callbacks: Vec<CallbackRow>,
    pub turns: Vec<StoredTurn>,
    /// The call's stereo WAV (caller left, agent right), when it was recorded.
    pub recording: Option<String>,
    /// Attempts at handing the call to a person.
    pub transfers: Vec<TransferRow>,
    /// Callbacks a person is to make (never dialled by the agent).
    pub person_callbacks: Vec<PersonCallback>,
}

/// Where the records live: a SQLite file (embedded default) or a PostgreSQL
/// database shared by several agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreTarget {
    Sqlite(PathBuf),
    /// A `postgres://user@host:port/db` URL; the password comes from
    /// `TINGSHUO_DB_PASSWORD` (or the URL, or PostgreSQL's own `PGPASSWORD`).
    Postgres(String),
}

impl StoreTarget {
    /// The URL with any password blanked out, for messages and logs.
    pub fn display(&self) -> String {
        match self {
            StoreTarget::Sqlite(p) => p.display().to_string(),
            StoreTarget::Postgres(url) => redact_url(url),
        }
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_string(),
    }
}

/// Environment variable with the PostgreSQL password (kept out of config files).
pub const DB_PASSWORD_ENV: &str = "TINGSHUO_DB_PASSWORD";

/// The records database.
pub struct Store {
    conn: RefCell<Conn>,
    target: StoreTarget,
    /// The agent writing (see [`Store::set_agent`]); `None` for a lone process.
    agent: Option<String>,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::connect(&StoreTarget::Sqlite(path.to_path_buf()))
    }

    /// Opens either backend and migrates it.
    pub fn connect(target: &StoreTarget) -> Result<Self, StoreError> {
        let conn = match target {
            StoreTarget::Sqlite(path) => Conn::Sqlite(open_sqlite(path)?),
            StoreTarget::Postgres(url) => {
                Conn::Postgres(Box::new(Pg::new(db::off_runtime(|| connect_pg(url))?)))
            }
        };
        let s = Self {
            conn: RefCell::new(conn),
            target: target.clone(),
            agent: None,
        };
        s.init()?;
        Ok(s)
    }

    /// An in-memory SQLite database (tests, simulation).
    pub fn in_memory() -> Result<Self, StoreError> {
        let s = Self {
            conn: RefCell::new(Conn::Sqlite(Connection::open_in_memory()?)),
            target: StoreTarget::Sqlite(PathBuf::from(":memory:")),
            agent: None,
        };
        s.init()?;
        Ok(s)
    }

    /// Where this store lives.
    pub fn target(&self) -> &StoreTarget {
        &self.target
    }

    /// Which engine this store runs on.
    pub fn dialect(&self) -> Dialect {
        self.conn.borrow_mut().sql().dialect()
    }

    /// Runs `f` on the connection (one statement or several, not atomic together).
    fn with<R: Send>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<R, StoreError> + Send,
    ) -> Result<R, StoreError> {
        let mut guard = self.conn.borrow_mut();
        let conn: &mut Conn = &mut guard;
        match conn {
            Conn::Sqlite(c) => f(c),
            Conn::Postgres(p) => db::off_runtime(move || f(p.as_mut())),
        }
    }

    /// Runs `f` in one transaction.
    fn tx<R: Send>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<R, StoreError> + Send,
    ) -> Result<R, StoreError> {
        let mut guard = self.conn.borrow_mut();
        let conn: &mut Conn = &mut guard;
        match conn {
            Conn::Sqlite(_) => conn.transaction(f),
            Conn::Postgres(_) => db::off_runtime(move || conn.transaction(f)),
        }
    }

    /// Whether the database answers now (readiness probes).
    pub fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| c.query_one("SELECT 1", &[]).map(|_| ()))
    }

    /// Replaces a broken PostgreSQL connection with a new one (after a database
    /// restart); a SQLite store has nothing to reconnect.
    pub fn reconnect(&self) -> Result<(), StoreError> {
        if let StoreTarget::Postgres(url) = &self.target {
            let client = db::off_runtime(|| connect_pg(url))?;
            *self.conn.borrow_mut() = Conn::Postgres(Box::new(Pg::new(client)));
        }
        Ok(())
    }

    fn init(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.borrow_mut();
        match &mut *conn {
            Conn::Sqlite(c) => self.migrate_sqlite(c),
            Conn::Postgres(p) => {
                let shown = self.target.display();
                db::off_runtime(move || migrate_postgres(p, &shown))
            }
        }
    }

    fn migrate_sqlite(&self, c: &mut Connection) -> Result<(), StoreError> {
        // Several processes may open a new file at once (two agents, a `records
        // list` beside a running agent): each waits for the others' locks, and
        // each migration step re-reads the version inside its write transaction.
        c.busy_timeout(std::time::Duration::from_secs(10))?;
        // WAL + NORMAL: a committed transaction survives a process crash.
        let _mode: String = c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        c.pragma_update(None, "synchronous", "NORMAL")?;
        c.pragma_update(None, "foreign_keys", "ON")?;
        loop {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            check_version(version, &self.target.display())?;
            let Some(migration) = MIGRATIONS.get(version.max(0) as usize) else {
                return Ok(());
            };
            tx.execute_batch(migration)?;
            tx.pragma_update(None, "user_version", version.max(0) + 1)?;
            tx.commit()?;
        }
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "PRAGMA user_version",
            Dialect::Postgres => "SELECT version FROM schema_version",
        };
        self.with(|c| c.query_one(sql, &[])?.get(0))
    }

    /// Creates a call row; returns its id.
    pub fn start_call(
        &mut self,
        script: &str,
        direction: &str,
        peer: Option<&str>,
        vars: &BTreeMap<String, String>,
        started_at: &str,
    ) -> Result<i64, StoreError> {
        let vars_json = serde_json::to_string(vars).unwrap_or_else(|_| "{}".into());
        let agent = self.agent.clone();
        self.with(|c| {
            c.insert(
                "INSERT INTO calls (script, direction, peer, vars_json, started_at, agent) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                vals![script, direction, peer, vars_json, started_at, agent],
            )
        })
    }

    /// Writes one turn atomically; returns the sequence numbers of its lines.
    pub fn write_turn(&mut self, call_id: i64, turn: &TurnWrite) -> Result<Vec<i64>, StoreError> {
        self.tx(|tx| {
            let mut seq: i64 = tx
                .query_one(
                    "SELECT COALESCE(MAX(seq), 0) FROM turns WHERE call_id = ?1",
                    vals![call_id],
                )?
                .get(0)?;
            let mut seqs = Vec::with_capacity(turn.lines.len());
            for l in &turn.lines {
                seq += 1;
                seqs.push(seq);
                let t = &turn.timing;
                tx.exec(
                    "INSERT INTO turns (call_id, seq, at, speaker, text, asr_confidence, step, intent, interruptible, interrupted,
                     t_speech_end, t_endpoint, t_asr_done, t_reply_chosen, t_first_reply_rtp)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                    vals![
                        call_id,
                        seq,
                        &turn.at,
                        &l.speaker,
                        &l.text,
                        l.asr_confidence,
                        &l.step,
                        &l.intent,
                        l.interruptible,
                        l.interrupted,
                        t.t_speech_end,
                        t.t_endpoint,
                        t.t_asr_done,
                        t.t_reply_chosen,
                        t.t_first_reply_rtp
                    ],
                )?;
            }
            for (k, v) in &turn.fields {
                tx.exec(
                    "INSERT INTO fields (call_id, key, value, at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(call_id, key) DO UPDATE SET value = CASE WHEN fields.value = excluded.value THEN fields.value
                     ELSE fields.value || '；' || excluded.value END, at = excluded.at",
                    vals![call_id, k, v, &turn.at],
                )?;
            }
            if let Some(due) = &turn.callback_due {
                tx.exec(
                    "INSERT INTO callbacks (call_id, due_at, status, created_at) VALUES (?1, ?2, 'pending', ?3)",
                    vals![call_id, due, &turn.at],
                )?;
                show_callback_at(tx, call_id, due)?;
            }
            if !turn.steps.is_empty() {
                let steps = serde_json::to_string(&turn.steps).unwrap_or_else(|_| "[]".into());
                tx.exec(
                    "UPDATE calls SET steps_json = ?2 WHERE id = ?1",
                    vals![call_id, steps],
                )?;
            }
            Ok(seqs)
        })
    }

    /// Marks a line as cut off by barge-in (known only after it was written).
    pub fn set_interrupted(&mut self, call_id: i64, seq: i64) -> Result<(), StoreError> {
        self.with(|c| {
            c.exec(
                "UPDATE turns SET interrupted = 1 WHERE call_id = ?1 AND seq = ?2",
                vals![call_id, seq],
            )
        })?;
        Ok(())
    }

    /// Marks the latest agent line containing `text` as cut off by barge-in (the call
    /// thread knows what it was playing, not the sequence number; a line rendered in
    /// pieces is played one clause at a time). Returns whether a line matched.
    pub fn mark_line_interrupted(&mut self, call_id: i64, text: &str) -> Result<bool, StoreError> {
        if text.trim().is_empty() {
            return Ok(false);
        }
        let n = self.with(|c| {
            c.exec(
                "UPDATE turns SET interrupted = 1 WHERE call_id = ?1 AND seq = (SELECT MAX(seq) \
                 FROM turns WHERE call_id = ?1 AND speaker = 'agent' AND instr(text, ?2) > 0)",
                vals![call_id, text],
            )
        })?;
        Ok(n > 0)
    }

    /// Points the call at its WAV recording.
    pub fn set_recording(&mut self, call_id: i64, path: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.exec(
                "UPDATE calls SET recording = ?2 WHERE id = ?1",
                vals![call_id, path],
            )
        })?;
        Ok(())
    }

    /// Records when the first RTP packet of a reply left (epoch ms), known
    /// only after the turn was written.
    pub fn set_first_reply_rtp(
        &mut self,
        call_id: i64,
        seq: i64,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.exec(
                "UPDATE turns SET t_first_reply_rtp = ?3 WHERE call_id = ?1 AND seq = ?2",
                vals![call_id, seq, at_ms],
            )
        })?;
        Ok(())
    }

    /// Marks the call ended with `outcome`.
    pub fn end_call(
        &mut self,
        call_id: i64,
        outcome: &str,
        ended_at: &str,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.exec(
                "UPDATE calls SET outcome = ?2, ended_at = ?3 WHERE id = ?1",
                vals![call_id, outcome, ended_at],
            )
        })?;
        Ok(())
    }

    /// Marks a callback done / cancelled / failed.
    pub fn set_callback_status(&mut self, id: i64, status: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.exec(
                "UPDATE callbacks SET status = ?2 WHERE id = ?1",
                vals![id, status],
            )
        })?;
        Ok(())
    }

    fn callback_row(r: &Row) -> Result<CallbackRow, StoreError> {
        Ok(CallbackRow {
            id: r.get(0)?,
            call_id: r.get(1)?,
            due_at: r.get(2)?,
            status: r.get(3)?,
        })
    }

    /// Pending callbacks due at or before `until` (RFC 3339, compared as text in one offset).
    pub fn due_callbacks(&self, until: &str) -> Result<Vec<CallbackRow>, StoreError> {
        self.with(|c| {
            c.query(
                "SELECT id, call_id, due_at, status FROM callbacks WHERE status = 'pending' AND due_at <= ?1 ORDER BY due_at",
                vals![until],
            )?
            .iter()
            .map(Self::callback_row)
            .collect()
        })
    }

    fn call_row(r: &Row) -> Result<CallRow, StoreError> {
        Ok(CallRow {
            id: r.get(0)?,
            script: r.get(1)?,
            direction: r.get(2)?,
            peer: r.get(3)?,
            started_at: r.get(4)?,
            ended_at: r.get(5)?,
            outcome: r.get(6)?,
            callback_at: r.get(7)?,
            turns: r.get(8)?,
            agent: r.get(9)?,
            recording: r.get::<Option<String>>(10)?.filter(|p| !p.is_empty()),
        })
    }

    const CALL_COLUMNS: &'static str =
        "SELECT c.id, c.script, c.direction, c.peer, c.started_at, c.ended_at, c.outcome, c.callback_at,
         (SELECT COUNT(*) FROM turns t WHERE t.call_id = c.id), c.agent, c.recording FROM calls c";

    /// Most recent calls first.
    pub fn list(&self, limit: usize) -> Result<Vec<CallRow>, StoreError> {
        let sql = format!("{} ORDER BY c.id DESC LIMIT ?1", Self::CALL_COLUMNS);
        self.with(|c| {
            c.query(&sql, vals![limit])?
                .iter()
                .map(Self::call_row)
                .collect()
        })
    }

    /// One call with its turns, fields and callbacks.
    pub fn show(&self, id: i64) -> Result<CallDetail, StoreError> {
        let sql = format!("{} WHERE c.id = ?1", Self::CALL_COLUMNS);
        let (call, vars, steps, recording, fields, callbacks, turns) = self.with(|c| {
            let call = c
                .query_opt(&sql, vals![id])?
                .as_ref()
                .map(Self::call_row)
                .transpose()?
                .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
            let r = c.query_one(
                "SELECT vars_json, steps_json, recording FROM calls WHERE id = ?1",
                vals![id],
            )?;
            let (vars, steps, recording): (String, String, Option<String>) =
                (r.get(0)?, r.get(1)?, r.get(2)?);
            let fields = c
                .query(
                    "SELECT key, value FROM fields WHERE call_id = ?1 ORDER BY key",
                    vals![id],
                )?
                .iter()
                .map(|r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)))
                .collect::<Result<BTreeMap<_, _>, StoreError>>()?;
            let callbacks = c
                .query(
                    "SELECT id, call_id, due_at, status FROM callbacks WHERE call_id = ?1 ORDER BY id",
                    vals![id],
                )?
                .iter()
                .map(Self::callback_row)
                .collect::<Result<Vec<_>, _>>()?;
            let turns = c
                .query(
                    "SELECT seq, at, speaker, text, asr_confidence, step, intent, interruptible, interrupted,
                     t_speech_end, t_endpoint, t_asr_done, t_reply_chosen, t_first_reply_rtp FROM turns WHERE call_id = ?1 ORDER BY seq",
                    vals![id],
                )?
                .iter()
                .map(|r| {
                    Ok(StoredTurn {
                        seq: r.get(0)?,
                        at: r.get(1)?,
                        line: TurnLine {
                            speaker: r.get(2)?,
                            text: r.get(3)?,
                            asr_confidence: r.get(4)?,
                            step: r.get(5)?,
                            intent: r.get(6)?,
                            interruptible: r.get(7)?,
                            interrupted: r.get(8)?,
                        },
                        timing: TurnTiming {
                            t_speech_end: r.get(9)?,
                            t_endpoint: r.get(10)?,
                            t_asr_done: r.get(11)?,
                            t_reply_chosen: r.get(12)?,
                            t_first_reply_rtp: r.get(13)?,
                        },
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok((call, vars, steps, recording, fields, callbacks, turns))
        })?;
        Ok(CallDetail {
            call,
            vars: serde_json::from_str(&vars).unwrap_or(serde_json::Value::Null),
            steps: serde_json::from_str(&steps).unwrap_or_default(),
            fields,
            callbacks,
            turns,
            recording,
            transfers: self.transfers(id)?,
            person_callbacks: self.person_callbacks(Some(id))?,
        })
    }
}

fn migrate_postgres(p: &mut Pg, shown: &str) -> Result<(), StoreError> {
    // Two agents starting together must not both migrate: the advisory lock
    // makes the second wait for the first and then find nothing to do.
    let mut tx = p.client()?.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock(7310117)", &[])?;
    // `IF NOT EXISTS` on an existing table is not news worth a log line.
    tx.batch_execute("SET LOCAL client_min_messages = warning")?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
    let version: i64 = tx
        .query_opt("SELECT version FROM schema_version", &[])?
        .map(|r| r.try_get(0))
        .transpose()?
        .unwrap_or(0);
    check_version(version, shown)?;
    let mut now = version;
    for (to, migration) in pg_schema::PG_MIGRATIONS {
        if *to > now {
            tx.batch_execute(migration)?;
            now = *to;
        }
    }
    if now != version {
        tx.execute("DELETE FROM schema_version", &[])?;
        tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&now])?;
    }
    tx.commit()?;
    Ok(())
}

fn check_version(found: i64, shown: &str) -> Result<(), StoreError> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: shown.to_string(),
            found,
        });
    }
    Ok(())
}

/// Shows a callback's due time on its call (`records list`, the console).
fn show_callback_at(tx: &mut dyn Sql, call_id: i64, due_at: &str) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE calls SET callback_at = ?2 WHERE id = ?1",
        vals![call_id, due_at],
    )?;
    Ok(())
}

fn open_sqlite(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Dir {
            path: dir.display().to_string(),
            source: e,
        })?;
    }
    Connection::open(path).map_err(|e| StoreError::Open {
        path: path.display().to_string(),
        source: e,
    })
}

/// Connects to PostgreSQL with a short timeout, so an unreachable database fails
/// start-up (or a reconnect attempt) in seconds, not minutes.
fn connect_pg(url: &str) -> Result<postgres::Client, StoreError> {
    let shown = redact_url(url);
    let mut config: postgres::Config = url.parse().map_err(|e| StoreError::PgUrl {
        url: shown.clone(),
        reason: format!("{e}"),
    })?;
    if let Ok(pw) = std::env::var(DB_PASSWORD_ENV) {
        config.password(pw);
    } else if config.get_password().is_none() {
        if let Ok(pw) = std::env::var("PGPASSWORD") {
            config.password(pw);
        }
    }
    config.connect_timeout(std::time::Duration::from_secs(3));
    config.application_name("tingshuo");
    config
        .connect(postgres::NoTls)
        .map_err(|e| StoreError::PgConnect {
            url: shown,
            source: e,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_database_migrates_with_its_rows_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO calls (script, direction, started_at) VALUES ('a.md', 'inbound', '2026-11-01T09:00:00+08:00')",
                [],
            )
            .unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        let mode: String = s
            .with(|c| {
                c.query_one("SELECT mode FROM calls WHERE id = 1", &[])?
                    .get(0)
            })
            .unwrap();
        assert_eq!(mode, "normal");
        assert_eq!(s.list(10).unwrap()[0].script, "a.md");
        // v3: an operator's line is accepted, anything else still is not.
        let mut s = s;
        let line = |speaker: &str| TurnWrite {
            at: "2026-11-01T09:01:00+08:00".into(),
            lines: vec![TurnLine {
                speaker: speaker.into(),
                text: "（张三 接管通话）".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        s.write_turn(1, &line("operator")).unwrap();
        // A dynamic line is played one clause at a time: a cut clause marks its line.
        let mut agent = line("agent");
        agent.lines[0].text = "好的，明天上午十点给您回电，请保持电话畅通。".into();
        s.write_turn(1, &agent).unwrap();
        assert!(s.mark_line_interrupted(1, "请保持电话畅通。").unwrap());
        assert!(!s.mark_line_interrupted(1, "  ").unwrap());
        assert!(s.show(1).unwrap().turns[1].line.interrupted);
        assert!(s.write_turn(1, &line("robot")).is_err());
        assert_eq!(s.show(1).unwrap().turns[0].line.speaker, "operator");
    }

    #[test]
    fn processes_opening_a_new_file_together_migrate_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        let openers: Vec<_> = (0..6)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || Store::open(&path).map(|s| s.schema_version().ok()))
            })
            .collect();
        for o in openers {
            assert_eq!(o.join().unwrap().unwrap(), Some(SCHEMA_VERSION));
        }
    }

    #[test]
    fn turns_fields_and_callbacks_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("r.db")).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        let id = s
            .start_call(
                "demo.md",
                "text",
                None,
                &BTreeMap::new(),
                "2026-11-25T10:00:00+08:00",
            )
            .unwrap();
        let turn = TurnWrite {
            at: "2026-11-25T10:00:05+08:00".into(),
            lines: vec![
                TurnLine {
                    speaker: "callee".into(),
                    text: "明天下午再打".into(),
                    asr_confidence: Some(0.9),
                    intent: Some("not_convenient".into()),
                    interruptible: true,
                    ..Default::default()
                },
                TurnLine {
                    speaker: "agent".into(),
                    text: "好的".into(),
                    step: Some("1".into()),
                    interruptible: true,
                    ..Default::default()
                },
            ],
            fields: vec![("callback_at".into(), "2026-11-26T15:00:00+08:00".into())],
            callback_due: Some("2026-11-26T15:00:00+08:00".into()),
            timing: TurnTiming {
                t_reply_chosen: Some(5),
                ..Default::default()
            },
            steps: vec!["opening".into(), "1".into()],
        };
        let seqs = s.write_turn(id, &turn).unwrap();
        assert_eq!(seqs, vec![1, 2]);
        s.set_interrupted(id, 2).unwrap();
        s.set_first_reply_rtp(id, 2, 1234).unwrap();
        s.end_call(id, "callback_scheduled", "2026-11-25T10:00:06+08:00")
            .unwrap();
        let d = s.show(id).unwrap();
        assert_eq!(d.turns.len(), 2);
        assert_eq!(d.call.outcome.as_deref(), Some("callback_scheduled"));
        assert_eq!(d.callbacks.len(), 1);
        assert_eq!(d.steps, vec!["opening", "1"]);
        assert_eq!(d.turns[0].timing.t_reply_chosen, Some(5));
        assert!(d.turns[1].line.interrupted && !d.turns[0].line.interrupted);
        assert_eq!(d.turns[1].timing.t_first_reply_rtp, Some(1234));
        assert_eq!(
            s.due_callbacks("2026-11-27T00:00:00+08:00").unwrap().len(),
            1
        );
        assert_eq!(s.list(10).unwrap()[0].turns, 2);
        assert!(matches!(s.show(99), Err(StoreError::NotFound(_))));
    }
}
