//! Crash and shutdown, black box (baresip → Kamailio → `tingshuo serve`):
//!
//! 1. `kill -9` during a call, then restart: the call's record is closed as
//!    `interrupted` with its turns intact, a pending callback is still pending, and
//!    the agent is reachable through the registrar again.
//! 2. SIGTERM during a call: new INVITEs get 503 with Retry-After and `/readyz` says
//!    not ready, the call in progress finishes normally, then the agent un-registers
//!    and exits.

mod resilience_support;
mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use resilience_support::*;
use support::*;
use tingshuo::store::{Store, TurnLine, TurnWrite};

/// Turns the callee said in calls after `after` (0 when there is none yet).
fn callee_turns(db: &std::path::Path, after: i64) -> i64 {
    let Ok(conn) = rusqlite::Connection::open(db) else {
        return 0;
    };
    conn.query_row(
        "SELECT COUNT(*) FROM turns WHERE speaker = 'callee' AND call_id > ?1",
        [after],
        |r| r.get(0),
    )
    .unwrap_or(0)
}

#[test]
fn kill_9_mid_call_then_restart_keeps_records_and_callbacks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kam = Kamailio::start();
    // An earlier call that left a callback to dial.
    let earlier = {
        let mut s = Store::open(&dir.path().join("records.db")).expect("store");
        let id = s
            .start_call(
                "demo",
                "inbound",
                Some("1002"),
                &BTreeMap::new(),
                "2026-11-25T09:00:00+08:00",
            )
            .expect("call");
        s.write_turn(
            id,
            &TurnWrite {
                at: "2026-11-25T09:00:10+08:00".into(),
                lines: vec![TurnLine {
                    speaker: "callee".into(),
                    text: "下午三点以后再打给我吧".into(),
                    ..Default::default()
                }],
                callback_due: Some("2026-11-25T15:00:00+08:00".into()),
                ..Default::default()
            },
        )
        .expect("turn");
        s.end_call(id, "callback_scheduled", "2026-11-25T09:00:20+08:00")
            .expect("end");
        id
    };
    let mut agent = start_agent(dir.path(), &kam, "", &[]);

    let caller = caller_lines(
        dir.path(),
        &[(8.0, "我家的宽带今天早上突然断了，一直连不上。")],
        60.0,
    );
    let phone = Baresip::start("1001", kam.port, "auto", &caller);
    phone.dial("bot");

    let heard = wait_until(Duration::from_secs(60), || {
        callee_turns(&agent.db, earlier) >= 1
    });
    assert!(
        heard,
        "the caller's turn was recorded; log:\n{}",
        agent.proc.log_text()
    );
    // kill -9: no chance to close anything.
    agent.proc.child.kill().expect("SIGKILL the agent");
    let _ = agent.proc.child.wait();

    let restart = Instant::now();
    let agent2 = agent.restart();
    let restart_s = restart.elapsed().as_secs_f64();

    let store = Store::open(&agent2.db).expect("store");
    let calls = store.list(10).expect("list");
    let interrupted = calls
        .iter()
        .find(|c| c.id != earlier)
        .expect("the interrupted call's record");
    let detail = store.show(interrupted.id).expect("show");
    assert_eq!(
        detail.call.outcome.as_deref(),
        Some("interrupted"),
        "outcome after restart; log:\n{}",
        agent2.proc.log_text()
    );
    assert!(detail.call.ended_at.is_some());
    assert!(
        detail.turns.iter().any(|t| t.line.speaker == "agent")
            && detail.turns.iter().any(|t| t.line.speaker == "callee"),
        "turns kept: {:?}",
        detail.turns
    );
    let cb = store.show(earlier).expect("earlier call").callbacks;
    assert_eq!(cb.len(), 1);
    assert_eq!(
        cb[0].status, "pending",
        "the callback is still to be dialled"
    );
    assert!(
        agent2.proc.log_text().contains("closed as `interrupted`"),
        "the restart logs what it closed"
    );
    eprintln!("restart to registered and reachable via the registrar: {restart_s:.1} s");
    drop(phone);
}

#[test]
fn sigterm_drains_calls_and_refuses_new_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kam = Kamailio::start();
    let mut agent = start_agent(dir.path(), &kam, "", &[]);
    assert_eq!(http_status(agent.console_port, "/readyz"), Some(200));

    // The caller talks once and hangs up when the file ends, 20 s in.
    let caller = caller_lines(
        dir.path(),
        &[(8.0, "请问你们的营业时间是几点到几点？")],
        9.0,
    );
    let call_len = caller.len() as f64 / 8000.0;
    let phone = Baresip::start("1001", kam.port, "auto", &caller);
    phone.dial("bot");
    let dialled = Instant::now();
    let up = wait_until(Duration::from_secs(10), || {
        agent.proc.log_text().contains("incoming call")
    });
    assert!(up, "the call reached the agent");
    std::thread::sleep(Duration::from_secs(2));

    let status = Command::new("kill")
        .args(["-TERM", &agent.proc.child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    // The SIP layer's own line: it is logged when the UA has set its draining flag
    // (the agent's "draining" line comes before the command reaches the UA).
    let draining = wait_until(Duration::from_secs(5), || {
        agent
            .proc
            .log_text()
            .contains("not accepting new calls (draining)")
    });
    assert!(draining, "log:\n{}", agent.proc.log_text());
    let refused =
        raw_invite(agent.sip_port).expect("the agent answers a new INVITE while draining");
    assert!(
        refused.starts_with("SIP/2.0 503"),
        "new INVITE refused while draining: {refused}"
    );
    assert!(
        refused.to_ascii_lowercase().contains("retry-after: 30"),
        "503 carries Retry-After: {refused}"
    );
    assert_eq!(http_status(agent.console_port, "/readyz"), Some(503));
    assert!(
        matches!(agent.proc.child.try_wait(), Ok(None)),
        "the agent waits for the call in progress"
    );

    // The call ends when the caller's file does; then the agent stops by itself.
    let exited = wait_until(Duration::from_secs(60), || {
        matches!(agent.proc.child.try_wait(), Ok(Some(_)))
    });
    let log = agent.proc.log_text();
    assert!(exited, "the agent exits once drained; log:\n{log}");
    let elapsed = dialled.elapsed().as_secs_f64();
    assert!(
        elapsed >= call_len - 2.0,
        "the agent waited for the call ({elapsed:.1} s of a {call_len:.1} s call); log:\n{log}"
    );
    assert!(log.contains("drained: every call has ended"), "log:\n{log}");
    let store = Store::open(&agent.db).expect("store");
    let calls = store.list(5).expect("list");
    assert_eq!(calls.len(), 1, "only the drained call was answered");
    let outcome = calls[0].outcome.clone().unwrap_or_default();
    assert!(
        !outcome.is_empty() && outcome != "interrupted",
        "the drained call ended normally: {outcome}"
    );
    assert_eq!(
        sip_ping(kam.port, "bot"),
        Some(404),
        "un-registered on the way out"
    );
    drop(phone);
}
