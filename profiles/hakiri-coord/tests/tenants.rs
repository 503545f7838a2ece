//! Tenants apart on a coordinator: the peer port always wants the cluster
//! secret (loopback included) and a host it answers to, the API refuses a
//! rebound `Host`, and a daemon's token writes only the catalog entries and
//! leases of the datasets it grants, each entry that dataset's own.

use hakiri_testkit::{http, mint_token, start_serve, Home};
use serde_json::json;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-coord");

fn send(url: &str, method: &str, headers: &[(&str, &str)], body: &str) -> http::Response {
    http::request(
        method,
        url,
        headers,
        body.as_bytes(),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

#[test]
fn the_peer_port_needs_the_generated_secret_and_a_known_host() {
    let home = Home::new();
    // No HAKIRI_CLUSTER_SECRET (the testkit clears HAKIRI_*): one is made.
    let serve = start_serve(BIN, home.path());
    let peer = format!("http://{}", serve.addr("raft"));
    let secret_file = home.path().join("raft/cluster.secret");
    let secret = std::fs::read_to_string(&secret_file).expect("cluster init wrote a secret");
    let secret = secret.trim();
    assert_eq!(secret.len(), 64, "{secret}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&secret_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the secret is the owner's only");

    // I4: a forged write on loopback, with the cluster's name and no secret.
    let write = format!("{peer}/raft/write");
    let put = json!({"op": "put", "key": "catalog/datasets/sales", "value": "{}"}).to_string();
    let cluster = ("x-hakiri-cluster", "hakiri");
    let json_type = ("Content-Type", "application/json");
    let forged = send(&write, "POST", &[cluster, json_type], &put);
    assert_eq!(forged.status, 401, "{}", forged.body);
    assert!(forged.body.contains("cluster secret"), "{}", forged.body);
    // Refused before its body is read: a body that is not even JSON gets the same.
    let junk = send(&write, "POST", &[cluster, json_type], "{{{ not json");
    assert_eq!(junk.status, 401, "{}", junk.body);
    for route in ["/raft/append", "/raft/members", "/raft/vote", "/raft/read"] {
        let r = send(
            &format!("{peer}{route}"),
            "POST",
            &[cluster, json_type],
            "{}",
        );
        assert_eq!(r.status, 401, "{route}: {}", r.body);
    }
    let bearer = format!("Bearer {secret}");
    let auth = ("Authorization", bearer.as_str());
    // DNS rebinding: the right secret cannot come from a page, but the Host
    // is refused first anyway.
    let rebound = send(
        &write,
        "POST",
        &[cluster, auth, json_type, ("Host", "attacker.example:7980")],
        &put,
    );
    assert_eq!(rebound.status, 421, "{}", rebound.body);
    assert!(rebound.body.contains("allowed_hosts"), "{}", rebound.body);
    // With both, the request reaches the route (which then reads the body).
    let admitted = send(&write, "POST", &[cluster, auth, json_type], "{{{ not json");
    assert_eq!(admitted.status, 400, "{}", admitted.body);

    // I7: the API refuses a Host it does not answer to, before any token.
    let api = format!("http://{}", serve.addr("coord-api"));
    let rebound = send(
        &format!("{api}/health"),
        "GET",
        &[("Host", "attacker.example")],
        "",
    );
    assert_eq!(rebound.status, 421, "{}", rebound.body);
    assert_eq!(http::get(&format!("{api}/health")).status, 200);
}

/// An entry as a daemon publishes it.
fn entry(name: &str, location: &str) -> String {
    json!({
        "name": name, "version": 1, "location": location, "source": "s.csv",
        "rows": 1, "bytes": 1, "schema": [], "updated": "2026-12-07T00:00:00Z"
    })
    .to_string()
}

#[test]
fn a_daemon_token_writes_only_its_own_datasets_entries_and_leases() {
    let home = Home::new();
    let daemon = mint_token(
        BIN,
        home.path(),
        &["--tool", "kv.*", "--tool", "lease.*", "--dataset", "sales"],
    );
    let serve = start_serve(BIN, home.path());
    let api = format!("http://{}", serve.addr("coord-api"));
    let bearer = format!("Bearer {daemon}");
    let call = |method: &str, path: &str, body: serde_json::Value| {
        send(
            &format!("{api}{path}"),
            method,
            &[
                ("Authorization", bearer.as_str()),
                ("Content-Type", "application/json"),
            ],
            &body.to_string(),
        )
    };
    let hr_files = "/srv/hakiri/datasets/hr/v1";
    let sales_files = "/srv/hakiri/datasets/sales/v1";

    // I3: another dataset's entry, delete, lease: refused by the token.
    let refused = [
        call(
            "PUT",
            "/v1/kv/catalog/datasets/hr",
            json!({"value": entry("hr", hr_files)}),
        ),
        call("DELETE", "/v1/kv/catalog/datasets/hr", json!({})),
        call(
            "POST",
            "/v1/leases/dataset.hr",
            json!({"holder": "x", "ttl_ms": 3_600_000}),
        ),
        call("DELETE", "/v1/leases/dataset.hr", json!({"token": 1})),
    ];
    for r in refused {
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(
            r.body.contains("token does not grant dataset `hr`"),
            "{}",
            r.body
        );
    }
    // Its own key, pointed at hr's files or naming hr: refused as invalid.
    let forged = [
        (
            entry("sales", hr_files),
            "not under a `datasets/sales/` directory",
        ),
        (
            entry("sales", "/srv/hakiri/datasets/sales/../hr/v1"),
            "climbs out",
        ),
        (
            entry("sales", "/etc"),
            "not under a `datasets/sales/` directory",
        ),
        (entry("hr", sales_files), "must name dataset `sales`"),
        ("not json".to_string(), "must be a dataset entry"),
    ];
    for (value, says) in forged {
        let r = call(
            "PUT",
            "/v1/kv/catalog/datasets/sales",
            json!({"value": value}),
        );
        assert_eq!(r.status, 400, "{value}: {}", r.body);
        assert!(r.body.contains(says), "{value}: {}", r.body);
    }
    let nothing = call("GET", "/v1/kv/catalog/datasets/sales", json!({}));
    assert_eq!(nothing.status, 404, "nothing was stored: {}", nothing.body);

    // What it may do still works: its own entry and lease, other keys.
    let own = call(
        "PUT",
        "/v1/kv/catalog/datasets/sales",
        json!({"value": entry("sales", sales_files)}),
    );
    assert_eq!(own.status, 200, "{}", own.body);
    let lease = call(
        "POST",
        "/v1/leases/dataset.sales",
        json!({"holder": "d1", "ttl_ms": 1000}),
    );
    assert_eq!(lease.status, 200, "{}", lease.body);
    let member = call("PUT", "/v1/kv/members/d1", json!({"value": "{}"}));
    assert_eq!(member.status, 200, "{}", member.body);
}
