//! Helpers shared by the robustness tests (tests/sip_torture.rs, tests/soak.rs): the
//! agent as a black box (`tingshuo serve` in direct mode on free ports, its own records
//! database), and a caller built on the project's own SIP/RTP stack, as the
//! turn-latency bench does (that bench's caller is tied to its latency bookkeeping,
//! so this is a smaller one: speak an utterance, wait for the agent's reply).
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tingshuo::codec::G711;
use tingshuo::rtp::{Depth, JitterConfig, MediaConfig, MediaSession, PortAllocator, FRAME_SAMPLES};
use tingshuo::sip::driver::start_with;
use tingshuo::sip::sdp::{Codec, LocalMedia};
use tingshuo::sip::{new_call_id, CallEvent, Command as SipCommand, EndReason, SipEvent, UaConfig};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::support::{say, Agent, AgentSetup};

/// An agent frame carries speech above this RMS (16-bit units): far above the
/// digital silence the agent sends between lines.
pub const REPLY_RMS: f64 = 500.0;

/// Synthesizes `text` at 8 kHz with `tingshuo say`, as 20 ms frames.
pub fn say_frames(dir: &Path, name: &str, text: &str) -> Vec<[i16; FRAME_SAMPLES]> {
    say(dir, name, text)
        .chunks(FRAME_SAMPLES)
        .map(|c| {
            let mut f = [0i16; FRAME_SAMPLES];
            f[..c.len()].copy_from_slice(c);
            f
        })
        .collect()
}

pub fn rms(frame: &[i16]) -> f64 {
    let sum: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / frame.len().max(1) as f64).sqrt()
}

/// `tingshuo serve` in direct mode in a temp dir of its own, taking at most
/// `max_calls` calls at once.
pub fn start_agent(max_calls: usize) -> Agent {
    AgentSetup::temp()
        .rtp_ports(40)
        .sip(&format!("max_calls = {max_calls}\n"))
        .start()
}

/// One call from our own UAC to the agent, with its media session.
pub struct Caller {
    pub call_id: String,
    cmds: tokio::sync::mpsc::UnboundedSender<SipCommand>,
    events: UnboundedReceiver<SipEvent>,
    task: tokio::task::JoinHandle<()>,
    pub media: Option<MediaSession>,
    /// The agent's RTP address from its answer.
    pub agent_rtp: SocketAddr,
    /// A clone of the caller's RTP socket: packets sent on it come from the address
    /// the agent latched, so they reach its jitter buffer (non-blocking).
    pub rtp_socket: std::net::UdpSocket,
    inbound: crossbeam_channel::Receiver<tingshuo::rtp::session::InboundFrame>,
    pub ended: Option<EndReason>,
}

