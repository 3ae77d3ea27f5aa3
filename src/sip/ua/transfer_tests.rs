//! Transfer tests of the UA core: our REFER with its NOTIFY sipfrag, a REFER from the
//! peer, and extra INVITE headers. Whole flows fed as bytes, no network.

use super::*;
use rsip::message::HasHeaders;

const PEER: &str = "127.0.0.1:5071";
const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 50710 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

fn peer() -> SocketAddr {
    PEER.parse().expect("addr")
}

fn sent(actions: &[Action]) -> Vec<SipMessage> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { bytes, .. } => Some(msg::parse(bytes).expect("we send valid SIP")),
            _ => None,
        })
        .collect()
}

fn responses(actions: &[Action]) -> Vec<Response> {
    sent(actions)
        .into_iter()
        .filter_map(|m| match m {
            SipMessage::Response(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn transfer_events(actions: &[Action]) -> Vec<ReferStatus> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Event(SipEvent::Call(CallEvent::Transfer { status, .. })) => Some(*status),
            _ => None,
        })
        .collect()
}

/// An answered, ACKed incoming call "t1"; returns the UA, our To tag and the time.
fn established() -> (UserAgent, String, Instant) {
    let mut ua = UserAgent::new(UaConfig::direct("127.0.0.1:5090".parse().expect("addr")));
    let now = Instant::now();
    let invite = format!(
        "INVITE sip:bot@127.0.0.1:5090 SIP/2.0\r\nVia: SIP/2.0/UDP {PEER};branch=z9hG4bKinv;rport\r\nFrom: <sip:1001@127.0.0.1>;tag=ft\r\nTo: <sip:bot@127.0.0.1>\r\nCall-ID: t1\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@{PEER}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{OFFER}",
        OFFER.len()
    );
    let a = ua.on_message(invite.as_bytes(), peer(), Transport::Udp, now);
    let tag = responses(&a)
        .iter()
        .find_map(|r| msg::to_tag(r.headers()))
        .expect("180 has a To tag");
    ua.command(
        Command::Answer {
            call_id: "t1".into(),
            media: LocalMedia::new("127.0.0.1:40000".parse().expect("addr")),
        },
        now,
    );
    let ack = in_dialog("ACK", &tag, 1, "z9hG4bKack", "", "");
    ua.on_message(ack.as_bytes(), peer(), Transport::Udp, now);
    (ua, tag, now)
}

fn in_dialog(method: &str, tag: &str, cseq: u32, branch: &str, extra: &str, body: &str) -> String {
    format!(
        "{method} sip:bot@127.0.0.1:5090 SIP/2.0\r\nVia: SIP/2.0/UDP {PEER};branch={branch};rport\r\nFrom: <sip:1001@127.0.0.1>;tag=ft\r\nTo: <sip:bot@127.0.0.1>;tag={tag}\r\nCall-ID: t1\r\nCSeq: {cseq} {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn notify(tag: &str, cseq: u32, frag: &str, state: &str) -> String {
    in_dialog(
        "NOTIFY",
        tag,
        cseq,
        &format!("z9hG4bKn{cseq}"),
        &format!("Event: refer\r\nSubscription-State: {state}\r\nContent-Type: message/sipfrag;version=2.0\r\n"),
        frag,
    )
}

/// Sends our REFER and answers it with `code`; returns the REFER we sent.
fn refer_answered(ua: &mut UserAgent, now: Instant, code: u16) -> (Request, Vec<Action>) {
    let a = ua.command(
        Command::Refer {
            call_id: "t1".into(),
            target: "sip:2001@127.0.0.1:5072".into(),
        },
        now,
    );
    let refer = sent(&a)
        .into_iter()
        .find_map(|m| match m {
            SipMessage::Request(r) if r.method == Method::Refer => Some(r),
            _ => None,
        })
        .expect("a REFER is sent");
    let mut resp = msg::response_to(&refer, code, None);
    resp.status_code = rsip::StatusCode::from(code);
    let bytes = msg::to_bytes(&resp.into());
    let a = ua.on_message(&bytes, peer(), Transport::Udp, now);
    (refer, a)
}

#[test]
fn refer_carries_refer_to_and_referred_by_and_follows_notify_to_success() {
    let (mut ua, tag, now) = established();
    let (refer, a) = refer_answered(&mut ua, now, 202);
    assert_eq!(
        msg::header_value(refer.headers(), "Refer-To").as_deref(),
        Some("<sip:2001@127.0.0.1:5072>")
    );
    let by = msg::header_value(refer.headers(), "Referred-By").expect("Referred-By");
    assert!(by.contains("sip:bot@127.0.0.1"), "{by}");
    assert_eq!(refer.uri.to_string(), format!("sip:1001@{PEER}"));
    assert_eq!(msg::to_tag(refer.headers()).as_deref(), Some("ft"));
    assert_eq!(transfer_events(&a), vec![ReferStatus::Accepted]);

    let a = ua.on_message(
        notify(&tag, 2, "SIP/2.0 100 Trying\r\n", "active;expires=60").as_bytes(),
        peer(),
        Transport::Udp,
        now,
    );
    assert_eq!(msg::status(&responses(&a)[0]), 200, "NOTIFY answered 200");
    assert_eq!(transfer_events(&a), vec![ReferStatus::Progress(100)]);
    let a = ua.on_message(
        notify(&tag, 3, "SIP/2.0 180 Ringing\r\n", "active;expires=60").as_bytes(),
        peer(),
        Transport::Udp,
        now,
    );
    assert_eq!(transfer_events(&a), vec![ReferStatus::Progress(180)]);
    let a = ua.on_message(
        notify(
            &tag,
            4,
            "SIP/2.0 200 OK\r\n",
            "terminated;reason=noresource",
        )
        .as_bytes(),
        peer(),
        Transport::Udp,
        now,
    );
    assert_eq!(msg::status(&responses(&a)[0]), 200);
    assert_eq!(transfer_events(&a), vec![ReferStatus::Succeeded(200)]);
    // A late duplicate is answered but reports nothing new.
    let a = ua.on_message(
        notify(&tag, 5, "SIP/2.0 200 OK\r\n", "terminated").as_bytes(),
        peer(),
        Transport::Udp,
        now,
    );
    assert_eq!(msg::status(&responses(&a)[0]), 200);
    assert!(transfer_events(&a).is_empty());
}

#[test]
fn a_refused_refer_and_a_failing_notify_are_reported() {
    for code in [405u16, 501, 603] {
        let (mut ua, _tag, now) = established();
        let (_, a) = refer_answered(&mut ua, now, code);
        assert_eq!(transfer_events(&a), vec![ReferStatus::Refused(code)]);
    }
    let (mut ua, tag, now) = established();
    let (_, a) = refer_answered(&mut ua, now, 202);
    assert_eq!(transfer_events(&a), vec![ReferStatus::Accepted]);
    let a = ua.on_message(
        notify(&tag, 2, "SIP/2.0 486 Busy Here\r\n", "terminated").as_bytes(),
        peer(),
        Transport::Udp,
        now,
    );
    assert_eq!(transfer_events(&a), vec![ReferStatus::Failed(486)]);
    // Subscription ended without any status line.
    let (mut ua, tag, now) = established();
    refer_answered(&mut ua, now, 202);
    let a = ua.on_message(
        notify(&tag, 2, "", "terminated;reason=timeout").as_bytes(),
        peer(),
        Transport::Udp,
        now,
    );
    assert_eq!(transfer_events(&a), vec![ReferStatus::Failed(0)]);
}

#[test]
fn an_unanswered_refer_times_out_as_408() {
    let (mut ua, _tag, now) = established();
    ua.command(
        Command::Refer {
            call_id: "t1".into(),
            target: "2001".into(),
        },
        now,
    );
    let a = ua.on_tick(now + Duration::from_secs(40));
    assert_eq!(transfer_events(&a), vec![ReferStatus::Refused(408)]);
}

#[test]
fn refer_on_a_call_that_is_not_up_is_refused_at_once() {
    let mut ua = UserAgent::new(UaConfig::direct("127.0.0.1:5090".parse().expect("addr")));
    let now = Instant::now();
    let a = ua.command(
        Command::PlaceCall {
            call_id: "t1".into(),
            target: "sip:2001@127.0.0.1:5072".into(),
            media: LocalMedia::new("127.0.0.1:40000".parse().expect("addr")),
            ring_timeout: Duration::from_secs(30),
        },
        now,
    );
    assert!(!sent(&a).is_empty());
    let a = ua.command(
        Command::Refer {
            call_id: "t1".into(),
            target: "2001".into(),
        },
        now,
    );
    assert_eq!(transfer_events(&a), vec![ReferStatus::Refused(491)]);
}

#[test]
fn a_refer_from_the_peer_is_refused_with_a_clear_status() {
    let (mut ua, tag, now) = established();
    let refer = in_dialog(
        "REFER",
        &tag,
        2,
        "z9hG4bKref",
        "Refer-To: <sip:3003@127.0.0.1>\r\nReferred-By: <sip:1001@127.0.0.1>\r\n",
        "",
    );
    let a = ua.on_message(refer.as_bytes(), peer(), Transport::Udp, now);
    let r = &responses(&a)[0];
    assert_eq!(msg::status(r), 603);
    let raw = a
        .iter()
        .find_map(|x| match x {
            Action::Send { bytes, .. } => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        })
        .expect("a response is sent");
    assert!(
        raw.starts_with("SIP/2.0 603 Decline: tingshuo does not follow transfers"),
        "{raw}"
    );
    assert!(a.iter().any(|x| matches!(
        x,
        Action::Event(SipEvent::Call(CallEvent::ReferRefused { refer_to, .. })) if refer_to.contains("3003")
    )));
    // Outside any dialog: 481.
    let stray = in_dialog(
        "REFER",
        "nope",
        3,
        "z9hG4bKref2",
        "Refer-To: <sip:3@x>\r\n",
        "",
    );
    let a = ua.on_message(stray.as_bytes(), peer(), Transport::Udp, now);
    assert_eq!(msg::status(&responses(&a)[0]), 481);
    // NOTIFY of another event package: 489.
    let other = in_dialog("NOTIFY", &tag, 4, "z9hG4bKn9", "Event: dialog\r\n", "");
    let a = ua.on_message(other.as_bytes(), peer(), Transport::Udp, now);
    assert_eq!(msg::status(&responses(&a)[0]), 489);
}

#[test]
fn extra_headers_go_on_the_outgoing_invite() {
    let mut ua = UserAgent::new(UaConfig::direct("127.0.0.1:5090".parse().expect("addr")));
    let now = Instant::now();
    let a = ua.command(
        Command::PlaceCallWithHeaders {
            call_id: "b1".into(),
            target: "sip:2001@127.0.0.1:5072".into(),
            media: LocalMedia::new("127.0.0.1:40000".parse().expect("addr")),
            ring_timeout: Duration::from_secs(30),
            headers: vec![("X-Tingshuo-Summary".into(), "a%20b".into())],
        },
        now,
    );
    let invite = sent(&a)
        .into_iter()
        .find_map(|m| match m {
            SipMessage::Request(r) if r.method == Method::Invite => Some(r),
            _ => None,
        })
        .expect("INVITE");
    assert_eq!(
        msg::header_value(invite.headers(), "X-Tingshuo-Summary").as_deref(),
        Some("a%20b")
    );
}

#[test]
fn sipfrag_status_lines_are_read() {
    assert_eq!(sipfrag_status(b"SIP/2.0 180 Ringing\r\n"), Some(180));
    assert_eq!(
        sipfrag_status(b"\r\nSIP/2.0 603 Declined\r\nFoo: x\r\n"),
        Some(603)
    );
    assert_eq!(sipfrag_status(b"garbage"), None);
    assert_eq!(sipfrag_status(b""), None);
}
