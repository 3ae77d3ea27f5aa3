//! Callbacks the callees asked for, dialled when due by `serve` and `campaign`.
//!
//! Callbacks live in the store (SQLite), so they survive restarts. Every few
//! seconds the [`Scheduler`] reads the pending ones, and [`plan`] (sans-IO)
//! decides which to dial now and whom: the callback's own target, else the
//! original call's peer, with the original call's script variables. A dialled
//! callback is claimed in the store first (attempt counted, due time moved past
//! the call as a lease), then [`resolve`] turns the call's end into done, a
//! retry later, or failed after a bounded number of attempts.
//!
//! `campaign` dials the callbacks that fall due while it runs (they share its
//! concurrency limit); those due later are left to `serve` or the next run.
//! A callback being dialled when the agent stops stays claimed until its lease
//! ends, then is dialled again (its attempt counted).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, FixedOffset};

use crate::config::Config;
use crate::store::{CallbackState, Store};

use super::agent::{Finished, Running};
use super::CallError;

/// How callbacks are retried.
#[derive(Debug, Clone, Copy)]
pub struct CallbackPolicy {
    /// Attempts per callback before it is marked failed.
    pub max_attempts: u32,
    /// Wait before dialling an unanswered callback again.
    pub retry: chrono::Duration,
    /// How far a claimed callback's due time moves: past any call's length, so a
    /// callback whose agent died mid-call becomes due again later.
    pub lease: chrono::Duration,
}

impl CallbackPolicy {
    pub fn from_config(config: &Config) -> Self {
        let c = &config.agent.callbacks;
        Self {
            max_attempts: c.max_attempts.max(1),
            retry: chrono::Duration::seconds(c.retry_s.min(i64::MAX as u64) as i64),
            lease: chrono::Duration::minutes(30),
        }
    }
}

/// What to do with one pending callback now.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Not due yet.
    Wait,
    /// Dial `target` with `vars` (after claiming it with `attempts_seen`).
    Dial {
        target: String,
        vars: BTreeMap<String, String>,
    },
    /// It cannot be dialled: mark it failed with this reason.
    Abandon(String),
}

/// Decides what to do with `cb` at `now`. `via_registrar`: calls go through a
/// registrar, which routes a bare extension / number.
pub fn plan(
    cb: &CallbackState,
    now: DateTime<FixedOffset>,
    via_registrar: bool,
    policy: &CallbackPolicy,
) -> Plan {
    let due = match DateTime::parse_from_rfc3339(cb.due_at.trim()) {
        Ok(t) => t,
        Err(e) => {
            return Plan::Abandon(format!(
                "due time {:?} is not an RFC 3339 time ({e})",
                cb.due_at
            ))
        }
    };
    if due > now {
        return Plan::Wait;
    }
    if cb.attempts >= policy.max_attempts {
        return Plan::Abandon(format!(
            "gave up after {} attempts{}",
            cb.attempts,
            cb.last_error
                .as_deref()
                .map(|e| format!(" (last: {e})"))
                .unwrap_or_default()
        ));
    }
    let explicit = cb
        .target
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let target = explicit.or_else(|| {
        cb.peer
            .as_deref()
            .and_then(|p| dial_target(p, via_registrar))
    });
    match target {
        Some(target) => Plan::Dial {
            target,
            vars: cb.vars.clone(),
        },
        None => Plan::Abandon(
            "no target, and the original call has no usable peer address to call back".into(),
        ),
    }
}

/// Whom to dial to reach the peer of an earlier call, given as a From header
/// value (`"Name" <sip:1001@pbx;transport=udp>;tag=…`), a SIP URI or a bare number.
/// Through a registrar the user part is dialled (the registrar knows where the
/// user is now); in direct mode the whole URI.
pub fn dial_target(peer: &str, via_registrar: bool) -> Option<String> {
    let p = peer.trim();
    let uri = match (p.find('<'), p.find('>')) {
        (Some(a), Some(b)) if b > a => &p[a + 1..b],
        _ => p.split(';').next().unwrap_or(p),
    };
    let uri = uri.trim();
    let (scheme, rest) = match uri.split_once(':') {
        Some((s @ ("sip" | "sips"), rest)) => (s, Some(rest)),
        _ => ("sip", None),
    };
    let Some(rest) = rest else {
        return (!uri.is_empty() && !uri.contains(char::is_whitespace)).then(|| uri.to_string());
    };
    let rest = rest.split(';').next().unwrap_or(rest);
    let (user, host) = match rest.split_once('@') {
        Some((u, h)) => (u, h),
        None => ("", rest),
    };
    if via_registrar && !user.is_empty() {
        return Some(user.to_string());
    }
    if host.is_empty() {
        return None;
    }
    Some(if user.is_empty() {
        format!("{scheme}:{host}")
    } else {
        format!("{scheme}:{user}@{host}")
    })
}

