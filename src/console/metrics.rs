//! `/metrics` in the Prometheus/OpenMetrics text format, via `prometheus-client`.
//!
//! The hub keeps what it sees itself (active calls, turn latency); the call layer sets
//! the rest through the setters here (answered/failed/shed, alert level, ASR/TTS time
//! and queue depth, registration state, emergency mode). All setters are lock-free
//! atomics, safe from any thread.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::call::health::AlertLevel;
use crate::call::timing::TURN_BUCKETS_MS;

/// Content type of [`ConsoleMetrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type FloatGauge = Gauge<f64, AtomicU64>;
type Labels = Vec<(String, String)>;

/// Every metric the agent exports (names are prefixed `tingshuo_`).
pub struct ConsoleMetrics {
    registry: Registry,
    active_calls: Gauge,
    answered: Counter,
    failed: Counter,
    shed: Counter,
    answer_rate: FloatGauge,
    alert_level: Gauge,
    turn_latency: Histogram,
    asr_seconds: FloatGauge,
    tts_seconds: FloatGauge,
    asr_queue: Gauge,
    tts_queue: Gauge,
    registration: Family<Labels, Gauge>,
    emergency: Gauge,
    transfers: Family<Labels, Counter>,
    srtp_dropped: Counter,
    store_reachable: Gauge,
    store_backlog: Gauge,
    store_dropped: Gauge,
}

