//! Every shell example in `README.md`, run verbatim against a real host.
//!
//! The project rule: every example in the README works verbatim on a
//! fresh machine. This test reads the README, takes every fenced block
//! tagged `sh`, `bash` or `console` (in a `console` block, the lines that
//! start with `$ `), splits it into commands (joining `\` continuations,
//! dropping trailing `# comments`, splitting on `&&`, following `cd`,
//! noting a trailing `&`) and runs them in README order through `sh -c`.
//!
//! # Where the commands run
//!
//! A scratch directory stands in for the root of a fresh clone. It holds
//! only `target/guests`, a symlink to the example jobs this workspace built
//! (the build script of `wasmjob-tests`), and `example-jobs`, a symlink to
//! their sources (for the workflow files there), so that the README's
//! relative paths such as `target/guests/wasm32-wasip2/release/hello.wasm`
//! resolve;
//! whatever else the README makes (`greeter/`) the commands create there.
//! Running from the workspace root instead would let `wasmjob new greeter`
//! write into the repository and leave state from one run to the next.
//! Every block starts in the scratch root (a new terminal at the root of
//! the clone); a `cd` moves the later commands of its block. `PATH` starts
//! with the directory of `CARGO_BIN_EXE_wasmjob`, so `wasmjob` is the
//! binary under test, as after `cargo install --path host`.
//!
//! # The host
//!
//! A command that starts a host (see [`MAPPINGS`]) starts a fresh
//! `wasmjob serve --listen 127.0.0.1:0 --data-dir <temp dir>` instead and
//! replaces the previous one: each README section that starts a host
//! starts from nothing, so its job ids count from 1 (`wasmjob status 2`).
//! `http://127.0.0.1:7878` in a command becomes that host's address and
//! `WASMJOB_URL` points at it; as on a fresh machine, the environment's
//! `WASMJOB_*` variables are dropped and `WASMJOB_CLIENT_CONFIG` names a
//! file that does not exist.
//!
//! # Commands that cannot run literally
//!
//! [`MAPPINGS`] is the one table of them, each with its reason. Every
//! other command runs for real. A command the table does not know and that
//! cannot run here (see [`runnable`]) fails the test, naming it, so a new
//! README example cannot go untested.
//!
//! # What is checked
//!
//! - Every command exits 0, or `N` when its README comment says `exit N`.
//! - `curl` runs with `-sS -o FILE -w '%{http_code}'` added (output
//!   capture only: what it sends is unchanged): the status must be 2xx and
//!   the body JSON. Before a `curl .../v1/jobs/ID` the harness waits (long
//!   poll) until the job is final: the README shows its attempts and
//!   output, which is what a reader sees a moment after submitting.
//! - A comment `# → X` promises X: the fields of a JSON object sketch
//!   (`{"id": 1, "state": "pending", ...}`) in the JSON answer, or else the
//!   end of stdout.
//! - [`PROMISES`] checks the few other outputs the README promises; each
//!   must match a README command.
//!
//! # Crates the README builds
//!
//! `wasmjob new greeter` scaffolds a crate in the scratch directory. The
//! "Writing a job" section shows a `Cargo.toml` fragment and a `lib.rs`
//! rather than a directory: the harness writes them into a crate two levels
//! below the workspace root (`target/readme-job-*/`), where the fragment's
//! `path = "../../guest-sdk"` is the SDK, and builds it there (see
//! [`MAPPINGS`]). Before cargo runs in such a crate, its `target` becomes a
//! symlink to the workspace's `target/scaffold` (shared with
//! `host/tests/scaffold.rs` and across runs), so dependencies compile once
//! while the README's `target/wasm32-wasip2/release/...` paths still hold
//! (`CARGO_TARGET_DIR` would move them). Cargo runs with
//! `CARGO_NET_OFFLINE=true`: the crates need only the SDK's dependencies
//! and serde, which the workspace's own build has already put in the
//! registry cache, so the test never needs the network.
//!
//! # Time
//!
//! Warm (the job crates' dependencies already compiled in
//! `target/scaffold`), the test takes 6 to 8 s on the 2-core development
//! machine, mostly the two job crates' own builds; the first run also
//! compiles the SDK's dependencies natively and for `wasm32-wasip2`, about
//! two minutes there.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The host address the README uses.
const README_HOST: &str = "http://127.0.0.1:7878";

/// Upper bound for a command or wait that must finish; reaching it fails.
const HANG: Duration = Duration::from_secs(90);

