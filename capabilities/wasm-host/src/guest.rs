//! A guest's store data: what the host grants one connector instance. WASI
//! with nothing behind it (no preopened directory, no environment, no
//! sockets: `WasiCtxBuilder`'s defaults deny TCP, UDP and name lookup), a
//! memory cap that remembers a refused grow, and the `host` interface:
//! log, settings and HTTP to the operator's allow-listed hosts only.

use crate::installed::Manifest;
use crate::runtime::{wit_host, Limits};
use hakiri_cap_connectors::guard::{Cidr, RemotePolicy, UrlPrefix};
use hakiri_cap_connectors::{guarded_client, request_error, ConnectorsConfig};
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::{MemoryOutputPipe, SinkOutputStream};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Most log lines one instance may write; the rest are dropped (once said).
const MAX_LOG_LINES: u32 = 1000;
/// Longest log line kept, in bytes.
const MAX_LOG_LINE: usize = 2048;

/// HTTP as the host grants it to one connector.
pub struct Network {
    /// Built at the first fetch: most uses never fetch, and building a
    /// client (loading the system's CA roots) costs milliseconds.
    client: std::sync::OnceLock<Result<reqwest::Client, String>>,
    /// Checks the URL asked for; the client checks redirects and resolved names.
    policy: Arc<RemotePolicy>,
    cfg: ConnectorsConfig,
    handle: tokio::runtime::Handle,
}

/// What a connector may use beyond computing: its settings and, for an
/// installed connector running for a caller, the network.
pub struct Granted {
    settings: BTreeMap<String, String>,
    /// key → environment variable, read when asked.
    settings_env: BTreeMap<String, String>,
    allow_hosts: Vec<String>,
    net: Option<Network>,
}

impl Granted {
    /// Nothing: for asking a component who it is before it is installed.
    pub fn nothing() -> Granted {
        Granted {
            settings: BTreeMap::new(),
            settings_env: BTreeMap::new(),
            allow_hosts: Vec::new(),
            net: None,
        }
    }

    /// An installed connector running for `ctx`'s caller: its allow-listed
    /// hosts, reached through Hakiri's client under `[connectors]` timeouts.
    /// For the local user any address they resolve to is fine (the operator
    /// named them); for a remote caller only public addresses or
    /// `[connectors] allow_addresses`, as for the `http` connector.
    pub fn for_caller(ctx: &hakiri_kernel::Context, m: &Manifest) -> anyhow::Result<Granted> {
        let cfg = ConnectorsConfig::clone(&ctx.section::<ConnectorsConfig>());
        let mut prefixes = Vec::new();
        for host in &m.allow_hosts {
            for scheme in ["http", "https"] {
                prefixes.push(
                    UrlPrefix::parse(&format!("{scheme}://{host}/")).map_err(anyhow::Error::msg)?,
                );
            }
        }
        let addresses: Vec<Cidr> = if ctx.caller().is_local() {
            vec![
                Cidr::parse("0.0.0.0/0").map_err(anyhow::Error::msg)?,
                Cidr::parse("::/0").map_err(anyhow::Error::msg)?,
            ]
        } else {
            cfg.allow_addresses
                .iter()
                .map(|a| Cidr::parse(a))
                .collect::<Result<_, _>>()
                .map_err(anyhow::Error::msg)?
        };
        let policy = Arc::new(RemotePolicy::new(prefixes, addresses));
        Ok(Granted {
            settings: m.settings.clone(),
            settings_env: m.settings_env.clone(),
            allow_hosts: m.allow_hosts.clone(),
            net: Some(Network {
                client: std::sync::OnceLock::new(),
                policy,
                cfg,
                handle: tokio::runtime::Handle::current(),
            }),
        })
    }
}

/// Caps each linear memory and remembers a refused grow, so an out-of-memory
/// trap can say which limit it hit.
pub struct MemoryCap {
    max: usize,
    pub refused: Option<usize>,
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

pub struct Guest {
    name: String,
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: MemoryCap,
    stderr: MemoryOutputPipe,
    granted: Granted,
    max_fetch: u64,
    log_lines: u32,
}

impl WasiView for Guest {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl Guest {
    pub fn new(name: &str, granted: Granted, limits: &Limits) -> Guest {
        let stderr = MemoryOutputPipe::new(64 << 10);
        let wasi = WasiCtxBuilder::new()
            .stdout(SinkOutputStream)
            .stderr(stderr.clone())
            .build();
        Guest {
            name: name.to_string(),
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryCap {
                max: limits.memory_bytes,
                refused: None,
            },
            stderr,
            granted,
            max_fetch: limits.max_fetch,
            log_lines: 0,
        }
    }

