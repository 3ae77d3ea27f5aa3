//! UA core tests: whole call flows fed as bytes, no network.

use super::*;
use crate::sip::sdp::Codec;
use rsip::message::HasHeaders;

const PEER: &str = "127.0.0.1:5071";
const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 50710 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

fn peer() -> SocketAddr {
    PEER.parse().expect("addr")
}

fn ua() -> UserAgent {
    UserAgent::new(UaConfig::direct("127.0.0.1:5090".parse().expect("addr")))
}

fn media() -> LocalMedia {
    LocalMedia::new("127.0.0.1:40000".parse().expect("addr"))
}

fn sent(actions: &[Action]) -> Vec<(SipMessage, SocketAddr)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { bytes, dest, .. } => {
                Some((msg::parse(bytes).expect("we send valid SIP"), *dest))
            }
            _ => None,
        })
        .collect()
}

fn codes(actions: &[Action]) -> Vec<u16> {
    sent(actions)
        .into_iter()
        .filter_map(|(m, _)| match m {
            SipMessage::Response(r) => Some(msg::status(&r)),
            _ => None,
        })
        .collect()
}

fn call_events(actions: &[Action]) -> Vec<CallEvent> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Event(SipEvent::Call(c)) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

fn invite(call_id: &str, branch: &str, body: &str) -> String {
    format!(
        "INVITE sip:bot@127.0.0.1:5090 SIP/2.0\r\nv: SIP/2.0/UDP {PEER};branch={branch};rport\r\nf: <sip:1001@127.0.0.1>;tag=ft\r\nt: <sip:bot@127.0.0.1>\r\ni: {call_id}\r\nCSeq: 1 INVITE\r\nm: <sip:1001@{PEER}>\r\nRecord-Route: <sip:127.0.0.1:5060;lr>\r\nc: application/sdp\r\nl: {}\r\n\r\n{body}",
        body.len()
    )
}

