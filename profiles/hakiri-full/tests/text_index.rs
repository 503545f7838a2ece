//! A dataset's persistent text index: created over text columns, searched
//! from the CLI and over MCP, rebuilt with every new version before it is
//! published, refused clearly for bad columns, dropped with its dataset.

use hakiri_testkit::mcp::Mcp;
use hakiri_testkit::{mint_token, run, Home};
use serde_json::Value;
use std::path::Path;

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-full");

fn ok(home: &Path, args: &[&str]) -> String {
    hakiri_testkit::run_ok(BIN, home, args)
}

fn fails(home: &Path, args: &[&str]) -> String {
    hakiri_testkit::run_err(BIN, home, args)
}

fn hits(home: &Path, dataset: &str, query: &str) -> Vec<Value> {
    let out = run(BIN, home, &["search", dataset, query, "--format", "json"]);
    serde_json::from_slice::<Value>(&out.stdout)
        .map(|v| v.as_array().cloned().unwrap_or_default())
        .unwrap_or_default()
}

fn hits_where(home: &Path, query: &str, predicate: &str) -> Vec<Value> {
    let out = run(
        BIN,
        home,
        &[
            "search", "books", query, "--where", predicate, "--format", "json",
        ],
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .map(|v| v.as_array().cloned().unwrap_or_default())
        .unwrap_or_default()
}

const V1: &str = "id,title,body,stars\n\
a1,Moby Dick,The whale and the sea and a captain's obsession,5\n\
a2,The Old Man and the Sea,An old fisherman and a great marlin,4\n\
a3,Dune,Sand worms and spice on a desert planet,5\n";

const V2: &str = "id,title,body,stars\n\
b1,Whale Songs,How humpback whales sing across oceans,3\n\
b2,Desert Solitaire,A season in the wilderness,4\n";

#[test]
fn a_text_index_follows_its_dataset() {
    let home = Home::new();
    let h = home.path();
    let v1 = h.join("v1.csv");
    std::fs::write(&v1, V1).unwrap();
    ok(h, &["ingest", v1.to_str().unwrap(), "--as", "books", "-q"]);

    // Bad specs are refused by name, and nothing is left behind.
    let e = fails(h, &["index", "create", "books", "--text", "title,summary"]);
    assert!(
        e.contains("no column `summary`") && e.contains("title"),
        "{e}"
    );
    let e = fails(h, &["index", "create", "books", "--text", "stars"]);
    assert!(
        e.contains("column `stars`") && e.contains("not text"),
        "{e}"
    );
    let e = fails(h, &["index", "create", "nope", "--text", "title"]);
    assert!(e.contains("no dataset `nope`"), "{e}");
    let e = fails(h, &["search", "books", "whale"]);
    assert!(e.contains("has no text index"), "{e}");

    let made = ok(
        h,
        &[
            "index",
            "create",
            "books",
            "--text",
            "title,body",
            "--id",
            "id",
        ],
    );
    assert!(made.contains("indexed 3 rows"), "{made}");
    let found = hits(h, "books", "whale");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["id"], "a1");
    assert!(
        found[0]["_snippet"]
            .as_str()
            .unwrap()
            .contains("<b>whale</b>"),
        "{found:?}"
    );
    assert!(found[0]["_score"].as_f64().unwrap() > 0.0);
    let sea = hits(h, "books", "sea");
    assert_eq!(sea.len(), 2, "{sea:?}");
    assert_eq!(hits(h, "books", "\"desert planet\"")[0]["id"], "a3");
    let e = fails(h, &["search", "books", "title:("]);
    assert!(e.contains("invalid query"), "{e}");
    let listed: Value = serde_json::from_str(&ok(h, &["index", "list", "--json"])).unwrap();
    assert_eq!(listed[0]["state"], "ready", "{listed}");
    let datasets: Value = serde_json::from_str(&ok(h, &["datasets", "--json"])).unwrap();
    assert_eq!(
        datasets[0]["text-index"]["text"],
        serde_json::json!(["title", "body"]),
        "{datasets}"
    );

    // A new version is indexed before it is published: never old rows' index.
    let v2 = h.join("v2.csv");
    std::fs::write(&v2, V2).unwrap();
    ok(h, &["ingest", v2.to_str().unwrap(), "--as", "books", "-q"]);
    let found = hits(h, "books", "whale OR whales");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["id"], "b1", "the index is the new version's");
    assert!(
        hits(h, "books", "marlin").is_empty(),
        "the old version's rows are gone"
    );
    // An append indexes old and new rows together.
    ok(
        h,
        &[
            "ingest",
            v1.to_str().unwrap(),
            "--as",
            "books",
            "--mode",
            "append",
            "-q",
        ],
    );
    assert_eq!(hits(h, "books", "whale OR whales").len(), 2);

    // A version that cannot be indexed is not published.
    let bad = h.join("bad.csv");
    std::fs::write(&bad, "id,headline\nz1,no body here\n").unwrap();
    let e = fails(h, &["ingest", bad.to_str().unwrap(), "--as", "books"]);
    assert!(
        e.contains("text index cannot be built") && e.contains("no column `title`"),
        "{e}"
    );
    assert_eq!(
        hits(h, "books", "whale OR whales").len(),
        2,
        "the previous version is still served"
    );

    // In SQL, hits join with everything else.
    let authors = h.join("authors.csv");
    std::fs::write(&authors, "id,author\na1,Melville\nb1,Songbird\nb2,Abbey\n").unwrap();
    ok(
        h,
        &["ingest", authors.to_str().unwrap(), "--as", "authors", "-q"],
    );
    let joined = ok(
        h,
        &[
            "sql",
            "select a.author, s.title, s.stars, round(s._score, 2) > 0 as scored \
             from text_search('books', 'whale OR whales', 5) s join authors a using (id) order by a.author",
            "--format",
            "csv",
        ],
    );
    assert_eq!(
        joined.trim(),
        "author,title,stars,scored\nMelville,Moby Dick,5,true\nSongbird,Whale Songs,3,true",
        "{joined}"
    );
    // --where filters the hits through DuckDB on the dataset's columns.
    let kept = hits_where(h, "whale OR whales", "stars > 3");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["title"], "Moby Dick", "{kept:?}");
    assert!(hits_where(h, "whale OR whales", "stars > 5").is_empty());
    let e = fails(h, &["search", "books", "whale", "--where", "nope > 1"]);
    assert!(e.contains("where: ") && e.contains("nope"), "{e}");
    let e = fails(
        h,
        &[
            "search", "books", "whale", "--where", "1=1) --", "--format", "json",
        ],
    );
    assert!(e.contains("may not hold"), "{e}");

    // A description set afterwards: a new version of hard links, index included.
    let before: Value = serde_json::from_str(&ok(h, &["describe", "books", "--json"])).unwrap();
    ok(
        h,
        &[
            "describe",
            "books",
            "--set-description",
            "Novels about the sea",
        ],
    );
    let described: Value = serde_json::from_str(&ok(h, &["describe", "books", "--json"])).unwrap();
    assert_eq!(
        described["description"], "Novels about the sea",
        "{described}"
    );
    assert_eq!(
        described["version"].as_u64(),
        before["version"].as_u64().map(|v| v + 1),
        "{described}"
    );
    assert_eq!(
        hits(h, "books", "whale OR whales").len(),
        2,
        "the new version keeps its index"
    );
    let e = fails(h, &["describe", "nope", "--set-description", "x"]);
    assert!(e.contains("no dataset `nope`"), "{e}");
    let e = fails(
        h,
        &[
            "describe",
            "books",
            "--set-description",
            &"long ".repeat(500),
        ],
    );
    assert!(e.contains("longer than 2000"), "{e}");
    let e = fails(
        h,
        &["sql", "select * from text_search('books', 'whale', 5000)"],
    );
    assert!(e.contains("limit must be between 1 and 1000"), "{e}");
    let e = fails(h, &["sql", "select * from text_search('nope', 'whale', 5)"]);
    assert!(e.contains("no dataset `nope`"), "{e}");

    // Agents search through MCP with a token for the dataset.
    let token = mint_token(BIN, h, &["--tool", "search.dataset", "--dataset", "books"]);
    let other = mint_token(BIN, h, &["--tool", "search.dataset", "--dataset", "other"]);
    let mut serve = hakiri_testkit::start_serve(BIN, h);
    let url = format!("http://{}/mcp", serve.addr("mcp"));
    let mcp = Mcp::open(&url, &token).expect("session");
    let (failed, result) = mcp.call(
        "search.dataset",
        r#"{"dataset":"books","query":"spice","limit":5}"#,
    );
    assert!(!failed, "{result}");
    assert_eq!(
        result["structuredContent"]["hits"][0]["id"], "a3",
        "{result}"
    );
    let (failed, result) = mcp.call(
        "search.dataset",
        r#"{"dataset":"books","query":"spice","limit":1000000}"#,
    );
    assert!(
        failed && result.to_string().contains("between 1 and 1000"),
        "{result}"
    );
    // What an agent learns before querying: a bounded sample of rows.
    let looker = mint_token(BIN, h, &["--tool", "datasets.sample", "--dataset", "books"]);
    let sampler = Mcp::open(&url, &looker).expect("session");
    let (failed, result) = sampler.call("datasets.sample", r#"{"name":"books","rows":2}"#);
    assert!(!failed, "{result}");
    let rows = &result["structuredContent"]["rows"];
    assert_eq!(rows.as_array().map(Vec::len), Some(2), "{result}");
    assert!(
        rows[0]["title"].is_string() && rows[0]["stars"].is_number(),
        "{result}"
    );
    let (failed, result) = sampler.call("datasets.sample", r#"{"name":"books","rows":100000}"#);
    assert!(
        failed && result.to_string().contains("between 1 and 100"),
        "{result}"
    );
    let (failed, result) = sampler.call("datasets.sample", r#"{"name":"hr"}"#);
    assert!(
        failed
            && result
                .to_string()
                .contains("token does not grant dataset `hr`"),
        "{result}"
    );
    // engine.query's table functions hold the caller to its datasets too.
    let querier = mint_token(BIN, h, &["--tool", "engine.query", "--dataset", "authors"]);
    let q = Mcp::open(&url, &querier).expect("session");
    let (failed, result) = q.call(
        "engine.query",
        r#"{"sql":"select * from text_search('books', 'whale', 5)"}"#,
    );
    assert!(
        failed
            && result
                .to_string()
                .contains("token does not grant dataset `books`"),
        "{result}"
    );
    // `where` over MCP runs through engine.query, so the token must grant it.
    let (failed, result) = mcp.call(
        "search.dataset",
        r#"{"dataset":"books","query":"whale OR whales","where":"stars > 3"}"#,
    );
    assert!(
        failed && result.to_string().contains("engine.query"),
        "{result}"
    );
    let filterer = mint_token(
        BIN,
        h,
        &[
            "--tool",
            "search.dataset",
            "--tool",
            "engine.query",
            "--dataset",
            "books",
        ],
    );
    let f = Mcp::open(&url, &filterer).expect("session");
    let (failed, result) = f.call(
        "search.dataset",
        r#"{"dataset":"books","query":"whale OR whales","where":"stars > 3"}"#,
    );
    assert!(!failed, "{result}");
    let found = result["structuredContent"]["hits"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(found.len(), 1, "{result}");
    assert_eq!(found[0]["title"], "Moby Dick", "{result}");
    let (failed, result) = f.call(
        "search.dataset",
        r#"{"dataset":"books","query":"whale","where":"stars > 3; select 1"}"#,
    );
    assert!(
        failed && result.to_string().contains("may not hold"),
        "{result}"
    );
    let (failed, result) = f.call(
        "search.dataset",
        r#"{"dataset":"books","query":"whale","where":"exists (select * from authors)"}"#,
    );
    assert!(
        failed && result.to_string().contains("authors"),
        "another dataset stays out of reach: {result}"
    );
    let denied = Mcp::open(&url, &other).expect("session");
    let (failed, result) = denied.call("search.dataset", r#"{"dataset":"books","query":"spice"}"#);
    assert!(
        failed
            && result
                .to_string()
                .contains("token does not grant dataset `books`"),
        "{result}"
    );
    serve.stop();

    // Dropped with its dataset; dropped on its own.
    ok(h, &["index", "drop", "books"]);
    let e = fails(h, &["search", "books", "whale"]);
    assert!(e.contains("has no text index"), "{e}");
    ok(h, &["index", "create", "books", "--text", "title,body"]);
    ok(h, &["drop", "books"]);
    let e = fails(h, &["search", "books", "whale"]);
    assert!(e.contains("no dataset `books`"), "{e}");
    ok(h, &["ingest", v1.to_str().unwrap(), "--as", "books", "-q"]);
    let e = fails(h, &["search", "books", "whale"]);
    assert!(
        e.contains("has no text index"),
        "a new dataset of the same name starts without one: {e}"
    );
}

/// SIGKILL while a new version's index is being built: the previous version
/// and its index stay served, and the next ingest works.
#[test]
fn kill_dash_nine_mid_index_build_keeps_the_previous_version() {
    let home = Home::new();
    let h = home.path();
    let small = h.join("small.csv");
    std::fs::write(&small, V1).unwrap();
    ok(
        h,
        &["ingest", small.to_str().unwrap(), "--as", "books", "-q"],
    );
    ok(
        h,
        &[
            "index",
            "create",
            "books",
            "--text",
            "title,body",
            "--id",
            "id",
        ],
    );
    // Big enough that the index build takes a while.
    let big = h.join("big.csv");
    let mut csv = String::from("id,title,body,stars\n");
    for i in 0..400_000 {
        csv.push_str(&format!(
            "c{i},Volume {i},words about ships and storms number {i} of many,{}\n",
            i % 5
        ));
    }
    std::fs::write(&big, csv).unwrap();
    let mut doomed = hakiri_testkit::command(BIN, h)
        .args(["ingest", big.to_str().unwrap(), "--as", "books", "-q"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let building = || {
        let Ok(dirs) = std::fs::read_dir(h.join("datasets/books")) else {
            return false;
        };
        dirs.flatten().any(|d| {
            let indexes = d.path().join("out/indexes");
            std::fs::read_dir(indexes)
                .map(|mut e| e.any(|x| x.is_ok()))
                .unwrap_or(false)
        })
    };
    let start = std::time::Instant::now();
    while !building() {
        assert!(
            doomed.try_wait().unwrap().is_none(),
            "the ingest finished before its index build was seen"
        );
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "no index build seen"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    doomed.kill().unwrap(); // SIGKILL
    doomed.wait().unwrap();
    assert_eq!(
        hits(h, "books", "whale")[0]["id"],
        "a1",
        "version 1 and its index are served"
    );
    let listed: Value = serde_json::from_str(&ok(h, &["index", "list", "--json"])).unwrap();
    assert_eq!(
        (listed[0]["version"].as_u64(), listed[0]["state"].as_str()),
        (Some(1), Some("ready")),
        "{listed}"
    );
    ok(
        h,
        &[
            "ingest",
            small.to_str().unwrap(),
            "--as",
            "books",
            "--mode",
            "append",
            "-q",
        ],
    );
    assert_eq!(
        hits(h, "books", "whale").len(),
        2,
        "the next ingest indexes both copies"
    );
}
