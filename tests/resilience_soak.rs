//! Soak (CI length): four baresip phones call `tingshuo serve` through Kamailio,
//! each placing a call every 20 s for two minutes, so four calls run at once most of
//! the time. Every call placed must leave a closed record (zero lost), and the
//! agent's resident memory after the run must stay close to what it was after the
//! first round (no per-call leak). `TINGSHUO_SOAK_SECS` lengthens the run (the
//! 30-minute figure in the issue notes comes from this test with 1800).

mod resilience_support;
mod support;

use std::time::{Duration, Instant};

use resilience_support::*;
use support::*;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn records(db: &std::path::Path) -> (usize, usize) {
    let Ok(conn) = rusqlite::Connection::open(db) else {
        return (0, 0);
    };
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap_or(0) as usize;
    (
        count("SELECT COUNT(*) FROM calls"),
        count("SELECT COUNT(*) FROM calls WHERE ended_at IS NOT NULL"),
    )
}

#[test]
fn four_concurrent_calls_for_two_minutes_lose_nothing() {
    let secs: u64 = std::env::var("TINGSHUO_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let dir = tempfile::tempdir().expect("tempdir");
    let kam = Kamailio::start();
    let agent = start_agent(dir.path(), &kam, "", &[]);
    let pid = agent.proc.child.id();

    // About 14 s per call: the opening, one question, the start of the answer.
    let mut caller = silence(7.0);
    caller.extend(say(dir.path(), "q", "请问宽带套餐可以升级吗？"));
    caller.extend(silence(4.0));
    let phones: Vec<Baresip> = ["1001", "1002", "1003", "1004"]
        .iter()
        .map(|u| Baresip::start(u, kam.port, "auto", &caller))
        .collect();

    let period = Duration::from_secs(20);
    let started = Instant::now();
    let mut placed = 0usize;
    let mut rss_after_first_round = 0;
    let mut round = 0u32;
    while started.elapsed() < Duration::from_secs(secs) {
        let round_start = Instant::now();
        for (i, phone) in phones.iter().enumerate() {
            // Staggered by 5 s so calls overlap rather than start together.
            let at = Duration::from_secs(5 * i as u64);
            if let Some(wait) = at.checked_sub(round_start.elapsed()) {
                std::thread::sleep(wait);
            }
            let reply = phone.ctrl("dial", "bot");
            assert!(reply.contains("\"ok\":true"), "dial accepted: {reply}");
            placed += 1;
        }
        if let Some(wait) = period.checked_sub(round_start.elapsed()) {
            std::thread::sleep(wait);
        }
        round += 1;
        if round == 1 {
            rss_after_first_round = rss_kib(pid);
        }
    }
    let all_closed = wait_until(Duration::from_secs(40), || {
        records(&agent.db) == (placed, placed)
    });
    let rss_end = rss_kib(pid);
    let (total, closed) = records(&agent.db);
    eprintln!(
        "soak {secs} s: {placed} calls placed, {total} recorded, {closed} closed; agent RSS {} MiB after round 1, {} MiB at the end",
        rss_after_first_round / 1024,
        rss_end / 1024
    );
    assert!(
        all_closed,
        "every call placed has a closed record: placed {placed}, recorded {total}, closed {closed}\nlog:\n{}",
        agent.proc.log_text()
    );
    let turns = rusqlite::Connection::open(&agent.db)
        .and_then(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM turns WHERE speaker = 'callee'",
                [],
                |r| r.get::<_, i64>(0),
            )
        })
        .unwrap_or(0);
    let emergency = rusqlite::Connection::open(&agent.db)
        .and_then(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM calls WHERE mode = 'emergency'",
                [],
                |r| r.get::<_, i64>(0),
            )
        })
        .unwrap_or(0);
    // Not asserted: a machine too loaded for the ASR to answer within
    // emergency.asr_timeout_ms sends calls to the emergency script by design.
    eprintln!(
        "caller turns recognised and recorded: {turns}; calls in emergency mode: {emergency}"
    );
    assert!(turns > 0, "the calls had real turns");
    assert!(
        rss_end < rss_after_first_round + 64 * 1024,
        "agent RSS grew from {} to {} KiB",
        rss_after_first_round,
        rss_end
    );
}
