//! One refresh: a conditional HEAD for HTTP sources (an unchanged source
//! costs a HEAD, not a re-ingest), then the `datasets.ingest` tool, which
//! publishes a complete new version or nothing.

use crate::job::{RefreshJob, SchedulerConfig};
use crate::state::{self, JobState, Outcome};
use anyhow::{bail, Context as _};
use hakiri_kernel::clock::unix_now;
use hakiri_kernel::{Caller, Context};
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::Value;
use std::time::{Duration, Instant};

/// What one run did.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase", tag = "outcome")]
pub enum Ran {
    Refreshed {
        version: u64,
        rows: u64,
    },
    /// The source answered 304 Not Modified.
    Unchanged,
    /// Another process holds the dataset's run lock; nothing was done.
    Busy,
}

/// Validators from a HEAD, kept for the next run's conditional request.
#[derive(Default)]
struct Validators {
    etag: Option<String>,
    last_modified: Option<String>,
}

/// Runs `job` once now (unless another process is running it), recording
/// the outcome in its state file and logging one line.
pub async fn run_once(ctx: &Context, job: &RefreshJob) -> anyhow::Result<Ran> {
    let data_dir = ctx.config.data_dir.clone();
    let Some(_lock) = state::try_lock(&data_dir, &job.dataset)? else {
        eprintln!(
            "hakiri: refresh {}: skipped, another process is refreshing it",
            job.dataset
        );
        return Ok(Ran::Busy);
    };
    let mut st = state::load(&data_dir, &job.dataset);
    st.outcome = Outcome::Running;
    st.last_start = Some(unix_now());
    state::save(&data_dir, &job.dataset, &st)?;
    let started = Instant::now();
    let result = refresh(ctx, job, &mut st).await;
    let took = started.elapsed();
    st.last_end = Some(unix_now());
    st.duration_ms = Some(took.as_millis() as u64);
    let line = match &result {
        Ok(Ran::Refreshed { version, rows }) => {
            (st.outcome, st.rows, st.version) = (Outcome::Ok, Some(*rows), Some(*version));
            format!("refreshed: version {version}, {rows} rows")
        }
        Ok(_) => {
            st.outcome = Outcome::Unchanged;
            "unchanged (304 Not Modified), no new version".to_string()
        }
        Err(e) => {
            st.outcome = Outcome::Failed;
            st.failures += 1;
            st.last_error = Some(format!("{e:#}"));
            format!(
                "failed (failure {} in a row; the previous version stays): {e:#}",
                st.failures
            )
        }
    };
    if result.is_ok() {
        st.failures = 0;
        st.last_error = None;
        st.last_success = st.last_end;
    }
    state::save(&data_dir, &job.dataset, &st)?;
    eprintln!(
        "hakiri: refresh {} in {} ms: {line}",
        job.dataset,
        took.as_millis()
    );
    result
}

async fn refresh(ctx: &Context, job: &RefreshJob, st: &mut JobState) -> anyhow::Result<Ran> {
    // An untrusted job's fetch is an agent's: the connectors apply their
    // remote policy to it, and its ingest may touch only its own dataset.
    let ctx = &if job.trusted {
        ctx.clone()
    } else {
        ctx.with_caller(Caller::Agent {
            transport: "refresh",
            session: Some(job.dataset.clone()),
            credential: None,
        })
    };
    let is_http = job.source.starts_with("http://") || job.source.starts_with("https://");
    let mut fresh = Validators::default();
    if is_http {
        let exists = hakiri_data_api::open_catalog(ctx)
            .await?
            .get(&job.dataset)
            .await?
            .is_some();
        // Validators only count while the version they describe exists.
        let known = exists.then(|| Validators {
            etag: st.etag.clone(),
            last_modified: st.last_modified.clone(),
        });
        match head(ctx, &job.source, known.as_ref(), job.trusted).await? {
            Head::NotModified => return Ok(Ran::Unchanged),
            Head::Changed(v) => fresh = v,
        }
    }
    let mut input = job.ingest.clone();
    input.insert("sources".into(), Value::from(vec![job.source.clone()]));
    input.insert("name".into(), Value::from(job.dataset.clone()));
    let report = ctx
        .call("datasets.ingest", Value::Object(input))
        .await
        .map_err(|e| match job.trusted {
            true => anyhow::anyhow!("{e}"),
            false => anyhow::anyhow!(
                "{e} (a [[refresh]] job is fetched as a remote caller's ingest: allow its source in [connectors], \
                 or set `trusted = true` on the job to fetch it with your own rights)"
            ),
        })?;
    st.etag = fresh.etag;
    st.last_modified = fresh.last_modified;
    Ok(Ran::Refreshed {
        version: report["version"].as_u64().unwrap_or_default(),
        rows: report["rows"].as_u64().unwrap_or_default(),
    })
}

enum Head {
    NotModified,
    Changed(Validators),
}

/// `HEAD source` with the previous validators. A server that does not do
/// HEAD (405/501) just means no conditional fetch.
/// An untrusted job's HEAD follows no redirect: a 3xx only means "fetch
/// it", and the fetch (through the connectors' guard) decides where to go.
async fn head(
    ctx: &Context,
    url: &str,
    known: Option<&Validators>,
    trusted: bool,
) -> anyhow::Result<Head> {
    let cfg = ctx.section::<SchedulerConfig>();
    let mut client = reqwest::Client::builder().timeout(Duration::from_millis(cfg.head_timeout_ms));
    if !trusted {
        client = client.redirect(reqwest::redirect::Policy::none());
    }
    let client = client.build().context("cannot build the HTTP client")?;
    let mut request = client.head(url);
    if let Some(known) = known {
        if let Some(etag) = &known.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &known.last_modified {
            request = request.header(IF_MODIFIED_SINCE, lm);
        }
    }
    let shown = hakiri_data_api::redact(url);
    let response = request
        .send()
        .await
        .with_context(|| format!("HEAD {shown}"))?;
    let status = response.status();
    if status == StatusCode::NOT_MODIFIED {
        return Ok(Head::NotModified);
    }
    if status == StatusCode::METHOD_NOT_ALLOWED
        || status == StatusCode::NOT_IMPLEMENTED
        || status.is_redirection()
    {
        return Ok(Head::Changed(Validators::default()));
    }
    if !status.is_success() {
        bail!("HEAD {shown} answered {status}");
    }
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Ok(Head::Changed(Validators {
        etag: header(ETAG),
        last_modified: header(LAST_MODIFIED),
    }))
}
