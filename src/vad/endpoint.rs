//! Turn endpointing on a stream of speech probabilities (pure logic, no model).
//!
//! Why a tentative end: waiting for the full hangover before starting ASR adds the
//! whole hangover to every turn's latency. At a short pause we emit
//! [`EndpointEvent::TentativeEnd`] so the pipeline can start recognition
//! speculatively; if the caller goes on talking we emit
//! [`EndpointEvent::SpeechResumed`] (throw the guess away), otherwise
//! [`EndpointEvent::SpeechEnd`] confirms it.
//!
//! Hysteresis as Silero recommends: speech starts on `p >= threshold`, continues
//! while `p >= threshold - 0.15`; after a pause began, only `p >= threshold` resumes.

use super::VadError;

/// Endpointer settings. All durations in milliseconds of audio.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointConfig {
    /// Probability at or above which a chunk is voiced.
    pub threshold: f32,
    /// Once speaking, chunks stay voiced down to this probability.
    pub threshold_off: f32,
    /// Voiced audio needed before `SpeechStart` (filters clicks and coughs).
    pub start_ms: u32,
    /// Pause after which `TentativeEnd` is emitted (speculative recognition).
    pub tentative_ms: u32,
    /// Pause after which the turn is over (`SpeechEnd`).
    pub hangover_ms: u32,
    /// A turn longer than this is cut (`SpeechEnd` with [`EndReason::MaxLength`]).
    pub max_turn_ms: u32,
}

impl Default for EndpointConfig {
    /// Hangover measured by `cargo bench --bench vad` (pauses section): inside
    /// multi-clause turns of our TTS voice at speeds 0.85–1.15 Silero sees pauses
    /// of p50 288 ms, p90 416 ms, max 448 ms (espeak-ng: max 224 ms); the hangover
    /// is one chunk of margin over the longest (480 ms, the bench's suggestion; it was
    /// 512 ms, rounded up to 16 chunks, which every unfinished-sounding turn paid). The
    /// tentative end fires after one quiet chunk (32 ms): speculative ASR then has
    /// its transcript ready about when a finished-sounding turn may end early (the
    /// call loop's `early_commit`), and a resumption cancels it cheaply. Measured on
    /// synthesized speech only: real callers pause longer mid-turn, so recheck with
    /// recorded calls.
    fn default() -> Self {
        Self {
            threshold: 0.5,
            threshold_off: 0.35,
            start_ms: 64,
            tentative_ms: 32,
            hangover_ms: 480,
            max_turn_ms: 15_000,
        }
    }
}

impl EndpointConfig {
    /// Checks the settings are consistent.
    pub fn validate(&self) -> Result<(), VadError> {
        let bad = |m: &str| Err(VadError::Config(m.to_string()));
        if !(0.0 < self.threshold_off
            && self.threshold_off <= self.threshold
            && self.threshold < 1.0)
        {
            return bad("need 0 < threshold_off <= threshold < 1");
        }
        if self.start_ms == 0 {
            return bad("start_ms must be > 0");
        }
        if self.tentative_ms == 0 || self.tentative_ms >= self.hangover_ms {
            return bad("need 0 < tentative_ms < hangover_ms");
        }
        if self.max_turn_ms <= self.hangover_ms {
            return bad("max_turn_ms must exceed hangover_ms");
        }
        Ok(())
    }
}

/// Why a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The pause reached the hangover.
    Silence,
    /// The turn reached `max_turn_ms`.
    MaxLength,
}

/// What the endpointer tells the pipeline. Times are stream milliseconds (audio fed so far).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointEvent {
    /// Speech began at `start_ms` (start of the first voiced chunk).
    SpeechStart { start_ms: u64 },
    /// A short pause: recognise `start_ms..speech_end_ms` speculatively.
    TentativeEnd {
        start_ms: u64,
        speech_end_ms: u64,
        at_ms: u64,
    },
    /// Speech came back after a `TentativeEnd`: cancel the speculative result.
    SpeechResumed { at_ms: u64 },
    /// The turn is over; its speech spans `start_ms..speech_end_ms`.
    SpeechEnd {
        start_ms: u64,
        speech_end_ms: u64,
        at_ms: u64,
        reason: EndReason,
    },
}

