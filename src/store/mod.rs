//! Durable call records: SQLite in WAL mode, written turn by turn.
//!
//! Each turn (what was heard, what was said, intents, fields) is one
//! transaction, committed before the agent's reply is handed to the driver, so
//! a crash (even `kill -9`) loses at most the turn in progress. The schema is
//! versioned with `PRAGMA user_version` so later issues can migrate it.
//! Per-turn timing columns (`t_speech_end` … `t_first_reply_rtp`, Unix epoch
//! milliseconds) are nullable: text mode fills what it knows, the phone
//! pipeline fills the rest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

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

/// The records database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Dir {
                path: dir.display().to_string(),
                source: e,
            })?;
        }
        let conn = Connection::open(path).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            source: e,
        })?;
        let mut s = Self {
            conn,
            path: path.to_path_buf(),
        };
        s.init()?;
        Ok(s)
    }

    /// An in-memory database (tests, simulation).
    pub fn in_memory() -> Result<Self, StoreError> {
        let mut s = Self {
            conn: Connection::open_in_memory()?,
            path: PathBuf::from(":memory:"),
        };
        s.init()?;
        Ok(s)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn init(&mut self) -> Result<(), StoreError> {
        // WAL + NORMAL: a committed transaction survives a process crash.
        let _mode: String = self
            .conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        self.conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: self.path.display().to_string(),
                found: version,
            });
        }
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(migration)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
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
        self.conn.execute(
            "INSERT INTO calls (script, direction, peer, vars_json, started_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![script, direction, peer, vars_json, started_at],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Writes one turn atomically; returns the sequence numbers of its lines.
    pub fn write_turn(&mut self, call_id: i64, turn: &TurnWrite) -> Result<Vec<i64>, StoreError> {
        let tx = self.conn.transaction()?;
        let mut seq: i64 = tx.query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM turns WHERE call_id = ?1",
            [call_id],
            |r| r.get(0),
        )?;
        let mut seqs = Vec::with_capacity(turn.lines.len());
        for l in &turn.lines {
            seq += 1;
            seqs.push(seq);
            let t = &turn.timing;
            tx.execute(
                "INSERT INTO turns (call_id, seq, at, speaker, text, asr_confidence, step, intent, interruptible, interrupted,
                 t_speech_end, t_endpoint, t_asr_done, t_reply_chosen, t_first_reply_rtp)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                params![
                    call_id,
                    seq,
                    turn.at,
                    l.speaker,
                    l.text,
                    l.asr_confidence,
                    l.step,
                    l.intent,
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
            tx.execute(
                "INSERT INTO fields (call_id, key, value, at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(call_id, key) DO UPDATE SET value = CASE WHEN fields.value = excluded.value THEN fields.value
                 ELSE fields.value || '；' || excluded.value END, at = excluded.at",
                params![call_id, k, v, turn.at],
            )?;
        }
        if let Some(due) = &turn.callback_due {
            tx.execute(
                "INSERT INTO callbacks (call_id, due_at, status, created_at) VALUES (?1, ?2, 'pending', ?3)",
                params![call_id, due, turn.at],
            )?;
            tx.execute(
                "UPDATE calls SET callback_at = ?2 WHERE id = ?1",
                params![call_id, due],
            )?;
        }
        if !turn.steps.is_empty() {
            let steps = serde_json::to_string(&turn.steps).unwrap_or_else(|_| "[]".into());
            tx.execute(
                "UPDATE calls SET steps_json = ?2 WHERE id = ?1",
                params![call_id, steps],
            )?;
        }
        tx.commit()?;
        Ok(seqs)
    }

    /// Marks a line as cut off by barge-in (known only after it was written).
    pub fn set_interrupted(&mut self, call_id: i64, seq: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE turns SET interrupted = 1 WHERE call_id = ?1 AND seq = ?2",
            params![call_id, seq],
        )?;
        Ok(())
    }

    /// Marks the latest agent line containing `text` as cut off by barge-in (the call
    /// thread knows what it was playing, not the sequence number; a line rendered in
    /// pieces is played one clause at a time). Returns whether a line matched.
    pub fn mark_line_interrupted(&mut self, call_id: i64, text: &str) -> Result<bool, StoreError> {
        if text.trim().is_empty() {
            return Ok(false);
        }
        let n = self.conn.execute(
            "UPDATE turns SET interrupted = 1 WHERE call_id = ?1 AND seq = (SELECT MAX(seq) \
             FROM turns WHERE call_id = ?1 AND speaker = 'agent' AND instr(text, ?2) > 0)",
            params![call_id, text],
        )?;
        Ok(n > 0)
    }

    /// Points the call at its WAV recording.
    pub fn set_recording(&mut self, call_id: i64, path: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE calls SET recording = ?2 WHERE id = ?1",
            params![call_id, path],
        )?;
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
        self.conn.execute(
            "UPDATE turns SET t_first_reply_rtp = ?3 WHERE call_id = ?1 AND seq = ?2",
            params![call_id, seq, at_ms],
        )?;
        Ok(())
    }

    /// Marks the call ended with `outcome`.
    pub fn end_call(
        &mut self,
        call_id: i64,
        outcome: &str,
        ended_at: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE calls SET outcome = ?2, ended_at = ?3 WHERE id = ?1",
            params![call_id, outcome, ended_at],
        )?;
        Ok(())
    }

    /// Marks a callback done / cancelled / failed.
    pub fn set_callback_status(&mut self, id: i64, status: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE callbacks SET status = ?2 WHERE id = ?1",
            params![id, status],
        )?;
        Ok(())
    }

    /// Pending callbacks due at or before `until` (RFC 3339, compared as text in one offset).
    pub fn due_callbacks(&self, until: &str) -> Result<Vec<CallbackRow>, StoreError> {
        let mut st = self.conn.prepare("SELECT id, call_id, due_at, status FROM callbacks WHERE status = 'pending' AND due_at <= ?1 ORDER BY due_at")?;
        let rows = st.query_map([until], |r| {
            Ok(CallbackRow {
                id: r.get(0)?,
                call_id: r.get(1)?,
                due_at: r.get(2)?,
                status: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn call_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CallRow> {
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
        })
    }

    /// Most recent calls first.
    pub fn list(&self, limit: usize) -> Result<Vec<CallRow>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT c.id, c.script, c.direction, c.peer, c.started_at, c.ended_at, c.outcome, c.callback_at,
             (SELECT COUNT(*) FROM turns t WHERE t.call_id = c.id) FROM calls c ORDER BY c.id DESC LIMIT ?1",
        )?;
        let rows = st.query_map([limit as i64], Self::call_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One call with its turns, fields and callbacks.
    pub fn show(&self, id: i64) -> Result<CallDetail, StoreError> {
        let call = self
            .conn
            .query_row(
                "SELECT c.id, c.script, c.direction, c.peer, c.started_at, c.ended_at, c.outcome, c.callback_at,
                 (SELECT COUNT(*) FROM turns t WHERE t.call_id = c.id) FROM calls c WHERE c.id = ?1",
                [id],
                Self::call_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let (vars, steps, recording): (String, String, Option<String>) = self.conn.query_row(
            "SELECT vars_json, steps_json, recording FROM calls WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let mut st = self
            .conn
            .prepare("SELECT key, value FROM fields WHERE call_id = ?1 ORDER BY key")?;
        let fields = st
            .query_map([id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let mut st = self.conn.prepare(
            "SELECT id, call_id, due_at, status FROM callbacks WHERE call_id = ?1 ORDER BY id",
        )?;
        let callbacks = st
            .query_map([id], |r| {
                Ok(CallbackRow {
                    id: r.get(0)?,
                    call_id: r.get(1)?,
                    due_at: r.get(2)?,
                    status: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut st = self.conn.prepare(
            "SELECT seq, at, speaker, text, asr_confidence, step, intent, interruptible, interrupted,
             t_speech_end, t_endpoint, t_asr_done, t_reply_chosen, t_first_reply_rtp FROM turns WHERE call_id = ?1 ORDER BY seq",
        )?;
        let turns = st
            .query_map([id], |r| {
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
            })?
            .collect::<Result<Vec<_>, _>>()?;
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
            .conn
            .query_row("SELECT mode FROM calls WHERE id = 1", [], |r| r.get(0))
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
