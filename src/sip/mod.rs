//! SIP user agent: sans-IO transactions, dialogs, registration and digest auth on rsip types,
//! with a thin tokio driver at the edge.
//!
//! Layers, bottom up:
//! - [`msg`]: tolerant parsing (compact headers, folding, rport) and building on rsip types;
//! - [`transaction`]: RFC 3261 client/server transactions with timers A–L;
//! - [`digest`]: MD5 digest (`qop=auth`) for 401/407;
//! - [`registration`]: REGISTER/refresh/un-REGISTER, OPTIONS keepalive, registrar fail-over;
//! - [`ua`]: the user-agent core managing many calls (UAS and UAC dialogs);
//! - [`sdp`]: offer/answer for PCMU/PCMA/telephone-event;
//! - [`driver`]: UDP/TCP sockets and timers in tokio, feeding the core.
//!
//! The core is fed `(bytes, source, transport, now)`, commands and timer ticks, and returns
//! [`Action`]s; nothing below [`driver`] touches a socket or a clock.

pub mod digest;
pub mod driver;
pub mod msg;
pub mod registration;
pub mod sdes;
pub mod sdp;
pub mod tls;
pub mod transaction;
pub mod ua;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use driver::{start, SipHandle};
pub use sdp::{Codec, Direction, LocalMedia, Negotiated, RemoteMedia};
pub use ua::{UaConfig, UserAgent};

/// Transport a message came in on or must go out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    /// SIP over TLS (RFC 3261 §26) on TCP.
    Tls,
}

impl Transport {
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The `;transport=` URI parameter for Contact (none for UDP).
    pub fn uri_param(self) -> &'static str {
        match self {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
            Transport::Tls => ";transport=tls",
        }
    }

    /// Extra Via parameters: on TLS `alias` (RFC 5923) asks the peer to send its own
    /// requests to us over this connection instead of opening one to our listener.
    pub fn via_params(self) -> &'static str {
        match self {
            Transport::Tls => ";alias",
            _ => "",
        }
    }

    /// Whether a URI or registrar entry asks for TLS (`sips:` or `;transport=tls`).
    pub fn of_uri(uri: &str) -> Transport {
        let lower = uri.trim().to_ascii_lowercase();
        if lower.starts_with("sips:") || lower.contains(";transport=tls") {
            Transport::Tls
        } else if lower.contains(";transport=tcp") {
            Transport::Tcp
        } else {
            Transport::Udp
        }
    }

    /// Whether signalling on this transport is confidential (SDES keys may travel on it).
    pub fn is_secure(self) -> bool {
        self == Transport::Tls
    }
}

/// What the sans-IO core asks the driver to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Send {
        bytes: Vec<u8>,
        dest: SocketAddr,
        transport: Transport,
    },
    /// Call [`UserAgent::on_tick`] no later than this.
    SetTimer {
        at: Instant,
    },
    Event(SipEvent),
}

/// Events for the layer above (the call layer, tests, the CLI).
#[derive(Debug, Clone, PartialEq)]
pub enum SipEvent {
    Registered {
        registrar: SocketAddr,
        expires: u32,
    },
    RegistrationFailed {
        registrar: SocketAddr,
        reason: String,
    },
    Unregistered {
        registrar: SocketAddr,
    },
    Call(CallEvent),
}

/// Per-call events.
#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    /// A new INVITE was accepted for ringing; answer or reject it with a [`Command`].
    IncomingCall {
        call_id: String,
        from: String,
        to: String,
        remote: RemoteMedia,
        remote_sdp: String,
        /// SDES keys when the call is SRTP (start the media session with them).
        srtp: Option<crate::rtp::srtp::SrtpKeys>,
    },
    /// Outgoing call: the far end is ringing (180).
    Ringing {
        call_id: String,
    },
    /// Outgoing call: 183 with SDP (early media to play/record before answer).
    EarlyMedia {
        call_id: String,
        negotiated: Negotiated,
        /// The SRTP keys of the early answer, when we offered SRTP.
        srtp: Option<crate::rtp::srtp::SrtpKeys>,
    },
    /// The call is up (UAS: ACK received; UAC: 200 received and ACKed).
    Answered {
        call_id: String,
        negotiated: Negotiated,
        /// SDES keys when the call is SRTP (UAC: apply them to the media session).
        srtp: Option<crate::rtp::srtp::SrtpKeys>,
    },
    /// Re-INVITE: hold/resume or a new codec/address.
    MediaUpdate {
        call_id: String,
        negotiated: Negotiated,
        hold: bool,
    },
    /// A DTMF digit signalled by SIP INFO (application/dtmf-relay or dtmf).
    DtmfInfo {
        call_id: String,
        digit: char,
    },
    Ended {
        call_id: String,
        reason: EndReason,
    },
    /// Our REFER (blind transfer, RFC 3515) made progress: accepted or refused by the
    /// peer, then the transferee's call to the target as NOTIFY sipfrag reports it.
    Transfer {
        call_id: String,
        status: ReferStatus,
    },
    /// The peer sent us a REFER (it wants our call moved elsewhere). We refuse it with
    /// 603 and a reason phrase saying why; this tells the layer above it happened.
    ReferRefused {
        call_id: String,
        refer_to: String,
    },
    /// An INVITE refused for load or shutdown (486/503 with Retry-After) before it
    /// became a call: an offered call that was not served (answer rate, alerts).
    Refused {
        call_id: String,
        code: u16,
    },
}

