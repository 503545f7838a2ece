//! `hakiri connector add|list|remove|inspect`: installing WebAssembly
//! connectors under the home. Adding is for the operator at the CLI only: it
//! reads a file of the host's and decides which hosts the guest may reach.

use crate::installed::{self, Manifest};
use crate::records;
use crate::runtime::{self, Limits};
use crate::WasmConfig;
use anyhow::{bail, Context as _};
use clap::{Arg, ArgAction, ArgMatches, Command};
use hakiri_kernel::Context;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn command() -> Command {
    Command::new("connector")
        .about("Add, list, inspect and remove WebAssembly connectors")
        .subcommand_required(true)
        .subcommand(
            Command::new("add")
                .about("Install a connector component (.wasm built against hakiri:connector)")
                .arg(Arg::new("file").required(true).value_parser(clap::value_parser!(PathBuf)))
                .arg(Arg::new("name").long("name").help("Install under this name instead of the one it declares"))
                .arg(Arg::new("scheme").long("scheme").help("Route this URL scheme to it instead of the one it declares (two copies with different settings)"))
                .arg(
                    Arg::new("allow-host")
                        .long("allow-host")
                        .action(ArgAction::Append)
                        .help("A host (with an optional :port) the connector may fetch from; repeatable"),
                )
                .arg(
                    Arg::new("set")
                        .long("set")
                        .action(ArgAction::Append)
                        .help("A setting key=value the connector reads with host.config; repeatable"),
                )
                .arg(
                    Arg::new("set-env")
                        .long("set-env")
                        .action(ArgAction::Append)
                        .help("A setting key=ENV_VAR whose value is read from the daemon's environment at each use (secrets stay off disk); repeatable"),
                )
                .arg(
                    Arg::new("replace")
                        .long("replace")
                        .action(ArgAction::SetTrue)
                        .help("Replace an installed connector of the same name"),
                ),
        )
        .subcommand(
            Command::new("list")
                .about("The installed connectors")
                .arg(Arg::new("json").long("json").action(ArgAction::SetTrue)),
        )
        .subcommand(
            Command::new("inspect")
                .about("A connector's manifest, and what it can read at a source")
                .arg(Arg::new("name").required(true))
                .arg(Arg::new("source").help("A source it reads: lists what is there")),
        )
        .subcommand(
            Command::new("remove")
                .about("Uninstall a connector")
                .arg(Arg::new("name").required(true)),
        )
}

