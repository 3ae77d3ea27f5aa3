//! Several agents on one database: each says it is alive (`agents.seen_at`, on the
//! database's clock), each call names the agent that carries it, and a survivor
//! closes the calls of an agent that stopped saying so. With one agent (the SQLite
//! default) this is the restart recovery it always was.

use super::db::{vals, Row};
use super::{Store, StoreError, INTERRUPTED};
use serde::Serialize;

/// Version 6: the agent that carries each call, agents' heartbeats, and claims
/// on campaign rows (which agent dials a row, until when).
pub(super) const SCHEMA_V6: &str = "
ALTER TABLE calls ADD COLUMN agent TEXT;
ALTER TABLE campaign_rows ADD COLUMN claimed_by TEXT;
ALTER TABLE campaign_rows ADD COLUMN lease_until TEXT;
CREATE TABLE IF NOT EXISTS agents (
    name TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    console TEXT
);
";

/// An agent as the shared store knows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AgentRow {
    pub name: String,
    pub started_at: String,
    /// Its last heartbeat, UTC on the database's clock.
    pub seen_at: String,
    /// Its console's base URL, for links to calls it carries.
    pub console: Option<String>,
    /// Whether it was seen within the liveness window asked for.
    pub alive: bool,
}

/// A call in progress on another agent sharing the store.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteCall {
    pub id: i64,
    pub agent: String,
    pub peer: Option<String>,
    pub script: String,
    pub started_at: String,
    pub turns: i64,
    /// That agent's console, where the call can be listened to.
    pub console: Option<String>,
    /// Whether that agent is still beating (a dead agent's calls are about to close).
    pub agent_alive: bool,
}

impl Store {
    /// Calls in progress on agents other than `me`, newest first.
    pub fn live_calls_elsewhere(
        &self,
        me: &str,
        alive_secs: u32,
    ) -> Result<Vec<RemoteCall>, StoreError> {
        self.with(|c| {
            c.query(
                "SELECT c.id, c.agent, c.peer, c.script, c.started_at,
                 (SELECT COUNT(*) FROM turns t WHERE t.call_id = c.id), a.console,
                 CASE WHEN a.seen_at >= NOW_PLUS_SECS(?2) THEN 1 ELSE 0 END
                 FROM calls c LEFT JOIN agents a ON a.name = c.agent
                 WHERE c.ended_at IS NULL AND c.agent IS NOT NULL AND c.agent <> ?1
                 ORDER BY c.id DESC LIMIT 200",
                vals![me, -(alive_secs as i64)],
            )?
            .iter()
            .map(|r| {
                Ok(RemoteCall {
                    id: r.get(0)?,
                    agent: r.get(1)?,
                    peer: r.get(2)?,
                    script: r.get(3)?,
                    started_at: r.get(4)?,
                    turns: r.get(5)?,
                    console: r.get(6)?,
                    agent_alive: r.get(7)?,
                })
            })
            .collect()
        })
    }

    /// Names the agent this store writes for: new calls carry the name, and
    /// [`Store::close_interrupted`] closes only this agent's calls (and those of
    /// agents no longer alive), never a live neighbour's.
    pub fn set_agent(&mut self, name: &str) {
        self.agent = Some(name.to_string());
    }

    /// The agent this store writes for.
    pub fn agent(&self) -> Option<&str> {
        self.agent.as_deref()
    }

    /// Says this agent is alive (and where its console is), on the database's clock.
    pub fn heartbeat(&self, console: Option<&str>) -> Result<(), StoreError> {
        let Some(name) = self.agent.clone() else {
            return Ok(());
        };
        self.with(|c| {
            c.exec(
                "INSERT INTO agents (name, started_at, seen_at, console) VALUES (?1, NOW_UTC, NOW_UTC, ?2)
                 ON CONFLICT(name) DO UPDATE SET seen_at = excluded.seen_at, console = excluded.console",
                vals![name, console],
            )
        })?;
        Ok(())
    }

