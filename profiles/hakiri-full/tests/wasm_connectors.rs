//! WebAssembly connectors end to end on the static hakiri-full: the SDK's
//! example added, ingested through and queried on the CLI, over MCP and in
//! `serve`; misbehaving guests stopped with errors that name them while the
//! daemon keeps serving; components of the wrong kind refused at `add`.

use hakiri_testkit::mcp::Mcp;
use hakiri_testkit::{mint_token, text, wasm, Home};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-full");

fn ok(home: &Path, args: &[&str]) -> String {
    hakiri_testkit::run_ok(BIN, home, args)
}

fn fails(home: &Path, args: &[&str]) -> String {
    hakiri_testkit::run_err(BIN, home, args)
}

fn sql(home: &Path, query: &str) -> Value {
    serde_json::from_str(&ok(home, &["sql", query, "--format", "json"])).unwrap()
}

/// A JSON Feed in two pages on loopback: `/feed.json` (3 items, `next_url`
/// to page 2) and `/feed-2.json` (2 items). Returns `host:port`.
fn feed_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let host = addr.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let item = |id: u32| serde_json::json!({"id": id.to_string(), "title": format!("post {id}"), "content_text": "whales sing", "date_published": "2026-11-01T00:00:00Z"});
            let body = match path.as_str() {
                "/feed.json" => {
                    serde_json::json!({"version": "https://jsonfeed.org/version/1.1", "title": "Loopback Blog", "items": [item(1), item(2), item(3)], "next_url": format!("http://{host}/feed-2.json")})
                }
                "/feed-2.json" => {
                    serde_json::json!({"version": "https://jsonfeed.org/version/1.1", "title": "Loopback Blog", "items": [item(4), item(5)]})
                }
                _ => Value::Null,
            };
            let (status, body) = if body.is_null() {
                ("404 Not Found", String::new())
            } else {
                ("200 OK", body.to_string())
            };
            let mut stream = stream;
            let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Type: application/feed+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    addr
}