/// Progress of a REFER we sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferStatus {
    /// 202 Accepted: the transferee is trying the target.
    Accepted,
    /// The REFER got a final failure (405, 501, 603, …; 408 when unanswered).
    Refused(u16),
    /// NOTIFY with a provisional sipfrag (100 Trying, 180 Ringing).
    Progress(u16),
    /// NOTIFY with a 2xx sipfrag: the target answered the transferee.
    Succeeded(u16),
    /// NOTIFY with a failure sipfrag (486, 480, …), or the subscription ended
    /// without a final status (0).
    Failed(u16),
}

/// Why a call ended; outcomes a caller needs to tell apart are distinct variants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    LocalHangup,
    RemoteHangup,
    /// The caller cancelled before answer (we sent 487).
    Cancelled,
    /// We rejected it (command or policy) with this code.
    Rejected(u16),
    /// Outgoing: 486 Busy Here / 600 Busy Everywhere.
    Busy,
    /// Outgoing: 603 Decline.
    Declined,
    /// Outgoing: 404 Not Found / 604.
    NotFound,
    /// Outgoing: the ringing timeout expired and we cancelled.
    NoAnswer,
    /// Outgoing: another final failure code.
    Failed(u16),
    /// No common codec (488).
    NotAcceptable,
    /// The peer stopped answering (transaction timeout or no ACK).
    Timeout,
    /// We are shutting down.
    Shutdown,
}

impl EndReason {
    /// Maps an outgoing call's final failure response.
    pub fn from_status(code: u16) -> Self {
        match code {
            486 | 600 => EndReason::Busy,
            603 => EndReason::Declined,
            404 | 604 => EndReason::NotFound,
            487 => EndReason::Cancelled,
            488 | 606 => EndReason::NotAcceptable,
            408 => EndReason::Timeout,
            c => EndReason::Failed(c),
        }
    }
}

/// Commands from the layer above.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Answer an incoming call with our media (address and codec preferences).
    Answer { call_id: String, media: LocalMedia },
    /// Reject an incoming call that was not answered yet.
    Reject { call_id: String, code: u16 },
    /// Hang up any call: BYE when established, CANCEL/reject before.
    Hangup { call_id: String },
    /// Place a call: `target` is a user (`1001`, dialled via the registrar) or a SIP URI.
    PlaceCall {
        call_id: String,
        target: String,
        media: LocalMedia,
        ring_timeout: Duration,
    },
    /// [`Command::PlaceCall`] with extra headers on the INVITE (name, value), e.g. the
    /// `X-Tingshuo-Summary` of a bridged transfer.
    PlaceCallWithHeaders {
        call_id: String,
        target: String,
        media: LocalMedia,
        ring_timeout: Duration,
        headers: Vec<(String, String)>,
    },
    /// Blind transfer (RFC 3515): send REFER in the call's dialog with `target` (a
    /// user, dialled via the registrar, or a SIP URI) in Refer-To and us in
    /// Referred-By; progress comes back as [`CallEvent::Transfer`].
    Refer { call_id: String, target: String },
    /// Hang up every call and un-REGISTER.
    Shutdown,
    /// Graceful shutdown, first step: refuse new INVITEs (503 + Retry-After) while
    /// the calls in progress continue.
    StopAccepting,
}

/// A fresh Call-ID for [`Command::PlaceCall`].
pub fn new_call_id() -> String {
    format!("{}@tingshuo", msg::token(20))
}
