//! SRTP and SRTCP with SDES keys (RFC 3711, RFC 4568) at the packet edge of a media session.
//!
//! Why at the edge: the media thread decrypts a datagram right after `recv_from` and
//! encrypts right before `send_to`, so the jitter buffer, DTMF, recording, console
//! listen-in and barge-in all see plain RTP and stay unchanged.
//!
//! The cipher work is done by the maintained `webrtc-srtp` crate (AES-CM with
//! HMAC-SHA1, replay windows, rollover counters). Its API returns a fresh `Bytes` per
//! packet; we copy the result back into the session's preallocated buffer so nothing
//! above this layer sees a new allocation, but that one allocation inside the crate per
//! packet remains (measured in `benches/srtp.rs`).
//!
//! Bad packets (authentication tag mismatch, replay, garbage) are dropped and counted in
//! [`SrtpStats`]; the call continues.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand::RngCore;
use webrtc_srtp::context::Context;
use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use webrtc_srtp::protection_profile::ProtectionProfile;

/// Master key length of the AES_CM_128 suites (bytes).
pub const KEY_LEN: usize = 16;
/// Master salt length of the AES_CM_128 suites (bytes).
pub const SALT_LEN: usize = 14;
/// Packets remembered by the replay windows (RFC 3711 minimum is 64).
const REPLAY_WINDOW: usize = 128;

/// SRTP/SRTCP packets dropped by every call of this process (the
/// `tingshuo_srtp_dropped_packets` metric).
static DROPPED_TOTAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Packets dropped (bad tag, replay, malformed) by all SRTP sessions so far.
pub fn dropped_total() -> u64 {
    DROPPED_TOTAL.load(std::sync::atomic::Ordering::Relaxed)
}

fn count_drop() {
    DROPPED_TOTAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// An SDES crypto suite we speak (RFC 4568 §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// 80-bit authentication tag: what we offer.
    AesCm128HmacSha1_80,
    /// 32-bit authentication tag: accepted when a peer offers only this.
    AesCm128HmacSha1_32,
}

impl Suite {
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            n if n.eq_ignore_ascii_case("AES_CM_128_HMAC_SHA1_80") => {
                Some(Suite::AesCm128HmacSha1_80)
            }
            n if n.eq_ignore_ascii_case("AES_CM_128_HMAC_SHA1_32") => {
                Some(Suite::AesCm128HmacSha1_32)
            }
            _ => None,
        }
    }

    fn profile(self) -> ProtectionProfile {
        match self {
            Suite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            Suite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        }
    }

    /// Bytes SRTP adds to an RTP packet (the authentication tag).
    pub fn rtp_overhead(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 => 10,
            Suite::AesCm128HmacSha1_32 => 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    #[error("a=crypto {0:?} is malformed: expected \"TAG SUITE inline:KEY||SALT-base64\"")]
    Malformed(String),
    #[error("a=crypto suite {0} is not supported: offer AES_CM_128_HMAC_SHA1_80 or AES_CM_128_HMAC_SHA1_32")]
    UnsupportedSuite(String),
    #[error(
        "a=crypto key is {0} bytes after base64 decoding; AES_CM_128 needs 30 (16 key + 14 salt)"
    )]
    KeyLength(usize),
    #[error("a=crypto uses MKI or session parameters ({0}), which are not supported")]
    Unsupported(String),
    #[error("SRTP context: {0}")]
    Context(String),
}

/// One `a=crypto` line: tag, suite and master key/salt.
#[derive(Clone, PartialEq, Eq)]
pub struct CryptoAttr {
    pub tag: u32,
    pub suite: Suite,
    pub key: [u8; KEY_LEN],
    pub salt: [u8; SALT_LEN],
}