/// Upper bound for a cargo build, cold, on a loaded 2-core machine.
const BUILD_HANG: Duration = Duration::from_secs(30 * 60);

/// Package name of the crate written from the README's "Writing a job"
/// blocks: the README's `wasmjob exec target/.../my_job.wasm` names it.
const WRITTEN_JOB: &str = "my_job";

/// What the harness does instead of running a README command literally.
#[derive(Clone, Copy, Debug)]
enum Action {
    /// Starts a fresh host (see the module doc); later commands use it.
    Host,
    /// The same, with the command's arguments after the matched prefix
    /// (a config file, relative to the scratch root).
    HostWith,
    /// Runs the command with the matched prefix replaced by this text.
    Rewrite(&'static str),
    /// Runs nothing.
    Skip,
    /// Runs the command literally in the crate written from the README's
    /// `Cargo.toml` and Rust blocks; the block's later commands run there.
    InWrittenJob,
}

/// How a [`Mapping`] matches a README command (with ` &` when it runs in
/// the background).
#[derive(Clone, Copy, Debug)]
enum Match {
    /// The whole command.
    Exact(&'static str),
    /// The command's beginning.
    Prefix(&'static str),
}

/// One README command that cannot run literally inside a test.
#[derive(Debug)]
struct Mapping {
    /// The README command(s) it covers.
    readme: Match,
    /// What runs instead.
    action: Action,
    /// Why the command cannot run literally.
    reason: &'static str,
}

/// Every README command that does not run literally, and why. The first
/// row that matches wins.
const MAPPINGS: &[Mapping] = &[
    Mapping {
        readme: Match::Exact("cargo run --release -p wasmjob -- serve"),
        action: Action::Host,
        reason: "a server never exits: the test's host (a free port, a fresh data dir) \
                 stands in for it",
    },
    Mapping {
        readme: Match::Exact("wasmjob serve &"),
        action: Action::Host,
        reason: "the same, in the background; the test's host is killed at the end",
    },
    Mapping {
        readme: Match::Prefix("wasmjob serve "),
        action: Action::HostWith,
        reason: "the same, with the README's arguments (`--config FILE`) added to the \
                 test host's",
    },
    Mapping {
        readme: Match::Prefix("cargo run --release -p wasmjob -- "),
        action: Action::Rewrite("wasmjob "),
        reason: "`cargo run -p wasmjob` builds and runs the binary the test already has; \
                 a nested cargo on this workspace would wait for the lock the running \
                 `cargo test` holds",
    },
    Mapping {
        readme: Match::Exact("cargo install --path host"),
        action: Action::Skip,
        reason: "installs the binary the test already has first on PATH (and would \
                 write to ~/.cargo/bin)",
    },
    Mapping {
        readme: Match::Exact("cargo test --workspace"),
        action: Action::Skip,
        reason: "the command running this test",
    },
    Mapping {
        readme: Match::Prefix("cargo bench -p wasmjob-tests --bench suite"),
        action: Action::Skip,
        reason: "a minute of benchmarks, built in release on this workspace's target dir, \
                 which the running `cargo test` holds locked; the CI smoke-runs the suite \
                 (`.ci/run`: cargo test -p wasmjob-tests --bench suite -- --quick)",
    },
    Mapping {
        readme: Match::Exact("pip install schemathesis==4.32.5"),
        action: Action::Skip,
        reason: "installs the API fuzzer from PyPI into the machine's Python; `.ci/run` \
                 installs the same pinned version",
    },
    Mapping {
        readme: Match::Exact(".ci/schemathesis --long"),
        action: Action::Skip,
        reason: "minutes of fuzzing; `.ci/run` runs the same script's short pass \
                 (`.ci/schemathesis`) on every submission",
    },
    Mapping {
        readme: Match::Exact("cargo build --release --target wasm32-wasip2"),
        action: Action::InWrittenJob,
        reason: "the README shows the job's Cargo.toml and lib.rs, not a directory: the \
                 harness writes them into a crate and builds it there",
    },
];

/// An output the README promises for a command, checked after it ran.
struct Promise {
    /// The README command, as written (continuations joined, no comment).
    command: &'static str,
    /// What the README promises, for the failure message.
    what: &'static str,
    /// Whether the command's outcome keeps the promise.
    check: fn(&Outcome) -> bool,
}

/// Outputs the README promises beyond exit codes and `# →` comments.
const PROMISES: &[Promise] = &[
    Promise {
        command: "cargo run --release -p wasmjob -- exec \
                  target/guests/wasm32-wasip2/release/hello.wasm --input '{\"name\":\"Ada\"}'",
        what: "a report with the output",
        check: |o| o.json()["output"]["greeting"] == "Hello, Ada!",
    },
    Promise {
        command: "curl http://127.0.0.1:7878/v1/jobs/1",
        what: "state, attempts with reports, output",
        check: shows_finished_job,
    },
    Promise {
        command: "cargo test",
        what: "the handler's own tests pass",
        check: |o| o.stdout.contains("test result: ok. 2 passed"),
    },
    Promise {
        command: "wasmjob exec target/wasm32-wasip2/release/greeter.wasm --input '{\"name\":\"Ada\"}'",
        what: "a report with the output",
        check: |o| o.json()["output"]["greeting"] == "Hello, Ada!",
    },
    Promise {
        command: "wasmjob upload target/wasm32-wasip2/release/greeter.wasm --name greeter",
        what: "the module's hash",
        check: |o| {
            let hash = o.stdout.trim();
            hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit())
        },
    },
    Promise {
        command: "wasmjob submit greeter --input '{\"name\":\"Ada\"}' --wait",
        what: "the output",
        check: |o| o.json()["greeting"] == "Hello, Ada!",
    },
    Promise {
        command: "wasmjob submit greeter --input '{\"name\":\" \"}' --wait",
        what: "a fatal error, report shown",
        check: |o| o.json()["failure"]["kind"] == "fatal_error",
    },
    Promise {
        command: "wasmjob dead-letter",
        what: "the failed job",
        check: |o| o.stdout.lines().any(|l| l.trim_start().starts_with("2 ")),
    },
    Promise {
        command: "wasmjob status 2",
        what: "its attempts: kind, fuel, peak memory",
        check: |o| {
            let table = o.stdout.to_lowercase();
            ["fatal_error", "fuel", "peak memory"]
                .iter()
                .all(|w| table.contains(w))
        },
    },
    Promise {
        command: "wasmjob logs 1",
        what: "log records per attempt",
        check: |o| o.stdout.contains("attempt 1") && o.stdout.contains("greeting Ada"),
    },
    Promise {
        command: "wasmjob exec target/wasm32-wasip2/release/my_job.wasm --input '{\"name\":\"Ada\"}' \
                  --fuel 100000000 --memory 64MiB --timeout 5s",
        what: "the README's job runs: its greeting and its log line",
        check: |o| {
            let report = o.json();
            report["output"]["greeting"] == "Hello, Ada!"
                && report["logs"][0]["message"] == "greeting Ada on attempt 1"
        },
    },
];

/// `GET /v1/jobs/1` after the job ran: final, every attempt with its
/// report, and the output.
fn shows_finished_job(outcome: &Outcome) -> bool {
    let job = outcome.json();
    let attempts = job["attempts"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    job["state"] == "completed"
        && !attempts.is_empty()
        && attempts.iter().all(|a| a["report"]["status"].is_string())
        && job["output"]["greeting"] == "Hello, Ada!"
}

#[test]
fn every_readme_example_works() {
    let started = Instant::now();
    let readme = Readme::read(&workspace().join("README.md"));
    let mut harness = Harness::new(&readme);
    let mut kept = vec![false; PROMISES.len()];
    let mut commands = 0;
    for block in readme.shell_blocks() {
        let mut cwd = harness.root.path().to_path_buf();
        for example in block.examples() {
            commands += example.steps.len();
            harness.run_example(&example, &mut cwd, &mut kept);
        }
    }
    harness.check_background();
    for (promise, kept) in PROMISES.iter().zip(kept) {
        assert!(
            kept,
            "PROMISES checks `{}`, which is no longer a README command",
            promise.command
        );
    }
    eprintln!("{commands} README commands in {:.1?}", started.elapsed());
}

/// The workspace root.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// The README's fenced blocks.
struct Readme {
    blocks: Vec<Block>,
}

/// One fenced block: its language tag, and its lines with their numbers.
struct Block {
    lang: String,
    lines: Vec<(usize, String)>,
}

impl Readme {
    /// Reads the fenced blocks of the Markdown file at `path`.
    fn read(path: &Path) -> Readme {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let mut blocks = Vec::new();
        let mut open: Option<Block> = None;
        for (i, line) in text.lines().enumerate() {
            let fence = line.trim_start().strip_prefix("```");
            match (fence, open.take()) {
                (Some(lang), None) => {
                    open = Some(Block {
                        lang: lang.trim().to_owned(),
                        lines: Vec::new(),
                    })
                }
                (Some(_), Some(block)) => blocks.push(block),
                (None, Some(mut block)) => {
                    block.lines.push((i + 1, line.to_owned()));
                    open = Some(block);
                }
                (None, None) => {}
            }
        }
        assert!(open.is_none(), "README.md: a code fence is never closed");
        Readme { blocks }
    }

    /// The blocks whose commands the test runs.
    fn shell_blocks(&self) -> impl Iterator<Item = &Block> {
        self.blocks
            .iter()
            .filter(|b| matches!(b.lang.as_str(), "sh" | "bash" | "console"))
    }

    /// The text of the job crate's manifest fragment (the `toml` block that
    /// starts with `# Cargo.toml`) and of the Rust block after it.
    fn written_job(&self) -> (String, String) {
        let manifest = self
            .blocks
            .iter()
            .position(|b| b.lang == "toml" && b.text().starts_with("# Cargo.toml"))
            .expect("README.md has a ```toml block starting with `# Cargo.toml`");
        let code = self.blocks[manifest..]
            .iter()
            .find(|b| b.lang == "rust")
            .expect("README.md has a ```rust block after its Cargo.toml");
        (self.blocks[manifest].text(), code.text())
    }
}

/// One README command line: `&&`-separated steps, the last maybe in the
/// background, and the comment after it.
#[derive(Debug)]
struct Example {
    line: usize,
    steps: Vec<String>,
    background: bool,
    comment: String,
}

impl Block {
    /// The block's text.
    fn text(&self) -> String {
        let lines: Vec<&str> = self.lines.iter().map(|(_, l)| l.as_str()).collect();
        lines.join("\n") + "\n"
    }

    /// The block's command lines, continuations joined.
    fn examples(&self) -> Vec<Example> {
        let mut examples = Vec::new();
        let mut pending: Option<(usize, String)> = None;
        for (number, raw) in &self.lines {
            let line = match (self.lang.as_str(), &pending) {
                ("console", None) => match raw.trim_start().strip_prefix("$ ") {
                    Some(command) => command,
                    None => continue, // output shown in the README
                },
                _ => raw.as_str(),
            };
            let (code, comment) = split_comment(line);
            let (start, mut text) = pending.take().unwrap_or((*number, String::new()));
            if let Some(continued) = code.strip_suffix('\\') {
                text.push_str(continued.trim());
                text.push(' ');
                pending = Some((start, text));
                continue;
            }
            text.push_str(code.trim());
            if !text.is_empty() {
                let (steps, background) = split_steps(&text, start);
                examples.push(Example {
                    line: start,
                    steps,
                    background,
                    comment: comment.to_owned(),
                });
            }
        }
        assert!(pending.is_none(), "README.md: a block ends with `\\`");
        examples
    }
}

/// The byte offsets and characters of `s` that are outside quotes and
/// escapes, as `sh` reads them.
fn unquoted(s: &str) -> Vec<(usize, char)> {
    let mut out = Vec::new();
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (Some('"'), '\\') | (None, '\\') => escaped = true,
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, _) => out.push((i, c)),
        }
    }
    out
}

