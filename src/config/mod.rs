//! The agent's configuration: one TOML file (sample at `sip-config/tingshuo.toml`).
//!
//! Every section has defaults, so an absent file means the embedded default: a demo
//! script, direct SIP calls on `127.0.0.1:5090` and the console on `127.0.0.1:8080`.
//! Unknown keys, wrong types and missing files are errors that name the key or file
//! and say how to fix it. Secrets can come from the environment instead of the file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Environment variable that overrides the cache directory for models.
pub const CACHE_ENV: &str = "TINGSHUO_CACHE";
/// Environment variable that overrides `sip.password` (takes precedence over the file).
pub const SIP_PASSWORD_ENV: &str = "TINGSHUO_SIP_PASSWORD";
/// Environment variable that overrides the data directory (records database).
pub const DATA_ENV: &str = "TINGSHUO_DATA";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} cannot be read: {error}. Check the path given to --config, or omit --config to run the embedded default.")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}\nFix that key (the commented sample at sip-config/tingshuo.toml lists every key with its type).")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: `{key}` {problem}. {fix}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        problem: String,
        fix: String,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub sip: SipConfig,
    pub agent: AgentConfig,
    pub console: ConsoleConfig,
    pub store: StoreConfig,
    pub models: ModelsConfig,
    pub tts: TtsConfig,
    pub emergency: EmergencyConfig,
    pub overload: OverloadConfig,
    pub alerts: AlertsConfig,
    pub transfer: TransferConfig,
    pub media: MediaSettings,
    pub asr: AsrSettings,
    /// Directory the file was loaded from; relative paths in it are resolved against this.
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
    /// Path the file was loaded from (`None` for the embedded default).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// `[sip]`: where the agent listens and where it registers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    /// Local address for SIP over UDP and TCP, e.g. `127.0.0.1:5090`.
    pub listen: SocketAddr,
    /// Registrars to register with, `host:port`; the first is primary, the rest are
    /// fail-over targets. Empty means direct mode: INVITEs are accepted at `listen`.
    pub registrars: Vec<String>,
    /// Extension / user name used in From, Contact and digest auth.
    pub user: String,
    /// Digest password (prefer `password_env` or `TINGSHUO_SIP_PASSWORD`).
    pub password: Option<String>,
    /// Name of an environment variable holding the digest password.
    pub password_env: Option<String>,
    /// Registration lifetime requested from the registrar, seconds.
    pub register_expires: u32,
    /// First RTP port of the range used for calls (RTCP is on port + 1).
    pub rtp_port_min: u16,
    /// Last RTP port of the range.
    pub rtp_port_max: u16,
    /// Source networks allowed to send direct-mode INVITEs (CIDR). Default: loopback.
    pub allowed_sources: Vec<String>,
    /// Calls above this count are refused with 486/503.
    pub max_calls: usize,
    /// Retry-After (seconds) on INVITEs refused for load or shutdown (486/503).
    pub retry_after_secs: u32,
    /// On SIGTERM, how long calls in progress may continue (new INVITEs get 503)
    /// before they are hung up, in seconds.
    pub drain_timeout_secs: u64,
    /// `[sip.inbound_auth]`: when present, new INVITEs must pass a digest challenge.
    pub inbound_auth: Option<InboundAuthConfig>,
    /// Local address for SIP over TLS (RFC 3261 §26), e.g. `127.0.0.1:5091`; absent: no
    /// TLS listener (outgoing TLS to `sips:` registrars still works).
    pub tls_listen: Option<SocketAddr>,
    /// `[sip.tls]`: certificate, trusted CAs and verification for SIP over TLS.
    pub tls: SipTlsConfig,
}

/// `[sip.tls]`: certificates for SIP over TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipTlsConfig {
    /// PEM certificate chain of the listener (absent with key_file: self-signed at start-up).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the listener.
    pub key_file: Option<PathBuf>,
    /// PEM CA certificates trusted for registrars and call targets (absent: Mozilla roots).
    pub ca_file: Option<PathBuf>,
    /// Verify peers' certificates. `false` only for tests; logged loudly.
    pub verify: bool,
}

impl Default for SipTlsConfig {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            ca_file: None,
            verify: true,
        }
    }
}

/// `[media]`: codecs and media security.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaSettings {
    pub srtp: SrtpPolicy,
    /// Codecs offered and accepted, in preference order: `"G722"` (wideband, 16 kHz
    /// audio to the recogniser), `"PCMU"`, `"PCMA"`. Drop G722 for a PBX or trunk that
    /// mishandles it; G.711 alone is what every peer speaks.
    pub codecs: Vec<String>,
}

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            srtp: SrtpPolicy::default(),
            codecs: ["G722", "PCMU", "PCMA"].map(String::from).to_vec(),
        }
    }
}

impl MediaSettings {
    /// The configured codecs, in preference order (names checked by validation).
    pub fn codec_list(&self) -> Vec<crate::codec::AudioCodec> {
        self.codecs
            .iter()
            .filter_map(|n| crate::codec::AudioCodec::from_name(n))
            .collect()
    }
}

/// When calls use SRTP (SDES keys, RFC 4568). Keys travel in the SDP, so they are only
/// offered or accepted on TLS signalling unless `forced`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SrtpPolicy {
    /// Never SRTP; an SRTP-only offer is refused with 488.
    Off,
    /// SRTP on TLS signalling when the peer offers or accepts it; plain RTP otherwise.
    #[default]
    Optional,
    /// Only SRTP calls: plain offers get 488, calls we place offer SRTP only.
    Required,
    /// Like `optional` but also on plain UDP/TCP signalling (keys visible on the wire:
    /// only for trusted networks and tests).
    Forced,
}

/// `[sip.inbound_auth]`: credentials callers must present (digest MD5, 401 challenge).
/// Absent table = no challenge; source networks still apply either way.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InboundAuthConfig {
    /// Realm in the challenge (callers' phones match credentials by it).
    pub realm: String,
    /// The user name callers must authenticate as.
    pub username: Option<String>,
    /// The password (prefer `password_env` so the secret stays out of the file).
    pub password: Option<String>,
    /// Name of an environment variable holding the password (wins over `password`).
    pub password_env: Option<String>,
}

impl Default for InboundAuthConfig {
    fn default() -> Self {
        Self {
            realm: "tingshuo".to_string(),
            username: None,
            password: None,
            password_env: None,
        }
    }
}