impl std::fmt::Debug for CryptoAttr {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CryptoAttr")
            .field("tag", &self.tag)
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl CryptoAttr {
    /// Fresh random master key and salt from the OS-seeded thread RNG.
    pub fn generate(tag: u32, suite: Suite) -> Self {
        let mut key = [0u8; KEY_LEN];
        let mut salt = [0u8; SALT_LEN];
        let mut rng = rand::rng();
        rng.fill_bytes(&mut key);
        rng.fill_bytes(&mut salt);
        Self {
            tag,
            suite,
            key,
            salt,
        }
    }

    /// Parses the value of an `a=crypto:` attribute (the part after the colon).
    ///
    /// A lifetime (`|2^31`) is accepted and ignored (we never reach it in a call);
    /// MKIs (`|1:4`) and session parameters are refused.
    pub fn parse(value: &str) -> Result<Self, SrtpError> {
        let bad = || SrtpError::Malformed(value.to_string());
        let mut parts = value.split_whitespace();
        let tag: u32 = parts.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
        let suite_name = parts.next().ok_or_else(bad)?;
        let suite = Suite::from_name(suite_name)
            .ok_or_else(|| SrtpError::UnsupportedSuite(suite_name.to_string()))?;
        let key_params = parts.next().ok_or_else(bad)?;
        if let Some(extra) = parts.next() {
            return Err(SrtpError::Unsupported(extra.to_string()));
        }
        // Several key-params (';'-separated) are allowed; we use the first.
        let first = key_params.split(';').next().ok_or_else(bad)?;
        let inline = first
            .strip_prefix("inline:")
            .or_else(|| first.strip_prefix("INLINE:"))
            .ok_or_else(bad)?;
        let mut fields = inline.split('|');
        let b64 = fields.next().ok_or_else(bad)?;
        for f in fields {
            if f.contains(':') {
                return Err(SrtpError::Unsupported(format!("MKI {f}")));
            }
        }
        let raw = B64
            .decode(b64.trim_end_matches('='))
            .or_else(|_| B64.decode(b64))
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(b64))
            .map_err(|_| bad())?;
        if raw.len() != KEY_LEN + SALT_LEN {
            return Err(SrtpError::KeyLength(raw.len()));
        }
        let mut key = [0u8; KEY_LEN];
        let mut salt = [0u8; SALT_LEN];
        key.copy_from_slice(&raw[..KEY_LEN]);
        salt.copy_from_slice(&raw[KEY_LEN..]);
        Ok(Self {
            tag,
            suite,
            key,
            salt,
        })
    }

    /// The attribute value for SDP: `1 AES_CM_128_HMAC_SHA1_80 inline:…`.
    pub fn to_sdp_value(&self) -> String {
        let mut raw = [0u8; KEY_LEN + SALT_LEN];
        raw[..KEY_LEN].copy_from_slice(&self.key);
        raw[KEY_LEN..].copy_from_slice(&self.salt);
        format!(
            "{} {} inline:{}",
            self.tag,
            self.suite.name(),
            B64.encode(raw)
        )
    }
}

/// Picks the first offered crypto line we support and answers it with a fresh key of
/// the same tag and suite (RFC 4568 §7.1.2). `None` if no line is usable.
pub fn answer(offered: &[String]) -> Option<(CryptoAttr, CryptoAttr)> {
    let parsed: Vec<CryptoAttr> = offered
        .iter()
        .filter_map(|v| CryptoAttr::parse(v).ok())
        .collect();
    let pick = parsed
        .iter()
        .find(|c| c.suite == Suite::AesCm128HmacSha1_80)
        .or_else(|| parsed.first())?
        .clone();
    let local = CryptoAttr::generate(pick.tag, pick.suite);
    Some((local, pick))
}

/// Keys of one call: ours encrypt what we send, the peer's decrypt what we receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    pub local: CryptoAttr,
    pub remote: CryptoAttr,
}

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// The authentication tag did not verify (tampered, or wrong key).
    Auth,
    /// Already received (replay window).
    Replay,
    /// Too short or not parseable as (S)RTP/(S)RTCP.
    Malformed,
}

/// Counters of dropped packets (exported as metrics by the call layer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SrtpStats {
    pub auth_failed: u64,
    pub replayed: u64,
    pub malformed: u64,
    pub rtcp_auth_failed: u64,
    pub rtcp_replayed: u64,
}

