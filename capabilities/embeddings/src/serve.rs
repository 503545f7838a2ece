//! The `embeddings` service of `hakiri serve`: OpenAI's `POST /v1/embeddings`
//! answered by the configured provider, so other tools (and another Hakiri
//! with `provider = "openai"`) can use this daemon's model. Off unless
//! `[embeddings] listen` is set; behind the same front door as MCP (a bearer
//! token, or `auth = "none"` on loopback only), and every request goes
//! through the `embeddings.embed` tool, so a token must grant that tool and
//! its bounds apply. A request must name a known `Host` (DNS rebinding)
//! and send JSON as `application/json`: a web page can post `text/plain`
//! to any address without asking first, never `application/json`.

use crate::config::EmbeddingsConfig;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hakiri_kernel::{Caller, Context, Credential, RunningService, Shutdown, ToolError};
use serde::Deserialize;
use serde_json::{json, Value};

/// Largest request body: 256 texts of 8 KiB, with room for JSON.
const MAX_BODY: usize = 4 << 20;

#[derive(Deserialize)]
struct Request {
    input: Input,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    encoding_format: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
}

pub async fn serve(ctx: Context, shutdown: Shutdown) -> anyhow::Result<RunningService> {
    let cfg = ctx.section::<EmbeddingsConfig>();
    let Some(listen) = cfg.listen.clone() else {
        return Ok(RunningService {
            address: None,
            run: Box::pin(async move {
                shutdown.wait().await;
                Ok(())
            }),
        });
    };
    let listener = tokio::net::TcpListener::bind(listen.as_str()).await.map_err(|e| {
        anyhow::anyhow!("cannot listen for embeddings on {listen}: {e}; set another host:port with `listen` in [embeddings]")
    })?;
    let addr = listener.local_addr()?;
    cfg.auth
        .check_listen(addr, "embeddings")
        .map_err(|e| anyhow::anyhow!(e))?;
    let router = Router::new()
        .route("/v1/embeddings", post(embeddings))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(ctx);
    let run = async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.wait())
            .await
            .map_err(|e| anyhow::anyhow!("embeddings HTTP server on {addr}: {e}"))
    };
    Ok(RunningService {
        address: Some(format!("http://{addr}/v1")),
        run: Box::pin(run),
    })
}

fn error(status: StatusCode, message: String) -> Response {
    (
        status,
        Json(json!({ "error": { "message": message, "type": "invalid_request_error" } })),
    )
        .into_response()
}

async fn embeddings(
    State(ctx): State<Context>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let credential = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(Credential::from_bearer);
    let caller = Caller::Agent {
        transport: "embeddings-http",
        session: None,
        credential,
    };
    let door = ctx.section::<EmbeddingsConfig>().auth;
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let hosts = &ctx.section::<EmbeddingsConfig>().allowed_hosts;
    if let Err(why) = hakiri_kernel::hosts::check_host(host, hosts, true, "embeddings") {
        return error(StatusCode::MISDIRECTED_REQUEST, why);
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        });
    if !json {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the request body as JSON with `Content-Type: application/json`".into(),
        );
    }
    let ctx = match door.admit(&ctx, caller).await {
        Ok(ctx) => ctx,
        Err(reason) => return error(StatusCode::UNAUTHORIZED, reason),
    };
    let req: Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("the body is not an embeddings request ({{\"input\": text or [texts], \"model\": name}}): {e}")),
    };
    let texts = match req.input {
        Input::One(t) => vec![t],
        Input::Many(ts) => ts,
    };
    let mut input = json!({ "texts": texts });
    if let Some(m) = &req.model {
        input["model"] = m.clone().into();
    }
    match ctx.call("embeddings.embed", input).await {
        Ok(out) => {
            let data: Vec<Value> = out["vectors"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(i, v)| json!({ "object": "embedding", "index": i, "embedding": v }))
                .collect();
            let model = out["model"]
                .as_str()
                .unwrap_or("")
                .split_once('/')
                .map_or("", |(_, m)| m)
                .to_string();
            Json(json!({ "object": "list", "data": data, "model": model, "usage": { "prompt_tokens": 0, "total_tokens": 0 } })).into_response()
        }
        Err(ToolError::Denied { reason, .. }) => error(StatusCode::FORBIDDEN, reason),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}