fn in_dialog(method: &str, call_id: &str, to_tag: &str, cseq: u32, branch: &str) -> String {
    format!(
        "{method} sip:bot@127.0.0.1:5090 SIP/2.0\r\nVia: SIP/2.0/UDP {PEER};branch={branch};rport\r\nFrom: <sip:1001@127.0.0.1>;tag=ft\r\nTo: <sip:bot@127.0.0.1>;tag={to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Runs an incoming call up to the 180 and returns (ua, our To tag).
fn ringing(call_id: &str) -> (UserAgent, String, Instant) {
    let mut ua = ua();
    let now = Instant::now();
    let a = ua.on_message(
        invite(call_id, "z9hG4bKinv", OFFER).as_bytes(),
        peer(),
        Transport::Udp,
        now,
    );
    assert_eq!(codes(&a), vec![100, 180]);
    let ring = sent(&a).into_iter().nth(1).expect("180").0;
    assert!(
        msg::header_value(ring.headers(), "Contact").is_some(),
        "180 has a Contact"
    );
    let tag = msg::to_tag(ring.headers()).expect("To tag on 180");
    match &call_events(&a)[..] {
        [CallEvent::IncomingCall {
            call_id: c, remote, ..
        }] => {
            assert_eq!(c, call_id);
            assert_eq!(
                remote.rtp_addr,
                Some("127.0.0.1:50710".parse().expect("addr"))
            );
        }
        e => panic!("expected IncomingCall, got {e:?}"),
    }
    (ua, tag, now)
}

#[test]
fn uas_answers_retransmits_200_until_ack_then_remote_bye() {
    let (mut ua, tag, now) = ringing("c1");
    let a = ua.command(
        Command::Answer {
            call_id: "c1".into(),
            media: media(),
        },
        now,
    );
    assert_eq!(codes(&a), vec![200]);
    let ok = sent(&a).remove(0).0;
    let sdp = sdp::parse(ok.body()).expect("200 carries SDP");
    assert_eq!(sdp.rtp_addr, Some("127.0.0.1:40000".parse().expect("addr")));
    assert_eq!(sdp.payloads[0].codec, Some(Codec::Pcmu));
    assert!(matches!(call_events(&a)[..], [CallEvent::Answered { .. }]));
    // No ACK yet: the 200 is retransmitted at T1, then 2·T1.
    let a = ua.on_tick(now + Duration::from_millis(500));
    assert_eq!(codes(&a), vec![200]);
    let a = ua.on_tick(now + Duration::from_millis(1500));
    assert_eq!(codes(&a), vec![200]);
    let ack = in_dialog("ACK", "c1", &tag, 1, "z9hG4bKack");
    ua.on_message(
        ack.as_bytes(),
        peer(),
        Transport::Udp,
        now + Duration::from_millis(1600),
    );
    let a = ua.on_tick(now + Duration::from_secs(10));
    assert!(codes(&a).is_empty(), "no more 200s after the ACK");
    // The caller hangs up.
    let bye = in_dialog("BYE", "c1", &tag, 2, "z9hG4bKbye");
    let a = ua.on_message(
        bye.as_bytes(),
        peer(),
        Transport::Udp,
        now + Duration::from_secs(11),
    );
    assert_eq!(codes(&a), vec![200]);
    assert_eq!(
        call_events(&a),
        vec![CallEvent::Ended {
            call_id: "c1".into(),
            reason: EndReason::RemoteHangup
        }]
    );
    // A retransmitted BYE gets the same 200 (absorbed by the transaction), no new event.
    let a = ua.on_message(
        bye.as_bytes(),
        peer(),
        Transport::Udp,
        now + Duration::from_secs(11),
    );
    assert_eq!(codes(&a), vec![200]);
    assert!(call_events(&a).is_empty());
    // After the linger time the call is forgotten: BYE now is 481.
    ua.on_tick(now + Duration::from_secs(60));
    let bye2 = in_dialog("BYE", "c1", &tag, 3, "z9hG4bKbye2");
    let a = ua.on_message(
        bye2.as_bytes(),
        peer(),
        Transport::Udp,
        now + Duration::from_secs(61),
    );
    assert_eq!(codes(&a), vec![481]);
    assert_eq!(ua.active_calls(), 0);
}

#[test]
fn uas_local_bye_goes_through_the_route_set() {
    let (mut ua, tag, now) = ringing("c2");
    ua.command(
        Command::Answer {
            call_id: "c2".into(),
            media: media(),
        },
        now,
    );
    let ack = in_dialog("ACK", "c2", &tag, 1, "z9hG4bKack");
    ua.on_message(ack.as_bytes(), peer(), Transport::Udp, now);
    let a = ua.command(
        Command::Hangup {
            call_id: "c2".into(),
        },
        now,
    );
    let (bye, dest) = sent(&a).remove(0);
    let SipMessage::Request(bye) = bye else {
        panic!("BYE expected")
    };
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(
        dest,
        "127.0.0.1:5060"
            .parse::<std::net::SocketAddr>()
            .expect("addr"),
        "first Route hop"
    );
    assert_eq!(
        bye.uri.to_string(),
        format!("sip:1001@{PEER}"),
        "remote target"
    );
    assert_eq!(
        msg::header_values(&bye.headers, "Route"),
        vec!["<sip:127.0.0.1:5060;lr>".to_string()]
    );
    assert_eq!(msg::from_tag(&bye.headers), Some(tag));
    assert_eq!(msg::to_tag(&bye.headers).as_deref(), Some("ft"));
    assert_eq!(
        call_events(&a),
        vec![CallEvent::Ended {
            call_id: "c2".into(),
            reason: EndReason::LocalHangup
        }]
    );
}

#[test]
fn cancel_before_answer_gives_487() {
    let (mut ua, _tag, now) = ringing("c3");
    let cancel = format!(
        "CANCEL sip:bot@127.0.0.1:5090 SIP/2.0\r\nVia: SIP/2.0/UDP {PEER};branch=z9hG4bKinv;rport\r\nFrom: <sip:1001@127.0.0.1>;tag=ft\r\nTo: <sip:bot@127.0.0.1>\r\nCall-ID: c3\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n"
    );
    let a = ua.on_message(cancel.as_bytes(), peer(), Transport::Udp, now);
    assert_eq!(codes(&a), vec![200, 487]);
    assert_eq!(
        call_events(&a),
        vec![CallEvent::Ended {
            call_id: "c3".into(),
            reason: EndReason::Cancelled
        }]
    );
    // The 487 is retransmitted until the ACK (same branch as the INVITE).
    let a = ua.on_tick(now + Duration::from_millis(500));
    assert_eq!(codes(&a), vec![487]);
    let ack = in_dialog("ACK", "c3", "x", 1, "z9hG4bKinv");
    ua.on_message(
        ack.as_bytes(),
        peer(),
        Transport::Udp,
        now + Duration::from_millis(600),
    );
    assert!(codes(&ua.on_tick(now + Duration::from_secs(3))).is_empty());
    // CANCEL for an unknown transaction: 481.
    let stray = cancel.replace("z9hG4bKinv", "z9hG4bKnone");
    let a = ua.on_message(stray.as_bytes(), peer(), Transport::Udp, now);
    assert_eq!(codes(&a), vec![481]);
}

#[test]
fn reject_and_no_common_codec() {
    let (mut ua, _tag, now) = ringing("c4");
    let a = ua.command(
        Command::Reject {
            call_id: "c4".into(),
            code: 486,
        },
        now,
    );
    assert_eq!(codes(&a), vec![486]);
    assert_eq!(
        call_events(&a),
        vec![CallEvent::Ended {
            call_id: "c4".into(),
            reason: EndReason::Rejected(486)
        }]
    );
    // G.729 only: a codec we do not carry (G.722 alone would be answered now).
    let g729 = OFFER.replace("RTP/AVP 0 8 101", "RTP/AVP 18");
    let a = ua.on_message(
        invite("c5", "z9hG4bK5", &g729).as_bytes(),
        peer(),
        Transport::Udp,
        now,
    );
    assert_eq!(codes(&a), vec![100, 488]);
    assert!(call_events(&a).is_empty());
}

#[test]
fn reinvite_hold_and_resume() {
    let (mut ua, tag, now) = ringing("c6");
    ua.command(
        Command::Answer {
            call_id: "c6".into(),
            media: media(),
        },
        now,
    );
    let hold_sdp = OFFER.replace("a=sendrecv", "a=sendonly");
    let reinvite = invite("c6", "z9hG4bKre", &hold_sdp)
        .replace(
            "t: <sip:bot@127.0.0.1>",
            &format!("t: <sip:bot@127.0.0.1>;tag={tag}"),
        )
        .replace("CSeq: 1 INVITE", "CSeq: 2 INVITE");
    let a = ua.on_message(reinvite.as_bytes(), peer(), Transport::Udp, now);
    assert_eq!(codes(&a), vec![100, 200]);
    let ok = sent(&a).remove(1).0;
    let ans = sdp::parse(ok.body()).expect("SDP answer");
    assert_eq!(ans.direction, Direction::RecvOnly);
    assert!(matches!(
        &call_events(&a)[..],
        [CallEvent::MediaUpdate { hold: true, .. }]
    ));
    let resume = reinvite
        .replace("a=sendonly", "a=sendrecv")
        .replace("CSeq: 2", "CSeq: 3")
        .replace("z9hG4bKre", "z9hG4bKre2");
    let a = ua.on_message(resume.as_bytes(), peer(), Transport::Udp, now);
    assert!(matches!(
        &call_events(&a)[..],
        [CallEvent::MediaUpdate { hold: false, .. }]
    ));
    // A re-INVITE for an unknown dialog is 481.
    let unknown = reinvite
        .replace("i: c6", "i: nope")
        .replace("z9hG4bKre", "z9hG4bKre3");
    assert_eq!(
        codes(&ua.on_message(unknown.as_bytes(), peer(), Transport::Udp, now)),
        vec![100, 481]
    );
}

/// A draining agent answers out-of-dialog OPTIONS (a dispatcher's probe) with 503 and
/// Retry-After, so the proxy stops sending it calls; OPTIONS inside a call it still
/// carries get 200.
#[test]
fn draining_answers_probes_with_503_but_not_calls_in_progress() {
    let (mut ua, tag, now) = ringing("d1");
    ua.command(
        Command::Answer {
            call_id: "d1".into(),
            media: media(),
        },
        now,
    );
    ua.on_message(
        in_dialog("ACK", "d1", &tag, 1, "z9hG4bKd1").as_bytes(),
        peer(),
        Transport::Udp,
        now,
    );
    let probe = |branch: &str| {
        in_dialog("OPTIONS", &format!("probe-{branch}"), "", 1, branch).replace(";tag=\r\n", "\r\n")
    };
    let a = ua.on_message(probe("z9hG4bKp1").as_bytes(), peer(), Transport::Udp, now);
    assert_eq!(codes(&a), vec![200], "not draining yet");

    ua.command(Command::StopAccepting, now);
    let a = ua.on_message(probe("z9hG4bKp2").as_bytes(), peer(), Transport::Udp, now);
    assert_eq!(codes(&a), vec![503]);
    let (resp, _) = sent(&a).into_iter().next().expect("the 503");
    assert_eq!(
        msg::header_value(resp.headers(), "Retry-After").as_deref(),
        Some(ua.cfg.retry_after.to_string().as_str())
    );
    let in_call = in_dialog("OPTIONS", "d1", &tag, 2, "z9hG4bKd2");
    let a = ua.on_message(in_call.as_bytes(), peer(), Transport::Udp, now);
    assert_eq!(codes(&a), vec![200], "OPTIONS in the call in progress");
}

#[test]
fn options_info_dtmf_and_unknown_methods() {
    let (mut ua, tag, now) = ringing("c7");
    ua.command(
        Command::Answer {
            call_id: "c7".into(),
            media: media(),
        },
        now,
    );
    let opt = in_dialog("OPTIONS", "other", "", 1, "z9hG4bKo").replace(";tag=\r\n", "\r\n");
    let a = ua.on_message(opt.as_bytes(), peer(), Transport::Udp, now);
    assert_eq!(codes(&a), vec![200]);
    let info = in_dialog("INFO", "c7", &tag, 2, "z9hG4bKi").replace(
        "Content-Length: 0\r\n\r\n",
        "Content-Type: application/dtmf-relay\r\nContent-Length: 24\r\n\r\nSignal=5\r\nDuration=160\r\n",
    );
    let a = ua.on_message(info.as_bytes(), peer(), Transport::Udp, now);
    assert_eq!(codes(&a), vec![200]);
    assert_eq!(
        call_events(&a),
        vec![CallEvent::DtmfInfo {
            call_id: "c7".into(),
            digit: '5'
        }]
    );
    let sub = in_dialog("SUBSCRIBE", "c8", "", 1, "z9hG4bKs").replace(";tag=\r\n", "\r\n");
    assert_eq!(
        codes(&ua.on_message(sub.as_bytes(), peer(), Transport::Udp, now)),
        vec![405]
    );
}

#[test]
fn direct_mode_refuses_sources_outside_allowed_list_and_limits_calls() {
    let mut cfg = UaConfig::direct("127.0.0.1:5090".parse().expect("addr"));
    cfg.max_calls = 1;
    let mut ua = UserAgent::new(cfg);
    let now = Instant::now();
    let stranger: SocketAddr = "10.9.9.9:5060".parse().expect("addr");
    let a = ua.on_message(
        invite("s1", "z9hG4bKs1", OFFER).as_bytes(),
        stranger,
        Transport::Udp,
        now,
    );
    assert_eq!(codes(&a), vec![100, 403]);
    let a = ua.on_message(
        invite("s2", "z9hG4bKs2", OFFER).as_bytes(),
        peer(),
        Transport::Udp,
        now,
    );
    assert_eq!(codes(&a), vec![100, 180]);
    let a = ua.on_message(
        invite("s3", "z9hG4bKs3", OFFER).as_bytes(),
        peer(),
        Transport::Udp,
        now,
    );
    assert_eq!(codes(&a), vec![100, 486], "max_calls reached");
}

#[test]
fn malformed_requests_get_400_and_garbage_is_dropped() {
    let mut ua = ua();
    let now = Instant::now();
    let bad = "INVITE :::: SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bKb;rport\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: bad\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let a = ua.on_message(bad.as_bytes(), peer(), Transport::Udp, now);
    assert_eq!(codes(&a), vec![400]);
    for junk in [
        &b"\x00\xff\xfe garbage"[..],
        b"SIP/2.0 200 OK\r\n\r\n",
        b"\r\n\r\n",
        b"INVITE sip:a SIP/2.0\r\nl: 99999\r\n\r\n",
    ] {
        let a = ua.on_message(junk, peer(), Transport::Udp, now);
        assert!(sent(&a).is_empty(), "no answer to {junk:?}");
    }
}

/// Status lines of what the UA sent, read as text (some error responses lack the
/// headers a full parse needs: they answer requests that lacked them).
fn status_lines(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { bytes, .. } => String::from_utf8_lossy(bytes)
                .lines()
                .next()
                .map(String::from),
            _ => None,
        })
        .collect()
}

