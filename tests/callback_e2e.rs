//! Scheduled callbacks, black box, over real SIP: `tingshuo serve` dials the
//! callbacks in its records database when they fall due, through Kamailio, to
//! baresip phones. One was scheduled before the agent started (callbacks survive
//! restarts), one falls due a few seconds after it registered, and one goes to a
//! phone that never answers and is given up after its bounded attempts.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use support::*;
use tingshuo::store::Store;

fn now() -> DateTime<FixedOffset> {
    chrono::Local::now().fixed_offset()
}

/// The agent: the campaign script, quick callbacks (polled every second, two
/// attempts 2 s apart) and a 3 s ring timeout. Its records database is `dir/records.db`.
fn agent_setup(dir: &Path, kam: &Kamailio) -> AgentSetup {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/campaign-script.md");
    AgentSetup::new(dir)
        .registrar(kam)
        .rtp_ports(40)
        .toml(&format!(
            "[agent]\nscript = \"{}\"\nring_timeout_s = 3\n[agent.vars]\nname = \"客户\"\n\
[agent.callbacks]\npoll_s = 1\nmax_attempts = 2\nretry_s = 2\n",
            script.display()
        ))
}

/// An earlier call (inbound from `peer`) whose callee asked to be called back.
fn earlier_call(store: &mut Store, peer: &str, name: &str) -> i64 {
    let vars = BTreeMap::from([("name".to_string(), name.to_string())]);
    let t = now().to_rfc3339();
    let id = store
        .start_call("earlier.md", "inbound", Some(peer), &vars, &t)
        .expect("call row");
    store
        .end_call(id, "callback_scheduled", &t)
        .expect("end call");
    id
}

#[test]
fn serve_dials_due_callbacks_and_links_the_new_calls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kam = Kamailio::start();
    let _p1 = Baresip::start("1001", kam.port, "auto", &vec![0; 24_000]);
    let _p2 = Baresip::start("1002", kam.port, "auto", &vec![0; 24_000]);
    let _p3 = Baresip::start("1003", kam.port, "manual", &tone(5.0, 300.0));
    let setup = agent_setup(dir.path(), &kam);
    let db = dir.path().join("records.db");

    // Scheduled before the agent runs: overdue when it starts.
    let mut store = Store::open(&db).expect("open records");
    let a = earlier_call(&mut store, "sip:1001@127.0.0.1", "王五");
    let t = now();
    let overdue = store
        .add_callback(
            a,
            &(t - chrono::Duration::seconds(60)).to_rfc3339(),
            None,
            &t.to_rfc3339(),
        )
        .expect("callback 1");
    let c = earlier_call(&mut store, "sip:1009@127.0.0.1", "孙九");
    let unanswered = store
        .add_callback(c, &t.to_rfc3339(), Some("1003"), &t.to_rfc3339())
        .expect("callback 3");

    let agent = setup.start();

    // Scheduled while the agent runs, due a few seconds later.
    let b = earlier_call(&mut store, "\"钱七\" <sip:1002@127.0.0.1>;tag=x1", "钱七");
    let due = now() + chrono::Duration::seconds(4);
    let soon = store
        .add_callback(b, &due.to_rfc3339(), None, &now().to_rfc3339())
        .expect("callback 2");
    assert_eq!(
        store.callback(soon).expect("callback 2").status,
        "pending",
        "not dialled before it is due"
    );

    let settled = wait_until(Duration::from_secs(90), || {
        let s = |id| store.callback(id).map(|c| c.status).unwrap_or_default();
        s(overdue) == "done" && s(soon) == "done" && s(unanswered) == "failed"
    });
    let context = || {
        format!(
            "callbacks: {:#?}\nagent log:\n{}",
            [overdue, soon, unanswered].map(|id| store.callback(id).ok()),
            agent.log_text()
        )
    };
    assert!(settled, "callbacks did not settle; {}", context());

    // The overdue one dialled the original peer with the original variables.
    let cb = store.callback(overdue).expect("callback 1");
    assert_eq!(cb.attempts, 1, "{}", context());
    let call = store
        .show(cb.dialled_call_id.expect("linked to the new call"))
        .expect("dialled call record");
    assert_eq!(call.call.direction, "outbound");
    assert_eq!(call.call.peer.as_deref(), Some("1001"));
    assert_eq!(call.vars["name"], "王五");
    assert!(
        call.turns
            .iter()
            .any(|t| t.line.speaker == "agent" && t.line.text.contains("王五")),
        "the callback call ran the script with the original name: {call:#?}"
    );

    // The later one was dialled when due, not before.
    let cb = store.callback(soon).expect("callback 2");
    let call = store
        .show(cb.dialled_call_id.expect("linked to the new call"))
        .expect("dialled call record");
    assert_eq!(call.call.peer.as_deref(), Some("1002"));
    assert_eq!(call.vars["name"], "钱七");
    let started = DateTime::parse_from_rfc3339(&call.call.started_at).expect("started_at");
    assert!(started >= due, "dialled at {started}, due at {due}");

    // The one nobody answers is tried twice (2 s apart), then marked failed.
    let cb = store.callback(unanswered).expect("callback 3");
    assert_eq!(cb.attempts, 2, "{}", context());
    assert!(
        cb.last_error.as_deref().unwrap_or("").contains("no_answer"),
        "{}",
        context()
    );
    let tries = store
        .list(100)
        .expect("calls")
        .into_iter()
        .filter(|c| c.peer.as_deref() == Some("1003"))
        .count();
    assert_eq!(tries, 2, "{}", context());
}

