//! Turn-latency and capacity bench (issue #8): a load caller against `tingshuo serve`.
//!
//! The agent is a black box: it runs as a child process (`tingshuo serve --config
//! <temp toml>`, direct mode, its own records database in a temp dir). The load caller
//! reuses the project's own stack as a UAC: `tingshuo::sip` places the calls and
//! `tingshuo::rtp::session::MediaSession` streams the caller's 8 kHz audio at 20 ms
//! pacing and receives the agent's audio.
//!
//! **Turn latency** = from the caller's last voiced frame *sent* (the media session's
//! outbound tap stamps it) to the first agent frame *received* whose RMS is above
//! [`REPLY_RMS`] (well above the silence the agent sends between lines). The caller's
//! jitter buffer is fixed at 20 ms (loopback has no jitter), so the figure includes up to
//! ~40 ms of receive-side buffering and tick quantization, as a phone's would. Each turn
//! is cross-checked against the agent's own timings from its records database
//! (`t_speech_end` … `t_first_reply_rtp`), which also give the per-stage breakdown.
//!
//! Callers are polite: the next turn starts after ~1 s of silence following the agent's
//! reply, except `barge` turns, which start 1 s into the reply to measure barge-in stop
//! time. Calls follow the scripts in `benches/corpus/turns.txt`; audio is rendered once
//! with `tingshuo say --rate 8000` and cached under `$CARGO_TARGET_DIR/bench/corpus/`.
//! Every other call uses the noisy variant: the utterances mixed with white noise at 15 dB
//! SNR against the corpus' mean speech level (`--line-noise`: the noise also fills the
//! caller's silences).
//!
//! ```text
//! cargo bench --bench turn_latency -- --quick        # 1 and 4 calls, ~5 min, gated
//! cargo bench --bench turn_latency                   # sweep 1, 2, 4, 8, 12 calls
//!   options: --calls 1,4  --phase-secs 90  --line-noise  --bin PATH (or TINGSHUO_BENCH_BIN)
//!            --srtp (every call with SRTP; compare with the same run without it)
//! ```
//! Writes `$CARGO_TARGET_DIR/bench/turn-latency.json` and prints a table; exits non-zero
//! when a figure exceeds `benches/budget.toml`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tingshuo::codec::G711;
use tingshuo::rtp::session::{InboundFrame, OutboundFrame};
use tingshuo::rtp::{
    Depth, Frame, JitterConfig, MediaConfig, MediaSession, PlaybackQueue, PortAllocator,
    FRAME_SAMPLES,
};
use tingshuo::sip::driver::start_with;
use tingshuo::sip::sdp::{Codec, LocalMedia};
use tingshuo::sip::{new_call_id, CallEvent, Command as SipCommand, SipEvent, UaConfig};

/// A caller frame counts as voiced above this RMS (16-bit units, about -40 dBFS).
const VOICED_RMS: f64 = 330.0;
/// An agent frame carries speech above this RMS (about -36 dBFS): far above the digital
/// silence (or any comfort noise) the agent sends between lines.
const REPLY_RMS: f64 = 500.0;
/// The agent's reply is over after this much quiet.
const REPLY_DONE_QUIET: Duration = Duration::from_millis(1000);
/// A turn with no reply within this is counted as missed.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Barge-in: the caller starts talking this long into the agent's reply.
const BARGE_AFTER: Duration = Duration::from_millis(1000);
/// Barge-in: the agent counts as stopped at the first of this many quiet frames in a row.
const STOPPED_FRAMES: usize = 5;
/// Noisy variant: signal-to-noise ratio against the corpus' mean speech power.
const SNR_DB: f64 = 15.0;
/// `--line-noise`: the noisy variant's noise also fills the caller's silences (a noisy
/// room rather than a noisy recording). Off by default: the agent then transcribes the
/// bare noise (Whisper hallucinates and loops), which swamps the latency figures.
static LINE_NOISE: AtomicBool = AtomicBool::new(false);
/// `--srtp`: every call uses SRTP (SDES keys; `[media] srtp = "forced"` on both sides,
/// since the bench signals over plain UDP on loopback), to compare with a plain run.
static SRTP: AtomicBool = AtomicBool::new(false);
/// Assumed kernel clock tick for /proc/<pid>/stat (Linux: 100 on every common build).
const CLK_TCK: f64 = 100.0;

// ---------------------------------------------------------------- arguments

struct Args {
    quick: bool,
    calls: Vec<usize>,
    phase_secs: Option<u64>,
    bin: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut quick = false;
    let mut calls: Option<Vec<usize>> = None;
    let mut phase_secs: Option<u64> = None;
    let mut bin: Option<PathBuf> = std::env::var_os("TINGSHUO_BENCH_BIN").map(PathBuf::from);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--line-noise" => LINE_NOISE.store(true, Ordering::Relaxed),
            "--srtp" => SRTP.store(true, Ordering::Relaxed),
            "--calls" => {
                let v = it.next().ok_or("--calls needs a list, e.g. 1,4")?;
                let list = v
                    .split(',')
                    .map(|s| s.trim().parse::<usize>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| format!("--calls {v:?}: write numbers like 1,2,4"))?;
                if list.is_empty() || list.contains(&0) {
                    return Err("--calls: each concurrency must be at least 1".into());
                }
                calls = Some(list);
            }
            "--phase-secs" => {
                let v = it.next().ok_or("--phase-secs needs seconds")?;
                phase_secs = Some(v.parse().map_err(|_| format!("--phase-secs {v:?}"))?);
            }
            "--bin" => bin = Some(it.next().ok_or("--bin needs a path")?.into()),
            // cargo bench passes --bench; libtest-style filters are ignored.
            _ => {}
        }
    }
    Ok(Args {
        quick,
        calls: calls.unwrap_or_else(|| {
            if quick {
                vec![1, 4]
            } else {
                vec![1, 2, 4, 8, 12]
            }
        }),
        phase_secs,
        bin: bin.unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tingshuo"))),
    })
}

impl Args {
    /// Seconds a phase starts new turns. One call gets longer: its turns come one at a
    /// time (the agent's knowledge-base answers run ~10 s), and its median is gated, so
    /// it needs a dozen turns or more (120 s gave 9, and one turn moved the median).
    fn phase_secs(&self, calls: usize) -> u64 {
        self.phase_secs.unwrap_or(match (self.quick, calls) {
            (true, 1) => 180,
            (true, _) => 50,
            (false, 1) => 100,
            (false, _) => 75,
        })
    }
}

fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().map(Path::to_path_buf).unwrap_or(tmp)
}

// ---------------------------------------------------------------- corpus

#[derive(Clone)]
struct TurnSpec {
    kind: String,
    text: String,
}

struct CallSpec {
    name: String,
    turns: Vec<TurnSpec>,
}

