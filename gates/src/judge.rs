//! Judging a soak from its RSS samples, as ADR-0012 words it: RSS at the
//! end within ±5% of RSS at "day 1". The run is cut in sevenths (a 7-day
//! soak's days); the baseline is the median of the first seventh after
//! warm-up and the final value the median of the last, so one spike at
//! either end cannot pass or fail a week's soak. Any failed call fails it.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One RSS sample; the state file holds one per line, appended as taken,
/// so a judge can read a soak that outlived the job that started it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the soak started.
    pub at_s: f64,
    pub rss: u64,
    /// Calls and failed calls so far.
    pub calls: u64,
    pub errors: u64,
}

#[derive(Debug)]
pub struct Verdict {
    pub baseline: u64,
    pub last: u64,
    pub drift: f64,
    pub calls: u64,
    pub errors: u64,
    /// Why it failed; empty when it passed.
    pub failures: Vec<String>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

pub fn judge(samples: &[Sample], max_drift: f64) -> Result<Verdict> {
    if samples.len() < 7 {
        bail!(
            "{} RSS sample(s) after warm-up; a soak needs at least 7 to judge (give a longer --duration)",
            samples.len()
        );
    }
    let (start, end) = (samples[0].at_s, samples[samples.len() - 1].at_s);
    let seventh = (end - start) / 7.0;
    let window = |from: f64, to: f64| -> Vec<u64> {
        samples
            .iter()
            .filter(|s| s.at_s >= from && s.at_s <= to)
            .map(|s| s.rss)
            .collect()
    };
    let baseline = median(window(start, start + seventh));
    let last = median(window(end - seventh, end));
    let drift = (last as f64 - baseline as f64) / baseline as f64;
    let tail = samples[samples.len() - 1];
    let mut failures = Vec::new();
    if drift.abs() > max_drift {
        failures.push(format!(
            "RSS drifted {:+.1}% from the first seventh to the last (limit ±{:.0}%)",
            drift * 100.0,
            max_drift * 100.0
        ));
    }
    if tail.errors > 0 {
        failures.push(format!("{} of {} calls failed", tail.errors, tail.calls));
    }
    Ok(Verdict {
        baseline,
        last,
        drift,
        calls: tail.calls,
        errors: tail.errors,
        failures,
    })
}

/// The samples of a state file.
pub fn load(path: &Path) -> Result<Vec<Sample>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the soak state {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: not a soak sample", path.display(), i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 7 "days" of hourly samples, RSS from `f(hour)`, no failed calls.
    fn series(f: impl Fn(f64) -> f64) -> Vec<Sample> {
        (0..=168)
            .map(|h| Sample {
                at_s: h as f64 * 3600.0,
                rss: f(h as f64) as u64,
                calls: h * 1000,
                errors: 0,
            })
            .collect()
    }

    const MB: f64 = 1048576.0;

    #[test]
    fn a_flat_noisy_series_passes() {
        // ±3% noise and a lone spike at the very end.
        let mut s = series(|h| 60.0 * MB * (1.0 + 0.03 * (h * 1.7).sin()));
        s.last_mut().unwrap().rss = (90.0 * MB) as u64;
        let v = judge(&s, 0.05).unwrap();
        assert!(v.ok(), "{v:?}");
        assert!(v.drift.abs() < 0.05, "{v:?}");
    }

    #[test]
    fn a_slow_leak_fails_with_its_drift() {
        // +1.5 MB a day on 60 MB: +10% over the week.
        let v = judge(&series(|h| 60.0 * MB + h / 24.0 * 1.5 * MB), 0.05).unwrap();
        assert!(!v.ok());
        assert!(
            v.failures[0].starts_with("RSS drifted +") && v.failures[0].ends_with("(limit ±5%)"),
            "{:?}",
            v.failures
        );
    }

    #[test]
    fn failed_calls_fail_the_soak_and_short_runs_are_refused() {
        let mut s = series(|_| 60.0 * MB);
        s.last_mut().unwrap().errors = 2;
        let v = judge(&s, 0.05).unwrap();
        assert_eq!(v.failures, ["2 of 168000 calls failed"]);
        let err = judge(&s[..3], 0.05).unwrap_err().to_string();
        assert!(err.contains("needs at least 7"), "{err}");
    }

    /// Recorded runs (`cargo gates soak --state`), judged as CI would.
    fn recorded(name: &str) -> Verdict {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/soak")
            .join(name);
        judge(&load(&path).unwrap(), 0.05).unwrap()
    }

    #[test]
    fn a_recorded_drifting_run_fails_and_a_recorded_flat_one_passes() {
        // hakiri-full, 10 minutes: 156 -> 177 MB.
        let drifting = recorded("full-10m-drifting.jsonl");
        assert!(!drifting.ok());
        assert!(
            drifting.failures
                == ["RSS drifted +13.3% from the first seventh to the last (limit ±5%)"],
            "{drifting:?}"
        );
        // hakiri-coord, 3 minutes, flat.
        let flat = recorded("coord-3m-flat.jsonl");
        assert!(flat.ok(), "{flat:?}");
        assert!(flat.calls > 1000 && flat.errors == 0, "{flat:?}");
    }

    #[test]
    fn state_files_round_trip_and_name_a_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        let s = series(|_| 60.0 * MB);
        let text: String = s
            .iter()
            .map(|x| serde_json::to_string(x).unwrap() + "\n")
            .collect();
        std::fs::write(&path, &text).unwrap();
        assert_eq!(load(&path).unwrap().len(), s.len());
        std::fs::write(&path, format!("{text}not json\n")).unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.ends_with("run.jsonl:170: not a soak sample"), "{err}");
    }
}
