//! Scheduled callbacks, black box, over real SIP: `tingshuo serve` dials the
//! callbacks in its records database when they fall due, through Kamailio, to
//! baresip phones. One was scheduled before the agent started (callbacks survive
//! restarts), one falls due a few seconds after it registered, and one goes to a
//! phone that never answers and is given up after its bounded attempts.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use support::*;
use tingshuo::store::Store;

fn tingshuo() -> Command {
    Command::new(
        std::env::var_os("TINGSHUO_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_tingshuo").into()),
    )
}

fn now() -> DateTime<FixedOffset> {
    chrono::Local::now().fixed_offset()
}

fn write_config(dir: &Path, kam: &Kamailio, db: &Path) -> PathBuf {
    let config = dir.join("tingshuo.toml");
    let rtp = (free_port_span(41) + 1) & !1;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/campaign-script.md");
    std::fs::write(
        &config,
        format!(
            "[sip]\nlisten = \"127.0.0.1:{}\"\nregistrars = [\"{}\"]\nuser = \"bot\"\npassword = \"passbot\"\n\
rtp_port_min = {rtp}\nrtp_port_max = {}\n\
[agent]\nscript = \"{}\"\nring_timeout_s = 3\n[agent.vars]\nname = \"客户\"\n\
[agent.callbacks]\npoll_s = 1\nmax_attempts = 2\nretry_s = 2\n\
[console]\nlisten = \"127.0.0.1:{}\"\n[store]\npath = \"{}\"\n",
            free_port(),
            kam.addr(),
            rtp + 39,
            script.display(),
            free_port(),
            db.display()
        ),
    )
    .expect("write config");
    config
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
    let db = dir.path().join("records.db");
    let config = write_config(dir.path(), &kam, &db);

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

    let log = dir.path().join("agent.log");
    let logf = std::fs::File::create(&log).expect("log");
    let child = tingshuo()
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(logf.try_clone().expect("log"))
        .stderr(logf)
        .spawn()
        .expect("start tingshuo serve");
    let agent = Proc { child, log };
    let registered = wait_until(Duration::from_secs(180), || {
        sip_ping(kam.port, "bot") == Some(200)
    });
    assert!(
        registered,
        "the agent did not register; log:\n{}",
        agent.log_text()
    );

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
