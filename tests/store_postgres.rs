//! The records store's behaviour, run against both backends (issue 17): each test
//! body runs once on a SQLite file and once on a private PostgreSQL 15 cluster
//! (tests/support/postgres.rs), through the same `Store` API the agent uses. The
//! PostgreSQL-only tests cover what SQLite has no counterpart for: a database
//! that goes away and comes back, and two agents starting on an empty database.
//! A missing PostgreSQL makes these tests fail with what to install.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use support::postgres::{PgCluster, PG_PASSWORD};
use tingshuo::store::{
    CampaignRow, Dialect, RowStatus, Store, StoreError, StoreTarget, TransferRow, TurnLine,
    TurnTiming, TurnWrite, INTERRUPTED, SCHEMA_VERSION,
};

/// One database both backends' tests open connections to, like agents do.
enum Db {
    Sqlite(tempfile::TempDir),
    Postgres(PgCluster),
}

impl Db {
    fn sqlite() -> Self {
        Db::Sqlite(tempfile::tempdir().expect("temp dir"))
    }
    fn postgres() -> Self {
        Db::Postgres(PgCluster::start())
    }
    fn target(&self) -> StoreTarget {
        match self {
            Db::Sqlite(dir) => StoreTarget::Sqlite(dir.path().join("records.db")),
            // The password in the URL here; deployments use TINGSHUO_DB_PASSWORD.
            Db::Postgres(pg) => StoreTarget::Postgres(format!(
                "postgres://postgres:{PG_PASSWORD}@127.0.0.1:{}/tingshuo",
                pg.port
            )),
        }
    }
    /// A new connection, as agent `name`.
    fn open(&self, name: &str) -> Store {
        let mut s = Store::connect(&self.target()).expect("open the store");
        s.set_agent(name);
        s
    }
}

/// `sqlite_NAME` and `postgres_NAME` tests running `NAME(&Db)`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(&super::Db::sqlite()); })*
        }
        mod postgres {
            $(#[test] fn $name() { super::$name(&super::Db::postgres()); })*
        }
    };
}

both_backends!(
    turns_fields_and_callbacks_round_trip,
    campaign_rows_are_claimed_once_by_racing_agents,
    a_dead_agents_claim_lapses_with_its_lease,
    restart_and_dead_agents_close_only_their_own_calls,
    do_not_call_and_callbacks_are_shared,
    transfers_and_person_callbacks_round_trip,
    turn_write_latency,
);

fn vars() -> BTreeMap<String, String> {
    BTreeMap::from([("name".to_string(), "周敏".to_string())])
}

fn turn(at: &str, callee: &str, agent: &str) -> TurnWrite {
    TurnWrite {
        at: at.into(),
        lines: vec![
            TurnLine {
                speaker: "callee".into(),
                text: callee.into(),
                asr_confidence: Some(0.87),
                intent: Some("answer".into()),
                interruptible: true,
                ..Default::default()
            },
            TurnLine {
                speaker: "agent".into(),
                text: agent.into(),
                step: Some("2".into()),
                interruptible: true,
                ..Default::default()
            },
        ],
        fields: vec![("门牌号".into(), "602".into())],
        callback_due: None,
        timing: TurnTiming {
            t_speech_end: Some(1_700_000_000_000),
            t_reply_chosen: Some(1_700_000_000_420),
            ..Default::default()
        },
        steps: vec!["opening".into(), "2".into()],
    }
}

