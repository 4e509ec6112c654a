//! Client commands about modules and the host: upload, modules, workers,
//! stats.

use super::remote::{OrExit, Remote, cell, exit_code, print_json, print_table};
use super::{EXIT_OK, usage_error};
use clap::Args;
use std::path::PathBuf;

/// Arguments of `wasmjob upload`.
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The .wasm file: a component built with the SDK, or a WASI command module.
    pub file: PathBuf,
    /// A name to submit it by (the newest module with a name wins).
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub remote: Remote,
}

/// Arguments of commands that only need the host.
#[derive(Debug, Args)]
pub struct HostArgs {
    #[command(flatten)]
    pub remote: Remote,
}

/// `wasmjob upload FILE [--name NAME]`.
pub fn upload(args: UploadArgs) -> u8 {
    exit_code(upload_body(args))
}

fn upload_body(args: UploadArgs) -> Result<u8, u8> {
    let client = args.remote.connect()?;
    let bytes = std::fs::read(&args.file)
        .map_err(|e| usage_error(format!("cannot read {}: {e}", args.file.display())))?;
    let path = match &args.name {
        Some(name) => format!("/v1/modules?name={name}"),
        None => "/v1/modules".to_owned(),
    };
    let module = client.post_bytes(&path, &bytes).or_exit()?;
    if args.remote.json {
        print_json(&module);
    } else {
        println!("{}", cell(&module["hash"]));
    }
    Ok(EXIT_OK)
}

/// `wasmjob modules`.
pub fn modules(args: HostArgs) -> u8 {
    exit_code(modules_body(args))
}

fn modules_body(args: HostArgs) -> Result<u8, u8> {
    let client = args.remote.connect()?;
    let answer = client.get("/v1/modules").or_exit()?;
    if args.remote.json {
        print_json(&answer);
        return Ok(EXIT_OK);
    }
    let rows: Vec<Vec<String>> = answer["modules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            vec![
                cell(&m["hash"]).chars().take(16).collect(),
                cell(&m["kind"]),
                cell(&m["size"]),
                cell(&m["name"]),
            ]
        })
        .collect();
    print_table(&["hash", "kind", "size", "name"], &rows);
    Ok(EXIT_OK)
}

/// `wasmjob workers`.
pub fn workers(args: HostArgs) -> u8 {
    exit_code(workers_body(args))
}

fn workers_body(args: HostArgs) -> Result<u8, u8> {
    let client = args.remote.connect()?;
    let answer = client.get("/v1/workers").or_exit()?;
    if args.remote.json {
        print_json(&answer);
        return Ok(EXIT_OK);
    }
    println!(
        "{} busy of {} ({})",
        answer["busy"],
        answer["concurrency"],
        cell(&answer["owner"])
    );
    let rows: Vec<Vec<String>> = answer["running"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                cell(&r["job_id"]),
                cell(&r["progress"]["percent"]),
                cell(&r["progress"]["note"]),
            ]
        })
        .collect();
    if !rows.is_empty() {
        print_table(&["job", "progress %", "note"], &rows);
    }
    Ok(EXIT_OK)
}

/// `wasmjob stats`.
pub fn stats(args: HostArgs) -> u8 {
    exit_code(stats_body(args))
}

fn stats_body(args: HostArgs) -> Result<u8, u8> {
    let client = args.remote.connect()?;
    let answer = client.get("/v1/stats").or_exit()?;
    if args.remote.json {
        print_json(&answer);
        return Ok(EXIT_OK);
    }
    let rows: Vec<Vec<String>> = answer["jobs"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(state, n)| vec![state.clone(), cell(n)])
        .collect();
    print_table(&["state", "jobs"], &rows);
    println!(
        "workers: {} busy of {}",
        answer["workers"]["busy"], answer["workers"]["concurrency"]
    );
    Ok(EXIT_OK)
}
