//! One Whisper recogniser: the shared model, a per-worker state, and the guards
//! that keep silence and noise from turning into text.
//!
//! Short telephone turns are far shorter than Whisper's 30 s window, so the encoder
//! runs on only `audio_ctx` positions (50 per second of audio) sized to each clip:
//! a 2 s turn costs a fraction of the full window. Below the model's safe minimum
//! the decoder loops, so the size never drops under it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

use super::text;
use super::AsrError;
use crate::models::ModelPaths;
use crate::vad::{SileroModel, SileroVad, VadRate};

/// Samples per encoder position at 16 kHz (10 ms mel hop × stride 2).
pub const SAMPLES_PER_CTX: usize = 320;
/// Whisper's full window in encoder positions (30 s).
pub const FULL_AUDIO_CTX: u32 = 1500;

/// Recogniser settings (shared by all workers of a pool).
#[derive(Debug, Clone, PartialEq)]
pub struct AsrConfig {
    /// A ggml Whisper file to load instead of the provisioned base (`[asr] model`).
    pub model_file: Option<std::path::PathBuf>,
    /// Whisper language code.
    pub language: String,
    /// Whether the decoder gets an initial prompt at all (`[asr] prompt`).
    pub prompt_enabled: bool,
    /// Worker threads in the pool (each holds one Whisper state).
    pub workers: usize,
    /// CPU threads each worker gives whisper.cpp when other turns are decoding or
    /// waiting.
    pub threads_per_worker: usize,
    /// CPU threads a job gets when it is the only one: nothing else decoding and
    /// nothing queued (a lone caller's turn). The pool never runs more whisper
    /// threads than `max(lone_threads, workers × threads_per_worker)` at once.
    pub lone_threads: usize,
    /// Jobs waiting beyond this are refused (the caller hears "please repeat").
    pub queue_capacity: usize,
    /// 1 = greedy decoding; more = beam search of that width.
    pub beam_size: usize,
    /// Candidates sampled at each fallback temperature (greedy decoding), the most
    /// likely kept; faster-whisper samples 5.
    pub best_of: usize,
    /// Initial prompt; keeps the output in simplified Mandarin.
    pub prompt: String,
    /// Bare answers named in the prompt after [`Self::prompt`]. Whisper base has
    /// too little context in a half-second clip and misreads the commonest phone
    /// answers (没有了 → 美额乱, 是的 → nothing, 好的 → 炮灯); naming them biases
    /// the decoder towards them. On our voice at 8 kHz: 8 of 10 listed answers
    /// went from wrong to right; 2 of 12 held-out short answers improved and none
    /// got worse; about +60 ms per decode (longer prompt).
    pub answers: Vec<String>,
    /// Budget of the call's hot words in the prompt, in characters (the first of
    /// them, in the order [`crate::asr::bias::hot_words`] ranks them). Every prompt
    /// character costs decoder time on every turn: on the bench corpus (2 threads)
    /// a decode took 198 ms median with none, 244 ms with 16 and 299 ms with 60,
    /// which pushed the 1-call median turn past its 500 ms budget. Off by default
    /// (0): with 16 the full `bash .ci/test` gate measured 1-call p50 520 ms here.
    pub hot_words_chars: usize,
    /// A transcript that is exactly one of `answers` needs at least this average
    /// log-probability: the bias that helps real answers also pulls noise towards
    /// them (pink noise at −45 dBFS, with the voice gate off, decoded as 没有了 at
    /// −1.19; real answers on our voice measured −0.04 to −0.68, 对 −1.09).
    pub answer_min_logprob: f32,
    /// Encoder positions added to each clip's own length.
    pub audio_ctx_margin: u32,
    /// Never size the encoder below this (shorter windows make the decoder loop).
    pub min_audio_ctx: u32,
    /// A segment whose no-speech probability is above this *and* whose average
    /// log-probability is below `logprob_threshold` is dropped (Whisper's own rule).
    pub no_speech_threshold: f32,
    pub logprob_threshold: f32,
    /// A segment this unlikely is dropped whatever its no-speech probability.
    pub min_avg_logprob: f32,
    /// Clips with less voiced audio than this (per Silero) are not decoded at all.
    pub min_voiced_ms: u32,
    /// Clips quieter than this are not decoded at all.
    pub min_rms_dbfs: f32,
    /// Let Whisper predict timestamp tokens: the end timestamp gives it a natural
    /// stop, so it loops less than in no-timestamp mode (timestamps are not output).
    pub timestamps: bool,
    /// Temperature step of the fallback decode (0 = off): when a greedy decode looks
    /// like a loop (whisper.cpp's token-entropy test below `entropy_threshold`, or an
    /// average log-probability under `logprob_threshold`) whisper.cpp decodes again
    /// at +`temperature_inc` (up to 1.0), as faster-whisper does; a transcript that
    /// still repeats a half sentence ([`text::looks_looped`]) is decoded once more at
    /// twice the step and the better of the two is kept. Off by default: on the
    /// real-speech clips through G.711 a 0.2 step measured 30.6 % CER vs 26.4 %
    /// without (`cargo bench --bench asr_real -- default fallback`): base's hotter
    /// decodes are worse guesses, not fixes.
    pub temperature_inc: f32,
    /// whisper.cpp's stand-in for faster-whisper's compression-ratio test: a decode
    /// whose last tokens have less entropy than this is a loop.
    pub entropy_threshold: f32,
    /// Bare answers for the short-answer re-decode: a short turn (at most
    /// `rescue_max_ms`, at least `rescue_min_voiced_ms` voiced per Silero) that
    /// decoded to nothing is decoded again with these in the prompt. Empty = off.
    pub short_answers: Vec<String>,
    /// Prompt for turns longer than `rescue_max_ms`, given without the answers.
    pub long_prompt: String,
    /// Clips longer than this get [`Self::prompt`] without the answers: a bare
    /// answer is short (满意 is a 0.9 s clip with its pre-roll and tail, 没别的了
    /// 1.3 s), and the answers' ten-odd prompt tokens cost every longer turn about
    /// 25 ms of decoding on 2 threads (a 2 s question: 225 vs 196 ms) for the same
    /// transcript.
    pub answers_max_ms: u32,
    pub rescue_max_ms: u32,
    pub rescue_min_voiced_ms: u32,
}

