//! Diagnostics: `tracing` to stderr only (stdout of `pogo config` is the protocol), filtered
//! by `POGO_LOG` (default `warn`). Job-log messages are written directly, not through tracing.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_env("POGO_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
