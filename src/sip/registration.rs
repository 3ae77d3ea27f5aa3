//! Registration as a sans-IO state machine: REGISTER with digest, refresh before expiry,
//! OPTIONS keepalive, fail-over along the `registrars` list and return to the primary.
//!
//! The hotline-continuity requirement says a dead primary must not leave the agent
//! unreachable for more than 30 s. A REGISTER refresh alone would only notice at the next
//! refresh (minutes), so the active registrar is pinged with OPTIONS every
//! `keepalive` and a ping unanswered within `probe_timeout` moves registration to the next
//! registrar. While on a secondary, the primary is probed on the same interval and the
//! agent moves back as soon as it answers (then un-registers from the secondary). A
//! keepalive that succeeds after failures means the registrar restarted and lost its
//! in-memory bindings, so the agent registers again at once.
//!
//! This module decides what to send; the UA core wraps each request in a client
//! transaction and reports the outcome back.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsip::{Method, Request, Response};

use super::digest::{parse_challenge, DigestState};
use super::msg;
use super::SipEvent;

/// What a registration request is for (the UA routes the transaction outcome back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegKind {
    Register,
    Unregister,
    Keepalive,
    /// OPTIONS to the primary while registered on a secondary.
    Probe,
}

/// A request the registration machine wants sent.
#[derive(Debug, Clone)]
pub struct RegRequest {
    pub idx: usize,
    pub kind: RegKind,
    pub request: Request,
    pub dest: SocketAddr,
    /// Overrides the transaction timeout (B/F) so dead registrars are noticed fast.
    pub timeout: Option<Duration>,
}

#[derive(Debug, Default)]
pub struct RegOutput {
    pub requests: Vec<RegRequest>,
    pub events: Vec<SipEvent>,
}

/// Longest interval between REGISTER refreshes, whatever the granted expiry.
pub const MAX_REFRESH: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct RegConfig {
    pub user: String,
    pub password: String,
    pub local: SocketAddr,
    /// Transport to the registrars (TLS: `local` is the TLS listen address).
    pub transport: super::Transport,
    pub registrars: Vec<SocketAddr>,
    pub expires: u32,
    pub keepalive: Duration,
    pub probe_timeout: Duration,
    pub user_agent: String,
}

#[derive(Debug, Clone)]
struct Slot {
    addr: SocketAddr,
    call_id: String,
    from_tag: String,
    cseq: u32,
    digest: DigestState,
    auth_tries: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegState {
    Idle,
    Registering,
    Registered,
    ShuttingDown,
    Done,
}

#[derive(Debug)]
pub struct Registration {
    cfg: RegConfig,
    slots: Vec<Slot>,
    active: usize,
    pub state: RegState,
    refresh_at: Option<Instant>,
    keepalive_at: Option<Instant>,
    probe_at: Option<Instant>,
    retry_at: Option<Instant>,
    keepalive_in_flight: bool,
    probe_in_flight: bool,
    keepalive_failed: bool,
    /// Secondary we left when returning to the primary; un-registered once primary is ok.
    leave_behind: Option<usize>,
}

impl Registration {
    pub fn new(cfg: RegConfig) -> Self {
        let slots = cfg
            .registrars
            .iter()
            .map(|a| Slot {
                addr: *a,
                call_id: format!("{}@{}", msg::token(16), cfg.local.ip()),
                from_tag: msg::token(10),
                cseq: 0,
                digest: DigestState::new(&cfg.user, &cfg.password),
                auth_tries: 0,
            })
            .collect();
        Self {
            cfg,
            slots,
            active: 0,
            state: RegState::Idle,
            refresh_at: None,
            keepalive_at: None,
            probe_at: None,
            retry_at: None,
            keepalive_in_flight: false,
            probe_in_flight: false,
            keepalive_failed: false,
            leave_behind: None,
        }
    }

    /// Index of the registrar currently in use.
    pub fn active(&self) -> usize {
        self.active
    }

    pub fn active_addr(&self) -> Option<SocketAddr> {
        self.slots.get(self.active).map(|s| s.addr)
    }

    pub fn is_registered(&self) -> bool {
        self.state == RegState::Registered
    }

    /// Host part used in From/To/Request-URI for registrar `idx`.
    fn host(&self, idx: usize) -> String {
        let a = self.slots[idx].addr;
        match a {
            SocketAddr::V4(v) => v.ip().to_string(),
            SocketAddr::V6(v) => format!("[{}]", v.ip()),
        }
    }

