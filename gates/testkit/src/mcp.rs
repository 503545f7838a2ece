//! A minimal MCP client over streamable HTTP (raw JSON-RPC through
//! [`crate::http`]), for tests that need to see status codes and bodies as
//! sent; the official SDKs are exercised separately.

use crate::http::{self, Response};
use serde_json::{json, Value};
use std::time::Duration;

/// One MCP session over streamable HTTP with a bearer token.
pub struct Mcp {
    url: String,
    bearer: String,
    session: String,
}

fn headers<'a>(bearer: &'a str, session: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![("Accept", "application/json, text/event-stream")];
    if !bearer.is_empty() {
        h.push(("Authorization", bearer));
    }
    if let Some(s) = session {
        h.push(("Mcp-Session-Id", s));
    }
    h
}

/// The JSON-RPC reply in a JSON or SSE body.
fn reply(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|_| {
        body.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v.get("id").is_some())
            .unwrap_or_else(|| panic!("no JSON-RPC reply in {body}"))
    })
}

impl Mcp {
    pub fn open(url: &str, token: &str) -> Result<Mcp, Response> {
        let bearer = if token.is_empty() {
            String::new()
        } else {
            format!("Bearer {token}")
        };
        let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"hakiri-testkit","version":"1"}}}"#;
        let resp = http::post_json(url, &headers(&bearer, None), init);
        if resp.status != 200 {
            return Err(resp);
        }
        let session = resp
            .header("mcp-session-id")
            .expect("session id")
            .to_string();
        let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        http::post_json(url, &headers(&bearer, Some(&session)), note);
        Ok(Mcp {
            url: url.into(),
            bearer,
            session,
        })
    }

    pub fn post(&self, method: &str, params: &str) -> Response {
        let body = format!(r#"{{"jsonrpc":"2.0","id":2,"method":"{method}","params":{params}}}"#);
        let h = headers(&self.bearer, Some(&self.session));
        let mut all = vec![("Content-Type", "application/json")];
        all.extend(h);
        http::request(
            "POST",
            &self.url,
            &all,
            body.as_bytes(),
            Duration::from_secs(120),
        )
        .unwrap_or_else(|e| Response {
            status: 0,
            headers: Vec::new(),
            body: e.to_string(),
        })
    }

    /// `(isError, the result)` of one tool call.
    pub fn call(&self, tool: &str, args: &str) -> (bool, Value) {
        let resp = self.post(
            "tools/call",
            &format!(r#"{{"name":"{tool}","arguments":{args}}}"#),
        );
        assert_eq!(resp.status, 200, "{tool}: {}", resp.body);
        let v = reply(&resp.body);
        let result = v.get("result").cloned().unwrap_or_else(
            || json!({"isError": true, "content": [{"text": v["error"].to_string()}]}),
        );
        (result["isError"] == true, result)
    }

    pub fn tools(&self) -> Vec<String> {
        let v = reply(&self.post("tools/list", "{}").body);
        v["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    }
}
