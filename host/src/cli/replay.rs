//! `wasmjob replay`: a job's attempt run again on this machine, exactly as
//! the host ran it: the same module bytes, input and limits (fuel, memory,
//! timeout, output, logs), so a trap or running out of fuel reproduces
//! deterministically with fuel metering.

use super::exec::run_local;
use super::remote::{OrExit, Remote, exit_code};
use super::{EXIT_JOB_FAILED, EXIT_OK, usage_error};
use crate::api::views::ReportView;
use crate::limits::Limits;
use clap::Args;
use serde_json::Value;

/// Arguments of `wasmjob replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The job's id.
    pub id: i64,
    /// Which attempt, from 1 [default: the last].
    #[arg(long, value_name = "N")]
    pub attempt: Option<usize>,
    #[command(flatten)]
    pub remote: Remote,
}

/// `wasmjob replay ID [--attempt N]`.
pub fn replay(args: ReplayArgs) -> u8 {
    exit_code(replay_body(args))
}

fn replay_body(args: ReplayArgs) -> Result<u8, u8> {
    let client = args.remote.connect()?;
    let job = client.get(&format!("/v1/jobs/{}", args.id)).or_exit()?;
    let attempts = job["attempts"].as_array().cloned().unwrap_or_default();
    let number = args.attempt.unwrap_or(attempts.len());
    let attempt = number
        .checked_sub(1)
        .and_then(|i| attempts.get(i))
        .ok_or_else(|| {
            usage_error(format!(
                "job {} has {} attempt(s): no attempt {number} to replay",
                args.id,
                attempts.len()
            ))
        })?;
    let report = &attempt["report"];
    // What the attempt ran with; a host-made report (the module did not
    // load, the host died) has none: the job's limits then.
    let limits = limits(&report["limits"]).or_else(|| limits(&job["limits"]));
    let Some(limits) = limits else {
        return Err(usage_error("the job shows no limits to replay with"));
    };
    let module = job["module"].as_str().unwrap_or_default();
    let bytes = client
        .get_bytes(&format!("/v1/modules/{module}/wasm"))
        .or_exit()?;
    let input = serde_json::to_vec(&job["input"]).unwrap_or_else(|_| b"null".to_vec());
    // The host metered fuel unless its report shows none consumed.
    let fuel = !report["fuel"].is_object() || !report["fuel"]["consumed"].is_null();
    let local = run_local(&bytes, Some(input), limits, fuel).map_err(usage_error)?;
    let succeeded = local.is_success();
    let view = serde_json::to_value(ReportView::from(local)).expect("a report serializes");
    eprintln!(
        "replayed attempt {number} of job {}: {} here, {} on the host",
        args.id,
        outcome(&view),
        outcome(report),
    );
    if !job["depends_on"].as_array().is_none_or(Vec::is_empty) {
        eprintln!(
            "note: the job's prerequisites' outputs are not replayed (its dependencies are empty here)"
        );
    }
    let text = if args.remote.json {
        serde_json::to_string(&view)
    } else {
        serde_json::to_string_pretty(&view)
    };
    println!("{}", text.expect("JSON"));
    Ok(if succeeded { EXIT_OK } else { EXIT_JOB_FAILED })
}

/// `out_of_fuel after 1000000 fuel` / `success after 5123 fuel`.
fn outcome(report: &Value) -> String {
    let kind = report["failure"]["kind"]
        .as_str()
        .or(report["status"].as_str())
        .unwrap_or("no report");
    match report["fuel"]["consumed"].as_u64() {
        Some(fuel) => format!("{kind} after {fuel} fuel"),
        None => kind.to_owned(),
    }
}

/// Limits as the API shows them.
fn limits(value: &Value) -> Option<Limits> {
    let get = |key: &str| value[key].as_u64();
    Some(Limits {
        fuel: get("fuel")?,
        memory_bytes: get("memory_bytes")?,
        timeout_ms: get("timeout_ms")?,
        output_bytes: get("output_bytes")?,
        log_records: u32::try_from(get("log_records")?).ok()?,
        log_bytes: get("log_bytes")?,
        stdio_tail_bytes: get("stdio_tail_bytes")?,
    })
}
