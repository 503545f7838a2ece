//! HTTP events from a Lambda Function URL or an API Gateway HTTP API
//! (payload format 2.0): `POST /tools/<name>` with the tool's input as the
//! JSON body calls it; `GET /tools` (or `/`) describes the function. Answers
//! are HTTP responses with JSON bodies and the status the outcome calls for.
//! Events and responses are `aws_lambda_events`' types (+77 KB gzip on
//! hakiri-core, measured, against hand-reading the JSON).
//!
//! A request is admitted only with a bearer token (which the authorizer then
//! enforces) or through IAM (`AuthType: AWS_IAM`): a Function URL left open
//! to the internet does not open the tools with it.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine as _;
use hakiri_kernel::{Caller, Context, Credential, KernelError, ToolError};
use serde_json::{json, Value};

/// Whether `event` is an HTTP event (payload 2.0) rather than a direct invoke.
pub fn is_http(event: &Value) -> bool {
    event["version"] == "2.0" && event["requestContext"]["http"].is_object()
}

/// The caller of an HTTP request: its bearer token, if any.
fn caller(request_id: &str, request: &ApiGatewayV2httpRequest) -> Caller {
    Caller::Lambda {
        request_id: request_id.to_string(),
        credential: bearer(request).map(Credential::new),
    }
}

fn parse(event: &Value) -> Result<ApiGatewayV2httpRequest, serde_json::Error> {
    serde_json::from_value(event.clone())
}

fn bearer(request: &ApiGatewayV2httpRequest) -> Option<&str> {
    let value = request.headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// One HTTP event, answered as an HTTP response; the bearer token, if
/// any, is the caller's credential.
pub async fn handle(ctx: &Context, request_id: &str, event: &Value) -> Value {
    let request = match parse(event) {
        Ok(r) => r,
        Err(e) => return error(400, &format!("not an HTTP event (payload 2.0): {e}")),
    };
    let ctx = &ctx.with_caller(caller(request_id, &request));
    let method = request.request_context.http.method.as_str();
    let path = request.raw_path.as_deref().unwrap_or("/");
    // API Gateway stages prefix the path (`/prod/tools/x`).
    let route = path.find("/tools").map_or(path, |i| &path[i..]);
    let tool = route.strip_prefix("/tools/").filter(|t| !t.is_empty());
    let iam = request
        .request_context
        .authorizer
        .as_ref()
        .is_some_and(|a| a.iam.is_some());
    if bearer(&request).is_none() && !iam {
        return error(
            401,
            "this function takes a bearer token (Authorization: Bearer …, minted with `hakiri auth token`) or IAM authentication (Function URL AuthType AWS_IAM)",
        )
        .with_header("www-authenticate", "Bearer");
    }
    match (method, route, tool) {
        ("POST", _, Some(tool)) => {
            let input = match body(&request) {
                Ok(v) => v,
                Err(why) => return error(400, &why),
            };
            match ctx.call(tool, input).await {
                Ok(v) => response(200, &v),
                Err(e) => error(status(&e), &e.to_string()),
            }
        }
        ("GET", "/" | "/tools", None) => response(
            200,
            &json!({
                "profile": ctx.profile.name,
                "version": ctx.profile.version,
                "tools": ctx.registry.tools.keys().collect::<Vec<_>>(),
            }),
        ),
        (_, _, Some(_)) => error(405, "tools are called with POST").with_header("allow", "POST"),
        (_, "/" | "/tools", None) => {
            error(405, "the tool list is read with GET").with_header("allow", "GET")
        }
        _ => error(
            404,
            &format!("no route `{path}`: POST /tools/<name> calls a tool, GET /tools lists them"),
        ),
    }
}

/// The request body as JSON (`{}` when empty), decoded from base64 if the
/// event says so.
fn body(request: &ApiGatewayV2httpRequest) -> Result<Value, String> {
    let raw = request.body.as_deref().unwrap_or("");
    let bytes = if request.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|e| format!("the request body is not valid base64: {e}"))?
    } else {
        raw.as_bytes().to_vec()
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| format!("the request body must be the tool's input as a JSON object: {e}"))
}

/// The status for a tool's failure: the caller's fault (4xx) unless the tool crashed.
fn status(e: &ToolError) -> u16 {
    match e {
        ToolError::InvalidInput { .. } => 400,
        ToolError::Denied { .. } => 403,
        ToolError::Kernel(KernelError::Unknown { .. } | KernelError::ElsewhereProfile { .. }) => {
            404
        }
        ToolError::Failed(m) if m.contains(" crashed (") => 500,
        ToolError::Failed(_) => 422,
        ToolError::Kernel(_) => 500,
    }
}

fn response(status: u16, body: &Value) -> Value {
    let mut r = ApiGatewayV2httpResponse {
        status_code: i64::from(status),
        body: Some(Body::Text(body.to_string())),
        ..Default::default()
    };
    r.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    serde_json::to_value(r).unwrap_or_else(|_| json!({"statusCode": 500}))
}

fn error(status: u16, message: &str) -> Value {
    response(status, &json!({"error": message}))
}

trait WithHeader {
    fn with_header(self, name: &str, value: &str) -> Value;
}

impl WithHeader for Value {
    fn with_header(mut self, name: &str, value: &str) -> Value {
        self["headers"][name] = json!(value);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(method: &str, path: &str, body: &str, token: Option<&str>) -> Value {
        let mut headers = json!({"content-type": "application/json"});
        if let Some(t) = token {
            headers["authorization"] = json!(format!("Bearer {t}"));
        }
        json!({
            "version": "2.0",
            "rawPath": path,
            "headers": headers,
            "requestContext": {"http": {"method": method, "path": path}, "requestId": "r1"},
            "body": body,
            "isBase64Encoded": false,
        })
    }

    #[test]
    fn http_events_are_told_from_direct_invokes() {
        assert!(is_http(&event("GET", "/", "", None)));
        assert!(!is_http(&json!({"tool": "x"})));
        assert!(!is_http(&json!({"version": "2.0"})));
    }

    #[test]
    fn the_bearer_token_is_the_callers_credential() {
        let e = parse(&event("GET", "/", "", Some("tok"))).unwrap();
        assert_eq!(
            caller("r", &e).credential().map(|c| c.expose()),
            Some("tok")
        );
        let none = parse(&event("GET", "/", "", None)).unwrap();
        assert!(caller("r", &none).credential().is_none());
    }

    #[test]
    fn bodies_are_json_objects_plain_or_base64() {
        let body = |e: Value| body(&parse(&e).unwrap());
        assert_eq!(body(event("POST", "/", "", None)).unwrap(), json!({}));
        assert_eq!(
            body(event("POST", "/", "{\"a\":1}", None)).unwrap(),
            json!({"a": 1})
        );
        let mut e = event("POST", "/", "eyJhIjoxfQ==", None);
        e["isBase64Encoded"] = json!(true);
        assert_eq!(body(e).unwrap(), json!({"a": 1}));
        let err = body(event("POST", "/", "{nope", None)).unwrap_err();
        assert!(
            err.contains("must be the tool's input as a JSON object"),
            "{err}"
        );
    }
}
