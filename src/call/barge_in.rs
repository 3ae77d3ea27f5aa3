//! Barge-in: deciding, frame by frame, that the caller has started talking over the agent.
//!
//! Sans-IO: the call pipeline feeds every 20 ms frame it sent ([`BargeInDetector::on_sent`])
//! and every inbound 20 ms frame ([`BargeInDetector::on_received`]), both at 8 kHz. The
//! decision must be fast (the budget is 150 ms from the caller's speech onset to
//! silence on the wire, and the inbound jitter buffer alone holds 40 ms) and must not be
//! fooled by the agent's own voice coming back over the line (PBXs and handsets echo).
//!
//! Why not the VAD: Silero needs a few 32 ms chunks of context before its probability
//! rises, so a VAD-gated detector stopped the agent ~520 ms after onset. This detector
//! works on the frame's energy *after removing the echo*:
//!
//! * the echo is modelled as a delayed, scaled copy of what was sent in the last
//!   [`ECHO_WINDOW_MS`]; the delay is searched (normalised cross-correlation, coarse at
//!   2 kHz then fine around the best candidates) and then tracked, so steady echo costs
//!   a few dot products per frame;
//! * the part of the inbound frame the echo cannot explain (the residual) is what the
//!   caller said. A frame is voiced when that residual is above an absolute floor, above
//!   the line's tracked noise floor by a margin, and is a real share of the frame (a frame
//!   the echo explains to [`BargeInConfig::echo_explained`] is echo, whatever its level).
//!   This is the "higher threshold while playing": the bar rises with what we just sent.
//!
//! [`BargeInConfig::onset_frames`] consecutive voiced frames while the agent plays fire a
//! barge-in (40 ms by default); the pacer flushes the playback on the very next packet.
//! Until the line's noise floor is known ([`FLOOR_KNOWN_FRAMES`] non-silent frames), only
//! speech-like frames (low zero-crossing rate, i.e. voiced) count, so a noisy line does not
//! interrupt the greeting the moment its first packet arrives, while a caller on a
//! digitally silent line is still heard from the first syllable.

use crate::audio::FRAME_8K;

/// How far back the echo search looks (PBX/handset round trip plus both jitter buffers).
pub const ECHO_WINDOW_MS: usize = 480;
const ECHO_WINDOW: usize = ECHO_WINDOW_MS * 8; // samples at 8 kHz
const HISTORY: usize = ECHO_WINDOW + FRAME_8K;
/// Non-silent frames after which the noise floor is trusted.
pub const FLOOR_KNOWN_FRAMES: u32 = 10;
/// Zero-crossing rate under which a frame is speech-like (voiced) rather than noise-like.
const SPEECH_ZCR: f32 = 0.35;
/// Lags either side of the tracked echo delay tried before a full search.
const TRACK_SPAN: usize = 8;
/// Decimation of the coarse echo search (8 kHz → 2 kHz).
const DECIMATE: usize = 4;
/// Coarse lags refined at full rate.
const CANDIDATES: usize = 4;
/// Share of a frame a newly found echo delay must explain (see `fit_echo`).
const NEW_PATH_EXPLAINED: f32 = 0.9;
/// Frames over which the noise floor is the minimum level (1 s: speech has pauses).
const FLOOR_FRAMES: usize = 50;
/// Mean-square level under which a frame is digital silence.
const SILENT_MS: f32 = 1e-9;

/// Tuning of the barge-in decision.
#[derive(Debug, Clone, Copy)]
pub struct BargeInConfig {
    /// Residual (caller) level under which a frame never counts, dBFS.
    pub min_level_dbfs: f32,
    /// How far above the line's noise floor the residual must be, dB.
    pub noise_margin_db: f32,
    /// Share of the frame's energy the best echo estimate must explain for the frame to
    /// be echo (0.75: the caller must be within ~5 dB of the echo to be heard over it).
    pub echo_explained: f32,
    /// Largest echo gain accepted, dB (echo is never much louder than what was sent).
    pub max_echo_gain_db: f32,
    /// Consecutive voiced frames while the agent plays that make a barge-in.
    pub onset_frames: u32,
}

