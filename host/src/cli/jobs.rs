//! Client commands about jobs: submit (and follow), status, list, cancel,
//! retry, dead-letter, logs.

use super::remote::{OrExit, Remote, cell, exit_code, print_json, print_table};
use super::serve::parse_retry;
use super::{EXIT_JOB_FAILED, EXIT_OK, terminal, usage_error};
use crate::client::Client;
use crate::policy::RetryPolicy;
use crate::units::{parse_bytes, parse_duration};
use clap::Args;
use serde_json::{Value, json};
use std::time::Duration;

/// How long each of `--wait`'s requests waits for the job to finish (a
/// long poll: the host answers as soon as it does); between answers the
/// progress bar shows the latest progress.
const WAIT_POLL: Duration = Duration::from_millis(250);

/// What a job is: the options `submit` and `schedule add` share.
#[derive(Debug, Args)]
pub struct JobFields {
    /// Module hash or name.
    pub module: String,
    /// The queue to wait in [default: default].
    #[arg(long, value_name = "NAME")]
    pub queue: Option<String>,
    /// Input: JSON text, or @FILE to read JSON from a file [default: null].
    #[arg(long, value_name = "JSON|@FILE")]
    pub input: Option<String>,
    /// 0 (critical) to 10 (low) [default: 5].
    #[arg(long, value_name = "N")]
    pub priority: Option<u8>,
    /// Attempts in all [default: the host's].
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<u32>,
    /// Retry policy: exponential|linear|fixed|none[:BASE], e.g. exponential:1s.
    #[arg(long, value_parser = parse_retry, value_name = "POLICY")]
    pub retry: Option<RetryPolicy>,
    /// Fuel budget.
    #[arg(long, value_name = "N")]
    pub fuel: Option<u64>,
    /// Memory limit (e.g. 64MiB).
    #[arg(long, value_parser = parse_bytes, value_name = "SIZE")]
    pub memory: Option<u64>,
    /// Wall-clock timeout (e.g. 30s).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// At most one job with this key in the queue at a time: while one is
    /// not final, another is not stored (submit prints that job's id).
    #[arg(long, value_name = "KEY")]
    pub unique: Option<String>,
    /// With --unique: the key stays held this long after its job ends
    /// (e.g. 1h) [default: 0].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", requires = "unique")]
    pub unique_window: Option<Duration>,
}

impl JobFields {
    /// The job as the API's JSON takes it (`POST /v1/jobs`).
    pub fn body(&self) -> Result<Value, String> {
        let input = read_input(self.input.as_deref())?;
        let mut body = json!({ "module": self.module, "input": input });
        if let Some(queue) = &self.queue {
            body["queue"] = json!(queue);
        }
        let mut limits = serde_json::Map::new();
        if let Some(fuel) = self.fuel {
            limits.insert("fuel".into(), json!(fuel));
        }
        if let Some(memory) = self.memory {
            limits.insert("memory_bytes".into(), json!(memory));
        }
        if let Some(timeout) = self.timeout {
            limits.insert("timeout_ms".into(), json!(timeout.as_millis() as u64));
        }
        if !limits.is_empty() {
            body["limits"] = Value::Object(limits);
        }
        if let Some(priority) = self.priority {
            body["priority"] = json!(priority);
        }
        if let Some(max) = self.max_attempts {
            body["max_attempts"] = json!(max);
        }
        if let Some(retry) = self.retry {
            // Jitter is left to the host's default policy.
            body["retry"] = json!({
                "backoff": retry.backoff.as_str(),
                "base_ms": retry.base_ms,
                "max_delay_ms": retry.max_delay_ms,
            });
        }
        if let Some(key) = &self.unique {
            body["unique"] = json!({ "key": key });
            if let Some(window) = self.unique_window {
                body["unique"]["window_ms"] = json!(window.as_millis() as u64);
            }
        }
        Ok(body)
    }
}

