//! Agents on a shared PostgreSQL store, black box (baresip → Kamailio → `tingshuo
//! serve` / `tingshuo campaign`, PostgreSQL 15 on loopback), issue 17:
//!
//! 1. PostgreSQL stops for 10 s in the middle of a call: the call goes on, `/readyz`
//!    says the database is unreachable while it is, and the turns spoken meanwhile
//!    are in the database after it returns, with the times they were spoken.
//! 2. Two agents run one campaign of 20 rows: every row is dialled exactly once.
//!
//! A missing PostgreSQL, Kamailio or baresip makes these tests fail with what to
//! install, never skip.

mod resilience_support;
mod support;

use std::time::{Duration, Instant};

use resilience_support::{http_status, metric, metrics};
use support::postgres::{PgCluster, PG_PASSWORD};
use support::*;
use tingshuo::store::{Store, StoreTarget};

fn store_of(pg: &PgCluster) -> Option<Store> {
    Store::connect(&StoreTarget::Postgres(format!(
        "postgres://postgres:{PG_PASSWORD}@127.0.0.1:{}/tingshuo",
        pg.port
    )))
    .ok()
}

/// Callee lines recorded for the latest call, with the time each was spoken.
fn callee_lines(pg: &PgCluster) -> Vec<(String, String)> {
    let Some(s) = store_of(pg) else {
        return Vec::new();
    };
    let Some(call) = s.list(1).ok().and_then(|l| l.into_iter().next()) else {
        return Vec::new();
    };
    s.show(call.id)
        .map(|d| {
            d.turns
                .into_iter()
                .filter(|t| t.line.speaker == "callee")
                .map(|t| (t.at, t.line.text))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_database_outage_mid_call_loses_no_turn() {
    let mut pg = PgCluster::start();
    let kam = Kamailio::start();
    let setup = AgentSetup::temp()
        .registrar(&kam)
        .store_url(&pg.url(), PG_PASSWORD);
    let agent = setup.start();
    assert_eq!(http_status(agent.console_port, "/readyz"), Some(200));

    let dir = agent.dir().to_path_buf();
    let caller = caller_lines(
        &dir,
        &[
            (8.0, "我家的宽带今天早上突然断了，一直连不上。"),
            (40.0, "我的手机号是一三九零零一三九零零零。"),
        ],
        60.0,
    );
    let phone = Baresip::start("1001", kam.port, "auto", &caller);
    phone.dial("bot");
    // Once the call has its record, before the caller's first line (at 8 s):
    let recorded = wait_until(Duration::from_secs(60), || {
        store_of(&pg)
            .and_then(|s| s.list(1).ok())
            .is_some_and(|l| !l.is_empty())
    });
    assert!(
        recorded,
        "the call got its record; log:\n{}",
        agent.log_text()
    );
    assert!(
        callee_lines(&pg).is_empty(),
        "the caller has not spoken yet"
    );

    // The database machine goes away: for 10 s, and at least until the caller's
    // next turn is waiting for it (when that turn comes depends on the machine's speed).
    let down_at = chrono::Utc::now();
    let stopped = Instant::now();
    pg.stop();
    let mut saw_unready = None;
    let mut max_backlog = 0.0f64;
    let mut kept_since: Option<Instant> = None;
    while stopped.elapsed() < Duration::from_secs(10)
        || kept_since.is_none_or(|t| t.elapsed() < Duration::from_secs(1))
    {
        assert!(
            stopped.elapsed() < Duration::from_secs(60),
            "no write waited for the database within 60 s; log:\n{}",
            agent.log_text()
        );
        if saw_unready.is_none() && http_status(agent.console_port, "/readyz") == Some(503) {
            saw_unready = Some(stopped.elapsed());
        }
        let m = metrics(agent.console_port);
        let kept = metric(&m, "tingshuo_store_backlog_writes").unwrap_or(0.0);
        max_backlog = max_backlog.max(kept);
        let turn_kept = strip_ansi(&agent.log_text()).lines().any(|l| {
            l.contains("kept until the records database returns") && l.contains("\"turn\"")
        });
        if turn_kept && kept_since.is_none() {
            kept_since = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    println!(
        "PostgreSQL was down for {:.1} s",
        stopped.elapsed().as_secs_f64()
    );
    let up_at = chrono::Utc::now();
    pg.resume();
    let back = Instant::now();
    let ready_again = wait_until(Duration::from_secs(15), || {
        http_status(agent.console_port, "/readyz") == Some(200)
    });
    let ready_after = back.elapsed();
    let unready_after = saw_unready.expect("/readyz said 503 while PostgreSQL was down");
    assert!(ready_again, "/readyz back to 200 after PostgreSQL returned");
    println!(
        "outage: /readyz 503 after {:.1} s, 200 again {:.1} s after PostgreSQL returned; \
         up to {max_backlog} writes kept in memory",
        unready_after.as_secs_f64(),
        ready_after.as_secs_f64()
    );

    // The call went on: the caller's next line is answered and recorded, and the
    // call ends normally.
    let ended = wait_until(Duration::from_secs(90), || {
        store_of(&pg)
            .and_then(|s| s.list(1).ok())
            .and_then(|l| l.into_iter().next())
            .is_some_and(|c| c.ended_at.is_some())
    });
    let lines = callee_lines(&pg);
    assert!(
        ended,
        "the call ended and was recorded; lines {lines:?}; log:\n{}",
        agent.log_text()
    );
    println!("callee lines recorded: {lines:?}");
    assert!(lines.len() >= 2, "every callee turn is recorded: {lines:?}");
    assert!(lines[0].1.contains("断了"), "{lines:?}");
    let during: Vec<&(String, String)> = lines
        .iter()
        .filter(|(at, _)| {
            chrono::DateTime::parse_from_rfc3339(at)
                .map(|t| t >= down_at && t <= up_at)
                .unwrap_or(false)
        })
        .collect();
    assert!(
        !during.is_empty(),
        "a turn spoken during the outage ({down_at} .. {up_at}) is in the database: {lines:?}"
    );
    assert!(max_backlog >= 1.0, "the metric showed the kept writes");
    let log = agent.log_text();
    assert!(
        log.contains("RECORDS DATABASE UNREACHABLE"),
        "a loud log line"
    );
    assert!(log.contains("reachable again"));
}
