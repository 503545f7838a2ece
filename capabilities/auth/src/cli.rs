//! `hakiri auth init | token | attenuate | inspect | revoke`.

use crate::keys;
use crate::mint::{self, Grants};
use clap::{Arg, ArgAction, ArgMatches, Command};
use hakiri_kernel::Context;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn command() -> Command {
    let token_arg = || {
        // Not id `token`: that is the global `--token`, whose value clap
        // would take from this argument and run the command under.
        Arg::new("subject")
            .value_name("TOKEN")
            .required_unless_present("token-in")
            .help("The token (base64); or use --token-in FILE")
    };
    let token_in = || {
        Arg::new("token-in")
            .long("token-in")
            .value_parser(clap::value_parser!(PathBuf))
            .help("Read the token from this file")
    };
    Command::new("auth")
        .about("Root key and tokens: who may call which tools on which datasets")
        .subcommand_required(true)
        .subcommand(
            Command::new("init")
                .about("Create the root key pair under the home (prints the public key)")
                .arg(flag(
                    "force",
                    "Replace an existing root key (its tokens stop working)",
                )),
        )
        .subcommand(grant_args(Command::new("token").about(
            "Mint a token granting tools and datasets (printed on stdout)",
        )))
        .subcommand(grant_args(
            Command::new("attenuate")
                .about("Narrow a token offline (no private key needed); prints the new token")
                .arg(token_arg())
                .arg(token_in()),
        ))
        .subcommand(
            Command::new("inspect")
                .about("Show a token's blocks, expiry and revocation ids")
                .arg(token_arg())
                .arg(token_in())
                .arg(flag("json", "Print JSON")),
        )
        .subcommand(
            Command::new("revoke")
                .about("Revoke a token by one of its revocation ids (see `auth inspect`)")
                .arg(Arg::new("id").required(true)),
        )
}

fn flag(name: &'static str, help: &'static str) -> Arg {
    Arg::new(name)
        .long(name)
        .action(ArgAction::SetTrue)
        .help(help)
}

fn grant_args(cmd: Command) -> Command {
    cmd.arg(
        Arg::new("tool")
            .long("tool")
            .action(ArgAction::Append)
            .help("A tool, a namespace (search.*) or *; repeatable"),
    )
    .arg(
        Arg::new("dataset")
            .long("dataset")
            .action(ArgAction::Append)
            .help("A dataset name or *; repeatable"),
    )
    .arg(Arg::new("ttl").long("ttl").help("Lifetime: 30m, 24h, 7d"))
    .arg(flag("read-only", "Grant reading datasets only"))
}

fn grants(m: &ArgMatches) -> anyhow::Result<Grants> {
    let list = |name| {
        m.get_many::<String>(name)
            .map(|v| v.cloned().collect())
            .unwrap_or_default()
    };
    Ok(Grants {
        tools: list("tool"),
        datasets: list("dataset"),
        read_only: m.get_flag("read-only"),
        ttl: m
            .get_one::<String>("ttl")
            .map(|t| mint::parse_ttl(t))
            .transpose()?,
    })
}

fn token_of(m: &ArgMatches) -> anyhow::Result<String> {
    if let Some(path) = m.get_one::<PathBuf>("token-in") {
        return std::fs::read_to_string(path)
            .map(|t| t.trim().to_string())
            .map_err(|e| anyhow::anyhow!("cannot read --token-in {}: {e}", path.display()));
    }
    Ok(m.get_one::<String>("subject").cloned().unwrap_or_default())
}

pub async fn run(m: ArgMatches, ctx: Context) -> anyhow::Result<ExitCode> {
    match m.subcommand() {
        Some(("init", m)) => {
            let (path, public) = keys::init(&ctx, m.get_flag("force"))?;
            eprintln!(
                "root key written to {} (mode 0600); public key:",
                path.display()
            );
            println!("{public}");
        }
        Some(("token", m)) => {
            let grants = grants(m)?;
            let token = mint::mint(&keys::key_pair(&ctx)?, &grants)?;
            let ids: Vec<String> = token
                .revocation_identifiers()
                .iter()
                .map(hex::encode)
                .collect();
            eprintln!(
                "token for tools [{}], datasets [{}]{}{}; revoke with `hakiri auth revoke {}`",
                grants.tools.join(", "),
                grants.datasets.join(", "),
                if grants.read_only { ", read-only" } else { "" },
                m.get_one::<String>("ttl")
                    .map(|t| format!(", expires in {t}"))
                    .unwrap_or_default(),
                ids.first().cloned().unwrap_or_default(),
            );
            println!("{}", token.to_base64()?);
        }
        Some(("attenuate", m)) => println!("{}", mint::attenuate(&token_of(m)?, &grants(m)?)?),
        Some(("inspect", m)) => {
            let report = mint::inspect(&token_of(m)?, keys::root_public_key(&ctx).ok())?;
            if m.get_flag("json") {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for (i, block) in report.blocks.iter().enumerate() {
                    println!("block {i}{}:", if i == 0 { " (authority)" } else { "" });
                    for line in block.lines() {
                        println!("  {line}");
                    }
                }
                println!("expires: {}", report.expires.as_deref().unwrap_or("never"));
                println!("revocation ids: {}", report.revocation_ids.join(" "));
                match report.signed_by_root_key {
                    Some(true) => println!("signature: valid under this home's root key"),
                    Some(false) => println!("signature: NOT valid under this home's root key"),
                    None => println!("signature: not checked (no root key here)"),
                }
            }
        }
        Some(("revoke", m)) => {
            let id = m.get_one::<String>("id").cloned().unwrap_or_default();
            let path = keys::revoke(&ctx, &id)?;
            eprintln!("revoked; recorded in {}", path.display());
        }
        other => anyhow::bail!("unknown `auth` subcommand {other:?}; see `hakiri auth --help`"),
    }
    Ok(ExitCode::SUCCESS)
}
