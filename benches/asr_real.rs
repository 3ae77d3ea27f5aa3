//! Real-speech A/B bench: decoder settings, one change at a time, on the real human
//! Mandarin clips of `tests/data/real_speech` (AISHELL-1 test utterances), through
//! 8 kHz G.711 µ-law (`g711`) or at 16 kHz (`16k`), numbers normalised.
//!
//! ```text
//! cargo bench --bench asr_real -- [--model FILE] [--cond g711|16k] [--limit N] [--threads N] VARIANT...
//! ```
//!
//! Variants (each one change from `default`, `AsrConfig::default()`):
//! `fallback` (temperature fallback 0.2 + half-repeat re-decode), `full_ctx` (the
//! whole 30 s window like faster-whisper), `ctx_x2` (clip-sized window with twice the
//! margin), `lang_prompt` (the language-only prompt 以下是普通话的句子。 without the
//! answers), `no_answers` (the call-centre prompt without the answers),
//! `no_prompt`, `no_timestamps`, `beam5`. Variants run interleaved per clip so load
//! hits all alike; the faster-whisper figure from `tests/data/real_speech/faster_whisper.tsv`
//! is printed beside them. Writes `target/bench/asr_real-<cond>.json`.

#[path = "../tests/asr_support/mod.rs"]
mod asr_support;

use std::path::PathBuf;

use asr_support::{real_speech, target_dir, telephone_pcmu};
use tingshuo::asr::text::{char_errors, looks_looped};
use tingshuo::asr::{AsrConfig, Recognizer, WhisperModel};
use tingshuo::models::ModelPaths;
use tingshuo::vad::SileroModel;