impl Default for BargeInConfig {
    fn default() -> Self {
        Self {
            min_level_dbfs: -42.0,
            noise_margin_db: 8.0,
            echo_explained: 0.75,
            max_echo_gain_db: 3.0,
            onset_frames: 2,
        }
    }
}

/// What one inbound frame meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameVerdict {
    /// Nothing of note (silence, noise, or too short a burst so far).
    Quiet,
    /// Above the floor, but explained by the agent's own echo.
    Echo,
    /// The caller is speaking; onset not (yet) confirmed, or the agent is silent.
    Voiced,
    /// Caller speech confirmed while the agent was playing: stop playback now.
    BargeIn,
}

/// Per-call barge-in detector. Allocates once at construction; nothing per frame.
pub struct BargeInDetector {
    cfg: BargeInConfig,
    max_gain: f32,
    /// Ring of the last sent samples (8 kHz); the oldest is at `pos`.
    sent: Box<[f32]>,
    pos: usize,
    /// Linearised copy of `sent` for the lag search (reused every frame).
    scratch: Box<[f32]>,
    /// Decimated copies of the history and the frame for the coarse search.
    scratch_dec: Box<[f32]>,
    frame_dec: [f32; FRAME_8K / DECIMATE],
    /// Sum of squares of `sent` (to skip the search when nothing was said).
    sent_energy: f32,
    /// Echo delay in samples (0 = the frame sent in the same tick), once found.
    lag: Option<usize>,
    /// Echo gain at `lag` (smoothed over echo frames).
    gain: Option<f32>,
    /// Recent residual levels (mean square); their minimum is the line's noise floor.
    levels: [f32; FLOOR_FRAMES],
    level_pos: usize,
    floor: f32,
    /// Non-silent frames learned into the floor (saturates).
    known: u32,
    run: u32,
    fired: bool,
}

/// How well the echo explains one frame.
#[derive(Debug, Clone, Copy)]
struct EchoFit {
    lag: usize,
    /// Least-squares gain of the echo at `lag` for this frame alone.
    gain: f32,
    /// Share of the frame's energy explained (0..=1).
    explained: f32,
    /// The frame is echo.
    echo: bool,
}

impl BargeInDetector {
    pub fn new(cfg: BargeInConfig) -> Self {
        Self {
            cfg,
            max_gain: 10f32.powf(cfg.max_echo_gain_db / 20.0),
            sent: vec![0.0; HISTORY].into_boxed_slice(),
            pos: 0,
            scratch: vec![0.0; HISTORY].into_boxed_slice(),
            scratch_dec: vec![0.0; HISTORY / DECIMATE].into_boxed_slice(),
            frame_dec: [0.0; FRAME_8K / DECIMATE],
            sent_energy: 0.0,
            lag: None,
            gain: None,
            levels: [f32::INFINITY; FLOOR_FRAMES],
            level_pos: 0,
            floor: 0.0,
            known: 0,
            run: 0,
            fired: false,
        }
    }

    /// Records a frame just sent to the caller (silence included, so lags stay aligned).
    pub fn on_sent(&mut self, frame: &[f32]) {
        for &s in frame {
            let old = self.sent[self.pos];
            self.sent_energy += s * s - old * old;
            self.sent[self.pos] = s;
            self.pos = (self.pos + 1) % HISTORY;
        }
        if self.sent_energy < SILENT_MS {
            self.sent_energy = 0.0;
        }
    }

    /// Whether something audible was sent recently enough to come back as echo.
    pub fn echo_possible(&self) -> bool {
        self.sent_energy > SILENT_MS * HISTORY as f32
    }

    /// The tracked echo delay in ms, once an echo was seen.
    pub fn echo_delay_ms(&self) -> Option<f32> {
        self.lag.map(|l| l as f32 / 8.0)
    }

