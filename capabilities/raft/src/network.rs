//! Raft RPCs between coordinators: JSON over HTTP to each peer's
//! `/raft/*` endpoints (see `peer.rs`), with the cluster's name and secret.

use crate::http::{HttpClient, HttpError};
use crate::TypeConfig;
use hyper::Method;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

type NodeId = u64;

/// The headers every peer request carries.
pub const CLUSTER_HEADER: &str = "x-hakiri-cluster";

/// A client for this cluster's peers.
pub fn peer_client(cluster: &str, secret: &str) -> HttpClient {
    HttpClient::new(vec![
        (CLUSTER_HEADER, cluster.to_string()),
        ("authorization", format!("Bearer {secret}")),
    ])
}

/// Hands openraft a connection per peer; all share one pooled client.
#[derive(Clone)]
pub struct Network {
    pub client: HttpClient,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        Connection {
            client: self.client.clone(),
            target,
            base: node.addr.trim_end_matches('/').to_string(),
        }
    }
}

pub struct Connection {
    client: HttpClient,
    target: NodeId,
    base: String,
}

impl Connection {
    async fn rpc<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let url = format!("{}{path}", self.base);
        let timeout = option.hard_ttl().max(Duration::from_millis(100));
        let answer: Result<Result<Resp, RaftError<NodeId, E>>, HttpError> = self
            .client
            .json(Method::POST, &url, Some(req), timeout)
            .await;
        match answer {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Err(e @ HttpError::Unreachable { .. }) => {
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.rpc("/raft/append", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.rpc("/raft/snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.rpc("/raft/vote", &rpc, &option).await
    }
}
