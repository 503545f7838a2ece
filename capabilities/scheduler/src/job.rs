//! `[[refresh]]` jobs as declared in hakiri.toml, validated when the
//! configuration is read (so `hakiri config check` names file and line).

use anyhow::{bail, Context as _};
use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use croner::Cron;
use hakiri_kernel::Section;
use serde::Deserialize;
use std::time::Duration;

/// Every `[[refresh]]` table, in file order.
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct RefreshJobs(pub Vec<RefreshJob>);

impl Section for RefreshJobs {
    const NAME: &'static str = "refresh";
}

/// `[scheduler]`: how refresh jobs run together.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// Refreshes running at once (others wait their turn).
    pub max_concurrent: usize,
    /// First retry delay after a failure, doubled per failure up to the
    /// job's own interval (and at most an hour).
    pub retry_base_ms: u64,
    /// Timeout of the conditional HEAD that skips unchanged sources.
    pub head_timeout_ms: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_concurrent: 2,
            retry_base_ms: 2_000,
            head_timeout_ms: 10_000,
        }
    }
}

impl Section for SchedulerConfig {
    const NAME: &'static str = "scheduler";
}

/// One job: what `hakiri ingest` takes, and when.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawJob")]
pub struct RefreshJob {
    pub dataset: String,
    pub source: String,
    pub schedule: Schedule,
    /// The other ingest options, passed through as `datasets.ingest` input.
    pub ingest: serde_json::Map<String, serde_json::Value>,
    /// `trusted = true`: fetched with the operator's own rights, like
    /// `hakiri ingest`. Otherwise (the default) the job is fetched as a
    /// remote caller's ingest is: `[connectors]` allow-lists, the address
    /// filter on every redirect, byte and decompression caps, since what an
    /// upstream answers (a redirect to a metadata endpoint, say) lands in a
    /// dataset agents read.
    pub trusted: bool,
}

#[derive(Debug, Clone)]
pub enum Schedule {
    Every(Duration),
    Cron {
        cron: Box<Cron>,
        text: String,
        zone: FixedOffset,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    dataset: String,
    source: String,
    every: Option<String>,
    cron: Option<String>,
    /// For `cron`: `UTC` (default) or a fixed offset such as `+02:00`.
    timezone: Option<String>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    schema: Vec<String>,
    #[serde(default)]
    on_error: Option<String>,
    #[serde(default)]
    delimiter: Option<char>,
    #[serde(default)]
    header: Option<bool>,
    #[serde(default)]
    trusted: bool,
}

impl TryFrom<RawJob> for RefreshJob {
    type Error = String;
    fn try_from(raw: RawJob) -> Result<RefreshJob, String> {
        validate_dataset(&raw.dataset)?;
        let schedule = match (&raw.every, &raw.cron) {
            (Some(every), None) => Schedule::Every(parse_interval(every)?),
            (None, Some(cron)) => {
                let parsed: Cron = cron.parse().map_err(|e| {
                    format!("cron `{cron}` is not a cron pattern ({e}); e.g. \"0 */2 * * *\"")
                })?;
                let zone = parse_zone(raw.timezone.as_deref().unwrap_or("UTC"))?;
                Schedule::Cron {
                    cron: Box::new(parsed),
                    text: cron.clone(),
                    zone,
                }
            }
            (Some(_), Some(_)) => return Err("set either `every` or `cron`, not both".into()),
            (None, None) => {
                return Err("set `every` (e.g. \"15m\") or `cron` (e.g. \"0 */2 * * *\")".into())
            }
        };
        if raw.timezone.is_some() && raw.cron.is_none() {
            return Err("`timezone` applies to `cron` schedules only".into());
        }
        if raw.source.trim().is_empty() || raw.source == "-" {
            return Err(
                "`source` must name a file, glob, directory or URL (stdin cannot be refreshed)"
                    .into(),
            );
        }
        let mut ingest = serde_json::Map::new();
        let mut put = |k: &str, v: Option<serde_json::Value>| {
            if let Some(v) = v {
                ingest.insert(k.to_string(), v);
            }
        };
        put("mode", raw.mode.map(Into::into));
        put("format", raw.format.map(Into::into));
        put("on_error", raw.on_error.map(Into::into));
        put("delimiter", raw.delimiter.map(|c| c.to_string().into()));
        put("header", raw.header.map(Into::into));
        if !raw.schema.is_empty() {
            put("schema", Some(raw.schema.into()));
        }
        Ok(RefreshJob {
            dataset: raw.dataset,
            source: raw.source,
            schedule,
            ingest,
            trusted: raw.trusted,
        })
    }
}

fn validate_dataset(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!("dataset `{name}` is not a dataset name: use letters, digits and _ (not starting with a digit)"))
    }
}

/// `30s`, `15m`, `2h`, `1d` (at least one second).
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let d = hakiri_kernel::clock::parse_duration(text).map_err(|e| format!("every {e}"))?;
    if d.is_zero() {
        return Err(format!("every `{}` must be at least 1s", text.trim()));
    }
    Ok(d)
}

