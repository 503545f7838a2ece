//! `serve`: starts every registered service, reports readiness, and stops
//! them together on SIGINT/SIGTERM.

use crate::context::Context;
use crate::service::Shutdown;
use anyhow::{bail, Context as _};
use std::process::ExitCode;

pub(super) async fn serve(ctx: &Context) -> anyhow::Result<ExitCode> {
    if ctx.registry.services.is_empty() {
        bail!(
            "{} has no long-running services; nothing to serve",
            ctx.profile.name
        );
    }
    let (trigger, shutdown) = Shutdown::new();
    let mut running = Vec::new();
    let mut ready = Vec::new();
    for (name, service) in &ctx.registry.services {
        let svc = (service.item)(ctx.clone(), shutdown.clone())
            .await
            .with_context(|| {
                format!("service `{name}` ({}) failed to start", service.owner.name)
            })?;
        ready.push(match &svc.address {
            Some(a) => format!("{name} on {a}"),
            None => name.clone(),
        });
        running.push((name.clone(), tokio::spawn(svc.run)));
    }
    eprintln!("{} ready: {}", ctx.profile.name, ready.join(", "));
    wait_for_signal().await;
    let _ = trigger.send(true);
    let mut failed = false;
    for (name, handle) in running {
        match tokio::time::timeout(std::time::Duration::from_secs(10), handle).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                eprintln!("hakiri: service `{name}` failed: {e:#}");
                failed = true;
            }
            Ok(Err(e)) => {
                eprintln!("hakiri: service `{name}` panicked: {e}");
                failed = true;
            }
            Err(_) => eprintln!("hakiri: service `{name}` did not stop within 10s; exiting anyway"),
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
