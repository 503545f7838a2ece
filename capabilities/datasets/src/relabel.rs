//! `hakiri describe <name> --set-description TEXT`: a dataset's description
//! changed without rewriting its data. The description lives in the catalog
//! entry, which every backend changes only by publishing a version (with its
//! compare-and-swap), so this publishes the next version made of hard links
//! to the current one's files, indexes included: readers see the old entry
//! or the new one, never a mix, and the replaced version is swept like any.

use crate::store;
use anyhow::{anyhow, bail, Context as _, Result};
use hakiri_data_api::{authorize_dataset, open_catalog, Catalog, DatasetEntry};
use hakiri_kernel::Context;
use std::path::{Path, PathBuf};

/// The longest description accepted (as for `ingest --description`).
pub const MAX_DESCRIPTION_CHARS: usize = 2000;

/// Sets (or, with empty text, clears) `name`'s description; returns the
/// version that carries it.
pub async fn set_description(ctx: &Context, name: &str, description: &str) -> Result<u64> {
    let description = description.trim();
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        bail!("the description is longer than {MAX_DESCRIPTION_CHARS} characters; say what the data is in a sentence or two");
    }
    authorize_dataset(ctx, name, true).await?;
    let data_dir = ctx.config.data_dir.clone();
    let _lock = store::WriteLock::acquire(&data_dir, name)?;
    let catalog = open_catalog(ctx).await?;
    let lease = catalog.lock(name).await?;
    let outcome = relabel(ctx, catalog.as_ref(), &data_dir, name, description).await;
    hakiri_data_api::release(lease).await;
    outcome
}

async fn relabel(
    ctx: &Context,
    catalog: &dyn Catalog,
    data_dir: &Path,
    name: &str,
    description: &str,
) -> Result<u64> {
    let current = catalog
        .get(name)
        .await?
        .ok_or_else(|| anyhow!("no dataset `{name}`; `hakiri datasets` lists them"))?;
    if hakiri_data_api::hydrator(ctx, &current.location).is_some() {
        bail!("dataset `{name}` lives at {}; give its description when ingesting it (`hakiri ingest … --as {name} --description …`)", current.location);
    }
    let version = current.version + 1;
    let source = PathBuf::from(&current.location);
    let staging = store::dataset_dir(data_dir, name)
        .join(format!(".staging-{}-{version}", std::process::id()));
    let target = store::version_dir(data_dir, name, version);
    let (from, to) = (source, staging.clone());
    let linked = tokio::task::spawn_blocking(move || link_tree(&from, &to)).await?;
    if let Err(e) = linked.and_then(|()| {
        std::fs::rename(&staging, &target)
            .with_context(|| format!("cannot move the new version to {}", target.display()))
    }) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e.context(format!("dataset `{name}` is unchanged")));
    }
    let entry = DatasetEntry {
        version,
        location: target.display().to_string(),
        updated: hakiri_kernel::clock::rfc3339(hakiri_kernel::clock::unix_now()),
        description: (!description.is_empty()).then(|| description.to_string()),
        ..current
    };
    if let Err(e) = catalog.publish(entry).await {
        let _ = std::fs::remove_dir_all(&target);
        return Err(e.context(format!("dataset `{name}` is unchanged")));
    }
    let retention = ctx.section::<crate::config::DatasetsConfig>().retention();
    store::sweep(data_dir, name, version, retention);
    Ok(version)
}

/// Recreates the tree at `from` under `to` with hard links to its files (a
/// copy where the file system refuses a link). Entries whose names start
/// with a dot (a build left behind by a killed process) are not part of a
/// version and are skipped.
fn link_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            link_tree(&src, &dst)?;
        } else if kind.is_file() && std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst)
                .with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_tree_links_files_and_skips_leftovers() {
        let dir = std::env::temp_dir().join(format!("hakiri-link-{}", std::process::id()));
        let (from, to) = (dir.join("v1"), dir.join("v2"));
        std::fs::create_dir_all(from.join("indexes/text")).unwrap();
        std::fs::create_dir_all(from.join("indexes/.vector-99")).unwrap();
        std::fs::write(from.join("part-0.parquet"), b"data").unwrap();
        std::fs::write(from.join("indexes/text/meta.json"), b"{}").unwrap();
        link_tree(&from, &to).unwrap();
        assert_eq!(std::fs::read(to.join("part-0.parquet")).unwrap(), b"data");
        assert_eq!(
            std::fs::read(to.join("indexes/text/meta.json")).unwrap(),
            b"{}"
        );
        assert!(!to.join("indexes/.vector-99").exists());
        use std::os::unix::fs::MetadataExt;
        let (a, b) = (
            std::fs::metadata(from.join("part-0.parquet")).unwrap(),
            std::fs::metadata(to.join("part-0.parquet")).unwrap(),
        );
        assert_eq!(
            (a.ino(), a.nlink()),
            (b.ino(), 2),
            "a hard link, not a copy"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
