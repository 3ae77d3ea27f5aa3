//! `tingshuo serve` under test, and what the tests read back from it: the one place
//! that writes an agent config, starts the agent, waits for it by probing, restarts
//! it and reads its records (`records --json`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{free_port, free_port_span, sip_ping, tingshuo, wait_until, Kamailio, Proc};

/// How long an agent may take to load its models and pre-synthesize every script
/// line before it listens: minutes on a loaded 2-core machine. A crash or a bad
/// config ends the wait at once (the process exits).
pub const AGENT_START_LIMIT: Duration = Duration::from_secs(600);

/// An agent's configuration, before it is written: free ports are picked when it is
/// written, and picked again when a port turned out to be taken (see [`AgentSetup::start`]).
#[derive(Clone)]
pub struct AgentSetup {
    dir: PathBuf,
    temp: Option<Arc<tempfile::TempDir>>,
    registrar: Option<(String, u16)>,
    /// Readiness is probed on the agent's own port (plus its registration logged),
    /// not through the registrar: see [`AgentSetup::registrar_behind_dispatcher`].
    probe_direct: bool,
    /// The records database, when not `records.db` in the agent's dir.
    store_path: Option<PathBuf>,
    /// `[store] url`: a shared PostgreSQL database instead of the SQLite file.
    store_url: Option<String>,
    sip_lines: String,
    /// The `[sip.tls]` table, after the `[sip]` lines.
    sip_tls: String,
    tail: String,
    rtp_ports: u16,
    env: Vec<(String, String)>,
}

/// A written agent configuration: its file and the ports in it.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub path: PathBuf,
    pub db: PathBuf,
    pub sip_port: u16,
    pub console_port: u16,
    pub rtp_min: u16,
    pub rtp_max: u16,
}

impl AgentConfig {
    /// Runs `tingshuo dial TARGET` on this config (one outbound call, then it exits);
    /// its log goes to `dial.log` beside the config.
    pub fn dial(&self, target: &str) -> Proc {
        self.dial_env(target, &[])
    }

    /// As [`AgentConfig::dial`], with environment variables (a shared store's password).
    pub fn dial_env(&self, target: &str, env: &[(&str, &str)]) -> Proc {
        let log = self.path.with_file_name("dial.log");
        let logf = std::fs::File::create(&log).expect("dial log");
        let child = tingshuo()
            .args(["dial", target, "--config"])
            .arg(&self.path)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("dial log"))
            .stderr(logf)
            .spawn()
            .expect("run tingshuo dial");
        Proc { child, log }
    }

    /// Adds a console operator beside this config (`tingshuo console add-operator`),
    /// before the agent starts.
    pub fn add_operator(&self, name: &str, password: &str) {
        let added = tingshuo()
            .args(["console", "add-operator", name, "--config"])
            .arg(&self.path)
            .env("TINGSHUO_OPERATOR_PASSWORD", password)
            .stdin(Stdio::null())
            .output()
            .expect("run tingshuo console add-operator");
        assert!(
            added.status.success(),
            "add-operator: {}",
            String::from_utf8_lossy(&added.stderr)
        );
    }
}

