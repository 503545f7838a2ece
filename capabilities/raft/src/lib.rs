//! `raft`: Raft consensus with openraft. Runs a single-node cluster over an
//! in-memory log and key-value state machine (service `raft`), and reports its
//! status (tool `raft.status`).

mod network;
mod store;

use anyhow::Context as _;
use hakiri_kernel::{
    CheckOutcome, Context, KernelError, Registrar, RunningService, Section, Shutdown, Tool,
    ToolError,
};
use openraft::{BasicNode, Raft, RaftMetrics, ServerState};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use store::{LogStore, StateMachine};

hakiri_kernel::capability!(register);

openraft::declare_raft_types!(
    /// The types of Hakiri's Raft cluster: `u64` node ids, `BasicNode`s,
    /// key-value `Request`s and in-memory (`Cursor<Vec<u8>>`) snapshots.
    pub TypeConfig:
        D = Request,
        R = Response,
);

/// A client write: what the state machine applies.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    Set { key: String, value: String },
}

/// What applying a `Request` returned.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Response {
    /// The value the key had before, if any.
    pub previous: Option<String>,
}

/// How long a fresh single node may take to elect itself.
const LEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The node started by this kernel's `raft` service, for `raft.status`;
/// kept in the kernel's state, so two kernels in one process each have theirs.
#[derive(Default)]
struct RunningNode(Mutex<Option<Raft<TypeConfig>>>);

impl RunningNode {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Raft<TypeConfig>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn running(ctx: &Context) -> Option<Raft<TypeConfig>> {
    ctx.state::<RunningNode>()?.slot().clone()
}

fn register(r: &mut Registrar) -> Result<(), KernelError> {
    r.config::<RaftConfig>()?;
    r.state(RunningNode::default())?;
    r.tool(Tool::typed(
        "raft.status",
        "Status of this kernel's Raft node: id, state, term, leader and last log index",
        |_input: StatusInput, ctx| async move {
            let raft = running(&ctx).ok_or_else(|| {
                ToolError::Failed("raft is not running here; start it with `hakiri serve`".into())
            })?;
            let metrics = raft.metrics().borrow().clone();
            Ok(Status::from(&metrics))
        },
    ))?;
    r.service("raft", serve)?;
    r.check(self_check);
    Ok(())
}

/// `[raft]` in hakiri.toml.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftConfig {
    /// This node's id in the cluster.
    pub node_id: u64,
    /// How often a leader sends heartbeats, in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// Election timeout range, in milliseconds; must exceed the heartbeat interval.
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
}

impl Section for RaftConfig {
    const NAME: &'static str = "raft";
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            node_id: 1,
            heartbeat_interval_ms: 50,
            election_timeout_min_ms: 150,
            election_timeout_max_ms: 300,
        }
    }
}

