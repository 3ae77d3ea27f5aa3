//! One call's real-time loop: hears the caller, decides, and speaks.
//!
//! ```text
//!  MediaSession thread (src/rtp)            this loop (one std thread per call)
//!  RTP in → jitter → G.711 decode ──frames──▶ 8→16 kHz → Silero VAD + endpointer
//!                                            │   tentative end → speculative ASR job ─┐
//!                                            │   sounds finished → turn ends early    │
//!                                            │   speech end → confirm or resubmit     │ ASR pool
//!                                            │◀──────────── transcript ───────────────┘ (worker threads)
//!                                            ▼
//!                                     dialogue (Conversation) → lines to say
//!                                            │ known lines: 8 kHz PCM ready in memory
//!                                            │ dynamic lines: render thread (TTS)
//!  RTP out ← G.711 encode ← 20 ms pacer ◀──frames── playback queue (flushed on barge-in)
//! ```
//!
//! The loop owns every per-call buffer (allocated at set-up); per frame it only copies
//! into them. It never waits on inference: ASR results and rendered lines arrive on
//! channels it polls between frames. Turn timings are stamped here and written to the
//! record with the turn.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use crossbeam_channel::{select, Receiver, Sender};

use crate::asr::{AsrJob, AsrOutcome, CancelToken};
use crate::audio::FrameResampler;
use crate::config::TransferPolicy;
use crate::console::hub::{
    CallAudioFrame, CallControl, CallEnd, CallPublisher, OperatorAction, Speaker, TranscriptLine,
};
use crate::dialogue::turn_end::Finished;
use crate::dialogue::{Action, Conversation, Outcome, Script, TransferReason, TransferResult};
use crate::rtp::session::{
    InboundFrame, MediaConfig, MediaSession, OutboundFrame, PlaybackQueue, PortAllocator,
};
use crate::rtp::{DtmfEvent, PcmFrame, MAX_FRAME_SAMPLES};
/// Samples of a 20 ms frame at 8 kHz.
const FRAME_8K: usize = crate::audio::FRAME_8K;
use crate::sip::sdp::Negotiated;
use crate::sip::{EndReason, ReferStatus};
use crate::vad::{EndpointConfig, EndpointEvent, TurnDetector};

use super::barge_in::{BargeInConfig, BargeInDetector, FrameVerdict, OnAir, OnAirLine};
use super::continuation::EarlyTurn;
use super::engines::{LineAudio, SpeechEngines};
use super::recording::CallRecorder;
use super::records::RecordWriter;
use super::timing::TurnTiming;
use super::transfer::{self as xfer, Transfer};
use super::CallError;

/// Added to the measured echo delay when ignoring the echo tail after the agent stops.
const ECHO_TAIL_MARGIN_MS: u64 = 60;
/// Said when a voiced caller turn gave no words: asks the caller to say it again.
const ASK_REPEAT: &str = "不好意思，您刚才说的是？";
/// After the goodbye of a completed call the agent listens this long before it
/// hangs up: the caller usually hangs up first, or says one more thing
/// ("哦对了，电话说错了…"), which the dialogue then takes.
const LISTEN_AFTER_GOODBYE: Duration = Duration::from_millis(1500);
/// The longest the agent waits after its goodbye, whatever the caller does.
const LISTEN_AFTER_GOODBYE_MAX: Duration = Duration::from_secs(10);

/// Which side placed the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// Tuning of a call's turn-taking.
#[derive(Debug, Clone)]
pub struct CallTuning {
    pub endpoint: EndpointConfig,
    pub barge_in: BargeInConfig,
    /// Caller silence after the agent finished speaking before a re-prompt.
    pub silence_timeout: Duration,
    /// Longest call before the agent closes it.
    pub max_call: Duration,
    /// Semantic early end of turn: when the speculative transcript (started at the
    /// tentative end) sounds finished ([`crate::dialogue::turn_end::sounds_finished`]:
    /// a question, a bare answer, a whole phone number) and the pause has lasted
    /// this long, the turn ends without waiting for the full hangover. `None` waits
    /// for the hangover always.
    pub early_commit: Option<Duration>,
    /// The pause a merely short transcript needs before it ends the turn early
    /// ([`Finished::Short`]: 搬家了 may be the first clause of 搬家了，宽带可以移机吗).
    pub early_commit_short: Duration,
    /// The pause a whole clause with no cue either way needs ([`Finished::Clause`]):
    /// longer than most pauses between clauses (288 ms median in our voice), shorter
    /// than the hangover, which waits out the longest.
    pub early_commit_clause: Duration,
}

impl Default for CallTuning {
    fn default() -> Self {
        Self {
            endpoint: EndpointConfig::default(),
            barge_in: BargeInConfig::default(),
            silence_timeout: Duration::from_secs(7),
            max_call: Duration::from_secs(15 * 60),
            // Measured from the VAD's end of speech, which already trails the
            // caller's last sound by about a chunk or two.
            // A wrong early end is taken back when the caller goes on within
            // `continuation::CONTINUE_WITHIN` (600 ms) of the pause's start: the
            // longer waits below only make such takebacks (a syllable of reply cut
            // off) rarer. Bench (1 call, `--quick`, this machine): p50 492 ms when short
            // transcripts waited 352 ms and clauses the 480 ms hangover; 452 ms with
            // these and the noise-floor fix in `vad::turn`.
            early_commit: Some(Duration::from_millis(192)),
            early_commit_short: Duration::from_millis(256),
            early_commit_clause: Duration::from_millis(352),
        }
    }
}

/// Everything a call needs from set-up.
pub struct CallSetup {
    pub call_id: String,
    pub peer: String,
    pub direction: Direction,
    pub script: Arc<Script>,
    pub vars: BTreeMap<String, String>,
    pub tuning: CallTuning,
    /// The call's record, created at set-up (`None` if the store refused it).
    pub record_id: Option<i64>,
    /// Where to record the call's stereo WAV (`None`: no recording).
    pub recording: Option<std::path::PathBuf>,
    /// Where the call goes when its speech workers fail (`None`: the call only logs).
    pub emergency: Option<Arc<super::emergency::Emergency>>,
    /// Turn latencies feed the agent's admission control (shedding under overload).
    pub admission: Option<Arc<super::admission::Admission>>,
    /// Where and how this call goes to a person (`None`: no transfers; a caller asking
    /// for a person is promised a callback by a person).
    pub transfer: Option<TransferPolicy>,
    /// Ports and address for a bridged transfer's second leg (`None`: no SIP here).
    pub legs: Option<LegPorts>,
}

/// What a call needs to open a second RTP leg (bridged transfer).
#[derive(Clone)]
pub struct LegPorts {
    pub ports: Arc<PortAllocator>,
    pub local_ip: std::net::IpAddr,
}

/// The media side of a call, from the RTP session.
pub struct CallMedia {
    pub inbound: Receiver<InboundFrame>,
    pub sent: Receiver<OutboundFrame>,
    pub playback: PlaybackQueue,
    pub dtmf: Receiver<DtmfEvent>,
    /// Audio rate of the negotiated codec: 8000 (G.711) or 16000 (G.722).
    pub rate: u32,
}

/// The call's link to the operator console: what it publishes and what operators ask.
pub struct ConsoleLink {
    pub publisher: CallPublisher,
    pub control: CallControl,
}

/// Signals from the SIP side into a running call.
#[derive(Debug, Clone)]
pub enum CallSignal {
    /// The caller hung up (or the call failed): stop now.
    RemoteHangup,
    /// Progress of a transfer to a person.
    Transfer(TransferSignal),
}

/// SIP progress of a transfer, routed to the call that runs it.
#[derive(Debug, Clone)]
pub enum TransferSignal {
    /// Our REFER in the caller's dialog progressed.
    Refer(ReferStatus),
    /// The second leg (bridged transfer) rings.
    LegRinging,
    /// The second leg answered with this media.
    LegAnswered(Negotiated, Option<crate::rtp::srtp::SrtpKeys>),
    /// The second leg ended (before or after it answered).
    LegEnded(EndReason),
}

/// What the call asks of the SIP side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallRequest {
    /// Send BYE: the script reached its end.
    Hangup { call_id: String },
    /// Blind transfer: REFER the caller to `target`.
    Refer { call_id: String, target: String },
    /// Bridged transfer: dial `target` as leg `leg_id` of call `call_id`, with our
    /// RTP at `rtp`; the leg's progress comes back as [`TransferSignal`]s.
    Dial {
        call_id: String,
        leg_id: String,
        target: String,
        rtp: std::net::SocketAddr,
        headers: Vec<(String, String)>,
        ring_timeout: Duration,
    },
}

