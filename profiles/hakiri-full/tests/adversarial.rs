//! The attack surface of hakiri-full's daemon, attacked the way a remote
//! agent would: real tokens over real MCP HTTP against the static binary.
//! Each row of `ATTACKS` is an attack and the refusal it must get; after all
//! of them the daemon still answers a legitimate call, the data is intact,
//! and nothing outside the allow-lists was read, fetched or written.

use hakiri_testkit::mcp::Mcp;
use hakiri_testkit::{mint_token, run, text, Home};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-full");

/// Who presents what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    NoToken,
    Garbage,
    WrongKey,
    Expired,
    Revoked,
    /// engine.query, datasets.*, connectors.preview, connector.*, wasm.call,
    /// search.text, search.dataset, search.vector, search.hybrid on `sales`
    /// (which has a text index, no vector index), embeddings.embed.
    Agent,
    /// The agent's token attenuated to dataset `hr` (which it never had).
    OtherDataset,
    /// A token for `search.text` only.
    OtherTool,
}

/// What must come back.
enum Refusal {
    /// HTTP 401 before any MCP session, with this in the body.
    Unauthorized(&'static str),
    /// The tool call fails (isError) with this in its text.
    ToolError(&'static str),
    /// The call succeeds but its result is cut to `[engine] max_rows`.
    Truncated,
    /// The HTTP request is refused with this status before reaching a tool.
    Status(u16),
}
use Refusal::*;

/// `{public}` is the one directory remote callers may read, `{secret}` one
/// they may not, `{tmp}` a directory outside the home that must stay empty,
/// `{url}` the allowed loopback server, `{url2}` an allowed URL on a loopback
/// address that is not allowed, `{hr}` the `hr` dataset's directory.
#[rustfmt::skip]
const ATTACKS: &[(&str, Who, &str, &str, Refusal)] = &[
    // Tokens: each refused before anything runs.
    ("no token",              Who::NoToken,  "engine.query", r#"{"sql":"select 1"}"#, Unauthorized("needs `Authorization: Bearer")),
    ("garbage token",         Who::Garbage,  "engine.query", r#"{"sql":"select 1"}"#, Unauthorized("not valid for this server")),
    ("token of another key",  Who::WrongKey, "engine.query", r#"{"sql":"select 1"}"#, Unauthorized("not valid for this server")),
    ("expired token",         Who::Expired,  "engine.query", r#"{"sql":"select 1"}"#, Unauthorized("has expired")),
    ("revoked token",         Who::Revoked,  "engine.query", r#"{"sql":"select 1"}"#, Unauthorized("has been revoked")),
    ("attenuated to hr",      Who::OtherDataset, "engine.query", r#"{"sql":"select * from sales"}"#, ToolError("token does not grant dataset `sales`")),
    ("attenuated, describe",  Who::OtherDataset, "datasets.describe", r#"{"name":"hr"}"#, ToolError("token does not grant dataset `hr`")),
    ("scheduler.status ungranted", Who::OtherTool, "scheduler.status", r#"{}"#, ToolError("token does not grant tool `scheduler.status`")),
    ("scheduler.status bad input", Who::Agent, "scheduler.status", r#"{"dataset":"/etc/passwd"}"#, ToolError("unknown field")),
    ("token for another tool", Who::OtherTool, "engine.query", r#"{"sql":"select 1"}"#, ToolError("token does not grant tool `engine.query`")),
    // SQL: the host's files, other datasets, writes, settings, extensions, runaway queries.
    ("read_text /etc/passwd", Who::Agent, "engine.query", r#"{"sql":"select * from read_text('/etc/passwd')"}"#, ToolError("not available to agents")),
    ("read_csv ~/.ssh",       Who::Agent, "engine.query", r#"{"sql":"select * from read_csv('~/.ssh/id_rsa')"}"#, ToolError("not available to agents")),
    ("glob /*",               Who::Agent, "engine.query", r#"{"sql":"select * from glob('/*')"}"#, ToolError("not available to agents")),
    ("ungranted dataset",     Who::Agent, "engine.query", r#"{"sql":"select * from hr"}"#, ToolError("token does not grant dataset `hr`")),
    ("its parquet files",     Who::Agent, "engine.query", r#"{"sql":"select * from read_parquet('{hr}/*.parquet')"}"#, ToolError("not available to agents")),
    ("COPY splice",           Who::Agent, "engine.query", r#"{"sql":"select 1) to '{tmp}/x' (format csv); copy (select 1"}"#, ToolError("syntax error")),
    ("EXPLAIN ANALYZE COPY",  Who::Agent, "engine.query", r#"{"sql":"explain analyze copy (select 42) to '{tmp}/x.csv'"}"#, ToolError("read-only: `COPY`")),
    ("ATTACH",                Who::Agent, "engine.query", r#"{"sql":"attach '{tmp}/x.db' as x"}"#, ToolError("read-only: `ATTACH`")),
    ("INSTALL httpfs",        Who::Agent, "engine.query", r#"{"sql":"install httpfs"}"#, ToolError("read-only: `INSTALL`")),
    ("SET external access",   Who::Agent, "engine.query", r#"{"sql":"set enable_external_access = true"}"#, ToolError("read-only: `SET`")),
    ("PRAGMA",                Who::Agent, "engine.query", r#"{"sql":"pragma version"}"#, ToolError("read-only: `PRAGMA`")),
    ("two statements",        Who::Agent, "engine.query", r#"{"sql":"select 1; select 2"}"#, ToolError("one statement at a time")),
    ("endless cross join",    Who::Agent, "engine.query", r#"{"sql":"select sum(a.range * b.range) from range(1000000000) a, range(1000000) b"}"#, ToolError("was interrupted")),
    ("10 M rows",             Who::Agent, "engine.query", r#"{"sql":"select * from range(10000000)"}"#, Truncated),
    // Connectors: the host's files and network.
    ("path outside allow_paths", Who::Agent, "connectors.preview", r#"{"source":"{secret}/s.csv"}"#, ToolError("not under a path remote callers may read")),
    (".. traversal",          Who::Agent, "connectors.preview", r#"{"source":"{public}/../secret/s.csv"}"#, ToolError("not under a path remote callers may read")),
    ("symlink pointing out",  Who::Agent, "connectors.preview", r#"{"source":"{public}/link.csv"}"#, ToolError("not under a path remote callers may read")),
    ("ingest a secret file",  Who::Agent, "datasets.ingest", r#"{"sources":["{secret}/s.csv"],"name":"sales"}"#, ToolError("not under a path remote callers may read")),
    ("stdin",                 Who::Agent, "connectors.preview", r#"{"source":"-"}"#, ToolError("CLI-only")),
    ("URL outside allow_urls", Who::Agent, "connectors.preview", r#"{"source":"{url}/private/x.csv"}"#, ToolError("allow_urls")),
    ("redirect out",          Who::Agent, "connectors.preview", r#"{"source":"{url}/ok/redirect"}"#, ToolError("redirect to")),
    ("loopback not allowed",  Who::Agent, "connectors.preview", r#"{"source":"{url2}/x.csv"}"#, ToolError("allow_addresses")),
    ("S3 outside read_prefixes", Who::Agent, "datasets.ingest", r#"{"sources":["s3://any-bucket/secret.csv"],"name":"sales"}"#, ToolError("[s3-sync] read_prefixes")),
    ("huge body",             Who::Agent, "datasets.ingest", r#"{"sources":["{url}/ok/huge.csv"],"name":"sales"}"#, ToolError("max_bytes")),
    ("spreadsheet zip bomb",  Who::Agent, "datasets.ingest", r#"{"sources":["{public}/bomb.xlsx"],"name":"sales"}"#, ToolError("expands to")),
    ("zip bomb lying about its size", Who::Agent, "datasets.ingest", r#"{"sources":["{public}/liar.xlsx"],"name":"sales"}"#, ToolError("although it declares 1000")),
    // WASM guests.
    ("memory bomb",           Who::Agent, "wasm.call", r#"{"module":"(module (memory 4000) (func (export \"f\")))","function":"f"}"#, ToolError("cannot instantiate")),
    ("infinite loop",         Who::Agent, "wasm.call", r#"{"module":"(module (func (export \"spin\") (loop (br 0))))","function":"spin"}"#, ToolError("out of")),
    ("deep recursion",        Who::Agent, "wasm.call", r#"{"module":"(module (func $f (export \"r\") (call $f)))","function":"r"}"#, ToolError("stack overflowed")),
    ("2 MB module",           Who::Agent, "wasm.call", r#"{"module":"(module) ;; {2mb}","function":"f"}"#, ToolError("max_module_bytes")),
    ("100 MB module",         Who::Agent, "wasm.call", r#"{"module":"(module) ;; {100mb}","function":"f"}"#, Status(413)),
    // Inputs beyond their caps.
    ("search limit 1e12",     Who::Agent, "search.text", r#"{"documents":["a"],"query":"a","limit":1000000000000}"#, ToolError("limit")),
    // Dataset search and samples: other datasets, paths, limits, bad queries.
    ("search ungranted",      Who::Agent, "search.dataset", r#"{"dataset":"hr","query":"ann"}"#, ToolError("token does not grant dataset `hr`")),
    ("search a path",         Who::Agent, "search.dataset", r#"{"dataset":"../../etc","query":"root"}"#, ToolError("token does not grant dataset `../../etc`")),
    ("search limit 1e12 (ds)", Who::Agent, "search.dataset", r#"{"dataset":"sales","query":"eu","limit":1000000000000}"#, ToolError("between 1 and 1000")),
    ("search bad query",      Who::Agent, "search.dataset", r#"{"dataset":"sales","query":"region:("}"#, ToolError("invalid query")),
    ("where ends statement",  Who::Agent, "search.dataset", r#"{"dataset":"sales","query":"eu","where":"1=1; copy sales to '/tmp/x'"}"#, ToolError("may not hold")),
    ("where reads a file",    Who::Agent, "search.dataset", r#"{"dataset":"sales","query":"eu","where":"exists (select * from read_text('/etc/passwd'))"}"#, ToolError("not available to agents")),
    ("search other tool",     Who::OtherTool, "search.dataset", r#"{"dataset":"sales","query":"eu"}"#, ToolError("token does not grant tool `search.dataset`")),
    ("search attenuated",     Who::OtherDataset, "search.dataset", r#"{"dataset":"hr","query":"ann"}"#, ToolError("token does not grant dataset `hr`")),
    ("vector ungranted",      Who::Agent, "search.vector", r#"{"dataset":"hr","vector":[1.0]}"#, ToolError("token does not grant dataset `hr`")),
    ("vector no index",       Who::Agent, "search.vector", r#"{"dataset":"sales","vector":[1.0,2.0]}"#, ToolError("has no vector index")),
    ("vector limit 1e12",     Who::Agent, "search.vector", r#"{"dataset":"sales","vector":[1.0],"limit":1000000000000}"#, ToolError("between 1 and 100")),
    ("vector both queries",   Who::Agent, "search.vector", r#"{"dataset":"sales","vector":[1.0],"query":"eu"}"#, ToolError("exactly one of")),
    ("hybrid ungranted",      Who::Agent, "search.hybrid", r#"{"dataset":"hr","query":"ann"}"#, ToolError("token does not grant dataset `hr`")),
    ("hybrid absurd k",       Who::Agent, "search.hybrid", r#"{"dataset":"sales","query":"eu","rrf_k":-5}"#, ToolError("rrf_k must be between")),
    ("embed nothing",         Who::Agent, "embeddings.embed", r#"{"texts":[]}"#, ToolError("give 1 to 256 texts")),
    ("embed a model path",    Who::Agent, "embeddings.embed", r#"{"texts":["x"],"model":"../../../etc"}"#, ToolError("is not a model name")),
    ("embed other tool",      Who::OtherTool, "embeddings.embed", r#"{"texts":["x"]}"#, ToolError("token does not grant tool `embeddings.embed`")),
    ("sample 1e12 rows",      Who::Agent, "datasets.sample", r#"{"name":"sales","rows":1000000000000}"#, ToolError("between 1 and 100")),
    ("sample ungranted",      Who::Agent, "datasets.sample", r#"{"name":"hr"}"#, ToolError("token does not grant dataset `hr`")),
    // WASM connectors: none installed here; a host file is not a source.
    ("inspect a host file",   Who::Agent, "connector.inspect", r#"{"source":"file:///etc/passwd"}"#, ToolError("no installed connector reads")),
    ("connector.list input",  Who::Agent, "connector.list", r#"{"path":"/etc"}"#, ToolError("unknown field")),
    ("connector.list other",  Who::OtherTool, "connector.list", r#"{}"#, ToolError("token does not grant tool `connector.list`")),
];

/// A loopback HTTP server that records every request line it gets.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

fn serve_http(ip: &str) -> Server {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let log = log.clone();
            std::thread::spawn(move || answer(stream, port, &log));
        }
    });
    Server { port, seen }
}

fn answer(mut stream: TcpStream, port: u16, log: &Mutex<Vec<String>>) {
    let mut line = String::new();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    log.lock().unwrap().push(path.clone());
    let _ = match path.as_str() {
        "/ok/data.csv" => stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: close\r\n\r\nregion\neu\nus\n"),
        "/ok/redirect" => stream.write_all(
            format!("HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{port}/private/x.csv\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
        ),
        "/ok/huge.csv" => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nregion,amount\n");
            let row = b"eu,1\n".repeat(10_000);
            (0..200).try_for_each(|_| stream.write_all(&row))
        }
        _ => stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    };
}

fn hakiri(home: &Path, args: &[&str]) -> String {
    let out = run(BIN, home, args);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// A workbook of ~130 KB whose one sheet expands to 140 MB: read whole, it
/// would hold the daemon's memory hostage.
fn zip_bomb(path: &Path) {
    write_zip_bomb(path, true);
}

/// The same bomb whose headers claim its sheet is 1,000 bytes: the
/// archive's word against what it inflates to.
fn lying_zip_bomb(path: &Path) {
    // Without zip64, each size is one field in the local and central headers.
    write_zip_bomb(path, false);
    let mut bytes = std::fs::read(path).unwrap();
    let end = bytes.len() - 22;
    assert_eq!(
        &bytes[end..end + 4],
        b"PK\x05\x06",
        "end of central directory"
    );
    let central = u32::from_le_bytes(bytes[end + 16..end + 20].try_into().unwrap()) as usize;
    assert_eq!(
        &bytes[central..central + 4],
        b"PK\x01\x02",
        "central header"
    );
    assert_eq!(&bytes[..4], b"PK\x03\x04", "local header");
    for size in [22, central + 24] {
        bytes[size..size + 4].copy_from_slice(&1000u32.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

fn write_zip_bomb(path: &Path, zip64: bool) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(zip64);
    zip.start_file("xl/worksheets/sheet1.xml", deflated)
        .unwrap();
    let zeros = vec![b'0'; 1 << 20];
    for _ in 0..140 {
        zip.write_all(&zeros).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn every_attack_is_refused_and_the_daemon_keeps_serving() {
    let home = Home::new();
    let outside = tempfile::tempdir().unwrap();
    let (public, secret, tmp) = (
        outside.path().join("public"),
        outside.path().join("secret"),
        outside.path().join("tmp"),
    );
    for dir in [&public, &secret, &tmp] {
        std::fs::create_dir(dir).unwrap();
    }
    std::fs::write(public.join("ok.csv"), "region\neu\n").unwrap();
    std::fs::write(secret.join("s.csv"), "password\nhunter2\n").unwrap();
    std::os::unix::fs::symlink(secret.join("s.csv"), public.join("link.csv")).unwrap();
    zip_bomb(&public.join("bomb.xlsx"));
    lying_zip_bomb(&public.join("liar.xlsx"));

    let server = serve_http("127.0.0.1");
    let unreachable = TcpListener::bind(("127.0.0.2", 0)).unwrap();
    unreachable.set_nonblocking(true).unwrap();
    let url = format!("http://127.0.0.1:{}", server.port);
    let url2 = format!(
        "http://127.0.0.2:{}",
        unreachable.local_addr().unwrap().port()
    );
    home.write_config(&format!(
        "[connectors]\nallow_paths = [{public:?}]\nallow_urls = [\"{url}/ok/\", \"{url2}/\"]\nallow_addresses = [\"127.0.0.1\"]\nmax_bytes = 100000\n\
         [engine]\nquery_timeout_ms = 2000\nmax_rows = 1000\n[wasm-host]\ntimeout_ms = 2000\n"
    ));

    // The operator's side: data, a root key, tokens.
    for (name, csv) in [
        ("sales", "region,amount\neu,3\nus,4\n"),
        ("hr", "name,salary\nann,100\n"),
    ] {
        let file = home.path().join(format!("{name}.csv"));
        std::fs::write(&file, csv).unwrap();
        hakiri(
            home.path(),
            &["ingest", file.to_str().unwrap(), "--as", name, "-q"],
        );
    }
    hakiri(
        home.path(),
        &["index", "create", "sales", "--text", "region"],
    );
    hakiri(home.path(), &["index", "create", "hr", "--text", "name"]);
    let listed: Value =
        serde_json::from_str(&hakiri(home.path(), &["datasets", "--json"])).unwrap();
    let hr_dir = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "hr")
        .unwrap()["location"]
        .as_str()
        .unwrap()
        .to_string();
    let agent_tools = [
        "--tool",
        "engine.query",
        "--tool",
        "datasets.*",
        "--tool",
        "connectors.preview",
        "--tool",
        "wasm.call",
        "--tool",
        "search.text",
        "--tool",
        "search.dataset",
        "--tool",
        "search.vector",
        "--tool",
        "search.hybrid",
        "--tool",
        "embeddings.embed",
        "--tool",
        "connector.*",
        "--tool",
        "scheduler.status",
    ];
    let mut agent_args = agent_tools.to_vec();
    agent_args.extend(["--dataset", "sales", "--ttl", "1h"]);
    let agent = mint_token(BIN, home.path(), &agent_args);
    let expiring = hakiri(home.path(), &["auth", "attenuate", &agent, "--ttl", "1s"])
        .trim()
        .to_string();
    let other_dataset = hakiri(
        home.path(),
        &["auth", "attenuate", &agent, "--dataset", "hr"],
    )
    .trim()
    .to_string();
    let other_tool = mint_token(BIN, home.path(), &["--tool", "search.text"]);
    let revoked = mint_token(BIN, home.path(), &["--tool", "*"]);
    let inspected: Value = serde_json::from_str(&hakiri(
        home.path(),
        &["auth", "inspect", &revoked, "--json"],
    ))
    .unwrap();
    hakiri(
        home.path(),
        &[
            "auth",
            "revoke",
            inspected["revocation_ids"][0].as_str().unwrap(),
        ],
    );
    let elsewhere = Home::new();
    let wrong_key = mint_token(BIN, elsewhere.path(), &["--tool", "*"]);
    std::thread::sleep(Duration::from_millis(2100)); // `expiring` is now past its TTL

    let mut serve = hakiri_testkit::start_serve(BIN, home.path());
    let mcp_url = format!("http://{}/mcp", serve.addr("mcp"));
    let token_of = |who: Who| match who {
        Who::NoToken => String::new(),
        Who::Garbage => "not-a-token".into(),
        Who::WrongKey => wrong_key.clone(),
        Who::Expired => expiring.clone(),
        Who::Revoked => revoked.clone(),
        Who::Agent => agent.clone(),
        Who::OtherDataset => other_dataset.clone(),
        Who::OtherTool => other_tool.clone(),
    };

    let fill = |args: &str| {
        args.replace("{public}", public.to_str().unwrap())
            .replace("{secret}", secret.to_str().unwrap())
            .replace("{tmp}", tmp.to_str().unwrap())
            .replace("{hr}", &hr_dir)
            .replace("{url2}", &url2)
            .replace("{url}", &url)
            .replace("{2mb}", &"x".repeat(2 << 20))
            .replace("{100mb}", &"x".repeat(100 << 20))
    };
    for (what, who, tool, args, refusal) in ATTACKS {
        let args = fill(args);
        let session = Mcp::open(&mcp_url, &token_of(*who));
        match (refusal, session) {
            (Unauthorized(expected), Err(resp)) => {
                assert_eq!(resp.status, 401, "{what}: {}", resp.body);
                assert!(
                    resp.body.contains(expected),
                    "{what}: expected `{expected}` in {}",
                    resp.body
                );
            }
            (Unauthorized(_), Ok(_)) => panic!("{what}: the session was admitted"),
            (_, Err(resp)) => panic!("{what}: session refused: {} {}", resp.status, resp.body),
            (ToolError(expected), Ok(mcp)) => {
                let (failed, result) = mcp.call(tool, &args);
                let shown = result.to_string();
                assert!(
                    failed,
                    "{what}: not refused: {}",
                    &shown[..shown.len().min(500)]
                );
                assert!(
                    shown.contains(expected),
                    "{what}: expected `{expected}` in {shown}"
                );
            }
            (Truncated, Ok(mcp)) => {
                let (failed, result) = mcp.call(tool, &args);
                assert!(!failed, "{what}: {result}");
                let out = &result["structuredContent"];
                assert_eq!(out["truncated"], true, "{what}");
                assert_eq!(out["rows"].as_array().unwrap().len(), 1000, "{what}");
            }
            (Status(code), Ok(mcp)) => {
                let resp = mcp.post(
                    "tools/call",
                    &format!(r#"{{"name":"{tool}","arguments":{args}}}"#),
                );
                // A server may close mid-upload after refusing: status 0 is a reset.
                assert!(
                    resp.status == *code || resp.status == 0,
                    "{what}: {} {}",
                    resp.status,
                    &resp.body[..resp.body.len().min(300)]
                );
            }
        }
    }

    // Still up: a granted call answers, over data the attacks left intact.
    let mcp = Mcp::open(&mcp_url, &agent).expect("the agent's session");
    let (failed, result) = mcp.call(
        "engine.query",
        r#"{"sql":"select sum(amount) s from sales"}"#,
    );
    assert!(!failed, "{result}");
    assert_eq!(result["structuredContent"]["rows"][0]["s"], 7, "{result}");
    let (failed, result) = mcp.call(
        "connectors.preview",
        &fill(r#"{"source":"{public}/ok.csv"}"#),
    );
    assert!(!failed, "an allowed path reads: {result}");
    let (failed, result) = mcp.call(
        "connectors.preview",
        &fill(r#"{"source":"{url}/ok/data.csv"}"#),
    );
    assert!(!failed, "an allowed URL reads: {result}");
    // The token shapes the tool list.
    let tools = mcp.tools();
    assert!(
        tools.contains(&"engine.query".to_string())
            && tools.contains(&"datasets.ingest".to_string()),
        "{tools:?}"
    );
    assert!(
        !tools.contains(&"vector.nearest".to_string())
            && !tools.contains(&"auth.verify".to_string()),
        "{tools:?}"
    );

    // Nothing outside the allow-lists was fetched, connected to or written.
    let seen = server.seen.lock().unwrap().clone();
    assert!(
        !seen.iter().any(|p| p.starts_with("/private")),
        "fetched {seen:?}"
    );
    assert!(
        unreachable.accept().is_err(),
        "a disallowed loopback address was connected to"
    );
    let written: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(written.is_empty(), "attacks wrote {written:?}");
    assert!(serve.stop().success());
}

/// `hakiri mcp --token` restricts the local user's own stdio session too.
#[test]
fn stdio_sessions_honour_a_token() {
    let home = Home::new();
    let token = mint_token(BIN, home.path(), &["--tool", "search.text"]);
    let out = hakiri_testkit::run_with(
        BIN,
        home.path(),
        &["call", "engine.query", r#"{"sql":"select 1"}"#],
        &[("HAKIRI_TOKEN", &token)],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("token does not grant tool `engine.query`"),
        "{}",
        text(&out.stderr)
    );
    let ok = hakiri_testkit::run_with(
        BIN,
        home.path(),
        &[
            "call",
            "search.text",
            r#"{"documents":["a b"],"query":"a"}"#,
        ],
        &[("HAKIRI_TOKEN", &token)],
        &[],
    );
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(
        !text(&ok.stderr).contains(&token) && !text(&out.stderr).contains(&token),
        "the token was echoed"
    );
}
