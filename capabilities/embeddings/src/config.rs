//! `[embeddings]`: which provider turns text into vectors, declared once here.

use hakiri_kernel::Section;
use serde::Deserialize;
use std::path::PathBuf;

/// The model `hakiri embed init` installs and the local provider uses by default.
pub const DEFAULT_LOCAL_MODEL: &str = "all-MiniLM-L6-v2";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingsConfig {
    /// `local` (a sentence-embedding model run in process, the default) or
    /// `openai` (any OpenAI-compatible `/v1/embeddings` server: OpenAI,
    /// Ollama, vLLM, Hugging Face TEI, Infinity, or another hakiri-full).
    #[serde(default = "local")]
    pub provider: String,
    /// The model's name: a directory under `model_dir` for `local`, the
    /// `model` field of requests for `openai`.
    pub model: Option<String>,
    /// Where local models live (default `<data_dir>/models`).
    pub model_dir: Option<PathBuf>,
    /// `openai`: the API's base URL, e.g. `https://api.openai.com/v1`.
    pub url: Option<String>,
    /// `openai`: the environment variable holding the API key (none: no key sent).
    pub api_key_env: Option<String>,
    /// `openai`: ask the server for vectors of this many dimensions.
    pub dimensions: Option<usize>,
    /// Texts per request (`openai`) or per forward pass (`local`); default 32.
    pub batch_size: Option<usize>,
    /// `openai`: seconds before a request is abandoned; default 30.
    pub timeout_secs: Option<u64>,
    /// `openai`: retries of a request refused with 429 or 5xx, or that could
    /// not connect, with exponential backoff; default 4.
    pub retries: Option<u32>,
    /// `hakiri serve` answers OpenAI's `POST /v1/embeddings` on this
    /// `host:port` with the provider above (default: not served).
    pub listen: Option<String>,
    /// `token` (default): requests need a bearer token granting tool
    /// `embeddings.embed`; `none`: open, loopback only.
    #[serde(default)]
    pub auth: hakiri_kernel::FrontDoor,
    /// Host names clients may reach `listen` by, besides IP addresses
    /// (DNS-rebinding protection).
    #[serde(default = "hakiri_kernel::hosts::loopback_hosts")]
    pub allowed_hosts: Vec<String>,
}

fn local() -> String {
    "local".into()
}

impl Default for EmbeddingsConfig {
    fn default() -> Self {
        EmbeddingsConfig {
            provider: local(),
            model: None,
            model_dir: None,
            url: None,
            api_key_env: None,
            dimensions: None,
            batch_size: None,
            timeout_secs: None,
            retries: None,
            listen: None,
            auth: hakiri_kernel::FrontDoor::Token,
            allowed_hosts: hakiri_kernel::hosts::loopback_hosts(),
        }
    }
}

impl Section for EmbeddingsConfig {
    const NAME: &'static str = "embeddings";
}

impl EmbeddingsConfig {
    pub fn model_dir(&self, data_dir: &std::path::Path) -> PathBuf {
        self.model_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("models"))
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size.unwrap_or(32).clamp(1, 2048)
    }
}