/// How a dialled callback ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// Answered: the callee was reached.
    Done,
    /// Not reached; dial again at this time.
    Retry {
        due_at: DateTime<FixedOffset>,
        error: String,
    },
    /// Not reached and out of attempts.
    Failed { error: String },
}

/// Decides what a callback's call means. `attempts` counts this one.
pub fn resolve(
    attempts: u32,
    answered: bool,
    outcome: &str,
    now: DateTime<FixedOffset>,
    policy: &CallbackPolicy,
) -> Resolution {
    if answered {
        return Resolution::Done;
    }
    let error = format!("attempt {attempts}: {outcome}");
    if attempts >= policy.max_attempts {
        Resolution::Failed { error }
    } else {
        Resolution::Retry {
            due_at: now + policy.retry,
            error,
        }
    }
}

/// A callback being dialled.
#[derive(Debug, Clone)]
struct InFlight {
    callback: i64,
    attempts: u32,
    target: String,
    record_id: Option<i64>,
}

/// The edge: reads the store, dials through the running agent, writes results.
pub struct Scheduler {
    store: Store,
    policy: CallbackPolicy,
    via_registrar: bool,
    poll: Duration,
    /// SIP Call-ID → the callback it dials.
    in_flight: HashMap<String, InFlight>,
}

fn now_local() -> DateTime<FixedOffset> {
    chrono::Local::now().fixed_offset()
}

impl Scheduler {
    /// Opens its own connection to the records database the agent writes.
    pub fn open(config: &Config) -> Result<Self, CallError> {
        Ok(Self {
            store: Store::connect(&config.store_target())?,
            policy: CallbackPolicy::from_config(config),
            via_registrar: !config.sip.registrars.is_empty(),
            poll: Duration::from_secs(config.agent.callbacks.poll_s.max(1)),
            in_flight: HashMap::new(),
        })
    }

    pub fn poll_interval(&self) -> Duration {
        self.poll
    }

    /// Callbacks being dialled now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Targets of the callbacks being dialled now.
    pub fn busy_targets(&self) -> impl Iterator<Item = &str> {
        self.in_flight.values().map(|f| f.target.as_str())
    }

