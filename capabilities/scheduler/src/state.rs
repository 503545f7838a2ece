//! What the scheduler remembers per dataset, under `<data_dir>/scheduler/`:
//! a small JSON file (last run, outcome, validators for conditional fetches)
//! and a lock file held for the length of a run, so two daemons sharing a
//! home never refresh one dataset at once and a run killed with the process
//! leaves no lock behind.

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    #[default]
    Never,
    Running,
    Ok,
    Unchanged,
    Failed,
}

/// One job's memory; written atomically after every change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobState {
    pub outcome: Outcome,
    /// Unix seconds.
    pub last_start: Option<u64>,
    pub last_end: Option<u64>,
    pub duration_ms: Option<u64>,
    /// The last successful refresh (a new version or an unchanged source).
    pub last_success: Option<u64>,
    pub rows: Option<u64>,
    pub version: Option<u64>,
    pub last_error: Option<String>,
    /// Failures since the last success (drives the backoff).
    pub failures: u32,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("scheduler")
}

fn state_path(data_dir: &Path, dataset: &str) -> PathBuf {
    dir(data_dir).join(format!("{dataset}.json"))
}

pub fn load(data_dir: &Path, dataset: &str) -> JobState {
    std::fs::read(state_path(data_dir, dataset))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub fn save(data_dir: &Path, dataset: &str, state: &JobState) -> anyhow::Result<()> {
    let path = state_path(data_dir, dataset);
    std::fs::create_dir_all(dir(data_dir))
        .with_context(|| format!("cannot create {}", dir(data_dir).display()))?;
    let tmp = path.with_extension(format!("json.{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec_pretty(state)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
}

/// The run lock of one dataset's job, released on drop or process death.
pub struct RunLock {
    _file: File,
}

/// `Ok(None)` when another process (or task) is refreshing the dataset.
pub fn try_lock(data_dir: &Path, dataset: &str) -> anyhow::Result<Option<RunLock>> {
    std::fs::create_dir_all(dir(data_dir))
        .with_context(|| format!("cannot create {}", dir(data_dir).display()))?;
    let path = dir(data_dir).join(format!("{dataset}.lock"));
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(RunLock { _file: file })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_the_lock_excludes() {
        let home = tempfile::tempdir().unwrap();
        assert_eq!(load(home.path(), "s").outcome, Outcome::Never);
        let state = JobState {
            outcome: Outcome::Ok,
            rows: Some(3),
            etag: Some("\"x\"".into()),
            ..JobState::default()
        };
        save(home.path(), "s", &state).unwrap();
        let back = load(home.path(), "s");
        assert_eq!(
            (back.outcome, back.rows, back.etag.as_deref()),
            (Outcome::Ok, Some(3), Some("\"x\""))
        );
        let held = try_lock(home.path(), "s").unwrap().expect("free");
        assert!(
            try_lock(home.path(), "s").unwrap().is_none(),
            "a second holder"
        );
        drop(held);
        assert!(try_lock(home.path(), "s").unwrap().is_some());
    }
}
