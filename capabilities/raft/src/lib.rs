//! `raft`: the coordinators' Raft cluster (openraft). Each node keeps its
//! log, vote and snapshots on disk (`store`), talks to its peers over HTTP
//! (`network`, `peer`), and serves a replicated key-value store with
//! compare-and-swap and fenced leases (`store::machine`) through tools
//! (`tools`) that followers forward to the leader (`node`). `cli` adds
//! `hakiri cluster init|join|status|remove`.

mod cli;
mod config;
mod http;
mod network;
mod node;
mod peer;
mod store;
mod tools;

pub use config::RaftConfig;
pub use node::{Change, Node, NodeError, Read};
pub use store::{Fence, Lease, Request, Response, StoreError, Versioned};

use anyhow::Context as _;
use hakiri_kernel::{CheckOutcome, Context, KernelError, Registrar, RunningService, Shutdown};
use openraft::{BasicNode, Raft, ServerState};
use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

hakiri_kernel::capability!(register);

openraft::declare_raft_types!(
    /// The types of Hakiri's Raft cluster: `u64` node ids, `BasicNode`s
    /// (the peer URL), key-value `Request`s and in-memory snapshots.
    pub TypeConfig:
        D = Request,
        R = Response,
);

/// How long a new one-node cluster may take to elect itself, and a joining
/// node to be added.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The node started by this kernel's `raft` service, for the tools; kept in
/// the kernel's state, so two kernels in one process each have theirs.
#[derive(Default)]
struct RunningNode(Mutex<Option<Arc<Node>>>);

impl RunningNode {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<Node>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn register(r: &mut Registrar) -> Result<(), KernelError> {
    r.config::<RaftConfig>()?;
    r.state(RunningNode::default())?;
    tools::register(r)?;
    r.command(cli::command(), hakiri_kernel::Acts::By(cli::acts), cli::run)?;
    r.service("raft", serve)?;
    r.check(self_check);
    Ok(())
}

/// Opens the node's store and starts its Raft instance (not yet serving peers).
async fn open_node(config: &RaftConfig, dir: &Path, secret: &str) -> anyhow::Result<Arc<Node>> {
    let openraft = config.openraft().map_err(anyhow::Error::msg)?;
    let (log, machine) = store::open(dir, &config.cluster, config.node_id)?;
    let peers = network::peer_client(&config.cluster, secret);
    let raft = Raft::new(
        config.node_id,
        openraft,
        network::Network {
            client: peers.clone(),
        },
        log,
        machine.clone(),
    )
    .await
    .with_context(|| format!("cannot start raft node {}", config.node_id))?;
    Ok(Arc::new(Node {
        id: config.node_id,
        raft,
        machine,
        peers,
    }))
}

/// Makes a fresh node a member: of a new one-node cluster, or of the
/// cluster at `[raft] join`. A node with a log already is a member.
async fn become_member(node: &Node, config: &RaftConfig, advertised: &str) -> anyhow::Result<()> {
    if node.raft.is_initialized().await? {
        return Ok(());
    }
    let id = config.node_id;
    match &config.join {
        None => {
            node.raft
                .initialize(BTreeMap::from([(id, BasicNode::new(advertised))]))
                .await
                .with_context(|| format!("cannot initialize a new cluster with node {id}"))?;
            node.raft
                .wait(Some(START_TIMEOUT))
                .metrics(
                    |m| m.state == ServerState::Leader && m.current_leader == Some(id),
                    "one-node leader",
                )
                .await
                .with_context(|| {
                    format!("node {id} did not become leader within {START_TIMEOUT:?}")
                })?;
        }
        Some(url) => {
            let url = format!("{}/raft/members", url.trim_end_matches('/'));
            let change = Change::Add {
                id,
                addr: advertised.to_string(),
            };
            // Refused for good: a wrong secret (401) or cluster (409); a
            // change already under way (503, another node joining) passes.
            let deadline = std::time::Instant::now() + START_TIMEOUT;
            loop {
                let added: Result<serde_json::Value, _> = node
                    .peers
                    .json(hyper::Method::POST, &url, Some(&change), START_TIMEOUT)
                    .await;
                match added {
                    Ok(_) => break,
                    Err(e) if std::time::Instant::now() > deadline => {
                        anyhow::bail!("node {id} could not join through {url}: {e}")
                    }
                    Err(http::HttpError::Status {
                        status, message, ..
                    }) if status == 401 || status == 409 => {
                        anyhow::bail!("node {id} could not join through {url}: {message}")
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        }
    }
    Ok(())
}

/// The `raft` service: this node, serving its peers, until shutdown.
async fn serve(ctx: Context, shutdown: Shutdown) -> anyhow::Result<RunningService> {
    let config = ctx.section::<RaftConfig>();
    let state = ctx
        .state::<RunningNode>()
        .context("raft state missing from this kernel")?;
    if state.slot().is_some() {
        anyhow::bail!("a raft node is already running in this kernel");
    }
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot listen on {}: {e}; set [raft] listen", config.listen)
        })?;
    let addr = listener.local_addr()?;
    let dir = config
        .data_dir
        .clone()
        .unwrap_or_else(|| ctx.config.data_dir.join("raft"));
    let advertised = config
        .advertise
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let secret = config.cluster_secret(&dir)?;
    let node = open_node(&config, &dir, &secret).await?;
    let hosts = config.peer_hosts(&advertised);
    let app = peer::router(node.clone(), config.cluster.clone(), secret, hosts);
    let peer_shutdown = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(peer_shutdown.wait())
            .await
    });
    if let Err(e) = become_member(&node, &config, &advertised).await {
        let _ = node.raft.shutdown().await;
        server.abort();
        return Err(e);
    }
    let claimed = {
        let mut slot = state.slot();
        slot.is_none() && slot.replace(node.clone()).is_none()
    };
    if !claimed {
        let _ = node.raft.shutdown().await;
        anyhow::bail!("a raft node is already running in this kernel");
    }
    Ok(RunningService {
        address: Some(advertised),
        run: Box::pin(async move {
            shutdown.wait().await;
            state.slot().take();
            let stopped = node.raft.shutdown().await;
            let _ = server.await;
            stopped.context("raft node did not shut down cleanly")
        }),
    })
}

