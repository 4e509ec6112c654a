//! `wasmjob new` and `wasmjob build`: a ready-to-build job crate using the
//! guest SDK, and the cargo command that builds it for `wasm32-wasip2`.

use super::{EXIT_OK, usage_error};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The guest SDK next to this host's sources, used by generated crates
/// until the SDK is published.
const BUNDLED_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-sdk");

/// Arguments of `wasmjob new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The job's name: a crate name (letters, digits, `-`, `_`).
    pub name: String,
    /// Directory to create the crate in [default: the current directory].
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// Path of the wasmjob-sdk crate [default: the SDK beside this host].
    #[arg(long, value_name = "DIR")]
    pub sdk: Option<PathBuf>,
}

/// Arguments of `wasmjob build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The job crate's directory [default: the current directory].
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// Build without optimisations (faster to build, slower to run).
    #[arg(long)]
    pub debug: bool,
}

/// `wasmjob new NAME`.
pub fn new(args: NewArgs) -> u8 {
    let valid = !args.name.is_empty()
        && args
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && args
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return usage_error(format!(
            "invalid job name `{}`: start with a letter, then letters, digits, - or _",
            args.name
        ));
    }
    let sdk = args
        .sdk
        .clone()
        .unwrap_or_else(|| PathBuf::from(BUNDLED_SDK));
    let sdk = match sdk.canonicalize() {
        Ok(sdk) if sdk.join("Cargo.toml").exists() => sdk,
        _ => {
            return usage_error(format!(
                "wasmjob-sdk not found at {}: pass --sdk PATH",
                sdk.display()
            ));
        }
    };
    let dir = args
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from("."))
        .join(&args.name);
    if dir.exists() {
        return usage_error(format!("{} already exists", dir.display()));
    }
    if let Err(e) = write_crate(&dir, &args.name, &sdk) {
        return usage_error(format!("cannot create {}: {e}", dir.display()));
    }
    println!("created job crate {}", dir.display());
    println!("build it:  wasmjob build --path {}", dir.display());
    println!(
        "test it:   cargo test --manifest-path {}/Cargo.toml",
        dir.display()
    );
    EXIT_OK
}

fn write_crate(dir: &Path, name: &str, sdk: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("src"))?;
    let manifest = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

# A job is a WebAssembly component: build it with `wasmjob build`
# (cargo build --release --target wasm32-wasip2). The rlib lets
# `cargo test` run the handler natively.
[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
wasmjob-sdk = {{ path = {sdk:?} }}
serde = {{ version = "1", features = ["derive"] }}

[profile.release]
opt-level = 3
lto = true
codegen-units = 1

# Not part of any enclosing workspace.
[workspace]
"#,
        sdk = sdk.display().to_string()
    );
    std::fs::write(dir.join("Cargo.toml"), manifest)?;
    std::fs::write(dir.join("src/lib.rs"), LIB_RS)?;
    std::fs::write(dir.join(".gitignore"), "/target\n")?;
    Ok(())
}

const LIB_RS: &str = r#"//! A wasmjob job: JSON in, JSON out, in a sandbox with fuel, memory and
//! time limits. Errors returned with `?` are retried; `JobError::fatal`
//! (or `.fatal()?`) is not.

use serde::{Deserialize, Serialize};
use wasmjob_sdk::JobError;

/// The job's input.
#[derive(Debug, Deserialize)]
pub struct Input {
    /// Whom to greet.
    pub name: String,
}

/// The job's output.
#[derive(Debug, PartialEq, Serialize)]
pub struct Output {
    /// The greeting.
    pub greeting: String,
}

/// Greets by name.
#[wasmjob_sdk::job]
pub fn run(input: Input) -> Result<Output, JobError> {
    if input.name.trim().is_empty() {
        return Err(JobError::fatal("name must not be empty"));
    }
    wasmjob_sdk::info!("greeting {} (attempt {})", input.name, wasmjob_sdk::info().attempt);
    wasmjob_sdk::progress(100, "done");
    Ok(Output {
        greeting: format!("Hello, {}!", input.name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greets() {
        let output = run(Input { name: "Ada".into() }).unwrap();
        assert_eq!(output.greeting, "Hello, Ada!");
    }

    #[test]
    fn an_empty_name_is_fatal() {
        assert!(run(Input { name: " ".into() }).unwrap_err().is_fatal());
    }
}
"#;

/// `wasmjob build`: `cargo build --release --target wasm32-wasip2`, then
/// prints the path of the component.
pub fn build(args: BuildArgs) -> u8 {
    let dir = args.path.unwrap_or_else(|| PathBuf::from("."));
    let manifest = dir.join("Cargo.toml");
    if !manifest.exists() {
        return usage_error(format!("no Cargo.toml in {}", dir.display()));
    }
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    command
        .args([
            "build",
            "--target",
            "wasm32-wasip2",
            "--message-format=short",
        ])
        .arg("--manifest-path")
        .arg(&manifest);
    if !args.debug {
        command.arg("--release");
    }
    let status = match command.status() {
        Ok(status) => status,
        Err(e) => return usage_error(format!("cannot run cargo: {e}")),
    };
    if !status.success() {
        return usage_error(
            "the build failed (see above); is the target installed? rustup target add wasm32-wasip2",
        );
    }
    let name = match crate_name(&manifest) {
        Some(name) => name,
        None => return usage_error("cannot read the package name from Cargo.toml"),
    };
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("target"));
    let profile = if args.debug { "debug" } else { "release" };
    let wasm = target_dir
        .join("wasm32-wasip2")
        .join(profile)
        .join(format!("{}.wasm", name.replace('-', "_")));
    if !wasm.exists() {
        return usage_error(format!("built, but {} is missing", wasm.display()));
    }
    println!("{}", wasm.display());
    EXIT_OK
}

fn crate_name(manifest: &Path) -> Option<String> {
    let text = std::fs::read_to_string(manifest).ok()?;
    let value: toml::Table = toml::from_str(&text).ok()?;
    value
        .get("package")?
        .get("name")?
        .as_str()
        .map(str::to_owned)
}