/// Splits a line into its code and its trailing `# comment` (a `#` outside
/// quotes at the start or after whitespace).
fn split_comment(line: &str) -> (&str, &str) {
    let hash = unquoted(line)
        .into_iter()
        .find(|&(i, c)| c == '#' && (i == 0 || line[..i].ends_with(char::is_whitespace)));
    match hash {
        Some((i, _)) => (line[..i].trim_end(), line[i + 1..].trim()),
        None => (line.trim_end(), ""),
    }
}

/// Splits a command line on `&&` outside quotes; a trailing `&` puts the
/// last step in the background.
fn split_steps(text: &str, line: usize) -> (Vec<String>, bool) {
    let ampersands: Vec<usize> = unquoted(text)
        .into_iter()
        .filter(|&(_, c)| c == '&')
        .map(|(i, _)| i)
        .collect();
    let mut steps = Vec::new();
    let mut start = 0;
    let mut background = false;
    let mut k = 0;
    while k < ampersands.len() {
        let i = ampersands[k];
        if ampersands.get(k + 1) == Some(&(i + 1)) {
            steps.push(text[start..i].trim().to_owned());
            start = i + 2;
            k += 2;
        } else {
            assert!(
                text[i + 1..].trim().is_empty(),
                "README.md:{line}: `&` in the middle of `{text}` is not supported"
            );
            background = true;
            steps.push(text[start..i].trim().to_owned());
            start = text.len();
            k += 1;
        }
    }
    if start < text.len() {
        steps.push(text[start..].trim().to_owned());
    }
    (steps, background)
}