#[test]
fn unparseable_and_unsupported_requests_are_answered_with_the_problem_named() {
    let mut ua = ua();
    let now = Instant::now();
    let base = "OPTIONS sip:bot@127.0.0.1:5090 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bKu;rport\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:bot@127.0.0.1>\r\nCall-ID: u1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let cases = [
        (
            base.replace("Content-Length: 0", "Content-Length: 40"),
            "400 Bad Request: body is shorter",
        ),
        (
            base.replace("Call-ID: u1\r\n", ""),
            "400 Bad Request: mandatory header Call-ID",
        ),
        (
            base.replace("SIP/2.0\r\nVia", "SIP/3.0\r\nVia"),
            "505 Version Not Supported",
        ),
        (
            base.replace("OPTIONS sip:", "FROB sip:")
                .replace("1 OPTIONS", "1 FROB"),
            "501 Not Implemented",
        ),
        (
            base.replace("OPTIONS sip:bot@127.0.0.1:5090", "OPTIONS mailto:bot@x"),
            "416 Unsupported URI Scheme",
        ),
        (
            base.replace("1 OPTIONS", "1 BYE"),
            "400 Bad Request: CSeq method BYE",
        ),
        (
            base.replace("tag=1", "tag=1\r\nSubject: a\u{7}b"),
            "400 Bad Request: header Subject",
        ),
    ];
    for (req, want) in cases {
        let a = ua.on_message(req.as_bytes(), peer(), Transport::Udp, now);
        let lines = status_lines(&a);
        assert!(
            lines.len() == 1 && lines[0].starts_with(&format!("SIP/2.0 {want}")),
            "{want}: got {lines:?}"
        );
    }
    // An offer whose connection address cannot be read is refused, naming the line.
    let bad_c = invite(
        "c9",
        "z9hG4bKc9",
        &OFFER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 1.2.3"),
    );
    let a = ua.on_message(bad_c.as_bytes(), peer(), Transport::Udp, now);
    let lines = status_lines(&a);
    assert!(
        lines.iter().any(
            |l| l.starts_with("SIP/2.0 488 Not Acceptable Here: SDP line")
                && l.contains("c=IN IP4 1.2.3")
        ),
        "{lines:?}"
    );
    assert!(ua.active_calls() == 0);
}

#[test]
fn rate_limit_drops_a_flood_from_one_source() {
    let mut cfg = UaConfig::direct("127.0.0.1:5090".parse().expect("addr"));
    cfg.rate_per_source = 10;
    let mut ua = UserAgent::new(cfg);
    let now = Instant::now();
    let mut answered = 0;
    for i in 0..100 {
        let opt = in_dialog("OPTIONS", &format!("f{i}"), "", 1, &format!("z9hG4bKf{i}"))
            .replace(";tag=\r\n", "\r\n");
        answered += codes(&ua.on_message(opt.as_bytes(), peer(), Transport::Udp, now)).len();
    }
    assert_eq!(answered, 20, "burst of twice the rate, then silence");
    let later = now + Duration::from_secs(1);
    let opt = in_dialog("OPTIONS", "late", "", 1, "z9hG4bKlate").replace(";tag=\r\n", "\r\n");
    assert_eq!(
        codes(&ua.on_message(opt.as_bytes(), peer(), Transport::Udp, later)),
        vec![200]
    );
}

