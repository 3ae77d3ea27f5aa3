//! The user-agent core: transactions, dialogs and calls for many concurrent calls, sans-IO.
//!
//! Fed with datagrams/stream messages ([`UserAgent::on_message`]), commands
//! ([`UserAgent::command`]) and clock ticks ([`UserAgent::on_tick`]); returns [`Action`]s.
//! It owns the transaction tables, the registration machine and one [`Call`] per
//! Call-ID. Policy lives here too: which sources may send INVITEs (direct mode), the
//! call limit, a per-source request rate limit and a cap on in-flight transactions, so a
//! flood from one peer cannot starve the others. Optionally, new INVITEs must carry
//! digest credentials (`[sip.inbound_auth]`, RFC 3261 §22.4): without them they get a
//! 401 challenge, with wrong ones a 403. In-dialog requests, CANCEL, ACK and OPTIONS
//! are never challenged.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rsip::{Header, Method, Request, Response, SipMessage};

pub use super::digest::ServerCredentials;
use super::digest::{credentials_username, parse_challenge, DigestServer, DigestState, Verdict};
use super::msg::{self, hdr};
use super::registration::{RegConfig, RegKind, RegOutput, Registration};
use super::sdes;
use super::sdp::{self, Codec, Direction, LocalMedia, RemoteMedia};
use super::transaction::{
    key as tx_key, ClientTx, ServerState, ServerTx, Timer, TimerValues, TxAction,
};
use super::{Action, CallEvent, Command, EndReason, ReferStatus, SipEvent, Transport};
use crate::rtp::srtp::{CryptoAttr, SrtpKeys, Suite};

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY";

/// A network in CIDR form (`127.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Self> {
        let (a, p) = s.trim().split_once('/').unwrap_or((s.trim(), ""));
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if p.is_empty() { max } else { p.parse().ok()? };
        (prefix <= max).then_some(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(n) & mask == u32::from(i) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(n) & mask == u128::from(i) & mask
            }
            (IpAddr::V4(_), IpAddr::V6(i)) => i
                .to_ipv4_mapped()
                .is_some_and(|v4| self.contains(IpAddr::V4(v4))),
            _ => false,
        }
    }
}

/// Settings of the core (built from `tingshuo::config::Config` by the driver).
#[derive(Debug, Clone)]
pub struct UaConfig {
    /// The address we are bound to (Contact and Via use exactly this).
    pub local: SocketAddr,
    pub user: String,
    pub password: Option<String>,
    /// Resolved registrars, primary first; empty = direct mode.
    pub registrars: Vec<SocketAddr>,
    pub register_expires: u32,
    /// Who may send us INVITEs directly (registrars are always allowed).
    pub allowed_sources: Vec<Cidr>,
    pub max_calls: usize,
    /// Interval of OPTIONS keepalives to the registrar (and probes of the primary).
    pub keepalive: Duration,
    /// How long a keepalive may go unanswered before fail-over.
    pub probe_timeout: Duration,
    pub timers: TimerValues,
    /// Cap on server transactions in flight per source address.
    pub max_tx_per_source: usize,
    /// Requests per second accepted from one source address (burst: twice this).
    pub rate_per_source: u32,
    pub user_agent: String,
    /// Seconds in the Retry-After of INVITEs refused for load (486/503).
    pub retry_after: u32,
    /// When set, new INVITEs must authenticate with these (digest, 401/Authorization).
    pub inbound_auth: Option<ServerCredentials>,
    /// The TLS listen address (`sip.tls_listen`); Via and Contact of TLS messages use it.
    pub tls_local: Option<SocketAddr>,
    /// Transport to the registrars (`sips:` or `;transport=tls` entries: TLS).
    pub registrar_transport: Transport,
    /// `[media] srtp`: when calls use SRTP with SDES keys.
    pub srtp: crate::config::SrtpPolicy,
    /// `[media] codecs`: what offers and answers may carry, in preference order.
    pub codecs: Vec<Codec>,
}

impl UaConfig {
    /// The address we are reachable at on `transport` (Via sent-by and Contact).
    pub fn local_for(&self, transport: Transport) -> SocketAddr {
        match (transport, self.tls_local) {
            (Transport::Tls, Some(a)) => a,
            _ => self.local,
        }
    }

    /// Direct-mode defaults around a local address (tests and simple setups).
    pub fn direct(local: SocketAddr) -> Self {
        Self {
            local,
            user: "bot".into(),
            password: None,
            registrars: Vec::new(),
            register_expires: 300,
            allowed_sources: vec![Cidr::parse("127.0.0.0/8").unwrap_or(Cidr {
                addr: IpAddr::from([127, 0, 0, 0]),
                prefix: 8,
            })],
            max_calls: 8,
            keepalive: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(4),
            timers: TimerValues::default(),
            max_tx_per_source: 256,
            rate_per_source: 400,
            user_agent: format!("tingshuo/{}", env!("CARGO_PKG_VERSION")),
            retry_after: 30,
            inbound_auth: None,
            tls_local: None,
            registrar_transport: Transport::Udp,
            srtp: crate::config::SrtpPolicy::Optional,
            codecs: vec![Codec::G722, Codec::Pcmu, Codec::Pcma],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Uas,
    Uac,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// UAS: ringing, waiting for the Answer command.
    Ringing,
    /// UAC: INVITE sent, no final response yet.
    Calling,
    /// Dialog established (UAS: 200 sent; UAC: 200 received and ACKed).
    Confirmed,
    Ended,
}

#[derive(Debug, Clone)]
struct Call {
    call_id: String,
    role: Role,
    state: CallState,
    local_tag: String,
    remote_tag: Option<String>,
    /// Our name-addr (From for UAC, To for UAS), without tag.
    local_uri: String,
    remote_uri: String,
    remote_target: String,
    route_set: Vec<String>,
    local_cseq: u32,
    remote_cseq: u32,
    /// The initial INVITE (received or last sent).
    invite: Request,
    /// Server or client transaction key of the initial INVITE.
    invite_key: String,
    /// Server transaction waiting for an ACK to its 2xx.
    awaiting_ack: Option<String>,
    peer: SocketAddr,
    transport: Transport,
    local_media: Option<LocalMedia>,
    remote_media: Option<RemoteMedia>,
    sdp_version: u64,
    provisional_seen: bool,
    cancel_pending: bool,
    /// Why we cancelled (ring timeout or hang-up), reported when the 487 comes.
    cancel_reason: Option<EndReason>,
    auth_tries: u32,
    digest: DigestState,
    /// ACK for the 2xx (UAC), re-sent when the 2xx is retransmitted.
    ack: Option<(Vec<u8>, SocketAddr)>,
    ended_at: Option<Instant>,
    /// Extra headers of our INVITE (UAC), e.g. a transfer's summary.
    extra_headers: Vec<(String, String)>,
    /// A REFER of ours is in progress (its NOTIFYs are expected).
    refer: Option<ReferState>,
    /// SDES keys of an SRTP call (UAS: from the offer; UAC: once answered).
    srtp: Option<SrtpKeys>,
    /// UAC: the crypto line we offered.
    srtp_offer: Option<CryptoAttr>,
}

/// Our REFER in a dialog: the implicit subscription's state (RFC 3515 §2.4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReferState {
    /// A final sipfrag (or a refusal) was reported: later NOTIFYs are only answered.
    done: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    Reg(usize, RegKind),
    Invite(String),
    Bye(String),
    Cancel(String),
    Refer(String),
}

#[derive(Debug)]
struct ClientEntry {
    tx: ClientTx,
    owner: Owner,
}

#[derive(Debug)]
struct ServerEntry {
    tx: ServerTx,
    source: SocketAddr,
    call_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TimerTarget {
    Client(String, Timer),
    Server(String, Timer),
    Ring(String),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    /// Messages dropped since the last warning (one log line per second per source).
    dropped: u64,
    last_warn: Option<Instant>,
}

/// The sans-IO user agent.
pub struct UserAgent {
    cfg: UaConfig,
    reg: Registration,
    clients: HashMap<String, ClientEntry>,
    servers: HashMap<String, ServerEntry>,
    calls: HashMap<String, Call>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    timer_targets: HashMap<u64, TimerTarget>,
    next_timer: u64,
    buckets: HashMap<IpAddr, Bucket>,
    out: Vec<Action>,
    shutting_down: bool,
    /// Graceful shutdown: new INVITEs get 503, calls in progress continue.
    draining: bool,
    /// Verifier of inbound INVITE credentials (`cfg.inbound_auth`).
    auth: Option<DigestServer>,
}

/// Turns a caller-given dial target into a Request-URI.
fn target_uri(target: &str, registrar: Option<SocketAddr>) -> String {
    let t = target.trim();
    if t.starts_with("sip:") || t.starts_with("sips:") {
        return t.to_string();
    }
    match registrar {
        Some(r) => format!("sip:{t}@{r}"),
        None => format!("sip:{t}"),
    }
}

impl UserAgent {
    pub fn new(cfg: UaConfig) -> Self {
        let reg = Registration::new(RegConfig {
            user: cfg.user.clone(),
            password: cfg.password.clone().unwrap_or_default(),
            local: cfg.local_for(cfg.registrar_transport),
            transport: cfg.registrar_transport,
            registrars: cfg.registrars.clone(),
            expires: cfg.register_expires,
            keepalive: cfg.keepalive,
            probe_timeout: cfg.probe_timeout,
            user_agent: cfg.user_agent.clone(),
        });
        // The nonce clock starts here; `now` values fed later are never earlier.
        let auth = cfg
            .inbound_auth
            .clone()
            .map(|c| DigestServer::new(c, Instant::now()));
        Self {
            cfg,
            auth,
            reg,
            clients: HashMap::new(),
            servers: HashMap::new(),
            calls: HashMap::new(),
            timers: BinaryHeap::new(),
            timer_targets: HashMap::new(),
            next_timer: 0,
            buckets: HashMap::new(),
            out: Vec::new(),
            shutting_down: false,
            draining: false,
        }
    }

