//! Call recording: one stereo WAV per call (16-bit; left = caller, right = agent) at the
//! call's audio rate: 8 kHz for G.711, 16 kHz for a wideband (G.722) call.
//!
//! The call thread is real-time, so it never touches the file: it hands fixed-size
//! frame pairs to a writer thread over a bounded channel and never waits. If the disk
//! stalls long enough to fill the channel (10 s of audio), frames are dropped and
//! counted rather than delaying the call. Both channels of a pair come from the same
//! 20 ms tick (the inbound frame and the frame sent at that tick), so caller and agent
//! stay sample-aligned in the file.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, TrySendError};

use crate::rtp::{PcmFrame, ToPcmFrame};

/// Frame pairs the writer may lag behind (500 × 20 ms = 10 s).
const QUEUE_FRAMES: usize = 500;
/// Sent frames waiting for their inbound partner (more means the tap ran ahead).
const PENDING_SENT: usize = 8;

/// Why a recording could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("cannot create the recordings folder {path}: {source}; check that the records database's folder is writable")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the recording {path}: {message}; check free disk space and permissions")]
    Write { path: PathBuf, message: String },
    #[error("the recording writer thread failed: {0}")]
    Thread(String),
}

/// Where a call's recording goes: `<dir>/call-<record id>-<call id>.wav`, the call id
/// reduced to characters safe in a file name.
pub fn path_for(dir: &Path, record_id: Option<i64>, call_id: &str) -> PathBuf {
    let safe: String = call_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(48)
        .collect();
    let id = record_id.map_or_else(|| "x".to_string(), |i| i.to_string());
    dir.join(format!("call-{id}-{safe}.wav"))
}

/// The default recordings folder: `recordings/` beside the records database.
pub fn default_dir(store_path: &Path) -> PathBuf {
    store_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("recordings")
}

type Pair = (PcmFrame, PcmFrame);

/// One call's recorder, owned by the call thread.
pub struct CallRecorder {
    path: PathBuf,
    tx: Option<Sender<Pair>>,
    writer: Option<JoinHandle<Result<u64, RecordingError>>>,
    /// Agent frames sent but not yet paired with an inbound frame.
    pending: VecDeque<PcmFrame>,
    dropped: Arc<AtomicU64>,
    /// The file's sample rate: every frame is written at it.
    rate: u32,
}

