//! G.722 (ITU-T, 64 kbit/s sub-band ADPCM): 16 kHz audio, one byte per two samples.
//!
//! The codec itself comes from the `audio-codec` crate (pure Rust, a port of the
//! SpanDSP/libg722 reference); this module pins it to what RTP telephony uses (mode 1,
//! 64 kbit/s, unpacked, 16 kHz in and out) and to fixed 20 ms frames on caller-owned
//! buffers: 320 samples ↔ 160 bytes, no allocation per frame.
//!
//! Unlike G.711 the codec has state (the ADPCM predictors and the QMF history): one
//! encoder per outbound stream and one decoder per inbound stream, fed in order.
//!
//! RFC 3551 §4.5.2: the RTP clock of G.722 is 8000 Hz although the audio is sampled at
//! 16 kHz (an error in RFC 1890 kept for compatibility), so SDP says `G722/8000` and a
//! 20 ms packet advances the timestamp by 160, exactly like G.711.

use audio_codec::g722::{Bitrate, G722Decoder as Dec, G722Encoder as Enc};
use audio_codec::{Decoder as _, Encoder as _};

/// Audio sample rate of G.722.
pub const SAMPLE_RATE: u32 = 16_000;
/// Samples in one 20 ms frame.
pub const FRAME_SAMPLES: usize = 320;
/// Bytes of one 20 ms frame (64 kbit/s).
pub const FRAME_BYTES: usize = 160;
/// Static RTP payload type (RFC 3551).
pub const PAYLOAD_TYPE: u8 = 9;

/// A G.722 encoder for one outbound stream.
pub struct G722Encoder(Enc);

impl Default for G722Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for G722Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("G722Encoder")
    }
}

impl G722Encoder {
    pub fn new() -> Self {
        Self(Enc::with_options(Bitrate::Mode1_64000, false, false))
    }

    /// Encodes 16 kHz samples (an even count) into `out` (half as many bytes); returns
    /// the bytes written, 0 if `out` is too small.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> usize {
        let n = (pcm.len() / 2).min(out.len()) * 2;
        self.0.encode_into(&pcm[..n], out).unwrap_or(0)
    }
}

/// A G.722 decoder for one inbound stream.
pub struct G722Decoder(Dec);

impl Default for G722Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for G722Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("G722Decoder")
    }
}

impl G722Decoder {
    pub fn new() -> Self {
        Self(Dec::with_options(Bitrate::Mode1_64000, false, false))
    }

    /// Decodes `payload` into `out` (two samples per byte, as many bytes as fit);
    /// returns the samples written.
    pub fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> usize {
        let n = payload.len().min(out.len() / 2);
        self.0.decode_into(&payload[..n], out).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f64, n: usize, amp: f64) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (amp * (i as f64 / SAMPLE_RATE as f64 * hz * std::f64::consts::TAU).sin()) as i16
            })
            .collect()
    }

    /// SNR in dB of `decoded` against `reference` delayed by `delay` samples, over the
    /// second half (the ADPCM predictors have settled by then).
    fn snr_db(reference: &[i16], decoded: &[i16], delay: usize) -> f64 {
        let start = reference.len() / 2;
        let (mut sig, mut noise) = (0.0f64, 0.0f64);
        for i in start..reference.len() - delay {
            let r = reference[i] as f64;
            let d = decoded[i + delay] as f64;
            sig += r * r;
            noise += (r - d) * (r - d);
        }
        10.0 * (sig / noise.max(1e-9)).log10()
    }

    /// Encodes and decodes `pcm` in 20 ms frames, as the media thread does.
    fn round_trip(pcm: &[i16]) -> (Vec<i16>, usize) {
        let mut enc = G722Encoder::new();
        let mut dec = G722Decoder::new();
        let mut bytes = [0u8; FRAME_BYTES];
        let mut frame = [0i16; FRAME_SAMPLES];
        let mut out = Vec::with_capacity(pcm.len());
        let mut total_bytes = 0;
        for chunk in pcm.chunks_exact(FRAME_SAMPLES) {
            let n = enc.encode(chunk, &mut bytes);
            assert_eq!(n, FRAME_BYTES, "a 20 ms frame is 160 bytes");
            total_bytes += n;
            let m = dec.decode(&bytes[..n], &mut frame);
            assert_eq!(m, FRAME_SAMPLES, "160 bytes decode to 320 samples");
            out.extend_from_slice(&frame);
        }
        (out, total_bytes)
    }

    /// The QMF pair delays the signal by a fixed number of samples: find it.
    fn best_delay(reference: &[i16], decoded: &[i16]) -> (usize, f64) {
        (0..48)
            .map(|d| (d, snr_db(reference, decoded, d)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .expect("delays")
    }

    #[test]
    fn tones_round_trip_with_high_snr_in_both_bands() {
        // 1 kHz (lower sub-band) and 5 kHz (upper sub-band: G.711 cannot carry it).
        for (hz, min_snr) in [(1000.0, 40.0), (5000.0, 18.0)] {
            let pcm = tone(hz, SAMPLE_RATE as usize, 8000.0);
            let (decoded, bytes) = round_trip(&pcm);
            assert_eq!(bytes, pcm.len() / 2, "64 kbit/s: one byte per two samples");
            let (delay, snr) = best_delay(&pcm, &decoded);
            eprintln!("G.722 {hz} Hz tone: SNR {snr:.1} dB at a delay of {delay} samples");
            assert!(
                snr >= min_snr,
                "{hz} Hz: SNR {snr:.1} dB < {min_snr} dB (delay {delay})"
            );
        }
    }

    #[test]
    fn silence_stays_silent_and_odd_buffers_are_bounded() {
        let (decoded, _) = round_trip(&[0i16; FRAME_SAMPLES * 10]);
        let peak = decoded.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!(peak < 64, "silence decodes to near silence, peak {peak}");
        let mut enc = G722Encoder::new();
        let mut small = [0u8; 10];
        assert_eq!(enc.encode(&[100i16; 64], &mut small), 10);
        let mut dec = G722Decoder::new();
        let mut out = [0i16; 7];
        assert_eq!(
            dec.decode(&[0x55; 10], &mut out),
            6,
            "3 bytes fit in 7 samples"
        );
    }
}
