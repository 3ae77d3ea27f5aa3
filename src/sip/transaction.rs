//! RFC 3261 §17 transactions as sans-IO state machines.
//!
//! Each transaction is fed events (a response, a retransmitted request, a timer firing)
//! and returns [`TxAction`]s; the owner schedules timers and sends bytes. Timers are
//! never cancelled: a timer that fires in a state where it no longer applies is ignored,
//! which keeps the owner's bookkeeping trivial. The INVITE server transaction follows
//! RFC 6026: after a 2xx it enters `Accepted` and retransmits the 2xx until the ACK.

use std::net::SocketAddr;
use std::time::Duration;

use rsip::{Request, Response};

use super::msg;
use super::Transport;

/// Protocol timer values (RFC 3261 Table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerValues {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for TimerValues {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// The RFC 3261 timers (plus L from RFC 6026).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    A,
    B,
    D,
    E,
    F,
    G,
    H,
    I,
    J,
    K,
    L,
}

/// What a transaction asks its owner to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxAction {
    /// Send these bytes to the transaction's peer.
    Send(Vec<u8>),
    /// Call `on_timer(timer)` after this delay.
    SetTimer(Timer, Duration),
    /// Client: pass this response up to the transaction user.
    Deliver(Box<Response>),
    /// Client: no final response in time (B/F). Server: no ACK in time (H/L).
    Timeout,
    /// The transaction is over; the owner may forget it.
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

/// A client transaction (INVITE or non-INVITE).
#[derive(Debug, Clone)]
pub struct ClientTx {
    pub invite: bool,
    pub state: ClientState,
    pub request: Request,
    bytes: Vec<u8>,
    pub dest: SocketAddr,
    pub transport: Transport,
    timers: TimerValues,
    interval: Duration,
    ack: Option<Vec<u8>>,
}

impl ClientTx {
    /// Starts a client transaction; the returned actions send the request.
    /// `timeout` overrides B/F (64·T1) for probes that must fail fast.
    pub fn start(
        request: Request,
        dest: SocketAddr,
        transport: Transport,
        timers: TimerValues,
        timeout: Option<Duration>,
    ) -> (Self, Vec<TxAction>) {
        let invite = request.method == rsip::Method::Invite;
        let bytes = msg::to_bytes(&request.clone().into());
        let mut actions = vec![TxAction::Send(bytes.clone())];
        let timeout = timeout.unwrap_or(timers.t1 * 64);
        if transport == Transport::Udp {
            actions.push(TxAction::SetTimer(
                if invite { Timer::A } else { Timer::E },
                timers.t1,
            ));
        }
        actions.push(TxAction::SetTimer(
            if invite { Timer::B } else { Timer::F },
            timeout,
        ));
        let tx = Self {
            invite,
            state: if invite {
                ClientState::Calling
            } else {
                ClientState::Trying
            },
            request,
            bytes,
            dest,
            transport,
            timers,
            interval: timers.t1,
            ack: None,
        };
        (tx, actions)
    }

    /// Key under which responses find this transaction: branch + CSeq method.
    pub fn key(&self) -> String {
        key(
            &msg::top_branch(&self.request.headers).unwrap_or_default(),
            &self.request.method.to_string(),
        )
    }

    /// The ACK for a non-2xx final response (§17.1.1.3): same branch as the INVITE.
    fn build_ack(&self, resp: &Response) -> Vec<u8> {
        let r = &self.request;
        let mut headers = Vec::new();
        if let Some(v) = msg::top_via(&r.headers) {
            headers.push(msg::hdr("Via", v));
        }
        for v in msg::header_values(&r.headers, "Route") {
            headers.push(msg::hdr("Route", v));
        }
        headers.push(msg::hdr("Max-Forwards", "70"));
        for name in ["From", "Call-ID"] {
            if let Some(v) = msg::header_value(&r.headers, name) {
                headers.push(msg::hdr(name, v));
            }
        }
        if let Some(v) = msg::header_value(&resp.headers, "To") {
            headers.push(msg::hdr("To", v));
        }
        let n = msg::cseq(&r.headers).map(|c| c.0).unwrap_or(1);
        headers.push(msg::hdr("CSeq", format!("{n} ACK")));
        let ack = Request {
            method: rsip::Method::Ack,
            uri: r.uri.clone(),
            version: rsip::Version::V2,
            headers: headers.into(),
            body: Vec::new(),
        };
        msg::to_bytes(&ack.into())
    }

