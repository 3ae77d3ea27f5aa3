//! Robustness: SIP torture messages in the style of RFC 4475 (our own messages, written
//! from the RFC's section descriptions), odd and hostile RTP, and broken configs and
//! scripts, thrown at `tingshuo serve` (black box, direct mode) WHILE a normal call is in
//! progress. Each bad message must get the right answer (400 whose reason phrase names
//! the problem, 488 for unusable SDP, 481/501/505/416/415 where those apply) or be
//! dropped when no answer is possible; the agent must stay up, keep answering OPTIONS,
//! and the call must keep its dialogue (the caller still gets a spoken reply after the
//! storm) and end normally with a record.

mod robust_support;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use robust_support::*;
use support::*;
use tingshuo::rtp::PortAllocator;

/// What the agent must do with one message.
#[derive(Debug, Clone)]
enum Expect {
    /// A final response with this code whose status line (reason phrase) contains
    /// each keyword, case-insensitively.
    Status(u16, Vec<&'static str>),
    /// No response at all (nothing to answer, or nowhere to send it).
    Silent,
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    expect: Expect,
}

fn st(code: u16, words: &[&'static str]) -> Expect {
    Expect::Status(code, words.to_vec())
}

/// The usual header set for an out-of-dialog request from `me` (one line each, CRLF).
fn common(method: &str, me: SocketAddr, agent: SocketAddr, id: &str) -> String {
    format!(
        "Via: SIP/2.0/UDP {me};branch=z9hG4bK-{id};rport\r\nMax-Forwards: 70\r\n\
From: <sip:torture@127.0.0.1>;tag=f{id}\r\nTo: <sip:bot@{agent}>\r\nCall-ID: {id}@torture\r\n\
CSeq: 1 {method}\r\n"
    )
}

fn without(headers: &str, name: &str) -> String {
    headers
        .split_inclusive("\r\n")
        .filter(|l| {
            !l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .collect()
}

fn sdp_invite(me: SocketAddr, agent: SocketAddr, id: &str, ctype: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!(
        "INVITE sip:bot@{agent} SIP/2.0\r\n{}Contact: <sip:torture@{me}>\r\nContent-Type: {ctype}\r\n\
Content-Length: {}\r\n\r\n",
        common("INVITE", me, agent, id),
        body.len()
    )
    .into_bytes();
    m.extend_from_slice(body);
    m
}

fn sdp(media: &str) -> Vec<u8> {
    format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n{media}")
        .into_bytes()
}

/// The torture messages for UDP, each with its expected handling.
fn udp_cases(me: SocketAddr, agent: SocketAddr, live_call_id: &str) -> Vec<Case> {
    let c = |m: &str, id: &str| common(m, me, agent, id);
    let opt = |id: &str, extra: &str| {
        format!(
            "OPTIONS sip:bot@{agent} SIP/2.0\r\n{}{extra}Content-Length: 0\r\n\r\n",
            c("OPTIONS", id)
        )
        .into_bytes()
    };
    let mut v = Vec::new();
    let mut case = |name, bytes: Vec<u8>, expect| {
        v.push(Case {
            name,
            bytes,
            expect,
        })
    };

    // --- Valid but odd: every one of these is a legal request and gets 200.
    case(
        "compact names, folded lines, odd spacing, unknown headers",
        format!(
            "OPTIONS sip:bot@{agent} SIP/2.0\r\nv:  SIP/2.0/UDP {me}\r\n   ;branch=z9hG4bK-fold;rport\r\n\
f: \"Torture \\\"Odd\\\" Caller\" <sip:t@127.0.0.1>;tag=a1\r\nt:<sip:bot@{agent}>\r\ni: fold@torture\r\n\
CSeq   :   7\t   OPTIONS\r\nMax-Forwards: 70\r\nX-Unknown-Header: a ; b = c , d\r\n\
NewFangledHeader:   newfangled value\r\n  continued on the next line\r\nl: 0\r\n\r\n"
        )
        .into_bytes(),
        st(200, &[]),
    );
    case(
        "escaped characters in the Request-URI and To",
        format!(
            "OPTIONS sip:%62%6F%74@{agent};unknownparam=%41%42 SIP/2.0\r\n{}Content-Length: 0\r\n\r\n",
            c("OPTIONS", "esc").replace(
                &format!("To: <sip:bot@{agent}>"),
                &format!("To: \"b%20o\" <sip:%62ot@{agent};x=%20>")
            )
        )
        .into_bytes(),
        st(200, &[]),
    );
    case(
        "bare LF line ends",
        opt("lf", "")
            .iter()
            .copied()
            .filter(|b| *b != b'\r')
            .collect(),
        st(200, &[]),
    );
    case(
        "mixed-case names, several Via values and lines",
        format!(
            "OPTIONS sip:bot@{agent} SIP/2.0\r\nVIA: SIP/2.0/UDP {me};branch=z9hG4bK-mv;rport, \
SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx1\r\nvia: SIP/2.0/TCP 192.0.2.2;branch=z9hG4bKx2\r\n\
max-forwards: 70\r\nfROM: <sip:t@127.0.0.1>;tag=mv\r\nto: <sip:bot@{agent}>\r\ncALL-id: mv@torture\r\n\
cseq: 1 OPTIONS\r\nAccept: application/sdp, text/plain;q=0.5, */*\r\nSupported: timer, path, \
replaces\r\nSupported: norefersub\r\ncontent-length: 0\r\n\r\n"
        )
        .into_bytes(),
        st(200, &[]),
    );
    case(
        "Content-Length shorter than the datagram (extra bytes dropped)",
        format!(
            "OPTIONS sip:bot@{agent} SIP/2.0\r\n{}Content-Length: 0\r\n\r\nstray bytes after the body",
            c("OPTIONS", "short")
        )
        .into_bytes(),
        st(200, &[]),
    );
    case(
        "10 000 unknown headers",
        opt("many", &"X:1\r\n".repeat(10_000)),
        st(200, &[]),
    );
    case(
        "a 60 000-character header value",
        opt("long", &format!("Subject: {}\r\n", "长".repeat(20_000))),
        st(200, &[]),
    );

    // --- Broken: 400 whose reason phrase names the problem.
    let body_of = |id: &str, cl: &str| {
        format!(
            "OPTIONS sip:bot@{agent} SIP/2.0\r\n{}Content-Type: text/plain\r\nContent-Length: {cl}\r\n\r\n0123456789",
            c("OPTIONS", id)
        )
        .into_bytes()
    };
    case(
        "Content-Length larger than the body (UDP)",
        body_of("cl1", "5000"),
        st(400, &["Content-Length"]),
    );
    case(
        "non-numeric Content-Length",
        body_of("cl2", "ten"),
        st(400, &["Content-Length"]),
    );
    case(
        "Content-Length beyond 2^64",
        body_of("cl3", "99999999999999999999999999"),
        st(400, &["Content-Length"]),
    );
    case(
        "negative Content-Length",
        body_of("cl4", "-3"),
        st(400, &["Content-Length"]),
    );
    for (name, header) in [
        ("missing Call-ID", "Call-ID"),
        ("missing CSeq", "CSeq"),
        ("missing From", "From"),
        ("missing To", "To"),
    ] {
        let id = format!("miss-{header}");
        case(
            name,
            format!(
                "OPTIONS sip:bot@{agent} SIP/2.0\r\n{}Content-Length: 0\r\n\r\n",
                without(&c("OPTIONS", &id), header)
            )
            .into_bytes(),
            st(400, &[header]),
        );
    }
    let cseq_case = |id: &str, cseq: &str| {
        format!(
            "OPTIONS sip:bot@{agent} SIP/2.0\r\n{}CSeq: {cseq}\r\nContent-Length: 0\r\n\r\n",
            without(&c("OPTIONS", id), "CSeq")
        )
        .into_bytes()
    };
    case(
        "negative CSeq",
        cseq_case("cs1", "-1 OPTIONS"),
        st(400, &["CSeq"]),
    );
    case(
        "CSeq beyond 2^32",
        cseq_case("cs2", "4294967296 OPTIONS"),
        st(400, &["CSeq"]),
    );
    case(
        "CSeq method differs from the request's",
        cseq_case("cs3", "1 INVITE"),
        st(400, &["CSeq"]),
    );
    case(
        "Via without a sent-by",
        format!(
            "OPTIONS sip:bot@{agent} SIP/2.0\r\n{}Via: SIP/2.0/UDP ;branch=z9hG4bK-nosentby\r\nContent-Length: 0\r\n\r\n",
            without(&c("OPTIONS", "via1"), "Via")
        )
        .into_bytes(),
        st(400, &["Via"]),
    );
    case(
        "Via with a non-SIP protocol",
        format!(
            "OPTIONS sip:bot@{agent} SIP/2.0\r\n{}Via: HTTP/1.1/UDP {me};branch=z9hG4bK-http\r\nContent-Length: 0\r\n\r\n",
            without(&c("OPTIONS", "via2"), "Via")
        )
        .into_bytes(),
        st(400, &["Via"]),
    );
    case(
        "unterminated quote in From",
        format!(
            "OPTIONS sip:bot@{agent} SIP/2.0\r\n{}From: \"Never closed <sip:t@127.0.0.1>;tag=q1\r\nContent-Length: 0\r\n\r\n",
            without(&c("OPTIONS", "quote"), "From")
        )
        .into_bytes(),
        st(400, &["From"]),
    );
    case(
        "NUL byte in a header value",
        opt("nul", "Subject: before\0after\r\n"),
        st(400, &["Subject"]),
    );
    let mut latin1 = opt("latin1", "Subject: caf\u{1}\r\n");
    if let Some(p) = latin1.iter().position(|b| *b == 1) {
        latin1[p] = 0xE9; // Latin-1 é: not UTF-8
    }
    case(
        "non-UTF-8 bytes in the header section",
        latin1,
        st(400, &["UTF-8"]),
    );
    case(
        "header line without a colon",
        opt("colon", "ThisLineHasNoColon\r\n"),
        st(400, &["colon"]),
    );
    case(
        "no blank line ends the header section",
        format!(
            "OPTIONS sip:bot@{agent} SIP/2.0\r\n{}",
            c("OPTIONS", "noend")
        )
        .into_bytes(),
        st(400, &["blank line"]),
    );

    // --- Other rejections that RFC 3261 names.
    case(
        "unknown SIP version",
        format!(
            "OPTIONS sip:bot@{agent} SIP/7.0\r\n{}Content-Length: 0\r\n\r\n",
            c("OPTIONS", "ver")
        )
        .into_bytes(),
        st(505, &[]),
    );
    case(
        "Request-URI with an unknown scheme",
        format!(
            "OPTIONS nobodyknows:this-scheme SIP/2.0\r\n{}Content-Length: 0\r\n\r\n",
            c("OPTIONS", "scheme")
        )
        .into_bytes(),
        st(416, &[]),
    );
    case(
        "unknown method",
        format!(
            "FROBNICATE sip:bot@{agent} SIP/2.0\r\n{}Content-Length: 0\r\n\r\n",
            c("FROBNICATE", "unkm")
        )
        .into_bytes(),
        st(501, &[]),
    );
    case(
        "known method the agent does not support",
        format!(
            "SUBSCRIBE sip:bot@{agent} SIP/2.0\r\n{}Event: presence\r\nContent-Length: 0\r\n\r\n",
            c("SUBSCRIBE", "subs")
        )
        .into_bytes(),
        st(405, &[]),
    );

    // --- Requests for dialogs or transactions that do not exist: 481.
    let in_dialog = |m: &str, id: &str, call_id: &str| {
        format!(
            "{m} sip:bot@{agent} SIP/2.0\r\n{}Call-ID: {call_id}\r\nContent-Length: 0\r\n\r\n",
            without(&c(m, id), "Call-ID").replace(
                &format!("To: <sip:bot@{agent}>"),
                &format!("To: <sip:bot@{agent}>;tag=nosuchtag")
            )
        )
        .into_bytes()
    };
    case(
        "BYE for an unknown dialog",
        in_dialog("BYE", "bye1", "nosuch@torture"),
        st(481, &[]),
    );
    case(
        "BYE with the live call's Call-ID but wrong tags",
        in_dialog("BYE", "bye2", live_call_id),
        st(481, &[]),
    );
    case(
        "INFO for an unknown dialog",
        in_dialog("INFO", "info1", "nosuch2@torture"),
        st(481, &[]),
    );
    case(
        "CANCEL for no transaction",
        format!(
            "CANCEL sip:bot@{agent} SIP/2.0\r\n{}Content-Length: 0\r\n\r\n",
            c("CANCEL", "cancel1")
        )
        .into_bytes(),
        st(481, &[]),
    );

    // --- Nothing to answer, or nowhere to answer to: dropped.
    case(
        "binary garbage",
        (0..700u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect(),
        Expect::Silent,
    );
    case("CRLF keep-alive", b"\r\n\r\n".to_vec(), Expect::Silent);
    case("empty datagram", Vec::new(), Expect::Silent);
    case(
        "request without Via",
        format!(
            "OPTIONS sip:bot@{agent} SIP/2.0\r\n{}Content-Length: 0\r\n\r\n",
            without(&c("OPTIONS", "novia"), "Via")
        )
        .into_bytes(),
        Expect::Silent,
    );
    case(
        "unsolicited response",
        format!(
            "SIP/2.0 200 OK\r\n{}Content-Length: 0\r\n\r\n",
            c("OPTIONS", "resp")
        )
        .into_bytes(),
        Expect::Silent,
    );
    case(
        "ACK matching no transaction",
        format!(
            "ACK sip:bot@{agent} SIP/2.0\r\n{}Content-Length: 0\r\n\r\n",
            c("ACK", "ack1")
        )
        .into_bytes(),
        Expect::Silent,
    );

    // --- Unusable SDP: 488 (415 for a body that is not SDP at all).
    case(
        "INVITE without an offer",
        sdp_invite(me, agent, "sdp0", "application/sdp", b""),
        st(488, &["SDP"]),
    );
    case(
        "SDP without a media line",
        sdp_invite(me, agent, "sdp1", "application/sdp", &sdp("")),
        st(488, &["audio"]),
    );
    case(
        "SDP with an unparseable c= address",
        sdp_invite(
            me,
            agent,
            "sdp2",
            "application/sdp",
            String::from_utf8_lossy(&sdp("m=audio 4000 RTP/AVP 0\r\n"))
                .replace("c=IN IP4 127.0.0.1", "c=IN IP4 999.1.2.3")
                .as_bytes(),
        ),
        st(488, &["c="]),
    );
    case(
        "SDP offering only unknown codecs",
        sdp_invite(
            me,
            agent,
            "sdp3",
            "application/sdp",
            &sdp("m=audio 4000 RTP/AVP 96 97\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:97 speex/16000\r\n"),
        ),
        st(488, &["codec"]),
    );
    case(
        "SDP with port 99999",
        sdp_invite(
            me,
            agent,
            "sdp4",
            "application/sdp",
            &sdp("m=audio 99999 RTP/AVP 0\r\n"),
        ),
        st(488, &["m=audio 99999"]),
    );
    case(
        "SDP with video only",
        sdp_invite(
            me,
            agent,
            "sdp5",
            "application/sdp",
            &sdp("m=video 4000 RTP/AVP 31\r\n"),
        ),
        st(488, &["audio"]),
    );
    case(
        "SDP body that is not UTF-8",
        sdp_invite(
            me,
            agent,
            "sdp6",
            "application/sdp",
            &[0xff, 0xfe, 0x00, 0x81, 0x0d, 0x0a],
        ),
        st(488, &["UTF-8"]),
    );
    case(
        "INVITE whose body is not SDP",
        sdp_invite(
            me,
            agent,
            "sdp7",
            "text/plain",
            b"hello, this is not a session description",
        ),
        st(415, &[]),
    );
    v
}

/// Sends `bytes` from `sock` and collects the responses that come within the window.
fn exchange(sock: &UdpSocket, agent: SocketAddr, bytes: &[u8]) -> Vec<String> {
    let _ = sock.send_to(bytes, agent);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 70_000];
    let end = Instant::now() + Duration::from_millis(1500);
    let mut final_at: Option<Instant> = None;
    while Instant::now() < end && final_at.is_none_or(|t| t.elapsed() < Duration::from_millis(200))
    {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if status_of(&text).is_some_and(|c| c >= 200) {
                final_at.get_or_insert_with(Instant::now);
            }
            out.push(text);
        }
    }
    out
}

fn status_of(resp: &str) -> Option<u16> {
    let mut it = resp.split_whitespace();
    (it.next()? == "SIP/2.0").then_some(())?;
    it.next()?.parse().ok()
}

/// ACK for a non-2xx final response to an INVITE (RFC 3261 §17.1.1.3), so the agent
/// stops retransmitting it.
fn ack_for(resp: &str, agent: SocketAddr) -> Option<Vec<u8>> {
    let get = |name: &str| {
        resp.lines()
            .find(|l| {
                l.to_ascii_lowercase()
                    .starts_with(&format!("{}:", name.to_ascii_lowercase()))
            })
            .map(|l| l.trim_end().to_string())
    };
    let cseq = get("CSeq")?;
    if !cseq.contains("INVITE") {
        return None;
    }
    let n = cseq.split_whitespace().nth(1)?;
    Some(
        format!(
            "ACK sip:bot@{agent} SIP/2.0\r\n{}\r\nMax-Forwards: 70\r\n{}\r\n{}\r\n{}\r\nCSeq: {n} ACK\r\nContent-Length: 0\r\n\r\n",
            get("Via")?,
            get("From")?,
            get("To")?,
            get("Call-ID")?
        )
        .into_bytes(),
    )
}

fn options_ok(sock: &UdpSocket, agent: SocketAddr, id: &str) -> bool {
    let me = sock.local_addr().expect("addr");
    let req = format!(
        "OPTIONS sip:bot@{agent} SIP/2.0\r\n{}Content-Length: 0\r\n\r\n",
        common("OPTIONS", me, agent, id)
    );
    exchange(sock, agent, req.as_bytes())
        .iter()
        .any(|r| status_of(r) == Some(200))
}

/// Random, truncated, oversized and inconsistent RTP and RTCP at the call's media port,
/// from the caller's own (latched) address and from a stranger.
fn rtp_storm(latched: &UdpSocket, agent_rtp: SocketAddr) -> usize {
    let mut rng = rand::rngs::StdRng::seed_from_u64(4475);
    let stranger = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let rtcp = SocketAddr::new(agent_rtp.ip(), agent_rtp.port() + 1);
    let mut sent = 0usize;
    let mut send = |sock: &UdpSocket, to: SocketAddr, b: &[u8]| {
        // The caller's socket is non-blocking: pace a little so the queue never fills.
        for _ in 0..20 {
            match sock.send_to(b, to) {
                Ok(_) => {
                    sent += 1;
                    return;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(_) => return,
            }
        }
    };
    let header = |rng: &mut rand::rngs::StdRng, first: u8, pt: u8| {
        let mut h = vec![first, pt];
        h.extend_from_slice(&rng.random::<u16>().to_be_bytes());
        h.extend_from_slice(&rng.random::<u32>().to_be_bytes());
        h.extend_from_slice(&rng.random::<u32>().to_be_bytes());
        h
    };
    for round in 0..400 {
        let sock = if round % 2 == 0 { latched } else { &stranger };
        // Pure noise of random length.
        let len = rng.random_range(0..1500);
        let noise: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        send(sock, agent_rtp, &noise);
        send(sock, rtcp, &noise);
        // Truncated header: version 2, fewer than 12 bytes.
        let cut = rng.random_range(1..12);
        let h = header(&mut rng, 0x80, 0);
        send(sock, agent_rtp, &h[..cut]);
        // 15 CSRCs announced, none present.
        send(sock, agent_rtp, &header(&mut rng, 0x8f, 0));
        // Extension announced with 0xFFFF words, payload far shorter.
        let mut ext = header(&mut rng, 0x90, 0);
        ext.extend_from_slice(&[0xbe, 0xde, 0xff, 0xff, 1, 2, 3, 4]);
        send(sock, agent_rtp, &ext);
        // Padding count larger than the packet.
        let mut pad = header(&mut rng, 0xa0, 0);
        pad.extend_from_slice(&[0x55; 10]);
        pad.push(255);
        send(sock, agent_rtp, &pad);
        // Valid PCMU with random sequence numbers and timestamps, odd sizes, odd PTs.
        let pt = [0u8, 8, 13, 101, 127, 72][rng.random_range(0..6)];
        let marker = if rng.random() { 0x80 } else { 0 };
        let mut p = header(&mut rng, 0x80, pt | marker);
        let n = [0usize, 1, 7, 160, 161, 1200][rng.random_range(0..6)];
        p.extend((0..n).map(|_| rng.random::<u8>()));
        send(sock, agent_rtp, &p);
        if round % 50 == 0 {
            // Oversized: the largest datagram IPv4 UDP carries.
            let mut big = header(&mut rng, 0x80, 0);
            big.resize(65_507, 0xff);
            send(sock, agent_rtp, &big);
            send(sock, rtcp, &big);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    sent
}

/// TCP torture: framing errors close the connection; the agent keeps serving TCP.
fn tcp_cases(agent: SocketAddr) -> Vec<String> {
    let mut problems = Vec::new();
    let connect = || {
        let s = TcpStream::connect(agent).expect("TCP connect to the agent");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s
    };
    let read_all = |s: &mut TcpStream| {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        let end = Instant::now() + Duration::from_secs(5);
        let mut closed = false;
        while Instant::now() < end {
            match s.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    break
                }
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        (String::from_utf8_lossy(&out).into_owned(), closed)
    };
    let tcp_options = |id: &str| {
        let mut s = connect();
        let me = s.local_addr().expect("addr");
        let req = format!(
            "OPTIONS sip:bot@{agent};transport=tcp SIP/2.0\r\n{}l: 0\r\n\r\n",
            common("OPTIONS", me, agent, id).replace("SIP/2.0/UDP", "SIP/2.0/TCP")
        );
        s.write_all(req.as_bytes()).expect("write");
        let mut got = String::new();
        let mut buf = [0u8; 4096];
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end && !got.contains("\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        status_of(&got)
    };
    if tcp_options("tcp1") != Some(200) {
        problems.push("TCP OPTIONS with compact headers: no 200".to_string());
    }
    // 100 KiB of headers with no blank line: over the size limit, must be closed.
    {
        let mut s = connect();
        let junk = "X-Filler: 0123456789abcdef0123456789abcdef\r\n".repeat(2500);
        let _ = s.write_all(format!("OPTIONS sip:bot@{agent} SIP/2.0\r\n{junk}").as_bytes());
        let (text, closed) = read_all(&mut s);
        if !closed {
            problems.push(format!(
                "TCP: 100 KiB without a blank line left the connection open ({text:?})"
            ));
        }
    }
    // Content-Length of a terabyte: cannot be framed, must be closed.
    {
        let mut s = connect();
        let me = s.local_addr().expect("addr");
        let req = format!(
            "OPTIONS sip:bot@{agent} SIP/2.0\r\n{}Content-Length: 1000000000000\r\n\r\nabc",
            common("OPTIONS", me, agent, "tcpcl").replace("SIP/2.0/UDP", "SIP/2.0/TCP")
        );
        let _ = s.write_all(req.as_bytes());
        let (text, closed) = read_all(&mut s);
        if !closed {
            problems.push(format!(
                "TCP: a terabyte Content-Length left the connection open ({text:?})"
            ));
        }
    }
    // Garbage bytes then close from our side; then a normal request on a new connection.
    {
        let mut s = connect();
        let _ = s.write_all(&[0u8, 0xff, 0x13, 0x37, b'\n', b'\n', 0x80]);
    }
    if tcp_options("tcp2") != Some(200) {
        problems.push("TCP OPTIONS after the torture: no 200".to_string());
    }
    problems
}

/// True while process `pid` runs (not exited, not a zombie).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z ") && !s.contains(") X "))
        .unwrap_or(false)
}

/// The whole storm, run beside the call: UDP torture, TCP torture, hostile RTP.
/// Returns (problems, result table, RTP datagrams sent).
fn storm(
    pid: u32,
    agent: SocketAddr,
    live_call_id: &str,
    latched: &UdpSocket,
    agent_rtp: SocketAddr,
) -> (Vec<String>, Vec<String>, usize) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let me = sock.local_addr().expect("addr");
    let mut problems = Vec::new();
    let mut table = Vec::new();
    for (i, case) in udp_cases(me, agent, live_call_id).into_iter().enumerate() {
        let responses = exchange(&sock, agent, &case.bytes);
        let finals: Vec<&String> = responses
            .iter()
            .filter(|r| status_of(r).is_some_and(|c| c >= 200))
            .collect();
        for f in &finals {
            if let Some(ack) = ack_for(f, agent) {
                let _ = sock.send_to(&ack, agent);
            }
        }
        let first_line = |r: &str| r.lines().next().unwrap_or("").to_string();
        let got =
            finals
                .first()
                .map(|f| first_line(f))
                .unwrap_or_else(|| match responses.first() {
                    Some(r) => format!("only {}", first_line(r)),
                    None => "silence".to_string(),
                });
        table.push(format!("{:<62} -> {got}", case.name));
        let ok = match &case.expect {
            Expect::Silent => responses.is_empty(),
            Expect::Status(code, words) => finals.first().is_some_and(|f| {
                let line = first_line(f).to_ascii_lowercase();
                status_of(f) == Some(*code)
                    && words.iter().all(|w| line.contains(&w.to_ascii_lowercase()))
            }),
        };
        if !ok {
            problems.push(format!(
                "{}: expected {:?}, got {got}",
                case.name, case.expect
            ));
        }
        if !running(pid) {
            problems.push(format!("the agent died after {:?}", case.name));
            return (problems, table, 0);
        }
        if i % 8 == 7 && !options_ok(&sock, agent, &format!("probe{i}")) {
            problems.push(format!("no 200 to OPTIONS after case {:?}", case.name));
        }
    }
    problems.extend(tcp_cases(agent));
    let sent = rtp_storm(latched, agent_rtp);
    if !running(pid) {
        problems.push("the agent died in the TCP or RTP storm".into());
    } else if !options_ok(&sock, agent, "after-storm") {
        problems.push("no 200 to OPTIONS after the whole storm".into());
    }
    (problems, table, sent)
}

#[test]
fn torture_messages_and_rtp_during_a_call_leave_the_call_and_agent_working() {
    let mut agent = start_agent(4);
    let dir = tempfile::tempdir().expect("tempdir");
    // Questions the demo script's knowledge base answers: the call stays at its
    // first step, so it lasts as long as the storm does.
    let questions = [
        say_frames(dir.path(), "q1", "请问宽带续费可以用哪些方式办理"),
        say_frames(dir.path(), "q2", "晚上上网的速度特别慢是怎么回事"),
        say_frames(dir.path(), "q3", "无线网的密码忘了要怎么修改"),
    ];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let base = (free_port_span(11) + 1) & !1;
    let ports = PortAllocator::new(base, base + 9).expect("caller ports");
    let mut call = rt
        .block_on(Caller::call(agent.sip_addr(), &ports, "torture"))
        .unwrap_or_else(|e| panic!("the normal call: {e}; log:\n{}", agent.proc.log_text()));
    assert!(
        call.wait_reply(Duration::from_secs(30), Duration::from_millis(900)),
        "the agent greeted the caller; log:\n{}",
        agent.proc.log_text()
    );

    // The storm runs beside the conversation.
    let worker = {
        let (pid, sip, live) = (agent.pid(), agent.sip_addr(), call.call_id.clone());
        let latched = call.rtp_socket.try_clone().expect("clone RTP socket");
        let agent_rtp = call.agent_rtp;
        std::thread::spawn(move || storm(pid, sip, &live, &latched, agent_rtp))
    };
    let mut asked = 0;
    while !worker.is_finished() && !call.is_ended() && asked < 12 {
        call.speak(&questions[asked % questions.len()]);
        asked += 1;
        call.wait_reply(Duration::from_secs(40), Duration::from_millis(900));
    }
    let (problems, table, sent) = worker.join().expect("storm thread");
    eprintln!("UDP torture results:\n{}\nsent {sent} hostile RTP/RTCP datagrams; asked {asked} questions meanwhile", table.join("\n"));
    agent.assert_alive("the storm");

    // The call still works: the agent still sends audio and answers a question.
    assert!(
        !call.is_ended(),
        "the call survived the storm: {:?}; log:\n{}",
        call.ended,
        agent.proc.log_text()
    );
    let before = call.rtp_received();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        call.rtp_received() > before + 20,
        "the agent's audio keeps flowing ({} -> {} packets)",
        before,
        call.rtp_received()
    );
    call.speak(&questions[0]);
    let replied = call.wait_reply(Duration::from_secs(40), Duration::from_millis(900));
    assert!(
        replied && !call.is_ended(),
        "the agent answered the caller's question after the storm; log:\n{}",
        agent.proc.log_text()
    );
    let ended = rt.block_on(call.finish());
    assert_eq!(
        ended,
        Some(tingshuo::sip::EndReason::LocalHangup),
        "the caller's BYE ended the call"
    );
    let mut counts = record_counts(&agent.db);
    wait_until(Duration::from_secs(20), || {
        counts = record_counts(&agent.db);
        counts.1 >= 1
    });
    assert_eq!(
        (counts.0, counts.1),
        (1, 1),
        "exactly the one real call was recorded, with its end and outcome; log:\n{}",
        agent.proc.log_text()
    );
    assert!(
        counts.2 >= 1,
        "the caller's questions were recorded as turns"
    );
    agent.assert_alive("the call");
    assert!(
        problems.is_empty(),
        "torture problems:\n{}\n\nall results:\n{}",
        problems.join("\n"),
        table.join("\n")
    );
}

/// Broken scripts and configs fail fast with the file, the place and the fix named.
/// (tests/cli.rs already covers a misspelt key, a wrong value type and a missing file.)
#[test]
fn broken_scripts_and_configs_are_refused_with_the_place_and_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let out = tingshuo()
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned()
                + &String::from_utf8_lossy(&out.stdout),
        )
    };
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).expect("write");
        p.to_string_lossy().into_owned()
    };

    // Config: TOML syntax error (unterminated string) names the file and the line.
    let p = write(
        "syntax.toml",
        b"[sip]\nlisten = \"127.0.0.1:5090\nmax_calls = 4\n",
    );
    let (ok, err) = run(&["serve", "--config", &p]);
    assert!(!ok, "a config with a syntax error must fail");
    assert!(
        err.contains("syntax.toml") && err.contains("line 2"),
        "file and line: {err}"
    );

    // Config: not UTF-8 at all.
    let p = write(
        "binary.toml",
        &[0xff, 0xfe, 0x00, 0x5b, 0x73, 0x69, 0x70, 0x5d],
    );
    let (ok, err) = run(&["serve", "--config", &p]);
    assert!(!ok, "a binary config must fail");
    assert!(
        err.contains("binary.toml") && err.contains("UTF-8"),
        "names the file and the fix: {err}"
    );

    // Config: values out of range.
    for (name, text, key) in [
        (
            "port.toml",
            "[sip]\nlisten = \"127.0.0.1:99999\"\n",
            "listen",
        ),
        (
            "rtp.toml",
            "[sip]\nrtp_port_min = 50000\nrtp_port_max = 40000\n",
            "rtp_port",
        ),
        (
            "net.toml",
            "[sip]\nallowed_sources = [\"300.1.2.3/40\"]\n",
            "allowed_sources",
        ),
    ] {
        let p = write(name, text.as_bytes());
        let (ok, err) = run(&["serve", "--config", &p]);
        assert!(!ok, "{name} must be refused");
        assert!(
            err.contains(name) && err.contains(key),
            "{name}: names the file and {key}: {err}"
        );
    }

    // Config pointing at a script that does not exist.
    let p = write(
        "noscript.toml",
        b"[agent]\nscript = \"missing-script.md\"\n",
    );
    let (ok, err) = run(&["serve", "--config", &p]);
    assert!(!ok, "a missing script must fail");
    assert!(err.contains("missing-script.md"), "names the script: {err}");

    // Scripts: empty, binary, and one without steps.
    let p = write("empty.md", b"");
    let (ok, err) = run(&["chat", "--script", &p]);
    assert!(!ok && err.contains("empty.md"), "empty script: {err}");
    let p = write("binary.md", &[0xff, 0x00, 0xfe, 0x81]);
    let (ok, err) = run(&["chat", "--script", &p]);
    assert!(
        !ok && err.contains("binary.md") && err.contains("UTF-8"),
        "binary script: {err}"
    );
    let p = write(
        "nosteps.md",
        "# 测试热线\n\n## 客服\n\n#### 角色\n接电话的客服\n\n#### 分步流程和话术\n这里本该写步骤\n"
            .as_bytes(),
    );
    let (ok, err) = run(&["chat", "--script", &p]);
    assert!(!ok, "a script without steps must fail");
    assert!(
        err.contains("nosteps.md") && err.contains("line"),
        "file and line: {err}"
    );
    let (ok, err) = run(&[
        "chat",
        "--script",
        &dir.path().join("absent.md").to_string_lossy(),
    ]);
    assert!(!ok && err.contains("absent.md"), "missing script: {err}");
}
