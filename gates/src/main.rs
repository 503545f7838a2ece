//! `cargo gates`: builds the three profiles as static musl binaries and holds
//! each artifact to its budgets (ADR-0012).
//!
//! * `cargo gates check [--report PATH] [--skip-build]`
//! * `cargo gates soak --profile full --duration 10m`
//! * `cargo gates diff OLD.json NEW.json`
//! * `cargo gates size [--profile core] [--by crate|capability] [--json]`

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use hakiri_gates::{check, diff, prefetch, release, size, soak, workspace};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "cargo gates", about = "Hakiri's footprint gates")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build all profiles and assert capabilities, graph, size, static linking, idle RSS and cold start.
    Check {
        /// Where to write the JSON report.
        #[arg(long, default_value = "gates-report.json")]
        report: PathBuf,
        /// Use the binaries already built.
        #[arg(long)]
        skip_build: bool,
        /// Cold-start runs per binary (the median counts).
        #[arg(long, default_value_t = 7)]
        runs: usize,
    },
    /// Drive calls against a running daemon and fail if RSS drifts more than ±5%.
    Soak {
        /// Profile to soak: full or coord.
        #[arg(long, default_value = "full")]
        profile: String,
        /// How long, e.g. 90s, 10m, 7d.
        #[arg(long, default_value = "2m")]
        duration: String,
        /// Use the binaries already built.
        #[arg(long)]
        skip_build: bool,
        /// Append every RSS sample to this file (JSON lines), for a later `--judge`.
        #[arg(long)]
        state: Option<PathBuf>,
        /// Judge a finished soak from its state file instead of running one.
        #[arg(long, conflicts_with_all = ["state", "skip_build"])]
        judge: Option<PathBuf>,
    },
    /// The stripped binary's bytes by crate and by capability (from the
    /// symbols of the unstripped build).
    Size {
        /// core, full or coord (default: every profile).
        #[arg(long)]
        profile: Option<String>,
        /// One table: by crate or by capability (default: both).
        #[arg(long, value_parser = ["crate", "capability"])]
        by: Option<String>,
        /// Lines per table; the rest are summed.
        #[arg(long, default_value_t = 15)]
        top: usize,
        /// Print the full attribution as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Per-profile deltas between two gate reports.
    Diff { old: PathBuf, new: PathBuf },
    /// A binary's start-up prefetch table: print it, or apply a release's
    /// published one (to check a stripped rebuild against the release).
    Prefetch {
        /// The binary.
        binary: PathBuf,
        /// A `<profile>-<version>.prefetch.json` to write into the binary.
        #[arg(long)]
        apply: Option<PathBuf>,
    },
    /// Release trees from the gated binaries: tarballs, the Lambda zip,
    /// SBOMs and checksums per profile (run `cargo gates check` first).
    Release {
        /// Refuse unless this is the workspace version.
        #[arg(long)]
        version: Option<String>,
        /// Refuse unless this git tag is v<workspace version> (CI passes the pushed tag).
        #[arg(long)]
        tag: Option<String>,
        #[arg(long, default_value = "dist")]
        out: PathBuf,
        /// The gates report to ship (default: the last `cargo gates check`'s).
        #[arg(long)]
        report: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gates: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode> {
    let cli = Cli::parse_from(std::env::args().filter(|a| a != "gates"));
    match cli.command {
        Command::Check {
            report,
            skip_build,
            runs,
        } => {
            let ws = workspace::Workspace::locate()?;
            let ok = check::run(&ws, &report, skip_build, runs)?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Soak {
            profile,
            duration,
            skip_build,
            state,
            judge,
        } => {
            if let Some(path) = judge {
                let verdict = hakiri_gates::judge::judge(
                    &hakiri_gates::judge::load(&path)?,
                    soak::MAX_DRIFT,
                )?;
                soak::report(&path.display().to_string(), &verdict);
                return Ok(if verdict.ok() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            }
            let ws = workspace::Workspace::locate()?;
            let ok = soak::run(
                &ws,
                &profile,
                soak::parse_duration(&duration)?,
                skip_build,
                state.as_deref(),
            )?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Release {
            version,
            tag,
            out,
            report,
        } => {
            let ws = workspace::Workspace::locate()?;
            let opts = release::Options {
                version,
                tag,
                out,
                report,
            };
            for tree in release::release(&ws, &opts)? {
                println!("{}", tree.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Size {
            profile,
            by,
            top,
            json,
        } => {
            let ws = workspace::Workspace::locate()?;
            let names: Vec<String> = match profile {
                Some(p) if p.starts_with("hakiri-") => vec![p],
                Some(p) => vec![format!("hakiri-{p}")],
                None => ws.profiles()?.into_iter().map(|p| p.package).collect(),
            };
            let mut all = std::collections::BTreeMap::new();
            for name in names {
                let a = size::attribute(&ws, &name)?;
                if !json {
                    println!("## {name}\n");
                    if by.as_deref() != Some("capability") {
                        println!("{}", size::render("crate", &a.crates, top));
                    }
                    if by.as_deref() != Some("crate") {
                        println!("{}", size::render("capability", &a.capabilities, top));
                    }
                }
                all.insert(name, a);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Prefetch { binary, apply } => {
            match apply {
                Some(table) => prefetch::apply(&table, &binary)?,
                None => {
                    let table = prefetch::read_table(&binary)?
                        .with_context(|| format!("{} has no prefetch table", binary.display()))?;
                    println!("{}", serde_json::to_string_pretty(&table)?);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff { old, new } => {
            print!("{}", diff::render(&diff::load(&old)?, &diff::load(&new)?));
            Ok(ExitCode::SUCCESS)
        }
    }
}