fn turns_fields_and_callbacks_round_trip(db: &Db) {
    let mut s = db.open("a");
    assert_eq!(s.schema_version().expect("version"), SCHEMA_VERSION);
    let id = s
        .start_call(
            "维修回访.md",
            "outbound",
            Some("1001"),
            &vars(),
            "2026-12-06T09:00:00+08:00",
        )
        .expect("start");
    let seqs = s
        .write_turn(
            id,
            &turn(
                "2026-12-06T09:00:05+08:00",
                "是602，不是502",
                "好的，已改为602。",
            ),
        )
        .expect("turn");
    assert_eq!(seqs, vec![1, 2]);
    let mut second = turn(
        "2026-12-06T09:00:09+08:00",
        "明天下午三点再打吧",
        "好的，明天下午三点给您回电。",
    );
    second.fields = vec![
        ("门牌号".into(), "602".into()),
        ("回电".into(), "明天15点".into()),
    ];
    second.callback_due = Some("2026-12-07T15:00:00+08:00".into());
    assert_eq!(s.write_turn(id, &second).expect("turn"), vec![3, 4]);
    assert!(s.mark_line_interrupted(id, "给您回电").expect("interrupt"));
    s.set_first_reply_rtp(id, 2, 1_700_000_000_480)
        .expect("rtp");
    s.set_recording(id, "2026/12/06/call-1.wav")
        .expect("recording");
    s.set_mode(id, "emergency").expect("mode");
    s.end_call(id, "callback_scheduled", "2026-12-06T09:00:12+08:00")
        .expect("end");
    // A second connection (another agent) reads the same call.
    let d = db.open("b").show(id).expect("show");
    assert_eq!(d.call.agent.as_deref(), Some("a"));
    assert_eq!(d.call.turns, 4);
    assert_eq!(d.turns[0].line.text, "是602，不是502");
    assert_eq!(d.turns[0].line.asr_confidence, Some(0.87));
    assert!(d.turns[3].line.interrupted && !d.turns[1].line.interrupted);
    assert_eq!(d.turns[1].timing.t_first_reply_rtp, Some(1_700_000_000_480));
    assert_eq!(d.turns[0].timing.t_reply_chosen, Some(1_700_000_000_420));
    assert_eq!(
        d.fields["门牌号"], "602",
        "a repeated value is not appended"
    );
    assert_eq!(d.fields["回电"], "明天15点");
    assert_eq!(d.steps, vec!["opening", "2"]);
    assert_eq!(d.callbacks.len(), 1);
    assert_eq!(
        d.call.callback_at.as_deref(),
        Some("2026-12-07T15:00:00+08:00")
    );
    assert_eq!(d.recording.as_deref(), Some("2026/12/06/call-1.wav"));
    assert_eq!(d.vars["name"], "周敏");
    assert_eq!(s.call_mode(id).expect("mode").0, "emergency");
    assert_eq!(s.list(10).expect("list")[0].id, id);
    assert_eq!(
        s.due_callbacks("2026-12-08T00:00:00+08:00")
            .expect("due")
            .len(),
        1
    );
    assert!(matches!(s.show(id + 100), Err(StoreError::NotFound(_))));
    // A speaker the schema does not admit is refused on both engines.
    let mut bad = turn("t", "x", "y");
    bad.lines[0].speaker = "robot".into();
    assert!(s.write_turn(id, &bad).is_err());
    assert_eq!(
        s.show(id).expect("show").call.turns,
        4,
        "the failed turn left nothing"
    );
}

fn campaign_rows(n: u64) -> Vec<CampaignRow> {
    (2..n + 2)
        .map(|line| CampaignRow {
            line,
            target: format!("13{:09}", line),
            vars: vars(),
            status: RowStatus::Pending,
            attempts: 0,
            outcome: None,
            last_call_id: None,
            next_at: None,
        })
        .collect()
}

