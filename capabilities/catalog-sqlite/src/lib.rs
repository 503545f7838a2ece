//! `catalog-sqlite`: the default catalog, `sqlite://` URLs.
//!
//! `sqlite://` alone is `<data_dir>/catalog.sqlite`; `sqlite:///abs/path.db`
//! and `sqlite://relative.db` name a file; `sqlite::memory:` is in memory.

use anyhow::Context as _;
use hakiri_data_api::{Catalog, CatalogBackend, DatasetEntry};
use hakiri_kernel::{BoxFuture, CheckOutcome, Context, KernelError, Registrar};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

hakiri_kernel::capability!(register);

fn register(r: &mut Registrar) -> Result<(), KernelError> {
    r.provide::<dyn CatalogBackend>("sqlite", Arc::new(SqliteBackend))?;
    r.check(|_ctx| async { self_check().map(CheckOutcome::Ok) });
    Ok(())
}

struct SqliteBackend;

impl CatalogBackend for SqliteBackend {
    fn open<'a>(
        &'a self,
        url: &'a str,
        ctx: &'a Context,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn Catalog>>> {
        Box::pin(async move {
            let catalog = match url {
                "sqlite::memory:" => SqliteCatalog::open_in_memory()?,
                _ => {
                    let rest = url.strip_prefix("sqlite://").with_context(|| {
                        format!("`{url}` is not a sqlite URL; use sqlite://PATH or sqlite::memory:")
                    })?;
                    let path = if rest.is_empty() {
                        ctx.config.data_dir.join("catalog.sqlite")
                    } else {
                        PathBuf::from(rest)
                    };
                    SqliteCatalog::open(&path)?
                }
            };
            Ok(Box::new(catalog) as Box<dyn Catalog>)
        })
    }
}

/// A catalog in one SQLite database. Each publish replaces a dataset's row in
/// one transaction, so readers see the old version or the new, never a mix.
pub struct SqliteCatalog {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
    PRAGMA journal_mode = WAL;
    PRAGMA busy_timeout = 5000;
    CREATE TABLE IF NOT EXISTS datasets (
        name TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        location TEXT NOT NULL,
        source TEXT NOT NULL,
        rows INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        schema TEXT NOT NULL,
        updated TEXT NOT NULL,
        description TEXT
    );";

impl SqliteCatalog {
    pub fn open(path: &std::path::Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create catalog directory {}", dir.display()))?;
        }
        let conn = Connection::open(path)
            .with_context(|| format!("cannot open SQLite catalog {}", path.display()))?;
        Self::init(conn)
    }

    pub fn open_in_memory() -> anyhow::Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> anyhow::Result<Self> {
        conn.execute_batch(SCHEMA)
            .context("cannot create the catalog tables")?;
        // Catalogs made before datasets had descriptions gain the column.
        let has_description = conn
            .prepare("SELECT 1 FROM pragma_table_info('datasets') WHERE name = 'description'")?
            .exists([])?;
        if !has_description {
            conn.execute_batch("ALTER TABLE datasets ADD COLUMN description TEXT")
                .context("cannot add the description column to the catalog")?;
        }
        Ok(SqliteCatalog {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> anyhow::Result<T> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| anyhow::anyhow!("catalog connection poisoned by an earlier panic"))?;
        Ok(f(&mut conn)?)
    }
}

fn row_to_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<DatasetEntry> {
    let name: String = r.get(0)?;
    let schema = DatasetEntry::parse_schema(&name, &r.get::<_, String>(6)?).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Text, e.into())
    })?;
    Ok(DatasetEntry {
        name,
        version: r.get::<_, i64>(1)? as u64,
        location: r.get(2)?,
        source: r.get(3)?,
        rows: r.get::<_, i64>(4)? as u64,
        bytes: r.get::<_, i64>(5)? as u64,
        schema,
        updated: r.get(7)?,
        description: r.get(8)?,
    })
}

const COLUMNS: &str = "name, version, location, source, rows, bytes, schema, updated, description";

impl Catalog for SqliteCatalog {
    fn list(&self) -> BoxFuture<'_, anyhow::Result<Vec<DatasetEntry>>> {
        Box::pin(async move {
            self.with(|c| {
                let mut stmt =
                    c.prepare(&format!("SELECT {COLUMNS} FROM datasets ORDER BY name"))?;
                let rows = stmt.query_map([], row_to_entry)?;
                rows.collect()
            })
        })
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, anyhow::Result<Option<DatasetEntry>>> {
        Box::pin(async move {
            self.with(|c| {
                c.query_row(
                    &format!("SELECT {COLUMNS} FROM datasets WHERE name = ?1"),
                    [name],
                    row_to_entry,
                )
                .optional()
            })
        })
    }

