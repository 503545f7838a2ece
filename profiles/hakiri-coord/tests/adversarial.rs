//! Every coordinator tool is reachable by a remote agent through coord-api:
//! without a token nothing answers, a token answers only for what it
//! grants, and bad input gets a 400 that names it. The node keeps serving.

use hakiri_testkit::{http, mint_token, start_serve, Home};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-coord");

fn call(base: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> http::Response {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(b) = &bearer {
        headers.push(("Authorization", b.as_str()));
    }
    http::request(
        method,
        &format!("{base}{path}"),
        &headers,
        body.as_bytes(),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

#[test]
fn every_coordinator_route_refuses_strangers_and_bad_input() {
    let home = Home::new();
    let reader = mint_token(BIN, home.path(), &["--tool", "kv.get"]);
    let admin = mint_token(BIN, home.path(), &["--tool", "*"]);
    let serve = start_serve(BIN, home.path());
    let base = format!("http://{}", serve.addr("coord-api"));

    // (method, path, body, the tool it calls)
    let routes = [
        ("GET", "/v1/kv/k", "", "kv.get"),
        ("PUT", "/v1/kv/k", r#"{"value":"v"}"#, "kv.put"),
        ("DELETE", "/v1/kv/k", "", "kv.delete"),
        ("GET", "/v1/kv?prefix=k", "", "kv.list"),
        ("GET", "/v1/leases/l", "", "lease.get"),
        (
            "POST",
            "/v1/leases/l",
            r#"{"holder":"h","ttl_ms":1000}"#,
            "lease.acquire",
        ),
        ("DELETE", "/v1/leases/l", r#"{"token":1}"#, "lease.release"),
        ("GET", "/v1/members", "", "cluster.members"),
        (
            "POST",
            "/v1/cluster/members",
            r#"{"id":9,"addr":"http://127.0.0.1:1"}"#,
            "cluster.add",
        ),
        ("DELETE", "/v1/cluster/members/9", "", "cluster.remove"),
        ("GET", "/v1/cluster", "", "raft.status"),
    ];
    for (method, path, body, tool) in routes {
        let none = call(&base, method, path, None, body);
        assert_eq!(
            none.status, 401,
            "{method} {path} without a token: {}",
            none.body
        );
        let forged = call(&base, method, path, Some("not-a-token"), body);
        assert_eq!(
            forged.status, 401,
            "{method} {path} with a forged token: {}",
            forged.body
        );
        if tool != "kv.get" {
            let narrow = call(&base, method, path, Some(&reader), body);
            assert_eq!(
                narrow.status, 403,
                "{method} {path} with a kv.get token: {}",
                narrow.body
            );
            assert!(
                narrow
                    .body
                    .contains(&format!("does not grant tool `{tool}`")),
                "{}",
                narrow.body
            );
        }
    }

    // Bad input, each named, none applied.
    let long_key = format!("/v1/kv/{}", "k".repeat(1025));
    let big_value = format!(r#"{{"value":"{}"}}"#, "v".repeat((1 << 20) + 1));
    let bad = [
        (
            "PUT",
            long_key.as_str(),
            r#"{"value":"v"}"#,
            "a key must be 1 to 1024 bytes",
        ),
        (
            "PUT",
            "/v1/kv/k",
            big_value.as_str(),
            "a value must be at most 1048576 bytes",
        ),
        ("PUT", "/v1/kv/k", "not json", "the body is not JSON"),
        ("PUT", "/v1/kv/k", r#"["v"]"#, "must be a JSON object"),
        (
            "PUT",
            "/v1/kv/k",
            r#"{"key":"other","value":"v"}"#,
            "comes from the URL",
        ),
        (
            "PUT",
            "/v1/kv/k",
            r#"{"value":"v","expect_version":-1}"#,
            "invalid input for tool `kv.put`",
        ),
        ("GET", "/v1/kv?limit=5000", "", "limit must be 1 to 1000"),
        (
            "POST",
            "/v1/leases/l",
            r#"{"holder":"h","ttl_ms":0}"#,
            "ttl_ms must be 1 to 3600000",
        ),
        (
            "POST",
            "/v1/cluster/members",
            r#"{"id":9,"addr":"file:///etc/passwd"}"#,
            "addr must be a peer URL",
        ),
        (
            "DELETE",
            "/v1/cluster/members/abc",
            "",
            "node id must be a number",
        ),
    ];
    for (method, path, body, says) in bad {
        let r = call(&base, method, path, Some(&admin), body);
        assert_eq!(
            r.status,
            400,
            "{method} {}: {}",
            &path[..path.len().min(40)],
            r.body
        );
        assert!(
            r.body.contains(says),
            "{method} {}: {}",
            &path[..path.len().min(40)],
            r.body
        );
    }
    // Over the body limit: refused before it is read whole.
    let huge = format!(r#"{{"value":"{}"}}"#, "v".repeat(4 << 20));
    assert_eq!(
        call(&base, "PUT", "/v1/kv/k", Some(&admin), &huge).status,
        413
    );
    // The last member cannot be removed; nothing was written by any of the above.
    let last = call(&base, "DELETE", "/v1/cluster/members/1", Some(&admin), "");
    assert_eq!(last.status, 409, "{}", last.body);
    assert_eq!(call(&base, "GET", "/v1/kv/k", Some(&admin), "").status, 404);
    assert_eq!(
        call(&base, "GET", "/health", None, "").status,
        200,
        "still serving"
    );
}
