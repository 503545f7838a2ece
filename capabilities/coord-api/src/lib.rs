//! `coord-api`: the coordinator's HTTP API, served with axum.
//!
//! * `GET /health` — `{"status": "ok", "profile": <binary profile>}` (open)
//! * `GET /openapi.json` — the API described (open)
//! * `/v1/...` — each route calls one tool (see [`routes`]) for the caller's
//!   bearer token: 401 without a valid token, 403 when the token does not
//!   grant the tool, 400 for malformed input, 404 for an absent key or lease,
//!   409 when a condition failed (`succeeded: false`: a compare-and-swap, a
//!   fence, a held lease), 503 with `{"error": ...}` when the cluster cannot
//!   answer (no leader), 500 otherwise.
//!
//! Any node answers: a follower forwards writes and linearizable reads to
//! the leader itself, so clients need no redirect handling.
//!
//! Reading and changing cluster state are separate tools, so a token grants
//! one without the other.

mod openapi;
mod routes;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use hakiri_kernel::{
    Caller, CheckOutcome, Context, Credential, FrontDoor, KernelError, Registrar, RunningService,
    Section, Shutdown, ToolError,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

hakiri_kernel::capability!(register);

fn register(r: &mut Registrar) -> Result<(), KernelError> {
    r.config::<CoordApiConfig>()?;
    r.service("coord-api", serve)?;
    r.check(self_check);
    Ok(())
}

/// `[coord-api]` in hakiri.toml.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoordApiConfig {
    /// Address to listen on, `host:port`.
    pub listen: String,
    /// `token` (default): `/v1/*` needs `Authorization: Bearer <token>`;
    /// `none`: open, only allowed on a loopback address.
    pub auth: FrontDoor,
    /// Requests served at once; more get 503 until one finishes.
    pub max_concurrent_requests: usize,
    /// Host names clients may reach the API by, besides IP addresses
    /// (DNS-rebinding protection); add the name daemons dial.
    pub allowed_hosts: Vec<String>,
}

impl Section for CoordApiConfig {
    const NAME: &'static str = "coord-api";
}

impl Default for CoordApiConfig {
    fn default() -> Self {
        CoordApiConfig {
            listen: "127.0.0.1:7979".into(),
            auth: FrontDoor::Token,
            max_concurrent_requests: 64,
            allowed_hosts: hakiri_kernel::hosts::loopback_hosts(),
        }
    }
}

/// What every handler shares: the kernel and the in-flight cap.
#[derive(Clone)]
pub(crate) struct Api {
    ctx: Context,
    in_flight: Arc<Semaphore>,
}

/// The API's routes.
pub fn router(ctx: Context) -> Router {
    let config = ctx.section::<CoordApiConfig>();
    let cap = config.max_concurrent_requests.max(1);
    let hosts = Arc::new(config.allowed_hosts.clone());
    Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(openapi::document))
        .route("/v1/cluster", get(routes::cluster))
        .route("/v1/cluster/members", post(routes::add_member))
        .route("/v1/members", get(routes::members))
        .route("/v1/cluster/members/{id}", delete(routes::remove_member))
        .route("/v1/kv", get(routes::list))
        .route(
            "/v1/kv/{*key}",
            get(routes::get_key)
                .put(routes::put_key)
                .delete(routes::delete_key),
        )
        .route(
            "/v1/leases/{name}",
            get(routes::get_lease)
                .post(routes::acquire)
                .delete(routes::release),
        )
        .with_state(Api {
            ctx,
            in_flight: Arc::new(Semaphore::new(cap)),
        })
        .layer(axum::middleware::from_fn_with_state(hosts, known_host))
}

/// Refuses a request naming a host this API does not answer to (a page
/// whose DNS name was rebound to the API's address), before anything else.
async fn known_host(
    State(hosts): State<Arc<Vec<String>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    match hakiri_kernel::hosts::check_host(host, &hosts, true, "coord-api") {
        Ok(()) => next.run(request).await,
        Err(why) => error(StatusCode::MISDIRECTED_REQUEST, why),
    }
}

async fn health(State(Api { ctx, .. }): State<Api>) -> Json<Value> {
    Json(json!({ "status": "ok", "profile": ctx.profile.name }))
}