    fn publish(&self, e: DatasetEntry) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let expected = e.version.checked_sub(1).filter(|v| *v > 0);
            let outcome = self.with(|c| {
                // IMMEDIATE: the write lock is taken before the version is
                // read, so two processes cannot both see the same version.
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let current: Option<i64> = tx
                    .query_row("SELECT version FROM datasets WHERE name = ?1", [&e.name], |r| r.get(0))
                    .optional()?;
                let current = current.map(|v| v as u64);
                if current != expected {
                    return Ok(Err(current));
                }
                tx.execute(
                    &format!("INSERT OR REPLACE INTO datasets ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
                    params![
                        e.name,
                        e.version as i64,
                        e.location,
                        e.source,
                        e.rows as i64,
                        e.bytes as i64,
                        e.schema.to_string(),
                        e.updated,
                        e.description
                    ],
                )?;
                tx.commit()?;
                Ok(Ok(()))
            })?;
            outcome.map_err(|found| {
                hakiri_data_api::conflict(&e.name, e.version.saturating_sub(1), found)
            })
        })
    }

    fn remove<'a>(&'a self, name: &'a str) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move {
            self.with(|c| Ok(c.execute("DELETE FROM datasets WHERE name = ?1", [name])? > 0))
        })
    }
}

fn entry(name: &str, version: u64) -> DatasetEntry {
    DatasetEntry {
        name: name.into(),
        version,
        location: format!("datasets/{name}/v{version}"),
        source: "self-check".into(),
        rows: 3,
        bytes: 42,
        schema: serde_json::json!([{"name": "a", "type": "int64"}]),
        updated: "2026-01-01T00:00:00Z".into(),
        description: None,
    }
}

/// Publishes, replaces, reads and removes a dataset in an in-memory catalog.
fn self_check() -> anyhow::Result<String> {
    let cat = SqliteCatalog::open_in_memory()?;
    block_on(cat.publish(entry("probe", 1)))?;
    block_on(cat.publish(entry("probe", 2)))?;
    let got = block_on(cat.get("probe"))?.context("published dataset not found")?;
    anyhow::ensure!(
        got.version == 2,
        "catalog returned version {} after republish, expected 2",
        got.version
    );
    anyhow::ensure!(
        block_on(cat.list())?.len() == 1,
        "catalog lists a replaced dataset twice"
    );
    anyhow::ensure!(block_on(cat.remove("probe"))?, "remove found nothing");
    let sqlite =
        cat.with(|c| c.query_row("select sqlite_version()", [], |r| r.get::<_, String>(0)))?;
    Ok(format!(
        "SQLite {sqlite}: published, replaced, read and removed a dataset"
    ))
}

/// The catalog's futures never await anything, so they finish on first poll.
fn block_on<T>(fut: BoxFuture<'_, T>) -> T {
    hakiri_kernel::futures::executor::block_on(fut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn publish_replaces_atomically_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        {
            let cat = SqliteCatalog::open(&path).unwrap();
            cat.publish(entry("sales", 1)).await.unwrap();
            cat.publish(entry("sales", 2)).await.unwrap();
        }
        let cat = SqliteCatalog::open(&path).unwrap();
        let all = cat.list().await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].version, 2);
        assert_eq!(
            all[0].schema,
            serde_json::json!([{"name": "a", "type": "int64"}])
        );
        assert!(cat.remove("sales").await.unwrap());
        assert!(!cat.remove("sales").await.unwrap());
        assert!(cat.get("sales").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn passes_the_catalog_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let cat = SqliteCatalog::open(&dir.path().join("c.sqlite")).unwrap();
        hakiri_data_api::conformance::check(&cat, "conf_")
            .await
            .unwrap();
    }

    #[test]
    fn self_check_passes() {
        assert!(self_check().unwrap().contains("SQLite"));
    }

    #[tokio::test]
    async fn a_catalog_from_before_descriptions_gains_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE datasets (name TEXT PRIMARY KEY, version INTEGER NOT NULL, location TEXT NOT NULL,
             source TEXT NOT NULL, rows INTEGER NOT NULL, bytes INTEGER NOT NULL, schema TEXT NOT NULL, updated TEXT NOT NULL);
             INSERT INTO datasets VALUES ('sales', 1, '/d/sales/v1', 's.csv', 3, 42, '[]', '2026-01-01T00:00:00Z');",
        )
        .unwrap();
        drop(old);
        let catalog = SqliteCatalog::open(&path).unwrap();
        let sales = catalog.get("sales").await.unwrap().unwrap();
        assert_eq!((sales.version, sales.description), (1, None));
        let mut next = entry("sales", 2);
        next.description = Some("Sales by region".into());
        catalog.publish(next.clone()).await.unwrap();
        assert_eq!(catalog.get("sales").await.unwrap(), Some(next));
    }
}
