//! `catalog-postgres`: the dataset catalog in PostgreSQL (`postgres://` URLs).

use anyhow::Context as _;
use hakiri_data_api::{redact, Catalog, CatalogBackend, DatasetEntry};
use hakiri_kernel::{BoxFuture, CheckOutcome, Context, KernelError, Registrar, Section};
use serde::Deserialize;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::Row;
use std::sync::Arc;
use std::time::Duration;

hakiri_kernel::capability!(register);

/// `[catalog-postgres]` in hakiri.toml.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Used by the self-check; catalogs are otherwise chosen by their URL.
    pub url: Option<String>,
}

impl Section for PostgresConfig {
    const NAME: &'static str = "catalog-postgres";
}

fn register(r: &mut Registrar) -> Result<(), KernelError> {
    r.config::<PostgresConfig>()?;
    r.state(Pools::default())?;
    r.provide::<dyn CatalogBackend>("postgres", Arc::new(PgBackend))?;
    r.provide::<dyn CatalogBackend>("postgresql", Arc::new(PgBackend))?;
    r.check(|ctx| async move { self_check(&ctx).await });
    Ok(())
}

struct PgBackend;

impl CatalogBackend for PgBackend {
    fn open<'a>(
        &'a self,
        url: &'a str,
        ctx: &'a Context,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn Catalog>>> {
        Box::pin(async move {
            let pools = ctx
                .state::<Pools>()
                .context("catalog-postgres state missing")?;
            let known = pools.0.lock().ok().and_then(|m| m.get(url).cloned());
            let catalog = match known {
                Some(pool) => PgCatalog { pool },
                None => {
                    let catalog = PgCatalog::connect(url).await?;
                    if let Ok(mut m) = pools.0.lock() {
                        m.insert(url.to_string(), catalog.pool.clone());
                    }
                    catalog
                }
            };
            Ok(Box::new(catalog) as Box<dyn Catalog>)
        })
    }
}

/// One connection pool per catalog URL for the life of the kernel (not one
/// per call): the daemon opens the catalog on every tool call.
#[derive(Default)]
struct Pools(std::sync::Mutex<std::collections::HashMap<String, PgPool>>);

pub struct PgCatalog {
    pool: PgPool,
}

// sqlx only takes literal SQL (injection audit), so the column list is spelled out in each query.

/// The catalog table's columns, as a literal so sqlx accepts the statements built from it.
macro_rules! columns_ddl {
    () => {
        "(name TEXT PRIMARY KEY, version BIGINT NOT NULL, location TEXT NOT NULL, source TEXT NOT NULL,
          rows BIGINT NOT NULL, bytes BIGINT NOT NULL, schema TEXT NOT NULL, updated TEXT NOT NULL, description TEXT)"
    };
}

impl PgCatalog {
    pub async fn connect(url: &str) -> anyhow::Result<PgCatalog> {
        let pool = Self::pool(url, 4).await?;
        sqlx::query(concat!(
            "CREATE TABLE IF NOT EXISTS hakiri_datasets ",
            columns_ddl!()
        ))
        .execute(&pool)
        .await
        .context("cannot create table hakiri_datasets")?;
        // Catalogs made before datasets had descriptions gain the column.
        sqlx::query("ALTER TABLE hakiri_datasets ADD COLUMN IF NOT EXISTS description TEXT")
            .execute(&pool)
            .await
            .context("cannot add the description column to hakiri_datasets")?;
        Ok(PgCatalog { pool })
    }

    /// A catalog on a session-private temporary `hakiri_datasets` (it shadows
    /// the real table on its one connection), so the self-check's round trip
    /// never shows up in anybody's catalog.
    async fn connect_scratch(url: &str) -> anyhow::Result<PgCatalog> {
        let pool = Self::pool(url, 1).await?;
        sqlx::query(concat!(
            "CREATE TEMP TABLE hakiri_datasets ",
            columns_ddl!()
        ))
        .execute(&pool)
        .await
        .context("cannot create a temporary table")?;
        Ok(PgCatalog { pool })
    }

    async fn pool(url: &str, connections: u32) -> anyhow::Result<PgPool> {
        PgPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(url)))
    }
}

