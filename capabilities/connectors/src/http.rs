//! The `http` connector: `http://` and `https://` URLs, streamed. Every
//! request runs under `[connectors]` timeouts; a remote caller's request is
//! also held to `allow_urls` (redirects included), to public addresses (or
//! `allow_addresses`) and to `max_bytes`.

use crate::config::ConnectorsConfig;
use crate::guard::{non_public, RemotePolicy};
use anyhow::{anyhow, bail, Context as _};
use hakiri_data_api::{redact, Connector, SourceReader};
use hakiri_kernel::{BoxFuture, Context};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::Arc;

/// Most redirects a remote caller's request follows.
pub const MAX_REDIRECTS: usize = 5;

type BoxError = Box<dyn StdError + Send + Sync>;

pub(crate) fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// `http://` and `https://` URLs, streamed: the body arrives in chunks through
/// a bounded channel, never held whole in memory.
pub(crate) struct HttpConnector;

impl Connector for HttpConnector {
    fn accepts(&self, source: &str, _ctx: &Context) -> bool {
        is_url(source)
    }

    fn open<'a>(
        &'a self,
        source: &'a str,
        ctx: &'a Context,
    ) -> BoxFuture<'a, anyhow::Result<SourceReader>> {
        Box::pin(async move {
            let cfg = ctx.section::<ConnectorsConfig>();
            let shown = redact(source);
            let url =
                Url::parse(source).map_err(|e| anyhow!("`{shown}` is not a valid URL: {e}"))?;
            let remote = !ctx.caller().is_local();
            let policy = if remote {
                let policy = RemotePolicy::from_config(&cfg).map_err(|e| anyhow!(e))?;
                policy.check_url(&url).map_err(|e| anyhow!(e))?;
                Some(Arc::new(policy))
            } else {
                None
            };
            let client = make_client(&cfg, policy)?;
            let mut resp = client
                .get(url)
                .send()
                .await
                .map_err(|e| request_error(&shown, &cfg, e))?;
            let status = resp.status();
            if !status.is_success() {
                bail!("GET {shown} answered {status}");
            }
            let cap = remote.then_some(cfg.max_bytes);
            if let (Some(max), Some(len)) = (cap, resp.content_length()) {
                if len > max {
                    bail!("{}", too_big(&shown, max));
                }
            }
            let (tx, reader) = hakiri_data_api::chunk_channel(8);
            let timeouts = cfg.clone();
            tokio::spawn(async move {
                let mut total: u64 = 0;
                loop {
                    let item = match resp.chunk().await {
                        Ok(Some(bytes)) => {
                            total = total.saturating_add(bytes.len() as u64);
                            match cap {
                                Some(max) if total > max => {
                                    Err(std::io::Error::other(too_big(&shown, max)))
                                }
                                _ => Ok(bytes.to_vec()),
                            }
                        }
                        Ok(None) => break,
                        Err(e) => Err(std::io::Error::other(format!(
                            "{:#}",
                            request_error(&shown, &timeouts, e)
                        ))),
                    };
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        break;
                    }
                }
            });
            Ok(reader)
        })
    }
}

fn too_big(shown: &str, max: u64) -> String {
    format!("{shown} delivers more than {max} bytes, the most a remote caller may read over HTTP; raise [connectors] max_bytes to allow it")
}

/// A client with `[connectors]` timeouts that holds every request, redirect
/// and resolved address to `policy`: the client a sandboxed guest's requests
/// go through.
pub fn guarded_client(
    cfg: &ConnectorsConfig,
    policy: Arc<RemotePolicy>,
) -> anyhow::Result<reqwest::Client> {
    make_client(cfg, Some(policy))
}

/// A client with `[connectors]` timeouts; for a remote caller (`policy`),
/// also no proxy (so the address checks see the real destination), the
/// address-filtering resolver, and redirects re-checked against the policy.
fn make_client(
    cfg: &ConnectorsConfig,
    policy: Option<Arc<RemotePolicy>>,
) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(cfg.connect_timeout()?)
        .timeout(cfg.timeout()?);
    if let Some(policy) = policy {
        let checker = policy.clone();
        builder = builder
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { policy }))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                // `previous` starts with the URL first asked for.
                let hops = attempt.previous().len();
                let verdict = if hops > MAX_REDIRECTS {
                    Err(format!(
                        "more than {MAX_REDIRECTS} redirects; remote callers follow at most {MAX_REDIRECTS}"
                    ))
                } else {
                    checker.check_url(attempt.url()).map_err(|why| {
                        format!(
                            "redirect to `{}` refused: {why}",
                            redact(attempt.url().as_str())
                        )
                    })
                };
                match verdict {
                    Ok(()) => attempt.follow(),
                    Err(why) => attempt.error(Refused(why)),
                }
            }));
    }
    builder
        .build()
        .context("cannot set up the HTTP client (TLS roots or settings)")
}

/// A refusal by the remote policy, carried through reqwest's errors so the
/// message reaches the caller as written.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Refused {}

/// The message for a failed request: a policy refusal as written, a timeout
/// naming the settings, else the error chain.
pub fn request_error(shown: &str, cfg: &ConnectorsConfig, e: reqwest::Error) -> anyhow::Error {
    let mut source: Option<&(dyn StdError + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(refused) = err.downcast_ref::<Refused>() {
            return anyhow!("cannot fetch {shown}: {refused}");
        }
        source = err.source();
    }
    if e.is_timeout() {
        return anyhow!(
            "GET {shown} timed out (connect limit {} ms, whole request {} ms); raise [connectors] connect_timeout_ms or timeout_ms if the source is slow",
            cfg.connect_timeout_ms,
            cfg.timeout_ms
        );
    }
    anyhow::Error::new(e.without_url()).context(format!("cannot reach {shown}"))
}

/// Resolves names with the system resolver and keeps only the addresses a
/// remote caller may connect to. Hosts written as IP literals never come
/// here; [`RemotePolicy::check_url`] checks those.
struct GuardedResolver {
    policy: Arc<RemotePolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(resolve_allowed(
            name.as_str().to_string(),
            self.policy.clone(),
        ))
    }
}

async fn resolve_allowed(host: String, policy: Arc<RemotePolicy>) -> Result<Addrs, BoxError> {
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
        .await
        .map_err(|e| -> BoxError { format!("cannot resolve `{host}`: {e}").into() })?
        .collect();
    if found.is_empty() {
        return Err(format!("`{host}` resolves to no address").into());
    }
    let kept: Vec<SocketAddr> = found
        .into_iter()
        .filter(|a| policy.address_allowed(a.ip()))
        .collect();
    if kept.is_empty() {
        return Err(Box::new(Refused(non_public(&host))));
    }
    Ok(Box::new(kept.into_iter()))
}