impl Default for ConsoleMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ConsoleMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tingshuo");
        let active_calls = Gauge::default();
        let answered = Counter::default();
        let failed = Counter::default();
        let shed = Counter::default();
        let answer_rate = FloatGauge::default();
        let alert_level = Gauge::default();
        let turn_latency = Histogram::new(TURN_BUCKETS_MS.iter().map(|ms| ms / 1000.0));
        let asr_seconds = FloatGauge::default();
        let tts_seconds = FloatGauge::default();
        let asr_queue = Gauge::default();
        let tts_queue = Gauge::default();
        let registration = Family::<Labels, Gauge>::default();
        let emergency = Gauge::default();
        let transfers = Family::<Labels, Counter>::default();
        let srtp_dropped = Counter::default();
        let (store_reachable, store_backlog, store_dropped) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        registry.register(
            "store_reachable",
            "1 while the records database answers, 0 during an outage",
            store_reachable.clone(),
        );
        registry.register(
            "store_backlog_writes",
            "Record writes kept in memory while the database is unreachable",
            store_backlog.clone(),
        );
        registry.register(
            "store_dropped_writes",
            "Record writes lost because the outage backlog was full",
            store_dropped.clone(),
        );
        registry.register(
            "srtp_dropped_packets",
            "SRTP/SRTCP packets dropped: bad authentication tag, replay or malformed",
            srtp_dropped.clone(),
        );
        registry.register("active_calls", "Calls in progress", active_calls.clone());
        registry.register("calls_answered", "Calls answered", answered.clone());
        registry.register(
            "calls_failed",
            "Calls that failed before the caller was served",
            failed.clone(),
        );
        registry.register(
            "calls_shed",
            "Calls refused by overload protection (486/503)",
            shed.clone(),
        );
        registry.register(
            "answer_rate",
            "Answered / offered over the alert window (0..1)",
            answer_rate.clone(),
        );
        registry.register(
            "alert_level",
            "Alert level: 0 green, 1 yellow, 2 orange, 3 red",
            alert_level.clone(),
        );
        registry.register(
            "turn_latency_seconds",
            "End of caller speech to first reply packet",
            turn_latency.clone(),
        );
        registry.register(
            "asr_seconds",
            "Recent ASR time per utterance",
            asr_seconds.clone(),
        );
        registry.register(
            "tts_seconds",
            "Recent TTS time to first audio",
            tts_seconds.clone(),
        );
        registry.register(
            "asr_queue_depth",
            "ASR jobs waiting for a worker",
            asr_queue.clone(),
        );
        registry.register(
            "tts_queue_depth",
            "TTS jobs waiting for a worker",
            tts_queue.clone(),
        );
        registry.register(
            "registration_up",
            "1 when registered with the registrar, else 0",
            registration.clone(),
        );
        registry.register(
            "emergency_mode",
            "1 while calls run the emergency script",
            emergency.clone(),
        );
        registry.register(
            "transfers",
            "Transfer attempts to a person by result (connected, refused, busy, no_answer, unreachable, abandoned)",
            transfers.clone(),
        );
        Self {
            transfers,
            registry,
            active_calls,
            answered,
            failed,
            shed,
            answer_rate,
            alert_level,
            turn_latency,
            asr_seconds,
            tts_seconds,
            asr_queue,
            tts_queue,
            registration,
            emergency,
            srtp_dropped,
            store_reachable,
            store_backlog,
            store_dropped,
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let total = crate::rtp::srtp::dropped_total();
        let seen = self.srtp_dropped.get();
        if total > seen {
            self.srtp_dropped.inc_by(total - seen);
        }
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// One transfer attempt ended with `result`.
    pub fn transfer(&self, result: &str) {
        self.transfers
            .get_or_create(&vec![("result".to_string(), result.to_string())])
            .inc();
    }

    pub(crate) fn set_active_calls(&self, n: usize) {
        self.active_calls.set(n as i64);
    }

    pub(crate) fn observe_turn_latency(&self, d: Duration) {
        self.turn_latency.observe(d.as_secs_f64());
    }

    pub fn call_answered(&self) {
        self.answered.inc();
    }

    pub fn call_failed(&self) {
        self.failed.inc();
    }

    pub fn call_shed(&self) {
        self.shed.inc();
    }

    /// The record writer's state: reachable, writes kept, writes lost.
    pub fn set_store(&self, reachable: bool, backlog: usize, dropped: u64) {
        self.store_reachable.set(reachable as i64);
        self.store_backlog.set(backlog as i64);
        self.store_dropped.set(dropped.min(i64::MAX as u64) as i64);
    }

    pub fn set_answer_rate(&self, rate: f64) {
        self.answer_rate.set(rate);
    }

    pub fn set_alert_level(&self, level: AlertLevel) {
        self.alert_level.set(i64::from(level.as_metric()));
    }

    pub fn set_asr_time(&self, d: Duration) {
        self.asr_seconds.set(d.as_secs_f64());
    }

    pub fn set_tts_time(&self, d: Duration) {
        self.tts_seconds.set(d.as_secs_f64());
    }

    pub fn set_asr_queue_depth(&self, n: usize) {
        self.asr_queue.set(n as i64);
    }

    pub fn set_tts_queue_depth(&self, n: usize) {
        self.tts_queue.set(n as i64);
    }

    /// Registration state of one registrar (`host:port`).
    pub fn set_registered(&self, registrar: &str, up: bool) {
        self.registration
            .get_or_create(&vec![("registrar".to_string(), registrar.to_string())])
            .set(i64::from(up));
    }

    pub fn set_emergency_mode(&self, on: bool) {
        self.emergency.set(i64::from(on));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let m = ConsoleMetrics::new();
        m.call_answered();
        m.call_shed();
        m.set_alert_level(AlertLevel::Orange);
        m.set_registered("127.0.0.1:5060", true);
        m.observe_turn_latency(Duration::from_millis(450));
        m.transfer("connected");
        m.transfer("busy");
        m.transfer("busy");
        let text = m.render();
        for needle in [
            "tingshuo_transfers_total{result=\"connected\"} 1",
            "tingshuo_transfers_total{result=\"busy\"} 2",
            "tingshuo_calls_answered_total 1",
            "tingshuo_calls_shed_total 1",
            "tingshuo_alert_level 2",
            "tingshuo_registration_up{registrar=\"127.0.0.1:5060\"} 1",
            "tingshuo_turn_latency_seconds_bucket{le=\"0.5\"} 1",
            "tingshuo_turn_latency_seconds_bucket{le=\"0.4\"} 0",
            "tingshuo_emergency_mode 0",
            "# EOF",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }
}
