//! Listen-in and take-over over WebRTC (`webrtc` crate).
//!
//! Signalling is one authenticated HTTP POST: the browser sends its complete offer
//! (ICE gathered, no trickle) and gets the complete answer. The server offers only
//! PCMU, which is G.711 µ-law at 8 kHz: the call's own audio format, so nothing is
//! resampled and encoding is a table lookup. Each listener gets its own peer
//! connection and task reading the call's audio broadcast, so a slow or stalled
//! browser only drops its own frames. For take-over the browser also sends its
//! microphone; its PCMU packets are decoded into 20 ms frames for the call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, Notify};
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MediaEngine, MIME_TYPE_PCMU};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{APIBuilder, API};
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::interceptor::registry::Registry;
use webrtc::media::Sample;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};
use webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample;
use webrtc::track::track_local::TrackLocal;
use webrtc::track::track_remote::TrackRemote;

use super::hub::{ConsoleHub, Frame, FRAME_SAMPLES};
use crate::codec::G711;

/// How long a peer may take to connect before it is dropped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Open peers one operator may hold at once (a browser tab needs one or two).
pub const MAX_PEERS_PER_OPERATOR: usize = 8;
/// How long the server waits for its own ICE candidates.
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RtcError {
    #[error("WebRTC setup failed: {0}")]
    Setup(String),
    #[error("the browser's offer was refused: {0}. Reload the page; the console needs a browser with WebRTC and PCMU (every current browser has both).")]
    BadOffer(String),
    #[error("call {0} is not active")]
    NoSuchCall(String),
    #[error(
        "gathering ICE candidates timed out; check that the host has a usable network interface"
    )]
    GatherTimeout,
    #[error("{0} already has {MAX_PEERS_PER_OPERATOR} listen-ins open; close some (or reload the page) first")]
    TooManyPeers(String),
}

fn setup<E: std::fmt::Display>(e: E) -> RtcError {
    RtcError::Setup(e.to_string())
}

fn pcmu_capability() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_PCMU.to_owned(),
        clock_rate: 8000,
        channels: 1,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

/// Builds the `webrtc` API with PCMU as the only codec. With `loopback_only` (the
/// console listens on a loopback address) no other interface is offered to browsers,
/// so listen-in media never leaves the host either.
pub fn build_api(loopback_only: bool) -> Result<API, RtcError> {
    let mut media = MediaEngine::default();
    media
        .register_codec(
            RTCRtpCodecParameters {
                capability: pcmu_capability(),
                payload_type: 0,
                ..Default::default()
            },
            RTPCodecType::Audio,
        )
        .map_err(setup)?;
    let registry = register_default_interceptors(Registry::new(), &mut media).map_err(setup)?;
    let mut settings = SettingEngine::default();
    // Operators on the same host reach the console over loopback.
    settings.set_include_loopback_candidate(true);
    // mDNS would need a multicast socket and adds nothing for host candidates.
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    settings.set_network_types(vec![NetworkType::Udp4]);
    if loopback_only {
        settings.set_ip_filter(Box::new(|ip| ip.is_loopback()));
    }
    Ok(APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build())
}

/// What a peer does besides listening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRole {
    Listen,
    /// Listen and send the microphone to the call.
    TakeOver,
}

struct PeerEntry {
    call_id: String,
    role: PeerRole,
    operator: String,
    pc: Arc<RTCPeerConnection>,
    stop: Arc<Notify>,
    closed: Arc<AtomicBool>,
}

/// Active listen-in peers.
pub struct RtcManager {
    api: API,
    hub: ConsoleHub,
    peers: Mutex<HashMap<String, PeerEntry>>,
}

/// The server's answer to an offer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RtcAnswer {
    /// Id to close this peer with.
    pub peer_id: String,
    pub sdp: String,
}

