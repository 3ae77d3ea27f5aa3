//! Campaign rows, the do-not-call list and callback bookkeeping.
//!
//! A campaign lives in the store so that re-running the same CSV resumes it:
//! rows already finished (answered, given up, skipped) are not dialled again,
//! and a row waiting for a retry keeps its attempt count. Callbacks are claimed
//! with a lease (their `due_at` moves past the expected call) so that a crash
//! mid-call makes the callback due again instead of losing it, and two agents
//! sharing a database do not both dial it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::db::{vals, Row};
use super::{Store, StoreError};

/// Version 4: campaigns and their rows, and the do-not-call list.
pub(super) const SCHEMA_V4: &str = "
CREATE TABLE IF NOT EXISTS campaigns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS campaign_rows (
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
    line INTEGER NOT NULL,
    target TEXT NOT NULL,
    vars_json TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'skipped')),
    attempts INTEGER NOT NULL DEFAULT 0,
    outcome TEXT,
    last_call_id INTEGER,
    next_at TEXT,
    PRIMARY KEY (campaign_id, line)
);
CREATE TABLE IF NOT EXISTS do_not_call (
    target TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    added_at TEXT NOT NULL
);
";

/// Where a campaign row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    /// Not dialled yet, or waiting for a retry.
    Pending,
    /// Finished: answered, or given up after its last attempt.
    Done,
    /// Never dialled: on the do-not-call list.
    Skipped,
}

impl RowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RowStatus::Pending => "pending",
            RowStatus::Done => "done",
            RowStatus::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "done" => RowStatus::Done,
            "skipped" => RowStatus::Skipped,
            _ => RowStatus::Pending,
        }
    }
}

/// One CSV row of a campaign and how far it got.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignRow {
    /// Line of the CSV file the row came from (the header is line 1).
    pub line: u64,
    pub target: String,
    pub vars: BTreeMap<String, String>,
    pub status: RowStatus,
    pub attempts: u32,
    /// Last outcome (busy, no_answer, completed, do_not_call_list …).
    pub outcome: Option<String>,
    /// Record id of the last call placed for the row.
    pub last_call_id: Option<i64>,
    /// Earliest time of the next attempt (RFC 3339), for a row waiting to be retried.
    pub next_at: Option<String>,
}

/// A callback with what is needed to dial it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallbackState {
    pub id: i64,
    pub call_id: i64,
    pub due_at: String,
    pub status: String,
    /// Whom to dial; `None`: the original call's peer.
    pub target: Option<String>,
    /// The original call's peer.
    pub peer: Option<String>,
    /// The original call's script variables.
    pub vars: BTreeMap<String, String>,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Record id of the call that dialled the callback.
    pub dialled_call_id: Option<i64>,
    /// The original call's script (its source: a path or `embedded:…`).
    pub script: Option<String>,
}

fn vars_from_json(s: &str) -> BTreeMap<String, String> {
    serde_json::from_str(s).unwrap_or_default()
}

fn campaign_row(r: &Row) -> Result<CampaignRow, StoreError> {
    Ok(CampaignRow {
        line: r.get(0)?,
        target: r.get(1)?,
        vars: vars_from_json(&r.get::<String>(2)?),
        status: RowStatus::parse(&r.get::<String>(3)?),
        attempts: r.get(4)?,
        outcome: r.get(5)?,
        last_call_id: r.get(6)?,
        next_at: r.get(7)?,
    })
}

impl Store {
    /// The campaign for `source` (the CSV's canonical path), created on first use.
    pub fn open_campaign(&mut self, source: &str, now: &str) -> Result<i64, StoreError> {
        self.with(|c| {
            c.exec(
                "INSERT INTO campaigns (source, created_at) VALUES (?1, ?2) ON CONFLICT(source) DO NOTHING",
                vals![source, now],
            )?;
            c.query_one("SELECT id FROM campaigns WHERE source = ?1", vals![source])?
                .get(0)
        })
    }