fn variant(name: &str) -> Option<AsrConfig> {
    let d = AsrConfig::default();
    Some(match name {
        "default" => d,
        "fallback" => AsrConfig {
            temperature_inc: 0.2,
            ..d
        },
        "full_ctx" => AsrConfig {
            min_audio_ctx: tingshuo::asr::engine::FULL_AUDIO_CTX,
            ..d
        },
        "ctx_x2" => AsrConfig {
            audio_ctx_margin: 2 * d.audio_ctx_margin,
            ..d
        },
        "margin_128" => AsrConfig {
            audio_ctx_margin: 128,
            ..d
        },
        "lang_prompt" => AsrConfig {
            prompt: "以下是普通话的句子。".into(),
            answers: Vec::new(),
            ..d
        },
        "no_answers" => AsrConfig {
            answers: Vec::new(),
            ..d
        },
        "no_prompt" => AsrConfig {
            prompt: String::new(),
            answers: Vec::new(),
            ..d
        },
        "no_timestamps" => AsrConfig {
            timestamps: false,
            ..d
        },
        "beam5" => AsrConfig { beam_size: 5, ..d },
        // faster-whisper's fallback: 0.2 steps, 5 samples each, the likeliest kept.
        "fallback_best5" => AsrConfig {
            temperature_inc: 0.2,
            best_of: 5,
            ..d
        },
        "fallback_best5_nlp" => AsrConfig {
            temperature_inc: 0.2,
            best_of: 5,
            long_prompt: String::new(),
            ..d
        },
        "no_long_prompt" => AsrConfig {
            long_prompt: String::new(),
            ..d
        },
        "beam5_nlp" => AsrConfig {
            beam_size: 5,
            long_prompt: String::new(),
            ..d
        },
        "trad_long2" => AsrConfig {
            long_prompt: "以下是普通話新聞報導中的句子。".into(),
            ..d
        },
        "trad_long_prompt" => AsrConfig {
            long_prompt: "以下是普通話的句子。".into(),
            ..d
        },
        _ => return None,
    })
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let (mut model, mut cond, mut limit, mut names) =
        (None, "g711".to_string(), usize::MAX, Vec::new());
    // One thread by default: whisper.cpp's threads spin on barriers, so on a loaded
    // machine a 2-thread decode can take ten times as long as a 1-thread one.
    let mut threads = 1usize;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--model" => model = args.next().map(PathBuf::from),
            "--cond" => cond = args.next().unwrap_or(cond),
            "--limit" => limit = args.next().and_then(|v| v.parse().ok()).unwrap_or(limit),
            "--threads" => threads = args.next().and_then(|v| v.parse().ok()).unwrap_or(threads),
            _ => names.push(a),
        }
    }
    if names.is_empty() {
        names.push("default".into());
    }
    let paths = ModelPaths::default_cache();
    let whisper = match &model {
        Some(p) => WhisperModel::load_file(p),
        None => WhisperModel::load(&paths),
    }
    .unwrap_or_else(|e| panic!("{e}"));
    let vad = SileroModel::load(&paths).unwrap_or_else(|e| panic!("{e}"));
    let mut recs: Vec<(String, Recognizer)> = names
        .iter()
        .map(|n| {
            let cfg = variant(n).unwrap_or_else(|| panic!("unknown variant {n}"));
            (
                n.clone(),
                Recognizer::new(&whisper, cfg, Some(&vad)).unwrap(),
            )
        })
        .collect();
    let clips: Vec<_> = real_speech().into_iter().take(limit).collect();
    let peer_path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/real_speech/faster_whisper.tsv");
    let peer: std::collections::HashMap<String, String> = std::fs::read_to_string(peer_path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() == 4 && f[0] == cond).then(|| (f[1].to_string(), f[3].to_string()))
        })
        .collect();
    // Per variant: errors, ms, loops.
    let mut stats = vec![(0usize, 0f64, 0usize); recs.len()];
    let (mut total, mut peer_err, mut peer_n) = (0usize, 0usize, 0usize);
    let mut rows = Vec::new();
    for c in &clips {
        let audio = if cond == "16k" {
            c.samples.clone()
        } else {
            telephone_pcmu(&c.samples, 16_000)
        };
        // The channel audio, for measuring the peer on exactly the same input.
        let wav_dir = target_dir().join("real-speech").join(&cond);
        std::fs::create_dir_all(&wav_dir).unwrap();
        tingshuo::audio::write_wav(
            &wav_dir.join(c.name.replace(".flac", ".wav")),
            &audio,
            16_000,
        )
        .unwrap();
        let mut row = serde_json::json!({"clip": c.name, "ref": c.text});
        let mut n = 0;
        for (i, (name, rec)) in recs.iter_mut().enumerate() {
            let t = rec.transcribe_on(&audio, &[], None, threads).unwrap();
            let (e, cn) = char_errors(&c.text, &t.text);
            n = cn;
            stats[i].0 += e;
            stats[i].1 += t.infer_ms;
            stats[i].2 += usize::from(t.repetition || looks_looped(&t.text));
            let raw: Vec<&str> = t.segments.iter().map(|s| s.text.as_str()).collect();
            row[name.as_str()] =
                serde_json::json!({"text": t.text, "raw": raw, "errors": e, "ms": t.infer_ms});
        }
        total += n;
        if let Some(p) = peer.get(&c.name) {
            peer_err += char_errors(&c.text, p).0;
            peer_n += n;
        }
        rows.push(row);
    }
    println!(
        "real speech, {cond}, {} clips, {total} characters, {threads} threads",
        clips.len()
    );
    let mut summary = Vec::new();
    for (i, (name, _)) in recs.iter().enumerate() {
        let (e, ms, loops) = stats[i];
        let cer = 100.0 * e as f64 / total.max(1) as f64;
        println!(
            "{name:>14}: CER {cer:6.2} %  ({e} errors)  mean {:5.0} ms/clip  loops {loops}",
            ms / clips.len() as f64
        );
        summary.push(serde_json::json!({"variant": name, "cer": cer, "errors": e, "mean_ms": ms / clips.len() as f64, "loops": loops}));
    }
    if peer_n == total && total > 0 {
        println!(
            "{:>14}: CER {:6.2} %  ({peer_err} errors)",
            "faster-whisper",
            100.0 * peer_err as f64 / total as f64
        );
    }
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("asr_real-{cond}.json")),
        serde_json::to_string_pretty(&serde_json::json!({"summary": summary, "clips": rows}))
            .unwrap(),
    )
    .unwrap();
}
