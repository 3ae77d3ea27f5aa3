//! Audio plumbing: fixed-frame resampling and WAV helpers.