    /// Every agent that ever wrote here; `alive` when seen within `alive_secs`.
    pub fn agents(&self, alive_secs: u32) -> Result<Vec<AgentRow>, StoreError> {
        self.with(|c| {
            c.query(
                "SELECT name, started_at, seen_at, console, CASE WHEN seen_at >= NOW_PLUS_SECS(?1) THEN 1 ELSE 0 END
                 FROM agents ORDER BY name",
                vals![-(alive_secs as i64)],
            )?
            .iter()
            .map(|r: &Row| {
                Ok(AgentRow {
                    name: r.get(0)?,
                    started_at: r.get(1)?,
                    seen_at: r.get(2)?,
                    console: r.get(3)?,
                    alive: r.get(4)?,
                })
            })
            .collect()
        })
    }

    /// Closes as [`INTERRUPTED`] the open calls of agents not seen for `dead_secs`
    /// (killed, or their machine died), keeping their turns, fields and callbacks.
    /// Calls of live agents, and this agent's own, are left alone. Returns the ids.
    pub fn close_calls_of_dead_agents(
        &mut self,
        ended_at: &str,
        dead_secs: u32,
    ) -> Result<Vec<i64>, StoreError> {
        let me = self.agent.clone().unwrap_or_default();
        self.tx(|tx| {
            let ids = tx
                .query(
                    "SELECT c.id FROM calls c JOIN agents a ON a.name = c.agent
                     WHERE c.ended_at IS NULL AND c.agent <> ?1 AND a.seen_at < NOW_PLUS_SECS(?2)
                     ORDER BY c.id",
                    vals![&me, -(dead_secs as i64)],
                )?
                .iter()
                .map(|r| r.get::<i64>(0))
                .collect::<Result<Vec<_>, _>>()?;
            for id in &ids {
                tx.exec(
                    "UPDATE calls SET ended_at = ?2, outcome = COALESCE(outcome, ?3) WHERE id = ?1 AND ended_at IS NULL",
                    vals![*id, ended_at, INTERRUPTED],
                )?;
            }
            Ok(ids)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_survivor_closes_only_a_dead_agents_calls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.db");
        let mut a = Store::open(&path).unwrap();
        a.set_agent("a");
        let mut b = Store::open(&path).unwrap();
        b.set_agent("b");
        a.heartbeat(Some("http://127.0.0.1:8081")).unwrap();
        b.heartbeat(None).unwrap();
        let vars = BTreeMap::new();
        let on_a = a
            .start_call("s.md", "inbound", Some("1001"), &vars, "t0")
            .unwrap();
        let on_b = b
            .start_call("s.md", "inbound", Some("1002"), &vars, "t0")
            .unwrap();
        assert_eq!(a.list(5).unwrap()[1].agent.as_deref(), Some("a"));
        // Both alive: nothing to close, and b restarting closes only b's calls.
        assert!(b.close_calls_of_dead_agents("t1", 10).unwrap().is_empty());
        assert_eq!(b.close_interrupted("t1").unwrap(), vec![on_b]);
        assert!(a.show(on_a).unwrap().call.ended_at.is_none());
        // a stops beating: 0 s of silence already counts as dead for the test.
        std::thread::sleep(std::time::Duration::from_millis(20));
        b.heartbeat(None).unwrap();
        assert_eq!(b.close_calls_of_dead_agents("t2", 0).unwrap(), vec![on_a]);
        let d = b.show(on_a).unwrap();
        assert_eq!(d.call.outcome.as_deref(), Some(INTERRUPTED));
        let elsewhere = a.live_calls_elsewhere("b", 10).unwrap();
        assert!(
            elsewhere.is_empty(),
            "a's call is closed now: {elsewhere:?}"
        );
        let on_b2 = b
            .start_call("s.md", "inbound", Some("1003"), &vars, "t3")
            .unwrap();
        let elsewhere = a.live_calls_elsewhere("a", 10).unwrap();
        assert_eq!(elsewhere.len(), 1);
        assert_eq!((elsewhere[0].id, elsewhere[0].agent.as_str()), (on_b2, "b"));
        assert!(elsewhere[0].agent_alive);
        assert!(b.live_calls_elsewhere("b", 10).unwrap().is_empty());
        let agents = b.agents(10).unwrap();
        assert_eq!(agents.len(), 2);
        assert_eq!(agents[0].console.as_deref(), Some("http://127.0.0.1:8081"));
        assert!(agents.iter().all(|r| r.alive));
    }
}
