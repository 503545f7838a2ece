//! The serverless shape end to end, against the S3-compatible server
//! `.ci/services.sh` starts: a laptop home ingests and pushes; a hakiri-core
//! Lambda bootstrap with a fresh home and `[catalog] url = "s3://…"`
//! answers SQL through Function URL events, fetching only the parts a query
//! names; a new push is seen by the next invocation; a version whose part
//! went missing is answered from the one before, with a warning naming it.

use hakiri_testkit::lambda::{Emulator, Kind};
use hakiri_testkit::s3::Bucket;
use hakiri_testkit::{command, run_with, skip_unless_configured, text, Home, Running};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-core");

/// A Function URL event (payload 2.0).
fn http_event(method: &str, path: &str, body: &Value, token: Option<&str>) -> String {
    let mut headers = json!({"content-type": "application/json"});
    if let Some(t) = token {
        headers["authorization"] = json!(format!("Bearer {t}"));
    }
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9"},
            "requestId": "fn-url-request",
        },
        "body": body.to_string(),
        "isBase64Encoded": false,
    })
    .to_string()
}

/// Invokes and returns (status, JSON body) of the HTTP response.
fn call(emu: &Emulator, event: String) -> (u64, Value) {
    let id = emu.invoke(&event);
    let out = emu
        .wait(&id, Duration::from_secs(60))
        .expect("the bootstrap answers");
    assert_eq!(out.kind, Kind::Response, "{}", out.body);
    let resp: Value = serde_json::from_str(&out.body).unwrap();
    let body = serde_json::from_str(resp["body"].as_str().unwrap()).unwrap();
    (resp["statusCode"].as_u64().unwrap(), body)
}

fn parquet_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in walk(dir) {
        if e.extension().is_some_and(|x| x == "parquet") {
            out.push(e.strip_prefix(dir).unwrap().display().to_string());
        }
    }
    out.sort();
    out
}

/// A fresh function (a bootstrap on its own empty home) configured by `env`.
fn iam_function(env: &[(&str, &str)]) -> (Home, Emulator, Running) {
    let tmp = Home::new();
    let emu = Emulator::start().unwrap();
    let mut bootstrap = command(BIN, tmp.path());
    bootstrap.envs(emu.env()).envs(env.iter().copied());
    let running = Running::spawn(&mut bootstrap).unwrap();
    (tmp, emu, running)
}

/// A Function URL event running `sql` for a caller IAM has authenticated.
fn iam_query(sql: &str) -> Value {
    let mut event: Value = serde_json::from_str(&http_event(
        "POST",
        "/tools/engine.query",
        &json!({ "sql": sql }),
        None,
    ))
    .unwrap();
    event["requestContext"]["authorizer"] = json!({"iam": {"userArn": "arn:aws:iam::1:user/a"}});
    event
}