#[derive(Debug, Clone, Copy)]
enum State {
    Idle {
        voiced_ms: u32,
        first_voiced_ms: u64,
    },
    Speaking {
        start_ms: u64,
        speech_end_ms: u64,
        silence_ms: u32,
        tentative: bool,
    },
}

/// The endpointer state machine; one per call.
#[derive(Debug, Clone)]
pub struct Endpointer {
    cfg: EndpointConfig,
    state: State,
    now_ms: u64,
}

impl Endpointer {
    pub fn new(cfg: EndpointConfig) -> Result<Self, VadError> {
        cfg.validate()?;
        Ok(Self {
            cfg,
            state: State::Idle {
                voiced_ms: 0,
                first_voiced_ms: 0,
            },
            now_ms: 0,
        })
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.cfg
    }

    /// Stream time fed so far.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// True between `SpeechStart` and `SpeechEnd`.
    pub fn in_speech(&self) -> bool {
        matches!(self.state, State::Speaking { .. })
    }

    /// Start of the current turn, if one is open.
    pub fn turn_start_ms(&self) -> Option<u64> {
        match self.state {
            State::Speaking { start_ms, .. } => Some(start_ms),
            State::Idle { .. } => None,
        }
    }

    /// Back to idle (e.g. when the agent starts talking and the turn is dropped).
    pub fn reset(&mut self) {
        self.state = State::Idle {
            voiced_ms: 0,
            first_voiced_ms: self.now_ms,
        };
    }

    /// Reopens a turn that began at `start_ms` as if it had never ended: the call loop
    /// ended it early on a pause, and the caller went on talking. The pause counts as
    /// part of the turn; the turn ends again after the next pause.
    pub fn reopen(&mut self, start_ms: u64) {
        self.state = State::Speaking {
            start_ms: start_ms.min(self.now_ms),
            speech_end_ms: self.now_ms,
            silence_ms: 0,
            tentative: false,
        };
    }