fn responder(req: &Request, code: u16, extra: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut r = msg::response_to(req, code, Some("callee"));
    for (n, v) in extra {
        r.headers.push(hdr(n, *v));
    }
    r.body = body.as_bytes().to_vec();
    msg::to_bytes(&r.into())
}

fn registrar_ua() -> UserAgent {
    let mut cfg = UaConfig::direct("127.0.0.1:5090".parse().expect("addr"));
    cfg.registrars = vec!["127.0.0.1:5060".parse().expect("addr")];
    cfg.password = Some("passbot".into());
    UserAgent::new(cfg)
}

fn last_request(actions: &[Action]) -> Request {
    sent(actions)
        .into_iter()
        .rev()
        .find_map(|(m, _)| match m {
            SipMessage::Request(r) => Some(r),
            _ => None,
        })
        .expect("a request was sent")
}

#[test]
fn uac_handles_407_then_answer_and_acks() {
    let mut ua = registrar_ua();
    let now = Instant::now();
    let a = ua.command(
        Command::PlaceCall {
            call_id: "out1".into(),
            target: "1001".into(),
            media: media(),
            ring_timeout: Duration::from_secs(30),
        },
        now,
    );
    let inv = last_request(&a);
    assert_eq!(inv.uri.to_string(), "sip:1001@127.0.0.1:5060");
    let reg = registrar();
    let challenge = responder(
        &inv,
        407,
        &[(
            "Proxy-Authenticate",
            "Digest realm=\"127.0.0.1\", nonce=\"n1\", qop=\"auth\"",
        )],
        "",
    );
    let a = ua.on_message(&challenge, reg, Transport::Udp, now);
    let msgs = sent(&a);
    assert_eq!(msgs.len(), 2, "ACK for the 407 and the new INVITE");
    let SipMessage::Request(ack) = &msgs[0].0 else {
        panic!()
    };
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(
        msg::top_branch(&ack.headers),
        msg::top_branch(&inv.headers),
        "ACK reuses the INVITE branch"
    );
    let SipMessage::Request(inv2) = &msgs[1].0 else {
        panic!()
    };
    assert_eq!(msg::cseq(&inv2.headers), Some((2, "INVITE".into())));
    assert_eq!(msg::call_id(&inv2.headers), msg::call_id(&inv.headers));
    assert_eq!(msg::from_tag(&inv2.headers), msg::from_tag(&inv.headers));
    assert_ne!(
        msg::top_branch(&inv2.headers),
        msg::top_branch(&inv.headers)
    );
    assert!(msg::header_value(&inv2.headers, "Proxy-Authorization")
        .is_some_and(|v| v.contains("nc=00000001")));
    let ring = responder(inv2, 180, &[], "");
    assert_eq!(
        call_events(&ua.on_message(&ring, reg, Transport::Udp, now)),
        vec![CallEvent::Ringing {
            call_id: "out1".into()
        }]
    );
    let answer = OFFER.replace("50710", "50720");
    let ok = responder(
        inv2,
        200,
        &[
            ("Contact", "<sip:1001@127.0.0.1:5071>"),
            ("Record-Route", "<sip:127.0.0.1:5060;lr>"),
            ("Content-Type", "application/sdp"),
        ],
        &answer,
    );
    let a = ua.on_message(&ok, reg, Transport::Udp, now);
    let (ack, dest) = sent(&a).remove(0);
    let SipMessage::Request(ack) = ack else {
        panic!()
    };
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(dest, reg, "ACK follows the route set");
    assert_eq!(ack.uri.to_string(), "sip:1001@127.0.0.1:5071");
    assert_eq!(msg::cseq(&ack.headers), Some((2, "ACK".into())));
    match &call_events(&a)[..] {
        [CallEvent::Answered { negotiated, .. }] => {
            assert_eq!(
                negotiated.remote.rtp_addr,
                Some("127.0.0.1:50720".parse().expect("addr"))
            )
        }
        e => panic!("{e:?}"),
    }
    // A retransmitted 200 is ACKed again.
    let a = ua.on_message(&ok, reg, Transport::Udp, now);
    assert!(matches!(&sent(&a)[..], [(SipMessage::Request(r), _)] if r.method == Method::Ack));
}

fn registrar() -> SocketAddr {
    "127.0.0.1:5060".parse().expect("addr")
}

#[test]
fn uac_outcomes_are_distinct() {
    for (code, reason) in [
        (486, EndReason::Busy),
        (603, EndReason::Declined),
        (404, EndReason::NotFound),
        (500, EndReason::Failed(500)),
    ] {
        let mut ua = registrar_ua();
        let now = Instant::now();
        let a = ua.command(
            Command::PlaceCall {
                call_id: "o".into(),
                target: "1002".into(),
                media: media(),
                ring_timeout: Duration::from_secs(30),
            },
            now,
        );
        let inv = last_request(&a);
        let a = ua.on_message(
            &responder(&inv, code, &[], ""),
            registrar(),
            Transport::Udp,
            now,
        );
        assert_eq!(
            call_events(&a),
            vec![CallEvent::Ended {
                call_id: "o".into(),
                reason
            }]
        );
        assert!(matches!(&sent(&a)[..], [(SipMessage::Request(r), _)] if r.method == Method::Ack));
    }
}

#[test]
fn uac_ring_timeout_cancels() {
    let mut ua = registrar_ua();
    let now = Instant::now();
    let a = ua.command(
        Command::PlaceCall {
            call_id: "rt".into(),
            target: "1003".into(),
            media: media(),
            ring_timeout: Duration::from_secs(5),
        },
        now,
    );
    let inv = last_request(&a);
    ua.on_message(
        &responder(&inv, 180, &[], ""),
        registrar(),
        Transport::Udp,
        now,
    );
    let a = ua.on_tick(now + Duration::from_secs(5));
    let cancel = last_request(&a);
    assert_eq!(cancel.method, Method::Cancel);
    assert_eq!(
        msg::top_branch(&cancel.headers),
        msg::top_branch(&inv.headers)
    );
    let a = ua.on_message(
        &responder(&inv, 487, &[], ""),
        registrar(),
        Transport::Udp,
        now + Duration::from_secs(5),
    );
    assert_eq!(
        call_events(&a),
        vec![CallEvent::Ended {
            call_id: "rt".into(),
            reason: EndReason::NoAnswer
        }]
    );
}

#[test]
fn uac_invite_timeout_is_reported() {
    let mut ua = registrar_ua();
    let now = Instant::now();
    ua.command(
        Command::PlaceCall {
            call_id: "to".into(),
            target: "1004".into(),
            media: media(),
            ring_timeout: Duration::from_secs(60),
        },
        now,
    );
    let mut t = now;
    let mut ended = Vec::new();
    while t < now + Duration::from_secs(40) {
        t += Duration::from_millis(250);
        ended.extend(call_events(&ua.on_tick(t)));
    }
    assert_eq!(
        ended,
        vec![CallEvent::Ended {
            call_id: "to".into(),
            reason: EndReason::Timeout
        }]
    );
}