    /// Judges one inbound 8 kHz frame. `playing` says whether agent audio is being sent.
    pub fn on_received(&mut self, frame: &[f32], playing: bool) -> FrameVerdict {
        let n = frame.len().min(FRAME_8K);
        let frame = &frame[..n];
        let e_in: f32 = energy(frame);
        let ms = e_in / n.max(1) as f32;
        let floor_known = self.known >= FLOOR_KNOWN_FRAMES;
        let min_ms = db_to_ms(self.cfg.min_level_dbfs);
        let margin = db_to_ms(self.cfg.noise_margin_db);
        // Cheap exit: nothing above the floor, so neither caller nor echo matters.
        let loud = |r: f32, floor: f32| r >= min_ms && r >= floor * margin;
        let mut verdict = FrameVerdict::Quiet;
        let mut residual = ms;
        if loud(ms, self.floor) && (floor_known || zcr(frame) < SPEECH_ZCR) {
            verdict = FrameVerdict::Voiced;
            if self.echo_possible() {
                if let Some(fit) = self.fit_echo(frame, e_in) {
                    residual = ms * (1.0 - fit.explained);
                    if fit.echo {
                        self.gain = Some(match self.gain {
                            Some(g) if self.lag == Some(fit.lag) => 0.7 * g + 0.3 * fit.gain,
                            _ => fit.gain,
                        });
                        self.lag = Some(fit.lag);
                        verdict = FrameVerdict::Echo;
                    } else if !loud(residual, self.floor) {
                        verdict = FrameVerdict::Quiet;
                    }
                }
            }
        }
        // Zeros say nothing about the line's noise; speech must not become the floor
        // of a line whose noise is not known yet.
        if ms > SILENT_MS && (floor_known || verdict != FrameVerdict::Voiced) {
            self.track_floor(residual);
            self.known = self.known.saturating_add(1);
        }
        if verdict != FrameVerdict::Voiced {
            self.run = 0;
            if !playing {
                self.fired = false;
            }
            return verdict;
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

    /// Noise floor: the quietest residual of the last [`FLOOR_FRAMES`] (minimum
    /// statistics: follows steady noise within a second, ignores speech, which pauses).
    fn track_floor(&mut self, ms: f32) {
        self.levels[self.level_pos] = ms;
        self.level_pos = (self.level_pos + 1) % FLOOR_FRAMES;
        let min = self.levels.iter().copied().fold(f32::INFINITY, f32::min);
        self.floor = if min.is_finite() {
            min.max(SILENT_MS)
        } else {
            0.0
        };
    }

    /// Best explanation of `frame` as a scaled copy of recent outbound audio.
    ///
    /// Around the tracked delay the *tracked* gain is used, not one fitted to this frame:
    /// a free fit would absorb part of the caller's voice into the "echo" whenever it
    /// happens to correlate with the agent's. A delay found by the full search (the echo
    /// path changed, or the first echo) must explain [`NEW_PATH_EXPLAINED`] of the frame:
    /// unrelated speech can reach ~0.7 at some lag among thousands, a real linear echo
    /// is above 0.9.
    fn fit_echo(&mut self, frame: &[f32], e_in: f32) -> Option<EchoFit> {
        let n = frame.len();
        if e_in <= SILENT_MS {
            return None;
        }
        // Linearise the ring: scratch[0] is the oldest sample.
        let (tail, head) = self.sent.split_at(self.pos);
        self.scratch[..head.len()].copy_from_slice(head);
        self.scratch[head.len()..].copy_from_slice(tail);
        let hist = &self.scratch[..];
        let max_lag = HISTORY - n;
        let max_gain = self.max_gain;
        let fit_at = |lag: usize, e_ref: f32, fixed: Option<f32>| -> Option<EchoFit> {
            if e_ref <= SILENT_MS {
                return None;
            }
            let start = max_lag - lag;
            let dot = dot(frame, &hist[start..start + n]);
            let free = (dot / e_ref).clamp(-max_gain, max_gain);
            let g = fixed.unwrap_or(free);
            let residual = (e_in - 2.0 * g * dot + g * g * e_ref).max(0.0);
            Some(EchoFit {
                lag,
                gain: free,
                explained: (1.0 - residual / e_in).clamp(0.0, 1.0),
                echo: false,
            })
        };
        let better = |f: Option<EchoFit>, best: Option<EchoFit>| match (f, best) {
            (Some(f), Some(b)) if f.explained <= b.explained => Some(b),
            (Some(f), _) => Some(f),
            (None, b) => b,
        };
        let mut tracked: Option<EchoFit> = None;
        let mut skip = 1..1;
        if let (Some(lag), Some(gain)) = (self.lag, self.gain) {
            let lo = lag.saturating_sub(TRACK_SPAN);
            let hi = (lag + TRACK_SPAN).min(max_lag);
            for l in lo..=hi {
                let start = max_lag - l;
                tracked = better(
                    fit_at(l, energy(&hist[start..start + n]), Some(gain)),
                    tracked,
                );
            }
            if let Some(t) = tracked.as_mut() {
                if t.explained >= self.cfg.echo_explained {
                    t.echo = true;
                    return tracked;
                }
            }
            skip = lo..hi + 1;
        }
        // Full search, coarse to fine: normalised correlation of 2 kHz box-decimated
        // signals at every 4th lag (1/16 of the work), then every lag around the best
        // few candidates at full rate.
        let nd = n / DECIMATE;
        let hd = HISTORY / DECIMATE;
        for (d, c) in self.scratch_dec.iter_mut().zip(hist.chunks_exact(DECIMATE)) {
            *d = c.iter().sum();
        }
        for (d, c) in self.frame_dec.iter_mut().zip(frame.chunks_exact(DECIMATE)) {
            *d = c.iter().sum();
        }
        let hist_dec = &self.scratch_dec[..hd];
        let frame_dec = &self.frame_dec[..nd];
        let e_in_dec = energy(frame_dec);
        let mut cands = [(0.0f32, usize::MAX); CANDIDATES];
        if nd > 0 && e_in_dec > SILENT_MS {
            let max_dec = hd - nd;
            let mut e_ref = energy(&hist_dec[..nd]);
            for start in 0..=max_dec {
                if start > 0 {
                    let out = hist_dec[start - 1];
                    let inn = hist_dec[start + nd - 1];
                    e_ref = (e_ref + inn * inn - out * out).max(0.0);
                }
                if e_ref <= SILENT_MS {
                    continue;
                }
                let d = dot(frame_dec, &hist_dec[start..start + nd]);
                let c2 = d * d / (e_in_dec * e_ref);
                // Keep the best few (insertion into a tiny sorted array).
                if c2 > cands[CANDIDATES - 1].0 {
                    let mut k = CANDIDATES - 1;
                    cands[k] = (c2, (max_dec - start) * DECIMATE);
                    while k > 0 && cands[k].0 > cands[k - 1].0 {
                        cands.swap(k, k - 1);
                        k -= 1;
                    }
                }
            }
        }
        let mut found: Option<EchoFit> = None;
        for &(_, coarse) in cands.iter().filter(|c| c.1 != usize::MAX) {
            let lo = coarse.saturating_sub(DECIMATE);
            let hi = (coarse + DECIMATE).min(max_lag);
            for lag in lo..=hi {
                if skip.contains(&lag) {
                    continue;
                }
                let start = max_lag - lag;
                found = better(fit_at(lag, energy(&hist[start..start + n]), None), found);
            }
        }
        match (found, tracked) {
            (Some(mut f), _) if f.explained >= NEW_PATH_EXPLAINED => {
                f.echo = true;
                Some(f)
            }
            // A known echo path explains what it can; the rest is the caller.
            (_, Some(t)) => Some(t),
            (f, None) => f,
        }
    }
}

/// The lines in the playback queue, oldest (the one on the wire) first.
///
/// The pipeline queues a whole line ahead of the pacer, so "the line being fed" is not
/// "the line being heard": barge-in must ask this tracker whether the line the caller
/// is hearing may be cut, and what was cut. Capacity is fixed at construction.
#[derive(Debug)]
pub struct OnAir {
    lines: std::collections::VecDeque<OnAirLine>,
}

/// A queued line and how much of it went out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnAirLine {
    pub text: String,
    pub interruptible: bool,
    pub frames: usize,
    pub sent: usize,
}

impl Default for OnAir {
    fn default() -> Self {
        Self {
            lines: std::collections::VecDeque::with_capacity(16),
        }
    }
}

impl OnAir {
    /// A line of `frames` 20 ms frames was queued behind the others.
    pub fn queued(&mut self, text: &str, interruptible: bool, frames: usize) {
        if frames > 0 {
            self.lines.push_back(OnAirLine {
                text: text.to_string(),
                interruptible,
                frames,
                sent: 0,
            });
        }
    }

