//! The hub between the call layer and the console: what a call publishes and what
//! operators send back.
//!
//! The call layer calls [`ConsoleHub::start_call`] once per answered call and gets a
//! [`CallPublisher`] (events and audio out) and a [`CallControl`] (operator actions and
//! operator audio in). Everything on the publishing side is non-blocking and safe to
//! call from the real-time audio thread: audio frames are fixed-size `Copy` arrays
//! sent into preallocated broadcast rings, so publishing a frame never allocates and
//! a slow listener only loses frames itself (it sees `Lagged`), never slows the call.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use super::history::{CallDetail, MemoryHistory};
use super::metrics::ConsoleMetrics;

/// Samples in one 20 ms frame at 8 kHz: the unit of all console audio.
pub const FRAME_SAMPLES: usize = 160;
/// One 20 ms frame of 8 kHz mono linear PCM.
pub type Frame = [i16; FRAME_SAMPLES];

/// Audio frames kept per call for listeners that fall behind (1 s).
const AUDIO_RING: usize = 50;
/// Console events kept for SSE subscribers that fall behind.
const EVENT_RING: usize = 1024;
/// Operator frames buffered towards the call (200 ms); older ones are dropped.
const OPERATOR_AUDIO_QUEUE: usize = 10;
/// Operator actions buffered towards the call.
const ACTION_QUEUE: usize = 32;

/// Who spoke a transcript line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Speaker {
    Agent,
    Caller,
    Operator,
}

/// One line of a call's transcript as the console shows it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TranscriptLine {
    pub speaker: Speaker,
    pub text: String,
    /// Intent the dialogue engine matched (caller lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// Fields collected from this line.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    /// When the line was recognised or spoken.
    pub at: DateTime<Utc>,
}

impl TranscriptLine {
    /// A line stamped now, without intent or fields.
    pub fn new(speaker: Speaker, text: impl Into<String>) -> Self {
        Self {
            speaker,
            text: text.into(),
            intent: None,
            fields: BTreeMap::new(),
            at: Utc::now(),
        }
    }

    pub fn with_intent(mut self, intent: impl Into<String>) -> Self {
        self.intent = Some(intent.into());
        self
    }

    pub fn with_field(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.insert(key.into(), value.into());
        self
    }
}

/// What the call layer knows when a call starts.
#[derive(Debug, Clone, Serialize)]
pub struct CallInfo {
    /// Unique call id (the store's record id, so history and live view agree).
    pub id: String,
    /// Caller number or SIP URI.
    pub caller: String,
    /// Script name.
    pub script: String,
    pub started_at: DateTime<Utc>,
}

/// How a call ended, as the call layer reports it.
#[derive(Debug, Clone, Default)]
pub struct CallEnd {
    /// Outcome label from the script or the call layer (e.g. "completed", "hangup", "emergency").
    pub outcome: String,
    /// Fields collected over the call.
    pub fields: BTreeMap<String, String>,
    /// Stereo WAV recording (caller left, agent right), if one was made.
    pub recording: Option<std::path::PathBuf>,
}

/// One 20 ms tick of a call's audio, both directions aligned on the call's clock.
#[derive(Debug, Clone, Copy)]
pub struct CallAudioFrame {
    /// What the caller said (after the jitter buffer), or silence.
    pub caller: Frame,
    /// What went out to the caller: agent TTS or operator audio, or silence.
    pub agent: Frame,
    /// When the tick happened; listeners use it to measure their latency.
    pub captured: Instant,
}

impl CallAudioFrame {
    /// Caller and agent mixed into `out` (saturating), as an operator hears the line.
    pub fn mix_into(&self, out: &mut Frame) {
        for ((o, &c), &a) in out.iter_mut().zip(&self.caller).zip(&self.agent) {
            *o = c.saturating_add(a);
        }
    }
}

/// An operator's request to a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorAction {
    /// An operator started listening (informational: the call needs to do nothing).
    Listen { operator: String },
    /// The operator's voice replaces the agent's: pause the dialogue engine and send
    /// the frames from [`CallControl::operator_audio`] to the caller instead of TTS.
    TakeOver { operator: String },
    /// Resume the script where it paused.
    HandBack { operator: String },
    /// End the call cleanly (BYE).
    HangUp { operator: String },
    /// Hand the call to a person: the transfer configured for the call, or to
    /// `target` (an extension or SIP URI) when given.
    Transfer {
        operator: String,
        target: Option<String>,
    },
}

