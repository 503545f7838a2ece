//! A running coordinator node: its Raft instance, state machine and peer
//! client, and the client operations that go to the leader (writes,
//! linearizable reads, membership changes), forwarded there from followers.

use crate::http::{HttpClient, HttpError};
use crate::store::{Request, Response, StateMachine};
use crate::TypeConfig;
use hyper::Method;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Raft, RaftMetrics};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use thiserror::Error;

type NodeId = u64;

/// How long a client operation waits for a leader before giving up.
const LEADER_WAIT: Duration = Duration::from_secs(10);
/// How long a forwarded operation may take on the leader.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a client operation failed.
#[derive(Debug, Error)]
pub enum NodeError {
    /// Answered by a node that is not (or no longer) the leader; the
    /// request was not applied, so it is safe to retry elsewhere.
    #[error("node {0} is not the leader")]
    NotLeader(NodeId),
    #[error("no leader within {0:?}: is a majority of the cluster's nodes up and reachable? see `hakiri cluster status`")]
    NoLeader(Duration),
    /// The leader changed while the request was in flight.
    #[error("leadership changed while the request was in flight: it may or may not have been applied; read the key to find out")]
    Indeterminate,
    #[error(transparent)]
    Peer(#[from] HttpError),
    #[error("{0}")]
    Refused(String),
    /// Another membership change is under way; retrying soon succeeds.
    #[error("another membership change is in progress ({0}); retry shortly")]
    Busy(String),
    #[error("raft: {0}")]
    Raft(String),
}

/// A read, served by the leader after it confirmed its leadership.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Read {
    Get {
        key: String,
    },
    List {
        prefix: String,
        #[serde(default)]
        after: Option<String>,
        limit: usize,
    },
    Lease {
        name: String,
    },
}

/// A membership change, made by the leader through joint consensus.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    Add { id: NodeId, addr: String },
    Remove { id: NodeId },
}

pub struct Node {
    pub id: NodeId,
    pub raft: Raft<TypeConfig>,
    pub machine: StateMachine,
    pub peers: HttpClient,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Node {
    pub fn metrics(&self) -> RaftMetrics<NodeId, BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    /// The leader's id and peer URL, as this node last heard.
    fn leader(&self) -> Option<(NodeId, String)> {
        let m = self.metrics();
        let id = m.current_leader?;
        let addr = m
            .membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())?;
        Some((id, addr))
    }

    /// Runs `local` here when this node leads, else POSTs `body` to the
    /// leader's `path`; retries while there is no leader or the one asked
    /// no longer leads (nothing was applied then).
    async fn at_leader<B, T, F, Fut>(&self, path: &str, body: &B, local: F) -> Result<T, NodeError>
    where
        B: Serialize,
        T: serde::de::DeserializeOwned,
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, NodeError>>,
    {
        let deadline = Instant::now() + LEADER_WAIT;
        loop {
            let outcome = match self.leader() {
                Some((id, _)) if id == self.id => local().await,
                Some((_, addr)) => {
                    let url = format!("{}{path}", addr.trim_end_matches('/'));
                    self.peers
                        .json(Method::POST, &url, Some(body), FORWARD_TIMEOUT)
                        .await
                        .map_err(|e| match e {
                            HttpError::Status { status: 421, .. } => NodeError::NotLeader(0),
                            e => NodeError::Peer(e),
                        })
                }
                None => Err(NodeError::NotLeader(self.id)),
            };
            match outcome {
                Err(NodeError::NotLeader(_))
                | Err(NodeError::Peer(HttpError::Unreachable { .. }))
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(NodeError::NotLeader(_)) => return Err(NodeError::NoLeader(LEADER_WAIT)),
                other => return other,
            }
        }
    }

    /// Applies `req` through the log, on whichever node leads.
    pub async fn write(&self, req: Request) -> Result<Response, NodeError> {
        self.at_leader("/raft/write", &req, || self.write_here(req.clone()))
            .await
    }