    /// One queued (speech) frame left on the wire.
    pub fn sent_frame(&mut self) {
        if let Some(l) = self.lines.front_mut() {
            l.sent += 1;
            if l.sent >= l.frames {
                self.lines.pop_front();
            }
        }
    }

    /// The line the caller is hearing now.
    pub fn current(&self) -> Option<&OnAirLine> {
        self.lines.front()
    }

    /// The playback was flushed: returns the line that was cut (if any) and forgets all.
    pub fn flushed(&mut self) -> Option<OnAirLine> {
        let cut = self.lines.pop_front();
        self.lines.clear();
        cut
    }
}

fn energy(x: &[f32]) -> f32 {
    x.iter().map(|s| s * s).sum()
}

/// Share of adjacent samples that change sign.
fn zcr(x: &[f32]) -> f32 {
    if x.len() < 2 {
        return 0.0;
    }
    let crossings = x
        .windows(2)
        .filter(|w| (w[0] >= 0.0) != (w[1] >= 0.0))
        .count();
    crossings as f32 / (x.len() - 1) as f32
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn db_to_ms(db: f32) -> f32 {
    10f32.powf(db / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic voiced-like signal: a few harmonics with a wandering pitch and a
    /// syllable-like envelope (so it has onsets and pauses, like speech).
    fn voice(seed: f32, base_f0: f32, len: usize) -> Vec<f32> {
        let mut phase = 0.0f32;
        (0..len)
            .map(|i| {
                let t = i as f32 / 8000.0;
                let f0 = base_f0 + 30.0 * (t * 3.0 + seed).sin();
                phase += 2.0 * std::f32::consts::PI * f0 / 8000.0;
                let env = 0.6 + 0.4 * (t * 2.0 * std::f32::consts::PI * 4.0 + seed).sin();
                env * (1..6)
                    .map(|h| 0.1 / h as f32 * (phase * h as f32 + seed * h as f32).sin())
                    .sum::<f32>()
            })
            .collect()
    }

    /// Deterministic white-ish noise (xorshift) at `rms`.
    fn noise(seed: u32, rms: f32, len: usize) -> Vec<f32> {
        let mut x = seed.max(1);
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x as f32 / u32::MAX as f32 * 2.0 - 1.0) * rms * 1.732
            })
            .collect()
    }

