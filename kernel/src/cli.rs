//! The `hakiri` command line: kernel commands plus whatever the linked
//! capabilities contributed.

use crate::capability::CheckOutcome;
use crate::config::Config;
use crate::profile::Profile;
use crate::registry::{Context, Contributions, Registry};
use crate::service::Shutdown;
use anyhow::{anyhow, bail, Context as _};
use clap::{Arg, ArgAction, ArgMatches, Command};
use serde::Serialize;
use std::ffi::OsString;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Entry point of every profile binary.
pub fn main(profile: &'static Profile) -> ExitCode {
    run(profile, std::env::args_os().collect())
}

/// Runs the CLI over `args` (the first is the program name).
pub fn run(profile: &'static Profile, args: Vec<OsString>) -> ExitCode {
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
    let ctx = Context::new(registry, config, profile);
    match runtime.block_on(dispatch(matches, ctx)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hakiri: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The first argument that is not an option (nor the value of `--config`).
fn first_positional(args: &[OsString]) -> Option<String> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--config" || a == "-c" {
            it.next();
        } else if !a.starts_with('-') {
            return Some(a.into_owned());
        }
    }
    None
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
        .subcommand(
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
        )
        .subcommand(
            Command::new("version")
                .about("Print version and build information")
                .arg(flag("json", "Print JSON")),
        )
        .subcommand(
            Command::new("tools")
                .about("List the tools this binary can call")
                .arg(flag("json", "Print JSON with input schemas")),
        )
        .subcommand(
            Command::new("call")
                .about("Call a tool with JSON input")
                .arg(
                    Arg::new("tool")
                        .required(true)
                        .help("Tool name (see `hakiri tools`)"),
                )
                .arg(Arg::new("input").help("JSON input; `-` reads stdin; default {}")),
        )
        .subcommand(
            Command::new("config")
                .about("Inspect the configuration")
                .subcommand_required(true)
                .subcommand(
                    Command::new("check").about("Validate the configuration against this binary"),
                ),
        )
        .subcommand(
            Command::new("serve").about("Run this binary's long-running services until stopped"),
        );
    for entry in registry.commands.values() {
        cli = cli.subcommand(entry.item.0.clone());
    }
    cli
}

fn flag(name: &'static str, help: &'static str) -> Arg {
    Arg::new(name)
        .long(name)
        .action(ArgAction::SetTrue)
        .help(help)
}

async fn dispatch(matches: ArgMatches, ctx: Context) -> anyhow::Result<ExitCode> {
    let Some((name, sub)) = matches.subcommand() else {
        let launcher = ctx.registry.launchers.iter().find(|l| (l.item.applies)());
        return match launcher {
            Some(l) => (l.item.run)(ctx.clone()).await,
            None => {
                build_cli(&ctx.registry, ctx.profile).print_help()?;
                Ok(ExitCode::from(2))
            }
        };
    };
    match name {
        "capabilities" => capabilities(sub, &ctx).await,
        "version" => version(sub, &ctx),
        "tools" => tools(sub, &ctx),
        "call" => call(sub, &ctx).await,
        "config" => config_check(&ctx),
        "serve" => serve(&ctx).await,
        other => {
            let entry = ctx
                .registry
                .commands
                .get(other)
                .ok_or_else(|| anyhow!("unknown command `{other}`"))?;
            (entry.item.1)(sub.clone(), ctx.clone()).await
        }
    }
}

/// Build information, as reported by `version --json` and `capabilities --json`.
#[derive(Serialize)]
struct BuildInfo {
    target: &'static str,
    git_revision: &'static str,
    kernel_version: &'static str,
}

fn build_info(p: &Profile) -> BuildInfo {
    BuildInfo {
        target: p.target,
        git_revision: p.git_revision,
        kernel_version: env!("CARGO_PKG_VERSION"),
    }
}

#[derive(Serialize)]
struct CapabilityReport {
    name: &'static str,
    #[serde(rename = "crate")]
    crate_name: &'static str,
    version: &'static str,
    summary: &'static str,
    libraries: &'static [crate::Library],
    contributes: Contributions,
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<CheckOutcome>,
}

/// The stable `capabilities --json` document (schema_version 1).
#[derive(Serialize)]
struct CapabilitiesReport {
    schema_version: u32,
    profile: &'static str,
    version: &'static str,
    build: BuildInfo,
    capabilities: Vec<CapabilityReport>,
    /// Declared by the profile's manifest but not linked (a broken build).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    missing: Vec<&'static str>,
}