/// Arguments of `wasmjob submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub job: JobFields,
    /// Run no earlier than this from now (e.g. 10m).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", conflicts_with = "at")]
    pub delay: Option<Duration>,
    /// Run no earlier than this time, RFC 3339 (e.g. 2026-12-01T08:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Wait for this job first (repeatable): ID, or ID=NAME to name its
    /// output; the job is blocked until each completes, and cancelled if
    /// one fails (unless --on-failure continue).
    #[arg(long = "depends-on", value_name = "ID[=NAME]", value_parser = parse_dependency)]
    pub depends_on: Vec<(i64, Option<String>)>,
    /// What the job does when a job it waits for fails or is cancelled:
    /// cancel (the default) or continue (run anyway).
    #[arg(long, value_name = "cancel|continue", requires = "depends_on",
          value_parser = ["cancel", "continue"])]
    pub on_failure: Option<String>,
    /// Run with only these of its module's grants (repeatable); all of
    /// them when absent. A job may narrow its module's grants, never widen.
    #[arg(long = "grant", value_name = "NAME")]
    pub grants: Vec<String>,
    /// Run with none of its module's grants.
    #[arg(long, conflicts_with = "grants")]
    pub no_grants: bool,
    /// Follow the job until it ends, then print its output or failure;
    /// exit 0 only if it completed.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub remote: Remote,
}

/// Arguments naming one job.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The job's id.
    pub id: i64,
    #[command(flatten)]
    pub remote: Remote,
}

/// Arguments of `wasmjob list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only jobs in this state (blocked, pending, running, retrying,
    /// completed, failed, cancelled).
    #[arg(long)]
    pub state: Option<String>,
    /// Only jobs of this queue.
    #[arg(long)]
    pub queue: Option<String>,
    /// Only jobs of this module (hash or name).
    #[arg(long)]
    pub module: Option<String>,
    /// Only jobs of this priority.
    #[arg(long)]
    pub priority: Option<u8>,
    /// Only jobs this cron schedule created.
    #[arg(long)]
    pub schedule: Option<String>,
    /// At most this many [default: 100].
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Only jobs older than this id (the previous page's cursor).
    #[arg(long, value_name = "ID")]
    pub before: Option<i64>,
    #[command(flatten)]
    pub remote: Remote,
}

/// Arguments of `wasmjob dead-letter`.
#[derive(Debug, Args)]
pub struct DeadLetterArgs {
    /// Delete every job in the dead letter instead of listing them.
    #[arg(long)]
    pub purge: bool,
    #[command(flatten)]
    pub remote: Remote,
}

/// `wasmjob submit`.
pub fn submit(args: SubmitArgs) -> u8 {
    exit_code(submit_body(args))
}

fn submit_body(args: SubmitArgs) -> Result<u8, u8> {
    let client = args.remote.connect()?;
    let mut body = args.job.body().map_err(usage_error)?;
    if let Some(delay) = args.delay {
        body["delay_ms"] = json!(delay.as_millis() as u64);
    }
    if let Some(at) = &args.at {
        body["run_at"] = json!(at);
    }
    if !args.depends_on.is_empty() {
        let edges: Vec<Value> = args
            .depends_on
            .iter()
            .map(|(id, name)| {
                let mut edge = json!({ "job": id });
                if let Some(name) = name {
                    edge["name"] = json!(name);
                }
                if let Some(on_failure) = &args.on_failure {
                    edge["on_failure"] = json!(on_failure);
                }
                edge
            })
            .collect();
        body["depends_on"] = Value::Array(edges);
    }
    if args.no_grants {
        body["grants"] = json!([]);
    } else if !args.grants.is_empty() {
        body["grants"] = json!(args.grants);
    }
    let job = client.post_json("/v1/jobs", &body).or_exit()?;
    if !args.wait {
        if args.remote.json {
            print_json(&job);
        } else {
            println!("{}", job["id"]);
        }
        return Ok(EXIT_OK);
    }
    follow(
        &client,
        job["id"].as_i64().unwrap_or_default(),
        args.remote.json,
    )
}

/// `12` or `12=payment`.
fn parse_dependency(text: &str) -> Result<(i64, Option<String>), String> {
    let (id, name) = match text.split_once('=') {
        Some((id, name)) => (id, Some(name.to_owned())),
        None => (text, None),
    };
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|id| *id >= 1)
        .ok_or_else(|| format!("`{id}` is not a job id (use ID or ID=NAME)"))?;
    Ok((id, name))
}

fn read_input(input: Option<&str>) -> Result<Value, String> {
    let Some(text) = input else {
        return Ok(Value::Null);
    };
    let (text, source) = match text.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read input file {path}: {e}"))?,
            path.to_owned(),
        ),
        None => (text.to_owned(), "--input".to_owned()),
    };
    serde_json::from_str(&text).map_err(|e| format!("{source} is not valid JSON: {e}"))
}