/// The caller behind an API request: a remote agent, with its bearer token
/// if it sent one (an authorizer decides what that grants).
fn caller(headers: &HeaderMap) -> Caller {
    let credential = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(Credential::from_bearer);
    Caller::Agent {
        transport: "coord-api",
        session: None,
        credential,
    }
}

pub(crate) fn error(status: StatusCode, message: String) -> Response {
    let mut response = (status, Json(json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

/// Calls `tool` for the request's caller, admitted by `[coord-api] auth`.
pub(crate) async fn call_for(api: &Api, headers: &HeaderMap, tool: &str, input: Value) -> Response {
    let Ok(_slot) = api.in_flight.clone().try_acquire_owned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many requests in flight; retry shortly ([coord-api] max_concurrent_requests)"
                .into(),
        );
    };
    let ctx = &api.ctx;
    let door = ctx.section::<CoordApiConfig>().auth;
    let ctx = match door.admit(ctx, caller(headers)).await {
        Ok(ctx) => ctx,
        Err(reason) => return error(StatusCode::UNAUTHORIZED, reason),
    };
    match ctx.call(tool, input).await {
        Ok(value) => routes::status_of(&value).map_or_else(
            || Json(value.clone()).into_response(),
            |status| (status, Json(value.clone())).into_response(),
        ),
        Err(e @ ToolError::Denied { .. }) => error(StatusCode::FORBIDDEN, e.to_string()),
        Err(e @ ToolError::InvalidInput { .. }) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) if routes::unavailable(&e.to_string()) => {
            error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn bind(listen: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}; set [coord-api] listen"))
}

/// The `coord-api` service: binds `[coord-api] listen` and serves until shutdown.
async fn serve(ctx: Context, shutdown: Shutdown) -> anyhow::Result<RunningService> {
    let config = ctx.section::<CoordApiConfig>();
    let listener = bind(&config.listen).await?;
    let addr = listener
        .local_addr()
        .with_context(|| format!("cannot read the address bound for {}", config.listen))?;
    config
        .auth
        .check_listen(addr, "coord-api")
        .map_err(|e| anyhow::anyhow!(e))?;
    let app = router(ctx);
    Ok(RunningService {
        address: Some(format!("http://{addr}")),
        run: Box::pin(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.wait())
                .await
                .with_context(|| format!("coord-api on {addr} stopped with an error"))
        }),
    })
}

/// A minimal HTTP/1.1 GET; returns the status code and the body.
async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("cannot send GET {path} to {addr}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .map_err(|e| format!("cannot read the response to GET {path}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET {path}: malformed HTTP response: {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("GET {path}: no status code in {head:?}"))?;
    Ok((status, body.to_string()))
}

/// Serves the API on an ephemeral port and fetches `/health` over raw HTTP.
async fn self_check(ctx: Context) -> CheckOutcome {
    match check_health(ctx).await {
        Ok(addr) => CheckOutcome::Ok(format!("served /health on {addr}")),
        Err(e) => CheckOutcome::Failed(e),
    }
}