impl RaftConfig {
    fn openraft(&self) -> Result<Arc<openraft::Config>, String> {
        let config = openraft::Config {
            cluster_name: "hakiri".into(),
            heartbeat_interval: self.heartbeat_interval_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            ..Default::default()
        };
        config.validate().map(Arc::new).map_err(|e| {
            format!(
                "invalid [raft] timing: {e}; set heartbeat_interval_ms < election_timeout_min_ms < election_timeout_max_ms"
            )
        })
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct StatusInput {}

#[derive(Debug, Serialize)]
struct Status {
    node_id: u64,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    state: String,
    term: u64,
    leader: Option<u64>,
    last_log_index: Option<u64>,
}

impl From<&RaftMetrics<u64, BasicNode>> for Status {
    fn from(m: &RaftMetrics<u64, BasicNode>) -> Self {
        Status {
            node_id: m.id,
            state: format!("{:?}", m.state).to_ascii_lowercase(),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
        }
    }
}

/// A started single-node cluster whose only member leads.
struct Node {
    raft: Raft<TypeConfig>,
    state_machine: StateMachine,
    metrics: RaftMetrics<u64, BasicNode>,
}

/// Starts a node, makes it the only member of a new cluster and waits until it
/// leads. On failure the node is shut down again.
async fn start_single_node(config: &RaftConfig) -> Result<Node, String> {
    let id = config.node_id;
    let state_machine = StateMachine::default();
    let raft = Raft::new(
        id,
        config.openraft()?,
        network::NoNetwork,
        LogStore::default(),
        state_machine.clone(),
    )
    .await
    .map_err(|e| format!("cannot start raft node {id}: {e}"))?;
    let elected = async {
        raft.initialize(BTreeMap::from([(id, BasicNode::default())]))
            .await
            .map_err(|e| format!("cannot initialize a single-node cluster with node {id}: {e}"))?;
        raft.wait(Some(LEADER_TIMEOUT))
            .metrics(
                |m| m.state == ServerState::Leader && m.current_leader == Some(id),
                "single-node leader",
            )
            .await
            .map_err(|e| {
                format!("raft node {id} did not become leader within {LEADER_TIMEOUT:?}: {e}")
            })
    };
    match elected.await {
        Ok(metrics) => Ok(Node {
            raft,
            state_machine,
            metrics,
        }),
        Err(e) => {
            let _ = raft.shutdown().await;
            Err(e)
        }
    }
}

/// The `raft` service: one node, leader of its own cluster, until shutdown.
async fn serve(ctx: Context, shutdown: Shutdown) -> anyhow::Result<RunningService> {
    let config = ctx.section::<RaftConfig>();
    let state = ctx
        .state::<RunningNode>()
        .context("raft state missing from this kernel")?;
    if state.slot().is_some() {
        anyhow::bail!("a raft node is already running in this kernel");
    }
    let node = start_single_node(&config)
        .await
        .map_err(anyhow::Error::msg)?;
    let raft = node.raft;
    let claimed = {
        let mut slot = state.slot();
        slot.is_none() && slot.replace(raft.clone()).is_none()
    };
    if !claimed {
        let _ = raft.shutdown().await;
        anyhow::bail!("a raft node is already running in this kernel");
    }
    Ok(RunningService {
        address: None,
        run: Box::pin(async move {
            shutdown.wait().await;
            state.slot().take();
            raft.shutdown()
                .await
                .context("raft node did not shut down cleanly")
        }),
    })
}

/// Elects a single node, commits one client write through the log and reads
/// it back from the state machine.
async fn self_check(ctx: Context) -> CheckOutcome {
    let config = ctx.section::<RaftConfig>();
    let node = match start_single_node(&config).await {
        Ok(n) => n,
        Err(e) => return CheckOutcome::Failed(e),
    };
    let write = Request::Set {
        key: "hakiri.check".into(),
        value: "ok".into(),
    };
    let outcome = match node.raft.client_write(write).await {
        Err(e) => CheckOutcome::Failed(format!("client write failed on the leader: {e}")),
        Ok(_) if node.state_machine.get("hakiri.check").as_deref() != Some("ok") => {
            CheckOutcome::Failed("a committed write was not applied to the state machine".into())
        }
        Ok(resp) => CheckOutcome::Ok(format!(
            "single-node leader elected at term {}; committed and applied a write at log index {}",
            node.metrics.current_term, resp.log_id.index
        )),
    };
    if let Err(e) = node.raft.shutdown().await {
        return CheckOutcome::Failed(format!("raft node did not shut down cleanly: {e}"));
    }
    outcome
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

    #[tokio::test]
    async fn check_elects_a_leader_and_commits_a_write() {
        match ctx("").check("raft").await {
            CheckOutcome::Ok(detail) => {
                assert!(detail.contains("leader elected at term 1"), "{detail}");
                // index 0: membership, 1: the leader's blank entry, 2: the write.
                assert!(detail.ends_with("log index 2"), "{detail}");
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
        let c = Config::parse("[raft]\nnode = 7\n", None).unwrap();
        let err = Context::from_inventory(c, &PROFILE)
            .err()
            .expect("unknown key refused");
        assert!(err.to_string().contains("[raft]"), "{err}");
        let reg = Registry::from_inventory().unwrap();
        assert!(reg.config_sections.contains_key("raft"));
    }

    /// Each kernel keeps its own node: two in one process do not collide.
    #[tokio::test]
    async fn two_kernels_run_two_nodes() {
        let (a, b) = (ctx("[raft]\nnode_id = 1\n"), ctx("[raft]\nnode_id = 2\n"));
        let (trigger, shutdown) = Shutdown::new();
        let mut runs = Vec::new();
        for c in [&a, &b] {
            let start = c.registry.services["raft"].item.clone();
            let svc = start(c.clone(), shutdown.clone()).await.expect("starts");
            runs.push(tokio::spawn(svc.run));
        }
        assert_eq!(
            a.call("raft.status", json!({})).await.unwrap()["node_id"],
            1
        );
        assert_eq!(
            b.call("raft.status", json!({})).await.unwrap()["node_id"],
            2
        );
        let _ = trigger.send(true);
        for run in runs {
            run.await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn service_runs_a_leader_that_status_reports() {
        let ctx = ctx("[raft]\nnode_id = 7\n");
        let err = ctx.call("raft.status", json!({})).await.unwrap_err();
        assert!(err.to_string().contains("hakiri serve"), "{err}");

        let (trigger, shutdown) = Shutdown::new();
        let start = ctx.registry.services["raft"].item.clone();
        let svc = start(ctx.clone(), shutdown.clone())
            .await
            .expect("raft service starts");
        let run = tokio::spawn(svc.run);

        let again = start(ctx.clone(), shutdown).await;
        assert!(
            again.is_err(),
            "a second node in the same kernel must be refused"
        );

        let status = ctx.call("raft.status", json!({})).await.expect("status");
        assert_eq!(status["node_id"], 7);
        assert_eq!(status["state"], "leader");
        assert_eq!(status["leader"], 7);
        assert!(status["term"].as_u64().unwrap() >= 1, "{status}");
        assert!(status["last_log_index"].as_u64().unwrap() >= 1, "{status}");

        let _ = trigger.send(true);
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("raft service stops on shutdown")
            .unwrap()
            .unwrap();
        assert!(ctx.call("raft.status", json!({})).await.is_err());
    }
}