fn to_entry(r: PgRow) -> anyhow::Result<DatasetEntry> {
    let name: String = r.try_get("name")?;
    let schema = DatasetEntry::parse_schema(&name, &r.try_get::<String, _>("schema")?)?;
    Ok(DatasetEntry {
        name,
        version: r.try_get::<i64, _>("version")? as u64,
        location: r.try_get("location")?,
        source: r.try_get("source")?,
        rows: r.try_get::<i64, _>("rows")? as u64,
        bytes: r.try_get::<i64, _>("bytes")? as u64,
        schema,
        updated: r.try_get("updated")?,
        description: r.try_get("description")?,
    })
}

impl Catalog for PgCatalog {
    fn list(&self) -> BoxFuture<'_, anyhow::Result<Vec<DatasetEntry>>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT name, version, location, source, rows, bytes, schema, updated, description FROM hakiri_datasets ORDER BY name",
            )
            .fetch_all(&self.pool)
            .await?;
            rows.into_iter().map(to_entry).collect()
        })
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, anyhow::Result<Option<DatasetEntry>>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT name, version, location, source, rows, bytes, schema, updated, description FROM hakiri_datasets WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
            row.map(to_entry).transpose()
        })
    }

    fn publish(&self, e: DatasetEntry) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            // A first version inserts only where no row is; a later one
            // updates only the row holding the version before it.
            let done = if e.version <= 1 {
                sqlx::query(
                    "INSERT INTO hakiri_datasets (name, version, location, source, rows, bytes, schema, updated, description)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (name) DO NOTHING",
                )
            } else {
                sqlx::query(
                    "UPDATE hakiri_datasets SET version = $2, location = $3, source = $4, rows = $5, bytes = $6,
                     schema = $7, updated = $8, description = $9 WHERE name = $1 AND version = $2 - 1",
                )
            }
            .bind(&e.name)
            .bind(e.version as i64)
            .bind(&e.location)
            .bind(&e.source)
            .bind(e.rows as i64)
            .bind(e.bytes as i64)
            .bind(e.schema.to_string())
            .bind(&e.updated)
            .bind(&e.description)
            .execute(&self.pool)
            .await?;
            if done.rows_affected() == 1 {
                return Ok(());
            }
            let found: Option<i64> =
                sqlx::query_scalar("SELECT version FROM hakiri_datasets WHERE name = $1")
                    .bind(&e.name)
                    .fetch_optional(&self.pool)
                    .await?;
            Err(hakiri_data_api::conflict(
                &e.name,
                e.version.saturating_sub(1),
                found.map(|v| v as u64),
            ))
        })
    }

    fn remove<'a>(&'a self, name: &'a str) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM hakiri_datasets WHERE name = $1")
                .bind(name)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }
}

async fn self_check(ctx: &Context) -> anyhow::Result<CheckOutcome> {
    let cfg = ctx.section::<PostgresConfig>();
    let Some(url) = cfg.url.clone() else {
        return Ok(CheckOutcome::Skipped(
            "not configured: set [catalog-postgres] url".into(),
        ));
    };
    let cat = PgCatalog::connect_scratch(&url).await?;
    let name = format!("_hakiri_check_{}", std::process::id());
    let mut e = DatasetEntry {
        name: name.clone(),
        version: 1,
        location: "check".into(),
        source: "self-check".into(),
        rows: 1,
        bytes: 1,
        schema: serde_json::json!([]),
        updated: "2026-01-01T00:00:00Z".into(),
        description: None,
    };
    cat.publish(e.clone()).await?;
    e.version = 2;
    cat.publish(e).await?;
    let got = cat
        .get(&name)
        .await?
        .context("published dataset not found")?;
    anyhow::ensure!(
        got.version == 2,
        "read version {} after republish, expected 2",
        got.version
    );
    anyhow::ensure!(cat.remove(&name).await?, "remove found nothing");
    let server: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&cat.pool)
        .await?;
    Ok(CheckOutcome::Ok(format!(
        "PostgreSQL {server}: published, replaced, read and removed a dataset"
    )))
}

#[cfg(test)]
mod conformance {
    use super::*;

    #[tokio::test]
    async fn passes_the_catalog_conformance_suite() {
        let Some(url) =
            hakiri_testkit::configured_or_skip("HAKIRI_TEST_POSTGRES_URL", module_path!())
        else {
            return;
        };
        let cat = PgCatalog::connect(&url).await.unwrap();
        let prefix = format!("conf{}_", std::process::id());
        hakiri_data_api::conformance::check(&cat, &prefix)
            .await
            .unwrap();
    }
}
