//! Long-running services, started together by `hakiri serve`.

use crate::BoxFuture;
use tokio::sync::watch;

/// Resolves when the process is asked to stop (SIGINT/SIGTERM).
#[derive(Clone)]
pub struct Shutdown(pub(crate) watch::Receiver<bool>);

impl Shutdown {
    pub async fn wait(mut self) {
        while !*self.0.borrow() {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }

    /// A shutdown handle and the trigger that fires it.
    pub fn new() -> (watch::Sender<bool>, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (tx, Shutdown(rx))
    }
}

/// A service that has bound its resources and is ready; awaiting it runs the
/// service until shutdown. `address` is what it listens on, for the ready line.
pub struct RunningService {
    pub address: Option<String>,
    pub run: BoxFuture<'static, anyhow::Result<()>>,
}