#[test]
fn shutdown_hangs_up_and_unregisters() {
    let mut ua = registrar_ua();
    let now = Instant::now();
    let a = ua.start(now);
    let reg_req = last_request(&a);
    let a = ua.on_message(
        &responder(&reg_req, 200, &[("Expires", "300")], ""),
        registrar(),
        Transport::Udp,
        now,
    );
    assert!(a
        .iter()
        .any(|x| matches!(x, Action::Event(SipEvent::Registered { .. }))));
    let a = ua.command(Command::Shutdown, now);
    let unreg = last_request(&a);
    assert_eq!(
        msg::header_value(&unreg.headers, "Expires").as_deref(),
        Some("0")
    );
    assert!(!ua.is_shutdown_complete());
    let a = ua.on_message(
        &responder(&unreg, 200, &[], ""),
        registrar(),
        Transport::Udp,
        now,
    );
    assert!(a
        .iter()
        .any(|x| matches!(x, Action::Event(SipEvent::Unregistered { .. }))));
    assert!(ua.is_shutdown_complete());
}

#[test]
fn cidr_matching() {
    let c = Cidr::parse("10.1.0.0/16").expect("cidr");
    assert!(c.contains("10.1.2.3".parse().expect("ip")));
    assert!(!c.contains("10.2.0.1".parse().expect("ip")));
    assert!(Cidr::parse("::1/128")
        .expect("cidr")
        .contains("::1".parse().expect("ip")));
    assert!(Cidr::parse("0.0.0.0/0")
        .expect("cidr")
        .contains("8.8.8.8".parse().expect("ip")));
    assert!(Cidr::parse("10.0.0.0/33").is_none());
    assert!(Cidr::parse("nope").is_none());
}

#[test]
fn registrar_traffic_is_not_rate_limited() {
    let mut cfg = UaConfig::direct("127.0.0.1:5090".parse().expect("addr"));
    cfg.rate_per_source = 1;
    cfg.registrars = vec![peer()];
    let mut ua = UserAgent::new(cfg);
    let now = Instant::now();
    let mut answered = 0;
    for i in 0..50 {
        let opt = in_dialog("OPTIONS", &format!("r{i}"), "", 1, &format!("z9hG4bKr{i}"))
            .replace(";tag=\r\n", "\r\n");
        answered += codes(&ua.on_message(opt.as_bytes(), peer(), Transport::Udp, now)).len();
    }
    assert_eq!(answered, 50, "the PBX carrying every call is trusted");
}

#[test]
fn hangup_before_ack_still_stops_200_retransmissions_on_late_ack() {
    let (mut ua, tag, now) = ringing("c9");
    ua.command(
        Command::Answer {
            call_id: "c9".into(),
            media: media(),
        },
        now,
    );
    let a = ua.command(
        Command::Hangup {
            call_id: "c9".into(),
        },
        now,
    );
    assert!(matches!(&sent(&a)[..], [(SipMessage::Request(r), _)] if r.method == Method::Bye));
    let ack = in_dialog("ACK", "c9", &tag, 1, "z9hG4bKlate");
    ua.on_message(
        ack.as_bytes(),
        peer(),
        Transport::Udp,
        now + Duration::from_millis(100),
    );
    let (mut oks, mut byes) = (0, 0);
    let mut t = now;
    while t < now + Duration::from_secs(40) {
        t += Duration::from_millis(250);
        for (m, _) in sent(&ua.on_tick(t)) {
            match m {
                SipMessage::Response(r) if msg::status(&r) == 200 => oks += 1,
                SipMessage::Request(r) if r.method == Method::Bye => byes += 1,
                _ => {}
            }
        }
    }
    assert_eq!(oks, 0, "the late ACK stopped the 200 retransmissions");
    // The unanswered BYE is retransmitted (Timer E) until Timer F, then given up.
    assert!(byes > 0);
    assert_eq!(
        ua.transactions().0,
        0,
        "BYE transaction removed after timeout"
    );
}

#[test]
fn only_unfinished_transactions_count_against_the_cap() {
    let mut cfg = UaConfig::direct("127.0.0.1:5090".parse().expect("addr"));
    cfg.max_tx_per_source = 3;
    let mut ua = UserAgent::new(cfg);
    let now = Instant::now();
    // Many completed OPTIONS transactions (lingering for Timer J) do not block new ones.
    for i in 0..10 {
        let opt = in_dialog("OPTIONS", &format!("q{i}"), "", 1, &format!("z9hG4bKq{i}"))
            .replace(";tag=\r\n", "\r\n");
        assert_eq!(
            codes(&ua.on_message(opt.as_bytes(), peer(), Transport::Udp, now)),
            vec![200]
        );
    }
    // Three ringing INVITEs are in flight: the fourth request is refused with 503.
    for i in 0..3 {
        let inv = invite(&format!("cap{i}"), &format!("z9hG4bKcap{i}"), OFFER);
        assert_eq!(
            codes(&ua.on_message(inv.as_bytes(), peer(), Transport::Udp, now)),
            vec![100, 180]
        );
    }
    let inv = invite("cap3", "z9hG4bKcap3", OFFER);
    assert_eq!(
        codes(&ua.on_message(inv.as_bytes(), peer(), Transport::Udp, now)),
        vec![503]
    );
}

// ---------------------------------------------------------------------------
// Inbound digest challenge (`[sip.inbound_auth]`). The caller's side is computed with
// the UAC `DigestState`, never hard-coded.

const AUTH_USER: &str = "pbx";
const AUTH_PW: &str = "s3cret-inbound";
const RURI: &str = "sip:bot@127.0.0.1:5090";

fn auth_ua() -> UserAgent {
    let mut cfg = UaConfig::direct("127.0.0.1:5090".parse().expect("addr"));
    cfg.inbound_auth = Some(ServerCredentials {
        realm: "tingshuo".into(),
        username: AUTH_USER.into(),
        password: AUTH_PW.into(),
    });
    UserAgent::new(cfg)
}

/// An out-of-dialog INVITE with an optional `Authorization` value.
fn auth_invite(call_id: &str, branch: &str, cseq: u32, authorization: Option<&str>) -> String {
    let auth = authorization
        .map(|v| format!("Authorization: {v}\r\n"))
        .unwrap_or_default();
    format!(
        "INVITE {RURI} SIP/2.0\r\nVia: SIP/2.0/UDP {PEER};branch={branch};rport\r\nFrom: <sip:1001@127.0.0.1>;tag=ft\r\nTo: <sip:bot@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:1001@{PEER}>\r\n{auth}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{OFFER}",
        OFFER.len()
    )
}