impl Default for AsrConfig {
    fn default() -> Self {
        Self {
            model_file: None,
            language: "zh".to_string(),
            prompt_enabled: true,
            // Two single-threaded workers for two cores: whisper.cpp's threads spin
            // on barriers, and with any other load on the box (TTS, other calls) a
            // 2-thread decode of a 2 s clip measured 6.4 s wall vs 0.66 s with 1
            // thread (`cargo bench --bench asr`). One thread each also lets two
            // calls' turns decode side by side.
            workers: 2,
            threads_per_worker: 1,
            // A turn decoding alone gets every core (up to 4, where whisper base stops
            // scaling): on an idle 2-core box a 0.8 s answer took 162 ms on 2 threads
            // vs 296 ms on 1. The pool hands out cores as tokens, so a lone 2-thread
            // job never shares the box with a second decode (the 6.4 s case above).
            lone_threads: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(4),
            queue_capacity: 16,
            beam_size: 1,
            best_of: 1,
            // Names the setting (a customer-service phone call) as well as the
            // language: measured 16.7 % vs 18.6 % CER on the hardest corpus lines.
            prompt: "以下是普通话客服电话中的句子。".to_string(),
            answers: ["是的", "好的", "没有了", "不用了", "可以", "对"]
                .map(String::from)
                .to_vec(),
            answer_min_logprob: -1.0,
            hot_words_chars: 0,
            audio_ctx_margin: 32,
            // 128 measured the same CER on voice A but 13.4 % vs 12.2 % on the
            // pitch/speed-shifted voice B; 64 returns nothing on a 1.5 s clip.
            min_audio_ctx: 160,
            no_speech_threshold: 0.6,
            logprob_threshold: -1.0,
            min_avg_logprob: -1.5,
            min_voiced_ms: 96,
            min_rms_dbfs: -55.0,
            timestamps: true,
            temperature_inc: 0.0,
            entropy_threshold: 2.4,
            short_answers: [
                "是的",
                "好的",
                "满意",
                "还行",
                "不满意",
                "可以",
                "不用了",
                "没有了",
                "对",
                "不是",
                "知道了",
                "没问题",
            ]
            .map(String::from)
            .to_vec(),
            rescue_max_ms: 2500,
            answers_max_ms: 1600,
            long_prompt: "以下是普通话的句子。".to_string(),
            rescue_min_voiced_ms: 192,
        }
    }
}