    /// Applies `req` if this node leads; the leader stamps the time.
    pub async fn write_here(&self, mut req: Request) -> Result<Response, NodeError> {
        let now = now_ms();
        match &mut req {
            Request::Acquire { now_ms, .. } => *now_ms = now,
            Request::Put { fence: Some(f), .. } | Request::Delete { fence: Some(f), .. } => {
                f.now_ms = now
            }
            _ => {}
        }
        if self.metrics().current_leader != Some(self.id) {
            return Err(NodeError::NotLeader(self.id));
        }
        match self.raft.client_write(req).await {
            Ok(r) => Ok(r.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(NodeError::Indeterminate)
            }
            Err(e) => Err(NodeError::Raft(e.to_string())),
        }
    }

    /// A linearizable read, on whichever node leads.
    pub async fn read(&self, read: Read) -> Result<Value, NodeError> {
        self.at_leader("/raft/read", &read, || self.read_here(read.clone()))
            .await
    }

    pub async fn read_here(&self, read: Read) -> Result<Value, NodeError> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => {}
            Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(_))) => {
                return Err(NodeError::NotLeader(self.id))
            }
            Err(e) => return Err(NodeError::Raft(e.to_string())),
        }
        let revision = self.machine.revision();
        Ok(match read {
            Read::Get { key } => json!({ "revision": revision, "kv": self.machine.get(&key) }),
            Read::List {
                prefix,
                after,
                limit,
            } => {
                let rows = self.machine.list(&prefix, after.as_deref(), limit);
                let kvs: Vec<Value> = rows
                    .into_iter()
                    .map(|(k, v)| json!({ "key": k, "value": v.value, "version": v.version, "revision": v.revision }))
                    .collect();
                json!({ "revision": revision, "kvs": kvs })
            }
            Read::Lease { name } => {
                json!({ "revision": revision, "lease": self.machine.lease(&name) })
            }
        })
    }

    /// Adds or removes a voter, on whichever node leads.
    pub async fn change(&self, change: Change) -> Result<Value, NodeError> {
        // The leader-only route: a forwarded change is never forwarded on.
        self.at_leader("/raft/members/leader", &change, || {
            self.change_here(change.clone())
        })
        .await
    }

    pub async fn change_here(&self, change: Change) -> Result<Value, NodeError> {
        let m = self.metrics();
        if m.current_leader != Some(self.id) {
            return Err(NodeError::NotLeader(self.id));
        }
        let voters: BTreeSet<NodeId> = m.membership_config.membership().voter_ids().collect();
        let next = match &change {
            Change::Add { id, addr } => {
                let known = m.membership_config.membership().get_node(id);
                if voters.contains(id) && known.is_some_and(|n| &n.addr == addr) {
                    return Ok(json!({ "changed": false, "voters": voters }));
                }
                if voters.contains(id) {
                    return Err(NodeError::Refused(format!(
                        "node {id} is already a member at {}; remove it first to move it",
                        known.map_or("?", |n| n.addr.as_str())
                    )));
                }
                self.raft
                    .add_learner(*id, BasicNode::new(addr), true)
                    .await
                    .map_err(change_error)?;
                let mut v = voters.clone();
                v.insert(*id);
                v
            }
            Change::Remove { id } => {
                if !voters.contains(id) {
                    return Err(NodeError::Refused(format!(
                        "node {id} is not a member; members are {voters:?}"
                    )));
                }
                if voters.len() == 1 {
                    return Err(NodeError::Refused(format!(
                        "node {id} is the cluster's last member and cannot be removed"
                    )));
                }
                let mut v = voters.clone();
                v.remove(id);
                v
            }
        };
        self.raft
            .change_membership(next.clone(), false)
            .await
            .map_err(change_error)?;
        Ok(json!({ "changed": true, "voters": next }))
    }
}

fn change_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> NodeError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            NodeError::NotLeader(f.leader_id.unwrap_or(0))
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            openraft::error::ChangeMembershipError::InProgress(e),
        )) => NodeError::Busy(e.to_string()),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            NodeError::Refused(format!("membership change refused: {e}"))
        }
        e => NodeError::Raft(e.to_string()),
    }
}
