//! `catalog-dynamo`: DynamoDB over its JSON HTTP API, signed with SigV4 by
//! the shared AWS chain (object_store's signer and credentials, linked for
//! S3 anyway) instead of the AWS SDK.

mod catalog;

use anyhow::bail;
use hakiri_kernel::{CheckOutcome, Context, KernelError, Registrar, Section, Tool, ToolError};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

hakiri_kernel::capability!(register);

/// `[catalog-dynamo]` in hakiri.toml. Unset fields fall back to the AWS
/// chain: environment, shared profile files, web identity, ECS and EC2 roles.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamoConfig {
    pub region: Option<String>,
    /// For DynamoDB-compatible servers, e.g. "http://127.0.0.1:8000".
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl Section for DynamoConfig {
    const NAME: &'static str = "catalog-dynamo";
}

fn register(r: &mut Registrar) -> Result<(), KernelError> {
    r.config::<DynamoConfig>()?;
    r.state(Clients::default())?;
    r.provide::<dyn hakiri_data_api::CatalogBackend>(
        "dynamodb",
        std::sync::Arc::new(catalog::DynamoBackend),
    )?;
    r.command(
        clap::Command::new("catalog")
            .about("Set up a catalog backend")
            .subcommand_required(true)
            .subcommand(
                clap::Command::new("init")
                    .about("Create the DynamoDB table a dynamodb://TABLE catalog URL names")
                    .arg(clap::Arg::new("url").required(true)),
            ),
        hakiri_kernel::Acts::Operator,
        |m, ctx| async move {
            let url = m
                .subcommand_matches("init")
                .and_then(|m| m.get_one::<String>("url"))
                .cloned()
                .unwrap_or_default();
            let (table, region) = catalog::parse_url(&url)?;
            let client = catalog::client(&ctx, region.as_deref())?;
            let created = catalog::init(&client, &table).await?;
            println!(
                "{}",
                if created {
                    format!("created DynamoDB table `{table}`; use [catalog] url = \"{url}\"")
                } else {
                    format!("DynamoDB table `{table}` already exists")
                }
            );
            Ok(std::process::ExitCode::SUCCESS)
        },
    )?;
    r.tool(Tool::typed(
        "dynamo.tables",
        "List the DynamoDB tables visible with the configured endpoint and credentials",
        |_input: NoInput, ctx| async move {
            let client = Client::from_config(&ctx, None)?
                .ok_or_else(|| ToolError::Failed(NOT_CONFIGURED.into()))?;
            Ok(client.call("ListTables", json!({})).await?)
        },
    ))?;
    r.check(|ctx| async move {
        match Client::from_config(&ctx, None) {
            Ok(None) => CheckOutcome::Skipped(NOT_CONFIGURED.into()),
            Ok(Some(c)) => match c.call("ListTables", json!({})).await {
                Ok(v) => CheckOutcome::Ok(format!(
                    "signed ListTables at {}: {} tables",
                    c.endpoint,
                    v["TableNames"].as_array().map_or(0, Vec::len)
                )),
                Err(e) => e.into(),
            },
            Err(e) => CheckOutcome::Failed(e.to_string()),
        }
    });
    Ok(())
}

const NOT_CONFIGURED: &str =
    "not configured: set [catalog-dynamo] region or AWS_REGION (and endpoint for DynamoDB-compatible servers)";

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoInput {}

/// A DynamoDB JSON-API client: requests signed by the shared AWS chain
/// ([`hakiri_aws`]), throttling and server errors retried with backoff.
pub struct Client {
    endpoint: String,
    region: String,
    credentials: hakiri_aws::AwsCredentialProvider,
    http: reqwest::Client,
}

/// One client per region per kernel ([`catalog::client`]); `None` is the configured region.
#[derive(Default)]
pub struct Clients(
    std::sync::Mutex<std::collections::HashMap<Option<String>, std::sync::Arc<Client>>>,
);

impl Clients {
    fn get(&self, region: &Option<String>) -> Option<std::sync::Arc<Client>> {
        self.0.lock().ok()?.get(region).cloned()
    }

    /// Keeps the first client built for `region` (two callers may race to build one).
    fn insert(
        &self,
        region: Option<String>,
        built: std::sync::Arc<Client>,
    ) -> std::sync::Arc<Client> {
        match self.0.lock() {
            Ok(mut map) => map.entry(region).or_insert(built).clone(),
            Err(_) => built,
        }
    }
}

/// Attempts per operation; the waits between them double from 50 ms (with
/// jitter), about 1.5 s in all before giving up.
const ATTEMPTS: u32 = 6;

