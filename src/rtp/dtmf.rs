//! RFC 4733 telephone-events (DTMF) over RTP, sans-IO.
//!
//! One key press is one event: every packet of it carries the same RTP timestamp (the
//! event start) and a growing duration; the last packet has the E bit and is sent
//! three times. The receiver therefore identifies an event by its timestamp: it
//! reports a digit on the first packet it sees of a new timestamp (start, update or
//! end, so losing the start packets loses nothing), ignores further packets of the
//! same event (including the repeated ends) and events older than the last one
//! reported, so digits come out once each and in order.

use super::RtpError;
use std::time::Duration;

/// A digit received from the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfEvent {
    /// `0`–`9`, `*`, `#`, `A`–`D`.
    pub digit: char,
    /// RTP timestamp of the event start.
    pub timestamp: u32,
}

/// RFC 4733 event code (0–15) for a DTMF character.
pub fn event_code(digit: char) -> Option<u8> {
    match digit.to_ascii_uppercase() {
        d @ '0'..='9' => Some(d as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        d @ 'A'..='D' => Some(d as u8 - b'A' + 12),
        _ => None,
    }
}

/// DTMF character for an RFC 4733 event code.
pub fn digit_of(code: u8) -> Option<char> {
    match code {
        0..=9 => Some((b'0' + code) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + code - 12) as char),
        _ => None,
    }
}

/// Receive side: turns telephone-event packets into digits, once each.
#[derive(Debug, Default, Clone)]
pub struct DtmfReceiver {
    last: Option<u32>,
    /// Packets ignored (repeats, stale or non-DTMF events, malformed).
    pub ignored: u64,
}

impl DtmfReceiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one telephone-event packet (its RTP timestamp and payload).
    pub fn on_packet(&mut self, timestamp: u32, payload: &[u8]) -> Option<DtmfEvent> {
        if payload.len() < 4 {
            self.ignored += 1;
            return None;
        }
        let Some(digit) = digit_of(payload[0]) else {
            self.ignored += 1;
            return None;
        };
        if let Some(last) = self.last {
            // Same event, or an older one arriving late (wrapping comparison).
            if (timestamp.wrapping_sub(last) as i32) <= 0 {
                self.ignored += 1;
                return None;
            }
        }
        self.last = Some(timestamp);
        Some(DtmfEvent { digit, timestamp })
    }

    /// Forgets the last event (after an SSRC change the new stream's timestamps are unrelated).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

/// One telephone-event packet to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPacket {
    /// The 4-byte RFC 4733 payload.
    pub payload: [u8; 4],
    /// Set on the first packet of the event.
    pub marker: bool,
    /// Pacer tick at which the event started: its RTP timestamp is that tick's.
    pub start_index: u64,
    /// The E bit.
    pub end: bool,
}

#[derive(Debug, Clone, Copy)]
struct Sending {
    code: u8,
    start_index: Option<u64>,
    frames: u32,
    sent: u32,
    ends_sent: u8,
}

/// Send side: one packet per 20 ms tick while an event is in progress.
#[derive(Debug, Clone, Default)]
pub struct DtmfSender {
    current: Option<Sending>,
    /// Volume field (dBm0 below zero); 10 is the customary value.
    pub volume: u8,
}

impl DtmfSender {
    pub fn new() -> Self {
        Self {
            current: None,
            volume: 10,
        }
    }

    /// Whether an event is being sent (audio packets are suspended meanwhile).
    pub fn is_active(&self) -> bool {
        self.current.is_some()
    }

    /// Starts sending `digit` for `duration` (rounded up to 20 ms, at least 40 ms).
    pub fn start(&mut self, digit: char, duration: Duration) -> Result<(), RtpError> {
        let code = event_code(digit).ok_or(RtpError::InvalidDigit(digit))?;
        if self.current.is_some() {
            return Err(RtpError::DtmfBusy);
        }
        let frames = (duration.as_millis().div_ceil(20) as u32).clamp(2, 400);
        self.current = Some(Sending {
            code,
            start_index: None,
            frames,
            sent: 0,
            ends_sent: 0,
        });
        Ok(())
    }

