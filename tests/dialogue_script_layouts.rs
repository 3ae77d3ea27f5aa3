//! Call scripts exported from Word, call-robot platforms and spreadsheets load to
//! the same structure as the same scripts re-marked as Markdown headings.

mod shared_dir;

use std::path::{Path, PathBuf};

use tingshuo::dialogue::demo::{INBOUND, OUTBOUND};
use tingshuo::dialogue::Script;

/// Each script as exported (tests/data/script-layouts/) and the same script
/// re-marked with Markdown headings (tests/data/dialogue-eval/).
const PAIRS: &[(&str, &str)] = &[
    (
        "script-layouts/health-checkup-robot-export.md",
        "dialogue-eval/fresh7-health-checkup-confirm.md",
    ),
    (
        "script-layouts/broadband-fault-hotline-word-export.md",
        "dialogue-eval/fresh7-broadband-fault-hotline.md",
    ),
    (
        "script-layouts/pharmacy-refill-hotline-plain-export.md",
        "dialogue-eval/fresh8-pharmacy-refill-hotline.md",
    ),
    (
        "script-layouts/auto-insurance-renewal-numbered-export.md",
        "dialogue-eval/fresh8-auto-insurance-renewal.md",
    ),
    (
        "script-layouts/pet-vaccine-reminder-original.md",
        "dialogue-eval/fresh9-pet-vaccine-reminder.md",
    ),
    (
        "script-layouts/fresh10-home-elevator-hotline-original.md",
        "dialogue-eval/fresh10-home-elevator-hotline.md",
    ),
];

/// The exported layouts (rulers with 一、 titles and >>> 节点N steps; ■ chapters
/// with 话术一｜ steps and 【Q01】 pairs; ruled 场景说明 chapters with one 结束语
/// chapter for conditions and closing lines; `N｜` chapters with ① steps, → 记下
/// notes and ◎/口径 pairs; `N. ` chapters with a 被叫人资料 chapter before the
/// steps, `Step N / 第N步` labels, `记录 →` records and `Q1　`/答复： pairs) load to
/// the structure of their twins:
/// the same steps with the same lines, branches, records and kinds, the same
/// Q&A, opening, end conditions and closing lines, and nothing unspoken said.
#[test]
fn exported_layouts_load_like_their_markdown_twins() {
    for (export, twin) in PAIRS {
        let e = Script::load(&data(export)).unwrap_or_else(|err| panic!("{export}: {err}"));
        let t = Script::load(&data(twin)).unwrap_or_else(|err| panic!("{twin}: {err}"));
        let ctx = format!("{export}\n{e}\n--- twin {twin}\n{t}");
        assert!(!e.role.is_empty(), "{ctx}");
        // The role paragraphs differ only in the task label (通话目标 / 核心任务).
        assert_eq!(e.role.split(' ').next(), t.role.split(' ').next(), "{ctx}");
        assert_eq!(e.task, t.task, "{ctx}");
        assert_eq!(e.opening, t.opening, "{ctx}");
        assert_eq!(e.steps.len(), t.steps.len(), "{ctx}");
        for (a, b) in e.steps.iter().zip(&t.steps) {
            assert_eq!(a.lines, b.lines, "step {}\n{ctx}", a.number);
            assert_eq!(a.conditionals.len(), b.conditionals.len(), "{ctx}");
            for (x, y) in a.conditionals.iter().zip(&b.conditionals) {
                assert_eq!((&x.condition, &x.line), (&y.condition, &y.line), "{ctx}");
            }
            assert_eq!(a.directions, b.directions, "{ctx}");
            assert_eq!(a.collects, b.collects, "{ctx}");
            assert_eq!((a.kind, a.field), (b.kind, b.field), "{ctx}");
            assert_eq!(a.interruptible, b.interruptible, "{ctx}");
        }
        let qa = |s: &Script| -> Vec<(String, String)> {
            s.kb.iter()
                .map(|q| (q.question.clone(), q.answer.clone()))
                .collect()
        };
        assert_eq!(qa(&e), qa(&t), "{ctx}");
        assert!(!e.kb.is_empty(), "{ctx}");
        assert_eq!(e.end_conditions, t.end_conditions, "{ctx}");
        assert_eq!(e.closing, t.closing, "{ctx}");
        assert_eq!(e.placeholders, t.placeholders, "{ctx}");
        assert_eq!(e.profile, t.profile, "{ctx}");
        assert!(e.spoken_annotations().is_empty(), "{ctx}");
        assert_eq!(e.warnings, t.warnings, "{ctx}");
        // Rulers and chapter markers are never said.
        for l in std::iter::once(&e.opening)
            .chain(e.steps.iter().flat_map(|s| s.lines.iter()))
            .chain(
                e.steps
                    .iter()
                    .flat_map(|s| s.conditionals.iter().map(|c| &c.line)),
            )
            .chain(e.closing.iter())
            .chain(e.kb.iter().map(|q| &q.answer))
        {
            assert!(
                !l.contains("===") && !l.contains('■') && !l.contains('【'),
                "{l}\n{ctx}"
            );
        }
    }
}

/// Every script in the repository still loads, with steps and no spoken
/// annotations (the structure itself is compared with `dump_loaded_structures`).
#[test]
fn every_script_loads_without_spoken_annotations() {
    for (name, s) in all_scripts() {
        assert!(!s.steps.is_empty(), "{name}");
        assert!(s.spoken_annotations().is_empty(), "{name}\n{s}");
    }
}

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// Every script document the repository holds, by name.
fn all_scripts() -> Vec<(String, Script)> {
    let mut out = vec![
        (
            "embedded-inbound".to_string(),
            Script::parse(INBOUND, "embedded:inbound").unwrap(),
        ),
        (
            "embedded-outbound".to_string(),
            Script::parse(OUTBOUND, "embedded:outbound").unwrap(),
        ),
    ];
    let mut paths = Vec::new();
    for dir in ["", "dialogue-eval", "script-layouts"] {
        for e in std::fs::read_dir(data(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "md") {
                paths.push(p);
            }
        }
    }
    if let Some(p) = shared_dir::shared_file("call-scripts/maintenance-notice.md") {
        paths.push(p);
    }
    paths.sort();
    for p in paths {
        let name = format!(
            "{}-{}",
            p.parent().unwrap().file_name().unwrap().to_string_lossy(),
            p.file_name().unwrap().to_string_lossy()
        );
        let s = Script::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        out.push((name, s));
    }
    out
}

/// Writes every script's loaded structure as JSON under `$SCRIPT_DUMP_DIR`, to
/// compare the loader's output before and after a change.
#[test]
#[ignore = "a tool: SCRIPT_DUMP_DIR=/tmp/x cargo test --test dialogue_script_layouts -- --ignored"]
fn dump_loaded_structures() {
    let Some(dir) = std::env::var_os("SCRIPT_DUMP_DIR") else {
        return;
    };
    std::fs::create_dir_all(&dir).unwrap();
    for (name, s) in all_scripts() {
        let mut s = s;
        s.source.clear();
        let json = serde_json::to_string_pretty(&s).unwrap();
        std::fs::write(Path::new(&dir).join(format!("{name}.json")), json).unwrap();
        std::fs::write(Path::new(&dir).join(format!("{name}.txt")), s.summary()).unwrap();
    }
}
