//! Finished calls for the history page.
//!
//! [`HistorySource`] is the seam to the durable call-record store: the store implements
//! it and the console only reads through it. [`MemoryHistory`] holds the calls that
//! ended in this process (the hub fills it), so the console is useful before the store
//! is attached and in tests.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::hub::{Speaker, TranscriptLine};
use crate::store::{RemoteCall, StoreTarget};

/// A row of the history list.
#[derive(Debug, Clone, Serialize)]
pub struct CallSummary {
    pub id: String,
    pub caller: String,
    pub script: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub outcome: String,
    pub turns: usize,
    pub has_recording: bool,
    /// The agent that carried the call, in a store shared by several agents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

/// One finished call with everything the detail view shows.
#[derive(Debug, Clone, Serialize)]
pub struct CallDetail {
    pub id: String,
    pub caller: String,
    pub script: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub outcome: String,
    pub fields: BTreeMap<String, String>,
    pub transcript: Vec<TranscriptLine>,
    /// Latency of each turn in order, milliseconds.
    pub turn_latencies_ms: Vec<f64>,
    pub has_recording: bool,
    /// Where the WAV lies; never sent to the browser (it fetches the recording endpoint).
    #[serde(skip)]
    pub recording: Option<PathBuf>,
    /// Attempts at handing the call to a person (method, result, times).
    pub transfers: Vec<crate::store::TransferRow>,
    /// Callbacks a person is to make for this call.
    pub person_callbacks: Vec<crate::store::PersonCallback>,
}

impl CallDetail {
    pub fn summary(&self) -> CallSummary {
        CallSummary {
            id: self.id.clone(),
            caller: self.caller.clone(),
            script: self.script.clone(),
            started_at: self.started_at,
            ended_at: self.ended_at,
            outcome: self.outcome.clone(),
            turns: self.turn_latencies_ms.len(),
            has_recording: self.has_recording,
            agent: None,
        }
    }
}

/// A history source failed (e.g. the database is unreadable).
#[derive(Debug, thiserror::Error)]
#[error("call history is unavailable: {0}")]
pub struct HistoryError(pub String);

/// Read access to finished calls; implemented by the record store.
///
/// Synchronous on purpose (SQLite is); the server calls it on a blocking thread.
pub trait HistorySource: Send + Sync {
    /// Most recent calls first, at most `limit`.
    fn list(&self, limit: usize) -> Result<Vec<CallSummary>, HistoryError>;
    /// One call, `None` when the id is unknown.
    fn detail(&self, id: &str) -> Result<Option<CallDetail>, HistoryError>;
    /// Path of the call's WAV recording, `None` when there is none.
    fn recording(&self, id: &str) -> Result<Option<PathBuf>, HistoryError> {
        Ok(self.detail(id)?.and_then(|d| d.recording))
    }
    /// Calls in progress on other agents sharing the store (none without one).
    fn elsewhere(&self) -> Result<Vec<RemoteCall>, HistoryError> {
        Ok(Vec::new())
    }
}

/// Name of the recordings directory beside the records database.
pub const RECORDINGS_DIR: &str = "recordings";

/// Where call recordings live by default: `recordings/` beside the records database
/// (so `$TINGSHUO_DATA/recordings` with the default store path).
pub fn default_recordings_dir(store_path: &Path) -> PathBuf {
    match store_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(RECORDINGS_DIR),
        _ => PathBuf::from(RECORDINGS_DIR),
    }
}

/// Why a recording cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("the recording file {0} is missing")]
    Missing(PathBuf),
    #[error(
        "the recording path {path} lies outside the recordings directory {dir}; it is not served"
    )]
    Outside { path: PathBuf, dir: PathBuf },
}

/// Resolves a stored recording path inside `dir` (relative paths are relative to it)
/// and refuses anything that is not a regular file under it after following links and
/// `..`: the path comes from the database, and the console must not become a way to
/// read arbitrary files.
pub fn confine(dir: &Path, path: &Path) -> Result<PathBuf, RecordingError> {
    let joined = dir.join(path);
    let real =
        std::fs::canonicalize(&joined).map_err(|_| RecordingError::Missing(joined.clone()))?;
    let outside = || RecordingError::Outside {
        path: joined.clone(),
        dir: dir.to_path_buf(),
    };
    let root = std::fs::canonicalize(dir).map_err(|_| outside())?;
    if !real.starts_with(&root) {
        return Err(outside());
    }
    if !real.is_file() {
        return Err(RecordingError::Missing(joined));
    }
    Ok(real)
}

/// Calls finished in this process, newest last; bounded so a long-running agent
/// does not grow without limit (the store keeps everything).
pub struct MemoryHistory {
    calls: Mutex<VecDeque<CallDetail>>,
    capacity: usize,
}

impl Default for MemoryHistory {
    fn default() -> Self {
        Self::with_capacity(1000)
    }
}

