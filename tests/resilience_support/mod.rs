//! Helpers shared by the resilience tests: the agent under test with its own config,
//! caller audio, `/metrics` and `/readyz` over plain HTTP.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::support::*;

/// Synthesizes `text` at 8 kHz with `tingshuo say`.
pub fn say(dir: &Path, name: &str, text: &str) -> Vec<i16> {
    let out = dir.join(format!("{name}.wav"));
    let status = tingshuo()
        .args(["say", text, "-o"])
        .arg(&out)
        .args(["--rate", "8000"])
        .status()
        .expect("run tingshuo say");
    assert!(status.success(), "tingshuo say failed for {text:?}");
    hound::WavReader::open(&out)
        .expect("read synthesized wav")
        .into_samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect()
}

pub fn silence(secs: f32) -> Vec<i16> {
    vec![0; (secs * 8000.0) as usize]
}

/// Places `part` so that it starts `at` seconds into the caller's audio.
pub fn place(audio: &mut Vec<i16>, at: f32, part: &[i16]) {
    let start = (at * 8000.0) as usize;
    assert!(audio.len() <= start, "caller audio parts overlap");
    audio.resize(start, 0);
    audio.extend_from_slice(part);
}

pub struct Agent {
    pub proc: Proc,
    pub db: PathBuf,
    pub messages: PathBuf,
    pub console: u16,
    pub sip: u16,
    pub config: PathBuf,
}

/// Writes the agent's config and starts `tingshuo serve`. `extra` is appended TOML:
/// bare keys at its start still belong to the `[emergency]` table.
/// Free ports are only free when checked: a port taken meanwhile by another process
/// gets a fresh set of ports (three tries).
pub fn start_agent(dir: &Path, kamailio: &Kamailio, extra: &str, env: &[(&str, &str)]) -> Agent {
    start_agent_on(dir, Some(kamailio), extra, env)
}

/// As [`start_agent`]; without a Kamailio the agent runs in direct mode and is ready
/// when it answers OPTIONS itself.
pub fn start_agent_on(
    dir: &Path,
    kamailio: Option<&Kamailio>,
    extra: &str,
    env: &[(&str, &str)],
) -> Agent {
    start_agent_with(dir, kamailio, "", extra, env)
}

/// As [`start_agent_on`], with `sip_extra` lines added to the `[sip]` section.
pub fn start_agent_with(
    dir: &Path,
    kamailio: Option<&Kamailio>,
    sip_extra: &str,
    extra: &str,
    env: &[(&str, &str)],
) -> Agent {
    for _ in 0..2 {
        match try_start_agent(dir, kamailio, sip_extra, extra, env) {
            Ok(agent) => return agent,
            Err(log) if log.contains("Address already in use") => continue,
            Err(log) => panic!("the agent did not register on Kamailio; log:\n{log}"),
        }
    }
    try_start_agent(dir, kamailio, sip_extra, extra, env)
        .unwrap_or_else(|log| panic!("the agent did not register on Kamailio; log:\n{log}"))
}

fn try_start_agent(
    dir: &Path,
    kamailio: Option<&Kamailio>,
    sip_extra: &str,
    extra: &str,
    env: &[(&str, &str)],
) -> Result<Agent, String> {
    let config = dir.join("tingshuo.toml");
    let rtp = (free_port_span(21) + 1) & !1;
    let console = free_port();
    let sip = free_port();
    let db = dir.join("records.db");
    let messages = dir.join("messages");
    std::fs::write(
        &config,
        format!(
            "[sip]\nlisten = \"127.0.0.1:{}\"\nregistrars = [{}]\nuser = \"bot\"\npassword = \"passbot\"\n\
rtp_port_min = {}\nrtp_port_max = {}\n{sip_extra}[console]\nlisten = \"127.0.0.1:{console}\"\n[store]\npath = \"{}\"\n\
[emergency]\nmessage_silence_secs = 2.0\nmessages_dir = \"{}\"\n{extra}",
            sip,
            kamailio
                .map(|k| format!("\"{}\"", k.addr()))
                .unwrap_or_default(),
            rtp,
            rtp + 19,
            db.display(),
            messages.display(),
        ),
    )
    .expect("write config");
    let log = dir.join("agent.log");
    let logf = std::fs::File::create(&log).expect("log");
    let mut cmd = tingshuo();
    cmd.arg("serve")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(logf.try_clone().expect("log"))
        .stderr(logf);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("start tingshuo serve");
    let agent = Agent {
        proc: Proc { child, log },
        db,
        messages,
        console,
        sip,
        config: config.clone(),
    };
    let mut agent = agent;
    let registered = wait_until(Duration::from_secs(180), || {
        // A process that exited (bad config, crash) will never register.
        matches!(agent.proc.child.try_wait(), Ok(None))
            && sip_ping(kamailio.map_or(sip, |k| k.port), "bot") == Some(200)
            || matches!(agent.proc.child.try_wait(), Ok(Some(_)))
    });
    if registered && matches!(agent.proc.child.try_wait(), Ok(None)) {
        Ok(agent)
    } else {
        Err(agent.proc.log_text())
    }
}

