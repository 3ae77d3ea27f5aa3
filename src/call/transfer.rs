//! Transfer to a person (转人工), sans-IO: what a call does after the dialogue asks for
//! a person, fed with SIP progress and time, returning what to do next.
//!
//! ```text
//!  announce line played ─▶ REFER ──202/NOTIFY 2xx──▶ connected (agent hangs up)
//!  (a bridge dials at once, while the announce line plays, and joins after it)
//!                           │ 405/501/603, NOTIFY failure (not busy/no answer)
//!                           ▼
//!                         bridge: INVITE target (X-Tingshuo-Summary) ──200──▶ connected
//!                           │ 486/600 busy · no answer in timeout_secs · 404/480/503/…
//!                           ▼                                         (RTP relayed by
//!                         failed: caller hears the fall-back line,     the call loop)
//!                         a callback by a person is stored
//! ```
//!
//! Every attempt (method, result, time to ringing and to answer) is kept for the record.

use std::time::{Duration, Instant};

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde::Serialize;

use crate::config::{TransferMethod, TransferPolicy};
use crate::sip::{EndReason, ReferStatus};

/// Header carrying the call's summary on a bridged INVITE.
pub const SUMMARY_HEADER: &str = "X-Tingshuo-Summary";
/// Longest summary text before encoding, in bytes (cut at a character boundary).
pub const SUMMARY_MAX_BYTES: usize = 480;

/// Everything outside unreserved URL characters is escaped: the header value stays
/// one token-safe line whatever the caller said.
const ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b',')
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(b'\'');

/// The short text a person sees before taking the call: why, who, what was asked,
/// and the fields collected so far. At most [`SUMMARY_MAX_BYTES`].
pub fn summary(
    reason: &str,
    peer: &str,
    request: &str,
    fields: &std::collections::BTreeMap<String, String>,
) -> String {
    let mut s = format!("转人工({reason}) 来电:{peer}");
    if !request.trim().is_empty() {
        s.push_str(&format!(" 诉求:{}", request.trim()));
    }
    let collected: Vec<String> = fields
        .iter()
        .filter(|(k, _)| !k.starts_with("transfer") && !k.starts_with("callback"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !collected.is_empty() {
        s.push_str(&format!(" 已收集:{}", collected.join("; ")));
    }
    truncate(&s.replace(['\r', '\n'], " "), SUMMARY_MAX_BYTES)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The summary as the `X-Tingshuo-Summary` header value (UTF-8, percent-encoded).
pub fn encode_summary(summary: &str) -> String {
    utf8_percent_encode(summary, ENCODE).to_string()
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptResult {
    /// A person has the call.
    Connected,
    /// The peer refused REFER (the bridge is tried next).
    Refused,
    Busy,
    NoAnswer,
    /// The target declined (603) or could not be reached (404, 480, 503, timeout, …).
    Unreachable,
    /// The caller hung up while the transfer ran.
    Abandoned,
    /// An operator took the call over from the console while the person's phone
    /// rang, or took it from the person after the bridge.
    TakenOver,
}

impl AttemptResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Connected => "connected",
            AttemptResult::Refused => "refused",
            AttemptResult::Busy => "busy",
            AttemptResult::NoAnswer => "no_answer",
            AttemptResult::Unreachable => "unreachable",
            AttemptResult::Abandoned => "abandoned",
            AttemptResult::TakenOver => "taken_over",
        }
    }

    /// What the caller is told happened, for the person's callback.
    fn why(self, code: Option<u16>) -> String {
        let what = match self {
            AttemptResult::Busy => "the person's line was busy",
            AttemptResult::NoAnswer => "nobody answered",
            AttemptResult::Unreachable => "the target could not be reached",
            AttemptResult::Refused => "the transfer was refused",
            AttemptResult::Abandoned => "the caller hung up",
            AttemptResult::TakenOver => "an operator took the call over",
            AttemptResult::Connected => "connected",
        };
        match code {
            Some(c) if c > 0 => format!("{what} ({c})"),
            _ => what.to_string(),
        }
    }
}

/// One try at reaching the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub method: &'static str,
    pub target: String,
    pub result: AttemptResult,
    /// The SIP status that decided it (REFER response, sipfrag, or INVITE final).
    pub code: Option<u16>,
    /// From the dialogue's transfer request to the person's phone ringing.
    pub ring_ms: Option<u64>,
    /// From sending REFER / INVITE to the person answering.
    pub answer_ms: Option<u64>,
}

