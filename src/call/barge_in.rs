//! Barge-in: deciding, frame by frame, that the caller has started talking over the agent.
//!
//! Sans-IO: the call pipeline feeds every inbound 20 ms frame (8 kHz) with its VAD speech
//! probability, and every outbound frame it sent. The detector answers whether the caller
//! is really speaking, which must not be fooled by the agent's own voice coming back over
//! the line (PBXs and handsets echo). Two guards do that:
//!
//! * while the agent is playing, a higher VAD threshold applies;
//! * an inbound frame that correlates strongly with something sent in the last
//!   [`ECHO_WINDOW_MS`] (and is not louder than it) is echo, not speech.
//!
//! Speech onset needs [`BargeInConfig::onset_frames`] consecutive non-echo voiced frames,
//! so the stop decision comes 60 ms after onset by default and the pacer flushes the
//! playback on the very next packet: well inside the 150 ms budget.

use crate::audio::FRAME_8K;

/// How far back the echo search looks (round trip through a PBX and handset).
pub const ECHO_WINDOW_MS: usize = 400;
const ECHO_WINDOW: usize = ECHO_WINDOW_MS * 8; // samples at 8 kHz
const HISTORY: usize = ECHO_WINDOW + FRAME_8K;

/// Tuning of the barge-in decision.
#[derive(Debug, Clone, Copy)]
pub struct BargeInConfig {
    /// VAD probability that counts as voiced when the agent is silent.
    pub threshold_idle: f32,
    /// VAD probability that counts as voiced while the agent is playing.
    pub threshold_playing: f32,
    /// Consecutive voiced, non-echo frames needed to declare speech.
    pub onset_frames: u32,
    /// Normalised correlation above which a frame is taken for echo.
    pub echo_correlation: f32,
    /// Inbound frames quieter than this (dBFS) never trigger.
    pub min_level_dbfs: f32,
}

impl Default for BargeInConfig {
    fn default() -> Self {
        Self {
            threshold_idle: 0.5,
            threshold_playing: 0.8,
            onset_frames: 3,
            echo_correlation: 0.6,
            min_level_dbfs: -45.0,
        }
    }
}

/// What one inbound frame meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameVerdict {
    /// Nothing of note (silence, noise, or too short a burst so far).
    Quiet,
    /// Voiced, but recognised as the agent's own echo.
    Echo,
    /// Voiced caller frame, onset not yet confirmed.
    Voiced,
    /// Caller speech confirmed while the agent was playing: stop playback now.
    BargeIn,
}

/// Per-call barge-in detector. Allocates once at construction.
pub struct BargeInDetector {
    cfg: BargeInConfig,
    /// Ring of the last sent samples (8 kHz), oldest first after `pos`.
    sent: Box<[f32; HISTORY]>,
    pos: usize,
    /// Linearised copy of `sent` for the correlation search (reused every frame).
    scratch: Box<[f32; HISTORY]>,
    run: u32,
    fired: bool,
}

impl BargeInDetector {
    pub fn new(cfg: BargeInConfig) -> Self {
        Self {
            cfg,
            sent: Box::new([0.0; HISTORY]),
            pos: 0,
            scratch: Box::new([0.0; HISTORY]),
            run: 0,
            fired: false,
        }
    }

    /// Records a frame just sent to the caller (silence included, so lags stay aligned).
    pub fn on_sent(&mut self, frame: &[f32]) {
        for &s in frame {
            self.sent[self.pos] = s;
            self.pos = (self.pos + 1) % HISTORY;
        }
    }

    /// Judges one inbound 8 kHz frame. `playing` says whether agent audio is being sent.
    pub fn on_received(&mut self, frame: &[f32], vad_prob: f32, playing: bool) -> FrameVerdict {
        let threshold = if playing {
            self.cfg.threshold_playing
        } else {
            self.cfg.threshold_idle
        };
        let level = crate::audio::rms_dbfs(frame);
        if vad_prob < threshold || level < self.cfg.min_level_dbfs {
            self.run = 0;
            if !playing {
                self.fired = false;
            }
            return FrameVerdict::Quiet;
        }
        if playing && self.is_echo(frame) {
            self.run = 0;
            return FrameVerdict::Echo;
        }
        self.run += 1;
        if playing && self.run >= self.cfg.onset_frames && !self.fired {
            self.fired = true;
            return FrameVerdict::BargeIn;
        }
        FrameVerdict::Voiced
    }

    /// Re-arms after the pipeline acted on a barge-in (or playback ended).
    pub fn reset(&mut self) {
        self.run = 0;
        self.fired = false;
    }