    /// The stored rows of a campaign, by line.
    pub fn campaign_rows(&self, campaign: i64) -> Result<Vec<CampaignRow>, StoreError> {
        self.with(|c| {
            c.query(
                "SELECT line, target, vars_json, status, attempts, outcome, last_call_id, next_at
                 FROM campaign_rows WHERE campaign_id = ?1 ORDER BY line",
                vals![campaign],
            )?
            .iter()
            .map(campaign_row)
            .collect()
        })
    }

    /// Writes a row's state (inserting it the first time). A claim on the row
    /// (see [`Store::claim_campaign_row`]) is left as it is.
    pub fn save_campaign_row(
        &mut self,
        campaign: i64,
        row: &CampaignRow,
    ) -> Result<(), StoreError> {
        let vars = serde_json::to_string(&row.vars).unwrap_or_else(|_| "{}".into());
        self.with(|c| {
            c.exec(
                "INSERT INTO campaign_rows (campaign_id, line, target, vars_json, status, attempts, outcome, last_call_id, next_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(campaign_id, line) DO UPDATE SET target = excluded.target, vars_json = excluded.vars_json,
                 status = excluded.status, attempts = excluded.attempts, outcome = excluded.outcome,
                 last_call_id = excluded.last_call_id, next_at = excluded.next_at",
                vals![
                    campaign,
                    row.line,
                    &row.target,
                    vars,
                    row.status.as_str(),
                    row.attempts,
                    &row.outcome,
                    row.last_call_id,
                    &row.next_at
                ],
            )
        })?;
        Ok(())
    }

    /// Claims row `line` for dialling by `agent` for `lease_secs` (on the database's
    /// clock). Succeeds only while the row is pending, still at `attempts_seen`
    /// attempts (nobody dialled it since this agent looked), and not claimed by
    /// another agent whose lease is still running. Two agents racing for one row:
    /// exactly one update matches, because the database re-checks the condition on
    /// the row it locked. A dead agent's claim lapses with its lease.
    pub fn claim_campaign_row(
        &mut self,
        campaign: i64,
        line: u64,
        attempts_seen: u32,
        agent: &str,
        lease_secs: u32,
    ) -> Result<bool, StoreError> {
        let n = self.with(|c| {
            c.exec(
                "UPDATE campaign_rows SET claimed_by = ?4, lease_until = NOW_PLUS_SECS(?5)
                 WHERE campaign_id = ?1 AND line = ?2 AND status = 'pending' AND attempts = ?3
                 AND (claimed_by IS NULL OR claimed_by = ?4 OR lease_until < NOW_UTC)",
                vals![campaign, line, attempts_seen, agent, lease_secs],
            )
        })?;
        Ok(n == 1)
    }

    /// Extends this agent's claim on a row whose call is still going on.
    pub fn renew_campaign_claims(
        &mut self,
        agent: &str,
        lease_secs: u32,
    ) -> Result<u64, StoreError> {
        self.with(|c| {
            c.exec(
                "UPDATE campaign_rows SET lease_until = NOW_PLUS_SECS(?2) WHERE claimed_by = ?1",
                vals![agent, lease_secs],
            )
        })
    }

