//! `wasmjob new` generates a crate that builds (`wasmjob build`), passes
//! its own test, and runs under `wasmjob exec`.

use std::path::Path;
use std::process::{Command, Output};

fn wasmjob(args: &[&str], target_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmjob"))
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .output()
        .expect("run wasmjob")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_new_job_builds_tests_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    // Shared across runs so dependencies are compiled once.
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/scaffold");
    let out = wasmjob(
        &["new", "greeter", "--path", dir.path().to_str().unwrap()],
        &target,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let crate_dir = dir.path().join("greeter");
    assert!(crate_dir.join("src/lib.rs").exists());

    let again = wasmjob(
        &["new", "greeter", "--path", dir.path().to_str().unwrap()],
        &target,
    );
    assert_eq!(again.status.code(), Some(2), "refuses to overwrite");
    let bad = wasmjob(&["new", "9lives"], &target);
    assert_eq!(bad.status.code(), Some(2));

    let out = wasmjob(&["build", "--path", crate_dir.to_str().unwrap()], &target);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let wasm = text(&out.stdout).trim().to_owned();
    assert!(wasm.ends_with("greeter.wasm"), "{wasm}");

    let test = Command::new(env!("CARGO"))
        .args(["test", "--manifest-path"])
        .arg(crate_dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .output()
        .unwrap();
    assert!(test.status.success(), "{}", text(&test.stderr));
    assert!(
        text(&test.stdout).contains("2 passed"),
        "{}",
        text(&test.stdout)
    );

    let out = wasmjob(&["exec", &wasm, "--input", r#"{"name":"Ada"}"#], &target);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["output"]["greeting"], "Hello, Ada!");
    assert_eq!(report["logs"][0]["message"], "greeting Ada (attempt 1)");
}