/// What the call layer receives from operators.
pub struct CallControl {
    /// Operator requests, in order.
    pub actions: mpsc::Receiver<OperatorAction>,
    /// Operator microphone frames (8 kHz, 20 ms) while taken over. Use `try_recv` on
    /// the audio tick; an empty queue means play silence.
    pub operator_audio: mpsc::Receiver<Frame>,
}

/// Event sent to console subscribers (SSE), serialised as JSON with a `type` tag.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HubEvent {
    CallStarted {
        call: LiveCallView,
    },
    Step {
        call_id: String,
        step: String,
    },
    Transcript {
        call_id: String,
        line: TranscriptLine,
    },
    TurnLatency {
        call_id: String,
        ms: f64,
    },
    Control {
        call_id: String,
        taken_over_by: Option<String>,
        listeners: usize,
    },
    CallEnded {
        call_id: String,
        outcome: String,
    },
    /// A transfer to a person started or changed state: the "incoming transfer"
    /// card for the operators (who, why, the summary, and how it went).
    Transfer {
        call_id: String,
        transfer: TransferView,
    },
}

/// A call's transfer to a person as the console shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TransferView {
    pub target: String,
    /// `refer` or `bridge` (the attempt in progress).
    pub method: String,
    /// `announcing`, `ringing`, `connected`, `bridged`, or an attempt's failure
    /// (`busy`, `no_answer`, `unreachable`, `refused`, `abandoned`).
    pub state: String,
    /// Why, who, what was asked, what was collected (the `X-Tingshuo-Summary` text).
    pub summary: String,
}

/// A live call as the console lists it.
#[derive(Debug, Clone, Serialize)]
pub struct LiveCallView {
    pub id: String,
    pub caller: String,
    pub script: String,
    pub started_at: DateTime<Utc>,
    pub step: Option<String>,
    pub last_turn_latency_ms: Option<f64>,
    pub taken_over_by: Option<String>,
    pub listeners: usize,
    pub transcript: Vec<TranscriptLine>,
    /// The transfer to a person in progress or done, if any.
    pub transfer: Option<TransferView>,
}

struct LiveCall {
    view: LiveCallView,
    /// Transfer attempts, moved to the history when the call ends.
    transfers: Vec<crate::store::TransferRow>,
    turn_latencies_ms: Vec<f64>,
    audio: broadcast::Sender<CallAudioFrame>,
    actions: mpsc::Sender<OperatorAction>,
    operator_audio: mpsc::Sender<Frame>,
}

/// Why an operator request could not be passed to a call.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HubError {
    #[error("call {0} is not active (it ended or never existed); refresh the live view")]
    NoSuchCall(String),
    #[error("call {call} is already taken over by {operator}; ask them to hand it back first")]
    AlreadyTakenOver { call: String, operator: String },
    #[error("call {0} is not taken over by you; take it over first")]
    NotTakenOver(String),
    #[error(
        "call {0} is not reading operator requests (its queue is full or it is ending); try again"
    )]
    CallBusy(String),
}

struct HubInner {
    calls: Mutex<BTreeMap<String, LiveCall>>,
    events: broadcast::Sender<HubEvent>,
    history: Arc<MemoryHistory>,
    metrics: ConsoleMetrics,
    ready: Mutex<Result<(), String>>,
    /// The records database's state (a shared database can go away).
    store_ready: Mutex<Result<(), String>>,
}

/// Shared handle; cheap to clone, one per process.
#[derive(Clone)]
pub struct ConsoleHub {
    inner: Arc<HubInner>,
}

impl Default for ConsoleHub {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ConsoleHub {
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(EVENT_RING);
        Self {
            inner: Arc::new(HubInner {
                calls: Mutex::new(BTreeMap::new()),
                events,
                history: Arc::new(MemoryHistory::default()),
                metrics: ConsoleMetrics::new(),
                ready: Mutex::new(Err("the call layer has not reported ready yet".into())),
                store_ready: Mutex::new(Ok(())),
            }),
        }
    }

    /// Counters and gauges for `/metrics`; the call layer sets those the hub cannot know.
    pub fn metrics(&self) -> &ConsoleMetrics {
        &self.inner.metrics
    }

    /// Finished calls of this process (the console's history when no store is attached).
    pub fn memory_history(&self) -> Arc<MemoryHistory> {
        self.inner.history.clone()
    }

    /// `/readyz` state: `Ok` once SIP is bound and models (or the emergency script) are loaded.
    pub fn set_ready(&self, state: Result<(), String>) {
        *lock(&self.inner.ready) = state;
    }

    /// `/readyz` also fails while the records database is unreachable (calls in
    /// progress go on; a load balancer should send new calls elsewhere).
    pub fn set_store_ready(&self, state: Result<(), String>) {
        *lock(&self.inner.store_ready) = state;
    }

