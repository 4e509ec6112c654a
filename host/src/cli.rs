//! The `wasmjob` command line: argument parsing and one module per
//! subcommand. Each subcommand returns an exit code; usage and load errors
//! are one line on stderr with exit code 2.

mod exec;
mod history;
mod jobs;
mod modules;
mod queues;
mod remote;
mod replay;
mod scaffold;
mod schedules;
mod serve;
mod terminal;
mod workflows;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit code for a job that completed, or a command that succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit code for a job that failed.
pub const EXIT_JOB_FAILED: u8 = 1;
/// Exit code for a usage error, a module that cannot be loaded, or a
/// request the host refused (4xx).
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the host failed (5xx).
pub const EXIT_SERVER: u8 = 3;
/// Exit code when the host cannot be reached.
pub const EXIT_UNREACHABLE: u8 = 4;

/// wasmjob: a background job host where every job is a sandboxed
/// WebAssembly module.
#[derive(Debug, Parser)]
#[command(name = "wasmjob", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log lines on stderr: `human` (text) or `json` (one object per line,
    /// with the fields and spans: job_id, queue, module, attempt). The
    /// level is `RUST_LOG` (default `warn`; `wasmjob=info` shows each job's
    /// life).
    #[arg(long, global = true, env = "WASMJOB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Export spans (a job's submission and each attempt, joined to the
    /// trace of the request's `traceparent`) to this OTLP/HTTP collector,
    /// e.g. `http://127.0.0.1:4318`. The standard `OTEL_EXPORTER_OTLP_*`
    /// variables are honoured too. Needs a build with the `otel` feature.
    #[arg(long, global = true, env = "WASMJOB_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}

pub use crate::telemetry::LogFormat;

