//! One small HTTP/1.1 client (hyper's, already in the binary through axum):
//! peers, forwarded requests and the `cluster` command all go through it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;
use thiserror::Error;

/// Why a request got no usable answer.
#[derive(Debug, Error)]
pub enum HttpError {
    /// Nothing was sent: the request certainly did not take effect.
    #[error("cannot reach {url}: {message}")]
    Unreachable { url: String, message: String },
    /// Sent, but no answer: the request may or may not have taken effect.
    #[error("no answer from {url} within {after:?}; the request may or may not have taken effect")]
    NoAnswer { url: String, after: Duration },
    #[error("{url} answered {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url} answered with a body that does not decode: {message}")]
    Decode { url: String, message: String },
}

/// A pooled client with fixed headers.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
    headers: Vec<(&'static str, String)>,
}

impl HttpClient {
    pub fn new(headers: Vec<(&'static str, String)>) -> HttpClient {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        connector.set_nodelay(true);
        HttpClient {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
            headers,
        }
    }

    /// Sends `body` (JSON, if any) and returns the status and the body.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), HttpError> {
        let mut req = hyper::Request::builder().method(method).uri(url);
        for (k, v) in &self.headers {
            req = req.header(*k, v);
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| HttpError::Unreachable {
                url: url.into(),
                message: format!("invalid request: {e}"),
            })?;
        let answer = async {
            let resp = self.client.request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body))
        };
        match tokio::time::timeout(timeout, answer).await {
            Err(_) => Err(HttpError::NoAnswer {
                url: url.into(),
                after: timeout,
            }),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                // A refused or failed connect never carried the request.
                let connect = e
                    .downcast_ref::<hyper_util::client::legacy::Error>()
                    .is_some_and(|e| e.is_connect());
                if connect {
                    Err(HttpError::Unreachable {
                        url: url.into(),
                        message: chain(&*e),
                    })
                } else {
                    Err(HttpError::NoAnswer {
                        url: url.into(),
                        after: timeout,
                    })
                }
            }
        }
    }

    /// POSTs `body` as JSON and decodes a 2xx answer; other statuses become
    /// [`HttpError::Status`] with the answer's `error` field.
    pub async fn json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<T, HttpError> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("request bodies serialize"));
        let (status, body) = self.send(method, url, bytes, timeout).await?;
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            return Err(HttpError::Status {
                url: url.into(),
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_slice(&body).map_err(|e| HttpError::Decode {
            url: url.into(),
            message: e.to_string(),
        })
    }
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
