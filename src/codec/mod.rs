//! Telephone audio codecs: G.711 µ-law (PCMU, payload type 0) and A-law (PCMA, payload
//! type 8) at 8 kHz, and G.722 (payload type 9, [`g722`]) at 16 kHz.
//!
//! G.711 decoding uses 256-entry tables built at compile time; encoding is the classic
//! segment search of ITU-T G.711 on 16-bit linear samples. Every codec works on
//! caller-owned slices so the real-time path never allocates.

pub mod g722;

/// A codec an RTP stream can carry, with what the media path needs to know of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    Pcmu,
    Pcma,
    /// Wideband: 16 kHz audio on an 8 kHz RTP clock (RFC 3551 §4.5.2).
    G722,
}

impl AudioCodec {
    /// Static RTP payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            AudioCodec::Pcmu => 0,
            AudioCodec::Pcma => 8,
            AudioCodec::G722 => g722::PAYLOAD_TYPE,
        }
    }

    /// The codec of a static payload type we carry.
    pub fn from_payload_type(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(AudioCodec::Pcmu),
            8 => Some(AudioCodec::Pcma),
            9 => Some(AudioCodec::G722),
            _ => None,
        }
    }

    /// SDP encoding name.
    /// The codec an encoding name (as in `a=rtpmap` or the config) names.
    pub fn from_name(name: &str) -> Option<Self> {
        [AudioCodec::G722, AudioCodec::Pcmu, AudioCodec::Pcma]
            .into_iter()
            .find(|c| c.encoding_name().eq_ignore_ascii_case(name.trim()))
    }

    pub fn encoding_name(self) -> &'static str {
        match self {
            AudioCodec::Pcmu => "PCMU",
            AudioCodec::Pcma => "PCMA",
            AudioCodec::G722 => "G722",
        }
    }

    /// Sample rate of the audio (not the RTP clock: G.722's is 8000 too).
    pub fn sample_rate(self) -> u32 {
        match self {
            AudioCodec::G722 => g722::SAMPLE_RATE,
            _ => 8000,
        }
    }

    /// Samples in a 20 ms frame at [`Self::sample_rate`].
    pub fn frame_samples(self) -> usize {
        self.sample_rate() as usize / 50
    }

    /// The G.711 law, for the narrowband codecs.
    pub fn g711(self) -> Option<G711> {
        match self {
            AudioCodec::Pcmu => Some(G711::Pcmu),
            AudioCodec::Pcma => Some(G711::Pcma),
            AudioCodec::G722 => None,
        }
    }
}

impl From<G711> for AudioCodec {
    fn from(law: G711) -> Self {
        match law {
            G711::Pcmu => AudioCodec::Pcmu,
            G711::Pcma => AudioCodec::Pcma,
        }
    }
}

/// Which G.711 law a stream uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum G711 {
    /// µ-law, RTP payload type 0 (North America, Japan; most PBX defaults).
    Pcmu,
    /// A-law, RTP payload type 8 (Europe, China's PSTN).
    Pcma,
}

impl G711 {
    /// Static RTP payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            G711::Pcmu => 0,
            G711::Pcma => 8,
        }
    }

    /// Codec for a static payload type, if it is G.711.
    pub fn from_payload_type(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(G711::Pcmu),
            8 => Some(G711::Pcma),
            _ => None,
        }
    }

    /// SDP encoding name.
    pub fn name(self) -> &'static str {
        match self {
            G711::Pcmu => "PCMU",
            G711::Pcma => "PCMA",
        }
    }

    /// Encodes one sample.
    #[inline]
    pub fn encode_sample(self, s: i16) -> u8 {
        match self {
            G711::Pcmu => linear_to_ulaw(s),
            G711::Pcma => linear_to_alaw(s),
        }
    }

    /// Decodes one byte.
    #[inline]
    pub fn decode_sample(self, b: u8) -> i16 {
        match self {
            G711::Pcmu => ULAW_DECODE[b as usize],
            G711::Pcma => ALAW_DECODE[b as usize],
        }
    }

    /// Encodes `pcm` into `out`; encodes `min(pcm.len(), out.len())` samples and returns that count.
    pub fn encode(self, pcm: &[i16], out: &mut [u8]) -> usize {
        let n = pcm.len().min(out.len());
        for (o, &s) in out[..n].iter_mut().zip(&pcm[..n]) {
            *o = self.encode_sample(s);
        }
        n
    }

    /// Decodes `payload` into `out`; returns the number of samples written.
    pub fn decode(self, payload: &[u8], out: &mut [i16]) -> usize {
        let n = payload.len().min(out.len());
        let table = match self {
            G711::Pcmu => &ULAW_DECODE,
            G711::Pcma => &ALAW_DECODE,
        };
        for (o, &b) in out[..n].iter_mut().zip(&payload[..n]) {
            *o = table[b as usize];
        }
        n
    }

    /// The byte that encodes silence (used for comfort fill).
    pub fn silence_byte(self) -> u8 {
        self.encode_sample(0)
    }
}

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

