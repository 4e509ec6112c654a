//! Client commands about workflows: submit one from a JSON file, list
//! them, show one as a tree, cancel one.

use super::remote::{OrExit, Remote, cell, exit_code, print_json, print_table};
use super::{EXIT_OK, terminal, usage_error};
use clap::{Args, Subcommand};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;

/// Arguments of `wasmjob workflow`.
#[derive(Debug, Args)]
pub struct WorkflowArgs {
    #[command(subcommand)]
    pub action: WorkflowAction,
}

/// What `wasmjob workflow` does.
#[derive(Debug, Subcommand)]
pub enum WorkflowAction {
    /// Submit a workflow: a JSON file (or - for stdin) shaped like the body
    /// of POST /v1/workflows; prints its id.
    ///
    /// Example: wasmjob workflow submit order.json
    Submit(SubmitWorkflowArgs),
    /// List workflows, newest first, with their jobs counted by state.
    ///
    /// Example: wasmjob workflow list
    List(ListWorkflowsArgs),
    /// Show a workflow as a tree: each job under the jobs it waits for,
    /// with its state and, when it failed or was cancelled, why.
    ///
    /// Example: wasmjob workflow show 3
    Show(WorkflowId),
    /// Cancel every job of a workflow that is not final.
    ///
    /// Example: wasmjob workflow cancel 3
    Cancel(WorkflowId),
}

/// Arguments of `wasmjob workflow submit`.
#[derive(Debug, Args)]
pub struct SubmitWorkflowArgs {
    /// The workflow: a JSON file, or - to read stdin.
    pub file: String,
    #[command(flatten)]
    pub remote: Remote,
}

/// Arguments of `wasmjob workflow list`.
#[derive(Debug, Args)]
pub struct ListWorkflowsArgs {
    /// At most this many [default: 100].
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Only workflows older than this id (the previous page's cursor).
    #[arg(long, value_name = "ID")]
    pub before: Option<i64>,
    #[command(flatten)]
    pub remote: Remote,
}

/// A workflow by id.
#[derive(Debug, Args)]
pub struct WorkflowId {
    /// The workflow's id.
    pub id: i64,
    #[command(flatten)]
    pub remote: Remote,
}

/// `wasmjob workflow ...`.
pub fn workflow(args: WorkflowArgs) -> u8 {
    exit_code(match args.action {
        WorkflowAction::Submit(args) => submit(args),
        WorkflowAction::List(args) => list(args),
        WorkflowAction::Show(args) => show(args, false),
        WorkflowAction::Cancel(args) => show(args, true),
    })
}

fn submit(args: SubmitWorkflowArgs) -> Result<u8, u8> {
    let text = if args.file == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| usage_error(format!("cannot read stdin: {e}")))?
    } else {
        std::fs::read_to_string(&args.file)
            .map_err(|e| usage_error(format!("cannot read {}: {e}", args.file)))?
    };
    let body: Value = serde_json::from_str(&text)
        .map_err(|e| usage_error(format!("{} is not valid JSON: {e}", args.file)))?;
    let client = args.remote.connect()?;
    let workflow = client.post_json("/v1/workflows", &body).or_exit()?;
    if args.remote.json {
        print_json(&workflow);
    } else {
        println!("{}", workflow["id"]);
    }
    Ok(EXIT_OK)
}

fn list(args: ListWorkflowsArgs) -> Result<u8, u8> {
    let client = args.remote.connect()?;
    let mut path = format!("/v1/workflows?limit={}", args.limit);
    if let Some(before) = args.before {
        let _ = write!(path, "&before={before}");
    }
    let page = client.get(&path).or_exit()?;
    if args.remote.json {
        print_json(&page);
        return Ok(EXIT_OK);
    }
    let rows: Vec<Vec<String>> = page["workflows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| {
            vec![
                cell(&w["id"]),
                cell(&w["name"]),
                cell(&w["state"]),
                counts(&w["jobs"]),
            ]
        })
        .collect();
    print_table(&["id", "name", "state", "jobs"], &rows);
    Ok(EXIT_OK)
}

fn show(args: WorkflowId, cancel: bool) -> Result<u8, u8> {
    let client = args.remote.connect()?;
    let path = format!("/v1/workflows/{}", args.id);
    let workflow = if cancel {
        client.post_json(&format!("{path}/cancel"), &Value::Null)
    } else {
        client.get(&path)
    }
    .or_exit()?;
    if args.remote.json {
        print_json(&workflow);
    } else {
        print!("{}", tree(&workflow));
    }
    Ok(EXIT_OK)
}

/// `2 completed, 1 blocked`: the non-zero counts of a `jobs` object.
fn counts(jobs: &Value) -> String {
    let parts: Vec<String> = jobs
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
    parts.join(", ")
}

