//! `tingshuo serve`: the SIP agent, the shared speech engines, and one thread per call.
//!
//! The SIP driver runs on tokio (network I/O only). Each answered call gets an RTP
//! media session (its own thread, src/rtp) and a call loop (its own thread,
//! [`super::session`]); inference runs on the engines' worker threads. A slow ASR job
//! for one call therefore never delays another call's packets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use tokio::sync::mpsc::UnboundedSender;

use crate::codec::{AudioCodec, G711};
use crate::config::Config;
use crate::console::history::StoreHistory;
use crate::console::{CallInfo, ConsoleHub, ConsoleOptions, ConsoleServer};
use crate::dialogue::{demo, Conversation, Script};
use crate::models::ModelPaths;
use crate::rtp::session::{MediaConfig, MediaSession, PortAllocator};
use crate::sip::sdp::{LocalMedia, Negotiated};
use crate::sip::{CallEvent, Command, EndReason, SipEvent};

use super::admission::Admission;
use super::alerts::Alerts;
use super::emergency::Emergency;
use super::engines::SpeechEngines;
use super::records::{RecordWriter, WriterIdentity};
use super::session::{
    run_call, CallMedia, CallReport, CallRequest, CallSetup, CallSignal, CallTuning, ConsoleLink,
    Direction, LegPorts, TransferSignal,
};
use super::CallError;

/// A call between INVITE and its end.
struct LiveCall {
    media: Option<MediaSession>,
    peer: String,
    signal: Option<Sender<CallSignal>>,
    thread: Option<JoinHandle<Result<CallReport, CallError>>>,
    direction: Direction,
    vars: std::collections::BTreeMap<String, String>,
    record_id: Option<i64>,
    /// The script this call runs (per called user for inbound calls).
    script: Arc<Script>,
    /// The called user (inbound calls), for per-user transfer settings.
    called_user: Option<String>,
}

/// Second legs of bridged transfers: leg Call-ID → the Call-ID of the call that
/// placed it. Filled by the request thread before the INVITE goes out, so the leg's
/// SIP events always find their call.
type Legs = Arc<std::sync::Mutex<HashMap<String, String>>>;

/// Loads the per-user scripts of `[agent.scripts_by_user]`, keyed by user part.
pub fn load_user_scripts(config: &Config) -> Result<HashMap<String, Arc<Script>>, CallError> {
    let mut out = HashMap::new();
    for (user, path) in &config.agent.scripts_by_user {
        out.insert(user.clone(), Arc::new(Script::load(path)?));
    }
    Ok(out)
}

/// The user part of a SIP URI or name-addr (`"Bob" <sip:4001@pbx;x=y>` → `4001`).
fn user_part(uri: &str) -> Option<&str> {
    let inner = match (uri.find('<'), uri.rfind('>')) {
        (Some(a), Some(b)) if a < b => &uri[a + 1..b],
        _ => uri,
    };
    let rest = inner
        .trim()
        .strip_prefix("sips:")
        .or_else(|| inner.trim().strip_prefix("sip:"))
        .or_else(|| inner.trim().strip_prefix("tel:"))?;
    let user = rest.split(['@', ';', '?', '>']).next()?;
    (!user.is_empty() && rest.contains('@') || inner.trim().starts_with("tel:")).then_some(user)
}

/// Loads the script the config names, or the embedded demo.
pub fn load_script(config: &Config) -> Result<Script, CallError> {
    Ok(match &config.agent.script {
        Some(path) => Script::load(path)?,
        None => demo::default_script()?,
    })
}

/// The agent once started: SIP, engines, console, and the calls in progress.
pub(super) struct Running {
    ctx: Ctx,
    calls: HashMap<String, LiveCall>,
    commands: UnboundedSender<Command>,
    pub(super) events: tokio::sync::mpsc::UnboundedReceiver<SipEvent>,
    task: tokio::task::JoinHandle<()>,
    console: Option<ConsoleServer>,
}

