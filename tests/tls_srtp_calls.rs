//! Encrypted calls end to end (SIP over TLS, SRTP with SDES keys) against real peers on
//! loopback: Kamailio with its TLS module as registrar, baresip with `mediaenc=srtp-mand`
//! registered over TLS, and `tingshuo serve` registered over TLS with SRTP required.
//!
//! * The phone calls the agent: both directions of audio are understood, the recording
//!   is intelligible, and a capture of the loopback shows no SIP in clear on the TLS
//!   port and only noise-like (encrypted) RTP payloads; a phone offering plain RTP gets
//!   488 from the SRTP-only agent.
//! * The agent dials the phone over TLS (`tingshuo dial sip:…;transport=tls`) with
//!   SRTP, and the phone hears the agent.
//! * A bridged transfer from an SRTP call: the agent dials the person's SRTP-only phone
//!   over TLS, and the person's voice reaches the caller through both SRTP legs.

mod support;

use std::time::Duration;

use support::capture::Capture;
use support::entropy::entropy_bits_per_byte;
use support::*;
use tingshuo::store::Store;

/// An agent registered over TLS on `kam`, SRTP required, with `toml` appended.
fn tls_agent(dir: &std::path::Path, kam: &Kamailio, toml: &str) -> AgentSetup {
    AgentSetup::new(dir)
        .registrar_tls(kam)
        .rtp_ports(20)
        .toml(toml)
}

/// The agent's inbound opening (the embedded demo script).
const OPENING: &str = "您好，欢迎致电星河宽带客服热线，我是智能客服小安，请问有什么可以帮您？";

