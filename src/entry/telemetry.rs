//! Logging: JSON lines under Lambda (or when `GRAPH_MAIL_RELAY_LOG_FORMAT=json`), compact text
//! elsewhere. The level comes from `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let json = in_lambda
        || std::env::var("GRAPH_MAIL_RELAY_LOG_FORMAT")
            .is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .without_time()
            .init();
    } else {
        builder.compact().with_ansi(false).init();
    }
}
