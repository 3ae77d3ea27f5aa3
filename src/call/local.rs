//! `tingshuo talk`: a call with the computer's microphone and speaker instead of a phone.
//!
//! Why a loopback RTP leg rather than a second pipeline: the call runs exactly the code a
//! phone call runs ([`run_call`] behind a real [`MediaSession`]: jitter buffer, G.711,
//! 20 ms pacer, barge-in with echo rejection, turn timing, records, recording). The
//! only new piece is a bridge thread standing where the phone would be:
//!
//! ```text
//!  mic (44.1/48 kHz) ─ring─▶ bridge: 20 ms frames → 8 kHz → PCMU RTP ──▶ MediaSession ─▶ run_call
//!  speaker ◀─ring─ bridge: RTP → PCMU → device rate ◀──────────────────── MediaSession ◀─┘
//! ```
//!
//! Sound leaking from the speaker into the microphone is the agent's echo, handled
//! by the same echo-aware barge-in as a phone line's. No device → [`DeviceError`] naming
//! the problem and the fix, before any model is loaded.
//!
//! [`DeviceError`]: crate::audio::device::DeviceError

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::audio::device::LocalAudio;
use crate::audio::{f32_to_i16, FrameResampler, FRAME_8K};
use crate::codec::G711;
use crate::config::Config;
use crate::dialogue::Conversation;
use crate::models::ModelPaths;
use crate::rtp::{MediaConfig, MediaSession, PortAllocator};

use super::engines::SpeechEngines;
use super::records::{RecordWriter, WriterIdentity};
use super::session::{
    run_call, CallMedia, CallReport, CallSetup, CallSignal, CallTuning, Direction,
};
use super::CallError;

/// RTP header bytes of the bridge's packets (no CSRC, no extension).
const RTP_HEADER: usize = 12;

/// Runs one local call to its end (the script's end or Ctrl-C). Blocking.
pub fn talk(config: &Config, script: Option<&Path>) -> Result<CallReport, CallError> {
    // Devices first: without them there is no point loading models.
    let (audio, mut dev) = LocalAudio::open_default()?;
    let mut config = config.clone();
    if let Some(path) = script {
        config.agent.script = Some(path.to_path_buf());
    }
    let script = Arc::new(super::agent::load_script(&config)?);
    let vars = config.agent.vars.clone();
    println!("loading speech models…");
    let paths = ModelPaths::in_cache(&config.models_dir());
    let engines = SpeechEngines::load(&paths, config.asr.asr_config(), &config.tts)?;
    let probe = Conversation::new(&script, &vars, chrono::Local::now().fixed_offset())?;
    let fixed: Vec<String> = probe
        .all_fixed_lines()
        .into_iter()
        .map(|l| l.text)
        .collect();
    engines.prepare_lines(fixed.iter().map(String::as_str));
    let records = RecordWriter::open(&config.store_target(), WriterIdentity::default())?;
    let record_id = records
        .start_call(
            &script.source,
            Direction::Inbound.as_str(),
            Some("local audio"),
            &vars,
            &chrono::Local::now().fixed_offset().to_rfc3339(),
        )
        .map_err(|e| tracing::error!(error = %e, "call record could not be created"))
        .ok();

    // The phone's side of the loopback leg.
    let phone = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| CallError::Thread(format!("local RTP socket: {e}")))?;
    phone
        .set_read_timeout(Some(Duration::from_millis(5)))
        .map_err(|e| CallError::Thread(format!("local RTP socket: {e}")))?;
    let phone_addr = phone
        .local_addr()
        .map_err(|e| CallError::Thread(format!("local RTP socket: {e}")))?;
    let ports = PortAllocator::from_config(&config.sip)?;
    let mut mcfg = MediaConfig::new(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some(phone_addr),
        G711::Pcmu,
    );
    mcfg.tap_outbound = true;
    let media = MediaSession::start(&ports, mcfg)?;
    let agent_rtp = media.local_rtp();
    let sent = media
        .outbound_tap()
        .ok_or_else(|| CallError::Thread("the media session has no outbound tap".into()))?;
    let io = CallMedia {
        inbound: media.inbound(),
        sent,
        playback: media.playback(),
        dtmf: media.dtmf_events(),
        rate: media.audio_rate(),
    };

    let stop = Arc::new(AtomicBool::new(false));
    let bridge = {
        let stop = stop.clone();
        let (input_rate, output_rate) = (audio.input_rate, audio.output_rate);
        std::thread::Builder::new()
            .name("local-audio".into())
            .spawn(move || {
                let r = bridge_loop(
                    &phone,
                    agent_rtp,
                    &mut dev.mic,
                    &mut dev.speaker,
                    (input_rate, output_rate),
                    &stop,
                );
                if let Err(e) = r {
                    tracing::error!(error = %e, "local audio bridge stopped");
                }
            })
            .map_err(|e| CallError::Thread(e.to_string()))?
    };

    let (sig_tx, sig_rx) = crossbeam_channel::bounded(2);
    spawn_ctrl_c(sig_tx);
    let (req_tx, _req_rx) = crossbeam_channel::unbounded();
    println!(
        "talking with {} on the default microphone and speaker ({} Hz in, {} Hz out); Ctrl-C ends the call.",
        script.source, audio.input_rate, audio.output_rate
    );
    let setup = CallSetup {
        call_id: format!("local-{}", std::process::id()),
        peer: "local audio".into(),
        direction: Direction::Inbound,
        script: script.clone(),
        vars,
        tuning: CallTuning::default(),
        record_id,
        // Local mode has no phone line to shed or fall back on: a speech failure
        // is logged and the session goes on.
        emergency: None,
        admission: None,
        // No phone line: nobody to transfer to.
        transfer: None,
        legs: None,
        recording: config
            .agent
            .record_audio
            .then(|| super::recording::default_dir(&config.store_path()))
            .map(|dir| {
                super::recording::path_for(
                    &dir,
                    record_id,
                    &format!("local-{}", std::process::id()),
                )
            }),
    };
    let report = run_call(setup, io, engines, records, sig_rx, req_tx, None);
    // Let the last line reach the speaker before closing the devices.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let _ = bridge.join();
    media.stop();
    drop(audio);
    let report = report?;
    println!(
        "call ended: {} ({} turns, {} barge-ins){}",
        report.outcome.as_str(),
        report.turns,
        report.barge_ins,
        report
            .record_id
            .map_or_else(String::new, |id| format!("; `tingshuo records show {id}`"))
    );
    Ok(report)
}

