//! One shutdown signal for the whole process: SIGTERM or Ctrl-C asks every part to stop taking
//! new work; callers decide how long to wait for in-flight work.

use tokio::sync::watch;
use tracing::info;

#[derive(Clone)]
pub struct Shutdown {
    requested: watch::Receiver<bool>,
}

impl Shutdown {
    /// Starts listening for SIGTERM and Ctrl-C.
    pub fn on_signals() -> Self {
        let (tx, requested) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            info!("shutdown requested: finishing in-flight work");
            let _ = tx.send(true);
        });
        Self { requested }
    }

    pub fn is_requested(&self) -> bool {
        *self.requested.borrow()
    }

    /// Resolves once shutdown has been requested.
    pub async fn requested(mut self) {
        let _ = self.requested.wait_for(|requested| *requested).await;
    }
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
