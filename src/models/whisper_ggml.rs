//! Whisper CTranslate2 → ggml (whisper.cpp) conversion, done once at provisioning.
//!
//! The only Whisper weights reachable through a package registry are the
//! faster-whisper CTranslate2 model, while whisper-rs (whisper.cpp) loads ggml
//! files. This module parses CT2's `model.bin`, renames and splits the tensors
//! into whisper.cpp's layout, and writes the ggml header whisper.cpp expects:
//! hparams, the 80-band Slaney mel filter bank (computed like librosa, because
//! CT2 does not ship it) and the GPT-2 byte-decoded vocabulary.

use std::collections::HashMap;
use std::io::Write;

/// ggml magic, "ggml" as a little-endian u32.
const GGML_MAGIC: u32 = 0x6767_6d6c;
/// ggml's quantisation format version, folded into the header's ftype the way
/// whisper.cpp's own `quantize` tool does (`ftype + GGML_QNT_VERSION * 1000`).
const GGML_QNT_VERSION: u32 = 2;
const GGML_QNT_VERSION_FACTOR: u32 = 1000;
/// Weights per Q8_0 block (ggml's `QK8_0`).
pub const QK8_0: usize = 32;
/// Bytes per Q8_0 block: an f16 scale then 32 signed bytes (`sizeof(block_q8_0)`).
pub const Q8_0_BLOCK_BYTES: usize = 2 + QK8_0;
/// Sample rate and FFT size whisper.cpp's log-mel front-end uses.
pub const WHISPER_SAMPLE_RATE: u32 = 16_000;
pub const WHISPER_N_FFT: usize = 400;

/// Errors while reading a CT2 model or writing the ggml file.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("CTranslate2 model.bin is truncated or malformed at byte {offset}: {what}")]
    Malformed { offset: usize, what: String },
    #[error("CTranslate2 model.bin has binary version {0}; only version 6 is supported")]
    Version(u32),
    #[error("CTranslate2 model.bin holds a {0}, not a WhisperSpec")]
    Spec(String),
    #[error("CTranslate2 variable {name} has dtype {dtype}, which cannot be converted (only f32, f16, bf16)")]
    Dtype { name: String, dtype: u8 },
    #[error("CTranslate2 model lacks variable {0}")]
    MissingVariable(String),
    #[error("CTranslate2 variable {name} has shape {dims:?}, expected {expected}")]
    Shape {
        name: String,
        dims: Vec<u32>,
        expected: String,
    },
    #[error("vocabulary.txt token {index} ({token:?}) is not GPT-2 byte-encoded")]
    Token { index: usize, token: String },
    #[error("vocabulary.txt has no <|endoftext|> token")]
    NoEndOfText,
    #[error("tensor {name} has rows of {row} values, which Q8_0 cannot store (rows must be a multiple of {QK8_0})")]
    Row { name: String, row: usize },
    #[error("writing the ggml file failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Element type of a CT2 variable (the u8 after the dims in model.bin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct2Dtype {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl Ct2Dtype {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            5 => Self::Bf16,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 | Self::F16 | Self::Bf16 => 2,
            Self::F32 | Self::I32 => 4,
        }
    }
}

/// One variable of a CT2 model; `data` borrows the model bytes (no copy).
#[derive(Debug, Clone)]
pub struct Ct2Variable<'a> {
    pub name: String,
    pub dims: Vec<u32>,
    pub dtype: Ct2Dtype,
    pub data: &'a [u8],
}

impl Ct2Variable<'_> {
    /// Little-endian integer value of a scalar (e.g. `num_heads`).
    fn scalar_int(&self) -> Option<i64> {
        let d = self.data;
        Some(match (self.dtype, d.len()) {
            (Ct2Dtype::I8, 1) => i64::from(d[0] as i8),
            (Ct2Dtype::I16, 2) => i64::from(i16::from_le_bytes([d[0], d[1]])),
            (Ct2Dtype::I32, 4) => i64::from(i32::from_le_bytes([d[0], d[1], d[2], d[3]])),
            _ => return None,
        })
    }

    /// Values as f32 (for vectors written in f32).
    fn to_f32(&self) -> Result<Vec<f32>, ConvertError> {
        match self.dtype {
            Ct2Dtype::F32 => Ok(self
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()),
            Ct2Dtype::F16 => Ok(self
                .data
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect()),
            Ct2Dtype::Bf16 => Ok(self
                .data
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect()),
            _ => Err(ConvertError::Dtype {
                name: self.name.clone(),
                dtype: self.dtype as u8,
            }),
        }
    }

    /// Values as little-endian f16 bytes (for matrices written in f16).
    fn to_f16_bytes(&self) -> Result<Vec<u8>, ConvertError> {
        match self.dtype {
            Ct2Dtype::F16 => Ok(self.data.to_vec()),
            _ => Ok(self
                .to_f32()?
                .into_iter()
                .flat_map(|v| half::f16::from_f32(v).to_le_bytes())
                .collect()),
        }
    }
}

/// A parsed CT2 `model.bin`.
#[derive(Debug)]
pub struct Ct2Model<'a> {
    pub spec: String,
    pub revision: u32,
    pub variables: Vec<Ct2Variable<'a>>,
    pub aliases: Vec<(String, String)>,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ConvertError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(ConvertError::Malformed {
                offset: self.pos,
                what: format!(
                    "{what}: needs {n} bytes, {} left",
                    self.bytes.len() - self.pos
                ),
            }),
        }
    }
    fn u8(&mut self, what: &str) -> Result<u8, ConvertError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, ConvertError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32, ConvertError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// u16 length + bytes, NUL-terminated.
    fn string(&mut self, what: &str) -> Result<String, ConvertError> {
        let n = self.u16(what)? as usize;
        let offset = self.pos;
        let raw = self.take(n, what)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(raw.to_vec()).map_err(|_| ConvertError::Malformed {
            offset,
            what: format!("{what} is not UTF-8"),
        })
    }
}

