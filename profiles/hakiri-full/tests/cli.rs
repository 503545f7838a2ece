//! hakiri-full end to end: self-checks, tools, and the daemon over MCP.

use hakiri_testkit::text;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-full");

fn hakiri(home: &std::path::Path, args: &[&str]) -> Output {
    hakiri_testkit::run(BIN, home, args)
}

#[test]
fn reports_exactly_its_capabilities() {
    let home = tempfile::tempdir().unwrap();
    let out = hakiri(home.path(), &["capabilities", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names = hakiri_testkit::capability_names(&v);
    assert_eq!(
        names,
        [
            "auth",
            "catalog-dynamo",
            "catalog-postgres",
            "catalog-sqlite",
            "connectors",
            "datasets",
            "engine",
            "lambda",
            "mcp",
            "s3-sync",
            "search",
            "vector",
            "wasm-host"
        ]
    );
}

#[test]
fn every_self_check_passes() {
    let home = tempfile::tempdir().unwrap();
    let out = hakiri(home.path(), &["capabilities", "--check"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    for expected in [
        "initialize handshake",
        "add(2, 40) = 42",
        "HNSW",
        "indexed 2 documents",
        "read allowed, write denied",
    ] {
        assert!(
            stdout.contains(expected),
            "missing `{expected}` in:\n{stdout}"
        );
    }
}

#[test]
fn tools_run_through_call() {
    let home = tempfile::tempdir().unwrap();
    let wat = r#"{"module": "(module (func (export \"sq\") (param i32) (result i32) local.get 0 local.get 0 i32.mul))", "function": "sq", "args": [9]}"#;
    let out = hakiri(home.path(), &["call", "wasm.call", wat]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        serde_json::json!([81])
    );
    let out = hakiri(
        home.path(),
        &[
            "call",
            "search.text",
            r#"{"documents": ["a b", "c d"], "query": "d"}"#,
        ],
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap()[0]["index"],
        1
    );
    let out = hakiri(
        home.path(),
        &[
            "call",
            "vector.nearest",
            r#"{"vectors": [[1.0]], "query": [1.0, 2.0]}"#,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("vector 0 has 1 dimensions but the query has 2"));
}

fn post(addr: &str, session: Option<&str>, body: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(sid) = session {
        req.push_str(&format!("Mcp-Session-Id: {sid}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if raw.windows(8).any(|w| w == b"\"result\"") && raw.ends_with(b"\n\n") {
            break;
        }
    }
    let raw = text(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

#[test]
fn serve_answers_mcp_over_http_and_stops_on_sigterm() {
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .env("HAKIRI_HOME", home.path())
        .env("HAKIRI_MCP__LISTEN", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let ready = lines.next().unwrap().unwrap();
    assert!(
        ready.starts_with("hakiri-full ready: mcp on http://127.0.0.1:"),
        "{ready}"
    );
    let addr = ready
        .split("http://")
        .nth(1)
        .unwrap()
        .trim_end_matches("/mcp")
        .to_string();
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}"#;
    let (status, head, body) = post(&addr, None, init);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"name\":\"hakiri\""), "{body}");
    let sid = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("mcp-session-id: ")
                .or_else(|| l.strip_prefix("Mcp-Session-Id: "))
        })
        .map(str::to_string);
    post(
        &addr,
        sid.as_deref(),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    let (status, _, body) = post(
        &addr,
        sid.as_deref(),
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#,
    );
    assert_eq!(status, 200);
    assert!(
        body.contains("engine.query") && body.contains("vector.nearest"),
        "{body}"
    );
    sigterm(child.id());
    let code = child.wait().unwrap();
    assert!(code.success(), "serve exited with {code}");
}

fn sigterm(pid: u32) {
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
}

/// Where a test server is, as `.ci/services.sh` exports it.
fn server(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is unset: run the tests through .ci/test, which starts a real server")
    })
}

#[test]
fn backends_do_real_round_trips_when_configured() {
    let pg = server("HAKIRI_TEST_POSTGRES_URL");
    let aws = server("HAKIRI_TEST_AWS_ENDPOINT");
    let bucket = format!("hakiri-test-{}", std::process::id());
    // S3's CreateBucket: moto accepts it unsigned.
    let addr = aws.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    let home = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["capabilities", "--check"])
        .env("HAKIRI_HOME", home.path())
        .env("HAKIRI_CATALOG_POSTGRES__URL", &pg)
        .env("HAKIRI_S3_SYNC__BUCKET", &bucket)
        .env("HAKIRI_S3_SYNC__ENDPOINT", &aws)
        .env("HAKIRI_S3_SYNC__ALLOW_HTTP", "true")
        .env("HAKIRI_S3_SYNC__REGION", "us-east-1")
        .env("HAKIRI_S3_SYNC__ACCESS_KEY_ID", "test")
        .env("HAKIRI_S3_SYNC__SECRET_ACCESS_KEY", "test")
        .env("HAKIRI_CATALOG_DYNAMO__REGION", "us-east-1")
        .env("HAKIRI_CATALOG_DYNAMO__ENDPOINT", &aws)
        .env("HAKIRI_CATALOG_DYNAMO__ACCESS_KEY_ID", "test")
        .env("HAKIRI_CATALOG_DYNAMO__SECRET_ACCESS_KEY", "test")
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        !stdout.contains("skipped"),
        "every backend is configured:\n{stdout}"
    );
    assert!(stdout.contains("ok: PostgreSQL"), "{stdout}");
    assert!(
        stdout.contains("put/get/list/delete round trip"),
        "{stdout}"
    );
    assert!(stdout.contains("signed ListTables"), "{stdout}");
}

#[test]
fn datasets_live_in_a_postgres_catalog_when_configured() {
    let pg = server("HAKIRI_TEST_POSTGRES_URL");
    let home = tempfile::tempdir().unwrap();
    let name = format!("pg_sales_{}", std::process::id());
    let csv = home.path().join("s.csv");
    std::fs::write(&csv, "region,amount\neu,3\nus,4\n").unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("HAKIRI_HOME", home.path())
            .env("HAKIRI_CATALOG", &pg)
            .output()
            .unwrap()
    };
    let out = run(&["ingest", csv.to_str().unwrap(), "--as", &name, "-q"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&[
        "sql",
        "--format",
        "csv",
        &format!("select sum(amount) as s from {name}"),
    ]);
    assert_eq!(text(&out.stdout), "s\n7\n", "{}", text(&out.stderr));
    let listed = run(&["datasets", "--json"]);
    assert!(text(&listed.stdout).contains(&name));
    assert!(run(&["drop", &name]).status.success());
    // The SQLite catalog in the same home never saw it.
    let out = Command::new(BIN)
        .args(["datasets", "--json"])
        .env("HAKIRI_HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );
}
