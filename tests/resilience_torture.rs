//! Torture messages in the style of RFC 4475 (our own messages, written from the
//! RFC's descriptions of each case) sent to a running `tingshuo serve` while a SIPp
//! call is in progress. Each valid-but-odd request must be served, each broken one
//! must get a clear 4xx/5xx (or be dropped when it cannot even be answered), and the
//! call in progress must complete.

mod resilience_support;
mod support;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use resilience_support::*;
use support::*;

/// What a case must get back.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// This final status.
    Code(u16),
    /// Any 4xx/5xx final status (the reason phrase says why).
    Error,
    /// Nothing (cannot be answered: no usable Via, not SIP at all).
    Dropped,
}

/// Sends `msg` (with `{me}` and `{agent}` filled in) and returns the first final
/// status line received within 1.5 s.
fn probe(agent: u16, msg: &str) -> Option<String> {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let me = sock.local_addr().expect("addr");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let msg = msg
        .replace("{me}", &me.to_string())
        .replace("{agent}", &format!("127.0.0.1:{agent}"))
        .replace('\n', "\r\n");
    sock.send_to(msg.as_bytes(), ("127.0.0.1", agent))
        .expect("send");
    let end = Instant::now() + Duration::from_millis(1500);
    let mut buf = vec![0u8; 65536];
    while Instant::now() < end {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            let code: u16 = text
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            if code >= 200 {
                return Some(text.lines().next().unwrap_or("").to_string());
            }
        }
    }
    None
}

fn options(extra: &str) -> String {
    format!(
        "OPTIONS sip:bot@{{agent}} SIP/2.0\nVia: SIP/2.0/UDP {{me}};branch=z9hG4bK{}\nMax-Forwards: 70\n\
From: <sip:t@127.0.0.1>;tag=t1\nTo: <sip:bot@127.0.0.1>\nCall-ID: {}@torture\nCSeq: 1 OPTIONS\n{extra}Content-Length: 0\n\n",
        rand_token(),
        rand_token()
    )
}

fn rand_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    format!(
        "{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn invite(sdp: &str, headers: &str) -> String {
    format!(
        "INVITE sip:bot@{{agent}} SIP/2.0\nVia: SIP/2.0/UDP {{me}};branch=z9hG4bK{}\nMax-Forwards: 70\n\
From: <sip:t@127.0.0.1>;tag=t1\nTo: <sip:bot@127.0.0.1>\nCall-ID: {}@torture\nCSeq: 1 INVITE\n\
Contact: <sip:t@{{me}}>\n{headers}Content-Type: application/sdp\nContent-Length: {}\n\n{sdp}",
        rand_token(),
        rand_token(),
        sdp.replace('\n', "\r\n").len()
    )
}

