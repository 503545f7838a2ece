//! `wasm.call`: compile a WAT module and call one numeric function, for
//! ad-hoc functions. Its own engine per call, bounded in every way a guest
//! could hurt the host: fuel, an epoch deadline, memory, tables, instances,
//! stack and module size.

use crate::WasmConfig;
use schemars::JsonSchema;
use serde::Deserialize;
use std::sync::mpsc;
use std::time::Duration;
use wasmtime::{
    Config, Engine, Instance, Module, Store, StoreLimits, StoreLimitsBuilder, Val, ValType,
};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallInput {
    /// The module in WebAssembly text format (WAT).
    pub module: String,
    /// Exported function to call.
    pub function: String,
    /// Arguments, converted to the function's parameter types (i32, i64, f32, f64).
    #[serde(default)]
    pub args: Vec<f64>,
}

/// Stops the guest's clock: bumps the engine's epoch when `timeout` passes,
/// unless dropped first (the call finished), which ends the thread at once.
struct Deadline {
    _stop: mpsc::Sender<()>,
}

impl Deadline {
    fn start(engine: &Engine, timeout: Duration) -> Deadline {
        let (tx, rx) = mpsc::channel::<()>();
        let engine = engine.clone();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(timeout) {
                engine.increment_epoch();
            }
        });
        Deadline { _stop: tx }
    }
}

pub fn call(
    wat: &str,
    function: &str,
    args: &[f64],
    limits: &WasmConfig,
) -> Result<Vec<serde_json::Value>, String> {
    if wat.len() > limits.max_module_bytes {
        return Err(format!(
            "the module is {} bytes; the limit is {} ([wasm-host] max_module_bytes)",
            wat.len(),
            limits.max_module_bytes
        ));
    }
    let mut config = Config::new();
    config.consume_fuel(true).epoch_interruption(true);
    let engine = Engine::new(&config).map_err(|e| format!("cannot start Wasmtime: {e}"))?;
    let module =
        Module::new(&engine, wat).map_err(|e| format!("cannot compile the module: {e:#}"))?;
    let memory = limits.memory_mb.saturating_mul(1 << 20);
    let store_limits = StoreLimitsBuilder::new()
        .memory_size(memory)
        .table_elements(100_000)
        .instances(1)
        .tables(4)
        .memories(1)
        .build();
    let mut store: Store<StoreLimits> = Store::new(&engine, store_limits);
    store.limiter(|l| l);
    store.set_fuel(limits.fuel).map_err(|e| e.to_string())?;
    store.set_epoch_deadline(1);
    let _deadline = Deadline::start(&engine, Duration::from_millis(limits.timeout_ms));
    let instance = Instance::new(&mut store, &module, &[]).map_err(|e| {
        format!(
            "cannot instantiate the module: {e:#} (limits: {} MiB memory, [wasm-host] memory_mb)",
            limits.memory_mb
        )
    })?;
    let func = instance.get_func(&mut store, function).ok_or_else(|| {
        let exports: Vec<String> = module.exports().map(|e| e.name().to_string()).collect();
        format!(
            "the module exports no function `{function}`; exports: {}",
            exports.join(", ")
        )
    })?;
    let ty = func.ty(&store);
    if ty.params().len() != args.len() {
        return Err(format!(
            "`{function}` takes {} arguments, got {}",
            ty.params().len(),
            args.len()
        ));
    }
    let params = ty
        .params()
        .zip(args)
        .map(|(t, a)| match t {
            ValType::I32 => Ok(Val::I32(*a as i32)),
            ValType::I64 => Ok(Val::I64(*a as i64)),
            ValType::F32 => Ok(Val::F32((*a as f32).to_bits())),
            ValType::F64 => Ok(Val::F64(a.to_bits())),
            other => Err(format!(
                "parameter type {other} is not supported; use numeric parameters"
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut results = vec![Val::I32(0); ty.results().len()];
    func.call(&mut store, &params, &mut results).map_err(|e| {
        let why = match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::OutOfFuel) => {
                " (out of fuel: [wasm-host] fuel bounds the instructions a call may run)"
            }
            Some(wasmtime::Trap::Interrupt) => {
                " (out of time: [wasm-host] timeout_ms bounds a call's wall-clock time)"
            }
            Some(wasmtime::Trap::StackOverflow) => " (the guest's stack overflowed)",
            _ => "",
        };
        format!("`{function}` trapped: {e:#}{why}")
    })?;
    Ok(results
        .iter()
        .map(|v| match v {
            Val::I32(x) => serde_json::json!(x),
            Val::I64(x) => serde_json::json!(x),
            Val::F32(x) => serde_json::json!(f32::from_bits(*x)),
            Val::F64(x) => serde_json::json!(f64::from_bits(*x)),
            other => serde_json::json!(format!("{other:?}")),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::{call, WasmConfig};

    fn limits() -> WasmConfig {
        WasmConfig::default()
    }

    #[test]
    fn calls_and_reports_errors() {
        let wat = r#"(module (func (export "mul") (param i64 i64) (result i64) local.get 0 local.get 1 i64.mul))"#;
        assert_eq!(
            call(wat, "mul", &[6.0, 7.0], &limits()).unwrap(),
            vec![serde_json::json!(42)]
        );
        assert!(call(wat, "nope", &[], &limits())
            .unwrap_err()
            .contains("exports: mul"));
        assert!(call("(module", "x", &[], &limits())
            .unwrap_err()
            .contains("cannot compile"));
        assert!(call(wat, "mul", &[1.0], &limits())
            .unwrap_err()
            .contains("takes 2 arguments"));
    }

    /// Each hostile guest ends in an error (or a refused grow), never a host crash.
    #[test]
    fn hostile_guests_are_bounded() {
        // memory.grow past the limit fails inside the guest (-1), allocating nothing.
        let grow = r#"(module (memory 1) (func (export "grow") (result i32) i32.const 60000 memory.grow))"#;
        assert_eq!(
            call(grow, "grow", &[], &limits()).unwrap(),
            vec![serde_json::json!(-1)]
        );
        // A module asking for more memory up front does not instantiate.
        let big = r#"(module (memory 4000) (func (export "f")))"#;
        assert!(call(big, "f", &[], &limits())
            .unwrap_err()
            .contains("cannot instantiate"));
        // An endless loop with fuel to spare is stopped by the clock.
        let spin = r#"(module (func (export "spin") (loop (br 0))))"#;
        let timed = WasmConfig {
            fuel: u64::MAX,
            timeout_ms: 200,
            ..limits()
        };
        let err = call(spin, "spin", &[], &timed).unwrap_err();
        assert!(err.contains("out of time"), "{err}");
        // ... and by fuel first when fuel is short.
        let err = call(
            spin,
            "spin",
            &[],
            &WasmConfig {
                fuel: 10_000,
                ..limits()
            },
        )
        .unwrap_err();
        assert!(err.contains("out of fuel"), "{err}");
        // Unbounded recursion overflows the guest's stack: a trap.
        let recurse = r#"(module (func $f (export "r") (call $f)))"#;
        let err = call(recurse, "r", &[], &limits()).unwrap_err();
        assert!(err.contains("stack overflowed"), "{err}");
        // Oversized modules are refused before compiling.
        let huge = format!("(module) ;; {}", "x".repeat(2 << 20));
        let err = call(&huge, "f", &[], &limits()).unwrap_err();
        assert!(err.contains("max_module_bytes"), "{err}");
    }
}
