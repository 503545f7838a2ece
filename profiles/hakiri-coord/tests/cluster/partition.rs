//! A partition, made with the test's own hosts: one network namespace per
//! coordinator on a bridge, and iptables in the leader's namespace dropping
//! its Raft traffic (its API stays reachable, so the test can watch the
//! minority side). Needs root; everything stays on this machine.

use hakiri_testkit::coord::{ELECTION_MAX_MS, SECRET};
use hakiri_testkit::{http, text, Home, Running};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-coord");

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
}

/// Namespaces, veths and a bridge, removed again when dropped.
struct Net {
    tag: String,
    subnet: String,
    nodes: usize,
}

impl Net {
    fn new(nodes: usize) -> Net {
        let n = std::process::id() % 200;
        let net = Net {
            tag: format!("hk{n}"),
            subnet: format!("10.77.{n}"),
            nodes,
        };
        let br = format!("{}br", net.tag);
        sh(&["ip", "link", "add", &br, "type", "bridge"]);
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{}.254/24", net.subnet),
            "dev",
            &br,
        ]);
        sh(&["ip", "link", "set", &br, "up"]);
        for i in 1..=nodes {
            let (ns, inner, outer) = (
                net.ns(i),
                format!("{}n{i}", net.tag),
                format!("{}h{i}", net.tag),
            );
            sh(&["ip", "netns", "add", &ns]);
            sh(&[
                "ip", "link", "add", &inner, "type", "veth", "peer", "name", &outer,
            ]);
            sh(&["ip", "link", "set", &inner, "netns", &ns]);
            sh(&["ip", "link", "set", &outer, "master", &br]);
            sh(&["ip", "link", "set", &outer, "up"]);
            sh(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", net.ip(i)),
                "dev",
                &inner,
            ]);
            sh(&["ip", "-n", &ns, "link", "set", &inner, "up"]);
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        }
        net
    }

    fn ns(&self, i: usize) -> String {
        format!("{}-{i}", self.tag)
    }

    fn ip(&self, i: usize) -> String {
        format!("{}.{i}", self.subnet)
    }

    /// Drops node `i`'s Raft traffic, both ways; its API still answers.
    fn cut(&self, i: usize) {
        for chain in ["INPUT", "OUTPUT"] {
            sh(&[
                "ip",
                "netns",
                "exec",
                &self.ns(i),
                "iptables",
                "-A",
                chain,
                "-p",
                "tcp",
                "--dport",
                "7980",
                "-j",
                "DROP",
            ]);
        }
    }

    fn heal(&self, i: usize) {
        sh(&["ip", "netns", "exec", &self.ns(i), "iptables", "-F"]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for i in 1..=self.nodes {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(i)])
                .status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &format!("{}br", self.tag)])
            .status();
    }
}

struct Host {
    _home: Home,
    api: String,
    token: String,
    _process: Running,
}

impl Host {
    fn call(
        &self,
        method: &str,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> std::io::Result<http::Response> {
        let bearer = format!("Bearer {}", self.token);
        let body = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        http::request(
            method,
            &format!("{}{path}", self.api),
            &[
                ("Authorization", &bearer),
                ("Content-Type", "application/json"),
            ],
            &body,
            timeout,
        )
    }

    fn status(&self) -> Option<Value> {
        let r = self
            .call("GET", "/v1/cluster", &Value::Null, Duration::from_secs(2))
            .ok()?;
        (r.status == 200).then(|| r.json())
    }
}

fn start(net: &Net, i: usize) -> Host {
    let home = Home::new();
    let token = hakiri_testkit::mint_token(BIN, home.path(), &["--tool", "*"]);
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &net.ns(i), BIN, "serve"]);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HAKIRI_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HAKIRI_HOME", home.path())
        .env("HAKIRI_RAFT__NODE_ID", i.to_string())
        .env("HAKIRI_RAFT__LISTEN", format!("{}:7980", net.ip(i)))
        .env("HAKIRI_RAFT__HEARTBEAT_INTERVAL_MS", "100")
        .env("HAKIRI_RAFT__ELECTION_TIMEOUT_MIN_MS", "500")
        .env(
            "HAKIRI_RAFT__ELECTION_TIMEOUT_MAX_MS",
            ELECTION_MAX_MS.to_string(),
        )
        .env("HAKIRI_COORD_API__LISTEN", format!("{}:7979", net.ip(i)))
        .env("HAKIRI_CLUSTER_SECRET", SECRET);
    if i > 1 {
        cmd.env("HAKIRI_RAFT__JOIN", format!("http://{}:7980", net.ip(1)));
    }
    let process = Running::until_ready(&mut cmd, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("node {i}: {e}"));
    Host {
        _home: home,
        api: format!("http://{}:7979", net.ip(i)),
        token,
        _process: process,
    }
}