/// Feeds an INVITE and expects `100` then a 401; returns the parsed challenge.
fn expect_challenge(
    ua: &mut UserAgent,
    call_id: &str,
    branch: &str,
    cseq: u32,
    authorization: Option<&str>,
    now: Instant,
) -> crate::sip::digest::Challenge {
    let a = ua.on_message(
        auth_invite(call_id, branch, cseq, authorization).as_bytes(),
        peer(),
        Transport::Udp,
        now,
    );
    assert_eq!(codes(&a), vec![100, 401]);
    assert!(call_events(&a).is_empty(), "a challenged INVITE is no call");
    let resp = sent(&a).remove(1).0;
    let value = msg::header_value(resp.headers(), "WWW-Authenticate").expect("WWW-Authenticate");
    assert!(
        value.contains("realm=\"tingshuo\"")
            && value.contains("qop=\"auth\"")
            && value.contains("algorithm=MD5"),
        "{value}"
    );
    crate::sip::digest::parse_challenge(&value).expect("our challenge parses")
}

fn caller(ch: crate::sip::digest::Challenge, password: &str) -> DigestState {
    let mut d = DigestState::new(AUTH_USER, password);
    d.challenge(ch);
    d
}

#[test]
fn inbound_auth_challenges_then_accepts_and_never_challenges_in_dialog() {
    let mut ua = auth_ua();
    let now = Instant::now();
    let ch = expect_challenge(&mut ua, "a1", "z9hG4bKa1", 1, None, now);
    assert!(ch.qop_auth && !ch.stale);
    // The ACK to the 401 (same branch) is absorbed by the server transaction: no reply,
    // and the 401 is no longer retransmitted.
    let ack = in_dialog("ACK", "a1", "x", 1, "z9hG4bKa1");
    let a = ua.on_message(ack.as_bytes(), peer(), Transport::Udp, now);
    assert!(sent(&a).is_empty() && call_events(&a).is_empty());
    assert!(codes(&ua.on_tick(now + Duration::from_secs(2))).is_empty());

    // The INVITE again with credentials: the call proceeds as without the feature.
    let authz = caller(ch, AUTH_PW)
        .authorize("INVITE", RURI)
        .expect("authorizes");
    let a = ua.on_message(
        auth_invite("a1", "z9hG4bKa2", 2, Some(&authz)).as_bytes(),
        peer(),
        Transport::Udp,
        now + Duration::from_secs(2),
    );
    assert_eq!(codes(&a), vec![100, 180]);
    assert!(matches!(
        &call_events(&a)[..],
        [CallEvent::IncomingCall { call_id, .. }] if call_id == "a1"
    ));
    let tag = msg::to_tag(sent(&a)[1].0.headers()).expect("To tag");
    let a = ua.command(
        Command::Answer {
            call_id: "a1".into(),
            media: media(),
        },
        now + Duration::from_secs(2),
    );
    assert_eq!(codes(&a), vec![200]);
    let t = now + Duration::from_secs(3);
    ua.on_message(
        in_dialog("ACK", "a1", &tag, 2, "z9hG4bKa3").as_bytes(),
        peer(),
        Transport::Udp,
        t,
    );
    // Out-of-dialog OPTIONS, in-dialog re-INVITE and INFO: never challenged.
    let opt = in_dialog("OPTIONS", "probe", "", 1, "z9hG4bKo").replace(";tag=\r\n", "\r\n");
    assert_eq!(
        codes(&ua.on_message(opt.as_bytes(), peer(), Transport::Udp, t)),
        vec![200]
    );
    let reinvite = in_dialog("INVITE", "a1", &tag, 3, "z9hG4bKa4");
    assert_eq!(
        codes(&ua.on_message(reinvite.as_bytes(), peer(), Transport::Udp, t)),
        vec![100, 200]
    );
    ua.on_message(
        in_dialog("ACK", "a1", &tag, 3, "z9hG4bKa5").as_bytes(),
        peer(),
        Transport::Udp,
        t,
    );
    let info = in_dialog("INFO", "a1", &tag, 4, "z9hG4bKa6");
    assert_eq!(
        codes(&ua.on_message(info.as_bytes(), peer(), Transport::Udp, t)),
        vec![200]
    );
    let bye = in_dialog("BYE", "a1", &tag, 5, "z9hG4bKa7");
    let a = ua.on_message(bye.as_bytes(), peer(), Transport::Udp, t);
    assert_eq!(codes(&a), vec![200]);
    assert_eq!(
        call_events(&a),
        vec![CallEvent::Ended {
            call_id: "a1".into(),
            reason: EndReason::RemoteHangup
        }]
    );
}

#[test]
fn inbound_auth_wrong_password_or_user_gets_403_without_a_new_challenge() {
    let mut ua = auth_ua();
    let now = Instant::now();
    let ch = expect_challenge(&mut ua, "w1", "z9hG4bKw1", 1, None, now);
    let authz = caller(ch.clone(), "not-the-password")
        .authorize("INVITE", RURI)
        .expect("authorizes");
    let a = ua.on_message(
        auth_invite("w1", "z9hG4bKw2", 2, Some(&authz)).as_bytes(),
        peer(),
        Transport::Udp,
        now,
    );
    assert_eq!(codes(&a), vec![100, 403]);
    assert!(call_events(&a).is_empty());
    let forbidden = sent(&a).remove(1).0;
    assert!(msg::header_value(forbidden.headers(), "WWW-Authenticate").is_none());
    // The right password under another user name is refused too.
    let mut other = DigestState::new("intruder", AUTH_PW);
    other.challenge(ch);
    let authz = other.authorize("INVITE", RURI).expect("authorizes");
    let a = ua.on_message(
        auth_invite("w1", "z9hG4bKw3", 3, Some(&authz)).as_bytes(),
        peer(),
        Transport::Udp,
        now,
    );
    assert_eq!(codes(&a), vec![100, 403]);
    assert_eq!(ua.active_calls(), 0);
}

#[test]
fn inbound_auth_stale_nonce_gets_a_fresh_challenge_marked_stale() {
    let mut ua = auth_ua();
    let now = Instant::now();
    let ch = expect_challenge(&mut ua, "s1", "z9hG4bKs1", 1, None, now);
    let authz = caller(ch, AUTH_PW)
        .authorize("INVITE", RURI)
        .expect("authorizes");
    let later = now + crate::sip::digest::NONCE_LIFETIME + Duration::from_secs(1);
    let ch = expect_challenge(&mut ua, "s1", "z9hG4bKs2", 2, Some(&authz), later);
    assert!(ch.stale, "a correct answer on an expired nonce is stale");
    let authz = caller(ch, AUTH_PW)
        .authorize("INVITE", RURI)
        .expect("authorizes");
    let a = ua.on_message(
        auth_invite("s1", "z9hG4bKs3", 3, Some(&authz)).as_bytes(),
        peer(),
        Transport::Udp,
        later,
    );
    assert_eq!(codes(&a), vec![100, 180], "the fresh nonce is accepted");
}

