//! One 20 ms frame of PCM at the call's audio rate: 160 samples at 8 kHz (G.711) or
//! 320 at 16 kHz (G.722). A fixed-size `Copy` value, so frames move through the media
//! channels without allocating whatever the codec.

use super::jitter::{Frame, FRAME_SAMPLES};

/// Samples of the largest frame (20 ms at 16 kHz).
pub const MAX_FRAME_SAMPLES: usize = 2 * FRAME_SAMPLES;

/// See the module documentation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PcmFrame {
    buf: [i16; MAX_FRAME_SAMPLES],
    wide: bool,
}

impl std::fmt::Debug for PcmFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let peak = self.samples().iter().map(|s| s.unsigned_abs()).max();
        f.debug_struct("PcmFrame")
            .field("rate", &self.rate())
            .field("peak", &peak.unwrap_or(0))
            .finish()
    }
}

impl Default for PcmFrame {
    fn default() -> Self {
        Self::silence(8000)
    }
}

impl From<Frame> for PcmFrame {
    fn from(f: Frame) -> Self {
        Self::narrow(&f)
    }
}

/// Anything that is one 20 ms frame: an 8 kHz `[i16; 160]`, a 16 kHz `[i16; 320]` or
/// a [`PcmFrame`]. Taken by reference where frames are queued or recorded.
pub trait ToPcmFrame {
    fn to_pcm_frame(&self) -> PcmFrame;
}

impl ToPcmFrame for Frame {
    fn to_pcm_frame(&self) -> PcmFrame {
        PcmFrame::narrow(self)
    }
}

impl ToPcmFrame for [i16; MAX_FRAME_SAMPLES] {
    fn to_pcm_frame(&self) -> PcmFrame {
        self.into()
    }
}

impl ToPcmFrame for PcmFrame {
    fn to_pcm_frame(&self) -> PcmFrame {
        *self
    }
}

impl std::ops::Deref for PcmFrame {
    type Target = [i16];
    fn deref(&self) -> &[i16] {
        self.samples()
    }
}

impl std::ops::DerefMut for PcmFrame {
    fn deref_mut(&mut self) -> &mut [i16] {
        self.samples_mut()
    }
}

impl IntoIterator for PcmFrame {
    type Item = i16;
    type IntoIter = std::iter::Take<std::array::IntoIter<i16, MAX_FRAME_SAMPLES>>;
    fn into_iter(self) -> Self::IntoIter {
        let n = self.len();
        self.buf.into_iter().take(n)
    }
}

impl From<&Frame> for PcmFrame {
    fn from(f: &Frame) -> Self {
        Self::narrow(f)
    }
}

impl From<&[i16; MAX_FRAME_SAMPLES]> for PcmFrame {
    fn from(f: &[i16; MAX_FRAME_SAMPLES]) -> Self {
        Self {
            buf: *f,
            wide: true,
        }
    }
}

impl From<&PcmFrame> for PcmFrame {
    fn from(f: &PcmFrame) -> Self {
        *f
    }
}

impl PcmFrame {
    /// Silence at `rate` (16000 for wideband, anything else means 8 kHz).
    pub const fn silence(rate: u32) -> Self {
        Self {
            buf: [0; MAX_FRAME_SAMPLES],
            wide: rate == 16_000,
        }
    }

    /// An 8 kHz frame.
    pub fn narrow(samples: &Frame) -> Self {
        let mut f = Self::silence(8000);
        f.buf[..FRAME_SAMPLES].copy_from_slice(samples);
        f
    }

    /// A frame of 160 (8 kHz) or 320 (16 kHz) samples; `None` for any other length.
    pub fn from_samples(samples: &[i16]) -> Option<Self> {
        let rate = match samples.len() {
            FRAME_SAMPLES => 8000,
            MAX_FRAME_SAMPLES => 16_000,
            _ => return None,
        };
        let mut f = Self::silence(rate);
        f.buf[..samples.len()].copy_from_slice(samples);
        Some(f)
    }

    /// The samples: 160 or 320 of them.
    pub fn samples(&self) -> &[i16] {
        &self.buf[..self.len()]
    }

    pub fn samples_mut(&mut self) -> &mut [i16] {
        let n = self.len();
        &mut self.buf[..n]
    }