fn cases() -> Vec<(&'static str, String, Expect)> {
    let good_sdp =
        "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 9 RTP/AVP 0\n";
    vec![
        // Valid but unusual (RFC 4475 §3.1.1): compact forms, folding, odd spacing.
        (
            "compact headers and line folding",
            format!(
                "OPTIONS sip:bot@{{agent}} SIP/2.0\nv:  SIP/2.0/UDP {{me}};branch=z9hG4bK{}\nMax-Forwards: 70\n\
f: <sip:t@127.0.0.1>\n ;tag=t2\nt: <sip:bot@127.0.0.1>\ni: {}@torture\nCSeq:\n  1 OPTIONS\nl: 0\n\n",
                rand_token(),
                rand_token()
            ),
            Expect::Code(200),
        ),
        (
            "escaped characters in the Request-URI user part",
            options("").replacen("sip:bot@", "sip:%62ot@", 1),
            Expect::Code(200),
        ),
        (
            "unknown header with odd characters",
            options("X-Torture: !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ 中文\n"),
            Expect::Code(200),
        ),
        // Broken requests (RFC 4475 §3.1.2).
        (
            "missing Call-ID",
            options("").replace("Call-ID: ", "X-Was-Call-ID: "),
            Expect::Error,
        ),
        (
            "CSeq method does not match the request method",
            options("").replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE"),
            Expect::Error,
        ),
        (
            "non-numeric CSeq",
            options("").replace("CSeq: 1 OPTIONS", "CSeq: one OPTIONS"),
            Expect::Error,
        ),
        (
            "Content-Length larger than the datagram",
            options("").replace("Content-Length: 0", "Content-Length: 9999"),
            Expect::Error,
        ),
        (
            "negative Content-Length",
            options("").replace("Content-Length: 0", "Content-Length: -5"),
            Expect::Error,
        ),
        (
            "unknown SIP version",
            options("").replacen("SIP/2.0\n", "SIP/7.0\n", 1),
            Expect::Code(505),
        ),
        (
            "unknown method",
            options("")
                .replacen("OPTIONS sip:", "NEWMETHOD sip:", 1)
                .replace("CSeq: 1 OPTIONS", "CSeq: 1 NEWMETHOD"),
            Expect::Error,
        ),
        (
            "Request-URI with an unknown scheme",
            options("").replacen("sip:bot@{agent}", "nope:bot@{agent}", 1),
            Expect::Code(416),
        ),
        (
            "INVITE with a malformed SDP offer",
            invite("v=0\nthis is not sdp\nm=audio notaport RTP/AVP\n", ""),
            Expect::Code(488),
        ),
        (
            "INVITE offering only codecs we do not have",
            invite(&good_sdp.replace("RTP/AVP 0", "RTP/AVP 18"), ""),
            Expect::Code(488),
        ),
        // Cannot be answered: no Via to send a response to, or not SIP at all.
        (
            "request without Via",
            options("").replace("Via: ", "X-No-Via: "),
            Expect::Dropped,
        ),
        (
            "binary garbage",
            "\u{0}\u{1}\u{2}SIP? 绝对不是\u{7f}".to_string(),
            Expect::Dropped,
        ),
        (
            "large but valid request (60 KB header in one datagram)",
            options(&format!("X-Big: {}\n", "a".repeat(60_000))),
            Expect::Code(200),
        ),
    ]
}

#[test]
fn torture_messages_get_clear_answers_while_a_call_continues() {
    require("sipp", "sip-tester");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut agent = start_agent_on(dir.path(), None, "", &[]);

    // One ordinary call (10 s) in progress throughout.
    let target = format!("127.0.0.1:{}", agent.sip_port);
    let d = dir.path().to_path_buf();
    let call = std::thread::spawn(move || {
        sipp(target, &d)
            .args(["-sn", "uac"])
            .args(["-s", "bot", "-m", "1", "-d", "10000"])
            .args(["-timeout", "40s", "-timeout_error"])
            .output()
            .expect("sipp runs")
    });
    let up = wait_until(Duration::from_secs(10), || {
        agent.proc.log_text().contains("incoming call")
    });
    assert!(up, "the SIPp call reached the agent");

    let mut failures = Vec::new();
    for (name, msg, expect) in cases() {
        let got = probe(agent.sip_port, &msg);
        let code = got
            .as_deref()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse::<u16>().ok());
        let ok = match expect {
            Expect::Code(c) => code == Some(c),
            Expect::Error => matches!(code, Some(400..=599)),
            Expect::Dropped => got.is_none(),
        };
        eprintln!("{name}: {got:?} (expected {expect:?})");
        if !ok {
            failures.push(format!("{name}: got {got:?}, expected {expect:?}"));
        }
        // Every answer names the problem (a reason phrase, not a bare code).
        if let Some(line) = &got {
            if code.is_some_and(|c| c >= 400) && line.split_whitespace().count() < 3 {
                failures.push(format!("{name}: no reason phrase in {line:?}"));
            }
        }
    }
    assert!(
        agent.proc.child_alive(),
        "the agent survived; log:\n{}",
        agent.proc.log_text()
    );
    assert_eq!(
        probe(agent.sip_port, &options(""))
            .and_then(|l| l.split_whitespace().nth(1).map(String::from)),
        Some("200".to_string()),
        "still serving after the torture"
    );
    let out = call.join().expect("sipp thread");
    assert!(
        out.status.success(),
        "the call in progress completed: {}\n{}",
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n"),
        agent.proc.log_text()
    );
    assert!(
        failures.is_empty(),
        "torture cases:\n{}",
        failures.join("\n")
    );
}

trait Alive {
    fn child_alive(&mut self) -> bool;
}

impl Alive for Proc {
    fn child_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}
