//! The SQL sandbox, attacked through the static binary: each row is an
//! attack and the refusal it must get. Afterwards nothing was written outside
//! the home and a legitimate query still answers.

use hakiri_testkit::{run, text, Home};
use std::path::Path;

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-core");

/// `{tmp}` in a query is a fresh directory outside the home that must stay empty.
const ATTACKS: &[(&str, &str)] = &[
    // Reading the host's files.
    ("select * from read_text('/etc/passwd')", "Permission Error"),
    ("select * from read_csv('/etc/passwd')", "Permission Error"),
    (
        "select * from read_blob('{tmp}/../../etc/hostname')",
        "Permission Error",
    ),
    ("select * from glob('/*')", "Permission Error"),
    // Writing files, directly or behind a prefix the old check trusted.
    ("copy (select 42) to '{tmp}/copy.csv'", "read-only: `COPY`"),
    (
        "explain analyze copy (select 42) to '{tmp}/explain.csv'",
        "read-only: `COPY`",
    ),
    ("export database '{tmp}/export'", "read-only: `EXPORT`"),
    // Settings, databases and extensions.
    ("set enable_external_access = true", "read-only: `SET`"),
    ("pragma version", "read-only: `PRAGMA`"),
    ("attach '{tmp}/other.db' as other", "read-only: `ATTACH`"),
    ("install httpfs", "read-only: `INSTALL`"),
    ("load httpfs", "read-only: `LOAD`"),
    ("call pragma_version()", "read-only: `CALL`"),
    // More than one statement (the DuckDB crate would run all but the last).
    ("select 1; select 2", "one statement at a time"),
    ("select 1; drop view sales", "read-only"),
    ("describe sales; drop view sales", "read-only"),
];

fn hakiri(home: &Path, args: &[&str]) -> std::process::Output {
    run(BIN, home, args)
}

fn ingest_sales(home: &Home) {
    let csv = home.path().join("sales.csv");
    std::fs::write(&csv, "region,amount\neu,3\nus,4\n").unwrap();
    let out = hakiri(
        home.path(),
        &["ingest", csv.to_str().unwrap(), "--as", "sales", "-q"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn every_attack_is_refused_and_nothing_is_written() {
    let home = Home::new();
    ingest_sales(&home);
    let tmp = tempfile::tempdir().unwrap();
    let tmp_path = tmp.path().display().to_string();
    for (attack, refusal) in ATTACKS {
        let sql = attack.replace("{tmp}", &tmp_path);
        let out = hakiri(home.path(), &["sql", "--format", "csv", &sql]);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{sql}: not refused: {}",
            text(&out.stdout)
        );
        assert!(
            stderr.contains(refusal),
            "{sql}: expected `{refusal}` in: {stderr}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "attacks wrote {left:?}");
    let out = hakiri(
        home.path(),
        &["sql", "--format", "csv", "select sum(amount) s from sales"],
    );
    assert_eq!(text(&out.stdout), "s\n7\n", "{}", text(&out.stderr));
}

/// `sql --format parquet` writes the chosen file, and the query text cannot
/// break out of the statement that writes it.
#[test]
fn parquet_output_cannot_be_spliced_into_another_write() {
    let home = Home::new();
    ingest_sales(&home);
    let tmp = tempfile::tempdir().unwrap();
    let out_file = tmp.path().join("out.parquet");
    let out_arg = out_file.to_str().unwrap();
    let victim = tmp.path().join("victim.csv");
    let splice = format!(
        "select 1) to '{}' (format csv); copy (select 1",
        victim.display()
    );
    let out = hakiri(
        home.path(),
        &["sql", "--format", "parquet", "--output", out_arg, &splice],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("syntax error") && text(&out.stderr).contains("LINE 1"),
        "{}",
        text(&out.stderr)
    );
    assert!(!victim.exists() && !out_file.exists());

    let ok = hakiri(
        home.path(),
        &[
            "sql",
            "--format",
            "parquet",
            "--output",
            out_arg,
            "select * from sales",
        ],
    );
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let back = hakiri(home.path(), &["ingest", out_arg, "--as", "copied", "-q"]);
    assert!(back.status.success(), "{}", text(&back.stderr));
    let out = hakiri(
        home.path(),
        &["sql", "--format", "csv", "select count(*) n from copied"],
    );
    assert_eq!(text(&out.stdout), "n\n2\n", "{}", text(&out.stderr));
}

/// Limits from `[engine]`: a runaway query is interrupted, and what
/// `engine.query` returns is capped in rows and bytes, truncation reported.
#[test]
fn queries_are_bounded_in_time_rows_and_bytes() {
    let home = Home::new();
    let limited = |env: &[(&str, &str)], args: &[&str]| {
        hakiri_testkit::run_with(BIN, home.path(), args, env, &[])
    };
    let forever = "select sum(a.range * b.range) from range(1000000000) a, range(1000000) b";
    let out = limited(
        &[("HAKIRI_ENGINE__QUERY_TIMEOUT_MS", "300")],
        &["sql", forever],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("ran longer than 300 ms and was interrupted"),
        "{}",
        text(&out.stderr)
    );

    let call = |env: &[(&str, &str)], sql: &str, max_rows: usize| {
        let input = serde_json::json!({"sql": sql, "max_rows": max_rows}).to_string();
        let out = limited(env, &["call", "engine.query", &input]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let v = call(
        &[("HAKIRI_ENGINE__MAX_ROWS", "50")],
        "select * from range(100000)",
        1_000_000,
    );
    assert_eq!(v["rows"].as_array().unwrap().len(), 50);
    assert_eq!(v["truncated"], true);
    let wide = "select repeat('x', 1000) s from range(100000)";
    let v = call(
        &[("HAKIRI_ENGINE__MAX_RESULT_BYTES", "100000")],
        wide,
        100_000,
    );
    assert_eq!(v["truncated"], true);
    assert!(
        v["rows"].as_array().unwrap().len() < 10_000,
        "byte cap ignored"
    );
}
