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

use crate::asr::AsrConfig;
use crate::codec::G711;
use crate::config::Config;
use crate::console::{CallInfo, ConsoleHub, ConsoleOptions, ConsoleServer};
use crate::dialogue::{demo, Conversation, Script};
use crate::models::ModelPaths;
use crate::rtp::session::{MediaConfig, MediaSession, PortAllocator};
use crate::sip::sdp::{Codec, LocalMedia, Negotiated};
use crate::sip::{CallEvent, Command, SipEvent};

use super::engines::SpeechEngines;
use super::records::RecordWriter;
use super::session::{
    run_call, CallMedia, CallReport, CallRequest, CallSetup, CallSignal, CallTuning, ConsoleLink,
    Direction,
};
use super::CallError;

fn g711(codec: Codec) -> G711 {
    match codec {
        Codec::Pcmu => G711::Pcmu,
        Codec::Pcma => G711::Pcma,
    }
}

/// A call between INVITE and its end.
struct LiveCall {
    media: Option<MediaSession>,
    peer: String,
    signal: Option<Sender<CallSignal>>,
    thread: Option<JoinHandle<Result<CallReport, CallError>>>,
}

/// Loads the script the config names, or the embedded demo.
pub fn load_script(config: &Config) -> Result<Script, CallError> {
    Ok(match &config.agent.script {
        Some(path) => Script::load(path)?,
        None => demo::default_script()?,
    })
}

/// Runs the agent until Ctrl-C / SIGTERM.
pub async fn serve(config: Config) -> Result<(), CallError> {
    let paths = ModelPaths::in_cache(&config.models_dir());
    let script = Arc::new(load_script(&config)?);
    let vars = config.agent.vars.clone();
    tracing::info!(script = %script.source, "loading speech models");
    let engines = {
        let paths = paths.clone();
        tokio::task::spawn_blocking(move || SpeechEngines::load(&paths, AsrConfig::default()))
            .await
            .map_err(|e| CallError::Thread(e.to_string()))??
    };
    // Every fixed line is synthesized now, so replies never wait for TTS.
    let probe = Conversation::new(&script, &vars, chrono::Local::now().fixed_offset())?;
    let fixed: Vec<String> = probe
        .all_fixed_lines()
        .into_iter()
        .map(|l| l.text)
        .collect();
    let failed = {
        let engines = engines.clone();
        tokio::task::spawn_blocking(move || engines.prepare_lines(fixed.iter().map(String::as_str)))
            .await
            .map_err(|e| CallError::Thread(e.to_string()))?
    };
    if failed > 0 {
        tracing::warn!(failed, "some script lines could not be pre-synthesized");
    }
    let records = RecordWriter::open(&config.store_path())?;
    // The console is supervision, not service: if it cannot start, calls still run.
    let hub = ConsoleHub::new();
    let console = match ConsoleServer::start(
        ConsoleOptions::from_config(&config, &hub),
        hub.clone(),
    )
    .await
    {
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
    let (commands, mut events, task) = sip.into_parts();

    println!("tingshuo is listening.");
    println!("  dial:    sip:{}@{}", config.sip.user, local);
    println!("  console: http://{}", config.console.listen);
    if config.sip.registrars.is_empty() {
        println!("  mode:    direct calls (no registrar configured)");
    } else {
        println!("  registering on: {}", config.sip.registrars.join(", "));
    }

    let (req_tx, req_rx) = crossbeam_channel::unbounded::<CallRequest>();
    {
        let commands = commands.clone();
        std::thread::Builder::new()
            .name("call-requests".into())
            .spawn(move || {
                for req in req_rx {
                    match req {
                        CallRequest::Hangup { call_id } => {
                            let _ = commands.send(Command::Hangup { call_id });
                        }
                    }
                }
            })
            .map_err(|e| CallError::Thread(e.to_string()))?;
    }

    let mut calls: HashMap<String, LiveCall> = HashMap::new();
    let ctx = Ctx {
        local_ip: config.sip.listen.ip(),
        ports,
        engines,
        records,
        script,
        vars,
        commands: commands.clone(),
        requests: req_tx,
        hub,
    };
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                ctx.on_event(ev, &mut calls);
            }
            _ = &mut shutdown => {
                tracing::info!("shutting down: hanging up calls and un-registering");
                let _ = commands.send(Command::Shutdown);
                // Drain the remaining events (BYEs, un-REGISTER) until the driver stops.
                while let Some(ev) = events.recv().await {
                    ctx.on_event(ev, &mut calls);
                }
                break;
            }
        }
    }
    for (_, mut call) in calls.drain() {
        end_call(&mut call);
    }
    let _ = task.await;
    if let Some(console) = console {
        console.shutdown().await;
    }
    Ok(())
}

