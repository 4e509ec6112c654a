//! Client commands about modules and the host: upload, modules, workers,
//! stats.

use super::remote::{Remote, cell, fail, print_json, print_table};
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
    let client = match args.remote.client() {
        Ok(client) => client,
        Err(message) => return usage_error(message),
    };
    let bytes = match std::fs::read(&args.file) {
        Ok(bytes) => bytes,
        Err(e) => return usage_error(format!("cannot read {}: {e}", args.file.display())),
    };
    let path = match &args.name {
        Some(name) => format!("/v1/modules?name={name}"),
        None => "/v1/modules".to_owned(),
    };
    match client.post_bytes(&path, &bytes) {
        Ok(module) if args.remote.json => {
            print_json(&module);
            EXIT_OK
        }
        Ok(module) => {
            println!("{}", cell(&module["hash"]));
            EXIT_OK
        }
        Err(error) => fail(error),
    }
}

/// `wasmjob modules`.
pub fn modules(args: HostArgs) -> u8 {
    let client = match args.remote.client() {
        Ok(client) => client,
        Err(message) => return usage_error(message),
    };
    let answer = match client.get("/v1/modules") {
        Ok(answer) => answer,
        Err(error) => return fail(error),
    };
    if args.remote.json {
        print_json(&answer);
        return EXIT_OK;
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
    EXIT_OK
}

/// `wasmjob workers`.
pub fn workers(args: HostArgs) -> u8 {
    let client = match args.remote.client() {
        Ok(client) => client,
        Err(message) => return usage_error(message),
    };
    let answer = match client.get("/v1/workers") {
        Ok(answer) => answer,
        Err(error) => return fail(error),
    };
    if args.remote.json {
        print_json(&answer);
        return EXIT_OK;
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
    EXIT_OK
}

/// `wasmjob stats`.
pub fn stats(args: HostArgs) -> u8 {
    let client = match args.remote.client() {
        Ok(client) => client,
        Err(message) => return usage_error(message),
    };
    let answer = match client.get("/v1/stats") {
        Ok(answer) => answer,
        Err(error) => return fail(error),
    };
    if args.remote.json {
        print_json(&answer);
        return EXIT_OK;
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
    EXIT_OK
}