impl AgentSetup {
    /// An agent in direct mode (no registrar) with its config, records database and
    /// log in `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            temp: None,
            registrar: None,
            probe_direct: false,
            store_path: None,
            store_url: None,
            sip_lines: String::new(),
            sip_tls: String::new(),
            tail: String::new(),
            rtp_ports: 20,
            env: Vec::new(),
        }
    }

    /// As [`AgentSetup::new`] in a temp dir of its own, removed with the agent.
    pub fn temp() -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut setup = Self::new(temp.path());
        setup.temp = Some(Arc::new(temp));
        setup
    }

    /// Registers as `bot` (password `passbot`) on `kam`; ready once Kamailio relays
    /// an OPTIONS for `bot` to it.
    pub fn registrar(mut self, kam: &Kamailio) -> Self {
        self.registrar = Some((kam.addr(), kam.port));
        self
    }

    /// Registers as `bot` on `kam` as [`AgentSetup::registrar`] does, for a Kamailio
    /// that routes calls for `bot` through its dispatcher to several agents
    /// (sip-config/kamailio-agents.cfg, tests/support/dispatcher.rs): there an
    /// OPTIONS for `bot` through Kamailio may be answered by another agent, so this one
    /// is ready once it answers OPTIONS on its own port and has logged its registration.
    pub fn registrar_behind_dispatcher(mut self, kam: &Kamailio) -> Self {
        self.registrar = Some((kam.addr(), kam.port));
        self.probe_direct = true;
        self
    }

    /// Keeps the call records in `path` instead of `records.db` in the agent's dir
    /// (several agents may share one database).
    pub fn store_path(mut self, path: &Path) -> Self {
        self.store_path = Some(path.to_path_buf());
        self
    }

    /// Keeps the records in the PostgreSQL database at `url` (`[store] url`), with
    /// its password in the agent's environment as a deployment would have it.
    pub fn store_url(mut self, url: &str, password: &str) -> Self {
        self.store_url = Some(url.to_string());
        self.env("TINGSHUO_DB_PASSWORD", password)
    }

    /// Registers on `kam`'s TLS port (`sips:`), trusting its certificate, listens for
    /// TLS itself, and requires SRTP on every call (`[media] srtp = "required"`).
    /// Readiness is still probed through Kamailio's UDP port, which reaches the agent
    /// over TLS.
    pub fn registrar_tls(mut self, kam: &Kamailio) -> Self {
        let tls = kam.tls_port.expect("Kamailio::start_tls");
        self.registrar = Some((format!("sips:127.0.0.1:{tls}"), kam.port));
        self.sip_tls = format!(
            "[sip.tls]\nca_file = \"{}\"\n",
            kam.dir.path().join("kamailio.crt").display()
        );
        self.tail.push_str("[media]\nsrtp = \"required\"\n");
        self
    }

    /// Extra lines (each ending in `\n`) for the `[sip]` table.
    pub fn sip(mut self, lines: &str) -> Self {
        self.sip_lines.push_str(lines);
        self
    }

    /// TOML appended after the `[store]` table (new tables: `[agent]`, `[emergency]` …).
    pub fn toml(mut self, tail: &str) -> Self {
        self.tail.push_str(tail);
        self
    }

    /// How many RTP ports (RTP and RTCP pairs) the agent gets; 20 unless set.
    pub fn rtp_ports(mut self, n: u16) -> Self {
        self.rtp_ports = n;
        self
    }

    /// An environment variable for the agent process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Picks free ports and writes `tingshuo.toml` (and nothing else) into the dir.
    pub fn write(&self) -> AgentConfig {
        let path = self.dir.join("tingshuo.toml");
        let db = self
            .store_path
            .clone()
            .unwrap_or_else(|| self.dir.join("records.db"));
        let rtp_min = (free_port_span(self.rtp_ports + 1) + 1) & !1;
        let rtp_max = rtp_min + self.rtp_ports - 1;
        let sip_port = free_port();
        let console_port = free_port();
        let registration = match &self.registrar {
            Some((addr, _)) => {
                format!("registrars = [\"{addr}\"]\nuser = \"bot\"\npassword = \"passbot\"\n")
            }
            None => "registrars = []\n".to_string(),
        };
        // Watchdogs that react to the machine's speed stay out of tests that are not
        // about them: on a loaded 2-core machine one recognition can take seconds, and
        // the ASR watchdog (8 s) would turn a call into an emergency call, the turn-latency
        // shedding (p95 2.5 s) would refuse the next call. A test that sets its own
        // `[emergency]` or `[overload]` table gets exactly what it wrote.
        let mut load_tolerant = String::new();
        if !self.tail.contains("[emergency]") {
            load_tolerant
                .push_str("[emergency]\nasr_timeout_ms = 60000\nasr_queue_limit_ms = 60000\n");
        }
        if !self.tail.contains("[overload]") {
            load_tolerant.push_str("[overload]\nturn_latency_p95_ms = 0\n");
        }
        // With TLS (`registrar_tls`): a TLS listener on a port picked now, and the
        // `[sip.tls]` table after the `[sip]` lines.
        let tls = if self.sip_tls.is_empty() {
            String::new()
        } else {
            format!(
                "tls_listen = \"127.0.0.1:{}\"\n{}",
                free_port(),
                self.sip_tls
            )
        };
        let text = format!(
            "[sip]\nlisten = \"127.0.0.1:{sip_port}\"\n{registration}rtp_port_min = {rtp_min}\n\
rtp_port_max = {rtp_max}\n{}{tls}{load_tolerant}[console]\nlisten = \"127.0.0.1:{console_port}\"\n[store]\npath = \"{}\"\n{}{}",
            self.sip_lines,
            db.display(),
            self.store_url
                .as_ref()
                .map(|u| format!("url = \"{u}\"\n"))
                .unwrap_or_default(),
            self.tail
        );
        std::fs::write(&path, text).expect("write the agent config");
        AgentConfig {
            path,
            db,
            sip_port,
            console_port,
            rtp_min,
            rtp_max,
        }
    }

    /// Writes the config and starts the agent, waiting until it is ready (see
    /// [`Agent::wait_ready`]). Ports are free only when checked: when one was
    /// taken meanwhile the agent fails to bind, and it is started again on fresh ports.
    pub fn start(&self) -> Agent {
        let mut last = String::new();
        let t0 = Instant::now();
        for _ in 0..3 {
            let config = self.write();
            match self.spawn(config, "agent.log").wait_ready(false) {
                Ok(agent) => {
                    eprintln!(
                        "agent ready in {:.1} s (pid {})",
                        t0.elapsed().as_secs_f64(),
                        agent.pid()
                    );
                    return agent;
                }
                Err(log) if log.contains("Address already in use") => last = log,
                Err(log) => panic!("the agent did not become ready; log:\n{log}"),
            }
        }
        panic!("the agent found its ports taken three times; last log:\n{last}")
    }

    /// As [`AgentSetup::start`] on a config already written (e.g. after
    /// `console add-operator` ran on it).
    pub fn start_with(&self, config: AgentConfig) -> Agent {
        self.spawn(config, "agent.log")
            .wait_ready(false)
            .unwrap_or_else(|log| panic!("the agent did not become ready; log:\n{log}"))
    }

    fn spawn(&self, config: AgentConfig, log_name: &str) -> Agent {
        let log = self.dir.join(log_name);
        let logf = std::fs::File::create(&log).expect("agent log file");
        let mut cmd = tingshuo();
        cmd.arg("serve")
            .arg("--config")
            .arg(&config.path)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("agent log"))
            .stderr(logf);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start tingshuo serve");
        Agent {
            proc: Proc { child, log },
            config: config.path.clone(),
            db: config.db.clone(),
            sip_port: config.sip_port,
            console_port: config.console_port,
            rtp_min: config.rtp_min,
            rtp_max: config.rtp_max,
            setup: self.clone(),
        }
    }
}

