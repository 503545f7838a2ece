//! `serve`: starts every registered service, reports readiness, and stops
//! them together on SIGINT/SIGTERM.

use crate::context::Context;
use crate::service::Shutdown;
use anyhow::{bail, Context as _};
use std::process::ExitCode;

pub async fn serve(ctx: &Context) -> anyhow::Result<ExitCode> {
    if ctx.registry.services.is_empty() {
        bail!(
            "{} has no long-running services; nothing to serve",
            ctx.profile.name
        );
    }
    let stop = StopSignals::install();
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
    stop.wait().await;
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

/// SIGTERM and SIGINT, caught from the moment this is built: before the
/// ready line, so a supervisor that stops the process right after seeing it
/// still gets a graceful shutdown instead of the default (death by signal).
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn install() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            StopSignals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    async fn wait(self) {
        #[cfg(unix)]
        {
            async fn recv(s: Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = recv(self.term) => {}
                _ = recv(self.int) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