/// Runs the agent until Ctrl-C / SIGTERM.
pub async fn serve(config: Config) -> Result<(), CallError> {
    let mut agent = start_agent(&config).await?;
    agent.close_calls_of_previous_run();
    let mut callbacks = super::callbacks::Scheduler::open(&config)?;
    let mut poll = tokio::time::interval(callbacks.poll_interval());
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            ev = agent.events.recv() => {
                let Some(ev) = ev else { break };
                if let Some(ended) = agent.handle(ev) {
                    callbacks.on_finished(&ended);
                }
            }
            _ = poll.tick() => {
                let free = config.sip.max_calls.saturating_sub(agent.live_calls());
                callbacks.poll(&mut agent, &Default::default(), free);
            }
            _ = &mut shutdown => break,
        }
    }
    agent
        .drain(
            std::time::Duration::from_secs(config.sip.drain_timeout_secs),
            |ended| {
                callbacks.on_finished(&ended);
            },
        )
        .await;
    agent.stop().await;
    Ok(())
}

/// Places one outbound call to `target` with `vars` and waits for it to end.
/// Returns the call's outcome (a dialogue outcome, or busy / no_answer / declined /
/// not_found / failed when it was never answered).
pub async fn dial(
    config: Config,
    target: &str,
    vars: std::collections::BTreeMap<String, String>,
) -> Result<String, CallError> {
    let mut agent = start_agent(&config).await?;
    let call_id = agent.ctx.place_call(target, vars, None, &mut agent.calls)?;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut outcome = None;
    loop {
        tokio::select! {
            ev = agent.events.recv() => {
                let Some(ev) = ev else { break };
                let ended = matches!(&ev, SipEvent::Call(CallEvent::Ended { call_id: c, .. }) if *c == call_id);
                if let Some(o) = agent.ctx.on_event(ev, &mut agent.calls) {
                    outcome = Some(o);
                }
                if ended {
                    break;
                }
            }
            _ = &mut shutdown => break,
        }
    }
    agent.stop().await;
    Ok(outcome.unwrap_or_else(|| "failed".to_string()))
}

impl Running {
    /// Graceful shutdown's first step: new INVITEs get 503 (with Retry-After) and the
    /// calls in progress continue until they end, `timeout` passes, or a second
    /// signal comes.
    async fn drain(&mut self, timeout: std::time::Duration, mut on_finished: impl FnMut(Finished)) {
        let _ = self.commands.send(Command::StopAccepting);
        self.ctx
            .hub
            .set_ready(Err("draining: shutting down, not accepting calls".into()));
        if self.calls.is_empty() {
            return;
        }
        tracing::info!(
            calls = self.calls.len(),
            timeout_s = timeout.as_secs(),
            "draining: new calls are refused, calls in progress may finish"
        );
        let started = std::time::Instant::now();
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let again = shutdown_signal();
        tokio::pin!(again);
        loop {
            tokio::select! {
                ev = self.events.recv() => {
                    let Some(ev) = ev else { return };
                    if let Some(ended) = self.handle(ev) {
                        on_finished(ended);
                    }
                    if self.calls.is_empty() {
                        tracing::info!(drain_ms = started.elapsed().as_millis() as u64, "drained: every call has ended");
                        return;
                    }
                }
                _ = &mut deadline => {
                    tracing::warn!(calls = self.calls.len(), "drain timeout: hanging up the calls still in progress");
                    return;
                }
                _ = &mut again => {
                    tracing::warn!("second signal: stopping without waiting for calls");
                    return;
                }
            }
        }
    }

    /// Hangs up, un-registers, stops the console.
    pub(super) async fn stop(mut self) {
        tracing::info!("shutting down: hanging up calls and un-registering");
        let _ = self.commands.send(Command::Shutdown);
        while let Some(ev) = self.events.recv().await {
            self.ctx.on_event(ev, &mut self.calls);
        }
        for (_, mut call) in self.calls.drain() {
            end_call(&mut call);
        }
        let _ = self.task.await;
        if let Some(console) = self.console {
            console.shutdown().await;
        }
    }
}

