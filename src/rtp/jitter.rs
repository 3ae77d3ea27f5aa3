//! Jitter buffer (sans-IO): RTP packets in with their arrival time, one 20 ms frame of
//! PCM out per tick: 8 kHz for G.711, 16 kHz for G.722 (whose RTP clock is 8 kHz too,
//! so the placement by timestamp below is the same for both).
//!
//! Packets are placed by RTP timestamp into a preallocated ring of 20 ms slots, so
//! reordering, any packetisation time (10/20/30 ms…) and duplicates need no allocation.
//! Playout starts a target delay after the first packet of a talk spurt (default: three
//! times the measured jitter, 20–120 ms, plus at most one tick: this delay adds directly
//! to the agent's turn latency, and the listener is a recogniser, which a stalled
//! playout point (below) does not hurt the way it would a human ear).
//! When the buffer runs dry the playout point stalls (the delay grows by one frame)
//! instead of racing ahead; packets that still arrive too late are counted and dropped,
//! and three in a row, a far timestamp jump or a new SSRC re-synchronise the buffer.
//! Missing frames are concealed by repeating the last good frame with decaying gain,
//! then silence. G.711 is decoded as packets arrive; G.722 is stateful (ADPCM), so its
//! bytes are kept and decoded in playout order when the frame is popped. Sequence numbers feed the RFC 3550 loss statistics and duplicate
//! detection; arrival times feed the RFC 3550 A.8 interarrival jitter.

use super::frame::PcmFrame;
use super::rtcp::ReportBlock;
use crate::codec::g722::G722Decoder;
use crate::codec::AudioCodec;
use std::time::{Duration, Instant};

/// Samples in one 20 ms frame at 8 kHz, and RTP timestamp units per 20 ms frame (for
/// G.722 too: 320 samples at 16 kHz, RFC 3551 §4.5.2).
pub const FRAME_SAMPLES: usize = 160;
/// Duration of one frame.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);
/// RTP clock rate of G.711 and G.722.
pub const CLOCK_RATE: u32 = 8000;
/// One frame of 8 kHz mono PCM.
pub type Frame = [i16; FRAME_SAMPLES];

/// Gains applied to the repeated last frame during concealment; silence afterwards.
const CONCEAL_GAINS: [f32; 3] = [0.8, 0.5, 0.25];
/// Sequence jumps larger than this (RFC 3550 A.1 MAX_DROPOUT) restart the statistics.
const MAX_DROPOUT: i64 = 3000;
/// Backward jumps larger than this are a restart too (RFC 3550 A.1 MAX_MISORDER).
const MAX_MISORDER: i64 = 100;
/// Consecutive late packets that mean the playout point is wrong (peer clock jump).
const LATE_RESYNC: u32 = 3;
/// Frames the buffer may hold above the target before it starts dropping.
const EXCESS_FRAMES: i64 = 2;
/// Accumulated excess (frames × ticks) that costs one dropped frame (drift correction).
const EXCESS_BUDGET: u32 = 50;

/// How deep the buffer aims to be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Depth {
    /// Always this delay.
    Fixed(Duration),
    /// Three times the measured jitter, kept between `min` and `max`.
    Adaptive { min: Duration, max: Duration },
}

/// Jitter buffer settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterConfig {
    pub depth: Depth,
    /// Ring size in 20 ms frames (1 s by default): timestamp jumps beyond it resync.
    pub capacity_frames: usize,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            depth: Depth::Adaptive {
                min: Duration::from_millis(20),
                max: Duration::from_millis(120),
            },
            capacity_frames: 50,
        }
    }
}

/// What a popped frame contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Received audio.
    Audio,
    /// A repetition of the last frame with reduced gain (a packet was lost or late).
    Concealed,
    /// Nothing to play: before the first packet, while buffering, or after concealment ran out.
    Silence,
}

/// One 20 ms output frame.
#[derive(Debug, Clone, Copy)]
pub struct AudioFrame {
    pub samples: PcmFrame,
    pub kind: FrameKind,
}

/// What happened to a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored for playout.
    Buffered,
    /// Same sequence number seen before: dropped.
    Duplicate,
    /// Its playout time has passed: dropped.
    Late,
    /// The buffer restarted on this packet (new SSRC, timestamp jump, persistent lateness).
    Resync,
    /// Not audio we decode (e.g. comfort noise) or empty: dropped.
    Unsupported,
}

/// Counters since the buffer was created (across SSRC changes).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JitterStats {
    /// Packets accepted (not duplicates).
    pub received: u64,
    /// RFC 3550 cumulative loss: expected − received (can be negative with duplicates).
    pub lost: i64,
    /// Packets that arrived after their playout time.
    pub late: u64,
    pub duplicates: u64,
    pub unsupported: u64,
    /// Frames played from received audio.
    pub played: u64,
    /// Frames concealed by repetition.
    pub concealed: u64,
    /// Frames dropped to bring an over-deep buffer back to its target.
    pub dropped: u64,
    pub resyncs: u64,
    pub ssrc_changes: u64,
    /// Current interarrival jitter (RFC 3550 A.8) in milliseconds.
    pub jitter_ms: f64,
}

