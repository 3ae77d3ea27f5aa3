//! Per-call turn detector: Silero VAD + endpointer + the current turn's audio.
//!
//! The pipeline pushes 20 ms frames; when an event says "recognise now" it reads
//! [`TurnDetector::turn_audio`]: the turn from its start minus a pre-roll (Silero
//! reacts a chunk or two late, and Whisper misses clipped onsets) up to the end of
//! speech plus a short tail. The buffer is allocated once for the longest turn.

use super::endpoint::{EndpointConfig, EndpointEvent, Endpointer};
use super::silero::{SileroModel, SileroVad, VadRate};
use super::VadError;

/// Audio kept before the detected start of speech.
const PREROLL_MS: u64 = 256;
/// Audio kept after the last voiced chunk when a turn is handed to ASR.
const TAIL_MS: u64 = 160;
/// During a turn, a chunk this far below the turn's loudest chunk is a pause whatever
/// Silero says. Why: Silero's probability trails the end of speech by two or three
/// chunks (0.98 and 0.5 on chunks at −73 and −120 dBFS after a −22 dBFS 没有了), and
/// every chunk of that trail is added to the caller's wait. A line with noise on it
/// never gets this quiet (15 dB SNR stays far above): [`NOISE_MARGIN_DB`] covers it.
const DEEP_QUIET_DB: f32 = 35.0;

/// Level of digital silence, below anything a chunk measures.
const SILENT_DB: f32 = -120.0;
/// On a line with a noise floor, a chunk within this of the floor is a pause whatever
/// Silero says. Why: in steady noise Silero trails the end of speech by 3-6 chunks
/// (0.99, 0.99, 0.88, 0.52 on chunks already at the -35 dBFS floor), 100-230 ms that
/// every caller on a noisy line waited on top of the hangover. White noise measured in
/// 32 ms chunks varies by well under 1 dB, so 3 dB keeps real speech (which adds at
/// least 3 dB once it is as loud as the noise) out of the rule.
const NOISE_MARGIN_DB: f32 = 3.0;
/// The floor rule applies only when the floor lies this far below the turn's loudest
/// chunk: a "floor" close to the speech level is quiet speech, not line noise.
const NOISE_BELOW_PEAK_DB: f32 = 12.0;
/// Chunks of the floor window (about 2 s of 32 ms chunks): the floor is the quietest
/// chunk in it, so it includes the gaps of a turn and the quiet before it.
const NOISE_WINDOW: usize = 64;
/// Chunks quieter than this are digital silence (a muted or idle line), not a floor:
/// [`DEEP_QUIET_DB`] already handles them.
const DIGITAL_SILENCE_DB: f32 = -90.0;
/// A quarter of a chunk this quiet is a gap in the line (µ-law's idle pattern decodes
/// to 0, A-law's to ±8, −72 dBFS): the chunk straddles the start or end of the sound
/// and measures up to several dB under the real floor. Why it matters: a phone that
/// stops sending between utterances (or sends silence) gave two such chunks per
/// utterance, the floor came out 4–5 dB low, the noise after the speech never came
/// within [`NOISE_MARGIN_DB`] of it, and the rule never fired (measured on the bench's
/// noisy turns: 120–200 ms of Silero trail kept).
const GAP_DB: f32 = -66.0;
/// Chunks in a row at the floor before the rule applies: the closure of a stop
/// consonant reaches the floor for a chunk, and each false pause would start (and
/// throw away) a speculative recognition.
const NOISE_RUN: u32 = 2;

/// One call's VAD, endpointer and turn buffer.
pub struct TurnDetector {
    vad: SileroVad,
    ep: Endpointer,
    /// Recent audio; `buf[0]` is stream sample `buf_start`.
    buf: Vec<f32>,
    buf_start: u64,
    /// Samples pushed so far.
    total: u64,
    /// Current turn: start and (once a pause was seen) speech end, stream ms.
    turn: Option<(u64, Option<u64>)>,
    samples_per_ms: u64,
    /// Loudest chunk of the current turn (dBFS), for [`DEEP_QUIET_DB`].
    peak_db: f32,
    /// Levels (dBFS) of the last [`NOISE_WINDOW`] chunks that were not digital
    /// silence, a ring written at `level_at`, for the line's noise floor.
    levels: [f32; NOISE_WINDOW],
    level_at: usize,
    /// Chunks in a row at the noise floor during the current turn.
    floor_run: u32,
    /// Start (stream ms) of a turn the call loop ended early, kept while the caller may
    /// turn out to be mid-sentence: [`Self::reopen_held`] continues it.
    held: Option<u64>,
}