    /// G.711 µ-law round trip, as every echo over a phone line has been through.
    fn ulaw(x: f32) -> f32 {
        let s = crate::audio::f32_to_i16(x);
        let c = crate::codec::G711::Pcmu;
        c.decode_sample(c.encode_sample(s)) as f32 / 32768.0
    }

    /// Runs a call: the agent sends `agent` (playing throughout), the line returns
    /// `inbound(i)` for frame `i`. Returns the frame index of the first barge-in.
    fn run(
        d: &mut BargeInDetector,
        agent: &[f32],
        mut inbound: impl FnMut(usize) -> Vec<f32>,
    ) -> Option<usize> {
        let mut first = None;
        for (i, a) in agent.chunks(FRAME_8K).enumerate() {
            d.on_sent(a);
            let v = d.on_received(&inbound(i), true);
            if v == FrameVerdict::BargeIn && first.is_none() {
                first = Some(i);
            }
        }
        first
    }

    /// Inbound frame `i` of a line that echoes `agent` after `delay` samples at `gain`
    /// (through µ-law), plus `extra` (the caller, noise) added sample by sample.
    fn echoed(agent: &[f32], delay: usize, gain: f32, i: usize, extra: &[f32]) -> Vec<f32> {
        (0..FRAME_8K)
            .map(|k| {
                let n = i * FRAME_8K + k;
                let echo = if n >= delay {
                    agent[n - delay] * gain
                } else {
                    0.0
                };
                ulaw(echo + extra.get(n).copied().unwrap_or(0.0))
            })
            .collect()
    }