#[test]
fn inbound_auth_refuses_forged_nonces_and_replays() {
    let mut ua = auth_ua();
    let now = Instant::now();
    let ch = expect_challenge(&mut ua, "t1", "z9hG4bKt1", 1, None, now);
    // A nonce with a changed timestamp (to extend its life) no longer matches its MAC;
    // the response is computed correctly over the forged nonce.
    let mut forged = ch.clone();
    let mut chars: Vec<char> = forged.nonce.chars().collect();
    chars[10] = if chars[10] == 'f' { 'e' } else { 'f' };
    forged.nonce = chars.into_iter().collect();
    let authz = caller(forged, AUTH_PW)
        .authorize("INVITE", RURI)
        .expect("authorizes");
    let again = expect_challenge(&mut ua, "t1", "z9hG4bKt2", 2, Some(&authz), now);
    assert!(!again.stale, "a forged nonce is not stale, it is unknown");
    let mut invented = ch.clone();
    invented.nonce = "made-up-nonce".into();
    let authz = caller(invented, AUTH_PW)
        .authorize("INVITE", RURI)
        .expect("authorizes");
    expect_challenge(&mut ua, "t1", "z9hG4bKt3", 3, Some(&authz), now);

    // A valid answer works once; the same Authorization on a new INVITE is a replay
    // (its nonce count did not grow), while the next nonce count is fine.
    let mut d = caller(ch, AUTH_PW);
    let authz = d.authorize("INVITE", RURI).expect("authorizes");
    let a = ua.on_message(
        auth_invite("t1", "z9hG4bKt4", 4, Some(&authz)).as_bytes(),
        peer(),
        Transport::Udp,
        now,
    );
    assert_eq!(codes(&a), vec![100, 180]);
    expect_challenge(&mut ua, "t2", "z9hG4bKt5", 1, Some(&authz), now);
    let authz = d.authorize("INVITE", RURI).expect("authorizes");
    let a = ua.on_message(
        auth_invite("t3", "z9hG4bKt6", 1, Some(&authz)).as_bytes(),
        peer(),
        Transport::Udp,
        now,
    );
    assert_eq!(codes(&a), vec![100, 180]);
}

#[test]
fn inbound_auth_accepts_rfc2069_answers_and_rejects_incomplete_ones() {
    let mut ua = auth_ua();
    let now = Instant::now();
    let mut ch = expect_challenge(&mut ua, "r1", "z9hG4bKr1", 1, None, now);
    // Credentials without a uri cannot be verified: 400.
    let authz = caller(ch.clone(), AUTH_PW)
        .authorize("INVITE", RURI)
        .expect("authorizes");
    let no_uri = authz.replace(&format!(", uri=\"{RURI}\""), "");
    assert_ne!(no_uri, authz);
    let a = ua.on_message(
        auth_invite("r1", "z9hG4bKr2", 2, Some(&no_uri)).as_bytes(),
        peer(),
        Transport::Udp,
        now,
    );
    assert_eq!(codes(&a), vec![100, 400]);
    // An old RFC 2069 client ignores qop.
    ch.qop_auth = false;
    let authz = caller(ch, AUTH_PW)
        .authorize("INVITE", RURI)
        .expect("authorizes");
    assert!(!authz.contains("qop"));
    let a = ua.on_message(
        auth_invite("r1", "z9hG4bKr3", 3, Some(&authz)).as_bytes(),
        peer(),
        Transport::Udp,
        now,
    );
    assert_eq!(codes(&a), vec![100, 180]);
    // CANCEL of the ringing, authenticated call is not challenged either.
    let cancel = format!(
        "CANCEL {RURI} SIP/2.0\r\nVia: SIP/2.0/UDP {PEER};branch=z9hG4bKr3;rport\r\nFrom: <sip:1001@127.0.0.1>;tag=ft\r\nTo: <sip:bot@127.0.0.1>\r\nCall-ID: r1\r\nCSeq: 3 CANCEL\r\nContent-Length: 0\r\n\r\n"
    );
    let a = ua.on_message(cancel.as_bytes(), peer(), Transport::Udp, now);
    assert_eq!(codes(&a), vec![200, 487]);
}

#[test]
fn without_inbound_auth_credentials_are_neither_needed_nor_checked() {
    let mut ua = ua();
    assert!(ua.config().inbound_auth.is_none());
    let now = Instant::now();
    let a = ua.on_message(
        auth_invite("n1", "z9hG4bKn1", 1, None).as_bytes(),
        peer(),
        Transport::Udp,
        now,
    );
    assert_eq!(codes(&a), vec![100, 180]);
    // Stray credentials (e.g. meant for a proxy) are ignored.
    let a = ua.on_message(
        auth_invite(
            "n2",
            "z9hG4bKn2",
            1,
            Some("Digest username=\"x\", realm=\"y\", nonce=\"z\", uri=\"sip:a\", response=\"00\""),
        )
        .as_bytes(),
        peer(),
        Transport::Udp,
        now,
    );
    assert_eq!(codes(&a), vec![100, 180]);
}

#[test]
fn inbound_auth_applies_in_registered_mode_to_invites_relayed_by_the_registrar() {
    let mut cfg = UaConfig::direct("127.0.0.1:5090".parse().expect("addr"));
    cfg.registrars = vec![registrar()];
    cfg.password = Some("passbot".into());
    cfg.allowed_sources = Vec::new();
    cfg.inbound_auth = Some(ServerCredentials {
        realm: "tingshuo".into(),
        username: AUTH_USER.into(),
        password: AUTH_PW.into(),
    });
    let mut ua = UserAgent::new(cfg);
    let now = Instant::now();
    let a = ua.on_message(
        auth_invite("g1", "z9hG4bKg1", 1, None).as_bytes(),
        registrar(),
        Transport::Udp,
        now,
    );
    assert_eq!(codes(&a), vec![100, 401]);
    let resp = sent(&a).remove(1).0;
    let ch = crate::sip::digest::parse_challenge(
        &msg::header_value(resp.headers(), "WWW-Authenticate").expect("challenge"),
    )
    .expect("parses");
    // The caller computed its answer over the URI it dialled (the registrar's); the
    // proxy rewrote the Request-URI to our Contact. The digest covers the `uri`
    // parameter, so this still verifies.
    let authz = caller(ch, AUTH_PW)
        .authorize("INVITE", "sip:bot@127.0.0.1:5060")
        .expect("authorizes");
    let a = ua.on_message(
        auth_invite("g1", "z9hG4bKg2", 2, Some(&authz)).as_bytes(),
        registrar(),
        Transport::Udp,
        now,
    );
    assert_eq!(codes(&a), vec![100, 180]);
}

