//! Mandarin text-to-speech: a Rust text front-end (normalisation, pinyin, Baker symbols)
//! feeding a FastSpeech2 + MB-MelGAN ONNX pair through ort.