/// What the call loop must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send REFER for `target` in the caller's dialog.
    Refer { target: String },
    /// Dial `target` as the second leg, with these INVITE headers.
    Dial {
        target: String,
        headers: Vec<(String, String)>,
        ring_timeout: Duration,
    },
    /// Hang up the second leg (ringing or not).
    HangupLeg,
    /// A person has the call: tell the dialogue (`Connected`); with `bridge` the call
    /// loop relays audio between the legs from now on, else it hangs up.
    Connected { target: String, bridge: bool },
    /// Nobody took the call: tell the dialogue (`Failed { why }`).
    Failed { why: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The announce line is playing.
    Announcing,
    Referring,
    Dialing,
    Bridged,
    Done,
}

/// One transfer of one call.
#[derive(Debug)]
pub struct Transfer {
    policy: TransferPolicy,
    summary: String,
    phase: Phase,
    requested_at: Instant,
    /// When the current attempt's REFER or INVITE went out.
    sent_at: Option<Instant>,
    ringing_at: Option<Instant>,
    attempts: Vec<Attempt>,
    /// The announce line has been heard.
    announced: bool,
    /// The person answered while the announce line was still playing.
    answered_early: bool,
    started: bool,
}

impl Transfer {
    /// The dialogue asked for a person at `now`; the announce line is being said.
    pub fn new(policy: TransferPolicy, summary: String, now: Instant) -> Self {
        Self {
            policy,
            summary,
            phase: Phase::Announcing,
            requested_at: now,
            sent_at: None,
            ringing_at: None,
            attempts: Vec::new(),
            announced: false,
            answered_early: false,
            started: false,
        }
    }

    /// What to do at once: a bridge dials the person while the caller hears the
    /// announce line (the phone rings seconds earlier); a REFER waits for the line,
    /// since the caller's phone leaves the agent with it.
    /// Idempotent: only the first call does anything.
    pub fn start(&mut self, now: Instant) -> Vec<Output> {
        if std::mem::replace(&mut self.started, true) {
            return Vec::new();
        }
        match (self.phase, self.policy.method) {
            (Phase::Announcing, TransferMethod::Bridge) => self.dial(now),
            _ => Vec::new(),
        }
    }

    pub fn policy(&self) -> &TransferPolicy {
        &self.policy
    }

    pub fn summary(&self) -> &str {
        &self.summary
    }