    /// The end of what the guest wrote to stderr (a Rust panic's message).
    fn stderr_tail(&self) -> String {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim();
        let start = text.len().saturating_sub(400);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text[start..].replace('\n', " ")
    }
}

/// A trap as a sentence: which limit stopped the guest, or what it said.
pub fn explain(e: &wasmtime::Error, g: &Guest, limits: &Limits) -> String {
    use wasmtime::Trap;
    let mut why = match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => format!(
            "it ran out of time ({} ms per call, [wasm-host] timeout_ms; {} s per ingest, ingest_timeout_s)",
            limits.call_timeout.as_millis(),
            limits.total_timeout.as_secs()
        ),
        Some(Trap::StackOverflow) => "its stack overflowed".to_string(),
        Some(trap) => format!("it trapped ({trap})"),
        None => format!("{e:#}"),
    };
    if let Some(asked) = g.limiter.refused {
        why += &format!(
            " after asking to grow its memory to {:.1} MiB, past the {} MiB limit ([wasm-host] memory_mb)",
            asked as f64 / (1u64 << 20) as f64,
            limits.memory_bytes >> 20
        );
    }
    let said = g.stderr_tail();
    if !said.is_empty() {
        why += &format!("; it wrote: {said}");
    }
    why
}

impl wit_host::Host for Guest {
    fn log(&mut self, level: wit_host::Level, message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            if self.log_lines == MAX_LOG_LINES + 1 {
                eprintln!(
                    "connector {}: more than {MAX_LOG_LINES} log lines; dropping the rest",
                    self.name
                );
            }
            return;
        }
        let mut end = message.len().min(MAX_LOG_LINE);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let level = match level {
            wit_host::Level::Debug => "debug",
            wit_host::Level::Info => "info",
            wit_host::Level::Warn => "warn",
            wit_host::Level::Error => "error",
        };
        eprintln!(
            "connector {} {level}: {}",
            self.name,
            message[..end].escape_debug()
        );
    }

    fn config(&mut self, key: String) -> Option<String> {
        match self.granted.settings_env.get(&key) {
            Some(var) => std::env::var(var).ok(),
            None => self.granted.settings.get(&key).cloned(),
        }
    }

    fn fetch(&mut self, req: wit_host::Request) -> Result<wit_host::Response, String> {
        let Some(net) = &self.granted.net else {
            return Err("this connector may not fetch anything while it is being added".into());
        };
        let shown = hakiri_data_api::redact(&req.url);
        let url =
            reqwest::Url::parse(&req.url).map_err(|e| format!("`{shown}` is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "`{shown}`: connectors fetch only http:// and https:// URLs"
            ));
        }
        let authority = format!(
            "{}{}",
            url.host_str().unwrap_or_default(),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        );
        if !self.granted.allow_hosts.contains(&authority) {
            return Err(format!(
                "`{authority}` is not on connector `{}`'s allow-list ({}); the operator adds hosts with `hakiri connector add … --replace --allow-host {authority}`",
                self.name,
                if self.granted.allow_hosts.is_empty() { "empty".to_string() } else { self.granted.allow_hosts.join(", ") }
            ));
        }
        // A literal address (`http://127.0.0.1/`) never reaches the resolver's check.
        net.policy.check_url(&url)?;
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| format!("`{}` is not an HTTP method", req.method))?;
        let client = net
            .client
            .get_or_init(|| {
                guarded_client(&net.cfg, net.policy.clone()).map_err(|e| format!("{e:#}"))
            })
            .as_ref()
            .map_err(|e| e.clone())?;
        let mut request = client.request(method.clone(), url);
        for (k, v) in &req.headers {
            // The host decides where a request goes and how long it is.
            if !k.eq_ignore_ascii_case("host") && !k.eq_ignore_ascii_case("content-length") {
                request = request.header(k.as_str(), v.as_str());
            }
        }
        if let Some(body) = req.body {
            request = request.body(body);
        }
        let max = self.max_fetch;
        let cfg = &net.cfg;
        net.handle.block_on(async move {
            let mut resp = request.send().await.map_err(|e| format!("{:#}", request_error(&shown, cfg, e)))?;
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).to_string()))
                .collect();
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| format!("{:#}", request_error(&shown, cfg, e)))? {
                if (body.len() + chunk.len()) as u64 > max {
                    return Err(format!("{method} {shown}: the response is larger than {} MiB ([wasm-host] max_fetch_mb)", max >> 20));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(wit_host::Response { status, headers, body })
        })
    }
}