/// How a call went, for logs, campaigns and tests.
#[derive(Debug, Clone)]
pub struct CallReport {
    pub call_id: String,
    pub record_id: Option<i64>,
    pub outcome: Outcome,
    pub turns: usize,
    pub barge_ins: usize,
    pub latencies: Vec<Duration>,
}

fn now_local() -> DateTime<FixedOffset> {
    chrono::Local::now().fixed_offset()
}

/// A line waiting to be spoken.
struct QueuedLine {
    text: String,
    interruptible: bool,
    audio: Option<LineAudio>,
}

/// The line being fed to the playback queue.
struct Playing {
    text: String,
    interruptible: bool,
    audio: LineAudio,
    next_frame: usize,
}

/// A submitted ASR job for the current turn.
struct AsrInFlight {
    id: u64,
    speech_end_ms: u64,
    cancel: CancelToken,
    result: Option<AsrOutcome>,
    /// Whether the speculative text sounds like a whole turn (judged once, on arrival).
    finished: Finished,
    /// Confirmed by `SpeechEnd`: its text is the turn's text.
    final_: bool,
    /// When the caller's speech stopped (estimated from the endpointer's stream times).
    speech_end_at: Instant,
    /// When it was queued (a job unanswered too long means a dead or hung worker).
    submitted: Instant,
}

/// A turn whose record waits for the first reply packet's time.
struct PendingTurn {
    write: crate::store::TurnWrite,
    timing: TurnTiming,
}

struct CallLoop<'a> {
    setup: &'a CallSetup,
    engines: &'a SpeechEngines,
    records: &'a RecordWriter,
    record_id: Option<i64>,
    conv: Conversation,
    playback: PlaybackQueue,
    lines: VecDeque<QueuedLine>,
    playing: Option<Playing>,
    render_tx: Sender<(String, Result<LineAudio, CallError>)>,
    /// The call's audio rate (the codec's at the start: 8000 for G.711, 16000 for
    /// G.722): the agent's lines are rendered at it.
    rate: u32,
    asr_tx: Sender<AsrOutcome>,
    asr: Option<AsrInFlight>,
    next_job: u64,
    timing: TurnTiming,
    pending_turn: Option<PendingTurn>,
    awaiting_first_rtp: bool,
    hangup_after_playback: Option<Outcome>,
    /// When the goodbye finished playing (the agent then listens a moment).
    goodbye_done_at: Option<Instant>,
    /// The caller is speaking (between the endpointer's start and end of a turn).
    caller_in_speech: bool,
    last_activity: Instant,
    report: CallReport,
    hot_words: Arc<[String]>,
    /// The script's terms and the callee's name, for correcting near-homophones.
    terms: Arc<[crate::asr::correct::Term]>,
    /// Speech length of the turn being recognised speculatively (ms).
    speech_ms: u64,
    /// The caller's current turn began by interrupting the agent.
    turn_barged: bool,
    console: Option<ConsoleLink>,
    /// An operator has taken the call over: the dialogue engine is paused.
    taken_over: bool,
    /// Lines in the playback queue; the front one is what the caller hears.
    on_air: OnAir,
    /// The line the caller's barge-in cut, until the caller's turn is understood: said
    /// again if that turn turns out to hold no words (a cough, a door).
    interrupted: Option<OnAirLine>,
    /// A speech worker failed, hung or is overloaded: the call goes to the emergency
    /// script (why, for the log and the console).
    fault: Option<String>,
    requests: Sender<CallRequest>,
    /// The transfer to a person in progress (or done), if any.
    transfer: Option<Transfer>,
    transfer_reason: TransferReason,
    /// Attempts of `transfer` already written to the record.
    transfer_logged: usize,
    /// A transfer result to give the dialogue at the next chance (not from inside
    /// [`CallLoop::apply`]).
    deferred_transfer: Option<TransferResult>,
    /// An operator's explicit transfer target for the next transfer.
    operator_target: Option<String>,
    /// The bridged transfer's second leg.
    leg: Option<Leg>,
    /// What the person hears before the legs are joined (`announce_to_agent`).
    whisper_line: Option<String>,
    /// The whisper is being rendered or played to the person: the caller's audio is
    /// not relayed yet.
    whispering: bool,
    /// The state before a turn ended early, while the caller may still go on with it.
    early_turn: Option<EarlyTurn>,
    /// The last applied turn only said lines and recorded fields (it can be taken back).
    last_apply_reversible: bool,
}

/// The second leg of a bridged transfer: its own RTP session.
struct Leg {
    id: String,
    media: MediaSession,
    /// The person answered: audio is relayed between the legs.
    up: bool,
}