impl RtcManager {
    pub fn new(hub: ConsoleHub, loopback_only: bool) -> Result<Arc<Self>, RtcError> {
        Ok(Arc::new(Self {
            api: build_api(loopback_only)?,
            hub,
            peers: Mutex::new(HashMap::new()),
        }))
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, HashMap<String, PeerEntry>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of open peers (for tests and the live view).
    pub fn peer_count(&self) -> usize {
        self.peers().len()
    }

    /// Operator and call of a peer (to check that a close request is the owner's).
    pub fn peer_owner(&self, peer_id: &str) -> Option<(String, String)> {
        self.peers()
            .get(peer_id)
            .map(|p| (p.operator.clone(), p.call_id.clone()))
    }

    /// Answers a browser's offer with a PCMU track carrying the call's mixed audio.
    pub async fn answer(
        self: &Arc<Self>,
        call_id: &str,
        operator: &str,
        offer_sdp: String,
        role: PeerRole,
    ) -> Result<RtcAnswer, RtcError> {
        let open = self
            .peers()
            .values()
            .filter(|p| p.operator == operator)
            .count();
        if open >= MAX_PEERS_PER_OPERATOR {
            return Err(RtcError::TooManyPeers(operator.to_string()));
        }
        let audio = self
            .hub
            .subscribe_audio(call_id)
            .ok_or_else(|| RtcError::NoSuchCall(call_id.to_string()))?;
        let operator_audio = match role {
            PeerRole::TakeOver => Some(
                self.hub
                    .operator_audio_sender(call_id)
                    .ok_or_else(|| RtcError::NoSuchCall(call_id.to_string()))?,
            ),
            PeerRole::Listen => None,
        };
        let offer = RTCSessionDescription::offer(offer_sdp)
            .map_err(|e| RtcError::BadOffer(e.to_string()))?;
        let pc = Arc::new(
            self.api
                .new_peer_connection(RTCConfiguration::default())
                .await
                .map_err(setup)?,
        );
        let result = self
            .negotiate(&pc, call_id, operator, offer, audio, operator_audio)
            .await;
        if result.is_err() {
            let _ = pc.close().await;
        }
        result
    }

    async fn negotiate(
        self: &Arc<Self>,
        pc: &Arc<RTCPeerConnection>,
        call_id: &str,
        operator: &str,
        offer: RTCSessionDescription,
        audio: tokio::sync::broadcast::Receiver<super::hub::CallAudioFrame>,
        operator_audio: Option<mpsc::Sender<Frame>>,
    ) -> Result<RtcAnswer, RtcError> {
        let role = if operator_audio.is_some() {
            PeerRole::TakeOver
        } else {
            PeerRole::Listen
        };
        let track = Arc::new(TrackLocalStaticSample::new(
            pcmu_capability(),
            "call-audio".to_owned(),
            format!("call-{call_id}"),
        ));
        let sender = pc
            .add_track(Arc::clone(&track) as Arc<dyn TrackLocal + Send + Sync>)
            .await
            .map_err(setup)?;
        // RTCP must be read for the interceptors (receiver reports, NACK) to run.
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1500];
            while sender.read(&mut buf).await.is_ok() {}
        });
        if let Some(tx) = operator_audio {
            pc.on_track(Box::new(move |remote, _receiver, _transceiver| {
                let tx = tx.clone();
                Box::pin(async move {
                    tokio::spawn(forward_microphone(remote, tx));
                })
            }));
        }

        let peer_id = super::auth::random_token()[..16].to_string();
        let stop = Arc::new(Notify::new());
        let closed = Arc::new(AtomicBool::new(false));
        {
            let me = Arc::downgrade(self);
            let id = peer_id.clone();
            pc.on_peer_connection_state_change(Box::new(move |state| {
                if matches!(
                    state,
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
                ) {
                    if let Some(me) = me.upgrade() {
                        let id = id.clone();
                        tokio::spawn(async move { me.close(&id).await });
                    }
                }
                Box::pin(async {})
            }));
        }

        pc.set_remote_description(offer)
            .await
            .map_err(|e| RtcError::BadOffer(e.to_string()))?;
        let answer = pc.create_answer(None).await.map_err(setup)?;
        let mut gathered = pc.gathering_complete_promise().await;
        pc.set_local_description(answer).await.map_err(setup)?;
        tokio::time::timeout(GATHER_TIMEOUT, gathered.recv())
            .await
            .map_err(|_| RtcError::GatherTimeout)?;
        let local = pc
            .local_description()
            .await
            .ok_or_else(|| RtcError::Setup("no local description after answering".into()))?;

        self.peers().insert(
            peer_id.clone(),
            PeerEntry {
                call_id: call_id.to_string(),
                role,
                operator: operator.to_string(),
                pc: pc.clone(),
                stop: stop.clone(),
                closed,
            },
        );
        self.hub.listener_delta(call_id, true);
        tokio::spawn({
            let me = Arc::downgrade(self);
            let id = peer_id.clone();
            async move {
                if feed_track(track, audio, stop).await == FeedEnd::CallEnded {
                    if let Some(me) = me.upgrade() {
                        me.close(&id).await;
                    }
                }
            }
        });
        {
            let me = Arc::downgrade(self);
            let pc = Arc::downgrade(pc);
            let id = peer_id.clone();
            tokio::spawn(async move {
                tokio::time::sleep(CONNECT_TIMEOUT).await;
                let connected = match pc.upgrade() {
                    Some(pc) => pc.connection_state() == RTCPeerConnectionState::Connected,
                    None => true,
                };
                if let (false, Some(me)) = (connected, me.upgrade()) {
                    tracing::warn!(peer = %id, "listen-in peer did not connect within 30 s; closing it");
                    me.close(&id).await;
                }
            });
        }
        Ok(RtcAnswer {
            peer_id,
            sdp: local.sdp,
        })
    }

    /// Closes a peer (idempotent); the listener count drops once.
    pub async fn close(&self, peer_id: &str) {
        let entry = self.peers().remove(peer_id);
        if let Some(p) = entry {
            if !p.closed.swap(true, Ordering::SeqCst) {
                p.stop.notify_one();
                self.hub.listener_delta(&p.call_id, false);
                let _ = p.pc.close().await;
            }
        }
    }
}