/// The exit code a README comment announces (`exit 1`), else 0.
fn expected_exit(comment: &str) -> i32 {
    comment
        .split("exit ")
        .skip(1)
        .find_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .unwrap_or(0)
}

/// The first table row matching `command`.
fn mapping(command: &str) -> Option<&'static Mapping> {
    MAPPINGS.iter().find(|m| match m.readme {
        Match::Exact(text) => command == text,
        Match::Prefix(text) => command.starts_with(text),
    })
}

/// Whether a command [`MAPPINGS`] does not know can run for real here:
/// `curl`; `wasmjob`, except `serve` (it never exits); `cargo` in a crate
/// the README made (its own `Cargo.toml` in `cwd`; at the scratch root,
/// cargo would mean this workspace).
fn runnable(step: &str, cwd: &Path, root: &Path) -> bool {
    let mut words = step.split_whitespace();
    match (words.next(), words.next()) {
        (Some("curl"), _) => true,
        (Some("wasmjob"), Some(sub)) => sub != "serve",
        (Some("cargo"), _) => cwd != root && cwd.join("Cargo.toml").exists(),
        _ => false,
    }
}

/// A command that ran, with everything a failure message needs.
struct Outcome {
    /// `README.md:LINE: command` as written.
    readme: String,
    /// The command given to `sh -c`.
    ran: String,
    /// Where it ran.
    cwd: PathBuf,
    /// Its exit code; `None` when a signal ended it.
    code: Option<i32>,
    /// Its stdout (for `curl`, the HTTP status).
    stdout: String,
    /// Its stderr.
    stderr: String,
    /// The answer's body, for `curl`.
    body: Option<String>,
}

