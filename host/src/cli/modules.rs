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
    /// A grant of the host's config to give it (repeatable): what its jobs
    /// may reach beyond the sandbox.
    #[arg(long = "grant", value_name = "NAME")]
    pub grants: Vec<String>,
    #[command(flatten)]
    pub remote: Remote,
}

/// Arguments of `wasmjob grant`.
#[derive(Debug, Args)]
pub struct GrantArgs {
    /// The module: hash or name.
    pub module: String,
    /// The grants it has from now on (none: it has none).
    pub grants: Vec<String>,
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
    let mut query = Vec::new();
    if let Some(name) = &args.name {
        query.push(format!("name={name}"));
    }
    if !args.grants.is_empty() {
        query.push(format!("grants={}", args.grants.join(",")));
    }
    let path = if query.is_empty() {
        "/v1/modules".to_owned()
    } else {
        format!("/v1/modules?{}", query.join("&"))
    };
    let module = client.post_bytes(&path, &bytes).or_exit()?;
    if args.remote.json {
        print_json(&module);
    } else {
        println!("{}", cell(&module["hash"]));
    }
    Ok(EXIT_OK)
}

/// `wasmjob grant MODULE [GRANT...]`.
pub fn grant(args: GrantArgs) -> u8 {
    exit_code(grant_body(args))
}

fn grant_body(args: GrantArgs) -> Result<u8, u8> {
    let client = args.remote.connect()?;
    let body = serde_json::json!({ "grants": args.grants });
    let module = client
        .put_json(&format!("/v1/modules/{}/grants", args.module), &body)
        .or_exit()?;
    if args.remote.json {
        print_json(&module);
    } else {
        println!("{}", grant_cell(&module));
    }
    Ok(EXIT_OK)
}

/// `wasmjob grants`: the host's grants.
pub fn grants(args: HostArgs) -> u8 {
    exit_code(grants_body(args))
}

fn grants_body(args: HostArgs) -> Result<u8, u8> {
    let client = args.remote.connect()?;
    let answer = client.get("/v1/grants").or_exit()?;
    if args.remote.json {
        print_json(&answer);
        return Ok(EXIT_OK);
    }
    let list = |value: &serde_json::Value| -> String {
        let items: Vec<String> = value.as_array().into_iter().flatten().map(cell).collect();
        if items.is_empty() {
            "-".to_owned()
        } else {
            items.join(" ")
        }
    };
    let rows: Vec<Vec<String>> = answer["grants"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| {
            let mut http = list(&g["http"]);
            let internal = list(&g["http_internal"]);
            if internal != "-" {
                http = format!("{http} (internal: {internal})");
            }
            vec![
                cell(&g["name"]),
                http,
                list(&g["secrets"]),
                list(&g["config"]),
            ]
        })
        .collect();
    print_table(&["grant", "http", "secrets", "config"], &rows);
    Ok(EXIT_OK)
}

/// A module's grants as one line: `hello (0123456789ab): payments, email`.
fn grant_cell(module: &serde_json::Value) -> String {
    let grants: Vec<String> = module["grants"]
        .as_array()
        .into_iter()
        .flatten()
        .map(cell)
        .collect();
    let hash: String = cell(&module["hash"]).chars().take(12).collect();
    let who = match module["name"].as_str() {
        Some(name) => format!("{name} ({hash})"),
        None => hash,
    };
    if grants.is_empty() {
        format!("{who}: no grants")
    } else {
        format!("{who}: {}", grants.join(", "))
    }
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
                m["grants"]
                    .as_array()
                    .filter(|g| !g.is_empty())
                    .map_or("-".to_owned(), |g| {
                        g.iter().map(cell).collect::<Vec<_>>().join(",")
                    }),
            ]
        })
        .collect();
    print_table(&["hash", "kind", "size", "name", "grants"], &rows);
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
        "{} busy of {} slots (min {}, max {}), {} stuck, {} claimed ahead ({})",
        answer["busy"],
        answer["concurrency"],
        answer["min_workers"],
        answer["max_workers"],
        answer["stuck"],
        answer["buffered"],
        cell(&answer["owner"])
    );
    let slots: Vec<Vec<String>> = answer["slots"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            vec![
                cell(&s["id"]),
                cell(&s["state"]),
                cell(&s["job"]["id"]),
                cell(&s["job"]["module"]),
                cell(&s["jobs_done"]),
                cell(&s["failures"]),
            ]
        })
        .collect();
    print_table(
        &["slot", "state", "job", "module", "done", "failed"],
        &slots,
    );
    for resize in answer["resizes"].as_array().into_iter().flatten() {
        println!(
            "resized {} -> {} ({})",
            resize["from"],
            resize["to"],
            cell(&resize["reason"])
        );
    }
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
