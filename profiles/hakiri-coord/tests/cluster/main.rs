//! hakiri-coord as a cluster: three (then four) real processes on loopback,
//! killed, restarted, joined, removed and damaged, with every acknowledged
//! write checked afterwards and the register histories checked for
//! linearizability.

mod linearizable;
mod partition;

use hakiri_testkit::coord::{self, Coordinator, ELECTION_MAX_MS, SECRET};
use hakiri_testkit::{http, text};
use linearizable::{linearizable, Call, Op};
use serde_json::{json, Value};
use std::collections::BTreeMap;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-coord");

type Node = Coordinator;

fn cluster(n: u64) -> Vec<Node> {
    coord::cluster(std::path::Path::new(BIN), n)
}

fn call(method: &str, url: &str, body: &Value) -> std::io::Result<http::Response> {
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    http::request(
        method,
        url,
        &[("Content-Type", "application/json")],
        &body,
        Duration::from_secs(10),
    )
}

fn put(api: &str, key: &str, body: Value) -> http::Response {
    call("PUT", &format!("{api}/v1/kv/{key}"), &body).unwrap()
}

fn get(api: &str, key: &str) -> http::Response {
    call("GET", &format!("{api}/v1/kv/{key}"), &Value::Null).unwrap()
}

fn leader(nodes: &[Node], not: Option<u64>, within: Duration) -> u64 {
    coord::leader(nodes, not, within)
}

/// Every key under `prefix`, paging through `kv.list`.
fn all_keys(api: &str, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut after = String::new();
    loop {
        let url = format!("{api}/v1/kv?prefix={prefix}&limit=1000{after}");
        let page = call("GET", &url, &Value::Null).unwrap();
        assert_eq!(page.status, 200, "{}", page.body);
        let kvs = page.json()["kvs"].as_array().unwrap().clone();
        if kvs.is_empty() {
            return keys;
        }
        for kv in &kvs {
            keys.push(kv["key"].as_str().unwrap().to_string());
        }
        after = format!("&after={}", keys.last().unwrap());
    }
}

