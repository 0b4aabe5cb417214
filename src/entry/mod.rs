//! What the entry points share: logging set-up, building the use cases from configuration, the
//! HTTP glue for Lambda and for serve mode. Entry points wire; they do not decide.

pub mod lambda_events;
pub mod lambda_http_glue;
pub mod serve;
pub mod telemetry;
pub mod wiring;
