//! Turn timing: when each stage of a turn happened, the measure of latency everywhere.
//!
//! `t_speech_end` is the last voiced frame received; the turn's latency as the caller
//! feels it is `t_first_reply_rtp - t_speech_end`. Every stamp is optional because a
//! turn can end early (no speech recognised, caller hung up).

use std::time::{Duration, Instant};

use serde::Serialize;

/// Instants of one turn, in pipeline order.
#[derive(Debug, Clone, Copy, Default)]
pub struct TurnTiming {
    pub t_speech_end: Option<Instant>,
    pub t_endpoint: Option<Instant>,
    pub t_asr_done: Option<Instant>,
    pub t_reply_chosen: Option<Instant>,
    pub t_first_reply_rtp: Option<Instant>,
    /// Time the ASR job waited in the pool's queue (part of endpoint → asr_done).
    pub asr_queue_wait: Option<Duration>,
}

/// The same turn as milliseconds after `t_speech_end`, for records and histograms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TurnMillis {
    pub endpoint_ms: Option<f64>,
    pub asr_done_ms: Option<f64>,
    pub reply_chosen_ms: Option<f64>,
    pub first_reply_rtp_ms: Option<f64>,
    pub asr_queue_wait_ms: Option<f64>,
}

fn ms_between(from: Option<Instant>, to: Option<Instant>) -> Option<f64> {
    match (from, to) {
        (Some(a), Some(b)) => Some(b.saturating_duration_since(a).as_secs_f64() * 1000.0),
        _ => None,
    }
}

impl TurnTiming {
    /// Offsets from the end of the caller's speech.
    pub fn millis(&self) -> TurnMillis {
        TurnMillis {
            endpoint_ms: ms_between(self.t_speech_end, self.t_endpoint),
            asr_done_ms: ms_between(self.t_speech_end, self.t_asr_done),
            reply_chosen_ms: ms_between(self.t_speech_end, self.t_reply_chosen),
            first_reply_rtp_ms: ms_between(self.t_speech_end, self.t_first_reply_rtp),
            asr_queue_wait_ms: self.asr_queue_wait.map(|d| d.as_secs_f64() * 1000.0),
        }
    }

    /// End-to-end turn latency, if the turn got as far as a reply packet.
    pub fn latency(&self) -> Option<Duration> {
        Some(
            self.t_first_reply_rtp?
                .saturating_duration_since(self.t_speech_end?),
        )
    }
}

/// Fixed-bucket latency histogram (Prometheus-style cumulative buckets, milliseconds).
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    bounds_ms: &'static [f64],
    counts: Vec<u64>,
    sum_ms: f64,
    total: u64,
}

/// Bucket bounds used for turn latency.
pub const TURN_BUCKETS_MS: &[f64] = &[
    100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 800.0, 1000.0, 1200.0, 1500.0, 2000.0, 3000.0, 5000.0,
];

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new(TURN_BUCKETS_MS)
    }
}

impl LatencyHistogram {
    pub fn new(bounds_ms: &'static [f64]) -> Self {
        Self {
            bounds_ms,
            counts: vec![0; bounds_ms.len()],
            sum_ms: 0.0,
            total: 0,
        }
    }

    pub fn observe(&mut self, d: Duration) {
        let ms = d.as_secs_f64() * 1000.0;
        for (bound, count) in self.bounds_ms.iter().zip(self.counts.iter_mut()) {
            if ms <= *bound {
                *count += 1;
            }
        }
        self.sum_ms += ms;
        self.total += 1;
    }

    /// `(upper bound ms, cumulative count)` pairs; the implicit `+Inf` bucket is [`Self::total`].
    pub fn buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.bounds_ms
            .iter()
            .copied()
            .zip(self.counts.iter().copied())
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn sum_ms(&self) -> f64 {
        self.sum_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_are_relative_to_speech_end() {
        let t0 = Instant::now();
        let t = TurnTiming {
            t_speech_end: Some(t0),
            t_endpoint: Some(t0 + Duration::from_millis(200)),
            t_asr_done: Some(t0 + Duration::from_millis(380)),
            t_reply_chosen: Some(t0 + Duration::from_millis(381)),
            t_first_reply_rtp: Some(t0 + Duration::from_millis(400)),
            asr_queue_wait: Some(Duration::from_millis(5)),
        };
        let m = t.millis();
        assert_eq!(m.endpoint_ms, Some(200.0));
        assert_eq!(m.first_reply_rtp_ms, Some(400.0));
        assert_eq!(m.asr_queue_wait_ms, Some(5.0));
        assert_eq!(t.latency(), Some(Duration::from_millis(400)));
        assert_eq!(TurnTiming::default().latency(), None);
    }

    #[test]
    fn histogram_is_cumulative() {
        let mut h = LatencyHistogram::default();
        for ms in [50, 250, 250, 900, 9000] {
            h.observe(Duration::from_millis(ms));
        }
        let b: Vec<_> = h.buckets().collect();
        assert_eq!(b[0], (100.0, 1));
        assert_eq!(b[2], (300.0, 3));
        assert_eq!(b[7], (1000.0, 4));
        assert_eq!(h.total(), 5);
        assert_eq!(b.last().map(|x| x.1), Some(4));
    }
}
