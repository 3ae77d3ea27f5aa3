//! Helpers shared by the resilience tests: the agent under test with its own config,
//! caller audio, `/metrics` and `/readyz` over plain HTTP.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;

/// Places `part` so that it starts `at` seconds into the caller's audio.
pub fn place(audio: &mut Vec<i16>, at: f32, part: &[i16]) {
    let start = (at * 8000.0) as usize;
    assert!(audio.len() <= start, "caller audio parts overlap");
    audio.resize(start, 0);
    audio.extend_from_slice(part);
}

/// Writes the agent's config and starts `tingshuo serve`. `extra` is appended TOML:
/// bare keys at its start still belong to the `[emergency]` table (the ASR watchdog
/// is relaxed, as in every test not about it, unless `extra` sets it).
pub fn start_agent(dir: &Path, kamailio: &Kamailio, extra: &str, env: &[(&str, &str)]) -> Agent {
    start_agent_on(dir, Some(kamailio), extra, env)
}

/// As [`start_agent`]; without a Kamailio the agent runs in direct mode.
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
    let mut emergency = format!(
        "[emergency]\nmessage_silence_secs = 2.0\nmessages_dir = \"{}\"\n",
        messages_dir(dir).display()
    );
    for key in ["asr_timeout_ms", "asr_queue_limit_ms"] {
        if !extra.contains(key) {
            emergency.push_str(&format!("{key} = 60000\n"));
        }
    }
    let mut setup = AgentSetup::new(dir)
        .sip(sip_extra)
        .toml(&emergency)
        .toml(extra);
    if let Some(k) = kamailio {
        setup = setup.registrar(k);
    }
    for (k, v) in env {
        setup = setup.env(k, v);
    }
    setup.start()
}

/// Where the agent in `dir` keeps emergency messages.
pub fn messages_dir(dir: &Path) -> PathBuf {
    dir.join("messages")
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