/// A running `tingshuo serve` (stopped when dropped; its log is printed when the
/// test fails, see [`Proc`]).
pub struct Agent {
    pub proc: Proc,
    pub config: PathBuf,
    pub db: PathBuf,
    pub sip_port: u16,
    pub console_port: u16,
    pub rtp_min: u16,
    pub rtp_max: u16,
    setup: AgentSetup,
}

impl Agent {
    /// Ready means: registered and reachable through Kamailio (an OPTIONS for `bot`
    /// relayed to the agent and answered), or in direct mode answering OPTIONS itself.
    /// After a restart on the same registrar, the old registration still routes to
    /// the same address, so the new process must also have logged its registration.
    /// Behind a dispatcher ([`AgentSetup::registrar_behind_dispatcher`]): answering
    /// OPTIONS on its own port, and registered.
    fn wait_ready(mut self, restarted: bool) -> Result<Agent, String> {
        let direct = self.setup.registrar.is_none() || self.setup.probe_direct;
        let probe_port = match &self.setup.registrar {
            Some(r) if !direct => r.1,
            _ => self.sip_port,
        };
        let must_register =
            self.setup.registrar.is_some() && (restarted || self.setup.probe_direct);
        let mut exited = false;
        let ready = wait_until(AGENT_START_LIMIT, || {
            if !matches!(self.proc.child.try_wait(), Ok(None)) {
                exited = true;
                return true;
            }
            (!must_register || self.log_text().contains("registered"))
                && sip_ping(probe_port, "bot") == Some(200)
        });
        if ready && !exited {
            Ok(self)
        } else {
            let mut log = self.log_text();
            if !ready {
                log.push_str(&format!("\n(not ready after {AGENT_START_LIMIT:?})"));
            }
            Err(log)
        }
    }

