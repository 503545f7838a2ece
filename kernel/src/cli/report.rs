//! `capabilities`: what this binary links, contributes and (with `--check`)
//! whether each capability's self-check does real work here.

use crate::capability::CheckOutcome;
use crate::context::Context;
use crate::report::{
    BuildInfo, CapabilitiesReport, CapabilityReport, LibraryReport, SCHEMA_VERSION,
};
use clap::ArgMatches;
use std::process::ExitCode;

pub(super) async fn capabilities(m: &ArgMatches, ctx: &Context) -> anyhow::Result<ExitCode> {
    let run_checks = m.get_flag("check");
    let mut caps = Vec::new();
    for cap in &ctx.registry.capabilities {
        let check = if run_checks {
            Some(ctx.check(cap.name).await)
        } else {
            None
        };
        caps.push(CapabilityReport {
            name: cap.name.to_string(),
            crate_name: cap.crate_name.to_string(),
            version: cap.version.to_string(),
            summary: cap.summary.to_string(),
            libraries: cap
                .libraries
                .iter()
                .map(|l| LibraryReport {
                    name: l.name.to_string(),
                    version: l.version.to_string(),
                })
                .collect(),
            contributes: ctx
                .registry
                .contributions
                .get(cap.name)
                .cloned()
                .unwrap_or_default(),
            installed: ctx.registry.installed.get(cap.name).map(|list| list(ctx)),
            check,
        });
    }
    let missing: Vec<String> = ctx
        .profile
        .declared
        .iter()
        .filter(|d| ctx.registry.capability(d).is_none())
        .map(|d| d.to_string())
        .collect();
    let failed = caps
        .iter()
        .any(|c| matches!(c.check, Some(CheckOutcome::Failed(_))));
    let report = CapabilitiesReport {
        schema_version: SCHEMA_VERSION,
        profile: ctx.profile.name.to_string(),
        version: ctx.profile.version.to_string(),
        build: BuildInfo::of(ctx.profile),
        capabilities: caps,
        missing,
    };
    if m.get_flag("json") {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_capabilities(ctx, &report);
    }
    if run_checks && (failed || !report.missing.is_empty()) {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_capabilities(ctx: &Context, r: &CapabilitiesReport) {
    println!("{}", ctx.profile.describe());
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
