//! The coordinator's tools: cluster status and membership, versioned keys
//! with compare-and-swap, and leases with fencing tokens. Callable from the
//! CLI and coord-api alike; on a follower they are forwarded to the leader.

use crate::node::{Change, Node, NodeError, Read};
use crate::store::{Fence, Request, Response};
use crate::RunningNode;
use hakiri_kernel::{Context, KernelError, Registrar, Tool, ToolError};
use openraft::{BasicNode, RaftMetrics};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

/// Keys longer than this are refused: they are names, not data.
pub const MAX_KEY: usize = 1024;
/// Values larger than this are refused: the log replicates every byte.
pub const MAX_VALUE: usize = 1 << 20;
const MAX_LIST: usize = 1000;
const MAX_TTL_MS: u64 = 3_600_000;

fn running(ctx: &Context) -> Result<Arc<Node>, ToolError> {
    ctx.state::<RunningNode>()
        .and_then(|s| s.slot().clone())
        .ok_or_else(|| {
            ToolError::Failed("raft is not running here; start it with `hakiri serve`".into())
        })
}

fn invalid(tool: &str, message: String) -> ToolError {
    ToolError::InvalidInput {
        tool: tool.into(),
        message,
    }
}

fn failed(e: NodeError) -> ToolError {
    ToolError::Failed(e.to_string())
}

fn check_key(tool: &str, key: &str) -> Result<(), ToolError> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(invalid(
            tool,
            format!("a key must be 1 to {MAX_KEY} bytes, not {}", key.len()),
        ));
    }
    Ok(())
}

/// The keys and leases of the daemons' `coord://` catalog: a token writes
/// them only for the datasets it grants (`hakiri auth token --dataset`),
/// and an entry is stored only if it is that dataset's own.
const CATALOG_PREFIX: &str = "catalog/datasets/";
const DATASET_LEASE: &str = "dataset.";

/// The dataset a key or lease name belongs to, if it is the catalog's.
fn dataset_of<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    name.strip_prefix(prefix)
}

/// Asks whether the caller may write dataset `dataset`'s catalog key or lease.
async fn authorize_dataset(ctx: &Context, dataset: Option<&str>) -> Result<(), ToolError> {
    match dataset {
        Some(d) => {
            ctx.authorize_resource(hakiri_data_api::DATASET, d, true)
                .await
        }
        None => Ok(()),
    }
}

/// A catalog entry must name the dataset its key does, and its files must be
/// that dataset's: otherwise a daemon's token could point one dataset's
/// name at another's files and hand them to whoever may read the first.
fn check_entry(tool: &str, dataset: &str, value: &str) -> Result<(), ToolError> {
    let entry: Value = serde_json::from_str(value).map_err(|e| {
        invalid(
            tool,
            format!("the value of a catalog key must be a dataset entry (JSON): {e}"),
        )
    })?;
    if entry["name"].as_str() != Some(dataset) {
        return Err(invalid(
            tool,
            format!("the catalog entry under `{CATALOG_PREFIX}{dataset}` must name dataset `{dataset}`, not {}", entry["name"]),
        ));
    }
    let location = entry["location"].as_str().unwrap_or_default();
    hakiri_data_api::check_location(dataset, location).map_err(|e| invalid(tool, e))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct KeyInput {
    key: String,
}

/// A lease the write is fenced by.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FenceInput {
    /// The lease's name.
    name: String,
    /// The token `lease.acquire` returned.
    token: u64,
}