#[test]
fn three_nodes_replicate_forward_and_refuse_strangers() {
    let nodes = cluster(3);
    let l = leader(&nodes, None, Duration::from_secs(10));
    let follower = nodes.iter().find(|n| n.id != l).unwrap();
    let other = nodes
        .iter()
        .find(|n| n.id != l && n.id != follower.id)
        .unwrap();

    // A write to a follower is forwarded; a read on another follower sees it.
    let w = put(
        &follower.api_url(),
        "cfg/a",
        json!({ "value": "1", "expect_version": 0 }),
    );
    assert_eq!(w.status, 200, "{}", w.body);
    let r = get(&other.api_url(), "cfg/a");
    assert_eq!(
        (r.status, r.json()["kv"]["value"].clone()),
        (200, json!("1")),
        "{}",
        r.body
    );
    // A lost compare-and-swap is a 409 that says why, and changes nothing.
    let lost = put(
        &other.api_url(),
        "cfg/a",
        json!({ "value": "2", "expect_version": 0 }),
    );
    assert_eq!(lost.status, 409, "{}", lost.body);
    assert!(
        lost.json()["reason"]
            .as_str()
            .unwrap()
            .contains("at version 1, not 0"),
        "{}",
        lost.body
    );
    assert_eq!(get(&follower.api_url(), "cfg/missing").status, 404);
    // Malformed input: named, 400.
    let bad = call(
        "PUT",
        &format!("{}/v1/kv/cfg/b", other.api_url()),
        &json!("just a string"),
    )
    .unwrap();
    assert_eq!(bad.status, 400, "{}", bad.body);
    let bad = put(
        &other.api_url(),
        "cfg/b",
        json!({ "value": "x", "expect": 1 }),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("unknown field `expect`"), "{}", bad.body);

    // The leader reports three voters and a lag per follower.
    let status = nodes.iter().find(|n| n.id == l).unwrap().status().unwrap();
    let members = status["members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{status}");
    assert!(members.iter().all(|m| m["voter"] == true), "{status}");
    assert_eq!(
        status["replication"].as_array().unwrap().len(),
        2,
        "{status}"
    );
    // `hakiri cluster status` shows the same through the API.
    let out = hakiri_testkit::run(
        BIN,
        follower.home.path(),
        &["cluster", "status", "--endpoint", &follower.api_url()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["leader"], l);

    // The peer port refuses a stranger: no secret, a wrong one, another cluster.
    let vote = format!("{}/raft/vote", follower.peer_url());
    let body = json!({ "vote": { "leader_id": { "term": 99, "node_id": 9 }, "committed": false }, "last_log_id": null }).to_string();
    let as_peer = |headers: &[(&str, &str)]| http::post_json(&vote, headers, &body);
    let none = as_peer(&[("x-hakiri-cluster", "hakiri")]);
    assert_eq!(none.status, 401, "{}", none.body);
    let wrong = as_peer(&[
        ("x-hakiri-cluster", "hakiri"),
        ("Authorization", "Bearer guess"),
    ]);
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let bearer = format!("Bearer {SECRET}");
    let elsewhere = as_peer(&[("x-hakiri-cluster", "other"), ("Authorization", &bearer)]);
    assert_eq!(elsewhere.status, 409, "{}", elsewhere.body);
    assert!(
        elsewhere.body.contains("belongs to cluster `hakiri`"),
        "{}",
        elsewhere.body
    );
    // ...and nobody's term moved.
    assert_eq!(leader(&nodes, None, Duration::from_secs(5)), l);

    // The API describes itself.
    let doc = http::get(&format!("{}/openapi.json", follower.api_url())).json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(
        doc["paths"]["/v1/kv/{key}"]["put"]["requestBody"].is_object(),
        "{doc}"
    );
}

/// One client's recorded operations.
#[derive(Default)]
struct History {
    registers: BTreeMap<String, Vec<Op>>,
    acknowledged: Vec<String>,
}

/// Clients writing and reading through random live nodes until `stop`.
fn load(
    apis: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    clients: usize,
) -> Vec<std::thread::JoinHandle<History>> {
    (0..clients)
        .map(|c| {
            let apis = apis.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut h = History::default();
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let api = {
                        let apis = apis.lock().unwrap();
                        apis[(seq as usize + c) % apis.len()].clone()
                    };
                    let register = format!("r{}", seq % 3);
                    let invoked = Instant::now();
                    match seq % 3 {
                        0 => {
                            let value = format!("c{c}-{seq}");
                            let done = call(
                                "PUT",
                                &format!("{api}/v1/kv/{register}"),
                                &json!({ "value": value }),
                            );
                            let returned =
                                matches!(&done, Ok(r) if r.status == 200).then(Instant::now);
                            // Refused outright (a dead node): never sent, never applied.
                            if done
                                .as_ref()
                                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
                            {
                                continue;
                            }
                            h.registers.entry(register).or_default().push(Op {
                                call: Call::Write(value),
                                invoked,
                                returned,
                            });
                        }
                        1 => {
                            if let Ok(r) =
                                call("GET", &format!("{api}/v1/kv/{register}"), &Value::Null)
                            {
                                let value = match r.status {
                                    200 => {
                                        Some(r.json()["kv"]["value"].as_str().unwrap().to_string())
                                    }
                                    404 => None,
                                    _ => continue,
                                };
                                let op = Op {
                                    call: Call::Read(value),
                                    invoked,
                                    returned: Some(Instant::now()),
                                };
                                h.registers.entry(register).or_default().push(op);
                            }
                        }
                        _ => {
                            let key = format!("acked/c{c}-{seq}");
                            if let Ok(r) = call(
                                "PUT",
                                &format!("{api}/v1/kv/{key}"),
                                &json!({ "value": "v" }),
                            ) {
                                if r.status == 200 {
                                    h.acknowledged.push(key);
                                }
                            }
                        }
                    }
                }
                h
            })
        })
        .collect()
}

fn finish(stop: &AtomicBool, clients: Vec<std::thread::JoinHandle<History>>) -> History {
    stop.store(true, Ordering::Relaxed);
    let mut all = History::default();
    for c in clients {
        let h = c.join().unwrap();
        for (k, ops) in h.registers {
            all.registers.entry(k).or_default().extend(ops);
        }
        all.acknowledged.extend(h.acknowledged);
    }
    all
}