    pub fn readiness(&self) -> Result<(), String> {
        lock(&self.inner.ready).clone()?;
        lock(&self.inner.store_ready).clone()
    }

    /// Registers an answered call. Keep the publisher for the call's lifetime and call
    /// [`CallPublisher::end`]; dropping it without `end` ends the call as "dropped".
    pub fn start_call(&self, info: CallInfo) -> (CallPublisher, CallControl) {
        let (audio, _) = broadcast::channel(AUDIO_RING);
        let (actions_tx, actions_rx) = mpsc::channel(ACTION_QUEUE);
        let (op_tx, op_rx) = mpsc::channel(OPERATOR_AUDIO_QUEUE);
        let view = LiveCallView {
            id: info.id.clone(),
            caller: info.caller,
            script: info.script,
            started_at: info.started_at,
            step: None,
            last_turn_latency_ms: None,
            taken_over_by: None,
            listeners: 0,
            transcript: Vec::new(),
            transfer: None,
        };
        lock(&self.inner.calls).insert(
            info.id.clone(),
            LiveCall {
                view: view.clone(),
                transfers: Vec::new(),
                turn_latencies_ms: Vec::new(),
                audio: audio.clone(),
                actions: actions_tx,
                operator_audio: op_tx,
            },
        );
        self.inner.metrics.set_active_calls(self.active_count());
        self.emit(HubEvent::CallStarted { call: view });
        (
            CallPublisher {
                hub: self.clone(),
                id: info.id,
                audio,
                ended: false,
            },
            CallControl {
                actions: actions_rx,
                operator_audio: op_rx,
            },
        )
    }

    fn emit(&self, ev: HubEvent) {
        // No subscriber is fine: nobody is watching.
        let _ = self.inner.events.send(ev);
    }

    fn active_count(&self) -> usize {
        lock(&self.inner.calls).len()
    }

    /// Live calls, oldest first.
    pub fn live_calls(&self) -> Vec<LiveCallView> {
        let mut v: Vec<_> = lock(&self.inner.calls)
            .values()
            .map(|c| c.view.clone())
            .collect();
        v.sort_by_key(|c| c.started_at);
        v
    }

    /// Console events from now on (pair with [`Self::live_calls`] for a snapshot).
    pub fn subscribe_events(&self) -> broadcast::Receiver<HubEvent> {
        self.inner.events.subscribe()
    }

    /// The call's audio from now on; `None` when the call is not active.
    pub fn subscribe_audio(&self, call_id: &str) -> Option<broadcast::Receiver<CallAudioFrame>> {
        lock(&self.inner.calls)
            .get(call_id)
            .map(|c| c.audio.subscribe())
    }

    /// Sender for the operator's microphone frames of a call.
    pub fn operator_audio_sender(&self, call_id: &str) -> Option<mpsc::Sender<Frame>> {
        lock(&self.inner.calls)
            .get(call_id)
            .map(|c| c.operator_audio.clone())
    }

    pub fn is_active(&self, call_id: &str) -> bool {
        lock(&self.inner.calls).contains_key(call_id)
    }

    /// Counts a listener in or out (shown in the live view).
    pub fn listener_delta(&self, call_id: &str, joined: bool) {
        let ev = {
            let mut calls = lock(&self.inner.calls);
            let Some(c) = calls.get_mut(call_id) else {
                return;
            };
            c.view.listeners = if joined {
                c.view.listeners + 1
            } else {
                c.view.listeners.saturating_sub(1)
            };
            HubEvent::Control {
                call_id: call_id.to_string(),
                taken_over_by: c.view.taken_over_by.clone(),
                listeners: c.view.listeners,
            }
        };
        self.emit(ev);
    }

    /// Passes an operator action to the call, enforcing one operator at a time on take-over.
    pub fn send_action(&self, call_id: &str, action: OperatorAction) -> Result<(), HubError> {
        let ev = {
            let mut calls = lock(&self.inner.calls);
            let c = calls
                .get_mut(call_id)
                .ok_or_else(|| HubError::NoSuchCall(call_id.to_string()))?;
            let new_owner = match &action {
                OperatorAction::TakeOver { operator } => match &c.view.taken_over_by {
                    Some(other) if other != operator => {
                        return Err(HubError::AlreadyTakenOver {
                            call: call_id.to_string(),
                            operator: other.clone(),
                        })
                    }
                    _ => Some(Some(operator.clone())),
                },
                OperatorAction::HandBack { operator } => {
                    if c.view.taken_over_by.as_deref() != Some(operator.as_str()) {
                        return Err(HubError::NotTakenOver(call_id.to_string()));
                    }
                    Some(None)
                }
                OperatorAction::Listen { .. }
                | OperatorAction::HangUp { .. }
                | OperatorAction::Transfer { .. } => None,
            };
            // Queue first: the live view changes only if the call will see the action.
            c.actions
                .try_send(action)
                .map_err(|_| HubError::CallBusy(call_id.to_string()))?;
            new_owner.map(|owner| {
                c.view.taken_over_by = owner;
                HubEvent::Control {
                    call_id: call_id.to_string(),
                    taken_over_by: c.view.taken_over_by.clone(),
                    listeners: c.view.listeners,
                }
            })
        };
        if let Some(ev) = ev {
            self.emit(ev);
        }
        Ok(())
    }

