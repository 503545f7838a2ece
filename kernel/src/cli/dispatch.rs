//! Runs the subcommand the user chose: the kernel's own, or a capability's.

use super::{build_cli, report, serve};
use crate::context::Context;
use crate::registry::Acts;
use crate::report::BuildInfo;
use anyhow::{anyhow, Context as _};
use clap::ArgMatches;
use std::io::{IsTerminal, Read};
use std::process::ExitCode;

pub(super) async fn dispatch(matches: ArgMatches, ctx: Context) -> anyhow::Result<ExitCode> {
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
        "capabilities" => report::capabilities(sub, &ctx).await,
        "version" => version(sub, &ctx),
        "tools" => tools(sub, &ctx).await,
        "call" => call(sub, &ctx).await,
        "serve" if ctx.caller().credential().is_some() => Err(operator_only("serve")),
        "serve" => serve::serve(&ctx).await,
        other => {
            let entry = ctx
                .registry
                .commands
                .get(other)
                .ok_or_else(|| anyhow!("unknown command `{other}`"))?;
            let ctx = under_token(&ctx, other, entry.item.acts, sub).await?;
            (entry.item.handler)(sub.clone(), ctx).await
        }
    }
}

/// The context a capability's command runs in: with no token, the local
/// user's; with one, the command's declared [`Acts`] decide, before it runs.
async fn under_token(
    ctx: &Context,
    name: &str,
    acts: Acts,
    m: &ArgMatches,
) -> anyhow::Result<Context> {
    if ctx.caller().credential().is_none() {
        return Ok(ctx.clone());
    }
    match acts {
        Acts::By(decide) => {
            let sub = m
                .subcommand_name()
                .map_or(name.to_string(), |s| format!("{name} {s}"));
            Box::pin(under_token(ctx, &sub, decide(m), m)).await
        }
        Acts::Delegates => Ok(ctx.clone()),
        Acts::Operator => Err(operator_only(name)),
        Acts::As(tool) => {
            ctx.authorize(tool, &serde_json::Value::Null).await?;
            Ok(ctx.running(tool))
        }
    }
}

fn operator_only(name: &str) -> anyhow::Error {
    anyhow!(
        "`{name}` is an operator's command on this machine and does not act under a token; \
         run it without --token, --token-file and HAKIRI_TOKEN"
    )
}

fn version(m: &ArgMatches, ctx: &Context) -> anyhow::Result<ExitCode> {
    let p = ctx.profile;
    if m.get_flag("deps") {
        if p.deps.is_empty() {
            anyhow::bail!("{} was built without a dependency list (cargo metadata was unavailable at build time)", p.name);
        }
        if m.get_flag("json") {
            let list: Vec<_> = p
                .deps
                .iter()
                .map(|(n, v)| serde_json::json!({"name": n, "version": v}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        } else {
            for (n, v) in p.deps {
                println!("{n} {v}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if m.get_flag("json") {
        let v =
            serde_json::json!({"profile": p.name, "version": p.version, "build": BuildInfo::of(p)});
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{}", p.describe());
    }
    Ok(ExitCode::SUCCESS)
}

async fn tools(m: &ArgMatches, ctx: &Context) -> anyhow::Result<ExitCode> {
    let callable = ctx.callable_tools().await;
    let shown = || {
        ctx.registry
            .tools
            .iter()
            .filter(|(name, _)| callable.contains(&name.as_str()))
    };
    if m.get_flag("json") {
        let list: Vec<_> = shown()
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
        for (name, t) in shown() {
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
