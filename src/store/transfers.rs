//! Transfers to a person and callbacks people make.
//!
//! Each attempt at handing a call to a person (REFER or bridge) is a row: method,
//! target, result, the deciding SIP status and the times to ringing and to answer.
//! A callback promised "by a person" (no transfer was possible, or it failed) goes
//! to `person_callbacks`, never to `callbacks`: the agent's own dialler must not
//! place it, people work through the list (console history, `records show`).

use serde::Serialize;

use super::db::vals;
use super::{show_callback_at, Store, StoreError};

/// Version 5: transfer attempts and callbacks for people.
pub(super) const SCHEMA_V5: &str = "
CREATE TABLE IF NOT EXISTS transfers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id INTEGER NOT NULL REFERENCES calls(id),
    at TEXT NOT NULL,
    reason TEXT NOT NULL,
    method TEXT NOT NULL,
    target TEXT NOT NULL,
    result TEXT NOT NULL,
    code INTEGER,
    ring_ms INTEGER,
    answer_ms INTEGER,
    summary TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS transfers_call ON transfers(call_id);
CREATE TABLE IF NOT EXISTS person_callbacks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id INTEGER NOT NULL REFERENCES calls(id),
    due_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'cancelled')),
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS person_callbacks_status ON person_callbacks(status, due_at);
";

/// One transfer attempt as stored.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct TransferRow {
    pub at: String,
    /// Why the transfer was asked for (`caller_asked`, `not_understood`, `operator`, `script`).
    pub reason: String,
    /// `refer` or `bridge`.
    pub method: String,
    pub target: String,
    /// `connected`, `refused`, `busy`, `no_answer`, `unreachable` or `abandoned`.
    pub result: String,
    pub code: Option<u16>,
    /// From the transfer request to the person's phone ringing.
    pub ring_ms: Option<u64>,
    /// From the REFER / INVITE to the person answering.
    pub answer_ms: Option<u64>,
    pub summary: String,
}

/// A callback a person is to make.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PersonCallback {
    pub id: i64,
    pub call_id: i64,
    pub due_at: String,
    pub reason: String,
    pub status: String,
}

impl Store {
    pub fn add_transfer(&mut self, call_id: i64, t: &TransferRow) -> Result<(), StoreError> {
        self.with(|c| {
            c.exec(
                "INSERT INTO transfers (call_id, at, reason, method, target, result, code, ring_ms, answer_ms, summary)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                vals![
                    call_id,
                    &t.at,
                    &t.reason,
                    &t.method,
                    &t.target,
                    &t.result,
                    t.code,
                    t.ring_ms,
                    t.answer_ms,
                    &t.summary
                ],
            )
        })?;
        Ok(())
    }

    pub fn transfers(&self, call_id: i64) -> Result<Vec<TransferRow>, StoreError> {
        self.with(|c| {
            c.query(
                "SELECT at, reason, method, target, result, code, ring_ms, answer_ms, summary
                 FROM transfers WHERE call_id = ?1 ORDER BY id",
                vals![call_id],
            )?
            .iter()
            .map(|r| {
                Ok(TransferRow {
                    at: r.get(0)?,
                    reason: r.get(1)?,
                    method: r.get(2)?,
                    target: r.get(3)?,
                    result: r.get(4)?,
                    code: r.get(5)?,
                    ring_ms: r.get(6)?,
                    answer_ms: r.get(7)?,
                    summary: r.get(8)?,
                })
            })
            .collect()
        })
    }

    /// Stores a callback for a person to make (never dialled by the agent).
    pub fn add_person_callback(
        &mut self,
        call_id: i64,
        due_at: &str,
        reason: &str,
        created_at: &str,
    ) -> Result<i64, StoreError> {
        self.tx(|tx| {
            let id = tx.insert(
                "INSERT INTO person_callbacks (call_id, due_at, reason, status, created_at) VALUES (?1, ?2, ?3, 'pending', ?4)",
                vals![call_id, due_at, reason, created_at],
            )?;
            show_callback_at(tx, call_id, due_at)?;
            Ok(id)
        })
    }

    /// Callbacks for people of one call (`call_id`) or, with `None`, every pending one.
    pub fn person_callbacks(
        &self,
        call_id: Option<i64>,
    ) -> Result<Vec<PersonCallback>, StoreError> {
        const COLUMNS: &str = "SELECT id, call_id, due_at, reason, status FROM person_callbacks";
        let rows = self.with(|c| match call_id {
            Some(id) => c.query(
                &format!("{COLUMNS} WHERE call_id = ?1 ORDER BY id"),
                vals![id],
            ),
            None => c.query(
                &format!("{COLUMNS} WHERE status = 'pending' ORDER BY due_at"),
                &[],
            ),
        })?;
        rows.iter()
            .map(|r| {
                Ok(PersonCallback {
                    id: r.get(0)?,
                    call_id: r.get(1)?,
                    due_at: r.get(2)?,
                    reason: r.get(3)?,
                    status: r.get(4)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_and_person_callbacks_are_stored_apart_from_the_diallers_callbacks() {
        let mut s = Store::in_memory().expect("store");
        let id = s
            .start_call(
                "s.md",
                "inbound",
                Some("sip:1001@x"),
                &Default::default(),
                "2026-12-05T08:00:00+08:00",
            )
            .expect("call");
        let row = TransferRow {
            at: "2026-12-05T08:01:00+08:00".into(),
            reason: "caller_asked".into(),
            method: "bridge".into(),
            target: "2001".into(),
            result: "busy".into(),
            code: Some(486),
            ring_ms: None,
            answer_ms: None,
            summary: "转人工".into(),
        };
        s.add_transfer(id, &row).expect("transfer");
        assert_eq!(s.transfers(id).expect("rows"), vec![row]);
        s.add_person_callback(
            id,
            "2026-12-05T08:31:00+08:00",
            "transfer failed: busy",
            "2026-12-05T08:01:00+08:00",
        )
        .expect("callback");
        let pending = s.person_callbacks(None).expect("pending");
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].reason, "transfer failed: busy");
        assert_eq!(s.person_callbacks(Some(id)).expect("of call").len(), 1);
        // The agent's dialler never sees it.
        assert!(s.pending_callbacks().expect("dialler").is_empty());
        let detail = s.show(id).expect("show");
        assert_eq!(detail.transfers.len(), 1);
        assert_eq!(detail.person_callbacks.len(), 1);
    }
}
