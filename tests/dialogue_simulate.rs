//! Persona simulation: 200 seeded calls per script (the two demos and the shared
//! example) must reach the expected outcome in at least 95 % of calls.

mod shared_dir;

use tingshuo::dialogue::demo::{INBOUND, OUTBOUND};
use tingshuo::dialogue::sim::run_simulation;
use tingshuo::dialogue::Script;

/// The user's shared example script, when `../shared` is beside the clone.
fn maintenance() -> Option<Script> {
    let path = shared_dir::shared_file("call-scripts/maintenance-notice.md")?;
    Some(Script::load(&path).expect("the shared example script loads"))
}

fn check(script: &Script) {
    assert!(
        script.warnings.is_empty(),
        "{}: check-script warnings {:?}",
        script.source,
        script.warnings
    );
    let r = run_simulation(script, 200, 42).unwrap();
    let again = run_simulation(script, 200, 42).unwrap();
    assert_eq!(
        r.reached, again.reached,
        "simulation is deterministic for a seed"
    );
    for c in r.calls.iter().filter(|c| !c.ok) {
        eprintln!(
            "{} call {} ({}): expected {:?}, reached {:?} {}",
            script.source, c.index, c.persona, c.expected, c.reached, c.note
        );
    }
    println!(
        "simulate {}: {}/{} ({:.1} %) reached the expected outcome; KB {}/{} correct; turn mean {:.0} µs, p50 {} µs, p99 {} µs, max {} µs",
        script.source,
        r.reached,
        r.calls.len(),
        r.rate() * 100.0,
        r.kb_correct,
        r.kb_questions,
        r.mean_turn_us(),
        r.percentile_us(50.0),
        r.percentile_us(99.0),
        r.max_turn_us
    );
    // Every persona kind shows up in 200 calls.
    for p in [
        "cooperative",
        "questioner",
        "email",
        "busy",
        "refuser",
        "hostile",
        "silent",
        "distracted",
    ] {
        assert!(
            r.calls.iter().any(|c| c.persona == p),
            "persona {p} never drawn"
        );
    }
    assert!(
        r.rate() >= 0.95,
        "{}: success rate {:.1} % < 95 %",
        script.source,
        r.rate() * 100.0
    );
}

#[test]
fn simulate_outbound_demo() {
    check(&Script::parse(OUTBOUND, "outbound demo").unwrap());
}

#[test]
fn simulate_inbound_demo() {
    check(&Script::parse(INBOUND, "inbound demo").unwrap());
}

#[test]
fn simulate_shared_maintenance_notice() {
    if let Some(m) = maintenance() {
        check(&m);
    }
}