impl std::fmt::Debug for InboundAuthConfig {
    /// Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundAuthConfig")
            .field("realm", &self.realm)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_env", &self.password_env)
            .finish()
    }
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5090)),
            registrars: Vec::new(),
            user: "bot".to_string(),
            password: None,
            password_env: None,
            register_expires: 300,
            rtp_port_min: 40000,
            rtp_port_max: 40999,
            allowed_sources: vec!["127.0.0.0/8".to_string(), "::1/128".to_string()],
            max_calls: 8,
            retry_after_secs: 30,
            drain_timeout_secs: 60,
            inbound_auth: None,
            tls_listen: None,
            tls: SipTlsConfig::default(),
        }
    }
}

/// `[agent]`: which call script runs and with which variables.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Path of the call script (Markdown 话术 document). Absent: the embedded demo script.
    pub script: Option<PathBuf>,
    /// Values for `{{placeholders}}` in the script.
    pub vars: BTreeMap<String, String>,
    /// Per-DID / per-user script mapping: called user part → script path.
    pub scripts_by_user: BTreeMap<String, PathBuf>,
    /// Record calls as stereo WAV (caller left, agent right).
    pub record_audio: bool,
    /// `[agent.campaign]`: how `tingshuo campaign` dials a CSV.
    pub campaign: CampaignConfig,
    /// `[agent.callbacks]`: how callbacks the callees asked for are dialled.
    pub callbacks: CallbacksConfig,
    /// How long an outbound call may ring before it counts as not answered, seconds.
    pub ring_timeout_s: u64,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            script: None,
            vars: BTreeMap::new(),
            scripts_by_user: BTreeMap::new(),
            record_audio: false,
            campaign: CampaignConfig::default(),
            callbacks: CallbacksConfig::default(),
            ring_timeout_s: 45,
        }
    }
}

/// `[agent.campaign]`: concurrency, retries and the do-not-call list of campaigns.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CampaignConfig {
    /// Calls of one campaign in progress at once.
    pub concurrency: usize,
    /// Dial attempts per row (busy, no answer and failures are retried).
    pub max_attempts: u32,
    /// Wait before each retry, seconds; the last entry repeats.
    pub retry_delays_s: Vec<u64>,
    /// Numbers never to call (a `sip:` URI or a bare number / extension).
    pub do_not_call: Vec<String>,
    /// A file of numbers never to call, one a line (`#` starts a comment).
    pub do_not_call_file: Option<PathBuf>,
}

impl Default for CampaignConfig {
    fn default() -> Self {
        Self {
            concurrency: 2,
            max_attempts: 3,
            retry_delays_s: vec![300, 1800],
            do_not_call: Vec::new(),
            do_not_call_file: None,
        }
    }
}

/// `[agent.callbacks]`: the scheduler `serve` and `campaign` run.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallbacksConfig {
    /// How often the store is checked for due callbacks, seconds.
    pub poll_s: u64,
    /// Dial attempts per callback before it is marked failed.
    pub max_attempts: u32,
    /// Wait before a callback that was not answered is dialled again, seconds.
    pub retry_s: u64,
}

impl Default for CallbacksConfig {
    fn default() -> Self {
        Self {
            poll_s: 5,
            max_attempts: 3,
            retry_s: 600,
        }
    }
}

/// `[console]`: the operator console.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    pub listen: SocketAddr,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        }
    }
}

/// `[store]`: where call records live.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// SQLite database path. Default: `$TINGSHUO_DATA/records.db`, else
    /// `~/.local/share/tingshuo/records.db`.
    pub path: Option<PathBuf>,
    /// A PostgreSQL database shared by several agents, instead of the SQLite file:
    /// `postgres://USER@HOST:PORT/DB`, the password in `TINGSHUO_DB_PASSWORD`.
    pub url: Option<String>,
    /// This agent's name in a shared database (its calls, claims and heartbeat).
    /// Default: `HOSTNAME:SIP_PORT`, which stays the same across restarts and
    /// differs between agents on one machine.
    pub agent: Option<String>,
}

/// `[models]`: where provisioned model files are cached.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Cache directory. Default: `$TINGSHUO_CACHE`, else `~/.cache/tingshuo`.
    pub dir: Option<PathBuf>,
}

/// `[asr]`: the speech recogniser. Every key is optional; the provisioned Whisper
/// base is the default model.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AsrSettings {
    /// A ggml Whisper model file (whisper.cpp's format: tiny … large-v3-turbo, f16 or
    /// quantised, multilingual). Relative paths are resolved against the config file's
    /// directory. Default: the provisioned base in the model cache.
    pub model: Option<PathBuf>,
    /// CPU threads a turn decodes on when it is the only one (default: the number of
    /// cores, up to 4).
    pub threads: Option<usize>,
    /// Whisper language code of the callers' speech.
    pub language: String,
    /// 1 = greedy decoding (fastest); more = beam search of that width.
    pub beam_size: usize,
    /// Give the decoder its initial prompt (setting, common answers, the call's hot
    /// words). Off: no prompt at all.
    pub prompt: bool,
    /// Characters of the call's hot words (expected answers, the call's variables,
    /// FAQ terms) the prompt may carry: each costs decoder time on every turn.
    pub hot_words_chars: usize,
}

impl Default for AsrSettings {
    fn default() -> Self {
        Self {
            model: None,
            threads: None,
            language: "zh".into(),
            beam_size: 1,
            prompt: true,
            hot_words_chars: crate::asr::AsrConfig::default().hot_words_chars,
        }
    }
}

impl AsrSettings {
    /// The recogniser settings these keys give (defaults for the rest).
    pub fn asr_config(&self) -> crate::asr::AsrConfig {
        let d = crate::asr::AsrConfig::default();
        crate::asr::AsrConfig {
            model_file: self.model.clone(),
            lone_threads: self.threads.unwrap_or(d.lone_threads),
            language: self.language.clone(),
            beam_size: self.beam_size,
            prompt_enabled: self.prompt,
            hot_words_chars: self.hot_words_chars,
            ..d
        }
    }
}

/// ggml's file magic ("ggml" as a little-endian u32), first 4 bytes of a Whisper model.
const GGML_MAGIC: [u8; 4] = *b"lmgg";