    /// Gives up this agent's claim on a row (its call ended; a retry may go to any agent).
    pub fn release_campaign_row(
        &mut self,
        campaign: i64,
        line: u64,
        agent: &str,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.exec(
                "UPDATE campaign_rows SET claimed_by = NULL, lease_until = NULL
                 WHERE campaign_id = ?1 AND line = ?2 AND claimed_by = ?3",
                vals![campaign, line, agent],
            )
        })?;
        Ok(())
    }

    /// Adds `target` (normalised by the caller) to the do-not-call list.
    pub fn add_do_not_call(
        &mut self,
        target: &str,
        reason: &str,
        at: &str,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.exec(
                "INSERT INTO do_not_call (target, reason, added_at) VALUES (?1, ?2, ?3) ON CONFLICT(target) DO NOTHING",
                vals![target, reason, at],
            )
        })?;
        Ok(())
    }

    /// Every number on the stored do-not-call list.
    pub fn do_not_call_list(&self) -> Result<Vec<String>, StoreError> {
        self.with(|c| {
            c.query("SELECT target FROM do_not_call ORDER BY target", &[])?
                .iter()
                .map(|r| r.get(0))
                .collect()
        })
    }

    fn callback_state(r: &Row) -> Result<CallbackState, StoreError> {
        Ok(CallbackState {
            id: r.get(0)?,
            call_id: r.get(1)?,
            due_at: r.get(2)?,
            status: r.get(3)?,
            target: r.get(4)?,
            peer: r.get(5)?,
            vars: vars_from_json(&r.get::<Option<String>>(6)?.unwrap_or_default()),
            attempts: r.get(7)?,
            last_error: r.get(8)?,
            dialled_call_id: r.get(9)?,
            script: r.get(10)?,
        })
    }

    const CALLBACK_COLUMNS: &'static str =
        "SELECT b.id, b.call_id, b.due_at, b.status, b.target, c.peer, c.vars_json, b.attempts, b.last_error, b.dialled_call_id, c.script
         FROM callbacks b LEFT JOIN calls c ON c.id = b.call_id";

    /// Every pending callback with its original call's peer and variables. Due
    /// times are compared by the caller after parsing: they may carry different
    /// UTC offsets, so comparing them as text would be wrong.
    pub fn pending_callbacks(&self) -> Result<Vec<CallbackState>, StoreError> {
        let sql = format!(
            "{} WHERE b.status = 'pending' ORDER BY b.id",
            Self::CALLBACK_COLUMNS
        );
        self.with(|c| {
            c.query(&sql, &[])?
                .iter()
                .map(Self::callback_state)
                .collect()
        })
    }

    /// One callback, whatever its status.
    pub fn callback(&self, id: i64) -> Result<CallbackState, StoreError> {
        let sql = format!("{} WHERE b.id = ?1", Self::CALLBACK_COLUMNS);
        self.with(|c| c.query_opt(&sql, vals![id]))?
            .as_ref()
            .map(Self::callback_state)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("callback {id}")))
    }

    /// Claims a pending callback for dialling: counts the attempt and moves its
    /// due time to `lease_until`, so that it is due again if this process dies
    /// mid-call. Returns false when someone else claimed it first.
    pub fn claim_callback(
        &mut self,
        id: i64,
        attempts_seen: u32,
        lease_until: &str,
    ) -> Result<bool, StoreError> {
        let n = self.with(|c| {
            c.exec(
                "UPDATE callbacks SET attempts = attempts + 1, due_at = ?3
                 WHERE id = ?1 AND status = 'pending' AND attempts = ?2",
                vals![id, attempts_seen, lease_until],
            )
        })?;
        Ok(n == 1)
    }

    /// Records how a dialled callback went: `done`, `failed`, or `pending` again
    /// with a new due time for a retry.
    pub fn finish_callback(
        &mut self,
        id: i64,
        status: &str,
        due_at: Option<&str>,
        last_error: Option<&str>,
        dialled_call_id: Option<i64>,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.exec(
                "UPDATE callbacks SET status = ?2, due_at = COALESCE(?3, due_at), last_error = ?4,
                 dialled_call_id = COALESCE(?5, dialled_call_id) WHERE id = ?1",
                vals![id, status, due_at, last_error, dialled_call_id],
            )
        })?;
        Ok(())
    }

    /// Schedules a callback for `call_id` to `target` (or the call's peer).
    /// The dialogue engine schedules its own through [`Store::write_turn`]; this is
    /// for operators and tests.
    pub fn add_callback(
        &mut self,
        call_id: i64,
        due_at: &str,
        target: Option<&str>,
        created_at: &str,
    ) -> Result<i64, StoreError> {
        self.with(|c| {
            c.insert(
                "INSERT INTO callbacks (call_id, due_at, status, created_at, target) VALUES (?1, ?2, 'pending', ?3, ?4)",
                vals![call_id, due_at, created_at, target],
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: u64, target: &str) -> CampaignRow {
        CampaignRow {
            line,
            target: target.into(),
            vars: BTreeMap::from([("name".to_string(), "王芳".to_string())]),
            status: RowStatus::Pending,
            attempts: 0,
            outcome: None,
            last_call_id: None,
            next_at: None,
        }
    }

    #[test]
    fn campaign_rows_round_trip_and_resume_by_source() {
        let mut s = Store::in_memory().unwrap();
        let c = s
            .open_campaign("/tmp/a.csv", "2026-11-25T10:00:00+08:00")
            .unwrap();
        assert_eq!(
            s.open_campaign("/tmp/a.csv", "2026-11-25T11:00:00+08:00")
                .unwrap(),
            c
        );
        let other = s
            .open_campaign("/tmp/b.csv", "2026-11-25T10:00:00+08:00")
            .unwrap();
        assert_ne!(other, c);
        let mut r = row(2, "1001");
        s.save_campaign_row(c, &r).unwrap();
        r.status = RowStatus::Done;
        r.attempts = 2;
        r.outcome = Some("completed".into());
        r.last_call_id = Some(7);
        s.save_campaign_row(c, &r).unwrap();
        s.save_campaign_row(c, &row(3, "1002")).unwrap();
        let rows = s.campaign_rows(c).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0], r);
        assert_eq!(rows[1].status, RowStatus::Pending);
        assert!(s.campaign_rows(other).unwrap().is_empty());
    }

    #[test]
    fn do_not_call_entries_are_unique() {
        let mut s = Store::in_memory().unwrap();
        s.add_do_not_call("1005", "config", "t").unwrap();
        s.add_do_not_call("1005", "callee asked", "t").unwrap();
        s.add_do_not_call("13800138000", "callee asked", "t")
            .unwrap();
        assert_eq!(s.do_not_call_list().unwrap(), vec!["1005", "13800138000"]);
    }

    #[test]
    fn a_callback_is_claimed_once_and_finished_with_its_call() {
        let mut s = Store::in_memory().unwrap();
        let vars = BTreeMap::from([("name".to_string(), "李雷".to_string())]);
        let call = s
            .start_call("s.md", "inbound", Some("sip:1001@pbx"), &vars, "t0")
            .unwrap();
        let id = s
            .add_callback(call, "2026-11-25T10:00:00+08:00", None, "t0")
            .unwrap();
        let pending = s.pending_callbacks().unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].peer.as_deref(), Some("sip:1001@pbx"));
        assert_eq!(pending[0].vars, vars);
        assert!(s
            .claim_callback(id, 0, "2026-11-25T10:30:00+08:00")
            .unwrap());
        assert!(
            !s.claim_callback(id, 0, "2026-11-25T10:30:00+08:00")
                .unwrap(),
            "a second claim with a stale attempt count fails"
        );
        let dialled = s
            .start_call("s.md", "outbound", Some("1001"), &vars, "t1")
            .unwrap();
        s.finish_callback(id, "done", None, None, Some(dialled))
            .unwrap();
        let cb = s.callback(id).unwrap();
        assert_eq!(cb.status, "done");
        assert_eq!(cb.attempts, 1);
        assert_eq!(cb.dialled_call_id, Some(dialled));
        assert_eq!(cb.due_at, "2026-11-25T10:30:00+08:00");
        assert!(s.pending_callbacks().unwrap().is_empty());
        assert!(matches!(s.callback(99), Err(StoreError::NotFound(_))));
    }
}
