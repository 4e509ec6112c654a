//! Client commands about queues: list them, show one, pause, resume.

use super::EXIT_OK;
use super::remote::{OrExit, Remote, cell, exit_code, print_json, print_table};
use clap::{Args, Subcommand};
use serde_json::Value;

/// Arguments of `wasmjob queue`.
#[derive(Debug, Args)]
pub struct QueueArgs {
    #[command(subcommand)]
    pub action: QueueAction,
}

/// What `wasmjob queue` does.
#[derive(Debug, Subcommand)]
pub enum QueueAction {
    /// Show a queue: paused or not, cap, waiting and running jobs, oldest
    /// wait.
    ///
    /// Example: wasmjob queue show emails
    Show(NamedQueue),
    /// Pause a queue: it accepts jobs and starts none (running jobs finish).
    ///
    /// Example: wasmjob queue pause emails
    Pause(NamedQueue),
    /// Resume a paused queue.
    ///
    /// Example: wasmjob queue resume emails
    Resume(NamedQueue),
}

/// A queue by name.
#[derive(Debug, Args)]
pub struct NamedQueue {
    /// The queue's name.
    pub name: String,
    #[command(flatten)]
    pub remote: Remote,
}

/// `wasmjob queues`.
pub fn list(remote: Remote) -> u8 {
    exit_code(list_body(remote))
}

fn list_body(remote: Remote) -> Result<u8, u8> {
    let client = remote.connect()?;
    let answer = client.get("/v1/queues").or_exit()?;
    if remote.json {
        print_json(&answer);
        return Ok(EXIT_OK);
    }
    let rows: Vec<Vec<String>> = answer["queues"]
        .as_array()
        .into_iter()
        .flatten()
        .map(row)
        .collect();
    print_table(&HEADER, &rows);
    Ok(EXIT_OK)
}

const HEADER: [&str; 8] = [
    "queue",
    "state",
    "cap",
    "blocked",
    "pending",
    "retrying",
    "running",
    "oldest wait ms",
];

fn row(queue: &Value) -> Vec<String> {
    vec![
        cell(&queue["name"]),
        if queue["paused"] == true {
            "paused".to_owned()
        } else {
            "active".to_owned()
        },
        cell(&queue["concurrency"]),
        cell(&queue["blocked"]),
        cell(&queue["pending"]),
        cell(&queue["retrying"]),
        cell(&queue["running"]),
        cell(&queue["oldest_wait_ms"]),
    ]
}

/// `wasmjob queue show|pause|resume NAME`.
pub fn queue(args: QueueArgs) -> u8 {
    let (name, remote, action) = match args.action {
        QueueAction::Show(q) => (q.name, q.remote, None),
        QueueAction::Pause(q) => (q.name, q.remote, Some("pause")),
        QueueAction::Resume(q) => (q.name, q.remote, Some("resume")),
    };
    exit_code(queue_body(&name, &remote, action))
}

fn queue_body(name: &str, remote: &Remote, action: Option<&str>) -> Result<u8, u8> {
    let client = remote.connect()?;
    let queue = match action {
        None => client.get(&format!("/v1/queues/{name}")),
        Some(action) => client.post_json(&format!("/v1/queues/{name}/{action}"), &Value::Null),
    }
    .or_exit()?;
    if remote.json {
        print_json(&queue);
    } else {
        print_table(&HEADER, &[row(&queue)]);
    }
    Ok(EXIT_OK)
}
