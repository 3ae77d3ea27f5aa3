//! Soak: 4 calls at a time, continuously, against `tingshuo serve` (black box, direct
//! mode) for `TINGSHUO_SOAK_SECS` seconds (default 120, what CI runs; the soak is
//! 1800). Each call is a short conversation with the embedded demo script: the caller
//! (our own SIP/RTP stack) waits for the greeting, asks a question, waits for the
//! answer, says it has no more questions, waits, and hangs up.
//!
//! At the end: no lost records (every call placed has a record with `ended_at` and an
//! outcome, and callers' turns were recorded), and the agent's resident memory did not
//! grow clearly (the second half's mean RSS within 20 % of the first half's; samples
//! start once the first round of calls is up, so model warm-up is not counted).

mod robust_support;
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use robust_support::*;
use support::*;
use tingshuo::rtp::PortAllocator;

const CONCURRENT: usize = 4;

#[test]
fn four_calls_continuously_lose_no_record_and_memory_stays_flat() {
    let secs: u64 = std::env::var("TINGSHUO_SOAK_SECS")
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("TINGSHUO_SOAK_SECS={v:?}: give whole seconds"))
        })
        .unwrap_or(120);
    let mut agent = start_agent(CONCURRENT * 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = Arc::new(vec![
        say_frames(dir.path(), "q", "我家宽带从早上开始就一直连不上网"),
        say_frames(dir.path(), "done", "好的，我没有别的问题了"),
    ]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let base = (free_port_span(81) + 1) & !1;
    let ports = PortAllocator::new(base, base + 79).expect("caller ports");

    let placed = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let replies = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let warm = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(secs);
    let mut workers = Vec::new();
    for w in 0..CONCURRENT {
        let (rt, ports, lines) = (rt.handle().clone(), ports.clone(), lines.clone());
        let (placed, answered, replies, failures, warm) = (
            placed.clone(),
            answered.clone(),
            replies.clone(),
            failures.clone(),
            warm.clone(),
        );
        let sip = agent.sip_addr();
        workers.push(std::thread::spawn(move || {
            let mut n = 0;
            while Instant::now() < deadline {
                n += 1;
                let user = format!("soak{w}x{n}");
                placed.fetch_add(1, Ordering::Relaxed);
                let mut call = match rt.block_on(Caller::call(sip, &ports, &user)) {
                    Ok(c) => c,
                    Err(e) => {
                        failures.lock().expect("lock").push(format!("{user}: {e}"));
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    }
                };
                answered.fetch_add(1, Ordering::Relaxed);
                if n == 1 {
                    warm.fetch_add(1, Ordering::Relaxed);
                }
                // Greeting, then two turns, each after the agent's previous line.
                let mut ok = call.wait_reply(Duration::from_secs(30), Duration::from_millis(900));
                for line in lines.iter() {
                    if !ok || call.is_ended() {
                        break;
                    }
                    call.speak(line);
                    ok = call.wait_reply(Duration::from_secs(30), Duration::from_millis(900));
                    if ok {
                        replies.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if !ok {
                    failures.lock().expect("lock").push(format!(
                        "{user}: the agent did not reply (ended: {:?})",
                        call.ended
                    ));
                }
                rt.block_on(call.finish());
            }
        }));
    }

    // RSS samples once every worker's first call is up (model warm-up excluded).
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, warm) = (stop.clone(), warm.clone());
        let pid = agent.pid();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if warm.load(Ordering::Relaxed) >= CONCURRENT as u64 {
                    let status =
                        std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                    if let Some(kb) = status
                        .lines()
                        .find(|l| l.starts_with("VmRSS:"))
                        .and_then(|l| l.split_whitespace().nth(1))
                        .and_then(|v| v.parse::<u64>().ok())
                    {
                        samples.push(kb);
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            samples
        })
    };
    for w in workers {
        w.join().expect("caller thread");
    }
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().expect("sampler");
    agent.assert_alive("the soak");

    let placed = placed.load(Ordering::Relaxed) as i64;
    let answered = answered.load(Ordering::Relaxed) as i64;
    // The agent closes a record when its call session ends, just after the BYE.
    let mut counts = record_counts(&agent.db);
    wait_until(Duration::from_secs(30), || {
        counts = record_counts(&agent.db);
        counts.1 >= answered
    });
    let (calls, ended, callee_turns, turns) = counts;
    let rss_start = samples.first().copied().unwrap_or(0);
    let rss_end = samples.last().copied().unwrap_or(0);
    let half = samples.len() / 2;
    let mean = |s: &[u64]| s.iter().sum::<u64>() as f64 / s.len().max(1) as f64;
    let (first, second) = (mean(&samples[..half]), mean(&samples[half..]));
    let failures = failures.lock().expect("lock").clone();
    eprintln!(
        "soak {secs} s, {CONCURRENT} concurrent: calls placed {placed}, answered {answered}, \
records {calls}, ended with outcome {ended}, lost {}, turns {turns} (callers' {callee_turns}), \
replies heard {}, RSS start {} MiB end {} MiB (first-half mean {:.1} MiB, second-half mean \
{:.1} MiB, {} samples), failures {}: {:?}",
        answered - ended,
        replies.load(Ordering::Relaxed),
        rss_start / 1024,
        rss_end / 1024,
        first / 1024.0,
        second / 1024.0,
        samples.len(),
        failures.len(),
        failures.iter().take(10).collect::<Vec<_>>()
    );
    let log = || {
        let text = agent.proc.log_text();
        text[text.len().saturating_sub(20_000)..].to_string()
    };
    assert!(
        answered >= CONCURRENT as i64,
        "calls were answered; log tail:\n{}",
        log()
    );
    assert_eq!(
        placed,
        answered,
        "every call placed was answered: {failures:?}; log tail:\n{}",
        log()
    );
    assert_eq!(
        calls,
        answered,
        "one record per answered call; log tail:\n{}",
        log()
    );
    assert_eq!(
        ended,
        calls,
        "every record has ended_at and an outcome; log tail:\n{}",
        log()
    );
    assert!(
        callee_turns >= answered,
        "callers' turns were recorded ({callee_turns} for {answered} calls)"
    );
    assert!(
        failures.is_empty(),
        "every call had its conversation: {failures:?}; log tail:\n{}",
        log()
    );
    assert!(
        samples.len() >= 4,
        "RSS was sampled ({} samples)",
        samples.len()
    );
    assert!(
        second <= first * 1.2,
        "agent memory grew: first-half mean {:.1} MiB, second-half mean {:.1} MiB",
        first / 1024.0,
        second / 1024.0
    );
}