    pub fn on_response(&mut self, resp: &Response) -> Vec<TxAction> {
        let code = msg::status(resp);
        let deliver = TxAction::Deliver(Box::new(resp.clone()));
        let reliable = self.transport != Transport::Udp;
        match (self.invite, self.state) {
            (true, ClientState::Calling | ClientState::Proceeding) => {
                if code < 200 {
                    self.state = ClientState::Proceeding;
                    vec![deliver]
                } else if code < 300 {
                    // 2xx: the TU sends the ACK and absorbs retransmissions.
                    self.state = ClientState::Terminated;
                    vec![deliver, TxAction::Terminated]
                } else {
                    self.state = ClientState::Completed;
                    let ack = self.build_ack(resp);
                    self.ack = Some(ack.clone());
                    let d = if reliable {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(32)
                    };
                    vec![
                        deliver,
                        TxAction::Send(ack),
                        TxAction::SetTimer(Timer::D, d),
                    ]
                }
            }
            (true, ClientState::Completed) if code >= 300 => {
                // Retransmitted final response: resend the ACK, do not deliver again.
                self.ack.clone().map(TxAction::Send).into_iter().collect()
            }
            (false, ClientState::Trying | ClientState::Proceeding) => {
                if code < 200 {
                    self.state = ClientState::Proceeding;
                    vec![deliver]
                } else {
                    self.state = ClientState::Completed;
                    let k = if reliable {
                        Duration::ZERO
                    } else {
                        self.timers.t4
                    };
                    vec![deliver, TxAction::SetTimer(Timer::K, k)]
                }
            }
            _ => Vec::new(),
        }
    }