impl SrtpStats {
    /// All dropped packets, RTP and RTCP.
    pub fn dropped(&self) -> u64 {
        self.auth_failed
            + self.replayed
            + self.malformed
            + self.rtcp_auth_failed
            + self.rtcp_replayed
    }
}

/// Both directions of one call's SRTP and SRTCP.
pub struct SrtpEdge {
    tx: Context,
    rx: Context,
    suite: Suite,
    pub stats: SrtpStats,
}

impl std::fmt::Debug for SrtpEdge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpEdge")
            .field("suite", &self.suite)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn classify(e: &webrtc_srtp::Error) -> Rejected {
    use webrtc_srtp::Error as E;
    match e {
        E::SrtpSsrcDuplicated(..) | E::SrtcpSsrcDuplicated(..) | E::ErrDuplicated => {
            Rejected::Replay
        }
        E::RtpFailedToVerifyAuthTag
        | E::RtcpFailedToVerifyAuthTag
        | E::ErrFailedToVerifyAuthTag => Rejected::Auth,
        _ => Rejected::Malformed,
    }
}

/// Copies `src` into the front of `buf` and returns its length, or `None` if it does not fit.
fn put(buf: &mut [u8], src: &[u8]) -> Option<usize> {
    let dst = buf.get_mut(..src.len())?;
    dst.copy_from_slice(src);
    Some(src.len())
}

impl SrtpEdge {
    pub fn new(keys: &SrtpKeys) -> Result<Self, SrtpError> {
        let ctx = |c: &CryptoAttr| {
            Context::new(
                &c.key,
                &c.salt,
                c.suite.profile(),
                Some(srtp_replay_protection(REPLAY_WINDOW)),
                Some(srtcp_replay_protection(REPLAY_WINDOW)),
            )
            .map_err(|e| SrtpError::Context(e.to_string()))
        };
        Ok(Self {
            tx: ctx(&keys.local)?,
            rx: ctx(&keys.remote)?,
            suite: keys.local.suite,
            stats: SrtpStats::default(),
        })
    }

    /// Encrypts the RTP packet in `buf[..len]` in place; returns the new length.
    /// `buf` must have room for the tag (`Suite::rtp_overhead`).
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Option<usize> {
        let out = self.tx.encrypt_rtp(buf.get(..len)?).ok()?;
        put(buf, &out)
    }

    /// Decrypts the SRTP packet in `buf[..len]` in place; returns the plain length or
    /// why it was dropped (also counted in [`stats`](Self::stats)).
    pub fn unprotect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Rejected> {
        let Some(pkt) = buf.get(..len) else {
            count_drop();
            self.stats.malformed += 1;
            return Err(Rejected::Malformed);
        };
        match self.rx.decrypt_rtp(pkt) {
            Ok(plain) => put(buf, &plain).ok_or(Rejected::Malformed),
            Err(e) => {
                count_drop();
                let why = classify(&e);
                match why {
                    Rejected::Auth => self.stats.auth_failed += 1,
                    Rejected::Replay => self.stats.replayed += 1,
                    Rejected::Malformed => self.stats.malformed += 1,
                }
                Err(why)
            }
        }
    }

    /// Encrypts the (compound) RTCP packet in `buf[..len]` in place (adds the SRTCP
    /// index and tag, 14 bytes with the 80-bit suite).
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Option<usize> {
        let out = self.tx.encrypt_rtcp(buf.get(..len)?).ok()?;
        put(buf, &out)
    }

