//! A hello-world Rust Lambda, the yardstick for the relay's binary size, init time and memory
//! (see `docs/performance.md`). It echoes its event and does nothing else: no AWS SDK, no
//! configuration, no logging set-up. Built in release like the relay:
//! `cargo build --release --example hello_lambda`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(event.payload)
    }))
    .await
}
