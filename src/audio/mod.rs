//! Audio plumbing shared by every stage: fixed-frame resampling (rubato) and WAV files.
//!
//! The real-time path uses [`FrameResampler`]: one instance per stream, fed exactly one
//! 20 ms frame at a time, with every buffer allocated up front so a call never allocates
//! per frame. Offline work (TTS output, WAV files, test corpora) uses [`resample`].

pub mod device;

use std::path::Path;

use rubato::{FftFixedIn, Resampler};

/// Samples per 20 ms frame at 8 kHz (one G.711 RTP packet).
pub const FRAME_8K: usize = 160;
/// Samples per 20 ms frame at 16 kHz (what VAD and Whisper consume).
pub const FRAME_16K: usize = 320;
/// Samples per 20 ms frame at 24 kHz (the TTS vocoder's rate).
pub const FRAME_24K: usize = 480;

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("cannot resample {from} Hz → {to} Hz: {message}")]
    Resampler { from: u32, to: u32, message: String },
    #[error("frame of {got} samples given to a resampler built for {expected}-sample frames")]
    FrameSize { expected: usize, got: usize },
    #[error("WAV file {path}: {message}")]
    Wav { path: String, message: String },
}

/// Converts one 20 ms frame at a time between two rates with no per-frame allocation.
///
/// Output has a constant length per frame (`to_hz / 50` samples) and a fixed delay of
/// [`FrameResampler::delay`] output samples, which callers that align streams account for.
pub struct FrameResampler {
    inner: FftFixedIn<f32>,
    input: [Vec<f32>; 1],
    output: [Vec<f32>; 1],
    frame_in: usize,
    produced: usize,
    from: u32,
    to: u32,
}

impl FrameResampler {
    /// A resampler for 20 ms frames from `from_hz` to `to_hz`.
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, AudioError> {
        let frame_in = (from_hz / 50) as usize;
        if frame_in == 0 || !from_hz.is_multiple_of(50) || !to_hz.is_multiple_of(50) {
            return Err(AudioError::Resampler {
                from: from_hz,
                to: to_hz,
                message: "rates must be multiples of 50 Hz for 20 ms frames".into(),
            });
        }
        let inner = FftFixedIn::<f32>::new(from_hz as usize, to_hz as usize, frame_in, 1, 1)
            .map_err(|e| AudioError::Resampler {
                from: from_hz,
                to: to_hz,
                message: e.to_string(),
            })?;
        let out_max = inner.output_frames_max();
        Ok(Self {
            inner,
            input: [vec![0.0; frame_in]],
            output: [vec![0.0; out_max]],
            frame_in,
            produced: 0,
            from: from_hz,
            to: to_hz,
        })
    }

    /// Input samples per frame.
    pub fn frame_in(&self) -> usize {
        self.frame_in
    }

    /// Output samples per frame.
    pub fn frame_out(&self) -> usize {
        (self.to / 50) as usize
    }

    /// Output samples of delay introduced by the filter.
    pub fn delay(&self) -> usize {
        self.inner.output_delay()
    }

    /// Resamples one frame of f32 samples in [-1, 1]; the returned slice lives until the next call.
    pub fn process(&mut self, frame: &[f32]) -> Result<&[f32], AudioError> {
        if frame.len() != self.frame_in {
            return Err(AudioError::FrameSize {
                expected: self.frame_in,
                got: frame.len(),
            });
        }
        self.input[0].copy_from_slice(frame);
        self.run()
    }

    /// Resamples one frame of 16-bit PCM (as decoded from G.711).
    pub fn process_i16(&mut self, frame: &[i16]) -> Result<&[f32], AudioError> {
        if frame.len() != self.frame_in {
            return Err(AudioError::FrameSize {
                expected: self.frame_in,
                got: frame.len(),
            });
        }
        for (dst, &s) in self.input[0].iter_mut().zip(frame) {
            *dst = s as f32 / 32768.0;
        }
        self.run()
    }

    fn run(&mut self) -> Result<&[f32], AudioError> {
        let (_, written) = self
            .inner
            .process_into_buffer(&self.input, &mut self.output, None)
            .map_err(|e| AudioError::Resampler {
                from: self.from,
                to: self.to,
                message: e.to_string(),
            })?;
        self.produced += written;
        Ok(&self.output[0][..written])
    }

    /// Clears the filter history (e.g. after a stream restarts).
    pub fn reset(&mut self) {
        self.inner.reset();
        self.produced = 0;
    }
}

