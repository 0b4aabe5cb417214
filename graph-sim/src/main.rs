//! The `graph-sim` binary: serves the simulator on a loopback address until SIGTERM or SIGINT.
//!
//! `graph-sim --config sim.json [--listen 127.0.0.1:0] [--port-file PATH]`

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use graph_sim::SimConfig;

const USAGE: &str = "usage: graph-sim --config sim.json [--listen 127.0.0.1:0] [--port-file PATH]";

/// Command-line options.
struct Args {
    config: PathBuf,
    listen: SocketAddr,
    port_file: Option<PathBuf>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut config = None;
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut port_file = None;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--config" => config = Some(PathBuf::from(value("--config")?)),
            "--listen" => {
                let raw = value("--listen")?;
                listen = raw.parse().map_err(|_| {
                    format!("--listen '{raw}' is not an address like 127.0.0.1:8080")
                })?;
            }
            "--port-file" => port_file = Some(PathBuf::from(value("--port-file")?)),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    let config = config.ok_or("--config is required")?;
    if !listen.ip().is_loopback() {
        return Err(format!(
            "--listen {listen} is not a loopback address; graph-sim only serves on 127.0.0.0/8 \
             or [::1]"
        ));
    }
    Ok(Args {
        config,
        listen,
        port_file,
    })
}

fn load_config(path: &PathBuf) -> Result<SimConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("config {} is not valid: {e}", path.display()))
}

/// Writes the port atomically, so that a script polling for the file never reads it half-written.
fn write_port_file(path: &PathBuf, port: u16) -> Result<(), String> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, format!("{port}\n"))
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|e| format!("cannot write port file {}: {e}", path.display()))
}

async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}

async fn run(args: Args) -> Result<(), String> {
    let config = load_config(&args.config)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let sim = graph_sim::start(config, listener)
        .await
        .map_err(|e| e.to_string())?;

    println!("graph-sim listening on {}", sim.base_url());
    if let Some(path) = &args.port_file {
        write_port_file(path, sim.local_addr().port())?;
    }

    wait_for_signal()
        .await
        .map_err(|e| format!("cannot wait for signals: {e}"))?;
    tracing::info!("signal received, shutting down");
    sim.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) if message.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("graph-sim: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("graph-sim: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse_args(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn a_non_loopback_listen_address_is_refused() {
        let error = args(&["--config", "sim.json", "--listen", "0.0.0.0:8080"])
            .err()
            .unwrap();

        assert_eq!(
            error,
            "--listen 0.0.0.0:8080 is not a loopback address; graph-sim only serves on \
             127.0.0.0/8 or [::1]"
        );
    }

    #[test]
    fn listen_defaults_to_an_ephemeral_loopback_port() {
        let parsed = args(&["--config", "sim.json", "--port-file", "graph-sim.port"]).unwrap();

        assert_eq!(parsed.listen, SocketAddr::from(([127, 0, 0, 1], 0)));
        assert_eq!(parsed.port_file, Some(PathBuf::from("graph-sim.port")));
    }

    #[test]
    fn config_is_required() {
        assert_eq!(args(&[]).err().unwrap(), "--config is required");
    }
}
