//! The `openai` provider: any server speaking OpenAI's `POST /embeddings`
//! (OpenAI, Ollama, vLLM, Hugging Face TEI, Infinity, another hakiri-full),
//! in batches, with a timeout and exponential backoff on 429, 5xx and
//! failed connections.

use crate::config::EmbeddingsConfig;
use anyhow::{anyhow, bail, Context as _};
use serde::Deserialize;
use std::time::Duration;

#[derive(Deserialize)]
struct Response {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    embedding: Vec<f32>,
    #[serde(default)]
    index: Option<usize>,
}

pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    key: Option<String>,
    retries: u32,
}

impl Client {
    pub fn new(cfg: &EmbeddingsConfig) -> anyhow::Result<Client> {
        let url = cfg.url.as_deref().ok_or_else(|| {
            anyhow!("[embeddings] provider = \"openai\" needs `url`, the API's base URL (e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1)")
        })?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("[embeddings] url `{url}` must start with http:// or https://");
        }
        let key = match &cfg.api_key_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                anyhow!("[embeddings] api_key_env names `{var}`, which is not set: export it, or remove api_key_env for a server without keys")
            })?),
            None => None,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs.unwrap_or(30).max(1)))
            .build()?;
        Ok(Client {
            http,
            endpoint: format!("{}/embeddings", url.trim_end_matches('/')),
            key,
            retries: cfg.retries.unwrap_or(4).min(10),
        })
    }

    /// Embeds one batch; the server's answer must hold one vector per text.
    pub async fn embed(
        &self,
        model: &str,
        dimensions: Option<usize>,
        texts: &[String],
    ) -> anyhow::Result<Vec<Vec<f32>>> {
        let mut body =
            serde_json::json!({ "model": model, "input": texts, "encoding_format": "float" });
        if let Some(d) = dimensions {
            body["dimensions"] = d.into();
        }
        let mut attempt = 0;
        loop {
            let mut req = self.http.post(&self.endpoint).json(&body);
            if let Some(key) = &self.key {
                req = req.bearer_auth(key);
            }
            let retry_in = Duration::from_millis(200 << attempt.min(6));
            match req.send().await {
                Ok(resp) if resp.status().is_success() => {
                    let parsed: Response = resp.json().await.with_context(|| {
                        format!(
                            "{} answered with something other than an embeddings list",
                            self.endpoint
                        )
                    })?;
                    return order(parsed, texts.len(), &self.endpoint);
                }
                Ok(resp) => {
                    let status = resp.status();
                    let text: String = resp
                        .text()
                        .await
                        .unwrap_or_default()
                        .chars()
                        .take(300)
                        .collect();
                    let transient = status.as_u16() == 429 || status.is_server_error();
                    if !transient || attempt >= self.retries {
                        bail!(
                            "embeddings provider {} refused the request ({status}): {text}",
                            self.endpoint
                        );
                    }
                }
                Err(e) => {
                    if attempt >= self.retries {
                        bail!(
                            "embeddings provider {} is unreachable after {} attempts ({e}); is the server running, and is [embeddings] url right?",
                            self.endpoint,
                            attempt + 1
                        );
                    }
                }
            }
            attempt += 1;
            tokio::time::sleep(retry_in).await;
        }
    }
}

/// Puts the answer back in input order (servers may reorder by `index`).
fn order(resp: Response, expected: usize, endpoint: &str) -> anyhow::Result<Vec<Vec<f32>>> {
    if resp.data.len() != expected {
        bail!(
            "{endpoint} returned {} embeddings for {expected} texts",
            resp.data.len()
        );
    }
    let mut out = vec![Vec::new(); expected];
    for (i, item) in resp.data.into_iter().enumerate() {
        let at = item.index.unwrap_or(i);
        if at >= expected || !out[at].is_empty() {
            bail!("{endpoint} returned an embedding with a wrong index ({at})");
        }
        out[at] = item.embedding;
    }
    Ok(out)
}
