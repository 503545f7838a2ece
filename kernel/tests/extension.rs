//! The kernel's generic mechanisms, exercised from outside it: an extension
//! point declared here (the kernel has never heard of it), the caller and its
//! authorization hook, and per-kernel state.

use hakiri_kernel::{
    Access, Authorizer, BoxFuture, CallRequest, Caller, Capability, Config, Context, Credential,
    ExtensionPoint, KernelError, Profile, Registrar, Registry, Tool,
};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// An extension point the kernel does not know.
trait Greeter: Send + Sync {
    fn greet(&self, who: &str) -> String;
}

impl ExtensionPoint for dyn Greeter {
    const NAME: &'static str = "greeter";
}

struct English;
impl Greeter for English {
    fn greet(&self, who: &str) -> String {
        format!("hello {who}")
    }
}

struct French;
impl Greeter for French {
    fn greet(&self, who: &str) -> String {
        format!("bonjour {who}")
    }
}

static EN: Capability = Capability::inline("greet-en", "crate-en", |r| {
    r.provide::<dyn Greeter>("en", Arc::new(English))
});
static FR: Capability = Capability::inline("greet-fr", "crate-fr", |r| {
    r.provide::<dyn Greeter>("fr", Arc::new(French))
});
static FR_AGAIN: Capability = Capability::inline("greet-fr2", "crate-fr-again", |r| {
    r.provide::<dyn Greeter>("fr", Arc::new(French))
});

/// A second type that claims the name `greeter`.
trait Impostor: Send + Sync {}
impl ExtensionPoint for dyn Impostor {
    const NAME: &'static str = "greeter";
}
struct Nobody;
impl Impostor for Nobody {}
static IMPOSTOR: Capability = Capability::inline("impostor", "crate-impostor", |r| {
    r.provide::<dyn Impostor>("x", Arc::new(Nobody))
});

static PROFILE: Profile = Profile {
    elsewhere: &[hakiri_kernel::Elsewhere {
        kind: "greeter",
        name: "de",
        capability: "greet-de",
        profiles: &["hakiri-full"],
    }],
    ..hakiri_kernel::embedded_profile!("hakiri-core")
};

fn ctx(caps: Vec<&'static Capability>) -> Context {
    Context::new(
        Arc::new(Registry::from_capabilities(caps).unwrap()),
        Arc::new(Config::default()),
        &PROFILE,
    )
    .unwrap()
}

#[test]
fn two_capabilities_provide_and_any_looks_up() {
    let ctx = ctx(vec![&EN, &FR]);
    assert_eq!(
        ctx.get::<dyn Greeter>("fr").unwrap().greet("a"),
        "bonjour a"
    );
    let all: Vec<String> = ctx
        .all::<dyn Greeter>()
        .iter()
        .map(|(name, g)| format!("{name}: {}", g.greet("b")))
        .collect();
    assert_eq!(all, ["en: hello b", "fr: bonjour b"]);
    let reg = &ctx.registry;
    assert_eq!(reg.contributions["greet-en"].provides["greeter"], ["en"]);
    assert_eq!(
        reg.provider::<dyn Greeter>("fr").unwrap().crate_name,
        "crate-fr"
    );
    assert!(ctx.get::<dyn Greeter>("it").is_none());
}

#[test]
fn a_missing_name_says_where_it_is_or_what_there_is() {
    let ctx = ctx(vec![&EN, &FR]);
    let elsewhere = ctx.require::<dyn Greeter>("de").err().unwrap().to_string();
    assert_eq!(
        elsewhere,
        "`de` is part of hakiri-full; this binary is hakiri-core"
    );
    let unknown = ctx.require::<dyn Greeter>("it").err().unwrap().to_string();
    assert_eq!(unknown, "unknown greeter `it`; this binary has: en, fr");
}

#[test]
fn duplicates_and_name_clashes_are_refused_with_both_crates() {
    let dup = Registry::from_capabilities(vec![&FR, &FR_AGAIN])
        .err()
        .unwrap()
        .to_string();
    assert!(
        dup.contains("greeter `fr`") && dup.contains("crate-fr") && dup.contains("crate-fr-again"),
        "{dup}"
    );
    let clash = Registry::from_capabilities(vec![&EN, &IMPOSTOR])
        .err()
        .unwrap()
        .to_string();
    assert!(
        clash.contains("`greeter`")
            && clash.contains("Impostor")
            && clash.contains("crate-impostor"),
        "{clash}"
    );
}

// --- the caller and the authorization hook ---

/// Refuses agents that present no token; tells tools nothing else.
struct TokenRequired;
impl Authorizer for TokenRequired {
    fn authorize<'a>(&'a self, req: &'a CallRequest<'a>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if let Access::Resource { kind, name, .. } = req.access {
                return match name {
                    "secret" => Err(format!("no access to {kind} `{name}` from `{}`", req.tool)),
                    _ => Ok(()),
                };
            }
            match req.caller {
                Caller::Local { .. } => Ok(()),
                c if c.credential().is_some_and(|t| t.expose() == "letmein") => Ok(()),
                _ => Err(format!("no valid token for `{}`", req.tool)),
            }
        })
    }
}

fn whoami(r: &mut Registrar) -> Result<(), KernelError> {
    r.tool(Tool::typed(
        "whoami",
        "Who is calling",
        |_: serde_json::Map<String, serde_json::Value>, ctx| async move {
            Ok(ctx.caller().to_string())
        },
    ))
}
static WHOAMI: Capability = Capability::inline("whoami", "crate-whoami", whoami);
static GUARD: Capability = Capability::inline("guard", "crate-guard", |r| {
    r.provide::<dyn Authorizer>("token", Arc::new(TokenRequired))
});

