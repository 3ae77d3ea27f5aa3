//! Outbound pacing and RTP stream state (sans-IO).
//!
//! Packet n is due at `start + n × 20 ms`, computed from the absolute start rather than
//! by adding 20 ms to the previous send time, so scheduling error never accumulates:
//! over a 10-minute call the 30 000th packet is due exactly 600 s after the first.
//! The RTP timestamp is derived from the same index, so it stays locked to the
//! schedule even when a tick is skipped after a long stall.

use super::jitter::{FRAME_DURATION, FRAME_SAMPLES};
use super::packet::RtpHeader;
use std::time::{Duration, Instant};

/// Behind by more than this many periods (the thread was descheduled), skip ahead
/// instead of bursting a backlog of stale packets at the peer.
const MAX_BURST: u64 = 3;

/// One send opportunity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// Packet index since the start (drives the RTP timestamp).
    pub index: u64,
    /// When it was due.
    pub due: Instant,
    /// How late the caller polled relative to `due`.
    pub lateness: Duration,
}

/// A drift-free 20 ms (or any period) schedule.
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    period: Duration,
    next: u64,
    skipped: u64,
}

impl Pacer {
    /// A schedule whose packet 0 is due at `start`.
    pub fn new(start: Instant, period: Duration) -> Self {
        Self {
            start,
            period: period.max(Duration::from_micros(1)),
            next: 0,
            skipped: 0,
        }
    }

    /// A 20 ms schedule.
    pub fn twenty_ms(start: Instant) -> Self {
        Self::new(start, FRAME_DURATION)
    }

    fn due_of(&self, index: u64) -> Instant {
        let nanos = self.period.as_nanos() * index as u128;
        self.start + Duration::from_nanos(nanos.min(u64::MAX as u128) as u64)
    }

    /// When the next packet is due (sleep until then).
    pub fn next_due(&self) -> Instant {
        self.due_of(self.next)
    }

    /// Ticks skipped because the caller fell more than a few periods behind.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The due tick, if `now` has reached it. Call repeatedly until `None`.
    pub fn poll(&mut self, now: Instant) -> Option<Tick> {
        let due = self.next_due();
        if now < due {
            return None;
        }
        let behind = (now - due).as_nanos() / self.period.as_nanos();
        if behind as u64 > MAX_BURST {
            // Jump to the most recent tick; the skipped ones are never sent.
            let jump = behind as u64;
            self.skipped += jump;
            self.next += jump;
        }
        let index = self.next;
        let due = self.due_of(index);
        self.next += 1;
        Some(Tick {
            index,
            due,
            lateness: now - due,
        })
    }
}

/// Sequence number, timestamp and SSRC of one outbound RTP stream.
#[derive(Debug, Clone)]
pub struct RtpStream {
    pub ssrc: u32,
    next_seq: u16,
    ts_base: u32,
    /// Packets and payload octets sent (for the RTCP sender report).
    pub packets: u32,
    pub octets: u32,
    last_was_audio: bool,
}

impl RtpStream {
    /// A stream with random SSRC, initial sequence number and timestamp (RFC 3550 §5.1).
    pub fn random() -> Self {
        Self::new(rand::random(), rand::random(), rand::random())
    }

    pub fn new(ssrc: u32, first_seq: u16, ts_base: u32) -> Self {
        Self {
            ssrc,
            next_seq: first_seq,
            ts_base,
            packets: 0,
            octets: 0,
            last_was_audio: false,
        }
    }

    /// RTP timestamp of the frame sent at pacer tick `index`.
    pub fn timestamp_of(&self, index: u64) -> u32 {
        self.ts_base
            .wrapping_add((index as u32).wrapping_mul(FRAME_SAMPLES as u32))
    }

    /// Header for an audio packet at tick `index`. `speech` says whether the frame is
    /// real audio (vs. comfort silence); the marker is set on the first speech frame
    /// after silence, the start of a talk spurt (RFC 3551 §4.1).
    pub fn audio_header(&mut self, payload_type: u8, index: u64, speech: bool) -> RtpHeader {
        let marker = speech && !self.last_was_audio;
        self.last_was_audio = speech;
        self.header(payload_type, self.timestamp_of(index), marker)
    }