    /// Dials the callbacks that are due, at most `slots` of them, never one whose
    /// target is in `busy` (already in a call).
    pub(super) fn poll(&mut self, agent: &mut Running, busy: &HashSet<String>, slots: usize) {
        let pending = match self.store.pending_callbacks() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read pending callbacks");
                return;
            }
        };
        let now = now_local();
        let mut placed = 0usize;
        for cb in pending {
            if self.in_flight.values().any(|f| f.callback == cb.id) {
                continue;
            }
            match plan(&cb, now, self.via_registrar, &self.policy) {
                Plan::Wait => {}
                Plan::Abandon(reason) => {
                    tracing::warn!(callback = cb.id, %reason, "callback abandoned");
                    self.write(cb.id, "failed", None, Some(&reason), None);
                }
                Plan::Dial { target, vars } => {
                    if placed >= slots
                        || busy.contains(&target)
                        || self.busy_targets().any(|t| t == target)
                    {
                        continue;
                    }
                    let lease = (now + self.policy.lease).to_rfc3339();
                    match self.store.claim_callback(cb.id, cb.attempts, &lease) {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(e) => {
                            tracing::error!(callback = cb.id, error = %e, "cannot claim a callback");
                            continue;
                        }
                    }
                    let attempts = cb.attempts + 1;
                    tracing::info!(callback = cb.id, %target, attempts, "dialling a callback");
                    match agent.place(&target, vars, cb.script.as_deref()) {
                        Ok((call_id, record_id)) => {
                            placed += 1;
                            self.in_flight.insert(
                                call_id,
                                InFlight {
                                    callback: cb.id,
                                    attempts,
                                    target,
                                    record_id,
                                },
                            );
                        }
                        Err(e) => {
                            let r = resolve(attempts, false, &e.to_string(), now, &self.policy);
                            self.apply(cb.id, r, None);
                        }
                    }
                }
            }
        }
    }

    /// Records the end of a call if it was a callback's; returns whether it was.
    pub(super) fn on_finished(&mut self, ended: &Finished) -> bool {
        let Some(f) = self.in_flight.remove(&ended.call_id) else {
            return false;
        };
        let r = resolve(
            f.attempts,
            ended.answered,
            &ended.outcome,
            now_local(),
            &self.policy,
        );
        tracing::info!(callback = f.callback, outcome = %ended.outcome, resolution = ?r, "callback call ended");
        if ended.outcome == "do_not_call" {
            let at = now_local().to_rfc3339();
            let target = super::campaign::normalize_target(&f.target);
            if let Err(e) = self.store.add_do_not_call(&target, "callee asked", &at) {
                tracing::error!(error = %e, "cannot add to the do-not-call list");
            }
        }
        self.apply(f.callback, r, ended.record_id.or(f.record_id));
        true
    }

    fn apply(&mut self, id: i64, r: Resolution, dialled: Option<i64>) {
        match r {
            Resolution::Done => self.write(id, "done", None, None, dialled),
            Resolution::Retry { due_at, error } => self.write(
                id,
                "pending",
                Some(&due_at.to_rfc3339()),
                Some(&error),
                dialled,
            ),
            Resolution::Failed { error } => self.write(id, "failed", None, Some(&error), dialled),
        }
    }

    fn write(
        &mut self,
        id: i64,
        status: &str,
        due: Option<&str>,
        error: Option<&str>,
        dialled: Option<i64>,
    ) {
        if let Err(e) = self.store.finish_callback(id, status, due, error, dialled) {
            tracing::error!(callback = id, error = %e, "cannot update a callback");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn policy() -> CallbackPolicy {
        CallbackPolicy {
            max_attempts: 3,
            retry: chrono::Duration::seconds(60),
            lease: chrono::Duration::minutes(30),
        }
    }

    fn cb(due: &str, target: Option<&str>, peer: Option<&str>, attempts: u32) -> CallbackState {
        CallbackState {
            id: 1,
            call_id: 5,
            due_at: due.into(),
            status: "pending".into(),
            target: target.map(String::from),
            peer: peer.map(String::from),
            vars: BTreeMap::from([("name".to_string(), "赵敏".to_string())]),
            attempts,
            last_error: None,
            dialled_call_id: None,
            script: None,
        }
    }

    #[test]
    fn due_times_compare_as_instants_across_offsets() {
        // 10:00+08:00 is 02:00Z: due at 02:00:05Z it is still in the future.
        let c = cb("2026-11-25T10:00:10+08:00", Some("1001"), None, 0);
        assert_eq!(
            plan(&c, t("2026-11-25T02:00:05Z"), true, &policy()),
            Plan::Wait
        );
        let p = plan(&c, t("2026-11-25T02:00:10Z"), true, &policy());
        assert_eq!(
            p,
            Plan::Dial {
                target: "1001".into(),
                vars: c.vars.clone()
            }
        );
    }

    #[test]
    fn the_peer_is_dialled_when_no_target_was_given() {
        let c = cb(
            "2026-11-25T10:00:00+08:00",
            None,
            Some("\"张\" <sip:1002@127.0.0.1:5060;transport=udp>;tag=ab"),
            1,
        );
        let now = t("2026-11-25T10:00:01+08:00");
        assert!(
            matches!(plan(&c, now, true, &policy()), Plan::Dial { target, .. } if target == "1002")
        );
        assert!(
            matches!(plan(&c, now, false, &policy()), Plan::Dial { target, .. } if target == "sip:1002@127.0.0.1:5060")
        );
        let blank = cb("2026-11-25T10:00:00+08:00", Some("  "), None, 0);
        assert!(matches!(
            plan(&blank, now, true, &policy()),
            Plan::Abandon(_)
        ));
    }

    #[test]
    fn bad_due_times_and_spent_attempts_are_abandoned() {
        let now = t("2026-11-25T10:00:01+08:00");
        let c = cb("tomorrow", Some("1001"), None, 0);
        assert!(
            matches!(plan(&c, now, true, &policy()), Plan::Abandon(r) if r.contains("tomorrow"))
        );
        let mut c = cb("2026-11-25T10:00:00+08:00", Some("1001"), None, 3);
        c.last_error = Some("attempt 3: busy".into());
        assert!(
            matches!(plan(&c, now, true, &policy()), Plan::Abandon(r) if r.contains("3 attempts") && r.contains("busy"))
        );
    }

    #[test]
    fn unanswered_callbacks_retry_until_the_limit() {
        let now = t("2026-11-25T10:00:00+08:00");
        assert_eq!(
            resolve(1, true, "completed", now, &policy()),
            Resolution::Done
        );
        assert_eq!(
            resolve(1, true, "no_response", now, &policy()),
            Resolution::Done,
            "an answered call reached the callee, whatever the dialogue's outcome"
        );
        assert_eq!(
            resolve(1, false, "busy", now, &policy()),
            Resolution::Retry {
                due_at: t("2026-11-25T10:01:00+08:00"),
                error: "attempt 1: busy".into()
            }
        );
        assert_eq!(
            resolve(3, false, "no_answer", now, &policy()),
            Resolution::Failed {
                error: "attempt 3: no_answer".into()
            }
        );
    }

    #[test]
    fn dial_targets_from_peers() {
        assert_eq!(dial_target("1001", true).as_deref(), Some("1001"));
        assert_eq!(dial_target("sip:1001@pbx", true).as_deref(), Some("1001"));
        assert_eq!(
            dial_target("<sips:ann@example.org>", false).as_deref(),
            Some("sips:ann@example.org")
        );
        assert_eq!(
            dial_target("sip:10.0.0.5:5062", true).as_deref(),
            Some("sip:10.0.0.5:5062")
        );
        assert_eq!(dial_target("", true), None);
        assert_eq!(dial_target("sip:", false), None);
    }
}
