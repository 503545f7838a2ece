//! Using an installed connector: what it lists (`discover`) and its records
//! (`open`, then `next` until none), each batch checked line by line before
//! it reaches ingest.

use crate::installed::Manifest;
use crate::runtime::{instance, Entry, Instance};
use anyhow::{anyhow, bail};
use std::sync::{Arc, Mutex};
use wasmtime::component::ResourceAny;

/// One thing a connector can read, as `discover` listed it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Found {
    pub source: String,
    pub description: String,
}

/// What the connector lists at or under `source`.
pub async fn discover(
    ctx: &hakiri_kernel::Context,
    m: &Manifest,
    source: &str,
) -> anyhow::Result<Vec<Found>> {
    let (ctx, m, source) = (ctx.clone(), m.clone(), source.to_string());
    hakiri_kernel::blocking("running a connector", move || {
        let mut run = instance(&ctx, &m)?;
        let name = m.name.clone();
        let entries = run
            .call("discover", |b, s| {
                b.hakiri_connector_source().call_discover(s, &source)
            })?
            .map_err(|e| anyhow!("connector `{name}`: {e}"))?;
        Ok(entries
            .into_iter()
            .map(|e: Entry| Found {
                source: e.source,
                description: e.description,
            })
            .collect())
    })
    .await
}

/// Where `stream` says whether `open` succeeded; taken by whoever answers first.
pub type Opened = Arc<Mutex<Option<tokio::sync::oneshot::Sender<anyhow::Result<()>>>>>;

/// Reads `source` through the connector: NDJSON batches, each checked line
/// by line, sent into `tx` until the source ends, a limit is hit or the
/// receiver goes away. Errors name the connector; the first error ends it.
/// Answers `opened` once `open` has answered, then pumps.
pub fn stream(
    ctx: &hakiri_kernel::Context,
    m: &Manifest,
    source: &str,
    tx: tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>,
    opened: &Opened,
) {
    let answer = |r: anyhow::Result<()>| {
        if let Some(o) = opened.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = o.send(r);
        }
    };
    let mut run = match instance(ctx, m) {
        Ok(r) => r,
        Err(e) => {
            answer(Err(e));
            return;
        }
    };
    let name = m.name.clone();
    let records: ResourceAny = match run
        .call("open", |b, s| {
            b.hakiri_connector_source().call_open(s, source)
        })
        .and_then(|r| {
            r.map_err(|e| {
                anyhow!(
                    "connector `{name}` cannot open `{}`: {e}",
                    hakiri_data_api::redact(source)
                )
            })
        }) {
        Ok(r) => r,
        Err(e) => {
            answer(Err(e));
            return;
        }
    };
    answer(Ok(()));
    if let Err(e) = pump(&mut run, records, &name, source, &tx) {
        let _ = tx.blocking_send(Err(std::io::Error::other(format!("{e:#}"))));
    } else if !run.poisoned {
        let _ = records.resource_drop(&mut run.store);
    }
}

/// Calls `next` until the source ends, checking and forwarding each batch.
fn pump(
    run: &mut Instance,
    records: ResourceAny,
    name: &str,
    source: &str,
    tx: &tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>,
) -> anyhow::Result<()> {
    let mut total: u64 = 0;
    let mut batch_no = 0u64;
    loop {
        batch_no += 1;
        let next = run.call("next", |b, s| {
            b.hakiri_connector_source().records().call_next(s, records)
        })?;
        let mut batch = match next {
            Ok(Some(batch)) => batch,
            Ok(None) => return Ok(()),
            Err(e) => bail!(
                "connector `{name}` failed reading `{}`: {e}",
                hakiri_data_api::redact(source)
            ),
        };
        if batch.len() as u64 > run.limits.max_batch {
            bail!(
                "connector `{name}` returned a batch of {} MiB; batches may be at most {} MiB ([wasm-host] max_batch_mb)",
                batch.len() >> 20,
                run.limits.max_batch >> 20
            );
        }
        total += batch.len() as u64;
        if total > run.limits.max_output {
            bail!(
                "connector `{name}` produced more than {} MiB ([wasm-host] max_output_mb); nothing was kept",
                run.limits.max_output >> 20
            );
        }
        check_batch(&batch).map_err(|e| {
            anyhow!("connector `{name}` returned a malformed batch (batch {batch_no}): {e}")
        })?;
        if !batch.ends_with(b"\n") {
            batch.push(b'\n'); // so batches never run together
        }
        if tx.blocking_send(Ok(batch)).is_err() {
            return Ok(()); // the reader went away
        }
    }
}

/// Every line of a batch is one JSON object; the batch ends with a newline
/// (one is added when missing, so batches never run together).
fn check_batch(batch: &[u8]) -> Result<(), String> {
    for (i, line) in batch.split(|b| *b == b'\n').enumerate() {
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            continue;
        }
        if trimmed[0] != b'{' {
            return Err(format!(
                "line {} is not a JSON object: `{}`",
                i + 1,
                preview(trimmed)
            ));
        }
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(trimmed) {
            return Err(format!(
                "line {} is not valid JSON ({e}): `{}`",
                i + 1,
                preview(trimmed)
            ));
        }
    }
    Ok(())
}

fn preview(line: &[u8]) -> String {
    let s = String::from_utf8_lossy(&line[..line.len().min(80)]).to_string();
    if line.len() > 80 {
        format!("{s}…")
    } else {
        s
    }
}