#[test]
fn a_srtp_phone_calls_the_agent_over_tls_and_the_loopback_shows_no_cleartext() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let kam = Kamailio::start_tls();
    let tls = kam.tls_port.expect("tls port");
    let agent = tls_agent(d, &kam, "[agent]\nrecord_audio = true\n").start();
    let capture = Capture::start(
        d,
        &format!(
            "tcp port {tls} or udp portrange {}-{}",
            agent.rtp_min, agent.rtp_max
        ),
    );
    let question = "请问你们周末营业吗？";
    let mut audio = silence(12.0);
    audio.extend(say(d, "question", question));
    audio.extend(silence(40.0));
    let phone = Baresip::start_tls_srtp("1001", &kam, "auto", &audio);
    phone.dial("bot");

    // The agent hears the caller (SRTP decrypted) and answers.
    let store = Store::open(&agent.db).expect("open records");
    let replied = wait_until(Duration::from_secs(120), || {
        let Some(call) = store.list(1).ok().and_then(|l| l.into_iter().next()) else {
            return false;
        };
        store.show(call.id).is_ok_and(|c| {
            let callee = c.turns.iter().position(|t| t.line.speaker == "callee");
            callee.is_some_and(|i| c.turns[i..].iter().any(|t| t.line.speaker == "agent"))
        })
    });
    assert!(
        replied,
        "no caller turn answered; agent log:\n{}\nphone log:\n{}",
        agent.log_text(),
        phone.proc.log_text()
    );
    std::thread::sleep(Duration::from_secs(6));
    phone.ctrl("hangup", "");
    let ended = wait_until(Duration::from_secs(20), || {
        store
            .list(1)
            .ok()
            .and_then(|l| l.into_iter().next())
            .is_some_and(|c| c.outcome.is_some())
    });
    assert!(ended, "the call did not end; log:\n{}", agent.log_text());
    let packets = capture.finish();
    let call = store
        .show(store.list(1).expect("list")[0].id)
        .expect("record");
    let context = format!(
        "record: {call:#?}\nagent log:\n{}\nphone log:\n{}",
        agent.log_text(),
        phone.proc.log_text()
    );
    let said = call
        .turns
        .iter()
        .find(|t| t.line.speaker == "callee")
        .map(|t| t.line.text.clone())
        .unwrap_or_default();
    let heard_q = bigram_coverage(question, &said);
    assert!(
        heard_q >= 0.5,
        "the agent heard {said:?} for {question:?}; {context}"
    );

    // The phone heard the agent (SRTP from the agent decrypted by baresip).
    let (heard, _) = phone.dumps();
    let heard = transcribe(&heard.expect("baresip wrote what it heard"));
    let heard_opening = bigram_coverage(OPENING, &heard);
    assert!(heard_opening >= 0.4, "the phone heard {heard:?}; {context}");

    // The recording (decrypted audio, both sides) is intelligible.
    let recording = std::fs::read_dir(d.join("recordings"))
        .expect("recordings folder")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "wav"))
        .expect("a call recording");
    let recorded = transcribe(&recording);
    let recorded_opening = bigram_coverage(OPENING, &recorded);
    assert!(
        recorded_opening >= 0.4,
        "the recording transcribes as {recorded:?}; {context}"
    );

    // What the loopback carried: TLS records on the SIP port, never SIP text ...
    let sip: Vec<u8> = packets
        .iter()
        .filter(|p| p.tcp && (p.src_port == tls || p.dst_port == tls))
        .flat_map(|p| p.payload.iter().copied())
        .collect();
    assert!(
        sip.len() > 2000 && sip.windows(3).any(|w| w == [0x17, 0x03, 0x03]),
        "no TLS application data on port {tls} ({} bytes captured)",
        sip.len()
    );
    for clear in [
        &b"INVITE"[..],
        b"Call-ID",
        b"SIP/2.0",
        b"REGISTER",
        b"a=crypto",
    ] {
        assert!(
            !sip.windows(clear.len()).any(|w| w == clear),
            "{:?} in clear on the TLS port",
            String::from_utf8_lossy(clear)
        );
    }
    // ... and media whose payloads look like noise in both directions (G.711 speech
    // in clear measures well under 7.5 bits per byte).
    let agent_rtp =
        |port: u16| (agent.rtp_min..=agent.rtp_max).contains(&port) && port.is_multiple_of(2);
    let mut directions = Vec::new();
    for to_agent in [true, false] {
        let payload: Vec<u8> = packets
            .iter()
            .filter(|p| !p.tcp && p.payload.len() > 12)
            .filter(|p| {
                if to_agent {
                    agent_rtp(p.dst_port)
                } else {
                    agent_rtp(p.src_port)
                }
            })
            .flat_map(|p| p.payload[12..].iter().copied())
            .collect();
        let bits = entropy_bits_per_byte(&payload);
        directions.push((to_agent, payload.len(), bits));
        assert!(
            payload.len() > 50_000 && bits >= 7.5,
            "RTP {} the agent: {} payload bytes at {bits:.2} bits/byte",
            if to_agent { "to" } else { "from" },
            payload.len()
        );
    }
    eprintln!(
        "SRTP over TLS: agent heard {said:?} ({:.0} %), phone heard {:.0} % of the opening, recording {:.0} %; \
         TLS bytes on the SIP port {}; RTP payload entropy (to agent?, bytes, bits/byte) {directions:?}",
        heard_q * 100.0,
        heard_opening * 100.0,
        recorded_opening * 100.0,
        sip.len()
    );

    // A phone that offers plain RTP is refused by the SRTP-only agent.
    let plain = Baresip::start("1002", kam.port, "auto", &silence(5.0));
    plain.dial("bot");
    let refused = wait_until(Duration::from_secs(20), || {
        let log = plain.proc.log_text();
        log.contains("488") && log.contains("SRTP required")
    });
    assert!(
        refused,
        "a plain RTP offer was not refused with 488; phone log:\n{}",
        plain.proc.log_text()
    );
}

