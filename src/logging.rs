//! Logging through `tracing`: `RUST_LOG` is respected (default `info`), logs go to stderr,
//! and each call runs inside a span carrying its Call-ID (see [`call_span`]).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls are no-ops.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// The span every log line of one call runs in.
pub fn call_span(call_id: &str) -> tracing::Span {
    tracing::info_span!("call", call_id = %call_id)
}
