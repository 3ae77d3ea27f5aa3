//! Basic RTCP (RFC 3550 §6.4): sender and receiver reports with report blocks, plus the
//! SDES CNAME every compound packet must carry.
//!
//! Peers and PBXs use RTCP for call-quality statistics and some drop calls whose RTCP
//! goes silent, so the agent sends a report every few seconds and reads the peer's
//! reports (loss, jitter, round-trip time). Parsing is zero-copy over compound packets.

use super::RtpError;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// RTCP packet types.
pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_SDES: u8 = 202;
pub const PT_BYE: u8 = 203;

/// Seconds between 1900-01-01 (NTP epoch) and 1970-01-01 (Unix epoch).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// 64-bit NTP timestamp (32.32 fixed point seconds since 1900) for a wall-clock time.
pub fn ntp_timestamp(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs() + NTP_UNIX_OFFSET;
    let frac = ((d.subsec_nanos() as u64) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The middle 32 bits of an NTP timestamp, as used in LSR and for round-trip times.
pub fn ntp_middle32(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// Duration in units of 1/65536 s (the DLSR field).
pub fn to_dlsr(d: Duration) -> u32 {
    ((d.as_nanos() << 16) / 1_000_000_000).min(u32::MAX as u128) as u32
}

/// Round-trip time from a report block received at `now_ntp` (RFC 3550 §6.4.1):
/// A − LSR − DLSR. `None` when the peer has not seen a sender report from us yet.
pub fn round_trip_time(now_ntp: u64, block: &ReportBlock) -> Option<Duration> {
    if block.last_sr == 0 {
        return None;
    }
    let rtt = ntp_middle32(now_ntp)
        .wrapping_sub(block.last_sr)
        .wrapping_sub(block.delay_since_last_sr);
    // A negative result (clock glitch) wraps to a huge value: reject anything over a minute.
    (rtt < 60 << 16).then(|| Duration::from_nanos(((rtt as u64) * 1_000_000_000) >> 16))
}

/// One reception report block (24 bytes on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// Source this block reports on.
    pub ssrc: u32,
    /// Fraction of packets lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed: duplicates can make it negative).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles << 16 | seq).
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units (RFC 3550 A.8).
    pub jitter: u32,
    /// Middle 32 bits of the NTP time of the last SR received from that source (0 if none).
    pub last_sr: u32,
    /// Delay since that SR in 1/65536 s.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    const LEN: usize = 24;

    fn write(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.ssrc.to_be_bytes());
        let lost = self.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32 & 0x00FF_FFFF;
        out[4..8].copy_from_slice(&(((self.fraction_lost as u32) << 24) | lost).to_be_bytes());
        out[8..12].copy_from_slice(&self.highest_seq.to_be_bytes());
        out[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        out[16..20].copy_from_slice(&self.last_sr.to_be_bytes());
        out[20..24].copy_from_slice(&self.delay_since_last_sr.to_be_bytes());
    }

    fn read(b: &[u8]) -> Self {
        let w = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let lost_word = w(4);
        // Sign-extend the 24-bit cumulative loss.
        let cumulative_lost = ((lost_word << 8) as i32) >> 8;
        Self {
            ssrc: w(0),
            fraction_lost: (lost_word >> 24) as u8,
            cumulative_lost,
            highest_seq: w(8),
            jitter: w(12),
            last_sr: w(16),
            delay_since_last_sr: w(20),
        }
    }
}

/// Sender information of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// Wall-clock time of the report (NTP format).
    pub ntp_timestamp: u64,
    /// The same instant on the RTP media clock.
    pub rtp_timestamp: u32,
    /// Packets sent since the stream started.
    pub packet_count: u32,
    /// Payload octets sent since the stream started.
    pub octet_count: u32,
}

/// Report blocks of a parsed SR/RR, read lazily from the packet bytes.
#[derive(Debug, Clone, Copy)]
pub struct ReportBlocks<'a> {
    bytes: &'a [u8],
}

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;
    fn next(&mut self) -> Option<ReportBlock> {
        if self.bytes.len() < ReportBlock::LEN {
            return None;
        }
        let (head, rest) = self.bytes.split_at(ReportBlock::LEN);
        self.bytes = rest;
        Some(ReportBlock::read(head))
    }
}

/// One packet of a compound RTCP datagram.
#[derive(Debug, Clone, Copy)]
pub enum RtcpPacket<'a> {
    SenderReport {
        ssrc: u32,
        info: SenderInfo,
        reports: ReportBlocks<'a>,
    },
    ReceiverReport {
        ssrc: u32,
        reports: ReportBlocks<'a>,
    },
    /// BYE: the listed sources are leaving.
    Bye { first_ssrc: Option<u32> },
    /// SDES, APP, feedback…: recognised, not interpreted.
    Other { packet_type: u8 },
}

