//! Progress output for provisioning: indicatif bars with sizes on a terminal,
//! one plain line per step otherwise (CI logs, pipes).

use std::fmt::Display;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};

/// Where progress goes (always stderr, so stdout stays machine-readable).
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    term: bool,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    /// Bars when stderr is a terminal, plain lines otherwise.
    pub fn new() -> Self {
        Self {
            term: std::io::stderr().is_terminal(),
        }
    }

    /// A plain informational line.
    pub fn line(&self, msg: impl Display) {
        eprintln!("{msg}");
    }

    /// Starts a step; `total` bytes gives a bar with sizes, `None` a spinner.
    pub fn task(&self, msg: impl Into<String>, total: Option<u64>) -> Task {
        let msg = msg.into();
        let bar = if self.term {
            let bar = match total {
                Some(total) => {
                    let bar = ProgressBar::new(total);
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {elapsed}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    bar
                }
                None => {
                    let bar = ProgressBar::new_spinner();
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar
                }
            };
            bar.set_message(msg.clone());
            bar.enable_steady_tick(Duration::from_millis(120));
            Some(bar)
        } else {
            match total {
                Some(total) => eprintln!("{msg} ({}) ...", HumanBytes(total)),
                None => eprintln!("{msg} ..."),
            }
            None
        };
        Task {
            bar,
            msg,
            start: Instant::now(),
        }
    }
}

/// One running step.
pub struct Task {
    bar: Option<ProgressBar>,
    msg: String,
    start: Instant,
}

impl Task {
    /// Bytes done so far (bars only).
    pub fn set_position(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(bytes);
        }
    }

    /// Extra text after the message (spinners show growing sizes this way).
    pub fn set_detail(&self, detail: impl Display) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{} ({detail})", self.msg));
        }
    }

    /// Ends the step with a summary line.
    pub fn done(self, detail: impl Display) {
        let line = format!(
            "{}: {detail} in {:.1} s",
            self.msg,
            self.start.elapsed().as_secs_f64()
        );
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        eprintln!("{line}");
    }

    /// Ends the step without a success line (the caller reports the error).
    pub fn fail(self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }
}