#[test]
fn the_example_connector_is_a_source_like_any_other() {
    let home = Home::new();
    let h = home.path();
    let feed = feed_server();
    let wasm = wasm::guest("jsonfeed");
    let wasm = wasm.to_str().unwrap();

    let added = ok(
        h,
        &[
            "connector",
            "add",
            wasm,
            "--allow-host",
            &feed,
            "--set",
            "protocol=http",
        ],
    );
    assert!(
        added.contains("added connector `jsonfeed`") && added.contains("jsonfeed://"),
        "{added}"
    );
    let e = fails(h, &["connector", "add", wasm]);
    assert!(
        e.contains("--replace"),
        "a second add of the same name is refused: {e}"
    );
    // --replace swaps the new copy in one rename (RENAME_EXCHANGE): the new
    // settings hold, and nothing is left aside.
    ok(
        h,
        &[
            "connector",
            "add",
            wasm,
            "--replace",
            "--allow-host",
            &feed,
            "--allow-host",
            "example.org",
            "--set",
            "protocol=http",
        ],
    );
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(h.join("connectors/jsonfeed/manifest.json")).unwrap(),
    )
    .unwrap();
    assert!(
        manifest["allow_hosts"].to_string().contains("example.org"),
        "{manifest}"
    );
    let left: Vec<String> = std::fs::read_dir(h.join("connectors"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["jsonfeed"], "only the new copy remains");
    let listed: Value = serde_json::from_str(&ok(h, &["connector", "list", "--json"])).unwrap();
    assert_eq!(listed[0]["scheme"], "jsonfeed", "{listed}");
    assert_eq!(listed[0]["wit"], "hakiri:connector@0.1.0", "{listed}");
    let caps: Value = serde_json::from_str(&ok(h, &["capabilities", "--json"])).unwrap();
    let host = caps["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "wasm-host")
        .unwrap();
    assert_eq!(
        host["installed"]["connectors"][0]["name"], "jsonfeed",
        "{host}"
    );
    assert!(
        host["contributes"]["provides"]["connector"]
            .to_string()
            .contains("wasm"),
        "{host}"
    );

    // The CLI: ingest through the guest, then query.
    let source = format!("jsonfeed://{feed}/feed.json");
    ok(h, &["ingest", &source, "--as", "posts", "-q"]);
    assert_eq!(
        sql(
            h,
            "select count(*) n, min(title) first, max(id) last from posts"
        ),
        serde_json::json!([{"n": 5, "first": "post 1", "last": "5"}]),
        "both pages arrived"
    );
    let inspected: Value =
        serde_json::from_str(&ok(h, &["connector", "inspect", "jsonfeed", &source])).unwrap();
    assert_eq!(
        inspected["entries"][0]["description"], "Loopback Blog",
        "{inspected}"
    );
    // A second copy under its own scheme, its setting read from the
    // environment at each use (never written under the home).
    ok(
        h,
        &[
            "connector",
            "add",
            wasm,
            "--name",
            "feed-env",
            "--scheme",
            "feedenv",
            "--allow-host",
            &feed,
            "--set-env",
            "protocol=FEED_PROTOCOL",
        ],
    );
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(h.join("connectors/feed-env/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["settings"], serde_json::json!({}), "{manifest}");
    assert_eq!(
        manifest["settings_env"]["protocol"], "FEED_PROTOCOL",
        "{manifest}"
    );
    let via_env = format!("feedenv://{feed}/feed.json");
    let out = hakiri_testkit::run_with(
        BIN,
        h,
        &["ingest", &via_env, "--as", "posts_env", "-q"],
        &[("FEED_PROTOCOL", "http")],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        sql(h, "select count(*) n from posts_env"),
        serde_json::json!([{"n": 5}])
    );
    let e = fails(h, &["ingest", &via_env, "--as", "posts_https"]);
    assert!(
        e.contains("connector `feed-env`"),
        "unset, it speaks https to a plain HTTP server: {e}"
    );
    ok(h, &["connector", "remove", "feed-env"]);
    let e = fails(
        h,
        &[
            "ingest",
            &format!("jsonfeed://{feed}/missing.json"),
            "--as",
            "gone",
        ],
    );
    assert!(
        e.contains("connector `jsonfeed`") && e.contains("404"),
        "{e}"
    );

    // MCP on the daemon: an agent's fetch through the guest reaches only
    // public addresses unless [connectors] allow_addresses lists it.
    let token = mint_token(BIN, h, &["--tool", "*", "--dataset", "*"]);
    let mut serve = hakiri_testkit::start_serve(BIN, h);
    let mcp = Mcp::open(&format!("http://{}/mcp", serve.addr("mcp")), &token).expect("session");
    let (failed, listed) = mcp.call("connector.list", "{}");
    assert!(
        !failed && listed.to_string().contains("jsonfeed"),
        "{listed}"
    );
    let ingest = format!(r#"{{"sources":["{source}"],"name":"agent_posts"}}"#);
    let (failed, result) = mcp.call("datasets.ingest", &ingest);
    assert!(
        failed && result.to_string().contains("non-public address"),
        "loopback refused for an agent: {result}"
    );
    serve.stop();
    home.write_config("[connectors]\nallow_addresses = [\"127.0.0.1\"]\n");
    let mut serve = hakiri_testkit::start_serve(BIN, h);
    let mcp = Mcp::open(&format!("http://{}/mcp", serve.addr("mcp")), &token).expect("session");
    let (failed, result) = mcp.call("datasets.ingest", &ingest);
    assert!(!failed, "{result}");
    let (failed, result) = mcp.call(
        "engine.query",
        r#"{"sql":"select count(*) n from agent_posts"}"#,
    );
    assert!(
        !failed && result["structuredContent"]["rows"][0]["n"] == 5,
        "{result}"
    );
    let (failed, result) = mcp.call("connector.inspect", &format!(r#"{{"source":"{source}"}}"#));
    assert!(
        !failed && result.to_string().contains("Loopback Blog"),
        "{result}"
    );
    serve.stop();

    ok(h, &["connector", "remove", "jsonfeed"]);
    let e = fails(h, &["ingest", &source, "--as", "again"]);
    assert!(e.contains("no connector reads"), "{e}");
}

#[test]
fn misbehaving_guests_are_stopped_by_name_and_the_daemon_keeps_serving() {
    let home = Home::new();
    let h = home.path();
    home.write_config(
        "[wasm-host]\ntimeout_ms = 1500\nmemory_mb = 32\ningest_timeout_s = 4\nmax_output_mb = 8\n",
    );
    let hostile = wasm::guest("hostile");
    ok(
        h,
        &[
            "connector",
            "add",
            hostile.to_str().unwrap(),
            "--allow-host",
            "example.com",
        ],
    );
    let token = mint_token(BIN, h, &["--tool", "*", "--dataset", "*"]);
    let mut serve = hakiri_testkit::start_serve(BIN, h);
    let mcp = Mcp::open(&format!("http://{}/mcp", serve.addr("mcp")), &token).expect("session");
    let ingest_as = |what: &str, name: &str| {
        mcp.call(
            "datasets.ingest",
            &format!(r#"{{"sources":["hostile://{what}"],"name":"{name}"}}"#),
        )
    };
    let ingest = |what: &str| ingest_as(what, &format!("t_{what}"));
    let refusals = [
        ("loop", "ran out of"),
        ("alloc", "[wasm-host] memory_mb"),
        ("trap", "the guest gave up"),
        (
            "malformed",
            "malformed batch (batch 1): line 2 is not valid JSON",
        ),
        ("flood", "[wasm-host] max_output_mb"),
        ("slow", "ingest_timeout_s"),
        (
            "refuse",
            "cannot open `hostile://refuse`: this source does not exist",
        ),
    ];
    for (what, expected) in refusals {
        let (failed, result) = ingest(what);
        let said = result.to_string();
        assert!(
            failed && said.contains("connector `hostile`") && said.contains(expected),
            "{what}: {said}"
        );
        // Still serving, and nothing was published.
        let (failed, listed) = mcp.call("datasets.list", "{}");
        assert!(
            !failed && !listed.to_string().contains(&format!("t_{what}")),
            "{what}: {listed}"
        );
    }
    // What the sandbox let it see: no file, no environment, no socket, and
    // fetches only to its allow-list (example.com), never the metadata address.
    let (failed, result) = ingest("probe");
    assert!(!failed, "{result}");
    let (failed, result) = ingest_as("fetch/169.254.169.254/latest/meta-data/", "t_fetch");
    assert!(!failed, "{result}");
    let (_, rows) = mcp.call("engine.query", r#"{"sql":"select probe, outcome from t_probe union all select probe, outcome from t_fetch order by 1"}"#);
    let rows = rows["structuredContent"]["rows"].clone();
    let outcome = |probe: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["probe"] == probe)
            .map(|r| r["outcome"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert!(outcome("file").starts_with("Err"), "{rows}");
    assert_eq!(outcome("env"), "0", "{rows}");
    assert!(outcome("tcp").starts_with("Err"), "{rows}");
    assert!(
        outcome("fetch").contains("not on connector `hostile`'s allow-list"),
        "{rows}"
    );
    assert_eq!(
        serve.stop().code(),
        Some(0),
        "the daemon shut down cleanly after all of it"
    );
}

#[test]
fn components_of_the_wrong_kind_are_refused_at_add() {
    let home = Home::new();
    let h = home.path();
    let other = wasm::guest("other-wit");
    let e = fails(h, &["connector", "add", other.to_str().unwrap()]);
    assert!(
        e.contains("built against hakiri:connector@0.2.0")
            && e.contains("hosts hakiri:connector@0.1.0"),
        "{e}"
    );
    let core = h.join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let e = fails(h, &["connector", "add", core.to_str().unwrap()]);
    assert!(
        e.contains("core WebAssembly module, not a component"),
        "{e}"
    );
    let text_file = h.join("notes.wasm");
    std::fs::write(&text_file, b"hello").unwrap();
    let e = fails(h, &["connector", "add", text_file.to_str().unwrap()]);
    assert!(e.contains("not WebAssembly"), "{e}");
    let e = fails(
        h,
        &[
            "connector",
            "add",
            wasm::guest("jsonfeed").to_str().unwrap(),
            "--allow-host",
            "http://x/",
        ],
    );
    assert!(e.contains("--allow-host `http://x/` is not a host"), "{e}");
    let e = fails(
        h,
        &[
            "connector",
            "add",
            wasm::guest("jsonfeed").to_str().unwrap(),
            "--name",
            "../etc",
        ],
    );
    assert!(e.contains("is not valid"), "{e}");
    assert!(
        !h.join("connectors").exists()
            || std::fs::read_dir(h.join("connectors")).unwrap().count() == 0,
        "nothing half-added"
    );
}
