//! baresip, registered on Kamailio, calls the agent: answer, hang-ups both ways, CANCEL.

mod support;

use std::time::{Duration, Instant};

use support::*;
use tingshuo::sip::{self, CallEvent, Command, EndReason, LocalMedia, SipEvent, SipHandle};

async fn incoming(agent: &mut SipHandle, caller: &str) -> String {
    match wait_event(agent, Duration::from_secs(10), "IncomingCall", |e| {
        matches!(e, SipEvent::Call(CallEvent::IncomingCall { .. }))
    })
    .await
    {
        SipEvent::Call(CallEvent::IncomingCall {
            call_id,
            from,
            remote,
            ..
        }) => {
            assert!(
                from.contains(caller),
                "From names the caller {caller}: {from}"
            );
            assert!(remote.rtp_addr.is_some(), "baresip offers an RTP address");
            call_id
        }
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_calls_agent_agent_answers_and_hangs_up() {
    let kam = blocking(Kamailio::start).await;
    let kport = kam.port;
    let mut agent = registered_ua(&kam).await;
    let phone = std::sync::Arc::new(
        blocking(move || Baresip::start("1001", kport, "auto", &tone(20.0, 440.0))).await,
    );
    let (_media, media_addr) = media_socket();
    let t0 = Instant::now();
    let p = phone.clone();
    let reply = blocking(move || p.ctrl("dial", "bot")).await;
    assert!(reply.contains("\"ok\":true"), "dial accepted: {reply}");
    let call = incoming(&mut agent, "1001").await;
    agent
        .send(Command::Answer {
            call_id: call.clone(),
            media: LocalMedia::new(media_addr),
        })
        .expect("answer");
    let ev = wait_event(&mut agent, Duration::from_secs(5), "Answered", |e| {
        matches!(e, SipEvent::Call(CallEvent::Answered { .. }))
    })
    .await;
    let setup = t0.elapsed();
    eprintln!("call set-up (dial command -> 200 OK sent, through kamailio with 407): {setup:?}");
    let SipEvent::Call(CallEvent::Answered { negotiated, .. }) = ev else {
        unreachable!()
    };
    assert_eq!(negotiated.codec, sip::Codec::Pcmu);
    // baresip sends RTP to our media address once it got the 200 and ACKed.
    let m = _media.try_clone().expect("clone");
    let got_rtp = blocking(move || {
        m.set_read_timeout(Some(Duration::from_secs(3))).ok();
        let mut b = [0u8; 2048];
        m.recv_from(&mut b).map(|(n, _)| n).unwrap_or(0)
    })
    .await;
    assert!(
        got_rtp >= 12 + 160,
        "baresip streams 20 ms PCMU packets to the answered address"
    );
    agent_hangs_up(&mut agent, &phone, &call).await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_hangs_up_after_answer() {
    let kam = blocking(Kamailio::start).await;
    let kport = kam.port;
    let mut agent = registered_ua(&kam).await;
    let phone = std::sync::Arc::new(
        blocking(move || Baresip::start("1002", kport, "auto", &tone(20.0, 440.0))).await,
    );
    let (_media, media_addr) = media_socket();
    let p = phone.clone();
    blocking(move || p.ctrl("dial", "bot")).await;
    let call = incoming(&mut agent, "1002").await;
    agent
        .send(Command::Answer {
            call_id: call.clone(),
            media: LocalMedia::new(media_addr),
        })
        .expect("answer");
    answered(&mut agent, Duration::from_secs(5)).await;
    phone_hangs_up(&mut agent, &phone, &call, Duration::from_millis(500)).await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_cancels_before_answer() {
    let kam = blocking(Kamailio::start).await;
    let kport = kam.port;
    let mut agent = registered_ua(&kam).await;
    let phone = std::sync::Arc::new(
        blocking(move || Baresip::start("1003", kport, "auto", &tone(20.0, 440.0))).await,
    );
    let p = phone.clone();
    blocking(move || p.ctrl("dial", "bot")).await;
    let call = incoming(&mut agent, "1003").await;
    // Not answering: the phone gives up, which sends CANCEL; we answer 487.
    let p = phone.clone();
    blocking(move || p.ctrl("hangup", "")).await;
    assert_eq!(
        call_ended(&mut agent, &call, Duration::from_secs(20)).await,
        EndReason::Cancelled
    );
    let p = phone.clone();
    let idle = blocking(move || wait_until(Duration::from_secs(15), || p.is_idle())).await;
    assert!(
        idle,
        "baresip saw its call terminated (487); log:\n{}",
        phone.proc.log_text()
    );
    agent.shutdown().await;
}