/// `[tts]`: the voice. By default the provisioned Baker FastSpeech2 + MB-MelGAN pair;
/// any ONNX acoustic model + vocoder pair with the same kind of inputs can replace it
/// (e.g. a commercially licensed voice), naming its files and tensors here.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TtsConfig {
    /// Acoustic model (text symbols → mel). Default: the provisioned fastspeech2.onnx.
    pub acoustic_model: Option<PathBuf>,
    /// Vocoder (mel → waveform). Default: the provisioned mb_melgan.onnx.
    pub vocoder: Option<PathBuf>,
    /// Symbol table in the Baker mapper format. Default: the provisioned baker_mapper.json.
    pub symbols: Option<PathBuf>,
    /// Vocoder output rate in Hz.
    pub sample_rate: u32,
    /// Tensor names, for models exported with other names.
    pub input_ids: String,
    pub mel_output: String,
    pub vocoder_input: String,
    pub vocoder_output: String,
    /// Speaking rate (1.2 = 20 % faster) and pitch factor.
    pub speed: f32,
    pub pitch: f32,
}

impl Default for TtsConfig {
    fn default() -> Self {
        Self {
            acoustic_model: None,
            vocoder: None,
            symbols: None,
            sample_rate: 24_000,
            input_ids: "input_ids".into(),
            mel_output: "Identity_1".into(),
            vocoder_input: "mels".into(),
            vocoder_output: "Identity".into(),
            speed: 1.0,
            pitch: 1.0,
        }
    }
}

/// `[emergency]`: the minimal script that runs when the normal service cannot
/// (ASR or TTS workers failed, timed out or are overloaded, or a model is missing at
/// start-up): the caller hears `greeting`, a beep, leaves a voice message, hears
/// `closing`, and a callback to the caller's number is scheduled.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmergencyConfig {
    /// First line: says this is the emergency service period and asks for a message.
    pub greeting: String,
    /// Last line; `{hours}` is replaced by `callback_within_hours`.
    pub closing: String,
    /// The callback is scheduled this many hours after the call.
    pub callback_within_hours: u32,
    /// Longest voice message kept, in seconds.
    pub max_message_secs: u32,
    /// The message ends after this much silence following speech, in seconds.
    pub message_silence_secs: f32,
    /// A recognition job still unanswered after this long counts as a failed ASR
    /// worker (crashed or hung), in milliseconds.
    pub asr_timeout_ms: u64,
    /// A recognition job that waited longer than this in the queue means the ASR
    /// workers are overloaded, in milliseconds.
    pub asr_queue_limit_ms: u64,
    /// Where voice messages are written. Default: `voice-messages/` beside the records
    /// database.
    pub messages_dir: Option<PathBuf>,
}

impl Default for EmergencyConfig {
    fn default() -> Self {
        Self {
            greeting: "您好，当前为应急服务时段，智能客服暂时无法为您办理业务。请在提示音后留下您的姓名和需求，说完后挂机即可。".into(),
            closing: "您的号码和留言我们已经记录，将在{hours}小时内给您回电，请保持手机畅通。再见。".into(),
            callback_within_hours: 2,
            max_message_secs: 60,
            message_silence_secs: 3.0,
            asr_timeout_ms: 8000,
            asr_queue_limit_ms: 5000,
            messages_dir: None,
        }
    }
}

/// `[overload]`: CPU-aware admission. Besides `sip.max_calls`, new calls are refused
/// (503 + Retry-After) while the p95 turn latency of recent turns is above budget, so
/// the calls in progress keep theirs.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OverloadConfig {
    /// Budget for the p95 turn latency (end of caller speech → first reply packet),
    /// in milliseconds; 0 turns latency-based shedding off.
    pub turn_latency_p95_ms: u64,
    /// Turns older than this many seconds no longer count.
    pub window_secs: u64,
    /// Fewer turns than this in the window never shed.
    pub min_turns: usize,
}

impl Default for OverloadConfig {
    fn default() -> Self {
        Self {
            turn_latency_p95_ms: 2500,
            window_secs: 60,
            min_turns: 5,
        }
    }
}

/// `[alerts]`: tiered alerts on the answer rate (green ≥ 90 %, yellow 85–90 %,
/// orange 80–85 %, red < 80 % or a system fault such as emergency mode).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Sliding window of offered calls, in seconds.
    pub window_secs: u64,
    /// Fewer offered calls than this in the window stay green.
    pub min_offers: usize,
    /// URL that receives each level change as a JSON POST (`http://` only).
    pub webhook: Option<String>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            window_secs: 900,
            min_offers: 10,
            webhook: None,
        }
    }
}

/// How a call is handed to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransferMethod {
    /// Blind transfer with REFER (RFC 3515): the caller's phone calls the person; the
    /// agent leaves the call. Falls back to `bridge` when the peer refuses REFER.
    Refer,
    /// The agent calls the person itself and relays audio between the two legs,
    /// staying in the path (recording and console listen-in continue).
    Bridge,
}

impl TransferMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferMethod::Refer => "refer",
            TransferMethod::Bridge => "bridge",
        }
    }
}

/// `[transfer]`: handing calls to a person (转人工). Without `target` no call is
/// transferred: a caller asking for a person is promised a callback by a person.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransferConfig {
    /// Where people answer: a SIP URI (`sip:2001@10.0.0.5`) or an extension (`2001`,
    /// dialled through the registrar).
    pub target: Option<String>,
    pub method: TransferMethod,
    /// What the caller hears before the transfer starts.
    pub announce: String,
    /// How long the person's phone may ring (and a REFER may take) before the
    /// transfer counts as not answered, seconds.
    pub timeout_secs: u64,
    /// Consecutive not-understood turns after which a transfer is offered (0 = never).
    pub after_failures: u32,
    /// Speak the call's summary to the person before bridging (bridge method only).
    pub announce_to_agent: bool,
    /// Scripts whose calls are never transferred (outbound notices): their callers
    /// are offered a callback by a person instead. Paths as in `agent.script`.
    pub forbid_scripts: Vec<PathBuf>,
    /// Per called user (like `agent.scripts_by_user`): overrides of the keys above.
    pub by_user: BTreeMap<String, TransferOverride>,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            target: None,
            method: TransferMethod::Refer,
            announce: "好的，正在为您转接人工客服，请稍候。".into(),
            timeout_secs: 30,
            after_failures: 2,
            announce_to_agent: false,
            forbid_scripts: Vec::new(),
            by_user: BTreeMap::new(),
        }
    }
}

/// `[transfer.by_user."4001"]`: transfer settings of calls to one user.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransferOverride {
    /// `false` forbids transfers for calls to this user.
    pub enabled: Option<bool>,
    pub target: Option<String>,
    pub method: Option<TransferMethod>,
    pub announce: Option<String>,
    pub timeout_secs: Option<u64>,
    pub after_failures: Option<u32>,
    pub announce_to_agent: Option<bool>,
}

