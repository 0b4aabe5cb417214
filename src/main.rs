//! `graph-mail-relay`: the operator's command line, and serve mode.

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use chrono::Utc;
use graph_mail_relay::{
    config::{CONFIG_ENV, RelayConfig},
    entry::{serve, telemetry, wiring},
    error::RelayError,
    ports::StateStore,
    usecase::{
        Deadline,
        subscribe::{MailboxOutcome, report_json},
    },
};
use tokio::sync::watch;

const USAGE: &str = "\
graph-mail-relay: relays mail from Exchange Online gateway mailboxes to fax and SMS queues

usage: graph-mail-relay [--config FILE] COMMAND

commands:
  serve           run the webhook, the queue consumer and the subscribe timer in one process
  subscribe       give every configured mailbox a live subscription (idempotent); prints one
                  JSON object per mailbox. Exit 0: all live; 3: another run holds a mailbox;
                  1: a mailbox failed
  subscriptions   list the recorded subscriptions as JSON lines
  check-config    load and validate the configuration, then exit

The configuration file defaults to $GRAPH_MAIL_RELAY_CONFIG. AWS settings come from the standard
AWS environment (AWS_REGION, AWS_ENDPOINT_URL, credentials).";

const COMMANDS: [&str; 4] = ["serve", "subscribe", "subscriptions", "check-config"];

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut config_path: Option<PathBuf> = None;
    let mut command: Option<String> = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => match args.next() {
                Some(path) => config_path = Some(PathBuf::from(path)),
                None => return usage_error("--config needs a file"),
            },
            "-h" | "--help" | "help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ if command.is_none() => command = Some(arg),
            _ => return usage_error(&format!("unexpected argument '{arg}'")),
        }
    }
    let Some(command) = command else {
        return usage_error("no command given");
    };
    if !COMMANDS.contains(&command.as_str()) {
        return usage_error(&format!("unknown command '{command}'"));
    }

    telemetry::init();
    let config = match &config_path {
        Some(path) => RelayConfig::from_file(path),
        None => RelayConfig::from_env(),
    };
    let config = match config {
        Ok(config) => Arc::new(config),
        Err(error) => {
            if config_path.is_none() && std::env::var_os(CONFIG_ENV).is_none() {
                eprintln!("(hint: pass --config FILE or set {CONFIG_ENV})");
            }
            return fail(&error);
        }
    };

    let result = match command.as_str() {
        "check-config" => {
            println!(
                "configuration is valid: {} mailbox(es)",
                config.mailboxes.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        "serve" => run_serve(config).await,
        "subscribe" => run_subscribe(config).await,
        "subscriptions" => list_subscriptions(config).await,
        other => unreachable!("command {other} was checked above"),
    };
    result.unwrap_or_else(|error| fail(&error))
}

fn usage_error(problem: &str) -> ExitCode {
    eprintln!("graph-mail-relay: {problem}\n\n{USAGE}");
    ExitCode::from(2)
}

fn fail(error: &RelayError) -> ExitCode {
    eprintln!("graph-mail-relay: {error}");
    ExitCode::FAILURE
}

async fn run_serve(config: Arc<RelayConfig>) -> Result<ExitCode, RelayError> {
    let aws = wiring::AwsClients::from_env(&config).await?;
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop.send(true);
    });
    serve::run(config, aws, stopped).await?;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

async fn run_subscribe(config: Arc<RelayConfig>) -> Result<ExitCode, RelayError> {
    let aws = wiring::AwsClients::from_env(&config).await?;
    let graph = wiring::graph(&config, &aws)?;
    let subscriber = wiring::subscriber(&config, &aws, graph);

    let reports = subscriber
        .run(Utc::now(), Deadline::after(Duration::from_secs(120)))
        .await;

    if let serde_json::Value::Array(rows) = report_json(&reports) {
        for row in rows {
            println!("{row}");
        }
    }
    let outcomes = reports.iter().map(|r| &r.outcome);
    Ok(
        if outcomes
            .clone()
            .any(|o| matches!(o, MailboxOutcome::Failed(_)))
        {
            ExitCode::FAILURE
        } else if outcomes.clone().any(|o| matches!(o, MailboxOutcome::Busy)) {
            ExitCode::from(3)
        } else {
            ExitCode::SUCCESS
        },
    )
}

async fn list_subscriptions(config: Arc<RelayConfig>) -> Result<ExitCode, RelayError> {
    let aws = wiring::AwsClients::from_env(&config).await?;
    let state = graph_mail_relay::adapters::aws::dynamodb::DynamoStateStore::new(
        aws.dynamodb.clone(),
        &config.aws.state_table,
    );
    for record in state.subscriptions().await? {
        let row = serde_json::json!({
            "subscriptionId": record.subscription_id,
            "mailbox": record.mailbox,
            "resource": record.resource,
            "expiresAt": record.expires_at.to_rfc3339(),
            "createdAt": record.created_at.to_rfc3339(),
        });
        println!("{row}");
    }
    Ok(ExitCode::SUCCESS)
}
