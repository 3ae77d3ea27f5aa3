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
            b2 = 0.96900 * b2 + w * 0.1538520;
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

/// A crude formant synthesizer: voiced syllables (glottal pulses through three
/// vowel formant resonators, with a falling/rising pitch contour), 4 syllables per
/// second. Silero hears it as speech; nothing in it is a Mandarin word.
pub fn formant_speech(rate: u32, syllables: usize, seed: u64) -> Vec<f32> {
    let vowels: [[f32; 3]; 5] = [
        [730.0, 1090.0, 2440.0], // a
        [270.0, 2290.0, 3010.0], // i
        [300.0, 870.0, 2240.0],  // u
        [530.0, 1840.0, 2480.0], // e
        [570.0, 840.0, 2410.0],  // o
    ];
    let mut r = Rng::new(seed);
    let fs = rate as f32;
    let syl = (0.22 * fs) as usize;
    let gap = (0.04 * fs) as usize;
    let mut out = Vec::new();
    for s in 0..syllables {
        let v = vowels[(r.next_u32() as usize + s) % vowels.len()];
        let f0_start = 140.0 + 80.0 * (r.uniform() * 0.5 + 0.5);
        let f0_end = f0_start * (0.75 + 0.5 * (r.uniform() * 0.5 + 0.5));
        // Resonator states per formant.
        let mut st = [[0f32; 2]; 3];
        let mut phase = 0f32;
        for i in 0..syl {
            let t = i as f32 / syl as f32;
            let f0 = f0_start + (f0_end - f0_start) * t;
            phase += f0 / fs;
            // Glottal source: decaying pulse once per period plus a little aspiration.
            let src = if phase >= 1.0 {
                phase -= 1.0;
                1.0
            } else {
                0.0
            } + 0.02 * r.uniform();
            let mut y = 0.0;
            for (k, f) in v.iter().enumerate() {
                let bw = 80.0 + 40.0 * k as f32;
                let rr = (-PI * bw / fs).exp();
                let c1 = 2.0 * rr * (2.0 * PI * f / fs).cos();
                let c2 = -rr * rr;
                let o = src + c1 * st[k][0] + c2 * st[k][1];
                st[k][1] = st[k][0];
                st[k][0] = o;
                y += o / (k as f32 + 1.0);
            }
            // Syllable envelope: quick attack, slow decay.
            let env = (t * 10.0).min(1.0) * (1.0 - t).powf(0.5);
            out.push(y * env);
        }
        out.extend(std::iter::repeat_n(0.0, gap));
    }
    scale_to(&mut out, -20.0);
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
