//! `GET /openapi.json`: the API as OpenAPI 3.1. Each operation's request
//! schema is its tool's input schema, taken from the registry, so the
//! document cannot drift from what the tools accept.

use crate::Api;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Map, Value};

/// (method, path, tool, what the route does; fields from the URL)
const ROUTES: &[(&str, &str, &str, &str)] = &[
    ("get", "/v1/cluster", "raft.status", "This node's view of the cluster: leader, term, members, applied index, lag per follower"),
    ("get", "/v1/members", "cluster.members", "The daemons registered with the cluster, each `up` or `down`"),
    ("post", "/v1/cluster/members", "cluster.add", "Add a node as a voter (caught up as a learner first)"),
    ("delete", "/v1/cluster/members/{id}", "cluster.remove", "Remove a node from the voters"),
    ("get", "/v1/kv", "kv.list", "List keys by prefix (query: prefix, after, limit)"),
    ("get", "/v1/kv/{key}", "kv.get", "Read a key linearizably; 404 when absent"),
    ("put", "/v1/kv/{key}", "kv.put", "Set a key; with expect_version a compare-and-swap, with lease a fenced write; 409 when a condition failed"),
    ("delete", "/v1/kv/{key}", "kv.delete", "Delete a key, under the same conditions as a put"),
    ("get", "/v1/leases/{name}", "lease.get", "Read a lease; 404 when not held"),
    ("post", "/v1/leases/{name}", "lease.acquire", "Take or renew a lease; 409 when another holder has it"),
    ("delete", "/v1/leases/{name}", "lease.release", "Give a lease back"),
];

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": {
            "type": "object", "properties": { "error": { "type": "string" } }, "required": ["error"]
        } } }
    })
}

pub(crate) async fn document(State(api): State<Api>) -> Json<Value> {
    let tools = &api.ctx.registry.tools;
    let mut paths = Map::new();
    for (method, path, tool, summary) in ROUTES {
        let Some(t) = tools.get(*tool) else { continue };
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        let mut op = json!({
            "operationId": tool,
            "summary": summary,
            "description": t.item.description,
            "parameters": params,
            "security": [{ "bearer": [] }],
            "responses": {
                "200": { "description": "the tool's result", "content": { "application/json": { "schema": {} } } },
                "400": error_response("malformed input"),
                "401": error_response("no valid bearer token"),
                "403": error_response("the token does not grant this tool"),
                "404": { "description": "absent key or lease" },
                "409": { "description": "a condition failed: `succeeded: false` and `reason`" },
                "503": error_response("no leader now; retry"),
            }
        });
        if matches!(*method, "put" | "post" | "delete") {
            op["requestBody"] = json!({
                "required": false,
                "content": { "application/json": { "schema": t.item.input_schema } }
            });
        }
        let entry = paths
            .entry(path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[*method] = op;
    }
    paths.insert(
        "/health".into(),
        json!({ "get": { "summary": "Liveness (no token)", "responses": { "200": { "description": "ok" } } } }),
    );
    Json(json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Hakiri coordinator API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Any node answers; followers forward writes and linearizable reads to the leader.",
        },
        "paths": paths,
        "components": { "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } } },
    }))
}
