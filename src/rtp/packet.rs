//! RTP packets (RFC 3550 §5.1): a zero-copy view for parsing and a writer for building.
//!
//! Also classifies whatever arrives on a media port, because peers put more than RTP
//! there: STUN binding requests (ICE-lite peers and some PBXs probe the RTP port),
//! RTCP when rtcp-mux is in use, DTLS, or plain garbage. Only valid RTP reaches the
//! jitter buffer; the rest is counted and dropped.

use super::RtpError;

/// Size of the fixed RTP header.
pub const RTP_HEADER_LEN: usize = 12;
/// STUN magic cookie (RFC 5389 §6) found at bytes 4..8 of every STUN message.
pub const STUN_MAGIC_COOKIE: u32 = 0x2112_A442;

/// What a datagram received on a media port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// RTP version 2 with a media payload type.
    Rtp,
    /// RTCP (payload type 192..=223 per RFC 5761 §4), e.g. with rtcp-mux.
    Rtcp,
    /// STUN (RFC 5389): first two bits zero and the magic cookie.
    Stun,
    /// Anything else (DTLS, truncated packets, noise).
    Garbage,
}

/// Classifies a datagram without fully parsing it (RFC 7983 demultiplexing, then RFC 5761).
pub fn classify(buf: &[u8]) -> PacketKind {
    let Some(&first) = buf.first() else {
        return PacketKind::Garbage;
    };
    if first < 4 {
        if buf.len() >= 20
            && buf[4..8] == STUN_MAGIC_COOKIE.to_be_bytes()
            && buf.len() >= 20 + u16::from_be_bytes([buf[2], buf[3]]) as usize
        {
            return PacketKind::Stun;
        }
        return PacketKind::Garbage;
    }
    if first >> 6 != 2 || buf.len() < 4 {
        return PacketKind::Garbage;
    }
    match buf[1] {
        192..=223 if buf.len() >= 8 => PacketKind::Rtcp,
        192..=223 => PacketKind::Garbage,
        _ if buf.len() >= RTP_HEADER_LEN => PacketKind::Rtp,
        _ => PacketKind::Garbage,
    }
}

/// A parsed RTP packet borrowing the receive buffer (no copy, no allocation).
#[derive(Debug, Clone, Copy)]
pub struct RtpPacket<'a> {
    buf: &'a [u8],
    payload_start: usize,
    payload_end: usize,
    ext_start: usize,
}

impl<'a> RtpPacket<'a> {
    /// Parses and validates `buf` as an RTP packet.
    ///
    /// Rejects version ≠ 2, CSRC lists or header extensions that run past the end,
    /// and padding counts that are zero or larger than the payload (RFC 3550 §5.1, A.1).
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        if buf.len() < RTP_HEADER_LEN {
            return Err(RtpError::Malformed("shorter than the 12-byte RTP header"));
        }
        if buf[0] >> 6 != 2 {
            return Err(RtpError::Malformed("RTP version is not 2"));
        }
        let csrc_count = (buf[0] & 0x0F) as usize;
        let mut pos = RTP_HEADER_LEN + 4 * csrc_count;
        if pos > buf.len() {
            return Err(RtpError::Malformed("CSRC list runs past the end"));
        }
        let ext_start = pos;
        if buf[0] & 0x10 != 0 {
            if pos + 4 > buf.len() {
                return Err(RtpError::Malformed("extension header runs past the end"));
            }
            let words = u16::from_be_bytes([buf[pos + 2], buf[pos + 3]]) as usize;
            pos += 4 + 4 * words;
            if pos > buf.len() {
                return Err(RtpError::Malformed("extension runs past the end"));
            }
        }
        let mut end = buf.len();
        if buf[0] & 0x20 != 0 {
            let pad = buf[buf.len() - 1] as usize;
            if pad == 0 || pad > end - pos {
                return Err(RtpError::Malformed("invalid padding length"));
            }
            end -= pad;
        }
        Ok(Self {
            buf,
            payload_start: pos,
            payload_end: end,
            ext_start,
        })
    }

    /// Padding flag.
    pub fn padding(&self) -> bool {
        self.buf[0] & 0x20 != 0
    }
    /// Extension flag.
    pub fn has_extension(&self) -> bool {
        self.buf[0] & 0x10 != 0
    }
    /// Marker bit: start of a talk spurt for audio (RFC 3551 §4.1), start of an event for RFC 4733.
    pub fn marker(&self) -> bool {
        self.buf[1] & 0x80 != 0
    }
    /// Payload type (7 bits).
    pub fn payload_type(&self) -> u8 {
        self.buf[1] & 0x7F
    }
    /// Sequence number.
    pub fn sequence(&self) -> u16 {
        u16::from_be_bytes([self.buf[2], self.buf[3]])
    }
    /// Media timestamp.
    pub fn timestamp(&self) -> u32 {
        u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]])
    }
    /// Synchronisation source.
    pub fn ssrc(&self) -> u32 {
        u32::from_be_bytes([self.buf[8], self.buf[9], self.buf[10], self.buf[11]])
    }
    /// Contributing sources.
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + 'a {
        let n = (self.buf[0] & 0x0F) as usize;
        self.buf[RTP_HEADER_LEN..RTP_HEADER_LEN + 4 * n]
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }
    /// Header extension as (profile-defined id, data), if present.
    pub fn extension(&self) -> Option<(u16, &'a [u8])> {
        if !self.has_extension() {
            return None;
        }
        let b = &self.buf[self.ext_start..self.payload_start];
        Some((u16::from_be_bytes([b[0], b[1]]), &b[4..]))
    }
    /// Payload without padding.
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.payload_start..self.payload_end]
    }
}

