//! The `hakiri` command line: kernel commands plus whatever the linked
//! capabilities contributed. Bootstrap here; `dispatch` runs a subcommand,
//! `report` prints `capabilities`, `serve` runs services.

mod dispatch;
mod report;
mod serve;

/// Runs every registered service until SIGINT/SIGTERM, as `serve` does: for
/// a capability's command that serves with settings of its own (e.g.
/// `cluster join`).
pub use serve::serve;

use crate::caller::{Caller, Credential};
use crate::config::Config;
use crate::context::Context;
use crate::profile::Profile;
use crate::registry::Registry;
use clap::{Arg, ArgAction, Command};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

/// Entry point of every profile binary.
pub fn main(profile: &'static Profile) -> ExitCode {
    // The start-up prefetch ran before main; this keeps it in the link.
    hakiri_prefetch::link();
    hakiri_memcmp::link();
    without_huge_pages();
    run(profile, std::env::args_os().collect())
}

/// Turns transparent huge pages off for this process. mimalloc asks for
/// them, and each first touch of a huge page zeroes 2 MiB: memory that an
/// ingest or a query frees, the allocator returns and the next one touches
/// again is zeroed over and over (`clear_page_erms` was 16% of a CSV
/// ingest's CPU). Measured (README "Measured"): a 2 GB ingest 7.39 → 7.14 s
/// and 322 → 282 MB peak; a group-by over its 20M rows 0.28 → 0.15 s and
/// 122 → 64 MB; a coordinator idles at 12 MB instead of 30.
fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_THP_DISABLE) only sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Runs the CLI over `args` (the first is the program name).
pub fn run(profile: &'static Profile, args: Vec<OsString>) -> ExitCode {
    crate::panics::install_hook();
    let registry = match Registry::from_inventory() {
        Ok(r) => Arc::new(r),
        Err(e) => {
            eprintln!("hakiri: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = build_cli(&registry, profile);
    if let Some(name) = first_positional(&args) {
        if cli.find_subcommand(&name).is_none() {
            if let Some(err) = profile.lacks("command", &name) {
                eprintln!("hakiri: {err}");
                return ExitCode::from(2);
            }
        }
    }
    let matches = match cli.try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let config = match Config::load(matches.get_one::<PathBuf>("config").map(PathBuf::as_path)) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("hakiri: {e}");
            return ExitCode::from(2);
        }
    };
    // `config check` reports every problem, so it runs before the sections
    // are bound (binding stops at the first invalid configuration).
    if matches.subcommand_name() == Some("config") {
        return config_check(&config, &registry, profile);
    }
    let credential = match cli_credential(&matches) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hakiri: {e}");
            return ExitCode::from(2);
        }
    };
    let ctx = match Context::new(registry, config, profile) {
        Ok(ctx) => ctx.with_caller(Caller::Local { credential }),
        Err(e) => {
            eprintln!(
                "hakiri: invalid configuration; `hakiri config check` lists every problem:\n{e}"
            );
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hakiri: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch::dispatch(matches, ctx)) {
        Ok(code) => code,
        // `hakiri sql … | head`: the reader left; stop quietly, as Unix tools do.
        Err(e) if reader_left(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hakiri: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `e` is a write to a closed pipe (an io error, or a library's
/// message wrapping one, as Arrow's CSV writer does).
fn reader_left(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.to_string().contains("Broken pipe (os error 32)")
    })
}

/// The token the CLI user chose to act under (`--token`, `--token-file`,
/// `$HAKIRI_TOKEN`), if any: it restricts their own calls, never widens them.
fn cli_credential(matches: &clap::ArgMatches) -> Result<Option<Credential>, String> {
    if let Some(path) = matches.get_one::<PathBuf>("token-file") {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read --token-file {}: {e}", path.display()))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(format!("--token-file {} is empty", path.display()));
        }
        return Ok(Some(Credential::new(token)));
    }
    if matches.value_source("token") == Some(clap::parser::ValueSource::CommandLine) {
        eprintln!(
            "hakiri: warning: a token given with --token is visible to every user of this machine (ps); \
             use --token-file FILE or $HAKIRI_TOKEN"
        );
    }
    Ok(matches
        .get_one::<String>("token")
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .map(Credential::new))
}

/// The first argument that is not an option (nor the value of `--config`).
fn first_positional(args: &[OsString]) -> Option<String> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if ["--config", "-c", "--token", "--token-file"].contains(&a.as_ref()) {
            it.next();
        } else if !a.starts_with('-') {
            return Some(a.into_owned());
        }
    }
    None
}