impl TurnDetector {
    /// A detector at `rate_hz` (8000 or 16000) sharing `model`.
    pub fn new(model: &SileroModel, rate_hz: u32, cfg: EndpointConfig) -> Result<Self, VadError> {
        let rate = VadRate::from_hz(rate_hz)?;
        let ep = Endpointer::new(cfg)?;
        let samples_per_ms = u64::from(rate.hz() / 1000);
        let c = ep.config();
        let cap_ms = PREROLL_MS + u64::from(c.max_turn_ms) + u64::from(c.hangover_ms) + 1000;
        Ok(Self {
            vad: model.new_vad(rate)?,
            ep,
            buf: Vec::with_capacity((cap_ms * samples_per_ms) as usize),
            buf_start: 0,
            total: 0,
            turn: None,
            samples_per_ms,
            peak_db: SILENT_DB,
            levels: [0.0; NOISE_WINDOW],
            level_at: 0,
            floor_run: 0,
            held: None,
        })
    }

    pub fn endpointer(&self) -> &Endpointer {
        &self.ep
    }

    /// Probability of the most recent 32 ms chunk.
    pub fn last_probability(&self) -> f32 {
        self.vad.last_probability()
    }

    /// Feeds one frame (at most 32 ms, e.g. 20 ms) and returns the event it caused, if any.
    ///
    /// After `SpeechEnd` the finished turn stays readable through [`Self::turn_audio`]
    /// until the next call of this method.
    pub fn push_frame(&mut self, frame: &[f32]) -> Result<Option<EndpointEvent>, VadError> {
        if frame.len() > self.vad.rate().chunk() {
            return Err(VadError::Config(format!(
                "frame of {} samples is longer than one 32 ms VAD chunk ({}); feed 10-30 ms frames",
                frame.len(),
                self.vad.rate().chunk()
            )));
        }
        if !self.ep.in_speech() {
            self.turn = None;
        }
        self.make_room(frame.len());
        self.buf.extend_from_slice(frame);
        self.total += frame.len() as u64;
        let mut prob = None;
        self.vad.push(frame, |p| prob = Some(p))?;
        let Some(mut p) = prob else { return Ok(None) };
        let chunk = self.vad.rate().chunk().min(self.buf.len());
        let tail = &self.buf[self.buf.len() - chunk..];
        let db = crate::audio::rms_dbfs(tail);
        let straddles = tail
            .chunks(chunk.div_ceil(4).max(1))
            .any(|w| crate::audio::rms_dbfs(w) < GAP_DB);
        let floor = self.note_level(db, straddles);
        if self.ep.in_speech() {
            let at_floor = floor.is_some_and(|f| {
                f < self.peak_db - NOISE_BELOW_PEAK_DB && db < f + NOISE_MARGIN_DB
            });
            self.floor_run = if at_floor { self.floor_run + 1 } else { 0 };
            if db < self.peak_db - DEEP_QUIET_DB || self.floor_run >= NOISE_RUN {
                p = 0.0;
            }
        } else {
            self.peak_db = SILENT_DB;
            self.floor_run = 0;
        }
        if p >= self.ep.config().threshold_off {
            self.peak_db = self.peak_db.max(db);
        }
        let event = self.ep.push(p, self.vad.rate().chunk_ms());
        match event {
            Some(EndpointEvent::SpeechStart { start_ms }) => self.turn = Some((start_ms, None)),
            Some(EndpointEvent::SpeechResumed { .. }) => {
                if let Some((_, end)) = &mut self.turn {
                    *end = None;
                }
            }
            Some(EndpointEvent::TentativeEnd {
                start_ms,
                speech_end_ms,
                ..
            })
            | Some(EndpointEvent::SpeechEnd {
                start_ms,
                speech_end_ms,
                ..
            }) => self.turn = Some((start_ms, Some(speech_end_ms))),
            None => {}
        }
        Ok(event)
    }

