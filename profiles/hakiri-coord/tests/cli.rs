//! hakiri-coord end to end: a single-node Raft leader behind its HTTP API.

use hakiri_testkit::text;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-coord");

fn hakiri(home: &std::path::Path, args: &[&str]) -> Output {
    hakiri_testkit::run(BIN, home, args)
}

#[test]
fn holds_only_coordinator_capabilities() {
    let home = tempfile::tempdir().unwrap();
    let out = hakiri(home.path(), &["capabilities", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names = hakiri_testkit::capability_names(&v);
    assert_eq!(names, ["auth", "coord-api", "raft"]);
    let out = hakiri(home.path(), &["capabilities", "--check"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("single-node leader elected"));
}

#[test]
fn engine_commands_point_elsewhere() {
    let home = tempfile::tempdir().unwrap();
    let out = hakiri(home.path(), &["sql", "select 1"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).trim(),
        "hakiri: `sql` is part of hakiri-core and hakiri-full; this binary is hakiri-coord"
    );
}

#[test]
fn serve_elects_a_leader_and_reports_it_over_http() {
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .env("HAKIRI_HOME", home.path())
        .env("HAKIRI_COORD_API__LISTEN", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ready = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    assert!(
        ready.starts_with("hakiri-coord ready: coord-api on http://127.0.0.1:"),
        "{ready}"
    );
    let addr = ready
        .split("http://")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .trim()
        .to_string();
    let mut s = TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "GET /v1/cluster HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let body: Value = serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["state"], "leader");
    assert_eq!(body["leader"], 1);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}
