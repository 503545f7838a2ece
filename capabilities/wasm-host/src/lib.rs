//! `wasm-host`: compiles and runs WebAssembly modules in a Wasmtime sandbox
//! with a fuel budget, so a runaway module ends with an error, not a hang.

use hakiri_kernel::{CheckOutcome, KernelError, Registrar, Section, Tool, ToolError};
use schemars::JsonSchema;
use serde::Deserialize;
use wasmtime::{Config, Engine, Instance, Module, Store, Val, ValType};

hakiri_kernel::capability!(register);

/// `[wasm-host]` in hakiri.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WasmConfig {
    /// Fuel (roughly, instructions) a call may burn before it is stopped.
    pub fuel: u64,
}

impl Section for WasmConfig {
    const NAME: &'static str = "wasm-host";
}

impl Default for WasmConfig {
    fn default() -> Self {
        WasmConfig { fuel: 100_000_000 }
    }
}

fn register(r: &mut Registrar) -> Result<(), KernelError> {
    r.config::<WasmConfig>()?;
    r.tool(Tool::typed(
        "wasm.call",
        "Compile a WebAssembly module from WAT text and call one exported function with numeric arguments",
        |input: CallInput, ctx| async move {
            let fuel = ctx.section::<WasmConfig>().fuel;
            tokio::task::spawn_blocking(move || call(&input.module, &input.function, &input.args, fuel))
                .await
                .map_err(ToolError::failed)?
                .map_err(ToolError::Failed)
        },
    ))?;
    r.check(|_ctx| async {
        const ADD: &str = r#"(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))"#;
        const SPIN: &str = r#"(module (func (export "spin") (loop (br 0))))"#;
        let sum = tokio::task::spawn_blocking(|| call(ADD, "add", &[2.0, 40.0], 10_000)).await;
        let spin = tokio::task::spawn_blocking(|| call(SPIN, "spin", &[], 10_000)).await;
        match (sum, spin) {
            (Ok(Ok(v)), Ok(Err(_))) if v == vec![serde_json::json!(42)] => {
                CheckOutcome::Ok("compiled and called add(2, 40) = 42; an endless loop ran out of fuel".into())
            }
            (sum, spin) => CheckOutcome::Failed(format!("add gave {sum:?}; spin gave {spin:?}")),
        }
    });
    Ok(())
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CallInput {
    /// The module in WebAssembly text format (WAT).
    module: String,
    /// Exported function to call.
    function: String,
    /// Arguments, converted to the function's parameter types (i32, i64, f32, f64).
    #[serde(default)]
    args: Vec<f64>,
}

fn call(
    wat: &str,
    function: &str,
    args: &[f64],
    fuel: u64,
) -> Result<Vec<serde_json::Value>, String> {
    let mut config = Config::new();
    config.consume_fuel(true);
    let engine = Engine::new(&config).map_err(|e| format!("cannot start Wasmtime: {e}"))?;
    let module =
        Module::new(&engine, wat).map_err(|e| format!("cannot compile the module: {e:#}"))?;
    let mut store = Store::new(&engine, ());
    store.set_fuel(fuel).map_err(|e| e.to_string())?;
    let instance = Instance::new(&mut store, &module, &[])
        .map_err(|e| format!("cannot instantiate the module: {e:#}"))?;
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
    func.call(&mut store, &params, &mut results)
        .map_err(|e| format!("`{function}` trapped: {e:#}"))?;
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
    #[test]
    fn calls_and_reports_errors() {
        let wat = r#"(module (func (export "mul") (param i64 i64) (result i64) local.get 0 local.get 1 i64.mul))"#;
        assert_eq!(
            super::call(wat, "mul", &[6.0, 7.0], 1000).unwrap(),
            vec![serde_json::json!(42)]
        );
        assert!(super::call(wat, "nope", &[], 1000)
            .unwrap_err()
            .contains("exports: mul"));
        assert!(super::call("(module", "x", &[], 1000)
            .unwrap_err()
            .contains("cannot compile"));
        assert!(super::call(wat, "mul", &[1.0], 1000)
            .unwrap_err()
            .contains("takes 2 arguments"));
    }
}
