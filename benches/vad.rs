//! VAD bench: microseconds per 20 ms frame (8 and 16 kHz), and the measurement
//! behind the endpointer's default hangover: the pauses Silero sees *inside*
//! multi-clause turns (which must not end the turn) vs the first pause after them.
//!
//! `cargo bench --bench vad` (needs the models: `tingshuo models fetch`; espeak-ng
//! for the second voice). Writes `target/bench/vad.json`.

use std::time::Instant;

use tingshuo::models::ModelPaths;
use tingshuo::tts::{ModelConfig, TtsEngine, VoiceParams};
use tingshuo::vad::{SileroModel, VadRate};

/// Multi-clause turns: the pauses at the commas are what a hangover must bridge.
const TURNS: &[&str] = &[
    "我现在不太方便，晚点再说吧。",
    "我的电话号码已经换了，请帮我更新一下。",
    "我的密码忘记了，怎么重新设置？",
    "声音有点小，您能大声一点吗？",
    "我听不清楚，请您再说一遍。",
    "没有了，就这样吧。",
    "好的，我明白了，那就明天上午吧。",
    "喂，你好，请问是维修中心吗？",
    "对，是我，有什么事吗？",
    "不用了，谢谢，我已经处理好了。",
];

fn main() {
    let paths = ModelPaths::default_cache();
    let model = SileroModel::load(&paths).unwrap_or_else(|e| panic!("{e}"));
    let mut json = serde_json::Map::new();

    // --- µs per frame ---
    println!("Silero VAD cost per 20 ms frame (one call, model chunk = 32 ms)");
    for rate in [8000u32, 16000] {
        let mut vad = model.new_vad(VadRate::from_hz(rate).unwrap()).unwrap();
        let frame_len = (rate / 50) as usize;
        // A voiced-like signal so the recurrent state is not trivially zero.
        let signal: Vec<f32> = (0..rate as usize * 10)
            .map(|i| 0.1 * ((i as f32 * 0.05).sin() + 0.5 * (i as f32 * 0.173).sin()))
            .collect();
        let mut chunks = 0usize;
        for f in signal.chunks(frame_len).take(50) {
            vad.push(f, |_| chunks += 1).unwrap();
        }
        let mut per_frame = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let mut n = 0;
            for f in signal.chunks(frame_len) {
                vad.push(f, |_| chunks += 1).unwrap();
                n += 1;
            }
            per_frame.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
        }
        per_frame.sort_by(f64::total_cmp);
        let med = per_frame[per_frame.len() / 2];
        println!(
            "  {rate} Hz: median {med:.1} µs per 20 ms frame ({:.1} µs per 32 ms chunk), min {:.1}",
            med * 32.0 / 20.0,
            per_frame[0]
        );
        json.insert(format!("us_per_frame_{rate}"), med.into());
    }

    // --- pauses inside turns ---
    let mut tts =
        TtsEngine::load(&paths, ModelConfig::baker(&paths)).unwrap_or_else(|e| panic!("{e}"));
    let mut inner = Vec::new();
    let mut voices: Vec<(&str, Vec<Vec<f32>>)> = Vec::new();
    let mut ours = Vec::new();
    for (i, t) in TURNS.iter().enumerate() {
        // Vary speed a little: people do not speak at one rate.
        let speed = [0.85, 1.0, 1.15][i % 3];
        let a = tts
            .synthesize(
                t,
                &VoiceParams {
                    speed,
                    ..VoiceParams::default()
                },
            )
            .unwrap();
        ours.push(tingshuo::audio::resample(&a, tts.sample_rate(), 16000).unwrap());
    }
    voices.push(("our TTS", ours));
    if let Some(es) = espeak_turns() {
        voices.push(("espeak-ng", es));
    }
    println!(
        "\nPauses inside multi-clause turns as Silero sees them (p ≥ 0.5 voiced, < 0.35 silent):"
    );
    for (name, clips) in &voices {
        let mut gaps = Vec::new();
        for clip in clips {
            let mut vad = model.new_vad(VadRate::Hz16000).unwrap();
            let mut probs = Vec::new();
            for f in clip.chunks(320) {
                vad.push(f, |p| probs.push(p)).unwrap();
            }
            gaps.extend(inner_pauses(&probs));
        }
        gaps.sort_unstable();
        let pct = |q: f64| gaps[((gaps.len() as f64 - 1.0) * q).round() as usize];
        if gaps.is_empty() {
            println!("  {name}: no inner pauses found");
            continue;
        }
        println!(
            "  {name}: {} pauses, p50 {} ms, p90 {} ms, max {} ms",
            gaps.len(),
            pct(0.5),
            pct(0.9),
            gaps[gaps.len() - 1]
        );
        inner.extend(gaps.iter().copied());
        json.insert(format!("inner_pauses_ms_{name}"), gaps.clone().into());
    }
    inner.sort_unstable();
    if let Some(&max) = inner.last() {
        // One chunk of margin over the longest inner pause, rounded up to a chunk.
        let hangover = (max + 32).div_ceil(32) * 32;
        println!(
            "\nLongest inner pause {max} ms → hangover ≥ {hangover} ms; default is {} ms, tentative end at {} ms.",
            tingshuo::vad::EndpointConfig::default().hangover_ms,
            tingshuo::vad::EndpointConfig::default().tentative_ms
        );
        json.insert("suggested_hangover_ms".into(), hangover.into());
    }
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("target"))
        .join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("vad.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
}

/// Lengths (ms) of silent runs between voiced runs, inside the utterance only.
fn inner_pauses(probs: &[f32]) -> Vec<u32> {
    let first = probs.iter().position(|&p| p >= 0.5);
    let last = probs.iter().rposition(|&p| p >= 0.5);
    let (Some(a), Some(b)) = (first, last) else {
        return Vec::new();
    };
    let mut gaps = Vec::new();
    let mut run = 0u32;
    let mut in_pause = false;
    for &p in &probs[a..=b] {
        let silent = if in_pause { p < 0.5 } else { p < 0.35 };
        if silent {
            in_pause = true;
            run += 32;
        } else {
            if run > 0 {
                gaps.push(run);
            }
            run = 0;
            in_pause = false;
        }
    }
    gaps
}

fn espeak_turns() -> Option<Vec<Vec<f32>>> {
    let dir = tempfile::tempdir().ok()?;
    let mut out = Vec::new();
    for (i, t) in TURNS.iter().enumerate() {
        let wav = dir.path().join(format!("{i}.wav"));
        let ok = std::process::Command::new("espeak-ng")
            .args(["-v", "cmn", "-w"])
            .arg(&wav)
            .arg(t)
            .status()
            .ok()?
            .success();
        if !ok {
            return None;
        }
        let a = tingshuo::audio::read_wav(&wav).ok()?;
        out.push(tingshuo::audio::resample(&a.samples, a.rate, 16000).ok()?);
    }
    Some(out)
}