impl Outcome {
    /// The answer's body (for `curl`) or stdout, as JSON; fails if it is not.
    fn json(&self) -> Value {
        let text = self.body.as_deref().unwrap_or(&self.stdout);
        serde_json::from_str(text).unwrap_or_else(|e| self.fail(&format!("not JSON: {e}")))
    }

    /// Fails the test with `why` and everything about the command.
    fn fail(&self, why: &str) -> ! {
        let body = match &self.body {
            Some(body) => format!("\n--- body ---\n{body}"),
            None => String::new(),
        };
        panic!(
            "{}\n  {why}\n  ran: {}\n  in:  {}\n  exit code: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}{body}",
            self.readme,
            self.ran,
            self.cwd.display(),
            self.code,
            self.stdout,
            self.stderr,
        )
    }
}

/// A `wasmjob serve` child on a free port; killed when dropped.
struct Host {
    child: Child,
    /// `http://ADDR`, as the host printed it.
    base: String,
}

impl Host {
    /// Starts a host with its data in `data_dir` and waits for its address.
    fn start(data_dir: &Path, cwd: &Path, args: &[String]) -> Host {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wasmjob"));
        command
            .current_dir(cwd)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        clean_env(&mut command);
        let mut child = command.spawn().expect("start wasmjob serve");
        let address = read_address(&mut child);
        let mut host = Host {
            child,
            base: String::new(),
        };
        host.base = match address.recv_timeout(HANG) {
            Ok(Ok(base)) => base,
            Ok(Err(stderr)) => panic!("wasmjob serve exited before listening:\n{stderr}"),
            Err(_) => panic!("wasmjob serve printed no address within {HANG:?}"),
        };
        host
    }

    /// Waits (long poll) until job `id` is final.
    fn wait_final(&self, id: u64) {
        let deadline = Instant::now() + HANG;
        loop {
            let url = format!("{}/v1/jobs/{id}?wait_ms=10000", self.base);
            let job: Value = ureq::get(&url)
                .call()
                .and_then(|mut r| r.body_mut().read_json())
                .unwrap_or_else(|e| panic!("GET {url}: {e}"));
            if matches!(
                job["state"].as_str(),
                Some("completed" | "failed" | "cancelled")
            ) {
                return;
            }
            assert!(Instant::now() < deadline, "job {id} never finished: {job}");
        }
    }
}