/// Parses a CT2 `model.bin` (binary version 6) without copying tensor data.
pub fn parse_ct2(bytes: &[u8]) -> Result<Ct2Model<'_>, ConvertError> {
    let mut c = Cursor { bytes, pos: 0 };
    let version = c.u32("binary version")?;
    if version != 6 {
        return Err(ConvertError::Version(version));
    }
    let spec = c.string("spec name")?;
    let revision = c.u32("spec revision")?;
    let count = c.u32("variable count")? as usize;
    let mut variables = Vec::with_capacity(count.min(4096));
    for _ in 0..count {
        let name = c.string("variable name")?;
        let rank = c.u8("rank")? as usize;
        let mut dims = Vec::with_capacity(rank);
        for _ in 0..rank {
            dims.push(c.u32("dimension")?);
        }
        let dtype_offset = c.pos;
        let raw_dtype = c.u8("dtype")?;
        let dtype = Ct2Dtype::from_u8(raw_dtype).ok_or_else(|| ConvertError::Malformed {
            offset: dtype_offset,
            what: format!("unknown dtype {raw_dtype} for {name}"),
        })?;
        let nbytes = c.u32("byte count")? as usize;
        let elements: usize = dims.iter().map(|&d| d as usize).product();
        if elements * dtype.size() != nbytes {
            return Err(ConvertError::Malformed {
                offset: c.pos,
                what: format!(
                    "{name}: {nbytes} bytes for shape {dims:?} of {} byte elements",
                    dtype.size()
                ),
            });
        }
        let data = c.take(nbytes, &name)?;
        variables.push(Ct2Variable {
            name,
            dims,
            dtype,
            data,
        });
    }
    let mut aliases = Vec::new();
    if c.pos < bytes.len() {
        let n = c.u32("alias count")?;
        for _ in 0..n {
            let alias = c.string("alias")?;
            let target = c.string("alias target")?;
            aliases.push((alias, target));
        }
    }
    Ok(Ct2Model {
        spec,
        revision,
        variables,
        aliases,
    })
}

/// Whisper's model hyper-parameters, in ggml header order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hparams {
    pub n_vocab: u32,
    pub n_audio_ctx: u32,
    pub n_audio_state: u32,
    pub n_audio_head: u32,
    pub n_audio_layer: u32,
    pub n_text_ctx: u32,
    pub n_text_state: u32,
    pub n_text_head: u32,
    pub n_text_layer: u32,
    pub n_mels: u32,
}

/// Slaney mel scale (librosa's default, `htk=False`).
fn hz_to_mel(hz: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// Mel filter bank like `librosa.filters.mel(sr, n_fft, n_mels)` (Slaney scale and
/// area normalisation, fmin 0, fmax sr/2), row-major `[n_mels][1 + n_fft/2]`.
///
/// Computed in f64 and rounded to f32 at the same two points librosa does, so the
/// values match OpenAI's `mel_filters.npz` to float32 precision.
pub fn mel_filters(sample_rate: u32, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let sr = f64::from(sample_rate);
    let n_bins = 1 + n_fft / 2;
    let fft_freqs: Vec<f64> = (0..n_bins).map(|k| k as f64 * sr / n_fft as f64).collect();
    let max_mel = hz_to_mel(sr / 2.0);
    let min_mel = hz_to_mel(0.0);
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(min_mel + (max_mel - min_mel) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut weights = vec![0f32; n_mels * n_bins];
    for i in 0..n_mels {
        let lower_diff = mel_f[i + 1] - mel_f[i];
        let upper_diff = mel_f[i + 2] - mel_f[i + 1];
        let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = -(mel_f[i] - f) / lower_diff;
            let upper = (mel_f[i + 2] - f) / upper_diff;
            // `max(0.0)` may keep -0.0 or not depending on optimisation (IEEE leaves
            // the sign of equal zeros open), which changed the file's checksum between
            // debug and release builds: clamp explicitly to +0.0, as numpy does.
            let w = lower.min(upper);
            let w = if w > 0.0 { w as f32 } else { 0.0f32 };
            weights[i * n_bins + k] = (f64::from(w) * enorm) as f32;
        }
    }
    weights
}

/// GPT-2's byte ↔ printable-character table: the inverse of `bytes_to_unicode`.
pub fn gpt2_byte_decoder() -> HashMap<char, u8> {
    let printable = |b: u32| {
        (u32::from(b'!')..=u32::from(b'~')).contains(&b)
            || (0xA1..=0xAC).contains(&b)
            || (0xAE..=0xFF).contains(&b)
    };
    let mut map = HashMap::with_capacity(256);
    let mut next = 0u32;
    for b in 0u32..256 {
        let c = if printable(b) {
            b
        } else {
            next += 1;
            255 + next
        };
        if let Some(ch) = char::from_u32(c) {
            map.insert(ch, b as u8);
        }
    }
    map
}

/// Decodes one GPT-2 byte-encoded token (e.g. `Ġä½ł`) to its raw bytes.
pub fn decode_gpt2_token(token: &str, decoder: &HashMap<char, u8>) -> Option<Vec<u8>> {
    token.chars().map(|c| decoder.get(&c).copied()).collect()
}

/// Decoded tokens of `vocabulary.txt` before `<|endoftext|>` (whisper.cpp adds the
/// special tokens itself).
pub fn decode_vocabulary(vocabulary: &str) -> Result<Vec<Vec<u8>>, ConvertError> {
    let decoder = gpt2_byte_decoder();
    let mut out = Vec::new();
    for (index, line) in vocabulary.split('\n').enumerate() {
        if line == "<|endoftext|>" {
            return Ok(out);
        }
        let bytes = decode_gpt2_token(line, &decoder).ok_or_else(|| ConvertError::Token {
            index,
            token: line.to_string(),
        })?;
        out.push(bytes);
    }
    Err(ConvertError::NoEndOfText)
}

/// How the big matrices are stored: the ggml file's `ftype`, which whisper.cpp
/// turns into the type (`wtype`) of every attention, MLP and token-embedding
/// matrix. Conv kernels stay f16 and vectors/positional embeddings f32 either way,
/// as whisper.cpp creates them with fixed types.
///
/// Q8_0 is the default: on the 2-core EPYC (AVX-512 VNNI), one thread, audio_ctx
/// sized to the clip, Whisper base decoded 1 s / 2 s / 4 s telephone clips in
/// 606 / 571 / 810 ms wall (370 / 360 / 510 ms CPU) vs 842 / 774 / 1057 ms
/// (510 / 480 / 680 ms CPU) with f16, medians of 7 interleaved runs
/// (`cargo bench --bench asr_ab -- time ...`). Corpus CER stayed level: voice A
/// 8.32 % vs 7.89 %, voice B 12.58 % vs 13.86 %. The file is 81.8 MB, not 148 MB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightType {
    F16,
    #[default]
    Q8_0,
}

impl WeightType {
    /// The header's ftype value (ggml's `GGML_FTYPE_MOSTLY_*`, with the
    /// quantisation version for quantised types, as whisper.cpp's `quantize` writes).
    pub fn header_ftype(self) -> u32 {
        match self {
            Self::F16 => 1,
            Self::Q8_0 => 7 + GGML_QNT_VERSION * GGML_QNT_VERSION_FACTOR,
        }
    }