async fn capabilities(m: &ArgMatches, ctx: &Context) -> anyhow::Result<ExitCode> {
    let run_checks = m.get_flag("check");
    let mut caps = Vec::new();
    for cap in &ctx.registry.capabilities {
        let check = if run_checks {
            Some(ctx.check(cap.name).await)
        } else {
            None
        };
        caps.push(CapabilityReport {
            name: cap.name,
            crate_name: cap.crate_name,
            version: cap.version,
            summary: cap.summary,
            libraries: cap.libraries,
            contributes: ctx
                .registry
                .contributions
                .get(cap.name)
                .cloned()
                .unwrap_or_default(),
            check,
        });
    }
    let missing: Vec<&str> = ctx
        .profile
        .declared
        .iter()
        .copied()
        .filter(|d| ctx.registry.capability(d).is_none())
        .collect();
    let failed = caps
        .iter()
        .any(|c| matches!(c.check, Some(CheckOutcome::Failed(_))));
    let report = CapabilitiesReport {
        schema_version: 1,
        profile: ctx.profile.name,
        version: ctx.profile.version,
        build: build_info(ctx.profile),
        capabilities: caps,
        missing,
    };
    if m.get_flag("json") {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_capabilities(&report);
    }
    if run_checks && (failed || !report.missing.is_empty()) {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_capabilities(r: &CapabilitiesReport) {
    println!(
        "{} {} ({}, {})",
        r.profile, r.version, r.build.target, r.build.git_revision
    );
    let rows: Vec<[String; 4]> = r
        .capabilities
        .iter()
        .map(|c| {
            let libs: Vec<String> = c
                .libraries
                .iter()
                .map(|l| format!("{} {}", l.name, l.version))
                .collect();
            let status = match &c.check {
                None => String::new(),
                Some(CheckOutcome::Ok(d)) => format!("ok: {d}"),
                Some(CheckOutcome::Skipped(d)) => format!("skipped: {d}"),
                Some(CheckOutcome::Failed(d)) => format!("FAILED: {d}"),
            };
            [
                c.name.to_string(),
                libs.join(", "),
                status,
                c.summary.to_string(),
            ]
        })
        .collect();
    let w0 = rows.iter().map(|r| r[0].len()).max().unwrap_or(0).max(10);
    let w1 = rows.iter().map(|r| r[1].len()).max().unwrap_or(0).max(9);
    let checked = r.capabilities.iter().any(|c| c.check.is_some());
    if checked {
        println!("{:w0$}  {:w1$}  CHECK", "CAPABILITY", "LIBRARIES");
        for row in rows {
            println!("{:w0$}  {:w1$}  {}", row[0], row[1], row[2]);
        }
    } else {
        println!("{:w0$}  {:w1$}  SUMMARY", "CAPABILITY", "LIBRARIES");
        for row in rows {
            println!("{:w0$}  {:w1$}  {}", row[0], row[1], row[3]);
        }
    }
    for m in &r.missing {
        println!(
            "{m:w0$}  NOT LINKED: declared by {} but its registration is missing",
            r.profile
        );
    }
}

fn version(m: &ArgMatches, ctx: &Context) -> anyhow::Result<ExitCode> {
    let p = ctx.profile;
    if m.get_flag("json") {
        let v =
            serde_json::json!({"profile": p.name, "version": p.version, "build": build_info(p)});
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{} {} ({}, {})",
            p.name, p.version, p.target, p.git_revision
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn tools(m: &ArgMatches, ctx: &Context) -> anyhow::Result<ExitCode> {
    if m.get_flag("json") {
        let list: Vec<_> = ctx
            .registry
            .tools
            .iter()
            .map(|(name, t)| {
                serde_json::json!({
                    "name": name,
                    "capability": t.owner.name,
                    "description": t.item.description,
                    "input_schema": t.item.input_schema,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        let w = ctx
            .registry
            .tools
            .keys()
            .map(String::len)
            .max()
            .unwrap_or(4)
            .max(4);
        println!("{:w$}  {:16}  DESCRIPTION", "TOOL", "CAPABILITY");
        for (name, t) in &ctx.registry.tools {
            println!("{name:w$}  {:16}  {}", t.owner.name, t.item.description);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn call(m: &ArgMatches, ctx: &Context) -> anyhow::Result<ExitCode> {
    let tool = m.get_one::<String>("tool").expect("required by clap");
    let raw = match m.get_one::<String>("input").map(String::as_str) {
        None => "{}".to_string(),
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read tool input from stdin")?;
            s
        }
        Some(s) => s.to_string(),
    };
    let input: serde_json::Value = serde_json::from_str(&raw).with_context(|| {
        format!(
            "tool input is not valid JSON (line {}); pass an object such as '{{}}'",
            json_error_line(&raw)
        )
    })?;
    let output = ctx.call(tool, input).await?;
    if std::io::stdout().is_terminal() {
        println!("{}", serde_json::to_string_pretty(&output)?);
    } else {
        println!("{}", serde_json::to_string(&output)?);
    }
    Ok(ExitCode::SUCCESS)
}

fn json_error_line(raw: &str) -> usize {
    serde_json::from_str::<serde_json::Value>(raw)
        .err()
        .map(|e| e.line())
        .unwrap_or(0)
}

fn config_check(ctx: &Context) -> anyhow::Result<ExitCode> {
    let report = ctx.config.check(&ctx.registry, ctx.profile);
    let source = ctx
        .config
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
            ctx.config.data_dir.display()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!("config has {} error(s): {source}", report.errors.len());
        Ok(ExitCode::from(2))
    }
}

async fn serve(ctx: &Context) -> anyhow::Result<ExitCode> {
    if ctx.registry.services.is_empty() {
        bail!(
            "{} has no long-running services; nothing to serve",
            ctx.profile.name
        );
    }
    let (trigger, shutdown) = Shutdown::new();
    let mut running = Vec::new();
    let mut ready = Vec::new();
    for (name, service) in &ctx.registry.services {
        let svc = (service.item)(ctx.clone(), shutdown.clone())
            .await
            .with_context(|| {
                format!("service `{name}` ({}) failed to start", service.owner.name)
            })?;
        ready.push(match &svc.address {
            Some(a) => format!("{name} on {a}"),
            None => name.clone(),
        });
        running.push((name.clone(), tokio::spawn(svc.run)));
    }
    eprintln!("{} ready: {}", ctx.profile.name, ready.join(", "));
    wait_for_signal().await;
    let _ = trigger.send(true);
    let mut failed = false;
    for (name, handle) in running {
        match tokio::time::timeout(std::time::Duration::from_secs(10), handle).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                eprintln!("hakiri: service `{name}` failed: {e:#}");
                failed = true;
            }
            Ok(Err(e)) => {
                eprintln!("hakiri: service `{name}` panicked: {e}");
                failed = true;
            }
            Err(_) => eprintln!("hakiri: service `{name}` did not stop within 10s; exiting anyway"),
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