impl Caller {
    /// Places a call to the agent and waits for the answer.
    pub async fn call(
        agent: SocketAddr,
        ports: &Arc<PortAllocator>,
        user: &str,
    ) -> Result<Self, String> {
        let mut ua = UaConfig::direct(SocketAddr::from(([127, 0, 0, 1], 0)));
        ua.user = user.to_string();
        let sip = start_with(ua)
            .await
            .map_err(|e| format!("UAC start: {e}"))?;
        let (cmds, mut events, task) = sip.into_parts();
        let mut mcfg = MediaConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST), None, G711::Pcmu);
        mcfg.jitter = JitterConfig {
            depth: Depth::Fixed(Duration::from_millis(20)),
            capacity_frames: 50,
        };
        let (lease, rtp, rtcp) = ports
            .bind(IpAddr::V4(Ipv4Addr::LOCALHOST))
            .map_err(|e| format!("caller media ports: {e}"))?;
        let rtp_socket = rtp
            .try_clone()
            .map_err(|e| format!("clone RTP socket: {e}"))?;
        let media = MediaSession::start_with_sockets(rtp, rtcp, Some(lease), mcfg)
            .map_err(|e| format!("caller media: {e}"))?;
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
        let answered = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(ev) = events.recv().await {
                match ev {
                    SipEvent::Call(CallEvent::Answered { negotiated, .. }) => {
                        return Ok(negotiated)
                    }
                    SipEvent::Call(CallEvent::Ended { reason, .. }) => {
                        return Err(format!("call not answered: {reason:?}"))
                    }
                    _ => {}
                }
            }
            Err("UAC stopped".to_string())
        })
        .await
        .unwrap_or_else(|_| Err("no answer within 20 s".into()));
        let neg = match answered {
            Ok(n) => n,
            Err(e) => {
                let _ = cmds.send(SipCommand::Shutdown);
                let _ = task.await;
                media.stop();
                return Err(e);
            }
        };
        media.set_codec(neg.codec, neg.telephone_event_pt);
        let agent_rtp = neg
            .remote
            .rtp_addr
            .ok_or("the agent's answer has no RTP address")?;
        media.set_remote(agent_rtp, None);
        let inbound = media.inbound();
        Ok(Self {
            call_id,
            cmds,
            events,
            task,
            media: Some(media),
            agent_rtp,
            rtp_socket,
            inbound,
            ended: None,
        })
    }

    fn poll_events(&mut self) {
        while let Ok(ev) = self.events.try_recv() {
            if let SipEvent::Call(CallEvent::Ended { reason, .. }) = ev {
                self.ended = Some(reason);
            }
        }
    }

    /// True once the agent hung up (or the dialog otherwise ended).
    pub fn is_ended(&mut self) -> bool {
        self.poll_events();
        self.ended.is_some()
    }

    pub fn rtp_received(&self) -> u64 {
        self.media
            .as_ref()
            .map(|m| m.stats().rtp_received)
            .unwrap_or(0)
    }

    /// Waits (blocking) until the agent has spoken and then been quiet for `quiet`.
    /// Returns false when nothing was said within `start_timeout` or the call ended.
    pub fn wait_reply(&mut self, start_timeout: Duration, quiet: Duration) -> bool {
        let t0 = Instant::now();
        let mut last_speech: Option<Instant> = None;
        loop {
            if self.is_ended() {
                return last_speech.is_some();
            }
            match self.inbound.recv_timeout(Duration::from_millis(300)) {
                Ok(f) => {
                    if rms(&f.samples) > REPLY_RMS {
                        last_speech = Some(f.at);
                    }
                    match last_speech {
                        Some(ls) if f.at.saturating_duration_since(ls) >= quiet => return true,
                        None if t0.elapsed() > start_timeout => return false,
                        Some(_) if t0.elapsed() > Duration::from_secs(60) => return true,
                        _ => {}
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if t0.elapsed() > start_timeout + Duration::from_secs(60) {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    /// Queues an utterance on the caller's outbound audio (paced at 20 ms).
    pub fn speak(&self, frames: &[[i16; FRAME_SAMPLES]]) {
        let Some(media) = &self.media else { return };
        let play = media.playback();
        for f in frames {
            let _ = play.push_timeout(f, Duration::from_millis(200));
        }
    }

    /// Hangs up (BYE) unless the agent already did, then stops the UAC and media.
    /// Returns how the call ended.
    pub async fn finish(mut self) -> Option<EndReason> {
        self.poll_events();
        if self.ended.is_none() {
            let _ = self.cmds.send(SipCommand::Hangup {
                call_id: self.call_id.clone(),
            });
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while let Some(ev) = self.events.recv().await {
                    if let SipEvent::Call(CallEvent::Ended { reason, .. }) = ev {
                        self.ended = Some(reason);
                        break;
                    }
                }
            })
            .await;
        }
        let _ = self.cmds.send(SipCommand::Shutdown);
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while self.events.recv().await.is_some() {}
        })
        .await;
        let _ = (&mut self.task).await;
        if let Some(m) = self.media.take() {
            let _ = tokio::task::spawn_blocking(move || m.stop()).await;
        }
        self.ended.clone()
    }
}

/// Rows of the agent's records database: (calls, calls ended with an outcome, turns
/// spoken by callers, turns in all).
pub fn record_counts(db: &Path) -> (i64, i64, i64, i64) {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the records database");
    let one = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect(sql) };
    (
        one("SELECT COUNT(*) FROM calls WHERE direction != 'text'"),
        one("SELECT COUNT(*) FROM calls WHERE direction != 'text' AND ended_at IS NOT NULL AND outcome IS NOT NULL"),
        one("SELECT COUNT(*) FROM turns WHERE speaker = 'callee'"),
        one("SELECT COUNT(*) FROM turns"),
    )
}
