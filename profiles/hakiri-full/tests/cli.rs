//! hakiri-full end to end: self-checks, tools, and the daemon over MCP.

use hakiri_testkit::http::{self, Response};
use hakiri_testkit::{skip_unless_configured, text, Home};
use serde_json::Value;
use std::process::Output;

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-full");

fn hakiri(home: &std::path::Path, args: &[&str]) -> Output {
    hakiri_testkit::run(BIN, home, args)
}

#[test]
fn reports_exactly_its_capabilities() {
    let home = Home::new();
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
            "coord-client",
            "datasets",
            "embeddings",
            "engine",
            "lambda",
            "mcp",
            "s3-sync",
            "scheduler",
            "search",
            "vector",
            "wasm-host"
        ]
    );
}

#[test]
fn every_self_check_passes() {
    let home = Home::new();
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
    let home = Home::new();
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

fn post(url: &str, bearer: &str, session: Option<&str>, body: &str) -> Response {
    let mut headers = vec![
        ("Accept", "application/json, text/event-stream"),
        ("Authorization", bearer),
    ];
    if let Some(sid) = session {
        headers.push(("Mcp-Session-Id", sid));
    }
    http::post_json(url, &headers, body)
}

#[test]
fn serve_answers_mcp_over_http_and_stops_on_sigterm() {
    let home = Home::new();
    let token = hakiri_testkit::mint_token(BIN, home.path(), &["--tool", "*"]);
    let bearer = format!("Bearer {token}");
    let mut serve = hakiri_testkit::start_serve(BIN, home.path());
    let ready = &serve.ready_line;
    assert!(
        ready.starts_with("hakiri-full ready: ") && ready.contains(" mcp on http://127.0.0.1:"),
        "{ready}"
    );
    let url = format!("http://{}/mcp", serve.addr("mcp"));
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}"#;
    assert_eq!(post(&url, "", None, init).status, 401, "no token, no entry");
    let initialized = post(&url, &bearer, None, init);
    let (status, body) = (initialized.status, &initialized.body);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"name\":\"hakiri\""), "{body}");
    let sid = initialized.header("mcp-session-id").map(str::to_string);
    post(
        &url,
        &bearer,
        sid.as_deref(),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    let Response { status, body, .. } = post(
        &url,
        &bearer,
        sid.as_deref(),
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#,
    );
    assert_eq!(status, 200);
    assert!(
        body.contains("engine.query") && body.contains("vector.nearest"),
        "{body}"
    );
    let code = serve.stop();
    assert!(code.success(), "serve exited with {code}");
}

#[test]
fn backends_do_real_round_trips_when_configured() {
    let pg = skip_unless_configured!("HAKIRI_TEST_POSTGRES_URL");
    let aws = skip_unless_configured!("HAKIRI_TEST_AWS_ENDPOINT");
    let model = skip_unless_configured!("HAKIRI_TEST_EMBED_MODEL");
    let bucket = format!("hakiri-test-{}", std::process::id());
    // S3's CreateBucket: moto accepts it unsigned.
    let url = format!("{aws}/{bucket}");
    let resp = http::request("PUT", &url, &[], b"", http::TIMEOUT)
        .unwrap_or_else(|e| panic!("PUT {url}: {e}"));
    assert_eq!(resp.status, 200, "{}", resp.body);
    // A one-node coordinator cluster for coord-client.
    let coord = hakiri_testkit::coord::cluster(&hakiri_testkit::coord::binary(), 1);
    let coordinators = format!("[{:?}]", coord[0].api_addr());

    let home = Home::new();
    hakiri_testkit::run_ok(BIN, home.path(), &["embed", "init", "--from", &model]);
    let out = hakiri_testkit::run_with(
        BIN,
        home.path(),
        &["capabilities", "--check"],
        &[
            ("HAKIRI_CATALOG_POSTGRES__URL", &pg),
            ("HAKIRI_S3_SYNC__BUCKET", &bucket),
            ("HAKIRI_S3_SYNC__ENDPOINT", &aws),
            ("HAKIRI_S3_SYNC__ALLOW_HTTP", "true"),
            ("HAKIRI_S3_SYNC__REGION", "us-east-1"),
            ("HAKIRI_S3_SYNC__ACCESS_KEY_ID", "test"),
            ("HAKIRI_S3_SYNC__SECRET_ACCESS_KEY", "test"),
            ("HAKIRI_CATALOG_DYNAMO__REGION", "us-east-1"),
            ("HAKIRI_CATALOG_DYNAMO__ENDPOINT", &aws),
            ("HAKIRI_CATALOG_DYNAMO__ACCESS_KEY_ID", "test"),
            ("HAKIRI_CATALOG_DYNAMO__SECRET_ACCESS_KEY", "test"),
            ("HAKIRI_CLUSTER__COORDINATORS", &coordinators),
        ],
        &[],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        !stdout.contains("skipped"),
        "every backend is configured:\n{stdout}"
    );
    assert!(stdout.contains("ok: PostgreSQL"), "{stdout}");
    assert!(
        stdout.contains("ok: compare-and-swap, read and delete of a key"),
        "{stdout}"
    );
    assert!(
        stdout.contains("put/get/list/delete round trip"),
        "{stdout}"
    );
    assert!(stdout.contains("signed ListTables"), "{stdout}");
    assert!(
        stdout.contains("local/all-MiniLM-L6-v2 embedded 2 sentences into 384 dimensions"),
        "{stdout}"
    );
}