    fn update<R>(&self, id: &str, f: impl FnOnce(&mut LiveCall) -> R) -> Option<R> {
        lock(&self.inner.calls).get_mut(id).map(f)
    }

    fn finish(&self, id: &str, end: CallEnd) {
        let Some(call) = lock(&self.inner.calls).remove(id) else {
            return;
        };
        self.inner.metrics.set_active_calls(self.active_count());
        let ended_at = Utc::now();
        self.inner.history.push(CallDetail {
            id: call.view.id.clone(),
            caller: call.view.caller,
            script: call.view.script,
            started_at: call.view.started_at,
            ended_at: Some(ended_at),
            outcome: end.outcome.clone(),
            fields: end.fields,
            transcript: call.view.transcript,
            turn_latencies_ms: call.turn_latencies_ms,
            has_recording: end.recording.is_some(),
            recording: end.recording,
            transfers: call.transfers,
            person_callbacks: Vec::new(),
        });
        self.emit(HubEvent::CallEnded {
            call_id: id.to_string(),
            outcome: end.outcome,
        });
    }
}

/// The call layer's side of one call. Every method returns at once.
pub struct CallPublisher {
    hub: ConsoleHub,
    id: String,
    audio: broadcast::Sender<CallAudioFrame>,
    ended: bool,
}

impl CallPublisher {
    pub fn call_id(&self) -> &str {
        &self.id
    }

    /// The script moved to another step.
    pub fn step(&self, step: &str) {
        let step = step.to_string();
        self.hub
            .update(&self.id, |c| c.view.step = Some(step.clone()));
        self.hub.emit(HubEvent::Step {
            call_id: self.id.clone(),
            step,
        });
    }

    /// A line was recognised (caller) or spoken (agent, operator).
    pub fn transcript(&self, line: TranscriptLine) {
        self.hub
            .update(&self.id, |c| c.view.transcript.push(line.clone()));
        self.hub.emit(HubEvent::Transcript {
            call_id: self.id.clone(),
            line,
        });
    }

    /// A turn's latency (end of caller speech → first reply packet); also feeds
    /// the turn-latency histogram of `/metrics`.
    pub fn turn_latency(&self, latency: Duration) {
        let ms = latency.as_secs_f64() * 1000.0;
        self.hub.update(&self.id, |c| {
            c.view.last_turn_latency_ms = Some(ms);
            c.turn_latencies_ms.push(ms);
        });
        self.hub.inner.metrics.observe_turn_latency(latency);
        self.hub.emit(HubEvent::TurnLatency {
            call_id: self.id.clone(),
            ms,
        });
    }

    /// A transfer to a person started or changed state (the console's card).
    pub fn transfer(&self, transfer: TransferView) {
        self.hub
            .update(&self.id, |c| c.view.transfer = Some(transfer.clone()));
        self.hub.emit(HubEvent::Transfer {
            call_id: self.id.clone(),
            transfer,
        });
    }

    /// One transfer attempt finished: counted on `/metrics` by result and kept for
    /// the call's history.
    pub fn transfer_attempt(&self, row: crate::store::TransferRow) {
        self.hub.inner.metrics.transfer(&row.result);
        self.hub.update(&self.id, |c| c.transfers.push(row.clone()));
    }

    /// One 20 ms audio tick. Never blocks or allocates; without listeners it is a no-op.
    #[inline]
    pub fn audio(&self, frame: &CallAudioFrame) {
        if self.audio.receiver_count() > 0 {
            let _ = self.audio.send(*frame);
        }
    }

    /// Whether anyone listens (lets the call skip building frames nobody hears).
    pub fn has_listeners(&self) -> bool {
        self.audio.receiver_count() > 0
    }

    /// The call ended; it moves from the live view to history.
    pub fn end(mut self, end: CallEnd) {
        self.ended = true;
        self.hub.finish(&self.id, end);
    }
}

