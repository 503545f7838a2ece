//! Tools: named, schema-described JSON functions. The CLI (`hakiri call`), MCP
//! and Lambda all call them through [`crate::Registry::call`].

use crate::context::Context;
use crate::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use thiserror::Error;

pub type ToolHandler =
    Arc<dyn Fn(Value, Context) -> BoxFuture<'static, Result<Value, ToolError>> + Send + Sync>;

/// A callable tool.
#[derive(Clone)]
pub struct Tool {
    pub name: String,
    pub description: String,
    /// JSON Schema of the input, generated with `schemars`.
    pub input_schema: Value,
    /// Every call changes the resources it names (ingest, drop): a caller
    /// who may change none (a read-only token) is not offered it.
    pub changes: bool,
    pub handler: ToolHandler,
}

impl Tool {
    /// A tool whose input `I` is deserialized (and described) from JSON and
    /// whose output `O` is serialized back.
    pub fn typed<I, O, F, Fut>(name: &str, description: &str, f: F) -> Tool
    where
        I: DeserializeOwned + schemars::JsonSchema + Send + 'static,
        O: Serialize + 'static,
        F: Fn(I, Context) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<O, ToolError>> + Send + 'static,
    {
        let f = Arc::new(f);
        let tool_name = name.to_string();
        let handler: ToolHandler = Arc::new(move |input: Value, ctx: Context| {
            let f = f.clone();
            let tool_name = tool_name.clone();
            Box::pin(async move {
                let input: I =
                    serde_json::from_value(input).map_err(|e| ToolError::InvalidInput {
                        tool: tool_name.clone(),
                        message: e.to_string(),
                    })?;
                let out = f(input, ctx).await?;
                serde_json::to_value(out).map_err(|e| {
                    ToolError::Failed(format!("{tool_name}: cannot encode output: {e}"))
                })
            })
        });
        Tool {
            name: name.to_string(),
            description: description.to_string(),
            input_schema: schemars::schema_for!(I).to_value(),
            changes: false,
            handler,
        }
    }

    /// Marks a tool whose every call changes what it names ([`Tool::changes`]).
    pub fn changing(self) -> Tool {
        Tool {
            changes: true,
            ..self
        }
    }
}

/// Why a tool call failed.
#[derive(Debug, Error)]
pub enum ToolError {
    #[error("invalid input for tool `{tool}`: {message}; see `hakiri tools --json` for its input schema")]
    InvalidInput { tool: String, message: String },
    #[error("{0}")]
    Failed(String),
    #[error("permission denied: {caller} may not call `{tool}`: {reason}")]
    Denied {
        tool: String,
        caller: String,
        reason: String,
        /// Which authorizer refused (for logs; not part of the message).
        authorizer: String,
    },
    #[error(transparent)]
    Kernel(#[from] crate::KernelError),
}

impl ToolError {
    pub fn failed(e: impl std::fmt::Display) -> Self {
        ToolError::Failed(e.to_string())
    }
}

/// `?` on an `anyhow::Result` inside a tool: the whole error chain, one line.
impl From<anyhow::Error> for ToolError {
    fn from(e: anyhow::Error) -> Self {
        ToolError::Failed(format!("{e:#}"))
    }
}