pub(super) async fn start_agent(config: &Config) -> Result<Running, CallError> {
    let config = config.clone();
    let paths = ModelPaths::in_cache(&config.models_dir());
    let script = Arc::new(load_script(&config)?);
    let scripts_by_user = load_user_scripts(&config)?;
    let vars = config.agent.vars.clone();
    {
        // The Q&A sentence encoder and every script's Q&A embeddings, before any call.
        let paths = paths.clone();
        let scripts: Vec<Arc<Script>> = std::iter::once(script.clone())
            .chain(scripts_by_user.values().cloned())
            .collect();
        tokio::task::spawn_blocking(move || {
            if crate::dialogue::encoder::init(&paths).is_some() {
                for s in &scripts {
                    crate::dialogue::KnowledgeBase::new(&s.kb).warm_up();
                }
            }
        })
        .await
        .map_err(|e| CallError::Thread(e.to_string()))?;
    }
    tracing::info!(script = %script.source, "loading speech models");
    let loaded = {
        let paths = paths.clone();
        let tts = config.tts.clone();
        let asr_cfg = config.asr.asr_config();
        tokio::task::spawn_blocking(move || SpeechEngines::load(&paths, asr_cfg, &tts))
            .await
            .map_err(|e| CallError::Thread(e.to_string()))?
    };
    // A missing or broken model must not become a crash loop: the agent answers
    // every call with the emergency script instead, and says so loudly.
    let (engines, startup_fault) = match loaded {
        Ok(e) => (Some(e), None),
        Err(e) => {
            tracing::error!(
                error = %e,
                "EMERGENCY MODE: the speech models could not be loaded, so every call gets the \
                 emergency script (message + callback). Fix the models (`tingshuo models fetch`) and restart."
            );
            eprintln!("tingshuo: EMERGENCY MODE: {e}");
            (
                None,
                Some(format!("speech models unavailable at start-up: {e}")),
            )
        }
    };
    if let Some(engines) = &engines {
        // Every fixed line of every script is synthesized now, so replies never wait
        // for TTS.
        let mut fixed: Vec<String> = Vec::new();
        for s in std::iter::once(&script).chain(scripts_by_user.values()) {
            let probe = Conversation::new(s, &vars, chrono::Local::now().fixed_offset())?;
            fixed.extend(probe.all_fixed_lines().into_iter().map(|l| l.text));
        }
        // Transfer announce lines are heard right after the caller's request.
        fixed.extend(config.transfer_announces());
        let failed = {
            let engines = engines.clone();
            tokio::task::spawn_blocking(move || {
                engines.prepare_lines(fixed.iter().map(String::as_str))
            })
            .await
            .map_err(|e| CallError::Thread(e.to_string()))?
        };
        if failed > 0 {
            tracing::warn!(failed, "some script lines could not be pre-synthesized");
        }
    }
    let emergency_audio = {
        let (cfg, engines, paths, tts) = (
            config.emergency.clone(),
            engines.clone(),
            paths.clone(),
            config.tts.clone(),
        );
        tokio::task::spawn_blocking(move || {
            super::emergency::prepare_audio(&cfg, engines.as_deref(), &paths, &tts)
        })
        .await
        .map_err(|e| CallError::Thread(e.to_string()))?
    };
    let records = RecordWriter::open(
        &config.store_target(),
        WriterIdentity {
            agent: Some(config.agent_name()),
            console: Some(format!("http://{}", config.console.listen)),
        },
    )?;
    // The console is supervision, not service: if it cannot start, calls still run.
    let hub = ConsoleHub::new();
    let emergency = Emergency::new(
        config.emergency.clone(),
        emergency_audio,
        config.messages_dir(),
        startup_fault,
        hub.clone(),
    );
    let alerts = Arc::new(Alerts::new(&config.alerts, hub.clone()));
    {
        // Faults (emergency mode) and the window's ageing, once a second.
        let (alerts, emergency) = (alerts.clone(), emergency.clone());
        let (store, hub) = (records.status(), hub.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                every.tick().await;
                let store_ready = store.readiness();
                hub.metrics()
                    .set_store(store_ready.is_ok(), store.backlog(), store.dropped());
                hub.set_store_ready(store_ready);
                let recent = emergency.recent_fault(std::time::Instant::now());
                let fault = match (emergency.startup_fault(), emergency.active(), recent) {
                    (Some(f), _, _) => Some(format!("emergency mode: {f}")),
                    (None, _, Some(why)) => Some(format!("emergency mode: {why}")),
                    (None, 0, None) => None,
                    (None, n, None) => Some(format!(
                        "emergency mode: {n} call(s) lost their speech workers"
                    )),
                };
                alerts.set_fault(fault);
                alerts.tick();
            }
        });
    }
    let mut options = ConsoleOptions::from_config(&config, &hub);
    options.history = Arc::new(
        StoreHistory::new(
            config.store_target(),
            crate::console::history::default_recordings_dir(&config.store_path()),
        )
        .with_agent(config.agent_name()),
    );
    let console = match ConsoleServer::start(options, hub.clone()).await {
        Ok(server) => Some(server),
        Err(e) => {
            tracing::error!(error = %e, "operator console not started; calls are still answered");
            None
        }
    };
    let ports = PortAllocator::from_config(&config.sip)?;
    let sip = crate::sip::driver::start(&config).await?;
    hub.set_ready(Ok(()));
    let local = sip.local_addr;
    let (commands, events, task) = sip.into_parts();

    println!("tingshuo is listening.");
    println!("  dial:    sip:{}@{}", config.sip.user, local);
    println!("  console: http://{}", config.console.listen);
    if config.sip.registrars.is_empty() {
        println!("  mode:    direct calls (no registrar configured)");
    } else {
        println!("  registering on: {}", config.sip.registrars.join(", "));
    }

    let (req_tx, req_rx) = crossbeam_channel::unbounded::<CallRequest>();
    let legs: Legs = Arc::default();
    {
        let commands = commands.clone();
        let legs = legs.clone();
        std::thread::Builder::new()
            .name("call-requests".into())
            .spawn(move || {
                for req in req_rx {
                    let cmd = match req {
                        CallRequest::Hangup { call_id } => Command::Hangup { call_id },
                        CallRequest::Refer { call_id, target } => Command::Refer { call_id, target },
                        CallRequest::Dial {
                            call_id,
                            leg_id,
                            target,
                            rtp,
                            headers,
                            ring_timeout,
                        } => {
                            tracing::info!(%call_id, %leg_id, %target, "dialling the transfer target (bridge)");
                            if let Ok(mut l) = legs.lock() {
                                l.insert(leg_id.clone(), call_id);
                            }
                            Command::PlaceCallWithHeaders {
                                call_id: leg_id,
                                target,
                                media: LocalMedia::new(rtp),
                                ring_timeout,
                                headers,
                            }
                        }
                    };
                    let _ = commands.send(cmd);
                }
            })
            .map_err(|e| CallError::Thread(e.to_string()))?;
    }

    let ctx = Ctx {
        config: Arc::new(config.clone()),
        legs,
        local_ip: config.sip.listen.ip(),
        ports,
        engines,
        emergency,
        admission: Arc::new(Admission::new(&config.overload)),
        alerts,
        records,
        script,
        scripts_by_user,
        vars,
        commands: commands.clone(),
        requests: req_tx,
        hub,
        ring_timeout: std::time::Duration::from_secs(config.agent.ring_timeout_s),
        recordings: config
            .agent
            .record_audio
            .then(|| super::recording::default_dir(&config.store_path())),
    };
    Ok(Running {
        ctx,
        calls: HashMap::new(),
        commands,
        events,
        task,
        console,
    })
}

