//! `hakiri cluster`: start a node of a new cluster (`init`) or of an
//! existing one (`join`), and ask a running cluster for its status or to
//! drop a node (`status`, `remove`, through the coordinator API).

use crate::http::HttpClient;
use clap::{value_parser, Arg, ArgMatches, Command};
use hakiri_kernel::{Caller, Context};
use hyper::Method;
use serde_json::Value;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:7979";

fn node_args(cmd: Command) -> Command {
    cmd.arg(
        Arg::new("node-id")
            .long("node-id")
            .value_parser(value_parser!(u64).range(1..))
            .help("This node's id ([raft] node_id)"),
    )
    .arg(
        Arg::new("listen")
            .long("listen")
            .help("Peer address, host:port ([raft] listen)"),
    )
    .arg(
        Arg::new("advertise")
            .long("advertise")
            .help("Peer URL others use ([raft] advertise)"),
    )
    .arg(
        Arg::new("api")
            .long("api")
            .help("Coordinator API address, host:port ([coord-api] listen)"),
    )
    .arg(
        Arg::new("data-dir")
            .long("data-dir")
            .help("Log and snapshots ([raft] data_dir)"),
    )
}

fn endpoint_arg(cmd: Command) -> Command {
    cmd.arg(
        Arg::new("endpoint")
            .long("endpoint")
            .default_value(DEFAULT_ENDPOINT)
            .help("A coordinator's API URL"),
    )
}

pub fn command() -> Command {
    Command::new("cluster")
        .about("Start, join and inspect a cluster of coordinators")
        .subcommand_required(true)
        .subcommand(node_args(
            Command::new("init").about("Serve as the first node of a new cluster"),
        ))
        .subcommand(node_args(
            Command::new("join")
                .about("Serve as a new node of the cluster a member's peer URL leads to")
                .arg(
                    Arg::new("url")
                        .required(true)
                        .help("A member's peer URL, e.g. http://10.0.0.1:7980"),
                ),
        ))
        .subcommand(endpoint_arg(
            Command::new("status")
                .about("Leader, term, members, applied index and lag per follower"),
        ))
        .subcommand(endpoint_arg(
            Command::new("remove")
                .about("Remove a node from the cluster")
                .arg(
                    Arg::new("id")
                        .required(true)
                        .value_parser(value_parser!(u64)),
                ),
        ))
}

/// `status` and `remove` send the token to the coordinator API, which
/// checks it; `init` and `join` run a node of this machine.
pub fn acts(m: &ArgMatches) -> hakiri_kernel::Acts {
    match m.subcommand_name() {
        Some("status" | "remove") => hakiri_kernel::Acts::Delegates,
        _ => hakiri_kernel::Acts::Operator,
    }
}

pub async fn run(m: ArgMatches, ctx: Context) -> anyhow::Result<ExitCode> {
    match m.subcommand() {
        Some(("init", m)) => serve_as(&ctx, m, None).await,
        Some(("join", m)) => {
            let url = m.get_one::<String>("url").expect("required");
            serve_as(&ctx, m, Some(url)).await
        }
        Some(("status", m)) => {
            let v = api(&ctx, m, Method::GET, "/v1/cluster").await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(ExitCode::SUCCESS)
        }
        Some(("remove", m)) => {
            let id = m.get_one::<u64>("id").expect("required");
            let v = api(
                &ctx,
                m,
                Method::DELETE,
                &format!("/v1/cluster/members/{id}"),
            )
            .await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(ExitCode::SUCCESS)
        }
        _ => unreachable!("subcommand_required"),
    }
}

/// `serve` with the flags applied over the configuration, as if they were
/// `HAKIRI_RAFT__*` variables.
async fn serve_as(
    ctx: &Context,
    m: &ArgMatches,
    join: Option<&String>,
) -> anyhow::Result<ExitCode> {
    let mut vars = Vec::new();
    let mut set = |var: &str, value: String| vars.push((var.to_string(), value));
    if let Some(id) = m.get_one::<u64>("node-id") {
        set("HAKIRI_RAFT__NODE_ID", id.to_string());
    }
    for (flag, var) in [
        ("listen", "HAKIRI_RAFT__LISTEN"),
        ("advertise", "HAKIRI_RAFT__ADVERTISE"),
        ("data-dir", "HAKIRI_RAFT__DATA_DIR"),
        ("api", "HAKIRI_COORD_API__LISTEN"),
    ] {
        if let Some(v) = m.get_one::<String>(flag) {
            set(var, format!("{v:?}"));
        }
    }
    if let Some(url) = join {
        set("HAKIRI_RAFT__JOIN", format!("{url:?}"));
    }
    let mut config = (*ctx.config).clone();
    config.apply_env(vars)?;
    let ctx = Context::new(ctx.registry.clone(), Arc::new(config), ctx.profile)?;
    hakiri_kernel::cli::serve(&ctx).await
}

/// Calls the coordinator API with the CLI's token, if any.
async fn api(ctx: &Context, m: &ArgMatches, method: Method, path: &str) -> anyhow::Result<Value> {
    let endpoint = m.get_one::<String>("endpoint").expect("has a default");
    let mut headers = Vec::new();
    if let Caller::Local {
        credential: Some(c),
    } = ctx.caller()
    {
        headers.push(("authorization", format!("Bearer {}", c.expose())));
    }
    let url = format!("{}{path}", endpoint.trim_end_matches('/'));
    HttpClient::new(headers)
        .json::<(), Value>(method, &url, None, Duration::from_secs(30))
        .await
        .map_err(|e| {
            anyhow::anyhow!("{e}; pass --endpoint and --token for the cluster's coordinator API")
        })
}