/// Two agents race for each of 20 rows at the same moment: every row is won by
/// exactly one of them.
fn campaign_rows_are_claimed_once_by_racing_agents(db: &Db) {
    let mut setup = db.open("a");
    let c = setup
        .open_campaign("/srv/campaigns/回访.csv", "2026-12-06T09:00:00+08:00")
        .expect("campaign");
    for r in campaign_rows(20) {
        setup.save_campaign_row(c, &r).expect("row");
    }
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let mut s = db.open(name);
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut won = Vec::new();
                for line in 2..22u64 {
                    barrier.wait();
                    if s.claim_campaign_row(c, line, 0, name, 60).expect("claim") {
                        won.push(line);
                    }
                }
                won
            })
        })
        .collect();
    let won: Vec<Vec<u64>> = handles
        .into_iter()
        .map(|h| h.join().expect("claimer"))
        .collect();
    let mut all: Vec<u64> = won.concat();
    all.sort_unstable();
    assert_eq!(
        all,
        (2..22).collect::<Vec<_>>(),
        "each row claimed exactly once: {won:?}"
    );
    eprintln!("claims won: a {}, b {}", won[0].len(), won[1].len());
    // The winner dials (attempt 1 saved): a stale attempt count no longer claims,
    // even by the same agent once its claim is released.
    // Either agent may have won every row (the race is real), so the check
    // follows whichever agent won the first row.
    let (winner, other) = if won[0].contains(&2) {
        ("a", "b")
    } else {
        ("b", "a")
    };
    let line = 2;
    let mut a = db.open(winner);
    let mut r = setup.campaign_rows(c).expect("rows")[(line - 2) as usize].clone();
    r.attempts = 1;
    a.save_campaign_row(c, &r).expect("save");
    a.release_campaign_row(c, line, winner).expect("release");
    assert!(!a.claim_campaign_row(c, line, 0, winner, 60).expect("claim"));
    assert!(a.claim_campaign_row(c, line, 1, winner, 60).expect("claim"));
    // A finished row is claimed by nobody.
    r.status = RowStatus::Done;
    r.outcome = Some("completed".into());
    a.save_campaign_row(c, &r).expect("save");
    assert!(!db
        .open(other)
        .claim_campaign_row(c, line, 1, other, 60)
        .expect("claim"));
    assert_eq!(a.campaign_rows(c).expect("rows")[(line - 2) as usize], r);
}

/// The claim of an agent that stops renewing it lapses with its lease (on the
/// database's clock), and another agent takes the row over.
fn a_dead_agents_claim_lapses_with_its_lease(db: &Db) {
    let mut a = db.open("a");
    let c = a.open_campaign("/srv/c.csv", "t").expect("campaign");
    for r in campaign_rows(2) {
        a.save_campaign_row(c, &r).expect("row");
    }
    let mut b = db.open("b");
    assert!(a.claim_campaign_row(c, 2, 0, "a", 1).expect("a claims"));
    assert!(!b.claim_campaign_row(c, 2, 0, "b", 30).expect("held by a"));
    // a renews while it lives.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(a.renew_campaign_claims("a", 1).expect("renew"), 1);
    std::thread::sleep(Duration::from_millis(600));
    assert!(!b.claim_campaign_row(c, 2, 0, "b", 30).expect("renewed"));
    // a dies: nothing renews it.
    std::thread::sleep(Duration::from_millis(1300));
    assert!(b.claim_campaign_row(c, 2, 0, "b", 30).expect("lapsed"));
    assert!(!a
        .claim_campaign_row(c, 2, 0, "a", 30)
        .expect("b holds it now"));
    // Row 3 was never claimed: anyone may.
    assert!(a.claim_campaign_row(c, 3, 0, "a", 30).expect("free"));
}

fn restart_and_dead_agents_close_only_their_own_calls(db: &Db) {
    let mut a = db.open("a");
    let mut b = db.open("b");
    a.heartbeat(Some("http://10.0.0.1:8080")).expect("beat");
    b.heartbeat(Some("http://10.0.0.2:8080")).expect("beat");
    let on_a = a
        .start_call("s.md", "inbound", Some("1001"), &vars(), "t0")
        .expect("call");
    let on_b = b
        .start_call("s.md", "inbound", Some("1002"), &vars(), "t0")
        .expect("call");
    a.write_turn(on_a, &turn("t1", "我家水管漏了", "请问您的地址是？"))
        .expect("turn");
    // b restarts: only b's open call is closed.
    let mut b = db.open("b");
    assert_eq!(b.close_interrupted("t2").expect("restart"), vec![on_b]);
    assert!(b.show(on_a).expect("a's call").call.ended_at.is_none());
    // Both alive: nobody is reaped.
    assert!(b
        .close_calls_of_dead_agents("t2", 5)
        .expect("reap")
        .is_empty());
    // a stops beating; b goes on.
    std::thread::sleep(Duration::from_millis(1200));
    b.heartbeat(None).expect("beat");
    assert_eq!(
        b.close_calls_of_dead_agents("t3", 1).expect("reap"),
        vec![on_a]
    );
    let d = b.show(on_a).expect("a's call");
    assert_eq!(d.call.outcome.as_deref(), Some(INTERRUPTED));
    assert_eq!(d.turns.len(), 2, "the dead agent's turns are kept");
    let agents = b.agents(1).expect("agents");
    let alive: Vec<(&str, bool)> = agents.iter().map(|r| (r.name.as_str(), r.alive)).collect();
    assert_eq!(alive, vec![("a", false), ("b", true)]);
    assert_eq!(agents[0].console.as_deref(), Some("http://10.0.0.1:8080"));
}