    pub fn config(&self) -> &UaConfig {
        &self.cfg
    }

    /// Starts registration (if registrars are configured).
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        let out = self.reg.start(now);
        self.apply_reg(out, now);
        self.finish()
    }

    /// Earliest instant at which [`on_tick`](Self::on_tick) has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        let t = self.timers.peek().map(|Reverse((t, _))| *t);
        match (t, self.reg.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Number of calls not yet ended.
    pub fn active_calls(&self) -> usize {
        self.calls
            .values()
            .filter(|c| c.state != CallState::Ended)
            .count()
    }

    /// Transactions currently held (for load tests and leak checks).
    pub fn transactions(&self) -> (usize, usize) {
        (self.clients.len(), self.servers.len())
    }

    pub fn is_registered(&self) -> bool {
        self.reg.is_registered()
    }

    /// Shutdown finished: registration removed and no call left.
    pub fn is_shutdown_complete(&self) -> bool {
        self.shutting_down && self.reg.is_done() && self.active_calls() == 0
    }

    fn finish(&mut self) -> Vec<Action> {
        if let Some(at) = self.next_deadline() {
            self.out.push(Action::SetTimer { at });
        }
        std::mem::take(&mut self.out)
    }

    fn event(&mut self, e: CallEvent) {
        self.out.push(Action::Event(SipEvent::Call(e)));
    }

    fn send(&mut self, bytes: Vec<u8>, dest: SocketAddr, transport: Transport) {
        self.out.push(Action::Send {
            bytes,
            dest,
            transport,
        });
    }

    fn schedule(&mut self, at: Instant, target: TimerTarget) {
        let id = self.next_timer;
        self.next_timer += 1;
        self.timers.push(Reverse((at, id)));
        self.timer_targets.insert(id, target);
    }

    // -----------------------------------------------------------------------
    // Input: messages

    /// One datagram or framed stream message from `source`.
    pub fn on_message(
        &mut self,
        bytes: &[u8],
        source: SocketAddr,
        transport: Transport,
        now: Instant,
    ) -> Vec<Action> {
        if !self.take_token(source.ip(), now) {
            return self.finish();
        }
        let raw = match msg::split_raw(bytes) {
            Ok(raw) => raw,
            Err(msg::ParseError::Empty) => return self.finish(),
            Err(e) => {
                // A request whose Via survived still learns why it failed (RFC 3261
                // §18.3: a body shorter than Content-Length is answered with 400).
                let code = if e == msg::ParseError::TooLarge {
                    513
                } else {
                    400
                };
                let phrase = format!("{}: {e}", msg::reason(code));
                match msg::salvage(bytes)
                    .and_then(|raw| msg::error_response_for(&raw, code, &phrase).map(|r| (raw, r)))
                {
                    Some((raw, resp)) => {
                        tracing::warn!(%source, error = %e, code, "unparseable SIP request; answering");
                        let dest = if transport == Transport::Udp {
                            via_dest_raw(&raw, source)
                        } else {
                            source
                        };
                        self.send(resp, dest, transport);
                    }
                    None => tracing::warn!(%source, error = %e, "dropping unparseable SIP message"),
                }
                return self.finish();
            }
        };
        if let Some((code, phrase)) = msg::request_line_problem(&raw) {
            if let Some(resp) = msg::error_response_for(&raw, code, &phrase) {
                tracing::warn!(%source, code, %phrase, "unsupported SIP request; answering");
                let dest = if transport == Transport::Udp {
                    via_dest_raw(&raw, source)
                } else {
                    source
                };
                self.send(resp, dest, transport);
            }
            return self.finish();
        }
        match msg::parse_raw(&raw) {
            Ok(SipMessage::Request(req)) => self.on_request(req, source, transport, now),
            Ok(SipMessage::Response(resp)) => self.on_response(resp, now),
            Err(e) => {
                if let Some(resp) = msg::bad_request_for(&raw, &e.to_string()) {
                    tracing::warn!(%source, error = %e, "malformed SIP request; answering 400");
                    let dest = if transport == Transport::Udp {
                        via_dest_raw(&raw, source)
                    } else {
                        source
                    };
                    self.send(resp, dest, transport);
                } else {
                    tracing::warn!(%source, error = %e, "malformed SIP message; dropped");
                }
            }
        }
        self.finish()
    }

    /// Token bucket per source IP. The configured registrars/proxies are exempt: every
    /// call of a PBX arrives from them, and on TCP a dropped ACK or BYE is never resent.
    fn take_token(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.cfg.registrars.iter().any(|r| r.ip() == ip) {
            return true;
        }
        let rate = f64::from(self.cfg.rate_per_source.max(1));
        let b = self.buckets.entry(ip).or_insert(Bucket {
            tokens: rate * 2.0,
            last: now,
            dropped: 0,
            last_warn: None,
        });
        let dt = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + dt * rate).min(rate * 2.0);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return true;
        }
        b.dropped += 1;
        if b.last_warn
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1))
        {
            tracing::warn!(source = %ip, dropped = b.dropped, "rate limit: dropping SIP messages from this source");
            b.last_warn = Some(now);
            b.dropped = 0;
        }
        false
    }

    fn source_allowed(&self, ip: IpAddr) -> bool {
        self.cfg.allowed_sources.iter().any(|c| c.contains(ip))
            || self.cfg.registrars.iter().any(|r| r.ip() == ip)
    }

    fn on_request(
        &mut self,
        mut req: Request,
        source: SocketAddr,
        transport: Transport,
        now: Instant,
    ) {
        msg::stamp_via(&mut req, source);
        let branch = msg::top_branch(&req.headers).unwrap_or_else(|| {
            // RFC 2543 peer without a branch: Call-ID + CSeq number identify it.
            format!(
                "{}-{}",
                msg::call_id(&req.headers).unwrap_or_default(),
                msg::cseq(&req.headers).map(|c| c.0).unwrap_or(0)
            )
        });
        let dest = if transport == Transport::Udp {
            msg::response_dest(&req.headers, source)
        } else {
            source
        };
        match req.method {
            Method::Ack => self.on_ack(&req, &branch, now),
            Method::Cancel => self.on_cancel(&req, &branch, source, dest, transport, now),
            _ => {
                let key = tx_key(&branch, &req.method.to_string());
                if let Some(entry) = self.servers.get_mut(&key) {
                    let actions = entry.tx.on_retransmission();
                    self.run_server(&key, actions, now);
                    return;
                }
                // Completed transactions only absorb retransmissions for a while (Timer J);
                // they are not work in flight and must not count against the cap.
                let in_flight = self
                    .servers
                    .values()
                    .filter(|s| {
                        s.source == source
                            && matches!(
                                s.tx.state,
                                ServerState::Trying
                                    | ServerState::Proceeding
                                    | ServerState::Accepted
                            )
                    })
                    .count();
                if in_flight >= self.cfg.max_tx_per_source {
                    tracing::warn!(%source, in_flight, "too many transactions in flight; 503");
                    let mut r = msg::response_to(&req, 503, Some(&msg::token(8)));
                    r.headers.push(hdr("Retry-After", "5"));
                    self.send(msg::to_bytes(&r.into()), dest, transport);
                    return;
                }
                let invite = req.method == Method::Invite;
                self.servers.insert(
                    key.clone(),
                    ServerEntry {
                        tx: ServerTx::new(invite, dest, transport, self.cfg.timers),
                        source,
                        call_id: None,
                    },
                );
                match req.method {
                    Method::Invite => {
                        self.reply(&key, &req, 100, None, Vec::new(), None, now);
                        if msg::to_tag(&req.headers).is_some() {
                            self.on_reinvite(&key, &req, now);
                        } else {
                            self.on_invite(&key, req, source, transport, now);
                        }
                    }
                    Method::Bye => self.on_bye(&key, &req, now),
                    // Out of dialog, OPTIONS is also how a proxy in front of several
                    // agents probes them (Kamailio's dispatcher): while draining, 503
                    // takes this agent out of rotation, so new calls go to another
                    // agent instead of each meeting our 503 first.
                    Method::Options
                        if (self.draining || self.shutting_down)
                            && msg::to_tag(&req.headers).is_none() =>
                    {
                        let extra = self.retry_after(503);
                        self.reply_phrase(
                            &key,
                            &req,
                            503,
                            "Service Unavailable: draining",
                            None,
                            extra,
                            None,
                            now,
                        );
                    }
                    Method::Options => {
                        let extra = vec![
                            hdr("Allow", ALLOW),
                            hdr("Accept", "application/sdp"),
                            hdr("Contact", self.contact(transport)),
                        ];
                        self.reply(&key, &req, 200, None, extra, None, now);
                    }
                    Method::Info => self.on_info(&key, &req, now),
                    Method::Notify => self.on_notify(&key, &req, now),
                    Method::Refer => self.on_refer(&key, &req, now),
                    _ => {
                        self.reply(&key, &req, 405, None, vec![hdr("Allow", ALLOW)], None, now);
                    }
                }
            }
        }
    }

    fn contact(&self, transport: Transport) -> String {
        format!(
            "<sip:{}@{}{}>",
            self.cfg.user,
            self.cfg.local_for(transport),
            transport.uri_param()
        )
    }

    /// Sends a response through server transaction `key`.
    #[allow(clippy::too_many_arguments)]
    fn reply(
        &mut self,
        key: &str,
        req: &Request,
        code: u16,
        to_tag: Option<&str>,
        extra: Vec<Header>,
        sdp: Option<String>,
        now: Instant,
    ) {
        self.reply_phrase(key, req, code, msg::reason(code), to_tag, extra, sdp, now);
    }

    /// [`Self::reply`] with a reason phrase that says more than the code's default.
    #[allow(clippy::too_many_arguments)]
    fn reply_phrase(
        &mut self,
        key: &str,
        req: &Request,
        code: u16,
        phrase: &str,
        to_tag: Option<&str>,
        extra: Vec<Header>,
        sdp: Option<String>,
        now: Instant,
    ) {
        let mut r = msg::response_to(req, code, to_tag);
        r.status_code = rsip::StatusCode::Other(code, phrase.to_string());
        if code > 100 {
            r.headers.push(hdr("Server", self.cfg.user_agent.clone()));
        }
        for h in extra {
            r.headers.push(h);
        }
        if let Some(body) = sdp {
            r.headers.push(hdr("Content-Type", "application/sdp"));
            r.body = body.into_bytes();
        }
        let bytes = msg::to_bytes(&r.into());
        let Some(entry) = self.servers.get_mut(key) else {
            return;
        };
        let actions = entry.tx.respond(code, bytes);
        self.run_server(key, actions, now);
    }

    fn run_server(&mut self, key: &str, actions: Vec<TxAction>, now: Instant) {
        let Some(entry) = self.servers.get(key) else {
            return;
        };
        let (dest, transport, call_id) = (entry.tx.dest, entry.tx.transport, entry.call_id.clone());
        for a in actions {
            match a {
                TxAction::Send(b) => self.send(b, dest, transport),
                TxAction::SetTimer(t, d) => {
                    self.schedule(now + d, TimerTarget::Server(key.to_string(), t))
                }
                TxAction::Timeout => {
                    if let Some(cid) = &call_id {
                        let waiting = self.calls.get(cid).is_some_and(|c| {
                            c.awaiting_ack.as_deref() == Some(key) && c.state != CallState::Ended
                        });
                        if waiting {
                            tracing::warn!(call_id = %cid, "no ACK for our 200; hanging up");
                            self.bye(cid, EndReason::Timeout, now);
                        }
                    }
                }
                TxAction::Terminated => {
                    self.servers.remove(key);
                }
                TxAction::Deliver(_) => {}
            }
        }
    }

    fn on_invite(
        &mut self,
        key: &str,
        req: Request,
        source: SocketAddr,
        transport: Transport,
        now: Instant,
    ) {
        let call_id = msg::call_id(&req.headers).unwrap_or_default();
        let to_tag = msg::token(10);
        let reject = |this: &mut Self, code: u16, why: &str| {
            tracing::info!(%call_id, %source, code, why, "rejecting INVITE");
            if code == 488 || code == 415 {
                // The caller's engineer sees what was wrong with the offer (RFC 3261
                // §21.4.26: 305 is the warning code for an incompatible media format).
                let phrase = format!("{}: {why}", msg::reason(code)).replace(['\r', '\n'], " ");
                let mut extra = vec![hdr("Accept", "application/sdp")];
                if code == 488 {
                    extra = vec![hdr(
                        "Warning",
                        format!("305 tingshuo \"{}\"", why.replace('"', "'")),
                    )];
                }
                this.reply_phrase(key, &req, code, &phrase, Some(&to_tag), extra, None, now);
            } else {
                let extra = this.retry_after(code);
                this.reply(key, &req, code, Some(&to_tag), extra, None, now);
            }
            if matches!(code, 486 | 503) {
                this.event(CallEvent::Refused {
                    call_id: call_id.clone(),
                    code,
                });
            }
        };
        if !self.source_allowed(source.ip()) {
            return reject(self, 403, "source not in sip.allowed_sources");
        }
        if let Some(server) = self.auth.as_mut() {
            // Log the user name and the reason only: never the password or the response.
            let creds = msg::header_values(&req.headers, "Authorization");
            let user = credentials_username(&creds);
            match server.verify("INVITE", &creds, now) {
                Verdict::Accepted => {
                    tracing::info!(%call_id, %source, user = ?user, "INVITE authenticated");
                }
                Verdict::Challenge { stale, why } => {
                    let value = server.challenge(now, stale);
                    tracing::info!(%call_id, %source, user = ?user, why, stale, "challenging INVITE (401)");
                    let extra = vec![hdr("WWW-Authenticate", value)];
                    self.reply_phrase(
                        key,
                        &req,
                        401,
                        "Unauthorized",
                        Some(&to_tag),
                        extra,
                        None,
                        now,
                    );
                    return;
                }
                Verdict::Forbidden(why) => {
                    tracing::warn!(%call_id, %source, user = ?user, why, "INVITE failed authentication");
                    return reject(self, 403, "authentication failed");
                }
                Verdict::Malformed(why) => {
                    tracing::warn!(%call_id, %source, user = ?user, why, "INVITE with malformed credentials");
                    return reject(self, 400, why);
                }
            }
        }
        if self.shutting_down || self.draining {
            return reject(self, 503, "shutting down (draining calls in progress)");
        }
        if self.calls.contains_key(&call_id) {
            return reject(self, 482, "Call-ID already in use (loop or merged request)");
        }
        if self.active_calls() >= self.cfg.max_calls {
            return reject(self, 486, "sip.max_calls reached");
        }
        if req.body.is_empty() {
            return reject(
                self,
                488,
                "INVITE without SDP offer (late offer unsupported)",
            );
        }
        let ctype = msg::header_value(&req.headers, "Content-Type").unwrap_or_default();
        let mime = ctype.split(';').next().unwrap_or("").trim();
        let multipart = mime.to_ascii_lowercase().starts_with("multipart/");
        if !mime.is_empty() && !multipart && !mime.eq_ignore_ascii_case("application/sdp") {
            return reject(
                self,
                415,
                &format!("body is {mime}, only application/sdp is accepted"),
            );
        }
        let remote = match sdp::parse(&req.body) {
            Ok(r) => r,
            Err(e) => return reject(self, 488, &e.to_string()),
        };
        let probe = self.with_our_codecs(LocalMedia::new(SocketAddr::new(sdp::UNSPECIFIED, 0)));
        if let Err(e) = sdp::negotiate(&remote, &probe) {
            return reject(self, 488, &e.to_string());
        }
        let srtp = match sdes::answer(self.cfg.srtp, transport, &sdes::parse(&req.body)) {
            Ok(k) => k,
            Err(why) => return reject(self, 488, &why),
        };
        let from = msg::header_value(&req.headers, "From").unwrap_or_default();
        let to = msg::header_value(&req.headers, "To").unwrap_or_default();
        let remote_target = msg::header_value(&req.headers, "Contact")
            .map(|c| msg::addr_uri(&c))
            .unwrap_or_else(|| msg::addr_uri(&from));
        let route_set = msg::header_list(&req.headers, "Record-Route");
        let call = Call {
            call_id: call_id.clone(),
            role: Role::Uas,
            state: CallState::Ringing,
            local_tag: to_tag.clone(),
            remote_tag: msg::from_tag(&req.headers),
            local_uri: strip_tag(&to),
            remote_uri: strip_tag(&from),
            remote_target,
            route_set,
            local_cseq: 0,
            remote_cseq: msg::cseq(&req.headers).map(|c| c.0).unwrap_or(0),
            invite: req.clone(),
            invite_key: key.to_string(),
            awaiting_ack: None,
            peer: source,
            transport,
            local_media: None,
            remote_media: Some(remote.clone()),
            sdp_version: 1,
            provisional_seen: false,
            cancel_pending: false,
            cancel_reason: None,
            auth_tries: 0,
            digest: DigestState::new(&self.cfg.user, ""),
            ack: None,
            ended_at: None,
            extra_headers: Vec::new(),
            refer: None,
            srtp: srtp.clone(),
            srtp_offer: None,
        };
        self.calls.insert(call_id.clone(), call);
        if let Some(e) = self.servers.get_mut(key) {
            e.call_id = Some(call_id.clone());
        }
        let contact = vec![hdr("Contact", self.contact(transport))];
        self.reply(key, &req, 180, Some(&to_tag), contact, None, now);
        tracing::info!(%call_id, %from, "incoming call");
        self.event(CallEvent::IncomingCall {
            call_id,
            from,
            to,
            remote,
            remote_sdp: String::from_utf8_lossy(&req.body).into_owned(),
            srtp,
        });
    }

    /// Finds the dialog an in-dialog request belongs to (tags must match ours).
    fn dialog_of(&self, req: &Request) -> Option<String> {
        let cid = msg::call_id(&req.headers)?;
        let call = self.calls.get(&cid)?;
        let to = msg::to_tag(&req.headers)?;
        let from = msg::from_tag(&req.headers);
        (call.state != CallState::Ended && to == call.local_tag && from == call.remote_tag)
            .then_some(cid)
    }

    fn dialog_of_any_state(&self, req: &Request) -> Option<String> {
        let cid = msg::call_id(&req.headers)?;
        let call = self.calls.get(&cid)?;
        let to = msg::to_tag(&req.headers)?;
        (to == call.local_tag && msg::from_tag(&req.headers) == call.remote_tag).then_some(cid)
    }

    fn on_reinvite(&mut self, key: &str, req: &Request, now: Instant) {
        let Some(cid) = self.dialog_of(req) else {
            self.reply(key, req, 481, None, Vec::new(), None, now);
            return;
        };
        if let Some(e) = self.servers.get_mut(key) {
            e.call_id = Some(cid.clone());
        }
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        let cseq = msg::cseq(&req.headers).map(|c| c.0).unwrap_or(0);
        if cseq <= call.remote_cseq {
            self.reply(key, req, 500, None, Vec::new(), None, now);
            return;
        }
        call.remote_cseq = cseq;
        if let Some(c) = msg::header_value(&req.headers, "Contact") {
            call.remote_target = msg::addr_uri(&c);
        }
        let Some(local) = call.local_media.clone() else {
            // Re-INVITE before we answered: glare with our pending answer.
            self.reply(key, req, 491, None, Vec::new(), None, now);
            return;
        };
        call.sdp_version += 1;
        let version = call.sdp_version;
        let transport = call.transport;
        let (sdp_body, update) = if req.body.is_empty() {
            (sdp::build_offer(&local, version, Direction::SendRecv), None)
        } else {
            let neg = match sdp::parse(&req.body).and_then(|r| sdp::negotiate(&r, &local)) {
                Ok(n) => n,
                Err(e) => {
                    tracing::info!(call_id = %cid, error = %e, "re-INVITE not acceptable");
                    self.reply(key, req, 488, None, Vec::new(), None, now);
                    return;
                }
            };
            call.remote_media = Some(neg.remote.clone());
            (sdp::build_answer(&neg, &local, version), Some(neg))
        };
        call.awaiting_ack = Some(key.to_string());
        let tag = call.local_tag.clone();
        // An SRTP call stays SRTP across re-INVITEs (hold/resume) with the same keys.
        let sdp_body = match call.srtp.as_ref() {
            Some(k) => sdes::secure_sdp(&sdp_body, &k.local),
            None => sdp_body,
        };
        let extra = vec![hdr("Contact", self.contact(transport)), hdr("Allow", ALLOW)];
        self.reply(key, req, 200, Some(&tag), extra, Some(sdp_body), now);
        if let Some(neg) = update {
            let hold = neg.remote.is_hold();
            self.event(CallEvent::MediaUpdate {
                call_id: cid,
                negotiated: neg,
                hold,
            });
        }
    }

    fn on_ack(&mut self, req: &Request, branch: &str, now: Instant) {
        // ACK to a non-2xx: same branch as the INVITE.
        let key = tx_key(branch, "INVITE");
        if let Some(e) = self.servers.get_mut(&key) {
            if e.tx.state == ServerState::Completed {
                let actions = e.tx.on_ack();
                self.run_server(&key, actions, now);
                return;
            }
        }
        // ACK to a 2xx: matched by dialog (also after we already sent BYE, so the
        // 2xx retransmissions stop).
        let Some(cid) = self.dialog_of_any_state(req) else {
            tracing::debug!("ACK for no known dialog; ignored");
            return;
        };
        let waiting = self.calls.get_mut(&cid).and_then(|c| c.awaiting_ack.take());
        if let Some(k) = waiting {
            if let Some(e) = self.servers.get_mut(&k) {
                let actions = e.tx.on_ack();
                self.run_server(&k, actions, now);
            }
        }
    }

    fn on_cancel(
        &mut self,
        req: &Request,
        branch: &str,
        source: SocketAddr,
        dest: SocketAddr,
        transport: Transport,
        now: Instant,
    ) {
        let ckey = tx_key(branch, "CANCEL");
        if let Some(e) = self.servers.get_mut(&ckey) {
            let a = e.tx.on_retransmission();
            self.run_server(&ckey, a, now);
            return;
        }
        self.servers.insert(
            ckey.clone(),
            ServerEntry {
                tx: ServerTx::new(false, dest, transport, self.cfg.timers),
                source,
                call_id: None,
            },
        );
        let ikey = tx_key(branch, "INVITE");
        let cid = self.servers.get(&ikey).and_then(|e| e.call_id.clone());
        let Some(cid) = cid else {
            self.reply(&ckey, req, 481, None, Vec::new(), None, now);
            return;
        };
        self.reply(&ckey, req, 200, None, Vec::new(), None, now);
        let Some(call) = self.calls.get(&cid) else {
            return;
        };
        if call.state != CallState::Ringing {
            return;
        }
        let invite = call.invite.clone();
        let tag = call.local_tag.clone();
        self.reply(&ikey, &invite, 487, Some(&tag), Vec::new(), None, now);
        self.end(&cid, EndReason::Cancelled, now);
    }

    fn on_bye(&mut self, key: &str, req: &Request, now: Instant) {
        let Some(cid) = self.dialog_of(req) else {
            self.reply(key, req, 481, None, Vec::new(), None, now);
            return;
        };
        self.reply(key, req, 200, None, Vec::new(), None, now);
        // A BYE also settles a 2xx still waiting for its ACK.
        if let Some(k) = self.calls.get_mut(&cid).and_then(|c| c.awaiting_ack.take()) {
            if let Some(e) = self.servers.get_mut(&k) {
                let a = e.tx.on_ack();
                self.run_server(&k, a, now);
            }
        }
        tracing::info!(call_id = %cid, "remote hung up");
        self.end(&cid, EndReason::RemoteHangup, now);
    }

    fn on_info(&mut self, key: &str, req: &Request, now: Instant) {
        let Some(cid) = self.dialog_of(req) else {
            self.reply(key, req, 481, None, Vec::new(), None, now);
            return;
        };
        self.reply(key, req, 200, None, Vec::new(), None, now);
        let ctype = msg::header_value(&req.headers, "Content-Type").unwrap_or_default();
        if let Some(digit) = dtmf_from_info(&ctype, &req.body) {
            self.event(CallEvent::DtmfInfo {
                call_id: cid,
                digit,
            });
        }
    }

    /// Sends REFER (RFC 3515) for a blind transfer of an established call.
    fn send_refer(&mut self, cid: &str, target: &str, now: Instant) {
        let local_contact = self.contact(Transport::Udp);
        let ua = self.cfg.user_agent.clone();
        let local = self.cfg.local;
        let refer_to = target_uri(target, self.reg.active_addr());
        let Some(call) = self.calls.get_mut(cid) else {
            tracing::warn!(call_id = %cid, "REFER for an unknown call; ignored");
            return;
        };
        let refused = if call.state != CallState::Confirmed {
            Some("the call is not established")
        } else if call.refer.is_some_and(|r| !r.done) {
            Some("a transfer is already in progress")
        } else {
            None
        };
        if let Some(why) = refused {
            tracing::warn!(call_id = %cid, why, "cannot send REFER");
            self.event(CallEvent::Transfer {
                call_id: cid.to_string(),
                status: ReferStatus::Refused(491),
            });
            return;
        }
        call.local_cseq += 1;
        let cseq = call.local_cseq;
        let (mut req, dest) = dialog_request(call, Method::Refer, cseq, local, &local_contact, &ua);
        let referred_by = call.local_uri.clone();
        req.headers.push(hdr("Refer-To", format!("<{refer_to}>")));
        req.headers.push(hdr("Referred-By", referred_by));
        call.refer = Some(ReferState { done: false });
        let transport = call.transport;
        tracing::info!(call_id = %cid, %refer_to, "sending REFER (blind transfer)");
        self.start_client(
            req,
            dest,
            transport,
            None,
            Owner::Refer(cid.to_string()),
            now,
        );
    }

    /// The final response to our REFER.
    fn refer_response(&mut self, cid: &str, code: u16) {
        let Some(call) = self.calls.get_mut(cid) else {
            return;
        };
        let Some(state) = call.refer.as_mut() else {
            return;
        };
        let status = if (200..300).contains(&code) {
            ReferStatus::Accepted
        } else if code >= 300 {
            if state.done {
                return;
            }
            state.done = true;
            ReferStatus::Refused(code)
        } else {
            return;
        };
        tracing::info!(call_id = %cid, code, "REFER answered");
        self.event(CallEvent::Transfer {
            call_id: cid.to_string(),
            status,
        });
    }

    /// NOTIFY in a dialog: the progress of our REFER (`Event: refer`, body
    /// `message/sipfrag`). Always answered 200 when the dialog exists, so the
    /// transferee's subscription is never left hanging.
    fn on_notify(&mut self, key: &str, req: &Request, now: Instant) {
        let Some(cid) = self.dialog_of(req) else {
            self.reply(key, req, 481, None, Vec::new(), None, now);
            return;
        };
        let event = msg::header_value(&req.headers, "Event")
            .or_else(|| msg::header_value(&req.headers, "o"))
            .unwrap_or_default();
        let is_refer = event
            .split(';')
            .next()
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("refer"));
        if !is_refer {
            self.reply(
                key,
                req,
                489,
                None,
                vec![hdr("Allow-Events", "refer")],
                None,
                now,
            );
            return;
        }
        self.reply(key, req, 200, None, Vec::new(), None, now);
        let terminated = msg::header_value(&req.headers, "Subscription-State")
            .is_some_and(|s| s.trim().to_ascii_lowercase().starts_with("terminated"));
        let code = sipfrag_status(&req.body);
        let Some(state) = self.calls.get_mut(&cid).and_then(|c| c.refer.as_mut()) else {
            tracing::debug!(call_id = %cid, "NOTIFY without a REFER of ours; answered");
            return;
        };
        if state.done {
            return;
        }
        let status = match code {
            Some(c) if c < 200 && !terminated => ReferStatus::Progress(c),
            Some(c) if (200..300).contains(&c) => ReferStatus::Succeeded(c),
            Some(c) if c >= 300 => ReferStatus::Failed(c),
            Some(c) => ReferStatus::Failed(c),
            None if terminated => ReferStatus::Failed(0),
            None => return,
        };
        if !matches!(status, ReferStatus::Progress(_)) {
            state.done = true;
        }
        tracing::info!(call_id = %cid, ?status, "transfer progress (NOTIFY)");
        self.event(CallEvent::Transfer {
            call_id: cid,
            status,
        });
    }

    /// A REFER from the peer: we do not move our calls on a peer's say-so (the call's
    /// record and script stay with us), so it is refused with 603 and a reason phrase
    /// that says so, never left unanswered (RFC 3515 §2.4.2).
    fn on_refer(&mut self, key: &str, req: &Request, now: Instant) {
        let Some(cid) = self.dialog_of(req) else {
            self.reply(key, req, 481, None, Vec::new(), None, now);
            return;
        };
        let refer_to = msg::header_value(&req.headers, "Refer-To")
            .or_else(|| msg::header_value(&req.headers, "r"))
            .unwrap_or_default();
        if refer_to.trim().is_empty() {
            self.reply_phrase(
                key,
                req,
                400,
                "Bad Request: REFER without Refer-To",
                None,
                Vec::new(),
                None,
                now,
            );
            return;
        }
        tracing::warn!(call_id = %cid, %refer_to, "peer asked to transfer our call; refusing (603)");
        self.reply_phrase(
            key,
            req,
            603,
            "Decline: tingshuo does not follow transfers requested by the peer",
            None,
            Vec::new(),
            None,
            now,
        );
        self.event(CallEvent::ReferRefused {
            call_id: cid,
            refer_to,
        });
    }

    fn end(&mut self, cid: &str, reason: EndReason, now: Instant) {
        if let Some(c) = self.calls.get_mut(cid) {
            if c.state == CallState::Ended {
                return;
            }
            c.state = CallState::Ended;
            c.ended_at = Some(now);
            tracing::info!(call_id = %cid, ?reason, "call ended");
            self.event(CallEvent::Ended {
                call_id: cid.to_string(),
                reason,
            });
        }
    }

    // -----------------------------------------------------------------------
    // Responses to our requests

    fn on_response(&mut self, resp: Response, now: Instant) {
        let branch = msg::top_branch(&resp.headers).unwrap_or_default();
        let Some((_, method)) = msg::cseq(&resp.headers) else {
            return;
        };
        let key = tx_key(&branch, &method);
        if let Some(entry) = self.clients.get_mut(&key) {
            let actions = entry.tx.on_response(&resp);
            self.run_client(&key, actions, now);
            return;
        }
        // A retransmitted 2xx to an INVITE whose transaction ended: re-send our ACK.
        if method == "INVITE" && (200..300).contains(&msg::status(&resp)) {
            if let Some(cid) = msg::call_id(&resp.headers) {
                if let Some((bytes, dest, tr)) = self
                    .calls
                    .get(&cid)
                    .and_then(|c| c.ack.clone().map(|(b, d)| (b, d, c.transport)))
                {
                    self.send(bytes, dest, tr);
                    return;
                }
            }
        }
        tracing::debug!(%key, "response matches no transaction; ignored");
    }

    fn start_client(
        &mut self,
        req: Request,
        dest: SocketAddr,
        transport: Transport,
        timeout: Option<Duration>,
        owner: Owner,
        now: Instant,
    ) -> String {
        let (tx, actions) = ClientTx::start(req, dest, transport, self.cfg.timers, timeout);
        let key = tx.key();
        self.clients.insert(key.clone(), ClientEntry { tx, owner });
        self.run_client(&key, actions, now);
        key
    }

    fn run_client(&mut self, key: &str, actions: Vec<TxAction>, now: Instant) {
        let Some(entry) = self.clients.get(key) else {
            return;
        };
        let (dest, transport, owner) = (entry.tx.dest, entry.tx.transport, entry.owner.clone());
        let mut deliver = Vec::new();
        let mut timeout = false;
        for a in actions {
            match a {
                TxAction::Send(b) => self.send(b, dest, transport),
                TxAction::SetTimer(t, d) => {
                    self.schedule(now + d, TimerTarget::Client(key.to_string(), t))
                }
                TxAction::Deliver(r) => deliver.push(*r),
                TxAction::Timeout => timeout = true,
                TxAction::Terminated => {
                    self.clients.remove(key);
                }
            }
        }
        for r in deliver {
            self.tu_response(&owner, r, now);
        }
        if timeout {
            self.tu_timeout(&owner, now);
        }
    }

    fn tu_response(&mut self, owner: &Owner, resp: Response, now: Instant) {
        match owner {
            Owner::Reg(idx, kind) => {
                let out = self.reg.on_response(*idx, *kind, &resp, now);
                self.apply_reg(out, now);
            }
            Owner::Invite(cid) => self.uac_response(cid, resp, now),
            Owner::Refer(cid) => self.refer_response(cid, msg::status(&resp)),
            Owner::Bye(_) | Owner::Cancel(_) => {}
        }
    }

    fn tu_timeout(&mut self, owner: &Owner, now: Instant) {
        match owner {
            Owner::Reg(idx, kind) => {
                let out = self.reg.on_timeout(*idx, *kind, now);
                self.apply_reg(out, now);
            }
            Owner::Invite(cid) => {
                let reason = self.calls.get(cid).and_then(|c| c.cancel_reason.clone());
                self.end(cid, reason.unwrap_or(EndReason::Timeout), now);
            }
            Owner::Refer(cid) => self.refer_response(cid, 408),
            Owner::Bye(_) | Owner::Cancel(_) => {}
        }
    }

    fn apply_reg(&mut self, out: RegOutput, now: Instant) {
        for e in out.events {
            self.out.push(Action::Event(e));
        }
        for r in out.requests {
            self.start_client(
                r.request,
                r.dest,
                self.cfg.registrar_transport,
                r.timeout,
                Owner::Reg(r.idx, r.kind),
                now,
            );
        }
    }

    fn uac_response(&mut self, cid: &str, resp: Response, now: Instant) {
        let code = msg::status(&resp);
        let Some(call) = self.calls.get_mut(cid) else {
            return;
        };
        if code < 200 {
            if code > 100 {
                call.provisional_seen = true;
            }
            let send_cancel = call.cancel_pending && call.provisional_seen;
            let early = if code == 183 && !resp.body.is_empty() {
                let neg = call.local_media.as_ref().and_then(|l| {
                    sdp::parse(&resp.body)
                        .and_then(|r| sdp::negotiate(&r, l))
                        .ok()
                });
                // We offered SRTP only: early media without matching keys is unusable.
                match &call.srtp_offer {
                    Some(o) => sdes::keys_from_answer(o, &sdes::parse(&resp.body))
                        .and_then(|keys| neg.map(|n| (n, Some(keys)))),
                    None => neg.map(|n| (n, None)),
                }
            } else {
                None
            };
            if send_cancel {
                self.send_cancel(cid, now);
            } else if code == 180 {
                self.event(CallEvent::Ringing {
                    call_id: cid.to_string(),
                });
            }
            if let Some((n, srtp)) = early {
                self.event(CallEvent::EarlyMedia {
                    call_id: cid.to_string(),
                    negotiated: n,
                    srtp,
                });
            }
            return;
        }
        if (200..300).contains(&code) {
            self.uac_answered(cid, &resp, now);
            return;
        }
        if (code == 401 || code == 407) && call.state == CallState::Calling && !call.cancel_pending
        {
            let header = if code == 407 {
                "Proxy-Authenticate"
            } else {
                "WWW-Authenticate"
            };
            let ch = msg::header_value(&resp.headers, header).and_then(|v| parse_challenge(&v));
            call.auth_tries += 1;
            if let (Some(ch), true) = (ch, call.auth_tries <= 2) {
                call.digest.challenge(ch);
                let authz = if code == 407 {
                    "Proxy-Authorization"
                } else {
                    "Authorization"
                };
                self.send_invite(cid, Some(authz), now);
                return;
            }
        }
        let reason = match call.cancel_reason.clone() {
            Some(r) if code == 487 => r,
            _ => EndReason::from_status(code),
        };
        tracing::info!(call_id = %cid, code, "outgoing call failed");
        self.end(cid, reason, now);
    }

    fn uac_answered(&mut self, cid: &str, resp: &Response, now: Instant) {
        let tr = self.call_transport(cid);
        let local_contact = self.contact(tr);
        let ua = self.cfg.user_agent.clone();
        let local = self.cfg.local_for(tr);
        let Some(call) = self.calls.get_mut(cid) else {
            return;
        };
        call.remote_tag = msg::to_tag(&resp.headers);
        if let Some(c) = msg::header_value(&resp.headers, "Contact") {
            call.remote_target = msg::addr_uri(&c);
        }
        let mut rr = msg::header_list(&resp.headers, "Record-Route");
        rr.reverse();
        call.route_set = rr;
        let neg = call.local_media.as_ref().and_then(|l| {
            sdp::parse(&resp.body)
                .and_then(|r| sdp::negotiate(&r, l))
                .ok()
        });
        let was_cancelled = call.cancel_pending || call.state == CallState::Ended;
        call.state = CallState::Confirmed;
        call.srtp = call
            .srtp_offer
            .as_ref()
            .and_then(|o| sdes::keys_from_answer(o, &sdes::parse(&resp.body)));
        let srtp = call.srtp.clone();
        // We offered SRTP only: an answer without matching keys cannot be used.
        let srtp_refused = call.srtp_offer.is_some() && srtp.is_none();
        // ACK for the 2xx: a new transaction, sent along the route set.
        let cseq = msg::cseq(&call.invite.headers).map(|c| c.0).unwrap_or(1);
        let (ack, dest) = dialog_request(call, Method::Ack, cseq, local, &local_contact, &ua);
        let ack_bytes = msg::to_bytes(&ack.into());
        call.ack = Some((ack_bytes.clone(), dest));
        let transport = call.transport;
        self.send(ack_bytes, dest, transport);
        let neg = if srtp_refused {
            tracing::warn!(call_id = %cid, "answer to our SRTP offer has no matching a=crypto; hanging up");
            None
        } else {
            neg
        };
        match (was_cancelled, neg) {
            (false, Some(n)) => {
                tracing::info!(call_id = %cid, srtp = srtp.is_some(), "outgoing call answered");
                if let Some(c) = self.calls.get_mut(cid) {
                    c.remote_media = Some(n.remote.clone());
                }
                self.event(CallEvent::Answered {
                    call_id: cid.to_string(),
                    negotiated: n,
                    srtp,
                });
            }
            (false, None) => {
                tracing::warn!(call_id = %cid, "200 OK without a usable SDP answer; hanging up");
                self.bye(cid, EndReason::NotAcceptable, now);
            }
            (true, _) => {
                let reason = self
                    .calls
                    .get(cid)
                    .and_then(|c| c.cancel_reason.clone())
                    .unwrap_or(EndReason::LocalHangup);
                self.bye(cid, reason, now);
            }
        }
    }

    // -----------------------------------------------------------------------
    // Commands

    /// The call's media description restricted to the configured codecs, in the
    /// configured order (`[media] codecs`).
    fn with_our_codecs(&self, mut media: LocalMedia) -> LocalMedia {
        media.codecs = self
            .cfg
            .codecs
            .iter()
            .copied()
            .filter(|c| media.codecs.contains(c))
            .collect();
        media
    }

    pub fn command(&mut self, cmd: Command, now: Instant) -> Vec<Action> {
        match cmd {
            Command::Answer { call_id, media } => self.answer(&call_id, media, now),
            Command::Reject { call_id, code } => self.reject(&call_id, code, now),
            Command::Hangup { call_id } => self.hangup(&call_id, EndReason::LocalHangup, now),
            Command::PlaceCall {
                call_id,
                target,
                media,
                ring_timeout,
            } => self.place_call(call_id, &target, media, ring_timeout, Vec::new(), now),
            Command::PlaceCallWithHeaders {
                call_id,
                target,
                media,
                ring_timeout,
                headers,
            } => self.place_call(call_id, &target, media, ring_timeout, headers, now),
            Command::Refer { call_id, target } => self.send_refer(&call_id, &target, now),
            Command::Shutdown => self.shutdown(now),
            Command::StopAccepting => {
                tracing::info!("not accepting new calls (draining)");
                self.draining = true;
            }
        }
        self.finish()
    }

    fn answer(&mut self, cid: &str, media: LocalMedia, now: Instant) {
        let media = self.with_our_codecs(media);
        let Some(call) = self.calls.get_mut(cid) else {
            tracing::warn!(call_id = %cid, "answer for an unknown call; ignored");
            return;
        };
        if call.role != Role::Uas || call.state != CallState::Ringing {
            tracing::warn!(call_id = %cid, "answer for a call that is not ringing; ignored");
            return;
        }
        let Some(remote) = call.remote_media.clone() else {
            return;
        };
        let key = call.invite_key.clone();
        let invite = call.invite.clone();
        let tag = call.local_tag.clone();
        let transport = call.transport;
        match sdp::negotiate(&remote, &media) {
            Ok(neg) => {
                let body = sdp::build_answer(&neg, &media, call.sdp_version);
                let body = match call.srtp.as_ref() {
                    Some(k) => sdes::secure_sdp(&body, &k.local),
                    None => body,
                };
                let srtp = call.srtp.clone();
                call.local_media = Some(media);
                call.state = CallState::Confirmed;
                call.awaiting_ack = Some(key.clone());
                let extra = vec![
                    hdr("Contact", self.contact(transport)),
                    hdr("Allow", ALLOW),
                    hdr("Supported", "replaces"),
                ];
                self.reply(&key, &invite, 200, Some(&tag), extra, Some(body), now);
                tracing::info!(call_id = %cid, codec = ?neg.codec, "answered");
                self.event(CallEvent::Answered {
                    call_id: cid.to_string(),
                    negotiated: neg,
                    srtp,
                });
            }
            Err(e) => {
                tracing::info!(call_id = %cid, error = %e, "answer media does not fit the offer; 488");
                self.reply(&key, &invite, 488, Some(&tag), Vec::new(), None, now);
                self.end(cid, EndReason::NotAcceptable, now);
            }
        }
    }

    /// Retry-After for refusals that mean "busy now, try later" (RFC 3261 §20.33).
    fn retry_after(&self, code: u16) -> Vec<Header> {
        if matches!(code, 486 | 503) && self.cfg.retry_after > 0 {
            vec![hdr("Retry-After", self.cfg.retry_after.to_string())]
        } else {
            Vec::new()
        }
    }

    fn reject(&mut self, cid: &str, code: u16, now: Instant) {
        let Some(call) = self.calls.get(cid) else {
            return;
        };
        if call.role != Role::Uas || call.state != CallState::Ringing {
            return;
        }
        let code = if (300..700).contains(&code) {
            code
        } else {
            603
        };
        let (key, invite, tag) = (
            call.invite_key.clone(),
            call.invite.clone(),
            call.local_tag.clone(),
        );
        let extra = self.retry_after(code);
        self.reply(&key, &invite, code, Some(&tag), extra, None, now);
        self.end(cid, EndReason::Rejected(code), now);
    }

    fn hangup(&mut self, cid: &str, reason: EndReason, now: Instant) {
        let Some(call) = self.calls.get_mut(cid) else {
            return;
        };
        match (call.role, call.state) {
            (Role::Uas, CallState::Ringing) => {
                let (key, invite, tag) = (
                    call.invite_key.clone(),
                    call.invite.clone(),
                    call.local_tag.clone(),
                );
                let code = if reason == EndReason::Shutdown {
                    503
                } else {
                    480
                };
                self.reply(&key, &invite, code, Some(&tag), Vec::new(), None, now);
                self.end(cid, reason, now);
            }
            (Role::Uac, CallState::Calling) => {
                call.cancel_pending = true;
                call.cancel_reason = Some(reason);
                if call.provisional_seen {
                    self.send_cancel(cid, now);
                }
            }
            (_, CallState::Confirmed) => self.bye(cid, reason, now),
            _ => {}
        }
    }

    fn bye(&mut self, cid: &str, reason: EndReason, now: Instant) {
        let tr = self.call_transport(cid);
        let local_contact = self.contact(tr);
        let ua = self.cfg.user_agent.clone();
        let local = self.cfg.local_for(tr);
        let Some(call) = self.calls.get_mut(cid) else {
            return;
        };
        call.local_cseq += 1;
        let cseq = call.local_cseq;
        let (req, dest) = dialog_request(call, Method::Bye, cseq, local, &local_contact, &ua);
        let transport = call.transport;
        self.start_client(req, dest, transport, None, Owner::Bye(cid.to_string()), now);
        self.end(cid, reason, now);
    }

    fn send_cancel(&mut self, cid: &str, now: Instant) {
        let Some(call) = self.calls.get_mut(cid) else {
            return;
        };
        call.cancel_pending = false;
        let inv = &call.invite;
        let mut headers = Vec::new();
        if let Some(v) = msg::top_via(&inv.headers) {
            headers.push(hdr("Via", v));
        }
        for r in msg::header_values(&inv.headers, "Route") {
            headers.push(hdr("Route", r));
        }
        headers.push(hdr("Max-Forwards", "70"));
        for n in ["From", "To", "Call-ID"] {
            if let Some(v) = msg::header_value(&inv.headers, n) {
                headers.push(hdr(n, v));
            }
        }
        let n = msg::cseq(&inv.headers).map(|c| c.0).unwrap_or(1);
        headers.push(hdr("CSeq", format!("{n} CANCEL")));
        let req = Request {
            method: Method::Cancel,
            uri: inv.uri.clone(),
            version: rsip::Version::V2,
            headers: headers.into(),
            body: Vec::new(),
        };
        let dest = call.peer;
        let transport = call.transport;
        self.start_client(
            req,
            dest,
            transport,
            None,
            Owner::Cancel(cid.to_string()),
            now,
        );
    }

    fn place_call(
        &mut self,
        cid: String,
        target: &str,
        media: LocalMedia,
        ring_timeout: Duration,
        extra_headers: Vec<(String, String)>,
        now: Instant,
    ) {
        let media = self.with_our_codecs(media);
        if self.shutting_down || self.calls.contains_key(&cid) {
            tracing::warn!(call_id = %cid, "place call refused (shutting down or duplicate Call-ID)");
            self.event(CallEvent::Ended {
                call_id: cid,
                reason: EndReason::Failed(503),
            });
            return;
        }
        let proxy = self.reg.active_addr();
        let uri = target_uri(target, proxy);
        // Through the registrar: its transport; direct: what the target URI asks for.
        let transport = match proxy {
            Some(_) if Transport::of_uri(&uri) == Transport::Udp => self.cfg.registrar_transport,
            _ => Transport::of_uri(&uri),
        };
        let dest = match proxy.or_else(|| msg::uri_socket_addr(&uri)) {
            Some(d) => d,
            None => {
                tracing::warn!(call_id = %cid, %uri, "cannot route call: no registrar and target host is not an IP");
                self.event(CallEvent::Ended {
                    call_id: cid,
                    reason: EndReason::Failed(400),
                });
                return;
            }
        };
        let domain = proxy
            .map(|p| p.ip().to_string())
            .unwrap_or_else(|| self.cfg.local.ip().to_string());
        let local_uri = format!("<sip:{}@{}>", self.cfg.user, domain);
        let placeholder = match msg::request(Method::Invite, &uri, Vec::new(), Vec::new()) {
            Some(r) => r,
            None => {
                tracing::warn!(call_id = %cid, %uri, "dial target is not a valid SIP URI");
                self.event(CallEvent::Ended {
                    call_id: cid,
                    reason: EndReason::Failed(400),
                });
                return;
            }
        };
        let call = Call {
            call_id: cid.clone(),
            role: Role::Uac,
            state: CallState::Calling,
            local_tag: msg::token(10),
            remote_tag: None,
            local_uri,
            remote_uri: format!("<{uri}>"),
            remote_target: uri,
            route_set: Vec::new(),
            local_cseq: 0,
            remote_cseq: 0,
            invite: placeholder,
            invite_key: String::new(),
            awaiting_ack: None,
            peer: dest,
            transport,
            local_media: Some(media),
            remote_media: None,
            sdp_version: 1,
            provisional_seen: false,
            cancel_pending: false,
            cancel_reason: None,
            auth_tries: 0,
            digest: DigestState::new(&self.cfg.user, self.cfg.password.as_deref().unwrap_or("")),
            ack: None,
            ended_at: None,
            extra_headers,
            refer: None,
            srtp: None,
            srtp_offer: sdes::offers(self.cfg.srtp, transport)
                .then(|| CryptoAttr::generate(1, Suite::AesCm128HmacSha1_80)),
        };
        self.calls.insert(cid.clone(), call);
        self.send_invite(&cid, None, now);
        self.schedule(now + ring_timeout, TimerTarget::Ring(cid));
    }

    fn call_transport(&self, cid: &str) -> Transport {
        self.calls.get(cid).map_or(Transport::Udp, |c| c.transport)
    }

    /// Sends (or re-sends, after a challenge) the INVITE of an outgoing call.
    fn send_invite(&mut self, cid: &str, auth_header: Option<&str>, now: Instant) {
        let tr = self.call_transport(cid);
        let contact = self.contact(tr);
        let local = self.cfg.local_for(tr);
        let ua = self.cfg.user_agent.clone();
        let Some(call) = self.calls.get_mut(cid) else {
            return;
        };
        let Some(media) = call.local_media.clone() else {
            return;
        };
        call.local_cseq += 1;
        let uri = call.remote_target.clone();
        let mut headers = vec![
            hdr(
                "Via",
                format!(
                    "SIP/2.0/{} {local};branch={};rport{}",
                    tr.via_name(),
                    msg::new_branch(),
                    tr.via_params()
                ),
            ),
            hdr("Max-Forwards", "70"),
            hdr("From", format!("{};tag={}", call.local_uri, call.local_tag)),
            hdr("To", call.remote_uri.clone()),
            hdr("Call-ID", call.call_id.clone()),
            hdr("CSeq", format!("{} INVITE", call.local_cseq)),
            hdr("Contact", contact),
            hdr("Allow", ALLOW),
            hdr("User-Agent", ua),
            hdr("Content-Type", "application/sdp"),
        ];
        for (name, value) in &call.extra_headers {
            headers.push(hdr(name, value.clone()));
        }
        if let Some(h) = auth_header {
            if let Some(v) = call.digest.authorize("INVITE", &uri) {
                headers.push(hdr(h, v));
            }
        }
        let body = sdp::build_offer(&media, call.sdp_version, Direction::SendRecv);
        let body = match call.srtp_offer.as_ref() {
            Some(c) => sdes::secure_sdp(&body, c),
            None => body,
        }
        .into_bytes();
        let Some(req) = msg::request(Method::Invite, &uri, headers, body) else {
            return;
        };
        call.invite = req.clone();
        let dest = call.peer;
        let transport = call.transport;
        let key = self.start_client(
            req,
            dest,
            transport,
            None,
            Owner::Invite(cid.to_string()),
            now,
        );
        if let Some(c) = self.calls.get_mut(cid) {
            c.invite_key = key;
        }
    }

    fn shutdown(&mut self, now: Instant) {
        self.shutting_down = true;
        let ids: Vec<String> = self
            .calls
            .iter()
            .filter(|(_, c)| c.state != CallState::Ended)
            .map(|(k, _)| k.clone())
            .collect();
        for cid in ids {
            self.hangup(&cid, EndReason::Shutdown, now);
            // Outgoing calls still ringing end now; the CANCEL goes out regardless.
            if self
                .calls
                .get(&cid)
                .is_some_and(|c| c.state == CallState::Calling)
            {
                if self.calls.get(&cid).is_some_and(|c| c.cancel_pending) {
                    // No provisional yet: send the CANCEL anyway, we are leaving.
                    self.send_cancel(&cid, now);
                }
                self.end(&cid, EndReason::Shutdown, now);
            }
        }
        let out = self.reg.shutdown(now);
        self.apply_reg(out, now);
    }

    // -----------------------------------------------------------------------
    // Timers

    pub fn on_tick(&mut self, now: Instant) -> Vec<Action> {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(target) = self.timer_targets.remove(&id) else {
                continue;
            };
            match target {
                TimerTarget::Client(key, t) => {
                    if let Some(e) = self.clients.get_mut(&key) {
                        let a = e.tx.on_timer(t);
                        self.run_client(&key, a, now);
                    }
                }
                TimerTarget::Server(key, t) => {
                    if let Some(e) = self.servers.get_mut(&key) {
                        let a = e.tx.on_timer(t);
                        self.run_server(&key, a, now);
                    }
                }
                TimerTarget::Ring(cid) => {
                    if self
                        .calls
                        .get(&cid)
                        .is_some_and(|c| c.state == CallState::Calling)
                    {
                        tracing::info!(call_id = %cid, "ringing timeout; cancelling");
                        self.hangup(&cid, EndReason::NoAnswer, now);
                    }
                }
            }
        }
        let out = self.reg.poll(now);
        self.apply_reg(out, now);
        // Forget ended calls once late retransmissions can no longer arrive (64·T1).
        let linger = self.cfg.timers.t1 * 64;
        self.calls.retain(|_, c| {
            c.ended_at
                .is_none_or(|t| now.saturating_duration_since(t) < linger)
        });
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.last) < Duration::from_secs(60));
        if let Some(a) = self.auth.as_mut() {
            a.prune(now);
        }
        self.finish()
    }
}