/// Why one attempt failed.
enum Failure {
    /// Throttling, a 5xx or a dropped connection: worth another try.
    Transient(String),
    Fatal(anyhow::Error),
}

impl Client {
    /// `None` when no region is given (`region`, from a catalog URL) or
    /// configured, in `[catalog-dynamo]` or the AWS chain.
    pub fn from_config(ctx: &Context, region: Option<&str>) -> anyhow::Result<Option<Client>> {
        let cfg = DynamoConfig::clone(&ctx.section::<DynamoConfig>());
        let settings = hakiri_aws::Settings {
            region: region.map(str::to_string).or(cfg.region),
            endpoint: cfg.endpoint.clone(),
            access_key_id: cfg.access_key_id,
            secret_access_key: cfg.secret_access_key,
            allow_http: true,
        };
        let Some(region) = hakiri_aws::region(&settings) else {
            return Ok(None);
        };
        let credentials = hakiri_aws::credentials(&settings)?;
        let endpoint = cfg
            .endpoint
            .unwrap_or_else(|| format!("https://dynamodb.{region}.amazonaws.com"));
        Ok(Some(Client {
            endpoint,
            region,
            credentials,
            http: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .timeout(std::time::Duration::from_secs(30))
                .build()?,
        }))
    }

    /// Calls one DynamoDB operation (`ListTables`, `PutItem`, …) with a JSON body.
    pub async fn call(&self, operation: &str, body: Value) -> anyhow::Result<Value> {
        let payload = body.to_string();
        let mut wait = std::time::Duration::from_millis(50);
        for attempt in 1..=ATTEMPTS {
            match self.attempt(operation, &payload).await {
                Ok(v) => return Ok(v),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient(why)) if attempt == ATTEMPTS => {
                    bail!("DynamoDB {operation} failed {ATTEMPTS} times, the last with {why}; try again later")
                }
                Err(Failure::Transient(_)) => {
                    tokio::time::sleep(jitter(wait)).await;
                    wait *= 2;
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    async fn attempt(&self, operation: &str, payload: &str) -> Result<Value, Failure> {
        let fatal = |e: anyhow::Error| Failure::Fatal(e);
        let mut request = http::Request::builder()
            .method("POST")
            .uri(&self.endpoint)
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", format!("DynamoDB_20120810.{operation}"))
            .body(hakiri_aws::HttpRequestBody::from(payload.to_string()))
            .map_err(|e| fatal(anyhow::anyhow!("invalid endpoint `{}`: {e}", self.endpoint)))?;
        hakiri_aws::sign(&self.credentials, "dynamodb", &self.region, &mut request)
            .await
            .map_err(fatal)?;
        let mut headers = request.headers().clone();
        headers.remove("host"); // the HTTP client sets it from the URL
        let sent = self
            .http
            .post(&self.endpoint)
            .headers(headers)
            .body(payload.to_string())
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_connect() || e.is_timeout() => {
                return Err(Failure::Transient(format!(
                    "no answer from {}: {e}",
                    self.endpoint
                )))
            }
            Err(e) => {
                return Err(fatal(anyhow::anyhow!(
                    "cannot reach DynamoDB at {}: {e}",
                    self.endpoint
                )))
            }
        };
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| Failure::Transient(format!("a broken answer: {e}")))?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| {
                fatal(anyhow::anyhow!(
                    "DynamoDB {operation} answered invalid JSON: {e}"
                ))
            });
        }
        let why = aws_error(&text).unwrap_or(text);
        let why = format!("{why} (HTTP {})", status.as_u16());
        if status.is_server_error() || THROTTLED.iter().any(|t| why.contains(t)) {
            return Err(Failure::Transient(why));
        }
        Err(fatal(anyhow::anyhow!("DynamoDB {operation}: {why}")))
    }
}

/// Error types DynamoDB answers when it wants the caller to slow down.
const THROTTLED: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
];

/// `Type: message` from DynamoDB's JSON error body.
fn aws_error(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let kind = v["__type"].as_str()?.rsplit('#').next()?.to_string();
    let message = v["message"]
        .as_str()
        .or(v["Message"].as_str())
        .unwrap_or("");
    Some(format!("{kind}: {message}"))
}

/// Between half and all of `d`, so retrying clients spread out.
fn jitter(d: std::time::Duration) -> std::time::Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let frac = (h.finish() % 1000) as f64 / 2000.0 + 0.5;
    d.mul_f64(frac)
}

#[cfg(test)]
mod retry_tests;