async fn shutdown_signal() {
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
    local_ip: std::net::IpAddr,
    ports: Arc<PortAllocator>,
    engines: Arc<SpeechEngines>,
    records: RecordWriter,
    script: Arc<Script>,
    vars: std::collections::BTreeMap<String, String>,
    commands: UnboundedSender<Command>,
    requests: Sender<CallRequest>,
    hub: ConsoleHub,
}

impl Ctx {
    fn on_event(&self, ev: SipEvent, calls: &mut HashMap<String, LiveCall>) {
        match ev {
            SipEvent::Registered { registrar, expires } => {
                tracing::info!(%registrar, expires, "registered")
            }
            SipEvent::RegistrationFailed { registrar, reason } => {
                tracing::warn!(%registrar, %reason, "registration failed")
            }
            SipEvent::Unregistered { registrar } => tracing::info!(%registrar, "unregistered"),
            SipEvent::Call(ev) => self.on_call_event(ev, calls),
        }
    }

    fn on_call_event(&self, ev: CallEvent, calls: &mut HashMap<String, LiveCall>) {
        match ev {
            CallEvent::IncomingCall {
                call_id,
                from,
                remote,
                ..
            } => {
                let _span = crate::logging::call_span(&call_id).entered();
                tracing::info!(%from, "incoming call");
                let mut cfg = MediaConfig::new(self.local_ip, remote.rtp_addr, G711::Pcmu);
                cfg.tap_outbound = true;
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
                            },
                        );
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "no media port for the call; refusing it");
                        let _ = self.commands.send(Command::Reject { call_id, code: 503 });
                    }
                }
            }
            CallEvent::Answered {
                call_id,
                negotiated,
            } => {
                let Some(call) = calls.get_mut(&call_id) else {
                    return;
                };
                let _span = crate::logging::call_span(&call_id).entered();
                self.start_call_thread(&call_id, call, &negotiated);
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
            }
            CallEvent::Ended { call_id, reason } => {
                let _span = crate::logging::call_span(&call_id).entered();
                tracing::info!(?reason, "call ended");
                if let Some(mut call) = calls.remove(&call_id) {
                    end_call(&mut call);
                }
            }
            CallEvent::DtmfInfo { call_id, digit } => {
                tracing::info!(call_id, %digit, "DTMF (SIP INFO)")
            }
            CallEvent::Ringing { .. } | CallEvent::EarlyMedia { .. } => {}
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
        };
        let (sig_tx, sig_rx) = crossbeam_channel::bounded(2);
        let setup = CallSetup {
            call_id: call_id.to_string(),
            peer: call.peer.clone(),
            direction: Direction::Inbound,
            script: self.script.clone(),
            vars: self.vars.clone(),
            tuning: CallTuning::default(),
        };
        let (publisher, control) = self.hub.start_call(CallInfo {
            id: call_id.to_string(),
            caller: call.peer.clone(),
            script: self.script.source.clone(),
            started_at: chrono::Utc::now(),
        });
        let console = Some(ConsoleLink { publisher, control });
        let engines = self.engines.clone();
        let records = self.records.clone();
        let requests = self.requests.clone();
        let span = crate::logging::call_span(call_id);
        let thread = std::thread::Builder::new()
            .name(format!("call-{}", &call_id[..call_id.len().min(8)]))
            .spawn(move || {
                let _g = span.entered();
                let r = run_call(setup, io, engines, records, sig_rx, requests, console);
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
    media.set_codec(g711(n.codec), n.telephone_event_pt);
    if let Some(addr) = n.remote.rtp_addr {
        media.set_remote(addr, None);
    }
}

fn end_call(call: &mut LiveCall) {
    if let Some(sig) = call.signal.take() {
        let _ = sig.send(CallSignal::RemoteHangup);
    }
    if let Some(t) = call.thread.take() {
        let _ = t.join();
    }
    if let Some(media) = call.media.take() {
        let report = media.stop();
        tracing::debug!(?report, "media session stopped");
    }
}