/// Follows a job until it is final, with a progress bar on a terminal.
fn follow(client: &Client, id: i64, json_out: bool) -> Result<u8, u8> {
    let bar = indicatif::ProgressBar::new(100);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} job {prefix} [{bar:30}] {pos:>3}% {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(id.to_string());
    let mut last = String::new();
    let job = loop {
        let job = client
            .get(&format!("/v1/jobs/{id}?wait_ms={}", WAIT_POLL.as_millis()))
            .inspect_err(|_| bar.abandon())
            .or_exit()?;
        let state = format!(
            "{} (attempt {}/{})",
            cell(&job["state"]),
            job["attempt"],
            job["max_attempts"]
        );
        if state != last {
            bar.println(format!("job {id}: {state}"));
            last = state;
        }
        if let Some(percent) = job["progress"]["percent"].as_u64() {
            bar.set_position(percent);
            bar.set_message(cell(&job["progress"]["note"]));
        }
        if matches!(
            job["state"].as_str(),
            Some("completed" | "failed" | "cancelled")
        ) {
            break job;
        }
        bar.tick();
    };
    bar.finish_and_clear();
    if json_out {
        print_json(&job);
    } else if job["state"] == "completed" {
        print_json(&job["output"]);
    } else {
        let report = &job["attempts"]
            .as_array()
            .and_then(|a| a.last())
            .cloned()
            .unwrap_or(Value::Null)["report"];
        eprintln!(
            "job {id} {}: {}",
            cell(&job["state"]),
            cell(&job["last_error"])
        );
        if !report.is_null() {
            print_json(report);
        }
    }
    Ok(if job["state"] == "completed" {
        EXIT_OK
    } else {
        EXIT_JOB_FAILED
    })
}

/// `wasmjob status ID`.
pub fn status(args: JobArgs) -> u8 {
    exit_code(status_body(args))
}

fn status_body(args: JobArgs) -> Result<u8, u8> {
    let client = args.remote.connect()?;
    let job = client.get(&format!("/v1/jobs/{}", args.id)).or_exit()?;
    if args.remote.json {
        print_json(&job);
        return Ok(EXIT_OK);
    }
    for (key, value) in [
        ("id", &job["id"]),
        ("queue", &job["queue"]),
        ("state", &job["state"]),
        ("module", &Value::String(module_cell(&job))),
        ("priority", &job["priority"]),
        ("attempt", &job["attempt"]),
        ("max_attempts", &job["max_attempts"]),
        ("last_error", &job["last_error"]),
    ] {
        println!("{key:<13} {}", cell(value));
    }
    if let Some(schedule) = job["schedule"].as_str() {
        println!("{:<13} {schedule}", "schedule");
    }
    if let Some(percent) = job["progress"]["percent"].as_u64() {
        println!(
            "{:<13} {percent}% {}",
            "progress",
            cell(&job["progress"]["note"])
        );
    }
    let rows: Vec<Vec<String>> = job["attempts"]
        .as_array()
        .map(|attempts| attempts.iter().map(attempt_row).collect())
        .unwrap_or_default();
    if !rows.is_empty() {
        println!();
        print_table(
            &["attempt", "status", "kind", "fuel", "peak memory", "ms"],
            &rows,
        );
    }
    if job["state"] == "completed" {
        println!("\noutput:");
        print_json(&job["output"]);
    }
    Ok(EXIT_OK)
}

fn attempt_row(attempt: &Value) -> Vec<String> {
    let report = &attempt["report"];
    vec![
        cell(&attempt["attempt"]),
        cell(&report["status"]),
        cell(&report["failure"]["kind"]),
        cell(&report["fuel"]["consumed"]),
        cell(&report["memory"]["peak_bytes"]),
        report["duration_us"]
            .as_u64()
            .map_or("-".to_owned(), |us| format!("{:.1}", us as f64 / 1000.0)),
    ]
}

/// `wasmjob list`.
pub fn list(args: ListArgs) -> u8 {
    let mut query = vec![format!("limit={}", args.limit)];
    if let Some(state) = &args.state {
        query.push(format!("state={state}"));
    }
    if let Some(queue) = &args.queue {
        query.push(format!("queue={queue}"));
    }
    if let Some(module) = &args.module {
        query.push(format!("module={module}"));
    }
    if let Some(priority) = args.priority {
        query.push(format!("priority={priority}"));
    }
    if let Some(schedule) = &args.schedule {
        query.push(format!("schedule={schedule}"));
    }
    if let Some(before) = args.before {
        query.push(format!("before={before}"));
    }
    exit_code(print_jobs(
        &args.remote,
        &format!("/v1/jobs?{}", query.join("&")),
    ))
}

