//! Shared helpers for the ASR/VAD integration tests: deterministic test signals.
#![allow(dead_code)]

use std::f32::consts::PI;

use tingshuo::models::ModelPaths;

/// Model paths from `$TINGSHUO_CACHE` / `~/.cache/tingshuo`.
pub fn paths() -> ModelPaths {
    ModelPaths::default_cache()
}

/// Small deterministic PRNG (xorshift) so noise is identical on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 32) as u32
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        self.next_u32() as f32 / 2_147_483_648.0 - 1.0
    }
}

pub fn db_to_amp(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

pub fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

/// White noise with RMS at `dbfs`.
pub fn white_noise(rate: u32, secs: f32, dbfs: f32, seed: u64) -> Vec<f32> {
    let n = (rate as f32 * secs) as usize;
    let mut r = Rng::new(seed);
    let mut v: Vec<f32> = (0..n).map(|_| r.uniform()).collect();
    scale_to(&mut v, dbfs);
    v
}

/// Pink noise (Paul Kellet's filter) with RMS at `dbfs`.
pub fn pink_noise(rate: u32, secs: f32, dbfs: f32, seed: u64) -> Vec<f32> {
    let n = (rate as f32 * secs) as usize;
    let mut r = Rng::new(seed);
    let (mut b0, mut b1, mut b2, mut b3, mut b4, mut b5, mut b6) =
        (0f32, 0f32, 0f32, 0f32, 0f32, 0f32, 0f32);
    let mut v: Vec<f32> = (0..n)
        .map(|_| {
            let w = r.uniform();
            b0 = 0.99886 * b0 + w * 0.0555179;
            b1 = 0.99332 * b1 + w * 0.0750759;
            b2 = 0.96900 * b2 + w * 0.153_852;
            b3 = 0.86650 * b3 + w * 0.3104856;
            b4 = 0.55000 * b4 + w * 0.5329522;
            b5 = -0.7616 * b5 - w * 0.0168980;
            let out = b0 + b1 + b2 + b3 + b4 + b5 + b6 + w * 0.5362;
            b6 = w * 0.115926;
            out
        })
        .collect();
    scale_to(&mut v, dbfs);
    v
}

pub fn scale_to(v: &mut [f32], dbfs: f32) {
    let r = rms(v);
    if r > 0.0 {
        let g = db_to_amp(dbfs) / r;
        v.iter_mut().for_each(|s| *s *= g);
    }
}

/// DTMF digits: 100 ms tone + 100 ms gap each, each tone at -10 dBFS per component.
pub fn dtmf(rate: u32, digits: &str) -> Vec<f32> {
    let rows = [697.0, 770.0, 852.0, 941.0];
    let cols = [1209.0, 1336.0, 1477.0, 1633.0];
    let keys = ["123A", "456B", "789C", "*0#D"];
    let tone = (rate / 10) as usize;
    let mut out = Vec::new();
    for d in digits.chars() {
        let (ri, ci) = keys
            .iter()
            .enumerate()
            .find_map(|(ri, k)| k.find(d).map(|ci| (ri, ci)))
            .expect("DTMF digit");
        let a = db_to_amp(-10.0);
        for i in 0..tone {
            let t = i as f32 / rate as f32;
            out.push(a * ((2.0 * PI * rows[ri] * t).sin() + (2.0 * PI * cols[ci] * t).sin()) / 2.0);
        }
        out.extend(std::iter::repeat_n(0.0, tone));
    }
    out
}

/// Reads a WAV as mono f32 at its own rate.
pub fn read_wav(path: &std::path::Path) -> (Vec<f32>, u32) {
    let mut r = hound::WavReader::open(path).expect("open wav");
    let spec = r.spec();
    let ch = spec.channels as usize;
    let data: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Int => {
            let scale = (1u64 << (spec.bits_per_sample - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.unwrap() as f32 / scale)
                .collect()
        }
        hound::SampleFormat::Float => r.samples::<f32>().map(|s| s.unwrap()).collect(),
    };
    let mono = data
        .chunks(ch)
        .map(|c| c.iter().sum::<f32>() / ch as f32)
        .collect();
    (mono, spec.sample_rate)
}

/// Mandarin speech from espeak-ng (a robotic, different voice), resampled to `rate`.
/// espeak-ng must be installed (`apt-get install espeak-ng`); CI installs it.
pub fn espeak(text: &str, rate: u32) -> Vec<f32> {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("espeak.wav");
    let status = std::process::Command::new("espeak-ng")
        .args(["-v", "cmn", "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .unwrap_or_else(|e| {
            panic!("espeak-ng is needed for this test ({e}); install it: apt-get install espeak-ng")
        });
    assert!(status.success(), "espeak-ng failed");
    let a = tingshuo::audio::read_wav(&wav).expect("espeak wav");
    tingshuo::audio::resample(&a.samples, a.rate, rate).expect("resample")
}

/// The telephone channel: 8 kHz G.711 (A-law, as on China's PSTN) and back to 16 kHz.
pub fn telephone(samples: &[f32], rate: u32) -> Vec<f32> {
    use tingshuo::codec::G711;
    let narrow = tingshuo::audio::resample(samples, rate, 8000).expect("resample to 8 kHz");
    let pcm: Vec<i16> = narrow
        .iter()
        .map(|&s| tingshuo::audio::f32_to_i16(s))
        .collect();
    let mut law = vec![0u8; pcm.len()];
    G711::Pcma.encode(&pcm, &mut law);
    let mut back = vec![0i16; law.len()];
    G711::Pcma.decode(&law, &mut back);
    let f: Vec<f32> = back.iter().map(|&s| s as f32 / 32768.0).collect();
    tingshuo::audio::resample(&f, 8000, 16000).expect("resample to 16 kHz")
}

/// Adds pink noise so the speech-to-noise ratio (over the voiced part) is `snr_db`.
pub fn add_noise(speech: &[f32], rate: u32, snr_db: f32, seed: u64) -> Vec<f32> {
    let voiced: Vec<f32> = speech.iter().copied().filter(|s| s.abs() > 1e-3).collect();
    let level = 20.0 * rms(&voiced).max(1e-9).log10() - snr_db;
    let noise = pink_noise(rate, speech.len() as f32 / rate as f32 + 0.01, level, seed);
    speech.iter().zip(&noise).map(|(s, n)| s + n).collect()
}

/// The call-centre corpus (tests/data/corpus.txt): one reference sentence per line.
pub fn corpus() -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/corpus.txt");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// Where generated reports go: `$CARGO_TARGET_DIR` or the crate's `target/`.
pub fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// One clip of real human Mandarin read speech with its published transcript
/// (tests/data/real_speech: AISHELL-1 test utterances, see its README).
pub struct RealClip {
    pub name: String,
    pub text: String,
    /// 16 kHz mono.
    pub samples: Vec<f32>,
}

/// Loads every clip listed in tests/data/real_speech/manifest.tsv, checking each
/// FLAC file's SHA-256 against the manifest.
pub fn real_speech() -> Vec<RealClip> {
    use sha2::{Digest, Sha256};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/real_speech");
    let manifest = dir.join("manifest.tsv");
    let text = std::fs::read_to_string(&manifest)
        .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    let mut clips = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(
            f.len(),
            8,
            "manifest line {line:?} needs 8 tab-separated fields"
        );
        let path = dir.join(f[0]);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let sha = hex::encode(Sha256::digest(&bytes));
        assert_eq!(
            sha,
            f[1],
            "{}: SHA-256 differs from the manifest",
            path.display()
        );
        let mut reader = claxon::FlacReader::new(std::io::Cursor::new(bytes))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let info = reader.streaminfo();
        assert_eq!(
            (info.sample_rate, info.channels, info.bits_per_sample),
            (16_000, 1, 16),
            "{}: expected 16 kHz mono 16-bit",
            path.display()
        );
        let samples = reader
            .samples()
            .map(|s| s.unwrap_or_else(|e| panic!("{}: {e}", path.display())) as f32 / 32768.0)
            .collect();
        clips.push(RealClip {
            name: f[0].to_string(),
            text: f[7].to_string(),
            samples,
        });
    }
    clips
}

/// The same telephone channel as [`telephone`], µ-law (PCMU) instead of A-law.
pub fn telephone_pcmu(samples: &[f32], rate: u32) -> Vec<f32> {
    use tingshuo::codec::G711;
    let narrow = tingshuo::audio::resample(samples, rate, 8000).expect("resample to 8 kHz");
    let pcm: Vec<i16> = narrow
        .iter()
        .map(|&s| tingshuo::audio::f32_to_i16(s))
        .collect();
    let mut law = vec![0u8; pcm.len()];
    G711::Pcmu.encode(&pcm, &mut law);
    let mut back = vec![0i16; law.len()];
    G711::Pcmu.decode(&law, &mut back);
    let f: Vec<f32> = back.iter().map(|&s| s as f32 / 32768.0).collect();
    tingshuo::audio::resample(&f, 8000, 16000).expect("resample to 16 kHz")
}