    fn uri(&self, idx: usize) -> String {
        format!("sip:{}:{}", self.host(idx), self.slots[idx].addr.port())
    }

    fn contact(&self) -> String {
        format!(
            "<sip:{}@{}{}>",
            self.cfg.user,
            self.cfg.local,
            self.cfg.transport.uri_param()
        )
    }

    fn build(&mut self, idx: usize, method: Method, expires: Option<u32>) -> Option<Request> {
        let uri = self.uri(idx);
        let host = self.host(idx);
        let local = self.cfg.local;
        let via = self.cfg.transport.via_params();
        let tr = self.cfg.transport.via_name();
        let user = self.cfg.user.clone();
        let ua = self.cfg.user_agent.clone();
        let contact = self.contact();
        let slot = &mut self.slots[idx];
        slot.cseq += 1;
        let aor = format!("<sip:{user}@{host}>");
        let mut headers = vec![
            msg::hdr(
                "Via",
                format!(
                    "SIP/2.0/{tr} {local};branch={};rport{via}",
                    msg::new_branch()
                ),
            ),
            msg::hdr("Max-Forwards", "70"),
            msg::hdr("From", format!("{aor};tag={}", slot.from_tag)),
            msg::hdr("To", aor),
            msg::hdr("Call-ID", slot.call_id.clone()),
            msg::hdr("CSeq", format!("{} {}", slot.cseq, method)),
            msg::hdr("User-Agent", ua),
        ];
        if let Some(exp) = expires {
            headers.push(msg::hdr("Contact", contact));
            headers.push(msg::hdr("Expires", exp.to_string()));
            headers.push(msg::hdr("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO"));
            if slot.digest.has_challenge() {
                if let Some(auth) = slot.digest.authorize("REGISTER", &uri) {
                    headers.push(msg::hdr("Authorization", auth));
                }
            }
        }
        msg::request(method, &uri, headers, Vec::new())
    }

    fn register(&mut self, idx: usize, out: &mut RegOutput) {
        let expires = self.cfg.expires;
        if let Some(request) = self.build(idx, Method::Register, Some(expires)) {
            out.requests.push(RegRequest {
                idx,
                kind: RegKind::Register,
                request,
                dest: self.slots[idx].addr,
                timeout: Some(self.cfg.probe_timeout * 2),
            });
        }
    }

    fn unregister(&mut self, idx: usize, out: &mut RegOutput) {
        if let Some(request) = self.build(idx, Method::Register, Some(0)) {
            out.requests.push(RegRequest {
                idx,
                kind: RegKind::Unregister,
                request,
                dest: self.slots[idx].addr,
                timeout: Some(self.cfg.probe_timeout),
            });
        }
    }

    fn options(&mut self, idx: usize, kind: RegKind, out: &mut RegOutput) {
        if let Some(request) = self.build(idx, Method::Options, None) {
            out.requests.push(RegRequest {
                idx,
                kind,
                request,
                dest: self.slots[idx].addr,
                timeout: Some(self.cfg.probe_timeout),
            });
        }
    }

    /// Starts registering on the primary (nothing in direct mode).
    pub fn start(&mut self, _now: Instant) -> RegOutput {
        let mut out = RegOutput::default();
        if self.slots.is_empty() {
            return out;
        }
        self.active = 0;
        self.state = RegState::Registering;
        self.register(0, &mut out);
        out
    }

    /// Un-registers from the active registrar (`Expires: 0`).
    pub fn shutdown(&mut self, _now: Instant) -> RegOutput {
        let mut out = RegOutput::default();
        match self.state {
            RegState::Registered | RegState::Registering => {
                self.state = RegState::ShuttingDown;
                let idx = self.active;
                self.unregister(idx, &mut out);
            }
            _ => self.state = RegState::Done,
        }
        self.refresh_at = None;
        self.keepalive_at = None;
        self.probe_at = None;
        self.retry_at = None;
        out
    }

