//! The one place that decides what a token allows: every tool call and every
//! resource a tool touches goes through [`BiscuitAuthorizer`].
//!
//! No credential: the front end already admitted the caller (the local user,
//! stdio MCP, a Lambda invocation IAM allowed, loopback HTTP with
//! `[mcp] auth = "none"`), so it is allowed here. A credential is always
//! enforced: signature, revocation, expiry, then these policies.

use crate::keys;
use biscuit_auth::builder::{fact, string};
use biscuit_auth::error::{FailedCheck, Logic, Token};
use biscuit_auth::{AuthorizerBuilder, AuthorizerLimits, Biscuit};
use hakiri_kernel::{Access, Authorizer, BoxFuture, CallRequest, Context};
use std::time::Duration;

/// Trusted rules: grants come from the authority block only (biscuit's
/// default scope), so an attenuation block can never add one.
const POLICY: &str = r#"
tool_ok($t) <- tool($t), grant_tool($t);
tool_ok($t) <- tool($t), grant_tool_prefix($p), $t.starts_with($p);
resource_ok($k, $n) <- resource($k, $n), operation($op), grant($k, $n, $op);
resource_ok($k, $n) <- resource($k, $n), operation($op), grant($k, "*", $op);
"#;

pub struct BiscuitAuthorizer;

impl Authorizer for BiscuitAuthorizer {
    fn authorize<'a>(&'a self, request: &'a CallRequest<'a>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            match request.caller.credential() {
                None => Ok(()),
                Some(token) => decide(request.ctx, token.expose(), request.tool, request.access),
            }
        })
    }
}

/// Verifies `token` and decides `access` for `tool`; the reason names what
/// was missing, never why a signature failed.
pub fn decide(ctx: &Context, token: &str, tool: &str, access: Access<'_>) -> Result<(), String> {
    let root = keys::root_public_key(ctx).map_err(|_| {
        "this server has no root key to verify tokens; its operator must run `hakiri auth init` or set [auth] public_key"
            .to_string()
    })?;
    let biscuit = Biscuit::from_base64(token.trim(), root).map_err(|_| {
        "the token is not valid for this server (damaged, or signed by another key)".to_string()
    })?;
    let revoked = keys::revoked(ctx).map_err(|e| format!("cannot check revocations: {e}"))?;
    if biscuit
        .revocation_identifiers()
        .iter()
        .any(|id| revoked.contains(&hex::encode(id)))
    {
        return Err("the token has been revoked".into());
    }
    let Err(error) = evaluate(&biscuit, tool, access) else {
        return Ok(());
    };
    if expired(&error) {
        return Err("the token has expired".into());
    }
    if !matches!(error, Token::FailedLogic(_)) {
        return Err("the token cannot be evaluated (too many facts or rules)".into());
    }
    let (kind, name, write) = match access {
        Access::Resource { kind, name, write } => (kind, name, write),
        Access::Connect => return Err("the token is not accepted".into()),
        Access::Change => return Err("the token grants no writes (read-only)".into()),
        Access::Call { .. } => return Err(format!("token does not grant tool `{tool}`")),
    };
    let null = serde_json::Value::Null;
    if !tool.is_empty() && evaluate(&biscuit, tool, Access::Call { input: &null }).is_err() {
        return Err(format!("token does not grant tool `{tool}`"));
    }
    let read = Access::Resource {
        kind,
        name,
        write: false,
    };
    Err(if write && evaluate(&biscuit, tool, read).is_ok() {
        format!("token does not grant writing {kind} `{name}` (read-only)")
    } else {
        format!("token does not grant {kind} `{name}`")
    })
}

fn evaluate(biscuit: &Biscuit, tool: &str, access: Access<'_>) -> Result<usize, Token> {
    let mut builder = AuthorizerBuilder::new().time().code(POLICY)?;
    if !tool.is_empty() {
        builder = builder.fact(fact("tool", &[string(tool)]))?;
    }
    builder = match access {
        Access::Connect => builder.code("allow if true;")?,
        Access::Call { .. } => builder.code("allow if tool($t), tool_ok($t);")?,
        // Attenuation's `reject if operation("write")` applies here too.
        Access::Change => builder
            .fact(fact("operation", &[string("write")]))?
            .code("allow if tool($t), tool_ok($t), grant($k, $n, \"write\");")?,
        Access::Resource { kind, name, write } => {
            let op = if write { "write" } else { "read" };
            builder = builder
                .fact(fact("resource", &[string(kind), string(name)]))?
                .fact(fact("operation", &[string(op)]))?;
            if tool.is_empty() {
                builder.code("allow if resource_ok($k, $n);")?
            } else {
                builder.code("allow if tool($t), tool_ok($t), resource_ok($k, $n);")?
            }
        }
    };
    // Facts and iterations bound the work a hostile token can ask for; the
    // time limit is wall-clock, so it must allow for a loaded machine
    // (50 ms failed a self-check while CI ran tests on both cores).
    let limits = AuthorizerLimits {
        max_facts: 1000,
        max_iterations: 100,
        max_time: Duration::from_secs(1),
    };
    let mut authorizer = builder.set_limits(limits).build(biscuit)?;
    authorizer.authorize()
}

/// Whether an expiry check (`time(...)`) is among the failed ones.
fn expired(error: &Token) -> bool {
    let checks = match error {
        Token::FailedLogic(Logic::Unauthorized { checks, .. })
        | Token::FailedLogic(Logic::NoMatchingPolicy { checks }) => checks,
        _ => return false,
    };
    checks.iter().any(|c| match c {
        FailedCheck::Block(b) => b.rule.contains("time("),
        FailedCheck::Authorizer(a) => a.rule.contains("time("),
    })
}
