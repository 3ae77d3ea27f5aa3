//! The `tingshuo` command line. Names and flags here are a contract other tools call.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Result};
use clap::{Args, Parser, Subcommand};
use tingshuo::config::Config;

#[derive(Parser)]
#[command(
    name = "tingshuo",
    version,
    about = "听说 tingshuo: a local Mandarin speech agent for SIP telephony",
    long_about = "听说 tingshuo answers and places SIP calls and talks with callers in Mandarin \
                  from a call script, with local Whisper recognition and ONNX speech synthesis."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Provision or inspect the speech models (cached in ~/.cache/tingshuo).
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
    /// Register (if registrars are configured) and answer calls with the configured script.
    Serve(ConfigArg),
    /// Place one outbound call.
    Dial {
        /// SIP URI or extension to call.
        target: String,
        #[command(flatten)]
        config: ConfigArg,
        /// Script variable, KEY=VALUE (repeatable).
        #[arg(long = "var", value_name = "KEY=VALUE")]
        vars: Vec<String>,
    },
    /// Call every row of a CSV (target + script variables).
    Campaign {
        /// CSV file: a `target` column plus one column per script variable.
        csv: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Synthesize Mandarin text to a WAV file.
    Say {
        /// Text to speak.
        text: String,
        /// Output WAV path.
        #[arg(short = 'o', long = "output", value_name = "OUT.wav")]
        output: PathBuf,
        /// Output sample rate.
        #[arg(long, default_value_t = 24000, value_parser = parse_rate)]
        rate: u32,
    },
    /// Transcribe a WAV file (any rate, any channel count).
    Transcribe {
        /// Input WAV path.
        input: PathBuf,
        /// Print JSON with text, segments and timings.
        #[arg(long)]
        json: bool,
    },
    /// Parse a call script and print its structure and warnings.
    CheckScript {
        /// Call script (Markdown 话术 document).
        path: PathBuf,
    },
    /// Talk to a script in text mode: one callee utterance per stdin line.
    Chat {
        #[arg(long)]
        script: PathBuf,
        /// Script variable, KEY=VALUE (repeatable).
        #[arg(long = "var", value_name = "KEY=VALUE")]
        vars: Vec<String>,
        /// One JSON object per agent line, the call record last.
        #[arg(long)]
        json: bool,
    },
    /// Run seeded simulated callees built from the script's callee half.
    Simulate {
        #[arg(long)]
        script: PathBuf,
        #[arg(long, default_value_t = 20)]
        calls: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
    /// Browse call records.
    Records {
        #[command(subcommand)]
        action: RecordsAction,
    },
    /// Run a script on the local microphone and speaker.
    Talk {
        /// Call script; default: the configured or embedded one.
        #[arg(long)]
        script: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Operator console administration.
    Console {
        #[command(subcommand)]
        action: ConsoleAction,
    },
}

#[derive(Args)]
struct ConfigArg {
    /// Config file (TOML); without it the embedded default runs.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ModelsAction {
    /// Download, verify and convert every model into the cache (idempotent).
    Fetch(ConfigArg),
    /// Show which model files are present and verified.
    Status(ConfigArg),
}

#[derive(Subcommand)]
enum RecordsAction {
    /// List recent calls.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Show one call with its turns.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Subcommand)]
enum ConsoleAction {
    /// Add an operator account (Argon2 hash) to the config file.
    AddOperator {
        name: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

fn parse_rate(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(r @ (8000 | 16000 | 24000)) => Ok(r),
        _ => Err(format!("{s} is not one of 8000, 16000, 24000")),
    }
}

/// Splits `KEY=VALUE` pairs given with `--var`.
fn parse_vars(vars: &[String]) -> Result<Vec<(String, String)>> {
    vars.iter()
        .map(|v| {
            v.split_once('=')
                .filter(|(k, _)| !k.trim().is_empty())
                .map(|(k, val)| (k.trim().to_string(), val.to_string()))
                .ok_or_else(|| anyhow!("--var {v:?} is not KEY=VALUE, e.g. --var name=张伟"))
        })
        .collect()
}

fn load_config(arg: &ConfigArg) -> Result<Config> {
    Ok(Config::load_or_default(arg.config.as_deref())?)
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Models { action } => match action {
            ModelsAction::Fetch(c) => {
                let cfg = load_config(&c)?;
                let paths = tingshuo::models::ModelPaths::in_cache(&cfg.models_dir());
                tingshuo::models::fetch(&paths)?;
                Ok(())
            }
            ModelsAction::Status(c) => {
                let cfg = load_config(&c)?;
                let paths = tingshuo::models::ModelPaths::in_cache(&cfg.models_dir());
                Ok(tingshuo::models::print_status(&paths)?)
            }
        },
        Command::Serve(c) => {
            let cfg = load_config(&c)?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(tingshuo::call::agent::serve(cfg))?;
            Ok(())
        }
        Command::Dial {
            target,
            config,
            vars,
        } => {
            let cfg = load_config(&config)?;
            let mut all_vars = cfg.agent.vars.clone();
            all_vars.extend(parse_vars(&vars)?);
            let runtime = tokio::runtime::Runtime::new()?;
            let outcome = runtime.block_on(tingshuo::call::agent::dial(cfg, &target, all_vars))?;
            println!("call to {target}: {outcome}");
            Ok(())
        }
        Command::Campaign { csv, config } => {
            let cfg = load_config(&config)?;
            let runtime = tokio::runtime::Runtime::new()?;
            let summary = runtime.block_on(tingshuo::call::campaign::run(cfg, &csv))?;
            print!("{summary}");
            Ok(())
        }
        Command::Say { text, output, rate } => {
            let paths = tingshuo::models::ModelPaths::default_cache();
            let r = tingshuo::tts::cli::say(&paths, &text, &output, rate)?;
            eprintln!(
                "wrote {} ({:.2} s at {} Hz, {} clause(s), synthesis {} ms)",
                output.display(),
                r.seconds,
                r.rate,
                r.clauses,
                r.synthesis_ms
            );
            Ok(())
        }
        Command::Transcribe { input, json } => {
            let paths = tingshuo::models::ModelPaths::default_cache();
            let cfg = tingshuo::asr::AsrConfig::default();
            let t = tingshuo::asr::file::transcribe_file(&input, &paths, cfg)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&t)?);
            } else {
                println!("{}", t.text);
            }
            Ok(())
        }
        Command::CheckScript { path } => {
            let mut out = std::io::stdout().lock();
            tingshuo::dialogue::cli::check_script(&path, &mut out)?;
            Ok(())
        }
        Command::Chat { script, vars, json } => {
            let vars = parse_vars(&vars)?;
            let store = tingshuo::config::default_store_path();
            let stdin = std::io::stdin();
            let mut input = stdin.lock();
            let mut out = std::io::stdout().lock();
            tingshuo::dialogue::cli::chat(&script, &vars, json, &store, &mut input, &mut out)?;
            Ok(())
        }
        Command::Simulate {
            script,
            calls,
            seed,
            json,
        } => {
            let mut out = std::io::stdout().lock();
            tingshuo::dialogue::cli::simulate(&script, calls, seed, json, &mut out)?;
            Ok(())
        }
        Command::Records { action } => {
            let mut out = std::io::stdout().lock();
            match action {
                RecordsAction::List { json, config } => {
                    let cfg = load_config(&config)?;
                    tingshuo::dialogue::cli::records_list(&cfg.store_target(), json, &mut out)?;
                }
                RecordsAction::Show { id, json, config } => {
                    let cfg = load_config(&config)?;
                    tingshuo::dialogue::cli::records_show(
                        &cfg.store_target(),
                        &id,
                        json,
                        &mut out,
                    )?;
                }
            }
            Ok(())
        }
        Command::Talk { script, config } => {
            let cfg = load_config(&config)?;
            tingshuo::call::local::talk(&cfg, script.as_deref())?;
            Ok(())
        }
        Command::Console { action } => match action {
            ConsoleAction::AddOperator { name, config } => {
                let cfg = load_config(&config)?;
                println!("{}", tingshuo::console::add_operator(&cfg, &name)?);
                Ok(())
            }
        },
    }
}

fn main() -> ExitCode {
    tingshuo::logging::init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
