//! A single registrar restarts (in-memory bindings lost): the agent notices through its
//! OPTIONS keepalive and registers again, so calls reach it afterwards.

mod support;

use std::time::Duration;

use support::*;
use tingshuo::sip::{driver, SipEvent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_registers_after_registrar_restart() {
    let kam = blocking(Kamailio::start).await;
    let kport = kam.port;
    let cfg = agent_config(&[kam.addr()]);
    let mut ua = driver::ua_config(&cfg).await.expect("ua config");
    // A short keepalive keeps the test short; production uses 10 s.
    ua.keepalive = Duration::from_secs(2);
    ua.probe_timeout = Duration::from_secs(2);
    let mut agent = driver::start_with(ua).await.expect("agent starts");
    wait_event(&mut agent, Duration::from_secs(10), "Registered", |e| {
        matches!(e, SipEvent::Registered { .. })
    })
    .await;
    let mut kam = kam;
    let kam = blocking(move || {
        kam.proc.kill();
        kam
    })
    .await;
    wait_event(
        &mut agent,
        Duration::from_secs(10),
        "keepalive failure",
        |e| matches!(e, SipEvent::RegistrationFailed { .. }),
    )
    .await;
    let restarted = blocking(move || Kamailio::start_on(kport)).await;
    assert_eq!(
        blocking(move || sip_ping(kport, "bot")).await,
        Some(404),
        "the restarted registrar has lost the binding"
    );
    wait_event(
        &mut agent,
        Duration::from_secs(20),
        "Registered again",
        |e| matches!(e, SipEvent::Registered { .. }),
    )
    .await;
    assert_eq!(blocking(move || sip_ping(kport, "bot")).await, Some(200));
    agent.shutdown().await;
    drop((kam, restarted));
}
