//! Writer leases on the coordinators: one per dataset being written, with a
//! TTL, renewed in the background, and a fencing token the catalog's
//! publishes carry, so a writer that lost its lease (paused, partitioned,
//! taken over after expiry) cannot publish.

use crate::client::Coordinators;
use hakiri_data_api::WriterLock;
use hakiri_kernel::BoxFuture;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// 16 random hex digits (std's per-process random hash keys): unique across
/// processes and machines.
pub(crate) fn nonce() -> String {
    use std::hash::{BuildHasher, Hasher};
    let n = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{n:016x}")
}

/// The lease's name on the coordinators for dataset `name`.
fn lease_name(name: &str) -> String {
    format!("dataset.{name}")
}

/// The tokens of the leases a catalog holds, by dataset.
#[derive(Clone)]
pub(crate) struct Leases {
    coords: Arc<Coordinators>,
    ttl_ms: u64,
    held: Arc<Mutex<HashMap<String, u64>>>,
}

impl Leases {
    pub(crate) fn new(coords: Arc<Coordinators>, ttl_ms: u64) -> Leases {
        Leases {
            coords,
            ttl_ms: ttl_ms.max(100),
            held: Arc::default(),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fence a publish of `name` carries, if this catalog holds its lease.
    pub(crate) fn fence(&self, name: &str) -> Option<Value> {
        let token = *self.held().get(name)?;
        Some(json!({ "name": lease_name(name), "token": token }))
    }

    /// Takes the lease on `name`, or says who holds it.
    pub(crate) async fn acquire(&self, name: &str) -> anyhow::Result<Lease> {
        // Unique across processes and machines: std's per-process random keys.
        let nonce = {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        };
        let holder = format!("pid{}-{nonce:016x}", std::process::id());
        let body = json!({ "holder": holder, "ttl_ms": self.ttl_ms });
        let token = match self.coords.lease(Method::POST, &lease_name(name), &body).await? {
            (StatusCode::OK, v) => v["lease"]["token"].as_u64().unwrap_or(0),
            (StatusCode::CONFLICT, v) => anyhow::bail!(
                "dataset `{name}` is busy: another writer holds its lease ({}); retry when it finishes",
                v["reason"].as_str().unwrap_or("no detail")
            ),
            (s, v) => anyhow::bail!("cannot take the lease on dataset `{name}`: the coordinators answered {s}: {v}"),
        };
        self.held().insert(name.to_string(), token);
        // Renew at a third of the TTL; a renewal that fails leaves the token
        // in place, and the fenced publish then says the lease was lost.
        let (leases, n, every) = (
            self.clone(),
            name.to_string(),
            Duration::from_millis(self.ttl_ms / 3),
        );
        let renew = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let _ = leases
                    .coords
                    .lease(Method::POST, &lease_name(&n), &body)
                    .await;
            }
        });
        Ok(Lease {
            leases: self.clone(),
            name: name.to_string(),
            token,
            renew: Some(renew),
        })
    }
}

/// A held lease; released when given back or dropped.
pub(crate) struct Lease {
    leases: Leases,
    name: String,
    token: u64,
    renew: Option<tokio::task::JoinHandle<()>>,
}

impl Lease {
    fn stop(&mut self) -> Option<BoxFuture<'static, ()>> {
        let renew = self.renew.take()?;
        renew.abort();
        self.leases.held().remove(&self.name);
        let (coords, name, token) = (
            self.leases.coords.clone(),
            lease_name(&self.name),
            self.token,
        );
        Some(Box::pin(async move {
            let _ = coords
                .lease(Method::DELETE, &name, &json!({ "token": token }))
                .await;
        }))
    }
}

impl WriterLock for Lease {
    fn release(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        self.stop().unwrap_or_else(|| Box::pin(async {}))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(release) = self.stop() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(release);
            }
        }
    }
}
