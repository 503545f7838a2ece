//! The `wasm` connector kind: every `scheme://…` source whose scheme an
//! installed WebAssembly connector declared. Records arrive as NDJSON
//! through a bounded channel, so memory stays flat whatever the source's size.

use crate::installed::{Installed, Manifest};
use crate::records;
use hakiri_data_api::{Connector, SourceReader};
use hakiri_kernel::{BoxFuture, Context};
use std::sync::{Arc, Mutex};

pub struct WasmConnectors;

pub fn installed_for(ctx: &Context, source: &str) -> Option<Manifest> {
    ctx.state::<Installed>()?
        .for_source(&ctx.config.data_dir, source)
}

impl Connector for WasmConnectors {
    fn accepts(&self, source: &str, ctx: &Context) -> bool {
        installed_for(ctx, source).is_some()
    }

    fn yields(&self, _source: &str, _ctx: &Context) -> Option<&'static str> {
        Some("ndjson")
    }

    fn open<'a>(
        &'a self,
        source: &'a str,
        ctx: &'a Context,
    ) -> BoxFuture<'a, anyhow::Result<SourceReader>> {
        Box::pin(async move {
            let Some(m) = installed_for(ctx, source) else {
                anyhow::bail!(
                    "no installed connector reads `{}`",
                    hakiri_data_api::redact(source)
                );
            };
            let (tx, reader) = hakiri_data_api::chunk_channel(4);
            let (opened_tx, opened) = tokio::sync::oneshot::channel();
            let answer: records::Opened = Arc::new(Mutex::new(Some(opened_tx)));
            let (ctx2, source2, failed, answer2) =
                (ctx.clone(), source.to_string(), tx.clone(), answer.clone());
            // A panic in the pump must reach the caller as an error, never as
            // an early end of data that would publish half a source.
            tokio::spawn(async move {
                let pumped = hakiri_kernel::blocking("running a WASM connector", move || {
                    records::stream(&ctx2, &m, &source2, tx, &answer2);
                    Ok(())
                })
                .await;
                if let Err(e) = pumped {
                    let unanswered = answer.lock().unwrap_or_else(|p| p.into_inner()).take();
                    match unanswered {
                        Some(o) => drop(o.send(Err(e))),
                        None => drop(
                            failed
                                .send(Err(std::io::Error::other(format!("{e:#}"))))
                                .await,
                        ),
                    }
                }
            });
            match opened.await {
                Ok(Ok(())) => Ok(reader),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(anyhow::anyhow!(
                    "the connector for `{}` stopped before opening it",
                    hakiri_data_api::redact(source)
                )),
            }
        })
    }
}