/// RFC 3550 A.1-style sequence tracking with a 128-packet duplicate window.
#[derive(Debug, Clone, Copy)]
struct SeqTracker {
    base: i64,
    max: i64,
    window: u128,
    received: u64,
    expected_prior: i64,
    received_prior: u64,
    lost_carry: i64,
}

enum SeqVerdict {
    New,
    Duplicate,
    Restart,
}

impl SeqTracker {
    fn new(seq: u16) -> Self {
        Self {
            base: seq as i64,
            max: seq as i64,
            window: 1,
            received: 1,
            expected_prior: 0,
            received_prior: 0,
            lost_carry: 0,
        }
    }

    fn update(&mut self, seq: u16) -> SeqVerdict {
        let delta = seq.wrapping_sub(self.max as u16) as i16 as i64;
        if !(-MAX_MISORDER..=MAX_DROPOUT).contains(&delta) {
            let carry = self.lost();
            *self = Self::new(seq);
            self.lost_carry = carry;
            return SeqVerdict::Restart;
        }
        if delta > 0 {
            self.window = if delta >= 128 {
                0
            } else {
                self.window << delta
            } | 1;
            self.max += delta;
        } else {
            let off = -delta;
            if off < 128 {
                if self.window & (1u128 << off) != 0 {
                    return SeqVerdict::Duplicate;
                }
                self.window |= 1u128 << off;
            }
            // Reordered before the first packet seen: it still belongs to the expected range.
            self.base = self.base.min(self.max + delta);
        }
        self.received += 1;
        SeqVerdict::New
    }

    fn expected(&self) -> i64 {
        self.max - self.base + 1
    }

    fn lost(&self) -> i64 {
        self.lost_carry + self.expected() - self.received as i64
    }