impl RtcManager {
    /// Closes an operator's take-over peers on a call: after hand back their
    /// microphone must not reach the call any more.
    pub async fn close_take_over(&self, call_id: &str, operator: &str) {
        let ids: Vec<String> = self
            .peers()
            .iter()
            .filter(|(_, p)| {
                p.role == PeerRole::TakeOver && p.call_id == call_id && p.operator == operator
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.close(&id).await;
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum FeedEnd {
    CallEnded,
    PeerClosed,
}

/// Mixes, encodes and sends the call's audio to one peer until the call ends or the
/// peer closes.
async fn feed_track(
    track: Arc<TrackLocalStaticSample>,
    mut audio: tokio::sync::broadcast::Receiver<super::hub::CallAudioFrame>,
    stop: Arc<Notify>,
) -> FeedEnd {
    let mut pcm = [0i16; FRAME_SAMPLES];
    let mut ulaw = [0u8; FRAME_SAMPLES];
    let mut dropped: u16 = 0;
    loop {
        let frame = tokio::select! {
            r = audio.recv() => r,
            _ = stop.notified() => return FeedEnd::PeerClosed,
        };
        match frame {
            Ok(f) => {
                f.mix_into(&mut pcm);
                G711::Pcmu.encode(&pcm, &mut ulaw);
                let sample = Sample {
                    data: Bytes::copy_from_slice(&ulaw),
                    duration: Duration::from_millis(20),
                    // Keeps RTP timestamps in step with the call after a lag.
                    prev_dropped_packets: std::mem::take(&mut dropped),
                    ..Default::default()
                };
                if track.write_sample(&sample).await.is_err() {
                    return FeedEnd::PeerClosed;
                }
            }
            Err(RecvError::Lagged(n)) => {
                dropped = dropped.saturating_add(u16::try_from(n).unwrap_or(u16::MAX));
            }
            Err(RecvError::Closed) => return FeedEnd::CallEnded,
        }
    }
}

/// Decodes the operator's PCMU microphone packets into 20 ms frames for the call.
///
/// Only payload type 0 is decoded: it is the one codec negotiated, and anything else
/// (comfort noise, DTMF events) is not speech to forward.
async fn forward_microphone(remote: Arc<TrackRemote>, tx: mpsc::Sender<Frame>) {
    let pcmu = G711::Pcmu.payload_type();
    let mut frame = [0i16; FRAME_SAMPLES];
    let mut filled = 0usize;
    while let Ok((packet, _)) = remote.read_rtp().await {
        if packet.header.payload_type != pcmu {
            continue;
        }
        for &b in packet.payload.iter() {
            frame[filled] = G711::Pcmu.decode_sample(b);
            filled += 1;
            if filled == FRAME_SAMPLES {
                filled = 0;
                // Full queue: the call is behind; dropping keeps the operator's voice current.
                if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(frame) {
                    return;
                }
            }
        }
    }
}
