//! The data path end to end on the static binary: ingest → catalog → SQL,
//! and every bad input ending in a clear error with nothing lost.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-core");

fn hakiri(home: &std::path::Path, args: &[&str]) -> Output {
    hakiri_testkit::run(BIN, home, args)
}

fn ok(home: &Path, args: &[&str]) -> String {
    let out = hakiri(home, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(home: &Path, args: &[&str]) -> String {
    let out = hakiri(home, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?} should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(home: &Path, sql: &str) -> Value {
    serde_json::from_str(&ok(home, &["sql", "--format", "json", sql])).unwrap()
}

fn write(dir: &Path, name: &str, body: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

#[test]
fn ingest_query_describe_drop() {
    let t = tempfile::tempdir().unwrap();
    let (home, dir) = (t.path().join("home"), t.path());
    std::fs::create_dir(dir.join("parts")).unwrap();
    write(
        &dir.join("parts"),
        "a.csv",
        b"region,amount\neu,10\nus,20\n",
    );
    write(&dir.join("parts"), "b.csv", b"region,amount\neu,5\n");
    ok(
        &home,
        &[
            "ingest",
            &format!("{}/parts", dir.display()),
            "--as",
            "sales",
            "--schema",
            "amount=float64",
            "-q",
        ],
    );
    assert_eq!(
        json(
            &home,
            "select region, sum(amount) as s from sales group by 1 order by 2 desc"
        ),
        serde_json::json!([{"region": "us", "s": 20.0}, {"region": "eu", "s": 15.0}])
    );

    // Globs, appends and type overrides.
    ok(
        &home,
        &[
            "ingest",
            &format!("{}/parts/a*.csv", dir.display()),
            "--as",
            "sales",
            "--mode",
            "append",
            "--schema",
            "amount=float64",
            "-q",
        ],
    );
    assert_eq!(
        json(&home, "select count(*) as n from sales"),
        serde_json::json!([{"n": 5}])
    );
    let described: Value =
        serde_json::from_str(&ok(&home, &["describe", "sales", "--json"])).unwrap();
    assert_eq!(described["version"], 2);
    assert_eq!(described["columns"][1]["min"], "5.0");
    assert_eq!(described["columns"][1]["max"], "20.0");
    assert_eq!(described["columns"][0]["distinct_estimate"], 2);

    // NDJSON, JSON arrays, Parquet (written by `sql --format parquet`) and stdin.
    let nd = write(
        dir,
        "e.ndjson",
        b"{\"k\":1,\"v\":\"a\"}\n{\"k\":2,\"v\":null}\n",
    );
    ok(&home, &["ingest", &nd, "--as", "events", "-q"]);
    let arr = write(dir, "e.json", b"[{\"k\":1},{\"k\":2},{\"k\":3}]");
    ok(&home, &["ingest", &arr, "--as", "arr", "-q"]);
    let pq = dir.join("out.parquet").display().to_string();
    ok(
        &home,
        &[
            "sql",
            "--format",
            "parquet",
            "--output",
            &pq,
            "select * from sales",
        ],
    );
    ok(&home, &["ingest", &pq, "--as", "copy", "-q"]);
    let piped = hakiri_testkit::run_with(
        BIN,
        &home,
        &["ingest", "-", "--as", "piped", "-q"],
        &[],
        b"x\ty\n1\t2\n",
    );
    assert!(piped.status.success());
    assert_eq!(
        json(&home, "select (select count(*) from events) e, (select count(*) from arr) a, (select count(*) from copy) c, (select sum(y) from piped) p"),
        serde_json::json!([{"e": 2, "a": 3, "c": 5, "p": 2}])
    );
    let csv = ok(
        &home,
        &[
            "sql",
            "--format",
            "csv",
            "select k, v from events order by k",
        ],
    );
    assert_eq!(csv, "k,v\n1,a\n2,\n");
    let listed: Value = serde_json::from_str(&ok(&home, &["datasets", "--json"])).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["arr", "copy", "events", "piped", "sales"]);

    ok(&home, &["drop", "events"]);
    assert!(fails(&home, &["sql", "select * from events"]).contains("events does not exist"));
    assert!(
        !home.join("datasets/events").exists(),
        "drop removes the files"
    );
}

#[test]
fn bad_input_gets_clear_errors() {
    let t = tempfile::tempdir().unwrap();
    let (home, dir) = (t.path().join("home"), t.path());
    let ragged = write(dir, "ragged.csv", b"a,b\n1,2\n3,4,5\n6,7\n");
    let e = fails(&home, &["ingest", &ragged, "--as", "r"]);
    assert!(
        e.contains("ragged.csv line 3: expected 2 fields (as in the first row), found 3"),
        "{e}"
    );
    let e = String::from_utf8_lossy(
        &hakiri(
            &home,
            &["ingest", &ragged, "--as", "r", "--on-error", "skip"],
        )
        .stderr,
    )
    .into_owned();
    assert!(
        e.contains("2 rows") && e.contains("skipped 1 malformed rows"),
        "{e}"
    );
    let latin1 = write(dir, "latin1.csv", b"name,city\nJos\xe9,M\xe1laga\n");
    let e = fails(&home, &["ingest", &latin1, "--as", "l"]);
    assert!(e.contains("line 2: field 1 is not valid UTF-8"), "{e}");
    let empty = write(dir, "empty.csv", b"");
    assert!(fails(&home, &["ingest", &empty, "--as", "e"]).contains("empty.csv is empty"));
    assert!(fails(&home, &["ingest", &ragged, "--as", "bad-name"])
        .contains("`bad-name` is not a valid dataset name"));
    assert!(fails(&home, &["ingest", "/no/such/file.csv", "--as", "x"])
        .contains("cannot read /no/such/file.csv"));
    assert!(fails(
        &home,
        &[
            "ingest",
            &format!("{}/*.nothing", dir.display()),
            "--as",
            "x"
        ]
    )
    .contains("no files match"));
    assert!(fails(
        &home,
        &[
            "ingest",
            &ragged,
            "--as",
            "x",
            "--schema",
            "b=money",
            "--on-error",
            "skip"
        ]
    )
    .contains("unknown type `money`"));

    // A type inferred from the first rows that a later row breaks: named, and --schema fixes it.
    let mut late = String::from("a,b\n");
    for i in 0..200 {
        late.push_str(&format!("{i},x\n"));
    }
    late.push_str("3.5,y\n");
    let late = write(dir, "late.csv", late.as_bytes());
    let e = fails(&home, &["ingest", &late, "--as", "late"]);
    assert!(
        e.contains("late.csv near line")
            && e.contains("could not parse `3.5` as dtype `i64`")
            && e.contains("--schema"),
        "{e}"
    );
    ok(
        &home,
        &[
            "ingest",
            &late,
            "--as",
            "late",
            "--schema",
            "a=float64",
            "-q",
        ],
    );
    assert_eq!(
        json(&home, "select max(a) m from late"),
        serde_json::json!([{"m": 199.0}])
    );

    let good = write(dir, "good.csv", b"region,amount\neu,1\n");
    ok(&home, &["ingest", &good, "--as", "sales", "-q"]);
    let e = fails(&home, &["sql", "select * from sale"]);
    assert!(e.contains("Did you mean \"sales\""), "{e}");
    let e = fails(&home, &["sql", "select * frm sales"]);
    assert!(
        e.contains("syntax error at or near \"sales\"") && e.contains("LINE 1"),
        "{e}"
    );
    assert!(fails(&home, &["sql", "delete from sales"]).contains("queries are read-only: `DELETE`"));
    assert!(fails(&home, &["sql", "describe sales; drop view sales"]).contains("read-only"));
    assert!(
        fails(&home, &["describe", "sale"]).contains("no dataset `sale`; did you mean `sales`?")
    );
    assert!(fails(&home, &["drop", "nope"]).contains("no dataset `nope`"));
    // A dataset whose files vanished is skipped with a warning; the others still answer.
    ok(&home, &["ingest", &good, "--as", "doomed", "-q"]);
    std::fs::remove_dir_all(home.join("datasets/doomed/v1")).unwrap();
    let out = hakiri(
        &home,
        &["sql", "--format", "csv", "select count(*) n from sales"],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n\n1\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("dataset `doomed`"));
    assert_eq!(
        json(&home, "select count(*) n from sales"),
        serde_json::json!([{"n": 1}]),
        "failed ingests left sales intact"
    );
}

/// Serves one HTTP response per connection, `count` times.
fn http_server(status: &'static str, body: &'static [u8], count: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(count) {
            let mut conn = conn.unwrap();
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(body);
        }
    });
    format!("http://{addr}")
}

#[test]
fn http_sources_stream_in_and_failures_are_named() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let ok_url = http_server("200 OK", b"a,b\n1,x\n2,y\n", 1);
    ok(
        &home,
        &["ingest", &format!("{ok_url}/data.csv"), "--as", "web", "-q"],
    );
    assert_eq!(
        json(&home, "select sum(a) s from web"),
        serde_json::json!([{"s": 3}])
    );
    let missing = http_server("404 Not Found", b"", 1);
    let e = fails(
        &home,
        &["ingest", &format!("{missing}/gone.csv"), "--as", "gone"],
    );
    assert!(e.contains("gone.csv answered 404 Not Found"), "{e}");
    let e = fails(
        &home,
        &["ingest", "http://127.0.0.1:9/x.csv", "--as", "gone"],
    );
    assert!(e.contains("cannot reach http://127.0.0.1:9/x.csv"), "{e}");
}