/// A workflow (the API's JSON) drawn as a tree: its jobs without
/// prerequisites at the top, each job under the jobs it waits for, and a
/// follow-up (`↳`) that waits for none under the job that submitted it. A
/// job that waits for several is drawn in full under the first and named
/// again under the others.
pub(super) fn tree(workflow: &Value) -> String {
    let nodes: Vec<&Value> = workflow["nodes"].as_array().into_iter().flatten().collect();
    let id = |node: &Value| node["id"].as_i64().unwrap_or_default();
    // The jobs waiting for each job, in id order.
    let mut dependents: BTreeMap<i64, Vec<&Value>> = BTreeMap::new();
    let mut roots = Vec::new();
    let ids: HashSet<i64> = nodes.iter().map(|n| id(n)).collect();
    for node in &nodes {
        let prereqs: Vec<i64> = node["depends_on"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|edge| edge["job"].as_i64())
            .filter(|job| ids.contains(job))
            .collect();
        // A follow-up waiting for nothing is drawn under the job that
        // submitted it.
        let parent = node["parent"]
            .as_i64()
            .filter(|parent| ids.contains(parent));
        match (prereqs.is_empty(), parent) {
            (true, Some(parent)) => dependents.entry(parent).or_default().push(node),
            (true, None) => roots.push(*node),
            (false, _) => {}
        }
        for prereq in prereqs {
            dependents.entry(prereq).or_default().push(node);
        }
    }
    let mut out = format!(
        "workflow {} {}: {} ({})\n",
        workflow["id"],
        terminal::line(workflow["name"].as_str().unwrap_or("(unnamed)")),
        workflow["state"].as_str().unwrap_or("?"),
        counts(&workflow["jobs"]),
    );
    let mut drawn = HashSet::new();
    let count = roots.len();
    for (i, root) in roots.into_iter().enumerate() {
        draw(&mut out, root, "", i + 1 == count, &dependents, &mut drawn);
    }
    out
}

fn draw(
    out: &mut String,
    node: &Value,
    prefix: &str,
    last: bool,
    dependents: &BTreeMap<i64, Vec<&Value>>,
    drawn: &mut HashSet<i64>,
) {
    let id = node["id"].as_i64().unwrap_or_default();
    let branch = if last { "└─ " } else { "├─ " };
    // Not a node of the graph submitted (a job that submitted follow-ups):
    // by its module's name.
    let name = terminal::line(
        node["node"]
            .as_str()
            .or(node["module_name"].as_str())
            .unwrap_or("job"),
    );
    // A job another job's attempt submitted is marked as such.
    let name = if node["parent"].is_i64() {
        format!("↳ {name}")
    } else {
        name.into_owned()
    };
    if !drawn.insert(id) {
        let _ = writeln!(out, "{prefix}{branch}{name} #{id} (see above)");
        return;
    }
    let _ = write!(
        out,
        "{prefix}{branch}{name} #{id}  {}",
        cell(&node["state"])
    );
    if let Some(error) = node["last_error"].as_str() {
        let _ = write!(out, "  {}", terminal::line(error));
    }
    out.push('\n');
    let below = dependents.get(&id).map(Vec::as_slice).unwrap_or_default();
    let prefix = format!("{prefix}{}", if last { "   " } else { "│  " });
    for (i, child) in below.iter().enumerate() {
        draw(out, child, &prefix, i + 1 == below.len(), dependents, drawn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_workflow_is_drawn_under_its_prerequisites() {
        let edge = |job: i64| json!({"job": job, "name": "x", "on_failure": "cancel"});
        let workflow = json!({
            "id": 3, "name": "order-42", "state": "failed",
            "jobs": {"blocked": 0, "completed": 1, "failed": 1, "cancelled": 2},
            "nodes": [
                {"id": 11, "node": "payment", "state": "completed", "last_error": null,
                 "depends_on": []},
                {"id": 12, "node": "inventory", "state": "failed",
                 "last_error": "out of stock: mug", "depends_on": []},
                {"id": 13, "node": "shipping", "state": "cancelled",
                 "last_error": "prerequisite `inventory` (job 12) failed",
                 "depends_on": [edge(11), edge(12)]},
                {"id": 14, "node": "email", "state": "cancelled", "last_error": null,
                 "depends_on": [edge(13)]},
            ]
        });
        let expected = [
            "workflow 3 order-42: failed (1 completed, 1 failed, 2 cancelled)",
            "├─ payment #11  completed",
            "│  └─ shipping #13  cancelled  prerequisite `inventory` (job 12) failed",
            "│     └─ email #14  cancelled",
            "└─ inventory #12  failed  out of stock: mug",
            "   └─ shipping #13 (see above)",
        ];
        assert_eq!(tree(&workflow), expected.join("\n") + "\n");
    }

    #[test]
    fn follow_ups_are_drawn_under_the_job_that_submitted_them() {
        let edge = |job: i64| json!({"job": job, "name": "x", "on_failure": "cancel"});
        let workflow = json!({
            "id": 1, "name": null, "state": "running",
            "jobs": {"completed": 1, "pending": 1, "blocked": 1},
            "nodes": [
                {"id": 1, "node": null, "module_name": "split", "state": "completed",
                 "last_error": null, "depends_on": [], "parent": null},
                {"id": 2, "node": "chunk-0", "state": "pending", "last_error": null,
                 "depends_on": [], "parent": 1},
                {"id": 3, "node": "total", "state": "blocked", "last_error": null,
                 "depends_on": [edge(2)], "parent": 1},
            ]
        });
        let expected = [
            "workflow 1 (unnamed): running (1 completed, 1 pending, 1 blocked)",
            "└─ split #1  completed",
            "   └─ ↳ chunk-0 #2  pending",
            "      └─ ↳ total #3  blocked",
        ];
        assert_eq!(tree(&workflow), expected.join("\n") + "\n");
    }
}
