//! Registration rules: duplicates are start-up errors naming both crates;
//! tools are called the same way from every front end.

use hakiri_kernel::{Capability, Config, Context, KernelError, Profile, Registrar, Registry, Tool};
use serde_json::json;
use std::sync::Arc;

fn echo(r: &mut Registrar) -> Result<(), KernelError> {
    r.tool(Tool::typed(
        "echo",
        "Echo the input",
        |v: EchoIn, _ctx| async move { Ok(v) },
    ))
}

#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct EchoIn {
    text: String,
}

fn nothing(_r: &mut Registrar) -> Result<(), KernelError> {
    Ok(())
}

static ECHO_A: Capability = Capability::inline("echo-a", "crate-a", echo);
static ECHO_B: Capability = Capability::inline("echo-b", "crate-b", echo);
static SAME_1: Capability = Capability::inline("same", "crate-one", nothing);
static SAME_2: Capability = Capability::inline("same", "crate-two", nothing);
static BAD_NAME: Capability = Capability::inline("Bad Name", "crate-bad", nothing);

static FULL_ONLY: Profile = Profile {
    elsewhere: &[hakiri_kernel::Elsewhere {
        kind: "tool",
        name: "search.text",
        capability: "search",
        profiles: &["hakiri-full"],
    }],
    ..hakiri_kernel::embedded_profile!("hakiri-core")
};

#[test]
fn duplicate_capability_names_both_crates() {
    let err = Registry::from_capabilities(vec![&SAME_1, &SAME_2])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("capability `same`"), "{err}");
    assert!(
        err.contains("crate-one") && err.contains("crate-two"),
        "{err}"
    );
}

#[test]
fn duplicate_tool_names_both_crates() {
    let err = Registry::from_capabilities(vec![&ECHO_A, &ECHO_B])
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("tool `echo`") && err.contains("crate-a") && err.contains("crate-b"),
        "{err}"
    );
}

#[test]
fn invalid_names_are_refused() {
    let err = Registry::from_capabilities(vec![&BAD_NAME])
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("crate-bad") && err.contains("Bad Name"),
        "{err}"
    );
}

fn ctx(caps: Vec<&'static Capability>) -> Context {
    Context::new(
        Arc::new(Registry::from_capabilities(caps).unwrap()),
        Arc::new(Config::default()),
        &FULL_ONLY,
    )
    .unwrap()
}

#[tokio::test]
async fn tools_validate_input_and_name_other_profiles() {
    let ctx = ctx(vec![&ECHO_A]);
    assert_eq!(
        ctx.call("echo", json!({"text": "hi"})).await.unwrap(),
        json!({"text": "hi"})
    );
    let bad = ctx
        .call("echo", json!({"txt": "hi"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        bad.contains("invalid input for tool `echo`") && bad.contains("txt"),
        "{bad}"
    );
    let elsewhere = ctx
        .call("search.text", json!({}))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        elsewhere,
        "`search.text` is part of hakiri-full; this binary is hakiri-core"
    );
    let unknown = ctx.call("nope", json!({})).await.unwrap_err().to_string();
    assert!(
        unknown.contains("unknown tool `nope`") && unknown.contains("echo"),
        "{unknown}"
    );
}

#[test]
fn tool_schemas_come_from_the_input_type() {
    let reg = Registry::from_capabilities(vec![&ECHO_A]).unwrap();
    let schema = &reg.tools["echo"].item.input_schema;
    assert_eq!(schema["properties"]["text"]["type"], "string");
    assert_eq!(reg.contributions["echo-a"].tools, vec!["echo".to_string()]);
}
