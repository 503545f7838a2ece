//! hakiri-core end to end: the static binary as users run it.

use hakiri_testkit::lambda::{Emulator, Kind};
use hakiri_testkit::{text, Home};
use serde_json::Value;
use std::process::Output;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-core");

fn hakiri(home: &std::path::Path, args: &[&str]) -> Output {
    hakiri_testkit::run(BIN, home, args)
}

#[test]
fn reports_exactly_its_capabilities_with_linked_versions() {
    let home = Home::new();
    let out = hakiri(home.path(), &["capabilities", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["profile"], "hakiri-core");
    assert_eq!(v["schema_version"], 2);
    assert_eq!(v["build"]["target"], "x86_64-unknown-linux-musl");
    let names = hakiri_testkit::capability_names(&v);
    assert_eq!(
        names,
        [
            "auth",
            "catalog-sqlite",
            "connectors",
            "coord-client",
            "datasets",
            "engine",
            "lambda",
            "s3-sync",
            "scheduler"
        ]
    );
    let engine = v["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "engine")
        .unwrap();
    let libs: Vec<&str> = engine["libraries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(libs, ["duckdb", "polars", "arrow"]);
    assert!(engine["libraries"][0]["version"]
        .as_str()
        .unwrap()
        .starts_with("1."));
    assert_eq!(
        engine["contributes"]["config"],
        serde_json::json!(["engine", "catalog"])
    );
    assert_eq!(
        v["capabilities"][0]["contributes"]["provides"],
        serde_json::json!({"authorizer": ["biscuit"]})
    );
    assert_eq!(
        v["capabilities"][1]["contributes"]["provides"],
        serde_json::json!({"catalog": ["sqlite"]})
    );
}

#[test]
fn self_checks_pass_and_unconfigured_backends_say_so() {
    let home = Home::new();
    let out = hakiri(home.path(), &["capabilities", "--check"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("ok: DuckDB"), "{stdout}");
    assert!(stdout.contains("skipped: not configured"), "{stdout}");
    assert!(
        stdout.contains("bootstrap answered an invocation"),
        "{stdout}"
    );
}

#[test]
fn commands_and_tools_of_other_profiles_name_them() {
    let home = Home::new();
    let out = hakiri(home.path(), &["search", "whale", "book.txt"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).trim(),
        "hakiri: `search` is part of hakiri-full; this binary is hakiri-core"
    );
    let out = hakiri(home.path(), &["call", "raft.status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr)
        .contains("`raft.status` is part of hakiri-coord; this binary is hakiri-core"));
    let out = hakiri(home.path(), &["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    // SQL table functions of another profile: DuckDB's error, then the hint.
    let out = hakiri(
        home.path(),
        &["sql", "select * from text_search('docs', 'whale', 5)"],
    );
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stderr);
    assert!(
        said.contains("Table Function with name text_search does not exist")
            && said.contains("`text_search` is part of hakiri-full; this binary is hakiri-core"),
        "{said}"
    );
}

#[test]
fn duckdb_errors_come_back_as_errors_on_the_static_build() {
    let home = Home::new();
    let ok = hakiri(
        home.path(),
        &[
            "call",
            "engine.query",
            r#"{"sql": "select 41 + 1 as answer"}"#,
        ],
    );
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let v: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(v["rows"][0]["answer"], 42);
    let missing = hakiri(
        home.path(),
        &[
            "call",
            "engine.query",
            r#"{"sql": "select * from missing_table"}"#,
        ],
    );
    assert_eq!(
        missing.status.code(),
        Some(1),
        "a DuckDB error must not abort the process"
    );
    assert!(
        text(&missing.stderr).contains("missing_table"),
        "{}",
        text(&missing.stderr)
    );
    let cast = hakiri(home.path(), &["sql", "select 'abc'::integer"]);
    assert_eq!(cast.status.code(), Some(1));
    assert!(
        text(&cast.stderr).contains("Conversion Error"),
        "{}",
        text(&cast.stderr)
    );
    let bad_json = hakiri(home.path(), &["call", "engine.query", "{sql"]);
    assert_eq!(bad_json.status.code(), Some(1));
    assert!(
        text(&bad_json.stderr).contains("not valid JSON"),
        "{}",
        text(&bad_json.stderr)
    );
}

#[test]
fn config_is_checked_against_this_binary() {
    let home = Home::new();
    home.write_config("[engine]\nthreads = 2\n\n[mcp]\nlisten = \"127.0.0.1:9\"\n");
    let out = hakiri(home.path(), &["config", "check"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(
        "[mcp] configures `mcp`, which is part of hakiri-full; this binary is hakiri-core"
    ));

    home.write_config("[engine]\nthreads = \"two\"\n");
    let out = hakiri(home.path(), &["config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("hakiri.toml:2: [engine]: invalid type"),
        "{}",
        text(&out.stderr)
    );
    // Sections are parsed once at start-up: a command refuses to run on them.
    let out = hakiri(home.path(), &["datasets"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("invalid configuration")
            && text(&out.stderr).contains("hakiri.toml:2: [engine]: invalid type"),
        "{}",
        text(&out.stderr)
    );

    home.write_config("[engine\n");
    let out = hakiri(home.path(), &["version"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("hakiri.toml:1: invalid TOML"),
        "{}",
        text(&out.stderr)
    );

    let missing = hakiri(home.path(), &["--config", "/nonexistent/h.toml", "version"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("cannot read config file /nonexistent/h.toml"));
}

#[test]
fn a_catalog_of_another_profile_names_that_profile() {
    let home = Home::new();
    home.write_config("[catalog]\nurl = \"postgres://u@127.0.0.1:1/db\"\n");
    let out = hakiri(home.path(), &["datasets"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(
            "catalog `postgres://u@127.0.0.1:1/db`: `postgres` is part of hakiri-full; this binary is hakiri-core"
        ),
        "{}",
        text(&out.stderr)
    );
    home.write_config("[catalog]\nurl = \"nosuch://x\"\n");
    let out = hakiri(home.path(), &["datasets"]);
    assert!(
        text(&out.stderr).contains("unknown catalog `nosuch`; this binary has: coord, s3, sqlite"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn serves_tool_calls_as_a_lambda_bootstrap() {
    let home = Home::new();
    let emu = Emulator::start().unwrap();
    let ok = emu.invoke(r#"{"tool": "engine.query", "input": {"sql": "select 6 * 7 as x"}}"#);
    let bad = emu.invoke(r#"{"tool": "no.such.tool"}"#);
    let bootstrap = hakiri_testkit::start_bootstrap(BIN, home.path(), &emu);
    let first = emu.wait(&ok, Duration::from_secs(30)).expect("an answer");
    let second = emu.wait(&bad, Duration::from_secs(30)).expect("an answer");
    drop(bootstrap);
    assert_eq!(first.kind, Kind::Response, "{}", first.body);
    let v: Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(v["rows"][0]["x"], 42);
    assert_eq!(second.kind, Kind::Error);
    assert!(
        second.body.contains("unknown tool `no.such.tool`"),
        "{}",
        second.body
    );
}

/// IAM admits the invocation; a token in the event is then enforced, and
/// the function needs only the public key to verify it.
#[test]
fn lambda_events_with_a_token_are_held_to_it() {
    let issuer = Home::new();
    let token = hakiri_testkit::mint_token(BIN, issuer.path(), &["--tool", "datasets.list"]);
    let public_key = std::fs::read_to_string(issuer.path().join("auth/root.pub")).unwrap();
    let home = Home::new(); // the function: no private key, only the public one
    let emu = Emulator::start().unwrap();
    let event = |tool: &str, token: &str| {
        emu.invoke(&serde_json::json!({"tool": tool, "input": {}, "token": token}).to_string())
    };
    let granted = event("datasets.list", &token);
    let other_tool = event("engine.query", &token);
    let garbage = event("datasets.list", "garbage");
    let mut bootstrap = hakiri_testkit::command(BIN, home.path());
    bootstrap
        .envs(emu.env())
        .env("HAKIRI_AUTH__PUBLIC_KEY", public_key.trim());
    let running = hakiri_testkit::Running::spawn(&mut bootstrap).unwrap();
    let wait = |id: String| emu.wait(&id, Duration::from_secs(30)).expect("an answer");
    let (granted, other_tool, garbage) = (wait(granted), wait(other_tool), wait(garbage));
    drop(running);
    assert_eq!(granted.kind, Kind::Response, "{}", granted.body);
    assert_eq!(other_tool.kind, Kind::Error);
    assert!(
        other_tool
            .body
            .contains("token does not grant tool `engine.query`"),
        "{}",
        other_tool.body
    );
    assert_eq!(garbage.kind, Kind::Error);
    assert!(
        garbage.body.contains("not valid for this server"),
        "{}",
        garbage.body
    );
    assert!(!other_tool.body.contains(&token), "the token was echoed");
}

#[test]
fn lambda_outside_lambda_says_what_is_missing() {
    let home = Home::new();
    let out = hakiri(home.path(), &["lambda"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("AWS_LAMBDA_RUNTIME_API is not set"),
        "{}",
        text(&out.stderr)
    );
}

/// `hakiri sql … | head`: when the reader leaves, hakiri stops quietly.
#[test]
fn a_closed_stdout_ends_output_quietly() {
    use std::io::Read;
    let home = Home::new();
    let mut child = hakiri_testkit::command(BIN, home.path())
        .args(["sql", "--format", "csv", "select * from range(2000000)"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The pipe's read end is dropped here.
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stderr), "", "exit {:?}", out.status);
    assert!(out.status.success(), "{:?}", out.status);
}

/// The binary is built for x86-64-v3; on an older CPU (qemu's Westmere: SSE4.2,
/// no AVX) it says what it needs and how to build for that CPU, instead of
/// dying of SIGILL at its first AVX2 instruction. On a CPU with AVX2 (qemu's
/// `max`) the same check lets it run.
#[test]
fn an_older_cpu_is_refused_with_what_it_lacks_and_how_to_build_for_it() {
    let qemu = hakiri_testkit::skip_unless_configured!("HAKIRI_TEST_QEMU");
    let home = Home::new();
    let old = hakiri_testkit::output(
        hakiri_testkit::command(&qemu, home.path()).args(["-cpu", "Westmere", BIN, "version"]),
        b"",
        Duration::from_secs(60),
    );
    let stderr = text(&old.stderr);
    assert_eq!(old.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("needs an x86-64-v3 CPU"), "{stderr}");
    assert!(stderr.contains("target-cpu=x86-64"), "{stderr}");
    assert!(old.stdout.is_empty(), "{}", text(&old.stdout));
    let current = hakiri_testkit::output(
        hakiri_testkit::command(&qemu, home.path()).args(["-cpu", "max", BIN, "version"]),
        b"",
        Duration::from_secs(120),
    );
    assert!(current.status.success(), "{}", text(&current.stderr));
    assert!(
        text(&current.stdout).contains("hakiri-core"),
        "{}",
        text(&current.stdout)
    );
}