    /// Starts the agent again on the same config (the caller stopped this one);
    /// its log goes to `agent.restart.log`.
    pub fn restart(&self) -> Agent {
        let config = AgentConfig {
            path: self.config.clone(),
            db: self.db.clone(),
            sip_port: self.sip_port,
            console_port: self.console_port,
            rtp_min: self.rtp_min,
            rtp_max: self.rtp_max,
        };
        self.setup
            .spawn(config, "agent.restart.log")
            .wait_ready(true)
            .unwrap_or_else(|log| panic!("the restarted agent did not become ready; log:\n{log}"))
    }

    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.sip_port))
    }

    pub fn pid(&self) -> u32 {
        self.proc.child.id()
    }

    pub fn log_text(&self) -> String {
        self.proc.log_text()
    }

    /// The directory holding the config, records database and logs.
    pub fn dir(&self) -> &Path {
        &self.setup.dir
    }

    /// Resident memory in KiB.
    pub fn rss_kb(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    /// Panics (with the log) when the agent process has exited.
    pub fn assert_alive(&mut self, after: &str) {
        if let Ok(Some(status)) = self.proc.child.try_wait() {
            panic!(
                "the agent exited ({status}) after {after}; log:\n{}",
                self.proc.log_text()
            );
        }
    }

    /// `tingshuo records ARGS --json` on this agent's config.
    pub fn records(&self, args: &[&str]) -> serde_json::Value {
        records(&self.config, args)
    }
}

/// `tingshuo records ARGS --json --config CONFIG`, parsed.
pub fn records(config: &Path, args: &[&str]) -> serde_json::Value {
    let out = tingshuo()
        .arg("records")
        .args(args)
        .arg("--json")
        .arg("--config")
        .arg(config)
        .output()
        .expect("run tingshuo records");
    assert!(
        out.status.success(),
        "records {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("records --json prints JSON")
}

/// Synthesizes `text` at 8 kHz with `tingshuo say` (into `dir/NAME.wav`) and
/// returns the samples.
pub fn say(dir: &Path, name: &str, text: &str) -> Vec<i16> {
    say_at(dir, name, text, 8000)
}

/// [`say`] at `rate` (16000 for a wideband phone's source).
pub fn say_at(dir: &Path, name: &str, text: &str, rate: u32) -> Vec<i16> {
    let out = dir.join(format!("{name}.wav"));
    let res = tingshuo()
        .args(["say", text, "-o"])
        .arg(&out)
        .args(["--rate", &rate.to_string()])
        .output()
        .expect("run tingshuo say");
    assert!(
        res.status.success(),
        "tingshuo say failed for {text:?}: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    hound::WavReader::open(&out)
        .expect("read synthesized wav")
        .into_samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect()
}

/// `secs` seconds of digital silence at 8 kHz.
pub fn silence(secs: f32) -> Vec<i16> {
    vec![0; (secs * 8000.0) as usize]
}

/// What a phone plays into a call, at 8 kHz: each line after its pause (seconds of
/// silence first), then `tail` seconds of silence so the phone stays on the line.
pub fn caller_lines(dir: &Path, lines: &[(f32, &str)], tail: f32) -> Vec<i16> {
    let mut out = Vec::new();
    for (i, (pause, text)) in lines.iter().enumerate() {
        out.extend(silence(*pause));
        out.extend(say(dir, &format!("line{i}"), text));
    }
    out.extend(silence(tail));
    out
}