/// The part files a pushed manifest lists.
fn pushed_parts(bucket: &Bucket, manifest: &str) -> Vec<String> {
    let m: Value = serde_json::from_slice(&bucket.get(manifest).expect(manifest)).unwrap();
    m["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["file"].as_str().unwrap().to_string())
        .collect()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn a_lambda_answers_sql_over_pushed_datasets_through_a_function_url() {
    let aws = skip_unless_configured!("HAKIRI_TEST_AWS_ENDPOINT");
    let bucket = Bucket::create(&aws, "hakiri-lambda");
    let env = bucket.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let laptop = Home::new();
    let ok = |args: &[&str]| {
        let out = run_with(BIN, laptop.path(), args, &env, &[]);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let csv = laptop.path().join("s.csv");
    std::fs::write(&csv, "region,amount\neu,3\nus,4\n").unwrap();
    let csv = csv.to_str().unwrap();
    ok(&["ingest", csv, "--as", "sales", "-q"]);
    ok(&["ingest", csv, "--as", "other", "-q"]);
    let token = hakiri_testkit::mint_token(
        BIN,
        laptop.path(),
        &["--tool", "engine.query", "--dataset", "sales"],
    );
    let public_key = std::fs::read_to_string(laptop.path().join("auth/root.pub")).unwrap();
    let target = bucket.url("team");
    ok(&["push", "--to", &target]);

    // The function: a fresh /tmp home, configured by environment variables only.
    let start_function = |tmp: &Home| {
        let emu = Emulator::start().unwrap();
        let mut bootstrap = command(BIN, tmp.path());
        bootstrap
            .envs(emu.env())
            .envs(env.iter().copied())
            .env("HAKIRI_CATALOG__URL", &target)
            .env("HAKIRI_AUTH__PUBLIC_KEY", public_key.trim());
        (emu, bootstrap)
    };
    let query = |sql: &str| json!({"sql": sql});
    let sum = "select sum(amount) as s from sales";

    // The bare cold start, measured the same way: spawn to the first answer
    // of an event that touches no data.
    let bare = {
        let tmp = Home::new();
        let (emu, mut bootstrap) = start_function(&tmp);
        let started = Instant::now();
        let _running = Running::spawn(&mut bootstrap).unwrap();
        let id = emu.invoke("{}");
        emu.wait(&id, Duration::from_secs(60)).expect("an answer");
        started.elapsed()
    };
    let tmp = Home::new();
    let (emu, mut bootstrap) = start_function(&tmp);
    let started = Instant::now();
    let running = Running::spawn(&mut bootstrap).unwrap();
    let (status, body) = call(
        &emu,
        http_event("POST", "/tools/engine.query", &query(sum), Some(&token)),
    );
    let cold = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0]["s"], 7, "{body}");
    // Only the queried dataset was fetched.
    let cache = tmp.path().join("cache/s3");
    assert_eq!(
        parquet_files(&cache),
        vec![format!(
            "{}/team/datasets/sales/parts/{}",
            bucket.name,
            pushed_parts(&bucket, "team/datasets/sales/v1.json")[0]
        )]
    );
    let started = Instant::now();
    let (status, _) = call(
        &emu,
        http_event("POST", "/tools/engine.query", &query(sum), Some(&token)),
    );
    let warm = started.elapsed();
    let started = Instant::now();
    call(
        &emu,
        http_event(
            "POST",
            "/tools/engine.query",
            &query("select 1"),
            Some(&token),
        ),
    );
    let warm_bare = started.elapsed();
    assert_eq!(status, 200);
    eprintln!(
        "lambda over s3: first SQL answer {:.0} ms after the bootstrap started (cold, with hydration), bare first answer {:.0} ms, warm SQL {:.0} ms, warm `select 1` {:.0} ms",
        cold.as_secs_f64() * 1e3,
        bare.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e3,
        warm_bare.as_secs_f64() * 1e3
    );

    // Refusals: host files, no credential, a dataset the token does not
    // grant, bad input, an oversized answer capped.
    let (status, body) = call(
        &emu,
        http_event(
            "POST",
            "/tools/engine.query",
            &query("select * from read_text('/etc/passwd')"),
            Some(&token),
        ),
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not available to agents"),
        "{body}"
    );
    let (status, body) = call(
        &emu,
        http_event(
            "POST",
            "/tools/engine.query",
            &json!({"sql": "select * from range(100000)", "max_rows": 1000000}),
            Some(&token),
        ),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["rows"].as_array().unwrap().len(), &body["truncated"]),
        (10_000, &json!(true))
    );
    let (status, body) = call(
        &emu,
        http_event("POST", "/tools/engine.query", &query(sum), None),
    );
    assert_eq!(status, 401, "{body}");
    let (status, body) = call(
        &emu,
        http_event(
            "POST",
            "/tools/engine.query",
            &query("select * from other"),
            Some(&token),
        ),
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("token does not grant dataset `other`"),
        "{body}"
    );
    let (status, body) = call(
        &emu,
        http_event(
            "POST",
            "/tools/engine.query",
            &json!({"sql": 5}),
            Some(&token),
        ),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = call(
        &emu,
        http_event(
            "POST",
            "/tools/engine.query",
            &query("select nope from sales"),
            Some(&token),
        ),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("nope"), "{body}");

    // A new version pushed from the laptop is what the next invocation sees.
    let more = laptop.path().join("more.csv");
    std::fs::write(&more, "region,amount\neu,30\nus,40\n").unwrap();
    ok(&[
        "ingest",
        more.to_str().unwrap(),
        "--as",
        "sales",
        "--mode",
        "append",
        "-q",
    ]);
    ok(&["push", "--to", &target, "sales"]);
    let (status, body) = call(
        &emu,
        http_event("POST", "/tools/engine.query", &query(sum), Some(&token)),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0]["s"], 77, "{body}");
    drop(running);

    // v2's own part disappears from the bucket: a fresh function answers
    // from v1, and says which part is missing.
    let v1 = pushed_parts(&bucket, "team/datasets/sales/v1.json");
    let added: Vec<String> = pushed_parts(&bucket, "team/datasets/sales/v2.json")
        .into_iter()
        .filter(|p| !v1.contains(p))
        .collect();
    assert_eq!(added.len(), 1, "an append pushes one part: {added:?}");
    bucket.delete(&format!("team/datasets/sales/parts/{}", added[0]));
    let tmp = Home::new();
    let (emu, mut bootstrap) = start_function(&tmp);
    // This time configured as `[s3-sync] bucket` and `prefix`, with a bare `s3://` catalog.
    bootstrap
        .env("HAKIRI_CATALOG__URL", "s3://")
        .env("HAKIRI_S3_SYNC__BUCKET", &bucket.name)
        .env("HAKIRI_S3_SYNC__PREFIX", "team");
    let _running = Running::spawn(&mut bootstrap).unwrap();
    let (status, body) = call(
        &emu,
        http_event("POST", "/tools/engine.query", &query(sum), Some(&token)),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0]["s"], 7, "{body}");
    let warning = body["warnings"][0].as_str().unwrap_or_default();
    assert!(
        warning.contains(&added[0]) && warning.contains("answering from v1"),
        "{body}"
    );
}