    pub fn on_timer(&mut self, timer: Timer) -> Vec<TxAction> {
        match (timer, self.state) {
            (Timer::A, ClientState::Calling) => {
                self.interval *= 2;
                vec![
                    TxAction::Send(self.bytes.clone()),
                    TxAction::SetTimer(Timer::A, self.interval),
                ]
            }
            (Timer::B, ClientState::Calling)
            | (Timer::F, ClientState::Trying | ClientState::Proceeding) => {
                self.state = ClientState::Terminated;
                vec![TxAction::Timeout, TxAction::Terminated]
            }
            (Timer::B, ClientState::Proceeding) => {
                // RFC 3261 leaves a proceeding INVITE to the TU (ringing timeout); keep it.
                Vec::new()
            }
            (Timer::E, ClientState::Trying | ClientState::Proceeding) => {
                self.interval = if self.state == ClientState::Proceeding {
                    self.timers.t2
                } else {
                    (self.interval * 2).min(self.timers.t2)
                };
                vec![
                    TxAction::Send(self.bytes.clone()),
                    TxAction::SetTimer(Timer::E, self.interval),
                ]
            }
            (Timer::D | Timer::K, ClientState::Completed) => {
                self.state = ClientState::Terminated;
                vec![TxAction::Terminated]
            }
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

/// A server transaction (INVITE or non-INVITE).
#[derive(Debug, Clone)]
pub struct ServerTx {
    pub invite: bool,
    pub state: ServerState,
    pub dest: SocketAddr,
    pub transport: Transport,
    last_response: Option<Vec<u8>>,
    timers: TimerValues,
    interval: Duration,
}

impl ServerTx {
    pub fn new(invite: bool, dest: SocketAddr, transport: Transport, timers: TimerValues) -> Self {
        Self {
            invite,
            state: if invite {
                ServerState::Proceeding
            } else {
                ServerState::Trying
            },
            dest,
            transport,
            last_response: None,
            timers,
            interval: timers.t1,
        }
    }

    fn reliable(&self) -> bool {
        self.transport != Transport::Udp
    }

    /// The TU sends a response with status `code`.
    pub fn respond(&mut self, code: u16, bytes: Vec<u8>) -> Vec<TxAction> {
        let mut out = Vec::new();
        match self.state {
            ServerState::Trying | ServerState::Proceeding => {}
            _ => return out,
        }
        self.last_response = Some(bytes.clone());
        out.push(TxAction::Send(bytes));
        let reliable = self.reliable();
        if code < 200 {
            self.state = ServerState::Proceeding;
        } else if self.invite {
            self.interval = self.timers.t1;
            if code < 300 {
                self.state = ServerState::Accepted;
                if !reliable {
                    out.push(TxAction::SetTimer(Timer::G, self.interval));
                }
                out.push(TxAction::SetTimer(Timer::L, self.timers.t1 * 64));
            } else {
                self.state = ServerState::Completed;
                if !reliable {
                    out.push(TxAction::SetTimer(Timer::G, self.interval));
                }
                out.push(TxAction::SetTimer(Timer::H, self.timers.t1 * 64));
            }
        } else {
            self.state = ServerState::Completed;
            let j = if reliable {
                Duration::ZERO
            } else {
                self.timers.t1 * 64
            };
            out.push(TxAction::SetTimer(Timer::J, j));
        }
        out
    }

    /// The request arrived again: repeat the last response, if any.
    pub fn on_retransmission(&mut self) -> Vec<TxAction> {
        match self.state {
            ServerState::Proceeding | ServerState::Completed | ServerState::Accepted => self
                .last_response
                .clone()
                .map(TxAction::Send)
                .into_iter()
                .collect(),
            _ => Vec::new(),
        }
    }

    /// An ACK matched this transaction (non-2xx: same branch; 2xx: matched by dialog).
    pub fn on_ack(&mut self) -> Vec<TxAction> {
        match self.state {
            ServerState::Completed => {
                self.state = ServerState::Confirmed;
                let i = if self.reliable() {
                    Duration::ZERO
                } else {
                    self.timers.t4
                };
                vec![TxAction::SetTimer(Timer::I, i)]
            }
            ServerState::Accepted => {
                self.state = ServerState::Terminated;
                vec![TxAction::Terminated]
            }
            _ => Vec::new(),
        }
    }

    pub fn on_timer(&mut self, timer: Timer) -> Vec<TxAction> {
        match (timer, self.state) {
            (Timer::G, ServerState::Completed | ServerState::Accepted) => {
                self.interval = (self.interval * 2).min(self.timers.t2);
                let mut out: Vec<TxAction> = self
                    .last_response
                    .clone()
                    .map(TxAction::Send)
                    .into_iter()
                    .collect();
                out.push(TxAction::SetTimer(Timer::G, self.interval));
                out
            }
            (Timer::H, ServerState::Completed) | (Timer::L, ServerState::Accepted) => {
                self.state = ServerState::Terminated;
                vec![TxAction::Timeout, TxAction::Terminated]
            }
            (Timer::I, ServerState::Confirmed) | (Timer::J, ServerState::Completed) => {
                self.state = ServerState::Terminated;
                vec![TxAction::Terminated]
            }
            _ => Vec::new(),
        }
    }
}

/// Transaction key: branch plus method (ACK and CANCEL are matched by the caller).
pub fn key(branch: &str, method: &str) -> String {
    format!("{branch} {}", method.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsip::message::HasHeaders;
    use rsip::SipMessage;

    fn invite() -> Request {
        let text = "INVITE sip:1001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKt1;rport\r\nFrom: <sip:bot@127.0.0.1>;tag=f\r\nTo: <sip:1001@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nRoute: <sip:127.0.0.1;lr>\r\nContent-Length: 0\r\n\r\n";
        match msg::parse(text.as_bytes()).expect("parses") {
            SipMessage::Request(r) => r,
            _ => panic!("request"),
        }
    }

    fn options() -> Request {
        let mut r = invite();
        r.method = rsip::Method::Options;
        r.headers.retain(|h| !h.to_string().starts_with("CSeq"));
        r.headers.push(msg::hdr("CSeq", "1 OPTIONS"));
        r
    }

    fn resp(req: &Request, code: u16) -> Response {
        msg::response_to(req, code, Some("tt"))
    }

    fn dest() -> SocketAddr {
        "127.0.0.1:5060".parse().expect("addr")
    }

    fn sends(a: &[TxAction]) -> usize {
        a.iter().filter(|x| matches!(x, TxAction::Send(_))).count()
    }

    #[test]
    fn invite_client_retransmits_with_doubling_then_times_out() {
        let t = TimerValues::default();
        let (mut tx, a) = ClientTx::start(invite(), dest(), Transport::Udp, t, None);
        assert_eq!(sends(&a), 1);
        assert!(a.contains(&TxAction::SetTimer(Timer::A, t.t1)));
        assert!(a.contains(&TxAction::SetTimer(Timer::B, t.t1 * 64)));
        let a = tx.on_timer(Timer::A);
        assert!(a.contains(&TxAction::SetTimer(Timer::A, t.t1 * 2)));
        let a = tx.on_timer(Timer::A);
        assert!(a.contains(&TxAction::SetTimer(Timer::A, t.t1 * 4)));
        let a = tx.on_timer(Timer::B);
        assert_eq!(a, vec![TxAction::Timeout, TxAction::Terminated]);
        assert!(tx.on_timer(Timer::A).is_empty(), "stale timers are ignored");
    }

    #[test]
    fn invite_client_acks_non_2xx_on_the_same_branch() {
        let req = invite();
        let (mut tx, _) = ClientTx::start(
            req.clone(),
            dest(),
            Transport::Udp,
            TimerValues::default(),
            None,
        );
        let a = tx.on_response(&resp(&req, 180));
        assert!(matches!(a[0], TxAction::Deliver(_)));
        assert_eq!(tx.state, ClientState::Proceeding);
        assert!(
            tx.on_timer(Timer::A).is_empty(),
            "no retransmission once proceeding"
        );
        let a = tx.on_response(&resp(&req, 407));
        assert_eq!(tx.state, ClientState::Completed);
        let ack = a
            .iter()
            .find_map(|x| match x {
                TxAction::Send(b) => Some(b.clone()),
                _ => None,
            })
            .expect("ACK sent");
        let ack = msg::parse(&ack).expect("ACK parses");
        assert_eq!(msg::top_branch(ack.headers()).as_deref(), Some("z9hG4bKt1"));
        assert_eq!(msg::cseq(ack.headers()), Some((1, "ACK".into())));
        assert_eq!(msg::to_tag(ack.headers()).as_deref(), Some("tt"));
        assert_eq!(msg::header_values(ack.headers(), "Route").len(), 1);
        // A retransmitted 407 is absorbed with another ACK, not delivered twice.
        let a = tx.on_response(&resp(&req, 407));
        assert_eq!(a.len(), 1);
        assert!(matches!(a[0], TxAction::Send(_)));
        assert_eq!(tx.on_timer(Timer::D), vec![TxAction::Terminated]);
    }

    #[test]
    fn invite_client_2xx_terminates_and_delivers() {
        let req = invite();
        let (mut tx, _) = ClientTx::start(
            req.clone(),
            dest(),
            Transport::Udp,
            TimerValues::default(),
            None,
        );
        let a = tx.on_response(&resp(&req, 200));
        assert!(matches!(a[0], TxAction::Deliver(_)));
        assert_eq!(a[1], TxAction::Terminated);
    }

    #[test]
    fn non_invite_client_e_caps_at_t2_and_k() {
        let t = TimerValues::default();
        let req = options();
        let (mut tx, a) = ClientTx::start(
            req.clone(),
            dest(),
            Transport::Udp,
            t,
            Some(Duration::from_secs(4)),
        );
        assert!(a.contains(&TxAction::SetTimer(Timer::F, Duration::from_secs(4))));
        let mut last = Duration::ZERO;
        for _ in 0..6 {
            for x in tx.on_timer(Timer::E) {
                if let TxAction::SetTimer(Timer::E, d) = x {
                    last = d;
                }
            }
        }
        assert_eq!(last, t.t2);
        let a = tx.on_response(&resp(&req, 200));
        assert!(a.contains(&TxAction::SetTimer(Timer::K, t.t4)));
        assert!(tx.on_timer(Timer::F).is_empty());
        assert_eq!(tx.on_timer(Timer::K), vec![TxAction::Terminated]);
    }

    #[test]
    fn non_invite_client_over_tcp_does_not_retransmit() {
        let (_, a) = ClientTx::start(
            options(),
            dest(),
            Transport::Tcp,
            TimerValues::default(),
            None,
        );
        assert!(!a
            .iter()
            .any(|x| matches!(x, TxAction::SetTimer(Timer::E, _))));
    }

    #[test]
    fn invite_server_2xx_retransmits_until_ack() {
        let t = TimerValues::default();
        let mut tx = ServerTx::new(true, dest(), Transport::Udp, t);
        let a = tx.respond(180, b"180".to_vec());
        assert_eq!(a, vec![TxAction::Send(b"180".to_vec())]);
        assert_eq!(
            tx.on_retransmission(),
            vec![TxAction::Send(b"180".to_vec())]
        );
        let a = tx.respond(200, b"200".to_vec());
        assert!(a.contains(&TxAction::SetTimer(Timer::G, t.t1)));
        assert!(a.contains(&TxAction::SetTimer(Timer::L, t.t1 * 64)));
        let a = tx.on_timer(Timer::G);
        assert_eq!(a[0], TxAction::Send(b"200".to_vec()));
        assert_eq!(a[1], TxAction::SetTimer(Timer::G, t.t1 * 2));
        for _ in 0..5 {
            tx.on_timer(Timer::G);
        }
        assert!(tx
            .on_timer(Timer::G)
            .contains(&TxAction::SetTimer(Timer::G, t.t2)));
        assert_eq!(tx.on_ack(), vec![TxAction::Terminated]);
        assert!(tx.on_timer(Timer::G).is_empty());
    }

    #[test]
    fn invite_server_non_2xx_waits_for_ack_then_i() {
        let t = TimerValues::default();
        let mut tx = ServerTx::new(true, dest(), Transport::Udp, t);
        let a = tx.respond(487, b"487".to_vec());
        assert!(a.contains(&TxAction::SetTimer(Timer::H, t.t1 * 64)));
        assert_eq!(
            tx.on_retransmission(),
            vec![TxAction::Send(b"487".to_vec())]
        );
        assert_eq!(tx.on_ack(), vec![TxAction::SetTimer(Timer::I, t.t4)]);
        assert!(
            tx.on_timer(Timer::G).is_empty(),
            "confirmed: no more retransmissions"
        );
        assert_eq!(tx.on_timer(Timer::I), vec![TxAction::Terminated]);
    }

    #[test]
    fn invite_server_without_ack_times_out() {
        let mut tx = ServerTx::new(true, dest(), Transport::Udp, TimerValues::default());
        tx.respond(486, b"486".to_vec());
        assert_eq!(
            tx.on_timer(Timer::H),
            vec![TxAction::Timeout, TxAction::Terminated]
        );
        let mut tx = ServerTx::new(true, dest(), Transport::Udp, TimerValues::default());
        tx.respond(200, b"200".to_vec());
        assert_eq!(
            tx.on_timer(Timer::L),
            vec![TxAction::Timeout, TxAction::Terminated]
        );
    }

    #[test]
    fn non_invite_server_absorbs_retransmissions_until_j() {
        let t = TimerValues::default();
        let mut tx = ServerTx::new(false, dest(), Transport::Udp, t);
        assert!(tx.on_retransmission().is_empty(), "nothing to repeat yet");
        let a = tx.respond(200, b"ok".to_vec());
        assert!(a.contains(&TxAction::SetTimer(Timer::J, t.t1 * 64)));
        assert_eq!(tx.on_retransmission(), vec![TxAction::Send(b"ok".to_vec())]);
        assert!(
            tx.respond(500, b"x".to_vec()).is_empty(),
            "only one final response"
        );
        assert_eq!(tx.on_timer(Timer::J), vec![TxAction::Terminated]);
    }
}