/// µ-law encoder (G.711 with the 0x84 bias; output bits inverted).
#[inline]
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut s = sample as i32;
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    if s > ULAW_CLIP {
        s = ULAW_CLIP;
    }
    s += ULAW_BIAS;
    // Segment = position of the highest set bit above bit 7.
    let exponent = (31 - (s as u32).leading_zeros()).saturating_sub(7).min(7) as i32;
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// A-law encoder (G.711; even bits inverted with 0x55).
#[inline]
pub fn linear_to_alaw(sample: i16) -> u8 {
    // A-law works on 13-bit magnitudes.
    let mut s = (sample as i32) >> 3;
    let mask = if s >= 0 {
        0xD5
    } else {
        s = -s - 1;
        0x55
    };
    let code = if s < 32 {
        s >> 1
    } else {
        let exponent = (31 - (s as u32).leading_zeros()) as i32 - 4; // 1..=7
        if exponent > 7 {
            0x7F
        } else {
            (exponent << 4) | ((s >> exponent) & 0x0F)
        }
    };
    (code as u8) ^ mask
}

const fn ulaw_decode(b: u8) -> i16 {
    let u = !b;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn alaw_decode(b: u8) -> i16 {
    let a = b ^ 0x55;
    let exponent = ((a >> 4) & 0x07) as i32;
    let mantissa = (a & 0x0F) as i32;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    if a & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

const fn build_table(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw {
            alaw_decode(i as u8)
        } else {
            ulaw_decode(i as u8)
        };
        i += 1;
    }
    t
}

/// µ-law byte → linear sample.
pub static ULAW_DECODE: [i16; 256] = build_table(false);
/// A-law byte → linear sample.
pub static ALAW_DECODE: [i16; 256] = build_table(true);

#[cfg(test)]
mod tests {
    use super::*;

    /// Decision levels of G.711 Table 2a (µ-law, positive half): for each segment,
    /// the decoded value of its first and last step. Values are 14-bit scaled by 4
    /// in the ITU table; here in the 16-bit convention used by every PBX.
    #[test]
    fn ulaw_matches_itu_reference_points() {
        // code → value pairs from the ITU-T G.711 µ-law table (16-bit linear).
        let reference: [(u8, i16); 12] = [
            (0xFF, 0),
            (0xFE, 8),
            (0xF0, 120),
            (0xEF, 132),
            (0xE0, 372),
            (0xDF, 396),
            (0xC0, 1884),
            (0xA0, 7932),
            (0x80, 32124),
            (0x7F, 0),
            (0x7E, -8),
            (0x00, -32124),
        ];
        for (code, value) in reference {
            assert_eq!(ULAW_DECODE[code as usize], value, "code {code:#04x}");
        }
    }

    #[test]
    fn alaw_matches_itu_reference_points() {
        let reference: [(u8, i16); 10] = [
            (0xD5, 8),
            (0x55, -8),
            (0xD4, 24),
            (0xC5, 264),
            (0xF5, 528),
            (0xAA, 32256),
            (0x2A, -32256),
            (0xDA, 248),
            (0x80, 5504),
            (0x00, -5504),
        ];
        for (code, value) in reference {
            assert_eq!(ALAW_DECODE[code as usize], value, "code {code:#04x}");
        }
    }

    #[test]
    fn every_code_round_trips() {
        for law in [G711::Pcmu, G711::Pcma] {
            for code in 0..=255u8 {
                let linear = law.decode_sample(code);
                let back = law.encode_sample(linear);
                // µ-law has two zeros (0xFF and 0x7F); both decode to 0, which encodes as 0xFF.
                if law == G711::Pcmu && code == 0x7F {
                    assert_eq!(back, 0xFF);
                } else {
                    assert_eq!(back, code, "{law:?} code {code:#04x} → {linear}");
                }
            }
        }
    }

    #[test]
    fn encoding_is_monotonic_and_near() {
        for law in [G711::Pcmu, G711::Pcma] {
            let mut last = i16::MIN;
            for s in (i16::MIN..=i16::MAX).step_by(7) {
                let d = law.decode_sample(law.encode_sample(s));
                assert!(d >= last, "{law:?}: decode(encode({s})) = {d} < {last}");
                last = d;
                // Quantisation error bounded by half the largest step (1024 for µ-law top segment).
                assert!((d as i32 - s as i32).abs() <= 1100, "{law:?}: {s} → {d}");
            }
        }
    }

    #[test]
    fn silence_bytes() {
        assert_eq!(G711::Pcmu.silence_byte(), 0xFF);
        assert_eq!(G711::Pcma.silence_byte(), 0xD5);
    }

    #[test]
    fn slice_api_writes_only_what_fits() {
        let pcm = [0i16, 1000, -1000, 32767];
        let mut out = [0u8; 3];
        assert_eq!(G711::Pcma.encode(&pcm, &mut out), 3);
        let mut back = [0i16; 8];
        assert_eq!(G711::Pcma.decode(&out, &mut back), 3);
        assert!((back[1] - 1000).abs() < 40);
    }
}
