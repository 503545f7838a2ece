//! Files capabilities keep beside a dataset's versions (an index's spec),
//! so dropping the dataset drops them, and rows returned to callers with
//! long text cut. One place knows the layout: `<data_dir>/datasets/<name>/`.

use anyhow::Context as _;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// `<data_dir>/datasets/<dataset>/<file>`, where the datasets capability
/// keeps the dataset's versions.
pub fn beside(data_dir: &Path, dataset: &str, file: &str) -> PathBuf {
    data_dir.join("datasets").join(dataset).join(file)
}

/// Reads a JSON file kept beside `dataset` (`None` when absent); a damaged
/// one is an error that says how to recreate it (`remedy`).
pub fn read_json<T: DeserializeOwned>(
    data_dir: &Path,
    dataset: &str,
    file: &str,
    remedy: &str,
) -> anyhow::Result<Option<T>> {
    let path = beside(data_dir, dataset, file);
    match std::fs::read(&path) {
        Ok(bytes) => {
            Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                format!("{} is damaged; {remedy}", path.display())
            })?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes it whole or not at all: beside it, then renamed.
pub fn write_json<T: Serialize>(
    data_dir: &Path,
    dataset: &str,
    file: &str,
    value: &T,
) -> anyhow::Result<()> {
    let path = beside(data_dir, dataset, file);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
}

/// Removes it; false when it was not there.
pub fn remove(data_dir: &Path, dataset: &str, file: &str) -> anyhow::Result<bool> {
    match std::fs::remove_file(beside(data_dir, dataset, file)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Cuts every string cell of `rows` (JSON objects) past `max_chars`,
/// marking the cut with `…`; whether any was cut, for a `truncated` flag.
pub fn cut_long_text(rows: &mut [serde_json::Value], max_chars: usize) -> bool {
    let mut cut = false;
    for row in rows.iter_mut().filter_map(|r| r.as_object_mut()) {
        for cell in row.values_mut() {
            if let serde_json::Value::String(s) = cell {
                if s.chars().count() > max_chars {
                    *s = s.chars().take(max_chars).chain(['…']).collect();
                    cut = true;
                }
            }
        }
    }
    cut
}
