//! Running connector components: one Wasmtime engine per process (an epoch
//! ticker drives every store's clock), compiled components cached in memory
//! and on disk, and a fresh store per use with every limit set: an epoch
//! deadline per call, memory per instance, time and output per ingest.
//! Deadlines rather than fuel: fuel metering cost a quarter of a guest's
//! throughput here, and a wall-clock bound is what protects the daemon.

use crate::guest::{Granted, Guest};
use crate::installed::{self, Manifest};
use crate::WasmConfig;
use anyhow::{anyhow, bail};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store};

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "connector",
});

pub use exports::hakiri::connector::source::{Entry, Info};
pub use hakiri::connector::host as wit_host;

/// The package this host speaks; a component built against another version
/// is refused by name.
pub const WIT_PACKAGE: &str = "hakiri:connector@0.1.0";
const SOURCE_EXPORT: &str = "hakiri:connector/source@0.1.0";

/// The epoch advances every tick; deadlines are counted in ticks.
const TICK: Duration = Duration::from_millis(10);

/// The limits one use of a guest runs under, from `[wasm-host]`.
#[derive(Debug, Clone)]
pub struct Limits {
    pub memory_bytes: usize,
    pub call_timeout: Duration,
    pub total_timeout: Duration,
    pub max_output: u64,
    pub max_batch: u64,
    pub max_fetch: u64,
}

impl Limits {
    pub fn of(cfg: &WasmConfig) -> Limits {
        Limits {
            memory_bytes: cfg.memory_bytes(),
            call_timeout: Duration::from_millis(cfg.timeout_ms),
            total_timeout: Duration::from_secs(cfg.ingest_timeout_s),
            max_output: cfg.max_output_mb << 20,
            max_batch: cfg.max_batch_mb << 20,
            max_fetch: cfg.max_fetch_mb << 20,
        }
    }
}

struct Runtime {
    engine: Engine,
    linker: Linker<Guest>,
    /// Compiled components, linked and ready to instantiate, by SHA-256 of
    /// their bytes: a use pays only for its instance.
    compiled: Mutex<HashMap<String, ConnectorPre<Guest>>>,
}

/// The process's engine, linker and compiled components; the epoch ticker
/// starts with them.
fn runtime() -> anyhow::Result<&'static Runtime> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let build = || -> anyhow::Result<Runtime> {
                let mut config = Config::new();
                config.epoch_interruption(true);
                let engine = Engine::new(&config)?;
                let mut linker = Linker::new(&engine);
                Connector::add_to_linker::<Guest, wasmtime::component::HasSelf<Guest>>(
                    &mut linker,
                    |g| g,
                )?;
                // WASI 0.2 as Rust's std links it, granting nothing: no
                // preopened directories, no environment, no sockets (see guest.rs).
                wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
                let ticker = engine.weak();
                std::thread::Builder::new()
                    .name("wasm-epoch".into())
                    .spawn(move || {
                        while let Some(engine) = ticker.upgrade() {
                            engine.increment_epoch();
                            drop(engine);
                            std::thread::sleep(TICK);
                        }
                    })?;
                Ok(Runtime {
                    engine,
                    linker,
                    compiled: Mutex::new(HashMap::new()),
                })
            };
            build().map_err(|e| format!("cannot start Wasmtime: {e:#}"))
        })
        .as_ref()
        .map_err(|e| anyhow!("{e}"))
}

/// What `describe_file` learned from a component about to be added.
pub struct Described {
    pub info: Info,
    pub bytes: Vec<u8>,
    /// The compiled form for this host, to store beside it.
    pub compiled: Vec<u8>,
}

/// Checks that `bytes` is a connector component of this WIT version,
/// compiles it and asks who it is. Runs guest code: call it off the async
/// threads (`hakiri_kernel::blocking`).
pub fn describe_file(bytes: &[u8], shown: &str, limits: &Limits) -> anyhow::Result<Described> {
    let rt = runtime()?;
    let component = compile(rt, bytes, shown)?;
    let mut run = Instance::start(rt, shown, Granted::nothing(), limits, |s| {
        Connector::instantiate(s, &component, &rt.linker)
    })?;
    let info = run.call("describe", |b, s| {
        b.hakiri_connector_source().call_describe(s)
    })?;
    Ok(Described {
        info,
        bytes: bytes.to_vec(),
        compiled: component.serialize()?,
    })
}

/// Compiles a component, refusing a core module or another WIT version
/// with a message that says so.
fn compile(rt: &Runtime, bytes: &[u8], shown: &str) -> anyhow::Result<Component> {
    match bytes.get(4..8) {
        Some([0x0d, 0x00, 0x01, 0x00]) => {}
        Some([0x01, 0x00, 0x00, 0x00]) => bail!(
            "{shown} is a core WebAssembly module, not a component; build it for wasm32-wasip2 (with the hakiri-connector SDK) so it exports {WIT_PACKAGE}"
        ),
        _ if bytes.starts_with(b"\0asm") => bail!("{shown} is WebAssembly of a layer this host does not read"),
        _ => bail!("{shown} is not WebAssembly (no `\\0asm` header)"),
    }
    let component = Component::new(&rt.engine, bytes)
        .map_err(|e| anyhow!("{shown} does not compile: {e:#}"))?;
    check_world(&rt.engine, &component, shown)?;
    Ok(component)
}

