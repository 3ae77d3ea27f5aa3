//! One call's media at the edge: an RTP/RTCP UDP socket pair and a dedicated thread.
//!
//! Why a plain thread and not tokio: outbound packets must leave every 20 ms with
//! sub-millisecond precision whatever the rest of the process does (ASR, TTS, SIP),
//! and one call's slow pipeline must never delay another call's packets. The thread
//! waits on epoll (via `mio`) until ~1 ms before the next tick and sleeps the rest
//! precisely, so it both receives promptly and sends on time.
//!
//! The pipeline talks to the thread only through bounded lock-free channels of fixed
//! 20 ms frames ([`PcmFrame`]: 160 samples at 8 kHz for G.711, 320 at 16 kHz for
//! G.722): [`MediaSession::inbound`] delivers decoded
//! frames (received, concealed or silence: exactly one per tick, so the channel is
//! also the pipeline's clock), and [`PlaybackQueue`] takes frames to send. Nothing on
//! the per-packet path allocates. [`PlaybackQueue::flush`] (barge-in) bumps a
//! generation counter; frames queued before it are discarded when the next packet is
//! built, so the very next packet after a flush is already silence.
//!
//! RTP is symmetric: packets go to the SDP address until the peer's first valid RTP
//! packet arrives, then to wherever that came from (NAT, PBX media relays). RTCP goes
//! to the RTP port + 1 (no rtcp-mux: baresip and most PBXs expect separate ports) and
//! follows the peer's RTCP source once it sends.

use super::dtmf::{DtmfEvent, DtmfReceiver, DtmfSender};
use super::frame::{PcmFrame, ToPcmFrame};
use super::jitter::{FrameKind, JitterBuffer, JitterConfig, JitterStats, FRAME_SAMPLES};
use super::pacer::{Pacer, RtpStream};
use super::packet::{classify, PacketKind, RtpPacket};
use super::rtcp::{self, RtcpPacket, SenderInfo};
use super::srtp::{Rejected, SrtpEdge, SrtpKeys, SrtpStats};
use super::RtpError;
use crate::codec::g722::G722Encoder;
use crate::codec::AudioCodec;
use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError, TrySendError};
use mio::net::UdpSocket as MioUdp;
use mio::{Events, Interest, Poll, Token};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

const RTP_TOKEN: Token = Token(0);
const RTCP_TOKEN: Token = Token(1);
/// Largest datagram read; larger ones are truncated and then fail validation.
const RECV_BUF: usize = 2048;
/// Send-lateness histogram: 25 µs buckets up to 20 ms.
const LATENESS_BUCKET_US: u64 = 25;
/// How long after an inbound frame goes to the pipeline the period's outbound packet
/// is built: time for the pipeline to react to that frame (VAD, end of turn, a
/// cached reply queued takes 1–3 ms) so its reply leaves in the same period.
const OUTBOUND_PHASE: Duration = Duration::from_millis(8);
const LATENESS_BUCKETS: usize = 800;

/// Hands out even RTP ports (RTCP on port + 1) from `sip.rtp_port_min..=rtp_port_max`.
///
/// Ports are taken round-robin so a port freed by one call is not immediately reused
/// by the next (late packets of the old call would land in the new one). Ports held
/// by other programs are skipped.
#[derive(Debug)]
pub struct PortAllocator {
    min: u16,
    max: u16,
    state: Mutex<AllocState>,
}

#[derive(Debug)]
struct AllocState {
    used: Vec<bool>,
    cursor: usize,
}

impl PortAllocator {
    /// A shared allocator for the range; `min` must be even and below `max`.
    pub fn new(min: u16, max: u16) -> Result<Arc<Self>, RtpError> {
        if !min.is_multiple_of(2) || min >= max || min == 0 {
            return Err(RtpError::BadPortRange { min, max });
        }
        // Even ports p with p + 1 <= max.
        let pairs = ((max - min) as usize).div_ceil(2);
        Ok(Arc::new(Self {
            min,
            max,
            state: Mutex::new(AllocState {
                used: vec![false; pairs],
                cursor: 0,
            }),
        }))
    }

    /// The allocator for `[sip] rtp_port_min / rtp_port_max`.
    pub fn from_config(sip: &crate::config::SipConfig) -> Result<Arc<Self>, RtpError> {
        Self::new(sip.rtp_port_min, sip.rtp_port_max)
    }

    /// Port pairs currently leased.
    pub fn in_use(&self) -> usize {
        self.lock().used.iter().filter(|u| **u).count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AllocState> {
        // A panic while holding this lock cannot leave the bitmap inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Binds a free RTP/RTCP socket pair on `ip`.
    pub fn bind(
        self: &Arc<Self>,
        ip: IpAddr,
    ) -> Result<(PortLease, UdpSocket, UdpSocket), RtpError> {
        let mut st = self.lock();
        let pairs = st.used.len();
        for k in 0..pairs {
            let i = (st.cursor + k) % pairs;
            if st.used[i] {
                continue;
            }
            let port = self.min + 2 * i as u16;
            let Ok(rtp) = UdpSocket::bind(SocketAddr::new(ip, port)) else {
                continue;
            };
            let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(ip, port + 1)) else {
                continue;
            };
            st.used[i] = true;
            st.cursor = (i + 1) % pairs;
            let lease = PortLease {
                alloc: Arc::clone(self),
                index: i,
                port,
            };
            return Ok((lease, rtp, rtcp));
        }
        Err(RtpError::NoFreePorts {
            min: self.min,
            max: self.max,
        })
    }
}

/// A leased port pair; returned to the allocator on drop.
#[derive(Debug)]
pub struct PortLease {
    alloc: Arc<PortAllocator>,
    index: usize,
    port: u16,
}

impl PortLease {
    /// The RTP port (RTCP is this + 1).
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.alloc.lock().used[self.index] = false;
    }
}