/// Ctrl-C ends the call like a caller hanging up (the record is closed properly).
fn spawn_ctrl_c(tx: crossbeam_channel::Sender<CallSignal>) {
    let _ = std::thread::Builder::new()
        .name("ctrl-c".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            if rt.block_on(tokio::signal::ctrl_c()).is_ok() {
                let _ = tx.send(CallSignal::RemoteHangup);
            }
        });
}

/// The phone end of the loopback leg: microphone → RTP, RTP → speaker.
fn bridge_loop(
    sock: &UdpSocket,
    agent: SocketAddr,
    mic: &mut rtrb::Consumer<f32>,
    speaker: &mut rtrb::Producer<f32>,
    (input_rate, output_rate): (u32, u32),
    stop: &AtomicBool,
) -> Result<(), CallError> {
    let mut up = FrameResampler::new(input_rate, 8000)?;
    let mut down = FrameResampler::new(8000, output_rate)?;
    let mut mic_frame = vec![0.0f32; up.frame_in()];
    let mut pcm = [0i16; FRAME_8K];
    let mut packet = [0u8; RTP_HEADER + FRAME_8K];
    let mut buf = [0u8; 2048];
    let (mut seq, mut ts, ssrc) = (0u16, 0u32, 0x7a1c_0001u32);
    while !stop.load(Ordering::Relaxed) {
        // The microphone's clock paces what we send, as a phone's would.
        while mic.slots() >= mic_frame.len() {
            for s in mic_frame.iter_mut() {
                *s = mic.pop().unwrap_or(0.0);
            }
            let out = up.process(&mic_frame)?;
            for (d, s) in pcm.iter_mut().zip(out) {
                *d = f32_to_i16(*s);
            }
            write_rtp_header(&mut packet, seq, ts, ssrc);
            G711::Pcmu.encode(&pcm, &mut packet[RTP_HEADER..]);
            let _ = sock.send_to(&packet, agent);
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(FRAME_8K as u32);
        }
        // Whatever the agent sent since (the socket's timeout keeps this loop at ~5 ms).
        while let Ok(n) = sock.recv(&mut buf) {
            let Some(payload) = pcmu_payload(&buf[..n]) else {
                continue;
            };
            let mut agent_pcm = [0i16; FRAME_8K];
            G711::Pcmu.decode(payload, &mut agent_pcm);
            for s in down.process_i16(&agent_pcm)? {
                let _ = speaker.push(*s);
            }
        }
    }
    Ok(())
}