    #[test]
    fn caller_speech_during_playback_fires_after_onset_frames() {
        let mut d = BargeInDetector::new(BargeInConfig::default());
        let agent = voice(0.3, 140.0, 16000);
        let caller = voice(2.1, 230.0, 16000);
        // A clean line (no echo) with the caller starting at frame 30.
        let fired = run(&mut d, &agent, |i| {
            if i >= 30 {
                caller[i * FRAME_8K..(i + 1) * FRAME_8K].to_vec()
            } else {
                noise(i as u32 + 1, 0.0005, FRAME_8K)
            }
        });
        assert_eq!(fired, Some(31), "onset at frame 30 + 2 frames");
    }

    #[test]
    fn fires_once_per_playback_and_rearms_after_reset() {
        let mut d = BargeInDetector::new(BargeInConfig::default());
        let agent = voice(0.3, 140.0, 8000);
        let caller = voice(2.1, 230.0, 8000);
        let mut count = 0;
        for (i, a) in agent.chunks(FRAME_8K).enumerate() {
            d.on_sent(a);
            let c = if i >= 12 {
                &caller[i * FRAME_8K..(i + 1) * FRAME_8K]
            } else {
                &[0.001; FRAME_8K][..]
            };
            if d.on_received(c, true) == FrameVerdict::BargeIn {
                count += 1;
            }
        }
        assert_eq!(count, 1);
        d.reset();
        d.on_sent(&agent[..FRAME_8K]);
        d.on_received(&caller[..FRAME_8K], true);
        d.on_sent(&agent[..FRAME_8K]);
        assert_eq!(
            d.on_received(&caller[FRAME_8K..2 * FRAME_8K], true),
            FrameVerdict::BargeIn
        );
    }