fn leader_among<'a>(hosts: &'a [(usize, &'a Host)], not: Option<usize>) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for (i, h) in hosts {
            if Some(*i) != not && h.status().is_some_and(|s| s["state"] == "leader") {
                return *i;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no leader among {:?}",
            hosts.iter().map(|(i, _)| i).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_partitioned_leader_commits_nothing_and_the_majority_goes_on() {
    let _ip = hakiri_testkit::skip_unless_configured!("HAKIRI_TEST_NETNS");
    let uid = Command::new("id").arg("-u").output().unwrap();
    if text(&uid.stdout).trim() != "0" {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED a_partitioned_leader_commits_nothing_and_the_majority_goes_on: needs root (ip netns, iptables)");
        return;
    }
    let net = Net::new(3);
    let hosts: Vec<Host> = (1..=3).map(|i| start(&net, i)).collect();
    let all: Vec<(usize, &Host)> = hosts.iter().enumerate().map(|(i, h)| (i + 1, h)).collect();
    let old = leader_among(&all, None);
    let put = |h: &Host, key: &str, value: &str, timeout| {
        h.call(
            "PUT",
            &format!("/v1/kv/{key}"),
            &json!({ "value": value }),
            timeout,
        )
    };
    let before = put(&hosts[old - 1], "k", "before", Duration::from_secs(10)).unwrap();
    assert_eq!(before.status, 200, "{}", before.body);

    net.cut(old);
    // The old leader cannot commit: its write is never acknowledged.
    let minority = put(&hosts[old - 1], "minority", "lost", Duration::from_secs(4));
    assert!(
        !matches!(&minority, Ok(r) if r.status == 200),
        "the minority side acknowledged a write: {minority:?}"
    );
    // The majority elects a leader of its own and goes on.
    let majority: Vec<(usize, &Host)> = all.iter().copied().filter(|(i, _)| *i != old).collect();
    let new = leader_among(&majority, Some(old));
    let during = put(&hosts[new - 1], "k", "during", Duration::from_secs(10)).unwrap();
    assert_eq!(during.status, 200, "{}", during.body);

    net.heal(old);
    // The old leader rejoins as a follower and converges on the majority's history.
    let deadline = Instant::now() + Duration::from_secs(20);
    let target = hosts[new - 1].status().unwrap()["applied_index"]
        .as_u64()
        .unwrap();
    loop {
        let s = hosts[old - 1].status();
        if s.as_ref().is_some_and(|s| {
            s["state"] == "follower" && s["applied_index"].as_u64() >= Some(target)
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node {old} did not converge after healing: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = hosts[old - 1]
        .call("GET", "/v1/kv/k", &Value::Null, Duration::from_secs(10))
        .unwrap();
    assert_eq!(got.json()["kv"]["value"], "during", "{}", got.body);
    let lost = hosts[new - 1]
        .call(
            "GET",
            "/v1/kv/minority",
            &Value::Null,
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(
        lost.status, 404,
        "a write the minority never committed appeared: {}",
        lost.body
    );
    drop(hosts);
    let _ = &net;
}
