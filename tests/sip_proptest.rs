//! Property tests (stable, run in CI): random and mutated SIP messages and SDP bodies
//! never panic the parser, the SDP negotiator or the whole UA core.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tingshuo::sip::msg;
use tingshuo::sip::sdp::{self, LocalMedia};
use tingshuo::sip::ua::{UaConfig, UserAgent};
use tingshuo::sip::{Command, Transport};

const INVITE: &str = "INVITE sip:bot@127.0.0.1:5090 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK1;rport\r\nFrom: <sip:1001@127.0.0.1>;tag=a\r\nTo: <sip:bot@127.0.0.1>\r\nCall-ID: p1\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@127.0.0.1:5071>\r\nRecord-Route: <sip:127.0.0.1;lr>\r\nContent-Type: application/sdp\r\nContent-Length: 119\r\n\r\nv=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";

const RESPONSE: &str = "SIP/2.0 407 Proxy Authentication Required\r\nv: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKx;rport=5090\r\nf: <sip:bot@127.0.0.1>;tag=b\r\nt: <sip:1001@127.0.0.1>;tag=c\r\ni: p2\r\nCSeq: 1 INVITE\r\nProxy-Authenticate: Digest realm=\"r\", nonce=\"n\", qop=\"auth\"\r\nl: 0\r\n\r\n";

fn mutate(base: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut v = base.to_vec();
    for &(pos, kind, byte) in edits {
        if v.is_empty() {
            v.push(byte);
            continue;
        }
        let p = pos % v.len();
        match kind % 4 {
            0 => v[p] = byte,
            1 => v.insert(p, byte),
            2 => {
                v.remove(p);
            }
            _ => v.truncate(p),
        }
    }
    v
}

fn core() -> UserAgent {
    let mut cfg = UaConfig::direct("127.0.0.1:5090".parse().expect("addr"));
    cfg.registrars = vec!["127.0.0.1:5060".parse().expect("addr")];
    cfg.password = Some("passbot".into());
    UserAgent::new(cfg)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = msg::parse(&bytes);
        let _ = msg::stream_frame_len(&bytes);
        let _ = sdp::parse(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(
        which in 0usize..2,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..12),
    ) {
        let base = if which == 0 { INVITE } else { RESPONSE };
        let bytes = mutate(base.as_bytes(), &edits);
        if let Ok(m) = msg::parse(&bytes) {
            // Whatever parses must serialise and parse again.
            let again = msg::to_bytes(&m);
            prop_assert!(msg::parse(&again).is_ok(), "re-parse of {:?}", String::from_utf8_lossy(&again));
        }
    }

    #[test]
    fn the_ua_core_survives_hostile_traffic(
        msgs in proptest::collection::vec(
            (0usize..2, proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..6)),
            1..8,
        ),
        answer in any::<bool>(),
    ) {
        let mut ua = core();
        let now = Instant::now();
        let src: SocketAddr = "127.0.0.1:5071".parse().expect("addr");
        ua.start(now);
        for (i, (which, edits)) in msgs.iter().enumerate() {
            let base = if *which == 0 { INVITE } else { RESPONSE };
            let bytes = mutate(base.as_bytes(), edits);
            let t = now + Duration::from_millis(i as u64 * 300);
            ua.on_message(&bytes, src, Transport::Udp, t);
            if answer {
                ua.command(Command::Answer { call_id: "p1".into(), media: LocalMedia::new("127.0.0.1:40000".parse().expect("addr")) }, t);
            }
            ua.on_tick(t + Duration::from_secs(1));
        }
        ua.on_tick(now + Duration::from_secs(120));
    }

    #[test]
    fn sdp_lines_in_any_order_never_panic(
        lines in proptest::collection::vec(
            prop_oneof![
                Just("v=0".to_string()),
                Just("c=IN IP4 0.0.0.0".to_string()),
                Just("c=IN IP6 ::1".to_string()),
                Just("a=sendonly".to_string()),
                Just("a=inactive".to_string()),
                "m=audio [0-9]{1,6} RTP/AVP( [0-9]{1,3}){0,5}",
                "a=rtpmap:[0-9]{1,3} [A-Za-z-]{1,16}/[0-9]{1,6}",
                "a=ptime:[0-9]{1,4}",
                "[a-z]=[ -~]{0,30}",
            ],
            0..16,
        )
    ) {
        let body = lines.join("\r\n");
        if let Ok(remote) = sdp::parse(body.as_bytes()) {
            let local = LocalMedia::new("127.0.0.1:40000".parse().expect("addr"));
            if let Ok(n) = sdp::negotiate(&remote, &local) {
                let answer = sdp::build_answer(&n, &local, 1);
                prop_assert!(sdp::parse(answer.as_bytes()).is_ok());
            }
        }
    }
}