/// Resamples a whole signal (offline use), compensating the filter delay so the
/// output is time-aligned with the input and `len * to / from` samples long.
pub fn resample(samples: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>, AudioError> {
    if from_hz == to_hz {
        return Ok(samples.to_vec());
    }
    let err = |message: String| AudioError::Resampler {
        from: from_hz,
        to: to_hz,
        message,
    };
    let chunk = 1024;
    let mut rs = FftFixedIn::<f32>::new(from_hz as usize, to_hz as usize, chunk, 2, 1)
        .map_err(|e| err(e.to_string()))?;
    let delay = rs.output_delay();
    let expected = (samples.len() as u64 * to_hz as u64 / from_hz as u64) as usize;
    let mut out = Vec::with_capacity(expected + delay + rs.output_frames_max());
    let mut outbuf = vec![vec![0.0f32; rs.output_frames_max()]];
    let mut pos = 0;
    while pos + chunk <= samples.len() {
        let (_, n) = rs
            .process_into_buffer(&[&samples[pos..pos + chunk]], &mut outbuf, None)
            .map_err(|e| err(e.to_string()))?;
        out.extend_from_slice(&outbuf[0][..n]);
        pos += chunk;
    }
    // Flush the tail and the filter delay with zero padding.
    let mut tail = vec![0.0f32; chunk];
    let rest = &samples[pos..];
    tail[..rest.len()].copy_from_slice(rest);
    while out.len() < expected + delay {
        let (_, n) = rs
            .process_into_buffer(&[&tail], &mut outbuf, None)
            .map_err(|e| err(e.to_string()))?;
        out.extend_from_slice(&outbuf[0][..n]);
        tail.fill(0.0);
        if n == 0 {
            break;
        }
    }
    let end = (delay + expected).min(out.len());
    Ok(out[delay.min(end)..end].to_vec())
}

/// A WAV file read into memory as mono f32 in [-1, 1].
#[derive(Debug, Clone)]
pub struct MonoAudio {
    pub samples: Vec<f32>,
    pub rate: u32,
}

/// Reads any PCM/float WAV, downmixing channels to mono.
pub fn read_wav(path: &Path) -> Result<MonoAudio, AudioError> {
    let wav_err = |message: String| AudioError::Wav {
        path: path.display().to_string(),
        message,
    };
    let reader = hound::WavReader::open(path).map_err(|e| wav_err(e.to_string()))?;
    let spec = reader.spec();
    let channels = spec.channels.max(1) as usize;
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .into_samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(|e| wav_err(e.to_string()))?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(|e| wav_err(e.to_string()))?
        }
    };
    let samples = interleaved
        .chunks(channels)
        .map(|c| c.iter().sum::<f32>() / c.len() as f32)
        .collect();
    Ok(MonoAudio {
        samples,
        rate: spec.sample_rate,
    })
}

/// Writes mono f32 samples as 16-bit PCM WAV.
pub fn write_wav(path: &Path, samples: &[f32], rate: u32) -> Result<(), AudioError> {
    let wav_err = |message: String| AudioError::Wav {
        path: path.display().to_string(),
        message,
    };
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(|e| wav_err(e.to_string()))?;
    for &s in samples {
        w.write_sample(f32_to_i16(s))
            .map_err(|e| wav_err(e.to_string()))?;
    }
    w.finalize().map_err(|e| wav_err(e.to_string()))
}

/// Clamps and converts one sample.
#[inline]
pub fn f32_to_i16(s: f32) -> i16 {
    (s.clamp(-1.0, 1.0) * 32767.0).round() as i16
}

/// Root-mean-square level of a frame in dBFS (−∞ for digital silence is reported as −120).
pub fn rms_dbfs(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return -120.0;
    }
    let mean_sq = samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32;
    if mean_sq <= 1e-12 {
        -120.0
    } else {
        10.0 * mean_sq.log10()
    }
}