/// Settings of one media session, from the SDP negotiation.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Local address to bind (the one advertised in SDP `c=`).
    pub local_ip: IpAddr,
    /// The peer's SDP media address; `None` until known (UAC before the answer).
    pub remote: Option<SocketAddr>,
    /// The peer's RTCP address if SDP gave `a=rtcp`; default remote port + 1.
    pub remote_rtcp: Option<SocketAddr>,
    pub codec: AudioCodec,
    /// Negotiated telephone-event payload type (8000 Hz), if any.
    pub dtmf_payload_type: Option<u8>,
    pub jitter: JitterConfig,
    /// Capacity of the inbound frame channel (frames; 50 = 1 s of slack for the pipeline).
    pub inbound_frames: usize,
    /// Capacity of the playback queue (frames; 1000 = 20 s of speech).
    pub playback_frames: usize,
    /// SDES CNAME for RTCP.
    pub cname: String,
    /// Interval between RTCP reports (RFC 3550 suggests 5 s minimum).
    pub rtcp_interval: Duration,
    /// Also deliver every sent frame on [`MediaSession::outbound_tap`] (recording, echo reference).
    pub tap_outbound: bool,
    /// Ask for real-time scheduling (SCHED_FIFO, low priority) for the media thread, so
    /// CPU-hungry inference threads cannot delay packets. Best effort: without the
    /// privilege (CAP_SYS_NICE / rtprio limit) the thread runs at normal priority.
    pub realtime: bool,
    /// SDES keys when the call negotiated SRTP: packets are decrypted right after they
    /// are received and encrypted right before they are sent (SRTCP too).
    pub srtp: Option<SrtpKeys>,
}

impl MediaConfig {
    /// Defaults for everything but the addresses and codec.
    pub fn new(local_ip: IpAddr, remote: Option<SocketAddr>, codec: impl Into<AudioCodec>) -> Self {
        Self {
            local_ip,
            remote,
            remote_rtcp: None,
            codec: codec.into(),
            dtmf_payload_type: None,
            jitter: JitterConfig::default(),
            inbound_frames: 50,
            playback_frames: 1000,
            cname: "tingshuo".to_string(),
            rtcp_interval: Duration::from_secs(5),
            tap_outbound: false,
            realtime: true,
            srtp: None,
        }
    }
}

/// A decoded 20 ms frame from the peer.
#[derive(Debug, Clone, Copy)]
pub struct InboundFrame {
    /// 8 kHz (G.711) or 16 kHz (G.722) audio.
    pub samples: PcmFrame,
    pub kind: FrameKind,
    /// The tick at which it was played out.
    pub at: Instant,
}

/// A frame as it was sent (from the outbound tap).
#[derive(Debug, Clone, Copy)]
pub struct OutboundFrame {
    /// At the codec's rate, as encoded.
    pub samples: PcmFrame,
    /// Queued speech (`true`) or fill silence.
    pub speech: bool,
    pub at: Instant,
}

struct Queued {
    generation: u32,
    samples: PcmFrame,
}

/// Producer side of a session's outbound audio; cheap to clone.
#[derive(Clone)]
pub struct PlaybackQueue {
    tx: Sender<Queued>,
    generation: Arc<AtomicU32>,
}

/// The playback queue is full (the frame was not queued); try again after a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("playback queue full (or the media session has stopped)")]
pub struct PlaybackFull;

impl PlaybackQueue {
    /// Queues one frame without blocking. A frame at the other rate than the codec's
    /// (8 kHz audio on a G.722 call, or the reverse) is converted when it is sent.
    pub fn push(&self, samples: &impl ToPcmFrame) -> Result<(), PlaybackFull> {
        let q = Queued {
            generation: self.generation.load(Ordering::Acquire),
            samples: samples.to_pcm_frame(),
        };
        self.tx.try_send(q).map_err(|_| PlaybackFull)
    }

    /// Queues one frame, waiting up to `timeout` for room (for feeder threads, never the RTP thread).
    pub fn push_timeout(
        &self,
        samples: &impl ToPcmFrame,
        timeout: Duration,
    ) -> Result<(), PlaybackFull> {
        let q = Queued {
            generation: self.generation.load(Ordering::Acquire),
            samples: samples.to_pcm_frame(),
        };
        self.tx.send_timeout(q, timeout).map_err(|_| PlaybackFull)
    }

    /// Discards everything queued so far (barge-in); the next packet sent is silence
    /// unless new frames are pushed after this call.
    pub fn flush(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Frames waiting (including flushed ones not yet discarded).
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
    }
}