    fn ggml_type(self) -> GgmlType {
        match self {
            Self::F16 => GgmlType::F16,
            Self::Q8_0 => GgmlType::Q8_0,
        }
    }
}

/// Element type of one tensor record (ggml's `ggml_type` ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GgmlType {
    F32,
    F16,
    Q8_0,
}

impl GgmlType {
    fn id(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q8_0 => 8,
        }
    }
}

/// Quantises `values` (whole rows of 32·k values) into ggml Q8_0 blocks, exactly
/// like ggml's reference `quantize_row_q8_0_ref`: per block of 32, the scale
/// `d = max|x| / 127` (stored as f16) and `q = round(x / d)` as i8 (computed as
/// `x * (1/d)` in f32, rounding half away from zero like C's `roundf`).
///
/// Pure f32 arithmetic in a fixed order (Rust never fuses or reorders it), so the
/// output is identical in debug and release builds and on every x86-64 machine.
pub fn quantize_q8_0(values: &[f32]) -> Vec<u8> {
    debug_assert!(values.len().is_multiple_of(QK8_0));
    let mut out = Vec::with_capacity(values.len() / QK8_0 * Q8_0_BLOCK_BYTES);
    for block in values.chunks_exact(QK8_0) {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend(half::f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|&x| (x * id).round() as i8 as u8));
    }
    out
}

/// Values of Q8_0 blocks (`d * q`), the inverse of [`quantize_q8_0`] up to rounding.
pub fn dequantize_q8_0(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(Q8_0_BLOCK_BYTES)
        .flat_map(|b| {
            let d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
            b[2..].iter().map(move |&q| d * f32::from(q as i8))
        })
        .collect()
}

/// A tensor ready for the ggml file.
struct GgmlTensor {
    name: String,
    /// Shape in PyTorch order (outermost first); written reversed.
    shape: Vec<usize>,
    ty: GgmlType,
    data: Vec<u8>,
}

/// What whisper.cpp makes of a tensor, which fixes its type in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Attention/MLP/token-embedding matrices: the header's weight type.
    Matrix,
    /// Conv kernels: f16 (whisper.cpp's `vtype` for any non-f32 model).
    Conv,
    /// Biases, norms, positional embeddings: f32.
    F32,
}

/// Encodes `values` as `ty`; Q8_0 needs rows (the innermost dimension) of 32·k.
fn encode(
    name: &str,
    shape: &[usize],
    values: &[f32],
    ty: GgmlType,
) -> Result<Vec<u8>, ConvertError> {
    Ok(match ty {
        GgmlType::F32 => f32_bytes(values),
        GgmlType::F16 => values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
        GgmlType::Q8_0 => {
            let row = shape.last().copied().unwrap_or(0);
            if row == 0 || row % QK8_0 != 0 {
                return Err(ConvertError::Row {
                    name: name.to_string(),
                    row,
                });
            }
            quantize_q8_0(values)
        }
    })
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

struct Vars<'m, 'a> {
    by_name: HashMap<&'m str, &'m Ct2Variable<'a>>,
    /// Type of the big matrices in the output.
    wtype: WeightType,
}

impl<'m, 'a> Vars<'m, 'a> {
    fn get(&self, name: &str) -> Result<&'m Ct2Variable<'a>, ConvertError> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| ConvertError::MissingVariable(name.to_string()))
    }

    fn int(&self, name: &str) -> Result<u32, ConvertError> {
        let v = self.get(name)?;
        v.scalar_int()
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| ConvertError::Shape {
                name: name.to_string(),
                dims: v.dims.clone(),
                expected: "an integer scalar".to_string(),
            })
    }

    fn dims(&self, name: &str, rank: usize) -> Result<Vec<usize>, ConvertError> {
        let v = self.get(name)?;
        if v.dims.len() != rank {
            return Err(ConvertError::Shape {
                name: name.to_string(),
                dims: v.dims.clone(),
                expected: format!("rank {rank}"),
            });
        }
        Ok(v.dims.iter().map(|&d| d as usize).collect())
    }

    fn count_layers(&self, prefix: &str) -> u32 {
        let mut n = 0;
        while self
            .by_name
            .keys()
            .any(|k| k.starts_with(&format!("{prefix}/layer_{n}/")))
        {
            n += 1;
        }
        n
    }
}

/// Builds one tensor from a whole CT2 variable, typed by its role.
fn whole(vars: &Vars, ct2: &str, ggml: &str, role: Role) -> Result<GgmlTensor, ConvertError> {
    let v = vars.get(ct2)?;
    let shape: Vec<usize> = v.dims.iter().map(|&d| d as usize).collect();
    let ty = match role {
        Role::Matrix => vars.wtype.ggml_type(),
        Role::Conv => GgmlType::F16,
        Role::F32 => GgmlType::F32,
    };
    let data = match ty {
        // CT2 already holds f16: copy it bit for bit.
        GgmlType::F16 => v.to_f16_bytes()?,
        _ => encode(ggml, &shape, &v.to_f32()?, ty)?,
    };
    Ok(GgmlTensor {
        name: ggml.to_string(),
        shape,
        ty,
        data,
    })
}

/// Splits a fused CT2 linear (rows stacked) into `parts` equal row blocks.
fn split_rows(
    vars: &Vars,
    ct2: &str,
    parts: usize,
) -> Result<(Vec<Vec<f32>>, Vec<usize>), ConvertError> {
    let v = vars.get(ct2)?;
    let shape: Vec<usize> = v.dims.iter().map(|&d| d as usize).collect();
    if shape.is_empty() || !shape[0].is_multiple_of(parts) {
        return Err(ConvertError::Shape {
            name: ct2.to_string(),
            dims: v.dims.clone(),
            expected: format!("first dimension divisible by {parts}"),
        });
    }
    let values = v.to_f32()?;
    let chunk = values.len() / parts;
    let mut sub_shape = shape.clone();
    sub_shape[0] /= parts;
    Ok((
        values.chunks(chunk).map(<[f32]>::to_vec).collect(),
        sub_shape,
    ))
}

fn matrix(
    name: String,
    shape: Vec<usize>,
    values: &[f32],
    wtype: WeightType,
) -> Result<GgmlTensor, ConvertError> {
    let ty = wtype.ggml_type();
    let data = encode(&name, &shape, values, ty)?;
    Ok(GgmlTensor {
        name,
        shape,
        ty,
        data,
    })
}

fn vector(name: String, values: &[f32]) -> GgmlTensor {
    GgmlTensor {
        name,
        shape: vec![values.len()],
        ty: GgmlType::F32,
        data: f32_bytes(values),
    }
}

