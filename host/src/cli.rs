//! The `wasmjob` command line: argument parsing and one module per
//! subcommand. Each subcommand returns an exit code; usage and load errors
//! are one line on stderr with exit code 2.

mod exec;
mod serve;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit code for a job that completed, or a command that succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit code for a job that failed.
pub const EXIT_JOB_FAILED: u8 = 1;
/// Exit code for a usage error or a module that cannot be loaded.
pub const EXIT_USAGE: u8 = 2;

/// wasmjob: a background job host where every job is a sandboxed
/// WebAssembly module.
#[derive(Debug, Parser)]
#[command(name = "wasmjob", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
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
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let code = match cli.command {
        Command::Exec(args) => exec::run(args),
        Command::Serve(args) => serve::run(args),
    };
    ExitCode::from(code)
}

/// Prints a one-line error and returns the usage exit code.
fn usage_error(message: impl std::fmt::Display) -> u8 {
    eprintln!("error: {message}");
    EXIT_USAGE
}
