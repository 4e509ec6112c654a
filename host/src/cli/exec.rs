//! `wasmjob exec`: one local invocation, report as JSON on stdout.

use super::{EXIT_JOB_FAILED, EXIT_OK, usage_error};
use crate::api::views::ReportView;
use crate::engine::{Engine, EngineConfig, Invocation};
use crate::limits::Limits;
use crate::report::{ModuleKind, Report};
use crate::units::{parse_bytes, parse_duration};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `wasmjob exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The module to run: a component built with the wasmjob SDK, or a WASI
    /// command module.
    pub file: PathBuf,
    /// The job's input: JSON text, or @FILE to read it from a file. Default:
    /// `null` for components, empty stdin for command modules.
    #[arg(long, value_name = "JSON|@FILE")]
    pub input: Option<String>,
    /// Fuel budget (about one unit per wasm instruction).
    #[arg(long, value_name = "N")]
    pub fuel: Option<u64>,
    /// Memory limit, summed over all linear memories (e.g. 64MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_bytes)]
    pub memory: Option<u64>,
    /// Wall-clock timeout (e.g. 500ms, 5s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Largest output accepted (e.g. 1MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_bytes)]
    pub max_output: Option<u64>,
    /// Run without fuel metering (the fuel limit is then not enforced).
    #[arg(long)]
    pub no_fuel: bool,
    /// Print the report on one line instead of pretty-printed.
    #[arg(long)]
    pub compact: bool,
}

/// Runs `wasmjob exec`.
pub fn run(args: ExecArgs) -> u8 {
    let limits = limits(&args);
    let bytes = match std::fs::read(&args.file) {
        Ok(bytes) => bytes,
        Err(e) => return usage_error(format!("cannot read {}: {e}", args.file.display())),
    };
    let input = match &args.input {
        None => None,
        Some(text) => match text.strip_prefix('@') {
            Some(path) => match std::fs::read(path) {
                Ok(bytes) => Some(bytes),
                Err(e) => return usage_error(format!("cannot read input file {path}: {e}")),
            },
            None => Some(text.clone().into_bytes()),
        },
    };
    let report = match run_local(&bytes, input, limits, !args.no_fuel) {
        Ok(report) => report,
        Err(e) => return usage_error(format!("{}: {e}", args.file.display())),
    };
    let succeeded = report.is_success();
    let view = ReportView::from(report);
    let json = if args.compact {
        serde_json::to_string(&view)
    } else {
        serde_json::to_string_pretty(&view)
    };
    println!("{}", json.expect("a report always serializes"));
    if succeeded { EXIT_OK } else { EXIT_JOB_FAILED }
}

/// Runs `bytes` once in a fresh local sandbox with `limits`, as the host
/// would: the input defaults to `null` for a component, empty stdin for a
/// command module.
pub(super) fn run_local(
    bytes: &[u8],
    input: Option<Vec<u8>>,
    limits: Limits,
    fuel_metering: bool,
) -> Result<Report, String> {
    let config = EngineConfig {
        concurrency: 1,
        max_memory_bytes: limits.memory_bytes,
        fuel_metering,
        ..EngineConfig::default()
    };
    let engine = Engine::new(config).map_err(|e| e.to_string())?;
    let module = engine.load(bytes).map_err(|e| e.to_string())?;
    let input = input.unwrap_or_else(|| match module.kind() {
        ModuleKind::Component => b"null".to_vec(),
        ModuleKind::Command => Vec::new(),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let invocation = Invocation::new(input).with_limits(limits);
    runtime
        .block_on(engine.execute(&module, invocation))
        .map_err(|e| e.to_string())
}

fn limits(args: &ExecArgs) -> Limits {
    let defaults = Limits::default();
    Limits {
        fuel: args.fuel.unwrap_or(defaults.fuel),
        memory_bytes: args.memory.unwrap_or(defaults.memory_bytes),
        timeout_ms: args
            .timeout
            .map_or(defaults.timeout_ms, |t| t.as_millis() as u64),
        output_bytes: args.max_output.unwrap_or(defaults.output_bytes),
        ..defaults
    }
}