/// An ingest from a pipe we hold open: it has the dataset's lock until we let go.
fn held_ingest(home: &Path, name: &str) -> Child {
    let mut child = hakiri_testkit::command(BIN, home)
        .args(["ingest", "-", "--as", name, "-q"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"a,b\n9,9\n")
        .unwrap();
    // Wait until it holds the lock: its staging directory appears.
    let dir = home.join("datasets").join(name);
    for _ in 0..200 {
        let staging = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(".staging-"))
            })
            .unwrap_or(false);
        if staging {
            return child;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the held ingest never started");
}

#[test]
fn concurrent_ingests_are_told_the_dataset_is_busy() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let src = write(t.path(), "s.csv", b"a,b\n1,2\n");
    ok(&home, &["ingest", &src, "--as", "sales", "-q"]);
    let mut first = held_ingest(&home, "sales");
    let e = fails(&home, &["ingest", &src, "--as", "sales"]);
    assert!(e.contains("dataset `sales` is busy"), "{e}");
    assert!(fails(&home, &["drop", "sales"]).contains("busy"));
    drop(first.stdin.take());
    assert!(first.wait().unwrap().success());
    assert_eq!(
        json(&home, "select a from sales"),
        serde_json::json!([{"a": 9}]),
        "the first ingest committed"
    );
}

#[test]
fn kill_dash_nine_mid_ingest_loses_nothing() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let src = write(t.path(), "s.csv", b"a,b\n1,2\n3,4\n");
    ok(&home, &["ingest", &src, "--as", "sales", "-q"]);
    let mut doomed = held_ingest(&home, "sales");
    doomed.kill().unwrap(); // SIGKILL
    doomed.wait().unwrap();
    let listed: Value = serde_json::from_str(&ok(&home, &["datasets", "--json"])).unwrap();
    assert_eq!(listed[0]["version"], 1);
    assert_eq!(
        json(&home, "select sum(a) s from sales"),
        serde_json::json!([{"s": 4}]),
        "version 1 is intact and queryable"
    );
    // The OS released the lock; the next ingest works and sweeps the leftovers.
    ok(
        &home,
        &["ingest", &src, "--as", "sales", "--mode", "append", "-q"],
    );
    assert_eq!(
        json(&home, "select count(*) n from sales"),
        serde_json::json!([{"n": 4}])
    );
    let mut leftovers: Vec<String> = std::fs::read_dir(home.join("datasets/sales"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    leftovers.sort();
    // No staging leftovers; v1 stays readable for [datasets] retain_for.
    assert_eq!(leftovers, ["v1", "v2"]);
}