    /// A G.722 call: the agent's 16 kHz frames and the line's 16 kHz echo (through the
    /// G.722 codec) reach the detector decimated to 8 kHz, as the call loop does.
    /// The echo does not fire and its delay is tracked; the caller's voice does fire.
    #[test]
    fn wideband_call_decimated_for_the_detector_separates_echo_from_caller() {
        use crate::codec::g722::{G722Decoder, G722Encoder};
        use crate::rtp::PcmFrame;
        let voice16 = |seed: f32, f0: f32, len: usize| -> Vec<i16> {
            let mut phase = 0.0f32;
            (0..len)
                .map(|i| {
                    let t = i as f32 / 16_000.0;
                    phase += 2.0 * std::f32::consts::PI * (f0 + 30.0 * (t * 3.0 + seed).sin())
                        / 16_000.0;
                    let env = 0.6 + 0.4 * (t * 2.0 * std::f32::consts::PI * 4.0 + seed).sin();
                    let v: f32 = (1..12)
                        .map(|h| 0.1 / h as f32 * (phase * h as f32 + seed * h as f32).sin())
                        .sum();
                    crate::audio::f32_to_i16(env * v)
                })
                .collect()
        };
        let to8 = |f: &[i16]| -> Vec<f32> {
            let frame = PcmFrame::from_samples(f).expect("320 samples");
            frame
                .narrowband()
                .iter()
                .map(|s| *s as f32 / 32768.0)
                .collect()
        };
        let agent = voice16(0.7, 140.0, 16_000 * 4);
        let caller = voice16(2.1, 230.0, 16_000 * 4);
        let delay = 120 * 16; // 120 ms at 16 kHz
        for with_caller in [false, true] {
            let (mut enc, mut dec) = (G722Encoder::new(), G722Decoder::new());
            let mut d = BargeInDetector::new(BargeInConfig::default());
            let mut fired = None;
            for (i, a) in agent.chunks_exact(320).enumerate() {
                let line: Vec<i16> = (0..320)
                    .map(|k| {
                        let n = i * 320 + k;
                        let echo = if n >= delay { agent[n - delay] / 2 } else { 0 };
                        let c = if with_caller && i >= 100 {
                            caller[n]
                        } else {
                            0
                        };
                        echo.saturating_add(c)
                    })
                    .collect();
                let (mut bytes, mut heard) = ([0u8; 160], [0i16; 320]);
                enc.encode(&line, &mut bytes);
                dec.decode(&bytes, &mut heard);
                d.on_sent(&to8(a));
                if d.on_received(&to8(&heard), true) == FrameVerdict::BargeIn && fired.is_none() {
                    fired = Some(i);
                }
            }
            if with_caller {
                let at = fired.expect("the caller's voice fires barge-in");
                assert!((100..=104).contains(&at), "fired at frame {at}");
            } else {
                assert_eq!(fired, None, "the agent's own G.722 echo triggered barge-in");
                let found = d.echo_delay_ms().expect("echo delay tracked");
                assert!(
                    (found - 120.0).abs() <= 1.5,
                    "delay 120 ms tracked as {found} ms"
                );
            }
        }
    }

    #[test]
    fn own_echo_at_minus_6_db_does_not_fire_at_any_delay() {
        let agent = voice(0.7, 140.0, 8000 * 4);
        for delay_ms in [40usize, 80, 120, 160, 200, 320] {
            let mut d = BargeInDetector::new(BargeInConfig::default());
            let delay = delay_ms * 8;
            let fired = run(&mut d, &agent, |i| echoed(&agent, delay, 0.5, i, &[]));
            assert_eq!(fired, None, "echo {delay_ms} ms late triggered barge-in");
            let found = d.echo_delay_ms().expect("echo delay tracked");
            assert!(
                (found - delay_ms as f32).abs() <= 1.0,
                "delay {delay_ms} ms tracked as {found} ms"
            );
        }
    }

    #[test]
    fn filtered_and_inverted_echo_does_not_fire() {
        let agent = voice(1.3, 170.0, 8000 * 3);
        // A hybrid-like echo path: low-pass (3 taps), phase inverted, 100 ms, -8 dB.
        let path: Vec<f32> = (0..agent.len())
            .map(|n| {
                let at = |k: usize| n.checked_sub(k).map_or(0.0, |j| agent[j]);
                -0.4 * (0.25 * at(800) + 0.5 * at(801) + 0.25 * at(802))
            })
            .collect();
        let mut d = BargeInDetector::new(BargeInConfig::default());
        let fired = run(&mut d, &agent, |i| {
            path[i * FRAME_8K..(i + 1) * FRAME_8K]
                .iter()
                .map(|&s| ulaw(s))
                .collect()
        });
        assert_eq!(fired, None);
    }