    pub fn len(&self) -> usize {
        if self.wide {
            MAX_FRAME_SAMPLES
        } else {
            FRAME_SAMPLES
        }
    }

    /// Never: a frame always holds 20 ms.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Sample rate: 8000 or 16000.
    pub fn rate(&self) -> u32 {
        if self.wide {
            16_000
        } else {
            8000
        }
    }

    pub fn is_wideband(&self) -> bool {
        self.wide
    }

    /// The frame at 8 kHz: a copy, or for 16 kHz a [1 2 1]/4 low-pass and 2:1
    /// decimation (for level and echo analysis, the console and narrowband peers).
    pub fn narrowband(&self) -> Frame {
        let mut out = [0i16; FRAME_SAMPLES];
        if !self.wide {
            out.copy_from_slice(&self.buf[..FRAME_SAMPLES]);
            return out;
        }
        let x = &self.buf;
        for (i, o) in out.iter_mut().enumerate() {
            let c = 2 * i;
            let prev = x[c.saturating_sub(1)] as i32;
            let next = x[(c + 1).min(MAX_FRAME_SAMPLES - 1)] as i32;
            *o = ((prev + 2 * x[c] as i32 + next) / 4) as i16;
        }
        out
    }

    /// The frame at `rate` (8000 or 16000): itself, [`Self::narrowband`], or a 1:2
    /// linear interpolation. Stateless and allocation-free: for the rare frame whose
    /// rate differs from the stream's (a transfer relay between a G.711 and a G.722
    /// leg, an operator's 8 kHz voice into a wideband call).
    pub fn to_rate(&self, rate: u32) -> Self {
        match (self.wide, rate == 16_000) {
            (false, true) => {
                let mut f = Self::silence(16_000);
                let x = &self.buf[..FRAME_SAMPLES];
                for i in 0..FRAME_SAMPLES {
                    let a = x[i] as i32;
                    let b = x[(i + 1).min(FRAME_SAMPLES - 1)] as i32;
                    f.buf[2 * i] = a as i16;
                    f.buf[2 * i + 1] = ((a + b) / 2) as i16;
                }
                f
            }
            (true, false) => Self::narrow(&self.narrowband()),
            _ => *self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| (8000.0 * (i as f64 / rate as f64 * hz * std::f64::consts::TAU).sin()) as i16)
            .collect()
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn lengths_decide_the_rate() {
        assert_eq!(
            PcmFrame::from_samples(&[1; 160]).map(|f| f.rate()),
            Some(8000)
        );
        assert_eq!(
            PcmFrame::from_samples(&[1; 320]).map(|f| f.rate()),
            Some(16000)
        );
        assert!(PcmFrame::from_samples(&[1; 240]).is_none());
        let f = PcmFrame::narrow(&[7; FRAME_SAMPLES]);
        assert_eq!(f.samples(), &[7; FRAME_SAMPLES][..]);
        assert_eq!(PcmFrame::silence(16_000).len(), 320);
    }

    #[test]
    fn rate_changes_keep_a_speech_band_tone() {
        // 1 kHz survives 16→8 and 8→16 with its level (within 1 dB) and its shape.
        let wide = tone(16_000, 1000.0, 320);
        let f = PcmFrame::from_samples(&wide).expect("320");
        let down = f.to_rate(8000);
        assert_eq!(down.rate(), 8000);
        let expect = tone(8000, 1000.0, 160);
        let ratio = rms(down.samples()) / rms(&expect);
        assert!((0.89..1.12).contains(&ratio), "level ratio {ratio}");
        let err: Vec<i16> = down.samples()[2..158]
            .iter()
            .zip(&expect[2..158])
            .map(|(a, b)| a - b)
            .collect();
        assert!(rms(&err) < 0.15 * rms(&expect), "shape error {}", rms(&err));
        let up = down.to_rate(16_000);
        assert_eq!(up.rate(), 16_000);
        let ratio = rms(up.samples()) / rms(&wide);
        assert!((0.85..1.12).contains(&ratio), "level ratio {ratio}");
        // A 6 kHz tone (wideband only) is mostly filtered out on the way down.
        let high = PcmFrame::from_samples(&tone(16_000, 6000.0, 320)).expect("320");
        assert!(rms(high.narrowband().as_slice()) < 0.2 * rms(high.samples()));
    }
}
