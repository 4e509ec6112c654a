//! `wasmjob history`: a queue's (or every queue's) per-minute history.

use super::EXIT_OK;
use super::remote::{OrExit, Remote, cell, exit_code, print_json, print_table};
use crate::units::parse_duration;
use clap::Args;
use serde_json::Value;
use std::time::Duration;

/// Arguments of `wasmjob history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this queue.
    #[arg(long)]
    pub queue: Option<String>,
    /// How far back, by this machine's clock (e.g. 15m, 24h).
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    pub last: Duration,
    #[command(flatten)]
    pub remote: Remote,
}

/// `wasmjob history [--queue Q] [--last 1h]`.
pub fn history(args: HistoryArgs) -> u8 {
    exit_code(history_body(args))
}

fn history_body(args: HistoryArgs) -> Result<u8, u8> {
    let client = args.remote.connect()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let since = now.saturating_sub(args.last.as_millis() as i64);
    let mut path = format!("/v1/history?since={since}&until={}", now + 1);
    if let Some(queue) = &args.queue {
        path.push_str(&format!("&queue={queue}"));
    }
    let answer = client.get(&path).or_exit()?;
    if args.remote.json {
        print_json(&answer);
        return Ok(EXIT_OK);
    }
    let rows: Vec<Vec<String>> = answer["minutes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(row)
        .collect();
    print_table(&HEADER, &rows);
    Ok(EXIT_OK)
}

const HEADER: [&str; 8] = [
    "minute (UTC)",
    "queue",
    "completed",
    "failed",
    "retried",
    "dead",
    "wait p50/p95/p99 ms",
    "run p50/p95/p99 ms",
];

fn row(minute: &Value) -> Vec<String> {
    let at = minute["at"]
        .as_i64()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(
            || cell(&minute["at"]),
            |t| t.strftime("%Y-%m-%d %H:%M").to_string(),
        );
    let percentiles = |p: &Value| {
        format!(
            "{}/{}/{}",
            cell(&p["p50_ms"]),
            cell(&p["p95_ms"]),
            cell(&p["p99_ms"])
        )
    };
    vec![
        at,
        cell(&minute["queue"]),
        cell(&minute["completed"]),
        cell(&minute["failed"]),
        cell(&minute["retried"]),
        cell(&minute["dead_lettered"]),
        percentiles(&minute["wait"]),
        percentiles(&minute["run"]),
    ]
}
