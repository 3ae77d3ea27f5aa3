//! Resilience writes on the records store: emergency-mode calls (mode, voice
//! message, callback to the caller) and restart consistency (calls a crash left
//! open are closed as `interrupted`, keeping everything they collected).

use super::db::vals;
use super::{show_callback_at, Store, StoreError};

/// Outcome written on calls that were in progress when the agent died.
pub const INTERRUPTED: &str = "interrupted";

impl Store {
    /// Sets the call's mode: `normal` or `emergency`.
    pub fn set_mode(&mut self, call_id: i64, mode: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.exec(
                "UPDATE calls SET mode = ?2 WHERE id = ?1",
                vals![call_id, mode],
            )
        })?;
        Ok(())
    }

    /// Records the WAV file of a voice message the caller left.
    pub fn set_voice_message(&mut self, call_id: i64, path: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.exec(
                "UPDATE calls SET voice_message = ?2 WHERE id = ?1",
                vals![call_id, path],
            )
        })?;
        Ok(())
    }

    /// Schedules a callback to `target` (the number to dial) for `call_id` and shows
    /// it on the call (`callback_at`), in one transaction.
    pub fn schedule_callback(
        &mut self,
        call_id: i64,
        due_at: &str,
        target: &str,
        created_at: &str,
    ) -> Result<i64, StoreError> {
        self.tx(|tx| {
            let id = tx.insert(
                "INSERT INTO callbacks (call_id, due_at, status, created_at, target) VALUES (?1, ?2, 'pending', ?3, ?4)",
                vals![call_id, due_at, created_at, target],
            )?;
            show_callback_at(tx, call_id, due_at)?;
            Ok(id)
        })
    }

    /// Closes every call this agent left open (no `ended_at`) by a crash as
    /// [`INTERRUPTED`]; turns, fields and callbacks stay as they are. Returns the
    /// ids closed. Run at start-up, before any new call is written. With an agent
    /// name set ([`Store::set_agent`]) only that agent's calls (and calls that name
    /// none) are closed: other agents sharing the database may be mid-call.
    pub fn close_interrupted(&mut self, ended_at: &str) -> Result<Vec<i64>, StoreError> {
        let agent = self.agent.clone();
        self.tx(|tx| {
            const MINE: &str =
                "ended_at IS NULL AND (CAST(?1 AS TEXT) IS NULL OR agent IS NULL OR agent = ?1)";
            let ids = tx
                .query(
                    &format!("SELECT id FROM calls WHERE {MINE} ORDER BY id"),
                    vals![&agent],
                )?
                .iter()
                .map(|r| r.get::<i64>(0))
                .collect::<Result<Vec<_>, _>>()?;
            tx.exec(
                &format!(
                    "UPDATE calls SET ended_at = ?2, outcome = COALESCE(outcome, ?3) WHERE {MINE}"
                ),
                vals![&agent, ended_at, INTERRUPTED],
            )?;
            Ok(ids)
        })
    }

    /// The call's mode and voice message (emergency-mode details `show` leaves out).
    pub fn call_mode(&self, call_id: i64) -> Result<(String, Option<String>), StoreError> {
        self.with(|c| {
            let r = c.query_one(
                "SELECT mode, voice_message FROM calls WHERE id = ?1",
                vals![call_id],
            )?;
            Ok((r.get(0)?, r.get(1)?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{TurnLine, TurnWrite};
    use std::collections::BTreeMap;

    #[test]
    fn emergency_call_keeps_mode_message_and_callback_target() {
        let mut s = Store::in_memory().unwrap();
        let id = s
            .start_call("demo.md", "inbound", Some("1001"), &BTreeMap::new(), "t0")
            .unwrap();
        s.set_mode(id, "emergency").unwrap();
        s.set_voice_message(id, "/tmp/m.wav").unwrap();
        s.schedule_callback(id, "2026-11-25T12:00:00+08:00", "1001", "t1")
            .unwrap();
        assert_eq!(
            s.call_mode(id).unwrap(),
            ("emergency".to_string(), Some("/tmp/m.wav".to_string()))
        );
        let target: String = s
            .with(|c| {
                c.query_one("SELECT target FROM callbacks WHERE call_id = ?1", vals![id])?
                    .get(0)
            })
            .unwrap();
        assert_eq!(target, "1001");
        assert_eq!(s.show(id).unwrap().callbacks[0].status, "pending");
    }

    #[test]
    fn open_calls_are_closed_as_interrupted_with_their_data() {
        let mut s = Store::in_memory().unwrap();
        let open = s
            .start_call("demo.md", "inbound", Some("1001"), &BTreeMap::new(), "t0")
            .unwrap();
        let done = s
            .start_call("demo.md", "inbound", Some("1002"), &BTreeMap::new(), "t0")
            .unwrap();
        s.end_call(done, "completed", "t1").unwrap();
        s.write_turn(
            open,
            &TurnWrite {
                at: "t1".into(),
                lines: vec![TurnLine {
                    speaker: "callee".into(),
                    text: "明天上午再联系我".into(),
                    ..Default::default()
                }],
                fields: vec![("phone".into(), "13900001111".into())],
                callback_due: Some("2026-11-26T09:00:00+08:00".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.close_interrupted("t2").unwrap(), vec![open]);
        let d = s.show(open).unwrap();
        assert_eq!(d.call.outcome.as_deref(), Some(INTERRUPTED));
        assert_eq!(d.turns.len(), 1);
        assert_eq!(d.fields["phone"], "13900001111");
        assert_eq!(d.callbacks[0].status, "pending");
        assert_eq!(
            s.show(done).unwrap().call.outcome.as_deref(),
            Some("completed")
        );
        assert!(s.close_interrupted("t3").unwrap().is_empty());
    }
}