    /// Fraction lost since the previous call, in 1/256 (RFC 3550 A.3).
    fn fraction_lost(&mut self) -> u8 {
        let expected = self.expected();
        let exp_int = expected - self.expected_prior;
        let rec_int = self.received as i64 - self.received_prior as i64;
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_int = exp_int - rec_int;
        if exp_int <= 0 || lost_int <= 0 {
            0
        } else {
            ((lost_int << 8) / exp_int).min(255) as u8
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Frame number held, or `i64::MIN` when empty.
    frame: i64,
    filled: u16,
    /// G.711: decoded on arrival.
    samples: Frame,
    /// G.722: the payload bytes (one per timestamp unit), decoded at playout.
    wide: bool,
    bytes: [u8; FRAME_SAMPLES],
}

const EMPTY: Slot = Slot {
    frame: i64::MIN,
    filled: 0,
    samples: [0; FRAME_SAMPLES],
    wide: false,
    bytes: [0; FRAME_SAMPLES],
};

#[derive(Debug, Clone, Copy)]
struct Source {
    ssrc: u32,
    seq: SeqTracker,
    /// Timestamp unwrapping: the highest timestamp seen and its extended value.
    ts_ref: u32,
    ts_ref_ext: i64,
    /// RFC 3550 A.8 state, in timestamp units (jitter scaled by 16 as in the RFC).
    transit: Option<i64>,
    jitter16: u64,
}

/// See the module documentation.
pub struct JitterBuffer {
    cfg: JitterConfig,
    slots: Box<[Slot]>,
    source: Option<Source>,
    /// Reference instant for converting arrival times to timestamp units.
    epoch: Option<Instant>,
    /// Next frame number to play (timestamp / 160 relative to the source's first packet).
    next_frame: i64,
    /// Highest frame number holding data.
    highest_frame: i64,
    /// `Some(t)`: prebuffering until `t`; `None`: playing.
    play_at: Option<Instant>,
    /// No source yet (or reset): output silence.
    active: bool,
    last: PcmFrame,
    have_last: bool,
    /// Rate of the silence played when there is nothing else (the negotiated codec's).
    silence_rate: u32,
    g722: G722Decoder,
    conceal_run: usize,
    stalled: u32,
    late_run: u32,
    excess_run: u32,
    stats: JitterStats,
    lost_other_sources: i64,
}

impl JitterBuffer {
    pub fn new(cfg: JitterConfig) -> Self {
        let capacity = cfg.capacity_frames.max(4);
        Self {
            cfg: JitterConfig {
                capacity_frames: capacity,
                ..cfg
            },
            slots: vec![EMPTY; capacity].into_boxed_slice(),
            source: None,
            epoch: None,
            next_frame: 0,
            highest_frame: i64::MIN,
            play_at: None,
            active: false,
            last: PcmFrame::silence(8000),
            have_last: false,
            silence_rate: 8000,
            g722: G722Decoder::new(),
            conceal_run: 0,
            stalled: 0,
            late_run: 0,
            excess_run: 0,
            stats: JitterStats::default(),
            lost_other_sources: 0,
        }
    }

    /// Statistics so far.
    pub fn stats(&self) -> JitterStats {
        let mut s = self.stats;
        s.lost = self.lost_other_sources + self.source.map_or(0, |src| src.seq.lost());
        s.jitter_ms = self.source.map_or(0.0, |src| {
            (src.jitter16 as f64 / 16.0) * 1000.0 / CLOCK_RATE as f64
        });
        s
    }

    /// The negotiated codec's audio rate: silence (before the first packet, after
    /// concealment) is played at it, so the frames' rate only changes with the codec.
    pub fn set_audio_rate(&mut self, rate: u32) {
        self.silence_rate = rate;
    }

    /// SSRC of the current source, if any.
    pub fn ssrc(&self) -> Option<u32> {
        self.source.map(|s| s.ssrc)
    }

    /// The current target delay.
    pub fn target_delay(&self) -> Duration {
        match self.cfg.depth {
            Depth::Fixed(d) => d,
            Depth::Adaptive { min, max } => {
                let jitter = Duration::from_secs_f64(self.stats().jitter_ms * 3.0 / 1000.0);
                jitter.clamp(min, max.max(min))
            }
        }
    }

    fn target_frames(&self) -> i64 {
        self.target_delay()
            .as_millis()
            .div_ceil(FRAME_DURATION.as_millis()) as i64
    }

    /// A reception report block for RTCP on the current source (LSR/DLSR left for the
    /// caller, who knows when the peer's last SR arrived). Resets the fraction-lost interval.
    pub fn report_block(&mut self) -> Option<ReportBlock> {
        let lost = self.stats().lost;
        let src = self.source.as_mut()?;
        Some(ReportBlock {
            ssrc: src.ssrc,
            fraction_lost: src.seq.fraction_lost(),
            cumulative_lost: lost.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
            highest_seq: src.seq.max as u32,
            jitter: (src.jitter16 >> 4) as u32,
            last_sr: 0,
            delay_since_last_sr: 0,
        })
    }

    fn clear_slots(&mut self) {
        for s in self.slots.iter_mut() {
            s.frame = i64::MIN;
            s.filled = 0;
        }
        self.highest_frame = i64::MIN;
    }

    /// Restarts playout at `frame`, buffering for the target delay from `arrival`.
    fn restart_playout(&mut self, frame: i64, arrival: Instant) {
        self.next_frame = frame;
        self.play_at = Some(arrival + self.target_delay());
        self.stalled = 0;
        self.late_run = 0;
        self.excess_run = 0;
        self.active = true;
    }

    /// Stores one RTP packet (`payload_type`, `seq`, `timestamp`, `ssrc`, `marker`, `payload`)
    /// that arrived at `arrival`.
    #[allow(clippy::too_many_arguments)]
    pub fn push_parts(
        &mut self,
        payload_type: u8,
        seq: u16,
        timestamp: u32,
        ssrc: u32,
        marker: bool,
        payload: &[u8],
        arrival: Instant,
    ) -> PushOutcome {
        let epoch = *self.epoch.get_or_insert(arrival);
        let arrival_units = (arrival.saturating_duration_since(epoch).as_nanos()
            * CLOCK_RATE as u128
            / 1_000_000_000) as i64;

        let mut outcome = PushOutcome::Buffered;
        match self.source.as_mut() {
            Some(src) if src.ssrc == ssrc => match src.seq.update(seq) {
                SeqVerdict::Duplicate => {
                    self.stats.duplicates += 1;
                    return PushOutcome::Duplicate;
                }
                SeqVerdict::New => {}
                SeqVerdict::Restart => {
                    // Same SSRC, sequence restarted: treat like a new stream for timing too.
                    src.ts_ref = timestamp;
                    src.ts_ref_ext = 0;
                    src.transit = None;
                    self.clear_slots();
                    self.restart_playout(0, arrival);
                    self.stats.resyncs += 1;
                    outcome = PushOutcome::Resync;
                }
            },
            _ => {
                if let Some(old) = self.source {
                    self.lost_other_sources += old.seq.lost();
                    self.stats.ssrc_changes += 1;
                    self.stats.resyncs += 1;
                    outcome = PushOutcome::Resync;
                }
                // A new stream: G.722's predictors start from scratch too.
                self.g722 = G722Decoder::new();
                self.source = Some(Source {
                    ssrc,
                    seq: SeqTracker::new(seq),
                    ts_ref: timestamp,
                    ts_ref_ext: 0,
                    transit: None,
                    jitter16: 0,
                });
                self.clear_slots();
                self.restart_playout(0, arrival);
            }
        }
        self.stats.received += 1;

        // Telephone-events and comfort noise share the sequence space (so they count for
        // loss statistics) but carry no audio to place.
        let codec = match AudioCodec::from_payload_type(payload_type) {
            Some(c) if !payload.is_empty() => c,
            _ => {
                self.stats.unsupported += 1;
                return PushOutcome::Unsupported;
            }
        };
        let Some(src) = self.source.as_mut() else {
            return PushOutcome::Unsupported;
        };
        // Interarrival jitter, RFC 3550 A.8.
        let transit = arrival_units - timestamp as i64;
        if let Some(prev) = src.transit {
            let mut d = (transit - prev).rem_euclid(1 << 32);
            if d >= 1 << 31 {
                d -= 1 << 32;
            }
            let d = d.unsigned_abs();
            src.jitter16 = (src.jitter16 + d).saturating_sub((src.jitter16 + 8) >> 4);
        }
        src.transit = Some(transit);
        // Timestamp unwrapping relative to the highest timestamp seen.
        let ext_ts = src.ts_ref_ext + timestamp.wrapping_sub(src.ts_ref) as i32 as i64;
        if ext_ts > src.ts_ref_ext {
            src.ts_ref = timestamp;
            src.ts_ref_ext = ext_ts;
        }
        let frame = ext_ts.div_euclid(FRAME_SAMPLES as i64);
        let capacity = self.cfg.capacity_frames as i64;

        if outcome == PushOutcome::Buffered {
            if self.play_at.is_some() {
                // Still buffering. The first audio decides where playout starts (a
                // telephone-event may have come first); an earlier packet that arrived
                // reordered moves the start back.
                let first_audio = self.highest_frame == i64::MIN;
                if first_audio
                    || (frame < self.next_frame && self.next_frame - frame < capacity / 2)
                {
                    self.next_frame = frame;
                } else if frame >= self.next_frame + capacity {
                    self.clear_slots();
                    self.restart_playout(frame, arrival);
                    self.stats.resyncs += 1;
                    outcome = PushOutcome::Resync;
                }
            } else if frame < self.next_frame {
                self.stats.late += 1;
                self.late_run += 1;
                if self.late_run < LATE_RESYNC && self.next_frame - frame < capacity {
                    return PushOutcome::Late;
                }
                // Persistently late or far behind: the peer's timeline moved; follow it.
                self.clear_slots();
                self.restart_playout(frame, arrival);
                self.stats.resyncs += 1;
                outcome = PushOutcome::Resync;
            } else {
                let jump = frame >= self.next_frame + capacity;
                let dry = self.highest_frame < self.next_frame && frame > self.next_frame;
                if jump || (dry && (self.stalled > 0 || marker)) {
                    // A timestamp jump beyond the ring, or a new talk spurt after the buffer
                    // ran dry: start playout here instead of playing out the gap as silence.
                    self.clear_slots();
                    self.restart_playout(frame, arrival);
                    if jump {
                        self.stats.resyncs += 1;
                        outcome = PushOutcome::Resync;
                    }
                }
            }
        }
        self.late_run = 0;

        // Copy the decoded samples into their slots.
        let mut pos = ext_ts;
        let mut remaining = payload;
        while !remaining.is_empty() {
            let f = pos.div_euclid(FRAME_SAMPLES as i64);
            let off = pos.rem_euclid(FRAME_SAMPLES as i64) as usize;
            let n = (FRAME_SAMPLES - off).min(remaining.len());
            if f >= self.next_frame && f < self.next_frame + capacity {
                let idx = f.rem_euclid(capacity) as usize;
                let slot = &mut self.slots[idx];
                if slot.frame != f {
                    slot.frame = f;
                    slot.filled = 0;
                    slot.samples = [0; FRAME_SAMPLES];
                    slot.bytes = [0; FRAME_SAMPLES];
                }
                match codec.g711() {
                    Some(law) => {
                        slot.wide = false;
                        law.decode(&remaining[..n], &mut slot.samples[off..off + n]);
                    }
                    None => {
                        slot.wide = true;
                        slot.bytes[off..off + n].copy_from_slice(&remaining[..n]);
                    }
                }
                slot.filled = (slot.filled + n as u16).min(FRAME_SAMPLES as u16);
                self.highest_frame = self.highest_frame.max(f);
            }
            pos += n as i64;
            remaining = &remaining[n..];
        }
        outcome
    }

    /// Stores a parsed RTP packet.
    pub fn push(&mut self, pkt: &super::RtpPacket<'_>, arrival: Instant) -> PushOutcome {
        self.push_parts(
            pkt.payload_type(),
            pkt.sequence(),
            pkt.timestamp(),
            pkt.ssrc(),
            pkt.marker(),
            pkt.payload(),
            arrival,
        )
    }

    /// The frame to play now (call once per 20 ms tick).
    pub fn pop_frame(&mut self, now: Instant) -> AudioFrame {
        if !self.active {
            return self.silence();
        }
        if let Some(t) = self.play_at {
            if now < t {
                // Buffering (start of stream or after a resync): fade out what played last.
                return self.conceal();
            }
            self.play_at = None;
        }
        // Drift correction: a buffer persistently deeper than the target loses a frame.
        // The deeper it is, the faster it is trimmed (a 200 ms excess drains in about a second).
        let depth = if self.highest_frame >= self.next_frame {
            self.highest_frame - self.next_frame + 1
        } else {
            0
        };
        let excess = depth - self.target_frames();
        if excess > EXCESS_FRAMES {
            self.excess_run = self.excess_run.saturating_add(excess.min(1000) as u32);
            if self.excess_run >= EXCESS_BUDGET {
                self.excess_run = 0;
                let idx = self.next_frame.rem_euclid(self.slots.len() as i64) as usize;
                self.slots[idx].frame = i64::MIN;
                self.next_frame += 1;
                self.stats.dropped += 1;
            }
        } else {
            self.excess_run = 0;
        }

        let idx = self.next_frame.rem_euclid(self.slots.len() as i64) as usize;
        let slot = &mut self.slots[idx];
        if slot.frame == self.next_frame && slot.filled > 0 {
            let samples = if slot.wide {
                let mut f = PcmFrame::silence(16_000);
                self.g722.decode(&slot.bytes, f.samples_mut());
                f
            } else {
                PcmFrame::narrow(&slot.samples)
            };
            let out = AudioFrame {
                samples,
                kind: FrameKind::Audio,
            };
            slot.frame = i64::MIN;
            slot.filled = 0;
            self.last = out.samples;
            self.have_last = true;
            self.conceal_run = 0;
            self.stalled = 0;
            self.next_frame += 1;
            self.stats.played += 1;
            return out;
        }
        if self.highest_frame > self.next_frame {
            // Lost: later audio is here, move on.
            self.next_frame += 1;
        } else {
            // Ran dry: wait for the late packet instead of skipping it.
            self.stalled += 1;
        }
        self.conceal()
    }

    fn conceal(&mut self) -> AudioFrame {
        if self.have_last && self.conceal_run < CONCEAL_GAINS.len() {
            let gain = CONCEAL_GAINS[self.conceal_run];
            self.conceal_run += 1;
            self.stats.concealed += 1;
            let mut samples = self.last;
            for s in samples.samples_mut() {
                *s = (*s as f32 * gain) as i16;
            }
            AudioFrame {
                samples,
                kind: FrameKind::Concealed,
            }
        } else {
            self.have_last = false;
            self.silence()
        }
    }

    fn silence(&self) -> AudioFrame {
        AudioFrame {
            samples: PcmFrame::silence(self.silence_rate),
            kind: FrameKind::Silence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::G711;

    const PT: u8 = 0;

    /// A µ-law payload whose decoded samples all equal the decoding of `code`.
    fn payload(code: u8) -> [u8; FRAME_SAMPLES] {
        [code; FRAME_SAMPLES]
    }

    fn value(code: u8) -> i16 {
        G711::Pcmu.decode_sample(code)
    }

    /// Test harness: a sender with a seq/ts counter and a 20 ms tick clock.
    struct Sim {
        jb: JitterBuffer,
        t0: Instant,
        ssrc: u32,
    }

    impl Sim {
        fn new(depth: Depth) -> Self {
            Self {
                jb: JitterBuffer::new(JitterConfig {
                    depth,
                    capacity_frames: 50,
                }),
                t0: Instant::now(),
                ssrc: 0x1234,
            }
        }
        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }
        fn push(&mut self, seq: u16, ts: u32, code: u8, ms: u64) -> PushOutcome {
            let at = self.at(ms);
            self.jb
                .push_parts(PT, seq, ts, self.ssrc, false, &payload(code), at)
        }
        fn pop(&mut self, ms: u64) -> AudioFrame {
            let at = self.at(ms);
            self.jb.pop_frame(at)
        }
    }

    fn fixed40() -> Depth {
        Depth::Fixed(Duration::from_millis(40))
    }

    /// Codes used as frame markers: distinct µ-law bytes with distinct decoded values.
    fn code(i: u32) -> u8 {
        0x80 + (i % 100) as u8
    }

    #[test]
    fn in_order_stream_plays_every_frame_after_target_delay() {
        let mut s = Sim::new(fixed40());
        let mut played = Vec::new();
        for i in 0..20u32 {
            assert_eq!(
                s.push(i as u16, i * 160, code(i), i as u64 * 20),
                PushOutcome::Buffered
            );
            let f = s.pop(i as u64 * 20 + 1);
            if f.kind == FrameKind::Audio {
                played.push(f.samples.samples()[0]);
            }
        }
        // 40 ms target: the first frame plays at the third tick.
        let expected: Vec<i16> = (0..18).map(|i| value(code(i))).collect();
        assert_eq!(played, expected);
        let st = s.jb.stats();
        assert_eq!(st.lost, 0);
        assert_eq!(st.late, 0);
        assert!(st.jitter_ms < 0.5, "{}", st.jitter_ms);
    }

    #[test]
    fn reordered_packets_play_in_timestamp_order() {
        let mut s = Sim::new(fixed40());
        let order = [0u32, 2, 1, 3, 5, 4, 6, 7, 9, 8, 10, 11];
        let mut played = Vec::new();
        for (k, &i) in order.iter().enumerate() {
            s.push(i as u16, i * 160, code(i), k as u64 * 20);
            let f = s.pop(k as u64 * 20 + 1);
            if f.kind == FrameKind::Audio {
                played.push(f.samples.samples()[0]);
            }
        }
        let expected: Vec<i16> = (0..played.len() as u32).map(|i| value(code(i))).collect();
        assert_eq!(played, expected);
        assert!(played.len() >= 9);
        assert_eq!(s.jb.stats().lost, 0);
    }

    #[test]
    fn duplicates_are_dropped_and_counted() {
        let mut s = Sim::new(fixed40());
        assert_eq!(s.push(10, 1600, code(1), 0), PushOutcome::Buffered);
        assert_eq!(s.push(10, 1600, code(1), 1), PushOutcome::Duplicate);
        assert_eq!(s.push(11, 1760, code(2), 20), PushOutcome::Buffered);
        assert_eq!(s.push(10, 1600, code(1), 21), PushOutcome::Duplicate);
        let st = s.jb.stats();
        assert_eq!(st.duplicates, 2);
        assert_eq!(st.received, 2);
        assert_eq!(st.lost, 0);
    }

    #[test]
    fn sequence_and_timestamp_wrap_around() {
        let mut s = Sim::new(fixed40());
        let seq0 = 65530u16;
        let ts0 = u32::MAX - 3 * 160 + 1;
        let mut played = Vec::new();
        for i in 0..30u32 {
            let seq = seq0.wrapping_add(i as u16);
            let ts = ts0.wrapping_add(i * 160);
            assert_eq!(
                s.push(seq, ts, code(i), i as u64 * 20),
                PushOutcome::Buffered,
                "i={i}"
            );
            let f = s.pop(i as u64 * 20 + 1);
            if f.kind == FrameKind::Audio {
                played.push(f.samples.samples()[0]);
            }
        }
        let expected: Vec<i16> = (0..28).map(|i| value(code(i))).collect();
        assert_eq!(played, expected);
        let st = s.jb.stats();
        assert_eq!((st.lost, st.late, st.resyncs), (0, 0, 0));
        let rb = s.jb.report_block().unwrap();
        assert_eq!(rb.highest_seq, 65536 + 23); // one cycle, seq 23
    }

    #[test]
    fn loss_is_concealed_with_decaying_gain_then_silence() {
        let mut s = Sim::new(fixed40());
        let loud = 0x80u8; // large positive sample
                           // Frames 0..3 arrive, 4..9 are lost, 10.. arrive.
        for i in 0..4u32 {
            s.push(i as u16, i * 160, loud, i as u64 * 20);
        }
        let mut kinds = Vec::new();
        let mut levels = Vec::new();
        for k in 0..16u64 {
            let i = k as u32 + 4;
            if i >= 10 {
                s.push(i as u16, i * 160, loud, (i as u64) * 20);
            }
            let f = s.pop(k * 20 + 41 + 40);
            kinds.push(f.kind);
            levels.push(f.samples.samples()[0]);
        }
        use FrameKind::*;
        // 4 played, then 3 concealed frames with falling level, then silence until frame 10.
        assert_eq!(&kinds[..4], &[Audio, Audio, Audio, Audio]);
        assert_eq!(&kinds[4..7], &[Concealed, Concealed, Concealed]);
        assert!(levels[3] > levels[4] && levels[4] > levels[5] && levels[5] > levels[6]);
        assert!(kinds[7..].contains(&Audio));
        assert_eq!(kinds[7], Silence);
        let st = s.jb.stats();
        assert_eq!(st.lost, 6);
        assert_eq!(st.concealed, 3);
    }

    #[test]
    fn late_packet_is_dropped_and_counted() {
        let mut s = Sim::new(fixed40());
        s.push(0, 0, code(0), 0);
        s.push(2, 320, code(2), 40);
        s.push(3, 480, code(3), 60);
        s.pop(41); // plays 0
        s.pop(61); // conceals 1 (2 is here), moves on
        assert_eq!(s.push(1, 160, code(1), 62), PushOutcome::Late);
        let f = s.pop(81);
        assert_eq!(f.samples.samples()[0], value(code(2)));
        let st = s.jb.stats();
        assert_eq!(st.late, 1);
        assert_eq!(st.lost, 0, "a late packet was received, not lost");
    }

    #[test]
    fn ssrc_change_resets_playout() {
        let mut s = Sim::new(fixed40());
        for i in 0..5u32 {
            s.push(100 + i as u16, 5000 + i * 160, code(1), i as u64 * 20);
            s.pop(i as u64 * 20 + 1);
        }
        s.ssrc = 0x9999;
        assert_eq!(s.push(7, 777_777, code(50), 100), PushOutcome::Resync);
        assert_eq!(s.jb.ssrc(), Some(0x9999));
        // Buffering again for 40 ms, then the new stream plays.
        assert_eq!(s.pop(101).kind, FrameKind::Concealed);
        s.push(8, 777_777 + 160, code(51), 120);
        s.pop(121);
        let f = s.pop(141);
        assert_eq!(f.kind, FrameKind::Audio);
        assert_eq!(f.samples.samples()[0], value(code(50)));
        assert_eq!(s.jb.stats().ssrc_changes, 1);
    }

    #[test]
    fn timestamp_jump_forward_resyncs_without_playing_the_gap() {
        let mut s = Sim::new(fixed40());
        for i in 0..4u32 {
            s.push(i as u16, i * 160, code(1), i as u64 * 20);
            s.pop(i as u64 * 20 + 1);
        }
        // Timestamp jumps 10 s ahead (peer restarted its media clock), seq continues.
        assert_eq!(s.push(4, 80_000, code(9), 80), PushOutcome::Resync);
        s.push(5, 80_160, code(10), 100);
        s.push(6, 80_320, code(11), 120);
        let mut got = Vec::new();
        for k in 0..5u64 {
            let f = s.pop(81 + k * 20);
            if f.kind == FrameKind::Audio {
                got.push(f.samples.samples()[0]);
            }
        }
        assert_eq!(got[..3], [value(code(9)), value(code(10)), value(code(11))]);
    }

    #[test]
    fn timestamp_jump_backward_resyncs_after_repeated_lateness() {
        let mut s = Sim::new(fixed40());
        for i in 0..6u32 {
            s.push(i as u16, 16_000 + i * 160, code(1), i as u64 * 20);
            s.pop(i as u64 * 20 + 1);
        }
        // The peer's timestamps go back by 400 ms but keep flowing.
        let mut outcomes = Vec::new();
        for k in 0..4u32 {
            outcomes.push(s.push(6 + k as u16, 12_800 + k * 160, code(2), 120 + k as u64 * 20));
            s.pop(121 + k as u64 * 20);
        }
        assert_eq!(
            &outcomes[..3],
            &[PushOutcome::Late, PushOutcome::Late, PushOutcome::Resync]
        );
        let f = s.pop(201);
        assert_eq!(f.kind, FrameKind::Audio);
    }

    #[test]
    fn underrun_stalls_instead_of_skipping_a_late_packet() {
        let mut s = Sim::new(fixed40());
        s.push(0, 0, code(0), 0);
        s.push(1, 160, code(1), 20);
        assert_eq!(s.pop(41).samples.samples()[0], value(code(0)));
        assert_eq!(s.pop(61).samples.samples()[0], value(code(1)));
        // Packet 2 is 30 ms late: the tick at 81 conceals without skipping it.
        assert_eq!(s.pop(81).kind, FrameKind::Concealed);
        assert_eq!(s.push(2, 320, code(2), 90), PushOutcome::Buffered);
        assert_eq!(s.pop(101).samples.samples()[0], value(code(2)));
        assert_eq!(s.jb.stats().late, 0);
    }

    #[test]
    fn new_talk_spurt_after_silence_does_not_play_the_gap() {
        let mut s = Sim::new(fixed40());
        for i in 0..3u32 {
            s.push(i as u16, i * 160, code(i), i as u64 * 20);
        }
        for k in 0..10u64 {
            s.pop(41 + k * 20);
        }
        // Peer was silent (DTX) for 300 ms, resumes with the matching timestamp and marker.
        let at = s.at(260);
        s.jb.push_parts(PT, 3, 3 * 160 + 2400, s.ssrc, true, &payload(code(7)), at);
        s.pop(261);
        s.pop(281);
        let f = s.pop(301);
        assert_eq!(
            f.kind,
            FrameKind::Audio,
            "plays within the target delay, not after 300 ms"
        );
        assert_eq!(f.samples.samples()[0], value(code(7)));
    }

    #[test]
    fn ten_millisecond_packets_fill_frames() {
        let mut s = Sim::new(fixed40());
        for i in 0..12u32 {
            let at = s.at(i as u64 * 10);
            s.jb.push_parts(PT, i as u16, i * 80, s.ssrc, false, &[code(i / 2); 80], at);
        }
        let f = s.pop(41);
        assert_eq!(f.kind, FrameKind::Audio);
        assert!(f.samples.samples().iter().all(|&x| x == value(code(0))));
    }

    #[test]
    fn sender_faster_than_playout_is_trimmed() {
        let mut s = Sim::new(fixed40());
        // Burst: 20 frames delivered at once, then steady.
        for i in 0..20u32 {
            s.push(i as u16, i * 160, code(i), 0);
        }
        for k in 0..60u64 {
            let i = 20 + k as u32;
            s.push(i as u16, i * 160, code(i), 20 + k * 20);
            s.pop(41 + k * 20);
        }
        let st = s.jb.stats();
        assert!(st.dropped >= 10, "{st:?}");
    }

    #[test]
    fn jitter_estimate_follows_rfc3550() {
        let mut s = Sim::new(fixed40());
        // Alternate arrival offsets 0 and +10 ms: |D| = 80 units every packet.
        for i in 0..400u32 {
            let extra = if i % 2 == 0 { 0 } else { 10 };
            s.push(i as u16, i * 160, code(0), i as u64 * 20 + extra);
        }
        let j = s.jb.stats().jitter_ms;
        assert!((j - 10.0).abs() < 0.5, "jitter {j} ms");
        let rb = s.jb.report_block().unwrap();
        assert!((rb.jitter as i64 - 80).abs() <= 4, "{rb:?}");
    }

    #[test]
    fn fraction_lost_per_interval() {
        let mut s = Sim::new(fixed40());
        for i in 0..8u16 {
            if i % 2 == 0 {
                s.push(i, i as u32 * 160, code(0), i as u64 * 20);
            }
        }
        s.push(8, 8 * 160, code(0), 160);
        let rb = s.jb.report_block().unwrap();
        // 9 expected, 5 received → 4/9 lost.
        assert_eq!(rb.cumulative_lost, 4);
        assert_eq!(rb.fraction_lost, (4 * 256 / 9) as u8);
        s.push(9, 9 * 160, code(0), 180);
        assert_eq!(s.jb.report_block().unwrap().fraction_lost, 0);
    }

    #[test]
    fn only_telephone_events_never_overflow_depth() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let t0 = Instant::now();
        for i in 0..20u16 {
            let at = t0 + FRAME_DURATION * i as u32;
            jb.push_parts(101, i, 0, 1, i == 0, &[1, 0, 0, 160], at);
            assert_eq!(jb.pop_frame(at).kind, FrameKind::Silence);
        }
    }

    #[test]
    fn audio_after_a_leading_telephone_event_starts_without_a_gap() {
        let mut s = Sim::new(fixed40());
        let at = s.at(0);
        s.jb.push_parts(101, 1, 1000, s.ssrc, true, &[5, 0x0A, 0, 160], at);
        s.push(2, 1000 + 4 * 160, code(3), 0);
        s.push(3, 1000 + 5 * 160, code(4), 20);
        s.pop(1);
        s.pop(21);
        let f = s.pop(41);
        assert_eq!(f.kind, FrameKind::Audio);
        assert_eq!(f.samples.samples()[0], value(code(3)));
    }

    #[test]
    fn non_g711_payload_is_refused() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let now = Instant::now();
        assert_eq!(
            jb.push_parts(13, 1, 0, 1, false, &[0; 1], now),
            PushOutcome::Unsupported
        );
        assert_eq!(
            jb.push_parts(0, 2, 0, 1, false, &[], now),
            PushOutcome::Unsupported
        );
        // A telephone-event packet between audio packets is not counted as lost audio.
        jb.push_parts(0, 3, 0, 1, false, &[0xFF; 160], now);
        jb.push_parts(101, 4, 160, 1, false, &[1, 0, 0, 160], now);
        jb.push_parts(0, 5, 320, 1, false, &[0xFF; 160], now);
        assert_eq!(jb.pop_frame(now).kind, FrameKind::Silence);
        let st = jb.stats();
        assert_eq!((st.lost, st.unsupported), (0, 3));
    }

    #[test]
    fn g722_packets_play_as_16_khz_frames_decoded_in_timestamp_order() {
        use crate::codec::g722::{G722Decoder, G722Encoder};
        // 1 s of a 1 kHz tone at 16 kHz, encoded in 20 ms packets (160 bytes, timestamp
        // step 160: RFC 3551's 8 kHz clock for G.722).
        let pcm: Vec<i16> = (0..16_000)
            .map(|i| (8000.0 * (i as f64 / 16_000.0 * 1000.0 * std::f64::consts::TAU).sin()) as i16)
            .collect();
        let mut enc = G722Encoder::new();
        let packets: Vec<[u8; 160]> = pcm
            .chunks_exact(320)
            .map(|c| {
                let mut p = [0u8; 160];
                assert_eq!(enc.encode(c, &mut p), 160);
                p
            })
            .collect();
        // What an in-order decoder makes of the stream: the reference.
        let mut dec = G722Decoder::new();
        let mut reference = Vec::new();
        for p in &packets {
            let mut f = [0i16; 320];
            dec.decode(p, &mut f);
            reference.extend_from_slice(&f);
        }
        let mut s = Sim::new(fixed40());
        s.jb.set_audio_rate(16_000);
        assert!(
            s.pop(0).samples.is_wideband(),
            "silence at the codec's rate"
        );
        // Pairs swapped in flight: 1 0 3 2 5 4 ...
        let mut played = Vec::new();
        for k in 0..packets.len() {
            let i = k ^ 1;
            let at = s.at(k as u64 * 20);
            let out =
                s.jb.push_parts(9, i as u16, i as u32 * 160, s.ssrc, false, &packets[i], at);
            assert_ne!(out, PushOutcome::Unsupported);
            let f = s.pop(k as u64 * 20 + 1);
            assert!(f.samples.is_wideband());
            if f.kind == FrameKind::Audio {
                played.extend_from_slice(f.samples.samples());
            }
        }
        assert!(played.len() >= 45 * 320, "{} samples played", played.len());
        // Reordering does not reach the stateful decoder: playout equals in-order decoding.
        assert_eq!(played[..], reference[..played.len()]);
        assert_eq!(s.jb.stats().lost, 0);
    }
}
