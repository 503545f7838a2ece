//! Where a dataset's files live, and the lock that serializes writers.
//!
//! `<data_dir>/datasets/<name>/v<N>/part-*.parquet` holds version N. A new
//! version is written into a staging directory beside it, renamed into place,
//! and only then published to the catalog, so readers never see a
//! half-written dataset; superseded versions stay readable for a while
//! ([`Retention`], `[datasets] retain_for`) so a query that started on one
//! finishes on it, and `hakiri sql --at sales=3` can name one.

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

/// How long superseded versions stay readable, and how many at most.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// A version is kept this long after its successor was published, so a
    /// query that started on it finishes on it.
    pub keep_for: std::time::Duration,
    /// At most this many superseded versions, newest first, whatever their age.
    pub max_versions: usize,
}

/// Version directories of a dataset with when each was published (the
/// directory's mtime), oldest first.
pub fn versions(data_dir: &Path, name: &str) -> Vec<(u64, std::time::SystemTime)> {
    let Ok(entries) = std::fs::read_dir(dataset_dir(data_dir, name)) else {
        return Vec::new();
    };
    let mut out: Vec<(u64, std::time::SystemTime)> = entries
        .flatten()
        .filter_map(|e| {
            let v = e
                .file_name()
                .to_str()?
                .strip_prefix('v')?
                .parse::<u64>()
                .ok()?;
            Some((v, e.metadata().ok()?.modified().ok()?))
        })
        .collect();
    out.sort();
    out
}

/// Removes leftovers of interrupted writes, and versions older than
/// `current` once `retention` no longer protects them. Returns the removed
/// versions. Run under the dataset's [`WriteLock`].
pub fn sweep(data_dir: &Path, name: &str, current: u64, retention: Retention) -> Vec<u64> {
    if let Ok(entries) = std::fs::read_dir(dataset_dir(data_dir, name)) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(".staging-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let all = versions(data_dir, name);
    let now = std::time::SystemTime::now();
    let superseded: Vec<(u64, std::time::SystemTime)> = all
        .iter()
        .enumerate()
        .filter(|(_, (v, _))| *v < current)
        // Superseded when the next version was published.
        .filter_map(|(i, (v, _))| Some((*v, all.get(i + 1)?.1)))
        .collect();
    let mut removed = Vec::new();
    let count = superseded.len();
    for (k, (v, since)) in superseded.into_iter().enumerate() {
        let too_many = count - k > retention.max_versions;
        let expired = now.duration_since(since).unwrap_or_default() >= retention.keep_for;
        if (too_many || expired) && std::fs::remove_dir_all(version_dir(data_dir, name, v)).is_ok()
        {
            removed.push(v);
        }
    }
    removed
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
