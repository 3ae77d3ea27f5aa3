//! Silero VAD v6 through `ort`: one shared session, one recurrent state per call.
//!
//! The model wants 512 new samples at 16 kHz (256 at 8 kHz) prefixed with the last
//! 64 (32) samples of the previous chunk, a `[2,1,128]` state and the rate. The
//! pipeline feeds 20 ms frames, so [`SileroVad::push`] buffers up to a full chunk.
//! Input tensors are allocated once per call and overwritten in place: the audio path
//! does no Rust-side allocation per frame.

use std::path::Path;
use std::sync::{Arc, Mutex};

use ort::session::Session;
use ort::value::Tensor;

use super::VadError;
use crate::models::ModelPaths;

/// The two rates Silero supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadRate {
    Hz8000,
    Hz16000,
}

impl VadRate {
    /// Rate for `hz`, or an error naming the fix.
    pub fn from_hz(hz: u32) -> Result<Self, VadError> {
        match hz {
            8000 => Ok(Self::Hz8000),
            16000 => Ok(Self::Hz16000),
            other => Err(VadError::Rate(other)),
        }
    }

    pub fn hz(self) -> u32 {
        match self {
            Self::Hz8000 => 8000,
            Self::Hz16000 => 16000,
        }
    }

    /// New samples per model call (32 ms).
    pub fn chunk(self) -> usize {
        match self {
            Self::Hz8000 => 256,
            Self::Hz16000 => 512,
        }
    }

    /// Samples of the previous chunk the model sees as context.
    pub fn context(self) -> usize {
        match self {
            Self::Hz8000 => 32,
            Self::Hz16000 => 64,
        }
    }

    /// Duration of one chunk in milliseconds.
    pub fn chunk_ms(self) -> u32 {
        32
    }
}

const STATE_LEN: usize = 2 * 128;

/// The loaded Silero model, shared by all calls.
///
/// One ort session serves every call behind a mutex: a chunk costs well under
/// 0.1 ms, so even a dozen calls contend for about 1 % of the time, and one
/// session instead of one per call saves its memory arena per call.
#[derive(Clone)]
pub struct SileroModel {
    session: Arc<Mutex<Session>>,
}

impl SileroModel {
    /// Loads `vad/silero_vad.onnx` from the model cache.
    pub fn load(paths: &ModelPaths) -> Result<Self, VadError> {
        let path = paths
            .require("Silero VAD", &paths.silero_vad)?
            .to_path_buf();
        let env = super::ort_environment(paths)?;
        Self::load_file(&env, &path)
    }

    /// Loads a Silero v6 ONNX file with an existing environment.
    pub fn load_file(env: &ort::environment::Environment, path: &Path) -> Result<Self, VadError> {
        let load_err = |message: String| VadError::Load {
            path: path.display().to_string(),
            message,
        };
        // One intra-op thread: the model is tiny and thread hand-offs cost more than they save.
        let session = Session::builder(env)
            .map_err(|e| load_err(e.to_string()))?
            .with_intra_threads(1)
            .map_err(|e| load_err(e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| load_err(e.to_string()))?
            .commit_from_file(path)
            .map_err(|e| load_err(e.to_string()))?;
        let inputs: Vec<&str> = session.inputs().iter().map(|o| o.name()).collect();
        let outputs = session.outputs().len();
        // Inputs are passed by position, so the order must be exactly this.
        if inputs != ["input", "state", "sr"] || outputs < 2 {
            return Err(load_err(format!(
                "unexpected model signature: inputs {inputs:?}, {outputs} outputs (want input, state, sr → output, stateN)"
            )));
        }
        Ok(Self {
            session: Arc::new(Mutex::new(session)),
        })
    }

    /// A fresh per-call detector at `rate`.
    pub fn new_vad(&self, rate: VadRate) -> Result<SileroVad, VadError> {
        SileroVad::new(self.clone(), rate)
    }
}

/// Per-call Silero state: recurrent state, context samples and the partial chunk.
pub struct SileroVad {
    model: SileroModel,
    rate: VadRate,
    /// `[1, context + chunk]`, rewritten in place for each chunk.
    input: Tensor<f32>,
    /// `[2, 1, 128]`, updated from the model's output after each chunk.
    state: Tensor<f32>,
    sr: Tensor<i64>,
    /// Samples waiting for a full chunk (capacity = chunk, never grows).
    pending: Vec<f32>,
    last_prob: f32,
}

impl SileroVad {
    fn new(model: SileroModel, rate: VadRate) -> Result<Self, VadError> {
        let run = |e: ort::Error| VadError::Run(e.to_string());
        let n = rate.context() + rate.chunk();
        let input = Tensor::from_array(([1usize, n], vec![0f32; n])).map_err(run)?;
        let state = Tensor::from_array(([2usize, 1, 128], vec![0f32; STATE_LEN])).map_err(run)?;
        let sr = Tensor::from_array(([1usize], vec![rate.hz() as i64])).map_err(run)?;
        Ok(Self {
            model,
            rate,
            input,
            state,
            sr,
            pending: Vec::with_capacity(rate.chunk()),
            last_prob: 0.0,
        })
    }

    pub fn rate(&self) -> VadRate {
        self.rate
    }

    /// Probability of the most recent chunk (0 before the first).
    pub fn last_probability(&self) -> f32 {
        self.last_prob
    }

    /// Forgets all history (new call or new turn after a long gap).
    pub fn reset(&mut self) {
        self.state.extract_tensor_mut().1.fill(0.0);
        self.input.extract_tensor_mut().1.fill(0.0);
        self.pending.clear();
        self.last_prob = 0.0;
    }

    /// Feeds samples of any length (typically a 20 ms frame, f32 in [-1, 1]) and calls
    /// `on_chunk(probability)` once per completed 32 ms chunk.
    pub fn push(
        &mut self,
        mut samples: &[f32],
        mut on_chunk: impl FnMut(f32),
    ) -> Result<(), VadError> {
        let chunk = self.rate.chunk();
        while !samples.is_empty() {
            let take = (chunk - self.pending.len()).min(samples.len());
            self.pending.extend_from_slice(&samples[..take]);
            samples = &samples[take..];
            if self.pending.len() == chunk {
                let ctx = self.rate.context();
                {
                    let data = self.input.extract_tensor_mut().1;
                    // Context = tail of the previous chunk, which sits at the end of the buffer.
                    data.copy_within(data.len() - ctx.., 0);
                    data[ctx..].copy_from_slice(&self.pending);
                }
                self.pending.clear();
                let p = self.run_model()?;
                on_chunk(p);
            }
        }
        Ok(())
    }

    /// Runs one chunk that is already in `self.input`.
    fn run_model(&mut self) -> Result<f32, VadError> {
        let run = |e: ort::Error| VadError::Run(e.to_string());
        let mut session =
            self.model.session.lock().map_err(|_| {
                VadError::Run("the VAD session mutex was poisoned by a panic".into())
            })?;
        let outputs = session
            .run(ort::inputs![&self.input, &self.state, &self.sr])
            .map_err(run)?;
        let (_, prob) = outputs[0].try_extract_tensor::<f32>().map_err(run)?;
        let (_, new_state) = outputs[1].try_extract_tensor::<f32>().map_err(run)?;
        let p = prob.first().copied().unwrap_or(0.0);
        if new_state.len() == STATE_LEN {
            self.state.extract_tensor_mut().1.copy_from_slice(new_state);
        }
        self.last_prob = p;
        Ok(p)
    }
}