impl CallRecorder {
    /// Creates the file at `rate` (8000 or 16000, the call's codec) and starts its
    /// writer thread. A frame at the other rate (a codec change mid-call) is converted.
    pub fn start(path: &Path, rate: u32) -> Result<Self, RecordingError> {
        let rate = if rate == 16_000 { 16_000 } else { 8000 };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| RecordingError::Dir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let write_err = |e: hound::Error| RecordingError::Write {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let mut wav = hound::WavWriter::create(path, spec).map_err(write_err)?;
        let (tx, rx) = crossbeam_channel::bounded::<Pair>(QUEUE_FRAMES);
        let file = path.to_path_buf();
        let writer = std::thread::Builder::new()
            .name("call-recorder".into())
            .spawn(move || {
                let err = |e: hound::Error| RecordingError::Write {
                    path: file.clone(),
                    message: e.to_string(),
                };
                let mut frames = 0u64;
                for (caller, agent) in rx {
                    let (caller, agent) = (caller.to_rate(rate), agent.to_rate(rate));
                    let mut w = wav.get_i16_writer(2 * caller.len() as u32);
                    for (c, a) in caller.samples().iter().zip(agent.samples()) {
                        w.write_sample(*c);
                        w.write_sample(*a);
                    }
                    w.flush().map_err(err)?;
                    frames += 1;
                }
                wav.finalize().map_err(err)?;
                Ok(frames)
            })
            .map_err(|e| RecordingError::Thread(e.to_string()))?;
        Ok(Self {
            path: path.to_path_buf(),
            tx: Some(tx),
            writer: Some(writer),
            pending: VecDeque::with_capacity(PENDING_SENT),
            dropped: Arc::new(AtomicU64::new(0)),
            rate,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's sample rate.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// A frame the agent sent (one per tick, silence included).
    pub fn on_sent(&mut self, frame: &impl ToPcmFrame) {
        if self.pending.len() == PENDING_SENT {
            self.pending.pop_front();
        }
        self.pending.push_back(frame.to_pcm_frame());
    }

    /// The inbound frame of a tick: written with the agent frame of the same tick
    /// (silence if none was sent). Never blocks.
    pub fn on_received(&mut self, frame: &impl ToPcmFrame) {
        let agent = self
            .pending
            .pop_front()
            .unwrap_or(PcmFrame::silence(self.rate));
        let Some(tx) = &self.tx else { return };
        match tx.try_send((frame.to_pcm_frame(), agent)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => self.tx = None,
        }
    }

    /// Frames lost because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Closes the file (waits for the writer: call at the end of the call) and returns
    /// its path and the number of frames written.
    pub fn finish(mut self) -> Result<(PathBuf, u64), RecordingError> {
        self.tx = None;
        let frames = match self.writer.take() {
            Some(h) => h
                .join()
                .map_err(|_| RecordingError::Thread("the writer panicked".into()))??,
            None => 0,
        };
        Ok((self.path.clone(), frames))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::FRAME_8K;

    fn frame(v: i16) -> [i16; FRAME_8K] {
        [v; FRAME_8K]
    }

    #[test]
    fn writes_stereo_caller_left_agent_right_aligned_by_tick() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("rec"), Some(7), "abc@host;x");
        assert!(path.ends_with("call-7-abchostx.wav"));
        let mut r = CallRecorder::start(&path, 8000).unwrap();
        for i in 0..50i16 {
            r.on_sent(&frame(1000 + i));
            r.on_received(&frame(-i));
        }
        // A tick without a sent frame records agent silence.
        r.on_received(&frame(5));
        let (p, frames) = r.finish().unwrap();
        assert_eq!(frames, 51);
        let mut wav = hound::WavReader::open(&p).unwrap();
        let spec = wav.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (2, 8000, 16)
        );
        let s: Vec<i16> = wav.samples::<i16>().map(|s| s.unwrap()).collect();
        assert_eq!(s.len(), 51 * FRAME_8K * 2);
        for i in 0..50usize {
            let k = i * FRAME_8K * 2;
            assert_eq!((s[k], s[k + 1]), (-(i as i16), 1000 + i as i16));
            assert_eq!((s[k + 318], s[k + 319]), (-(i as i16), 1000 + i as i16));
        }
        let last = 50 * FRAME_8K * 2;
        assert_eq!((s[last], s[last + 1]), (5, 0));
    }

    #[test]
    fn wideband_call_records_16_khz_and_converts_stray_8_khz_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wide.wav");
        let mut r = CallRecorder::start(&path, 16_000).unwrap();
        assert_eq!(r.rate(), 16_000);
        for i in 0..10i16 {
            r.on_sent(&[100 + i; 320]);
            r.on_received(&[-i; 320]);
        }
        // An 8 kHz frame (e.g. an operator's voice relayed) is upsampled, not dropped.
        r.on_sent(&frame(300));
        r.on_received(&frame(-300));
        let (p, frames) = r.finish().unwrap();
        assert_eq!(frames, 11);
        let mut wav = hound::WavReader::open(&p).unwrap();
        assert_eq!((wav.spec().channels, wav.spec().sample_rate), (2, 16_000));
        let s: Vec<i16> = wav.samples::<i16>().map(|s| s.unwrap()).collect();
        assert_eq!(s.len(), 11 * 320 * 2);
        assert_eq!((s[2 * 320 * 3], s[2 * 320 * 3 + 1]), (-3, 103));
        let last = 10 * 320 * 2;
        assert_eq!((s[last + 100], s[last + 101]), (-300, 300));
    }

    #[test]
    fn unwritable_folder_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let err = CallRecorder::start(&blocker.join("sub").join("a.wav"), 8000)
            .err()
            .expect("a file in the way must fail");
        let msg = err.to_string();
        assert!(
            msg.contains("recordings folder") && msg.contains("writable"),
            "{msg}"
        );
    }

    #[test]
    fn default_dir_is_beside_the_database() {
        assert_eq!(
            default_dir(Path::new("/var/lib/t/records.db")),
            PathBuf::from("/var/lib/t/recordings")
        );
        assert_eq!(
            default_dir(Path::new("records.db")),
            PathBuf::from("./recordings")
        );
    }
}
