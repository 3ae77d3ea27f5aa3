//! Finished calls for the history page.
//!
//! [`HistorySource`] is the seam to the durable call-record store: the store implements
//! it and the console only reads through it. [`MemoryHistory`] holds the calls that
//! ended in this process (the hub fills it), so the console is useful before the store
//! is attached and in tests.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::hub::TranscriptLine;

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
        }
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
