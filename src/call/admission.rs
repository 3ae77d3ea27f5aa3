//! CPU-aware admission: new calls are shed while the p95 turn latency of recent turns
//! is above budget, so the calls already in progress keep their latency (the SIP core
//! separately refuses calls above `sip.max_calls`).
//!
//! The window is time-based: when shedding stops new turns from arriving, old turns
//! age out and calls are admitted again.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::OverloadConfig;

/// Recent turn latencies and the shedding decision.
pub struct Admission {
    budget: Option<Duration>,
    window: Duration,
    min_turns: usize,
    turns: Mutex<VecDeque<(Instant, Duration)>>,
}

impl Admission {
    pub fn new(cfg: &OverloadConfig) -> Self {
        Self {
            budget: (cfg.turn_latency_p95_ms > 0)
                .then(|| Duration::from_millis(cfg.turn_latency_p95_ms)),
            window: Duration::from_secs(cfg.window_secs),
            min_turns: cfg.min_turns.max(1),
            turns: Mutex::new(VecDeque::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(Instant, Duration)>> {
        // Pushes and pops only: a poisoned queue is still consistent.
        self.turns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one turn's latency (from a call thread).
    pub fn record_turn(&self, at: Instant, latency: Duration) {
        let mut t = self.lock();
        t.push_back((at, latency));
        // Bounded memory even with a long window and many calls.
        while t.len() > 4096 {
            t.pop_front();
        }
    }

    /// p95 of the turns in the window, `None` with fewer than `min_turns`.
    pub fn p95(&self, now: Instant) -> Option<Duration> {
        let mut t = self.lock();
        while let Some(&(at, _)) = t.front() {
            if now.saturating_duration_since(at) > self.window {
                t.pop_front();
            } else {
                break;
            }
        }
        if t.len() < self.min_turns {
            return None;
        }
        let mut v: Vec<Duration> = t.iter().map(|(_, d)| *d).collect();
        v.sort_unstable();
        let idx = ((v.len() as f64) * 0.95).ceil() as usize;
        v.get(idx.saturating_sub(1)).copied()
    }

    /// Why a new call must be refused now, if it must.
    pub fn shed_reason(&self, now: Instant) -> Option<String> {
        let budget = self.budget?;
        let p95 = self.p95(now)?;
        (p95 > budget).then(|| {
            format!(
                "turn latency p95 {} ms is above the {} ms budget (overload.turn_latency_p95_ms)",
                p95.as_millis(),
                budget.as_millis()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(p95_ms: u64) -> OverloadConfig {
        OverloadConfig {
            turn_latency_p95_ms: p95_ms,
            window_secs: 60,
            min_turns: 5,
        }
    }

    #[test]
    fn sheds_above_budget_and_recovers_as_turns_age_out() {
        let a = Admission::new(&cfg(1000));
        let t0 = Instant::now();
        for i in 0..4 {
            a.record_turn(t0 + Duration::from_secs(i), Duration::from_millis(3000));
        }
        assert_eq!(
            a.shed_reason(t0 + Duration::from_secs(4)),
            None,
            "too few turns"
        );
        a.record_turn(t0 + Duration::from_secs(5), Duration::from_millis(3000));
        let why = a.shed_reason(t0 + Duration::from_secs(5)).expect("sheds");
        assert!(why.contains("3000 ms") && why.contains("1000 ms"), "{why}");
        assert_eq!(a.shed_reason(t0 + Duration::from_secs(120)), None);
    }

    #[test]
    fn p95_ignores_a_lone_slow_turn_among_many() {
        let a = Admission::new(&cfg(1000));
        let t0 = Instant::now();
        for _ in 0..39 {
            a.record_turn(t0, Duration::from_millis(600));
        }
        a.record_turn(t0, Duration::from_millis(5000));
        assert_eq!(a.p95(t0), Some(Duration::from_millis(600)));
        assert_eq!(a.shed_reason(t0), None);
    }

    #[test]
    fn zero_budget_never_sheds() {
        let a = Admission::new(&cfg(0));
        let t0 = Instant::now();
        for _ in 0..10 {
            a.record_turn(t0, Duration::from_secs(10));
        }
        assert_eq!(a.shed_reason(t0), None);
    }
}
