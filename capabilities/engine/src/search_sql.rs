//! Table functions for the searches linked into this binary
//! ([`SqlSearch`] providers, e.g. `text_search` and `vector_search` from the
//! search capability): `select d.title, s._score from text_search('docs',
//! 'whale', 5) s join authors d using (id)`. DuckDB binds a call by running
//! the search (for the connection's caller, who must be granted the
//! dataset) and declaring its columns; the rows are then emitted in one chunk.
//! DuckDB may bind a call more than once for one statement (prepare, then
//! execute): each connection (one per query) remembers the searches it ran,
//! so a search runs once per statement and a self-join sees one answer.

use duckdb::core::{DataChunkHandle, Inserter, LogicalTypeHandle, LogicalTypeId};
use duckdb::vtab::{BindInfo, InitInfo, TableFunctionInfo, VTab};
use duckdb::Connection;
use hakiri_data_api::retrieval::{SearchTable, SqlSearch, SqlType, SqlValue};
use hakiri_kernel::Context;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The most hits a table function returns: one DuckDB chunk (2048 rows) holds them.
const MAX_LIMIT: i64 = 1000;

#[derive(Clone)]
struct Search {
    ctx: Context,
    search: Arc<dyn SqlSearch>,
    name: String,
    /// The searches this connection ran: (dataset, query, limit) and answer.
    ran: Arc<Mutex<Vec<(Call, SearchTable)>>>,
}

type Call = (String, String, i64);

struct SearchFunction;

struct Bound(SearchTable);

struct Emitted(AtomicBool);

fn logical(ty: SqlType) -> LogicalTypeHandle {
    LogicalTypeHandle::from(match ty {
        SqlType::Int => LogicalTypeId::Bigint,
        SqlType::Float => LogicalTypeId::Double,
        SqlType::Text => LogicalTypeId::Varchar,
        SqlType::Bool => LogicalTypeId::Boolean,
    })
}

impl VTab for SearchFunction {
    type InitData = Emitted;
    type BindData = Bound;

    fn bind(bind: &BindInfo) -> Result<Bound, Box<dyn std::error::Error>> {
        // SAFETY: registered with a `Search` as its extra info (see `register`).
        let search = unsafe { &*bind.get_extra_info::<Search>() };
        let dataset = bind.get_parameter(0).to_string();
        let query = bind.get_parameter(1).to_string();
        let limit = bind.get_parameter(2).to_int64();
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(format!(
                "{}: limit must be between 1 and {MAX_LIMIT}, got {limit}",
                search.name
            )
            .into());
        }
        let call: Call = (dataset.clone(), query.clone(), limit);
        let known = {
            let ran = search.ran.lock().unwrap_or_else(|p| p.into_inner());
            ran.iter().find(|(c, _)| *c == call).map(|(_, t)| t.clone())
        };
        let table = match known {
            Some(table) => table,
            None => {
                // DuckDB runs on a blocking thread of the daemon's runtime
                // (engine.query, `hakiri sql`): the search, which is async,
                // runs to completion here.
                let runtime = tokio::runtime::Handle::try_current()
                    .map_err(|_| format!("{} needs the daemon's runtime", search.name))?;
                let table = runtime
                    .block_on(
                        search
                            .search
                            .search(&search.ctx, &dataset, &query, limit as usize),
                    )
                    .map_err(|e| format!("{}('{dataset}', …): {e:#}", search.name))?;
                let mut ran = search.ran.lock().unwrap_or_else(|p| p.into_inner());
                ran.push((call, table.clone()));
                table
            }
        };
        for (name, ty) in &table.columns {
            bind.add_result_column(name, logical(*ty));
        }
        Ok(Bound(table))
    }

    fn init(_: &InitInfo) -> Result<Emitted, Box<dyn std::error::Error>> {
        Ok(Emitted(AtomicBool::new(false)))
    }

    fn func(
        func: &TableFunctionInfo<Self>,
        output: &mut DataChunkHandle,
    ) -> Result<(), Box<dyn std::error::Error>> {
        if func.get_init_data().0.swap(true, Ordering::SeqCst) {
            output.set_len(0);
            return Ok(());
        }
        let Bound(table) = func.get_bind_data();
        for (c, (_, ty)) in table.columns.iter().enumerate() {
            let mut vector = output.flat_vector(c);
            for (r, row) in table.rows.iter().enumerate() {
                // SAFETY: each slice is the column's own type (see `logical`)
                // and `r` is below the chunk's capacity (limit ≤ 1000 < 2048).
                match (&row[c], ty) {
                    (SqlValue::Int(v), SqlType::Int) => unsafe {
                        vector.as_mut_slice::<i64>()[r] = *v
                    },
                    (SqlValue::Float(v), SqlType::Float) => unsafe {
                        vector.as_mut_slice::<f64>()[r] = *v
                    },
                    (SqlValue::Bool(v), SqlType::Bool) => unsafe {
                        vector.as_mut_slice::<bool>()[r] = *v
                    },
                    (SqlValue::Text(v), SqlType::Text) => vector.insert(r, v.as_str()),
                    _ => vector.set_null(r),
                }
            }
        }
        output.set_len(table.rows.len());
        Ok(())
    }

    fn parameters() -> Option<Vec<LogicalTypeHandle>> {
        Some(vec![
            LogicalTypeHandle::from(LogicalTypeId::Varchar),
            LogicalTypeHandle::from(LogicalTypeId::Varchar),
            LogicalTypeHandle::from(LogicalTypeId::Bigint),
        ])
    }
}

/// Registers a table function for every search this binary links.
pub fn register(conn: &Connection, ctx: &Context) -> anyhow::Result<()> {
    for (name, search) in ctx.all::<dyn SqlSearch>() {
        let extra = Search {
            ctx: ctx.clone(),
            search,
            name: name.to_string(),
            ran: Arc::default(),
        };
        conn.register_table_function_with_extra_info::<SearchFunction, _>(name, &extra)?;
    }
    Ok(())
}

/// DuckDB's "Table Function with name text_search does not exist" on a
/// binary without that search, followed by which binary has it.
pub fn elsewhere(ctx: &Context, error: anyhow::Error) -> anyhow::Error {
    let text = error.to_string();
    let Some(name) = text
        .split("Table Function with name ")
        .nth(1)
        .and_then(|rest| rest.split(" does not exist").next())
    else {
        return error;
    };
    match ctx
        .profile
        .lacks(<dyn SqlSearch as hakiri_kernel::ExtensionPoint>::NAME, name)
    {
        Some(hint) => anyhow::anyhow!("{text}\n{hint}"),
        None => error,
    }
}
