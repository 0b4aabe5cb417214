//! The operator's command line: what it says when it is used wrongly or configured wrongly. These
//! runs stop before any AWS or Graph call.

use std::process::{Command, Output};

fn relay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graph-mail-relay"))
        .args(args)
        .env_remove("GRAPH_MAIL_RELAY_CONFIG")
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn sample_config() -> String {
    format!("{}/samplconfig/relay.toml", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn sample_configuration_checks_out() {
    let output = relay(&["--config", &sample_config(), "check-config"]);

    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "configuration is valid: 2 mailbox(es)\n"
    );
}

#[test]
fn unknown_command_is_a_usage_error_before_any_configuration_is_read() {
    let output = relay(&["frobnicate"]);

    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).starts_with("graph-mail-relay: unknown command 'frobnicate'\n"));
}

#[test]
fn config_flag_without_a_file_is_a_usage_error() {
    let output = relay(&["check-config", "--config"]);

    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).starts_with("graph-mail-relay: --config needs a file\n"));
}

#[test]
fn missing_configuration_says_how_to_name_one() {
    let output = relay(&["check-config"]);

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "(hint: pass --config FILE or set GRAPH_MAIL_RELAY_CONFIG)\n\
         graph-mail-relay: configuration error: GRAPH_MAIL_RELAY_CONFIG is not set: point it at \
         the relay's TOML configuration (see samplconfig/relay.toml)\n"
    );
}

#[test]
fn plain_http_graph_endpoint_is_refused_with_the_setting_named() {
    let text = std::fs::read_to_string(sample_config())
        .unwrap()
        .replace("https://graph.microsoft.com", "http://graph.example.com");
    let dir = std::env::temp_dir().join(format!("gmr-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("relay.toml");
    std::fs::write(&path, text).unwrap();

    let output = relay(&["--config", path.to_str().unwrap(), "check-config"]);
    std::fs::remove_dir_all(&dir).unwrap();

    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).ends_with(
            "relay.toml: graph.graph_base = 'http://graph.example.com': plain http is allowed \
             only to a loopback address; use https\n"
        ),
        "{}",
        stderr(&output)
    );
    assert!(!stderr(&output).contains("hint"));
}