/// Fused attention weights `linear_0`/`linear_1` → query/key/value tensors.
///
/// `parts` is 3 for self-attention (q,k,v stacked) and 2 for the cross-attention
/// key/value projection. whisper.cpp has no key bias (it is zero in Whisper).
fn fused_attention(
    vars: &Vars,
    ct2_prefix: &str,
    ggml_prefix: &str,
    parts: usize,
    out: &mut dyn Emit,
) -> Result<(), ConvertError> {
    let names: &[&str] = if parts == 3 {
        &["query", "key", "value"]
    } else {
        &["key", "value"]
    };
    let (weights, shape) = split_rows(vars, &format!("{ct2_prefix}/weight"), parts)?;
    let (biases, _) = split_rows(vars, &format!("{ct2_prefix}/bias"), parts)?;
    for ((name, w), b) in names.iter().zip(&weights).zip(&biases) {
        out.push(matrix(
            format!("{ggml_prefix}.{name}.weight"),
            shape.clone(),
            w,
            vars.wtype,
        )?);
        if *name != "key" {
            out.push(vector(format!("{ggml_prefix}.{name}.bias"), b));
        }
    }
    Ok(())
}

fn linear(vars: &Vars, ct2: &str, ggml: &str, out: &mut dyn Emit) -> Result<(), ConvertError> {
    out.push(whole(
        vars,
        &format!("{ct2}/weight"),
        &format!("{ggml}.weight"),
        Role::Matrix,
    )?);
    out.push(whole(
        vars,
        &format!("{ct2}/bias"),
        &format!("{ggml}.bias"),
        Role::F32,
    )?);
    Ok(())
}

/// A block's self-attention: layer norm, fused q/k/v, output projection.
fn self_attention(vars: &Vars, c: &str, g: &str, t: &mut dyn Emit) -> Result<(), ConvertError> {
    layer_norm(
        vars,
        &format!("{c}/self_attention/layer_norm"),
        &format!("{g}.attn_ln"),
        t,
    )?;
    fused_attention(
        vars,
        &format!("{c}/self_attention/linear_0"),
        &format!("{g}.attn"),
        3,
        t,
    )?;
    linear(
        vars,
        &format!("{c}/self_attention/linear_1"),
        &format!("{g}.attn.out"),
        t,
    )
}

/// A block's feed-forward part: layer norm and the two projections.
fn feed_forward(vars: &Vars, c: &str, g: &str, t: &mut dyn Emit) -> Result<(), ConvertError> {
    layer_norm(
        vars,
        &format!("{c}/ffn/layer_norm"),
        &format!("{g}.mlp_ln"),
        t,
    )?;
    linear(vars, &format!("{c}/ffn/linear_0"), &format!("{g}.mlp.0"), t)?;
    linear(vars, &format!("{c}/ffn/linear_1"), &format!("{g}.mlp.2"), t)
}

fn layer_norm(vars: &Vars, ct2: &str, ggml: &str, out: &mut dyn Emit) -> Result<(), ConvertError> {
    out.push(whole(
        vars,
        &format!("{ct2}/gamma"),
        &format!("{ggml}.weight"),
        Role::F32,
    )?);
    out.push(whole(
        vars,
        &format!("{ct2}/beta"),
        &format!("{ggml}.bias"),
        Role::F32,
    )?);
    Ok(())
}

/// Hyper-parameters from the CT2 tensor shapes and scalars.
pub fn hparams(model: &Ct2Model) -> Result<Hparams, ConvertError> {
    let vars = index(model, WeightType::default());
    hparams_of(&vars)
}

fn index<'m, 'a>(model: &'m Ct2Model<'a>, wtype: WeightType) -> Vars<'m, 'a> {
    Vars {
        by_name: model
            .variables
            .iter()
            .map(|v| (v.name.as_str(), v))
            .collect(),
        wtype,
    }
}

fn hparams_of(vars: &Vars) -> Result<Hparams, ConvertError> {
    let emb = vars.dims("decoder/embeddings/weight", 2)?;
    let enc_pos = vars.dims("encoder/position_encodings/encodings", 2)?;
    let dec_pos = vars.dims("decoder/position_encodings/encodings", 2)?;
    let conv1 = vars.dims("encoder/conv1/weight", 3)?;
    let u = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    Ok(Hparams {
        n_vocab: u(emb[0]),
        n_audio_ctx: u(enc_pos[0]),
        n_audio_state: u(enc_pos[1]),
        n_audio_head: vars.int("encoder/num_heads")?,
        n_audio_layer: vars.count_layers("encoder"),
        n_text_ctx: u(dec_pos[0]),
        n_text_state: u(emb[1]),
        n_text_head: vars.int("decoder/num_heads")?,
        n_text_layer: vars.count_layers("decoder"),
        n_mels: u(conv1[1]),
    })
}

/// All tensors in whisper.cpp naming, in a deterministic order.
fn ggml_tensors(vars: &Vars, hp: &Hparams, t: &mut dyn Emit) -> Result<(), ConvertError> {
    t.push(whole(
        vars,
        "encoder/position_encodings/encodings",
        "encoder.positional_embedding",
        Role::F32,
    )?);
    for conv in ["conv1", "conv2"] {
        t.push(whole(
            vars,
            &format!("encoder/{conv}/weight"),
            &format!("encoder.{conv}.weight"),
            Role::Conv,
        )?);
        // whisper.cpp wants conv biases as [n, 1] in f32.
        let mut bias = whole(
            vars,
            &format!("encoder/{conv}/bias"),
            &format!("encoder.{conv}.bias"),
            Role::F32,
        )?;
        bias.shape.push(1);
        t.push(bias);
    }
    for i in 0..hp.n_audio_layer {
        let c = format!("encoder/layer_{i}");
        let g = format!("encoder.blocks.{i}");
        self_attention(vars, &c, &g, t)?;
        feed_forward(vars, &c, &g, t)?;
    }
    layer_norm(vars, "encoder/layer_norm", "encoder.ln_post", t)?;

    t.push(whole(
        vars,
        "decoder/position_encodings/encodings",
        "decoder.positional_embedding",
        Role::F32,
    )?);
    t.push(whole(
        vars,
        "decoder/embeddings/weight",
        "decoder.token_embedding.weight",
        Role::Matrix,
    )?);
    for i in 0..hp.n_text_layer {
        let c = format!("decoder/layer_{i}");
        let g = format!("decoder.blocks.{i}");
        self_attention(vars, &c, &g, t)?;
        layer_norm(
            vars,
            &format!("{c}/attention/layer_norm"),
            &format!("{g}.cross_attn_ln"),
            t,
        )?;
        linear(
            vars,
            &format!("{c}/attention/linear_0"),
            &format!("{g}.cross_attn.query"),
            t,
        )?;
        fused_attention(
            vars,
            &format!("{c}/attention/linear_1"),
            &format!("{g}.cross_attn"),
            2,
            t,
        )?;
        linear(
            vars,
            &format!("{c}/attention/linear_2"),
            &format!("{g}.cross_attn.out"),
            t,
        )?;
        feed_forward(vars, &c, &g, t)?;
    }
    layer_norm(vars, "decoder/layer_norm", "decoder.ln", t)?;
    Ok(())
}