/// Drops the quiet lead-in of a synthesized line, keeping `keep_ms` of it.
///
/// Why: the TTS voice starts 30–240 ms of near-silence before the first
/// syllable, and every millisecond of it is added to the caller's wait for a
/// reply. The level is measured over 10 ms windows; a line that never rises
/// above `threshold_dbfs` is returned whole (it is silence on purpose).
pub fn trim_leading_silence(
    samples: &[f32],
    rate: u32,
    threshold_dbfs: f32,
    keep_ms: u32,
) -> &[f32] {
    let win = (rate as usize / 100).max(1);
    let onset = samples
        .chunks(win)
        .position(|w| rms_dbfs(w) > threshold_dbfs)
        .map(|i| i * win);
    match onset {
        Some(at) => {
            let keep = (rate as usize * keep_ms as usize) / 1000;
            &samples[at.saturating_sub(keep)..]
        }
        None => samples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_silence_is_trimmed_to_the_margin() {
        let mut line = vec![0.0005f32; 1600]; // 200 ms of hiss at 8 kHz
        line.extend(tone(300.0, 8000, 0.5));
        let out = trim_leading_silence(&line, 8000, -45.0, 20);
        // The onset window starts at sample 1600; 20 ms (160 samples) kept before it.
        assert_eq!(line.len() - out.len(), 1600 - 160);
        let quiet = vec![0.0f32; 800];
        assert_eq!(trim_leading_silence(&quiet, 8000, -45.0, 20).len(), 800);
        assert!(trim_leading_silence(&[], 8000, -45.0, 20).is_empty());
    }

    fn tone(freq: f32, rate: u32, secs: f32) -> Vec<f32> {
        (0..(rate as f32 * secs) as usize)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    /// Dominant frequency by counting zero crossings.
    fn zero_cross_freq(x: &[f32], rate: u32) -> f32 {
        let crossings = x.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
        crossings as f32 * rate as f32 / x.len() as f32
    }

    #[test]
    fn frame_resampler_sizes() {
        for (from, to, fin, fout) in [
            (8000, 16000, FRAME_8K, FRAME_16K),
            (16000, 8000, FRAME_16K, FRAME_8K),
            (24000, 8000, FRAME_24K, FRAME_8K),
        ] {
            let mut r = FrameResampler::new(from, to).expect("resampler");
            assert_eq!(r.frame_in(), fin);
            assert_eq!(r.frame_out(), fout);
            let frame = vec![0.1f32; fin];
            for _ in 0..10 {
                let out = r.process(&frame).expect("process");
                assert_eq!(out.len(), fout);
            }
        }
    }

    #[test]
    fn frame_resampler_keeps_pitch() {
        let input = tone(440.0, 8000, 1.0);
        let mut r = FrameResampler::new(8000, 16000).expect("resampler");
        let mut out = Vec::new();
        for f in input.chunks_exact(FRAME_8K) {
            out.extend_from_slice(r.process(f).expect("process"));
        }
        let settled = &out[r.delay() + 320..];
        let f = zero_cross_freq(settled, 16000);
        assert!((f - 440.0).abs() < 5.0, "measured {f} Hz");
    }

    #[test]
    fn wrong_frame_size_is_an_error() {
        let mut r = FrameResampler::new(8000, 16000).expect("resampler");
        assert!(matches!(
            r.process(&[0.0; 100]),
            Err(AudioError::FrameSize {
                expected: 160,
                got: 100
            })
        ));
    }

    #[test]
    fn offline_resample_is_aligned_and_sized() {
        let input = tone(300.0, 24000, 0.5);
        let out = resample(&input, 24000, 8000).expect("resample");
        assert_eq!(out.len(), 4000);
        // Aligned: the output's phase matches the input decimated by three.
        let err: f32 = out[200..3800]
            .iter()
            .zip(input[600..11400].iter().step_by(3))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 0.05, "max misalignment error {err}");
        let up = resample(&out, 8000, 44100).expect("resample");
        assert_eq!(up.len(), 22050);
    }

    #[test]
    fn wav_round_trip_downmixes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).expect("create");
        for _ in 0..100 {
            w.write_sample(16384i16).expect("write");
            w.write_sample(0i16).expect("write");
        }
        w.finalize().expect("finalize");
        let a = read_wav(&path).expect("read");
        assert_eq!(a.rate, 8000);
        assert_eq!(a.samples.len(), 100);
        assert!((a.samples[0] - 0.25).abs() < 1e-3);
        assert!(read_wav(&dir.path().join("missing.wav"))
            .expect_err("missing file")
            .to_string()
            .contains("missing.wav"));
    }

    #[test]
    fn levels() {
        assert_eq!(rms_dbfs(&[0.0; 10]), -120.0);
        let full = rms_dbfs(&tone(1000.0, 8000, 0.1));
        assert!((full - (-9.03)).abs() < 0.2, "{full}");
    }
}
