//! Embedding Hakiri in your own program: depend on `hakiri-kernel` and the
//! capability crates you want, reference them so they are linked, and use the
//! same registry and tools the `hakiri` binaries use.

// Without these lines the crates are not linked and their registrations vanish.
use hakiri_cap_auth as _;
use hakiri_cap_vector as _;

use hakiri_kernel::{Config, Context, Profile, Registry};
use serde_json::json;
use std::sync::Arc;

static PROFILE: Profile = Profile::embedded("my-app");

/// The registry and a context over this program's linked capabilities.
fn context() -> anyhow::Result<Context> {
    let registry = Registry::from_inventory()?;
    Ok(Context::new(
        Arc::new(registry),
        Arc::new(Config::load(None)?),
        &PROFILE,
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let ctx = context()?;
    let names: Vec<&str> = ctx.registry.capabilities.iter().map(|c| c.name).collect();
    println!("capabilities: {}", names.join(", "));
    let hits = ctx
        .call(
            "vector.nearest",
            json!({"vectors": [[0.0, 0.0], [3.0, 4.0]], "query": [2.5, 4.0], "k": 1}),
        )
        .await?;
    println!("nearest: {hits}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn embedded_registry_calls_tools_and_runs_checks() {
        let ctx = context().unwrap();
        let names: Vec<&str> = ctx.registry.capabilities.iter().map(|c| c.name).collect();
        assert_eq!(names, ["auth", "vector"]);
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
}