/// Counters of a running session.
#[derive(Debug, Clone, Copy, Default)]
pub struct MediaStats {
    pub rtp_received: u64,
    pub rtp_bytes_received: u64,
    pub rtp_sent: u64,
    pub rtcp_received: u64,
    pub rtcp_sent: u64,
    pub stun_dropped: u64,
    pub garbage_dropped: u64,
    /// Valid RTP from an address other than the latched peer.
    pub foreign_dropped: u64,
    pub send_errors: u64,
    /// Frames handed to the pipeline, and frames dropped because it did not keep up.
    pub frames_delivered: u64,
    pub inbound_overflow: u64,
    pub speech_frames_sent: u64,
    pub silence_frames_sent: u64,
    /// Frames discarded by flushes.
    pub flushed_frames: u64,
    pub dtmf_received: u64,
    pub dtmf_sent: u64,
    /// Pacer ticks skipped after the thread stalled for more than 60 ms.
    pub ticks_skipped: u64,
    pub jitter: JitterStats,
    /// Where RTP is being sent.
    pub remote: Option<SocketAddr>,
    /// The peer's view of our stream, from its last RTCP report block.
    pub peer_fraction_lost: u8,
    pub peer_cumulative_lost: i32,
    pub peer_jitter_ms: f64,
    pub rtt: Option<Duration>,
    pub peer_bye: bool,
    /// SRTP/SRTCP packets dropped (bad tag, replay, malformed); zero without SRTP.
    pub srtp: SrtpStats,
}

/// What a finished session measured.
#[derive(Debug, Clone)]
pub struct SessionReport {
    pub stats: MediaStats,
    /// Ticks processed.
    pub ticks: u64,
    /// How late packets left relative to the ideal 20 ms grid.
    pub send_lateness_p50: Duration,
    pub send_lateness_p99: Duration,
    pub send_lateness_max: Duration,
    /// Processing time per tick (receive excluded): pop, decode, encode, send.
    pub tick_mean: Duration,
    pub tick_max: Duration,
    /// Whether the thread got real-time scheduling.
    pub realtime: bool,
}

enum Command {
    Remote(SocketAddr, Option<SocketAddr>),
    Codec(AudioCodec, Option<u8>),
    Sending(bool),
    /// SRTP keys learnt after the session started (a call we placed was answered).
    Srtp(Box<SrtpEdge>),
}

/// A running media session; dropping it stops the thread and frees the ports.
pub struct MediaSession {
    local_rtp: SocketAddr,
    /// Audio rate of the current codec (8000 or 16000), for the pipeline.
    audio_rate: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<MediaStats>>,
    cmd: Sender<Command>,
    digits: Sender<(char, Duration)>,
    inbound: Receiver<InboundFrame>,
    playback: PlaybackQueue,
    dtmf: Receiver<DtmfEvent>,
    tap: Option<Receiver<OutboundFrame>>,
    dtmf_enabled: Arc<AtomicBool>,
    /// The SRTP keys in use (early media then the answer may bring the same ones).
    srtp_keys: Mutex<Option<SrtpKeys>>,
    thread: Option<JoinHandle<SessionReport>>,
}

impl MediaSession {
    /// Binds a port pair from `ports` and starts the media thread.
    pub fn start(ports: &Arc<PortAllocator>, cfg: MediaConfig) -> Result<Self, RtpError> {
        let (lease, rtp, rtcp) = ports.bind(cfg.local_ip)?;
        Self::start_with_sockets(rtp, rtcp, Some(lease), cfg)
    }

    /// Starts on sockets bound by the caller (tests, or ports fixed by configuration).
    pub fn start_with_sockets(
        rtp: UdpSocket,
        rtcp: UdpSocket,
        lease: Option<PortLease>,
        cfg: MediaConfig,
    ) -> Result<Self, RtpError> {
        let io = |what| move |source| RtpError::Io { what, source };
        let local_rtp = rtp.local_addr().map_err(io("RTP socket address"))?;
        rtp.set_nonblocking(true).map_err(io("RTP socket"))?;
        rtcp.set_nonblocking(true).map_err(io("RTCP socket"))?;
        let mut rtp = MioUdp::from_std(rtp);
        let mut rtcp = MioUdp::from_std(rtcp);
        let poll = Poll::new().map_err(io("epoll"))?;
        poll.registry()
            .register(&mut rtp, RTP_TOKEN, Interest::READABLE)
            .map_err(io("epoll registration"))?;
        poll.registry()
            .register(&mut rtcp, RTCP_TOKEN, Interest::READABLE)
            .map_err(io("epoll registration"))?;

        let (in_tx, in_rx) = bounded(cfg.inbound_frames.max(1));
        let (play_tx, play_rx) = bounded(cfg.playback_frames.max(1));
        let (dtmf_tx, dtmf_rx) = bounded(64);
        let (cmd_tx, cmd_rx) = bounded(16);
        let (digits_tx, digits_rx) = bounded(32);
        let (tap_tx, tap_rx) = if cfg.tap_outbound {
            let (t, r) = bounded(cfg.inbound_frames.max(1));
            (Some(t), Some(r))
        } else {
            (None, None)
        };
        let generation = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(MediaStats {
            remote: cfg.remote,
            ..Default::default()
        }));
        let dtmf_enabled = Arc::new(AtomicBool::new(cfg.dtmf_payload_type.is_some()));
        let audio_rate = Arc::new(AtomicU32::new(cfg.codec.sample_rate()));
        let mut jb = JitterBuffer::new(cfg.jitter);
        jb.set_audio_rate(cfg.codec.sample_rate());