/// Receives converted tensors in file order.
trait Emit {
    fn push(&mut self, tensor: GgmlTensor);
}

/// Writes each tensor as soon as it is converted (no whole-model copy in memory).
struct Sink<'w, W: Write> {
    out: &'w mut W,
    count: usize,
    error: Option<std::io::Error>,
}

impl<W: Write> Sink<'_, W> {
    fn write(&mut self, t: &GgmlTensor) -> std::io::Result<()> {
        put_i32(self.out, t.shape.len() as u32)?;
        put_i32(self.out, t.name.len() as u32)?;
        put_i32(self.out, t.ty.id())?;
        for &d in t.shape.iter().rev() {
            put_i32(self.out, d as u32)?;
        }
        self.out.write_all(t.name.as_bytes())?;
        self.out.write_all(&t.data)
    }
}

impl<W: Write> Emit for Sink<'_, W> {
    fn push(&mut self, tensor: GgmlTensor) {
        if self.error.is_none() {
            self.error = self.write(&tensor).err();
            self.count += 1;
        }
    }
}

fn put_i32(out: &mut impl Write, v: u32) -> std::io::Result<()> {
    out.write_all(&v.to_le_bytes())
}

/// What [`convert`] wrote.
#[derive(Debug, Clone)]
pub struct ConvertSummary {
    pub hparams: Hparams,
    pub tensors: usize,
    pub vocabulary: usize,
    pub bytes: u64,
}

/// Converts a CT2 Whisper `model.bin` plus its `vocabulary.txt` into the ggml
/// file `tingshuo models fetch` provisions (matrices in [`WeightType::default`]).
pub fn convert(
    model_bin: &[u8],
    vocabulary: &str,
    out: &mut impl Write,
) -> Result<ConvertSummary, ConvertError> {
    convert_with(model_bin, vocabulary, WeightType::default(), out)
}

/// [`convert`] with the big matrices stored as `wtype` (f16 for A/B comparisons).
pub fn convert_with(
    model_bin: &[u8],
    vocabulary: &str,
    wtype: WeightType,
    out: &mut impl Write,
) -> Result<ConvertSummary, ConvertError> {
    let model = parse_ct2(model_bin)?;
    if model.spec != "WhisperSpec" {
        return Err(ConvertError::Spec(model.spec));
    }
    let vars = index(&model, wtype);
    let hp = hparams_of(&vars)?;
    let tokens = decode_vocabulary(vocabulary)?;
    let mut counter = CountingWriter { inner: out, n: 0 };
    let w = &mut counter;

    put_i32(w, GGML_MAGIC)?;
    for v in [
        hp.n_vocab,
        hp.n_audio_ctx,
        hp.n_audio_state,
        hp.n_audio_head,
        hp.n_audio_layer,
        hp.n_text_ctx,
        hp.n_text_state,
        hp.n_text_head,
        hp.n_text_layer,
        hp.n_mels,
        wtype.header_ftype(),
    ] {
        put_i32(w, v)?;
    }

    let n_bins = 1 + WHISPER_N_FFT / 2;
    let filters = mel_filters(WHISPER_SAMPLE_RATE, WHISPER_N_FFT, hp.n_mels as usize);
    put_i32(w, hp.n_mels)?;
    put_i32(w, n_bins as u32)?;
    w.write_all(&f32_bytes(&filters))?;

    put_i32(w, tokens.len() as u32)?;
    for t in &tokens {
        put_i32(w, t.len() as u32)?;
        w.write_all(t)?;
    }

    let mut sink = Sink {
        out: &mut *w,
        count: 0,
        error: None,
    };
    ggml_tensors(&vars, &hp, &mut sink)?;
    if let Some(e) = sink.error {
        return Err(e.into());
    }
    let tensors = sink.count;
    w.flush()?;
    Ok(ConvertSummary {
        hparams: hp,
        tensors,
        vocabulary: tokens.len(),
        bytes: counter.n,
    })
}