    pub fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }

    /// The method of the attempt in progress (or the last one).
    pub fn method(&self) -> TransferMethod {
        match self.attempts.last() {
            Some(a) if a.result == AttemptResult::Refused => TransferMethod::Bridge,
            _ if self.phase == Phase::Dialing || self.phase == Phase::Bridged => {
                TransferMethod::Bridge
            }
            _ => self.policy.method,
        }
    }

    /// The announce line is still to be heard.
    pub fn announcing(&self) -> bool {
        !self.announced && self.phase != Phase::Done
    }

    /// Whether the second leg is up and audio must be relayed.
    pub fn bridged(&self) -> bool {
        self.phase == Phase::Bridged
    }

    /// Whether a second leg exists (dialling or bridged): it must be hung up with the call.
    pub fn has_leg(&self) -> bool {
        matches!(self.phase, Phase::Dialing | Phase::Bridged)
    }

    pub fn finished(&self) -> bool {
        matches!(self.phase, Phase::Done | Phase::Bridged)
    }

    /// From the request to the person's phone ringing, once it rang.
    pub fn ring_delay(&self) -> Option<Duration> {
        self.ringing_at.map(|t| t - self.requested_at)
    }

    /// The announce line finished playing: start the first attempt (or join a person
    /// who already answered).
    pub fn announced(&mut self, now: Instant) -> Vec<Output> {
        if self.announced {
            return Vec::new();
        }
        self.announced = true;
        if self.answered_early && self.phase == Phase::Dialing {
            self.phase = Phase::Bridged;
            return vec![Output::Connected {
                target: self.policy.target.clone(),
                bridge: true,
            }];
        }
        if self.phase != Phase::Announcing {
            return Vec::new();
        }
        match self.policy.method {
            TransferMethod::Refer => {
                self.phase = Phase::Referring;
                self.sent_at = Some(now);
                vec![Output::Refer {
                    target: self.policy.target.clone(),
                }]
            }
            TransferMethod::Bridge => self.dial(now),
        }
    }

    fn dial(&mut self, now: Instant) -> Vec<Output> {
        self.phase = Phase::Dialing;
        self.sent_at = Some(now);
        self.ringing_at = None;
        vec![Output::Dial {
            target: self.policy.target.clone(),
            headers: vec![(SUMMARY_HEADER.to_string(), encode_summary(&self.summary))],
            ring_timeout: self.policy.timeout,
        }]
    }

    fn attempt(
        &mut self,
        method: &'static str,
        result: AttemptResult,
        code: Option<u16>,
        now: Instant,
    ) {
        let answer_ms = (result == AttemptResult::Connected)
            .then(|| self.sent_at.map(|t| (now - t).as_millis() as u64))
            .flatten();
        self.attempts.push(Attempt {
            method,
            target: self.policy.target.clone(),
            result,
            code,
            ring_ms: self.ring_delay().map(|d| d.as_millis() as u64),
            answer_ms,
        });
    }

    fn fail(
        &mut self,
        method: &'static str,
        result: AttemptResult,
        code: Option<u16>,
        now: Instant,
    ) -> Vec<Output> {
        self.attempt(method, result, code, now);
        self.phase = Phase::Done;
        vec![Output::Failed {
            why: result.why(code),
        }]
    }

    /// Progress of our REFER.
    pub fn on_refer(&mut self, status: ReferStatus, now: Instant) -> Vec<Output> {
        if self.phase != Phase::Referring {
            return Vec::new();
        }
        match status {
            ReferStatus::Accepted => Vec::new(),
            ReferStatus::Progress(c) => {
                if (180..=183).contains(&c) && self.ringing_at.is_none() {
                    self.ringing_at = Some(now);
                }
                Vec::new()
            }
            ReferStatus::Succeeded(c) => {
                self.attempt("refer", AttemptResult::Connected, Some(c), now);
                self.phase = Phase::Done;
                vec![Output::Connected {
                    target: self.policy.target.clone(),
                    bridge: false,
                }]
            }
            // The person's side is known: trying again through a bridge would only
            // ring a busy phone again.
            ReferStatus::Failed(c @ (486 | 600)) => {
                self.fail("refer", AttemptResult::Busy, Some(c), now)
            }
            ReferStatus::Failed(c @ (408 | 480 | 487)) => {
                self.fail("refer", AttemptResult::NoAnswer, Some(c), now)
            }
            // The peer will not (or could not) follow the REFER: bridge instead.
            ReferStatus::Refused(c) | ReferStatus::Failed(c) => {
                self.attempt("refer", AttemptResult::Refused, Some(c), now);
                self.dial(now)
            }
        }
    }

    /// The second leg rings.
    pub fn on_leg_ringing(&mut self, now: Instant) {
        if self.phase == Phase::Dialing && self.ringing_at.is_none() {
            self.ringing_at = Some(now);
        }
    }

    /// The second leg answered: bridge.
    pub fn on_leg_answered(&mut self, now: Instant) -> Vec<Output> {
        if self.phase != Phase::Dialing || self.answered_early {
            return vec![Output::HangupLeg];
        }
        // A phone that answers at once may send no 180, or its 180 may arrive after
        // the 200 (a proxy's workers can reorder them): it rang when it answered.
        self.ringing_at.get_or_insert(now);
        self.attempt("bridge", AttemptResult::Connected, Some(200), now);
        if !self.announced {
            // Joined once the caller has heard the announce line.
            self.answered_early = true;
            return Vec::new();
        }
        self.phase = Phase::Bridged;
        vec![Output::Connected {
            target: self.policy.target.clone(),
            bridge: true,
        }]
    }

    /// The second leg ended before it was answered (busy, no answer, unreachable).
    /// After the bridge was up, the call loop ends the call instead.
    pub fn on_leg_ended(&mut self, reason: &EndReason, now: Instant) -> Vec<Output> {
        if self.phase != Phase::Dialing {
            return Vec::new();
        }
        if self.answered_early {
            // Answered, then hung up before the caller was joined.
            self.phase = Phase::Done;
            return vec![Output::Failed {
                why: "the person hung up before the call was joined".into(),
            }];
        }
        let (result, code) = match reason {
            EndReason::Busy => (AttemptResult::Busy, Some(486)),
            EndReason::NoAnswer => (AttemptResult::NoAnswer, Some(408)),
            EndReason::Declined => (AttemptResult::Unreachable, Some(603)),
            EndReason::NotFound => (AttemptResult::Unreachable, Some(404)),
            EndReason::Failed(c) | EndReason::Rejected(c) => (AttemptResult::Unreachable, Some(*c)),
            EndReason::Timeout => (AttemptResult::Unreachable, Some(408)),
            EndReason::NotAcceptable => (AttemptResult::Unreachable, Some(488)),
            _ => (AttemptResult::Unreachable, None),
        };
        self.fail("bridge", result, code, now)
    }

    /// Time passes: a REFER whose NOTIFYs do not reach a final status within the
    /// timeout counts as not answered. (A dialled leg has its own ring timeout.)
    pub fn on_tick(&mut self, now: Instant) -> Vec<Output> {
        let grace = Duration::from_secs(5);
        match (self.phase, self.sent_at) {
            (Phase::Referring, Some(t)) if now >= t + self.policy.timeout + grace => {
                self.fail("refer", AttemptResult::NoAnswer, None, now)
            }
            (Phase::Dialing, Some(t))
                if !self.answered_early && now >= t + self.policy.timeout + grace * 2 =>
            {
                // The SIP layer's ring timeout should have ended the leg by now.
                let mut out = vec![Output::HangupLeg];
                out.extend(self.fail("bridge", AttemptResult::NoAnswer, None, now));
                out
            }
            _ => Vec::new(),
        }
    }

    /// An operator took the call over in the console (`operator` is their name):
    /// they are the person now. A ringing leg is cancelled and a bridged person is
    /// hung up; the record gets a `console` attempt that connected the operator. A
    /// REFER already sent cannot be called back: the caller's phone may still leave
    /// for the target, so nothing changes then (the operator talks meanwhile).
    /// Returns `None` when there is nothing to take over (no transfer under way).
    pub fn take_over(&mut self, operator: &str, now: Instant) -> Option<Vec<Output>> {
        let mut out = Vec::new();
        match self.phase {
            Phase::Referring | Phase::Done => return None,
            Phase::Dialing if !self.answered_early => {
                self.attempt("bridge", AttemptResult::TakenOver, None, now);
                out.push(Output::HangupLeg);
            }
            Phase::Dialing | Phase::Bridged => {
                // The person had answered: their attempt stays `connected`.
                out.push(Output::HangupLeg);
            }
            Phase::Announcing => {}
        }
        self.phase = Phase::Done;
        self.answered_early = false;
        let answer_ms = Some((now - self.requested_at).as_millis() as u64);
        self.attempts.push(Attempt {
            method: "console",
            target: operator.to_string(),
            result: AttemptResult::Connected,
            code: None,
            ring_ms: None,
            answer_ms,
        });
        Some(out)
    }

    /// The caller hung up while the transfer ran.
    pub fn abandon(&mut self, now: Instant) -> Vec<Output> {
        match self.phase {
            Phase::Referring => {
                self.attempt("refer", AttemptResult::Abandoned, None, now);
                self.phase = Phase::Done;
                Vec::new()
            }
            Phase::Dialing => {
                self.attempt("bridge", AttemptResult::Abandoned, None, now);
                self.phase = Phase::Done;
                vec![Output::HangupLeg]
            }
            Phase::Bridged => {
                self.phase = Phase::Done;
                vec![Output::HangupLeg]
            }
            Phase::Announcing | Phase::Done => {
                self.phase = Phase::Done;
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(method: TransferMethod) -> TransferPolicy {
        TransferPolicy {
            target: "2001".into(),
            method,
            announce: "好的，正在为您转接人工客服，请稍候。".into(),
            timeout: Duration::from_secs(20),
            after_failures: 2,
            announce_to_agent: false,
        }
    }

    #[test]
    fn an_operator_takes_over_a_ringing_or_bridged_transfer_but_not_a_sent_refer() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        // Ringing: the leg is cancelled and marked taken over; the operator connects.
        let mut t = Transfer::new(policy(TransferMethod::Bridge), "s".into(), t0);
        assert!(matches!(t.start(t0)[..], [Output::Dial { .. }]));
        t.on_leg_ringing(ms(40));
        assert_eq!(
            t.take_over("alice", ms(2000)),
            Some(vec![Output::HangupLeg])
        );
        let got: Vec<_> = t
            .attempts()
            .iter()
            .map(|a| (a.method, a.target.as_str(), a.result))
            .collect();
        assert_eq!(
            got,
            vec![
                ("bridge", "2001", AttemptResult::TakenOver),
                ("console", "alice", AttemptResult::Connected)
            ]
        );
        assert_eq!(t.attempts()[1].answer_ms, Some(2000));
        assert!(!t.has_leg() && t.finished());
        // A late answer of the cancelled leg is hung up, not bridged.
        assert_eq!(t.on_leg_answered(ms(2100)), vec![Output::HangupLeg]);
        assert!(t.take_over("bob", ms(2200)).is_none(), "only once");

        // Bridged: the person is hung up; their attempt stays connected.
        let mut t = Transfer::new(policy(TransferMethod::Bridge), "s".into(), t0);
        t.start(t0);
        t.announced(ms(3000));
        t.on_leg_answered(ms(4000));
        assert!(t.bridged());
        assert_eq!(
            t.take_over("alice", ms(9000)),
            Some(vec![Output::HangupLeg])
        );
        let results: Vec<_> = t.attempts().iter().map(|a| (a.method, a.result)).collect();
        assert_eq!(
            results,
            vec![
                ("bridge", AttemptResult::Connected),
                ("console", AttemptResult::Connected)
            ]
        );
        assert!(!t.bridged());

        // Answered during the announce line, taken over before the join.
        let mut t = Transfer::new(policy(TransferMethod::Bridge), "s".into(), t0);
        t.start(t0);
        t.on_leg_answered(ms(1000));
        assert_eq!(
            t.take_over("alice", ms(1500)),
            Some(vec![Output::HangupLeg])
        );
        assert!(t.announced(ms(3000)).is_empty(), "nobody is joined later");

        // A REFER still announcing is simply not sent; one already sent stays.
        let mut t = Transfer::new(policy(TransferMethod::Refer), "s".into(), t0);
        assert_eq!(t.take_over("alice", ms(500)), Some(vec![]));
        assert!(t.announced(ms(3000)).is_empty());
        let mut t = Transfer::new(policy(TransferMethod::Refer), "s".into(), t0);
        t.announced(ms(3000));
        assert!(t.take_over("alice", ms(3500)).is_none());
    }

    #[test]
    fn refer_success_connects_and_records_ring_and_answer_times() {
        let t0 = Instant::now();
        let mut t = Transfer::new(policy(TransferMethod::Refer), "s".into(), t0);
        assert_eq!(
            t.announced(t0 + Duration::from_secs(3)),
            vec![Output::Refer {
                target: "2001".into()
            }]
        );
        assert!(t
            .on_refer(ReferStatus::Accepted, t0 + Duration::from_millis(3100))
            .is_empty());
        t.on_refer(ReferStatus::Progress(180), t0 + Duration::from_millis(3300));
        let out = t.on_refer(ReferStatus::Succeeded(200), t0 + Duration::from_secs(5));
        assert_eq!(
            out,
            vec![Output::Connected {
                target: "2001".into(),
                bridge: false
            }]
        );
        let a = &t.attempts()[0];
        assert_eq!((a.method, a.result), ("refer", AttemptResult::Connected));
        assert_eq!(a.ring_ms, Some(3300));
        assert_eq!(a.answer_ms, Some(2000));
        assert!(t.finished());
    }

    #[test]
    fn a_refused_refer_falls_back_to_the_bridge_with_the_summary_header() {
        for status in [
            ReferStatus::Refused(405),
            ReferStatus::Refused(501),
            ReferStatus::Refused(603),
            ReferStatus::Failed(500),
        ] {
            let t0 = Instant::now();
            let mut t = Transfer::new(
                policy(TransferMethod::Refer),
                "转人工 诉求:查账单".into(),
                t0,
            );
            t.announced(t0);
            let out = t.on_refer(status, t0);
            match &out[..] {
                [Output::Dial {
                    target,
                    headers,
                    ring_timeout,
                }] => {
                    assert_eq!(target, "2001");
                    assert_eq!(*ring_timeout, Duration::from_secs(20));
                    assert_eq!(headers[0].0, SUMMARY_HEADER);
                    assert!(headers[0].1.starts_with("%E8%BD%AC"), "{:?}", headers[0]);
                    assert!(!headers[0].1.contains(' '));
                }
                o => panic!("expected a dial, got {o:?}"),
            }
            assert_eq!(t.attempts()[0].result, AttemptResult::Refused);
            assert_eq!(t.method(), TransferMethod::Bridge);
            t.on_leg_ringing(t0 + Duration::from_millis(200));
            let out = t.on_leg_answered(t0 + Duration::from_secs(2));
            assert_eq!(
                out,
                vec![Output::Connected {
                    target: "2001".into(),
                    bridge: true
                }]
            );
            assert!(t.bridged() && t.has_leg());
            assert_eq!(t.attempts()[1].answer_ms, Some(2000));
        }
    }

    #[test]
    fn busy_no_answer_and_unreachable_fail_with_a_reason() {
        let cases = [
            (EndReason::Busy, AttemptResult::Busy, "busy"),
            (
                EndReason::NoAnswer,
                AttemptResult::NoAnswer,
                "nobody answered",
            ),
            (
                EndReason::NotFound,
                AttemptResult::Unreachable,
                "could not be reached",
            ),
            (EndReason::Failed(503), AttemptResult::Unreachable, "(503)"),
        ];
        for (reason, result, why_has) in cases {
            let t0 = Instant::now();
            let mut t = Transfer::new(policy(TransferMethod::Bridge), "s".into(), t0);
            assert!(matches!(t.start(t0)[..], [Output::Dial { .. }]));
            assert!(t.announced(t0).is_empty());
            match &t.on_leg_ended(&reason, t0)[..] {
                [Output::Failed { why }] => assert!(why.contains(why_has), "{why}"),
                o => panic!("{o:?}"),
            }
            assert_eq!(t.attempts()[0].result, result);
            assert!(t.finished() && !t.has_leg());
        }
        // A busy person behind a REFER is not rung again through a bridge.
        let t0 = Instant::now();
        let mut t = Transfer::new(policy(TransferMethod::Refer), "s".into(), t0);
        t.announced(t0);
        assert!(matches!(
            t.on_refer(ReferStatus::Failed(486), t0)[..],
            [Output::Failed { .. }]
        ));
    }

    #[test]
    fn a_refer_without_final_notify_times_out_and_a_caller_hangup_drops_the_leg() {
        let t0 = Instant::now();
        let mut t = Transfer::new(policy(TransferMethod::Refer), "s".into(), t0);
        t.announced(t0);
        assert!(t.on_tick(t0 + Duration::from_secs(10)).is_empty());
        assert!(matches!(
            t.on_tick(t0 + Duration::from_secs(30))[..],
            [Output::Failed { .. }]
        ));
        let mut t = Transfer::new(policy(TransferMethod::Bridge), "s".into(), t0);
        t.start(t0);
        assert_eq!(t.abandon(t0), vec![Output::HangupLeg]);
        assert_eq!(t.attempts()[0].result, AttemptResult::Abandoned);
    }

    #[test]
    fn a_bridge_rings_during_the_announce_line_and_joins_after_it() {
        let t0 = Instant::now();
        let mut t = Transfer::new(policy(TransferMethod::Bridge), "s".into(), t0);
        assert!(t.announcing());
        assert!(matches!(t.start(t0)[..], [Output::Dial { .. }]));
        assert!(t.start(t0).is_empty(), "starts once");
        t.on_leg_ringing(t0 + Duration::from_millis(10));
        assert_eq!(t.ring_delay(), Some(Duration::from_millis(10)));
        // The person answers before the caller heard the whole announce line.
        assert!(t.on_leg_answered(t0 + Duration::from_secs(1)).is_empty());
        assert!(!t.bridged());
        assert_eq!(
            t.announced(t0 + Duration::from_secs(3)),
            vec![Output::Connected {
                target: "2001".into(),
                bridge: true
            }]
        );
        assert!(t.bridged());
        assert_eq!(t.attempts()[0].answer_ms, Some(1000));
        // A REFER never starts before the line was heard.
        let mut r = Transfer::new(policy(TransferMethod::Refer), "s".into(), t0);
        assert!(r.start(t0).is_empty());
        assert!(matches!(r.announced(t0)[..], [Output::Refer { .. }]));
    }

    #[test]
    fn the_summary_is_bounded_and_names_the_request_and_fields() {
        let mut fields = std::collections::BTreeMap::new();
        fields.insert("name".to_string(), "张伟".to_string());
        fields.insert("transfer_requested".to_string(), "caller_asked".to_string());
        let s = summary(
            "caller_asked",
            "sip:1001@127.0.0.1",
            "我要转人工\r\n",
            &fields,
        );
        assert!(s.contains("诉求:我要转人工"), "{s}");
        assert!(s.contains("name=张伟"), "{s}");
        assert!(!s.contains("transfer_requested"), "{s}");
        let long = "很长的诉求".repeat(100);
        let s = summary("caller_asked", "x", &long, &fields);
        assert!(s.len() <= SUMMARY_MAX_BYTES);
        let enc = encode_summary(&s);
        assert!(enc.is_ascii() && !enc.contains([' ', ';', ',', '"']));
        let back = percent_encoding::percent_decode_str(&enc)
            .decode_utf8()
            .expect("valid UTF-8");
        assert_eq!(back, s);
    }
}