/// Iterates the packets of a compound RTCP datagram; stops at the first malformed one
/// with an error item.
pub fn parse_compound(buf: &[u8]) -> RtcpIter<'_> {
    RtcpIter { rest: buf }
}

/// Iterator returned by [`parse_compound`].
pub struct RtcpIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RtcpIter<'a> {
    type Item = Result<RtcpPacket<'a>, RtpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let r = parse_one(self.rest);
        match r {
            Ok((pkt, len)) => {
                self.rest = &self.rest[len..];
                Some(Ok(pkt))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

fn parse_one(buf: &[u8]) -> Result<(RtcpPacket<'_>, usize), RtpError> {
    if buf.len() < 4 {
        return Err(RtpError::Malformed("RTCP header shorter than 4 bytes"));
    }
    if buf[0] >> 6 != 2 {
        return Err(RtpError::Malformed("RTCP version is not 2"));
    }
    let count = (buf[0] & 0x1F) as usize;
    let pt = buf[1];
    let len = (u16::from_be_bytes([buf[2], buf[3]]) as usize + 1) * 4;
    if len > buf.len() {
        return Err(RtpError::Malformed("RTCP length runs past the end"));
    }
    let body = &buf[4..len];
    let word = |b: &[u8], i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let pkt = match pt {
        PT_SR => {
            if body.len() < 24 + count * ReportBlock::LEN {
                return Err(RtpError::Malformed("RTCP SR shorter than its report count"));
            }
            RtcpPacket::SenderReport {
                ssrc: word(body, 0),
                info: SenderInfo {
                    ntp_timestamp: ((word(body, 4) as u64) << 32) | word(body, 8) as u64,
                    rtp_timestamp: word(body, 12),
                    packet_count: word(body, 16),
                    octet_count: word(body, 20),
                },
                reports: ReportBlocks {
                    bytes: &body[24..24 + count * ReportBlock::LEN],
                },
            }
        }
        PT_RR => {
            if body.len() < 4 + count * ReportBlock::LEN {
                return Err(RtpError::Malformed("RTCP RR shorter than its report count"));
            }
            RtcpPacket::ReceiverReport {
                ssrc: word(body, 0),
                reports: ReportBlocks {
                    bytes: &body[4..4 + count * ReportBlock::LEN],
                },
            }
        }
        PT_BYE => RtcpPacket::Bye {
            first_ssrc: (count > 0 && body.len() >= 4).then(|| word(body, 0)),
        },
        192..=223 => RtcpPacket::Other { packet_type: pt },
        _ => return Err(RtpError::Malformed("not an RTCP packet type")),
    };
    Ok((pkt, len))
}

/// Builds a compound report: an SR when `sender` is given (we sent media since the last
/// report), else an RR; at most one report block; then SDES with our CNAME.
/// Returns the datagram length written into `out`.
pub fn write_report(
    out: &mut [u8],
    ssrc: u32,
    sender: Option<&SenderInfo>,
    block: Option<&ReportBlock>,
    cname: &str,
) -> Result<usize, RtpError> {
    let cname = &cname.as_bytes()[..cname.len().min(255)];
    let report_len = 8 + if sender.is_some() { 20 } else { 0 } + block.map_or(0, |_| 24);
    // SDES: header, SSRC, CNAME item (2 + n), END and padding to a 32-bit boundary.
    let sdes_len = (8 + 2 + cname.len() + 1).div_ceil(4) * 4;
    let needed = report_len + sdes_len;
    if out.len() < needed {
        return Err(RtpError::BufferTooSmall {
            needed,
            available: out.len(),
        });
    }
    let rc = block.is_some() as u8;
    out[0] = 0x80 | rc;
    out[1] = if sender.is_some() { PT_SR } else { PT_RR };
    out[2..4].copy_from_slice(&((report_len / 4 - 1) as u16).to_be_bytes());
    out[4..8].copy_from_slice(&ssrc.to_be_bytes());
    let mut pos = 8;
    if let Some(s) = sender {
        out[pos..pos + 8].copy_from_slice(&s.ntp_timestamp.to_be_bytes());
        out[pos + 8..pos + 12].copy_from_slice(&s.rtp_timestamp.to_be_bytes());
        out[pos + 12..pos + 16].copy_from_slice(&s.packet_count.to_be_bytes());
        out[pos + 16..pos + 20].copy_from_slice(&s.octet_count.to_be_bytes());
        pos += 20;
    }
    if let Some(b) = block {
        b.write(&mut out[pos..pos + 24]);
        pos += 24;
    }
    let sdes = &mut out[pos..pos + sdes_len];
    sdes.fill(0);
    sdes[0] = 0x81;
    sdes[1] = PT_SDES;
    sdes[2..4].copy_from_slice(&((sdes_len / 4 - 1) as u16).to_be_bytes());
    sdes[4..8].copy_from_slice(&ssrc.to_be_bytes());
    sdes[8] = 1; // CNAME
    sdes[9] = cname.len() as u8;
    sdes[10..10 + cname.len()].copy_from_slice(cname);
    Ok(needed)
}

/// Writes a BYE for `ssrc` (sent when a call ends).
pub fn write_bye(out: &mut [u8], ssrc: u32) -> Result<usize, RtpError> {
    if out.len() < 8 {
        return Err(RtpError::BufferTooSmall {
            needed: 8,
            available: out.len(),
        });
    }
    out[0] = 0x81;
    out[1] = PT_BYE;
    out[2..4].copy_from_slice(&1u16.to_be_bytes());
    out[4..8].copy_from_slice(&ssrc.to_be_bytes());
    Ok(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_report_round_trip() {
        let info = SenderInfo {
            ntp_timestamp: 0xE000_0001_8000_0000,
            rtp_timestamp: 123_456,
            packet_count: 500,
            octet_count: 80_000,
        };
        let block = ReportBlock {
            ssrc: 0xAABB_CCDD,
            fraction_lost: 64,
            cumulative_lost: -3,
            highest_seq: 0x0001_0005,
            jitter: 37,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 65536,
        };
        let mut buf = [0u8; 128];
        let n = write_report(&mut buf, 42, Some(&info), Some(&block), "bot@tingshuo").unwrap();
        assert_eq!(n % 4, 0);
        assert_eq!(
            super::super::packet::classify(&buf[..n]),
            super::super::PacketKind::Rtcp
        );
        let pkts: Vec<_> = parse_compound(&buf[..n]).collect::<Result<_, _>>().unwrap();
        assert_eq!(pkts.len(), 2);
        match pkts[0] {
            RtcpPacket::SenderReport {
                ssrc,
                info: got,
                reports,
            } => {
                assert_eq!(ssrc, 42);
                assert_eq!(got, info);
                assert_eq!(reports.collect::<Vec<_>>(), vec![block]);
            }
            other => panic!("expected SR, got {other:?}"),
        }
        assert!(matches!(
            pkts[1],
            RtcpPacket::Other {
                packet_type: PT_SDES
            }
        ));
    }

    #[test]
    fn receiver_report_round_trip_and_bye() {
        let block = ReportBlock {
            ssrc: 7,
            fraction_lost: 255,
            cumulative_lost: 0x7F_FFFF,
            ..Default::default()
        };
        let mut buf = [0u8; 128];
        let n = write_report(&mut buf, 9, None, Some(&block), "x").unwrap();
        let m = write_bye(&mut buf[n..], 9).unwrap();
        let pkts: Vec<_> = parse_compound(&buf[..n + m])
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(pkts.len(), 3);
        match pkts[0] {
            RtcpPacket::ReceiverReport { ssrc, reports } => {
                assert_eq!(ssrc, 9);
                assert_eq!(reports.collect::<Vec<_>>(), vec![block]);
            }
            other => panic!("expected RR, got {other:?}"),
        }
        assert!(matches!(
            pkts[2],
            RtcpPacket::Bye {
                first_ssrc: Some(9)
            }
        ));
    }

    #[test]
    fn cumulative_loss_is_clamped_to_24_bits() {
        let block = ReportBlock {
            cumulative_lost: 50_000_000,
            ..Default::default()
        };
        let mut b = [0u8; 24];
        block.write(&mut b);
        assert_eq!(ReportBlock::read(&b).cumulative_lost, 0x7F_FFFF);
    }

    #[test]
    fn malformed_compound_yields_error() {
        // Length says 3 words but only 2 present.
        let buf = [0x80, PT_RR, 0, 2, 0, 0, 0, 1];
        let r: Vec<_> = parse_compound(&buf).collect();
        assert!(r[0].is_err());
        // RR claiming one report block without it.
        let buf = [0x81, PT_RR, 0, 1, 0, 0, 0, 1];
        assert!(parse_compound(&buf).next().unwrap().is_err());
    }

    #[test]
    fn ntp_and_rtt() {
        let t = UNIX_EPOCH + Duration::from_millis(1_500);
        let ntp = ntp_timestamp(t);
        assert_eq!(ntp >> 32, NTP_UNIX_OFFSET + 1);
        assert_eq!((ntp & 0xFFFF_FFFF) >> 31, 1); // half a second
                                                  // Our SR left at `ntp`; the peer held it 250 ms and its RR arrives 400 ms after we sent.
        let block = ReportBlock {
            last_sr: ntp_middle32(ntp),
            delay_since_last_sr: to_dlsr(Duration::from_millis(250)),
            ..Default::default()
        };
        let now = ntp_timestamp(t + Duration::from_millis(400));
        let rtt = round_trip_time(now, &block).unwrap();
        assert!((rtt.as_secs_f64() - 0.150).abs() < 0.001, "{rtt:?}");
        assert!(round_trip_time(now, &ReportBlock::default()).is_none());
    }
}