pub async fn run(m: ArgMatches, ctx: Context) -> anyhow::Result<ExitCode> {
    let data_dir = ctx.config.data_dir.clone();
    match m.subcommand() {
        Some(("add", m)) => {
            let manifest = add(&ctx, m).await?;
            println!(
                "added connector `{}`: reads {}:// sources ({}); fetches from: {}",
                manifest.name,
                manifest.scheme,
                manifest.description,
                if manifest.allow_hosts.is_empty() {
                    "nowhere".to_string()
                } else {
                    manifest.allow_hosts.join(", ")
                }
            );
        }
        Some(("list", m)) => {
            let all = installed::read_all(&data_dir)?;
            if m.get_flag("json") {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!("no connectors installed; add one with `hakiri connector add file.wasm`");
            } else {
                println!(
                    "{:<16} {:<12} {:<24} DESCRIPTION",
                    "NAME", "SCHEME", "HOSTS"
                );
                for c in all.iter() {
                    println!(
                        "{:<16} {:<12} {:<24} {}",
                        c.name,
                        format!("{}://", c.scheme),
                        c.allow_hosts.join(","),
                        c.description
                    );
                }
            }
        }
        Some(("inspect", m)) => {
            let name = m.get_one::<String>("name").expect("required");
            let manifest = find(&data_dir, name)?;
            let mut out = serde_json::json!({ "connector": manifest });
            if let Some(source) = m.get_one::<String>("source") {
                let entries = records::discover(&ctx, &manifest, source).await?;
                out["entries"] = serde_json::to_value(entries)?;
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Some(("remove", m)) => {
            let name = m.get_one::<String>("name").expect("required");
            find(&data_dir, name)?;
            remove(&data_dir, name)?;
            println!("removed connector `{name}`");
        }
        _ => unreachable!("clap requires a subcommand"),
    }
    Ok(ExitCode::SUCCESS)
}

fn find(data_dir: &std::path::Path, name: &str) -> anyhow::Result<Manifest> {
    let all = installed::read_all(data_dir)?;
    if let Some(m) = all.iter().find(|m| m.name == name) {
        return Ok(m.clone());
    }
    let names: Vec<&str> = all.iter().map(|m| m.name.as_str()).collect();
    bail!(
        "no connector named `{name}` is installed; installed: {}",
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    )
}

/// Moves the directory aside (one rename), then deletes it: a reader sees it
/// whole or not at all.
fn remove(data_dir: &std::path::Path, name: &str) -> anyhow::Result<()> {
    let dir = installed::dir(data_dir, name);
    let trash = installed::root(data_dir).join(format!(".removed-{name}-{}", std::process::id()));
    std::fs::rename(&dir, &trash).with_context(|| format!("cannot remove {}", dir.display()))?;
    std::fs::remove_dir_all(&trash).with_context(|| format!("cannot delete {}", trash.display()))
}

async fn add(ctx: &Context, m: &ArgMatches) -> anyhow::Result<Manifest> {
    let cfg = WasmConfig::clone(&ctx.section::<WasmConfig>());
    let file = m.get_one::<PathBuf>("file").expect("required").clone();
    let meta =
        std::fs::metadata(&file).with_context(|| format!("cannot read {}", file.display()))?;
    if meta.len() > cfg.max_component_mb << 20 {
        bail!(
            "{} is {} MiB; connectors may be at most {} MiB ([wasm-host] max_component_mb)",
            file.display(),
            meta.len() >> 20,
            cfg.max_component_mb
        );
    }
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let allow_hosts: Vec<String> = m
        .get_many::<String>("allow-host")
        .into_iter()
        .flatten()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    for h in &allow_hosts {
        installed::check_host(h)?;
    }
    let mut settings = BTreeMap::new();
    for kv in m.get_many::<String>("set").into_iter().flatten() {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("--set `{kv}` is not key=value");
        };
        settings.insert(k.trim().to_string(), v.to_string());
    }
    let mut settings_env = BTreeMap::new();
    for kv in m.get_many::<String>("set-env").into_iter().flatten() {
        let Some((k, var)) = kv.split_once('=').filter(|(_, v)| !v.is_empty()) else {
            bail!("--set-env `{kv}` is not key=ENV_VAR");
        };
        settings_env.insert(k.trim().to_string(), var.to_string());
    }
    let shown = file.display().to_string();
    let limits = Limits::of(&cfg);
    let described = hakiri_kernel::blocking("compiling the connector", move || {
        runtime::describe_file(&bytes, &shown, &limits)
    })
    .await?;
    let info = &described.info;
    let name = m
        .get_one::<String>("name")
        .cloned()
        .unwrap_or_else(|| info.name.clone());
    installed::check_name("connector name", &name)?;
    let scheme = m
        .get_one::<String>("scheme")
        .cloned()
        .unwrap_or_else(|| info.scheme.clone());
    installed::check_name("scheme", &scheme)
        .with_context(|| format!("{} cannot be routed by scheme", file.display()))?;
    if installed::RESERVED_SCHEMES.contains(&scheme.as_str()) {
        bail!("scheme `{scheme}` is read by a built-in connector; a WASM connector cannot take it over (pass --scheme to route another)");
    }
    let config_schema: serde_json::Value = serde_json::from_str(&info.config_schema)
        .with_context(|| format!("{}: its config-schema is not JSON", file.display()))?;
    let data_dir = ctx.config.data_dir.clone();
    let replace = m.get_flag("replace");
    for other in installed::read_all(&data_dir)? {
        if other.name == name && !replace {
            bail!("a connector named `{name}` is installed; pass --replace to replace it, or --name to add this one beside it");
        }
        if other.scheme == scheme && other.name != name {
            bail!("connector `{}` already reads {scheme}:// sources; remove it first (`hakiri connector remove {}`) or pass --scheme", other.name, other.name);
        }
    }
    let manifest = Manifest {
        name: name.clone(),
        scheme,
        description: info.description.clone(),
        config_schema,
        wit: runtime::WIT_PACKAGE.to_string(),
        sha256: hex::encode(Sha256::digest(&described.bytes)),
        bytes: described.bytes.len() as u64,
        allow_hosts,
        settings,
        settings_env,
        added: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let root = installed::root(&data_dir);
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let staging = root.join(format!(".adding-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    std::fs::write(installed::wasm_path(&staging), &described.bytes)?;
    std::fs::write(installed::compiled_path(&staging), &described.compiled)?;
    std::fs::write(
        staging.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    if replace && installed::dir(&data_dir, &name).exists() {
        // Swapped in one step; the old connector is then where staging was.
        installed::exchange(&staging, &data_dir, &name)?;
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("cannot delete {}", staging.display()))?;
    } else {
        installed::publish(&staging, &data_dir, &name)?;
    }
    Ok(manifest)
}
