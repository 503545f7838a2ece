//! Where a dataset's files live, and the lock that serializes writers.
//!
//! `<data_dir>/datasets/<name>/v<N>/part-*.parquet` holds version N. A new
//! version is written into a staging directory beside it, renamed into place,
//! and only then published to the catalog; older versions are removed after
//! the catalog commits, so readers never see a half-written dataset.

use anyhow::{bail, Context as _, Result};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Dataset names are SQL identifiers, so `select * from sales` just works.
pub fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64;
    if !ok {
        bail!(
            "`{name}` is not a valid dataset name: use letters, digits and _ (at most 64), starting with a letter or _, e.g. `sales_2026`"
        );
    }
    Ok(())
}

pub fn dataset_dir(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("datasets").join(name)
}

pub fn version_dir(data_dir: &Path, name: &str, version: u64) -> PathBuf {
    dataset_dir(data_dir, name).join(format!("v{version}"))
}

/// Parquet files of one version directory, sorted.
pub fn parts(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    Ok(files)
}

/// An exclusive writer lock on one dataset, released on drop (and by the OS
/// if the process dies).
pub struct WriteLock {
    _file: File,
}

impl WriteLock {
    pub fn acquire(data_dir: &Path, name: &str) -> Result<WriteLock> {
        let dir = data_dir.join("datasets");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(format!("{name}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(WriteLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {
                bail!("dataset `{name}` is busy: another ingest or drop is writing it; retry when it finishes")
            }
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }
}

/// Removes leftovers of interrupted writes and versions older than `keep`.
pub fn remove_stale(data_dir: &Path, name: &str, keep: Option<u64>) {
    let Ok(entries) = std::fs::read_dir(dataset_dir(data_dir, name)) else {
        return;
    };
    for e in entries.flatten() {
        let file_name = e.file_name().to_string_lossy().into_owned();
        let stale = file_name.starts_with(".staging-")
            || file_name
                .strip_prefix('v')
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|v| Some(v) != keep);
        if stale {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// " (did you mean `x`?)" for the nearest known name, if any is close.
pub fn suggestion<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    known
        .into_iter()
        .map(|k| (distance(name, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min()
        .map(|(_, k)| format!("; did you mean `{k}`?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_identifiers() {
        assert!(validate_name("sales_2026").is_ok());
        assert!(validate_name("_x").is_ok());
        for bad in ["", "2026", "sales-eu", "a b", "drop;table", &"x".repeat(65)] {
            let e = validate_name(bad).unwrap_err().to_string();
            assert!(e.contains("is not a valid dataset name"), "{e}");
        }
    }

    #[test]
    fn suggests_near_names_only() {
        assert_eq!(
            suggestion("sale", ["sales", "orders"]),
            "; did you mean `sales`?"
        );
        assert_eq!(suggestion("zzz", ["sales"]), "");
    }

    #[test]
    fn second_writer_is_told_the_dataset_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let first = WriteLock::acquire(dir.path(), "sales").unwrap();
        let err = WriteLock::acquire(dir.path(), "sales")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("dataset `sales` is busy"), "{err}");
        drop(first);
        WriteLock::acquire(dir.path(), "sales").unwrap();
    }
}
