//! Turn-handling bench (issue 14): how long the dialogue engine takes per caller
//! turn, sentence encoder included, over every conversation of the evaluation
//! corpus (tests/data/dialogue-eval/*.conv). One warm-up pass (the Q&A passages are
//! embedded once per process, as at a script's start), then measured passes.
//! Prints p50/p95/p99/max, writes `target/bench/dialogue-turns.json`, and exits
//! non-zero when p99 is over the budget (20 ms). Also times one query embedding
//! with the loaded encoder (`TINGSHUO_ENCODER`: USE-multilingual v3 by default, e5
//! when asked) and, loaded on its own, with USE-multilingual v3.
//!
//! ```text
//! cargo bench --bench dialogue_turns [-- --passes N]
//! ```

use std::path::Path;

use tingshuo::dialogue::encoder::use_m3::UseM3;
use tingshuo::dialogue::eval::{conv_files, Suite};
use tingshuo::models::ModelPaths;

/// At least this many USE query embeddings are timed (cycling over the utterances).
const USE_RUNS: usize = 500;

/// Per-turn budget at p99, milliseconds (issue 14).
const P99_BUDGET_MS: f64 = 20.0;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mut passes = 3usize;
    while let Some(a) = args.next() {
        if a == "--passes" {
            passes = args.next().and_then(|v| v.parse().ok()).unwrap_or(passes);
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dialogue-eval");
    let files = conv_files(&dir).unwrap_or_else(|e| panic!("{e}"));
    let suites: Vec<Suite> = files
        .iter()
        .map(|f| Suite::load(f).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let encoder = tingshuo::dialogue::encoder::available();
    for s in &suites {
        s.turn_times_us().unwrap_or_else(|e| panic!("{e}"));
    }
    let mut times = Vec::new();
    for _ in 0..passes.max(1) {
        for s in &suites {
            times.extend(s.turn_times_us().unwrap_or_else(|e| panic!("{e}")));
        }
    }
    assert!(!times.is_empty(), "no caller turns in {}", dir.display());
    // The encoder alone: one query embedding per distinct utterance (one core).
    let mut embed_ms = Vec::new();
    if encoder {
        let mut seen = std::collections::HashSet::new();
        for u in suites.iter().flat_map(|s| s.caller_turns()) {
            if seen.insert(u.to_string()) {
                let t0 = std::time::Instant::now();
                std::hint::black_box(tingshuo::dialogue::encoder::query(u));
                embed_ms.push(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
        embed_ms.sort_by(f64::total_cmp);
    }
    // USE-multilingual v3 on its own, whatever the loaded encoder is.
    let mut use_ms = Vec::new();
    match UseM3::load(&ModelPaths::default_cache()) {
        Ok(mut m) => {
            let mut seen = std::collections::HashSet::new();
            let utterances: Vec<&str> = suites
                .iter()
                .flat_map(|s| s.caller_turns())
                .filter(|u| seen.insert(u.to_string()))
                .collect();
            for u in &utterances {
                std::hint::black_box(m.embed(u));
            }
            while !utterances.is_empty() && use_ms.len() < USE_RUNS {
                for u in &utterances {
                    let t0 = std::time::Instant::now();
                    std::hint::black_box(m.embed(u));
                    use_ms.push(t0.elapsed().as_secs_f64() * 1e3);
                }
            }
            use_ms.sort_by(f64::total_cmp);
        }
        Err(e) => eprintln!("USE-multilingual v3 not timed: {e}"),
    }
    times.sort_by(f64::total_cmp);
    let ms = |us: f64| us / 1000.0;
    let (p50, p95, p99, max) = (
        ms(percentile(&times, 0.50)),
        ms(percentile(&times, 0.95)),
        ms(percentile(&times, 0.99)),
        ms(*times.last().unwrap_or(&0.0)),
    );
    println!(
        "dialogue turns: {} over {} files × {passes} passes, sentence encoder {}",
        times.len(),
        files.len(),
        if encoder { "on" } else { "OFF (lexical only)" }
    );
    println!("  p50 {p50:.2} ms  p95 {p95:.2} ms  p99 {p99:.2} ms  max {max:.2} ms  (budget p99 ≤ {P99_BUDGET_MS} ms)");
    let (e50, e99) = if embed_ms.is_empty() {
        (0.0, 0.0)
    } else {
        (percentile(&embed_ms, 0.50), percentile(&embed_ms, 0.99))
    };
    let kind = tingshuo::dialogue::encoder::kind().map_or("off".to_string(), |k| format!("{k:?}"));
    if !embed_ms.is_empty() {
        println!(
            "  one query embedding, {kind} ({} utterances): p50 {e50:.2} ms  p99 {e99:.2} ms",
            embed_ms.len()
        );
    }
    let (u50, u99) = if use_ms.is_empty() {
        (0.0, 0.0)
    } else {
        (percentile(&use_ms, 0.50), percentile(&use_ms, 0.99))
    };
    if !use_ms.is_empty() {
        println!(
            "  one query embedding, USE-multilingual v3 ({} runs): p50 {u50:.2} ms  p99 {u99:.2} ms",
            use_ms.len()
        );
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    let json = serde_json::json!({
        "turns": times.len(), "encoder": encoder,
        "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "max_ms": max,
        "budget_p99_ms": P99_BUDGET_MS,
        "embed_p50_ms": e50, "embed_p99_ms": e99, "encoder_kind": kind,
        "use_embed_p50_ms": u50, "use_embed_p99_ms": u99, "use_embed_runs": use_ms.len(),
    });
    std::fs::write(out.join("dialogue-turns.json"), json.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    if p99 > P99_BUDGET_MS {
        eprintln!("dialogue turns: p99 {p99:.2} ms is over the {P99_BUDGET_MS} ms budget");
        std::process::exit(1);
    }
}
