//! `tingshuo talk` on a machine without sound devices: a clear error naming the problem
//! and the fix, a non-zero exit, and no model loading first. ALSA is pointed at an empty
//! configuration so the test behaves the same on machines that do have a sound card.

use std::process::Command;

#[test]
fn talk_without_an_audio_device_fails_with_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alsa = dir.path().join("asound.conf");
    std::fs::write(&alsa, "").expect("write empty ALSA config");
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_tingshuo"))
        .arg("talk")
        .env("ALSA_CONFIG_PATH", &alsa)
        // Models must not be needed to report a missing device.
        .env("TINGSHUO_CACHE", dir.path().join("no-models"))
        .output()
        .expect("run tingshuo talk");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "talk succeeded without a device: {stderr}"
    );
    assert!(
        stderr.contains("no audio input device"),
        "the error must name the missing device: {stderr}"
    );
    assert!(
        stderr.contains("arecord -l") && stderr.contains("tingshuo chat"),
        "the error must say how to fix it: {stderr}"
    );
    assert!(
        !stderr.contains("models fetch"),
        "devices are checked before models: {stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}