impl AsrConfig {
    /// Encoder positions for a clip of `samples` at 16 kHz.
    pub fn audio_ctx_for(&self, samples: usize) -> u32 {
        let need = samples.div_ceil(SAMPLES_PER_CTX) as u32 + self.audio_ctx_margin;
        need.max(self.min_audio_ctx).min(FULL_AUDIO_CTX)
    }

    /// The prompt: the setting, the common answers as short sentences (the form
    /// that measured best: a comma-separated list made Whisper loop on it), then hot
    /// words (names, product terms), which bias Whisper towards spelling them as
    /// the script does.
    ///
    /// Hot words that are the answers the current step expects
    /// ([`super::bias::is_expected_answer`]: 满意, 还行 after a rating question) come
    /// first among the answers, and the general answers fill the rest of the same
    /// character budget: the prompt is no longer (every prompt character costs
    /// decoder time), but says what this turn will most likely be.
    pub fn prompt_with(&self, hot_words: &[String]) -> String {
        if !self.prompt_enabled {
            return String::new();
        }
        let mut p = self.prompt.clone();
        let general = self
            .answers
            .iter()
            .map(|a| a.trim())
            .filter(|a| !a.is_empty());
        let budget: usize = general.clone().map(|a| a.chars().count()).sum();
        let expected = hot_words
            .iter()
            .map(|w| w.trim())
            .filter(|w| super::bias::is_expected_answer(w));
        let mut answers: Vec<&str> = Vec::new();
        let mut spent = 0;
        if budget > 0 {
            for a in expected.chain(general) {
                let n = a.chars().count();
                if answers.contains(&a) || spent + n > budget {
                    continue;
                }
                spent += n;
                answers.push(a);
            }
        }
        for a in &answers {
            p.push_str(a);
            p.push('。');
        }
        let mut used = 0;
        let words: Vec<&str> = hot_words
            .iter()
            .map(|w| w.trim())
            .filter(|w| !w.is_empty() && !super::bias::is_expected_answer(w))
            .filter(|w| {
                let n = w.chars().count();
                let fits = used + n <= self.hot_words_chars;
                if fits {
                    used += n;
                }
                fits
            })
            .collect();
        if !words.is_empty() {
            p.push_str(&format!("相关词语：{}。", words.join("、")));
        }
        p
    }
}

impl AsrConfig {
    /// The short-answer re-decode's prompt: a setting that announces a short reply,
    /// the short answers, then the call's hot words.
    pub fn short_prompt_with(&self, hot_words: &[String]) -> String {
        let short = AsrConfig {
            prompt: "以下是电话中的简短回答。".to_string(),
            answers: self.short_answers.clone(),
            ..self.clone()
        };
        short.prompt_with(hot_words)
    }
}

/// Why a clip produced no text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// Quieter than `min_rms_dbfs`.
    TooQuiet,
    /// Silero found less than `min_voiced_ms` of speech.
    NoVoice,
    /// Whisper itself said no speech, or was too unsure.
    NoSpeech,
    /// Only Whisper's silence phrases (字幕…, 谢谢观看…) were left.
    SilencePhrase,
    /// The job was cancelled (superseded speculative job).
    Cancelled,
    /// Only one of the prompt's answers, looped or unsure: the prompt leaking
    /// into a clip with no words (digital silence decoded as 对。 eighteen times).
    PromptEcho,
}

impl Rejection {
    /// Whether the clip had speech by the gates (loud enough, Silero-voiced) and
    /// only Whisper produced no words: the caller said something we did not get.
    pub fn was_voiced(self) -> bool {
        matches!(
            self,
            Rejection::NoSpeech | Rejection::SilencePhrase | Rejection::PromptEcho
        )
    }
}

/// One decoded segment with the numbers the guards used.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Segment {
    pub text: String,
    pub no_speech_prob: f32,
    pub avg_logprob: f32,
    /// Whether the guards dropped it.
    pub dropped: bool,
}

