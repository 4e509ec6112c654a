//! `wasmjob exec` through the real binary: report JSON on stdout, exit
//! codes 0 (succeeded), 1 (job failed), 2 (usage or load error).

use std::process::{Command, Output};
use wasmjob_tests::guests;

fn exec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmjob"))
        .arg("exec")
        .args(args)
        .output()
        .expect("run wasmjob")
}

fn report(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not a JSON report ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[test]
fn a_successful_job_prints_its_report_and_exits_0() {
    let out = exec(&[guests::HELLO, "--input", r#"{"name":"Ada"}"#]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = report(&out);
    assert_eq!(report["status"], "success");
    assert_eq!(report["output"]["greeting"], "Hello, Ada!");
}

#[test]
fn input_can_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.json");
    std::fs::write(&path, r#"{"n": 12}"#).unwrap();
    let out = exec(&[guests::FIB, "--input", &format!("@{}", path.display())]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(report(&out)["output"]["value"], 144);
}

#[test]
fn a_failed_job_exits_1_with_the_failure_in_the_report() {
    let out = exec(&[
        guests::INFINITE_LOOP,
        "--fuel",
        "1000000",
        "--memory",
        "16MiB",
        "--timeout",
        "5s",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report = report(&out);
    assert_eq!(report["status"], "failure");
    assert_eq!(report["failure"]["kind"], "out_of_fuel");
    assert_eq!(report["fuel"]["consumed"], 1_000_000);
    assert_eq!(report["memory"]["limit_bytes"], 16 * 1024 * 1024);
    assert_eq!(report["limits"]["timeout_ms"], 5000);
}

#[test]
fn a_file_that_is_not_wasm_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.wasm");
    std::fs::write(&path, "not wasm").unwrap();
    let out = exec(&[path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not a WebAssembly module"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_missing_file_and_bad_flags_exit_2() {
    let out = exec(&["/nonexistent/job.wasm"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
    let out = exec(&[guests::HELLO, "--memory", "lots"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid size `lots`"));
    let out = exec(&[guests::HELLO, "--input", "@/nonexistent/input.json"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn every_command_has_help_with_an_example() {
    let commands = [
        "exec",
        "serve",
        "upload",
        "submit",
        "status",
        "list",
        "cancel",
        "retry",
        "dead-letter",
        "logs",
        "modules",
        "workers",
        "stats",
        "queues",
        "queue",
        "history",
        "new",
        "build",
    ];
    for command in commands {
        let out = Command::new(env!("CARGO_BIN_EXE_wasmjob"))
            .args([command, "--help"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{command} --help");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("Example: wasmjob"),
            "{command} --help has no example:\n{help}"
        );
    }
}

#[test]
fn a_reader_that_goes_away_stops_the_command_quietly() {
    // `wasmjob exec ... | head -c 0`: stdout is closed before the report
    // is printed.
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmjob"))
        .args(["exec", guests::HELLO, "--input", r#"{"name":"Ada"}"#])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run wasmjob");
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}
