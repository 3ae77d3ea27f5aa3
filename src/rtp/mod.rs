//! RTP media: packet parsing, jitter buffer, 20 ms pacing, RFC 4733 DTMF and basic RTCP.
//!
//! Everything except [`session`] is sans-IO: functions and state machines fed with bytes
//! and `Instant`s, so they are tested without sockets or clocks. [`session::MediaSession`]
//! is the edge: one call's RTP/RTCP socket pair and a dedicated thread that, every 20 ms,
//! pops a decoded frame from the jitter buffer into the pipeline's inbound channel and
//! sends the next frame from the playback queue.
//!
//! ```text
//!  UDP ─▶ classify ─▶ RTP ─▶ JitterBuffer ─(20 ms tick)─▶ PcmFrame ─▶ inbound channel ─▶ pipeline
//!                 │       └▶ DtmfReceiver ─▶ digits channel
//!                 └▶ RTCP ─▶ peer stats          (STUN / garbage dropped)
//!  pipeline ─▶ PlaybackQueue PcmFrame ─(Pacer tick)─▶ G.711 / G.722 encode ─▶ RTP ─▶ UDP (symmetric)
//! ```
//!
//! A [`PcmFrame`] is 20 ms at the codec's audio rate: 160 samples at 8 kHz for G.711,
//! 320 at 16 kHz for G.722. The RTP clock is 8 kHz for both (RFC 3551), so timestamps
//! advance by 160 per frame either way.

pub mod dtmf;
pub mod frame;
pub mod jitter;
pub mod pacer;
pub mod packet;
pub mod rtcp;
pub mod session;
pub mod srtp;

pub use dtmf::{DtmfEvent, DtmfReceiver, DtmfSender};
pub use frame::{PcmFrame, ToPcmFrame, MAX_FRAME_SAMPLES};
pub use jitter::{
    AudioFrame, Depth, Frame, FrameKind, JitterBuffer, JitterConfig, JitterStats, PushOutcome,
    FRAME_DURATION, FRAME_SAMPLES,
};
pub use pacer::{Pacer, RtpStream, Tick};
pub use packet::{classify, PacketKind, RtpHeader, RtpPacket};
pub use session::{
    MediaConfig, MediaSession, MediaStats, PlaybackQueue, PortAllocator, SessionReport,
};

/// Errors of the RTP layer.
#[derive(Debug, thiserror::Error)]
pub enum RtpError {
    /// A packet that is not valid RTP/RTCP; it is dropped and counted.
    #[error("malformed packet: {0} (dropped; if every packet is refused, check that the peer sends RTP version 2 to this port)")]
    Malformed(&'static str),
    #[error("output buffer too small: {needed} bytes needed, {available} available")]
    BufferTooSmall { needed: usize, available: usize },
    #[error("'{0}' is not a DTMF digit: use 0-9, *, # or A-D")]
    InvalidDigit(char),
    #[error(
        "DTMF queue full or a digit is still being sent: wait for it to finish before sending more"
    )]
    DtmfBusy,
    #[error("the peer did not negotiate telephone-event (RFC 4733) in SDP: DTMF cannot be sent on this call")]
    DtmfNotNegotiated,
    #[error("no free RTP port pair in {min}..={max}: all in use by calls or other programs; widen sip.rtp_port_min..sip.rtp_port_max or lower sip.max_calls")]
    NoFreePorts { min: u16, max: u16 },
    #[error(
        "invalid RTP port range {min}..={max}: use an even sip.rtp_port_min below sip.rtp_port_max"
    )]
    BadPortRange { min: u16, max: u16 },
    #[error("socket error on {what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}