/// The result of one clip.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Transcript {
    /// Final text, simplified Chinese; empty when nothing was said.
    pub text: String,
    pub segments: Vec<Segment>,
    /// Set when `text` is empty because a guard fired.
    pub rejected: Option<Rejection>,
    /// A decoding loop was found and collapsed.
    pub repetition: bool,
    /// The text came from the short-answer re-decode.
    pub rescued: bool,
    /// Spans rewritten as script terms (heard, term), by [`Transcript::apply_terms`].
    pub corrections: Vec<(String, String)>,
    /// Encoder positions used.
    pub audio_ctx: u32,
    /// Audio length in milliseconds.
    pub audio_ms: u32,
    /// Time spent in this recogniser (guards + Whisper), milliseconds.
    pub infer_ms: f64,
}

impl Transcript {
    /// Rewrites near-homophones of the call's script terms as the terms
    /// ([`super::correct`]); the replacements are kept in `corrections`.
    pub fn apply_terms(&mut self, terms: &[super::correct::Term]) {
        if terms.is_empty() || self.text.is_empty() {
            return;
        }
        let (text, fixes) = super::correct::correct(&self.text, terms);
        if !fixes.is_empty() {
            self.text = text;
            self.corrections.extend(fixes);
        }
    }
}

/// Abort callback for whisper.cpp: true once the job's cancel flag is set.
unsafe extern "C" fn abort_trampoline(user_data: *mut std::ffi::c_void) -> bool {
    // SAFETY: `user_data` is `Arc::as_ptr` of an `AtomicBool` alive for the whole call.
    unsafe { (*(user_data as *const AtomicBool)).load(Ordering::Relaxed) }
}

/// A decoding that is nothing but one prompt answer said again and again (five
/// times or more): people do not answer 是的 five times over, while Whisper fills
/// a wordless clip with the prompt's last words until the token limit.
fn is_prompt_echo(answers: &[String], raw: &str, collapsed: &str) -> bool {
    let bare = |t: &str| -> String { t.chars().filter(|c| !text::is_punct_or_space(*c)).collect() };
    let said = bare(collapsed);
    answers
        .iter()
        .map(|a| a.trim())
        .any(|a| !a.is_empty() && said == bare(a) && raw.matches(a).count() >= 5)
}

/// Whether the transcript is exactly one of the prompt's answers.
fn is_prompt_echo_once(answers: &[String], collapsed: &str) -> bool {
    let said = bare(collapsed);
    answers
        .iter()
        .any(|a| !a.trim().is_empty() && said == bare(a))
}

fn bare(t: &str) -> String {
    t.chars().filter(|c| !text::is_punct_or_space(*c)).collect()
}

/// The Whisper model, loaded once and shared by every worker.
#[derive(Clone)]
pub struct WhisperModel {
    ctx: Arc<WhisperContext>,
}

impl WhisperModel {
    /// Loads `whisper/ggml-base.bin` from the model cache.
    pub fn load(paths: &ModelPaths) -> Result<Self, AsrError> {
        let path = paths.require("Whisper base (ggml)", &paths.whisper_ggml)?;
        Self::load_file(path)
    }

    /// Loads `cfg.model_file` when set (`[asr] model`), else the provisioned base.
    pub fn load_for(paths: &ModelPaths, cfg: &AsrConfig) -> Result<Self, AsrError> {
        match &cfg.model_file {
            Some(p) => Self::load_file(p),
            None => Self::load(paths),
        }
    }

    /// Loads a ggml file (f16 or quantised matrices; whisper.cpp reads the type
    /// from the file) with the default options.
    pub fn load_file(path: &Path) -> Result<Self, AsrError> {
        Self::load_file_with(path, false)
    }

