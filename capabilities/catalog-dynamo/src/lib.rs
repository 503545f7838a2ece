//! `catalog-dynamo`: DynamoDB over its JSON HTTP API, signed with AWS
//! Signature Version 4 (hand-rolled: a few dozen lines instead of the AWS SDK).

mod catalog;
mod sigv4;

use anyhow::{bail, Context as _};
use hakiri_kernel::{CheckOutcome, Context, KernelError, Registrar, Section, Tool, ToolError};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

pub use sigv4::{Credentials, SignedRequest};

hakiri_kernel::capability!(register);

/// `[catalog-dynamo]` in hakiri.toml. Unset credentials fall back to
/// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`.
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
        |m, ctx| async move {
            let url = m
                .subcommand_matches("init")
                .and_then(|m| m.get_one::<String>("url"))
                .cloned()
                .unwrap_or_default();
            let table = catalog::table_of(&url)?;
            let created = catalog::init(&catalog::client(&ctx)?, &table).await?;
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
            let client = Client::from_config(&ctx)?
                .ok_or_else(|| ToolError::Failed(NOT_CONFIGURED.into()))?;
            Ok(client.call("ListTables", json!({})).await?)
        },
    ))?;
    r.check(|ctx| async move {
        if let Err(e) = sigv4::self_test() {
            return CheckOutcome::Failed(e);
        }
        match Client::from_config(&ctx) {
            Ok(None) => CheckOutcome::Skipped(format!(
                "{NOT_CONFIGURED} (SigV4 signer matches AWS's test vector)"
            )),
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
    "not configured: set [catalog-dynamo] region (and endpoint for DynamoDB-compatible servers)";

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoInput {}

/// A DynamoDB JSON-API client.
pub struct Client {
    endpoint: String,
    region: String,
    creds: Credentials,
    http: reqwest::Client,
}

impl Client {
    /// `None` when no region is configured.
    pub fn from_config(ctx: &Context) -> Result<Option<Client>, KernelError> {
        let cfg = DynamoConfig::clone(&ctx.section::<DynamoConfig>());
        let Some(region) = cfg.region else {
            return Ok(None);
        };
        let env = |k: &str| std::env::var(k).ok();
        let creds = Credentials {
            access_key_id: cfg
                .access_key_id
                .or_else(|| env("AWS_ACCESS_KEY_ID"))
                .unwrap_or_default(),
            secret_access_key: cfg
                .secret_access_key
                .or_else(|| env("AWS_SECRET_ACCESS_KEY"))
                .unwrap_or_default(),
            session_token: env("AWS_SESSION_TOKEN"),
        };
        if creds.access_key_id.is_empty() || creds.secret_access_key.is_empty() {
            return Err(KernelError::Config(
                "[catalog-dynamo] needs credentials: access_key_id and secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
            ));
        }
        let endpoint = cfg
            .endpoint
            .unwrap_or_else(|| format!("https://dynamodb.{region}.amazonaws.com"));
        Ok(Some(Client {
            endpoint,
            region,
            creds,
            http: reqwest::Client::new(),
        }))
    }

    /// Calls one DynamoDB operation (`ListTables`, `PutItem`, …) with a JSON body.
    pub async fn call(&self, operation: &str, body: Value) -> anyhow::Result<Value> {
        let url = reqwest::Url::parse(&self.endpoint)
            .with_context(|| format!("invalid endpoint `{}`", self.endpoint))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => bail!("endpoint `{}` has no host", self.endpoint),
        };
        let payload = body.to_string();
        let target = format!("DynamoDB_20120810.{operation}");
        let signed = SignedRequest {
            method: "POST",
            path: url.path(),
            query: "",
            headers: vec![
                ("content-type", "application/x-amz-json-1.0".into()),
                ("host", host),
                ("x-amz-target", target.clone()),
            ],
            payload: payload.as_bytes(),
            region: &self.region,
            service: "dynamodb",
        }
        .sign(&self.creds, sigv4::now());
        let mut req = self.http.post(url.clone()).body(payload.clone());
        for (k, v) in signed {
            if k != "host" {
                req = req.header(k, v);
            }
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach DynamoDB at {}", self.endpoint))?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("DynamoDB {operation} answered {status}: {text}");
        }
        serde_json::from_str(&text)
            .with_context(|| format!("DynamoDB {operation} answered invalid JSON"))
    }
}
