//! hakiri-full daemons as members of a coordinator cluster: registered with
//! what they are, listed up while they heartbeat, down once killed, gone
//! after a clean stop; unreachable coordinators never stop a daemon.

use hakiri_testkit::coord::{self, Coordinator};
use hakiri_testkit::{http, start_serve, Home};
use serde_json::Value;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-full");

fn member_home(nodes: &[Coordinator], name: &str) -> Home {
    let home = Home::new();
    let apis: Vec<String> = nodes.iter().map(Coordinator::api_addr).collect();
    home.write_config(&format!(
        "[cluster]\ncoordinators = {apis:?}\nname = {name:?}\nadvertise = \"http://{name}.example:8080\"\nheartbeat_ms = 200\ndown_after_ms = 1500\n"
    ));
    home
}

fn members(node: &Coordinator) -> Vec<Value> {
    let r = http::get(&format!("{}/v1/members", node.api_url()));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json().as_array().cloned().unwrap_or_default()
}

/// Waits until `pred` holds of the listing.
fn until(node: &Coordinator, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = members(node);
        if pred(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "never {what}: {now:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn health<'a>(list: &'a [Value], name: &str) -> Option<&'a str> {
    list.iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["health"].as_str())
}

#[test]
fn daemons_register_heartbeat_and_are_marked_down_when_they_stop() {
    let nodes = coord::cluster(&coord::binary(), 3);
    let (a, b) = (
        member_home(&nodes, "daemon-a"),
        member_home(&nodes, "daemon-b"),
    );
    let mut serve_a = start_serve(BIN, a.path());
    let mut serve_b = start_serve(BIN, b.path());
    let listed = until(&nodes[2], "both up", |l| {
        health(l, "daemon-a") == Some("up") && health(l, "daemon-b") == Some("up")
    });
    let a_entry = listed.iter().find(|m| m["name"] == "daemon-a").unwrap();
    assert_eq!(a_entry["profile"], "hakiri-full", "{a_entry}");
    assert_eq!(
        a_entry["address"], "http://daemon-a.example:8080",
        "{a_entry}"
    );
    let caps: Vec<&str> = a_entry["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        caps.contains(&"mcp") && caps.contains(&"coord-client"),
        "{caps:?}"
    );

    // A crash: its heartbeats stop, and it is listed down, not forgotten.
    serve_a.child.kill().unwrap();
    serve_a.child.wait().unwrap();
    until(&nodes[0], "daemon-a down", |l| {
        health(l, "daemon-a") == Some("down") && health(l, "daemon-b") == Some("up")
    });
    // A clean stop leaves the cluster.
    assert!(serve_b.stop().success());
    until(&nodes[1], "daemon-b gone", |l| {
        health(l, "daemon-b").is_none()
    });
}

#[test]
fn unreachable_coordinators_do_not_stop_a_daemon() {
    let home = Home::new();
    home.write_config("[cluster]\ncoordinators = [\"127.0.0.1:9\"]\nheartbeat_ms = 200\n");
    let mut serve = start_serve(BIN, home.path());
    let mcp = format!("http://{}/health", serve.addr("mcp"));
    let _ = http::request("GET", &mcp, &[], b"", Duration::from_secs(5)).expect("still serving");
    assert!(serve.stop().success());
}
