//! The peer port (`[raft] listen`): Raft RPCs from other coordinators, and
//! client operations forwarded to the leader. Every request must carry the
//! cluster's name (`x-hakiri-cluster`, else 409) and, when a secret is set,
//! `Authorization: Bearer <secret>` (else 401). A forwarded write, read or
//! membership change sent to a follower answers 421 and is not applied; a
//! joining node's request (`/raft/members`) may reach any member, which
//! forwards it to the leader.

use crate::network::CLUSTER_HEADER;
use crate::node::{Change, Node, NodeError, Read};
use crate::store::Request;
use crate::TypeConfig;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde_json::json;
use std::sync::Arc;

#[derive(Clone)]
struct Peer {
    node: Arc<Node>,
    cluster: String,
    secret: Option<String>,
}

/// Snapshots travel in chunks of up to 3 MiB; leave room for the JSON.
const BODY_LIMIT: usize = 16 << 20;

pub fn router(node: Arc<Node>, cluster: String, secret: Option<String>) -> Router {
    Router::new()
        .route("/raft/append", post(append))
        .route("/raft/vote", post(vote))
        .route("/raft/snapshot", post(snapshot))
        .route("/raft/write", post(write))
        .route("/raft/read", post(read))
        .route("/raft/members", post(members))
        .route("/raft/members/leader", post(members_here))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(Peer {
            node,
            cluster,
            secret,
        })
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Constant-time comparison, so the secret cannot be guessed byte by byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Peer {
    /// The refusal for a request that is not from this cluster, if it is not.
    fn refuse(&self, headers: &HeaderMap) -> Option<Response> {
        let cluster = headers.get(CLUSTER_HEADER).and_then(|v| v.to_str().ok());
        if cluster != Some(self.cluster.as_str()) {
            return Some(error(
                StatusCode::CONFLICT,
                format!(
                    "this node belongs to cluster `{}`, the request names {}; check [raft] cluster on both nodes",
                    self.cluster,
                    cluster.map_or("none".into(), |c| format!("`{c}`"))
                ),
            ));
        }
        if let Some(secret) = &self.secret {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if !given.is_some_and(|g| same(g.as_bytes(), secret.as_bytes())) {
                return Some(error(
                    StatusCode::UNAUTHORIZED,
                    "missing or wrong cluster secret; every node needs the same [raft] secret_env value",
                ));
            }
        }
        None
    }
}

fn answer(result: Result<serde_json::Value, NodeError>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e @ NodeError::NotLeader(_)) => error(StatusCode::MISDIRECTED_REQUEST, e.to_string()),
        Err(e @ NodeError::Refused(_)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn append(
    State(p): State<Peer>,
    headers: HeaderMap,
    Json(rpc): Json<AppendEntriesRequest<TypeConfig>>,
) -> Response {
    if let Some(r) = p.refuse(&headers) {
        return r;
    }
    Json(p.node.raft.append_entries(rpc).await).into_response()
}

async fn vote(
    State(p): State<Peer>,
    headers: HeaderMap,
    Json(rpc): Json<VoteRequest<u64>>,
) -> Response {
    if let Some(r) = p.refuse(&headers) {
        return r;
    }
    Json(p.node.raft.vote(rpc).await).into_response()
}

async fn snapshot(
    State(p): State<Peer>,
    headers: HeaderMap,
    Json(rpc): Json<InstallSnapshotRequest<TypeConfig>>,
) -> Response {
    if let Some(r) = p.refuse(&headers) {
        return r;
    }
    Json(p.node.raft.install_snapshot(rpc).await).into_response()
}

async fn write(State(p): State<Peer>, headers: HeaderMap, Json(req): Json<Request>) -> Response {
    if let Some(r) = p.refuse(&headers) {
        return r;
    }
    answer(
        p.node
            .write_here(req)
            .await
            .map(|r| serde_json::to_value(r).expect("responses serialize")),
    )
}

async fn read(State(p): State<Peer>, headers: HeaderMap, Json(req): Json<Read>) -> Response {
    if let Some(r) = p.refuse(&headers) {
        return r;
    }
    answer(p.node.read_here(req).await)
}

async fn members(State(p): State<Peer>, headers: HeaderMap, Json(req): Json<Change>) -> Response {
    if let Some(r) = p.refuse(&headers) {
        return r;
    }
    // Joining nodes may knock on any member: this one forwards.
    answer(p.node.change(req).await)
}

/// A change forwarded by a member: applied here if this node leads, else
/// 421, so two members with stale views never bounce it between them.
async fn members_here(
    State(p): State<Peer>,
    headers: HeaderMap,
    Json(req): Json<Change>,
) -> Response {
    if let Some(r) = p.refuse(&headers) {
        return r;
    }
    answer(p.node.change_here(req).await)
}
