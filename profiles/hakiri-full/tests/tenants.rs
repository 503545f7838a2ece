//! Tenants apart on one daemon: a token sees and touches only what it
//! grants on every path: the CLI's commands, `tools`, SQL that would map the
//! host or read another query's spill files, and the sources the catalog
//! shows. Against the static binary, with real tokens.

use hakiri_testkit::mcp::Mcp;
use hakiri_testkit::{mint_token, run, run_with, start_serve, text, Home};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Output;

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-full");

fn hakiri(home: &Path, args: &[&str]) -> String {
    let out = run(BIN, home, args);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// `args` run under the token in `token_file`.
fn as_token(home: &Path, token_file: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--token-file", token_file.to_str().unwrap()];
    all.extend_from_slice(args);
    run_with(BIN, home, &all, &[], &[])
}

/// A home with datasets `sales` and `secret`, and `ro.tok` (read-only on
/// `sales`) and `none.tok` (a token for `search.text` only).
fn two_datasets() -> (Home, std::path::PathBuf, std::path::PathBuf) {
    let home = Home::new();
    for (name, csv) in [
        ("sales", "region,amount\neu,3\nus,4\n"),
        ("secret", "pw\nhunter2\n"),
    ] {
        let file = home.path().join(format!("{name}.csv"));
        std::fs::write(&file, csv).unwrap();
        hakiri(
            home.path(),
            &["ingest", file.to_str().unwrap(), "--as", name, "-q"],
        );
    }
    let ro = mint_token(
        BIN,
        home.path(),
        &[
            "--tool",
            "datasets.*",
            "--tool",
            "engine.query",
            "--dataset",
            "sales",
            "--read-only",
        ],
    );
    let none = mint_token(BIN, home.path(), &["--tool", "search.text"]);
    let (ro_file, none_file) = (home.path().join("ro.tok"), home.path().join("none.tok"));
    std::fs::write(&ro_file, ro).unwrap();
    std::fs::write(&none_file, none).unwrap();
    (home, ro_file, none_file)
}

const DENIED_TOOL: &str = "does not grant tool";
const OPERATOR: &str = "is an operator's command on this machine";

/// Every command of the binary, with a token that grants none of what it
/// does: each is refused before it runs. (`mcp` serves a session whose
/// every tool call is checked: see `stdio_mcp_needs_a_token_or_trust_local`.)
#[rustfmt::skip]
const EVERY_COMMAND: &[(&[&str], &str)] = &[
    (&["ingest", "{csv}", "--as", "pw"], DENIED_TOOL),
    (&["datasets"], DENIED_TOOL),
    (&["describe", "secret"], DENIED_TOOL),
    (&["drop", "secret"], DENIED_TOOL),
    (&["sql", "select * from secret"], DENIED_TOOL),
    (&["search", "secret", "hunter2"], DENIED_TOOL),
    (&["embed", "text", "hi"], DENIED_TOOL),
    (&["call", "engine.query", r#"{"sql":"select 1"}"#], DENIED_TOOL),
    (&["gc"], OPERATOR),
    (&["index", "list"], OPERATOR),
    (&["embed", "init"], OPERATOR),
    (&["auth", "token", "--tool", "*"], OPERATOR),
    (&["catalog", "init", "dynamodb://t"], OPERATOR),
    (&["lambda"], OPERATOR),
    (&["push"], OPERATOR),
    (&["pull"], OPERATOR),
    (&["refresh", "--list"], OPERATOR),
    (&["connector", "list"], OPERATOR),
    (&["serve"], OPERATOR),
];

/// What every command's output may be without a right: informational
/// commands that touch no data, and `mcp` (see above).
const NOT_DATA: [&str; 6] = ["capabilities", "version", "tools", "config", "help", "mcp"];

#[test]
fn every_cli_command_refuses_a_token_without_the_right() {
    let (home, ro, none) = two_datasets();
    let csv = home.path().join("sales.csv");
    let csv = csv.to_str().unwrap();

    // The table covers every command this binary has.
    let help = hakiri(home.path(), &["--help"]);
    let listed: BTreeSet<&str> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let covered: BTreeSet<&str> = EVERY_COMMAND.iter().map(|(args, _)| args[0]).collect();
    for command in &listed {
        assert!(
            covered.contains(command) || NOT_DATA.contains(command),
            "`{command}` has no row in EVERY_COMMAND"
        );
    }

    for (args, says) in EVERY_COMMAND {
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "{csv}" { csv } else { a })
            .collect();
        let out = as_token(home.path(), &none, &args);
        let err = text(&out.stderr);
        assert!(
            !out.status.success(),
            "{args:?} ran under the token: {}",
            text(&out.stdout)
        );
        assert!(err.contains(says), "{args:?}: expected `{says}` in {err}");
    }

    // I8: a read-only token for `sales` reads `sales` and nothing else.
    #[rustfmt::skip]
    let refused: &[(&[&str], &str)] = &[
        (&["describe", "secret"], "token does not grant dataset `secret`"),
        (&["ingest", csv, "--as", "pw"], "token does not grant dataset `pw`"),
        (&["ingest", csv, "--as", "sales"], "writing dataset `sales` (read-only)"),
        (&["drop", "secret"], "token does not grant dataset `secret`"),
        (&["drop", "sales"], "writing dataset `sales` (read-only)"),
        (&["describe", "sales", "--set-description", "x"], "writing dataset `sales` (read-only)"),
        (&["sql", "select * from secret"], "token does not grant dataset `secret`"),
        (&["call", "datasets.drop", r#"{"name":"sales"}"#], "(read-only)"),
    ];
    for (args, says) in refused {
        let out = as_token(home.path(), &ro, args);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} ran: {}", text(&out.stdout));
        assert!(err.contains(says), "{args:?}: expected `{says}` in {err}");
    }
    let out = as_token(home.path(), &ro, &["datasets", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = shown
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(names, ["sales"]);
    let out = as_token(home.path(), &ro, &["describe", "sales"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // I9: the tool list is what the token can call: a read-only token is
    // not offered the tools that only write.
    let out = as_token(home.path(), &ro, &["tools"]);
    let tools = text(&out.stdout);
    assert!(
        tools.contains("datasets.list") && tools.contains("engine.query"),
        "{tools}"
    );
    assert!(
        !tools.contains("datasets.drop") && !tools.contains("datasets.ingest"),
        "{tools}"
    );
    assert!(!tools.contains("auth.verify"), "{tools}");

    // A token on the command line is visible to `ps`: said, not refused.
    let token = std::fs::read_to_string(&ro).unwrap();
    let out = run(BIN, home.path(), &["--token", token.trim(), "datasets"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("use --token-file"),
        "{}",
        text(&out.stderr)
    );

    // Nothing was changed: `secret` is whole and `pw` never appeared.
    let count = hakiri(
        home.path(),
        &["sql", "--format", "csv", "select count(*) n from secret"],
    );
    assert_eq!(count, "n\n1\n");
    assert!(!hakiri(home.path(), &["datasets"]).contains("pw "));
}

#[test]
fn tools_list_over_mcp_shows_only_what_a_read_only_token_can_call() {
    let (home, ro, _) = two_datasets();
    let mut serve = start_serve(BIN, home.path());
    let url = format!("http://{}/mcp", serve.addr("mcp"));
    let token = std::fs::read_to_string(&ro).unwrap();
    let mcp = Mcp::open(&url, token.trim()).expect("a session");
    let tools = mcp.tools();
    assert!(tools.contains(&"datasets.list".to_string()), "{tools:?}");
    assert!(
        !tools.contains(&"datasets.drop".to_string())
            && !tools.contains(&"datasets.ingest".to_string()),
        "{tools:?}"
    );
    assert!(serve.stop().success());
}

#[test]
fn stdio_mcp_needs_a_token_or_trust_local() {
    let home = Home::new();
    let out = run(BIN, home.path(), &["mcp"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("needs a token") && err.contains("--trust-local"),
        "{err}"
    );
    // Trusted, it serves (and ends when its client, here no one, leaves).
    let out = run(BIN, home.path(), &["mcp", "--trust-local"]);
    assert!(
        !text(&out.stderr).contains("needs a token"),
        "{}",
        text(&out.stderr)
    );
}

/// SQL a token caller sends may name the datasets' views, nothing that
/// maps the host (I2) or reads another query's spill files (I1).
#[rustfmt::skip]
const HOST_MAPS: &[&str] = &[
    "select value from duckdb_settings()",
    "select current_setting('temp_directory')",
    "select * from read_blob('{spill}/*/*')",
    "select * from glob('{spill}/**')",
    "select * from duckdb_temporary_files()",
    "select sql from duckdb_views()",
    "select view_definition from information_schema.views",
    "select sql from sqlite_master",
    "select * from pragma_database_list",
    "select * from query('select 42')",
    "select * from read_parquet('{home}/datasets/secret/*/*.parquet')",
    "with x as (select current_setting('allowed_directories') d) select * from x",
];

#[test]
fn token_queries_neither_map_the_host_nor_reach_another_querys_spill() {
    let (home, ro, _) = two_datasets();
    // A small memory limit, so the concurrent query below spills.
    home.write_config("[engine]\nmemory_limit = \"64MB\"\nthreads = 1\n");
    let other = mint_token(
        BIN,
        home.path(),
        &["--tool", "engine.query", "--dataset", "secret"],
    );
    let mut serve = start_serve(BIN, home.path());
    let url = format!("http://{}/mcp", serve.addr("mcp"));
    let token = std::fs::read_to_string(&ro).unwrap();
    let spill = home.path().join("tmp/duckdb");

    // Tenant B sorts more than its memory while tenant A probes.
    let b_url = url.clone();
    let sorting = std::thread::spawn(move || {
        let mcp = Mcp::open(&b_url, &other).expect("B's session");
        mcp.call(
            "engine.query",
            r#"{"sql":"select count(*) n from (select md5(range::varchar) h from range(4000000) order by h) join secret on true"}"#,
        )
    });
    let mcp = Mcp::open(&url, token.trim()).expect("A's session");
    let mut seen_private = false;
    while !sorting.is_finished() {
        for entry in std::fs::read_dir(&spill).into_iter().flatten().flatten() {
            let mode =
                std::os::unix::fs::PermissionsExt::mode(&entry.metadata().unwrap().permissions());
            assert_eq!(mode & 0o777, 0o700, "{:?} is private", entry.path());
            seen_private = true;
        }
        for sql in HOST_MAPS {
            let sql = sql
                .replace("{spill}", spill.to_str().unwrap())
                .replace("{home}", home.path().to_str().unwrap());
            let (failed, result) = mcp.call(
                "engine.query",
                &serde_json::json!({ "sql": sql }).to_string(),
            );
            let shown = result.to_string();
            assert!(failed, "{sql}: answered {shown}");
            assert!(
                shown.contains("is not available to agents and tokens"),
                "{sql}: {shown}"
            );
            assert!(
                !shown.contains(home.path().to_str().unwrap()),
                "{sql} revealed the home: {shown}"
            );
        }
    }
    let (failed, result) = sorting.join().unwrap();
    assert!(!failed, "B's spilling query: {result}");
    assert_eq!(
        result["structuredContent"]["rows"][0]["n"], 4_000_000,
        "{result}"
    );
    assert!(
        seen_private,
        "no query directory was seen under {}",
        spill.display()
    );
    // Every query's directory went with it.
    let left: Vec<_> = std::fs::read_dir(&spill)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // A's own data still answers; the local user keeps DuckDB's settings.
    let (failed, result) = mcp.call(
        "engine.query",
        r#"{"sql":"select sum(amount) s from sales"}"#,
    );
    assert!(!failed, "{result}");
    assert!(serve.stop().success());
    let threads = hakiri(
        home.path(),
        &[
            "sql",
            "--format",
            "csv",
            "select current_setting('threads') t",
        ],
    );
    assert_eq!(threads, "t\n1\n");
    let out = as_token(
        home.path(),
        &ro,
        &["sql", "select value from duckdb_settings()"],
    );
    assert!(
        text(&out.stderr).contains("is not available to agents and tokens"),
        "{}",
        text(&out.stderr)
    );
}

/// A loopback server answering every GET with a two-row CSV.
fn csv_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut line = String::new();
            let _ = BufReader::new(stream.try_clone().unwrap()).read_line(&mut line);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\nregion\neu\nus\n",
            );
        }
    });
    port
}

/// I6: credentials in a source URL stay with the operator.
#[test]
fn credentials_in_sources_never_reach_the_catalog() {
    let home = Home::new();
    let port = csv_server();
    let source = format!("http://alice:s3cr3t@127.0.0.1:{port}/data.csv?api_key=KEY123&day=2");
    hakiri(home.path(), &["ingest", &source, "--as", "feed", "-q"]);
    for shown in [
        hakiri(home.path(), &["datasets", "--json"]),
        hakiri(home.path(), &["describe", "feed", "--json"]),
    ] {
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("KEY123"),
            "{shown}"
        );
        assert!(
            shown.contains("api_key=***") && shown.contains("day=2"),
            "{shown}"
        );
    }
}