#[test]
fn an_s3_catalog_is_read_only_and_names_a_missing_bucket() {
    let aws = skip_unless_configured!("HAKIRI_TEST_AWS_ENDPOINT");
    let bucket = Bucket::create(&aws, "hakiri-ro");
    let mut env = bucket.env();
    env.push(("HAKIRI_CATALOG__URL", bucket.url("x")));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let home = Home::new();
    let csv = home.path().join("s.csv");
    std::fs::write(&csv, "a\n1\n").unwrap();
    let out = run_with(
        BIN,
        home.path(),
        &["ingest", csv.to_str().unwrap(), "--as", "t"],
        &env,
        &[],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is read-only: it shows what `hakiri push` published there"),
        "{}",
        text(&out.stderr)
    );
    let mut env = env.clone();
    env.retain(|(k, _)| *k != "HAKIRI_CATALOG__URL");
    env.push(("HAKIRI_CATALOG__URL", "s3://no-such-bucket-here/x"));
    let out = run_with(BIN, home.path(), &["datasets"], &env, &[]);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot list s3://no-such-bucket-here/x/datasets: NoSuchBucket"),
        "{err}"
    );
    assert!(
        err.lines().count() <= 2,
        "one short error, not the XML: {err}"
    );

    // In a Lambda: an HTTP error naming the bucket's absence, and the
    // function keeps answering.
    let (_tmp, emu, _running) = iam_function(&env);
    let mut event = iam_query("select count(*) from sales");
    let (status, body) = call(&emu, event.to_string());
    assert_eq!(status, 422, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("no-such-bucket-here") && error.contains("NoSuchBucket"),
        "{body}"
    );
    event["body"] = json!(json!({"sql": "select 42 as x"}).to_string());
    let (status, body) = call(&emu, event.to_string());
    assert_eq!((status, &body["rows"][0]["x"]), (200, &json!(42)), "{body}");
}

/// Against a server that checks keys as AWS does: wrong credentials are
/// refused with the server's own reason, on push, on the catalog, and in a
/// Lambda (whose answer is an HTTP error, not a crash).
#[test]
fn wrong_credentials_are_refused_with_the_servers_reason() {
    let aws = skip_unless_configured!("HAKIRI_TEST_AWS_AUTH_ENDPOINT");
    let env = [
        ("HAKIRI_S3_SYNC__ENDPOINT", aws.as_str()),
        ("HAKIRI_S3_SYNC__ALLOW_HTTP", "true"),
        ("HAKIRI_S3_SYNC__REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "AKIANOTAKEY"),
        ("AWS_SECRET_ACCESS_KEY", "wrong"),
    ];
    let reason =
        "InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in our records.";
    let home = Home::new();
    let csv = home.path().join("s.csv");
    std::fs::write(&csv, "a\n1\n").unwrap();
    let out = run_with(
        BIN,
        home.path(),
        &["ingest", csv.to_str().unwrap(), "--as", "t", "-q"],
        &env,
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run_with(
        BIN,
        home.path(),
        &["push", "--to", "s3://any-bucket/x"],
        &env,
        &[],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(reason) && err.lines().count() == 1, "{err}");

    let mut function_env = env.to_vec();
    function_env.push(("HAKIRI_CATALOG__URL", "s3://any-bucket/x"));
    let (_tmp, emu, _running) = iam_function(&function_env);
    let mut event = iam_query("select count(*) from sales");
    let (status, body) = call(&emu, event.to_string());
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains(reason), "{body}");
    // A query that names no dataset needs no bucket.
    event["body"] = json!(json!({"sql": "select 42 as x"}).to_string());
    let (status, body) = call(&emu, event.to_string());
    assert_eq!((status, &body["rows"][0]["x"]), (200, &json!(42)), "{body}");
}
