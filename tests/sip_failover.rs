//! Registrar fail-over: two Kamailio instances; the primary dies, the agent registers on
//! the secondary within 30 s, a call through the secondary works, and the agent returns
//! to the primary when it comes back.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;
use tingshuo::sip::{self, CallEvent, Command, LocalMedia, SipEvent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_to_secondary_and_returns_to_primary() {
    let primary = blocking(Kamailio::start).await;
    let secondary = blocking(Kamailio::start).await;
    let (p_port, s_port) = (primary.port, secondary.port);
    let p_addr: std::net::SocketAddr = primary.addr().parse().expect("addr");
    let s_addr: std::net::SocketAddr = secondary.addr().parse().expect("addr");
    let cfg = agent_config(&[primary.addr(), secondary.addr()]);
    let mut agent = sip::start(&cfg).await.expect("agent starts");
    wait_event(
        &mut agent,
        Duration::from_secs(10),
        "Registered on primary",
        |e| matches!(e, SipEvent::Registered { registrar, .. } if *registrar == p_addr),
    )
    .await;

    let mut primary = primary;
    let killed = Instant::now();
    blocking(move || {
        primary.proc.kill();
        primary
    })
    .await;
    wait_event(
        &mut agent,
        Duration::from_secs(30),
        "Registered on secondary",
        |e| matches!(e, SipEvent::Registered { registrar, .. } if *registrar == s_addr),
    )
    .await;
    let failover = killed.elapsed();
    eprintln!("fail-over: registered on the secondary {failover:?} after the primary died");
    assert!(failover < Duration::from_secs(30));
    assert_eq!(blocking(move || sip_ping(s_port, "bot")).await, Some(200));

    // A call through the secondary reaches the agent.
    let phone = Arc::new(
        blocking(move || Baresip::start("1005", s_port, "auto", &tone(10.0, 500.0))).await,
    );
    let p = phone.clone();
    blocking(move || p.ctrl("dial", "bot")).await;
    let ev = wait_event(
        &mut agent,
        Duration::from_secs(10),
        "IncomingCall via secondary",
        |e| matches!(e, SipEvent::Call(CallEvent::IncomingCall { .. })),
    )
    .await;
    let SipEvent::Call(CallEvent::IncomingCall { call_id, .. }) = ev else {
        unreachable!()
    };
    let (_m, media) = media_socket();
    agent
        .send(Command::Answer {
            call_id: call_id.clone(),
            media: LocalMedia::new(media),
        })
        .expect("answer");
    wait_event(&mut agent, Duration::from_secs(5), "Answered", |e| {
        matches!(e, SipEvent::Call(CallEvent::Answered { .. }))
    })
    .await;
    agent.send(Command::Hangup { call_id }).expect("hangup");

    // The primary comes back on the same port: the agent returns to it.
    let back = blocking(move || Kamailio::start_on(p_port)).await;
    wait_event(
        &mut agent,
        Duration::from_secs(30),
        "Registered on primary again",
        |e| matches!(e, SipEvent::Registered { registrar, .. } if *registrar == p_addr),
    )
    .await;
    assert_eq!(blocking(move || sip_ping(p_port, "bot")).await, Some(200));
    // ...and left the secondary.
    let gone = blocking(move || {
        wait_until(Duration::from_secs(5), || {
            sip_ping(s_port, "bot") == Some(404)
        })
    })
    .await;
    assert!(
        gone,
        "binding on the secondary removed after returning to the primary"
    );
    agent.shutdown().await;
    drop(back);
    drop(secondary);
}