fn agent(token: Option<&str>) -> Caller {
    Caller::Agent {
        transport: "mcp-http",
        session: Some("s1".into()),
        credential: token.map(Credential::new),
    }
}

#[tokio::test]
async fn tools_see_the_caller_and_calls_are_open_without_an_authorizer() {
    let ctx = ctx(vec![&WHOAMI]);
    assert_eq!(ctx.call("whoami", json!({})).await.unwrap(), "local user");
    let remote = ctx.with_caller(agent(None));
    assert_eq!(
        remote.call("whoami", json!({})).await.unwrap(),
        "agent over mcp-http (session s1)"
    );
}

#[tokio::test]
async fn an_authorizer_decides_every_call() {
    let ctx = ctx(vec![&WHOAMI, &GUARD]);
    assert!(ctx.call("whoami", json!({})).await.is_ok());
    let denied = ctx
        .with_caller(agent(Some("wrong")))
        .call("whoami", json!({}))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        denied,
        "permission denied: agent over mcp-http (session s1) may not call `whoami`: no valid token for `whoami`"
    );
    assert!(!denied.contains("wrong"), "the token leaked: {denied}");
    let allowed = ctx
        .with_caller(agent(Some("letmein")))
        .call("whoami", json!({}))
        .await;
    assert!(allowed.is_ok(), "{allowed:?}");
}

fn reader(r: &mut Registrar) -> Result<(), KernelError> {
    r.tool(Tool::typed(
        "read",
        "Reads a named thing",
        |input: serde_json::Map<String, serde_json::Value>, ctx| async move {
            let name = input["name"].as_str().unwrap_or_default().to_string();
            ctx.authorize_resource("thing", &name, false).await?;
            Ok(name)
        },
    ))
}
static READER: Capability = Capability::inline("reader", "crate-reader", reader);

#[tokio::test]
async fn tools_ask_about_the_resources_they_touch() {
    let ctx = ctx(vec![&READER, &GUARD]);
    assert_eq!(
        ctx.call("read", json!({"name": "open"})).await.unwrap(),
        "open"
    );
    let denied = ctx
        .call("read", json!({"name": "secret"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        denied.ends_with("no access to thing `secret` from `read`"),
        "{denied}"
    );
}

#[tokio::test]
async fn a_token_with_no_authorizer_to_verify_it_is_refused() {
    let ctx = ctx(vec![&WHOAMI]);
    let denied = ctx
        .with_caller(agent(Some("anything")))
        .call("whoami", json!({}))
        .await
        .unwrap_err()
        .to_string();
    assert!(denied.contains("no authorizer to verify it"), "{denied}");
    assert!(ctx
        .with_caller(agent(None))
        .call("whoami", json!({}))
        .await
        .is_ok());
}

#[test]
fn credentials_never_print() {
    let c = agent(Some("s3cret"));
    assert!(!format!("{c:?}").contains("s3cret"));
    assert_eq!(
        Credential::from_bearer("Bearer  abc ").unwrap().expose(),
        "abc"
    );
    assert!(Credential::from_bearer("Basic abc").is_none());
}

// --- per-kernel state ---

#[derive(Default)]
struct Counter(AtomicU64);

fn counting(r: &mut Registrar) -> Result<(), KernelError> {
    r.state(Counter::default())?;
    r.tool(Tool::typed(
        "count",
        "Counts calls in this kernel",
        |_: serde_json::Map<String, serde_json::Value>, ctx| async move {
            let counter = ctx.state::<Counter>().expect("registered");
            Ok(counter.0.fetch_add(1, Ordering::SeqCst) + 1)
        },
    ))
}
static COUNTING: Capability = Capability::inline("counting", "crate-counting", counting);
static COUNTING_TWICE: Capability = Capability::inline("counting2", "crate-counting-twice", |r| {
    r.state(Counter::default())
});

#[tokio::test]
async fn two_kernels_in_one_process_keep_their_own_state() {
    let (a, b) = (ctx(vec![&COUNTING]), ctx(vec![&COUNTING]));
    for _ in 0..3 {
        a.call("count", json!({})).await.unwrap();
    }
    assert_eq!(a.call("count", json!({})).await.unwrap(), 4);
    assert_eq!(b.call("count", json!({})).await.unwrap(), 1);
    let dup = Registry::from_capabilities(vec![&COUNTING, &COUNTING_TWICE])
        .err()
        .unwrap()
        .to_string();
    assert!(
        dup.contains("crate-counting") && dup.contains("crate-counting-twice"),
        "{dup}"
    );
}

// --- panics ---

static PANICKY: Capability = Capability::inline("panicky", "crate-panicky", |r| {
    r.tool(Tool::typed(
        "boom",
        "Panics",
        |_: serde_json::Map<String, serde_json::Value>, _ctx| async move {
            if true {
                panic!("index out of bounds");
            }
            Ok(())
        },
    ))?;
    r.tool(Tool::typed(
        "boom.blocking",
        "Panics on a blocking thread",
        |_: serde_json::Map<String, serde_json::Value>, _ctx| async move {
            hakiri_kernel::blocking("parsing the input", || -> anyhow::Result<()> {
                panic!("activate 'decompress' feature")
            })
            .await?;
            Ok(())
        },
    ))
});

#[tokio::test]
async fn a_panicking_tool_is_an_error_and_the_kernel_keeps_serving() {
    let ctx = ctx(vec![&PANICKY, &WHOAMI]);
    let err = ctx.call("boom", json!({})).await.unwrap_err().to_string();
    assert!(
        err.contains("`boom` crashed (index out of bounds)"),
        "{err}"
    );
    let err = ctx
        .call("boom.blocking", json!({}))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("parsing the input crashed (activate 'decompress' feature)"),
        "{err}"
    );
    assert!(ctx.call("whoami", json!({})).await.is_ok());
}