    /// Loads a ggml file; `flash_attn` selects whisper.cpp's fused attention
    /// kernels. Off by default: on 2 CPU cores with the Q8_0 model it measured
    /// 493 / 689 / 998 ms for 1 / 2 / 4 s clips vs 606 / 571 / 810 ms without
    /// (`cargo bench --bench asr_ab`), so it only helps the shortest clips.
    pub fn load_file_with(path: &Path, flash_attn: bool) -> Result<Self, AsrError> {
        whisper_rs::install_logging_hooks();
        let mut params = WhisperContextParameters::default();
        params.flash_attn(flash_attn);
        let ctx = WhisperContext::new_with_params(path, params).map_err(|e| AsrError::Load {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        if !ctx.is_multilingual() {
            return Err(AsrError::Load {
                path: path.display().to_string(),
                message: "the model is English-only; Mandarin needs the multilingual base model"
                    .into(),
            });
        }
        Ok(Self { ctx: Arc::new(ctx) })
    }
}

/// One worker's recogniser: a Whisper state plus an optional Silero gate.
pub struct Recognizer {
    state: WhisperState,
    cfg: AsrConfig,
    gate: Option<SileroVad>,
    /// End-of-text token; ids from here up are special tokens.
    eot: i32,
}

impl Recognizer {
    /// A recogniser on `model`; `gate` (recommended) lets it refuse clips without speech.
    pub fn new(
        model: &WhisperModel,
        cfg: AsrConfig,
        gate: Option<&SileroModel>,
    ) -> Result<Self, AsrError> {
        let state = model
            .ctx
            .create_state()
            .map_err(|e| AsrError::Whisper(format!("cannot create a Whisper state: {e}")))?;
        let gate = match gate {
            Some(m) => Some(m.new_vad(VadRate::Hz16000)?),
            None => None,
        };
        Ok(Self {
            state,
            cfg,
            gate,
            eot: model.ctx.token_eot(),
        })
    }

    pub fn config(&self) -> &AsrConfig {
        &self.cfg
    }

    /// Transcribes 16 kHz mono f32 audio. `cancel` aborts decoding when set.
    pub fn transcribe(
        &mut self,
        samples: &[f32],
        hot_words: &[String],
        cancel: Option<&Arc<AtomicBool>>,
    ) -> Result<Transcript, AsrError> {
        let threads = self.cfg.threads_per_worker;
        self.transcribe_on(samples, hot_words, cancel, threads)
    }

    /// [`Self::transcribe`] on `threads` CPU threads (the pool decides per job).
    pub fn transcribe_on(
        &mut self,
        samples: &[f32],
        hot_words: &[String],
        cancel: Option<&Arc<AtomicBool>>,
        threads: usize,
    ) -> Result<Transcript, AsrError> {
        let t0 = Instant::now();
        let audio_ctx = self.cfg.audio_ctx_for(samples.len());
        let audio_ms = (samples.len() / 16) as u32;
        let mut out = Transcript {
            text: String::new(),
            segments: Vec::new(),
            rejected: None,
            repetition: false,
            rescued: false,
            corrections: Vec::new(),
            audio_ctx,
            audio_ms,
            infer_ms: 0.0,
        };
        let finish = |mut t: Transcript, why: Option<Rejection>| {
            t.rejected = why;
            t.infer_ms = t0.elapsed().as_secs_f64() * 1e3;
            Ok(t)
        };
        if crate::audio::rms_dbfs(samples) < self.cfg.min_rms_dbfs {
            return finish(out, Some(Rejection::TooQuiet));
        }
        // Silero-voiced milliseconds (unknown without a gate).
        let mut voiced_ms = None;
        if let Some(vad) = &mut self.gate {
            vad.reset();
            let mut voiced = 0u32;
            vad.push(samples, |p| {
                if p >= 0.5 {
                    voiced += 32;
                }
            })?;
            if voiced < self.cfg.min_voiced_ms {
                return finish(out, Some(Rejection::NoVoice));
            }
            voiced_ms = Some(voiced);
        }
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return finish(out, Some(Rejection::Cancelled));
        }

        // Whisper wants at least 1 s of input; pad short clips with silence.
        let padded;
        let input = if samples.len() < 16_000 {
            padded = [samples, &vec![0.0; 16_000 - samples.len()]].concat();
            &padded[..]
        } else {
            samples
        };
        // The answers prompt helps bare answers but makes Whisper loop on long
        // sentences: on the real-speech clips through G.711 it measured 26.4 % CER
        // (25 loops) vs 22.8 % (5 loops) with the plain language prompt.
        let prompt = if audio_ms <= self.cfg.answers_max_ms {
            self.cfg.prompt_with(hot_words)
        } else if audio_ms <= self.cfg.rescue_max_ms {
            AsrConfig {
                answers: Vec::new(),
                ..self.cfg.clone()
            }
            .prompt_with(hot_words)
        } else {
            AsrConfig {
                prompt: self.cfg.long_prompt.clone(),
                answers: Vec::new(),
                ..self.cfg.clone()
            }
            .prompt_with(hot_words)
        };
        let job = DecodeJob {
            input,
            audio_ctx,
            audio_ms,
            prompt: &prompt,
            threads,
            cancel,
        };
        let inc = self.cfg.temperature_inc;
        let Some(mut dec) = self.decode(&job, 0.0, inc)? else {
            return finish(out, Some(Rejection::Cancelled));
        };
        if inc > 0.0 && text::looks_looped(&dec.kept) {
            // whisper.cpp's entropy test missed a half-sentence repeat: one more
            // decode, hotter; keep it unless it loops too and is less likely.
            let Some(again) = self.decode(&job, (2.0 * inc).min(1.0), 0.0)? else {
                return finish(out, Some(Rejection::Cancelled));
            };
            if !text::looks_looped(&again.kept) || again.logprob() > dec.logprob() {
                dec = again;
            }
        }
        let (mut verdict, mut rep) = self.judge(&dec, false);
        let voiced_enough = voiced_ms.is_some_and(|v| v >= self.cfg.rescue_min_voiced_ms);
        if verdict.is_err()
            && !self.cfg.short_answers.is_empty()
            && voiced_enough
            && audio_ms <= self.cfg.rescue_max_ms
        {
            // A short voiced turn that came out empty is most often a bare answer the
            // decoder was unsure of (满意, 还行): decode again with a prompt of short
            // answers, and accept what the no-speech rule alone would have dropped.
            let prompt = self.cfg.short_prompt_with(hot_words);
            let job = DecodeJob {
                prompt: &prompt,
                ..job
            };
            let Some(again) = self.decode(&job, 0.0, 0.0)? else {
                return finish(out, Some(Rejection::Cancelled));
            };
            let (v, r) = self.judge(&again, true);
            if v.is_ok() {
                out.rescued = true;
                (verdict, rep, dec) = (v, r, again);
            }
        }
        out.repetition = rep;
        out.segments = dec.segments;
        match verdict {
            Ok(text) => {
                out.text = text;
                finish(out, None)
            }
            Err(why) => finish(out, Some(why)),
        }
    }

    /// The text of a decode after the transcript-level guards (loops, prompt echo,
    /// silence phrases), or why there is none; and whether a loop was collapsed.
    /// `rescue`: a short-answer re-decode, whose segments count unless they are
    /// below `min_avg_logprob` (the no-speech rule is what emptied the first decode).
    fn judge(&self, dec: &Decoded, rescue: bool) -> (Result<String, Rejection>, bool) {
        let kept: String = if rescue {
            dec.segments
                .iter()
                .filter(|s| s.avg_logprob >= self.cfg.min_avg_logprob)
                .map(|s| s.text.as_str())
                .collect()
        } else {
            dec.kept.clone()
        };
        let simplified = text::standardise_variants(&text::to_simplified(&kept));
        let (collapsed, rep) = text::collapse_repetitions(&simplified, 3);
        let (collapsed, cut) = text::drop_repeated_tail(&collapsed);
        let rep = rep || cut;
        let answers: &[String] = if rescue {
            &self.cfg.short_answers
        } else {
            &self.cfg.answers
        };
        if rep && is_prompt_echo(answers, &simplified, &collapsed) {
            return (Err(Rejection::PromptEcho), rep);
        }
        // One character looped many times ("不不不…" ×36 on pink noise) is Whisper
        // decoding no speech, not a caller's answer.
        if rep && is_single_char_loop(&simplified) {
            return (Err(Rejection::NoSpeech), rep);
        }
        let kept_logprob = {
            let lp: Vec<f32> = dec
                .segments
                .iter()
                .filter(|s| !s.dropped || rescue)
                .map(|s| s.avg_logprob)
                .collect();
            lp.iter().sum::<f32>() / lp.len().max(1) as f32
        };
        if kept_logprob < self.cfg.answer_min_logprob && is_prompt_echo_once(answers, &collapsed) {
            return (Err(Rejection::PromptEcho), rep);
        }
        let (clean, hit) = text::strip_silence_phrases(&collapsed);
        if !text::has_content(&clean) {
            let why = if hit {
                Rejection::SilencePhrase
            } else {
                Rejection::NoSpeech
            };
            return (Err(why), rep);
        }
        (Ok(text::fullwidth_punctuation(&clean)), rep)
    }
}

/// True when `text` is one character repeated ten or more times (punctuation aside).
fn is_single_char_loop(text: &str) -> bool {
    let chars: Vec<char> = text.chars().filter(|c| c.is_alphanumeric()).collect();
    chars.len() >= 10 && chars.iter().all(|c| *c == chars[0])
}

/// One decode's inputs (the same for a fallback decode).
struct DecodeJob<'a> {
    input: &'a [f32],
    audio_ctx: u32,
    audio_ms: u32,
    prompt: &'a str,
    threads: usize,
    cancel: Option<&'a Arc<AtomicBool>>,
}

