//! TTS bench: real-time factor, time to first audio (first clause rendered) and the
//! cost of playing a pre-synthesised line, with 1 and 2 ONNX Runtime threads.
//!
//! `cargo bench --bench tts` (needs `tingshuo models fetch`). Prints a table.

use std::sync::Arc;
use std::time::Instant;

use tingshuo::models::ModelPaths;
use tingshuo::tts::{ModelConfig, PhraseCache, TtsEngine, TtsWorker, VoiceParams};

const SENTENCES: &[(&str, &str)] = &[
    ("short", "好的，再见。"),
    ("medium", "您好，这里是物业服务中心，明天上午九点停水两个小时。"),
    (
        "long",
        "尊敬的业主您好，因管道检修，本小区将于2025年1月1日凌晨0点到4点停水，请您提前储水，如有疑问请拨打400-810-1234，感谢您的理解与配合。",
    ),
    ("dynamic", "您预约的时间是下午2:30，地点在3号楼302室。"),
];

const RUNS: usize = 5;

fn main() {
    let paths = ModelPaths::default_cache();
    println!("TTS bench: {RUNS} runs per sentence, median reported; audio at 24 kHz");
    println!(
        "{:>7} | {:>8} | {:>7} | {:>9} | {:>9} | {:>9} | {:>6} | {:>6} | {:>10}",
        "threads",
        "sentence",
        "audio s",
        "total ms",
        "first ms",
        "cut ms",
        "RTF",
        "FS2 %",
        "1st clause"
    );
    println!("{}", "-".repeat(95));
    for threads in [1usize, 2] {
        let cfg = ModelConfig {
            threads,
            ..ModelConfig::baker(&paths)
        };
        let load_start = Instant::now();
        let mut engine = match TtsEngine::load(&paths, cfg) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("cannot run the TTS bench: {e}");
                std::process::exit(1);
            }
        };
        if threads == 1 {
            println!(
                "(load: front-end tables + both models in {:.0} ms; process RSS {} MiB)",
                load_start.elapsed().as_secs_f64() * 1000.0,
                rss_mib()
            );
        }
        let voice = VoiceParams::default();
        // Warm-up: the first run pays for memory planning.
        let _ = engine.synthesize("你好", &voice);
        for (name, text) in SENTENCES {
            let mut totals = Vec::new();
            let mut firsts = Vec::new();
            let mut firsts_cut = Vec::new();
            let mut audio_s = 0.0;
            let mut first_clause = String::new();
            let (mut acoustic, mut vocoder) = (0.0f32, 0.0f32);
            for _ in 0..RUNS {
                let start = Instant::now();
                let mut first = None;
                let mut samples = 0usize;
                engine
                    .stream(text, &voice, |c| {
                        if first.is_none() {
                            first = Some(start.elapsed());
                            first_clause = c.text.clone();
                        }
                        samples += c.samples.len() + c.pause_samples;
                        acoustic += c.acoustic_ms;
                        vocoder += c.vocoder_ms;
                        true
                    })
                    .unwrap_or_else(|e| panic!("{e}"));
                totals.push(start.elapsed().as_secs_f64() * 1000.0);
                // Interactive requests cut a long first clause (ModelConfig::first_chunk_syllables).
                let start = Instant::now();
                let mut cut_first = 0.0;
                engine
                    .stream_with(text, &voice, Some(8), |_| {
                        cut_first = start.elapsed().as_secs_f64() * 1000.0;
                        false
                    })
                    .unwrap_or_else(|e| panic!("{e}"));
                firsts_cut.push(cut_first);
                firsts.push(first.map_or(0.0, |d| d.as_secs_f64() * 1000.0));
                audio_s = samples as f64 / engine.sample_rate() as f64;
            }
            let share = acoustic / (acoustic + vocoder).max(1e-3) * 100.0;
            let total = median(&mut totals);
            let first = median(&mut firsts);
            let first_cut = median(&mut firsts_cut);
            println!(
                "{threads:>7} | {name:>8} | {audio_s:>7.2} | {total:>9.1} | {first:>9.1} | {first_cut:>9.1} | {:>6.3} | {share:>5.0}% | {}",
                total / 1000.0 / audio_s,
                first_clause.chars().take(10).collect::<String>()
            );
        }
    }

    // Pre-synthesised line: what a call waits before the first sample can play.
    let worker = match TtsWorker::spawn(&paths, ModelConfig::baker(&paths)) {
        Ok(w) => Arc::new(w),
        Err(e) => {
            eprintln!("cannot start the TTS worker: {e}");
            std::process::exit(1);
        }
    };
    let cache = PhraseCache::new(worker.clone(), None).unwrap_or_else(|e| panic!("{e}"));
    let voice = VoiceParams::default();
    let line = SENTENCES[1].1;
    let t = Instant::now();
    cache
        .get_or_synthesize(line, &voice)
        .unwrap_or_else(|e| panic!("{e}"));
    let cold_ms = t.elapsed().as_secs_f64() * 1000.0;
    let mut hits = Vec::new();
    for _ in 0..1000 {
        let t = Instant::now();
        let pcm = cache.get(line, &voice);
        hits.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(pcm.is_some());
    }
    println!();
    println!(
        "pre-synthesised line: first render {cold_ms:.1} ms, cached lookup median {:.1} µs (1000 lookups)",
        median(&mut hits)
    );
}

/// Resident set size from /proc (Linux), 0 elsewhere.
fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
