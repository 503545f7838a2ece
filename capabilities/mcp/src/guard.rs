//! The HTTP front door of `serve`'s MCP endpoint: bearer tokens and a cap on
//! requests in flight. (Body size and `Host` checks are rmcp's, configured
//! from the same `[mcp]` section.)

use crate::McpConfig;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hakiri_kernel::{Caller, Context, Credential, FrontDoor};
use serde_json::json;
use std::sync::Arc;
use tokio::sync::Semaphore;

#[derive(Clone)]
pub(crate) struct Guard {
    ctx: Context,
    auth: FrontDoor,
    in_flight: Arc<Semaphore>,
}

impl Guard {
    pub(crate) fn new(ctx: Context, config: &McpConfig) -> Guard {
        Guard {
            ctx,
            auth: config.auth,
            in_flight: Arc::new(Semaphore::new(config.max_concurrent_requests.max(1))),
        }
    }
}

fn refuse(status: StatusCode, message: String) -> Response {
    let mut response = (status, axum::Json(json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

/// Admits a request: a slot free, and a valid token unless `auth = "none"`.
/// A token is checked whenever one is presented, even with `auth = "none"`.
pub(crate) async fn admit(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let Ok(_slot) = guard.in_flight.clone().try_acquire_owned() else {
        let mut busy = refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many requests in flight; retry shortly ([mcp] max_concurrent_requests)".into(),
        );
        busy.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return busy;
    };
    let credential = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(Credential::from_bearer);
    let caller = Caller::Agent {
        transport: "mcp-http",
        session: None,
        credential,
    };
    if let Err(reason) = guard.auth.admit(&guard.ctx, caller).await {
        return refuse(StatusCode::UNAUTHORIZED, reason);
    }
    next.run(request).await
}