    /// Highest normalised cross-correlation between `frame` and any window of recent
    /// outbound audio, and whether that window explains the frame as echo.
    fn is_echo(&mut self, frame: &[f32]) -> bool {
        let n = frame.len().min(FRAME_8K);
        let frame = &frame[..n];
        let e_in: f32 = frame.iter().map(|s| s * s).sum();
        if e_in <= 1e-9 {
            return false;
        }
        // Linearise the ring: scratch[0] is the oldest sample.
        let (tail, head) = self.sent.split_at(self.pos);
        self.scratch[..head.len()].copy_from_slice(head);
        self.scratch[head.len()..].copy_from_slice(tail);
        let hist = &self.scratch[..];
        // Sliding energy of the reference window.
        let mut e_ref: f32 = hist[..n].iter().map(|s| s * s).sum();
        let mut best = 0.0f32;
        let mut best_energy_ratio = 0.0f32;
        for lag in 0..=(HISTORY - n) {
            if lag > 0 {
                let out = hist[lag - 1];
                let inn = hist[lag + n - 1];
                e_ref += inn * inn - out * out;
            }
            if e_ref <= 1e-9 {
                continue;
            }
            let dot: f32 = frame
                .iter()
                .zip(&hist[lag..lag + n])
                .map(|(a, b)| a * b)
                .sum();
            let c = dot / (e_in * e_ref.max(1e-9)).sqrt();
            if c > best {
                best = c;
                best_energy_ratio = e_in / e_ref;
            }
        }
        // Echo is a (mostly) linear, attenuated copy: high correlation, not louder
        // than what was sent (allow 3 dB of gain for line equalisation).
        best >= self.cfg.echo_correlation && best_energy_ratio <= 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic voiced-like signal: a few harmonics with a wandering pitch.
    fn voice(seed: f32, base_f0: f32, len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let t = i as f32 / 8000.0;
                let f0 = base_f0 + 30.0 * (t * 3.0 + seed).sin();
                (1..5)
                    .map(|h| {
                        0.12 / h as f32
                            * (2.0 * std::f32::consts::PI * f0 * h as f32 * t + seed * h as f32)
                                .sin()
                    })
                    .sum()
            })
            .collect()
    }

    #[test]
    fn caller_speech_during_playback_fires_after_onset_frames() {
        let mut d = BargeInDetector::new(BargeInConfig::default());
        let agent = voice(0.3, 140.0, 8000);
        let caller = voice(2.1, 230.0, 8000);
        let mut verdicts = Vec::new();
        for (a, c) in agent.chunks(FRAME_8K).zip(caller.chunks(FRAME_8K)).take(10) {
            d.on_sent(a);
            verdicts.push(d.on_received(c, 0.95, true));
        }
        assert_eq!(
            &verdicts[..4],
            &[
                FrameVerdict::Voiced,
                FrameVerdict::Voiced,
                FrameVerdict::BargeIn,
                FrameVerdict::Voiced
            ]
        );
        // Fires once per playback.
        assert_eq!(
            verdicts
                .iter()
                .filter(|v| **v == FrameVerdict::BargeIn)
                .count(),
            1
        );
    }

    #[test]
    fn own_echo_does_not_fire() {
        let mut d = BargeInDetector::new(BargeInConfig::default());
        let agent = voice(0.7, 140.0, 16000);
        // Echo: 120 ms later, 10 dB down.
        let delay = 960;
        let mut fired = false;
        for (i, a) in agent.chunks(FRAME_8K).enumerate() {
            d.on_sent(a);
            let start = (i * FRAME_8K) as isize - delay as isize;
            let echo: Vec<f32> = (0..FRAME_8K)
                .map(|k| {
                    let j = start + k as isize;
                    if j >= 0 {
                        agent[j as usize] * 0.316
                    } else {
                        0.0
                    }
                })
                .collect();
            let v = d.on_received(&echo, 0.9, true);
            fired |= v == FrameVerdict::BargeIn;
        }
        assert!(!fired, "echo of the agent's own voice triggered barge-in");
    }

    #[test]
    fn caller_over_echo_still_fires() {
        let mut d = BargeInDetector::new(BargeInConfig::default());
        let agent = voice(0.7, 140.0, 16000);
        let caller = voice(4.4, 230.0, 16000);
        let mut fired_at = None;
        for (i, a) in agent.chunks(FRAME_8K).enumerate() {
            d.on_sent(a);
            let inbound: Vec<f32> = (0..FRAME_8K)
                .map(|k| {
                    let j = (i * FRAME_8K + k) as isize - 960;
                    let echo = if j >= 0 { agent[j as usize] * 0.2 } else { 0.0 };
                    // The caller starts talking at frame 20.
                    let speech = if i >= 20 {
                        caller[i * FRAME_8K + k] * 1.5
                    } else {
                        0.0
                    };
                    echo + speech
                })
                .collect();
            let prob = if i >= 20 { 0.95 } else { 0.85 };
            if d.on_received(&inbound, prob, true) == FrameVerdict::BargeIn && fired_at.is_none() {
                fired_at = Some(i);
            }
        }
        assert_eq!(fired_at, Some(22), "onset at frame 20 + 3 frames");
    }

    #[test]
    fn higher_threshold_while_playing() {
        let mut d = BargeInDetector::new(BargeInConfig::default());
        let caller = voice(1.0, 230.0, 1600);
        for c in caller.chunks(FRAME_8K) {
            d.on_sent(&[0.0; FRAME_8K]);
            assert_eq!(d.on_received(c, 0.6, true), FrameVerdict::Quiet);
        }
        assert_eq!(
            d.on_received(&caller[..FRAME_8K], 0.6, false),
            FrameVerdict::Voiced
        );
    }

    #[test]
    fn quiet_frames_never_fire() {
        let mut d = BargeInDetector::new(BargeInConfig::default());
        for _ in 0..20 {
            d.on_sent(&[0.0; FRAME_8K]);
            assert_eq!(
                d.on_received(&[0.0001; FRAME_8K], 0.99, true),
                FrameVerdict::Quiet
            );
        }
    }
}