fn parse_zone(text: &str) -> Result<FixedOffset, String> {
    if text.eq_ignore_ascii_case("utc") || text == "Z" {
        return Ok(FixedOffset::east_opt(0).expect("zero offset"));
    }
    text.parse::<FixedOffset>().map_err(|_| {
        format!("timezone `{text}`: use UTC or a fixed offset such as +02:00 (named zones are not supported)")
    })
}

impl Schedule {
    /// When the run after one that started at `last` (unix seconds) is due.
    pub fn next_after(&self, last: u64) -> anyhow::Result<u64> {
        match self {
            Schedule::Every(d) => Ok(last + d.as_secs()),
            Schedule::Cron { cron, text, zone } => {
                let start: DateTime<FixedOffset> = zone.from_utc_datetime(
                    &Utc.timestamp_opt(last as i64, 0)
                        .single()
                        .context("time out of range")?
                        .naive_utc(),
                );
                let next = cron
                    .find_next_occurrence(&start, false)
                    .with_context(|| format!("cron `{text}` has no next occurrence"))?;
                Ok(next.timestamp().max(0) as u64)
            }
        }
    }

    /// The nominal gap between runs: bounds retry backoff and jitter.
    pub fn period(&self, from: u64) -> Duration {
        match self {
            Schedule::Every(d) => *d,
            Schedule::Cron { .. } => {
                let next = self.next_after(from).unwrap_or(from + 3600);
                let after = self.next_after(next).unwrap_or(next + 3600);
                Duration::from_secs(after.saturating_sub(next).max(1))
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Schedule::Every(d) => format!("every {}s", d.as_secs()),
            Schedule::Cron { text, zone, .. } => format!("cron {text} ({zone})"),
        }
    }
}

/// Refuses a second job for the same dataset: two schedules writing one
/// dataset would race each other's versions.
pub fn check_unique(jobs: &[RefreshJob]) -> anyhow::Result<()> {
    for (i, job) in jobs.iter().enumerate() {
        if jobs[..i].iter().any(|j| j.dataset == job.dataset) {
            bail!(
                "[[refresh]]: dataset `{}` has two jobs; keep one per dataset",
                job.dataset
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RefreshJobs, String> {
        toml::from_str::<toml::Table>(text)
            .map_err(|e| e.to_string())
            .and_then(|t| {
                t["refresh"]
                    .clone()
                    .try_into()
                    .map_err(|e: toml::de::Error| e.to_string())
            })
    }

    #[test]
    fn jobs_parse_and_bad_ones_say_why() {
        let ok = parse("[[refresh]]\ndataset = \"sales\"\nsource = \"a.csv\"\nevery = \"15m\"\nmode = \"append\"\n").unwrap();
        assert_eq!(ok.0[0].ingest["mode"], "append");
        assert!(matches!(ok.0[0].schedule, Schedule::Every(d) if d.as_secs() == 900));
        for (bad, why) in [
            ("dataset = \"1x\"\nsource = \"a\"\nevery = \"1m\"", "not a dataset name"),
            ("dataset = \"s\"\nsource = \"a\"\nevery = \"15x\"", "every `15x` is not a duration"),
            ("dataset = \"s\"\nsource = \"a\"\ncron = \"61 * * * *\"", "not a cron pattern"),
            ("dataset = \"s\"\nsource = \"a\"", "set `every`"),
            ("dataset = \"s\"\nsource = \"a\"\nevery = \"1m\"\ncron = \"* * * * *\"", "not both"),
            ("dataset = \"s\"\nsource = \"-\"\nevery = \"1m\"", "stdin"),
            ("dataset = \"s\"\nsource = \"a\"\ncron = \"* * * * *\"\ntimezone = \"Europe/Paris\"", "fixed offset"),
            ("dataset = \"s\"\nsource = \"a\"\nevery = \"1m\"\nsurprise = 1", "unknown field"),
        ] {
            let err = parse(&format!("[[refresh]]\n{bad}\n")).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn cron_and_interval_schedules_find_the_next_run() {
        let every = Schedule::Every(Duration::from_secs(60));
        assert_eq!(every.next_after(1000).unwrap(), 1060);
        let cron = parse("[[refresh]]\ndataset = \"s\"\nsource = \"a\"\ncron = \"0 */2 * * *\"\ntimezone = \"+01:00\"\n").unwrap();
        let schedule = &cron.0[0].schedule;
        // 2026-01-01T00:30:00Z is 01:30 at +01:00; the next even hour there is 02:00, i.e. 01:00Z.
        let t = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 30, 0)
            .unwrap()
            .timestamp() as u64;
        let next = schedule.next_after(t).unwrap();
        assert_eq!(
            next,
            Utc.with_ymd_and_hms(2026, 1, 1, 1, 0, 0)
                .unwrap()
                .timestamp() as u64
        );
        assert_eq!(schedule.period(t).as_secs(), 7200);
    }
}