    /// Decrypts the SRTCP packet in `buf[..len]` in place.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Rejected> {
        let Some(pkt) = buf.get(..len) else {
            count_drop();
            self.stats.malformed += 1;
            return Err(Rejected::Malformed);
        };
        match self.rx.decrypt_rtcp(pkt) {
            Ok(plain) => put(buf, &plain).ok_or(Rejected::Malformed),
            Err(e) => {
                count_drop();
                let why = classify(&e);
                match why {
                    Rejected::Auth => self.stats.rtcp_auth_failed += 1,
                    Rejected::Replay => self.stats.rtcp_replayed += 1,
                    Rejected::Malformed => self.stats.malformed += 1,
                }
                Err(why)
            }
        }
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PCMU RTP packet: 12-byte header and 160 payload bytes.
    fn rtp(seq: u16, fill: u8) -> Vec<u8> {
        let mut p = vec![0x80, 0x00];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.extend(std::iter::repeat_n(fill, 160));
        p
    }

    fn pair(suite: Suite) -> (SrtpEdge, SrtpEdge) {
        let a = CryptoAttr::generate(1, suite);
        let b = CryptoAttr::generate(1, suite);
        let alice = SrtpEdge::new(&SrtpKeys {
            local: a.clone(),
            remote: b.clone(),
        })
        .unwrap();
        let bob = SrtpEdge::new(&SrtpKeys {
            local: b,
            remote: a,
        })
        .unwrap();
        (alice, bob)
    }

    fn protect(edge: &mut SrtpEdge, plain: &[u8]) -> Vec<u8> {
        let mut buf = [0u8; 2048];
        buf[..plain.len()].copy_from_slice(plain);
        let n = edge.protect_rtp(&mut buf, plain.len()).unwrap();
        buf[..n].to_vec()
    }

    fn unprotect(edge: &mut SrtpEdge, wire: &[u8]) -> Result<Vec<u8>, Rejected> {
        let mut buf = [0u8; 2048];
        buf[..wire.len()].copy_from_slice(wire);
        edge.unprotect_rtp(&mut buf, wire.len())
            .map(|n| buf[..n].to_vec())
    }