pub(super) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

struct Ctx {
    /// For per-call settings decided at answer time (`[transfer]`).
    config: Arc<Config>,
    legs: Legs,
    local_ip: std::net::IpAddr,
    ports: Arc<PortAllocator>,
    /// `None` when the models could not load: every call runs the emergency script.
    engines: Option<Arc<SpeechEngines>>,
    emergency: Arc<Emergency>,
    admission: Arc<Admission>,
    alerts: Arc<Alerts>,
    records: RecordWriter,
    script: Arc<Script>,
    /// `[agent.scripts_by_user]`: inbound calls to these users run their own script.
    scripts_by_user: HashMap<String, Arc<Script>>,
    vars: std::collections::BTreeMap<String, String>,
    commands: UnboundedSender<Command>,
    requests: Sender<CallRequest>,
    hub: ConsoleHub,
    /// How long an outbound call may ring before it counts as not answered.
    ring_timeout: std::time::Duration,
    /// Folder for call recordings when `agent.record_audio` is on.
    recordings: Option<std::path::PathBuf>,
}

/// Outcome label for a call that ended before it was answered.
fn unanswered_outcome(reason: &EndReason) -> &'static str {
    match reason {
        EndReason::Busy => "busy",
        EndReason::NoAnswer => "no_answer",
        EndReason::Declined => "declined",
        EndReason::NotFound => "not_found",
        EndReason::Cancelled | EndReason::RemoteHangup => "no_response",
        _ => "failed",
    }
}