/// The transfer settings in force for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferPolicy {
    pub target: String,
    pub method: TransferMethod,
    pub announce: String,
    pub timeout: std::time::Duration,
    pub after_failures: u32,
    pub announce_to_agent: bool,
}

/// Whether `t` is a SIP URI (`sip:`/`sips:` with a host) or an extension (digits,
/// letters and `+*#._-`, no spaces): what `transfer.target` accepts.
pub fn is_transfer_target(t: &str) -> bool {
    let t = t.trim();
    if let Some(rest) = t.strip_prefix("sip:").or_else(|| t.strip_prefix("sips:")) {
        let host = rest.rsplit('@').next().unwrap_or("");
        let host = host.split([';', '?']).next().unwrap_or("");
        return !host.is_empty()
            && !rest.contains(char::is_whitespace)
            && rsip::Uri::try_from(t).is_ok();
    }
    !t.is_empty()
        && t.len() <= 64
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+*#._-".contains(c))
}

impl Config {
    /// The transfer settings for a call to `user` running the script at
    /// `script_source`; `None` when that call cannot be transferred (no target, or
    /// the script or user forbids it).
    pub fn transfer_for(&self, user: Option<&str>, script_source: &str) -> Option<TransferPolicy> {
        let t = &self.transfer;
        if t.forbid_scripts
            .iter()
            .any(|p| p.as_os_str() == std::ffi::OsStr::new(script_source))
        {
            return None;
        }
        let o = user
            .and_then(|u| t.by_user.get(u))
            .cloned()
            .unwrap_or_default();
        if o.enabled == Some(false) {
            return None;
        }
        let target = o.target.or_else(|| t.target.clone())?;
        Some(TransferPolicy {
            target: target.trim().to_string(),
            method: o.method.unwrap_or(t.method),
            announce: o.announce.unwrap_or_else(|| t.announce.clone()),
            timeout: std::time::Duration::from_secs(o.timeout_secs.unwrap_or(t.timeout_secs)),
            after_failures: o.after_failures.unwrap_or(t.after_failures),
            announce_to_agent: o.announce_to_agent.unwrap_or(t.announce_to_agent),
        })
    }

    /// Every announce line a transfer may say (pre-synthesized at start-up).
    pub fn transfer_announces(&self) -> Vec<String> {
        let mut out = vec![self.transfer.announce.clone()];
        for o in self.transfer.by_user.values() {
            if let Some(a) = &o.announce {
                out.push(a.clone());
            }
        }
        out.sort();
        out.dedup();
        out
    }

    fn validate_transfer(&mut self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, problem: String, fix: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            problem,
            fix: fix.to_string(),
        };
        const TARGET_FIX: &str = "Write a SIP URI such as \"sip:2001@10.0.0.5:5060\" or an extension such as \"2001\" (dialled through the registrar).";
        if let Some(t) = &self.transfer.target {
            if !is_transfer_target(t) {
                return Err(invalid(
                    "transfer.target",
                    format!("({t:?}) is not a SIP URI or an extension"),
                    TARGET_FIX,
                ));
            }
        }
        for (user, o) in &self.transfer.by_user {
            if let Some(t) = &o.target {
                if !is_transfer_target(t) {
                    return Err(invalid(
                        "transfer.by_user.target",
                        format!("of user {user:?} ({t:?}) is not a SIP URI or an extension"),
                        TARGET_FIX,
                    ));
                }
            }
            if o.timeout_secs == Some(0)
                || o.announce.as_deref().is_some_and(|a| a.trim().is_empty())
            {
                return Err(invalid(
                    "transfer.by_user",
                    format!("entry {user:?} has timeout_secs 0 or an empty announce"),
                    "Use at least 1 second and a line to say, or remove the key to inherit [transfer].",
                ));
            }
        }
        if self.transfer.timeout_secs == 0 {
            return Err(invalid(
                "transfer.timeout_secs",
                "is 0".into(),
                "Let the person's phone ring at least a few seconds (default 30).",
            ));
        }
        if self.transfer.announce.trim().is_empty() {
            return Err(invalid(
                "transfer.announce",
                "is empty".into(),
                "Write the line the caller hears before the transfer, or remove the key for the default.",
            ));
        }
        let forbid: Vec<PathBuf> = self
            .transfer
            .forbid_scripts
            .iter()
            .map(|p| self.resolve(p))
            .collect();
        self.transfer.forbid_scripts = forbid;
        Ok(())
    }
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
}

/// The model cache directory when no config says otherwise.
pub fn default_cache_dir() -> PathBuf {
    match std::env::var_os(CACHE_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => home_dir().join(".cache").join("tingshuo"),
    }
}

/// The records database path when no config says otherwise.
pub fn default_store_path() -> PathBuf {
    match std::env::var_os(DATA_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("records.db"),
        _ => home_dir()
            .join(".local")
            .join("share")
            .join("tingshuo")
            .join("records.db"),
    }
}

impl Config {
    /// The embedded default used when no `--config` is given.
    pub fn embedded_default() -> Self {
        Self::default()
    }