#[test]
fn the_agent_dials_a_srtp_phone_over_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let kam = Kamailio::start_tls();
    let tls = kam.tls_port.expect("tls port");
    let phone = Baresip::start_tls_srtp("1003", &kam, "auto", &silence(60.0));
    let config = tls_agent(d, &kam, "").write();
    // `;transport=tls`, not `sips:`: Kamailio then record-routes with a `sips:` URI,
    // and baresip 1.0 never sends its BYE along such a route.
    let mut dial = config.dial(&format!("sip:1003@127.0.0.1:{tls};transport=tls"));
    let context = |dial: &Proc| {
        format!(
            "dial log:\n{}\nphone log:\n{}",
            dial.log_text(),
            phone.proc.log_text()
        )
    };
    let answered = wait_until(Duration::from_secs(120), || {
        phone.proc.log_text().contains("Call established")
    });
    assert!(answered, "the phone never answered; {}", context(&dial));
    // Listen to the agent's opening, then hang up.
    std::thread::sleep(Duration::from_secs(12));
    phone.ctrl("hangup", "");
    let done = wait_until(Duration::from_secs(30), || {
        matches!(dial.child.try_wait(), Ok(Some(_)))
    });
    assert!(done, "tingshuo dial did not end; {}", context(&dial));
    let text = strip_ansi(&dial.log_text());
    let (heard, _) = phone.dumps();
    let heard = transcribe(&heard.expect("baresip wrote what it heard"));
    let store = Store::open(&config.db).expect("open records");
    let call = store
        .show(store.list(1).expect("list")[0].id)
        .expect("record");
    let opening = call
        .turns
        .iter()
        .find(|t| t.line.speaker == "agent")
        .map(|t| t.line.text.clone())
        .unwrap_or_default();
    let covered = bigram_coverage(&opening, &heard);
    eprintln!(
        "dial over TLS with SRTP: the phone heard {:.0} % of {opening:?}: {heard:?}",
        covered * 100.0
    );
    assert!(
        covered >= 0.4,
        "the phone did not hear the agent over SRTP (heard {heard:?} for {opening:?}); {}",
        context(&dial)
    );
    assert!(
        text.contains("outgoing call answered") && text.contains("srtp=true"),
        "the call was not answered with SRTP; {}",
        context(&dial)
    );
    assert!(
        text.contains("call to sip:1003"),
        "no outcome printed; {}",
        context(&dial)
    );
}

#[test]
fn a_bridged_transfer_over_tls_puts_the_persons_leg_on_srtp_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let kam = Kamailio::start_tls();
    let tls = kam.tls_port.expect("tls port");
    // `;transport=tls` rather than `sips:` for the reason given in the dial test.
    let agent = tls_agent(
        d,
        &kam,
        &format!(
            "[transfer]\ntarget = \"sip:1002@127.0.0.1:{tls};transport=tls\"\n\
             method = \"bridge\"\ntimeout_secs = 20\n"
        ),
    )
    .start();
    let person = Baresip::start_tls_srtp("1002", &kam, "auto", &tone(90.0, 700.0));
    let mut audio = silence(10.0);
    audio.extend(say(d, "ask", "请转接人工客服。"));
    audio.extend(silence(50.0));
    let caller = Baresip::start_tls_srtp("1001", &kam, "auto", &audio);
    caller.dial("bot");
    let bridged = wait_until(Duration::from_secs(90), || {
        agent.log_text().contains("the call is with a person")
    });
    assert!(
        bridged,
        "no bridge; agent log:\n{}\nperson log:\n{}",
        agent.log_text(),
        person.proc.log_text()
    );
    std::thread::sleep(Duration::from_secs(4));
    caller.ctrl("hangup", "");
    std::thread::sleep(Duration::from_secs(1));
    // The person's SRTP-only phone answered the agent's SRTP offer, and its tone,
    // decrypted on one leg and encrypted on the other, reached the caller.
    let share = tone_share(&caller.heard_all(), 700.0);
    assert!(
        share > 0.7,
        "the person's 700 Hz tone did not reach the caller over SRTP (best share {share}); \
         agent log:\n{}",
        agent.log_text()
    );
    eprintln!("bridged transfer over TLS with SRTP on both legs: tone share {share:.2}");
}