impl Drop for CallPublisher {
    fn drop(&mut self) {
        if !self.ended {
            self.hub.finish(
                &self.id,
                CallEnd {
                    outcome: "dropped".into(),
                    ..CallEnd::default()
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str) -> CallInfo {
        CallInfo {
            id: id.into(),
            caller: "13800000000".into(),
            script: "测试话术".into(),
            started_at: Utc::now(),
        }
    }

    #[test]
    fn call_lifecycle_moves_to_history() {
        let hub = ConsoleHub::new();
        let mut events = hub.subscribe_events();
        let (publisher, _control) = hub.start_call(info("c1"));
        publisher.step("greeting");
        publisher.transcript(TranscriptLine::new(
            Speaker::Agent,
            "您好，这里是物业服务中心。",
        ));
        publisher.turn_latency(Duration::from_millis(420));
        let live = hub.live_calls();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].step.as_deref(), Some("greeting"));
        assert_eq!(live[0].transcript.len(), 1);
        assert_eq!(live[0].last_turn_latency_ms, Some(420.0));
        publisher.end(CallEnd {
            outcome: "completed".into(),
            ..CallEnd::default()
        });
        assert!(hub.live_calls().is_empty());
        let kinds: Vec<String> = std::iter::from_fn(|| events.try_recv().ok())
            .map(|e| serde_json::to_value(&e).expect("json")["type"].to_string())
            .collect();
        assert_eq!(
            kinds,
            [
                "\"call_started\"",
                "\"step\"",
                "\"transcript\"",
                "\"turn_latency\"",
                "\"call_ended\""
            ]
        );
        let h = hub.memory_history().get("c1").expect("in history");
        assert_eq!(h.outcome, "completed");
        assert_eq!(h.turn_latencies_ms, vec![420.0]);
    }

    #[test]
    fn dropping_the_publisher_ends_the_call() {
        let hub = ConsoleHub::new();
        let (publisher, _c) = hub.start_call(info("c2"));
        drop(publisher);
        assert!(!hub.is_active("c2"));
        assert_eq!(
            hub.memory_history().get("c2").map(|d| d.outcome),
            Some("dropped".into())
        );
    }

    #[test]
    fn one_operator_takes_over_at_a_time() {
        let hub = ConsoleHub::new();
        let (_p, mut control) = hub.start_call(info("c3"));
        let take = |op: &str| OperatorAction::TakeOver {
            operator: op.into(),
        };
        hub.send_action("c3", take("alice"))
            .expect("first take-over");
        assert_eq!(
            hub.send_action("c3", take("bob")),
            Err(HubError::AlreadyTakenOver {
                call: "c3".into(),
                operator: "alice".into()
            })
        );
        assert_eq!(
            hub.send_action(
                "c3",
                OperatorAction::HandBack {
                    operator: "bob".into()
                }
            ),
            Err(HubError::NotTakenOver("c3".into()))
        );
        hub.send_action(
            "c3",
            OperatorAction::HandBack {
                operator: "alice".into(),
            },
        )
        .expect("hand back");
        assert_eq!(control.actions.try_recv(), Ok(take("alice")));
        assert!(matches!(
            control.actions.try_recv(),
            Ok(OperatorAction::HandBack { .. })
        ));
        assert_eq!(
            hub.send_action("nope", take("alice")),
            Err(HubError::NoSuchCall("nope".into()))
        );
    }

    #[test]
    fn a_full_action_queue_changes_nothing() {
        let hub = ConsoleHub::new();
        let (_p, _control) = hub.start_call(info("c5"));
        let listen = || OperatorAction::Listen {
            operator: "alice".into(),
        };
        for _ in 0..ACTION_QUEUE {
            hub.send_action("c5", listen()).expect("queued");
        }
        assert_eq!(
            hub.send_action(
                "c5",
                OperatorAction::TakeOver {
                    operator: "alice".into()
                }
            ),
            Err(HubError::CallBusy("c5".into()))
        );
        assert_eq!(hub.live_calls()[0].taken_over_by, None);
    }

    #[test]
    fn audio_reaches_subscribers_and_mixes() {
        let hub = ConsoleHub::new();
        let (p, _c) = hub.start_call(info("c4"));
        let mut rx = hub.subscribe_audio("c4").expect("active");
        let frame = CallAudioFrame {
            caller: [1000; FRAME_SAMPLES],
            agent: [32000; FRAME_SAMPLES],
            captured: Instant::now(),
        };
        p.audio(&frame);
        let got = rx.try_recv().expect("frame");
        let mut mixed = [0i16; FRAME_SAMPLES];
        got.mix_into(&mut mixed);
        assert_eq!(mixed[0], i16::MAX);
    }
}