        let srtp = match &cfg.srtp {
            Some(keys) => Some(SrtpEdge::new(keys).map_err(|e| RtpError::Io {
                what: "SRTP context",
                source: std::io::Error::other(e.to_string()),
            })?),
            None => None,
        };
        let remote_rtcp = cfg.remote_rtcp.or_else(|| {
            cfg.remote
                .map(|r| SocketAddr::new(r.ip(), r.port().wrapping_add(1)))
        });
        let worker = Worker {
            rtp,
            rtcp,
            poll,
            _lease: lease,
            codec: cfg.codec,
            g722: G722Encoder::new(),
            dtmf_pt: cfg.dtmf_payload_type,
            remote: cfg.remote,
            remote_rtcp,
            latched: false,
            rtcp_latched: false,
            sending: true,
            jb,
            dtmf_rx: DtmfReceiver::new(),
            dtmf_tx_state: DtmfSender::new(),
            stream: RtpStream::random(),
            in_tx,
            in_rx_own: in_rx.clone(),
            play_rx,
            generation: Arc::clone(&generation),
            dtmf_out: dtmf_tx,
            tap: tap_tx.zip(tap_rx.clone()),
            cmd: cmd_rx,
            digits: digits_rx,
            stop: Arc::clone(&stop),
            shared: Arc::clone(&stats),
            stats: MediaStats {
                remote: cfg.remote,
                ..Default::default()
            },
            cname: cfg.cname,
            rtcp_interval: cfg.rtcp_interval.max(Duration::from_millis(100)),
            last_sr: None,
            last_ssrc: None,
            buf: [0; RECV_BUF],
            out: [0; RECV_BUF],
            lateness: [0; LATENESS_BUCKETS],
            lateness_max: Duration::ZERO,
            ticks: 0,
            busy: Duration::ZERO,
            busy_max: Duration::ZERO,
            srtp,
        };
        let realtime = cfg.realtime;
        let thread = std::thread::Builder::new()
            .name(format!("rtp-{}", local_rtp.port()))
            .spawn(move || {
                let rt = realtime && raise_priority();
                let mut report = worker.run();
                report.realtime = rt;
                report
            })
            .map_err(io("media thread"))?;
        Ok(Self {
            local_rtp,
            audio_rate,
            stop,
            stats,
            cmd: cmd_tx,
            digits: digits_tx,
            inbound: in_rx,
            playback: PlaybackQueue {
                tx: play_tx,
                generation,
            },
            dtmf: dtmf_rx,
            tap: tap_rx,
            dtmf_enabled,
            srtp_keys: Mutex::new(None),
            thread: Some(thread),
        })
    }

    /// The local RTP address (put its port in the SDP `m=` line).
    pub fn local_rtp(&self) -> SocketAddr {
        self.local_rtp
    }

    /// Decoded frames from the peer, one per 20 ms tick.
    pub fn inbound(&self) -> Receiver<InboundFrame> {
        self.inbound.clone()
    }

    /// The outbound audio queue.
    pub fn playback(&self) -> PlaybackQueue {
        self.playback.clone()
    }

    /// DTMF digits from the peer, each once, in order.
    pub fn dtmf_events(&self) -> Receiver<DtmfEvent> {
        self.dtmf.clone()
    }

    /// Every frame as sent, if `tap_outbound` was set.
    pub fn outbound_tap(&self) -> Option<Receiver<OutboundFrame>> {
        self.tap.clone()
    }

    /// New peer address (re-INVITE); resets symmetric-RTP latching.
    pub fn set_remote(&self, rtp: SocketAddr, rtcp: Option<SocketAddr>) {
        let _ = self.cmd.try_send(Command::Remote(rtp, rtcp));
    }

    /// Audio rate of the negotiated codec: 8000 (G.711) or 16000 (G.722). Frames for
    /// the playback queue are best made at this rate (others are converted).
    pub fn audio_rate(&self) -> u32 {
        self.audio_rate.load(Ordering::Acquire)
    }

    /// The shared cell behind [`Self::audio_rate`], for a pipeline that outlives this borrow.
    pub fn audio_rate_cell(&self) -> Arc<AtomicU32> {
        Arc::clone(&self.audio_rate)
    }

    /// Codec change (answer to our offer, or re-INVITE).
    pub fn set_codec(&self, codec: impl Into<AudioCodec>, dtmf_payload_type: Option<u8>) {
        let codec = codec.into();
        self.audio_rate
            .store(codec.sample_rate(), Ordering::Release);
        self.dtmf_enabled
            .store(dtmf_payload_type.is_some(), Ordering::Release);
        let _ = self.cmd.try_send(Command::Codec(codec, dtmf_payload_type));
    }

    /// Switches the session to SRTP with these keys (the answer to our offer arrived).
    /// The cipher contexts are built here, off the media thread. The keys already in
    /// use (from early media) change nothing: the contexts and replay windows go on.
    pub fn set_srtp(&self, keys: &SrtpKeys) -> Result<(), RtpError> {
        let mut current = self.srtp_keys.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref() == Some(keys) {
            return Ok(());
        }
        let edge = SrtpEdge::new(keys).map_err(|e| RtpError::Io {
            what: "SRTP context",
            source: std::io::Error::other(e.to_string()),
        })?;
        self.cmd
            .try_send(Command::Srtp(Box::new(edge)))
            .map_err(|_| RtpError::Io {
                what: "SRTP keys",
                source: std::io::Error::other("media session command queue full or stopped"),
            })?;
        *current = Some(keys.clone());
        Ok(())
    }

    /// Stops or resumes sending RTP (hold: SDP `recvonly`/`inactive`). While stopped the
    /// playback queue is left as it is, so a line resumes where it paused; reception and
    /// the inbound frames continue.
    pub fn set_sending(&self, enabled: bool) {
        let _ = self.cmd.try_send(Command::Sending(enabled));
    }

    /// Queues a DTMF digit to send as RFC 4733 events (audio pauses meanwhile); digits
    /// queued back to back are sent one after the other.
    pub fn send_dtmf(&self, digit: char, duration: Duration) -> Result<(), RtpError> {
        if super::dtmf::event_code(digit).is_none() {
            return Err(RtpError::InvalidDigit(digit));
        }
        if !self.dtmf_enabled.load(Ordering::Acquire) {
            return Err(RtpError::DtmfNotNegotiated);
        }
        self.digits
            .try_send((digit, duration))
            .map_err(|_| RtpError::DtmfBusy)
    }

    /// A snapshot of the counters (updated every tick).
    pub fn stats(&self) -> MediaStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops the thread (sending an RTCP BYE), frees the ports and returns the measurements.
    pub fn stop(mut self) -> SessionReport {
        self.shutdown().unwrap_or_else(|| SessionReport {
            stats: self.stats(),
            ticks: 0,
            send_lateness_p50: Duration::ZERO,
            send_lateness_p99: Duration::ZERO,
            send_lateness_max: Duration::ZERO,
            tick_mean: Duration::ZERO,
            tick_max: Duration::ZERO,
            realtime: false,
        })
    }

    fn shutdown(&mut self) -> Option<SessionReport> {
        self.stop.store(true, Ordering::Release);
        let handle = self.thread.take()?;
        match handle.join() {
            Ok(r) => Some(r),
            Err(_) => {
                tracing::error!(port = self.local_rtp.port(), "media thread panicked");
                None
            }
        }
    }
}

