//! The coordinators' HTTP API, as the catalog uses it: any coordinator
//! answers; one that is down, or has no leader now, sends us to the next.

use crate::ClientConfig;
use anyhow::{bail, Context as _};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// What a conditional write did.
pub(crate) enum Put {
    Applied,
    /// Its condition failed; the coordinators' reason.
    Refused(String),
}

pub(crate) struct Coordinators {
    endpoints: Vec<String>,
    client: reqwest::Client,
    token: Option<String>,
    token_env: String,
    /// The endpoint that answered last: asked first next time.
    preferred: AtomicUsize,
}

impl Coordinators {
    /// `coord://h1:7979,h2:7979`: one or more `host:port` of coordinator APIs.
    pub(crate) fn parse(url: &str, config: &ClientConfig) -> anyhow::Result<Coordinators> {
        let rest = url
            .strip_prefix("coord://")
            .with_context(|| format!("not a coord:// URL: {url}"))?;
        let endpoints: Vec<String> = rest
            .trim_end_matches('/')
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| format!("http://{h}"))
            .collect();
        if endpoints.is_empty() {
            bail!("`{url}` names no coordinator; write coord://host:7979[,host:7979…]");
        }
        for e in &endpoints {
            let host = &e["http://".len()..];
            if host.contains('/') || host.contains('@') || !host.contains(':') {
                bail!("`{host}` in `{url}` is not host:port; write coord://host:7979[,host:7979…]");
            }
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms.max(1)))
            .connect_timeout(Duration::from_secs(2))
            .build()
            .context("cannot build the coordinator client")?;
        Ok(Coordinators {
            endpoints,
            client,
            token: std::env::var(&config.token_env)
                .ok()
                .filter(|t| !t.is_empty()),
            token_env: config.token_env.clone(),
            preferred: AtomicUsize::new(0),
        })
    }

    /// Sends to each coordinator in turn until one answers with something
    /// other than "unavailable"; returns the status and JSON body.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let first = self.preferred.load(Ordering::Relaxed);
        let mut tried = Vec::new();
        for i in 0..self.endpoints.len() {
            let at = (first + i) % self.endpoints.len();
            let url = format!("{}{path}", self.endpoints[at]);
            let mut req = self.client.request(method.clone(), &url);
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    tried.push(format!("{}: {e}", self.endpoints[at]));
                    continue;
                }
            };
            let status = resp.status();
            let value: Value = resp.json().await.unwrap_or(Value::Null);
            match status {
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY => {
                    tried.push(format!("{}: {}", self.endpoints[at], value["error"]));
                    continue;
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => bail!(
                    "the coordinator at {} refused the catalog's token ({}); set {} to a token minted on the coordinators with `hakiri-coord auth token --tool 'kv.*'`",
                    self.endpoints[at],
                    value["error"].as_str().unwrap_or("no detail"),
                    self.token_env
                ),
                _ => {
                    self.preferred.store(at, Ordering::Relaxed);
                    return Ok((status, value));
                }
            }
        }
        bail!(
            "no coordinator answered; is a majority of the cluster up? tried {}",
            tried.join("; ")
        )
    }

    fn unexpected(path: &str, status: StatusCode, v: &Value) -> anyhow::Error {
        anyhow::anyhow!(
            "the coordinators answered {status} to {path}: {}",
            v["error"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| v.to_string())
        )
    }

    /// `{value, version, revision}` of `key`, if present.
    pub(crate) async fn get(&self, key: &str) -> anyhow::Result<Option<Value>> {
        let path = format!("/v1/kv/{key}");
        match self.send(Method::GET, &path, None).await? {
            (StatusCode::OK, v) => Ok(Some(v["kv"].clone())),
            (StatusCode::NOT_FOUND, _) => Ok(None),
            (s, v) => Err(Self::unexpected(&path, s, &v)),
        }
    }

    /// A conditional put.
    pub(crate) async fn put(&self, key: &str, body: &Value) -> anyhow::Result<Put> {
        let path = format!("/v1/kv/{key}");
        match self.send(Method::PUT, &path, Some(body)).await? {
            (StatusCode::OK, _) => Ok(Put::Applied),
            (StatusCode::CONFLICT, v) => Ok(Put::Refused(
                v["reason"].as_str().unwrap_or_default().to_string(),
            )),
            (s, v) => Err(Self::unexpected(&path, s, &v)),
        }
    }

    /// Any request; the status and body, whatever they are.
    pub(crate) async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<(StatusCode, Value)> {
        self.send(method, path, Some(body)).await
    }

    /// `POST`/`DELETE` on a lease: the status and body, whatever they are.
    pub(crate) async fn lease(
        &self,
        method: Method,
        name: &str,
        body: &Value,
    ) -> anyhow::Result<(StatusCode, Value)> {
        self.send(method, &format!("/v1/leases/{name}"), Some(body))
            .await
    }

    /// Whether `key` existed.
    pub(crate) async fn delete(&self, key: &str) -> anyhow::Result<bool> {
        let path = format!("/v1/kv/{key}");
        match self.send(Method::DELETE, &path, None).await? {
            (StatusCode::OK, v) => Ok(!v["previous"].is_null()),
            (s, v) => Err(Self::unexpected(&path, s, &v)),
        }
    }

    /// Every `(key, kv)` under `prefix`, in key order.
    pub(crate) async fn list(&self, prefix: &str) -> anyhow::Result<Vec<(String, Value)>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!("/v1/kv?prefix={prefix}&limit=1000");
            if let Some(a) = &after {
                path.push_str(&format!("&after={a}"));
            }
            let page = match self.send(Method::GET, &path, None).await? {
                (StatusCode::OK, v) => v,
                (s, v) => return Err(Self::unexpected(&path, s, &v)),
            };
            let kvs = page["kvs"].as_array().cloned().unwrap_or_default();
            if kvs.is_empty() {
                return Ok(out);
            }
            for kv in kvs {
                let k = kv["key"].as_str().unwrap_or_default().to_string();
                after = Some(k.clone());
                out.push((k, kv));
            }
        }
    }
}
