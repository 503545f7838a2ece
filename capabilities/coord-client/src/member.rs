//! Cluster membership for `serve`: with `[cluster] coordinators = […]`, the
//! daemon registers itself (`members/<name>`: address, profile, version,
//! capabilities) and holds a lease `member.<name>` that it renews every
//! heartbeat; the coordinators list it as down once the lease runs out. A
//! clean stop deregisters. Coordinators that cannot be reached never stop
//! the daemon from serving: it keeps trying, and says so.

use crate::client::Coordinators;
use crate::ClientConfig;
use hakiri_kernel::{Context, RunningService, Section, Shutdown};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

/// `[cluster]` in hakiri.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Coordinator APIs (`host:port`) to register with; empty: no cluster.
    pub coordinators: Vec<String>,
    /// This daemon's name in the cluster (letters, digits, `-`, `_`, `.`);
    /// default: the host name and a hash of the home directory.
    pub name: Option<String>,
    /// How other members reach this daemon, shown in the listing.
    pub advertise: Option<String>,
    /// How often it heartbeats, in milliseconds.
    pub heartbeat_ms: u64,
    /// Listed as down after this long without a heartbeat, in milliseconds.
    pub down_after_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            coordinators: Vec::new(),
            name: None,
            advertise: None,
            heartbeat_ms: 2_000,
            down_after_ms: 10_000,
        }
    }
}

impl Section for ClusterConfig {
    const NAME: &'static str = "cluster";
}

/// The default name: host name plus a hash of the home, so two daemons on
/// one machine differ and a restarted one keeps its name.
fn default_name(ctx: &Context) -> String {
    use std::hash::{Hash, Hasher};
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "host".into());
    let mut h = std::collections::hash_map::DefaultHasher::new();
    ctx.config.data_dir.hash(&mut h);
    format!("{}-{:08x}", host.trim(), h.finish() as u32)
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    anyhow::ensure!(
        ok,
        "[cluster] name `{name}` must be 1 to 128 letters, digits, `-`, `_` or `.`"
    );
    Ok(())
}

/// The `membership` service.
pub(crate) async fn serve(ctx: Context, shutdown: Shutdown) -> anyhow::Result<RunningService> {
    let config = ctx.section::<ClusterConfig>();
    if config.coordinators.is_empty() {
        return Ok(RunningService {
            address: None,
            run: Box::pin(async move {
                shutdown.wait().await;
                Ok(())
            }),
        });
    }
    anyhow::ensure!(
        config.heartbeat_ms > 0 && config.heartbeat_ms < config.down_after_ms,
        "[cluster] heartbeat_ms ({}) must be above 0 and below down_after_ms ({})",
        config.heartbeat_ms,
        config.down_after_ms
    );
    let name = config.name.clone().unwrap_or_else(|| default_name(&ctx));
    check_name(&name)?;
    let url = format!("coord://{}", config.coordinators.join(","));
    let coords = Coordinators::parse(&url, &ctx.section::<ClientConfig>())?;
    let record = json!({
        "name": name,
        "address": config.advertise,
        "profile": ctx.profile.name,
        "version": ctx.profile.version,
        "capabilities": ctx.registry.capabilities.iter().map(|c| c.name).collect::<Vec<_>>(),
        "started": hakiri_kernel::clock::rfc3339(hakiri_kernel::clock::unix_now()),
    });
    let key = format!("members/{name}");
    let lease = format!("member.{name}");
    let renew = json!({ "holder": name, "ttl_ms": config.down_after_ms });
    let every = Duration::from_millis(config.heartbeat_ms);
    Ok(RunningService {
        address: None,
        run: Box::pin(async move {
            let mut registered = false;
            let mut failing = false;
            let mut stop = std::pin::pin!(shutdown.wait());
            loop {
                let beat = async {
                    if !registered {
                        let body = json!({ "value": record.to_string() });
                        coords
                            .send_json(Method::PUT, &format!("/v1/kv/{key}"), &body)
                            .await?;
                    }
                    coords.lease(Method::POST, &lease, &renew).await
                };
                match beat.await {
                    Ok((s, _)) if s.is_success() => {
                        if failing {
                            eprintln!("hakiri: cluster: heartbeats reach the coordinators again");
                        }
                        registered = true;
                        failing = false;
                    }
                    Ok((s, v)) if !failing => {
                        failing = true;
                        eprintln!("hakiri: cluster: the coordinators refused the heartbeat of `{name}` ({s}): {v}; retrying");
                    }
                    Err(e) if !failing => {
                        failing = true;
                        eprintln!("hakiri: cluster: cannot heartbeat to the coordinators: {e:#}; retrying every {every:?}");
                    }
                    _ => {}
                }
                tokio::select! {
                    _ = &mut stop => break,
                    _ = tokio::time::sleep(every) => {}
                }
            }
            // A clean stop leaves the cluster; a crash is seen as down.
            let _ = coords
                .send_json(Method::DELETE, &format!("/v1/kv/{key}"), &json!({}))
                .await;
            Ok(())
        }),
    })
}