    /// Header with an explicit timestamp (telephone-events keep the event's start time).
    pub fn header(&mut self, payload_type: u8, timestamp: u32, marker: bool) -> RtpHeader {
        let h = RtpHeader {
            marker,
            payload_type,
            sequence: self.next_seq,
            timestamp,
            ssrc: self.ssrc,
        };
        self.next_seq = self.next_seq.wrapping_add(1);
        h
    }

    /// Records a sent packet for the sender report.
    pub fn count_sent(&mut self, payload_len: usize) {
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload_len as u32);
    }

    /// Forgets the talk-spurt state (after DTMF, the next speech frame gets a marker).
    pub fn end_talk_spurt(&mut self) {
        self.last_was_audio = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_minutes_without_drift() {
        let t0 = Instant::now();
        let mut p = Pacer::twenty_ms(t0);
        // Simulate a caller that always wakes 0..3 ms late (scheduler noise).
        let mut sent = 0u64;
        let mut last = None;
        for n in 0..30_000u64 {
            let wake = p.next_due() + Duration::from_micros((n * 7919) % 3000);
            let tick = p.poll(wake).expect("due");
            assert_eq!(tick.index, n);
            assert!(p.poll(wake).is_none(), "only one packet per period");
            last = Some(tick);
            sent += 1;
        }
        let last = last.unwrap();
        assert_eq!(sent, 30_000);
        // Packet 29 999 is due exactly 599.98 s after the start: no accumulated error.
        assert_eq!(last.due - t0, Duration::from_millis(599_980));
        assert_eq!(p.next_due() - t0, Duration::from_secs(600));
        assert_eq!(p.skipped(), 0);
    }

    #[test]
    fn not_due_before_time() {
        let t0 = Instant::now();
        let mut p = Pacer::twenty_ms(t0);
        assert_eq!(p.poll(t0).unwrap().index, 0);
        assert!(p.poll(t0 + Duration::from_millis(19)).is_none());
        let t = p.poll(t0 + Duration::from_millis(21)).unwrap();
        assert_eq!((t.index, t.lateness), (1, Duration::from_millis(1)));
    }

    #[test]
    fn short_stall_catches_up_long_stall_skips() {
        let t0 = Instant::now();
        let mut p = Pacer::twenty_ms(t0);
        p.poll(t0);
        // 50 ms late: packets 1 and 2 are both due, sent back to back.
        let now = t0 + Duration::from_millis(70);
        assert_eq!(p.poll(now).unwrap().index, 1);
        assert_eq!(p.poll(now).unwrap().index, 2);
        assert_eq!(p.poll(now).unwrap().index, 3);
        assert!(p.poll(now).is_none());
        // A 1 s stall: skip to the current tick, keep the schedule.
        let now = t0 + Duration::from_millis(1_085);
        let t = p.poll(now).unwrap();
        assert_eq!(t.index, 54);
        assert_eq!(t.due - t0, Duration::from_millis(1_080));
        assert_eq!(p.skipped(), 50);
        assert!(p.poll(now).is_none());
    }

    #[test]
    fn stream_sequence_timestamp_and_marker() {
        let mut s = RtpStream::new(7, 65535, u32::MAX - 159);
        let h0 = s.audio_header(0, 0, false);
        let h1 = s.audio_header(0, 1, true);
        let h2 = s.audio_header(0, 2, true);
        let h3 = s.audio_header(0, 3, false);
        let h4 = s.audio_header(0, 4, true);
        assert_eq!((h0.sequence, h1.sequence, h2.sequence), (65535, 0, 1));
        assert_eq!(
            (h0.timestamp, h1.timestamp, h2.timestamp),
            (u32::MAX - 159, 0, 160)
        );
        assert_eq!(
            [h0.marker, h1.marker, h2.marker, h3.marker, h4.marker],
            [false, true, false, false, true]
        );
        assert_eq!(h4.ssrc, 7);
    }
}