/// Reads the host's stderr on a thread: sends its base URL from the line
/// `wasmjob listening on http://ADDR (data in ...)`, or everything it
/// printed if it exits first, then keeps draining so the host never
/// blocks on a full pipe.
fn read_address(child: &mut Child) -> mpsc::Receiver<Result<String, String>> {
    use std::io::{BufRead, BufReader};
    let stderr = child.stderr.take().expect("piped stderr");
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = String::new();
        let mut lines = BufReader::new(stderr).lines();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("listening on ").nth(1) {
                let base = rest.split_whitespace().next().unwrap_or_default();
                let _ = send.send(Ok(base.to_owned()));
                lines.for_each(drop);
                return;
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        let _ = send.send(Err(seen));
    });
    receive
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command started with a trailing `&`, in its own process group; the
/// group is killed when dropped.
struct Background {
    /// `README.md:LINE: command`, for messages.
    readme: String,
    child: Child,
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            kill_group(self.child.id());
        }
        let _ = self.child.wait();
    }
}

/// Sends SIGKILL to the process group `id` (a child started with
/// `process_group(0)`, and whatever it started).
fn kill_group(id: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{id}")])
        .status();
}

/// Removes what the outer `cargo test` and the developer's shell put in the
/// environment that a fresh machine would not have and that would change
/// the commands: `WASMJOB_*` settings, and cargo's build settings (a target
/// dir elsewhere, flags meant for this build).
fn clean_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WASMJOB_") {
            command.env_remove(key);
        }
    }
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
    ] {
        command.env_remove(var);
    }
}

/// Runs the README's commands: the scratch directory, the current host,
/// background commands, and the crate written from the README's blocks.
/// Dropping it kills the host and every background command.
struct Harness {
    /// The current host; dropped (killed) first, like the background
    /// commands, before the directories they use.
    host: Option<Host>,
    /// Commands the README runs with `&`.
    background: Vec<Background>,
    /// Stands in for the root of a fresh clone (see the module doc).
    root: TempDir,
    /// Data dirs and curl bodies, out of the commands' sight.
    private: TempDir,
    /// The crate written from the README's blocks, once a command needs it.
    written_job: Option<TempDir>,
    /// The README's job crate: manifest fragment and `lib.rs`.
    job_sources: (String, String),
    /// Numbers the data dirs and curl bodies.
    counter: usize,
}

impl Harness {
    /// Prepares the scratch directory.
    fn new(readme: &Readme) -> Harness {
        let root = tempfile::tempdir().expect("scratch dir");
        let guests = workspace().join("target/guests");
        assert!(
            Path::new(wasmjob_tests::guests::HELLO).starts_with(&guests),
            "the example jobs are built in {}",
            guests.display()
        );
        std::fs::create_dir(root.path().join("target")).unwrap();
        std::os::unix::fs::symlink(&guests, root.path().join("target/guests")).unwrap();
        // The example jobs' sources (the workflow files), as in a clone.
        std::os::unix::fs::symlink(
            workspace().join("example-jobs"),
            root.path().join("example-jobs"),
        )
        .unwrap();
        Harness {
            root,
            private: tempfile::tempdir().expect("private dir"),
            host: None,
            background: Vec::new(),
            written_job: None,
            job_sources: readme.written_job(),
            counter: 0,
        }
    }

    /// Runs one README command line, step by step, in `cwd`; the comment
    /// (expected exit code, `→` promise) is about its last step.
    fn run_example(&mut self, example: &Example, cwd: &mut PathBuf, kept: &mut [bool]) {
        let last = example.steps.len() - 1;
        for (i, step) in example.steps.iter().enumerate() {
            let background = example.background && i == last;
            let shown = if background {
                format!("{step} &")
            } else {
                step.clone()
            };
            let readme = format!("README.md:{}: {shown}", example.line);
            if let Some(dir) = step.strip_prefix("cd ") {
                *cwd = cwd.join(dir.trim());
                assert!(cwd.is_dir(), "{readme}: no directory {}", cwd.display());
                continue;
            }
            let Some(outcome) = self.run_step(&readme, step, &shown, background, cwd) else {
                continue;
            };
            check(&outcome, if i == last { &example.comment } else { "" });
            keep_promises(&outcome, step, kept);
        }
    }

