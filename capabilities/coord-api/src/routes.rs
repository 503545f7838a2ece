//! The `/v1` routes: each one tool call, with the path, query and body
//! mapped onto the tool's input.

use crate::{call_for, error, Api};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The status a successful tool result maps to, when not 200.
pub(crate) fn status_of(value: &Value) -> Option<StatusCode> {
    match value.get("succeeded") {
        Some(Value::Bool(false)) => return Some(StatusCode::CONFLICT),
        Some(_) => return None,
        None => {}
    }
    let absent = |field: &str| value.get(field).is_some_and(Value::is_null);
    (absent("kv") || absent("lease")).then_some(StatusCode::NOT_FOUND)
}

/// Failures that mean "the cluster cannot answer now; retry".
pub(crate) fn unavailable(message: &str) -> bool {
    [
        "no leader",
        "may or may not",
        "is not running here",
        "membership change is in progress",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// The request body as a JSON object, with `extra` fields added.
fn object(body: &Bytes, extra: Value) -> Result<Value, String> {
    let mut map = if body.is_empty() {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => m,
            Ok(other) => return Err(format!("the body must be a JSON object, not {other}")),
            Err(e) => return Err(format!("the body is not JSON: {e}")),
        }
    };
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            if map.contains_key(&k) {
                return Err(format!(
                    "`{k}` comes from the URL; leave it out of the body"
                ));
            }
            map.insert(k, v);
        }
    }
    Ok(Value::Object(map))
}

async fn call_with(
    api: &Api,
    headers: &HeaderMap,
    tool: &str,
    body: &Bytes,
    extra: Value,
) -> Response {
    match object(body, extra) {
        Ok(input) => call_for(api, headers, tool, input).await,
        Err(why) => error(StatusCode::BAD_REQUEST, why),
    }
}

pub(crate) async fn cluster(State(api): State<Api>, headers: HeaderMap) -> Response {
    call_for(&api, &headers, "raft.status", json!({})).await
}

pub(crate) async fn members(State(api): State<Api>, headers: HeaderMap) -> Response {
    call_for(&api, &headers, "cluster.members", json!({})).await
}

pub(crate) async fn add_member(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    call_with(&api, &headers, "cluster.add", &body, json!({})).await
}

pub(crate) async fn remove_member(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match id.parse::<u64>() {
        Ok(id) => call_for(&api, &headers, "cluster.remove", json!({ "id": id })).await,
        Err(_) => error(
            StatusCode::BAD_REQUEST,
            format!("node id must be a number, not {id:?}"),
        ),
    }
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    prefix: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

pub(crate) async fn list(
    State(api): State<Api>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    let input =
        json!({ "prefix": q.prefix.unwrap_or_default(), "after": q.after, "limit": q.limit });
    call_for(&api, &headers, "kv.list", input).await
}

pub(crate) async fn get_key(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Response {
    call_for(&api, &headers, "kv.get", json!({ "key": key })).await
}

pub(crate) async fn put_key(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    call_with(&api, &headers, "kv.put", &body, json!({ "key": key })).await
}

pub(crate) async fn delete_key(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    call_with(&api, &headers, "kv.delete", &body, json!({ "key": key })).await
}

pub(crate) async fn get_lease(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    call_for(&api, &headers, "lease.get", json!({ "name": name })).await
}

pub(crate) async fn acquire(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    call_with(
        &api,
        &headers,
        "lease.acquire",
        &body,
        json!({ "name": name }),
    )
    .await
}

pub(crate) async fn release(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    call_with(
        &api,
        &headers,
        "lease.release",
        &body,
        json!({ "name": name }),
    )
    .await
}