impl MemoryHistory {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            calls: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<CallDetail>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn push(&self, call: CallDetail) {
        let mut calls = self.lock();
        if calls.len() == self.capacity {
            calls.pop_front();
        }
        calls.push_back(call);
    }

    pub fn get(&self, id: &str) -> Option<CallDetail> {
        self.lock().iter().find(|c| c.id == id).cloned()
    }
}

impl HistorySource for MemoryHistory {
    fn list(&self, limit: usize) -> Result<Vec<CallSummary>, HistoryError> {
        Ok(self
            .lock()
            .iter()
            .rev()
            .take(limit)
            .map(CallDetail::summary)
            .collect())
    }

    fn detail(&self, id: &str) -> Result<Option<CallDetail>, HistoryError> {
        Ok(self.get(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: &str) -> CallDetail {
        CallDetail {
            id: id.into(),
            caller: "1001".into(),
            script: "s".into(),
            started_at: Utc::now(),
            ended_at: None,
            outcome: "completed".into(),
            fields: BTreeMap::new(),
            transcript: Vec::new(),
            turn_latencies_ms: vec![300.0, 500.0],
            has_recording: false,
            recording: None,
            transfers: Vec::new(),
            person_callbacks: Vec::new(),
        }
    }

    #[test]
    fn recordings_are_confined_to_their_directory() {
        let top = tempfile::tempdir().expect("tempdir");
        let dir = top.path().join("recordings");
        std::fs::create_dir_all(dir.join("2026")).expect("dirs");
        std::fs::write(dir.join("2026/a.wav"), b"RIFF").expect("wav");
        std::fs::write(top.path().join("secret.wav"), b"RIFF").expect("outside");
        let inside = confine(&dir, Path::new("2026/a.wav")).expect("relative inside");
        assert!(inside.ends_with("2026/a.wav"));
        confine(&dir, &dir.join("2026/a.wav")).expect("absolute inside");
        for outside in [
            PathBuf::from("../secret.wav"),
            top.path().join("secret.wav"),
            PathBuf::from("/etc/passwd"),
        ] {
            assert!(
                matches!(confine(&dir, &outside), Err(RecordingError::Outside { .. })),
                "{outside:?} is refused"
            );
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(top.path().join("secret.wav"), dir.join("link.wav"))
                .expect("symlink");
            assert!(matches!(
                confine(&dir, Path::new("link.wav")),
                Err(RecordingError::Outside { .. })
            ));
        }
        assert!(matches!(
            confine(&dir, Path::new("gone.wav")),
            Err(RecordingError::Missing(_))
        ));
        assert!(matches!(
            confine(&dir, Path::new("2026")),
            Err(RecordingError::Missing(_))
        ));
        assert_eq!(
            default_recordings_dir(Path::new("/var/lib/tingshuo/records.db")),
            PathBuf::from("/var/lib/tingshuo/recordings")
        );
    }

    #[test]
    fn newest_first_and_bounded() {
        let h = MemoryHistory::with_capacity(2);
        for id in ["a", "b", "c"] {
            h.push(call(id));
        }
        let ids: Vec<_> = h
            .list(10)
            .expect("list")
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(ids, ["c", "b"]);
        assert!(h.detail("a").expect("detail").is_none());
        assert_eq!(h.list(1).expect("list")[0].turns, 2);
    }
}

/// History read from the call-record store, so the console shows every call ever
/// recorded, not only those of this process (with a shared PostgreSQL store, those
/// of every agent). Each request opens its own connection: SQLite in WAL mode
/// serves readers while the record writer writes.
pub struct StoreHistory {
    target: StoreTarget,
    recordings: PathBuf,
    /// This agent's name: its own live calls are on the hub, not "elsewhere".
    agent: Option<String>,
}

impl StoreHistory {
    /// History from the store at `target`; relative recording paths in it are
    /// relative to `recordings` (see [`default_recordings_dir`]).
    pub fn new(target: StoreTarget, recordings: PathBuf) -> Self {
        Self {
            target,
            recordings,
            agent: None,
        }
    }

    /// The agent this console belongs to (see [`HistorySource::elsewhere`]).
    pub fn with_agent(mut self, name: String) -> Self {
        self.agent = Some(name);
        self
    }

    fn open(&self) -> Result<crate::store::Store, HistoryError> {
        crate::store::Store::connect(&self.target).map_err(|e| HistoryError(e.to_string()))
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl HistorySource for StoreHistory {
    fn elsewhere(&self) -> Result<Vec<RemoteCall>, HistoryError> {
        let Some(me) = &self.agent else {
            return Ok(Vec::new());
        };
        self.open()?
            .live_calls_elsewhere(me, crate::call::records::AGENT_DEAD_SECS)
            .map_err(|e| HistoryError(e.to_string()))
    }

    fn list(&self, limit: usize) -> Result<Vec<CallSummary>, HistoryError> {
        let rows = self
            .open()?
            .list(limit)
            .map_err(|e| HistoryError(e.to_string()))?;
        Ok(rows
            .into_iter()
            .filter(|r| r.ended_at.is_some())
            .map(|r| CallSummary {
                has_recording: r.recording.is_some(),
                agent: r.agent,
                id: r.id.to_string(),
                caller: r.peer.unwrap_or_default(),
                script: r.script,
                started_at: parse_time(&r.started_at).unwrap_or_default(),
                ended_at: r.ended_at.as_deref().and_then(parse_time),
                outcome: r.outcome.unwrap_or_else(|| "unknown".into()),
                turns: r.turns.max(0) as usize,
            })
            .collect())
    }

    fn detail(&self, id: &str) -> Result<Option<CallDetail>, HistoryError> {
        let Ok(num) = id.parse::<i64>() else {
            return Ok(None);
        };
        let store = self.open()?;
        let d = match store.show(num) {
            Ok(d) => d,
            Err(crate::store::StoreError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(HistoryError(e.to_string())),
        };
        let mut latencies = Vec::new();
        let mut transcript = Vec::new();
        for t in &d.turns {
            let speaker = match t.line.speaker.as_str() {
                "agent" => Speaker::Agent,
                "operator" => Speaker::Operator,
                _ => Speaker::Caller,
            };
            let mut line = TranscriptLine::new(speaker, t.line.text.clone());
            line.intent = t.line.intent.clone();
            line.at = parse_time(&t.at).unwrap_or(line.at);
            transcript.push(line);
            if let (Some(end), Some(first)) = (t.timing.t_speech_end, t.timing.t_first_reply_rtp) {
                if speaker == Speaker::Caller {
                    latencies.push((first - end) as f64);
                }
            }
        }
        let recording = d.recording.as_ref().map(|p| self.recordings.join(p));
        Ok(Some(CallDetail {
            id: d.call.id.to_string(),
            caller: d.call.peer.clone().unwrap_or_default(),
            script: d.call.script.clone(),
            started_at: parse_time(&d.call.started_at).unwrap_or_default(),
            ended_at: d.call.ended_at.as_deref().and_then(parse_time),
            outcome: d.call.outcome.clone().unwrap_or_else(|| "unknown".into()),
            fields: d.fields.clone(),
            transcript,
            turn_latencies_ms: latencies,
            has_recording: recording.is_some(),
            recording,
            transfers: d.transfers.clone(),
            person_callbacks: d.person_callbacks.clone(),
        }))
    }
}

#[cfg(test)]
mod store_history_tests {
    use super::*;
    use crate::store::{Store, TurnLine, TurnTiming, TurnWrite};

    #[test]
    fn finished_calls_come_from_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("records.db");
        let mut store = Store::open(&path).expect("open");
        let id = store
            .start_call(
                "embedded:inbound",
                "inbound",
                Some("sip:1001@127.0.0.1"),
                &BTreeMap::new(),
                "2026-11-25T08:00:00+00:00",
            )
            .expect("start");
        let turn = TurnWrite {
            at: "2026-11-25T08:00:05+00:00".into(),
            lines: vec![
                TurnLine {
                    speaker: "callee".into(),
                    text: "家里断网了".into(),
                    intent: Some("question".into()),
                    ..Default::default()
                },
                TurnLine {
                    speaker: "agent".into(),
                    text: "请先重启光猫".into(),
                    ..Default::default()
                },
            ],
            fields: vec![("问题".into(), "断网".into())],
            timing: TurnTiming {
                t_speech_end: Some(1_000),
                t_first_reply_rtp: Some(1_420),
                ..Default::default()
            },
            ..Default::default()
        };
        store.write_turn(id, &turn).expect("turn");
        let history = StoreHistory::new(
            StoreTarget::Sqlite(path.clone()),
            default_recordings_dir(&path),
        );
        // Still running: not in the history yet.
        assert!(history.list(10).expect("list").is_empty());
        store
            .end_call(id, "completed", "2026-11-25T08:01:00+00:00")
            .expect("end");
        let list = history.list(10).expect("list");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].outcome, "completed");
        let d = history
            .detail(&id.to_string())
            .expect("detail")
            .expect("known id");
        assert_eq!(d.transcript.len(), 2);
        assert_eq!(d.transcript[0].speaker, Speaker::Caller);
        assert_eq!(d.transcript[1].speaker, Speaker::Agent);
        assert_eq!(d.turn_latencies_ms, vec![420.0]);
        assert_eq!(d.fields.get("问题").map(String::as_str), Some("断网"));
        assert!(history.detail("999").expect("detail").is_none());
        assert!(history.detail("not-a-number").expect("detail").is_none());
    }
}