fn do_not_call_and_callbacks_are_shared(db: &Db) {
    let mut a = db.open("a");
    let b = db.open("b");
    a.add_do_not_call("13800138000", "callee asked", "t")
        .expect("dnc");
    a.add_do_not_call("13800138000", "config", "t")
        .expect("dnc twice");
    assert_eq!(b.do_not_call_list().expect("list"), vec!["13800138000"]);
    let call = a
        .start_call("s.md", "inbound", Some("sip:1003@pbx"), &vars(), "t0")
        .expect("call");
    let id = a
        .add_callback(call, "2026-12-06T10:00:00+08:00", None, "t0")
        .expect("callback");
    let pending = b.pending_callbacks().expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].peer.as_deref(), Some("sip:1003@pbx"));
    assert_eq!(pending[0].vars, vars());
    let mut b = b;
    assert!(b
        .claim_callback(id, 0, "2026-12-06T10:30:00+08:00")
        .expect("claim"));
    assert!(!a
        .claim_callback(id, 0, "2026-12-06T10:30:00+08:00")
        .expect("claimed"));
    b.finish_callback(id, "done", None, None, Some(call))
        .expect("finish");
    let cb = a.callback(id).expect("callback");
    assert_eq!((cb.status.as_str(), cb.attempts), ("done", 1));
    let sid = a
        .schedule_callback(call, "2026-12-06T12:00:00+08:00", "1003", "t1")
        .expect("schedule");
    assert_eq!(
        b.callback(sid).expect("scheduled").target.as_deref(),
        Some("1003")
    );
}

fn transfers_and_person_callbacks_round_trip(db: &Db) {
    let mut s = db.open("a");
    let id = s
        .start_call("s.md", "inbound", Some("1001"), &vars(), "t0")
        .expect("call");
    let row = TransferRow {
        at: "2026-12-06T09:01:00+08:00".into(),
        reason: "caller_asked".into(),
        method: "bridge".into(),
        target: "2001".into(),
        result: "connected".into(),
        code: Some(200),
        ring_ms: Some(484),
        answer_ms: Some(2310),
        summary: "客户要求转人工".into(),
    };
    s.add_transfer(id, &row).expect("transfer");
    s.add_person_callback(
        id,
        "2026-12-06T09:31:00+08:00",
        "transfer failed: busy",
        "t1",
    )
    .expect("person callback");
    let d = db.open("b").show(id).expect("show");
    assert_eq!(d.transfers, vec![row]);
    assert_eq!(d.person_callbacks.len(), 1);
    assert_eq!(s.person_callbacks(None).expect("pending").len(), 1);
    assert!(s.pending_callbacks().expect("dialler").is_empty());
}