/// Installs the process's logging (and span export, when `cli` asks for
/// it); the guard keeps the export running. An error is the one line to
/// print before exiting with [`EXIT_USAGE`].
pub fn init_logging(cli: &Cli) -> Result<crate::telemetry::Guard, String> {
    let export = crate::telemetry::Export::from_environment(cli.otlp_endpoint.clone());
    crate::telemetry::init(cli.log_format, &export)
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one invocation of a module locally (no server, no database) and
    /// print its report as JSON.
    ///
    /// Exit code 0 when the job succeeded, 1 when it failed, 2 for a usage
    /// or load error.
    ///
    /// Example: wasmjob exec hello.wasm --input '{"name":"Ada"}' --fuel 1000000 --memory 64MiB --timeout 5s
    Exec(exec::ExecArgs),
    /// Run the job host: HTTP API, durable queue in SQLite, worker pool.
    ///
    /// Stops on SIGINT or SIGTERM: claiming stops, running jobs get the
    /// grace period, the rest are interrupted and requeued without spending
    /// an attempt.
    ///
    /// Example: wasmjob serve --data-dir ./wasmjob-data --listen 127.0.0.1:7878 --concurrency 8
    Serve(serve::ServeArgs),
    /// Upload a module to the host; prints its hash.
    ///
    /// Example: wasmjob upload target/wasm32-wasip2/release/resize.wasm --name resize
    Upload(modules::UploadArgs),
    /// Give a module grants of the host's config (replacing what it had):
    /// what its jobs may reach beyond the sandbox. No grant: none.
    ///
    /// Example: wasmjob grant charge payments
    Grant(modules::GrantArgs),
    /// List the host's grants: HTTP origins, secrets (by name), config.
    ///
    /// Example: wasmjob grants
    Grants(modules::HostArgs),
    /// Submit a job; prints its id, or with --wait follows it to the end.
    ///
    /// Exit code with --wait: 0 if the job completed, 1 if it failed or was
    /// cancelled. Without: 0 once the host accepted it (durably).
    ///
    /// Example: wasmjob submit resize --input '{"width": 64}' --priority 2 --retry exponential:1s --wait
    Submit(jobs::SubmitArgs),
    /// Show a job: state, attempts with their figures, output.
    ///
    /// Example: wasmjob status 42
    Status(jobs::JobArgs),
    /// List jobs, newest first, with filters.
    ///
    /// Example: wasmjob list --state failed --module resize --limit 20
    List(jobs::ListArgs),
    /// Cancel a pending, retrying or running job.
    ///
    /// Example: wasmjob cancel 42
    Cancel(jobs::JobArgs),
    /// Re-queue a job from the dead letter with a fresh attempt budget.
    ///
    /// Example: wasmjob retry 42
    Retry(jobs::JobArgs),
    /// List the dead-letter queue (failed jobs), or purge it.
    ///
    /// Example: wasmjob dead-letter --json
    DeadLetter(jobs::DeadLetterArgs),
    /// Run a job's attempt again on this machine, exactly as the host ran
    /// it (module, input, fuel, memory, timeout): a trap or running out of
    /// fuel reproduces. Prints the report; exit 1 if it failed.
    ///
    /// Example: wasmjob replay 42 --attempt 2
    Replay(replay::ReplayArgs),
    /// Print a job's log records and stderr, attempt by attempt.
    ///
    /// Example: wasmjob logs 42
    Logs(jobs::JobArgs),
    /// List the modules the host has.
    ///
    /// Example: wasmjob modules
    Modules(modules::HostArgs),
    /// Show the worker pool and the jobs it is running.
    ///
    /// Example: wasmjob workers
    Workers(modules::HostArgs),
    /// Create a new job crate that uses the guest SDK, with a test.
    ///
    /// Example: wasmjob new resize --path ./jobs
    New(scaffold::NewArgs),
    /// Build a job crate for wasm32-wasip2 and print the .wasm path.
    ///
    /// Example: wasmjob build --path ./jobs/resize
    Build(scaffold::BuildArgs),
    /// Count jobs by state.
    ///
    /// Example: wasmjob stats --json
    Stats(modules::HostArgs),
    /// List the queues: paused or not, cap, waiting and running jobs, how
    /// long the oldest due job has waited.
    ///
    /// Example: wasmjob queues --json
    Queues(modules::HostArgs),
    /// Show, pause or resume one queue.
    ///
    /// Example: wasmjob queue pause emails
    Queue(queues::QueueArgs),
    /// Per-minute history: jobs completed, failed, retried and
    /// dead-lettered, and wait and run percentiles, by queue.
    ///
    /// Example: wasmjob history --queue emails --last 15m
    History(history::HistoryArgs),
    /// Submit, list, show (as a tree) or cancel workflows.
    ///
    /// Example: wasmjob workflow show 3
    Workflow(workflows::WorkflowArgs),
    /// List the cron schedules with their next fire time.
    ///
    /// Example: wasmjob schedules
    Schedules(modules::HostArgs),
    /// Add, list, show, pause, resume or remove cron schedules.
    ///
    /// Example: wasmjob schedule add nightly hello --cron '30 2 * * *' --timezone Europe/Paris
    Schedule(schedules::ScheduleArgs),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let code = match cli.command {
        Command::Exec(args) => exec::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Upload(args) => modules::upload(args),
        Command::Grant(args) => modules::grant(args),
        Command::Grants(args) => modules::grants(args),
        Command::Submit(args) => jobs::submit(args),
        Command::Status(args) => jobs::status(args),
        Command::List(args) => jobs::list(args),
        Command::Cancel(args) => jobs::cancel(args),
        Command::Retry(args) => jobs::retry(args),
        Command::DeadLetter(args) => jobs::dead_letter(args),
        Command::Logs(args) => jobs::logs(args),
        Command::Replay(args) => replay::replay(args),
        Command::Modules(args) => modules::modules(args),
        Command::Workers(args) => modules::workers(args),
        Command::Stats(args) => modules::stats(args),
        Command::Queues(args) => queues::list(args.remote),
        Command::Queue(args) => queues::queue(args),
        Command::History(args) => history::history(args),
        Command::Workflow(args) => workflows::workflow(args),
        Command::Schedules(args) => schedules::list(args.remote),
        Command::Schedule(args) => schedules::schedule(args),
        Command::New(args) => scaffold::new(args),
        Command::Build(args) => scaffold::build(args),
    };
    ExitCode::from(code)
}

/// Prints a one-line error and returns the usage exit code.
fn usage_error(message: impl std::fmt::Display) -> u8 {
    eprintln!("error: {}", terminal::line(&message.to_string()));
    EXIT_USAGE
}