    /// Feeds one chunk's probability covering `dur_ms` of audio; returns at most one event.
    pub fn push(&mut self, prob: f32, dur_ms: u32) -> Option<EndpointEvent> {
        let chunk_start = self.now_ms;
        self.now_ms += u64::from(dur_ms);
        let now = self.now_ms;
        let cfg = &self.cfg;
        match &mut self.state {
            State::Idle {
                voiced_ms,
                first_voiced_ms,
            } => {
                if prob >= cfg.threshold {
                    if *voiced_ms == 0 {
                        *first_voiced_ms = chunk_start;
                    }
                    *voiced_ms += dur_ms;
                    if *voiced_ms >= cfg.start_ms {
                        let start_ms = *first_voiced_ms;
                        self.state = State::Speaking {
                            start_ms,
                            speech_end_ms: now,
                            silence_ms: 0,
                            tentative: false,
                        };
                        return Some(EndpointEvent::SpeechStart { start_ms });
                    }
                } else {
                    *voiced_ms = 0;
                }
                None
            }
            State::Speaking {
                start_ms,
                speech_end_ms,
                silence_ms,
                tentative,
            } => {
                let start_ms = *start_ms;
                let voiced = if *silence_ms == 0 {
                    prob >= cfg.threshold_off
                } else {
                    prob >= cfg.threshold
                };
                let mut event = None;
                if voiced {
                    *silence_ms = 0;
                    *speech_end_ms = now;
                    if *tentative {
                        *tentative = false;
                        event = Some(EndpointEvent::SpeechResumed { at_ms: now });
                    }
                } else {
                    *silence_ms += dur_ms;
                    if *silence_ms >= cfg.hangover_ms {
                        let ev = EndpointEvent::SpeechEnd {
                            start_ms,
                            speech_end_ms: *speech_end_ms,
                            at_ms: now,
                            reason: EndReason::Silence,
                        };
                        self.reset();
                        return Some(ev);
                    }
                    if !*tentative && *silence_ms >= cfg.tentative_ms {
                        *tentative = true;
                        event = Some(EndpointEvent::TentativeEnd {
                            start_ms,
                            speech_end_ms: *speech_end_ms,
                            at_ms: now,
                        });
                    }
                }
                if now - start_ms >= u64::from(cfg.max_turn_ms) {
                    let ev = EndpointEvent::SpeechEnd {
                        start_ms,
                        speech_end_ms: *speech_end_ms,
                        at_ms: now,
                        reason: EndReason::MaxLength,
                    };
                    self.reset();
                    return Some(ev);
                }
                event
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: u32 = 32;

    /// Runs a probability sequence and returns the events with their chunk index.
    fn run(cfg: EndpointConfig, probs: &[f32]) -> Vec<(usize, EndpointEvent)> {
        let mut ep = Endpointer::new(cfg).unwrap();
        probs
            .iter()
            .enumerate()
            .filter_map(|(i, &p)| ep.push(p, C).map(|e| (i, e)))
            .collect()
    }

    fn seq(parts: &[(f32, usize)]) -> Vec<f32> {
        parts
            .iter()
            .flat_map(|&(p, n)| std::iter::repeat_n(p, n))
            .collect()
    }

    fn cfg() -> EndpointConfig {
        EndpointConfig {
            threshold: 0.5,
            threshold_off: 0.35,
            start_ms: 64,
            tentative_ms: 192,
            hangover_ms: 512,
            max_turn_ms: 3200,
        }
    }

    #[test]
    fn silence_gives_no_events() {
        assert!(run(cfg(), &seq(&[(0.05, 200)])).is_empty());
    }

    #[test]
    fn single_voiced_chunk_does_not_start() {
        // 32 ms blips (clicks) separated by silence never reach start_ms = 64.
        let probs = seq(&[(0.9, 1), (0.1, 3), (0.9, 1), (0.1, 3), (0.9, 1), (0.1, 20)]);
        assert!(run(cfg(), &probs).is_empty());
    }

    #[test]
    fn utterance_start_tentative_end() {
        let probs = seq(&[(0.0, 10), (0.9, 30), (0.1, 20)]);
        let ev = run(cfg(), &probs);
        assert_eq!(
            ev,
            vec![
                (11, EndpointEvent::SpeechStart { start_ms: 320 }),
                // 6 silent chunks = 192 ms after speech ended at chunk 40 (1280 ms).
                (
                    45,
                    EndpointEvent::TentativeEnd {
                        start_ms: 320,
                        speech_end_ms: 1280,
                        at_ms: 1472
                    }
                ),
                // 16 silent chunks = 512 ms.
                (
                    55,
                    EndpointEvent::SpeechEnd {
                        start_ms: 320,
                        speech_end_ms: 1280,
                        at_ms: 1792,
                        reason: EndReason::Silence
                    }
                ),
            ]
        );
    }

    #[test]
    fn resumed_speech_cancels_tentative_and_turn_continues() {
        let probs = seq(&[(0.9, 10), (0.1, 8), (0.9, 10), (0.1, 20)]);
        let ev: Vec<_> = run(cfg(), &probs).into_iter().map(|(_, e)| e).collect();
        assert!(matches!(ev[0], EndpointEvent::SpeechStart { start_ms: 0 }));
        assert!(matches!(
            ev[1],
            EndpointEvent::TentativeEnd {
                speech_end_ms: 320,
                ..
            }
        ));
        assert_eq!(
            ev[2],
            EndpointEvent::SpeechResumed {
                at_ms: 18 * 32 + 32
            }
        );
        // The second tentative end and the final end cover the whole turn from the first start.
        assert!(matches!(
            ev[3],
            EndpointEvent::TentativeEnd {
                start_ms: 0,
                speech_end_ms: 896,
                ..
            }
        ));
        assert!(matches!(
            ev[4],
            EndpointEvent::SpeechEnd {
                start_ms: 0,
                speech_end_ms: 896,
                reason: EndReason::Silence,
                ..
            }
        ));
        assert_eq!(ev.len(), 5);
    }

    #[test]
    fn a_reopened_turn_keeps_its_start_and_ends_after_the_next_pause() {
        let mut ep = Endpointer::new(cfg()).unwrap();
        for p in seq(&[(0.0, 5), (0.9, 10), (0.1, 2)]) {
            ep.push(p, C);
        }
        assert!(ep.in_speech());
        // The call loop took the turn as finished at the short pause...
        ep.reset();
        assert!(!ep.in_speech());
        // ...and the caller went on: the turn is open again from its first start.
        ep.reopen(160);
        assert_eq!(ep.turn_start_ms(), Some(160));
        let mut events = Vec::new();
        for p in seq(&[(0.9, 5), (0.1, 16)]) {
            events.extend(ep.push(p, C));
        }
        assert!(
            matches!(
                events.last(),
                Some(EndpointEvent::SpeechEnd {
                    start_ms: 160,
                    speech_end_ms: 704,
                    ..
                })
            ),
            "{events:?}"
        );
    }

    #[test]
    fn short_pause_below_tentative_is_ignored() {
        // 4 chunks = 128 ms < 192 ms: no tentative, no resume.
        let probs = seq(&[(0.9, 10), (0.1, 4), (0.9, 10), (0.1, 20)]);
        let kinds: Vec<_> = run(cfg(), &probs)
            .into_iter()
            .map(|(_, e)| std::mem::discriminant(&e))
            .collect();
        assert_eq!(kinds.len(), 3);
    }

    #[test]
    fn hysteresis_keeps_speech_between_thresholds() {
        // 0.4 is below threshold but above threshold_off: speech continues, no pause.
        let probs = seq(&[(0.9, 5), (0.4, 30), (0.1, 20)]);
        let ev = run(cfg(), &probs);
        assert!(matches!(
            ev.last().unwrap().1,
            EndpointEvent::SpeechEnd {
                speech_end_ms: 1120,
                ..
            }
        ));
        // But 0.4 does not resume once a pause has begun.
        let probs = seq(&[(0.9, 5), (0.1, 7), (0.4, 30)]);
        let ev = run(cfg(), &probs);
        assert!(ev
            .iter()
            .all(|(_, e)| !matches!(e, EndpointEvent::SpeechResumed { .. })));
        assert!(matches!(
            ev.last().unwrap().1,
            EndpointEvent::SpeechEnd {
                speech_end_ms: 160,
                ..
            }
        ));
    }

    #[test]
    fn max_turn_length_cuts_and_restarts() {
        // 150 chunks = 4.8 s of speech with max_turn 3.2 s.
        let probs = seq(&[(0.9, 150), (0.1, 20)]);
        let ev: Vec<_> = run(cfg(), &probs).into_iter().map(|(_, e)| e).collect();
        assert!(matches!(
            ev[1],
            EndpointEvent::SpeechEnd {
                start_ms: 0,
                at_ms: 3200,
                reason: EndReason::MaxLength,
                ..
            }
        ));
        assert!(matches!(
            ev[2],
            EndpointEvent::SpeechStart { start_ms: 3200 }
        ));
        assert!(matches!(ev[3], EndpointEvent::TentativeEnd { .. }));
        assert!(matches!(
            ev[4],
            EndpointEvent::SpeechEnd {
                start_ms: 3200,
                reason: EndReason::Silence,
                ..
            }
        ));
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let mut c = cfg();
        c.tentative_ms = c.hangover_ms;
        assert!(Endpointer::new(c).is_err());
        let mut c = cfg();
        c.threshold_off = 0.6;
        assert!(Endpointer::new(c).is_err());
        let mut c = cfg();
        c.max_turn_ms = 100;
        assert!(Endpointer::new(c).is_err());
        assert!(Endpointer::new(EndpointConfig::default()).is_ok());
    }
}