/// `[media] srtp = "required"`: a plain-RTP offer over TLS is refused with 488 naming the
/// reason; an SDES offer over TLS is answered with RTP/SAVP, our own key, and the keys
/// reach the call layer; the same SDES offer over UDP is refused (keys in clear text).
#[test]
fn required_srtp_refuses_plain_offers_and_answers_sdes_over_tls() {
    use crate::rtp::srtp::{CryptoAttr, Suite};
    let mut cfg = UaConfig::direct("127.0.0.1:5090".parse().expect("addr"));
    cfg.tls_local = Some("127.0.0.1:5091".parse().expect("addr"));
    cfg.srtp = crate::config::SrtpPolicy::Required;
    let mut ua = UserAgent::new(cfg);
    let now = Instant::now();
    let a = ua.on_message(
        invite("plain", "z9hG4bKp1", OFFER).as_bytes(),
        peer(),
        Transport::Tls,
        now,
    );
    assert_eq!(codes(&a), vec![100, 488]);
    let (resp, _) = sent(&a).into_iter().nth(1).expect("488");
    let text = resp.to_string();
    assert!(text.contains("SRTP required"), "{text}");

    let theirs = CryptoAttr::generate(1, Suite::AesCm128HmacSha1_80);
    let secure_offer = sdes::secure_sdp(OFFER, &theirs);
    let a = ua.on_message(
        invite("sec", "z9hG4bKs1", &secure_offer).as_bytes(),
        peer(),
        Transport::Tls,
        now,
    );
    assert_eq!(codes(&a), vec![100, 180]);
    let ring = sent(&a).into_iter().nth(1).expect("180").0;
    let contact = msg::header_value(ring.headers(), "Contact").expect("contact");
    assert!(
        contact.contains("127.0.0.1:5091;transport=tls"),
        "{contact}"
    );
    let keys = match &call_events(&a)[..] {
        [CallEvent::IncomingCall {
            srtp: Some(keys), ..
        }] => keys.clone(),
        e => panic!("{e:?}"),
    };
    assert_eq!(keys.remote, theirs);
    let a = ua.command(
        Command::Answer {
            call_id: "sec".into(),
            media: media(),
        },
        now,
    );
    let (ok, _) = sent(&a).into_iter().next().expect("200");
    let body = match ok {
        SipMessage::Response(r) => String::from_utf8_lossy(&r.body).into_owned(),
        _ => panic!("response expected"),
    };
    let ans = sdes::parse(body.as_bytes());
    assert!(ans.savp, "{body}");
    assert_eq!(ans.crypto, vec![keys.local.to_sdp_value()]);

    let a = ua.on_message(
        invite("udp", "z9hG4bKu1", &secure_offer).as_bytes(),
        peer(),
        Transport::Udp,
        now,
    );
    assert_eq!(codes(&a), vec![100, 488]);
}

/// `[media] codecs` without G722: a wideband offer is answered with G.711, and an
/// offer of G.722 alone is refused with 488.
#[test]
fn configured_codecs_limit_the_answer() {
    let mut cfg = UaConfig::direct("127.0.0.1:5090".parse().expect("addr"));
    cfg.codecs = vec![Codec::Pcma, Codec::Pcmu];
    let mut ua = UserAgent::new(cfg);
    let now = Instant::now();
    let wide = OFFER.replace("RTP/AVP 0 8 101", "RTP/AVP 9 0 8 101");
    let a = ua.on_message(
        invite("w1", "z9hG4bKw1", &wide).as_bytes(),
        peer(),
        Transport::Udp,
        now,
    );
    assert_eq!(codes(&a), vec![100, 180]);
    let a = ua.command(
        Command::Answer {
            call_id: "w1".into(),
            media: media(),
        },
        now,
    );
    assert_eq!(codes(&a), vec![200]);
    let body = match sent(&a).remove(0).0 {
        SipMessage::Response(r) => String::from_utf8_lossy(r.body()).to_string(),
        _ => panic!("a response"),
    };
    let m_line = body
        .lines()
        .find(|l| l.starts_with("m=audio"))
        .expect("m line");
    // The offer's first G.711 law (the offerer's preference among what we allow).
    assert!(m_line.contains("RTP/AVP 0 "), "{body}");
    assert!(!body.contains("G722"), "{body}");

    let only_wide = OFFER.replace("RTP/AVP 0 8 101", "RTP/AVP 9 101");
    let a = ua.on_message(
        invite("w2", "z9hG4bKw2", &only_wide).as_bytes(),
        peer(),
        Transport::Udp,
        now,
    );
    assert!(codes(&a).contains(&488), "{:?}", codes(&a));
}

/// An SRTP offer of ours (`srtp = "forced"`, so over UDP here) answered with early
/// media: the 183's keys come with the early media; a 183 without them is not used.
#[test]
fn early_media_to_an_srtp_offer_carries_its_keys() {
    use crate::rtp::srtp::{CryptoAttr, Suite};
    let mut cfg = UaConfig::direct("127.0.0.1:5090".parse().expect("addr"));
    cfg.srtp = crate::config::SrtpPolicy::Forced;
    let mut ua = UserAgent::new(cfg);
    let now = Instant::now();
    let a = ua.command(
        Command::PlaceCall {
            call_id: "early".into(),
            target: "sip:1001@127.0.0.1:5070".into(),
            media: media(),
            ring_timeout: Duration::from_secs(30),
        },
        now,
    );
    let inv = last_request(&a);
    let offer = sdes::parse(&inv.body);
    assert!(offer.savp && offer.crypto.len() == 1, "SRTP-only offer");
    let ours = CryptoAttr::parse(&offer.crypto[0]).expect("our a=crypto");
    let theirs = CryptoAttr::generate(ours.tag, Suite::AesCm128HmacSha1_80);
    let answer = sdes::secure_sdp(&OFFER.replace("50710", "50730"), &theirs);
    let sdp_type = [("Content-Type", "application/sdp")];
    let callee = peer();

    // Plain early media (no keys) cannot be used.
    let plain = responder(&inv, 183, &sdp_type, &OFFER.replace("50710", "50730"));
    assert!(call_events(&ua.on_message(&plain, callee, Transport::Udp, now)).is_empty());

    let early = responder(&inv, 183, &sdp_type, &answer);
    match &call_events(&ua.on_message(&early, callee, Transport::Udp, now))[..] {
        [CallEvent::EarlyMedia {
            srtp: Some(keys),
            negotiated,
            ..
        }] => {
            assert_eq!((&keys.local, &keys.remote), (&ours, &theirs));
            assert_eq!(
                negotiated.remote.rtp_addr,
                Some("127.0.0.1:50730".parse().expect("addr"))
            );
        }
        e => panic!("{e:?}"),
    }
}