impl Drop for MediaSession {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Best effort SCHED_FIFO for the calling thread; `false` when not permitted.
#[cfg(target_os = "linux")]
fn raise_priority() -> bool {
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: pthread_self() names the calling thread and `param` is a valid sched_param
    // that outlives the call; the function has no other preconditions.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc != 0 {
        tracing::debug!(
            rc,
            "no real-time scheduling for the media thread (needs CAP_SYS_NICE or an rtprio limit)"
        );
    }
    rc == 0
}

#[cfg(not(target_os = "linux"))]
fn raise_priority() -> bool {
    false
}

struct Worker {
    rtp: MioUdp,
    rtcp: MioUdp,
    poll: Poll,
    _lease: Option<PortLease>,
    codec: AudioCodec,
    /// Encoder state for G.722 (reset when the codec changes to it).
    g722: G722Encoder,
    dtmf_pt: Option<u8>,
    remote: Option<SocketAddr>,
    remote_rtcp: Option<SocketAddr>,
    latched: bool,
    rtcp_latched: bool,
    sending: bool,
    jb: JitterBuffer,
    dtmf_rx: DtmfReceiver,
    dtmf_tx_state: DtmfSender,
    stream: RtpStream,
    in_tx: Sender<InboundFrame>,
    in_rx_own: Receiver<InboundFrame>,
    play_rx: Receiver<Queued>,
    generation: Arc<AtomicU32>,
    dtmf_out: Sender<DtmfEvent>,
    tap: Option<(Sender<OutboundFrame>, Receiver<OutboundFrame>)>,
    cmd: Receiver<Command>,
    digits: Receiver<(char, Duration)>,
    stop: Arc<AtomicBool>,
    shared: Arc<Mutex<MediaStats>>,
    stats: MediaStats,
    cname: String,
    rtcp_interval: Duration,
    /// Middle 32 bits of the peer's last SR and when it arrived (for LSR/DLSR).
    last_sr: Option<(u32, Instant)>,
    last_ssrc: Option<u32>,
    buf: [u8; RECV_BUF],
    out: [u8; RECV_BUF],
    lateness: [u32; LATENESS_BUCKETS],
    lateness_max: Duration,
    ticks: u64,
    busy: Duration,
    busy_max: Duration,
    srtp: Option<SrtpEdge>,
}

impl Worker {
    fn run(mut self) -> SessionReport {
        let mut events = Events::with_capacity(8);
        let start = Instant::now();
        // Inbound frames go to the pipeline at the start of each 20 ms period, and the
        // outbound packet leaves OUTBOUND_PHASE later: a reply the pipeline decides on
        // the frame it was just given (the end of the caller's turn) is already queued
        // when its packet is built, instead of waiting a whole period for the next.
        let mut inbound = Pacer::twenty_ms(start);
        let mut outbound = Pacer::twenty_ms(start + OUTBOUND_PHASE);
        let mut next_rtcp = start + self.rtcp_interval / 2;
        loop {
            self.drain_sockets();
            let now = Instant::now();
            while inbound.poll(now).is_some() {
                self.apply_commands();
                self.deliver_inbound(now);
            }
            while let Some(tick) = outbound.poll(now) {
                let t0 = Instant::now();
                self.apply_commands();
                self.send_outbound(tick.index, now);
                if now >= next_rtcp {
                    self.send_report(now, tick.index);
                    next_rtcp = now + self.rtcp_interval;
                }
                self.record(tick.lateness, t0.elapsed());
            }
            self.stats.ticks_skipped = outbound.skipped();
            if self.stop.load(Ordering::Acquire) {
                break;
            }
            let now = Instant::now();
            let due = inbound.next_due().min(outbound.next_due());
            if due > now {
                let wait = due - now;
                // epoll's millisecond timeout rounds up: wake a little early, then sleep
                // the remainder precisely (nanosleep) so the packet leaves on time.
                if wait > Duration::from_micros(2500) {
                    let _ = self
                        .poll
                        .poll(&mut events, Some(wait - Duration::from_micros(1500)));
                } else {
                    std::thread::sleep(wait);
                }
            }
        }
        self.send_bye();
        self.publish(true);
        self.report()
    }

