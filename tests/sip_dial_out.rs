//! The agent dials baresip through Kamailio (407 handled); outcomes are reported distinctly.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::*;
use tingshuo::sip::{self, CallEvent, Command, EndReason, LocalMedia, SipEvent, SipHandle};

fn dial(agent: &SipHandle, target: &str, media: std::net::SocketAddr, ring: Duration) -> String {
    let call_id = sip::new_call_id();
    agent
        .send(Command::PlaceCall {
            call_id: call_id.clone(),
            target: target.into(),
            media: LocalMedia::new(media),
            ring_timeout: ring,
        })
        .expect("place call");
    call_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_dials_baresip_and_both_sides_hang_up() {
    let kam = blocking(Kamailio::start).await;
    let kport = kam.port;
    let mut agent = registered_ua(&kam).await;
    let phone =
        Arc::new(blocking(move || Baresip::start("1001", kport, "auto", &tone(20.0, 300.0))).await);
    let (_m, media) = media_socket();

    // 1: answered (through the 407 challenge), then we hang up.
    let call = dial(&agent, "1001", media, Duration::from_secs(20));
    let ev = wait_event(&mut agent, Duration::from_secs(10), "Answered", |e| {
        matches!(e, SipEvent::Call(CallEvent::Answered { .. }))
    })
    .await;
    let SipEvent::Call(CallEvent::Answered {
        call_id,
        negotiated,
        ..
    }) = ev
    else {
        unreachable!()
    };
    assert_eq!(call_id, call);
    assert!(negotiated.remote.rtp_addr.is_some());
    // Our BYE reaches baresip through the record-routed proxy.
    agent_hangs_up(&mut agent, &phone, &call).await;

    // 2: answered, baresip hangs up.
    let call = dial(&agent, "1001", media, Duration::from_secs(20));
    answered(&mut agent, Duration::from_secs(10)).await;
    phone_hangs_up(&mut agent, &phone, &call, Duration::from_millis(300)).await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_not_found_and_no_answer_are_distinct() {
    let kam = blocking(Kamailio::start).await;
    let kport = kam.port;
    let mut agent = registered_ua(&kam).await;
    let phone = Arc::new(
        blocking(move || Baresip::start("1002", kport, "manual", &tone(5.0, 300.0))).await,
    );
    let (_m, media) = media_socket();

    // Not registered: Kamailio answers 404.
    let call = dial(&agent, "1004", media, Duration::from_secs(20));
    assert_eq!(
        call_ended(&mut agent, &call, Duration::from_secs(20)).await,
        EndReason::NotFound
    );

    // Rings, the phone's user rejects: 486 Busy Here.
    let call = dial(&agent, "1002", media, Duration::from_secs(20));
    wait_event(&mut agent, Duration::from_secs(10), "Ringing", |e| {
        matches!(e, SipEvent::Call(CallEvent::Ringing { .. }))
    })
    .await;
    let p = phone.clone();
    blocking(move || p.ctrl("hangup", "")).await;
    assert_eq!(
        call_ended(&mut agent, &call, Duration::from_secs(20)).await,
        EndReason::Busy
    );

    // Rings until our ringing timeout: we CANCEL and report NoAnswer.
    let call = dial(&agent, "1002", media, Duration::from_secs(2));
    assert_eq!(
        call_ended(&mut agent, &call, Duration::from_secs(20)).await,
        EndReason::NoAnswer
    );
    let p = phone.clone();
    assert!(
        blocking(move || wait_until(Duration::from_secs(15), || p.is_idle())).await,
        "baresip saw the CANCEL"
    );
    agent.shutdown().await;
}
