//! The catalog's datasets as the views a query sees: which ones this caller
//! may read, at which version, and where their files are.

use crate::sandbox;
use hakiri_kernel::{Context, ToolError};
use std::collections::BTreeMap;

/// A dataset as a view: its name, the directory the sandbox must let the
/// query read, and its Parquet files (every `*.parquet` in `dir` when `None`).
pub(crate) struct View {
    pub name: String,
    pub dir: String,
    pub files: Option<Vec<String>>,
    pub warning: Option<String>,
}

impl View {
    pub fn local(name: String, dir: String) -> View {
        View {
            name,
            dir,
            files: None,
            warning: None,
        }
    }
}

/// The catalog's datasets this caller may read, to expose as views: the
/// others do not exist for the query, and their files stay outside the
/// sandbox's readable directories. Remote datasets (on S3) are fetched into
/// the local cache only when `sql` names them (or `at` pins them).
pub(crate) async fn datasets(
    ctx: &Context,
    at: &BTreeMap<String, u64>,
    sql: &str,
) -> anyhow::Result<Vec<View>> {
    let catalog = hakiri_data_api::open_catalog(ctx).await?;
    let mut views = Vec::new();
    let mut pinned = at.clone();
    let mut named = None;
    let entries = if catalog.lists_cheaply() {
        catalog.list().await?
    } else {
        let names = named.get_or_insert_with(|| sandbox::tables_named(sql));
        let mut found = Vec::new();
        for name in names.iter().chain(pinned.keys()) {
            if let Some(d) = catalog.get(name).await? {
                found.push(d);
            }
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found.dedup_by(|a, b| a.name == b.name);
        found
    };
    for d in entries {
        if hakiri_data_api::authorize_dataset(ctx, &d.name, false)
            .await
            .is_err()
        {
            continue;
        }
        if let Some(remote) = hakiri_data_api::hydrator(ctx, &d.location) {
            let named = named.get_or_insert_with(|| sandbox::tables_named(sql));
            let version = pinned.remove(&d.name);
            if version.is_none() && !named.iter().any(|n| n.eq_ignore_ascii_case(&d.name)) {
                continue;
            }
            let copy = remote.local(ctx, &d, version).await?;
            views.push(View {
                name: d.name,
                dir: copy.dir.display().to_string(),
                files: Some(copy.files.iter().map(|f| f.display().to_string()).collect()),
                warning: copy.warning,
            });
            continue;
        }
        let location = match pinned.remove(&d.name) {
            None => d.location,
            Some(v) if v == d.version => d.location,
            Some(v) => {
                let older = hakiri_data_api::version_location(&d, v);
                anyhow::ensure!(
                    v < d.version && older.is_dir(),
                    "version {v} of `{}` is not available: the latest is {}, and replaced versions are kept for [datasets] retain_for",
                    d.name,
                    d.version
                );
                older.display().to_string()
            }
        };
        views.push(View::local(d.name, location));
    }
    if let Some(name) = pinned.keys().next() {
        anyhow::bail!("--at names `{name}`, which is not a dataset this caller can read");
    }
    Ok(views)
}

/// A query that names a table the caller may not read fails as "table does
/// not exist"; say instead that the token does not grant it (the same
/// whether or not such a dataset exists, so nothing leaks).
pub(crate) async fn not_granted(ctx: &Context, error: &anyhow::Error) -> Option<ToolError> {
    let text = error.to_string();
    let rest = text.split("Table with name ").nth(1)?;
    let name = rest.split(" does not exist").next()?.trim_matches('"');
    hakiri_data_api::authorize_dataset(ctx, name, false)
        .await
        .err()
}
