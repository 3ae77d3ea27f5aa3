//! A turn ended early that the caller turns out not to have finished.
//!
//! Why: the call loop ends a turn at a short pause when its speculative transcript
//! sounds finished (满意, 没有了, a question), about 200 ms after the caller stops
//! instead of the full half-second hangover. That is a guess, and callers pause inside
//! a turn: "满意，续费的办法我记下了" pauses after 满意 about as long as the early
//! end waits. When the guess is wrong the caller starts again while the reply begins.
//! Taking that as a new turn answers the same words twice (the first reply to 满意
//! moves the script on, the second answers the next question with what was meant for
//! this one). Instead, the conversation goes back to where it was before the early
//! turn and the caller's words so far and the rest are recognised as one turn.
//!
//! Only turns whose effects can be taken back qualify: lines to say and fields to
//! record (the turn's record is held until the window closes). A turn that hangs up,
//! transfers or schedules a callback stands.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::barge_in::OnAirLine;
use crate::dialogue::engine::Conversation;

/// Speech heard again this soon after the caller's pause began (measured to when the
/// barge-in detector or the endpointer confirmed it, 40–64 ms after its onset) is the
/// same turn going on. Why this long: the early end commits at 192 ms of pause or
/// later and the reply starts 20–100 ms after that; a caller reacting to the reply
/// needs at least 300 ms more to start talking, so speech confirmed within 600 ms of
/// the pause cannot be an answer to the reply. Our voice's pauses between clauses are
/// 288 ms at the median and 448 ms at most, well inside.
pub const CONTINUE_WITHIN: Duration = Duration::from_millis(600);

/// What the call had before a turn it ended early.
pub struct EarlyTurn {
    conv: Conversation,
    hot_words: Arc<[String]>,
    interrupted: Option<OnAirLine>,
    /// When the caller's pause began.
    speech_end_at: Instant,
}

/// The state an early turn goes back to.
pub struct Before {
    pub conv: Conversation,
    pub hot_words: Arc<[String]>,
    pub interrupted: Option<OnAirLine>,
}

impl EarlyTurn {
    /// Keeps the call's state from before the turn whose pause began at `speech_end_at`.
    pub fn before(
        conv: &Conversation,
        hot_words: &Arc<[String]>,
        interrupted: &Option<OnAirLine>,
        speech_end_at: Instant,
    ) -> Self {
        Self {
            conv: conv.clone(),
            hot_words: hot_words.clone(),
            interrupted: interrupted.clone(),
            speech_end_at,
        }
    }

    /// Speech confirmed at `at` continues the turn.
    pub fn continues(&self, at: Instant) -> bool {
        at.saturating_duration_since(self.speech_end_at) <= CONTINUE_WITHIN
    }

    /// The turn can no longer continue at `now`: it stands.
    pub fn expired(&self, now: Instant) -> bool {
        !self.continues(now)
    }

    /// How long after the pause began `at` is, ms (for the log).
    pub fn after_ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.speech_end_at).as_millis() as u64
    }

    pub fn into_before(self) -> Before {
        Before {
            conv: self.conv,
            hot_words: self.hot_words,
            interrupted: self.interrupted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation() -> Conversation {
        let script = crate::dialogue::demo::default_script().unwrap_or_else(|e| panic!("{e}"));
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-06T10:00:00+08:00")
            .unwrap_or_else(|e| panic!("{e}"));
        Conversation::new(&script, &Default::default(), now).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn speech_within_the_window_continues_and_later_speech_does_not() {
        let t0 = Instant::now();
        let early = EarlyTurn::before(&conversation(), &Arc::from(Vec::new()), &None, t0);
        assert!(early.continues(t0 + Duration::from_millis(250)));
        assert!(early.continues(t0 + CONTINUE_WITHIN));
        assert!(!early.expired(t0 + Duration::from_millis(400)));
        assert!(!early.continues(t0 + CONTINUE_WITHIN + Duration::from_millis(20)));
        assert!(early.expired(t0 + Duration::from_millis(900)));
        assert_eq!(early.after_ms(t0 + Duration::from_millis(333)), 333);
    }

    #[test]
    fn going_back_restores_the_conversation_from_before_the_turn() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-06T10:00:05+08:00")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut conv = conversation();
        conv.opening(now);
        let step_before = conv.current_step();
        let early = EarlyTurn::before(&conv, &Arc::from(Vec::new()), &None, Instant::now());
        conv.on_utterance("家里断网了，一直连不上", 0.9, now);
        assert_ne!(
            conv.current_step(),
            step_before,
            "the early turn moved the script on"
        );
        let back = early.into_before();
        assert_eq!(back.conv.current_step(), step_before);
    }
}