impl Ctx {
    /// Handles one SIP event; returns the outcome of a call that ended with it.
    fn on_event(&self, ev: SipEvent, calls: &mut HashMap<String, LiveCall>) -> Option<String> {
        match ev {
            SipEvent::Registered { registrar, expires } => {
                tracing::info!(%registrar, expires, "registered")
            }
            SipEvent::RegistrationFailed { registrar, reason } => {
                tracing::warn!(%registrar, %reason, "registration failed")
            }
            SipEvent::Unregistered { registrar } => tracing::info!(%registrar, "unregistered"),
            SipEvent::Call(ev) => return self.on_call_event(ev, calls),
        }
        None
    }

    /// The script for an inbound call to `to` (the To header or request URI).
    fn script_for(&self, to: &str) -> Arc<Script> {
        user_part(to)
            .and_then(|u| self.scripts_by_user.get(u))
            .unwrap_or(&self.script)
            .clone()
    }

    /// A loaded script by its source (a callback runs its original call's script
    /// when this agent still has it), else the default.
    fn script_by_source(&self, source: Option<&str>) -> Arc<Script> {
        source
            .and_then(|src| {
                std::iter::once(&self.script)
                    .chain(self.scripts_by_user.values())
                    .find(|s| s.source == src)
            })
            .unwrap_or(&self.script)
            .clone()
    }

    fn new_record(
        &self,
        script: &Script,
        direction: Direction,
        peer: &str,
        vars: &std::collections::BTreeMap<String, String>,
    ) -> Option<i64> {
        self.records
            .start_call(
                &script.source,
                direction.as_str(),
                Some(peer),
                vars,
                &chrono::Local::now().fixed_offset().to_rfc3339(),
            )
            .map_err(|e| tracing::error!(error = %e, "call record could not be created"))
            .ok()
    }

    /// Starts an outbound call: media first (its address goes into the offer).
    fn place_call(
        &self,
        target: &str,
        vars: std::collections::BTreeMap<String, String>,
        script: Option<&str>,
        calls: &mut HashMap<String, LiveCall>,
    ) -> Result<String, CallError> {
        let script = self.script_by_source(script);
        let call_id = crate::sip::new_call_id();
        let mut cfg = MediaConfig::new(self.local_ip, None, G711::Pcmu);
        cfg.tap_outbound = true;
        let media = MediaSession::start(&self.ports, cfg)?;
        let local: SocketAddr = media.local_rtp();
        let record_id = self.new_record(&script, Direction::Outbound, target, &vars);
        tracing::info!(%call_id, target, "placing call");
        self.commands
            .send(Command::PlaceCall {
                call_id: call_id.clone(),
                target: target.to_string(),
                media: LocalMedia::new(local),
                ring_timeout: self.ring_timeout,
            })
            .map_err(|_| CallError::Thread("the SIP agent has stopped".into()))?;
        calls.insert(
            call_id.clone(),
            LiveCall {
                media: Some(media),
                peer: target.to_string(),
                signal: None,
                thread: None,
                direction: Direction::Outbound,
                vars,
                record_id,
                script,
                called_user: None,
            },
        );
        Ok(call_id)
    }

    /// Routes a bridged transfer's second-leg event to the call that placed it.
    /// Returns the event back when it is not about a leg.
    fn on_leg_event(&self, ev: CallEvent, calls: &HashMap<String, LiveCall>) -> Option<CallEvent> {
        let leg_id = match &ev {
            CallEvent::Ringing { call_id }
            | CallEvent::Answered { call_id, .. }
            | CallEvent::EarlyMedia { call_id, .. }
            | CallEvent::MediaUpdate { call_id, .. }
            | CallEvent::Ended { call_id, .. } => call_id.clone(),
            _ => return Some(ev),
        };
        let owner = {
            let Ok(mut legs) = self.legs.lock() else {
                return Some(ev);
            };
            match &ev {
                CallEvent::Ended { .. } => legs.remove(&leg_id),
                _ => legs.get(&leg_id).cloned(),
            }
        };
        let Some(owner) = owner else {
            return Some(ev);
        };
        let signal = match ev {
            CallEvent::Ringing { .. } => TransferSignal::LegRinging,
            CallEvent::Answered {
                negotiated, srtp, ..
            } => TransferSignal::LegAnswered(negotiated, srtp),
            CallEvent::Ended { reason, .. } => TransferSignal::LegEnded(reason),
            // Early media and re-INVITEs of the person's leg: not relayed.
            _ => return None,
        };
        tracing::info!(call_id = %owner, leg = %leg_id, ?signal, "transfer leg event");
        match calls.get(&owner).and_then(|c| c.signal.as_ref()) {
            Some(sig) => {
                let _ = sig.try_send(CallSignal::Transfer(signal));
            }
            None => {
                // The caller is gone: the leg must not ring on alone.
                if !matches!(signal, TransferSignal::LegEnded(_)) {
                    let _ = self.commands.send(Command::Hangup { call_id: leg_id });
                }
            }
        }
        None
    }

