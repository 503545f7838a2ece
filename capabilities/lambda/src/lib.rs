//! `lambda`: runs the binary as an AWS Lambda bootstrap.
//!
//! A bare invocation with `AWS_LAMBDA_RUNTIME_API` set (how Lambda starts a
//! `bootstrap`) serves invocations; so does `hakiri lambda`. An event
//! `{"tool": "name", "input": {...}}` calls that tool, exactly as `hakiri call`
//! and MCP do; an event without `tool` answers with the profile and its tools.
//! HTTP events from a Function URL or API Gateway (payload 2.0) are served
//! as a small REST surface ([`http`]).

mod http;

use anyhow::{bail, Context as _};
use hakiri_kernel::{Caller, CheckOutcome, Context, Credential, KernelError, Registrar};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::time::Duration;

hakiri_kernel::capability!(register);

const RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";
/// lambda_runtime panics without these; we check first and say what is missing.
const REQUIRED: &[&str] = &[
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

fn register(r: &mut Registrar) -> Result<(), KernelError> {
    r.launcher(|| std::env::var_os(RUNTIME_API).is_some(), run);
    r.command(
        clap::Command::new("lambda").about("Serve invocations from the AWS Lambda Runtime API (the default when AWS_LAMBDA_RUNTIME_API is set)"),
        hakiri_kernel::Acts::Operator,
        |_m, ctx| run(ctx),
    )?;
    r.check(|_ctx| async { tokio::task::spawn_blocking(self_check).await? });
    Ok(())
}

async fn run(ctx: Context) -> anyhow::Result<ExitCode> {
    for var in REQUIRED {
        if std::env::var_os(var).is_none() {
            bail!("{var} is not set: `hakiri lambda` runs inside AWS Lambda (or an emulator that sets the AWS_LAMBDA_* variables)");
        }
    }
    if std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        .map(|v| v.parse::<i32>().is_err())
        .unwrap_or(true)
    {
        bail!("AWS_LAMBDA_FUNCTION_MEMORY_SIZE must be a whole number of MB");
    }
    let handler = service_fn(move |event: LambdaEvent<Value>| {
        let ctx = ctx.clone();
        async move {
            let id = &event.context.request_id;
            if http::is_http(&event.payload) {
                return Ok(http::handle(&ctx, id, &event.payload).await);
            }
            handle(&ctx.with_caller(caller(id, &event.payload)), event.payload).await
        }
    });
    lambda_runtime::run(handler)
        .await
        .map_err(|e| anyhow::anyhow!("Lambda runtime stopped: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// The caller of an invocation: IAM admitted it; a `token` field in the event
/// is its credential, which an authorizer then enforces.
fn caller(request_id: &str, event: &Value) -> Caller {
    Caller::Lambda {
        request_id: request_id.to_string(),
        credential: event["token"].as_str().map(Credential::new),
    }
}

/// One invocation: a tool call, or a description of this function. Errors
/// reach the Runtime API's `/error` with the tool's message.
pub async fn handle(ctx: &Context, event: Value) -> Result<Value, Diagnostic> {
    match event.get("tool") {
        None => Ok(json!({
            "profile": ctx.profile.name,
            "version": ctx.profile.version,
            "tools": ctx.registry.tools.keys().collect::<Vec<_>>(),
        })),
        Some(Value::String(tool)) => {
            let input = event.get("input").cloned().unwrap_or_else(|| json!({}));
            ctx.call(tool, input).await.map_err(|e| Diagnostic {
                error_type: "ToolError".into(),
                error_message: e.to_string(),
            })
        }
        Some(other) => Err(Diagnostic {
            error_type: "InvalidEvent".into(),
            error_message: format!("event field `tool` must be a tool name string, found {other}"),
        }),
    }
}

/// Runs this very binary as a bootstrap against a local Runtime API emulator
/// and checks that one invocation comes back as a response.
fn self_check() -> anyhow::Result<CheckOutcome> {
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let emu = hakiri_lambda_emulator::Emulator::start()
        .context("cannot start the Runtime API emulator")?;
    let mut child = std::process::Command::new(&exe)
        .envs(emu.env())
        .env_remove("HAKIRI_CONFIG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {} as a bootstrap", exe.display()))?;
    let id = emu.invoke("{}");
    let outcome = emu.wait(&id, Duration::from_secs(10));
    let _ = child.kill();
    let _ = child.wait();
    match outcome {
        Some(o)
            if o.kind == hakiri_lambda_emulator::Kind::Response && o.body.contains("\"tools\"") =>
        {
            Ok(CheckOutcome::Ok(format!(
                "bootstrap answered an invocation through the Runtime API ({} bytes)",
                o.body.len()
            )))
        }
        Some(o) => Ok(CheckOutcome::Failed(format!(
            "bootstrap reported {:?}: {}",
            o.kind, o.body
        ))),
        None => Ok(CheckOutcome::Failed(
            "bootstrap did not answer within 10 s".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hakiri_kernel::{Config, Profile};

    static PROFILE: Profile = hakiri_kernel::embedded_profile!("lambda-test");

    fn ctx() -> Context {
        Context::from_inventory(Config::default(), &PROFILE).unwrap()
    }

    #[tokio::test]
    async fn events_without_a_tool_describe_the_function() {
        let v = handle(&ctx(), json!({})).await.unwrap();
        assert_eq!(v["profile"], "lambda-test");
        assert!(v["tools"].is_array(), "{v}");
    }

    #[tokio::test]
    async fn bad_events_get_diagnostics_naming_the_problem() {
        let e = handle(&ctx(), json!({"tool": 5})).await.unwrap_err();
        assert_eq!(e.error_type, "InvalidEvent");
        assert!(
            e.error_message.contains("must be a tool name string"),
            "{}",
            e.error_message
        );
        let e = handle(&ctx(), json!({"tool": "no.such"}))
            .await
            .unwrap_err();
        assert_eq!(e.error_type, "ToolError");
        assert!(
            e.error_message.contains("unknown tool `no.such`"),
            "{}",
            e.error_message
        );
    }

    fn http_event(method: &str, path: &str, iam: bool) -> Value {
        let mut e = json!({
            "version": "2.0",
            "rawPath": path,
            "headers": {},
            "requestContext": {"http": {"method": method, "path": path}},
            "body": "",
        });
        if iam {
            e["requestContext"]["authorizer"] =
                json!({"iam": {"userArn": "arn:aws:iam::1:user/a"}});
        }
        e
    }

    #[tokio::test]
    async fn http_events_get_statuses_and_json_bodies() {
        let ctx = ctx();
        let status = |v: &Value| v["statusCode"].as_u64().unwrap();
        let body = |v: &Value| serde_json::from_str::<Value>(v["body"].as_str().unwrap()).unwrap();
        let open = http::handle(&ctx, "r1", &http_event("GET", "/tools", false)).await;
        assert_eq!(status(&open), 401, "{open}");
        assert_eq!(open["headers"]["www-authenticate"], "Bearer");
        let listed = http::handle(&ctx, "r1", &http_event("GET", "/prod/tools", true)).await;
        assert_eq!(status(&listed), 200, "{listed}");
        assert_eq!(body(&listed)["profile"], "lambda-test");
        let unknown = http::handle(&ctx, "r1", &http_event("POST", "/tools/no.such", true)).await;
        assert_eq!(status(&unknown), 404, "{unknown}");
        assert!(body(&unknown)["error"]
            .as_str()
            .unwrap()
            .contains("unknown tool `no.such`"));
        let get_tool = http::handle(&ctx, "r1", &http_event("GET", "/tools/x", true)).await;
        assert_eq!(status(&get_tool), 405);
        assert_eq!(get_tool["headers"]["allow"], "POST");
        let nowhere = http::handle(&ctx, "r1", &http_event("GET", "/etc/passwd", true)).await;
        assert_eq!(status(&nowhere), 404);
    }

    #[test]
    fn the_event_token_is_the_callers_credential() {
        let c = caller("req-1", &json!({"token": "abc", "tool": "x"}));
        assert_eq!(c.credential().map(|t| t.expose()), Some("abc"));
        assert_eq!(c.to_string(), "Lambda request req-1");
        assert!(caller("req-2", &json!({})).credential().is_none());
    }
}