    /// Registration finished shutting down (or never started).
    pub fn is_done(&self) -> bool {
        matches!(self.state, RegState::Done | RegState::Idle)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.refresh_at,
            self.keepalive_at,
            self.probe_at,
            self.retry_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn fail_over(&mut self, from: usize, reason: String, now: Instant, out: &mut RegOutput) {
        out.events.push(SipEvent::RegistrationFailed {
            registrar: self.slots[from].addr,
            reason,
        });
        if self.state == RegState::ShuttingDown {
            self.state = RegState::Done;
            return;
        }
        let next = (from + 1) % self.slots.len();
        tracing::warn!(
            from = %self.slots[from].addr,
            to = %self.slots[next].addr,
            "registrar not answering; registering on the next one"
        );
        self.active = next;
        self.state = RegState::Registering;
        self.refresh_at = None;
        self.keepalive_at = None;
        self.keepalive_failed = true;
        self.probe_at = (next != 0).then(|| now + self.cfg.keepalive);
        self.slots[next].auth_tries = 0;
        self.register(next, out);
    }

    /// Timer tick: refreshes, keepalives, probes and retries that are due.
    pub fn poll(&mut self, now: Instant) -> RegOutput {
        let mut out = RegOutput::default();
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if due(self.retry_at) {
            self.retry_at = None;
            self.state = RegState::Registering;
            let idx = self.active;
            self.register(idx, &mut out);
        }
        if due(self.refresh_at) {
            self.refresh_at = None;
            let idx = self.active;
            self.register(idx, &mut out);
        }
        if due(self.keepalive_at) {
            self.keepalive_at = Some(now + self.cfg.keepalive);
            if !self.keepalive_in_flight {
                self.keepalive_in_flight = true;
                let idx = self.active;
                self.options(idx, RegKind::Keepalive, &mut out);
            }
        }
        if due(self.probe_at) {
            self.probe_at = Some(now + self.cfg.keepalive);
            if self.active != 0 && !self.probe_in_flight {
                self.probe_in_flight = true;
                self.options(0, RegKind::Probe, &mut out);
            }
        }
        out
    }

    /// A final (or provisional) response to one of our requests.
    pub fn on_response(
        &mut self,
        idx: usize,
        kind: RegKind,
        resp: &Response,
        now: Instant,
    ) -> RegOutput {
        let mut out = RegOutput::default();
        let code = msg::status(resp);
        if code < 200 || idx >= self.slots.len() {
            return out;
        }
        match kind {
            RegKind::Keepalive => {
                self.keepalive_in_flight = false;
                if idx == self.active && self.keepalive_failed && self.state == RegState::Registered
                {
                    // Answering again after silence: it may have lost our binding.
                    tracing::info!(registrar = %self.slots[idx].addr, "registrar answers again; re-registering");
                    self.keepalive_failed = false;
                    self.register(idx, &mut out);
                }
            }
            RegKind::Probe => {
                self.probe_in_flight = false;
                if self.active != 0
                    && matches!(self.state, RegState::Registered | RegState::Registering)
                {
                    tracing::info!(primary = %self.slots[0].addr, "primary registrar is back; returning to it");
                    self.leave_behind = Some(self.active);
                    self.active = 0;
                    self.probe_at = None;
                    self.state = RegState::Registering;
                    self.slots[0].auth_tries = 0;
                    self.register(0, &mut out);
                }
            }
            RegKind::Unregister => {
                if (code == 401 || code == 407) && self.answer_challenge(idx, resp) {
                    self.unregister(idx, &mut out);
                    return out;
                }
                if self.state == RegState::ShuttingDown && idx == self.active {
                    self.state = RegState::Done;
                }
                out.events.push(SipEvent::Unregistered {
                    registrar: self.slots[idx].addr,
                });
            }
            RegKind::Register => {
                if idx != self.active {
                    return out;
                }
                match code {
                    200..=299 => {
                        self.slots[idx].auth_tries = 0;
                        let granted =
                            granted_expires(resp, self.cfg.expires, &self.cfg.local).max(1);
                        self.state = RegState::Registered;
                        self.keepalive_failed = false;
                        // Refresh at 3/4 of the lifetime, at least once a minute: a registrar
                        // that restarts faster than a keepalive timeout loses our binding
                        // silently, and the refresh bounds how long that lasts.
                        let refresh = Duration::from_millis(u64::from(granted) * 750)
                            .clamp(Duration::from_secs(1), MAX_REFRESH);
                        self.refresh_at = Some(now + refresh);
                        self.keepalive_at = Some(now + self.cfg.keepalive);
                        self.retry_at = None;
                        if idx != 0 && self.probe_at.is_none() {
                            self.probe_at = Some(now + self.cfg.keepalive);
                        }
                        out.events.push(SipEvent::Registered {
                            registrar: self.slots[idx].addr,
                            expires: granted,
                        });
                        if let Some(old) = self.leave_behind.take() {
                            if old != idx {
                                self.unregister(old, &mut out);
                            }
                        }
                    }
                    401 | 407 => {
                        if self.answer_challenge(idx, resp) {
                            self.register(idx, &mut out);
                        } else {
                            self.failed(
                                idx,
                                "credentials rejected (check sip.user and sip.password)".into(),
                                now,
                                &mut out,
                            );
                        }
                    }
                    423 => {
                        if let Some(min) = msg::header_value(&resp.headers, "Min-Expires")
                            .and_then(|v| v.trim().parse::<u32>().ok())
                        {
                            self.cfg.expires = min;
                            self.register(idx, &mut out);
                        } else {
                            self.failed(idx, "423 without Min-Expires".into(), now, &mut out);
                        }
                    }
                    500..=599 if self.slots.len() > 1 => {
                        self.fail_over(idx, format!("registrar answered {code}"), now, &mut out);
                    }
                    _ => self.failed(idx, format!("registrar answered {code}"), now, &mut out),
                }
            }
        }
        out
    }

    fn failed(&mut self, idx: usize, reason: String, now: Instant, out: &mut RegOutput) {
        tracing::warn!(registrar = %self.slots[idx].addr, %reason, "registration failed; retrying in 30 s");
        self.state = RegState::Idle;
        self.retry_at = Some(now + Duration::from_secs(30));
        out.events.push(SipEvent::RegistrationFailed {
            registrar: self.slots[idx].addr,
            reason,
        });
    }

    /// Takes a 401/407 challenge; false when we already failed twice (wrong password).
    fn answer_challenge(&mut self, idx: usize, resp: &Response) -> bool {
        let header = if msg::status(resp) == 407 {
            "Proxy-Authenticate"
        } else {
            "WWW-Authenticate"
        };
        let Some(ch) = msg::header_value(&resp.headers, header).and_then(|v| parse_challenge(&v))
        else {
            return false;
        };
        let slot = &mut self.slots[idx];
        if ch.stale {
            slot.auth_tries = 0;
        }
        slot.auth_tries += 1;
        if slot.auth_tries > 2 {
            return false;
        }
        slot.digest.challenge(ch);
        true
    }

    /// A request got no answer within its timeout.
    pub fn on_timeout(&mut self, idx: usize, kind: RegKind, now: Instant) -> RegOutput {
        let mut out = RegOutput::default();
        if idx >= self.slots.len() {
            return out;
        }
        match kind {
            RegKind::Keepalive => {
                self.keepalive_in_flight = false;
                if idx == self.active && self.state != RegState::ShuttingDown {
                    self.keepalive_failed = true;
                    self.fail_over(idx, "no answer to OPTIONS keepalive".into(), now, &mut out);
                }
            }
            RegKind::Probe => {
                self.probe_in_flight = false;
            }
            RegKind::Register => {
                if idx == self.active {
                    self.fail_over(idx, "no answer to REGISTER".into(), now, &mut out);
                }
            }
            RegKind::Unregister => {
                if self.state == RegState::ShuttingDown && idx == self.active {
                    self.state = RegState::Done;
                }
                out.events.push(SipEvent::RegistrationFailed {
                    registrar: self.slots[idx].addr,
                    reason: "no answer to un-REGISTER".into(),
                });
            }
        }
        out
    }
}

/// The expiry the registrar granted our contact: its `expires` param, else `Expires`.
fn granted_expires(resp: &Response, asked: u32, local: &SocketAddr) -> u32 {
    let ours = local.to_string();
    for c in msg::header_list(&resp.headers, "Contact") {
        if msg::addr_uri(&c).contains(&ours) {
            if let Some(e) = msg::param(&c, "expires").and_then(|e| e.parse().ok()) {
                return e;
            }
        }
    }
    msg::header_value(&resp.headers, "Expires")
        .and_then(|e| e.trim().parse().ok())
        .unwrap_or(asked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(n: usize) -> RegConfig {
        RegConfig {
            user: "bot".into(),
            password: "passbot".into(),
            local: "127.0.0.1:5090".parse().expect("addr"),
            transport: crate::sip::Transport::Udp,
            registrars: (0..n)
                .map(|i| format!("127.0.0.1:{}", 5060 + i).parse().expect("addr"))
                .collect(),
            expires: 120,
            keepalive: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(4),
            user_agent: "test".into(),
        }
    }

    fn reply(req: &Request, code: u16, extra: &[(&str, &str)]) -> Response {
        let mut r = msg::response_to(req, code, Some("rt"));
        for (n, v) in extra {
            r.headers.push(msg::hdr(n, *v));
        }
        r
    }

    const CHALLENGE: &str = "Digest realm=\"127.0.0.1\", nonce=\"abc\", qop=\"auth\"";

    #[test]
    fn register_with_digest_then_refresh() {
        let t0 = Instant::now();
        let mut reg = Registration::new(cfg(1));
        let out = reg.start(t0);
        assert_eq!(out.requests.len(), 1);
        let r1 = &out.requests[0].request;
        assert_eq!(r1.method, Method::Register);
        assert!(msg::header_value(&r1.headers, "Authorization").is_none());
        let out = reg.on_response(
            0,
            RegKind::Register,
            &reply(r1, 401, &[("WWW-Authenticate", CHALLENGE)]),
            t0,
        );
        let r2 = out.requests[0].request.clone();
        let auth = msg::header_value(&r2.headers, "Authorization").expect("answers the challenge");
        assert!(auth.contains("nc=00000001") && auth.contains("uri=\"sip:127.0.0.1:5060\""));
        assert_eq!(msg::cseq(&r2.headers).map(|c| c.0), Some(2));
        assert_eq!(msg::call_id(&r2.headers), msg::call_id(&r1.headers));
        let out = reg.on_response(
            0,
            RegKind::Register,
            &reply(
                &r2,
                200,
                &[("Contact", "<sip:bot@127.0.0.1:5090>;expires=60")],
            ),
            t0,
        );
        assert_eq!(
            out.events,
            vec![SipEvent::Registered {
                registrar: "127.0.0.1:5060".parse().expect("addr"),
                expires: 60
            }]
        );
        assert!(reg.is_registered());
        // Refresh at 3/4 of the granted 60 s, keepalive before that.
        assert_eq!(reg.next_deadline(), Some(t0 + Duration::from_secs(10)));
        let out = reg.poll(t0 + Duration::from_secs(10));
        assert_eq!(out.requests[0].kind, RegKind::Keepalive);
        assert_eq!(out.requests[0].request.method, Method::Options);
        let out = reg.poll(t0 + Duration::from_secs(45));
        let refresh = out
            .requests
            .iter()
            .find(|r| r.kind == RegKind::Register)
            .expect("refresh");
        let auth =
            msg::header_value(&refresh.request.headers, "Authorization").expect("reuses nonce");
        assert!(auth.contains("nc=00000002"));
    }

    #[test]
    fn long_lifetimes_still_refresh_every_minute() {
        let t0 = Instant::now();
        let mut c = cfg(1);
        c.keepalive = Duration::from_secs(600);
        let mut reg = Registration::new(c);
        let r = reg.start(t0).requests[0].request.clone();
        reg.on_response(
            0,
            RegKind::Register,
            &reply(&r, 200, &[("Expires", "3600")]),
            t0,
        );
        assert_eq!(reg.next_deadline(), Some(t0 + MAX_REFRESH));
    }

    #[test]
    fn wrong_password_stops_after_two_tries() {
        let t0 = Instant::now();
        let mut reg = Registration::new(cfg(1));
        let mut req = reg.start(t0).requests[0].request.clone();
        for _ in 0..2 {
            let out = reg.on_response(
                0,
                RegKind::Register,
                &reply(&req, 401, &[("WWW-Authenticate", CHALLENGE)]),
                t0,
            );
            req = out.requests[0].request.clone();
        }
        let out = reg.on_response(
            0,
            RegKind::Register,
            &reply(&req, 401, &[("WWW-Authenticate", CHALLENGE)]),
            t0,
        );
        assert!(out.requests.is_empty());
        assert!(matches!(out.events[0], SipEvent::RegistrationFailed { .. }));
        assert_eq!(reg.next_deadline(), Some(t0 + Duration::from_secs(30)));
    }

    #[test]
    fn keepalive_timeout_fails_over_and_primary_probe_returns() {
        let t0 = Instant::now();
        let mut reg = Registration::new(cfg(2));
        let r = reg.start(t0).requests[0].request.clone();
        reg.on_response(
            0,
            RegKind::Register,
            &reply(&r, 200, &[("Expires", "300")]),
            t0,
        );
        let t1 = t0 + Duration::from_secs(10);
        let ka = reg.poll(t1);
        assert_eq!(ka.requests[0].kind, RegKind::Keepalive);
        let t2 = t1 + Duration::from_secs(4);
        let out = reg.on_timeout(0, RegKind::Keepalive, t2);
        assert_eq!(reg.active(), 1);
        let r2 = out.requests[0].request.clone();
        assert_eq!(
            out.requests[0].dest,
            "127.0.0.1:5061"
                .parse::<std::net::SocketAddr>()
                .expect("addr")
        );
        assert!(
            t2 - t0 < Duration::from_secs(30),
            "fail-over within 30 s of the last good answer"
        );
        let out = reg.on_response(
            1,
            RegKind::Register,
            &reply(&r2, 200, &[("Expires", "300")]),
            t2,
        );
        assert!(matches!(out.events[0], SipEvent::Registered { .. }));
        // The primary is probed; once it answers we go back and leave the secondary.
        let t3 = t2 + Duration::from_secs(10);
        let out = reg.poll(t3);
        let probe = out
            .requests
            .iter()
            .find(|r| r.kind == RegKind::Probe)
            .expect("probe");
        assert_eq!(probe.idx, 0);
        let out = reg.on_response(0, RegKind::Probe, &reply(&probe.request, 200, &[]), t3);
        assert_eq!(reg.active(), 0);
        let back = out.requests[0].request.clone();
        let out = reg.on_response(
            0,
            RegKind::Register,
            &reply(&back, 200, &[("Expires", "300")]),
            t3,
        );
        let unreg = out
            .requests
            .iter()
            .find(|r| r.kind == RegKind::Unregister)
            .expect("leaves secondary");
        assert_eq!(unreg.idx, 1);
        assert_eq!(
            msg::header_value(&unreg.request.headers, "Expires").as_deref(),
            Some("0")
        );
    }

    #[test]
    fn restart_detected_by_keepalive_reregisters() {
        let t0 = Instant::now();
        let mut reg = Registration::new(cfg(1));
        let r = reg.start(t0).requests[0].request.clone();
        reg.on_response(
            0,
            RegKind::Register,
            &reply(&r, 200, &[("Expires", "300")]),
            t0,
        );
        let out = reg.on_timeout(0, RegKind::Keepalive, t0 + Duration::from_secs(14));
        // Only one registrar: it retries the same one.
        let again = out.requests[0].request.clone();
        assert_eq!(out.requests[0].idx, 0);
        let out = reg.on_response(
            0,
            RegKind::Register,
            &reply(&again, 200, &[("Expires", "300")]),
            t0 + Duration::from_secs(15),
        );
        assert!(matches!(out.events[0], SipEvent::Registered { .. }));
    }

    #[test]
    fn shutdown_unregisters_with_expires_zero() {
        let t0 = Instant::now();
        let mut reg = Registration::new(cfg(1));
        let r = reg.start(t0).requests[0].request.clone();
        reg.on_response(
            0,
            RegKind::Register,
            &reply(&r, 200, &[("Expires", "300")]),
            t0,
        );
        let out = reg.shutdown(t0);
        let u = &out.requests[0];
        assert_eq!(u.kind, RegKind::Unregister);
        assert_eq!(
            msg::header_value(&u.request.headers, "Expires").as_deref(),
            Some("0")
        );
        assert!(!reg.is_done());
        let out = reg.on_response(0, RegKind::Unregister, &reply(&u.request, 200, &[]), t0);
        assert!(matches!(out.events[0], SipEvent::Unregistered { .. }));
        assert!(reg.is_done());
        assert_eq!(reg.next_deadline(), None);
    }

    #[test]
    fn direct_mode_sends_nothing() {
        let mut reg = Registration::new(cfg(0));
        assert!(reg.start(Instant::now()).requests.is_empty());
        assert!(reg.is_done());
    }
}