    fn on_call_event(
        &self,
        ev: CallEvent,
        calls: &mut HashMap<String, LiveCall>,
    ) -> Option<String> {
        let ev = self.on_leg_event(ev, calls)?;
        match ev {
            CallEvent::IncomingCall {
                call_id,
                from,
                to,
                remote,
                srtp,
                ..
            } => {
                let _span = crate::logging::call_span(&call_id).entered();
                tracing::info!(%from, "incoming call");
                if let Some(why) = self.admission.shed_reason(std::time::Instant::now()) {
                    tracing::warn!(%why, "overload: refusing the call (503)");
                    self.alerts.shed();
                    let _ = self.commands.send(Command::Reject { call_id, code: 503 });
                    return None;
                }
                // Start the media with the codec the answer will carry: silence sent
                // before the call thread applies the negotiation must not switch payload
                // type under the peer (baresip re-creates its decoder on such a switch,
                // and after PCMU → G.722 it decoded nothing more).
                let probe = LocalMedia {
                    codecs: self.config.media.codec_list(),
                    ..LocalMedia::new(SocketAddr::new(crate::sip::sdp::UNSPECIFIED, 0))
                };
                let codec = crate::sip::sdp::negotiate(&remote, &probe)
                    .map_or(AudioCodec::Pcmu, |n| n.codec);
                let mut cfg = MediaConfig::new(self.local_ip, remote.rtp_addr, codec);
                cfg.tap_outbound = true;
                cfg.srtp = srtp;
                match MediaSession::start(&self.ports, cfg) {
                    Ok(media) => {
                        let local: SocketAddr = media.local_rtp();
                        let _ = self.commands.send(Command::Answer {
                            call_id: call_id.clone(),
                            media: LocalMedia::new(local),
                        });
                        calls.insert(
                            call_id,
                            LiveCall {
                                media: Some(media),
                                peer: from,
                                signal: None,
                                thread: None,
                                direction: Direction::Inbound,
                                vars: self.vars.clone(),
                                record_id: None,
                                script: self.script_for(&to),
                                called_user: user_part(&to).map(str::to_string),
                            },
                        );
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "no media port for the call; refusing it");
                        self.alerts.failed();
                        let _ = self.commands.send(Command::Reject { call_id, code: 503 });
                    }
                }
                None
            }
            CallEvent::Answered {
                call_id,
                negotiated,
                srtp,
            } => {
                if let Some(call) = calls.get_mut(&call_id) {
                    let _span = crate::logging::call_span(&call_id).entered();
                    // UAC: the keys came with the answer (UAS sessions started with them).
                    if let (Some(keys), Some(media), Direction::Outbound) =
                        (&srtp, call.media.as_ref(), call.direction)
                    {
                        if let Err(e) = media.set_srtp(keys) {
                            tracing::error!(error = %e, "cannot switch the call's media to SRTP");
                        }
                    }
                    if call.record_id.is_none() {
                        call.record_id = self.new_record(
                            &call.script.clone(),
                            call.direction,
                            &call.peer,
                            &call.vars,
                        );
                    }
                    if call.direction == Direction::Inbound {
                        self.alerts.answered();
                    }
                    self.start_call_thread(&call_id, call, &negotiated);
                }
                None
            }
            CallEvent::EarlyMedia {
                call_id,
                negotiated,
                srtp,
            } => {
                if let Some(media) = calls.get(&call_id).and_then(|c| c.media.as_ref()) {
                    if let Some(keys) = &srtp {
                        if let Err(e) = media.set_srtp(keys) {
                            tracing::error!(%call_id, error = %e, "cannot switch early media to SRTP");
                        }
                    }
                    apply_negotiated(media, &negotiated);
                }
                None
            }
            CallEvent::MediaUpdate {
                call_id,
                negotiated,
                hold,
            } => {
                if let Some(media) = calls.get(&call_id).and_then(|c| c.media.as_ref()) {
                    apply_negotiated(media, &negotiated);
                    tracing::info!(call_id, hold, "media updated");
                }
                None
            }
            CallEvent::Ended { call_id, reason } => {
                let _span = crate::logging::call_span(&call_id).entered();
                tracing::info!(?reason, "call ended");
                let mut call = calls.remove(&call_id)?;
                let answered = call.thread.is_some();
                let outcome = end_call(&mut call);
                if answered {
                    outcome
                } else {
                    // Never answered: busy, no answer (voicemail would answer), declined …
                    let label = unanswered_outcome(&reason);
                    if let Some(id) = call.record_id {
                        self.records.end_call(
                            id,
                            label,
                            &chrono::Local::now().fixed_offset().to_rfc3339(),
                        );
                    }
                    Some(label.to_string())
                }
            }
            CallEvent::DtmfInfo { call_id, digit } => {
                tracing::info!(call_id, %digit, "DTMF (SIP INFO)");
                None
            }
            CallEvent::Refused { call_id, code } => {
                tracing::info!(
                    call_id,
                    code,
                    "call refused by the SIP layer (busy or draining)"
                );
                self.alerts.shed();
                None
            }
            CallEvent::Ringing { call_id } => {
                tracing::info!(call_id, "ringing");
                None
            }
            CallEvent::Transfer { call_id, status } => {
                tracing::info!(call_id, ?status, "transfer progress (REFER)");
                if let Some(sig) = calls.get(&call_id).and_then(|c| c.signal.as_ref()) {
                    let _ = sig.try_send(CallSignal::Transfer(TransferSignal::Refer(status)));
                }
                None
            }
            CallEvent::ReferRefused { call_id, refer_to } => {
                tracing::warn!(call_id, refer_to, "the peer's REFER was refused (603)");
                None
            }
        }
    }

    fn start_call_thread(&self, call_id: &str, call: &mut LiveCall, negotiated: &Negotiated) {
        let Some(media) = call.media.as_ref() else {
            return;
        };
        apply_negotiated(media, negotiated);
        let Some(sent) = media.outbound_tap() else {
            tracing::error!("media session has no outbound tap; cannot run the call");
            return;
        };
        let io = CallMedia {
            inbound: media.inbound(),
            sent,
            playback: media.playback(),
            dtmf: media.dtmf_events(),
            rate: media.audio_rate(),
        };
        let (sig_tx, sig_rx) = crossbeam_channel::bounded(16);
        let record_id = call.record_id;
        let setup = CallSetup {
            call_id: call_id.to_string(),
            peer: call.peer.clone(),
            direction: call.direction,
            script: call.script.clone(),
            vars: call.vars.clone(),
            tuning: CallTuning::default(),
            record_id,
            recording: self
                .recordings
                .as_deref()
                .map(|dir| super::recording::path_for(dir, record_id, call_id)),
            emergency: Some(self.emergency.clone()),
            admission: Some(self.admission.clone()),
            transfer: self
                .config
                .transfer_for(call.called_user.as_deref(), &call.script.source),
            legs: Some(LegPorts {
                ports: self.ports.clone(),
                local_ip: self.local_ip,
            }),
        };
        // The console shows live and finished calls under the record's id.
        let (publisher, control) = self.hub.start_call(CallInfo {
            id: record_id.map_or_else(|| call_id.to_string(), |id| id.to_string()),
            caller: call.peer.clone(),
            script: call.script.source.clone(),
            started_at: chrono::Utc::now(),
        });
        let console = Some(ConsoleLink { publisher, control });
        let engines = self.engines.clone();
        let emergency = self.emergency.clone();
        let records = self.records.clone();
        let requests = self.requests.clone();
        let span = crate::logging::call_span(call_id);
        let thread = std::thread::Builder::new()
            .name(format!("call-{}", &call_id[..call_id.len().min(8)]))
            .spawn(move || {
                let _g = span.entered();
                let r = match engines {
                    Some(engines) => {
                        run_call(setup, io, engines, records, sig_rx, requests, console)
                    }
                    None => super::emergency::run_call(
                        &emergency, setup, io, records, sig_rx, requests, console,
                    ),
                };
                match &r {
                    Ok(rep) => tracing::info!(
                        outcome = rep.outcome.as_str(),
                        turns = rep.turns,
                        barge_ins = rep.barge_ins,
                        "call finished"
                    ),
                    Err(e) => tracing::error!(error = %e, "call failed"),
                }
                r
            });
        match thread {
            Ok(t) => {
                call.thread = Some(t);
                call.signal = Some(sig_tx);
            }
            Err(e) => tracing::error!(error = %e, "cannot start the call thread"),
        }
    }
}

