//! `scheduler`: datasets that keep themselves fresh. `[[refresh]]` jobs in
//! hakiri.toml re-ingest a source on an interval or a cron schedule while
//! `hakiri serve` runs; `hakiri refresh <dataset>` runs one now.
//!
//! A run never publishes half a version (it goes through `datasets.ingest`),
//! two processes sharing a home never run one job at once (a lock file), an
//! unchanged HTTP source costs a conditional HEAD, failures back off
//! exponentially while the previous version keeps being served, and runs
//! missed while the daemon was down run once when it is back.

mod job;
mod run;
mod service;
mod state;

pub use job::{RefreshJob, RefreshJobs, Schedule, SchedulerConfig};

use clap::{Arg, ArgAction, Command};
use hakiri_data_api::{authorize_dataset, DatasetStatus};
use hakiri_kernel::clock::{rfc3339, unix_now};
use hakiri_kernel::{Context, KernelError, Registrar, Tool};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use std::process::ExitCode;
use std::sync::Arc;

hakiri_kernel::capability!(register);

fn register(r: &mut Registrar) -> Result<(), KernelError> {
    r.config::<RefreshJobs>()?;
    r.config::<SchedulerConfig>()?;
    r.validate::<RefreshJobs>(|ctx| {
        service::validate(ctx)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    r.service("scheduler", service::serve)?;
    r.provide::<dyn DatasetStatus>("refresh", Arc::new(RefreshStatus))?;
    r.tool(Tool::typed(
        "scheduler.status",
        "How fresh each scheduled dataset is: its refresh schedule, last run (outcome, rows, version, duration, error) and next run",
        |_: NoInput, ctx| async move {
            let mut out = Vec::new();
            for job in &ctx.section::<RefreshJobs>().0 {
                if authorize_dataset(&ctx, &job.dataset, false).await.is_ok() {
                    out.push(status(&ctx, job));
                }
            }
            Ok(out)
        },
    ))?;
    r.command(
        Command::new("refresh")
            .about("Run a dataset's [[refresh]] job now, or list every job's state")
            .arg(Arg::new("dataset").required_unless_present("list"))
            .arg(
                Arg::new("list")
                    .long("list")
                    .action(ArgAction::SetTrue)
                    .help("List jobs and their last and next runs"),
            )
            .arg(
                Arg::new("json")
                    .long("json")
                    .action(ArgAction::SetTrue)
                    .help("Print JSON"),
            ),
        hakiri_kernel::Acts::Operator,
        |m, ctx| async move { refresh_command(&m, &ctx).await },
    )?;
    r.check(|ctx| async move {
        let jobs = service::validate(&ctx)?;
        anyhow::Ok(hakiri_kernel::CheckOutcome::Ok(format!(
            "{} refresh job(s) configured; croner parsed their schedules",
            jobs.0.len()
        )))
    });
    Ok(())
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoInput {}

/// One job's schedule and state, as every surface shows it.
fn status(ctx: &Context, job: &RefreshJob) -> Value {
    let cfg = ctx.section::<SchedulerConfig>();
    let st = state::load(&ctx.config.data_dir, &job.dataset);
    let now = unix_now();
    let when = |t: Option<u64>| t.map(rfc3339);
    json!({
        "dataset": job.dataset,
        "source": hakiri_data_api::redact_source(&job.source),
        "schedule": job.schedule.describe(),
        "outcome": st.outcome,
        "last_run": when(st.last_start),
        "duration_ms": st.duration_ms,
        "rows": st.rows,
        "version": st.version,
        "last_success": when(st.last_success),
        "age_s": st.last_success.map(|t| now.saturating_sub(t)),
        "failures": st.failures,
        "last_error": st.last_error,
        "next_run": rfc3339(service::due(job, &st, &cfg, now)),
    })
}

/// `hakiri datasets` and `datasets.list` show each scheduled dataset's freshness.
struct RefreshStatus;

impl DatasetStatus for RefreshStatus {
    fn status(&self, ctx: &Context, dataset: &str) -> Option<Value> {
        let jobs = ctx.section::<RefreshJobs>();
        let job = jobs.0.iter().find(|j| j.dataset == dataset)?;
        let mut v = status(ctx, job);
        let summary = match (&v["outcome"], &v["last_error"]) {
            (Value::String(o), Value::String(e)) if o == "failed" => format!("failed: {e}"),
            (Value::String(o), _) => format!("{o}, next {}", v["next_run"].as_str().unwrap_or("?")),
            _ => String::new(),
        };
        v["summary"] = summary.into();
        Some(v)
    }
}

async fn refresh_command(m: &clap::ArgMatches, ctx: &Context) -> anyhow::Result<ExitCode> {
    let jobs = service::validate(ctx)?;
    if m.get_flag("list") {
        let all: Vec<Value> = jobs.0.iter().map(|j| status(ctx, j)).collect();
        if m.get_flag("json") {
            println!("{}", serde_json::to_string_pretty(&all)?);
        } else if all.is_empty() {
            println!("no [[refresh]] jobs in the configuration");
        } else {
            println!(
                "{:<16} {:<12} {:<10} {:>10} {:<21} {:<21} LAST ERROR",
                "DATASET", "SCHEDULE", "OUTCOME", "ROWS", "LAST RUN", "NEXT RUN"
            );
            for s in &all {
                let text = |k: &str| s[k].as_str().unwrap_or("-").to_string();
                println!(
                    "{:<16} {:<12} {:<10} {:>10} {:<21} {:<21} {}",
                    text("dataset"),
                    text("schedule"),
                    text("outcome"),
                    s["rows"].as_u64().map_or("-".into(), |r| r.to_string()),
                    text("last_run"),
                    text("next_run"),
                    text("last_error"),
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let name = m.get_one::<String>("dataset").cloned().unwrap_or_default();
    let Some(job) = jobs.0.iter().find(|j| j.dataset == name) else {
        let known: Vec<&str> = jobs.0.iter().map(|j| j.dataset.as_str()).collect();
        anyhow::bail!(
            "no [[refresh]] job for dataset `{name}`; jobs: {}",
            if known.is_empty() {
                "none configured".to_string()
            } else {
                known.join(", ")
            }
        );
    };
    let ran = run::run_once(ctx, job).await?;
    if m.get_flag("json") {
        println!("{}", serde_json::to_string(&ran)?);
    }
    Ok(ExitCode::SUCCESS)
}