    /// Runs one step as [`MAPPINGS`] says, or literally; `None` when
    /// nothing ran to completion (skipped, a host, a background command).
    fn run_step(
        &mut self,
        readme: &str,
        step: &str,
        shown: &str,
        background: bool,
        cwd: &mut PathBuf,
    ) -> Option<Outcome> {
        let text = match mapping(shown) {
            Some(m) => {
                eprintln!("{readme}\n  {:?}: {}", m.action, m.reason);
                match m.action {
                    Action::Host => {
                        self.start_host(&[]);
                        return None;
                    }
                    Action::HostWith => {
                        let Match::Prefix(from) = m.readme else {
                            panic!("{readme}: HostWith needs a Prefix row")
                        };
                        let rest = step[from.len()..].trim_end_matches('&');
                        let args: Vec<String> =
                            rest.split_whitespace().map(str::to_owned).collect();
                        self.start_host(&args);
                        return None;
                    }
                    Action::Skip => return None,
                    Action::Rewrite(to) => {
                        let Match::Prefix(from) = m.readme else {
                            panic!("{readme}: Rewrite needs a Prefix row")
                        };
                        format!("{to}{}", &step[from.len()..])
                    }
                    Action::InWrittenJob => {
                        *cwd = self.write_job();
                        step.to_owned()
                    }
                }
            }
            None if runnable(step, cwd, self.root.path()) => step.to_owned(),
            None => panic!(
                "{readme}\n  is neither in the MAPPINGS table of host/tests/readme.rs nor \
                 runnable here (curl, a wasmjob command, cargo in a crate the README made): \
                 add a row with the reason it cannot run literally"
            ),
        };
        if background {
            self.spawn_background(readme, &text, cwd);
            return None;
        }
        Some(self.run(readme, &text, cwd))
    }

    /// Starts a fresh host, replacing the current one.
    fn start_host(&mut self, args: &[String]) {
        self.host = None;
        self.counter += 1;
        let data_dir = self.private.path().join(format!("data-{}", self.counter));
        self.host = Some(Host::start(&data_dir, self.root.path(), args));
    }

    /// Writes the README's job crate two levels below the workspace root
    /// (once) and returns its directory.
    fn write_job(&mut self) -> PathBuf {
        if let Some(dir) = &self.written_job {
            return dir.path().to_path_buf();
        }
        let dir = tempfile::Builder::new()
            .prefix("readme-job-")
            .tempdir_in(workspace().join("target"))
            .expect("job crate dir");
        let (fragment, code) = &self.job_sources;
        let manifest = format!(
            "[package]\nname = \"{WRITTEN_JOB}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             {fragment}\n# Not part of the wasmjob workspace.\n[workspace]\n"
        );
        std::fs::write(dir.path().join("Cargo.toml"), manifest).unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/lib.rs"), code).unwrap();
        let path = dir.path().to_path_buf();
        self.written_job = Some(dir);
        path
    }

    /// The current host; fails if no README command started one.
    fn host(&self, readme: &str) -> &Host {
        match &self.host {
            Some(host) => host,
            None => panic!("{readme}: talks to a host, but no README command started one"),
        }
    }

    /// `sh -c text` in `cwd`, in its own process group, with the
    /// environment of a fresh machine plus the test's host and binary.
    fn shell(&self, text: &str, cwd: &Path) -> Command {
        use std::os::unix::process::CommandExt;
        let bin = Path::new(env!("CARGO_BIN_EXE_wasmjob")).parent().unwrap();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![bin.to_path_buf()];
        paths.extend(std::env::split_paths(&path));
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(text)
            .current_dir(cwd)
            .process_group(0)
            .stdin(Stdio::null());
        clean_env(&mut command);
        command
            .env("PATH", std::env::join_paths(paths).unwrap())
            .env(
                "WASMJOB_CLIENT_CONFIG",
                self.private.path().join("no-client.toml"),
            )
            .env("CARGO_NET_OFFLINE", "true");
        if let Some(host) = &self.host {
            command.env("WASMJOB_URL", &host.base);
        }
        command
    }

    /// Rewrites the README's host address to the test host's.
    fn point_at_host(&self, readme: &str, text: &str) -> String {
        if text.contains(README_HOST) {
            text.replace(README_HOST, &self.host(readme).base)
        } else {
            text.to_owned()
        }
    }

    /// Before cargo runs in a crate the README made, links its `target` to
    /// the shared `target/scaffold` (see the module doc).
    fn share_target(&self, cwd: &Path) {
        let link = cwd.join("target");
        if cwd == self.root.path()
            || !cwd.join("Cargo.toml").exists()
            || link.symlink_metadata().is_ok()
        {
            return;
        }
        let shared = workspace().join("target/scaffold");
        std::fs::create_dir_all(&shared).unwrap();
        std::os::unix::fs::symlink(&shared, &link).unwrap();
    }

