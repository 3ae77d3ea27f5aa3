//! SIP over TLS against a real Kamailio with its TLS module: the agent registers over
//! TLS (verifying Kamailio's certificate against a CA file), Kamailio reaches the agent
//! over TLS, and an untrusted certificate is refused.

mod support;

use std::time::Duration;

use support::*;
use tingshuo::sip::{self, SipEvent};

fn tls_agent_config(kam: &Kamailio, ca: &std::path::Path) -> tingshuo::config::Config {
    let tls_port = kam.tls_port.expect("kamailio with TLS");
    let text = format!(
        "[sip]\nlisten = \"127.0.0.1:{}\"\ntls_listen = \"127.0.0.1:{}\"\n\
         registrars = [\"sips:127.0.0.1:{tls_port}\"]\nuser = \"bot\"\npassword = \"passbot\"\n\
         register_expires = 60\n[sip.tls]\nca_file = \"{}\"\n[media]\nsrtp = \"required\"\n",
        free_port(),
        free_port(),
        ca.display()
    );
    tingshuo::config::Config::parse(&text, std::path::Path::new("test.toml"))
        .expect("test config parses")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_over_tls_and_is_reached_over_tls() {
    let kam = blocking(Kamailio::start_tls).await;
    let kport = kam.port;
    let ca = kam.dir.path().join("kamailio.crt");
    let cfg = tls_agent_config(&kam, &ca);
    let mut agent = sip::start(&cfg).await.expect("agent starts");
    let ev = wait_event(&mut agent, Duration::from_secs(15), "Registered", |e| {
        matches!(e, SipEvent::Registered { .. })
    })
    .await;
    assert!(
        matches!(ev, SipEvent::Registered { expires, .. } if expires > 0),
        "{ev:?}"
    );
    // A UDP OPTIONS to Kamailio for "bot" is relayed to the agent's TLS contact.
    let code = blocking(move || sip_ping(kport, "bot")).await;
    assert_eq!(
        code,
        Some(200),
        "kamailio must reach the agent over TLS; log:\n{}",
        kam.proc.log_text()
    );
    let log = kam.proc.log_text();
    let rest = agent.shutdown().await;
    assert!(
        rest.iter()
            .any(|e| matches!(e, SipEvent::Unregistered { .. })),
        "shutdown must un-REGISTER over TLS; events: {rest:?}\nkamailio log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_registrar_certificate_is_refused() {
    let kam = blocking(Kamailio::start_tls).await;
    let kport = kam.port;
    // Trust some other certificate, not Kamailio's.
    let other = tempfile::tempdir().expect("temp dir");
    let (wrong_ca, _) = kamailio_tls_files(other.path());
    let cfg = tls_agent_config(&kam, &wrong_ca);
    let mut agent = sip::start(&cfg).await.expect("agent starts");
    let got = tokio::time::timeout(Duration::from_secs(4), async {
        loop {
            match agent.next_event().await {
                Some(SipEvent::Registered { .. }) => return true,
                Some(_) => continue,
                None => return false,
            }
        }
    })
    .await;
    assert!(
        !matches!(got, Ok(true)),
        "the agent must not register with an untrusted registrar"
    );
    let code = blocking(move || sip_ping(kport, "bot")).await;
    assert_eq!(code, Some(404), "no binding may exist");
    agent.shutdown().await;
}