/// Runs a call to its end. Blocking: call it on the call's own thread.
pub fn run_call(
    setup: CallSetup,
    media: CallMedia,
    engines: Arc<SpeechEngines>,
    records: RecordWriter,
    signals: Receiver<CallSignal>,
    requests: Sender<CallRequest>,
    console: Option<ConsoleLink>,
) -> Result<CallReport, CallError> {
    let started = Instant::now();
    let conv = Conversation::new(&setup.script, &setup.vars, now_local())?;
    let record_id = setup.record_id;
    let mut resampler = FrameResampler::new(8000, 16000)?;
    let mut turn = TurnDetector::new(&engines.vad, 16000, setup.tuning.endpoint.clone())?;
    let mut barge = BargeInDetector::new(setup.tuning.barge_in);
    let (render_tx, render_rx) = crossbeam_channel::unbounded();
    let (asr_tx, asr_rx) = crossbeam_channel::bounded(8);
    // Barge-in and echo analysis work at 8 kHz whatever the codec (a wideband
    // frame is decimated); the recogniser gets 16 kHz: upsampled G.711, or G.722 as is.
    let mut frame8 = [0.0f32; FRAME_8K];
    let mut sent8 = [0.0f32; FRAME_8K];
    let mut wide16 = [0.0f32; MAX_FRAME_SAMPLES];
    let rate = if media.rate == 16_000 { 16_000 } else { 8000 };
    tracing::info!(rate, "call audio rate");

    let terms = crate::asr::bias::call_terms(conv.script(), &setup.vars);
    let mut lp = CallLoop {
        setup: &setup,
        engines: &engines,
        records: &records,
        record_id,
        conv,
        playback: media.playback.clone(),
        lines: VecDeque::new(),
        playing: None,
        render_tx,
        rate,
        asr_tx,
        asr: None,
        next_job: 1,
        timing: TurnTiming::default(),
        pending_turn: None,
        awaiting_first_rtp: false,
        hangup_after_playback: None,
        goodbye_done_at: None,
        caller_in_speech: false,
        last_activity: Instant::now(),
        report: CallReport {
            call_id: setup.call_id.clone(),
            record_id,
            outcome: Outcome::Failed,
            turns: 0,
            barge_ins: 0,
            latencies: Vec::new(),
        },
        hot_words: Arc::from(Vec::<String>::new()),
        terms: Arc::from(crate::asr::correct::prepare(&terms)),
        speech_ms: 0,
        turn_barged: false,
        console,
        taken_over: false,
        on_air: OnAir::default(),
        interrupted: None,
        fault: None,
        requests: requests.clone(),
        transfer: None,
        transfer_reason: TransferReason::CallerAsked,
        transfer_logged: 0,
        deferred_transfer: None,
        operator_target: None,
        leg: None,
        whisper_line: None,
        whispering: false,
        early_turn: None,
        last_apply_reversible: false,
    };
    // Transfers are possible when a target is configured for this call; otherwise the
    // dialogue promises a callback by a person.
    let after_failures = setup.transfer.as_ref().map_or(
        crate::config::TransferConfig::default().after_failures,
        |p| p.after_failures,
    );
    lp.conv.set_transfer(
        setup.transfer.is_some() && setup.legs.is_some(),
        after_failures,
    );
    let mut leg_rx: Receiver<InboundFrame> = crossbeam_channel::never();
    let mut relaying = false;
    let mut last_sent = [0i16; FRAME_8K];
    let mut recorder = setup.recording.as_deref().and_then(|path| {
        CallRecorder::start(path, rate)
            .map_err(|e| tracing::error!(error = %e, "the call is not recorded"))
            .ok()
    });
    // --- resilience: right after a call lost its speech workers, start in emergency mode ---
    if let Some(why) = setup
        .emergency
        .as_ref()
        .and_then(|e| e.recent_fault(Instant::now()))
    {
        // Not `set_fault`: that would renew the hold, and no call would ever retry.
        tracing::warn!(reason = %why, "starting the call in emergency mode");
        lp.fault = Some(why);
    } else {
        let opening = lp.conv.opening(now_local());
        lp.apply(opening.actions, None, None);
    }
    // The greeting is the turn the callee answers to; its record is written now.
    let mut remote_hangup = false;
    // Echo tail: when the agent's audio stops, the line's echo of it goes on for the
    // echo delay. A turn heard over the agent's own line, or in that tail, is the
    // echo (unless the caller barged in): it is dropped, never recognised.
    let mut was_speaking = false;
    let mut barged = false;
    let mut echo_tail_until: Option<Instant> = None;

    loop {
        if lp.fault.is_some() {
            break;
        }
        select! {
            recv(media.inbound) -> frame => {
                let Ok(frame) = frame else { remote_hangup = true; break };
                // Outbound tap: what was really sent, for echo reference and timing.
                while let Ok(sent) = media.sent.try_recv() {
                    let narrow = sent.samples.narrowband();
                    for (d, s) in sent8.iter_mut().zip(narrow.iter()) {
                        *d = *s as f32 / 32768.0;
                    }
                    barge.on_sent(&sent8);
                    if let Some(r) = recorder.as_mut() {
                        r.on_sent(&sent.samples);
                    }
                    last_sent = narrow;
                    if sent.speech {
                        lp.on_air.sent_frame();
                        // Caller silence counts from the end of the agent's audio.
                        lp.last_activity = sent.at;
                    }
                    if sent.speech && lp.awaiting_first_rtp {
                        lp.awaiting_first_rtp = false;
                        lp.first_reply_sent(sent.at);
                    }
                }
                let narrow = frame.samples.narrowband();
                for (d, s) in frame8.iter_mut().zip(narrow.iter()) {
                    *d = *s as f32 / 32768.0;
                }
                if let Some(r) = recorder.as_mut() {
                    r.on_received(&frame.samples);
                }
                // The console listens at 8 kHz (PCMU to the browser): a wideband call
                // is decimated.
                if let Some(c) = &lp.console {
                    c.publisher.audio(&CallAudioFrame {
                        caller: narrow,
                        agent: last_sent,
                        captured: frame.at,
                    });
                }
                lp.poll_console();
                // Bridged to a person: the caller's audio goes to the person's leg and
                // the agent only listens (recording and console taps above go on).
                if let Some(leg) = lp.leg.as_ref().filter(|l| l.up) {
                    let playback = leg.media.playback();
                    if lp.whispering && lp.whisper_line.is_none() && playback.is_empty() {
                        lp.whispering = false;
                    }
                    if !lp.whispering {
                        let _ = playback.push(&frame.samples);
                    }
                    lp.check_timers(started);
                    if lp.finished() {
                        break;
                    }
                    continue;
                }
                // Barge-in first: the flush must reach the pacer before the next tick,
                // so it does not wait for the VAD and resampler below.
                lp.feed_playback();
                let speaking = lp.agent_speaking();
                let verdict = barge.on_received(&frame8, speaking);
                if verdict == FrameVerdict::BargeIn && !lp.taken_over {
                    // Speech right after a turn ended early is that turn going on.
                    if lp.continue_turn(frame.at) {
                        turn.reopen_held();
                        barge.reset();
                        barged = true;
                    } else if lp.barge_in(frame.at) {
                        barge.reset();
                        barged = true;
                    }
                }
                if speaking && !was_speaking {
                    barged = false;
                }
                if was_speaking && !speaking && !barged {
                    let delay = barge.echo_delay_ms().unwrap_or(0.0).max(0.0) as u64;
                    echo_tail_until =
                        Some(frame.at + Duration::from_millis(delay + ECHO_TAIL_MARGIN_MS));
                    turn.drop_turn();
                }
                was_speaking = speaking;
                if !speaking {
                    barge.reset();
                }
                let frame16: &[f32] = if frame.samples.is_wideband() {
                    // G.722: already 16 kHz, no upsampling.
                    for (d, s) in wide16.iter_mut().zip(frame.samples.samples()) {
                        *d = *s as f32 / 32768.0;
                    }
                    &wide16
                } else {
                    resampler.process_i16(frame.samples.samples())?
                };
                let mut event = turn.push_frame(frame16)?;
                if echo_tail_until.is_some_and(|t| frame.at < t) {
                    if turn.endpointer().in_speech() {
                        turn.drop_turn();
                    }
                    event = None;
                } else {
                    echo_tail_until = None;
                }
                if let Some(ev) = event {
                    // While the agent talks, only a confirmed barge-in opens a turn: the
                    // endpointer otherwise reacts to the agent's own echo.
                    if !speaking || (lp.playing.is_none() && lp.on_air.current().is_none()) {
                        let starts = matches!(ev, EndpointEvent::SpeechStart { .. });
                        if starts && lp.continue_turn(frame.at) {
                            turn.reopen_held();
                        } else {
                            lp.on_endpoint(ev, frame.at, &turn);
                        }
                    } else if matches!(ev, EndpointEvent::SpeechEnd { .. }) {
                        turn.drop_turn();
                    }
                }
                if lp.try_early_commit(frame.at) {
                    turn.end_turn_early();
                }
                if !lp.early_turn_open(frame.at) {
                    turn.release_held();
                }
                lp.check_timers(started);
                if lp.finished() {
                    break;
                }
            }
            recv(asr_rx) -> outcome => {
                if let Ok(outcome) = outcome {
                    lp.on_asr(outcome);
                    // Decide at once rather than at the next frame: the reply then
                    // reaches the pacer before its next tick.
                    if lp.try_early_commit(Instant::now()) {
                        turn.end_turn_early();
                    }
                }
            }
            recv(render_rx) -> rendered => {
                if let Ok((text, result)) = rendered {
                    lp.on_rendered(&text, result);
                }
            }
            recv(media.dtmf) -> digit => {
                if let Ok(d) = digit {
                    tracing::info!(digit = %d.digit, "DTMF received");
                    lp.last_activity = Instant::now();
                }
            }
            recv(leg_rx) -> frame => {
                match frame {
                    // The person's voice to the caller; a queue already 200 ms deep
                    // drops the frame rather than let the delay grow.
                    Ok(f) => {
                        if lp.playback.len() < 10 {
                            let _ = lp.playback.push(&f.samples);
                        }
                    }
                    Err(_) => leg_rx = crossbeam_channel::never(),
                }
            }
            recv(signals) -> sig => {
                match sig {
                    Ok(CallSignal::RemoteHangup) | Err(_) => { remote_hangup = true; break; }
                    Ok(CallSignal::Transfer(ts)) => {
                        lp.on_transfer_signal(ts);
                        if lp.finished() {
                            break;
                        }
                    }
                }
            }
            default(Duration::from_millis(200)) => {
                // No media for 200 ms: the session stalled or the peer stopped sending.
                lp.check_timers(started);
                if lp.finished() {
                    break;
                }
            }
        }
        lp.drive_transfer(Instant::now());
        // The person's leg joined or left: relay its audio, or stop.
        let up = lp.leg.as_ref().is_some_and(|l| l.up);
        if up != relaying {
            relaying = up;
            leg_rx = match lp.leg.as_ref().filter(|l| l.up) {
                Some(l) => l.media.inbound(),
                None => crossbeam_channel::never(),
            };
        }
        if lp.finished() {
            break;
        }
    }
    lp.end_transfer();

    lp.flush_pending_turn();
    // --- resilience: a failed speech worker hands the call to the emergency script ---
    if let (Some(reason), Some(em), false) =
        (lp.fault.take(), setup.emergency.clone(), remote_hangup)
    {
        if let Some(a) = &lp.asr {
            a.cancel.cancel();
        }
        let end = super::emergency::run(
            &em,
            super::emergency::EmergencyCall {
                call_id: &setup.call_id,
                peer: &setup.peer,
                record_id,
                reason: &reason,
            },
            &media,
            &records,
            &signals,
            lp.console.as_ref(),
        );
        super::emergency::finish(&setup, &end, &records, &requests, lp.console.take());
        lp.report.outcome = end.outcome;
        return Ok(lp.report);
    }
    // --- end resilience ---
    let outcome = if remote_hangup {
        lp.conv
            .on_hangup(now_local())
            .unwrap_or(Outcome::NoResponse)
    } else {
        let _ = requests.send(CallRequest::Hangup {
            call_id: setup.call_id.clone(),
        });
        lp.hangup_after_playback
            .or_else(|| lp.conv.outcome())
            .unwrap_or(Outcome::Completed)
    };
    if let Some(a) = &lp.asr {
        a.cancel.cancel();
    }
    let recording = recorder.and_then(|r| {
        let dropped = r.dropped();
        match r.finish() {
            Ok((path, frames)) => {
                tracing::info!(path = %path.display(), frames, dropped, "call recorded");
                Some(path)
            }
            Err(e) => {
                tracing::error!(error = %e, "the call recording is incomplete");
                None
            }
        }
    });
    if let Some(id) = record_id {
        if let Some(path) = &recording {
            records.set_recording(id, path);
        }
        records.end_call(id, outcome.as_str(), &now_local().to_rfc3339());
    }
    if let Some(c) = lp.console.take() {
        c.publisher.end(CallEnd {
            outcome: outcome.as_str().to_string(),
            fields: lp.conv.fields().clone(),
            recording: recording.clone(),
        });
    }
    lp.report.outcome = outcome;
    Ok(lp.report)
}

