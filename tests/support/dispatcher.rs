//! Kamailio with agents behind its dispatcher module (sip-config/kamailio-agents.cfg),
//! and what the fail-over tests read from it: the agents' states as `kamcmd
//! dispatcher.list` shows them, and its log.
//!
//! Kamailio starts first with an empty dispatcher list (agents register on it while
//! they start), then [`Dispatcher::set_agents`] writes the list and reloads it, as an
//! operator would after adding an agent.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{free_port, require, wait_until, Kamailio};

/// The set of the agents in the config (`ds_select_dst("1", …)`).
pub const AGENT_SET: u32 = 1;
/// A second set holding the same agents, which no route uses: only the OPTIONS
/// probes change its states, so it times the probing alone (set 1 also changes when
/// a call to an agent fails).
pub const PROBE_ONLY_SET: u32 = 2;

/// Kamailio from sip-config/kamailio-agents.cfg; stopped when dropped.
pub struct Dispatcher {
    pub kam: Kamailio,
    list: PathBuf,
    ctl: String,
}

/// One destination of `kamcmd dispatcher.list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub set: u32,
    pub uri: String,
    /// State letter then probing letter: `AP` active, `IP` inactive, `TP` trying
    /// (failed a probe, fewer than `ds_probing_threshold` times), `D…` disabled.
    pub flags: String,
}

impl Destination {
    pub fn is_active(&self) -> bool {
        self.flags.starts_with('A')
    }
}

/// `sip:127.0.0.1:PORT`, an agent's entry in the dispatcher list.
pub fn agent_uri(agent: SocketAddr) -> String {
    format!("sip:{agent}")
}

impl Dispatcher {
    /// Kamailio on a free port with an empty dispatcher list, its list file and
    /// control socket in its temp dir.
    pub fn start() -> Self {
        require("kamcmd", "kamailio");
        let mut paths = None;
        let kam = Kamailio::start_from(
            "sip-config/kamailio-agents.cfg",
            free_port(),
            None,
            |dir, cfg| {
                let list = dir.join("dispatcher.list");
                std::fs::write(&list, "").expect("write the dispatcher list");
                let ctl = format!("unix:{}", dir.join("kamailio_ctl").display());
                let cfg = replace_once(
                    &cfg,
                    "/etc/kamailio/dispatcher.list\")",
                    &format!("{}\")", list.display()),
                );
                let cfg = replace_once(&cfg, "unix:/run/kamailio/kamailio_ctl", &ctl);
                paths = Some((list, ctl));
                cfg
            },
        );
        let (list, ctl) = paths.expect("the config was written");
        Self { kam, list, ctl }
    }

    pub fn port(&self) -> u16 {
        self.kam.port
    }

    pub fn addr(&self) -> String {
        self.kam.addr()
    }

    /// Writes the dispatcher list (every agent in [`AGENT_SET`] and in
    /// [`PROBE_ONLY_SET`], first inactive and probed: an agent takes calls only after
    /// it answered a probe), reloads it, and waits until Kamailio has seen every
    /// agent answer (all active in both sets).
    pub fn set_agents(&self, agents: &[SocketAddr]) {
        let mut text = String::from("# setid destination flags(1 inactive + 8 probing) priority\n");
        for set in [AGENT_SET, PROBE_ONLY_SET] {
            for a in agents {
                text.push_str(&format!("{set} {} 9 0\n", agent_uri(*a)));
            }
        }
        std::fs::write(&self.list, text).expect("write the dispatcher list");
        let out = self.kamcmd(&["dispatcher.reload"]);
        assert!(out.contains("reloaded"), "dispatcher.reload: {out}");
        let mut seen = Vec::new();
        let all_up = wait_until(Duration::from_secs(20), || {
            seen = self.destinations();
            seen.len() == 2 * agents.len() && seen.iter().all(Destination::is_active)
        });
        assert!(
            all_up,
            "Kamailio's probes did not find every agent up within 20 s: {seen:?}\nlog:\n{}",
            self.kam.proc.log_text()
        );
    }

    /// `kamcmd ARGS` on this instance's control socket: its output (stdout, then
    /// stderr).
    pub fn kamcmd(&self, args: &[&str]) -> String {
        let out = Command::new("kamcmd")
            .args(["-s", &self.ctl])
            .args(args)
            .output()
            .expect("run kamcmd");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Every destination of every set, as `kamcmd dispatcher.list` shows them.
    pub fn destinations(&self) -> Vec<Destination> {
        parse_dispatcher_list(&self.kamcmd(&["dispatcher.list"]))
    }

    /// The state of `agent` in `set`, if listed.
    pub fn state(&self, set: u32, agent: SocketAddr) -> Option<Destination> {
        let uri = agent_uri(agent);
        self.destinations()
            .into_iter()
            .find(|d| d.set == set && d.uri == uri)
    }

    pub fn log_text(&self) -> String {
        self.kam.proc.log_text()
    }

    pub fn dir(&self) -> &Path {
        self.kam.dir.path()
    }
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "sip-config/kamailio-agents.cfg names `{from}` exactly once"
    );
    text.replacen(from, to, 1)
}

/// Parses `kamcmd dispatcher.list`: `SET: { ID: n TARGETS: { DEST: { URI: … FLAGS: … } … } }`.
pub fn parse_dispatcher_list(text: &str) -> Vec<Destination> {
    let mut out = Vec::new();
    let mut set = None;
    let mut uri = None;
    for line in text.lines().map(str::trim) {
        if let Some(id) = line.strip_prefix("ID:") {
            set = id.trim().parse().ok();
        } else if let Some(u) = line.strip_prefix("URI:") {
            uri = Some(u.trim().to_string());
        } else if let Some(flags) = line.strip_prefix("FLAGS:") {
            if let (Some(set), Some(uri)) = (set, uri.take()) {
                out.push(Destination {
                    set,
                    uri,
                    flags: flags.trim().to_string(),
                });
            }
        }
    }
    out
}
