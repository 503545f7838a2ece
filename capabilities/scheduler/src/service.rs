//! The `scheduler` service of `hakiri serve`: one task per job, each
//! sleeping until its run is due, at most `[scheduler] max_concurrent`
//! refreshes at once.

use crate::job::{check_unique, RefreshJob, RefreshJobs, SchedulerConfig};
use crate::run::{run_once, Ran};
use crate::state::{self, JobState, Outcome};
use hakiri_data_api::Connector;
use hakiri_kernel::clock::unix_now;
use hakiri_kernel::{Context, RunningService, Shutdown};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// When the next run of `job` is due (unix seconds), from what its state
/// says: never run or cut short by a restart → now; failed → after a
/// backoff; otherwise → the schedule's next time after the last start.
/// A time already past means "now": missed runs run once, not N times.
pub fn due(job: &RefreshJob, st: &JobState, cfg: &SchedulerConfig, now: u64) -> u64 {
    let at = match (&st.outcome, st.last_start) {
        (Outcome::Never | Outcome::Running, _) | (_, None) => now,
        (Outcome::Failed, Some(start)) => {
            let end = st.last_end.unwrap_or(start);
            end + backoff(job, cfg, st.failures, end).as_secs()
        }
        (Outcome::Ok | Outcome::Unchanged, Some(start)) => {
            job.schedule.next_after(start).unwrap_or(u64::MAX)
        }
    };
    at.max(now)
}

/// `retry_base × 2^(failures-1)`, at most the job's period and an hour.
fn backoff(job: &RefreshJob, cfg: &SchedulerConfig, failures: u32, from: u64) -> Duration {
    let base = Duration::from_millis(cfg.retry_base_ms.max(1));
    let grown = base.saturating_mul(1 << failures.saturating_sub(1).min(20));
    grown
        .min(job.schedule.period(from))
        .min(Duration::from_secs(3600))
        .max(Duration::from_secs(1))
}

/// Up to a tenth of the period (at most 5 s), so daemons and jobs sharing
/// a schedule do not stampede a source at the same instant.
fn jitter(job: &RefreshJob, now: u64) -> Duration {
    let span = (job.schedule.period(now) / 10).min(Duration::from_secs(5));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let seed = u64::from(nanos) ^ u64::from(std::process::id()).rotate_left(17);
    span.mul_f64((seed % 1000) as f64 / 1000.0)
}

/// Refuses jobs this binary cannot run: a dataset with two jobs, or a
/// source no linked connector reads.
pub fn validate(ctx: &Context) -> anyhow::Result<Arc<RefreshJobs>> {
    let jobs = ctx.section::<RefreshJobs>();
    check_unique(&jobs.0)?;
    let connectors = ctx.all::<dyn Connector>();
    for job in &jobs.0 {
        if !hakiri_data_api::readable(ctx, &job.source) {
            let kinds: Vec<&str> = connectors.iter().map(|(k, _)| *k).collect();
            anyhow::bail!(
                "job `{}`: no connector reads `{}`; connectors in {}: {}",
                job.dataset,
                hakiri_data_api::redact(&job.source),
                ctx.profile.name,
                kinds.join(", ")
            );
        }
    }
    Ok(jobs)
}

pub async fn serve(ctx: Context, shutdown: Shutdown) -> anyhow::Result<RunningService> {
    let jobs = validate(&ctx)?;
    let cfg = ctx.section::<SchedulerConfig>();
    let slots = Arc::new(Semaphore::new(cfg.max_concurrent.max(1)));
    let run = async move {
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..jobs.0.len() {
            let (ctx, jobs, slots, stop) =
                (ctx.clone(), jobs.clone(), slots.clone(), shutdown.clone());
            tasks.spawn(async move {
                tokio::select! {
                    () = keep_fresh(&ctx, &jobs.0[index], &slots) => {}
                    () = stop.wait() => {}
                }
            });
        }
        shutdown.wait().await;
        tasks.shutdown().await;
        Ok(())
    };
    Ok(RunningService {
        address: None,
        run: Box::pin(run),
    })
}

/// One job's loop. Errors are recorded in its state and retried; the
/// previous version keeps being served meanwhile.
async fn keep_fresh(ctx: &Context, job: &RefreshJob, slots: &Semaphore) {
    let data_dir = ctx.config.data_dir.clone();
    let cfg = ctx.section::<SchedulerConfig>();
    let mut not_before = 0;
    loop {
        let now = unix_now();
        let st = state::load(&data_dir, &job.dataset);
        let at = due(job, &st, &cfg, now).max(not_before);
        let wait = Duration::from_secs(at - now) + jitter(job, now);
        tokio::time::sleep(wait).await;
        let Ok(_slot) = slots.acquire().await else {
            return;
        };
        match run_once(ctx, job).await {
            // Someone else is refreshing it: look again in a while.
            Ok(Ran::Busy) => {
                not_before = unix_now()
                    + job
                        .schedule
                        .period(now)
                        .min(Duration::from_secs(60))
                        .as_secs()
            }
            Ok(_) => not_before = 0,
            // Recorded as a failure; the state file's backoff decides.
            Err(_) => not_before = unix_now() + 1,
        }
    }
}
