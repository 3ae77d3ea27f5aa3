//! Functional checks for the TFLite → ONNX conversions.
//!
//! tf2onnx does not write byte-identical files from run to run (its graph passes
//! iterate in an order that depends on the Python process), so a checksum alone
//! cannot accept a fresh conversion. Instead the converted model runs once on a
//! fixed input with ONNX Runtime and its output must match the reference
//! conversion's output (shape exactly, statistics within a tight tolerance).

use std::path::Path;

use ort::session::Session;
use ort::value::Tensor;

use super::{ort_environment, ModelPaths};

/// Summary statistics of a model output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutputStats {
    pub shape_len: usize,
    pub sum: f64,
    pub abs_sum: f64,
}

/// What the reference conversion produced for [`run_check`]'s fixed inputs.
struct Reference {
    shape: &'static [i64],
    sum: f64,
    abs_sum: f64,
}

/// Phone ids `sil ... sil eos`-like, fixed so the check is deterministic.
const FASTSPEECH2_IDS: [i32; 24] = [
    1, 45, 120, 30, 99, 212, 55, 78, 101, 150, 11, 66, 180, 200, 23, 90, 140, 35, 70, 160, 42, 215,
    1, 218,
];

/// Measured on the reference conversion and on four other tf2onnx runs whose
/// files all differed byte-wise: the outputs were bit-identical.
const FASTSPEECH2_REF: Reference = Reference {
    shape: &[1, 151, 80],
    sum: -467.225_718_690_082_43,
    abs_sum: 8_339.575_438_459_404,
};

const MB_MELGAN_FRAMES: usize = 20;

/// 20 frames × 300 samples per frame at 24 kHz.
const MB_MELGAN_REF: Reference = Reference {
    shape: &[1, 6000, 1],
    sum: -0.062_534_138_053_820_24,
    abs_sum: 0.336_727_728_329_094_6,
};

fn err(model: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", model.display())
}

fn stats(shape: &[i64], data: &[f32]) -> (Vec<i64>, OutputStats) {
    let sum = data.iter().map(|&v| f64::from(v)).sum();
    let abs_sum = data.iter().map(|&v| f64::from(v).abs()).sum();
    (
        shape.to_vec(),
        OutputStats {
            shape_len: data.len(),
            sum,
            abs_sum,
        },
    )
}

/// Runs the named check's fixed input through `model`; returns the output shape and stats.
pub fn run_check(
    check: &str,
    model: &Path,
    paths: &ModelPaths,
) -> Result<(Vec<i64>, OutputStats), String> {
    let env = ort_environment(paths).map_err(|e| e.to_string())?;
    let mut session = Session::builder(&env)
        .and_then(|mut b| b.commit_from_file(model))
        .map_err(|e| err(model, e))?;
    match check {
        "fastspeech2" => {
            let n = FASTSPEECH2_IDS.len();
            let ids = Tensor::from_array(([1usize, n], FASTSPEECH2_IDS.to_vec()))
                .map_err(|e| err(model, e))?;
            let speaker = Tensor::from_array(([1usize], vec![0i32])).map_err(|e| err(model, e))?;
            let one = || Tensor::from_array(([1usize], vec![1.0f32]));
            let (speed, f0, energy) = (
                one().map_err(|e| err(model, e))?,
                one().map_err(|e| err(model, e))?,
                one().map_err(|e| err(model, e))?,
            );
            let outputs = session
                .run(ort::inputs![
                    "input_ids" => ids,
                    "speaker_ids" => speaker,
                    "speed_ratios" => speed,
                    "f0_ratios" => f0,
                    "energy_ratios" => energy,
                ])
                .map_err(|e| err(model, e))?;
            let mel = outputs
                .get("Identity_1")
                .ok_or_else(|| err(model, "no output Identity_1 (mel)"))?;
            let (shape, data) = mel.try_extract_tensor::<f32>().map_err(|e| err(model, e))?;
            Ok(stats(shape, data))
        }
        "mb_melgan" => {
            // A smooth, speech-like log-mel ramp: deterministic and in the trained range.
            let mel: Vec<f32> = (0..MB_MELGAN_FRAMES * 80)
                .map(|i| {
                    let (t, b) = ((i / 80) as f32, (i % 80) as f32);
                    -1.0 + 0.8 * ((t * 0.3 + b * 0.1).sin()) - b * 0.01
                })
                .collect();
            let input = Tensor::from_array(([1usize, MB_MELGAN_FRAMES, 80], mel))
                .map_err(|e| err(model, e))?;
            let outputs = session
                .run(ort::inputs!["mels" => input])
                .map_err(|e| err(model, e))?;
            let wav = outputs
                .get("Identity")
                .ok_or_else(|| err(model, "no output Identity (waveform)"))?;
            let (shape, data) = wav.try_extract_tensor::<f32>().map_err(|e| err(model, e))?;
            Ok(stats(shape, data))
        }
        other => Err(format!("unknown model check {other:?}")),
    }
}

/// Accepts `model` when its output on the fixed input matches the reference conversion.
pub fn verify(check: &str, model: &Path, paths: &ModelPaths) -> Result<(), String> {
    let reference = match check {
        "fastspeech2" => &FASTSPEECH2_REF,
        "mb_melgan" => &MB_MELGAN_REF,
        other => return Err(format!("unknown model check {other:?}")),
    };
    let (shape, got) = run_check(check, model, paths)?;
    // Both sums are compared on the scale of the output's magnitude (|sum|): the signed sum
    // cancels out, so its own size says nothing about how far apart two conversions are.
    // Another CPU's kernels move the signed sum of the mel output by ~2e-5 of |sum|.
    let scale = reference.abs_sum.abs().max(1.0);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-4 * scale;
    if shape != reference.shape
        || !close(got.sum, reference.sum)
        || !close(got.abs_sum, reference.abs_sum)
    {
        return Err(format!(
            "{}: output differs from the reference conversion: shape {shape:?}, sum {:.6}, |sum| {:.6} \
             (expected {:?}, {:.6}, {:.6})",
            model.display(),
            got.sum,
            got.abs_sum,
            reference.shape,
            reference.sum,
            reference.abs_sum
        ));
    }
    Ok(())
}
