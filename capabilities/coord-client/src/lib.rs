//! `coord-client`: what core and full need of a hakiri-coord cluster, as a
//! thin client of the coordinators' HTTP API (no Raft code):
//!
//! * the `coord://c1:7979,c2:7979,c3:7979` dataset catalog (`catalog`), so
//!   several daemons share one view of their datasets, with each dataset's
//!   writer lock a lease on the coordinators (`lease`);
//! * membership (`member`): `serve` with `[cluster] coordinators = […]`
//!   registers the daemon and heartbeats; the coordinators list it, and mark
//!   it down when its heartbeats stop.
//!
//! Any coordinator answers (followers forward to the leader); a request
//! that finds one down or leaderless tries the next. Datasets' files live on
//! shared storage; the catalog entry says where.

mod catalog;
mod client;
mod lease;
mod member;

use client::Coordinators;
use hakiri_data_api::{CatalogBackend, CatalogConfig};
use hakiri_kernel::{CheckOutcome, Context, KernelError, Registrar, Section};
use serde::Deserialize;
use std::sync::Arc;

hakiri_kernel::capability!(register);

/// `[coord-client]` in hakiri.toml: how to talk to the coordinators.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientConfig {
    /// The environment variable holding a coordinator API token (one minted
    /// with `hakiri-coord auth token --tool 'kv.*'`); unset: no token, for
    /// coordinators serving with `[coord-api] auth = "none"` on loopback.
    pub token_env: String,
    /// How long one request may take, in milliseconds.
    pub timeout_ms: u64,
    /// A writer's lease on a dataset lasts this long without renewal (it is
    /// renewed every third of it): how long a crashed writer blocks others.
    pub lease_ttl_ms: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            token_env: "HAKIRI_COORD_TOKEN".into(),
            timeout_ms: 30_000,
            lease_ttl_ms: 15_000,
        }
    }
}

impl Section for ClientConfig {
    const NAME: &'static str = "coord-client";
}

fn register(r: &mut Registrar) -> Result<(), KernelError> {
    r.config::<ClientConfig>()?;
    r.config::<CatalogConfig>()?;
    r.config::<member::ClusterConfig>()?;
    r.provide::<dyn CatalogBackend>("coord", Arc::new(catalog::Backend))?;
    r.service("membership", member::serve)?;
    r.check(|ctx| async move { self_check(&ctx).await });
    Ok(())
}

/// With coordinators configured (`[cluster] coordinators`, else a
/// `coord://` `[catalog] url`): a compare-and-swap write, a read and a
/// delete of a scratch key, and a lease taken and given back.
async fn self_check(ctx: &Context) -> anyhow::Result<CheckOutcome> {
    let members = &ctx.section::<member::ClusterConfig>().coordinators;
    let url = if members.is_empty() {
        ctx.section::<CatalogConfig>().url.clone()
    } else {
        format!("coord://{}", members.join(","))
    };
    if !url.starts_with("coord://") {
        return Ok(CheckOutcome::Skipped(
            "no coordinators configured ([cluster] coordinators, or [catalog] url = \"coord://host:7979,…\")".into(),
        ));
    }
    let coords = Arc::new(Coordinators::parse(&url, &ctx.section::<ClientConfig>())?);
    let key = format!("check/{}", lease::nonce());
    let put = serde_json::json!({ "value": "ok", "expect_version": 0 });
    anyhow::ensure!(
        matches!(coords.put(&key, &put).await?, client::Put::Applied),
        "the coordinators refused a create-only write of a fresh key"
    );
    let read = coords.get(&key).await?;
    anyhow::ensure!(
        read.as_ref().is_some_and(|kv| kv["value"] == "ok"),
        "read back {read:?}"
    );
    anyhow::ensure!(
        coords.delete(&key).await?,
        "the scratch key was not there to delete"
    );
    let leases = lease::Leases::new(coords.clone(), 5_000);
    let held = leases.acquire(&format!("check-{}", lease::nonce())).await?;
    hakiri_data_api::WriterLock::release(Box::new(held)).await;
    Ok(CheckOutcome::Ok(format!(
        "compare-and-swap, read and delete of a key, and a lease taken and released, at {url}"
    )))
}