    fn record(&mut self, lateness: Duration, busy: Duration) {
        self.ticks += 1;
        let b = (lateness.as_micros() as u64 / LATENESS_BUCKET_US) as usize;
        self.lateness[b.min(LATENESS_BUCKETS - 1)] += 1;
        self.lateness_max = self.lateness_max.max(lateness);
        self.busy += busy;
        self.busy_max = self.busy_max.max(busy);
    }

    fn report(&self) -> SessionReport {
        let pct = |p: f64| {
            let target = (self.ticks as f64 * p).ceil() as u64;
            let mut acc = 0u64;
            for (i, &c) in self.lateness.iter().enumerate() {
                acc += c as u64;
                if acc >= target.max(1) {
                    return Duration::from_micros((i as u64 + 1) * LATENESS_BUCKET_US);
                }
            }
            self.lateness_max
        };
        SessionReport {
            stats: self.stats,
            ticks: self.ticks,
            send_lateness_p50: pct(0.50).min(self.lateness_max),
            send_lateness_p99: pct(0.99).min(self.lateness_max),
            send_lateness_max: self.lateness_max,
            tick_mean: if self.ticks == 0 {
                Duration::ZERO
            } else {
                self.busy / self.ticks as u32
            },
            tick_max: self.busy_max,
            realtime: false,
        }
    }