    /// Loads `path`, or the embedded default when `path` is `None`.
    pub fn load_or_default(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            Some(p) => Self::load(p),
            None => Ok(Self::embedded_default()),
        }
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error: if error.kind() == std::io::ErrorKind::InvalidData {
                // "stream did not contain valid UTF-8" does not say what to do.
                std::io::Error::new(
                    error.kind(),
                    "it is not UTF-8 text (TOML must be UTF-8; re-save it as UTF-8)",
                )
            } else {
                error
            },
        })?;
        let mut cfg = Self::parse(&text, path)?;
        cfg.base_dir = path.parent().map(Path::to_path_buf);
        cfg.source = Some(path.to_path_buf());
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Parses TOML text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str::<Config>(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })
    }

    fn resolve(&self, p: &Path) -> PathBuf {
        match (&self.base_dir, p.is_relative()) {
            (Some(base), true) => base.join(p),
            _ => p.to_path_buf(),
        }
    }

    fn validate(&mut self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, problem: String, fix: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            problem,
            fix: fix.to_string(),
        };
        const CODECS_FIX: &str =
            "List one or more of \"G722\", \"PCMU\", \"PCMA\" in preference order, e.g. codecs = [\"PCMU\", \"PCMA\"].";
        if let Some(bad) = self
            .media
            .codecs
            .iter()
            .find(|n| crate::codec::AudioCodec::from_name(n).is_none())
        {
            return Err(invalid(
                "media.codecs",
                format!("names {bad:?}, which is not a codec tingshuo carries"),
                CODECS_FIX,
            ));
        }
        if self.media.codecs.is_empty() {
            return Err(invalid(
                "media.codecs",
                "is empty: no call could negotiate audio".into(),
                CODECS_FIX,
            ));
        }
        if let Some(model) = self.asr.model.clone() {
            let resolved = self.resolve(&model);
            const FIX: &str = "Point it at a ggml Whisper model (whisper.cpp's format, e.g. ggml-small.bin or ggml-large-v3-turbo-q5_0.bin from the whisper.cpp model downloads), or remove the key to use the provisioned base (`tingshuo models fetch`).";
            let mut magic = [0u8; 4];
            let read = std::fs::File::open(&resolved)
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic));
            match read {
                Err(e) => {
                    return Err(invalid(
                        "asr.model",
                        format!("names {} which cannot be read ({e})", resolved.display()),
                        FIX,
                    ))
                }
                Ok(()) if magic != GGML_MAGIC => {
                    return Err(invalid(
                        "asr.model",
                        format!("names {} which is not a ggml Whisper model (its first bytes are not the ggml magic)", resolved.display()),
                        FIX,
                    ))
                }
                Ok(()) => {}
            }
            self.asr.model = Some(resolved);
        }
        if self.asr.beam_size == 0 || self.asr.beam_size > 8 {
            return Err(invalid(
                "asr.beam_size",
                format!("is {}", self.asr.beam_size),
                "Use 1 (greedy, the fastest) up to 8.",
            ));
        }
        if self.asr.threads == Some(0) {
            return Err(invalid(
                "asr.threads",
                "is 0".into(),
                "Use at least 1, or remove the key to use every core (up to 4).",
            ));
        }
        if self.asr.language.trim().is_empty() {
            return Err(invalid(
                "asr.language",
                "is empty".into(),
                "Use a Whisper language code such as \"zh\".",
            ));
        }
        if let Some(script) = self.agent.script.clone() {
            let resolved = self.resolve(&script);
            if !resolved.is_file() {
                return Err(invalid(
                    "agent.script",
                    format!("names {} which does not exist", resolved.display()),
                    "Give the path of a call script (relative paths are resolved against the config file's directory), or remove the key to use the embedded demo script.",
                ));
            }
            self.agent.script = Some(resolved);
        }
        let mapped: Vec<(String, PathBuf)> = self
            .agent
            .scripts_by_user
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (user, script) in mapped {
            let resolved = self.resolve(&script);
            if !resolved.is_file() {
                return Err(invalid(
                    "agent.scripts_by_user",
                    format!(
                        "maps user {user:?} to {} which does not exist",
                        resolved.display()
                    ),
                    "Point every entry at an existing call script.",
                ));
            }
            self.agent.scripts_by_user.insert(user, resolved);
        }
        if let Some(dnc) = self.agent.campaign.do_not_call_file.clone() {
            let resolved = self.resolve(&dnc);
            if !resolved.is_file() {
                return Err(invalid(
                    "agent.campaign.do_not_call_file",
                    format!("names {} which does not exist", resolved.display()),
                    "Create the file (one number a line), or remove the key.",
                ));
            }
            self.agent.campaign.do_not_call_file = Some(resolved);
        }
        if self.agent.campaign.concurrency == 0 || self.agent.campaign.max_attempts == 0 {
            return Err(invalid(
                "agent.campaign",
                "has concurrency or max_attempts 0".into(),
                "Allow at least one call at a time and one attempt per row.",
            ));
        }
        if self.agent.callbacks.poll_s == 0 || self.agent.ring_timeout_s == 0 {
            return Err(invalid(
                "agent.callbacks.poll_s",
                "(or agent.ring_timeout_s) is 0".into(),
                "Use at least 1 second.",
            ));
        }
        if let Some(dir) = self.models.dir.clone() {
            self.models.dir = Some(self.resolve(&dir));
        }
        for (key, file) in [
            ("tts.acoustic_model", &mut self.tts.acoustic_model),
            ("tts.vocoder", &mut self.tts.vocoder),
            ("tts.symbols", &mut self.tts.symbols),
        ] {
            if let Some(f) = file.clone() {
                let resolved = match (&self.base_dir, f.is_relative()) {
                    (Some(base), true) => base.join(&f),
                    _ => f,
                };
                if !resolved.is_file() {
                    return Err(ConfigError::Invalid {
                        path: path.to_path_buf(),
                        key,
                        problem: format!("names {} which does not exist", resolved.display()),
                        fix: "Point it at the model file, or remove the key to use the provisioned Baker voice.".into(),
                    });
                }
                *file = Some(resolved);
            }
        }
        if !(0.5..=2.0).contains(&self.tts.speed) || !(0.5..=2.0).contains(&self.tts.pitch) {
            return Err(invalid(
                "tts.speed",
                format!(
                    "(speed {}, pitch {}) is outside 0.5–2.0",
                    self.tts.speed, self.tts.pitch
                ),
                "Use factors between 0.5 and 2.0 (1.0 is the voice as trained).",
            ));
        }
        if let Some(dir) = self.emergency.messages_dir.clone() {
            self.emergency.messages_dir = Some(self.resolve(&dir));
        }
        let em = &self.emergency;
        if em.greeting.trim().is_empty() || em.closing.trim().is_empty() {
            return Err(invalid(
                "emergency.greeting",
                "(or emergency.closing) is empty".into(),
                "Write both lines, or remove the keys to use the built-in emergency script.",
            ));
        }
        if em.callback_within_hours == 0 || em.max_message_secs == 0 || em.asr_timeout_ms == 0 {
            return Err(invalid(
                "emergency.callback_within_hours",
                "(or max_message_secs / asr_timeout_ms) is 0".into(),
                "Use positive values (defaults: 2 hours, 60 s, 8000 ms).",
            ));
        }
        if let Some(url) = &self.store.url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(invalid(
                    "store.url",
                    format!("({url:?}) is not a postgres:// URL"),
                    "Give postgres://USER@HOST:PORT/DB with the password in TINGSHUO_DB_PASSWORD, or remove the key to keep the SQLite file.",
                ));
            }
        }
        if let Some(url) = &self.alerts.webhook {
            if !url.starts_with("http://") {
                return Err(invalid(
                    "alerts.webhook",
                    format!("({url:?}) is not an http:// URL"),
                    "Give a plain http:// URL (put a TLS-terminating relay in front of an https endpoint), or remove the key.",
                ));
            }
        }
        if self.alerts.window_secs == 0 || self.overload.window_secs == 0 {
            return Err(invalid(
                "alerts.window_secs",
                "(or overload.window_secs) is 0".into(),
                "Use a window of at least a few seconds (defaults: 900 and 60).",
            ));
        }
        if let Some(db) = self.store.path.clone() {
            self.store.path = Some(self.resolve(&db));
        }
        for (i, r) in self.sip.registrars.iter().enumerate() {
            if parse_host_port(r).is_none() {
                return Err(invalid(
                    "sip.registrars",
                    format!("entry {i} ({r:?}) is not host:port"),
                    "Write each registrar as \"host:port\", e.g. \"127.0.0.1:5060\".",
                ));
            }
        }
        for (i, s) in self.sip.allowed_sources.iter().enumerate() {
            // Checked here, not only when SIP starts: that is after model loading,
            // and its message could not name this file.
            if crate::sip::ua::Cidr::parse(s).is_none() {
                return Err(invalid(
                    "sip.allowed_sources",
                    format!("entry {i} ({s:?}) is not an address or CIDR network"),
                    "Write each entry as a network or an address, e.g. \"127.0.0.0/8\" or \"10.1.2.3\".",
                ));
            }
        }
        if self.sip.user.trim().is_empty() {
            return Err(invalid(
                "sip.user",
                "is empty".into(),
                "Set it to the agent's extension, e.g. user = \"bot\".",
            ));
        }
        if let Some(var) = &self.sip.password_env {
            if std::env::var_os(var).is_none() && std::env::var_os(SIP_PASSWORD_ENV).is_none() {
                return Err(invalid(
                    "sip.password_env",
                    format!("names the environment variable {var} which is not set"),
                    "Export it before starting tingshuo, or set sip.password instead.",
                ));
            }
        }
        if !self.sip.registrars.is_empty() && self.sip_password().is_none() {
            return Err(invalid(
                "sip.password",
                "is missing while registrars are configured".into(),
                "Set sip.password, sip.password_env, or the TINGSHUO_SIP_PASSWORD environment variable.",
            ));
        }
        if let Some(auth) = &self.sip.inbound_auth {
            if auth.realm.trim().is_empty() || auth.realm.contains(['"', '\\']) {
                return Err(invalid(
                    "sip.inbound_auth.realm",
                    format!("({:?}) is empty or contains a quote or backslash", auth.realm),
                    "Use a plain name, e.g. realm = \"tingshuo\", or remove the key for the default.",
                ));
            }
            if auth.username.as_deref().is_none_or(|u| u.trim().is_empty()) {
                return Err(invalid(
                    "sip.inbound_auth.username",
                    "is missing or empty".into(),
                    "Set the user name callers must authenticate as, e.g. username = \"pbx\", or remove the [sip.inbound_auth] table to accept INVITEs without a challenge.",
                ));
            }
            if let Some(var) = &auth.password_env {
                if std::env::var(var).map_or(true, |v| v.is_empty()) {
                    return Err(invalid(
                        "sip.inbound_auth.password_env",
                        format!("names the environment variable {var} which is not set (or empty)"),
                        "Export it before starting tingshuo, or set sip.inbound_auth.password instead.",
                    ));
                }
            } else if auth.password.as_deref().is_none_or(str::is_empty) {
                return Err(invalid(
                    "sip.inbound_auth.password",
                    "is missing while [sip.inbound_auth] is present".into(),
                    "Set sip.inbound_auth.password_env (the name of an environment variable holding the password) or sip.inbound_auth.password, or remove the [sip.inbound_auth] table to accept INVITEs without a challenge.",
                ));
            }
        }
        if self.sip.rtp_port_min >= self.sip.rtp_port_max
            || !self.sip.rtp_port_min.is_multiple_of(2)
        {
            return Err(invalid(
                "sip.rtp_port_min",
                format!(
                    "({}..{}) is not an even start below the end of the range",
                    self.sip.rtp_port_min, self.sip.rtp_port_max
                ),
                "Use an even rtp_port_min lower than rtp_port_max, e.g. 40000 and 40999.",
            ));
        }
        if self.sip.max_calls == 0 {
            return Err(invalid(
                "sip.max_calls",
                "is 0".into(),
                "Allow at least one call.",
            ));
        }
        self.validate_transfer(path)?;
        Ok(())
    }

    /// The SIP digest password: `TINGSHUO_SIP_PASSWORD`, then `password_env`, then `password`.
    pub fn sip_password(&self) -> Option<String> {
        if let Ok(p) = std::env::var(SIP_PASSWORD_ENV) {
            if !p.is_empty() {
                return Some(p);
            }
        }
        if let Some(var) = &self.sip.password_env {
            if let Ok(p) = std::env::var(var) {
                return Some(p);
            }
        }
        self.sip.password.clone()
    }

    /// The credentials inbound INVITEs must present (`[sip.inbound_auth]`), with the
    /// password resolved from `password_env` or `password`; `None` = no challenge.
    pub fn inbound_auth(&self) -> Option<crate::sip::ua::ServerCredentials> {
        let auth = self.sip.inbound_auth.as_ref()?;
        let password = match &auth.password_env {
            Some(var) => std::env::var(var).ok()?,
            None => auth.password.clone()?,
        };
        if password.is_empty() {
            return None;
        }
        Some(crate::sip::ua::ServerCredentials {
            realm: auth.realm.clone(),
            username: auth.username.clone()?,
            password,
        })
    }

    /// Model cache directory in force.
    pub fn models_dir(&self) -> PathBuf {
        self.models.dir.clone().unwrap_or_else(default_cache_dir)
    }

    /// Records database path in force (the SQLite file; with `[store] url` it
    /// still places voice messages and other files beside it).
    pub fn store_path(&self) -> PathBuf {
        self.store.path.clone().unwrap_or_else(default_store_path)
    }

    /// The records backend in force: PostgreSQL when `[store] url` is set.
    pub fn store_target(&self) -> crate::store::StoreTarget {
        match &self.store.url {
            Some(url) => crate::store::StoreTarget::Postgres(url.clone()),
            None => crate::store::StoreTarget::Sqlite(self.store_path()),
        }
    }

    /// This agent's name in the records (`[store] agent`, else `HOSTNAME:SIP_PORT`).
    pub fn agent_name(&self) -> String {
        self.store.agent.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "tingshuo".into());
            format!("{host}:{}", self.sip.listen.port())
        })
    }

    /// Directory for emergency-mode voice messages in force.
    pub fn messages_dir(&self) -> PathBuf {
        self.emergency.messages_dir.clone().unwrap_or_else(|| {
            let db = self.store_path();
            db.parent()
                .map(Path::to_path_buf)
                .unwrap_or_default()
                .join("voice-messages")
        })
    }
}

