//! graph-sim: a local simulator of the Microsoft identity platform token endpoint and of the
//! Microsoft Graph v1.0 mail calls graph-mail-relay makes. It is the test double for every
//! Graph-facing test, and follows `reference/graph-mail-notifications.md`.
//!
//! Where a request goes:
//! - `POST /{tenant}/oauth2/v2.0/token`: client-credentials tokens (`token.rs`);
//! - `/v1.0/...`: authenticated, counted and fault-injected by the gate (`gate.rs`), then
//!   subscriptions and message reads (`graph/`); webhook calls leave through `notify.rs`;
//! - `/_sim/...`: the control plane for tests (`control.rs`).
//!
//! ```no_run
//! # async fn demo(config: graph_sim::SimConfig) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let sim = graph_sim::start(config, listener).await?;
//! println!("{}", sim.base_url()); // http://127.0.0.1:PORT
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod config;
mod control;
mod error;
mod gate;
mod graph;
mod ids;
mod notify;
mod state;
mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{SimConfig, SimMailbox};
pub use state::{CREATOR_ID, Stats};
pub use token::GRAPH_DEFAULT_SCOPE;

use state::SimState;

/// How long [`SimServer::shutdown`] waits for open connections before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The simulator's routes over a fresh state built from `config`, for callers that serve it
/// themselves.
pub fn router(config: SimConfig) -> std::io::Result<Router> {
    Ok(app(Arc::new(SimState::new(config)?)))
}

fn app(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token::issue))
        .nest("/v1.0", graph::routes(state.clone()))
        .nest("/_sim", control::routes())
        .with_state(state)
}

/// Serves the simulator on `listener`, which must be bound to a loopback address.
pub async fn start(
    config: SimConfig,
    listener: tokio::net::TcpListener,
) -> std::io::Result<SimServer> {
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("graph-sim only serves on loopback; {addr} is not a loopback address"),
        ));
    }
    let state = Arc::new(SimState::new(config)?);
    let (stop, stopped) = oneshot::channel::<()>();
    let serve = axum::serve(listener, app(state.clone())).with_graceful_shutdown(async {
        // A dropped sender also stops the server.
        let _ = stopped.await;
    });
    let task = tokio::spawn(async move { serve.await });
    tracing::info!(%addr, "graph-sim listening");
    Ok(SimServer {
        addr,
        state,
        stop: Some(stop),
        task: Some(task),
    })
}

/// A running simulator. Dropping it stops the server abruptly; [`SimServer::shutdown`] stops it
/// gracefully.
pub struct SimServer {
    addr: SocketAddr,
    state: Arc<SimState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl SimServer {
    /// `http://127.0.0.1:PORT`, the base of the token endpoint, `/v1.0` and `/_sim`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the simulator listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The counters, read synchronously (the same values as `GET /_sim/stats`).
    pub fn stats(&self) -> Stats {
        self.state.stats.snapshot()
    }

    /// Zeroes the counters (as `POST /_sim/stats/reset`).
    pub fn reset_stats(&self) {
        self.state.stats.reset();
    }

    /// Stops accepting connections, lets requests in flight finish (up to 5 s), and returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