fn apply_negotiated(media: &MediaSession, n: &Negotiated) {
    media.set_codec(n.codec, n.telephone_event_pt);
    if let Some(addr) = n.remote.rtp_addr {
        media.set_remote(addr, None);
    }
}

/// Stops a call's loop and media; returns the loop's outcome when it ran.
fn end_call(call: &mut LiveCall) -> Option<String> {
    if let Some(sig) = call.signal.take() {
        let _ = sig.send(CallSignal::RemoteHangup);
    }
    let outcome = call.thread.take().map(|t| match t.join() {
        Ok(Ok(report)) => report.outcome.as_str().to_string(),
        Ok(Err(_)) => "failed".to_string(),
        Err(_) => {
            tracing::error!("a call thread panicked");
            "failed".to_string()
        }
    });
    if let Some(media) = call.media.take() {
        let report = media.stop();
        tracing::debug!(?report, "media session stopped");
    }
    outcome
}

// ---- Outbound dialling for campaigns and callbacks (issue 7, item 5) ----

/// A call that ended, as campaigns and the callback scheduler see it.
#[derive(Debug, Clone)]
pub(super) struct Finished {
    /// SIP Call-ID (what [`Running::place`] returned).
    pub call_id: String,
    /// The call's record, when one was created.
    pub record_id: Option<i64>,
    /// Whether the call was answered (the dialogue ran).
    pub answered: bool,
    /// Dialogue outcome, or busy / no_answer / declined / not_found / failed.
    pub outcome: String,
}