    fn drain_sockets(&mut self) {
        loop {
            match self.rtp.recv_from(&mut self.buf) {
                Ok((n, from)) => self.on_rtp_datagram(n, from, Instant::now()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // ICMP errors surface here on some systems; keep going.
                Err(_) => break,
            }
        }
        while let Ok((n, from)) = self.rtcp.recv_from(&mut self.buf) {
            if classify(&self.buf[..n]) == PacketKind::Rtcp {
                let Some(n) = self.unprotect(n, from, true) else {
                    continue;
                };
                if !self.rtcp_latched {
                    self.remote_rtcp = Some(from);
                    self.rtcp_latched = true;
                }
                self.on_rtcp(n, Instant::now());
            } else {
                self.stats.garbage_dropped += 1;
            }
        }
    }

    fn on_rtp_datagram(&mut self, n: usize, from: SocketAddr, now: Instant) {
        match classify(&self.buf[..n]) {
            PacketKind::Stun => {
                self.stats.stun_dropped += 1;
                return;
            }
            PacketKind::Garbage => {
                self.stats.garbage_dropped += 1;
                return;
            }
            PacketKind::Rtcp => {
                // rtcp-mux peer.
                if let Some(n) = self.unprotect(n, from, true) {
                    self.on_rtcp(n, now);
                }
                return;
            }
            PacketKind::Rtp => {}
        }
        // Authenticate before latching: a forged packet must not redirect our media.
        let Some(n) = self.unprotect(n, from, false) else {
            return;
        };
        let buf = &self.buf[..n];
        let Ok(pkt) = RtpPacket::parse(buf) else {
            self.stats.garbage_dropped += 1;
            return;
        };
        // Symmetric RTP: latch onto the first source of valid RTP.
        if self.latched {
            if Some(from) != self.remote {
                self.stats.foreign_dropped += 1;
                return;
            }
        } else {
            self.latched = true;
            if self.remote != Some(from) {
                tracing::debug!(%from, sdp = ?self.remote, "symmetric RTP: sending to the peer's source address");
            }
            self.remote = Some(from);
            self.stats.remote = Some(from);
            if !self.rtcp_latched {
                self.remote_rtcp = Some(SocketAddr::new(from.ip(), from.port().wrapping_add(1)));
            }
        }
        self.stats.rtp_received += 1;
        self.stats.rtp_bytes_received += n as u64;
        if self.last_ssrc != Some(pkt.ssrc()) {
            self.last_ssrc = Some(pkt.ssrc());
            self.dtmf_rx.reset();
        }
        self.jb.push(&pkt, now);
        if Some(pkt.payload_type()) == self.dtmf_pt {
            if let Some(ev) = self.dtmf_rx.on_packet(pkt.timestamp(), pkt.payload()) {
                self.stats.dtmf_received += 1;
                let _ = self.dtmf_out.try_send(ev);
            }
        }
    }

    fn on_rtcp(&mut self, n: usize, now: Instant) {
        self.stats.rtcp_received += 1;
        let now_ntp = rtcp::ntp_timestamp(SystemTime::now());
        let our_ssrc = self.stream.ssrc;
        for pkt in rtcp::parse_compound(&self.buf[..n]) {
            let Ok(pkt) = pkt else {
                self.stats.garbage_dropped += 1;
                break;
            };
            let blocks = match pkt {
                RtcpPacket::SenderReport { info, reports, .. } => {
                    self.last_sr = Some((rtcp::ntp_middle32(info.ntp_timestamp), now));
                    Some(reports)
                }
                RtcpPacket::ReceiverReport { reports, .. } => Some(reports),
                RtcpPacket::Bye { .. } => {
                    self.stats.peer_bye = true;
                    None
                }
                RtcpPacket::Other { .. } => None,
            };
            for b in blocks.into_iter().flatten().filter(|b| b.ssrc == our_ssrc) {
                self.stats.peer_fraction_lost = b.fraction_lost;
                self.stats.peer_cumulative_lost = b.cumulative_lost;
                self.stats.peer_jitter_ms = b.jitter as f64 * 1000.0 / 8000.0;
                if let Some(rtt) = rtcp::round_trip_time(now_ntp, &b) {
                    self.stats.rtt = Some(rtt);
                }
            }
        }
    }

    /// Applies the pipeline's commands (remote address, codec, SRTP, hold).
    fn apply_commands(&mut self) {
        while let Ok(cmd) = self.cmd.try_recv() {
            match cmd {
                Command::Remote(rtp, rtcp) => {
                    self.remote = Some(rtp);
                    self.remote_rtcp = rtcp
                        .or_else(|| Some(SocketAddr::new(rtp.ip(), rtp.port().wrapping_add(1))));
                    self.latched = false;
                    self.rtcp_latched = rtcp.is_some();
                    self.stats.remote = Some(rtp);
                }
                Command::Codec(codec, pt) => {
                    if codec != self.codec && codec == AudioCodec::G722 {
                        self.g722 = G722Encoder::new();
                    }
                    self.codec = codec;
                    self.jb.set_audio_rate(codec.sample_rate());
                    self.dtmf_pt = pt;
                }
                Command::Srtp(edge) => self.srtp = Some(*edge),
                Command::Sending(on) => {
                    self.sending = on;
                    if !on {
                        self.stream.end_talk_spurt();
                    }
                }
            }
        }
    }

    /// Inbound: exactly one frame per period to the pipeline.
    fn deliver_inbound(&mut self, now: Instant) {
        let frame = self.jb.pop_frame(now);
        let item = InboundFrame {
            samples: frame.samples,
            kind: frame.kind,
            at: now,
        };
        match self.in_tx.try_send(item) {
            Ok(()) => self.stats.frames_delivered += 1,
            Err(TrySendError::Full(item)) => {
                // The pipeline fell behind: drop the oldest frame, keep the newest.
                let _ = self.in_rx_own.try_recv();
                self.stats.inbound_overflow += 1;
                if self.in_tx.try_send(item).is_ok() {
                    self.stats.frames_delivered += 1;
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Outbound: one packet per period (queued speech, DTMF or silence).
    fn send_outbound(&mut self, index: u64, now: Instant) {
        if self.dtmf_pt.is_some() && !self.dtmf_tx_state.is_active() && self.remote.is_some() {
            if let Ok((digit, duration)) = self.digits.try_recv() {
                if self.dtmf_tx_state.start(digit, duration).is_ok() {
                    self.stats.dtmf_sent += 1;
                }
            }
        }

        let Some(remote) = self.remote.filter(|_| self.sending) else {
            self.publish(false);
            return; // nowhere to send yet, or on hold: keep the playback queue for later
        };
        if self.dtmf_tx_state.is_active() {
            if let (Some(pt), Some(p)) = (self.dtmf_pt, self.dtmf_tx_state.next_packet(index)) {
                let ts = self.stream.timestamp_of(p.start_index);
                let h = self.stream.header(pt, ts, p.marker);
                if let Ok(len) = h.write(&p.payload, &mut self.out) {
                    self.send(len, remote);
                    self.stream.count_sent(4);
                }
                self.stream.end_talk_spurt();
                return;
            }
        }
        let current = self.generation.load(Ordering::Acquire);
        let mut next = None;
        loop {
            match self.play_rx.try_recv() {
                Ok(q) if q.generation == current => {
                    next = Some(q.samples);
                    break;
                }
                Ok(_) => self.stats.flushed_frames += 1,
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
            }
        }
        let speech = next.is_some();
        let codec = self.codec;
        let rate = codec.sample_rate();
        let samples = match next {
            Some(f) if f.rate() != rate => f.to_rate(rate),
            Some(f) => f,
            None => PcmFrame::silence(rate),
        };
        let header = self
            .stream
            .audio_header(codec.payload_type(), index, speech);
        let g722 = &mut self.g722;
        let written = header.write_with(&mut self.out, |p| match codec.g711() {
            Some(law) => law.encode(samples.samples(), p),
            None => g722.encode(samples.samples(), p),
        });
        if let Ok(len) = written {
            self.send(len, remote);
            // 160 bytes for G.711 and G.722 alike (and 160 RTP clock ticks).
            self.stream.count_sent(FRAME_SAMPLES);
        }
        if speech {
            self.stats.speech_frames_sent += 1;
        } else {
            self.stats.silence_frames_sent += 1;
        }
        if let Some((tap, own)) = &self.tap {
            let f = OutboundFrame {
                samples,
                speech,
                at: now,
            };
            if let Err(TrySendError::Full(f)) = tap.try_send(f) {
                // Keep the newest frames, like the inbound channel.
                let _ = own.try_recv();
                let _ = tap.try_send(f);
            }
        }
        self.publish(false);
    }

    /// With SRTP, decrypts `self.buf[..n]` in place; `None` (dropped, counted, logged
    /// sparingly with the peer) when it does not authenticate.
    fn unprotect(&mut self, n: usize, from: SocketAddr, rtcp: bool) -> Option<usize> {
        let Some(edge) = self.srtp.as_mut() else {
            return Some(n);
        };
        let r = if rtcp {
            edge.unprotect_rtcp(&mut self.buf, n)
        } else {
            edge.unprotect_rtp(&mut self.buf, n)
        };
        self.stats.srtp = edge.stats;
        match r {
            Ok(n) => Some(n),
            Err(why) => {
                let dropped = edge.stats.dropped();
                // First drop, then every power of two: a flood cannot flood the log.
                if dropped.is_power_of_two() {
                    let reason = match why {
                        Rejected::Auth => "authentication tag mismatch (tampered or wrong key)",
                        Rejected::Replay => "replayed packet",
                        Rejected::Malformed => "malformed packet",
                    };
                    tracing::warn!(peer = %from, rtcp, reason, dropped, "SRTP packet dropped; the call continues");
                }
                None
            }
        }
    }

    /// With SRTP, encrypts `self.out[..len]` in place; returns the length to send.
    fn protect(&mut self, len: usize, rtcp: bool) -> Option<usize> {
        match self.srtp.as_mut() {
            None => Some(len),
            Some(edge) if rtcp => edge.protect_rtcp(&mut self.out, len),
            Some(edge) => edge.protect_rtp(&mut self.out, len),
        }
    }

    fn send(&mut self, len: usize, to: SocketAddr) {
        let Some(len) = self.protect(len, false) else {
            self.stats.send_errors += 1;
            return;
        };
        match self.rtp.send_to(&self.out[..len], to) {
            Ok(_) => self.stats.rtp_sent += 1,
            Err(_) => self.stats.send_errors += 1,
        }
    }

    fn send_report(&mut self, now: Instant, index: u64) {
        let Some(to) = self.remote_rtcp else {
            return;
        };
        let ntp = rtcp::ntp_timestamp(SystemTime::now());
        let mut block = self.jb.report_block();
        if let (Some(b), Some((lsr, at))) = (block.as_mut(), self.last_sr) {
            b.last_sr = lsr;
            b.delay_since_last_sr = rtcp::to_dlsr(now - at);
        }
        let sender = (self.stream.packets > 0).then(|| SenderInfo {
            ntp_timestamp: ntp,
            // The media-clock time of this tick: pairs the NTP time with the RTP timeline.
            rtp_timestamp: self.stream.timestamp_of(index),
            packet_count: self.stream.packets,
            octet_count: self.stream.octets,
        });
        if let Ok(len) = rtcp::write_report(
            &mut self.out,
            self.stream.ssrc,
            sender.as_ref(),
            block.as_ref(),
            &self.cname,
        ) {
            let Some(len) = self.protect(len, true) else {
                return;
            };
            if self.rtcp.send_to(&self.out[..len], to).is_ok() {
                self.stats.rtcp_sent += 1;
            }
        }
    }

    fn send_bye(&mut self) {
        let Some(to) = self.remote_rtcp else {
            return;
        };
        let ntp = rtcp::ntp_timestamp(SystemTime::now());
        let sender = SenderInfo {
            ntp_timestamp: ntp,
            rtp_timestamp: 0,
            packet_count: self.stream.packets,
            octet_count: self.stream.octets,
        };
        let Ok(n) = rtcp::write_report(
            &mut self.out,
            self.stream.ssrc,
            Some(&sender),
            None,
            &self.cname,
        ) else {
            return;
        };
        let Ok(m) = rtcp::write_bye(&mut self.out[n..], self.stream.ssrc) else {
            return;
        };
        let Some(len) = self.protect(n + m, true) else {
            return;
        };
        if self.rtcp.send_to(&self.out[..len], to).is_ok() {
            self.stats.rtcp_sent += 1;
        }
    }

    /// Copies the counters where [`MediaSession::stats`] reads them, without ever waiting.
    fn publish(&mut self, force: bool) {
        self.stats.jitter = self.jb.stats();
        let guard = if force {
            Some(self.shared.lock().unwrap_or_else(|e| e.into_inner()))
        } else {
            self.shared.try_lock().ok()
        };
        if let Some(mut g) = guard {
            *g = self.stats;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn port_allocator_leases_even_pairs_and_frees_them() {
        // A high range unlikely to collide with other tests.
        let alloc = PortAllocator::new(47100, 47105).unwrap();
        let (a, _, _) = alloc.bind(LO).unwrap();
        let (b, _, _) = alloc.bind(LO).unwrap();
        let (c, _, _) = alloc.bind(LO).unwrap();
        assert!([a.port(), b.port(), c.port()].iter().all(|p| p % 2 == 0));
        assert_eq!(alloc.in_use(), 3);
        assert!(matches!(alloc.bind(LO), Err(RtpError::NoFreePorts { .. })));
        let freed = b.port();
        drop(b);
        assert_eq!(alloc.in_use(), 2);
        let (d, _, _) = alloc.bind(LO).unwrap();
        assert_eq!(d.port(), freed);
    }

    #[test]
    fn port_allocator_skips_ports_held_elsewhere() {
        let _squatter = UdpSocket::bind((LO, 47201)).unwrap(); // RTCP port of the first pair
        let alloc = PortAllocator::new(47200, 47203).unwrap();
        let (lease, rtp, rtcp) = alloc.bind(LO).unwrap();
        assert_eq!(lease.port(), 47202);
        assert_eq!(rtp.local_addr().unwrap().port(), 47202);
        assert_eq!(rtcp.local_addr().unwrap().port(), 47203);
    }

    #[test]
    fn port_allocator_rejects_bad_ranges() {
        assert!(PortAllocator::new(40001, 40999).is_err());
        assert!(PortAllocator::new(41000, 40000).is_err());
    }

    #[test]
    fn playback_flush_discards_older_frames_only() {
        let (tx, rx) = bounded(8);
        let q = PlaybackQueue {
            tx,
            generation: Arc::new(AtomicU32::new(0)),
        };
        q.push(&[1; FRAME_SAMPLES]).unwrap();
        q.push(&[2; FRAME_SAMPLES]).unwrap();
        q.flush();
        q.push(&[3; FRAME_SAMPLES]).unwrap();
        let current = q.generation.load(Ordering::Acquire);
        let kept: Vec<i16> = rx
            .try_iter()
            .filter(|f| f.generation == current)
            .map(|f| f.samples.samples()[0])
            .collect();
        assert_eq!(kept, vec![3]);
    }
}