/// Splits `host:port` (IPv6 hosts in brackets). Returns `None` when malformed.
pub fn parse_host_port(s: &str) -> Option<(String, u16)> {
    let s = s.trim();
    let s = s.strip_prefix("sip:").unwrap_or(s);
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        (h, after.strip_prefix(':')?)
    } else {
        s.rsplit_once(':')?
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return None;
    }
    let port: u16 = port.parse().ok()?;
    (port != 0).then(|| (host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("tingshuo-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(format!("t{}.toml", text.len()));
        std::fs::write(&path, text).expect("write config");
        let r = Config::load(&path);
        let _ = std::fs::remove_file(&path);
        r
    }

    #[test]
    fn transfer_defaults_and_per_user_overrides() {
        let cfg = load_text(
            "[transfer]\ntarget = \"2001\"\n[transfer.by_user.\"4001\"]\ntarget = \"sip:3001@127.0.0.1:5070\"\nmethod = \"bridge\"\n[transfer.by_user.\"4002\"]\nenabled = false\n",
        )
        .expect("valid transfer config");
        let p = cfg.transfer_for(None, "x.md").expect("default target");
        assert_eq!(p.target, "2001");
        assert_eq!(p.method, TransferMethod::Refer);
        assert_eq!(p.after_failures, 2);
        assert_eq!(p.announce, "好的，正在为您转接人工客服，请稍候。");
        let u = cfg
            .transfer_for(Some("4001"), "x.md")
            .expect("per-user target");
        assert_eq!(u.target, "sip:3001@127.0.0.1:5070");
        assert_eq!(u.method, TransferMethod::Bridge);
        assert_eq!(cfg.transfer_for(Some("4002"), "x.md"), None);
        assert!(Config::default().transfer_for(None, "x.md").is_none());
    }

    #[test]
    fn a_bad_transfer_target_fails_naming_the_key() {
        for bad in ["not a uri", "http://example.com", "sip:", "20 01"] {
            let err = load_text(&format!("[transfer]\ntarget = {bad:?}\n"))
                .expect_err("bad target must fail");
            let msg = err.to_string();
            assert!(msg.contains("transfer.target"), "{msg}");
            assert!(msg.contains("SIP URI"), "{msg}");
        }
        let err = load_text("[transfer.by_user.\"9\"]\ntarget = \"a b\"\n").expect_err("bad");
        assert!(err.to_string().contains("transfer.by_user.target"), "{err}");
        let err = load_text("[transfer]\nmethod = \"fax\"\n").expect_err("bad method");
        assert!(err.to_string().contains("method"), "{err}");
        for good in [
            "2001",
            "sip:2001@127.0.0.1:5060",
            "sips:ops@pbx.example.com;transport=tls",
        ] {
            assert!(is_transfer_target(good), "{good}");
        }
    }

    #[test]
    fn media_codecs_are_checked_and_ordered() {
        use crate::codec::AudioCodec;
        assert_eq!(
            Config::default().media.codec_list(),
            vec![AudioCodec::G722, AudioCodec::Pcmu, AudioCodec::Pcma]
        );
        let cfg = load_text("[media]\ncodecs = [\"pcma\", \"PCMU\"]\n").expect("valid codecs");
        assert_eq!(
            cfg.media.codec_list(),
            vec![AudioCodec::Pcma, AudioCodec::Pcmu]
        );
        let err = load_text("[media]\ncodecs = [\"OPUS\"]\n").expect_err("unknown codec");
        assert!(err.to_string().contains("media.codecs"), "{err}");
        assert!(err.to_string().contains("OPUS"), "{err}");
        let err = load_text("[media]\ncodecs = []\n").expect_err("no codec");
        assert!(err.to_string().contains("empty"), "{err}");
    }

    #[test]
    fn empty_file_is_the_embedded_default() {
        let cfg = Config::parse("", Path::new("x.toml")).expect("empty config parses");
        assert_eq!(cfg.sip.listen, SocketAddr::from(([127, 0, 0, 1], 5090)));
        assert_eq!(cfg.console.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert!(cfg.sip.registrars.is_empty());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse(
            "[sip]\nlisten = \"127.0.0.1:5090\"\nlistne = 1\n",
            Path::new("a.toml"),
        )
        .expect_err("unknown key must fail");
        let msg = err.to_string();
        assert!(msg.contains("listne"), "{msg}");
        assert!(msg.contains("a.toml"), "{msg}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err = Config::parse(
            "[sip]\nregistrars = \"127.0.0.1:5060\"\n",
            Path::new("b.toml"),
        )
        .expect_err("wrong type must fail");
        let msg = err.to_string();
        assert!(msg.contains("registrars"), "{msg}");
    }

    #[test]
    fn host_port_parsing() {
        assert_eq!(
            parse_host_port("127.0.0.1:5060"),
            Some(("127.0.0.1".into(), 5060))
        );
        assert_eq!(parse_host_port("[::1]:5060"), Some(("::1".into(), 5060)));
        assert_eq!(
            parse_host_port("pbx.example:5080"),
            Some(("pbx.example".into(), 5080))
        );
        assert_eq!(parse_host_port("nohost"), None);
        assert_eq!(parse_host_port(":5060"), None);
        assert_eq!(parse_host_port("h:0"), None);
    }

    #[test]
    fn asr_model_must_be_a_readable_ggml_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "[asr]\nmodel = \"ggml-small.bin\"\n").expect("write");
        let msg = Config::load(&path).expect_err("missing model").to_string();
        assert!(
            msg.contains("asr.model")
                && msg.contains("ggml-small.bin")
                && msg.contains("ggml Whisper model"),
            "{msg}"
        );
        // Something else (an ONNX file) under that name.
        std::fs::write(dir.path().join("ggml-small.bin"), b"\x08\x07onnx model").expect("write");
        let msg = Config::load(&path).expect_err("not ggml").to_string();
        assert!(
            msg.contains("not a ggml Whisper model") && msg.contains("ggml-small.bin"),
            "{msg}"
        );
        // The magic is enough for the config; whisper.cpp checks the rest at start-up.
        std::fs::write(dir.path().join("ggml-small.bin"), b"lmgg\0\0\0\0").expect("write");
        let cfg = Config::load(&path).expect("ggml file");
        let asr = cfg.asr.asr_config();
        assert_eq!(
            asr.model_file.as_deref(),
            Some(dir.path().join("ggml-small.bin").as_path())
        );
        assert_eq!(
            (asr.language.as_str(), asr.beam_size, asr.prompt_enabled),
            ("zh", 1, true)
        );
        std::fs::write(&path, "[asr]\nbeam_size = 0\n").expect("write");
        assert!(Config::load(&path)
            .expect_err("beam 0")
            .to_string()
            .contains("asr.beam_size"));
        std::fs::write(&path, "[asr]\nprompt = false\nthreads = 1\n").expect("write");
        let asr = Config::load(&path).expect("prompt off").asr.asr_config();
        assert!(asr.prompt_with(&["宽带".to_string()]).is_empty());
        assert_eq!(asr.lone_threads, 1);
    }

    #[test]
    fn missing_script_names_key_and_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "[agent]\nscript = \"nope.md\"\n").expect("write");
        let err = Config::load(&path).expect_err("missing script must fail");
        let msg = err.to_string();
        assert!(
            msg.contains("agent.script") && msg.contains("nope.md"),
            "{msg}"
        );
    }

    #[test]
    fn swapped_voice_files_must_exist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "[tts]\nacoustic_model = \"voice.onnx\"\n").expect("write");
        let err = Config::load(&path).expect_err("missing voice must fail");
        let msg = err.to_string();
        assert!(
            msg.contains("tts.acoustic_model") && msg.contains("voice.onnx"),
            "{msg}"
        );
        std::fs::write(dir.path().join("voice.onnx"), b"x").expect("write");
        let cfg = Config::load(&path).expect("existing voice file loads");
        assert_eq!(cfg.tts.acoustic_model, Some(dir.path().join("voice.onnx")));
        std::fs::write(&path, "[tts]\nspeed = 3.0\n").expect("write");
        assert!(Config::load(&path).is_err(), "speed out of range");
    }

    #[test]
    fn registrars_need_a_password() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "[sip]\nregistrars = [\"127.0.0.1:5060\"]\n").expect("write");
        let err = Config::load(&path).expect_err("no password must fail");
        assert!(err.to_string().contains("sip.password"), "{err}");
    }

    #[test]
    fn inbound_auth_table_loads_and_its_mistakes_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "[sip]\nuser = \"bot\"\n").expect("write");
        let cfg = Config::load(&path).expect("loads");
        assert!(cfg.sip.inbound_auth.is_none() && cfg.inbound_auth().is_none());

        std::fs::write(
            &path,
            "[sip.inbound_auth]\nusername = \"pbx\"\npassword = \"pw-in-file\"\n",
        )
        .expect("write");
        let cfg = Config::load(&path).expect("loads");
        let creds = cfg.inbound_auth().expect("enabled");
        assert_eq!(
            (creds.realm.as_str(), creds.username.as_str()),
            ("tingshuo", "pbx")
        );
        assert_eq!(creds.password, "pw-in-file");
        assert!(
            !format!("{cfg:?}").contains("pw-in-file"),
            "Debug output never shows the password"
        );

        // The environment variable wins over the file.
        let var = "TINGSHUO_TEST_INBOUND_PW_7f3a";
        std::env::set_var(var, "pw-from-env");
        std::fs::write(
            &path,
            format!("[sip.inbound_auth]\nrealm = \"hotline\"\nusername = \"pbx\"\npassword = \"x\"\npassword_env = \"{var}\"\n"),
        )
        .expect("write");
        let creds = Config::load(&path)
            .expect("loads")
            .inbound_auth()
            .expect("enabled");
        assert_eq!(
            (creds.realm.as_str(), creds.password.as_str()),
            ("hotline", "pw-from-env")
        );
        std::env::remove_var(var);
        let err = Config::load(&path).expect_err("unset env var").to_string();
        assert!(
            err.contains("sip.inbound_auth.password_env") && err.contains(var),
            "{err}"
        );

        std::fs::write(&path, "[sip.inbound_auth]\nusername = \"pbx\"\n").expect("write");
        let err = Config::load(&path).expect_err("no password").to_string();
        assert!(
            err.contains("sip.inbound_auth.password") && err.contains("password_env"),
            "{err}"
        );
        std::fs::write(&path, "[sip.inbound_auth]\npassword = \"p\"\n").expect("write");
        let err = Config::load(&path).expect_err("no username").to_string();
        assert!(err.contains("sip.inbound_auth.username"), "{err}");
        std::fs::write(
            &path,
            "[sip.inbound_auth]\nusername = \"u\"\npassword = \"p\"\nnonce_secs = 5\n",
        )
        .expect("write");
        let err = Config::load(&path).expect_err("unknown key").to_string();
        assert!(err.contains("nonce_secs"), "{err}");
    }

    #[test]
    fn bad_source_networks_and_non_utf8_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            "[sip]\nallowed_sources = [\"10.0.0.0/8\", \"10.1/33\"]\n",
        )
        .expect("write");
        let err = Config::load(&path)
            .expect_err("bad CIDR must fail")
            .to_string();
        assert!(
            err.contains("sip.allowed_sources") && err.contains("10.1/33"),
            "{err}"
        );
        std::fs::write(&path, b"[sip]\nuser = \"\xff\"\n").expect("write");
        let err = Config::load(&path).expect_err("not UTF-8").to_string();
        assert!(err.contains("t.toml") && err.contains("UTF-8"), "{err}");
    }
}

#[cfg(test)]
mod sample_tests {
    use super::*;

    /// The commented sample in sip-config/ must stay loadable: users copy it.
    #[test]
    fn shipped_sample_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sip-config/tingshuo.toml");
        let text = std::fs::read_to_string(&path).expect("sample exists");
        let cfg = Config::parse(&text, &path).expect("sample parses");
        assert_eq!(cfg.sip.user, "bot");
        assert_eq!(cfg.sip.registrars, vec!["127.0.0.1:5060".to_string()]);
        assert_eq!(cfg.sip.password.as_deref(), Some("passbot"));
    }
}
