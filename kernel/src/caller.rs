//! Who is calling a tool, and the hook that decides whether they may.
//!
//! Every call goes through [`Context::call`](crate::Context::call) with the
//! context's [`Caller`]; when capabilities provide [`Authorizer`]s, each of
//! them must allow the call. With none provided, every call is allowed: that
//! is the kernel's whole policy, and an auth capability replaces it.

use crate::context::Context;
use crate::extension::ExtensionPoint;
use crate::BoxFuture;
use serde_json::Value;
use std::fmt;

/// A bearer credential as presented (a token); never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(String);

impl Credential {
    pub fn new(token: impl Into<String>) -> Credential {
        Credential(token.into())
    }

    /// The token of an HTTP `Authorization: Bearer <token>` header value.
    pub fn from_bearer(header: &str) -> Option<Credential> {
        let (scheme, token) = header.trim().split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| Credential::new(token))
    }

    /// The token text, for a verifier. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

/// Who a call comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The user running the CLI on this machine.
    Local { credential: Option<Credential> },
    /// An agent over a transport such as `mcp-stdio` or `mcp-http`.
    Agent {
        transport: &'static str,
        session: Option<String>,
        credential: Option<Credential>,
    },
    /// A Lambda invocation (IAM already admitted it).
    Lambda {
        request_id: String,
        credential: Option<Credential>,
    },
    /// Another node of a cluster.
    Peer {
        node: String,
        credential: Option<Credential>,
    },
}

impl Caller {
    /// The local CLI user, with no token.
    pub const LOCAL: Caller = Caller::Local { credential: None };

    pub fn is_local(&self) -> bool {
        matches!(self, Caller::Local { .. })
    }

    pub fn credential(&self) -> Option<&Credential> {
        match self {
            Caller::Local { credential }
            | Caller::Agent { credential, .. }
            | Caller::Lambda { credential, .. }
            | Caller::Peer { credential, .. } => credential.as_ref(),
        }
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::Local { .. } => f.write_str("local user"),
            Caller::Agent {
                transport,
                session: Some(s),
                ..
            } => write!(f, "agent over {transport} (session {s})"),
            Caller::Agent { transport, .. } => write!(f, "agent over {transport}"),
            Caller::Lambda { request_id, .. } => write!(f, "Lambda request {request_id}"),
            Caller::Peer { node, .. } => write!(f, "cluster peer {node}"),
        }
    }
}

/// What an [`Authorizer`] is asked to allow.
#[derive(Debug, Clone, Copy)]
pub enum Access<'a> {
    /// Opening a session (an HTTP request before any tool): is the
    /// credential valid at all?
    Connect,
    /// Calling the tool with this input (`tools/list` asks with `null`).
    Call { input: &'a Value },
    /// Whether the caller may change any resource at all through the tool
    /// (listing a tool that only changes things; a read-only token may not).
    Change,
    /// A named resource the running tool is about to use, such as
    /// (`dataset`, `sales`); `write` when it changes it.
    Resource {
        kind: &'a str,
        name: &'a str,
        write: bool,
    },
}

/// A tool call (or a resource within one) about to run, as an
/// [`Authorizer`] sees it.
pub struct CallRequest<'a> {
    pub caller: &'a Caller,
    /// The tool being called (empty outside any tool, e.g. a CLI command).
    pub tool: &'a str,
    pub access: Access<'a>,
    pub ctx: &'a Context,
}

/// Decides tool calls. Returns `Err(reason)` to refuse; the reason names
/// what was missing ("token does not grant tool `x`"), never secrets.
pub trait Authorizer: Send + Sync {
    fn authorize<'a>(&'a self, request: &'a CallRequest<'a>) -> BoxFuture<'a, Result<(), String>>;
}

impl ExtensionPoint for dyn Authorizer {
    const NAME: &'static str = "authorizer";
}

/// How a network front end (MCP over HTTP, the cluster API) admits callers;
/// each declares it in its own section as `auth = "token" | "none"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FrontDoor {
    /// Every request presents a bearer token an authorizer accepts.
    #[default]
    Token,
    /// No token needed (one presented is still enforced): loopback only.
    None,
}

impl FrontDoor {
    /// Refuses `none` on an address other hosts can reach.
    pub fn check_listen(self, addr: std::net::SocketAddr, section: &str) -> Result<(), String> {
        if self == FrontDoor::None && !addr.ip().is_loopback() {
            return Err(format!(
                "[{section}] auth = \"none\" is only allowed on a loopback address, but it listens on {addr}; \
                 keep auth = \"token\" (the default) and mint tokens with `hakiri auth token`, or listen on 127.0.0.1"
            ));
        }
        Ok(())
    }

    /// Admits `caller` (built from the request) or says why not. The reason
    /// names what is missing, never a secret.
    pub async fn admit(self, ctx: &Context, caller: Caller) -> Result<Context, String> {
        let ctx = ctx.with_caller(caller);
        match (ctx.caller().credential(), self) {
            (None, FrontDoor::None) => Ok(ctx),
            (None, FrontDoor::Token) => Err(
                "this endpoint needs `Authorization: Bearer <token>`; mint one with `hakiri auth token`"
                    .into(),
            ),
            (Some(_), _) => match ctx.authorize_connect().await {
                Ok(()) => Ok(ctx),
                Err(crate::ToolError::Denied { reason, .. }) => Err(reason),
                Err(other) => Err(other.to_string()),
            },
        }
    }
}
