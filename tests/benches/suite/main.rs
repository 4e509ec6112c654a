//! The benchmark suite: eleven scenarios against a real host, printed as a
//! table and written as JSON.
//!
//! ```text
//! cargo bench -p wasmjob-tests --bench suite                 # everything
//! cargo bench -p wasmjob-tests --bench suite -- --only 2,3   # some scenarios
//! cargo test -p wasmjob-tests --bench suite -- --quick       # the CI smoke run
//! ```
//!
//! 1. sandbox overhead per invocation (in-process engine);
//! 2. throughput through the batch API (backlog, end to end, priorities);
//! 3. latency on an idle host, one job at a time over HTTP;
//! 4. submission from many concurrent HTTP clients;
//! 5. a million pending jobs: enqueue time, database size, RSS, claims;
//! 6. start-up with 100 stored modules, artifact cache warm and cold;
//! 7. scheduling: delayed-job and cron lateness, cancelling a running job,
//!    a 10,000-node fan-out/fan-in workflow;
//! 8. jobs that call a service: HTTP to a local server, concurrency 8 and
//!    64, against the same request made natively;
//! 9. operating: throughput with and without a `/metrics` scrape every
//!    second; a mixed service-call and CPU load on the fixed default pool
//!    and with auto-scaling;
//! 10. the sequential producer: one HTTP client, each submit awaited, end
//!     to end, under `store.durability` fsync and interval;
//! 11. the PostgreSQL store: backlog and end to end with 1, 2 and 3 hosts
//!     on one database, and how fast a submission on one host wakes
//!     another (needs a server: `.ci/postgres` starts one).
//!
//! Scenarios 2 to 11 run the host as a child process (this binary, re-run
//! as `wasmjob serve` with default settings on a temp dir), so host
//! figures are not mixed with the load generator's. `--quick` shrinks every
//! scenario to seconds and checks correctness only: no figure is judged.
//! The JSON goes to `target/bench/suite.json` unless `--json PATH` says
//! otherwise.

/// The `wasmjob` binary's allocator: this binary is also the host child.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod concurrent;
mod host;
mod latency;
mod operating;
mod outbound;
mod overhead;
mod postgres;
mod report;
mod restart;
mod scale;
mod scheduling;
mod sequential;
mod throughput;

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// One scenario: runs and returns its figures.
type Scenario = fn(&Settings) -> report::Section;

/// What to run and how big.
pub struct Settings {
    quick: bool,
}

impl Settings {
    /// The full-size value, or the quick one.
    pub fn pick(&self, full: usize, quick: usize) -> usize {
        if self.quick { quick } else { full }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(host::SERVE_FLAG) {
        let serve = ["wasmjob".to_owned(), "serve".to_owned()]
            .into_iter()
            .chain(args[2..].iter().cloned());
        return wasmjob::cli::run(wasmjob::cli::Cli::parse_from(serve));
    }
    let mut quick = false;
    let mut only: Option<Vec<u32>> = None;
    let mut json = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench/suite.json");
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--only" => {
                let list = rest.next().expect("--only takes a list such as 2,3");
                only = Some(
                    list.split(',')
                        .map(|n| n.trim().parse().expect("--only: scenario numbers 1-11"))
                        .collect(),
                );
            }
            "--json" => json = PathBuf::from(rest.next().expect("--json takes a path")),
            // Passed by `cargo bench`.
            "--bench" => {}
            other => {
                eprintln!("unknown argument {other}: use --quick, --only 1,2,..., --json PATH");
                return ExitCode::from(2);
            }
        }
    }
    let settings = Settings { quick };
    let wanted = |n: u32| only.as_ref().is_none_or(|list| list.contains(&n));
    let scenarios: [(u32, Scenario); 11] = [
        (1, overhead::run),
        (2, throughput::run),
        (3, latency::run),
        (4, concurrent::run),
        (5, scale::run),
        (6, restart::run),
        (7, scheduling::run),
        (8, outbound::run),
        (9, operating::run),
        (10, sequential::run),
        (11, postgres::run),
    ];
    let mut sections = Vec::new();
    for (n, scenario) in scenarios {
        if wanted(n) {
            eprintln!("running scenario {n}...");
            sections.push(scenario(&settings));
        }
    }
    report::print(&sections, quick);
    let document = report::document(&sections, quick);
    if let Some(parent) = json.parent() {
        std::fs::create_dir_all(parent).expect("the JSON's directory");
    }
    let text = serde_json::to_string_pretty(&document).expect("JSON");
    std::fs::write(&json, text + "\n").expect("writing the JSON");
    println!("JSON: {}", json.display());
    ExitCode::SUCCESS
}