impl Running {
    /// Closes the calls this agent's previous run left open (a crash) before any
    /// new call is recorded: the writer applies writes in order.
    pub(super) fn close_calls_of_previous_run(&self) {
        let started = chrono::Local::now().fixed_offset().to_rfc3339();
        self.ctx.records.apply(
            "closing the calls interrupted by the previous run",
            move |s| {
                let ids = s.close_interrupted(&started)?;
                if !ids.is_empty() {
                    tracing::warn!(
                        calls = ?ids,
                        "calls interrupted by the previous run closed as `interrupted` (their turns, fields and callbacks are kept)"
                    );
                }
                Ok(())
            },
        );
    }

    /// Places an outbound call; returns its SIP Call-ID and record id.
    pub(super) fn place(
        &mut self,
        target: &str,
        vars: std::collections::BTreeMap<String, String>,
        script: Option<&str>,
    ) -> Result<(String, Option<i64>), CallError> {
        let call_id = self.ctx.place_call(target, vars, script, &mut self.calls)?;
        let record_id = self.calls.get(&call_id).and_then(|c| c.record_id);
        Ok((call_id, record_id))
    }

    /// Calls in progress (ringing or answered, either direction).
    pub(super) fn live_calls(&self) -> usize {
        self.calls.len()
    }

    /// Handles one SIP event; returns the call that ended with it, if any.
    pub(super) fn handle(&mut self, ev: SipEvent) -> Option<Finished> {
        let ended = match &ev {
            SipEvent::Call(CallEvent::Ended { call_id, .. }) => self
                .calls
                .get(call_id)
                .map(|c| (call_id.clone(), c.thread.is_some(), c.record_id)),
            _ => None,
        };
        let outcome = self.ctx.on_event(ev, &mut self.calls);
        let (call_id, answered, record_id) = ended?;
        Some(Finished {
            call_id,
            record_id,
            answered,
            outcome: outcome.unwrap_or_else(|| "failed".to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::user_part;

    #[test]
    fn the_called_user_is_found_in_uris_and_name_addrs() {
        assert_eq!(user_part("sip:4001@pbx.example.com"), Some("4001"));
        assert_eq!(
            user_part("\"Hotline\" <sip:4002@10.0.0.1:5060;transport=udp>;tag=ab"),
            Some("4002")
        );
        assert_eq!(user_part("<sips:bot@127.0.0.1>"), Some("bot"));
        assert_eq!(user_part("tel:+861012345678"), Some("+861012345678"));
        assert_eq!(user_part("sip:pbx.example.com"), None);
        assert_eq!(user_part("garbage"), None);
    }
}
