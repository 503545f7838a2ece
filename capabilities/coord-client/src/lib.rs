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

/// With `[catalog] url = "coord://…"`: runs the catalog conformance checks'
/// basic round trip against the coordinators.
async fn self_check(ctx: &Context) -> anyhow::Result<CheckOutcome> {
    let url = ctx.section::<CatalogConfig>().url.clone();
    if !url.starts_with("coord://") {
        return Ok(CheckOutcome::Skipped(
            "no coord:// catalog configured ([catalog] url = \"coord://host:7979,…\")".into(),
        ));
    }
    let config = ctx.section::<ClientConfig>();
    let coords = Coordinators::parse(&url, &config)?;
    let n = coords.list(catalog::PREFIX).await?.len();
    Ok(CheckOutcome::Ok(format!(
        "listed {n} dataset(s) on the coordinators at {url}"
    )))
}