/// Builds an in-dialog request (RFC 3261 §12.2.1.1) and where to send it.
fn dialog_request(
    call: &Call,
    method: Method,
    cseq: u32,
    local: SocketAddr,
    contact: &str,
    ua: &str,
) -> (Request, SocketAddr) {
    let tr = call.transport.via_name();
    let mut headers = vec![
        hdr(
            "Via",
            format!(
                "SIP/2.0/{tr} {local};branch={};rport{}",
                msg::new_branch(),
                call.transport.via_params()
            ),
        ),
        hdr("Max-Forwards", "70"),
    ];
    let remote_tag = call
        .remote_tag
        .as_ref()
        .map(|t| format!(";tag={t}"))
        .unwrap_or_default();
    let local_ = format!("{};tag={}", call.local_uri, call.local_tag);
    let remote = format!("{}{remote_tag}", call.remote_uri);
    headers.push(hdr("From", local_));
    headers.push(hdr("To", remote));
    headers.push(hdr("Call-ID", call.call_id.clone()));
    headers.push(hdr("CSeq", format!("{cseq} {method}")));
    for r in &call.route_set {
        headers.push(hdr("Route", r.clone()));
    }
    if method != Method::Ack {
        headers.push(hdr("Contact", contact.to_string()));
        headers.push(hdr("User-Agent", ua.to_string()));
    }
    let dest = call
        .route_set
        .first()
        .and_then(|r| msg::uri_socket_addr(&msg::addr_uri(r)))
        .or_else(|| msg::uri_socket_addr(&call.remote_target))
        .unwrap_or(call.peer);
    let req = msg::request(method, &call.remote_target, headers.clone(), Vec::new())
        .or_else(|| {
            msg::request(
                method,
                &call.remote_uri.replace(['<', '>'], ""),
                headers,
                Vec::new(),
            )
        })
        .unwrap_or_else(|| call.invite.clone());
    (req, dest)
}