    /// Records a chunk's level and returns the line's noise floor ([`Self::noise_floor_db`]).
    /// `straddles`: the chunk holds a gap in the line, so it is not a floor sample.
    fn note_level(&mut self, db: f32, straddles: bool) -> Option<f32> {
        if db > DIGITAL_SILENCE_DB && !straddles {
            self.levels[self.level_at % NOISE_WINDOW] = db;
            self.level_at += 1;
        }
        self.noise_floor_db()
    }

    /// The line's noise floor (dBFS): the quietest chunk of the last two seconds of
    /// sound, or `None` while fewer than a quarter window (0.5 s) of audio that is not
    /// digital silence has been heard (a fresh call, a muted line).
    pub fn noise_floor_db(&self) -> Option<f32> {
        (self.level_at >= NOISE_WINDOW / 4).then(|| {
            self.levels[..self.level_at.min(NOISE_WINDOW)]
                .iter()
                .copied()
                .fold(f32::INFINITY, f32::min)
        })
    }

    /// Audio of the current or just-ended turn: pre-roll + speech + a short tail (all
    /// audio so far while the caller is still talking). Empty when there is no turn.
    pub fn turn_audio(&self) -> &[f32] {
        let Some((start_ms, end_ms)) = self.turn else {
            return &[];
        };
        let from = (start_ms.saturating_sub(PREROLL_MS) * self.samples_per_ms).max(self.buf_start);
        let to = match end_ms {
            Some(end) => ((end + TAIL_MS) * self.samples_per_ms).min(self.total),
            None => self.total,
        };
        let a = (from - self.buf_start) as usize;
        let b = (to.max(from) - self.buf_start) as usize;
        &self.buf[a.min(self.buf.len())..b.min(self.buf.len())]
    }

    /// Forgets the current turn (e.g. the agent barged in or the call ended).
    pub fn drop_turn(&mut self) {
        self.ep.reset();
        self.turn = None;
    }

    /// Ends the current turn now (the call loop took it as finished before the
    /// hangover), keeping its audio: [`Self::reopen_held`] continues it if the caller
    /// goes on talking, [`Self::release_held`] lets the audio go.
    pub fn end_turn_early(&mut self) {
        self.held = self.turn.map(|(start, _)| start);
        self.drop_turn();
    }

    /// Continues the turn [`Self::end_turn_early`] ended: it is open again from its
    /// old start, so its audio and what the caller says now are one turn. False when
    /// no turn is held.
    pub fn reopen_held(&mut self) -> bool {
        let Some(start) = self.held.take() else {
            return false;
        };
        self.ep.reopen(start);
        self.turn = Some((start, None));
        self.floor_run = 0;
        true
    }

    /// The held turn is over for good.
    pub fn release_held(&mut self) {
        self.held = None;
    }

    /// Keeps the buffer within its capacity without reallocating: when idle only the
    /// pre-roll is needed; during a turn the oldest audio goes only if it must.
    fn make_room(&mut self, incoming: usize) {
        let mut drop_to = if self.ep.in_speech() {
            self.buf_start
        } else {
            let keep_from = self.held.map_or(self.total, |s| s * self.samples_per_ms);
            keep_from
                .min(self.total)
                .saturating_sub(PREROLL_MS * self.samples_per_ms)
        }
        .max(self.buf_start);
        let overflow = (self.buf.len() + incoming).saturating_sub(self.buf.capacity());
        drop_to = drop_to.max(self.buf_start + overflow as u64);
        // Shift only when it frees a good share (or must), so copies stay rare.
        let n = (drop_to - self.buf_start) as usize;
        if n > 0 && (n >= self.buf.capacity() / 4 || overflow > 0) {
            self.buf.copy_within(n.., 0);
            self.buf.truncate(self.buf.len() - n);
            self.buf_start += n as u64;
        }
    }
}