/// Opens a node's store again after a shutdown in this process: openraft's
/// tasks let go of it shortly after `shutdown` returns.
async fn reopen(config: &RaftConfig, dir: &Path) -> anyhow::Result<Arc<Node>> {
    for _ in 0..100 {
        match open_node(config, dir, SCRATCH_SECRET).await {
            Err(e) if matches!(e.downcast_ref(), Some(StoreError::InUse { .. })) => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            other => return other,
        }
    }
    open_node(config, dir, SCRATCH_SECRET).await
}

/// The self-check's one-node cluster never serves peers.
const SCRATCH_SECRET: &str = "self-check";

/// Elects a one-node cluster in a scratch directory, commits a write
/// through the log, reads it back linearizably, and checks it survives a
/// restart from disk.
async fn self_check(ctx: Context) -> CheckOutcome {
    match check(&ctx).await {
        Ok(detail) => CheckOutcome::Ok(detail),
        Err(e) => CheckOutcome::Failed(format!("{e:#}")),
    }
}

async fn check(ctx: &Context) -> anyhow::Result<String> {
    let mut config = (*ctx.section::<RaftConfig>()).clone();
    config.join = None;
    let dir = tempfile::tempdir().context("cannot make a scratch directory")?;
    let node = open_node(&config, dir.path(), SCRATCH_SECRET).await?;
    let written = async {
        become_member(&node, &config, "http://127.0.0.1:0").await?;
        let put = Request::Put {
            key: "hakiri.check".into(),
            value: "ok".into(),
            expect: Some(0),
            fence: None,
        };
        let resp = node.write(put).await?;
        anyhow::ensure!(resp.succeeded, "the check's write did not apply: {resp:?}");
        Ok(node.metrics())
    }
    .await;
    node.raft
        .shutdown()
        .await
        .context("raft node did not shut down")?;
    let metrics = written?;
    drop(node);
    let again = reopen(&config, dir.path()).await?;
    let value = async {
        again
            .raft
            .wait(Some(START_TIMEOUT))
            .state(ServerState::Leader, "leader after restart")
            .await?;
        again
            .read(Read::Get {
                key: "hakiri.check".into(),
            })
            .await
            .map_err(anyhow::Error::from)
    }
    .await;
    let _ = again.raft.shutdown().await;
    let value = value?;
    anyhow::ensure!(
        value["kv"]["value"] == "ok",
        "the committed write was not there after a restart: {value}"
    );
    Ok(format!(
        "one-node leader elected at term {}; committed a write at log index {} and read it back after a restart from disk",
        metrics.current_term,
        metrics.last_log_index.unwrap_or(0)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hakiri_kernel::{Config, Profile, Registry};
    use serde_json::json;

    static PROFILE: Profile = hakiri_kernel::embedded_profile!("raft-test");

    fn ctx(config: &str) -> Context {
        Context::from_inventory(Config::parse(config, None).unwrap(), &PROFILE).expect("context")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn check_elects_commits_and_survives_a_restart() {
        match ctx("").check("raft").await {
            CheckOutcome::Ok(detail) => {
                assert!(detail.contains("leader elected at term 1"), "{detail}");
                assert!(detail.contains("after a restart from disk"), "{detail}");
            }
            other => panic!("raft self-check did not succeed: {other:?}"),
        }
    }

    #[tokio::test]
    async fn check_reports_bad_timing() {
        let c = ctx("[raft]\nheartbeat_interval_ms = 500\n");
        match c.check("raft").await {
            CheckOutcome::Failed(e) => assert!(e.contains("invalid [raft] timing"), "{e}"),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn config_defaults_and_rejects_unknown_keys() {
        let raft = ctx("[raft]\nnode_id = 7\n").section::<RaftConfig>();
        assert_eq!(
            *raft,
            RaftConfig {
                node_id: 7,
                ..RaftConfig::default()
            }
        );
        assert_eq!(raft.advertised(), "http://127.0.0.1:7980");
        let c = Config::parse("[raft]\nnode = 7\n", None).unwrap();
        let err = Context::from_inventory(c, &PROFILE)
            .err()
            .expect("unknown key refused");
        assert!(err.to_string().contains("[raft]"), "{err}");
        let reg = Registry::from_inventory().unwrap();
        assert!(reg.config_sections.contains_key("raft"));
    }

    fn serving(dir: &Path, id: u64) -> Context {
        ctx(&format!(
            "[raft]\nnode_id = {id}\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n",
            dir.display().to_string()
        ))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn service_leads_writes_and_keeps_them_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = serving(dir.path(), 7);
        let err = ctx.call("raft.status", json!({})).await.unwrap_err();
        assert!(err.to_string().contains("hakiri serve"), "{err}");

        let (trigger, shutdown) = Shutdown::new();
        let start = ctx.registry.services["raft"].item.clone();
        let svc = start(ctx.clone(), shutdown.clone()).await.expect("starts");
        let run = tokio::spawn(svc.run);
        assert!(
            start(ctx.clone(), shutdown).await.is_err(),
            "a second node in one kernel"
        );

        let status = ctx.call("raft.status", json!({})).await.expect("status");
        assert_eq!(
            (status["node_id"].clone(), status["state"].clone()),
            (json!(7), json!("leader"))
        );
        assert_eq!(status["members"][0]["id"], 7);
        let put =
            |v: &str, expect: u64| json!({ "key": "a/b", "value": v, "expect_version": expect });
        let first = ctx.call("kv.put", put("1", 0)).await.unwrap();
        assert_eq!(first["succeeded"], true, "{first}");
        let lost = ctx.call("kv.put", put("2", 0)).await.unwrap();
        assert_eq!(lost["succeeded"], false, "{lost}");
        assert!(
            lost["reason"]
                .as_str()
                .unwrap()
                .contains("at version 1, not 0"),
            "{lost}"
        );
        let long = "k".repeat(tools::MAX_KEY + 1);
        let err = ctx
            .call("kv.get", json!({ "key": long }))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("a key must be 1 to 1024 bytes"),
            "{err}"
        );

        let _ = trigger.send(true);
        run.await.unwrap().unwrap();

        // A new kernel over the same directory: the write is there.
        let again = serving(dir.path(), 7);
        let (trigger, shutdown) = Shutdown::new();
        let svc = start(again.clone(), shutdown).await.expect("restarts");
        let run = tokio::spawn(svc.run);
        let node = again
            .state::<RunningNode>()
            .unwrap()
            .slot()
            .clone()
            .unwrap();
        node.raft
            .wait(Some(START_TIMEOUT))
            .state(ServerState::Leader, "leader again")
            .await
            .unwrap();
        let got = again.call("kv.get", json!({ "key": "a/b" })).await.unwrap();
        assert_eq!(got["kv"]["value"], "1", "{got}");
        let _ = trigger.send(true);
        run.await.unwrap().unwrap();
        drop(node);

        // Another node id, or another cluster, is refused on this directory.
        let other = serving(dir.path(), 8);
        let (_t, shutdown) = Shutdown::new();
        let err = match start(other, shutdown).await {
            Ok(_) => panic!("started over another node's data"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            err.contains("belongs to node 7 of cluster `hakiri`"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_truncated_store_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let config = RaftConfig::default();
        let node = open_node(&config, dir.path(), SCRATCH_SECRET)
            .await
            .unwrap();
        become_member(&node, &config, "http://127.0.0.1:0")
            .await
            .unwrap();
        for i in 0..50 {
            let put = Request::Put {
                key: format!("k{i}"),
                value: "v".repeat(1000),
                expect: None,
                fence: None,
            };
            node.write(put).await.unwrap();
        }
        node.raft.shutdown().await.unwrap();
        drop(node);
        let file = dir.path().join("raft.redb");
        let len = std::fs::metadata(&file).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(len / 3)
            .unwrap();
        let err = match reopen(&config, dir.path()).await {
            Ok(_) => panic!("a truncated store opened"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains("is damaged"), "{err}");
        assert!(err.contains(&file.display().to_string()), "{err}");
    }
}