/// Per-turn write latency (one transaction: two lines, a field, the step path),
/// printed for the closing note; not asserted (timings are for the bench gate).
fn turn_write_latency(db: &Db) {
    let mut s = db.open("a");
    let id = s
        .start_call("s.md", "inbound", Some("1001"), &vars(), "t0")
        .expect("call");
    let mut us: Vec<u128> = (0..300)
        .map(|i| {
            let t = turn(&format!("t{i}"), "我家地址是幸福路12号", "好的，记下了。");
            let started = Instant::now();
            s.write_turn(id, &t).expect("turn");
            started.elapsed().as_micros()
        })
        .collect();
    us.sort_unstable();
    let p = |q: f64| us[((us.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    let engine = match s.dialect() {
        Dialect::Sqlite => "sqlite",
        Dialect::Postgres => "postgres",
    };
    println!(
        "turn write latency on {engine}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} turns",
        p(0.5),
        p(0.99),
        p(1.0),
        us.len()
    );
    assert_eq!(s.show(id).expect("show").call.turns, 600);
}

#[test]
fn postgres_outage_is_reported_as_unreachable_and_a_reconnect_resumes() {
    let mut pg = PgCluster::start();
    let target = StoreTarget::Postgres(format!(
        "postgres://postgres:{PG_PASSWORD}@127.0.0.1:{}/tingshuo",
        pg.port
    ));
    let mut s = Store::connect(&target).expect("connect");
    let id = s
        .start_call("s.md", "inbound", Some("1001"), &vars(), "t0")
        .expect("call");
    pg.stop();
    let err = s
        .write_turn(id, &turn("t1", "喂？", "您好"))
        .expect_err("the database is down");
    assert!(err.is_unreachable(), "{err} counts as unreachable");
    assert!(s.reconnect().expect_err("still down").is_unreachable());
    pg.resume();
    s.reconnect().expect("reconnect");
    s.ping().expect("ping");
    s.write_turn(id, &turn("t1", "喂？", "您好"))
        .expect("turn after the outage");
    assert_eq!(s.show(id).expect("show").call.turns, 2);
    // A constraint violation is not an outage: retrying cannot help.
    let mut bad = turn("t", "x", "y");
    bad.lines[0].speaker = "robot".into();
    assert!(!s.write_turn(id, &bad).expect_err("bad").is_unreachable());
}

#[test]
fn postgres_agents_starting_together_migrate_once_and_newer_schemas_are_refused() {
    let pg = PgCluster::start();
    let db = Db::Postgres(pg);
    let target = db.target();
    let starters: Vec<_> = (0..4)
        .map(|_| {
            let target = target.clone();
            std::thread::spawn(move || Store::connect(&target).map(|s| s.schema_version().ok()))
        })
        .collect();
    for h in starters {
        let v = h.join().expect("starter").expect("connect");
        assert_eq!(v, Some(SCHEMA_VERSION));
    }
    let Db::Postgres(pg) = &db else {
        unreachable!()
    };
    let tables = pg.psql(
        "tingshuo",
        "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables WHERE table_schema = 'public'",
    );
    assert_eq!(
        tables,
        "agents,callbacks,calls,campaign_rows,campaigns,do_not_call,fields,person_callbacks,schema_version,transfers,turns"
    );
    pg.psql(
        "tingshuo",
        &format!("UPDATE schema_version SET version = {}", SCHEMA_VERSION + 1),
    );
    match Store::connect(&target) {
        Err(StoreError::TooNew { found, .. }) => assert_eq!(found, SCHEMA_VERSION + 1),
        other => panic!("a newer schema must be refused, got {:?}", other.err()),
    }
}

#[test]
fn postgres_connection_errors_name_the_url_without_its_password_and_the_fix() {
    let port = support::free_port();
    let target = StoreTarget::Postgres(format!(
        "postgres://tingshuo:s3cret@127.0.0.1:{port}/records"
    ));
    let err = Store::connect(&target)
        .err()
        .expect("nothing listens there")
        .to_string();
    assert!(err.contains(&format!("127.0.0.1:{port}/records")), "{err}");
    assert!(!err.contains("s3cret"), "the password is not shown: {err}");
    assert!(err.contains("TINGSHUO_DB_PASSWORD"), "{err}");
    let bad = Store::connect(&StoreTarget::Postgres("postgres://[::1".into()))
        .err()
        .expect("malformed")
        .to_string();
    assert!(bad.contains("not a PostgreSQL URL"), "{bad}");
}

#[test]
fn private_cluster_keeps_its_data_across_a_stop() {
    let mut pg = PgCluster::start();
    assert_eq!(
        pg.psql("tingshuo", "SHOW server_version_num").get(..2),
        Some("15")
    );
    pg.psql(
        "tingshuo",
        "CREATE TABLE t (id INT PRIMARY KEY, note TEXT); INSERT INTO t VALUES (1, '回拨')",
    );
    pg.stop();
    pg.resume();
    assert_eq!(
        pg.psql("tingshuo", "SELECT note FROM t WHERE id = 1"),
        "回拨"
    );
}