fn parse_corpus(text: &str) -> Result<Vec<CallSpec>, String> {
    let mut calls: Vec<CallSpec> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("[call").and_then(|r| r.strip_suffix(']')) {
            calls.push(CallSpec {
                name: rest.trim().to_string(),
                turns: Vec::new(),
            });
            continue;
        }
        let (kind, utterance) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("corpus line {}: expected `<kind> <text>`", n + 1))?;
        if !["kb", "short", "sentence", "callback", "barge"].contains(&kind) {
            return Err(format!("corpus line {}: unknown kind {kind:?}", n + 1));
        }
        let call = calls
            .last_mut()
            .ok_or_else(|| format!("corpus line {}: turn before any [call ...]", n + 1))?;
        call.turns.push(TurnSpec {
            kind: kind.to_string(),
            text: utterance.trim().to_string(),
        });
    }
    if calls.iter().any(|c| c.turns.is_empty()) || calls.is_empty() {
        return Err("corpus: every [call] needs at least one turn".into());
    }
    Ok(calls)
}

/// One rendered caller utterance in 20 ms frames.
struct Utterance {
    frames: Vec<Frame>,
    first_voiced: usize,
    last_voiced: usize,
}

impl Utterance {
    fn speech_ms(&self) -> u64 {
        ((self.last_voiced + 1 - self.first_voiced) * 20) as u64
    }
}

