//! Logging and shutdown on signals: what every command's process shares.

use std::io::IsTerminal;

use tokio_util::sync::CancellationToken;

use crate::exit::EXIT_FORCED;

/// Log to stderr with `filter` (tracing's `EnvFilter` syntax; `warn` when it does not parse),
/// in colour only on a terminal.
pub fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// A root token cancelled by SIGINT or SIGTERM; a second signal exits at once (code 130).
/// Must be called inside a tokio runtime.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        for n in 0.. {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            if n == 0 {
                eprintln!("autoscaler: stopping (signal again to force)");
                t.cancel();
            } else {
                eprintln!("autoscaler: forced exit");
                std::process::exit(EXIT_FORCED);
            }
        }
    });
    token
}
