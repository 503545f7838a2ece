//! Panics are bugs, but a user must never see a Rust backtrace hint, and a
//! daemon must not go down with one call: a panicking tool call becomes an
//! error ([`Context::call`](crate::Context::call)), work on blocking threads
//! goes through [`blocking`], and the CLI prints one line.

use std::any::Any;

/// The message a panic carried.
pub fn message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// What a user reads when `what` panicked.
pub fn crashed(what: &str, payload: &(dyn Any + Send)) -> String {
    format!(
        "{what} crashed ({}); this is a bug in Hakiri, please report it; nothing was published",
        message(payload)
    )
}

/// Runs `f` on the blocking pool; a panic in it is an error naming `what`.
pub async fn blocking<T, F>(what: &str, f: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> anyhow::Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(anyhow::anyhow!(crashed(what, &*e.into_panic()))),
        Err(e) => Err(anyhow::anyhow!("{what} was cancelled: {e}")),
    }
}

thread_local! {
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, turning a panic into `Err(message)` without the hook's line:
/// for a library that panics on input it should have refused (e.g. a
/// damaged file), where the caller reports the error itself.
pub fn caught<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    QUIET.with(|q| q.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    result.map_err(|p| message(&*p))
}

/// The CLI's panic hook: one line on stderr, no backtrace hint.
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        if QUIET.with(|q| q.get()) {
            return;
        }
        // `hakiri … | head`: the reader left; stop quietly, as Unix tools do.
        let text = message(info.payload());
        if text.starts_with("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(0);
        }
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("hakiri: internal error: {text}{place} (a bug; please report it)");
    }));
}