/// One decode's output: the text the segment guards kept, and every segment.
struct Decoded {
    kept: String,
    segments: Vec<Segment>,
}

impl Decoded {
    /// Mean log-probability of the kept segments.
    fn logprob(&self) -> f32 {
        let kept: Vec<f32> = self
            .segments
            .iter()
            .filter(|s| !s.dropped)
            .map(|s| s.avg_logprob)
            .collect();
        if kept.is_empty() {
            f32::NEG_INFINITY
        } else {
            kept.iter().sum::<f32>() / kept.len() as f32
        }
    }
}

impl Recognizer {
    /// Runs Whisper once at `temperature` (with whisper.cpp's own fallback by
    /// `temperature_inc`, 0 = none) and applies the per-segment guards. `None` when
    /// the job was cancelled.
    fn decode(
        &mut self,
        job: &DecodeJob<'_>,
        temperature: f32,
        temperature_inc: f32,
    ) -> Result<Option<Decoded>, AsrError> {
        let strategy = if self.cfg.beam_size <= 1 {
            SamplingStrategy::Greedy {
                best_of: self.cfg.best_of.max(1) as i32,
            }
        } else {
            SamplingStrategy::BeamSearch {
                beam_size: self.cfg.beam_size as i32,
                patience: -1.0,
            }
        };
        let mut params = FullParams::new(strategy);
        params.set_n_threads(job.threads.max(1) as i32);
        params.set_language(Some(&self.cfg.language));
        params.set_translate(false);
        params.set_no_context(true);
        params.set_no_timestamps(!self.cfg.timestamps);
        params.set_single_segment(true);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        params.set_suppress_blank(true);
        params.set_suppress_nst(true);
        params.set_temperature(temperature);
        params.set_temperature_inc(temperature_inc);
        params.set_entropy_thold(self.cfg.entropy_threshold);
        params.set_logprob_thold(self.cfg.logprob_threshold);
        params.set_audio_ctx(job.audio_ctx as i32);
        // Mandarin runs at about 5 characters (≈ 7 tokens) a second: cap the output
        // near that so a decoding loop ends early instead of costing seconds.
        params.set_max_tokens((12 + job.audio_ms.div_ceil(1000) * 8).min(224) as i32);
        params.set_initial_prompt(job.prompt);
        if let Some(c) = job.cancel {
            // whisper-rs 0.16's `set_abort_callback_safe` hands whisper.cpp a pointer of
            // the wrong type (every encode aborts), so the callback is set by hand.
            // SAFETY: the pointer is to the AtomicBool inside `cancel`, which the caller
            // keeps alive until `full` below returns; the trampoline only reads it.
            unsafe {
                params.set_abort_callback(Some(abort_trampoline));
                params.set_abort_callback_user_data(Arc::as_ptr(c) as *mut std::ffi::c_void);
            }
        }
        let res = self.state.full(params, job.input);
        if job.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Ok(None);
        }
        res.map_err(|e| AsrError::Whisper(e.to_string()))?;

