//! Service health: the answer rate over a sliding window and the alert level derived
//! from it, as the hotline-continuity requirements define them:
//! green ≥ 90 %, yellow 85–90 %, orange 80–85 %, red < 80 % or a system fault.
//!
//! Sans-IO: fed with call outcomes and the current time; the caller logs level changes,
//! exports [`AlertLevel::as_metric`] and posts webhooks.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Tiered alert level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertLevel {
    Green,
    Yellow,
    Orange,
    Red,
}

impl AlertLevel {
    /// Numeric value for the `tingshuo_alert_level` gauge (0 green … 3 red).
    pub fn as_metric(self) -> u8 {
        self as u8
    }

    pub fn name(self) -> &'static str {
        match self {
            AlertLevel::Green => "green",
            AlertLevel::Yellow => "yellow",
            AlertLevel::Orange => "orange",
            AlertLevel::Red => "red",
        }
    }

    /// Level for an answer rate in [0, 1].
    pub fn for_answer_rate(rate: f64) -> Self {
        if rate >= 0.90 {
            AlertLevel::Green
        } else if rate >= 0.85 {
            AlertLevel::Yellow
        } else if rate >= 0.80 {
            AlertLevel::Orange
        } else {
            AlertLevel::Red
        }
    }
}

/// Whether an offered call was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Answered and handled (normal or emergency script).
    Answered,
    /// Refused, shed or failed before the caller was served.
    Missed,
}

/// Answer rate over the last `window`, with a minimum sample count before it judges.
pub struct HealthMonitor {
    window: Duration,
    min_samples: usize,
    events: VecDeque<(Instant, Offer)>,
    fault: Option<String>,
    level: AlertLevel,
}

impl HealthMonitor {
    pub fn new(window: Duration, min_samples: usize) -> Self {
        Self {
            window,
            min_samples: min_samples.max(1),
            events: VecDeque::new(),
            fault: None,
            level: AlertLevel::Green,
        }
    }

    /// Records an offered call. Returns the new level when it changed.
    pub fn record(&mut self, now: Instant, offer: Offer) -> Option<AlertLevel> {
        self.events.push_back((now, offer));
        self.update(now)
    }

    /// Sets or clears a system fault (e.g. ASR workers down): a fault is always red.
    pub fn set_fault(&mut self, now: Instant, fault: Option<String>) -> Option<AlertLevel> {
        self.fault = fault;
        self.update(now)
    }

    /// Re-evaluates as time passes (old events fall out of the window).
    pub fn update(&mut self, now: Instant) -> Option<AlertLevel> {
        while let Some(&(t, _)) = self.events.front() {
            if now.saturating_duration_since(t) > self.window {
                self.events.pop_front();
            } else {
                break;
            }
        }
        let new = if self.fault.is_some() {
            AlertLevel::Red
        } else {
            match self.answer_rate() {
                Some(rate) if self.events.len() >= self.min_samples => {
                    AlertLevel::for_answer_rate(rate)
                }
                _ => AlertLevel::Green,
            }
        };
        (new != std::mem::replace(&mut self.level, new)).then_some(new)
    }

    /// Answered / offered in the window, `None` when nothing was offered.
    pub fn answer_rate(&self) -> Option<f64> {
        if self.events.is_empty() {
            return None;
        }
        let answered = self
            .events
            .iter()
            .filter(|(_, o)| *o == Offer::Answered)
            .count();
        Some(answered as f64 / self.events.len() as f64)
    }

    pub fn level(&self) -> AlertLevel {
        self.level
    }

    pub fn fault(&self) -> Option<&str> {
        self.fault.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_match_the_requirements() {
        assert_eq!(AlertLevel::for_answer_rate(1.0), AlertLevel::Green);
        assert_eq!(AlertLevel::for_answer_rate(0.90), AlertLevel::Green);
        assert_eq!(AlertLevel::for_answer_rate(0.89), AlertLevel::Yellow);
        assert_eq!(AlertLevel::for_answer_rate(0.85), AlertLevel::Yellow);
        assert_eq!(AlertLevel::for_answer_rate(0.84), AlertLevel::Orange);
        assert_eq!(AlertLevel::for_answer_rate(0.80), AlertLevel::Orange);
        assert_eq!(AlertLevel::for_answer_rate(0.79), AlertLevel::Red);
    }

    #[test]
    fn level_follows_the_window() {
        let t0 = Instant::now();
        let mut h = HealthMonitor::new(Duration::from_secs(60), 10);
        let mut changes = Vec::new();
        for i in 0..10 {
            if let Some(l) = h.record(t0 + Duration::from_secs(i), Offer::Answered) {
                changes.push(l);
            }
        }
        assert_eq!(h.level(), AlertLevel::Green);
        // 2 misses out of 12 → 83 % → orange.
        for i in 10..12 {
            if let Some(l) = h.record(t0 + Duration::from_secs(i), Offer::Missed) {
                changes.push(l);
            }
        }
        assert_eq!(changes, vec![AlertLevel::Orange]);
        // A fault is red regardless of the rate.
        assert_eq!(
            h.set_fault(t0 + Duration::from_secs(13), Some("asr down".into())),
            Some(AlertLevel::Red)
        );
        assert_eq!(
            h.set_fault(t0 + Duration::from_secs(14), None),
            Some(AlertLevel::Orange)
        );
        // After the window passes, the misses age out and too few samples remain.
        assert_eq!(
            h.update(t0 + Duration::from_secs(200)),
            Some(AlertLevel::Green)
        );
    }

    #[test]
    fn too_few_samples_stay_green() {
        let t0 = Instant::now();
        let mut h = HealthMonitor::new(Duration::from_secs(60), 10);
        assert_eq!(h.record(t0, Offer::Missed), None);
        assert_eq!(h.level(), AlertLevel::Green);
        assert_eq!(h.answer_rate(), Some(0.0));
    }
}