/// The kernel's own subcommands; capabilities may not take their names.
fn kernel_commands() -> Vec<Command> {
    vec![
        Command::new("capabilities")
            .about("List the capabilities linked into this binary")
            .arg(flag(
                "json",
                "Print stable JSON (see README: capabilities JSON)",
            ))
            .arg(flag(
                "check",
                "Run every capability's self-check; exit non-zero if one fails",
            )),
        Command::new("version")
            .about("Print version and build information")
            .arg(flag("json", "Print JSON"))
            .arg(flag(
                "deps",
                "List every crate this binary links, with its version",
            )),
        Command::new("tools")
            .about("List the tools this binary can call")
            .arg(flag("json", "Print JSON with input schemas")),
        Command::new("call")
            .about("Call a tool with JSON input")
            .arg(
                Arg::new("tool")
                    .required(true)
                    .help("Tool name (see `hakiri tools`)"),
            )
            .arg(Arg::new("input").help("JSON input; `-` reads stdin; default {}")),
        Command::new("config")
            .about("Inspect the configuration")
            .subcommand_required(true)
            .subcommand(
                Command::new("check").about("Validate the configuration against this binary"),
            ),
        Command::new("serve").about("Run this binary's long-running services until stopped"),
    ]
}

/// Whether `name` is a kernel command (or clap's `help`).
pub(crate) fn is_kernel_command(name: &str) -> bool {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    name == "help"
        || NAMES
            .get_or_init(|| {
                kernel_commands()
                    .iter()
                    .map(|c| c.get_name().to_string())
                    .collect()
            })
            .iter()
            .any(|n| n == name)
}

fn build_cli(registry: &Registry, profile: &Profile) -> Command {
    let mut cli = Command::new("hakiri")
        .about(format!(
            "Hakiri data-retrieval runtime for AI agents ({})",
            profile.name
        ))
        .version(profile.version)
        .arg(
            Arg::new("config")
                .long("config")
                .short('c')
                .global(true)
                .value_parser(clap::value_parser!(PathBuf))
                .help("Config file (default: $HAKIRI_CONFIG, else ~/.hakiri/hakiri.toml)"),
        )
        .arg(
            Arg::new("token")
                .long("token")
                .global(true)
                .hide_env_values(true)
                .env("HAKIRI_TOKEN")
                .help("Act with this token's rights only (also $HAKIRI_TOKEN)"),
        )
        .arg(
            Arg::new("token-file")
                .long("token-file")
                .global(true)
                .conflicts_with("token")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Read the token from this file"),
        )
        .subcommands(kernel_commands());
    for entry in registry.commands.values() {
        cli = cli.subcommand(entry.item.command.clone());
    }
    cli
}

fn flag(name: &'static str, help: &'static str) -> Arg {
    Arg::new(name)
        .long(name)
        .action(ArgAction::SetTrue)
        .help(help)
}

fn config_check(
    config: &Arc<Config>,
    registry: &Arc<Registry>,
    profile: &'static Profile,
) -> ExitCode {
    let mut report = config.check(registry, profile);
    // Rules that need the bound kernel run once every section parses.
    if report.errors.is_empty() {
        if let Err(e) = Context::new(registry.clone(), config.clone(), profile) {
            match e {
                crate::KernelError::Config(lines) => {
                    report.errors.extend(lines.lines().map(str::to_string))
                }
                other => report.errors.push(other.to_string()),
            }
        }
    }
    let source = config
        .path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "no config file (defaults and environment only)".into());
    for n in &report.notes {
        eprintln!("note: {n}");
    }
    for e in &report.errors {
        eprintln!("error: {e}");
    }
    if report.errors.is_empty() {
        println!(
            "config ok: {source}; data_dir {}",
            config.data_dir.display()
        );
        ExitCode::SUCCESS
    } else {
        println!("config has {} error(s): {source}", report.errors.len());
        ExitCode::from(2)
    }
}
