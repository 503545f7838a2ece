//! `auth`: Biscuit tokens. `hakiri auth` mints, narrows, inspects and
//! revokes them; the `biscuit` authorizer enforces them on every tool call
//! that presents one (MCP over HTTP, coord-api, Lambda events, `--token`).

mod cli;
mod keys;
mod mint;
mod policy;

pub use keys::AuthConfig;

use biscuit_auth::{macros::authorizer, macros::biscuit, Biscuit, PublicKey};
use hakiri_kernel::{Authorizer, CheckOutcome, KernelError, Registrar, Tool, ToolError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

hakiri_kernel::capability!(register);

fn register(r: &mut Registrar) -> Result<(), KernelError> {
    r.config::<AuthConfig>()?;
    r.provide::<dyn Authorizer>("biscuit", Arc::new(policy::BiscuitAuthorizer))?;
    r.command(cli::command(), hakiri_kernel::Acts::Operator, cli::run)?;
    r.tool(Tool::typed(
        "auth.verify",
        "Verify a base64 biscuit token against a root public key and list its facts",
        |input: VerifyInput, _ctx| async move { verify(&input).map_err(ToolError::Failed) },
    ))?;
    r.check(|_ctx| async { self_check() });
    Ok(())
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct VerifyInput {
    /// The token, URL-safe base64 as biscuit prints it.
    token: String,
    /// Root public key, hex (ed25519).
    public_key: String,
}

#[derive(Debug, Serialize)]
struct VerifyOutput {
    valid: bool,
    blocks: usize,
    revocation_ids: Vec<String>,
}

fn verify(input: &VerifyInput) -> Result<VerifyOutput, String> {
    let bytes = hex::decode(&input.public_key)
        .map_err(|_| "public_key must be hex-encoded ed25519 bytes")?;
    let key = PublicKey::from_bytes(&bytes, biscuit_auth::Algorithm::Ed25519)
        .map_err(|e| format!("invalid public_key: {e}"))?;
    let token = Biscuit::from_base64(&input.token, key)
        .map_err(|e| format!("token does not verify: {e}"))?;
    Ok(VerifyOutput {
        valid: true,
        blocks: token.block_count(),
        revocation_ids: token
            .revocation_identifiers()
            .iter()
            .map(hex::encode)
            .collect(),
    })
}

/// Mints a token for one dataset, then checks that it authorizes a read of
/// that dataset and refuses a write.
fn self_check() -> CheckOutcome {
    let run = || -> Result<String, biscuit_auth::error::Token> {
        let root = biscuit_auth::KeyPair::new();
        let token = biscuit!(r#"right("sales", "read");"#).build(&root)?;
        let encoded = token.to_base64()?;
        let parsed = Biscuit::from_base64(&encoded, root.public())?;
        let mut read = authorizer!(
            r#"resource("sales"); operation("read"); allow if right("sales", "read");"#
        )
        .build(&parsed)?;
        read.authorize()?;
        let mut write = authorizer!(
            r#"resource("sales"); operation("write"); allow if right("sales", "write");"#
        )
        .build(&parsed)?;
        if write.authorize().is_ok() {
            return Ok("BUG: write was authorized".into());
        }
        Ok(format!(
            "minted a {}-byte token; read allowed, write denied",
            encoded.len()
        ))
    };
    match run() {
        Ok(s) if s.starts_with("BUG") => CheckOutcome::Failed(s),
        Ok(s) => CheckOutcome::Ok(s),
        Err(e) => CheckOutcome::Failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use biscuit_auth::KeyPair;

    fn minted() -> (String, String) {
        let root = KeyPair::new();
        let token = biscuit!(r#"right("sales", "read");"#).build(&root).unwrap();
        (
            token.to_base64().unwrap(),
            hex::encode(root.public().to_bytes()),
        )
    }

    #[test]
    fn verifies_a_token_under_its_root_key() {
        let (token, public_key) = minted();
        let out = verify(&VerifyInput { token, public_key }).unwrap();
        assert!(out.valid);
        assert_eq!(out.blocks, 1);
        assert_eq!(out.revocation_ids.len(), 1);
    }

    #[test]
    fn refuses_other_keys_garbage_and_bad_hex() {
        let (token, _) = minted();
        let (_, other_key) = minted();
        let wrong = verify(&VerifyInput {
            token: token.clone(),
            public_key: other_key,
        });
        assert!(wrong.unwrap_err().starts_with("token does not verify"));
        let (_, key) = minted();
        let garbage = verify(&VerifyInput {
            token: "not-a-token".into(),
            public_key: key,
        });
        assert!(garbage.unwrap_err().starts_with("token does not verify"));
        let hex = verify(&VerifyInput {
            token,
            public_key: "zz".into(),
        });
        assert!(hex.unwrap_err().contains("hex-encoded"));
    }

    #[test]
    fn self_check_reads_and_refuses_a_write() {
        assert!(matches!(self_check(), CheckOutcome::Ok(s) if s.contains("write denied")));
    }
}

#[cfg(test)]
mod token_tests;
