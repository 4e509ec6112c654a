//! What every client command shares: where the host is, how to print, and
//! how errors become exit codes.

use super::{EXIT_SERVER, EXIT_UNREACHABLE, EXIT_USAGE};
use crate::client::{Client, ClientError, DEFAULT_URL};
use clap::Args;
use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;

/// Connection and output options of the client commands. The host address
/// and token come from the flag, else the environment, else the client
/// config file (`$WASMJOB_CLIENT_CONFIG`, default
/// `~/.config/wasmjob/client.toml` with keys `url` and `token`).
#[derive(Debug, Clone, Args)]
pub struct Remote {
    /// Address of the host [default: http://127.0.0.1:7878].
    #[arg(long, env = "WASMJOB_URL", global = true, value_name = "URL")]
    pub url: Option<String>,
    /// Bearer token of the host.
    #[arg(long, env = "WASMJOB_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of tables, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    url: Option<String>,
    token: Option<String>,
}

impl Remote {
    /// A client for the configured host, or a one-line error.
    pub fn client(&self) -> Result<Client, String> {
        let file = load_file()?;
        let url = self
            .url
            .clone()
            .or(file.url)
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(format!(
                "invalid host address `{url}`: use http://HOST:PORT"
            ));
        }
        Ok(Client::new(&url, self.token.clone().or(file.token)))
    }
}

fn load_file() -> Result<ClientFile, String> {
    let path = match std::env::var_os("WASMJOB_CLIENT_CONFIG") {
        Some(path) => PathBuf::from(path),
        None => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".config/wasmjob/client.toml"),
            None => return Ok(ClientFile::default()),
        },
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text)
            .map_err(|e| format!("client config {}: {}", path.display(), e.message())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ClientFile::default()),
        Err(e) => Err(format!("cannot read client config {}: {e}", path.display())),
    }
}

/// Prints a one-line error and returns the exit code for its kind:
/// 2 the host refused the request, 3 the host failed, 4 unreachable.
pub fn fail(error: ClientError) -> u8 {
    // The host's message can quote what a job wrote.
    eprintln!("error: {}", super::terminal::line(&error.to_string()));
    match error {
        ClientError::Refused { .. } => EXIT_USAGE,
        ClientError::Server(_) => EXIT_SERVER,
        ClientError::Unreachable { .. } => EXIT_UNREACHABLE,
    }
}

/// The exit code of a client command whose body returns early with
/// `Err(code)` once the error has been reported.
pub fn exit_code(result: Result<u8, u8>) -> u8 {
    result.unwrap_or_else(|code| code)
}

/// Reports a failed request (one line) and turns it into its exit code, so
/// command bodies can use `?`.
pub trait OrExit<T> {
    /// `Err(error)` becomes `Err(exit code)` after printing the error.
    fn or_exit(self) -> Result<T, u8>;
}

impl<T> OrExit<T> for Result<T, ClientError> {
    fn or_exit(self) -> Result<T, u8> {
        self.map_err(fail)
    }
}

impl Remote {
    /// [`Remote::client`], reporting a bad configuration as a usage error.
    pub fn connect(&self) -> Result<Client, u8> {
        self.client().map_err(super::usage_error)
    }
}

/// Prints `value` as pretty JSON.
pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialize")
    );
}

/// Prints rows as an aligned table with a header.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths[i]))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_uppercase()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// A JSON field as table text (`-` when absent), on one line with its
/// control characters escaped ([`terminal::line`](super::terminal::line)):
/// many fields (log messages, errors, progress notes) are a job's words.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => super::terminal::line(s).into_owned(),
        other => other.to_string(),
    }
}