fn write_rtp_header(p: &mut [u8], seq: u16, ts: u32, ssrc: u32) {
    p[0] = 0x80;
    p[1] = G711::Pcmu.payload_type();
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// The 20 ms PCMU payload of an RTP packet from the media session, if it is one.
fn pcmu_payload(p: &[u8]) -> Option<&[u8]> {
    if p.len() < RTP_HEADER || p[0] >> 6 != 2 || p[1] & 0x7f != G711::Pcmu.payload_type() {
        return None;
    }
    let header = RTP_HEADER + 4 * usize::from(p[0] & 0x0f);
    p.get(header..header + FRAME_8K)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_packets_parse_back() {
        let mut p = [0u8; RTP_HEADER + FRAME_8K];
        write_rtp_header(&mut p, 7, 1120, 42);
        p[RTP_HEADER] = 0x55;
        let payload = pcmu_payload(&p).expect("PCMU packet");
        assert_eq!((payload.len(), payload[0]), (FRAME_8K, 0x55));
        p[1] = 8; // PCMA is not what the loopback leg negotiated
        assert!(pcmu_payload(&p).is_none());
        assert!(pcmu_payload(&p[..40]).is_none());
    }

    fn rms(x: &[f32]) -> f32 {
        (x.iter().map(|s| s * s).sum::<f32>() / x.len().max(1) as f32).sqrt()
    }

    #[test]
    fn bridge_carries_48k_microphone_to_rtp_and_rtp_to_the_speaker() {
        let agent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        agent
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let phone = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        phone
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let phone_addr = phone.local_addr().unwrap();
        let (mut mic_tx, mut mic_rx) = rtrb::RingBuffer::<f32>::new(48_000);
        let (mut spk_tx, mut spk_rx) = rtrb::RingBuffer::<f32>::new(48_000);
        // Half a second of a 440 Hz tone at 48 kHz, amplitude 0.3.
        for i in 0..24_000 {
            let t = i as f32 / 48_000.0;
            mic_tx
                .push(0.3 * (2.0 * std::f32::consts::PI * 440.0 * t).sin())
                .unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let agent_addr = agent.local_addr().unwrap();
        let bridge = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                bridge_loop(
                    &phone,
                    agent_addr,
                    &mut mic_rx,
                    &mut spk_tx,
                    (48_000, 48_000),
                    &stop,
                )
            })
        };
        // 25 packets of 20 ms, in sequence, carrying the tone at 8 kHz.
        let mut buf = [0u8; 2048];
        let mut tone = Vec::new();
        for k in 0..25u16 {
            let (n, _) = agent
                .recv_from(&mut buf)
                .expect("a packet per 20 ms of microphone");
            assert_eq!(u16::from_be_bytes([buf[2], buf[3]]), k);
            let mut pcm = [0i16; FRAME_8K];
            G711::Pcmu.decode(pcmu_payload(&buf[..n]).unwrap(), &mut pcm);
            tone.extend(pcm.iter().map(|&s| f32::from(s) / 32768.0));
        }
        let level = rms(&tone[FRAME_8K * 3..]);
        assert!((level - 0.212).abs() < 0.03, "tone RMS {level}");
        // The agent's packets come out of the speaker ring at 48 kHz.
        let mut packet = [0u8; RTP_HEADER + FRAME_8K];
        let pcm: Vec<i16> = (0..FRAME_8K)
            .map(|i| (8000.0 * (2.0 * std::f32::consts::PI * i as f32 / 8.0).sin()) as i16)
            .collect();
        for k in 0..10u16 {
            write_rtp_header(&mut packet, k, u32::from(k) * 160, 9);
            G711::Pcmu.encode(&pcm, &mut packet[RTP_HEADER..]);
            agent.send_to(&packet, phone_addr).unwrap();
        }
        let end = std::time::Instant::now() + Duration::from_secs(2);
        while spk_rx.slots() < 10 * 960 && std::time::Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(spk_rx.slots(), 10 * 960, "10 frames at 48 kHz");
        let out: Vec<f32> = (0..spk_rx.slots()).map(|_| spk_rx.pop().unwrap()).collect();
        assert!(rms(&out[960 * 3..]) > 0.1, "speaker got the agent's audio");
        stop.store(true, Ordering::Relaxed);
        bridge.join().unwrap().unwrap();
    }
}
