//! The agent registers on a real Kamailio with digest auth and un-registers on shutdown.

mod support;

use std::time::Duration;

use support::*;
use tingshuo::sip::{self, SipEvent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_with_digest_and_unregisters_on_shutdown() {
    let kam = blocking(Kamailio::start).await;
    let kport = kam.port;
    let cfg = agent_config(&[kam.addr()]);
    let mut agent = sip::start(&cfg).await.expect("agent starts");
    let ev = wait_event(&mut agent, Duration::from_secs(10), "Registered", |e| {
        matches!(e, SipEvent::Registered { .. })
    })
    .await;
    assert!(matches!(ev, SipEvent::Registered { expires, .. } if expires > 0 && expires <= 60));
    // Kamailio now routes requests for "bot" to the agent, which answers OPTIONS.
    let code = blocking(move || sip_ping(kport, "bot")).await;
    assert_eq!(
        code,
        Some(200),
        "kamailio should relay to the registered agent"
    );
    let rest = agent.shutdown().await;
    assert!(
        rest.iter()
            .any(|e| matches!(e, SipEvent::Unregistered { .. })),
        "shutdown must un-REGISTER; events: {rest:?}"
    );
    let code = blocking(move || sip_ping(kport, "bot")).await;
    assert_eq!(code, Some(404), "binding must be gone after un-REGISTER");
    drop(kam);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_reported() {
    let kam = blocking(Kamailio::start).await;
    let mut cfg = agent_config(&[kam.addr()]);
    cfg.sip.password = Some("wrong".into());
    let mut agent = sip::start(&cfg).await.expect("agent starts");
    let ev = wait_event(
        &mut agent,
        Duration::from_secs(10),
        "RegistrationFailed",
        |e| matches!(e, SipEvent::RegistrationFailed { .. }),
    )
    .await;
    let SipEvent::RegistrationFailed { reason, .. } = ev else {
        unreachable!()
    };
    assert!(reason.contains("credentials"), "{reason}");
    agent.shutdown().await;
}