fn fnv64(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn rms(frame: &[i16]) -> f64 {
    let sum: f64 = frame.iter().map(|&s| (s as f64) * (s as f64)).sum();
    (sum / frame.len().max(1) as f64).sqrt()
}

fn render(bin: &Path, dir: &Path, text: &str) -> Result<Utterance, String> {
    let path = dir.join(format!("{:016x}.wav", fnv64(text)));
    if !path.exists() {
        let tmp = path.with_extension("tmp.wav");
        let out = Command::new(bin)
            .args(["say", text, "--rate", "8000", "-o"])
            .arg(&tmp)
            .output()
            .map_err(|e| format!("cannot run {} say: {e}", bin.display()))?;
        if !out.status.success() {
            return Err(format!(
                "`tingshuo say {text:?}` failed (run `tingshuo models fetch` first?): {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let reader = hound::WavReader::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let spec = reader.spec();
    if spec.sample_rate != 8000 || spec.channels != 1 {
        return Err(format!(
            "{}: expected 8 kHz mono, got {} Hz x {}; delete it to re-render",
            path.display(),
            spec.sample_rate,
            spec.channels
        ));
    }
    let samples: Vec<i16> = reader
        .into_samples::<i16>()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut frames: Vec<Frame> = samples
        .chunks(FRAME_SAMPLES)
        .map(|c| {
            let mut f = [0i16; FRAME_SAMPLES];
            f[..c.len()].copy_from_slice(c);
            f
        })
        .collect();
    // A little trailing silence so the end of speech is a clean edge.
    frames.extend(std::iter::repeat_n([0i16; FRAME_SAMPLES], 5));
    let voiced: Vec<usize> = (0..frames.len())
        .filter(|&i| rms(&frames[i]) > VOICED_RMS)
        .collect();
    let (Some(&first_voiced), Some(&last_voiced)) = (voiced.first(), voiced.last()) else {
        return Err(format!("{}: no voiced frame in {text:?}", path.display()));
    };
    Ok(Utterance {
        frames,
        first_voiced,
        last_voiced,
    })
}

/// Deterministic white noise (xorshift, sum of four uniforms: close to Gaussian).
struct Noise {
    state: u64,
    sigma: f64,
}

impl Noise {
    fn new(seed: u64, sigma: f64) -> Self {
        Self {
            state: seed | 1,
            sigma,
        }
    }

    fn next(&mut self) -> f64 {
        let mut acc = 0.0;
        for _ in 0..4 {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            acc += (self.state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
        }
        // Four uniforms on [-0.5, 0.5): variance 4/12.
        acc / (4.0f64 / 12.0).sqrt() * self.sigma
    }

    fn add(&mut self, frame: &mut Frame) {
        for s in frame.iter_mut() {
            *s = (*s as f64 + self.next()).clamp(-32768.0, 32767.0) as i16;
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Clean,
    Noisy,
}

impl Variant {
    fn as_str(self) -> &'static str {
        match self {
            Variant::Clean => "clean",
            Variant::Noisy => "noisy-15dB",
        }
    }
}

// ---------------------------------------------------------------- the agent

struct Agent {
    child: Child,
    pid: u32,
    dir: tempfile::TempDir,
    sip: SocketAddr,
    log: PathBuf,
}

fn free_udp_port() -> Result<u16, String> {
    let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("no free UDP port: {e}"))?;
    s.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free UDP port: {e}"))
}

fn start_agent(bin: &Path, rtp_min: u16, rtp_max: u16) -> Result<Agent, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let sip_port = free_udp_port()?;
    let console_port = free_udp_port()?;
    let config = dir.path().join("tingshuo.toml");
    std::fs::write(
        &config,
        format!(
            "[sip]\nlisten = \"127.0.0.1:{sip_port}\"\nrtp_port_min = {rtp_min}\nrtp_port_max = {rtp_max}\n\
max_calls = 32\n[console]\nlisten = \"127.0.0.1:{console_port}\"\n[store]\npath = \"{}\"\n{}",
            dir.path().join("records.db").display(),
            if SRTP.load(Ordering::Relaxed) {
                "[media]\nsrtp = \"forced\"\n"
            } else {
                ""
            }
        ),
    )
    .map_err(|e| format!("write agent config: {e}"))?;
    let log = dir.path().join("agent.log");
    let logf = std::fs::File::create(&log).map_err(|e| format!("agent log: {e}"))?;
    let logf2 = logf.try_clone().map_err(|e| format!("agent log: {e}"))?;
    let child = Command::new(bin)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        // `TINGSHUO_BENCH_LOG` (a RUST_LOG filter) raises the agent's log detail, e.g.
        // `info,tingshuo::call=debug` for each speculative transcript and early end.
        .env(
            "RUST_LOG",
            std::env::var("TINGSHUO_BENCH_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(logf)
        .stderr(logf2)
        .spawn()
        .map_err(|e| format!("cannot start {} serve: {e}", bin.display()))?;
    let pid = child.id();
    let mut agent = Agent {
        child,
        pid,
        dir,
        sip: SocketAddr::from(([127, 0, 0, 1], sip_port)),
        log,
    };
    // Model loading and pre-synthesis of every script line come before listening.
    let t0 = Instant::now();
    loop {
        let text = std::fs::read_to_string(&agent.log).unwrap_or_default();
        if text.contains("tingshuo is listening") {
            eprintln!(
                "agent ready in {:.1} s (pid {pid})",
                t0.elapsed().as_secs_f64()
            );
            return Ok(agent);
        }
        if let Ok(Some(status)) = agent.child.try_wait() {
            return Err(format!(
                "the agent exited ({status}) before listening; log:\n{text}"
            ));
        }
        if t0.elapsed() > Duration::from_secs(600) {
            stop_agent(&mut agent);
            return Err(format!(
                "the agent did not start within 600 s; log:\n{text}"
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stop_agent(agent: &mut Agent) {
    let _ = Command::new("kill")
        .args(["-TERM", &agent.pid.to_string()])
        .status();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(8) {
        if let Ok(Some(_)) = agent.child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = agent.child.kill();
    let _ = agent.child.wait();
}

/// CPU ticks (user + system) and resident memory of a process.
fn proc_sample(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()?;
    Some((ticks, rss_kb))
}

/// Samples the agent's RSS while a phase runs; CPU comes from the tick delta.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u64, u64, usize)>,
    t0: Instant,
    ticks0: u64,
}

impl Sampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let ticks0 = proc_sample(pid).map(|p| p.0).unwrap_or(0);
        let thread = std::thread::spawn(move || {
            let (mut peak, mut sum, mut n) = (0u64, 0u64, 0usize);
            while !s.load(Ordering::Relaxed) {
                if let Some((_, rss)) = proc_sample(pid) {
                    peak = peak.max(rss);
                    sum += rss;
                    n += 1;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            (peak, sum, n)
        });
        Self {
            stop,
            thread,
            t0: Instant::now(),
            ticks0,
        }
    }

    /// (CPU in cores, peak RSS MiB, mean RSS MiB).
    fn finish(self, pid: u32) -> (f64, f64, f64) {
        let wall = self.t0.elapsed().as_secs_f64();
        let ticks1 = proc_sample(pid).map(|p| p.0).unwrap_or(self.ticks0);
        self.stop.store(true, Ordering::Relaxed);
        let (peak, sum, n) = self.thread.join().unwrap_or((0, 0, 0));
        let cores = (ticks1.saturating_sub(self.ticks0)) as f64 / CLK_TCK / wall.max(0.001);
        let mean = if n > 0 { sum as f64 / n as f64 } else { 0.0 };
        (cores, peak as f64 / 1024.0, mean / 1024.0)
    }
}

// ---------------------------------------------------------------- one call

struct Corpus {
    calls: Vec<CallSpec>,
    audio: BTreeMap<String, Arc<Utterance>>,
    noise_sigma: f64,
}

#[derive(Clone, Default)]
struct TurnResult {
    call: String,
    user: String,
    variant: &'static str,
    kind: String,
    text: String,
    speech_ms: u64,
    last_voiced_epoch_ms: i64,
    latency_ms: Option<f64>,
    /// The agent was still talking when the caller finished (no clean edge to measure).
    overlapped: bool,
    barge_stop_ms: Option<f64>,
    agent: Option<AgentTiming>,
    /// What the agent's records say it recognised for this turn, and the intent
    /// (`repeat`: heard speech but no words, so it asked the caller to repeat).
    heard: Option<(String, Option<String>)>,
}

#[derive(Clone, Copy, Default)]
struct AgentTiming {
    /// Agent's speech end minus the caller's last voiced frame sent.
    speech_end_lag: f64,
    endpoint_wait: f64,
    asr_after_endpoint: f64,
    dialogue: f64,
    playback_start: f64,
    total: f64,
}

struct CallOutcome {
    user: String,
    turns: Vec<TurnResult>,
    error: Option<String>,
}

fn epoch_ms(at: Instant) -> i64 {
    let now_i = Instant::now();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    now_ms - now_i.saturating_duration_since(at).as_millis() as i64
}

/// The caller's media side: receives one agent frame per tick, tracks what was sent.
struct Link {
    inbound: crossbeam_channel::Receiver<InboundFrame>,
    tap: crossbeam_channel::Receiver<OutboundFrame>,
    play: PlaybackQueue,
    ended: Arc<AtomicBool>,
    noise: Option<Noise>,
    /// Also send the noise while the caller is silent (`--line-noise`).
    line_noise: bool,
    /// Frames pushed to the playback queue so far, and queued frames seen sent.
    pushed: u64,
    sent: u64,
    /// Watched pushed-frame indexes (first and last voiced of the current utterance).
    watch: [Option<(u64, Option<Instant>)>; 2],
}

impl Link {
    /// Next agent frame as (tick, rms); `None` once the call is over.
    fn next(&mut self) -> Option<(Instant, f64)> {
        loop {
            if self.ended.load(Ordering::Relaxed) {
                return None;
            }
            match self.inbound.recv_timeout(Duration::from_millis(300)) {
                Ok(f) => {
                    self.drain_tap();
                    if let Some(noise) = self.noise.as_mut().filter(|_| self.line_noise) {
                        // Keep the line noisy while the caller is silent too.
                        while self.play.len() < 3 {
                            let mut fr = [0i16; FRAME_SAMPLES];
                            noise.add(&mut fr);
                            if self.play.push(&fr).is_err() {
                                break;
                            }
                            self.pushed += 1;
                        }
                    }
                    return Some((f.at, rms(&f.samples)));
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    fn drain_tap(&mut self) {
        while let Ok(f) = self.tap.try_recv() {
            if !f.speech {
                continue;
            }
            for (idx, at) in self.watch.iter_mut().flatten() {
                if *idx == self.sent && at.is_none() {
                    *at = Some(f.at);
                }
            }
            self.sent += 1;
        }
    }

    /// Queues an utterance; watches its first and last voiced frames.
    fn speak(&mut self, u: &Utterance) {
        let base = self.pushed;
        self.watch = [
            Some((base + u.first_voiced as u64, None)),
            Some((base + u.last_voiced as u64, None)),
        ];
        for f in &u.frames {
            let mut f = *f;
            if let Some(n) = self.noise.as_mut() {
                n.add(&mut f);
            }
            // 1000 frames of room (20 s): an utterance always fits.
            if self
                .play
                .push_timeout(&f, Duration::from_millis(100))
                .is_ok()
            {
                self.pushed += 1;
            }
        }
    }

    fn first_voiced_at(&self) -> Option<Instant> {
        self.watch[0].and_then(|w| w.1)
    }

    fn last_voiced_at(&self) -> Option<Instant> {
        self.watch[1].and_then(|w| w.1)
    }
}

/// Waits until the agent has spoken and then been quiet for [`REPLY_DONE_QUIET`].
/// Returns false when the call ended or nothing was said within `start_timeout`.
fn wait_reply_done(link: &mut Link, start_timeout: Duration, spoke_at: Option<Instant>) -> bool {
    let t0 = Instant::now();
    let mut last_speech = spoke_at;
    while let Some((at, level)) = link.next() {
        if level > REPLY_RMS {
            last_speech = Some(at);
        }
        match last_speech {
            Some(ls) if at.saturating_duration_since(ls) >= REPLY_DONE_QUIET => return true,
            None if t0.elapsed() > start_timeout => return false,
            Some(_) if t0.elapsed() > Duration::from_secs(60) => return true,
            _ => {}
        }
    }
    false
}

/// Plays the call's turns on the media link; blocking (its own thread).
fn media_loop(
    mut link: Link,
    spec: &CallSpec,
    audio: &BTreeMap<String, Arc<Utterance>>,
    deadline: Instant,
    max_turns: usize,
    base: TurnResult,
) -> Vec<TurnResult> {
    let mut out = Vec::new();
    // The agent opens; the caller answers once the greeting is over.
    if !wait_reply_done(&mut link, Duration::from_secs(15), None) {
        return out;
    }
    let mut barge_next = false;
    for (i, turn) in spec.turns.iter().enumerate() {
        if (Instant::now() > deadline || i >= max_turns) && !barge_next {
            break;
        }
        let Some(u) = audio.get(&turn.text) else {
            break;
        };
        let mut r = TurnResult {
            kind: turn.kind.clone(),
            text: turn.text.clone(),
            speech_ms: u.speech_ms(),
            ..base.clone()
        };
        link.speak(u);
        // Until the last voiced frame leaves: for a barge-in, watch the agent stop.
        let mut quiet_run = 0usize;
        let mut quiet_from: Option<Instant> = None;
        let mut ended = false;
        while link.last_voiced_at().is_none() {
            let Some((at, level)) = link.next() else {
                ended = true;
                break;
            };
            if barge_next && r.barge_stop_ms.is_none() {
                if let Some(onset) = link.first_voiced_at() {
                    if at > onset && level <= REPLY_RMS {
                        quiet_run += 1;
                        quiet_from.get_or_insert(at);
                        if quiet_run >= STOPPED_FRAMES {
                            let from = quiet_from.unwrap_or(at);
                            r.barge_stop_ms =
                                Some(from.saturating_duration_since(onset).as_secs_f64() * 1e3);
                        }
                    } else if at > onset {
                        quiet_run = 0;
                        quiet_from = None;
                    }
                }
            }
        }
        if ended {
            break;
        }
        let Some(last) = link.last_voiced_at() else {
            break;
        };
        r.last_voiced_epoch_ms = epoch_ms(last);
        // The reply: the first speech frame after the agent has been quiet at least once.
        let mut seen_quiet = false;
        let mut reply_at = None;
        while let Some((at, level)) = link.next() {
            if at <= last {
                continue;
            }
            if level > REPLY_RMS {
                if seen_quiet {
                    reply_at = Some(at);
                    break;
                }
                r.overlapped = true;
            } else {
                seen_quiet = true;
            }
            if at.saturating_duration_since(last) > REPLY_TIMEOUT {
                break;
            }
        }
        if let Some(at) = reply_at {
            r.latency_ms = Some(at.saturating_duration_since(last).as_secs_f64() * 1e3);
        }
        out.push(r);
        barge_next = spec.turns.get(i + 1).is_some_and(|t| t.kind == "barge");
        match reply_at {
            Some(at) if barge_next => {
                // Talk over the reply 1 s after it started.
                while let Some((t, _)) = link.next() {
                    if t.saturating_duration_since(at) >= BARGE_AFTER {
                        break;
                    }
                }
            }
            Some(at) => {
                if !wait_reply_done(&mut link, REPLY_TIMEOUT, Some(at)) {
                    break;
                }
            }
            None => {
                barge_next = false;
                if link.ended.load(Ordering::Relaxed) {
                    break;
                }
            }
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
async fn run_call(
    agent: SocketAddr,
    ports: Arc<PortAllocator>,
    user: String,
    spec_idx: usize,
    variant: Variant,
    corpus: Arc<Corpus>,
    deadline: Instant,
    max_turns: usize,
) -> CallOutcome {
    let mut outcome = CallOutcome {
        user: user.clone(),
        turns: Vec::new(),
        error: None,
    };
    let mut ua = UaConfig::direct(SocketAddr::from(([127, 0, 0, 1], 0)));
    ua.user = user.clone();
    if SRTP.load(Ordering::Relaxed) {
        ua.srtp = tingshuo::config::SrtpPolicy::Forced;
    }
    let sip = match start_with(ua).await {
        Ok(s) => s,
        Err(e) => {
            outcome.error = Some(format!("UAC start: {e}"));
            return outcome;
        }
    };
    let (cmds, mut events, task) = sip.into_parts();
    let mut mcfg = MediaConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST), None, G711::Pcmu);
    mcfg.tap_outbound = true;
    mcfg.jitter = JitterConfig {
        depth: Depth::Fixed(Duration::from_millis(20)),
        capacity_frames: 50,
    };
    let media = match MediaSession::start(&ports, mcfg) {
        Ok(m) => m,
        Err(e) => {
            outcome.error = Some(format!("caller media: {e}"));
            let _ = cmds.send(SipCommand::Shutdown);
            let _ = task.await;
            return outcome;
        }
    };
    let call_id = new_call_id();
    let _ = cmds.send(SipCommand::PlaceCall {
        call_id: call_id.clone(),
        target: format!("sip:bot@{agent}"),
        media: LocalMedia {
            rtp_addr: media.local_rtp(),
            codecs: vec![Codec::Pcmu],
            telephone_event_pt: None,
        },
        ring_timeout: Duration::from_secs(10),
    });
    let answered = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(ev) = events.recv().await {
            match ev {
                SipEvent::Call(CallEvent::Answered {
                    negotiated, srtp, ..
                }) => return Ok((negotiated, srtp)),
                SipEvent::Call(CallEvent::Ended { reason, .. }) => {
                    return Err(format!("call not answered: {reason:?}"))
                }
                _ => {}
            }
        }
        Err("UAC stopped".to_string())
    })
    .await
    .unwrap_or_else(|_| Err("no answer within 15 s".into()));
    let mut agent_hung_up = false;
    match answered {
        Ok((neg, srtp)) => {
            if let Some(keys) = &srtp {
                if let Err(e) = media.set_srtp(keys) {
                    outcome.error = Some(format!("caller SRTP: {e}"));
                }
            } else if SRTP.load(Ordering::Relaxed) {
                outcome.error = Some("--srtp: the agent answered without SRTP".into());
            }
            media.set_codec(neg.codec, neg.telephone_event_pt);
            if let Some(addr) = neg.remote.rtp_addr {
                media.set_remote(addr, None);
            }
            let ended = Arc::new(AtomicBool::new(false));
            let link = Link {
                inbound: media.inbound(),
                tap: media
                    .outbound_tap()
                    .unwrap_or_else(crossbeam_channel::never),
                play: media.playback(),
                ended: ended.clone(),
                noise: (variant == Variant::Noisy)
                    .then(|| Noise::new(fnv64(&user), corpus.noise_sigma)),
                line_noise: LINE_NOISE.load(Ordering::Relaxed),
                pushed: 0,
                sent: 0,
                watch: [None, None],
            };
            let base = TurnResult {
                call: corpus.calls[spec_idx].name.clone(),
                user: user.clone(),
                variant: variant.as_str(),
                ..Default::default()
            };
            let c = corpus.clone();
            let mut worker = tokio::task::spawn_blocking(move || {
                media_loop(
                    link,
                    &c.calls[spec_idx],
                    &c.audio,
                    deadline,
                    max_turns,
                    base,
                )
            });
            let mut events_open = true;
            let turns = loop {
                tokio::select! {
                    r = &mut worker => break r.unwrap_or_default(),
                    ev = events.recv(), if events_open => match ev {
                        Some(SipEvent::Call(CallEvent::Ended { .. })) => {
                            agent_hung_up = true;
                            ended.store(true, Ordering::Relaxed);
                        }
                        None => {
                            events_open = false;
                            agent_hung_up = true;
                            ended.store(true, Ordering::Relaxed);
                        }
                        _ => {}
                    },
                }
            };
            outcome.turns = turns;
        }
        Err(e) => {
            outcome.error = Some(e);
            agent_hung_up = true;
        }
    }
    if !agent_hung_up {
        let _ = cmds.send(SipCommand::Hangup {
            call_id: call_id.clone(),
        });
        let _ = tokio::time::timeout(Duration::from_secs(3), async {
            while let Some(ev) = events.recv().await {
                if matches!(ev, SipEvent::Call(CallEvent::Ended { .. })) {
                    break;
                }
            }
        })
        .await;
    }
    let _ = cmds.send(SipCommand::Shutdown);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while events.recv().await.is_some() {}
    })
    .await;
    let _ = task.await;
    let _ = tokio::task::spawn_blocking(move || media.stop()).await;
    outcome
}

// ---------------------------------------------------------------- the agent's records

/// Fills each turn's agent-side timing from the records database.
fn attach_agent_timings(db: &Path, turns: &mut [TurnResult]) -> Result<usize, String> {
    let store = tingshuo::store::Store::open(db).map_err(|e| format!("records: {e}"))?;
    let calls = store.list(100_000).map_err(|e| format!("records: {e}"))?;
    let mut by_user: BTreeMap<String, Vec<tingshuo::store::StoredTurn>> = BTreeMap::new();
    for c in calls {
        let Some(peer) = c.peer.as_deref() else {
            continue;
        };
        let Some(user) = peer
            .split("sip:")
            .nth(1)
            .and_then(|s| s.split('@').next())
            .map(str::to_string)
        else {
            continue;
        };
        let detail = store.show(c.id).map_err(|e| format!("records: {e}"))?;
        by_user.entry(user).or_default().extend(
            detail
                .turns
                .into_iter()
                .filter(|t| t.line.speaker == "callee" && t.timing.t_speech_end.is_some()),
        );
    }
    let mut matched = 0;
    for t in turns.iter_mut() {
        let Some(cands) = by_user.get_mut(&t.user) else {
            continue;
        };
        let best = cands
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let d = c.timing.t_speech_end? - t.last_voiced_epoch_ms;
                (-500..=2000).contains(&d).then_some((i, d.abs()))
            })
            .min_by_key(|&(_, d)| d);
        let Some((i, _)) = best else { continue };
        let c = cands.remove(i);
        t.heard = Some((c.line.text.clone(), c.line.intent.clone()));
        let tm = c.timing;
        let (Some(se), Some(ep), Some(asr), Some(ch), Some(rtp)) = (
            tm.t_speech_end,
            tm.t_endpoint,
            tm.t_asr_done,
            tm.t_reply_chosen,
            tm.t_first_reply_rtp,
        ) else {
            continue;
        };
        t.agent = Some(AgentTiming {
            speech_end_lag: (se - t.last_voiced_epoch_ms) as f64,
            endpoint_wait: (ep - se) as f64,
            asr_after_endpoint: (asr - ep) as f64,
            dialogue: (ch - asr) as f64,
            playback_start: (rtp - ch) as f64,
            total: (rtp - se) as f64,
        });
        matched += 1;
    }
    Ok(matched)
}

// ---------------------------------------------------------------- statistics

/// Nearest-rank percentile of a sorted slice.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(mut v: Vec<f64>) -> Value {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return json!({"n": 0});
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    json!({
        "n": v.len(),
        "p50": pct(&v, 50.0).round(),
        "p95": pct(&v, 95.0).round(),
        "max": v[v.len() - 1].round(),
        "min": v[0].round(),
        "mean": mean.round(),
    })
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn num(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

// ---------------------------------------------------------------- the budget

struct Gate {
    calls: usize,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
}

struct Budget {
    gates: Vec<Gate>,
    capacity_p95_ms: f64,
    min_reply_share: f64,
}

fn load_budget() -> Result<Budget, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/budget.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v = toml::Value::Table(
        toml::from_str::<toml::Table>(&text).map_err(|e| format!("{}: {e}", path.display()))?,
    );
    let f = |t: &toml::Value, k: &str| {
        t.get(k)
            .and_then(|x| x.as_float().or_else(|| x.as_integer().map(|i| i as f64)))
    };
    let gates = v
        .get("gate")
        .and_then(|g| g.as_array())
        .ok_or_else(|| format!("{}: needs [[gate]] entries", path.display()))?
        .iter()
        .map(|g| {
            Ok(Gate {
                calls: f(g, "calls").ok_or("a [[gate]] needs `calls`")? as usize,
                p50_ms: f(g, "p50_ms"),
                p95_ms: f(g, "p95_ms"),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Budget {
        gates,
        capacity_p95_ms: v
            .get("capacity")
            .and_then(|c| f(c, "p95_ms"))
            .unwrap_or(1000.0),
        min_reply_share: v
            .get("replies")
            .and_then(|c| f(c, "min_share"))
            .unwrap_or(0.8),
    })
}

// ---------------------------------------------------------------- main

fn load_corpus(bin: &Path, dir: &Path) -> Result<Corpus, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/corpus/turns.txt");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let calls = parse_corpus(&text)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut audio = BTreeMap::new();
    let t0 = Instant::now();
    for t in calls.iter().flat_map(|c| &c.turns) {
        if !audio.contains_key(&t.text) {
            audio.insert(t.text.clone(), Arc::new(render(bin, dir, &t.text)?));
        }
    }
    // Mean speech power over every voiced frame of the corpus sets the noise level.
    let (mut power, mut n) = (0.0f64, 0usize);
    for u in audio.values() {
        for f in &u.frames[u.first_voiced..=u.last_voiced] {
            let r = rms(f);
            if r > VOICED_RMS {
                power += r * r;
                n += 1;
            }
        }
    }
    let noise_sigma = (power / n.max(1) as f64 / 10f64.powf(SNR_DB / 10.0)).sqrt();
    let turns: usize = calls.iter().map(|c| c.turns.len()).sum();
    eprintln!(
        "corpus: {} calls, {turns} turns, {} utterances ({:.1} s to load/render), noise RMS {:.0}",
        calls.len(),
        audio.len(),
        t0.elapsed().as_secs_f64(),
        noise_sigma
    );
    Ok(Corpus {
        calls,
        audio,
        noise_sigma,
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    match run() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("turn_latency bench failed: {e}");
            std::process::exit(2);
        }
    }
}

fn run() -> Result<bool, String> {
    let args = parse_args()?;
    let budget = load_budget()?;
    let out_dir = target_dir().join("bench");
    if !args.bin.exists() {
        return Err(format!(
            "agent binary {} not found: build it (`cargo build --release`) or pass --bin / TINGSHUO_BENCH_BIN",
            args.bin.display()
        ));
    }
    eprintln!(
        "agent binary: {}{}",
        args.bin.display(),
        if SRTP.load(Ordering::Relaxed) {
            " (every call with SRTP)"
        } else {
            ""
        }
    );
    let corpus = Arc::new(load_corpus(&args.bin, &out_dir.join("corpus"))?);
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let load_start = loadavg();

    // Port ranges: the agent's and the caller's, spread by pid to avoid neighbours.
    let base = 20000 + (std::process::id() % 200) as u16 * 100;
    let mut agent = start_agent(&args.bin, base, base + 49)?;
    let ports = PortAllocator::new(base + 50, base + 99).map_err(|e| format!("ports: {e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio: {e}"))?;

    // Warm-up: the agent's first recognition is cold (model pages, caches); one call
    // with one turn runs before anything is measured and is reported on its own.
    eprintln!("warm-up call (1 turn, not counted)");
    let warm = rt.block_on(run_call(
        agent.sip,
        ports.clone(),
        "warmup".into(),
        0,
        Variant::Clean,
        corpus.clone(),
        Instant::now() + Duration::from_secs(60),
        1,
    ));
    let cold_turn_ms = warm.turns.first().and_then(|t| t.latency_ms);
    if let Some(e) = &warm.error {
        eprintln!("  warm-up call failed: {e}");
    }
    eprintln!(
        "  cold first turn: {}",
        cold_turn_ms.map_or("no reply".into(), |l| format!("{l:.0} ms"))
    );
    std::thread::sleep(Duration::from_secs(2));

    // Idle baseline.
    let idle = Sampler::start(agent.pid);
    std::thread::sleep(Duration::from_secs(3));
    let (idle_cpu, idle_rss, _) = idle.finish(agent.pid);

    let mut phases = Vec::new();
    let mut all_turns: Vec<TurnResult> = Vec::new();
    let call_counter = Arc::new(AtomicUsize::new(0));
    let result = (|| -> Result<(), String> {
        for &n in &args.calls {
            let phase_secs = args.phase_secs(n);
            eprintln!("phase: {n} concurrent call(s) for {phase_secs} s");
            let sampler = Sampler::start(agent.pid);
            let t0 = Instant::now();
            let deadline = t0 + Duration::from_secs(phase_secs);
            let outcomes: Arc<Mutex<Vec<CallOutcome>>> = Arc::new(Mutex::new(Vec::new()));
            rt.block_on(async {
                let mut slots = Vec::new();
                for slot in 0..n {
                    let (ports, corpus, outcomes, counter) = (
                        ports.clone(),
                        corpus.clone(),
                        outcomes.clone(),
                        call_counter.clone(),
                    );
                    let sip = agent.sip;
                    slots.push(tokio::spawn(async move {
                        // Stagger starts so calls do not all speak in lockstep.
                        tokio::time::sleep(Duration::from_millis(slot as u64 * 700)).await;
                        while Instant::now() < deadline {
                            let k = counter.fetch_add(1, Ordering::Relaxed);
                            let spec = k % corpus.calls.len();
                            let variant = if k % 2 == 0 {
                                Variant::Clean
                            } else {
                                Variant::Noisy
                            };
                            let user = format!("load{n}x{slot}c{k}");
                            let o = run_call(
                                sip,
                                ports.clone(),
                                user,
                                spec,
                                variant,
                                corpus.clone(),
                                deadline,
                                usize::MAX,
                            )
                            .await;
                            if let Some(e) = &o.error {
                                eprintln!("  call {} failed: {e}", o.user);
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                            if let Ok(mut v) = outcomes.lock() {
                                v.push(o);
                            }
                        }
                    }));
                }
                for s in slots {
                    let _ = s.await;
                }
            });
            let wall = t0.elapsed().as_secs_f64();
            let (cpu, rss_peak, rss_mean) = sampler.finish(agent.pid);
            // Let the agent's record writer catch up with the last turns.
            std::thread::sleep(Duration::from_millis(1500));
            let outcomes = std::mem::take(&mut *outcomes.lock().map_err(|_| "poisoned")?);
            let calls_placed = outcomes.len();
            let failed: Vec<String> = outcomes
                .iter()
                .filter_map(|o| o.error.clone().map(|e| format!("{}: {e}", o.user)))
                .collect();
            let mut turns: Vec<TurnResult> = outcomes.into_iter().flat_map(|o| o.turns).collect();
            let matched = attach_agent_timings(&agent.dir.path().join("records.db"), &mut turns)?;
            let phase = phase_figures(n, wall, calls_placed, &failed, &turns, matched);
            let mut phase = phase;
            phase["agent"] = json!({
                "cpu_cores": (cpu * 1000.0).round() / 1000.0,
                "cpu_cores_idle": (idle_cpu * 1000.0).round() / 1000.0,
                "cpu_per_call_pct": (((cpu - idle_cpu).max(0.0) / n as f64) * 1000.0).round() / 10.0,
                "rss_peak_mib": rss_peak.round(),
                "rss_mean_mib": rss_mean.round(),
                "rss_idle_mib": idle_rss.round(),
                "rss_per_call_mib": (((rss_peak - idle_rss).max(0.0) / n as f64) * 10.0).round() / 10.0,
            });
            print_phase_line(&phase);
            phases.push(phase);
            all_turns.extend(turns);
            std::thread::sleep(Duration::from_secs(2));
        }
        Ok(())
    })();
    stop_agent(&mut agent);
    let _ = std::fs::create_dir_all(&out_dir);
    let _ = std::fs::copy(&agent.log, out_dir.join("turn-latency-agent.log"));
    result?;

    // Gate and capacity.
    let mut failures = Vec::new();
    for p in &phases {
        let n = p["calls"].as_u64().unwrap_or(0) as usize;
        let lat = &p["latency_ms"];
        let share = num(p, "reply_share");
        let missed = p["missed"].as_u64().unwrap_or(0);
        if missed > 0 {
            failures.push(format!(
                "{n} call(s): {missed} turn(s) missed (not heard or not answered): {}",
                p["missed_by_kind"]
            ));
        }
        if share < budget.min_reply_share {
            failures.push(format!(
                "{n} call(s): the agent answered {:.0} % of turns (< {:.0} %)",
                share * 100.0,
                budget.min_reply_share * 100.0
            ));
        }
        for g in budget.gates.iter().filter(|g| g.calls == n) {
            for (name, limit) in [("p50", g.p50_ms), ("p95", g.p95_ms)] {
                let Some(limit) = limit else { continue };
                let got = num(lat, name);
                if got.is_nan() || got > limit {
                    failures.push(format!(
                        "{n} call(s): {name} turn latency {got:.0} ms > budget {limit:.0} ms"
                    ));
                }
            }
        }
    }
    let capacity = phases
        .iter()
        .filter(|p| num(&p["latency_ms"], "p95") <= budget.capacity_p95_ms)
        .filter(|p| num(p, "reply_share") >= budget.min_reply_share)
        .filter_map(|p| p["calls"].as_u64())
        .max();

    print_table(&phases);
    let all_lat: Vec<f64> = all_turns.iter().filter_map(|t| t.latency_ms).collect();
    let floor = all_turns
        .iter()
        .filter_map(|t| t.agent)
        .map(|a| a.endpoint_wait + a.asr_after_endpoint)
        .fold(f64::INFINITY, f64::min);
    println!(
        "calls per {nproc} cores (largest swept N with p95 <= {:.0} ms): {}",
        budget.capacity_p95_ms,
        capacity.map_or("none".into(), |c| c.to_string())
    );
    println!(
        "floor seen (agent endpoint wait + ASR after endpoint, best turn): {floor:.0} ms; load average {} -> {}",
        load_start,
        loadavg()
    );

    let report = json!({
        "mode": if args.quick { "quick" } else { "sweep" },
        "srtp": SRTP.load(Ordering::Relaxed),
        "machine": { "cores": nproc, "loadavg_start": load_start, "loadavg_end": loadavg() },
        "method": {
            "latency": "caller's last voiced frame sent (outbound tap) -> first received agent frame with RMS > reply_rms",
            "reply_rms": REPLY_RMS, "voiced_rms": VOICED_RMS,
            "caller_jitter_buffer_ms": 20, "phase_secs": args.calls.iter().map(|&n| args.phase_secs(n)).collect::<Vec<_>>(),
            "noisy_variant_snr_db": SNR_DB,
        },
        "budget": {
            "gates": budget.gates.iter().map(|g| json!({"calls": g.calls, "p50_ms": g.p50_ms, "p95_ms": g.p95_ms})).collect::<Vec<_>>(),
            "capacity_p95_ms": budget.capacity_p95_ms, "min_reply_share": budget.min_reply_share,
        },
        "gate_failures": failures,
        "cold_first_turn_ms": cold_turn_ms.map(f64::round),
        "calls_per_2_cores": capacity,
        "all_turns_latency_ms": summary(all_lat),
        "phases": phases,
        "turns": all_turns.iter().map(turn_json).collect::<Vec<_>>(),
    });
    let path = out_dir.join("turn-latency.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    println!("report: {}", path.display());
    if failures.is_empty() {
        println!("gate: PASS");
        Ok(true)
    } else {
        for f in &failures {
            println!("gate: FAIL: {f}");
        }
        Ok(false)
    }
}

fn turn_json(t: &TurnResult) -> Value {
    json!({
        "call": t.call, "user": t.user, "variant": t.variant, "kind": t.kind, "text": t.text,
        "speech_ms": t.speech_ms, "last_voiced_epoch_ms": t.last_voiced_epoch_ms,
        "latency_ms": t.latency_ms.map(f64::round), "overlapped": t.overlapped,
        "barge_stop_ms": t.barge_stop_ms.map(f64::round),
        "agent": t.agent.map(|a| json!({
            "speech_end_lag_ms": a.speech_end_lag, "endpoint_wait_ms": a.endpoint_wait,
            "asr_after_endpoint_ms": a.asr_after_endpoint, "dialogue_ms": a.dialogue,
            "playback_start_ms": a.playback_start, "total_ms": a.total,
        })),
    })
}

fn phase_figures(
    n: usize,
    wall: f64,
    calls_placed: usize,
    failed: &[String],
    turns: &[TurnResult],
    matched: usize,
) -> Value {
    // A reply counts when the agent's records show it heard the turn: otherwise what
    // followed was a re-prompt after its silence timeout, not an answer.
    let clean_edge: Vec<&TurnResult> = turns.iter().filter(|t| !t.overlapped).collect();
    let measured: Vec<&TurnResult> = clean_edge
        .iter()
        .copied()
        .filter(|t| t.agent.is_some())
        .collect();
    let lat = |f: &dyn Fn(&TurnResult) -> bool| -> Vec<f64> {
        measured
            .iter()
            .filter(|t| f(t))
            .filter_map(|t| t.latency_ms)
            .collect()
    };
    let replied = measured.iter().filter(|t| t.latency_ms.is_some()).count();
    let unheard: Vec<f64> = clean_edge
        .iter()
        .filter(|t| t.agent.is_none())
        .filter_map(|t| t.latency_ms)
        .collect();
    // Every turn with a clean edge counts in the percentiles at its real latency: a
    // turn the agent did not hear counts at the time until whatever it said next (the
    // silence re-prompt), a turn with no reply at all at the reply timeout.
    let every = |f: &dyn Fn(&TurnResult) -> bool| -> Vec<f64> {
        clean_edge
            .iter()
            .filter(|t| f(t))
            .map(|t| t.latency_ms.unwrap_or(REPLY_TIMEOUT.as_secs_f64() * 1e3))
            .collect()
    };
    // Missed: not heard (no record of the turn) or never answered. A `repeat` turn
    // was heard: the agent asked the caller to say it again within turn latency.
    let is_missed = |t: &TurnResult| t.agent.is_none() || t.latency_ms.is_none();
    let missed: Vec<&TurnResult> = turns.iter().filter(|t| is_missed(t)).collect();
    let mut missed_by_kind = serde_json::Map::new();
    for t in &missed {
        let n = missed_by_kind
            .entry(t.kind.clone())
            .or_insert(json!(0))
            .as_u64()
            .unwrap_or(0);
        missed_by_kind.insert(t.kind.clone(), json!(n + 1));
    }
    let reprompted = turns
        .iter()
        .filter(|t| {
            t.heard
                .as_ref()
                .is_some_and(|h| h.1.as_deref() == Some("repeat"))
        })
        .count();
    // Recognition accuracy: the agent's transcript of each heard turn vs the corpus.
    let (mut errs, mut chars) = (0usize, 0usize);
    let mut per_turn = Vec::new();
    for t in turns {
        if let Some((heard, _)) = &t.heard {
            let (e, n) = tingshuo::asr::text::char_errors(&t.text, heard);
            errs += e;
            chars += n;
            per_turn.push(json!({"call": t.call, "kind": t.kind, "said": t.text, "heard": heard, "errors": e}));
        }
    }
    let stage = |f: &dyn Fn(&AgentTiming) -> f64| -> Value {
        summary(
            measured
                .iter()
                .filter_map(|t| t.agent.as_ref())
                .map(f)
                .collect(),
        )
    };
    let offset: Vec<f64> = measured
        .iter()
        .filter_map(|t| Some(t.latency_ms? - t.agent?.total))
        .collect();
    let mut kinds = serde_json::Map::new();
    for k in ["kb", "short", "sentence", "callback", "barge"] {
        kinds.insert(k.into(), summary(every(&|t| t.kind == k)));
    }
    json!({
        "calls": n,
        "wall_s": wall.round(),
        "calls_placed": calls_placed,
        "calls_failed": failed,
        "turns": turns.len(),
        "replied": replied,
        "reply_share": if turns.is_empty() { 0.0 } else { replied as f64 / turns.len() as f64 },
        "overlapped": turns.iter().filter(|t| t.overlapped).count(),
        "matched_agent_records": matched,
        "latency_ms": summary(every(&|_| true)),
        "answered_turns_latency_ms": summary(lat(&|_| true)),
        "not_heard_but_followed_by_speech_ms": summary(unheard),
        "missed": missed.len(),
        "missed_by_kind": missed_by_kind,
        "missed_turns": missed.iter().map(|t| json!({"call": t.call, "kind": t.kind, "text": t.text, "variant": t.variant})).collect::<Vec<_>>(),
        "reprompted": reprompted,
        "recognition_cer": if chars == 0 { f64::NAN } else { errs as f64 / chars as f64 },
        "recognition_per_turn": per_turn,
        "by_variant": {
            "clean": summary(lat(&|t| t.variant == "clean")),
            "noisy-15dB": summary(lat(&|t| t.variant == "noisy-15dB")),
        },
        "by_kind": kinds,
        "agent_latency_ms": stage(&|a| a.total),
        "stages_ms": {
            "speech_end_lag": stage(&|a| a.speech_end_lag),
            "endpoint_wait": stage(&|a| a.endpoint_wait),
            "asr_after_endpoint": stage(&|a| a.asr_after_endpoint),
            "dialogue": stage(&|a| a.dialogue),
            "playback_start": stage(&|a| a.playback_start),
        },
        "black_box_minus_agent_ms": summary(offset),
        "barge_in_stop_ms": summary(turns.iter().filter_map(|t| t.barge_stop_ms).collect()),
    })
}

fn print_phase_line(p: &Value) {
    let l = &p["latency_ms"];
    eprintln!(
        "  {} call(s): {} turns, {} replied, p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms, agent CPU {:.2} cores",
        p["calls"],
        p["turns"],
        p["replied"],
        num(l, "p50"),
        num(l, "p95"),
        num(l, "max"),
        num(&p["agent"], "cpu_cores")
    );
}

fn print_table(phases: &[Value]) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(
        o,
        "\nturn latency, black box (ms)                       | agent stages, median (ms)                 | agent"
    );
    let _ = writeln!(
        o,
        "{:>5} {:>5} {:>5} {:>5} {:>5} {:>5} {:>6} {:>6} | {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} | {:>5} {:>7} {:>6} {:>7}",
        "calls", "turns", "reply", "p50", "p95", "max", "agt50", "agt95",
        "vadlag", "endpt", "asr", "dialog", "play", "bbdiff",
        "cores", "cpu/call", "rssMiB", "MiB/call"
    );
    for p in phases {
        let l = &p["latency_ms"];
        let a = &p["agent_latency_ms"];
        let s = &p["stages_ms"];
        let g = &p["agent"];
        let _ = writeln!(
            o,
            "{:>5} {:>5} {:>5} {:>5.0} {:>5.0} {:>5.0} {:>6.0} {:>6.0} | {:>6.0} {:>6.0} {:>6.0} {:>6.0} {:>6.0} {:>6.0} | {:>5.2} {:>6.1}% {:>6.0} {:>7.1}",
            u(&p["calls"]),
            u(&p["turns"]),
            u(&p["replied"]),
            num(l, "p50"),
            num(l, "p95"),
            num(l, "max"),
            num(a, "p50"),
            num(a, "p95"),
            num(&s["speech_end_lag"], "p50"),
            num(&s["endpoint_wait"], "p50"),
            num(&s["asr_after_endpoint"], "p50"),
            num(&s["dialogue"], "p50"),
            num(&s["playback_start"], "p50"),
            num(&p["black_box_minus_agent_ms"], "p50"),
            num(g, "cpu_cores"),
            num(g, "cpu_per_call_pct"),
            num(g, "rss_peak_mib"),
            num(g, "rss_per_call_mib"),
        );
    }
    for p in phases {
        let _ = writeln!(
            o,
            "{} call(s): {} missed turn(s) {}, {} re-prompted (heard, no words), recognition CER {:.1} %",
            p["calls"],
            u(&p["missed"]),
            p["missed_by_kind"],
            u(&p["reprompted"]),
            100.0 * num(p, "recognition_cer"),
        );
    }
    for p in phases {
        let b = &p["barge_in_stop_ms"];
        if b["n"].as_u64().unwrap_or(0) > 0 {
            let _ = writeln!(
                o,
                "barge-in stop at {} call(s): n {} median {:.0} ms max {:.0} ms",
                p["calls"],
                b["n"],
                num(b, "p50"),
                num(b, "max")
            );
        }
        let v = &p["by_variant"];
        let _ = writeln!(
            o,
            "variants at {} call(s): clean p50 {:.0} / p95 {:.0} ms (n {}), noisy p50 {:.0} / p95 {:.0} ms (n {})",
            p["calls"],
            num(&v["clean"], "p50"),
            num(&v["clean"], "p95"),
            v["clean"]["n"],
            num(&v["noisy-15dB"], "p50"),
            num(&v["noisy-15dB"], "p95"),
            v["noisy-15dB"]["n"],
        );
    }
}