fn check_history(h: &History, api: &str) {
    assert!(
        h.acknowledged.len() > 20,
        "too few acknowledged writes to mean anything: {}",
        h.acknowledged.len()
    );
    let ops: usize = h.registers.values().map(Vec::len).sum();
    let unanswered = h
        .registers
        .values()
        .flatten()
        .filter(|o| o.returned.is_none())
        .count();
    eprintln!(
        "{} acknowledged writes; {ops} register operations ({unanswered} unanswered)",
        h.acknowledged.len()
    );
    let present: std::collections::HashSet<String> = all_keys(api, "acked/").into_iter().collect();
    let lost: Vec<&String> = h
        .acknowledged
        .iter()
        .filter(|k| !present.contains(*k))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost: {lost:?}",
        lost.len()
    );
    for (register, ops) in &h.registers {
        assert!(
            linearizable(ops),
            "the history of {register} is not linearizable: {ops:#?}"
        );
    }
}

#[test]
fn killing_the_leader_under_load_loses_no_acknowledged_write() {
    let mut nodes = cluster(3);
    let apis = Arc::new(Mutex::new(
        nodes.iter().map(Node::api_url).collect::<Vec<_>>(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(apis.clone(), stop.clone(), 4);
    std::thread::sleep(Duration::from_secs(2));

    let old = leader(&nodes, None, Duration::from_secs(10));
    let killed = nodes.iter().position(|n| n.id == old).unwrap();
    nodes[killed].kill9();
    let t0 = Instant::now();
    apis.lock()
        .unwrap()
        .retain(|a| *a != nodes[killed].api_url());
    let new = leader(&nodes, Some(old), Duration::from_secs(10));
    let failover = t0.elapsed();
    eprintln!("leader {old} killed; node {new} leads after {failover:?}");
    // A follower waits out the leader's lease (election_timeout_max) and then
    // its own election timeout: at most 2x the maximum, plus scheduling on a
    // loaded machine (the benchmark measures failover unloaded).
    assert!(
        failover < Duration::from_millis(2 * ELECTION_MAX_MS) + Duration::from_secs(2),
        "a new leader took {failover:?}"
    );
    std::thread::sleep(Duration::from_secs(2));

    // The killed node comes back and catches up while the load goes on.
    nodes[killed].start(None);
    apis.lock().unwrap().push(nodes[killed].api_url());
    std::thread::sleep(Duration::from_secs(2));
    let history = finish(&stop, clients);
    let leader_now = leader(&nodes, None, Duration::from_secs(10));
    let lead = nodes
        .iter()
        .find(|n| n.id == leader_now)
        .unwrap()
        .status()
        .unwrap();
    let target = lead["applied_index"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = nodes[killed].status().expect("the restarted node answers");
        if s["applied_index"].as_u64().unwrap_or(0) >= target {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted node did not catch up to {target}: {s}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    check_history(&history, &nodes[killed].api_url());
}

#[test]
fn a_fourth_node_joins_and_one_leaves_while_writes_go_on() {
    let mut nodes = cluster(3);
    let apis = Arc::new(Mutex::new(
        nodes.iter().skip(1).map(Node::api_url).collect::<Vec<_>>(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(apis.clone(), stop.clone(), 3);
    std::thread::sleep(Duration::from_secs(1));

    let mut fourth = Node::new(std::path::Path::new(BIN), 4);
    fourth.start(Some(&nodes[1].peer_url()));
    apis.lock().unwrap().push(fourth.api_url());
    let out = hakiri_testkit::run(
        BIN,
        nodes[1].home.path(),
        &["cluster", "remove", "1", "--endpoint", &nodes[2].api_url()],
    );
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    std::thread::sleep(Duration::from_secs(1));
    let history = finish(&stop, clients);
    nodes[0].kill9();
    nodes.push(fourth);

    let l = leader(&nodes, None, Duration::from_secs(10));
    let status = nodes.iter().find(|n| n.id == l).unwrap().status().unwrap();
    let mut members: Vec<u64> = status["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    members.sort();
    assert_eq!(members, [2, 3, 4], "{status}");
    // Removing the last members one by one stops at the last.
    check_history(&history, &nodes[3].api_url());
}

#[test]
fn a_damaged_data_directory_refuses_to_start() {
    let mut node = Node::new(std::path::Path::new(BIN), 1);
    node.start(None);
    for i in 0..200 {
        let w = put(
            &node.api_url(),
            &format!("k{i}"),
            json!({ "value": "x".repeat(2000) }),
        );
        assert_eq!(w.status, 200, "{}", w.body);
    }
    node.process.take().unwrap().stop();
    let file = node.home.path().join("raft").join("raft.redb");
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let out = hakiri_testkit::output(&mut node.command(None), &[], Duration::from_secs(30));
    assert!(!out.status.success(), "served a truncated log");
    let err = text(&out.stderr);
    assert!(
        err.contains("is damaged") && err.contains(&file.display().to_string()),
        "{err}"
    );
    assert!(!err.contains("internal error"), "{err}");

    // Zeroed: the same clear refusal.
    std::fs::write(&file, vec![0u8; len as usize]).unwrap();
    let out = hakiri_testkit::output(&mut node.command(None), &[], Duration::from_secs(30));
    assert!(!out.status.success(), "served a zeroed log");
    let err = text(&out.stderr);
    assert!(err.contains(&file.display().to_string()), "{err}");
}

#[test]
fn a_node_joining_after_compaction_catches_up_from_a_snapshot() {
    // Small snapshots and a short log: what a new node needs is purged.
    let env = [
        ("HAKIRI_RAFT__SNAPSHOT_EVERY", "50"),
        ("HAKIRI_RAFT__KEEP_LOGS", "10"),
    ];
    let mut nodes = coord::cluster_with(std::path::Path::new(BIN), 3, &env);
    let l = leader(&nodes, None, Duration::from_secs(10));
    let api = nodes.iter().find(|n| n.id == l).unwrap().api_url();
    for i in 0..300 {
        let w = put(&api, &format!("k{i}"), json!({ "value": format!("v{i}") }));
        assert_eq!(w.status, 200, "{}", w.body);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let lead = loop {
        let lead = nodes.iter().find(|n| n.id == l).unwrap().status().unwrap();
        if lead["purged_index"].as_u64().unwrap_or(0) >= 200 {
            break lead;
        }
        assert!(
            Instant::now() < deadline,
            "the log was not compacted: {lead}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let target = lead["applied_index"].as_u64().unwrap();

    let mut fourth = Node::new(std::path::Path::new(BIN), 4);
    fourth.env = nodes[0].env.clone();
    fourth.start(Some(&nodes[0].peer_url()));
    let caught_up = |node: &Node| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = node.status();
            if s.as_ref()
                .is_some_and(|s| s["applied_index"].as_u64() >= Some(target))
            {
                return s.unwrap();
            }
            assert!(Instant::now() < deadline, "no catch-up to {target}: {s:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let s = caught_up(&fourth);
    assert!(
        s["snapshot_index"].as_u64().unwrap_or(0) >= 200,
        "caught up without the snapshot? {s}"
    );
    // What it installed is on its disk: killed, it comes back with it.
    fourth.kill9();
    fourth.start(None);
    caught_up(&fourth);
    assert_eq!(get(&fourth.api_url(), "k299").json()["kv"]["value"], "v299");
    nodes.push(fourth);
}

#[test]
fn nodes_joining_at_once_all_become_voters() {
    let bin = std::path::Path::new(BIN);
    let mut first = Node::new(bin, 1);
    first.start(None);
    let url = first.peer_url();
    let joiners: Vec<_> = (2..=4)
        .map(|id| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut node = Node::new(std::path::Path::new(BIN), id);
                node.start(Some(&url));
                node
            })
        })
        .collect();
    let mut nodes: Vec<Node> = joiners.into_iter().map(|j| j.join().unwrap()).collect();
    nodes.push(first);
    let status = nodes.last().unwrap().status().unwrap();
    let mut voters: Vec<u64> = status["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["voter"] == true)
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    voters.sort();
    assert_eq!(voters, [1, 2, 3, 4], "{status}");
}