/// The component exports `source` at this host's version and imports only
/// `host` and WASI 0.2.
fn check_world(engine: &Engine, component: &Component, shown: &str) -> anyhow::Result<()> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    if !exports.iter().any(|e| e == SOURCE_EXPORT) {
        let theirs = exports
            .iter()
            .find(|e| e.starts_with("hakiri:connector/source@"));
        match theirs {
            Some(other) => bail!(
                "{shown} was built against {}, but this Hakiri hosts {WIT_PACKAGE}; rebuild it with the hakiri-connector SDK of that version",
                other.replace("/source", "")
            ),
            None => bail!(
                "{shown} exports no {SOURCE_EXPORT} (it exports: {}); a connector implements the hakiri:connector world",
                if exports.is_empty() { "nothing".to_string() } else { exports.join(", ") }
            ),
        }
    }
    for (name, _) in ty.imports(engine) {
        let granted = name == "hakiri:connector/host@0.1.0"
            || name.starts_with("wasi:") && name.contains("@0.2.");
        if !granted {
            bail!("{shown} imports `{name}`, which this host does not grant; a connector may import hakiri:connector/host and WASI 0.2");
        }
    }
    Ok(())
}

/// The installed connector, ready to instantiate: from memory, else the
/// compiled file beside it, else compiled again (and the file refreshed).
fn load(rt: &Runtime, data_dir: &Path, m: &Manifest) -> anyhow::Result<ConnectorPre<Guest>> {
    let mut cache = rt.compiled.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(pre) = cache.get(&m.sha256) {
        return Ok(pre.clone());
    }
    let dir = installed::dir(data_dir, &m.name);
    let compiled = installed::compiled_path(&dir);
    // SAFETY: the file was written by this host's `serialize` (under the
    // home, which only its owner writes); Wasmtime checks its version and
    // settings and errs, rather than misbehaving, on a mismatch.
    let component = match unsafe { Component::deserialize_file(&rt.engine, &compiled) } {
        Ok(c) => c,
        Err(_) => {
            let wasm = installed::wasm_path(&dir);
            let bytes =
                std::fs::read(&wasm).map_err(|e| anyhow!("cannot read {}: {e}", wasm.display()))?;
            let c = compile(rt, &bytes, &format!("connector `{}`", m.name))?;
            if let Ok(out) = c.serialize() {
                let tmp = compiled.with_extension("cwasm.tmp");
                if std::fs::write(&tmp, out).is_ok() {
                    let _ = std::fs::rename(&tmp, &compiled);
                }
            }
            c
        }
    };
    let pre = ConnectorPre::new(rt.linker.instantiate_pre(&component)?)
        .map_err(|e| anyhow!("connector `{}` cannot be linked: {e:#}", m.name))?;
    cache.insert(m.sha256.clone(), pre.clone());
    Ok(pre)
}

/// One instance of a connector in its own store.
pub struct Instance {
    pub(crate) store: Store<Guest>,
    bindings: Connector,
    name: String,
    pub(crate) limits: Limits,
    started: Instant,
    /// Set once a call trapped: the store cannot be entered again.
    pub(crate) poisoned: bool,
}

impl Instance {
    fn start(
        rt: &Runtime,
        name: &str,
        granted: Granted,
        limits: &Limits,
        instantiate: impl FnOnce(&mut Store<Guest>) -> wasmtime::Result<Connector>,
    ) -> anyhow::Result<Instance> {
        let mut store = Store::new(&rt.engine, Guest::new(name, granted, limits));
        store.limiter(|g| &mut g.limiter);
        store.set_epoch_deadline(ticks(limits.call_timeout));
        let bindings = instantiate(&mut store).map_err(|e| {
            anyhow!(
                "connector `{name}` cannot start: {}",
                crate::guest::explain(&e, store.data(), limits)
            )
        })?;
        Ok(Instance {
            store,
            bindings,
            name: name.to_string(),
            limits: limits.clone(),
            started: Instant::now(),
            poisoned: false,
        })
    }

    /// Calls into the guest with a fresh call's deadline (never past
    /// the whole use's deadline); a trap becomes an error naming the
    /// connector, the call and the limit that stopped it.
    pub fn call<R>(
        &mut self,
        what: &str,
        f: impl FnOnce(&Connector, &mut Store<Guest>) -> wasmtime::Result<R>,
    ) -> anyhow::Result<R> {
        let left = self
            .limits
            .total_timeout
            .saturating_sub(self.started.elapsed());
        if left.is_zero() {
            bail!(
                "connector `{}` ran out of time: {} s in all ([wasm-host] ingest_timeout_s)",
                self.name,
                self.limits.total_timeout.as_secs()
            );
        }
        self.store
            .set_epoch_deadline(ticks(self.limits.call_timeout.min(left)));
        f(&self.bindings, &mut self.store).map_err(|e| {
            self.poisoned = true;
            anyhow!(
                "connector `{}` failed in `{what}`: {}",
                self.name,
                crate::guest::explain(&e, self.store.data(), &self.limits)
            )
        })
    }
}

fn ticks(d: Duration) -> u64 {
    (d.as_millis() / TICK.as_millis()).max(1) as u64 + 1
}

pub(crate) fn instance(ctx: &hakiri_kernel::Context, m: &Manifest) -> anyhow::Result<Instance> {
    let rt = runtime()?;
    let pre = load(rt, &ctx.config.data_dir, m)?;
    let limits = Limits::of(&ctx.section::<WasmConfig>());
    let granted = Granted::for_caller(ctx, m)?;
    Instance::start(rt, &m.name, granted, &limits, |s| pre.instantiate(s))
}