/// `GET /metrics` from the console, as text (empty when unreachable).
pub fn metrics(port: u16) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The value of an unlabelled sample `name` in the exposition text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let mut parts = l.split_whitespace();
        (parts.next() == Some(name)).then(|| parts.next()?.parse().ok())?
    })
}

pub fn emergency_flag(port: u16) -> Option<f64> {
    metric(&metrics(port), "tingshuo_emergency_mode")
}

/// Starts `tingshuo serve` again on an existing config (a restart).
pub fn restart_agent(old: &Agent, kamailio: &Kamailio) -> Agent {
    let log = old.proc.log.with_extension("restart.log");
    let logf = std::fs::File::create(&log).expect("log");
    let child = tingshuo()
        .arg("serve")
        .arg("--config")
        .arg(&old.config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(logf.try_clone().expect("log"))
        .stderr(logf)
        .spawn()
        .expect("restart tingshuo serve");
    let mut agent = Agent {
        proc: Proc { child, log },
        db: old.db.clone(),
        messages: old.messages.clone(),
        console: old.console,
        sip: old.sip,
        config: old.config.clone(),
    };
    let up = wait_until(Duration::from_secs(180), || {
        matches!(agent.proc.child.try_wait(), Ok(Some(_)))
            || agent.proc.log_text().contains("registered")
                && sip_ping(kamailio.port, "bot") == Some(200)
    });
    assert!(
        up && matches!(agent.proc.child.try_wait(), Ok(None)),
        "the restarted agent did not register; log:\n{}",
        agent.proc.log_text()
    );
    agent
}

/// HTTP status of `GET path` on the console (None when unreachable).
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_whitespace().nth(1)?.parse().ok()
}

/// Sends one INVITE with an SDP offer straight to the agent over UDP and returns
/// its final response (status line and headers), or None after 5 s.
pub fn raw_invite(agent_port: u16) -> Option<String> {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
    let me = sock.local_addr().ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .ok()?;
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        me.port() + 2
    );
    let call_id = format!("raw-{}-{}", std::process::id(), me.port());
    let req = format!(
        "INVITE sip:bot@127.0.0.1:{agent_port} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{call_id};rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=r1\r\nTo: <sip:bot@127.0.0.1>\r\nCall-ID: {call_id}\r\n\
CSeq: 1 INVITE\r\nContact: <sip:probe@{me}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    sock.send_to(req.as_bytes(), ("127.0.0.1", agent_port))
        .ok()?;
    while std::time::Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            let code: u16 = text.split_whitespace().nth(1)?.parse().ok()?;
            if code >= 200 {
                // ACK the final response so the agent stops retransmitting it.
                let ack = format!(
                    "ACK sip:bot@127.0.0.1:{agent_port} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{call_id};rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=r1\r\nTo: <sip:bot@127.0.0.1>\r\nCall-ID: {call_id}\r\n\
CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
                );
                let _ = sock.send_to(ack.as_bytes(), ("127.0.0.1", agent_port));
                return Some(text);
            }
        }
    }
    None
}
