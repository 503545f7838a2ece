//! Embedding Hakiri: depend on `hakiri-kernel` and the capability crates you
//! want, reference them so they are linked, and use the same registry, tools
//! and services the `hakiri` binaries use. Each [`Context`] is one kernel with
//! its own configuration and state, so a program may run several.

// Without these lines the crates are not linked and their registrations vanish.
use hakiri_cap_auth as _;
use hakiri_cap_raft as _;
use hakiri_cap_vector as _;

use hakiri_kernel::{Config, Context, Profile, Shutdown};
use serde_json::json;

static PROFILE: Profile = hakiri_kernel::embedded_profile!("my-app");

/// One kernel over this program's linked capabilities, configured by `toml`.
fn kernel(toml: &str) -> anyhow::Result<Context> {
    Ok(Context::from_inventory(
        Config::parse(toml, None)?,
        &PROFILE,
    )?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let ctx = kernel("")?;
    let names: Vec<&str> = ctx.registry.capabilities.iter().map(|c| c.name).collect();
    println!("{}: capabilities {}", PROFILE.describe(), names.join(", "));
    let hits = ctx
        .call(
            "vector.nearest",
            json!({"vectors": [[0.0, 0.0], [3.0, 4.0]], "query": [2.5, 4.0], "k": 1}),
        )
        .await?;
    println!("nearest: {hits}");

    // Two kernels in one process, each with its own config and its own Raft node.
    let (stop, shutdown) = Shutdown::new();
    let mut running = Vec::new();
    for node_id in [1, 2] {
        let k = kernel(&format!("[raft]\nnode_id = {node_id}\n"))?;
        let svc = k.start_service("raft", shutdown.clone()).await?;
        running.push(tokio::spawn(svc.run));
        println!(
            "kernel {node_id}: {}",
            k.call("raft.status", json!({})).await?
        );
    }
    let _ = stop.send(true);
    for r in running {
        r.await??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn embedded_registry_calls_tools_and_runs_checks() {
        let ctx = kernel("").unwrap();
        let names: Vec<&str> = ctx.registry.capabilities.iter().map(|c| c.name).collect();
        assert_eq!(names, ["auth", "raft", "vector"]);
        let hits = ctx
            .call(
                "vector.nearest",
                json!({"vectors": [[0.0], [10.0]], "query": [9.0], "k": 1}),
            )
            .await
            .unwrap();
        assert_eq!(hits[0]["index"], 1);
        assert!(matches!(
            ctx.check("auth").await,
            hakiri_kernel::CheckOutcome::Ok(_)
        ));
        let err = ctx
            .call("engine.query", json!({"sql": "select 1"}))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("unknown tool `engine.query`"),
            "{err}"
        );
    }

    #[test]
    fn the_profile_reports_this_programs_version() {
        assert_eq!(PROFILE.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(
            PROFILE.describe(),
            format!("my-app {}", env!("CARGO_PKG_VERSION"))
        );
    }

    #[tokio::test]
    async fn two_kernels_with_different_configs_share_no_state() {
        let dir = tempfile::tempdir().unwrap();
        let node = |id: u64| {
            let data = dir.path().join(id.to_string());
            kernel(&format!(
                "[raft]\nnode_id = {id}\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n",
                data.display().to_string()
            ))
            .unwrap()
        };
        let (a, b) = (node(11), node(12));
        let (stop, shutdown) = Shutdown::new();
        let run_a = tokio::spawn(a.start_service("raft", shutdown.clone()).await.unwrap().run);
        // b runs no node: a's must not be visible through b.
        let from_b = b.call("raft.status", json!({})).await;
        assert!(from_b.is_err(), "b sees a's node: {from_b:?}");
        let run_b = tokio::spawn(b.start_service("raft", shutdown).await.unwrap().run);
        assert_eq!(
            a.call("raft.status", json!({})).await.unwrap()["node_id"],
            11
        );
        assert_eq!(
            b.call("raft.status", json!({})).await.unwrap()["node_id"],
            12
        );
        let _ = stop.send(true);
        run_a.await.unwrap().unwrap();
        run_b.await.unwrap().unwrap();
    }
}