/// The whole loop: baresip calls the agent and asks to be called back in a
/// minute; the record says `callback_scheduled` at that minute, and when it comes
/// the agent calls baresip back and links the new call to the callback.
#[test]
fn a_callback_the_caller_asked_for_is_dialled_when_due() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kam = Kamailio::start();
    let db = dir.path().join("records.db");
    let mut callee = silence(7.0);
    callee.extend(say(
        dir.path(),
        "later",
        "我现在在开车，不方便，你一分钟以后再打过来吧",
    ));
    // Time for the agent to hear and answer: on a loaded machine recognising the
    // request can take many seconds, and the phone hangs up when its file ends (with
    // 8 s here the caller once hung up before the agent had heard it: no_response).
    // The agent closes the call itself once the callback is agreed.
    callee.extend(silence(40.0));
    let agent = agent_setup(dir.path(), &kam).start();
    let phone = Baresip::start("1001", kam.port, "auto", &callee);
    phone.dial("bot");

    let store = Store::open(&db).expect("open records");
    let first = || {
        store
            .list(100)
            .ok()
            .and_then(|l| l.into_iter().min_by_key(|c| c.id))
    };
    let ended = wait_until(Duration::from_secs(120), || {
        first().is_some_and(|c| c.outcome.is_some())
    });
    assert!(
        ended,
        "the inbound call did not end; log:\n{}",
        agent.log_text()
    );
    let call = first().expect("the inbound call");
    let detail = store.show(call.id).expect("call record");
    assert_eq!(
        call.outcome.as_deref(),
        Some("callback_scheduled"),
        "record: {detail:#?}\nlog:\n{}",
        agent.log_text()
    );
    // "In a minute": the next whole minute after the request, within the call.
    let due = DateTime::parse_from_rfc3339(call.callback_at.as_deref().expect("callback_at"))
        .expect("callback_at is RFC 3339");
    let started = DateTime::parse_from_rfc3339(&call.started_at).expect("started_at");
    let ended_at = DateTime::parse_from_rfc3339(call.ended_at.as_deref().expect("ended_at"))
        .expect("ended_at");
    assert!(
        due > started
            && due <= ended_at + chrono::Duration::seconds(60)
            && due.timestamp() % 60 == 0,
        "callback at {due} for a call from {started} to {ended_at}"
    );
    let callback = detail.callbacks.first().expect("a callback row").id;
    assert_eq!(
        store.callback(callback).expect("callback").status,
        "pending"
    );

    let done = wait_until(Duration::from_secs(100), || {
        store.callback(callback).is_ok_and(|c| c.status == "done")
    });
    let cb = store.callback(callback).expect("callback");
    assert!(
        done,
        "the callback was not dialled: {cb:#?}\nlog:\n{}",
        agent.log_text()
    );
    let back = store
        .show(cb.dialled_call_id.expect("linked to the new call"))
        .expect("callback call record");
    assert_eq!(back.call.direction, "outbound");
    assert_eq!(back.call.peer.as_deref(), Some("1001"));
    let dialled = DateTime::parse_from_rfc3339(&back.call.started_at).expect("started_at");
    assert!(dialled >= due, "dialled at {dialled}, due at {due}");
}