struct CountingWriter<'w, W: Write> {
    inner: &'w mut W,
    n: u64,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Little CT2 writer for synthetic models.
    #[derive(Default)]
    struct Ct2Builder {
        vars: Vec<(String, Vec<u32>, u8, Vec<u8>)>,
    }

    impl Ct2Builder {
        fn f16(&mut self, name: &str, dims: &[u32], f: impl Fn(usize) -> f32) {
            let n: usize = dims.iter().map(|&d| d as usize).product();
            let data = (0..n)
                .flat_map(|i| half::f16::from_f32(f(i)).to_le_bytes())
                .collect();
            self.vars.push((name.to_string(), dims.to_vec(), 4, data));
        }
        fn i16(&mut self, name: &str, v: i16) {
            self.vars
                .push((name.to_string(), vec![], 2, v.to_le_bytes().to_vec()));
        }
        fn build(&self, aliases: &[(&str, &str)]) -> Vec<u8> {
            let mut out = Vec::new();
            let s = |out: &mut Vec<u8>, s: &str| {
                out.extend(((s.len() + 1) as u16).to_le_bytes());
                out.extend(s.as_bytes());
                out.push(0);
            };
            out.extend(6u32.to_le_bytes());
            s(&mut out, "WhisperSpec");
            out.extend(3u32.to_le_bytes());
            out.extend((self.vars.len() as u32).to_le_bytes());
            for (name, dims, dtype, data) in &self.vars {
                s(&mut out, name);
                out.push(dims.len() as u8);
                for d in dims {
                    out.extend(d.to_le_bytes());
                }
                out.push(*dtype);
                out.extend((data.len() as u32).to_le_bytes());
                out.extend(data);
            }
            out.extend((aliases.len() as u32).to_le_bytes());
            for (a, b) in aliases {
                s(&mut out, a);
                s(&mut out, b);
            }
            out
        }
    }

    /// A multiple of 32, so the matrices can be stored as Q8_0.
    const STATE: u32 = 32;
    const VOCAB: u32 = 5;

    /// A whisper-shaped model with one encoder and one decoder layer.
    fn tiny_whisper() -> Vec<u8> {
        let mut b = Ct2Builder::default();
        let s = STATE;
        let row = |cols: u32| move |i: usize| (i / cols as usize) as f32;
        b.f16("encoder/conv1/weight", &[s, 80, 3], |_| 0.5);
        b.f16("encoder/conv1/bias", &[s], |i| i as f32);
        b.f16("encoder/conv2/weight", &[s, s, 3], |_| 0.25);
        b.f16("encoder/conv2/bias", &[s], |i| i as f32);
        b.f16("encoder/position_encodings/encodings", &[12, s], |_| 1.0);
        b.i16("encoder/num_heads", 2);
        b.f16("decoder/position_encodings/encodings", &[6, s], |_| 1.0);
        b.f16("decoder/embeddings/weight", &[VOCAB, s], |_| 0.1);
        b.i16("decoder/num_heads", 2);
        for side in ["encoder", "decoder"] {
            b.f16(&format!("{side}/layer_norm/gamma"), &[s], |_| 1.0);
            b.f16(&format!("{side}/layer_norm/beta"), &[s], |_| 0.0);
            let l = format!("{side}/layer_0");
            let mut blocks = vec!["self_attention", "ffn"];
            if side == "decoder" {
                blocks.push("attention");
            }
            for blk in blocks {
                b.f16(&format!("{l}/{blk}/layer_norm/gamma"), &[s], |_| 1.0);
                b.f16(&format!("{l}/{blk}/layer_norm/beta"), &[s], |_| 0.0);
            }
            b.f16(
                &format!("{l}/self_attention/linear_0/weight"),
                &[3 * s, s],
                row(s),
            );
            b.f16(
                &format!("{l}/self_attention/linear_0/bias"),
                &[3 * s],
                |i| i as f32,
            );
            b.f16(
                &format!("{l}/self_attention/linear_1/weight"),
                &[s, s],
                |_| 0.0,
            );
            b.f16(&format!("{l}/self_attention/linear_1/bias"), &[s], |_| 0.0);
            b.f16(&format!("{l}/ffn/linear_0/weight"), &[4 * s, s], |_| 0.0);
            b.f16(&format!("{l}/ffn/linear_0/bias"), &[4 * s], |_| 0.0);
            b.f16(&format!("{l}/ffn/linear_1/weight"), &[s, 4 * s], |_| 0.0);
            b.f16(&format!("{l}/ffn/linear_1/bias"), &[s], |_| 0.0);
        }
        let l = "decoder/layer_0/attention";
        b.f16(&format!("{l}/linear_0/weight"), &[s, s], |_| 0.0);
        b.f16(&format!("{l}/linear_0/bias"), &[s], |_| 0.0);
        b.f16(&format!("{l}/linear_1/weight"), &[2 * s, s], row(s));
        b.f16(&format!("{l}/linear_1/bias"), &[2 * s], |i| i as f32);
        b.f16(&format!("{l}/linear_2/weight"), &[s, s], |_| 0.0);
        b.f16(&format!("{l}/linear_2/bias"), &[s], |_| 0.0);
        b.build(&[("decoder/projection/weight", "decoder/embeddings/weight")])
    }

    /// Tensors of a ggml file: name → (dims as written, ftype, data).
    struct Ggml {
        hparams: Vec<u32>,
        mel: (u32, u32),
        vocab: Vec<Vec<u8>>,
        tensors: HashMap<String, (Vec<u32>, u32, Vec<u8>)>,
    }

    fn read_ggml(b: &[u8]) -> Ggml {
        let mut c = Cursor { bytes: b, pos: 0 };
        assert_eq!(c.u32("magic").unwrap(), GGML_MAGIC);
        let hparams: Vec<u32> = (0..11).map(|_| c.u32("hp").unwrap()).collect();
        let mel = (c.u32("m").unwrap(), c.u32("m").unwrap());
        c.take((mel.0 * mel.1 * 4) as usize, "mel").unwrap();
        let n = c.u32("vocab").unwrap();
        let vocab = (0..n)
            .map(|_| {
                let len = c.u32("len").unwrap() as usize;
                c.take(len, "tok").unwrap().to_vec()
            })
            .collect();
        let mut tensors = HashMap::new();
        while c.pos < b.len() {
            let n_dims = c.u32("dims").unwrap();
            let name_len = c.u32("name").unwrap() as usize;
            let ftype = c.u32("ftype").unwrap();
            let dims: Vec<u32> = (0..n_dims).map(|_| c.u32("d").unwrap()).collect();
            let name = String::from_utf8(c.take(name_len, "n").unwrap().to_vec()).unwrap();
            let elems = dims.iter().product::<u32>() as usize;
            let size = match ftype {
                0 => elems * 4,
                1 => elems * 2,
                8 => elems / QK8_0 * Q8_0_BLOCK_BYTES,
                other => panic!("unexpected tensor type {other}"),
            };
            let data = c.take(size, "data").unwrap().to_vec();
            tensors.insert(name, (dims, ftype, data));
        }
        Ggml {
            hparams,
            mel,
            vocab,
            tensors,
        }
    }

    fn f16_values(d: &[u8]) -> Vec<f32> {
        d.chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect()
    }

    fn f32_values(d: &[u8]) -> Vec<f32> {
        d.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    #[test]
    fn parses_ct2_header_variables_and_aliases() {
        let mut b = Ct2Builder::default();
        b.f16("a/weight", &[2, 3], |i| i as f32);
        b.i16("a/num_heads", 7);
        let bytes = b.build(&[("b/weight", "a/weight")]);
        let m = parse_ct2(&bytes).unwrap();
        assert_eq!(m.spec, "WhisperSpec");
        assert_eq!(m.revision, 3);
        assert_eq!(m.variables.len(), 2);
        assert_eq!(m.variables[0].name, "a/weight");
        assert_eq!(m.variables[0].dims, vec![2, 3]);
        assert_eq!(m.variables[0].dtype, Ct2Dtype::F16);
        assert_eq!(
            m.variables[0].to_f32().unwrap(),
            vec![0., 1., 2., 3., 4., 5.]
        );
        assert_eq!(m.variables[1].scalar_int(), Some(7));
        assert_eq!(
            m.aliases,
            vec![("b/weight".to_string(), "a/weight".to_string())]
        );
    }

    #[test]
    fn rejects_truncated_and_foreign_ct2_files() {
        let mut b = Ct2Builder::default();
        b.f16("a/weight", &[4, 4], |_| 1.0);
        let bytes = b.build(&[]);
        let err = parse_ct2(&bytes[..bytes.len() - 10]).unwrap_err();
        assert!(matches!(err, ConvertError::Malformed { .. }), "{err}");
        let mut v5 = bytes.clone();
        v5[0] = 5;
        assert!(matches!(parse_ct2(&v5), Err(ConvertError::Version(5))));
        // Wrong byte count for the shape.
        let mut bad = bytes.clone();
        let count_at = bytes.len() - 4 - 32 - 4;
        bad[count_at] = 30;
        assert!(matches!(
            parse_ct2(&bad),
            Err(ConvertError::Malformed { .. })
        ));
    }

    #[test]
    fn gpt2_byte_decoding_round_trips_all_bytes() {
        let dec = gpt2_byte_decoder();
        assert_eq!(dec.len(), 256);
        let mut bytes: Vec<u8> = dec.values().copied().collect();
        bytes.sort_unstable();
        assert_eq!(bytes, (0..=255).collect::<Vec<u8>>());
        assert_eq!(decode_gpt2_token("Ġthe", &dec).unwrap(), b" the");
        assert_eq!(decode_gpt2_token("Ċ", &dec).unwrap(), b"\n");
        assert_eq!(decode_gpt2_token("ä½ł", &dec).unwrap(), "你".as_bytes());
        assert_eq!(decode_gpt2_token("å¥½", &dec).unwrap(), "好".as_bytes());
        assert_eq!(decode_gpt2_token("你", &dec), None);
    }

    #[test]
    fn vocabulary_stops_before_end_of_text() {
        let v = "!\nĠa\nä½ł\n<|endoftext|>\n<|startoftranscript|>\n";
        let toks = decode_vocabulary(v).unwrap();
        assert_eq!(
            toks,
            vec![b"!".to_vec(), b" a".to_vec(), "你".as_bytes().to_vec()]
        );
        assert!(matches!(
            decode_vocabulary("a\nb\n"),
            Err(ConvertError::NoEndOfText)
        ));
    }

    /// Values from OpenAI Whisper's `assets/mel_filters.npz` (`mel_80`), which is
    /// `librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)` stored as float32.
    #[test]
    fn mel_filters_match_librosa() {
        let f = mel_filters(16_000, 400, 80);
        assert_eq!(f.len(), 80 * 201);
        let known = [
            (0, 1, 0.024_862_594_902_515_41),
            (1, 2, 0.022_871_771_827_340_126),
            (10, 11, 0.004_954_374_860_972_166),
            (30, 36, 0.0),
            (79, 190, 0.002_232_054_946_944_117_5),
            (79, 199, 0.000_448_759_004_939_347_5),
            (0, 2, 0.0),
            (79, 200, 0.0),
        ];
        for (m, k, v) in known {
            let got = f[m * 201 + k];
            assert!(
                (f64::from(got) - v).abs() < 1e-9,
                "mel[{m}][{k}] = {got}, librosa {v}"
            );
        }
        assert_eq!(f.iter().filter(|&&v| v != 0.0).count(), 391);
        let sum: f64 = f.iter().map(|&v| f64::from(v)).sum();
        assert!((sum - 1.999_024_092_387_117).abs() < 1e-6, "sum {sum}");
    }

    #[test]
    fn converts_a_tiny_whisper_into_whisper_cpp_layout() {
        let ct2 = tiny_whisper();
        let vocab = "!\nĠa\n<|endoftext|>\n";
        let mut out = Vec::new();
        let summary = convert_with(&ct2, vocab, WeightType::F16, &mut out).unwrap();
        assert_eq!(summary.bytes as usize, out.len());
        let g = read_ggml(&out);
        assert_eq!(
            g.hparams,
            vec![VOCAB, 12, STATE, 2, 1, 6, STATE, 2, 1, 80, 1]
        );
        assert_eq!(g.mel, (80, 201));
        assert_eq!(g.vocab, vec![b"!".to_vec(), b" a".to_vec()]);
        // 5 conv/pos + 15 per encoder layer + 2 + 2 + 24 per decoder layer + 2.
        assert_eq!(g.tensors.len(), 5 + 15 + 2 + 2 + 24 + 2);

        // Fused q,k,v rows split in order; key has no bias.
        let p = "encoder.blocks.0.attn";
        for (i, part) in ["query", "key", "value"].iter().enumerate() {
            let (dims, ftype, data) = &g.tensors[&format!("{p}.{part}.weight")];
            assert_eq!((dims.as_slice(), *ftype), (&[STATE, STATE][..], 1));
            let rows = f16_values(data);
            assert_eq!(rows[0], (i as u32 * STATE) as f32);
            assert_eq!(rows[rows.len() - 1], ((i as u32 + 1) * STATE - 1) as f32);
        }
        assert!(!g.tensors.contains_key(&format!("{p}.key.bias")));
        let (_, ftype, vbias) = &g.tensors[&format!("{p}.value.bias")];
        assert_eq!(*ftype, 0);
        assert_eq!(f32_values(vbias)[0], (2 * STATE) as f32);
        // Cross-attention k,v fused.
        let (_, _, cv) = &g.tensors["decoder.blocks.0.cross_attn.value.weight"];
        assert_eq!(f16_values(cv)[0], STATE as f32);
        assert!(g
            .tensors
            .contains_key("decoder.blocks.0.cross_attn.query.bias"));
        // Conv bias [n,1] f32 (dims written reversed), conv weight f16.
        let (dims, ftype, _) = &g.tensors["encoder.conv1.bias"];
        assert_eq!((dims.as_slice(), *ftype), (&[1, STATE][..], 0));
        let (dims, ftype, _) = &g.tensors["encoder.conv1.weight"];
        assert_eq!((dims.as_slice(), *ftype), (&[3, 80, STATE][..], 1));
        // Positional embeddings f32 even though they are matrices.
        let (dims, ftype, _) = &g.tensors["decoder.positional_embedding"];
        assert_eq!((dims.as_slice(), *ftype), (&[STATE, 6][..], 0));
        let (_, ftype, _) = &g.tensors["encoder.ln_post.weight"];
        assert_eq!(*ftype, 0);
        assert!(g.tensors.contains_key("decoder.token_embedding.weight"));
        assert!(g.tensors.contains_key("decoder.ln.bias"));
    }

    /// The tensors whisper.cpp's `whisper_model_load` creates with `wtype` (the
    /// header's weight type); everything else has a fixed type.
    fn is_wtype_tensor(name: &str) -> bool {
        // Matches self-attention (`.attn.`) and cross-attention (`.cross_attn.`).
        let attn = [
            "attn.query.weight",
            "attn.key.weight",
            "attn.value.weight",
            "attn.out.weight",
        ];
        name == "decoder.token_embedding.weight"
            || name.ends_with(".mlp.0.weight")
            || name.ends_with(".mlp.2.weight")
            || attn.iter().any(|a| name.ends_with(a))
    }

    #[test]
    fn q8_0_file_quantizes_exactly_the_wtype_tensors() {
        let ct2 = tiny_whisper();
        let vocab = "!\nĠa\n<|endoftext|>\n";
        let mut f16 = Vec::new();
        convert_with(&ct2, vocab, WeightType::F16, &mut f16).unwrap();
        let mut q8 = Vec::new();
        let summary = convert(&ct2, vocab, &mut q8).unwrap();
        assert_eq!(summary.bytes as usize, q8.len());
        assert!(q8.len() < f16.len());
        let (a, b) = (read_ggml(&f16), read_ggml(&q8));
        // ftype 7 (GGML_FTYPE_MOSTLY_Q8_0) + quantisation version 2 × 1000.
        assert_eq!(b.hparams[10], 2007);
        assert_eq!(a.hparams[..10], b.hparams[..10]);
        assert_eq!(a.tensors.len(), b.tensors.len());
        let mut quantized = 0;
        for (name, (dims, ty, data)) in &b.tensors {
            let (fdims, fty, fdata) = &a.tensors[name];
            assert_eq!(dims, fdims, "{name}");
            if is_wtype_tensor(name) {
                assert_eq!((*fty, *ty), (1, 8), "{name}");
                quantized += 1;
                let want = f16_values(fdata);
                let got = dequantize_q8_0(data);
                assert_eq!(got.len(), want.len(), "{name}");
                for (blk_w, blk_g) in want.chunks(QK8_0).zip(got.chunks(QK8_0)) {
                    let amax = blk_w.iter().fold(0f32, |m, v| m.max(v.abs()));
                    for (w, g) in blk_w.iter().zip(blk_g) {
                        assert!((w - g).abs() <= 0.57 * amax / 127.0, "{name}: {w} vs {g}");
                    }
                }
            } else {
                // Conv kernels f16, vectors and positional embeddings f32, unchanged.
                assert_eq!((ty, data), (fty, fdata), "{name}");
                let conv = name.starts_with("encoder.conv") && name.ends_with(".weight");
                assert_eq!(*ty, if conv { 1 } else { 0 }, "{name}");
            }
        }
        // q, k, v, out × (1 encoder + 2 decoder attentions) + 2 MLP × 2 layers + embedding.
        assert_eq!(quantized, 4 * 3 + 2 * 2 + 1);
        // The q/k/v split happens before quantisation: the key rows are rows 32..64.
        let key = dequantize_q8_0(&b.tensors["encoder.blocks.0.attn.key.weight"].2);
        // A constant row quantises to 127 steps of an f16 scale: exact to 2^-11.
        let close = |got: f32, want: u32| (got - want as f32).abs() <= want as f32 / 2048.0;
        assert!(close(key[0], STATE), "{}", key[0]);
        assert!(close(key[key.len() - 1], 2 * STATE - 1));
    }

    #[test]
    fn q8_0_block_layout_matches_ggml() {
        // amax 127 gives d = 1 exactly: the quants are the values, rounded half
        // away from zero like C's roundf.
        let mut x = [0f32; QK8_0];
        x[0] = 127.0;
        x[1] = -127.0;
        x[2] = 2.5;
        x[3] = -2.5;
        x[4] = 0.49;
        x[31] = -64.0;
        let b = quantize_q8_0(&x);
        assert_eq!(b.len(), Q8_0_BLOCK_BYTES);
        assert_eq!(&b[..2], &[0x00, 0x3c], "f16 1.0, little-endian");
        let q: Vec<i8> = b[2..].iter().map(|&v| v as i8).collect();
        assert_eq!(&q[..5], &[127, -127, 3, -3, 0]);
        assert_eq!(q[31], -64);
        assert!(q[5..31].iter().all(|&v| v == 0));
        // An all-zero block has d = 0 and zero quants (no division by zero).
        assert_eq!(quantize_q8_0(&[0.0; QK8_0]), vec![0u8; Q8_0_BLOCK_BYTES]);
        // Blocks follow each other, 34 bytes each, scale first.
        let two: Vec<f32> = (0..2 * QK8_0)
            .map(|i| if i < QK8_0 { 1.0 } else { -0.5 })
            .collect();
        let b = quantize_q8_0(&two);
        assert_eq!(b.len(), 2 * Q8_0_BLOCK_BYTES);
        let d1 = half::f16::from_le_bytes([b[34], b[35]]).to_f32();
        assert!((d1 - 0.5 / 127.0).abs() < 1e-6);
        assert!(b[36..].iter().all(|&v| v as i8 == -127));
    }

    #[test]
    fn q8_0_round_trip_error_is_within_half_a_step() {
        let mut r = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            (r >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        // Blocks of different magnitudes, like real weight rows (kept where the
        // f16 scale is a normal number, as it is for Whisper's weights).
        let x: Vec<f32> = (0..64 * QK8_0)
            .map(|i| next() * 10f32.powi((i / QK8_0) as i32 % 5 - 2))
            .collect();
        let y = dequantize_q8_0(&quantize_q8_0(&x));
        assert_eq!(y.len(), x.len());
        for (bx, by) in x.chunks(QK8_0).zip(y.chunks(QK8_0)) {
            let amax = bx.iter().fold(0f32, |m, v| m.max(v.abs()));
            // Half a quantisation step, plus the f16 rounding of the scale
            // (relative 2^-11, times at most 127 steps).
            let bound = amax / 127.0 * (0.5 + 127.0 / 2048.0) * 1.001;
            for (a, b) in bx.iter().zip(by) {
                assert!((a - b).abs() <= bound, "{a} → {b} (bound {bound})");
            }
            // The largest value keeps its sign and lands on ±127 steps.
            let i = bx.iter().position(|v| v.abs() == amax).unwrap();
            assert!(
                (by[i] - bx[i]).abs() <= amax / 2048.0 * 1.001,
                "{} → {}",
                bx[i],
                by[i]
            );
        }
    }

    #[test]
    fn q8_0_refuses_rows_that_are_not_whole_blocks() {
        let err = encode("x.weight", &[4, 48], &[0.0; 192], GgmlType::Q8_0).unwrap_err();
        assert!(matches!(err, ConvertError::Row { row: 48, .. }), "{err}");
        assert!(err.to_string().contains("x.weight"));
    }

    #[test]
    fn missing_variable_is_named() {
        let mut b = Ct2Builder::default();
        b.f16("decoder/embeddings/weight", &[4, 8], |_| 0.0);
        let err = convert(&b.build(&[]), "<|endoftext|>\n", &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("lacks variable"), "{err}");
    }
}
