//! Publishing a version: the writer lock, the catalog publish, the sweep of old versions.

use super::write::parse_overrides;
use super::{write_version, IngestInput, IngestReport};
use crate::store;
use anyhow::{bail, Context as _, Result};
use hakiri_data_api::DatasetEntry;
use hakiri_kernel::Context;

pub async fn ingest(
    ctx: &Context,
    input: IngestInput,
    progress: indicatif::ProgressBar,
) -> Result<IngestReport> {
    store::validate_name(&input.name)?;
    // Here, not in each front door: the CLI under a token and every tool
    // reach ingest through this function.
    hakiri_data_api::authorize_dataset(ctx, &input.name, true).await?;
    if input.sources.is_empty() {
        bail!("no sources given; name files, globs, directories, URLs or - for stdin");
    }
    parse_overrides(&input.schema)?;
    if let Some(d) = &input.description {
        if d.chars().count() > 2000 {
            bail!("the description is longer than 2000 characters; say what the data is in a sentence or two");
        }
    }
    let data_dir = ctx.config.data_dir.clone();
    let name = input.name.clone();
    let _lock = store::WriteLock::acquire(&data_dir, &name)?;
    let catalog = hakiri_data_api::open_catalog(ctx).await?;
    let lease = catalog.lock(&name).await?;
    let outcome = publish(ctx, &input, &data_dir, catalog.as_ref(), &progress).await;
    hakiri_data_api::release(lease).await;
    outcome
}

/// Writes the next version in staging, moves it in place and publishes it.
async fn publish(
    ctx: &Context,
    input: &IngestInput,
    data_dir: &std::path::Path,
    catalog: &dyn hakiri_data_api::Catalog,
    progress: &indicatif::ProgressBar,
) -> Result<IngestReport> {
    let (data_dir, name) = (data_dir.to_path_buf(), input.name.clone());
    let previous = catalog.get(&name).await?;
    let version = previous.as_ref().map_or(1, |p| p.version + 1);
    let staging = store::dataset_dir(&data_dir, &name)
        .join(format!(".staging-{}-{version}", std::process::id()));
    std::fs::create_dir_all(staging.join("out"))
        .with_context(|| format!("cannot create {}", staging.display()))?;
    let mut result = write_version(ctx, input, &previous, version, &staging, progress).await;
    if result.is_ok() {
        // Indexes and the like, built into the version before it is published.
        if let Err(e) = hakiri_data_api::build_derived(ctx, &name, &staging.join("out")).await {
            result = Err(e);
        }
    }
    let outcome = match result {
        Ok(report) => {
            let target = store::version_dir(&data_dir, &name, version);
            std::fs::rename(staging.join("out"), &target)
                .with_context(|| format!("cannot move the new version to {}", target.display()))?;
            let entry = DatasetEntry {
                name: name.clone(),
                version,
                location: target.display().to_string(),
                source: hakiri_data_api::redact_source(&input.sources.join(" ")),
                rows: report.rows,
                bytes: report.bytes,
                schema: report.schema.clone(),
                updated: hakiri_kernel::clock::rfc3339(hakiri_kernel::clock::unix_now()),
                description: input
                    .description
                    .clone()
                    .or_else(|| previous.as_ref().and_then(|p| p.description.clone())),
            };
            match catalog.publish(entry).await {
                Ok(()) => Ok(IngestReport {
                    name: name.clone(),
                    version,
                    rows: report.rows,
                    bytes: report.bytes,
                    columns: report.schema.as_array().map_or(0, Vec::len),
                    sources: report.sources,
                    skipped_rows: report.skipped,
                }),
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&target);
                    Err(e.context("cannot publish the new version; the previous one is unchanged"))
                }
            }
        }
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_dir_all(&staging);
    if outcome.is_ok() {
        let retention = ctx.section::<crate::config::DatasetsConfig>().retention();
        store::sweep(&data_dir, &name, version, retention);
    } else {
        // A first ingest that failed leaves no empty dataset directory behind.
        let _ = std::fs::remove_dir(store::dataset_dir(&data_dir, &name));
    }
    progress.finish_and_clear();
    outcome
}
