//! Alerts: the [`HealthMonitor`] fed by the agent (answered vs refused/failed offers,
//! system faults such as emergency mode), its level exported as `tingshuo_alert_level`
//! with the answer rate, logged on change and POSTed as JSON to a webhook.
//!
//! The webhook runs on its own thread with a bounded queue: a slow or dead receiver
//! never delays a call; when the queue is full the oldest news is what gets dropped.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::config::AlertsConfig;
use crate::console::ConsoleHub;

use super::health::{AlertLevel, HealthMonitor, Offer};

/// The JSON posted on every level change.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AlertEvent {
    pub level: AlertLevel,
    pub previous: AlertLevel,
    /// Answered / offered over the window (absent when nothing was offered).
    pub answer_rate: Option<f64>,
    pub fault: Option<String>,
    pub at: String,
}

/// The agent's alert state.
pub struct Alerts {
    monitor: Mutex<HealthMonitor>,
    hub: ConsoleHub,
    webhook: Option<Sender<AlertEvent>>,
}

impl Alerts {
    pub fn new(cfg: &AlertsConfig, hub: ConsoleHub) -> Self {
        let webhook = cfg.webhook.clone().and_then(|url| {
            let (tx, rx) = crossbeam_channel::bounded::<AlertEvent>(64);
            std::thread::Builder::new()
                .name("alert-webhook".into())
                .spawn(move || post_loop(&url, rx))
                .map_err(|e| tracing::error!(error = %e, "alert webhook thread not started"))
                .ok()
                .map(|_| tx)
        });
        hub.metrics().set_alert_level(AlertLevel::Green);
        Self {
            monitor: Mutex::new(HealthMonitor::new(
                Duration::from_secs(cfg.window_secs),
                cfg.min_offers,
            )),
            hub,
            webhook,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut HealthMonitor) -> R) -> R {
        let mut m = self.monitor.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut m)
    }

    /// An offered call was answered (normal or emergency script).
    pub fn answered(&self) {
        self.hub.metrics().call_answered();
        self.offer(Offer::Answered);
    }

    /// An offered call was refused by overload protection.
    pub fn shed(&self) {
        self.hub.metrics().call_shed();
        self.offer(Offer::Missed);
    }

    /// An offered call failed before the caller was served.
    pub fn failed(&self) {
        self.hub.metrics().call_failed();
        self.offer(Offer::Missed);
    }

    fn offer(&self, offer: Offer) {
        let now = Instant::now();
        self.apply(|m| (m.level(), m.record(now, offer)));
    }

    /// Sets or clears a system fault (always red while set).
    pub fn set_fault(&self, fault: Option<String>) {
        let now = Instant::now();
        self.apply(|m| {
            if m.fault() == fault.as_deref() {
                return (m.level(), None);
            }
            (m.level(), m.set_fault(now, fault))
        });
    }

    /// Re-evaluates as offers age out of the window (call periodically).
    pub fn tick(&self) {
        let now = Instant::now();
        self.apply(|m| (m.level(), m.update(now)));
    }

    pub fn level(&self) -> AlertLevel {
        self.with(|m| m.level())
    }

    fn apply(&self, f: impl FnOnce(&mut HealthMonitor) -> (AlertLevel, Option<AlertLevel>)) {
        let (previous, changed, rate, fault) = self.with(|m| {
            let (previous, changed) = f(m);
            (
                previous,
                changed,
                m.answer_rate(),
                m.fault().map(str::to_string),
            )
        });
        if let Some(r) = rate {
            self.hub.metrics().set_answer_rate(r);
        }
        let Some(level) = changed else { return };
        self.hub.metrics().set_alert_level(level);
        let event = AlertEvent {
            level,
            previous,
            answer_rate: rate,
            fault,
            at: chrono::Local::now().fixed_offset().to_rfc3339(),
        };
        if level > previous {
            tracing::warn!(level = level.name(), previous = previous.name(), answer_rate = ?rate, fault = ?event.fault, "ALERT level raised");
        } else {
            tracing::info!(level = level.name(), previous = previous.name(), answer_rate = ?rate, "alert level lowered");
        }
        if let Some(tx) = &self.webhook {
            if tx.try_send(event).is_err() {
                tracing::warn!("alert webhook queue full; this level change is not posted");
            }
        }
    }
}

fn post_loop(url: &str, rx: Receiver<AlertEvent>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into();
    for event in rx {
        let body = match serde_json::to_string(&event) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "alert event not serializable");
                continue;
            }
        };
        match agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(body.as_str())
        {
            Ok(r) if r.status().is_success() => {
                tracing::debug!(level = event.level.name(), "alert posted")
            }
            Ok(r) => tracing::warn!(status = %r.status(), %url, "alert webhook refused the post"),
            Err(e) => tracing::warn!(error = %e, %url, "alert webhook unreachable"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};

    #[test]
    fn level_changes_reach_metrics_and_the_webhook() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let receiver = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            s.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            String::from_utf8(body).unwrap()
        });
        let hub = ConsoleHub::new();
        let alerts = Alerts::new(
            &AlertsConfig {
                window_secs: 60,
                min_offers: 4,
                webhook: Some(url),
            },
            hub.clone(),
        );
        alerts.answered();
        alerts.answered();
        alerts.shed();
        assert_eq!(alerts.level(), AlertLevel::Green, "too few offers");
        alerts.shed();
        assert_eq!(alerts.level(), AlertLevel::Red, "2 of 4 answered");
        let text = hub.metrics().render();
        assert!(text.contains("tingshuo_alert_level 3"), "{text}");
        assert!(text.contains("tingshuo_answer_rate 0.5"), "{text}");
        assert!(text.contains("tingshuo_calls_shed_total 2"), "{text}");
        let body: serde_json::Value = serde_json::from_str(&receiver.join().unwrap()).unwrap();
        assert_eq!(body["level"], "red");
        assert_eq!(body["previous"], "green");
        assert_eq!(body["answer_rate"], 0.5);
    }
}