fn print_jobs(remote: &Remote, path: &str) -> Result<u8, u8> {
    let client = remote.connect()?;
    let page = client.get(path).or_exit()?;
    if remote.json {
        print_json(&page);
        return Ok(EXIT_OK);
    }
    let rows: Vec<Vec<String>> = page["jobs"]
        .as_array()
        .map(|jobs| {
            jobs.iter()
                .map(|job| {
                    vec![
                        cell(&job["id"]),
                        cell(&job["queue"]),
                        cell(&job["state"]),
                        cell(&job["priority"]),
                        format!("{}/{}", job["attempt"], job["max_attempts"]),
                        module_cell(job),
                        cell(&job["last_error"]).chars().take(60).collect(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    print_table(
        &[
            "id",
            "queue",
            "state",
            "priority",
            "attempt",
            "module",
            "last error",
        ],
        &rows,
    );
    if let Some(next) = page["next_cursor"].as_i64() {
        println!("(more: --before {next})");
    }
    Ok(EXIT_OK)
}

/// A job's module as `name (short hash)`, or the short hash alone.
fn module_cell(job: &Value) -> String {
    let hash: String = cell(&job["module"]).chars().take(12).collect();
    match job["module_name"].as_str() {
        Some(name) => format!("{name} ({hash})"),
        None => hash,
    }
}

/// `wasmjob cancel ID`.
pub fn cancel(args: JobArgs) -> u8 {
    exit_code(post_action(&args, "cancel"))
}

/// `wasmjob retry ID`: re-queues a dead-lettered job.
pub fn retry(args: JobArgs) -> u8 {
    exit_code(post_action(&args, "requeue"))
}

fn post_action(args: &JobArgs, action: &str) -> Result<u8, u8> {
    let client = args.remote.connect()?;
    let job = client
        .post_json(&format!("/v1/jobs/{}/{action}", args.id), &Value::Null)
        .or_exit()?;
    if args.remote.json {
        print_json(&job);
    } else {
        println!("job {}: {}", job["id"], cell(&job["state"]));
    }
    Ok(EXIT_OK)
}

/// `wasmjob dead-letter [--purge]`.
pub fn dead_letter(args: DeadLetterArgs) -> u8 {
    exit_code(dead_letter_body(args))
}

fn dead_letter_body(args: DeadLetterArgs) -> Result<u8, u8> {
    if !args.purge {
        return print_jobs(&args.remote, "/v1/dead-letter");
    }
    let client = args.remote.connect()?;
    let answer = client.delete("/v1/dead-letter").or_exit()?;
    if args.remote.json {
        print_json(&answer);
    } else {
        println!("purged {} job(s)", answer["purged"]);
    }
    Ok(EXIT_OK)
}

/// `wasmjob logs ID`: each attempt's log records and stderr tail.
pub fn logs(args: JobArgs) -> u8 {
    exit_code(logs_body(args))
}

fn logs_body(args: JobArgs) -> Result<u8, u8> {
    let client = args.remote.connect()?;
    let job = client.get(&format!("/v1/jobs/{}", args.id)).or_exit()?;
    let attempts = job["attempts"].as_array().cloned().unwrap_or_default();
    if args.remote.json {
        let logs: Vec<Value> = attempts
            .iter()
            .map(|a| {
                json!({
                    "attempt": a["attempt"],
                    "logs": a["report"]["logs"],
                    "logs_dropped": a["report"]["logs_dropped"],
                    "stderr": a["report"]["stderr"]["tail"],
                })
            })
            .collect();
        print_json(&json!(logs));
        return Ok(EXIT_OK);
    }
    if attempts.is_empty() {
        println!("job {} has not run yet", args.id);
    }
    for attempt in &attempts {
        let report = &attempt["report"];
        println!(
            "== attempt {} ({})",
            attempt["attempt"],
            cell(&report["status"])
        );
        for record in report["logs"].as_array().into_iter().flatten() {
            println!(
                "[+{:>8.3} ms] {:<5} {}",
                record["at_us"].as_u64().unwrap_or(0) as f64 / 1000.0,
                cell(&record["level"]),
                cell(&record["message"])
            );
        }
        if report["logs_dropped"].as_u64().unwrap_or(0) > 0 {
            println!("({} log records dropped)", report["logs_dropped"]);
        }
        if let Some(stderr) = report["stderr"]["tail"].as_str()
            && !stderr.is_empty()
        {
            println!("-- stderr --\n{}", terminal::block(stderr.trim_end()));
        }
    }
    Ok(EXIT_OK)
}