        let mut kept = String::new();
        let mut segments = Vec::new();
        for seg in self.state.as_iter() {
            let raw = seg
                .to_str_lossy()
                .map(|s| s.into_owned())
                .unwrap_or_default();
            let no_speech_prob = seg.no_speech_probability();
            let (mut sum, mut n) = (0f32, 0usize);
            for i in 0..seg.n_tokens() {
                if let Some(tok) = seg.get_token(i) {
                    let d = tok.token_data();
                    // Text tokens only: special tokens (>= EOT) carry no content.
                    if d.id < self.eot {
                        sum += d.plog;
                        n += 1;
                    }
                }
            }
            let avg_logprob = if n > 0 {
                sum / n as f32
            } else {
                f32::NEG_INFINITY
            };
            let dropped = (no_speech_prob > self.cfg.no_speech_threshold
                && avg_logprob < self.cfg.logprob_threshold)
                || avg_logprob < self.cfg.min_avg_logprob;
            if !dropped {
                kept.push_str(raw.trim());
            }
            segments.push(Segment {
                text: raw.trim().to_string(),
                no_speech_prob,
                avg_logprob,
                dropped,
            });
        }
        Ok(Some(Decoded { kept, segments }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_ctx_follows_clip_length_with_floor_and_cap() {
        let c = AsrConfig::default();
        // 1 s = 50 positions + margin 32 = 82 < floor.
        assert_eq!(c.audio_ctx_for(16_000), c.min_audio_ctx);
        // 5 s = 250 + 32.
        assert_eq!(c.audio_ctx_for(80_000), 282);
        // Partial positions round up.
        assert_eq!(c.audio_ctx_for(80_001), 283);
        assert_eq!(c.audio_ctx_for(16_000 * 60), FULL_AUDIO_CTX);
    }

    #[test]
    fn a_looped_prompt_answer_is_an_echo_but_a_real_answer_is_not() {
        let answers = AsrConfig::default().answers;
        let looped = "对。".repeat(18);
        assert!(is_prompt_echo(&answers, &looped, "对。"));
        assert!(!is_prompt_echo(&answers, "是的。是的。", "是的。"));
        assert!(!is_prompt_echo(&answers, &"行。".repeat(6), "行。"));
        assert!(!is_prompt_echo(
            &answers,
            &"好的，我知道了。".repeat(5),
            "好的，我知道了。"
        ));
    }

    #[test]
    fn hot_words_extend_the_prompt() {
        let c = AsrConfig {
            hot_words_chars: 16,
            ..AsrConfig::default()
        };
        assert_eq!(
            c.prompt_with(&[]),
            format!("{}是的。好的。没有了。不用了。可以。对。", c.prompt)
        );
        let bare = AsrConfig {
            answers: Vec::new(),
            ..AsrConfig::default()
        };
        assert_eq!(bare.prompt_with(&[]), c.prompt);
        let p = c.prompt_with(&["捷讯通信".to_string(), " ".to_string(), "宽带".to_string()]);
        assert!(p.starts_with(&c.prompt));
        assert!(p.ends_with("捷讯通信、宽带。"));
        // The budget: words beyond it are left out; 0 (the default) adds none.
        let tight = AsrConfig {
            hot_words_chars: 5,
            ..c.clone()
        };
        assert!(tight
            .prompt_with(&["捷讯通信".into(), "宽带".into()])
            .ends_with("捷讯通信。"));
        assert_eq!(
            AsrConfig::default().prompt_with(&["宽带".into()]),
            c.prompt_with(&[])
        );
    }

    #[test]
    fn a_steps_expected_answers_lead_the_answers_within_the_same_length() {
        let c = AsrConfig::default();
        let step: Vec<String> = ["满意", "还行", "不满意", "一般", "王先生"]
            .map(String::from)
            .to_vec();
        let p = c.prompt_with(&step);
        assert_eq!(
            p,
            format!("{}满意。还行。不满意。一般。是的。好的。", c.prompt)
        );
        assert!(p.chars().count() <= c.prompt_with(&[]).chars().count());
        // No answers in the prompt (long turns): expected answers are not added.
        let long = AsrConfig {
            answers: Vec::new(),
            ..AsrConfig::default()
        };
        assert_eq!(long.prompt_with(&step), long.prompt);
    }
}
