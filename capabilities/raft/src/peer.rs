//! The peer port (`[raft] listen`): Raft RPCs from other coordinators, and
//! client operations forwarded to the leader. Before any body is read, every
//! request must name a host this node answers to (else 421), carry the
//! cluster's name (`x-hakiri-cluster`, else 409) and the cluster secret as
//! `Authorization: Bearer <secret>` (else 401): loopback included, since
//! every local user and web page can reach loopback. A forwarded write, read or
//! membership change sent to a follower answers 421 and is not applied; a
//! joining node's request (`/raft/members`) may reach any member, which
//! forwards it to the leader.

use crate::network::CLUSTER_HEADER;
use crate::node::{Change, Node, NodeError, Read};
use crate::store::Request;
use crate::TypeConfig;
use axum::extract::{DefaultBodyLimit, Request as HttpRequest, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
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
    secret: String,
    /// Names this node answers to besides IP addresses: loopback names, the
    /// advertised host and `[raft] allowed_hosts`.
    hosts: Vec<String>,
}

/// Snapshots travel in chunks of up to 3 MiB; leave room for the JSON.
const BODY_LIMIT: usize = 16 << 20;

pub fn router(node: Arc<Node>, cluster: String, secret: String, hosts: Vec<String>) -> Router {
    let peer = Peer {
        node,
        cluster,
        secret,
        hosts,
    };
    Router::new()
        .route("/raft/append", post(append))
        .route("/raft/vote", post(vote))
        .route("/raft/snapshot", post(snapshot))
        .route("/raft/write", post(write))
        .route("/raft/read", post(read))
        .route("/raft/members", post(members))
        .route("/raft/members/leader", post(members_here))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(peer.clone(), admit))
        .with_state(peer)
}

/// Refuses a request from outside the cluster before its body is read.
async fn admit(State(p): State<Peer>, request: HttpRequest, next: Next) -> Response {
    match p.refuse(request.headers()) {
        Some(refused) => refused,
        None => next.run(request).await,
    }
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
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        if let Err(why) = hakiri_kernel::hosts::check_host(host, &self.hosts, true, "raft") {
            return Some(error(StatusCode::MISDIRECTED_REQUEST, why));
        }
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
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| same(g.as_bytes(), self.secret.as_bytes())) {
            return Some(error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong cluster secret; every node needs the same secret in [raft] secret_env \
                 (HAKIRI_CLUSTER_SECRET), as `cluster init` wrote it to cluster.secret in the first node's raft directory",
            ));
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
    Json(rpc): Json<AppendEntriesRequest<TypeConfig>>,
) -> Response {
    Json(p.node.raft.append_entries(rpc).await).into_response()
}

async fn vote(State(p): State<Peer>, Json(rpc): Json<VoteRequest<u64>>) -> Response {
    Json(p.node.raft.vote(rpc).await).into_response()
}

async fn snapshot(
    State(p): State<Peer>,
    Json(rpc): Json<InstallSnapshotRequest<TypeConfig>>,
) -> Response {
    Json(p.node.raft.install_snapshot(rpc).await).into_response()
}

async fn write(State(p): State<Peer>, Json(req): Json<Request>) -> Response {
    answer(
        p.node
            .write_here(req)
            .await
            .map(|r| serde_json::to_value(r).expect("responses serialize")),
    )
}

async fn read(State(p): State<Peer>, Json(req): Json<Read>) -> Response {
    answer(p.node.read_here(req).await)
}

async fn members(State(p): State<Peer>, Json(req): Json<Change>) -> Response {
    // Joining nodes may knock on any member: this one forwards.
    answer(p.node.change(req).await)
}

/// A change forwarded by a member: applied here if this node leads, else
/// 421, so two members with stale views never bounce it between them.
async fn members_here(State(p): State<Peer>, Json(req): Json<Change>) -> Response {
    answer(p.node.change_here(req).await)
}