impl From<FenceInput> for Fence {
    fn from(f: FenceInput) -> Fence {
        Fence {
            lease: f.name,
            token: f.token,
            now_ms: 0,
        }
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PutInput {
    key: String,
    value: String,
    /// Apply only if the key is at this version (0: only if absent).
    expect_version: Option<u64>,
    /// Apply only while this lease is held with this token.
    lease: Option<FenceInput>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct DeleteInput {
    key: String,
    expect_version: Option<u64>,
    lease: Option<FenceInput>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListInput {
    #[serde(default)]
    prefix: String,
    /// Start after this key (the last one of the previous page).
    after: Option<String>,
    /// At most this many keys (default 100, at most 1000).
    limit: Option<usize>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AcquireInput {
    name: String,
    /// Who holds it: a daemon's id; acquiring again as the same holder renews.
    holder: String,
    /// How long it is held without renewal, in milliseconds (at most one hour).
    ttl_ms: u64,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReleaseInput {
    name: String,
    token: u64,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NameInput {
    name: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AddInput {
    /// The new node's `[raft] node_id`.
    id: u64,
    /// Its peer URL (`[raft] advertise`), e.g. `http://10.0.0.4:7980`.
    addr: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RemoveInput {
    id: u64,
}

#[derive(Debug, Serialize)]
struct Member {
    id: u64,
    addr: String,
    voter: bool,
}

#[derive(Debug, Serialize)]
struct Follower {
    id: u64,
    /// The last log index known replicated to it.
    matched: Option<u64>,
    /// How many entries it is behind the leader's log.
    lag: Option<u64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Status {
    node_id: u64,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    state: String,
    term: u64,
    leader: Option<u64>,
    last_log_index: Option<u64>,
    /// The last entry applied to the state machine: committed, at least.
    applied_index: Option<u64>,
    snapshot_index: Option<u64>,
    purged_index: Option<u64>,
    members: Vec<Member>,
    /// Per follower, on the leader only.
    replication: Vec<Follower>,
}

impl From<&RaftMetrics<u64, BasicNode>> for Status {
    fn from(m: &RaftMetrics<u64, BasicNode>) -> Self {
        let membership = m.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, n)| Member {
                id: *id,
                addr: n.addr.clone(),
                voter: voters.contains(id),
            })
            .collect();
        let replication = m
            .replication
            .iter()
            .flatten()
            .filter(|(id, _)| **id != m.id)
            .map(|(id, matched)| {
                let matched = matched.map(|l| l.index);
                Follower {
                    id: *id,
                    matched,
                    lag: m
                        .last_log_index
                        .map(|last| last - matched.unwrap_or(0).min(last)),
                }
            })
            .collect();
        Status {
            node_id: m.id,
            state: format!("{:?}", m.state).to_ascii_lowercase(),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
            applied_index: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            members,
            replication,
        }
    }
}

/// Each registered daemon with its health, judged by its lease's expiry.
async fn members(node: &Node) -> Result<Vec<Value>, NodeError> {
    let listed = node
        .read(Read::List {
            prefix: "members/".into(),
            after: None,
            limit: MAX_LIST,
        })
        .await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut out = Vec::new();
    for kv in listed["kvs"].as_array().into_iter().flatten() {
        let key = kv["key"].as_str().unwrap_or_default();
        let name = key.trim_start_matches("members/");
        let mut member: Value = serde_json::from_str(kv["value"].as_str().unwrap_or("{}"))
            .unwrap_or_else(|_| serde_json::json!({ "name": name }));
        let lease = node
            .read(Read::Lease {
                name: format!("member.{name}"),
            })
            .await?;
        let expires = lease["lease"]["expires_ms"].as_u64();
        member["health"] = if expires.is_some_and(|e| e >= now) {
            "up"
        } else {
            "down"
        }
        .into();
        member["heartbeat_expires_ms"] = expires.into();
        out.push(member);
    }
    Ok(out)
}

/// A membership change; one the cluster refuses (the last member, an id
/// taken) answers `succeeded: false` with the reason, like a failed
/// compare-and-swap, rather than failing the call.
async fn change(ctx: &Context, change: Change) -> Result<Value, ToolError> {
    match running(ctx)?.change(change).await {
        Ok(v) => Ok(v),
        Err(NodeError::Refused(why)) => {
            Ok(serde_json::json!({ "succeeded": false, "reason": why }))
        }
        Err(e) => Err(failed(e)),
    }
}

async fn write(ctx: &Context, req: Request) -> Result<Response, ToolError> {
    running(ctx)?.write(req).await.map_err(failed)
}

async fn read(ctx: &Context, req: Read) -> Result<Value, ToolError> {
    running(ctx)?.read(req).await.map_err(failed)
}

pub(crate) fn register(r: &mut Registrar) -> Result<(), KernelError> {
    r.tool(Tool::typed(
        "raft.status",
        "This coordinator's view of its cluster: state, term, leader, log and applied index, members, and per-follower lag on the leader",
        |_: Empty, ctx| async move { Ok(Status::from(&running(&ctx)?.metrics())) },
    ))?;
    r.tool(Tool::typed(
        "cluster.members",
        "The daemons registered with this cluster (hakiri-full/core `serve` with [cluster] coordinators): name, address, profile, version, capabilities, and health `up`, or `down` once its heartbeats stopped for longer than it asked",
        |_: Empty, ctx| async move {
            let node = running(&ctx)?;
            members(&node).await.map_err(failed)
        },
    ))?;
    r.tool(Tool::typed(
        "cluster.add",
        "Adds a node as a voter (it is caught up as a learner first); membership changes go through joint consensus",
        |i: AddInput, ctx| async move {
            if !(i.addr.starts_with("http://") || i.addr.starts_with("https://")) {
                return Err(invalid("cluster.add", format!("addr must be a peer URL like http://host:7980, not {:?}", i.addr)));
            }
            change(&ctx, Change::Add { id: i.id, addr: i.addr }).await
        },
    ))?;
    r.tool(Tool::typed(
        "cluster.remove",
        "Removes a node from the cluster's voters; refused for the last one",
        |i: RemoveInput, ctx| async move { change(&ctx, Change::Remove { id: i.id }).await },
    ))?;
    r.tool(Tool::typed(
        "kv.get",
        "Reads a key linearizably: {revision, kv: {value, version, revision} or null}",
        |i: KeyInput, ctx| async move {
            check_key("kv.get", &i.key)?;
            read(&ctx, Read::Get { key: i.key }).await
        },
    ))?;
    r.tool(Tool::typed(
        "kv.list",
        "Lists keys with a prefix, in order, a page at a time (`after` = the last key of the previous page)",
        |i: ListInput, ctx| async move {
            let limit = i.limit.unwrap_or(100);
            if limit == 0 || limit > MAX_LIST {
                return Err(invalid("kv.list", format!("limit must be 1 to {MAX_LIST}, not {limit}")));
            }
            read(&ctx, Read::List { prefix: i.prefix, after: i.after, limit }).await
        },
    ))?;
    r.tool(Tool::typed(
        "kv.put",
        "Sets a key. With expect_version it is a compare-and-swap (0: create only); with lease, it applies only while that lease is held with that token. `succeeded: false` and `reason` say why it did not apply",
        |i: PutInput, ctx| async move {
            check_key("kv.put", &i.key)?;
            if i.value.len() > MAX_VALUE {
                return Err(invalid("kv.put", format!("a value must be at most {MAX_VALUE} bytes, not {}", i.value.len())));
            }
            let dataset = dataset_of(&i.key, CATALOG_PREFIX);
            authorize_dataset(&ctx, dataset).await?;
            if let Some(d) = dataset {
                check_entry("kv.put", d, &i.value)?;
            }
            write(&ctx, Request::Put { key: i.key, value: i.value, expect: i.expect_version, fence: i.lease.map(Fence::from) }).await
        },
    ))?;
    r.tool(Tool::typed(
        "kv.delete",
        "Deletes a key, under the same conditions as kv.put",
        |i: DeleteInput, ctx| async move {
            check_key("kv.delete", &i.key)?;
            authorize_dataset(&ctx, dataset_of(&i.key, CATALOG_PREFIX)).await?;
            write(
                &ctx,
                Request::Delete {
                    key: i.key,
                    expect: i.expect_version,
                    fence: i.lease.map(Fence::from),
                },
            )
            .await
        },
    ))?;
    r.tool(Tool::typed(
        "lease.acquire",
        "Takes (or, for the same holder, renews) a named lease for ttl_ms; returns its fencing token, which grows with every new grant",
        |i: AcquireInput, ctx| async move {
            check_key("lease.acquire", &i.name)?;
            if i.ttl_ms == 0 || i.ttl_ms > MAX_TTL_MS {
                return Err(invalid("lease.acquire", format!("ttl_ms must be 1 to {MAX_TTL_MS}, not {}", i.ttl_ms)));
            }
            authorize_dataset(&ctx, dataset_of(&i.name, DATASET_LEASE)).await?;
            write(&ctx, Request::Acquire { name: i.name, holder: i.holder, ttl_ms: i.ttl_ms, now_ms: 0 }).await
        },
    ))?;
    r.tool(Tool::typed(
        "lease.release",
        "Gives a lease back, if the token still holds it",
        |i: ReleaseInput, ctx| async move {
            authorize_dataset(&ctx, dataset_of(&i.name, DATASET_LEASE)).await?;
            write(
                &ctx,
                Request::Release {
                    name: i.name,
                    token: i.token,
                },
            )
            .await
        },
    ))?;
    r.tool(Tool::typed(
        "lease.get",
        "Reads a lease linearizably: its holder, token and expiry (ms since the epoch), or null",
        |i: NameInput, ctx| async move { read(&ctx, Read::Lease { name: i.name }).await },
    ))?;
    Ok(())
}
