//! Client commands about cron schedules: add (or replace) one, list them,
//! show one with its next fire times, pause, resume, remove.

use super::EXIT_OK;
use super::jobs::JobFields;
use super::remote::{OrExit, Remote, cell, exit_code, print_json, print_table};
use super::usage_error;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

/// Arguments of `wasmjob schedule`.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    pub action: ScheduleAction,
}

/// What `wasmjob schedule` does.
#[derive(Debug, Subcommand)]
pub enum ScheduleAction {
    /// Add a schedule: at each fire time of a cron expression, a job of
    /// MODULE (with the options `submit` takes) is created. Prints its next
    /// fire times.
    ///
    /// Example: wasmjob schedule add nightly hello --cron '30 2 * * *' --timezone Europe/Paris
    Add(Box<AddArgs>),
    /// List the schedules with their next fire time and last job.
    ///
    /// Example: wasmjob schedules
    List(Remote),
    /// Show a schedule, its job and its next five fire times.
    ///
    /// Example: wasmjob schedule show nightly
    Show(NamedSchedule),
    /// Pause a schedule: it creates no job until resumed.
    ///
    /// Example: wasmjob schedule pause nightly
    Pause(NamedSchedule),
    /// Resume a paused schedule from its next fire time after now.
    ///
    /// Example: wasmjob schedule resume nightly
    Resume(NamedSchedule),
    /// Remove a schedule; the jobs it created stay.
    ///
    /// Example: wasmjob schedule rm nightly
    #[command(alias = "remove")]
    Rm(NamedSchedule),
}

/// Arguments of `wasmjob schedule add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The schedule's name: 1 to 64 of A-Z a-z 0-9 _ . -
    pub name: String,
    /// When it fires: 5 cron fields (minute hour day-of-month month
    /// day-of-week), 6 with seconds first, or @hourly, @daily, @weekly...
    #[arg(long, value_name = "EXPR")]
    pub cron: String,
    /// The IANA time zone the expression is read in [default: UTC].
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
    /// Fire times missed while the host was down: skip them, or run one
    /// job for them when it is back.
    #[arg(long, value_name = "skip|run_once", value_parser = ["skip", "run_once"])]
    pub missed: Option<String>,
    /// Add it paused.
    #[arg(long)]
    pub paused: bool,
    /// Replace the schedule of that name if there is one (otherwise adding
    /// a name taken is refused).
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    pub job: JobFields,
    #[command(flatten)]
    pub remote: Remote,
}

/// A schedule by name.
#[derive(Debug, Args)]
pub struct NamedSchedule {
    /// The schedule's name.
    pub name: String,
    #[command(flatten)]
    pub remote: Remote,
}

/// `wasmjob schedules`.
pub fn list(remote: Remote) -> u8 {
    exit_code(list_body(remote))
}

/// `wasmjob schedule ...`.
pub fn schedule(args: ScheduleArgs) -> u8 {
    exit_code(match args.action {
        ScheduleAction::Add(args) => add(*args),
        ScheduleAction::List(remote) => list_body(remote),
        ScheduleAction::Show(named) => one(named, Verb::Show),
        ScheduleAction::Pause(named) => one(named, Verb::Pause),
        ScheduleAction::Resume(named) => one(named, Verb::Resume),
        ScheduleAction::Rm(named) => one(named, Verb::Remove),
    })
}

fn add(args: AddArgs) -> Result<u8, u8> {
    let mut body = json!({
        "cron": args.cron,
        "job": args.job.body().map_err(usage_error)?,
        "paused": args.paused,
    });
    if let Some(zone) = &args.timezone {
        body["timezone"] = json!(zone);
    }
    if let Some(missed) = &args.missed {
        body["missed"] = json!(missed);
    }
    let client = args.remote.connect()?;
    let schedule = if args.replace {
        let path = format!("/v1/schedules/{}", args.name);
        client.put_json(&path, &body)
    } else {
        body["name"] = json!(args.name);
        client.post_json("/v1/schedules", &body)
    }
    .or_exit()?;
    if args.remote.json {
        print_json(&schedule);
    } else {
        print!("{}", detail(&schedule));
    }
    Ok(EXIT_OK)
}

fn list_body(remote: Remote) -> Result<u8, u8> {
    let client = remote.connect()?;
    let answer = client.get("/v1/schedules").or_exit()?;
    if remote.json {
        print_json(&answer);
        return Ok(EXIT_OK);
    }
    let rows: Vec<Vec<String>> = answer["schedules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            vec![
                cell(&s["name"]),
                cell(&s["cron"]),
                cell(&s["timezone"]),
                if s["paused"] == true {
                    "paused".to_owned()
                } else {
                    cell(&s["upcoming"][0]["local"])
                },
                cell(&s["job"]["module"]),
                cell(&s["last_job"]),
            ]
        })
        .collect();
    print_table(
        &["name", "cron", "timezone", "next", "module", "last job"],
        &rows,
    );
    Ok(EXIT_OK)
}

enum Verb {
    Show,
    Pause,
    Resume,
    Remove,
}

fn one(named: NamedSchedule, verb: Verb) -> Result<u8, u8> {
    let client = named.remote.connect()?;
    let path = format!("/v1/schedules/{}", named.name);
    let schedule = match verb {
        Verb::Show => client.get(&path),
        Verb::Pause => client.post_json(&format!("{path}/pause"), &Value::Null),
        Verb::Resume => client.post_json(&format!("{path}/resume"), &Value::Null),
        Verb::Remove => {
            client.delete(&path).or_exit()?;
            if !named.remote.json {
                println!("removed schedule {}", named.name);
            }
            return Ok(EXIT_OK);
        }
    }
    .or_exit()?;
    if named.remote.json {
        print_json(&schedule);
    } else {
        print!("{}", detail(&schedule));
    }
    Ok(EXIT_OK)
}

/// A schedule (the API's JSON) as lines of `key value`, then its next fire
/// times.
fn detail(schedule: &Value) -> String {
    let mut out = String::new();
    let state = if schedule["paused"] == true {
        "paused"
    } else {
        "active"
    };
    for (key, value) in [
        ("name", cell(&schedule["name"])),
        ("cron", cell(&schedule["cron"])),
        ("timezone", cell(&schedule["timezone"])),
        ("state", state.to_owned()),
        ("missed", cell(&schedule["missed"])),
        ("module", cell(&schedule["job"]["module"])),
        ("queue", cell(&schedule["job"]["queue"])),
        ("input", schedule["job"]["input"].to_string()),
        ("last_job", cell(&schedule["last_job"])),
        ("last_error", cell(&schedule["last_error"])),
    ] {
        out.push_str(&format!("{key:<11} {value}\n"));
    }
    let upcoming: Vec<&Value> = schedule["upcoming"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    if !upcoming.is_empty() {
        out.push_str("next:\n");
        for time in upcoming {
            out.push_str(&format!("  {}\n", cell(&time["local"])));
        }
    }
    out
}