async fn check_health(ctx: Context) -> Result<SocketAddr, String> {
    let listener = bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let profile = ctx.profile.name;
    let (stop, shutdown) = Shutdown::new();
    let server = tokio::spawn(async move {
        axum::serve(listener, router(ctx))
            .with_graceful_shutdown(shutdown.wait())
            .await
    });
    let got = tokio::time::timeout(Duration::from_secs(5), http_get(addr, "/health")).await;
    let _ = stop.send(true);
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(format!("server on {addr} failed: {e}")),
        Ok(Err(e)) => return Err(format!("server on {addr} panicked: {e}")),
        Err(_) => {
            return Err(format!(
                "server on {addr} did not stop within 5s of shutdown"
            ))
        }
    }
    let (status, body) = got.map_err(|_| format!("GET /health on {addr} timed out after 5s"))??;
    if status != 200 {
        return Err(format!("GET /health on {addr} returned {status}: {body}"));
    }
    let v: Value = serde_json::from_str(&body)
        .map_err(|e| format!("GET /health returned non-JSON {body:?}: {e}"))?;
    if v != json!({ "status": "ok", "profile": profile }) {
        return Err(format!("GET /health returned an unexpected body: {body}"));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hakiri_kernel::{Config, Profile};

    static PROFILE: Profile = hakiri_kernel::embedded_profile!("coord-test");

    fn ctx(config: &str) -> Context {
        Context::from_inventory(Config::parse(config, None).unwrap(), &PROFILE).expect("context")
    }

    #[tokio::test]
    async fn check_serves_health() {
        match ctx("").check("coord-api").await {
            CheckOutcome::Ok(detail) => assert!(
                detail.starts_with("served /health on 127.0.0.1:"),
                "{detail}"
            ),
            other => panic!("coord-api self-check did not succeed: {other:?}"),
        }
    }

    #[tokio::test]
    async fn service_serves_health_and_reports_cluster_errors() {
        let ctx = ctx("[coord-api]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\n");
        let (stop, shutdown) = Shutdown::new();
        let start = ctx.registry.services["coord-api"].item.clone();
        let svc = start(ctx.clone(), shutdown)
            .await
            .expect("coord-api starts");
        let address = svc.address.clone().expect("an address");
        let addr: SocketAddr = address
            .strip_prefix("http://")
            .expect("http:// address")
            .parse()
            .unwrap();
        assert_ne!(addr.port(), 0);
        let run = tokio::spawn(svc.run);

        let (status, body) = http_get(addr, "/health").await.unwrap();
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v, json!({ "status": "ok", "profile": "coord-test" }));

        // No raft capability is linked into this test binary: the tool call fails.
        let (status, body) = http_get(addr, "/v1/cluster").await.unwrap();
        assert_eq!(status, 500, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(
            v["error"].as_str().unwrap().contains("raft.status"),
            "{body}"
        );

        let (status, _) = http_get(addr, "/nope").await.unwrap();
        assert_eq!(status, 404);

        let _ = stop.send(true);
        tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .expect("coord-api stops on shutdown")
            .unwrap()
            .unwrap();
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "still listening after shutdown"
        );
    }

    #[tokio::test]
    async fn tokens_are_required_by_default_and_none_needs_loopback() {
        let secured = ctx("[coord-api]\nlisten = \"127.0.0.1:0\"\n");
        let (_stop, shutdown) = Shutdown::new();
        let start = secured.registry.services["coord-api"].item.clone();
        let svc = start(secured.clone(), shutdown).await.expect("starts");
        let addr: SocketAddr = svc.address.clone().unwrap()[7..].parse().unwrap();
        tokio::spawn(svc.run);
        let (status, body) = http_get(addr, "/v1/cluster").await.unwrap();
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("hakiri auth token"), "{body}");
        assert_eq!(http_get(addr, "/health").await.unwrap().0, 200);

        let open = ctx("[coord-api]\nlisten = \"0.0.0.0:0\"\nauth = \"none\"\n");
        let (_s, shutdown) = Shutdown::new();
        let err = match start(open, shutdown).await {
            Ok(_) => panic!("auth = none beyond loopback must be refused"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("loopback"), "{err}");
    }

    #[tokio::test]
    async fn bind_error_names_the_address_and_the_setting() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let ctx = ctx(&format!("[coord-api]\nlisten = \"{addr}\"\n"));
        let (_stop, shutdown) = Shutdown::new();
        let start = ctx.registry.services["coord-api"].item.clone();
        let err = match start(ctx.clone(), shutdown).await {
            Ok(_) => panic!("bound an address already in use"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.starts_with(&format!("cannot listen on {addr}: ")),
            "{err}"
        );
        assert!(err.ends_with("; set [coord-api] listen"), "{err}");
    }

    #[test]
    fn config_defaults_and_rejects_unknown_keys() {
        assert_eq!(ctx("").section::<CoordApiConfig>().listen, "127.0.0.1:7979");
        let c = Config::parse("[coord-api]\nport = 1\n", None).unwrap();
        let err = Context::from_inventory(c, &PROFILE)
            .err()
            .expect("unknown key refused");
        assert!(err.to_string().contains("unknown field `port`"), "{err}");
    }
}