impl CallLoop<'_> {
    /// Applies operator requests and, during a take-over, sends the operator's voice.
    fn poll_console(&mut self) {
        let mut op_transfer = None;
        let mut op_take_over = None;
        let Some(c) = self.console.as_mut() else {
            return;
        };
        while let Ok(action) = c.control.actions.try_recv() {
            match action {
                OperatorAction::Listen { operator } => {
                    tracing::info!(%operator, "operator listening")
                }
                OperatorAction::TakeOver { operator } => {
                    tracing::info!(%operator, "operator took the call over");
                    self.taken_over = true;
                    // Inline: `c` borrows the console, so no `&mut self` helper here.
                    self.playback.flush();
                    self.playing = None;
                    self.on_air.flushed();
                    self.lines.clear();
                    while c.control.operator_audio.try_recv().is_ok() {}
                    let note = format!("（{operator} 接管通话 / took over）");
                    c.publisher
                        .transcript(TranscriptLine::new(Speaker::Operator, note.clone()));
                    record_line(self.records, self.record_id, "operator", note, None);
                    op_take_over = Some(operator);
                }
                OperatorAction::HandBack { operator } => {
                    tracing::info!(%operator, "operator handed the call back");
                    self.taken_over = false;
                    self.last_activity = Instant::now();
                    if self.conv.is_ended() && self.hangup_after_playback.is_none() {
                        // Nothing is left for the agent to say (e.g. the operator took
                        // the call from a transfer): handing back ends the call.
                        tracing::info!("the dialogue had ended; the call ends with the hand back");
                        self.hangup_after_playback =
                            Some(self.conv.outcome().unwrap_or(Outcome::OperatorEnded));
                    }
                    let note = format!("（{operator} 交回智能客服 / handed back）");
                    c.publisher
                        .transcript(TranscriptLine::new(Speaker::Operator, note.clone()));
                    record_line(self.records, self.record_id, "operator", note, None);
                }
                OperatorAction::Transfer { operator, target } => {
                    tracing::info!(%operator, ?target, "operator transfers the call to a person");
                    let note = format!(
                        "（{operator} 转接人工 / transfer{}）",
                        target
                            .as_deref()
                            .map(|t| format!(" → {t}"))
                            .unwrap_or_default()
                    );
                    c.publisher
                        .transcript(TranscriptLine::new(Speaker::Operator, note.clone()));
                    record_line(self.records, self.record_id, "operator", note, None);
                    op_transfer = Some(target);
                }
                OperatorAction::HangUp { operator } => {
                    tracing::info!(%operator, "operator hung up the call");
                    let note = format!("（{operator} 挂断通话 / hung up）");
                    c.publisher
                        .transcript(TranscriptLine::new(Speaker::Operator, note.clone()));
                    record_line(self.records, self.record_id, "operator", note, None);
                    // Inline: `c` borrows the console, so no `&mut self` helper here.
                    self.playback.flush();
                    self.playing = None;
                    self.on_air.flushed();
                    self.lines.clear();
                    self.hangup_after_playback =
                        Some(self.conv.outcome().unwrap_or(Outcome::OperatorEnded));
                }
            }
        }
        if self.taken_over {
            while let Ok(frame) = c.control.operator_audio.try_recv() {
                if self.playback.push(&frame).is_err() {
                    break;
                }
            }
        }
        if let Some(operator) = op_take_over {
            self.take_over_transfer(&operator);
        }
        if let Some(target) = op_transfer {
            self.operator_target = target;
            self.taken_over = false;
            let result = self.conv.operator_transfer(now_local());
            self.apply(result.actions, None, Some("transfer".into()));
        }
    }

    // ---- transfer to a person ----

    /// The dialogue asked for a person: say the announce line, then transfer.
    fn start_transfer(&mut self, reason: TransferReason, request: String) {
        let policy = match (self.operator_target.take(), self.setup.transfer.clone()) {
            (Some(target), Some(p)) => Some(TransferPolicy { target, ..p }),
            (Some(target), None) => {
                let d = crate::config::TransferConfig::default();
                Some(TransferPolicy {
                    target,
                    method: d.method,
                    announce: d.announce,
                    timeout: Duration::from_secs(d.timeout_secs),
                    after_failures: d.after_failures,
                    announce_to_agent: false,
                })
            }
            (None, p) => p,
        };
        let Some(policy) = policy.filter(|_| self.setup.legs.is_some()) else {
            tracing::warn!(
                reason = reason.as_str(),
                "transfer requested but this call has no transfer target; a person will call back"
            );
            self.deferred_transfer = Some(TransferResult::Failed {
                why: "no transfer target is configured for this call".into(),
            });
            return;
        };
        let summary = xfer::summary(
            reason.as_str(),
            &self.setup.peer,
            &request,
            self.conv.fields(),
        );
        tracing::info!(
            reason = reason.as_str(),
            target = %policy.target,
            method = policy.method.as_str(),
            %summary,
            "transferring the call to a person"
        );
        self.say(policy.announce.clone(), false);
        self.whisper_line = policy.announce_to_agent.then(|| {
            let asked = request.trim();
            if asked.is_empty() {
                "您好，有一位客户转接过来，请接听。".to_string()
            } else {
                format!("您好，有一位客户转接过来，客户说：{asked}。")
            }
        });
        self.transfer_reason = reason;
        self.transfer_logged = 0;
        // The first attempt starts from the loop (`drive_transfer`), not from here
        // inside `apply`.
        self.transfer = Some(Transfer::new(policy, summary, Instant::now()));
        self.publish_transfer("announcing");
    }

    /// An operator took the call over while it was being handed to a person: the
    /// operator is the person now. A ringing or bridged second leg is released and
    /// the record says who took it.
    fn take_over_transfer(&mut self, operator: &str) {
        let now = Instant::now();
        let Some(out) = self
            .transfer
            .as_mut()
            .and_then(|t| t.take_over(operator, now))
        else {
            return;
        };
        for o in out {
            if o == xfer::Output::HangupLeg {
                if let Some(leg) = self.leg.take() {
                    let _ = self.requests.send(CallRequest::Hangup { call_id: leg.id });
                    leg.media.stop();
                }
            }
        }
        self.whispering = false;
        self.whisper_line = None;
        tracing::info!(%operator, "an operator took over the transfer; the person's leg is released");
        self.log_transfer_attempts();
        let r = self.conv.on_transfer_result(
            now_local(),
            TransferResult::Connected {
                target: format!("operator {operator}"),
            },
        );
        self.apply(r.actions, None, Some("transfer".into()));
        self.publish_transfer("taken_over");
    }

    /// Shows the transfer's state on the console's card.
    fn publish_transfer(&self, state: &str) {
        let (Some(t), Some(c)) = (&self.transfer, &self.console) else {
            return;
        };
        c.publisher.transfer(crate::console::hub::TransferView {
            target: t.policy().target.clone(),
            method: t.method().as_str().to_string(),
            state: state.to_string(),
            summary: t.summary().to_string(),
        });
    }

    /// Starts the first attempt once the announce line was heard; runs time-outs.
    fn drive_transfer(&mut self, now: Instant) {
        if let Some(result) = self.deferred_transfer.take() {
            let r = self.conv.on_transfer_result(now_local(), result);
            self.apply(r.actions, None, Some("transfer".into()));
        }
        let speaking = self.agent_speaking();
        let Some(t) = self.transfer.as_mut() else {
            return;
        };
        let mut out = t.start(now);
        if t.announcing() && !speaking {
            out.extend(t.announced(now));
        }
        out.extend(t.on_tick(now));
        self.run_transfer(out, now);
    }

    fn on_transfer_signal(&mut self, signal: TransferSignal) {
        let now = Instant::now();
        let Some(t) = self.transfer.as_mut() else {
            tracing::debug!(?signal, "transfer signal without a transfer; ignored");
            return;
        };
        let out = match signal {
            TransferSignal::Refer(status) => {
                let out = t.on_refer(status, now);
                if matches!(status, ReferStatus::Progress(180..=183)) {
                    tracing::info!(
                        ring_ms = t.ring_delay().map(|d| d.as_millis() as u64),
                        "the person's phone rings (REFER)"
                    );
                    self.publish_transfer("ringing");
                }
                out
            }
            TransferSignal::LegRinging => {
                t.on_leg_ringing(now);
                tracing::info!(
                    ring_ms = t.ring_delay().map(|d| d.as_millis() as u64),
                    "the person's phone rings (bridge)"
                );
                self.publish_transfer("ringing");
                Vec::new()
            }
            TransferSignal::LegAnswered(neg, srtp) => {
                if let Some(leg) = &self.leg {
                    // An SRTP-only agent (`srtp = "required"`) offers the person SRTP too.
                    if let Some(keys) = &srtp {
                        if let Err(e) = leg.media.set_srtp(keys) {
                            tracing::error!(error = %e, "cannot switch the person's leg to SRTP");
                        }
                    }
                    leg.media.set_codec(neg.codec, neg.telephone_event_pt);
                    if let Some(addr) = neg.remote.rtp_addr {
                        leg.media.set_remote(addr, None);
                    }
                }
                t.on_leg_answered(now)
            }
            TransferSignal::LegEnded(reason) => {
                let was_up = self.leg.as_ref().is_some_and(|l| l.up);
                if let Some(leg) = self.leg.take() {
                    leg.media.stop();
                }
                if was_up {
                    tracing::info!(?reason, "the person hung up; ending the call");
                    self.playback.flush();
                    self.hangup_after_playback = Some(Outcome::Transferred);
                    Vec::new()
                } else {
                    t.on_leg_ended(&reason, now)
                }
            }
        };
        self.run_transfer(out, now);
    }

    fn run_transfer(&mut self, out: Vec<xfer::Output>, now: Instant) {
        for o in out {
            match o {
                xfer::Output::Refer { target } => {
                    let _ = self.requests.send(CallRequest::Refer {
                        call_id: self.setup.call_id.clone(),
                        target,
                    });
                    self.publish_transfer("transferring");
                }
                xfer::Output::Dial {
                    target,
                    headers,
                    ring_timeout,
                } => {
                    self.log_transfer_attempts();
                    match self.open_leg() {
                        Ok((leg_id, rtp)) => {
                            let _ = self.requests.send(CallRequest::Dial {
                                call_id: self.setup.call_id.clone(),
                                leg_id,
                                target,
                                rtp,
                                headers,
                                ring_timeout,
                            });
                            self.publish_transfer("dialing");
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "no media port for the transfer leg");
                            let more = self
                                .transfer
                                .as_mut()
                                .map(|t| t.on_leg_ended(&EndReason::Failed(503), now))
                                .unwrap_or_default();
                            self.run_transfer(more, now);
                        }
                    }
                }
                xfer::Output::HangupLeg => {
                    if let Some(leg) = self.leg.take() {
                        let _ = self.requests.send(CallRequest::Hangup { call_id: leg.id });
                        leg.media.stop();
                    }
                }
                xfer::Output::Connected { target, bridge } => {
                    self.log_transfer_attempts();
                    tracing::info!(%target, bridge, "the call is with a person");
                    self.stop_speaking();
                    if let Some(c) = &self.console {
                        let note = format!("（已转接人工 {target} / transferred）");
                        c.publisher
                            .transcript(TranscriptLine::new(Speaker::Agent, note));
                    }
                    let r = self
                        .conv
                        .on_transfer_result(now_local(), TransferResult::Connected { target });
                    self.apply(r.actions, None, Some("transfer".into()));
                    if bridge {
                        if let Some(l) = self.leg.as_mut() {
                            l.up = true;
                        }
                        // The person hears who is coming before the caller is joined.
                        if let Some(line) = &self.whisper_line {
                            match self
                                .engines
                                .render_async(line, self.rate, self.render_tx.clone())
                            {
                                Ok(()) => self.whispering = true,
                                Err(e) => {
                                    tracing::warn!(error = %e, "no whisper for the person");
                                    self.whisper_line = None;
                                }
                            }
                        }
                        self.publish_transfer("bridged");
                    } else {
                        self.publish_transfer("connected");
                        self.hangup_after_playback = Some(Outcome::Transferred);
                    }
                }
                xfer::Output::Failed { why } => {
                    self.log_transfer_attempts();
                    let state = self
                        .transfer
                        .as_ref()
                        .and_then(|t| t.attempts().last())
                        .map_or("failed", |a| a.result.as_str());
                    self.publish_transfer(state);
                    tracing::info!(%why, "the transfer failed; a person will call back");
                    if let Some(leg) = self.leg.take() {
                        leg.media.stop();
                    }
                    let r = self
                        .conv
                        .on_transfer_result(now_local(), TransferResult::Failed { why });
                    self.apply(r.actions, None, Some("transfer".into()));
                }
            }
        }
    }

    /// Opens the second leg's RTP session; returns its Call-ID and RTP address.
    fn open_leg(&mut self) -> Result<(String, std::net::SocketAddr), CallError> {
        let legs = self
            .setup
            .legs
            .as_ref()
            .ok_or_else(|| CallError::Thread("no SIP side for a second leg".into()))?;
        // The leg offers G.722 first like any call; if the person's phone answers with
        // another codec than the caller's, the relayed frames are converted (8 ↔ 16 kHz)
        // by each leg's media thread before they are encoded.
        let cfg = MediaConfig::new(legs.local_ip, None, crate::codec::AudioCodec::Pcmu);
        let media = MediaSession::start(&legs.ports, cfg)?;
        let rtp = media.local_rtp();
        let id = crate::sip::new_call_id();
        self.leg = Some(Leg {
            id: id.clone(),
            media,
            up: false,
        });
        Ok((id, rtp))
    }

    /// Writes attempts not yet in the record (and counts them on `/metrics`).
    fn log_transfer_attempts(&mut self) {
        let Some(t) = &self.transfer else {
            return;
        };
        for a in &t.attempts()[self.transfer_logged..] {
            let row = crate::store::TransferRow {
                at: now_local().to_rfc3339(),
                reason: self.transfer_reason.as_str().to_string(),
                method: a.method.to_string(),
                target: a.target.clone(),
                result: a.result.as_str().to_string(),
                code: a.code,
                ring_ms: a.ring_ms,
                answer_ms: a.answer_ms,
                summary: t.summary().to_string(),
            };
            tracing::info!(
                method = a.method,
                result = a.result.as_str(),
                code = ?a.code,
                ring_ms = ?a.ring_ms,
                answer_ms = ?a.answer_ms,
                "transfer attempt"
            );
            if let Some(c) = &self.console {
                c.publisher.transfer_attempt(row.clone());
            }
            if let Some(id) = self.record_id {
                self.records
                    .apply("storing the transfer attempt", move |s| {
                        s.add_transfer(id, &row)
                    });
            }
        }
        self.transfer_logged = t.attempts().len();
    }

    /// The call ends: a ringing or bridged second leg is hung up with it.
    fn end_transfer(&mut self) {
        let now = Instant::now();
        let out = self
            .transfer
            .as_mut()
            .map(|t| t.abandon(now))
            .unwrap_or_default();
        for o in out {
            if o == xfer::Output::HangupLeg {
                if let Some(leg) = self.leg.take() {
                    let _ = self.requests.send(CallRequest::Hangup { call_id: leg.id });
                    leg.media.stop();
                }
            }
        }
        if let Some(leg) = self.leg.take() {
            let _ = self.requests.send(CallRequest::Hangup { call_id: leg.id });
            leg.media.stop();
        }
        self.log_transfer_attempts();
    }

    fn agent_speaking(&self) -> bool {
        self.playing.is_some() || !self.lines.is_empty() || !self.playback.is_empty()
    }

    fn finished(&mut self) -> bool {
        if self.hangup_after_playback.is_none() || self.agent_speaking() {
            self.goodbye_done_at = None;
            return false;
        }
        if !self.conv.listens_after_goodbye() || self.taken_over || self.leg.is_some() {
            return true;
        }
        // The caller may still say one thing: wait while they speak or the
        // recogniser works on it, then a moment of quiet.
        let now = Instant::now();
        let done = *self.goodbye_done_at.get_or_insert(now);
        let quiet_from = done.max(self.last_activity);
        let busy = self.caller_in_speech || self.asr.is_some();
        now.saturating_duration_since(done) >= LISTEN_AFTER_GOODBYE_MAX
            || (!busy && now.saturating_duration_since(quiet_from) >= LISTEN_AFTER_GOODBYE)
    }

    /// Applies the dialogue's actions; `caller` is the utterance that caused them.
    fn apply(&mut self, actions: Vec<Action>, caller: Option<(&str, f32)>, intent: Option<String>) {
        // Whatever turn was ended early stands now.
        self.early_turn = None;
        self.last_apply_reversible = caller.is_some()
            && actions
                .iter()
                .all(|a| matches!(a, Action::Say { .. } | Action::RecordField { .. }));
        let mut write = crate::store::TurnWrite {
            at: now_local().to_rfc3339(),
            ..Default::default()
        };
        if let Some((text, confidence)) = caller {
            write.lines.push(crate::store::TurnLine {
                speaker: "callee".into(),
                text: text.to_string(),
                asr_confidence: Some(confidence as f64),
                intent: intent.clone(),
                ..Default::default()
            });
        }
        for action in actions {
            match action {
                Action::Say {
                    text,
                    step,
                    interruptible,
                    ..
                } => {
                    write.lines.push(crate::store::TurnLine {
                        speaker: "agent".into(),
                        text: text.clone(),
                        step: step.clone(),
                        interruptible,
                        ..Default::default()
                    });
                    self.say(text, interruptible);
                }
                Action::RecordField { key, value } => write.fields.push((key, value)),
                // A callback by a person is for people to make (it stays in the
                // record's fields); only the agent's own callbacks go to its dialler.
                Action::ScheduleCallback {
                    at,
                    by_person: false,
                    ..
                } => write.callback_due = Some(at.to_rfc3339()),
                Action::ScheduleCallback { at, reason, .. } => {
                    let reason = reason.unwrap_or_else(|| "the caller asked for a person".into());
                    tracing::info!(due = %at, %reason, "callback by a person stored");
                    if let Some(id) = self.record_id {
                        let (due, created) = (at.to_rfc3339(), now_local().to_rfc3339());
                        self.records
                            .apply("storing the callback for a person", move |s| {
                                s.add_person_callback(id, &due, &reason, &created)
                                    .map(|_| ())
                            });
                    }
                }
                Action::Transfer { reason, request } => self.start_transfer(reason, request),
                Action::HangUp { outcome } => self.hangup_after_playback = Some(outcome),
            }
        }
        write.steps = self.conv.step_path().to_vec();
        if let Some(c) = &self.console {
            for line in &write.lines {
                let speaker = if line.speaker == "agent" {
                    Speaker::Agent
                } else {
                    Speaker::Caller
                };
                let mut t = TranscriptLine::new(speaker, line.text.clone());
                if let Some(i) = &line.intent {
                    t = t.with_intent(i.clone());
                }
                if speaker == Speaker::Caller {
                    for (k, v) in &write.fields {
                        t = t.with_field(k.clone(), v.clone());
                    }
                }
                c.publisher.transcript(t);
            }
            c.publisher.step(&self.conv.current_step());
        }
        self.timing.t_reply_chosen = Some(Instant::now());
        // The next turn answers what the agent just asked: bias the decoder to it.
        self.hot_words = Arc::from(crate::asr::bias::hot_words(
            self.conv.script(),
            self.conv.expecting(),
            &self.setup.vars,
        ));
        self.awaiting_first_rtp = write.lines.iter().any(|l| l.speaker == "agent");
        self.flush_pending_turn();
        self.pending_turn = Some(PendingTurn {
            write,
            timing: self.timing,
        });
        if !self.awaiting_first_rtp {
            self.flush_pending_turn();
        }
        self.report.turns += 1;
    }

    fn say(&mut self, text: String, interruptible: bool) {
        let audio = self.engines.ready_line_at(&text, self.rate);
        if audio.is_some() {
            self.lines.push_back(QueuedLine {
                text,
                interruptible,
                audio,
            });
        } else {
            // A line that was not synthesized in advance (it names a collected
            // value or a time): render its first clause on its own, so the caller
            // hears it after that clause's synthesis rather than the whole line's.
            for piece in first_clause_split(&text) {
                if let Err(e) = self
                    .engines
                    .render_async(&piece, self.rate, self.render_tx.clone())
                {
                    tracing::error!(error = %e, "cannot render a line");
                }
                self.lines.push_back(QueuedLine {
                    text: piece,
                    interruptible,
                    audio: None,
                });
            }
        }
        self.feed_playback();
    }

    fn on_rendered(&mut self, text: &str, result: Result<LineAudio, CallError>) {
        if self.whispering && self.whisper_line.as_deref() == Some(text) {
            self.whisper_line = None;
            match (result, &self.leg) {
                (Ok(audio), Some(leg)) => {
                    let playback = leg.media.playback();
                    for chunk in audio.chunks_exact(self.frame_len()) {
                        let Some(frame) = PcmFrame::from_samples(chunk) else {
                            break;
                        };
                        if playback.push(&frame).is_err() {
                            break;
                        }
                    }
                }
                (Err(e), _) => tracing::warn!(error = %e, "the whisper could not be rendered"),
                _ => {}
            }
            return;
        }
        match result {
            Ok(audio) => {
                for l in self
                    .lines
                    .iter_mut()
                    .filter(|l| l.text == text && l.audio.is_none())
                {
                    l.audio = Some(audio.clone());
                }
            }
            Err(e) => {
                tracing::error!(line = text, error = %e, "TTS failed; the line is skipped");
                self.lines.retain(|l| l.text != text || l.audio.is_some());
                self.set_fault(format!("TTS failed: {e}"));
            }
        }
        self.feed_playback();
    }

    /// Samples of a 20 ms frame at the call's rate.
    fn frame_len(&self) -> usize {
        self.rate as usize / 50
    }

    /// Moves audio into the playback queue as far as it has room; never blocks.
    fn feed_playback(&mut self) {
        loop {
            if self.playing.is_none() {
                match self.lines.front() {
                    Some(l) if l.audio.is_some() => {
                        if let Some(l) = self.lines.pop_front() {
                            if let Some(audio) = l.audio {
                                self.on_air.queued(
                                    &l.text,
                                    l.interruptible,
                                    audio.len() / self.frame_len(),
                                );
                                self.playing = Some(Playing {
                                    text: l.text,
                                    interruptible: l.interruptible,
                                    audio,
                                    next_frame: 0,
                                });
                            }
                        }
                    }
                    _ => return,
                }
            }
            let Some(p) = self.playing.as_mut() else {
                return;
            };
            let n = if self.rate == 16_000 { 320 } else { FRAME_8K };
            let frames = p.audio.len() / n;
            while p.next_frame < frames {
                let start = p.next_frame * n;
                let Some(frame) = PcmFrame::from_samples(&p.audio[start..start + n]) else {
                    break;
                };
                if self.playback.push(&frame).is_err() {
                    return;
                }
                p.next_frame += 1;
            }
            self.playing = None;
            self.last_activity = Instant::now();
        }
    }

    /// Silences the agent at once: the playback queue, the line being fed and the lines
    /// queued behind it. Returns the line that was on the wire, if any.
    fn stop_speaking(&mut self) -> Option<OnAirLine> {
        self.playback.flush();
        self.playing = None;
        let cut = self.on_air.flushed();
        self.lines.clear();
        cut
    }

    /// Whether the caller may cut what the agent is saying.
    fn interruptible(&self) -> bool {
        // The line on the wire decides; the one being fed only when none is out yet.
        match self.on_air.current() {
            Some(l) => l.interruptible,
            None => self.playing.as_ref().is_none_or(|p| p.interruptible),
        }
    }

    /// Stops the agent's line for a caller who started talking. Returns false when the
    /// line may not be interrupted.
    fn barge_in(&mut self, at: Instant) -> bool {
        if !self.interruptible() {
            return false;
        }
        self.playback.flush();
        let fed = self.playing.take();
        let cut = self.on_air.flushed();
        match &cut {
            Some(l) => tracing::info!(
                line = %l.text,
                heard_ms = l.sent * 20,
                line_ms = l.frames * 20,
                "caller barged in; playback stopped"
            ),
            None => tracing::info!(
                line = fed.as_ref().map_or("", |p| p.text.as_str()),
                "caller barged in; playback stopped"
            ),
        }
        if let (Some(id), Some(l)) = (self.record_id, &cut) {
            self.flush_pending_turn();
            self.records.mark_interrupted(id, &l.text);
        }
        self.interrupted = cut;
        // Lines queued behind the interrupted one are dropped too: the caller's
        // new turn decides what comes next.
        self.lines.clear();
        self.report.barge_ins += 1;
        self.turn_barged = true;
        self.last_activity = at;
        true
    }

    fn on_endpoint(&mut self, ev: EndpointEvent, at: Instant, turn: &TurnDetector) {
        self.last_activity = at;
        match ev {
            EndpointEvent::SpeechStart { .. } => {
                self.caller_in_speech = true;
                self.flush_pending_turn();
                self.timing = TurnTiming::default();
            }
            EndpointEvent::TentativeEnd {
                start_ms,
                speech_end_ms,
                at_ms,
            } => {
                let lag = Duration::from_millis(at_ms.saturating_sub(speech_end_ms));
                let speech_end_at = at.checked_sub(lag).unwrap_or(at);
                self.speech_ms = speech_end_ms.saturating_sub(start_ms);
                self.submit(turn.turn_audio(), speech_end_ms, false, speech_end_at);
            }
            EndpointEvent::SpeechResumed { .. } => {
                self.caller_in_speech = true;
                if let Some(a) = self.asr.take() {
                    a.cancel.cancel();
                }
            }
            EndpointEvent::SpeechEnd {
                speech_end_ms,
                at_ms,
                ..
            } => {
                self.caller_in_speech = false;
                let lag = Duration::from_millis(at_ms.saturating_sub(speech_end_ms));
                self.timing.t_speech_end = Some(at.checked_sub(lag).unwrap_or(at));
                self.timing.t_endpoint = Some(at);
                let reuse = matches!(&self.asr, Some(a) if a.speech_end_ms == speech_end_ms);
                if reuse {
                    let ready = self.asr.as_mut().and_then(|a| {
                        a.final_ = true;
                        a.result.take()
                    });
                    if let Some(outcome) = ready {
                        self.on_final(outcome);
                    }
                } else {
                    if let Some(a) = self.asr.take() {
                        a.cancel.cancel();
                    }
                    let speech_end_at = self.timing.t_speech_end.unwrap_or(at);
                    self.submit(turn.turn_audio(), speech_end_ms, true, speech_end_at);
                }
            }
        }
    }

    fn submit(&mut self, audio: &[f32], speech_end_ms: u64, final_: bool, speech_end_at: Instant) {
        if audio.is_empty() {
            return;
        }
        if let Some(a) = self.asr.take() {
            a.cancel.cancel();
        }
        let id = self.next_job;
        self.next_job += 1;
        let job = AsrJob {
            id,
            samples: audio.to_vec(),
            hot_words: self.hot_words.clone(),
            terms: self.terms.clone(),
        };
        match self.engines.asr.submit_with(job, self.asr_tx.clone()) {
            Ok(cancel) => {
                self.asr = Some(AsrInFlight {
                    id,
                    speech_end_ms,
                    cancel,
                    result: None,
                    finished: Finished::No,
                    final_,
                    speech_end_at,
                    submitted: Instant::now(),
                })
            }
            Err(e) => {
                tracing::error!(error = %e, "ASR queue refused the turn");
                self.set_fault(format!("ASR refused the turn: {e}"));
            }
        }
    }

    fn on_asr(&mut self, outcome: AsrOutcome) {
        self.check_asr_outcome(&outcome);
        let Some(a) = self.asr.as_mut() else { return };
        if a.id != outcome.id || outcome.cancelled() {
            return;
        }
        if a.final_ {
            self.asr = None;
            self.on_final(outcome);
        } else {
            a.finished = match &outcome.result {
                Ok(t) => crate::dialogue::turn_end::judge(&t.text, self.speech_ms),
                Err(_) => Finished::No,
            };
            if let Ok(t) = &outcome.result {
                tracing::debug!(
                    text = %t.text,
                    finished = ?a.finished,
                    rescued = t.rescued,
                    infer_ms = outcome.infer_ms as u64,
                    queue_ms = outcome.queue_ms as u64,
                    "speculative transcript"
                );
            }
            a.result = Some(outcome);
        }
    }

    fn on_final(&mut self, outcome: AsrOutcome) {
        self.asr = None;
        self.turn_barged = false;
        self.timing.t_asr_done = Some(Instant::now());
        self.timing.asr_queue_wait = Some(Duration::from_secs_f64(outcome.queue_ms / 1000.0));
        let transcript = match outcome.result {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "recognition failed");
                return;
            }
        };
        let text = transcript.text.trim().to_string();
        if text.is_empty() {
            tracing::info!(
                rejected = ?transcript.rejected,
                audio_ms = transcript.audio_ms,
                "caller turn recognised as no words"
            );
            // A barge-in on a noise: the caller missed the rest of the line; say it again.
            if let Some(l) = self.interrupted.take() {
                if !self.taken_over && !self.agent_speaking() {
                    tracing::info!(line = %l.text, "resuming the line a noise interrupted");
                    self.say(l.text, l.interruptible);
                }
                return;
            }
            // The caller said something (the gates heard speech) that Whisper could not
            // make out even with the short-answer prompt: ask at once rather than wait
            // out the silence timer with the caller waiting for an answer.
            let voiced = transcript.rejected.is_some_and(|r| r.was_voiced());
            if voiced
                && !self.taken_over
                && !self.agent_speaking()
                && self.conv.expecting() != crate::dialogue::engine::Expecting::Nothing
            {
                tracing::info!("a voiced turn gave no words; asking the caller to repeat");
                self.apply(
                    vec![Action::Say {
                        text: ASK_REPEAT.to_string(),
                        step: None,
                        interruptible: true,
                        fixed: true,
                    }],
                    // An empty caller line: the record (and the turn's timing) shows
                    // a turn that was heard but not understood.
                    Some(("", 0.0)),
                    Some("repeat".into()),
                );
            }
            return;
        }
        self.interrupted = None;
        let kept: Vec<_> = transcript.segments.iter().filter(|s| !s.dropped).collect();
        let confidence = if kept.is_empty() {
            0.0
        } else {
            (kept.iter().map(|s| s.avg_logprob).sum::<f32>() / kept.len() as f32).exp()
        };
        tracing::info!(text = %text, confidence, "caller said");
        if self.taken_over {
            // The operator is talking with the caller: show what was said, keep the
            // script paused.
            if let Some(c) = &self.console {
                c.publisher
                    .transcript(TranscriptLine::new(Speaker::Caller, text.clone()));
            }
            record_line(
                self.records,
                self.record_id,
                "callee",
                text,
                Some(confidence as f64),
            );
            return;
        }
        let result = self.conv.on_utterance(&text, confidence, now_local());
        let intent = format!("{:?}", result.intent);
        self.apply(result.actions, Some((&text, confidence)), Some(intent));
    }

    /// The caller started speaking again at `at` right after a turn ended early: that
    /// turn goes on ([`super::continuation`]). The conversation goes back to before it,
    /// its reply stops and its record is dropped; the caller's loop then reopens the
    /// turn's audio so the words so far and the rest are recognised together.
    fn continue_turn(&mut self, at: Instant) -> bool {
        let goes_on = self.early_turn.as_ref().is_some_and(|e| e.continues(at))
            && !self.taken_over
            && (!self.agent_speaking() || self.interruptible());
        if !goes_on {
            return false;
        }
        let Some(early) = self.early_turn.take() else {
            return false;
        };
        let after_ms = early.after_ms(at);
        let back = early.into_before();
        self.conv = back.conv;
        self.hot_words = back.hot_words;
        self.interrupted = back.interrupted;
        self.pending_turn = None;
        self.awaiting_first_rtp = false;
        let cut = self.stop_speaking();
        if let Some(a) = self.asr.take() {
            a.cancel.cancel();
        }
        self.report.turns = self.report.turns.saturating_sub(1);
        self.caller_in_speech = true;
        self.turn_barged = false;
        self.timing = TurnTiming::default();
        self.last_activity = at;
        tracing::info!(
            after_ms,
            reply = cut.as_ref().map_or("", |l| l.text.as_str()),
            "the caller went on after a pause; the turn ended early continues"
        );
        if let Some(c) = &self.console {
            c.publisher.step(&self.conv.current_step());
        }
        true
    }

    /// Whether a turn ended early may still go on at `now`; once it cannot, it stands
    /// and its record is written.
    fn early_turn_open(&mut self, now: Instant) -> bool {
        match &self.early_turn {
            Some(e) if e.expired(now) => {
                self.early_turn = None;
                if !self.awaiting_first_rtp {
                    self.flush_pending_turn();
                }
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    /// Ends the turn early when the speculative transcript sounds finished and
    /// the pause has lasted [`CallTuning::early_commit`]. Returns true when it did (the
    /// caller then drops the endpointer's turn so it does not end a second time).
    fn try_early_commit(&mut self, now: Instant) -> bool {
        let Some(min_pause) = self.setup.tuning.early_commit else {
            return false;
        };
        let ready = match &self.asr {
            Some(a) if !a.final_ && a.result.is_some() => {
                // A caller who interrupts the agent usually goes on to say why (喂，
                // 等一下…): only a strong cue ends such a turn early.
                let pause = match a.finished {
                    Finished::Strong => Some(min_pause),
                    Finished::Answer if !self.turn_barged => Some(min_pause),
                    Finished::Short if !self.turn_barged => {
                        Some(self.setup.tuning.early_commit_short.max(min_pause))
                    }
                    Finished::Clause if !self.turn_barged => {
                        Some(self.setup.tuning.early_commit_clause.max(min_pause))
                    }
                    _ => None,
                };
                pause.is_some_and(|p| now.saturating_duration_since(a.speech_end_at) >= p)
            }
            _ => false,
        };
        if !ready {
            return false;
        }
        let Some(mut a) = self.asr.take() else {
            return false;
        };
        let Some(outcome) = a.result.take() else {
            return false;
        };
        self.timing.t_speech_end = Some(a.speech_end_at);
        self.timing.t_endpoint = Some(now);
        tracing::debug!("turn ended early on a finished sentence");
        self.caller_in_speech = false;
        let before = EarlyTurn::before(
            &self.conv,
            &self.hot_words,
            &self.interrupted,
            a.speech_end_at,
        );
        let turns = self.report.turns;
        self.on_final(outcome);
        if self.report.turns > turns
            && self.last_apply_reversible
            && !self.taken_over
            && self.hangup_after_playback.is_none()
        {
            self.early_turn = Some(before);
        }
        true
    }

    fn first_reply_sent(&mut self, at: Instant) {
        if let Some(p) = self.pending_turn.as_mut() {
            p.timing.t_first_reply_rtp = Some(at);
            if let Some(lat) = p.timing.latency() {
                self.report.latencies.push(lat);
                if let Some(a) = &self.setup.admission {
                    a.record_turn(at, lat);
                }
                if let Some(c) = &self.console {
                    c.publisher.turn_latency(lat);
                }
                tracing::info!(latency_ms = lat.as_millis() as u64, "turn latency");
            }
        }
        // A turn ended early is written once it can no longer go on.
        if self.early_turn.is_none() {
            self.flush_pending_turn();
        }
    }

    fn flush_pending_turn(&mut self) {
        let Some(mut p) = self.pending_turn.take() else {
            return;
        };
        let Some(id) = self.record_id else { return };
        p.write.timing = to_epoch(&p.timing);
        self.records.write_turn(id, p.write);
    }

    // --- resilience: emergency-mode triggers ---
    fn set_fault(&mut self, reason: String) {
        if let (None, Some(em)) = (&self.fault, &self.setup.emergency) {
            tracing::error!(%reason, "speech service failed; switching the call to emergency mode");
            em.note_fault(Instant::now(), &reason);
            self.fault = Some(reason);
        }
    }

    /// A failed recognition or a long queue wait means the ASR workers are broken or
    /// overloaded.
    fn check_asr_outcome(&mut self, outcome: &AsrOutcome) {
        let Some(em) = self.setup.emergency.as_ref() else {
            return;
        };
        let limit = em.config().asr_queue_limit_ms as f64;
        if let Err(e) = &outcome.result {
            self.set_fault(format!("ASR failed: {e}"));
        } else if outcome.queue_ms > limit {
            self.set_fault(format!(
                "ASR overloaded: a job waited {:.0} ms in the queue (limit {limit:.0} ms)",
                outcome.queue_ms
            ));
        }
    }

    /// A job with no answer after `asr_timeout_ms`: the worker crashed or hangs.
    fn check_asr_timeout(&mut self, now: Instant) {
        let Some(em) = self.setup.emergency.as_ref() else {
            return;
        };
        let timeout = Duration::from_millis(em.config().asr_timeout_ms);
        let waited = match &self.asr {
            Some(a) if a.result.is_none() => now.saturating_duration_since(a.submitted),
            _ => return,
        };
        if waited > timeout {
            self.set_fault(format!(
                "ASR did not answer within {} ms (worker crashed or hung)",
                timeout.as_millis()
            ));
        }
    }
    // --- end resilience ---

    fn check_timers(&mut self, started: Instant) {
        let now = Instant::now();
        self.check_asr_timeout(now);
        if self.hangup_after_playback.is_some() {
            return;
        }
        if now.duration_since(started) > self.setup.tuning.max_call {
            tracing::warn!("call reached its maximum length; closing");
            self.hangup_after_playback = Some(Outcome::Completed);
            return;
        }
        let idle = !self.agent_speaking()
            && self.asr.is_none()
            && !self.taken_over
            && self.transfer.is_none();
        if idle && now.duration_since(self.last_activity) > self.setup.tuning.silence_timeout {
            tracing::info!(
                silent_ms = now.duration_since(self.last_activity).as_millis() as u64,
                "the caller is silent; prompting again"
            );
            self.last_activity = now;
            self.timing = TurnTiming::default();
            let result = self.conv.on_silence(now_local());
            self.apply(result.actions, None, Some("silence".into()));
        }
    }
}

/// Records one line outside the script's turns (an operator's action, or what
/// the caller said while an operator had the call).
fn record_line(
    records: &RecordWriter,
    record_id: Option<i64>,
    speaker: &str,
    text: String,
    asr_confidence: Option<f64>,
) {
    let Some(id) = record_id else { return };
    records.write_turn(
        id,
        crate::store::TurnWrite {
            at: now_local().to_rfc3339(),
            lines: vec![crate::store::TurnLine {
                speaker: speaker.into(),
                text,
                asr_confidence,
                ..Default::default()
            }],
            ..Default::default()
        },
    );
}

/// Splits a line into its first clause and the rest, for rendering the first
/// clause ahead. The cut is after the first clause mark (，。！？；) that leaves at
/// least `MIN_CLAUSE_CHARS` characters on each side; otherwise the line stays whole
/// (a short opening like 好的， is not worth a prosody break).
fn first_clause_split(text: &str) -> Vec<String> {
    const MIN_CLAUSE_CHARS: usize = 4;
    let chars: Vec<char> = text.trim().chars().collect();
    let marks = ['，', '。', '！', '？', '；', ',', '!', '?', ';'];
    for (i, c) in chars.iter().enumerate() {
        if marks.contains(c) && i >= MIN_CLAUSE_CHARS && chars.len() - i > MIN_CLAUSE_CHARS {
            let (head, rest) = chars.split_at(i + 1);
            return vec![head.iter().collect(), rest.iter().collect()];
        }
    }
    vec![chars.into_iter().collect()]
}

/// Converts monotonic stamps to wall-clock epoch milliseconds for the record.
fn to_epoch(t: &TurnTiming) -> crate::store::TurnTiming {
    let now_i = Instant::now();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let conv = |i: Option<Instant>| {
        i.map(|i| now_ms - now_i.saturating_duration_since(i).as_millis() as i64)
    };
    crate::store::TurnTiming {
        t_speech_end: conv(t.t_speech_end),
        t_endpoint: conv(t.t_endpoint),
        t_asr_done: conv(t.t_asr_done),
        t_reply_chosen: conv(t.t_reply_chosen),
        t_first_reply_rtp: conv(t.t_first_reply_rtp),
    }
}

#[cfg(test)]
mod tests {
    use super::first_clause_split;

    #[test]
    fn a_dynamic_line_is_cut_after_its_first_real_clause() {
        assert_eq!(
            first_clause_split("好的，我们会在明天上午十点给您回电，请保持电话畅通。"),
            vec![
                "好的，我们会在明天上午十点给您回电，".to_string(),
                "请保持电话畅通。".to_string()
            ]
        );
        assert_eq!(
            first_clause_split("您留的号码是13912345678，对吗？"),
            vec!["您留的号码是13912345678，对吗？".to_string()]
        );
        assert_eq!(first_clause_split("再见。"), vec!["再见。".to_string()]);
        assert_eq!(
            first_clause_split("没有标点的一句话"),
            vec!["没有标点的一句话".to_string()]
        );
    }
}
