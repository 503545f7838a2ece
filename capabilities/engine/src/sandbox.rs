//! The sandbox every query runs in (DuckDB's "Securing DuckDB"): the only
//! files a query can touch are the datasets' own directories (and, for the
//! CLI user's `--output`, that one file). External access is off, extensions
//! are neither installed nor loaded on demand, and the configuration is
//! locked so no `SET` gives any of it back. On top of that, the statement
//! itself must be one read-only statement, as DuckDB's parser sees it, and
//! a caller other than the local user may name only the datasets' views:
//! nothing that reveals the host's paths or settings, reads files by path,
//! or runs SQL text the parser did not see.

use anyhow::bail;
use duckdb::Connection;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

pub(crate) fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Locks `conn` down after the dataset views exist: reads only under
/// `readable` (dataset directories), writes only to `writable`.
pub(crate) fn lock_down(
    conn: &Connection,
    readable: &[&str],
    writable: Option<&Path>,
) -> anyhow::Result<()> {
    let dirs: Vec<String> = readable
        .iter()
        .map(|d| quote_literal(&format!("{}/", d.trim_end_matches('/'))))
        .collect();
    let files: Vec<String> = writable
        .map(|p| quote_literal(&p.to_string_lossy()))
        .into_iter()
        .collect();
    conn.execute_batch(&format!(
        "SET autoinstall_known_extensions = false;
         SET autoload_known_extensions = false;
         SET allowed_directories = [{}];
         SET allowed_paths = [{}];
         SET enable_external_access = false;
         SET lock_configuration = true;",
        dirs.join(", "),
        files.join(", ")
    ))
    .map_err(crate::duck)
}

/// Refuses anything but one read-only statement. DuckDB's `json_serialize_sql`
/// serializes only SELECT (DESCRIBE, SHOW and SUMMARIZE are SELECTs to its
/// parser), so the parser decides, not a keyword list, and it counts the
/// statements: the DuckDB crate's `prepare` would run all but the last.
/// Text it cannot parse is refused with the parser's error, never passed on.
/// `EXPLAIN [ANALYZE] x` is as safe as `x`.
pub fn ensure_read_only(conn: &Connection, sql: &str) -> anyhow::Result<()> {
    read_only_statement(conn, sql).map(drop)
}

/// [`ensure_read_only`], returning the statement as DuckDB's parser saw it.
fn read_only_statement(conn: &Connection, sql: &str) -> anyhow::Result<serde_json::Value> {
    if let Some(rest) = strip_word(sql, "explain") {
        return read_only_statement(conn, &strip_word(&rest, "analyze").unwrap_or(rest));
    }
    let serialized: String = conn
        .query_row("SELECT json_serialize_sql(?)", [sql], |r| r.get(0))
        .map_err(crate::duck)?;
    let v: serde_json::Value = serde_json::from_str(&serialized)?;
    if v["error"].as_bool() == Some(true) {
        let message = v["error_message"]
            .as_str()
            .unwrap_or("cannot parse the query");
        if v["error_type"].as_str() == Some("parser") {
            let position = v["position"].as_str().and_then(|p| p.parse().ok());
            bail!("{}", syntax_error(sql, message, position));
        }
        let word = sql.split_whitespace().next().unwrap_or("").to_uppercase();
        bail!("queries are read-only: `{word}` would change data, settings or files; use SELECT (or WITH, DESCRIBE, SUMMARIZE, EXPLAIN)");
    }
    let statements = v["statements"].as_array().map_or(0, Vec::len);
    if statements != 1 {
        bail!("queries are read-only and one statement at a time; this text holds {statements}: send each SELECT on its own");
    }
    Ok(v)
}

/// Functions and catalog tables a caller other than the local user may not
/// name: they reveal host paths and settings (the datasets' directories, the
/// spill directory, the allowed directories), read files by path, or run SQL
/// text the parser never saw. Views over the datasets are how such a caller
/// reads data.
const HIDDEN_PREFIXES: [&str; 3] = ["duckdb_", "pragma_", "sqlite_"];
const HIDDEN: [&str; 31] = [
    "current_setting",
    "getvariable",
    "getenv",
    "which_secret",
    "query",
    "query_table",
    "json_execute_serialized_sql",
    "read_blob",
    "read_text",
    "glob",
    "read_parquet",
    "parquet_scan",
    "parquet_metadata",
    "parquet_schema",
    "parquet_file_metadata",
    "parquet_kv_metadata",
    "parquet_bloom_probe",
    "read_csv",
    "read_csv_auto",
    "sniff_csv",
    "read_json",
    "read_json_auto",
    "read_json_objects",
    "read_json_objects_auto",
    "read_ndjson",
    "read_ndjson_auto",
    "read_ndjson_objects",
    "read_ndjson_objects_auto",
    "views",
    "pg_views",
    "iceberg_scan",
];
const HIDDEN_SCHEMAS: [&str; 1] = ["pg_catalog"];