fn strip_tag(v: &str) -> String {
    match v.to_ascii_lowercase().find(";tag=") {
        Some(i) if v[..i].contains('>') || !v.contains('<') => v[..i].to_string(),
        _ => v.to_string(),
    }
}

/// Where to answer a request rsip rejected (same rules as for parsed ones).
fn via_dest_raw(raw: &msg::RawMessage, source: SocketAddr) -> SocketAddr {
    let Some(via) = raw.header("Via") else {
        return source;
    };
    let top = msg::split_list(via).into_iter().next().unwrap_or_default();
    if msg::has_param(&top, "rport") {
        return source;
    }
    let sent_by = top
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("");
    msg::uri_host_port(&format!("sip:{sent_by}"))
        .and_then(|(h, p)| h.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, p)))
        .unwrap_or(source)
}

/// The status code of a `message/sipfrag` body (`SIP/2.0 180 Ringing`).
fn sipfrag_status(body: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    let mut parts = line.split_whitespace();
    let version = parts.next()?;
    if !version.to_ascii_uppercase().starts_with("SIP/") {
        return None;
    }
    let code: u16 = parts.next()?.parse().ok()?;
    (100..700).contains(&code).then_some(code)
}

/// DTMF digit from an INFO body (`application/dtmf-relay` "Signal=5" or `application/dtmf`).
fn dtmf_from_info(ctype: &str, body: &[u8]) -> Option<char> {
    let text = std::str::from_utf8(body).ok()?;
    let ctype = ctype.to_ascii_lowercase();
    let raw = if ctype.contains("dtmf-relay") {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("Signal")
                .then(|| v.trim().to_string())
        })?
    } else if ctype.contains("application/dtmf") {
        text.trim().to_string()
    } else {
        return None;
    };
    let c = raw.chars().next()?.to_ascii_uppercase();
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod transfer_tests;
