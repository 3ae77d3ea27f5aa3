//! Conversations written from the caller's side, before tuning, over the repository's
//! own scripts (tests/data/dialogue-eval: two demos and two more in other document
//! layouts). Prints accuracy per kind and every failure with its transcript, and
//! holds the floor reached so regressions show.

use std::path::Path;

use tingshuo::dialogue::eval::{by_kind, conv_files, CaseResult, Suite};

#[test]
fn dialogue_eval_corpus() {
    // DIALOGUE_EVAL_DIR scores another set (a team's own conversations, or a new set
    // once before any tuning for it); DIALOGUE_EVAL_FLOOR=0 then just reports.
    let dir = std::env::var_os("DIALOGUE_EVAL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dialogue-eval"));
    let files = conv_files(&dir).unwrap_or_else(|e| panic!("{e}"));
    let mut all: Vec<CaseResult> = Vec::new();
    for f in &files {
        let suite = Suite::load(f).unwrap_or_else(|e| panic!("{e}"));
        let results = suite.run().unwrap_or_else(|e| panic!("{e}"));
        for r in results.iter().filter(|r| !r.passed) {
            println!(
                "FAIL {} / {} [{}]\n  {}\n  {}",
                f.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
                r.name,
                r.kind,
                r.failures.join("\n  "),
                r.transcript.join("\n    ")
            );
        }
        all.extend(results);
    }
    println!("\n| kind | passed | total | accuracy |\n|---|---|---|---|");
    for (kind, (ok, n)) in by_kind(&all) {
        println!(
            "| {kind} | {ok} | {n} | {:.0} % |",
            100.0 * ok as f64 / n as f64
        );
    }
    let ok = all.iter().filter(|r| r.passed).count();
    let n = all.len();
    println!(
        "| all | {ok} | {n} | {:.1} % |",
        100.0 * ok as f64 / n as f64
    );
    assert!(n >= 20, "the corpus should hold conversations");
    let floor: f64 = std::env::var("DIALOGUE_EVAL_FLOOR")
        .ok()
        .and_then(|v| v.parse().ok())
        // 78 %: the corpus holds the unseen sets of sessions 17-22 (fresh11-16, each
        // in layouts the loader could not read before), scored as they stand;
        // measured 81.9 % with the encoder and 78.5 % without it (session 22), so
        // the floor holds on a machine without the encoder too.
        .unwrap_or(0.78);
    assert!(
        ok as f64 >= floor * n as f64,
        "accuracy {ok}/{n} fell below the floor {floor}"
    );
}

/// No stage direction is ever spoken: every script of the repository loads with
/// zero spoken annotations, and the directions it has are kept apart.
#[test]
fn no_spoken_annotations_in_repository_scripts() {
    use tingshuo::dialogue::demo::{INBOUND, OUTBOUND};
    use tingshuo::dialogue::Script;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut scripts = vec![
        Script::parse(INBOUND, "embedded:inbound").unwrap(),
        Script::parse(OUTBOUND, "embedded:outbound").unwrap(),
    ];
    for sub in ["dialogue-eval", "."] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "md") {
                scripts.push(Script::load(&p).unwrap());
            }
        }
    }
    assert!(scripts.len() >= 4);
    for s in &scripts {
        assert!(
            s.spoken_annotations().is_empty(),
            "{}: {:?}",
            s.source,
            s.spoken_annotations()
        );
    }
    let purifier = scripts
        .iter()
        .find(|s| s.source.contains("water-purifier"))
        .expect("the water purifier script");
    assert!(purifier.steps[0]
        .directions
        .iter()
        .any(|d| d.contains("直接进入下一步")));
    assert!(!purifier.opening.starts_with('>'));
}

/// A script whose steps are a Markdown table loads into the same steps, branches
/// and Q&A as the same script written as a list.
#[test]
fn steps_table_loads_like_the_list() {
    use tingshuo::dialogue::Script;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let table = Script::load(&root.join("dental-recall-reminder-table.md")).unwrap();
    let list = Script::load(&root.join("dialogue-eval/dental-recall-reminder.md")).unwrap();
    assert_eq!(table.steps.len(), list.steps.len());
    for (t, l) in table.steps.iter().zip(&list.steps) {
        assert_eq!(t.lines, l.lines, "step {}", t.number);
        assert_eq!(t.kind, l.kind, "step {}", t.number);
        assert_eq!(
            t.conditionals.len(),
            l.conditionals.len(),
            "step {}",
            t.number
        );
    }
    assert_eq!(table.kb.len(), list.kb.len());
    assert!(table.spoken_annotations().is_empty());
}
