//! hakiri-full driven by the official Python MCP SDK, over streamable HTTP
//! and over stdio, with tokens: what a user's agent framework would do.

use hakiri_testkit::{mint_token, run, skip_unless_configured, text, Home};
use serde_json::{json, Value};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-full");

/// Runs the SDK client script; `Err` carries what it printed when refused.
fn sdk(
    python: &str,
    home: &Home,
    mode: &str,
    target: &str,
    token: &str,
    calls: Value,
) -> Result<Value, String> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../gates/clients/mcp_python_client.py"
    );
    let mut cmd = Command::new(python);
    cmd.args([script, mode, target, token, &calls.to_string()])
        .env("HAKIRI_HOME", home.path())
        .env_remove("HAKIRI_TOKEN");
    let out = hakiri_testkit::output(&mut cmd, &[], std::time::Duration::from_secs(120));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "client printed no JSON: {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    // The SDK accepts 200 or 204 for a session's DELETE (we answer 204).
    assert!(
        !text(&out.stderr).contains("Session termination failed"),
        "{}",
        text(&out.stderr)
    );
    if out.status.success() {
        Ok(printed)
    } else {
        Err(printed["refused"].as_str().unwrap_or_default().to_string())
    }
}

#[test]
fn the_python_sdk_gets_exactly_what_its_token_grants() {
    let python = skip_unless_configured!("HAKIRI_TEST_PYTHON_MCP");
    let home = Home::new();
    let csv = home.path().join("sales.csv");
    std::fs::write(&csv, "region,amount\neu,3\nus,4\n").unwrap();
    let out = run(
        BIN,
        home.path(),
        &["ingest", csv.to_str().unwrap(), "--as", "sales", "-q"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = mint_token(
        BIN,
        home.path(),
        &[
            "--tool",
            "engine.query",
            "--dataset",
            "sales",
            "--ttl",
            "1h",
        ],
    );
    let calls = json!([
        ["engine.query", {"sql": "select sum(amount) s from sales"}],
        ["engine.query", {"sql": "select * from read_text('/etc/passwd')"}],
        ["vector.nearest", {"vectors": [[0.0]], "query": [0.0]}]
    ]);
    let check = |answer: Value| {
        assert_eq!(answer["tools"], json!(["engine.query"]), "{answer}");
        let c = &answer["calls"];
        assert_eq!(c[0]["is_error"], false, "{answer}");
        assert_eq!(c[0]["structured"]["rows"][0]["s"], 7, "{answer}");
        assert_eq!(c[1]["is_error"], true, "{answer}");
        assert!(
            c[1]["text"][0]
                .as_str()
                .unwrap()
                .contains("not available to agents"),
            "{answer}"
        );
        assert_eq!(c[2]["is_error"], true, "{answer}");
        assert!(
            c[2]["text"][0]
                .as_str()
                .unwrap()
                .contains("does not grant tool `vector.nearest`"),
            "{answer}"
        );
    };

    let mut serve = hakiri_testkit::start_serve(BIN, home.path());
    let url = format!("http://{}/mcp", serve.addr("mcp"));
    check(sdk(&python, &home, "http", &url, &token, calls.clone()).expect("granted session"));
    // Without a token the SDK cannot even initialize (the 401 itself is
    // asserted over raw HTTP in adversarial.rs; the SDK reports it generically).
    let refused = sdk(&python, &home, "http", &url, "", json!([])).expect_err("no token");
    assert!(refused.contains("error"), "{refused}");
    assert!(serve.stop().success());

    check(sdk(&python, &home, "stdio", BIN, &token, calls).expect("stdio session"));
}

/// The agent tool set through the official SDK, on a real dataset with a
/// text index and a vector index embedded by the real model: list,
/// describe, sample, search three ways, then query what was found.
#[test]
fn the_python_sdk_discovers_samples_searches_and_queries_a_dataset() {
    let python = skip_unless_configured!("HAKIRI_TEST_PYTHON_MCP");
    let model = skip_unless_configured!("HAKIRI_TEST_EMBED_MODEL");
    let home = Home::new();
    let csv = home.path().join("books.csv");
    std::fs::write(
        &csv,
        "id,title,body\na1,Moby Dick,The whale and the sea\na2,Dune,Sand worms and spice\n",
    )
    .unwrap();
    for args in [
        vec!["embed", "init", "--from", model.as_str()],
        vec!["ingest", csv.to_str().unwrap(), "--as", "books", "-q"],
        vec![
            "index",
            "create",
            "books",
            "--text",
            "title,body",
            "--id",
            "id",
            "--embed",
            "body",
        ],
    ] {
        let out = run(BIN, home.path(), &args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    let token = mint_token(BIN, home.path(), &["--tool", "*", "--dataset", "books"]);
    let calls = json!([
        ["datasets.list", {}],
        ["datasets.describe", {"name": "books"}],
        ["datasets.sample", {"name": "books", "rows": 1}],
        ["search.dataset", {"dataset": "books", "query": "whale"}],
        ["engine.query", {"sql": "select title from books where id = 'a1'"}],
        ["connector.list", {}],
        ["search.vector", {"dataset": "books", "query": "desert creatures", "limit": 1}],
        ["search.hybrid", {"dataset": "books", "query": "ocean animals", "limit": 2}]
    ]);
    let mut serve = hakiri_testkit::start_serve(BIN, home.path());
    let url = format!("http://{}/mcp", serve.addr("mcp"));
    let answer = sdk(&python, &home, "http", &url, &token, calls).expect("granted session");
    assert!(serve.stop().success());
    let c = &answer["calls"];
    for i in 0..8 {
        assert_eq!(c[i]["is_error"], false, "call {i}: {answer}");
    }
    let listed = c[0]["structured"]["datasets"][0].to_string();
    assert!(
        listed.contains("books") && listed.contains("text-index"),
        "{answer}"
    );
    assert_eq!(c[2]["structured"]["rows"][0]["id"], "a1", "{answer}");
    assert_eq!(c[3]["structured"]["hits"][0]["id"], "a1", "{answer}");
    assert!(
        c[3]["structured"]["hits"][0]["_snippet"]
            .as_str()
            .unwrap()
            .contains("<b>"),
        "{answer}"
    );
    assert_eq!(
        c[4]["structured"]["rows"][0]["title"], "Moby Dick",
        "{answer}"
    );
    assert_eq!(c[5]["structured"]["connectors"], json!([]), "{answer}");
    assert_eq!(c[6]["structured"]["hits"][0]["id"], "a2", "{answer}");
    assert_eq!(c[6]["structured"]["mode"], "vector", "{answer}");
    assert_eq!(c[7]["structured"]["hits"][0]["id"], "a1", "{answer}");
    assert!(listed.contains("vector-index"), "{answer}");
}