#[test]
fn datasets_live_in_a_postgres_catalog_when_configured() {
    let pg = skip_unless_configured!("HAKIRI_TEST_POSTGRES_URL");
    let home = Home::new();
    let name = format!("pg_sales_{}", std::process::id());
    let csv = home.path().join("s.csv");
    std::fs::write(&csv, "region,amount\neu,3\nus,4\n").unwrap();
    let run = |args: &[&str]| {
        hakiri_testkit::run_with(BIN, home.path(), args, &[("HAKIRI_CATALOG__URL", &pg)], &[])
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
    let out = hakiri(home.path(), &["datasets", "--json"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );
}

#[test]
fn datasets_live_in_a_dynamodb_catalog_when_configured() {
    let aws = skip_unless_configured!("HAKIRI_TEST_AWS_ENDPOINT");
    let home = Home::new();
    let table = format!("hakiri-cli-{}", std::process::id());
    let url = format!("dynamodb://{table}");
    let env = dynamo_catalog(&url, &aws);
    let run = |args: &[&str]| hakiri_testkit::run_with(BIN, home.path(), args, &env, &[]);
    let csv = home.path().join("s.csv");
    std::fs::write(&csv, "region,amount\neu,3\nus,4\n").unwrap();
    // Before `catalog init`, the error says what to do.
    let out = run(&["ingest", csv.to_str().unwrap(), "--as", "sales", "-q"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("hakiri catalog init {url}")),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["catalog", "init", &url]);
    assert!(
        text(&out.stdout).contains("created DynamoDB table"),
        "{}",
        text(&out.stderr)
    );
    for _ in 0..2 {
        let out = run(&["ingest", csv.to_str().unwrap(), "--as", "sales", "-q"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let listed: Value = serde_json::from_slice(&run(&["datasets", "--json"]).stdout).unwrap();
    assert_eq!(listed[0]["name"], "sales");
    assert_eq!(listed[0]["version"], 2);
    let out = run(&["sql", "--format", "csv", "select sum(amount) s from sales"]);
    assert_eq!(text(&out.stdout), "s\n7\n", "{}", text(&out.stderr));
    assert!(run(&["drop", "sales"]).status.success());
}

/// Two daemons on one `dynamodb://` catalog publish the same dataset at the
/// same moment: exactly one wins; the other is told another writer did.
#[test]
fn two_writers_racing_on_a_dynamodb_catalog_one_wins() {
    let aws = skip_unless_configured!("HAKIRI_TEST_AWS_ENDPOINT");
    let table = format!("hakiri-race-{}", std::process::id());
    let url = format!("dynamodb://{table}");
    let env = dynamo_catalog(&url, &aws);
    let (a, b) = (Home::new(), Home::new());
    let out = hakiri_testkit::run_with(BIN, a.path(), &["catalog", "init", &url], &env, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Big enough that both read the catalog before either publishes.
    let rows: String = (0..400_000).map(|i| format!("{i},{}\n", i % 7)).collect();
    let writers: Vec<_> = [&a, &b]
        .iter()
        .map(|home| {
            let csv = home.path().join("s.csv");
            std::fs::write(&csv, format!("id,amount\n{rows}")).unwrap();
            let mut cmd = hakiri_testkit::command(BIN, home.path());
            cmd.args(["ingest", csv.to_str().unwrap(), "--as", "sales", "-q"])
                .envs(env)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            cmd
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|mut cmd| cmd.spawn().unwrap())
        .collect();
    let outcomes: Vec<_> = writers
        .into_iter()
        .map(|w| w.wait_with_output().unwrap())
        .collect();
    let won = outcomes.iter().filter(|o| o.status.success()).count();
    let lost: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.status.success())
        .map(|o| text(&o.stderr))
        .collect();
    assert_eq!(won, 1, "{lost:?}");
    assert!(
        lost[0].contains("dataset `sales` changed while this version was written")
            && lost[0].contains("retry"),
        "{}",
        lost[0]
    );
    let listed = hakiri_testkit::run_with(BIN, a.path(), &["datasets", "--json"], &env, &[]);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["version"], 1, "{listed}");
}

/// `[catalog] url` on the DynamoDB server `.ci/services.sh` starts.
fn dynamo_catalog<'a>(url: &'a str, aws: &'a str) -> [(&'static str, &'a str); 5] {
    [
        ("HAKIRI_CATALOG__URL", url),
        ("HAKIRI_CATALOG_DYNAMO__REGION", "us-east-1"),
        ("HAKIRI_CATALOG_DYNAMO__ENDPOINT", aws),
        ("HAKIRI_CATALOG_DYNAMO__ACCESS_KEY_ID", "test"),
        ("HAKIRI_CATALOG_DYNAMO__SECRET_ACCESS_KEY", "test"),
    ]
}