    /// Runs `text` to completion (within [`HANG`], or [`BUILD_HANG`] for
    /// builds); `curl` gets output-capturing flags.
    fn run(&mut self, readme: &str, text: &str, cwd: &Path) -> Outcome {
        let mut text = self.point_at_host(readme, text);
        let mut body_file = None;
        if let Some(rest) = text.strip_prefix("curl ") {
            if let Some(id) = job_read(rest) {
                self.host(readme).wait_final(id);
            }
            self.counter += 1;
            let file = self.private.path().join(format!("body-{}", self.counter));
            text = format!(
                "curl -sS -o '{}' -w '%{{http_code}}' {rest}",
                file.display()
            );
            body_file = Some(file);
        }
        self.share_target(cwd);
        let limit = if text.starts_with("cargo ") || text.starts_with("wasmjob build") {
            BUILD_HANG
        } else {
            HANG
        };
        let (output, timed_out) = run_with_deadline(self.shell(&text, cwd), limit);
        let body = body_file.map(|f| std::fs::read_to_string(f).unwrap_or_default());
        let outcome = Outcome {
            readme: readme.to_owned(),
            ran: text,
            cwd: cwd.to_path_buf(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            body,
        };
        if timed_out {
            outcome.fail(&format!("still running after {limit:?}: killed"));
        }
        outcome
    }

    /// Starts a background command; it must still run (or have succeeded)
    /// at the end, see [`Harness::check_background`].
    fn spawn_background(&mut self, readme: &str, text: &str, cwd: &Path) {
        let text = self.point_at_host(readme, text);
        self.share_target(cwd);
        let child = self
            .shell(&text, cwd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{readme}: cannot start: {e}"));
        self.background.push(Background {
            readme: readme.to_owned(),
            child,
        });
    }

    /// Fails if a background command has exited with a failure.
    fn check_background(&mut self) {
        for background in &mut self.background {
            if let Ok(Some(status)) = background.child.try_wait() {
                assert!(
                    status.success(),
                    "{}: exited with {status}",
                    background.readme
                );
            }
        }
    }
}

/// The job id of a `curl` that reads `/v1/jobs/ID` (sends no body).
fn job_read(args: &str) -> Option<u64> {
    if args.contains("-d ") || args.contains("--data") || args.contains("-X") {
        return None;
    }
    let rest = args.split("/v1/jobs/").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Runs `command` with piped output; on reaching `limit`, kills its process
/// group. Returns the output and whether it was killed.
fn run_with_deadline(mut command: Command, limit: Duration) -> (Output, bool) {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sh");
    let id = child.id();
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(child.wait_with_output());
    });
    let (output, timed_out) = match receive.recv_timeout(limit) {
        Ok(output) => (output, false),
        Err(_) => {
            kill_group(id);
            (receive.recv().expect("the waiting thread answers"), true)
        }
    };
    (output.expect("wait for sh"), timed_out)
}

/// Checks the [`PROMISES`] about `step`, marking them kept.
fn keep_promises(outcome: &Outcome, step: &str, kept: &mut [bool]) {
    for (promise, kept) in PROMISES.iter().zip(kept) {
        if promise.command == step {
            *kept = true;
            if !(promise.check)(outcome) {
                outcome.fail(&format!("the README promises: {}", promise.what));
            }
        }
    }
}

/// Checks what every command must do: the exit code its `comment` gives
/// (0 by default), for `curl` a 2xx status and a JSON body, and what a
/// `# → X` comment promises.
fn check(outcome: &Outcome, comment: &str) {
    let expected = expected_exit(comment);
    if outcome.code != Some(expected) {
        outcome.fail(&format!("expected exit code {expected}"));
    }
    if outcome.body.is_some() {
        let status = outcome.stdout.trim();
        if !status.starts_with('2') || status.len() != 3 {
            outcome.fail(&format!("HTTP status {status}, expected 2xx"));
        }
        outcome.json();
    }
    if let Some(promise) = comment.strip_prefix('→') {
        check_arrow(outcome, promise.trim());
    }
}

/// Checks a `# → X` promise: the fields of a JSON object sketch (`{"id": 1,
/// ...}`) in the JSON answer, or else the end of stdout.
fn check_arrow(outcome: &Outcome, promise: &str) {
    if promise.starts_with('{') {
        let sketch = promise.replace(", ...", "").replace("...", "");
        let expected: Value = serde_json::from_str(&sketch)
            .unwrap_or_else(|e| outcome.fail(&format!("the README's `→ {promise}`: {e}")));
        let actual = outcome.json();
        for (key, value) in expected.as_object().into_iter().flatten() {
            if actual[key] != *value {
                outcome.fail(&format!(
                    "the README promises `→ {promise}`: {key} is {}",
                    actual[key]
                ));
            }
        }
    } else if !outcome.stdout.trim_end().ends_with(promise) {
        outcome.fail(&format!("the README promises `→ {promise}` on stdout"));
    }
}
