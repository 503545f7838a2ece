//! hakiri-coord end to end: a single-node Raft leader behind its HTTP API.

use hakiri_testkit::{http, text, Home};
use serde_json::Value;
use std::process::Output;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-coord");

fn hakiri(home: &std::path::Path, args: &[&str]) -> Output {
    hakiri_testkit::run(BIN, home, args)
}

#[test]
fn holds_only_coordinator_capabilities() {
    let home = Home::new();
    let out = hakiri(home.path(), &["capabilities", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names = hakiri_testkit::capability_names(&v);
    assert_eq!(names, ["auth", "coord-api", "raft"]);
    let out = hakiri(home.path(), &["capabilities", "--check"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("one-node leader elected"));
}

/// The kernel carries no data-path vocabulary: coord's own reports say
/// nothing of catalogs, connectors or datasets.
#[test]
fn reports_nothing_of_the_data_path() {
    let home = Home::new();
    let caps = text(&hakiri(home.path(), &["capabilities", "--json"]).stdout);
    let config = hakiri(home.path(), &["config", "check"]);
    assert!(config.status.success(), "{}", text(&config.stderr));
    let config = text(&config.stdout) + &text(&config.stderr);
    for report in [&caps, &config] {
        for word in ["catalog", "connector", "dataset"] {
            assert!(
                !report.to_lowercase().contains(word),
                "`{word}` in: {report}"
            );
        }
    }
    // A shared config file's [catalog] is noted as another profile's.
    home.write_config("[catalog]\nurl = \"sqlite://\"\n");
    let out = hakiri(home.path(), &["config", "check"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .contains("part of hakiri-core and hakiri-full; this binary is hakiri-coord"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn engine_commands_point_elsewhere() {
    let home = Home::new();
    let out = hakiri(home.path(), &["sql", "select 1"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).trim(),
        "hakiri: `sql` is part of hakiri-core and hakiri-full; this binary is hakiri-coord"
    );
}

#[test]
fn serve_elects_a_leader_and_reports_it_over_http() {
    let home = Home::new();
    let reader = hakiri_testkit::mint_token(BIN, home.path(), &["--tool", "raft.status"]);
    let other = hakiri_testkit::mint_token(BIN, home.path(), &["--tool", "raft.propose"]);
    let mut serve = hakiri_testkit::start_serve(BIN, home.path());
    let ready = &serve.ready_line;
    assert!(
        ready.starts_with("hakiri-coord ready: coord-api on http://127.0.0.1:"),
        "{ready}"
    );
    let url = format!("http://{}/v1/cluster", serve.addr("coord-api"));
    let as_bearer = |token: &str| {
        let header = format!("Bearer {token}");
        http::request(
            "GET",
            &url,
            &[("Authorization", &header)],
            b"",
            Duration::from_secs(30),
        )
        .unwrap()
    };
    assert_eq!(http::get(&url).status, 401, "no token, no cluster state");
    assert_eq!(as_bearer("garbage").status, 401);
    let wrong_right = as_bearer(&other);
    assert_eq!(wrong_right.status, 403, "{}", wrong_right.body);
    assert!(
        wrong_right
            .body
            .contains("does not grant tool `raft.status`"),
        "{}",
        wrong_right.body
    );
    let resp = as_bearer(&reader);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let body: Value = resp.json();
    assert_eq!(body["state"], "leader");
    assert_eq!(body["leader"], 1);
    assert!(serve.stop().success());
}