/// [`ensure_read_only`], and for a caller other than the local user
/// (`trusted` false) none of the names above, except the views in `views`.
pub(crate) fn ensure_allowed(
    conn: &Connection,
    sql: &str,
    trusted: bool,
    views: &[&str],
) -> anyhow::Result<()> {
    let statement = read_only_statement(conn, sql)?;
    if trusted {
        return Ok(());
    }
    let mut named = Vec::new();
    names(&statement, &mut named);
    for name in named {
        let lower = name.to_ascii_lowercase();
        if views.iter().any(|v| v.eq_ignore_ascii_case(&name)) {
            continue;
        }
        if HIDDEN.contains(&lower.as_str())
            || HIDDEN_SCHEMAS.contains(&lower.as_str())
            || HIDDEN_PREFIXES.iter().any(|p| lower.starts_with(p))
        {
            bail!(
                "`{name}` is not available to agents and tokens: it reveals the host's files or settings; \
                 read the datasets by their names (datasets.list lists them)"
            );
        }
    }
    Ok(())
}

/// Every function, table and schema name in a parsed statement.
fn names(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for key in ["function_name", "table_name", "schema_name"] {
                if let Some(serde_json::Value::String(n)) = map.get(key) {
                    out.push(n.clone());
                }
            }
            map.values().for_each(|x| names(x, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|x| names(x, out)),
        _ => {}
    }
}

/// The tables `sql` names, as written (DuckDB matches them ignoring case),
/// by DuckDB's parser; CTE names come along, which is harmless. Text the parser refuses
/// names nothing: [`ensure_read_only`] reports it.
pub(crate) fn tables_named(sql: &str) -> std::collections::BTreeSet<String> {
    fn walk(v: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(t)) = map.get("table_name") {
                    out.insert(t.clone());
                }
                map.values().for_each(|x| walk(x, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = std::collections::BTreeSet::new();
    let text = strip_word(sql, "explain")
        .map(|rest| strip_word(&rest, "analyze").unwrap_or(rest))
        .unwrap_or_else(|| sql.to_string());
    // One parser per process: opening a DuckDB database costs milliseconds,
    // and json_serialize_sql only parses, whatever the text says.
    static PARSER: std::sync::OnceLock<Option<std::sync::Mutex<Connection>>> =
        std::sync::OnceLock::new();
    let parser =
        PARSER.get_or_init(|| Connection::open_in_memory().ok().map(std::sync::Mutex::new));
    let parsed: Option<String> = parser.as_ref().and_then(|p| {
        p.lock()
            .ok()?
            .query_row("SELECT json_serialize_sql(?)", [&text], |r| r.get(0))
            .ok()
    });
    if let Some(v) = parsed.and_then(|p| serde_json::from_str(&p).ok()) {
        walk(&v, &mut out);
    }
    out
}

/// `sql` without its leading keyword `word` (any case), if it starts with it.
fn strip_word(sql: &str, word: &str) -> Option<String> {
    let t = sql.trim_start();
    let head = t.get(..word.len())?;
    let rest = &t[word.len()..];
    (head.eq_ignore_ascii_case(word) && rest.starts_with(|c: char| c.is_whitespace()))
        .then(|| rest.trim_start().to_string())
}

/// The parser's message laid out as DuckDB prints it: the line and a caret.
fn syntax_error(sql: &str, message: &str, position: Option<usize>) -> String {
    let Some(pos) = position.filter(|p| *p <= sql.len() && sql.is_char_boundary(*p)) else {
        return format!("Parser Error: {message}");
    };
    let line_start = sql[..pos].rfind('\n').map_or(0, |i| i + 1);
    let line_no = sql[..pos].matches('\n').count() + 1;
    let line_end = sql[pos..].find('\n').map_or(sql.len(), |i| pos + i);
    let prefix = format!("LINE {line_no}: ");
    let caret = " ".repeat(prefix.len() + sql[line_start..pos].chars().count());
    format!(
        "Parser Error: {message}\n\n{prefix}{}\n{caret}^",
        &sql[line_start..line_end]
    )
}

/// Runs `f` (a query on `conn`), interrupting DuckDB if it takes longer than
/// `timeout`; the error then names the limit instead of DuckDB's "Interrupted".
pub(crate) fn with_timeout<T>(
    conn: &Connection,
    timeout: Duration,
    f: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let (done, finished) = mpsc::channel::<()>();
    let (fired_tx, fired) = mpsc::channel::<()>();
    let handle = conn.interrupt_handle();
    let watchdog = std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(timeout) {
            handle.interrupt();
            let _ = fired_tx.send(());
        }
    });
    let result = f();
    drop(done);
    let _ = watchdog.join();
    match result {
        Err(_) if fired.try_recv().is_ok() => bail!(
            "the query ran longer than {} ms and was interrupted; raise [engine] query_timeout_ms if it should run longer",
            timeout.as_millis()
        ),
        other => other,
    }
}
