//! The user's shared folder (`../shared` beside the repository: call scripts,
//! requirements) is there in CI and in the team's checkouts, not in a user's
//! clone. Tests that read it use [`shared_file`]: on a plain clone they say they
//! could not run and pass; under CI (`CI` set) a missing folder fails them, so
//! CI never passes by skipping.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `rel` under the shared folder, or `None` (after saying why) on a plain clone.
pub fn shared_file(rel: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Beside the repository (CI, main checkout) or one level up (helper worktrees).
    let candidates = [
        root.join("../shared").join(rel),
        root.join("../../shared").join(rel),
    ];
    if let Some(p) = candidates.iter().find(|p| p.exists()) {
        return Some(p.clone());
    }
    let msg = format!(
        "could not run: {} is not beside this clone (it holds the user's shared call scripts; \
         CI provides it)",
        candidates[0].display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{msg}; CI must provide ../shared");
    }
    eprintln!("{msg}");
    None
}