    /// The packet for pacer tick `index`, if an event is in progress.
    pub fn next_packet(&mut self, index: u64) -> Option<DtmfPacket> {
        let cur = self.current.as_mut()?;
        let start_index = *cur.start_index.get_or_insert(index);
        let marker = cur.sent == 0;
        if cur.sent < cur.frames {
            cur.sent += 1;
        }
        let end = cur.sent >= cur.frames;
        if end {
            cur.ends_sent += 1;
        }
        let duration = (cur.sent * 160).min(u16::MAX as u32) as u16;
        let d = duration.to_be_bytes();
        let payload = [
            cur.code,
            (if end { 0x80 } else { 0 }) | (self.volume & 0x3F),
            d[0],
            d[1],
        ];
        if cur.ends_sent >= 3 {
            self.current = None;
        }
        Some(DtmfPacket {
            payload,
            marker,
            start_index,
            end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(code: u8, end: bool, duration: u16) -> [u8; 4] {
        let d = duration.to_be_bytes();
        [code, if end { 0x8A } else { 0x0A }, d[0], d[1]]
    }

    #[test]
    fn each_digit_reported_once_despite_repeated_ends() {
        let mut r = DtmfReceiver::new();
        let mut got = Vec::new();
        for (ts, code) in [(1000u32, 1u8), (3000, 2), (5000, 11)] {
            for (i, end) in [false, false, false, true, true, true]
                .into_iter()
                .enumerate()
            {
                if let Some(e) = r.on_packet(ts, &pkt(code, end, (i as u16 + 1) * 160)) {
                    got.push(e.digit);
                }
            }
        }
        assert_eq!(got, vec!['1', '2', '#']);
        assert_eq!(r.ignored, 15);
    }

    #[test]
    fn lost_start_packets_still_report_the_digit() {
        let mut r = DtmfReceiver::new();
        // Only the end packets of '5' arrive.
        assert_eq!(
            r.on_packet(800, &pkt(5, true, 800)).map(|e| e.digit),
            Some('5')
        );
        assert_eq!(r.on_packet(800, &pkt(5, true, 800)), None);
        // Same digit pressed again: new timestamp, new report.
        assert_eq!(
            r.on_packet(2400, &pkt(5, false, 160)).map(|e| e.digit),
            Some('5')
        );
    }

    #[test]
    fn stale_event_after_newer_one_is_ignored_and_wrap_is_handled() {
        let mut r = DtmfReceiver::new();
        assert!(r.on_packet(u32::MAX - 100, &pkt(7, false, 160)).is_some());
        assert!(r.on_packet(500, &pkt(8, false, 160)).is_some()); // after the wrap
        assert!(r.on_packet(u32::MAX - 100, &pkt(7, true, 800)).is_none()); // late end of '7'
        assert!(r.on_packet(1, &[1, 2]).is_none()); // too short
        assert!(r.on_packet(9000, &pkt(16, false, 160)).is_none()); // flash, not DTMF
    }

    #[test]
    fn sender_emits_start_updates_and_three_ends_with_one_timestamp() {
        let mut s = DtmfSender::new();
        s.start('#', Duration::from_millis(100)).unwrap();
        assert!(matches!(
            s.start('1', Duration::from_millis(100)),
            Err(RtpError::DtmfBusy)
        ));
        let pkts: Vec<_> = (40..50).map_while(|i| s.next_packet(i)).collect();
        assert_eq!(pkts.len(), 5 + 2); // 5 frames (last is the first end) + 2 repeats
        assert!(pkts[0].marker && pkts[1..].iter().all(|p| !p.marker));
        assert!(pkts
            .iter()
            .all(|p| p.start_index == 40 && p.payload[0] == 11));
        assert_eq!(pkts.iter().filter(|p| p.end).count(), 3);
        let durations: Vec<u16> = pkts
            .iter()
            .map(|p| u16::from_be_bytes([p.payload[2], p.payload[3]]))
            .collect();
        assert_eq!(durations, vec![160, 320, 480, 640, 800, 800, 800]);
        assert!(!s.is_active());
        // Round trip through the receiver: one '#'.
        let mut r = DtmfReceiver::new();
        let got: Vec<_> = pkts
            .iter()
            .filter_map(|p| r.on_packet(6400, &p.payload))
            .collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].digit, '#');
    }

    #[test]
    fn digit_mapping() {
        for (c, code) in [
            ('0', 0),
            ('9', 9),
            ('*', 10),
            ('#', 11),
            ('a', 12),
            ('D', 15),
        ] {
            assert_eq!(event_code(c), Some(code));
            assert_eq!(digit_of(code), Some(c.to_ascii_uppercase()));
        }
        assert_eq!(event_code('x'), None);
        assert!(matches!(
            DtmfSender::new().start('x', Duration::from_millis(80)),
            Err(RtpError::InvalidDigit('x'))
        ));
    }
}