    #[test]
    fn crypto_attr_round_trips_and_hides_the_key_in_debug() {
        let c = CryptoAttr::generate(3, Suite::AesCm128HmacSha1_80);
        let v = c.to_sdp_value();
        assert!(v.starts_with("3 AES_CM_128_HMAC_SHA1_80 inline:"), "{v}");
        assert_eq!(CryptoAttr::parse(&v).unwrap(), c);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains(&B64.encode(c.key)), "{dbg}");
    }

    #[test]
    fn parses_peer_lines_with_lifetime_and_refuses_mki_and_bad_suites() {
        // Shape of baresip's and Asterisk's offers (lifetime optional).
        let key = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
        let c = CryptoAttr::parse(&format!("1 AES_CM_128_HMAC_SHA1_32 inline:{key}|2^31")).unwrap();
        assert_eq!(c.suite, Suite::AesCm128HmacSha1_32);
        assert_eq!(c.tag, 1);
        assert!(matches!(
            CryptoAttr::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20|1:4")),
            Err(SrtpError::Unsupported(_))
        ));
        assert!(matches!(
            CryptoAttr::parse(&format!("1 F8_128_HMAC_SHA1_80 inline:{key}")),
            Err(SrtpError::UnsupportedSuite(_))
        ));
        assert!(matches!(
            CryptoAttr::parse("1 AES_CM_128_HMAC_SHA1_80 inline:AAAA"),
            Err(SrtpError::KeyLength(3))
        ));
        assert!(matches!(
            CryptoAttr::parse("x AES_CM_128_HMAC_SHA1_80"),
            Err(SrtpError::Malformed(_))
        ));
    }

    #[test]
    fn answer_prefers_the_80_bit_suite_and_keeps_the_tag() {
        let offered = vec![
            CryptoAttr::generate(1, Suite::AesCm128HmacSha1_32).to_sdp_value(),
            CryptoAttr::generate(2, Suite::AesCm128HmacSha1_80).to_sdp_value(),
        ];
        let (local, remote) = answer(&offered).unwrap();
        assert_eq!(local.tag, 2);
        assert_eq!(local.suite, Suite::AesCm128HmacSha1_80);
        assert_eq!(remote.to_sdp_value(), offered[1]);
        assert_ne!(local.key, remote.key);
        assert!(answer(&["1 NULL inline:x".to_string()]).is_none());
    }

    #[test]
    fn rtp_round_trips_and_payload_is_encrypted() {
        for suite in [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32] {
            let (mut alice, mut bob) = pair(suite);
            for seq in 0..50u16 {
                let plain = rtp(seq, 0xFF);
                let wire = protect(&mut alice, &plain);
                assert_eq!(wire.len(), plain.len() + suite.rtp_overhead());
                assert_eq!(wire[..12], plain[..12], "header stays clear");
                assert_ne!(wire[12..172], plain[12..], "payload is encrypted");
                assert_eq!(unprotect(&mut bob, &wire).unwrap(), plain);
            }
            assert_eq!(bob.stats, SrtpStats::default());
        }
    }

    #[test]
    fn replayed_and_tampered_packets_are_dropped_counted_and_the_stream_continues() {
        let (mut alice, mut bob) = pair(Suite::AesCm128HmacSha1_80);
        let first = protect(&mut alice, &rtp(1, 0x55));
        assert!(unprotect(&mut bob, &first).is_ok());
        // Replay.
        assert_eq!(unprotect(&mut bob, &first), Err(Rejected::Replay));
        // Tampered payload byte, then tampered tag.
        let second = protect(&mut alice, &rtp(2, 0x55));
        let mut bad = second.clone();
        bad[20] ^= 0x01;
        assert_eq!(unprotect(&mut bob, &bad), Err(Rejected::Auth));
        let mut bad_tag = second.clone();
        let last = bad_tag.len() - 1;
        bad_tag[last] ^= 0x80;
        assert_eq!(unprotect(&mut bob, &bad_tag), Err(Rejected::Auth));
        // A packet under a different key (an attacker's) fails too.
        let (mut mallory, _) = pair(Suite::AesCm128HmacSha1_80);
        assert_eq!(
            unprotect(&mut bob, &protect(&mut mallory, &rtp(3, 0))),
            Err(Rejected::Auth)
        );
        // Garbage.
        assert_eq!(unprotect(&mut bob, &[0x80, 0, 1]), Err(Rejected::Malformed));
        // The genuine packets still decrypt afterwards.
        assert_eq!(unprotect(&mut bob, &second).unwrap(), rtp(2, 0x55));
        let third = protect(&mut alice, &rtp(4, 0x11));
        assert_eq!(unprotect(&mut bob, &third).unwrap(), rtp(4, 0x11));
        assert_eq!(bob.stats.replayed, 1);
        assert_eq!(bob.stats.auth_failed, 3);
        assert_eq!(bob.stats.malformed, 1);
        assert_eq!(bob.stats.dropped(), 5);
    }

    #[test]
    fn srtcp_round_trips_and_rejects_replay_and_tamper() {
        let (mut alice, mut bob) = pair(Suite::AesCm128HmacSha1_80);
        // A receiver report with no blocks: V=2, PT=201, length 1, SSRC.
        let rr = [0x80u8, 201, 0, 1, 0x12, 0x34, 0x56, 0x78];
        let mut buf = [0u8; 256];
        buf[..rr.len()].copy_from_slice(&rr);
        let n = alice.protect_rtcp(&mut buf, rr.len()).unwrap();
        assert!(n > rr.len());
        let wire = buf[..n].to_vec();
        let mut rx = [0u8; 256];
        rx[..n].copy_from_slice(&wire);
        let m = bob.unprotect_rtcp(&mut rx, n).unwrap();
        assert_eq!(rx[..m], rr);
        rx[..n].copy_from_slice(&wire);
        assert_eq!(bob.unprotect_rtcp(&mut rx, n), Err(Rejected::Replay));
        let mut bad = wire.clone();
        bad[5] ^= 0xFF;
        rx[..n].copy_from_slice(&bad);
        assert_eq!(bob.unprotect_rtcp(&mut rx, n), Err(Rejected::Auth));
        assert_eq!(bob.stats.rtcp_replayed, 1);
        assert_eq!(bob.stats.rtcp_auth_failed, 1);
    }
}