/// Header fields for building a packet (no CSRCs or extensions: the agent never mixes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

impl RtpHeader {
    /// Writes header + payload into `out`; returns the packet length.
    pub fn write(&self, payload: &[u8], out: &mut [u8]) -> Result<usize, RtpError> {
        let len = RTP_HEADER_LEN + payload.len();
        if out.len() < len {
            return Err(RtpError::BufferTooSmall {
                needed: len,
                available: out.len(),
            });
        }
        out[0] = 0x80;
        out[1] = (self.payload_type & 0x7F) | if self.marker { 0x80 } else { 0 };
        out[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        out[RTP_HEADER_LEN..len].copy_from_slice(payload);
        Ok(len)
    }

    /// Writes the header and lets `fill` write the payload in place (e.g. G.711 encode
    /// straight into the send buffer); `fill` returns the payload length it wrote.
    pub fn write_with(
        &self,
        out: &mut [u8],
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, RtpError> {
        if out.len() < RTP_HEADER_LEN {
            return Err(RtpError::BufferTooSmall {
                needed: RTP_HEADER_LEN,
                available: out.len(),
            });
        }
        self.write(&[], out)?;
        let n = fill(&mut out[RTP_HEADER_LEN..]);
        Ok(RTP_HEADER_LEN + n.min(out.len() - RTP_HEADER_LEN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> RtpHeader {
        RtpHeader {
            marker: true,
            payload_type: 8,
            sequence: 0xFFFE,
            timestamp: 0xDEAD_BEEF,
            ssrc: 0x0102_0304,
        }
    }

    #[test]
    fn build_then_parse_round_trips() {
        let mut buf = [0u8; 64];
        let n = header().write(&[1, 2, 3, 4], &mut buf).unwrap();
        assert_eq!(n, 16);
        let p = RtpPacket::parse(&buf[..n]).unwrap();
        assert!(p.marker());
        assert_eq!(p.payload_type(), 8);
        assert_eq!(p.sequence(), 0xFFFE);
        assert_eq!(p.timestamp(), 0xDEAD_BEEF);
        assert_eq!(p.ssrc(), 0x0102_0304);
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
        assert_eq!(p.csrcs().count(), 0);
        assert!(p.extension().is_none());
        assert_eq!(classify(&buf[..n]), PacketKind::Rtp);
    }

    #[test]
    fn parses_csrc_extension_and_padding() {
        let mut v = vec![0xB2u8, 0x00, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9];
        v.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]); // 2 CSRCs
        v.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0xAA, 0xBB, 0xCC, 0xDD]); // 1-word extension
        v.extend_from_slice(&[7, 8, 9]); // payload
        v.extend_from_slice(&[0, 0, 3]); // 3 bytes of padding
        let p = RtpPacket::parse(&v).unwrap();
        assert!(p.padding());
        assert_eq!(p.csrcs().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(p.extension(), Some((0xBEDE, &[0xAA, 0xBB, 0xCC, 0xDD][..])));
        assert_eq!(p.payload(), &[7, 8, 9]);
    }

    #[test]
    fn rejects_malformed() {
        assert!(RtpPacket::parse(&[0x80; 11]).is_err());
        // Version 1.
        assert!(RtpPacket::parse(&[0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        // 15 CSRCs announced, none present.
        assert!(RtpPacket::parse(&[0x8F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        // Extension announced but missing.
        assert!(RtpPacket::parse(&[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        // Padding count 0 and padding larger than the payload.
        assert!(RtpPacket::parse(&[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]).is_err());
        assert!(RtpPacket::parse(&[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 9]).is_err());
    }

    #[test]
    fn classifies_stun_rtcp_and_garbage() {
        // STUN binding request: type 0x0001, length 0, cookie, 12-byte transaction id.
        let mut stun = vec![0x00, 0x01, 0x00, 0x00];
        stun.extend_from_slice(&STUN_MAGIC_COOKIE.to_be_bytes());
        stun.extend_from_slice(&[7; 12]);
        assert_eq!(classify(&stun), PacketKind::Stun);
        assert_eq!(classify(&[0x81, 201, 0, 1, 0, 0, 0, 1]), PacketKind::Rtcp);
        assert_eq!(classify(&[]), PacketKind::Garbage);
        assert_eq!(classify(&[0x16, 0xFE, 0xFD, 0, 0]), PacketKind::Garbage); // DTLS
        assert_eq!(classify(b"hello world, not rtp"), PacketKind::Garbage);
        assert_eq!(classify(&[0x80, 0, 0]), PacketKind::Garbage);
    }

    #[test]
    fn write_reports_small_buffer() {
        let mut buf = [0u8; 13];
        assert!(matches!(
            header().write(&[1, 2], &mut buf),
            Err(RtpError::BufferTooSmall { needed: 14, .. })
        ));
    }
}