    #[test]
    fn caller_over_echo_still_fires_within_the_onset() {
        let agent = voice(0.7, 140.0, 8000 * 4);
        let caller = voice(4.4, 230.0, 8000 * 4);
        for delay_ms in [40usize, 120, 200] {
            // The caller starts talking at frame 60 (1.2 s), a little louder than the agent
            // (near-end speech is at full level, the echo is attenuated).
            let start = 60 * FRAME_8K;
            let extra: Vec<f32> = (0..caller.len())
                .map(|n| if n >= start { 1.5 * caller[n] } else { 0.0 })
                .collect();
            let mut d = BargeInDetector::new(BargeInConfig::default());
            let fired = run(&mut d, &agent, |i| {
                echoed(&agent, delay_ms * 8, 0.5, i, &extra)
            });
            assert_eq!(fired, Some(61), "echo delay {delay_ms} ms");
        }
    }

    #[test]
    fn steady_line_noise_does_not_fire_but_speech_over_it_does() {
        let agent = voice(0.9, 150.0, 8000 * 4);
        let caller = voice(3.3, 220.0, 8000 * 4);
        // Noise about -41 dBFS from the first packet, speech ~15 dB above it from 2 s.
        let line = noise(7, 0.009, agent.len());
        let mut d = BargeInDetector::new(BargeInConfig::default());
        let fired = run(&mut d, &agent, |i| {
            (0..FRAME_8K)
                .map(|k| {
                    let n = i * FRAME_8K + k;
                    line[n] + if i >= 100 { caller[n] } else { 0.0 }
                })
                .collect()
        });
        assert_eq!(fired, Some(101));
    }

    #[test]
    fn caller_on_a_digitally_silent_line_fires_at_once() {
        // Peers that send zeros between words: no noise floor is ever learned, the
        // first voiced frames must still count.
        let agent = voice(0.3, 140.0, 8000 * 2);
        let caller = voice(2.1, 230.0, 8000 * 2);
        let mut d = BargeInDetector::new(BargeInConfig::default());
        let fired = run(&mut d, &agent, |i| {
            if i >= 50 {
                caller[i * FRAME_8K..(i + 1) * FRAME_8K].to_vec()
            } else {
                vec![0.0; FRAME_8K]
            }
        });
        assert_eq!(fired, Some(51));
    }

    #[test]
    fn no_barge_in_while_the_agent_is_silent() {
        let mut d = BargeInDetector::new(BargeInConfig::default());
        let caller = voice(1.0, 230.0, 8000);
        let mut verdicts = Vec::new();
        for (i, c) in caller.chunks(FRAME_8K).enumerate() {
            d.on_sent(&[0.0; FRAME_8K]);
            let frame = if i < 12 { &[0.0005; FRAME_8K][..] } else { c };
            verdicts.push(d.on_received(frame, false));
        }
        assert!(!verdicts.contains(&FrameVerdict::BargeIn));
        assert!(verdicts[12..].iter().all(|v| *v == FrameVerdict::Voiced));
    }

    #[test]
    fn quiet_frames_never_fire() {
        let mut d = BargeInDetector::new(BargeInConfig::default());
        for _ in 0..40 {
            d.on_sent(&[0.0; FRAME_8K]);
            assert_eq!(
                d.on_received(&[0.0001; FRAME_8K], true),
                FrameVerdict::Quiet
            );
        }
    }

    #[test]
    fn on_air_follows_the_wire_not_the_queue() {
        let mut a = OnAir::default();
        a.queued("legal notice", false, 3);
        a.queued("question", true, 2);
        assert!(!a.current().unwrap().interruptible);
        for _ in 0..3 {
            a.sent_frame();
        }
        let cur = a.current().unwrap();
        assert_eq!((cur.text.as_str(), cur.interruptible), ("question", true));
        a.sent_frame();
        let cut = a.flushed().unwrap();
        assert_eq!(
            (cut.text.as_str(), cut.sent, cut.frames),
            ("question", 1, 2)
        );
        assert!(a.current().is_none());
        a.sent_frame(); // nothing queued: no effect
        assert!(a.flushed().is_none());
    }
}
