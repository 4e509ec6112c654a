//! Shared fixtures for wasmjob's integration tests and benchmarks: the
//! example jobs compiled by `build.rs`, and small helpers to load and run
//! them with real engines.

use std::time::Duration;
use wasmjob::engine::{Engine, EngineConfig, Invocation, Module};
use wasmjob::limits::Limits;
use wasmjob::report::Report;

/// Paths of the example jobs, built for `wasm32-wasip2` by `build.rs`.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// Reads a guest's bytes.
pub fn guest_bytes(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading guest {path}: {e}"))
}

/// An engine for tests: small pool, default limits.
pub fn engine() -> Engine {
    engine_with(EngineConfig {
        concurrency: 4,
        ..EngineConfig::default()
    })
}

/// An engine with a given configuration.
pub fn engine_with(config: EngineConfig) -> Engine {
    Engine::new(config).expect("engine")
}

/// Loads a guest from its path.
pub fn load(engine: &Engine, path: &str) -> Module {
    engine
        .load(&guest_bytes(path))
        .unwrap_or_else(|e| panic!("loading {path}: {e}"))
}

/// Limits for tests: small enough that runaway guests stop fast.
pub fn test_limits() -> Limits {
    Limits {
        fuel: 200_000_000,
        memory_bytes: 32 * 1024 * 1024,
        timeout_ms: 60_000,
        ..Limits::default()
    }
}

/// Runs one invocation to completion on a fresh current-thread runtime.
pub fn run(engine: &Engine, module: &Module, invocation: Invocation) -> Report {
    runtime()
        .block_on(engine.execute(module, invocation))
        .expect("the host ran the job")
}

/// Runs `module` with JSON `input` and [`test_limits`].
pub fn run_json(engine: &Engine, module: &Module, input: serde_json::Value) -> Report {
    let invocation = Invocation::new(input.to_string()).with_limits(test_limits());
    run(engine, module, invocation)
}

/// A current-thread runtime with timers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A generous bound for tests that wait on something that must happen:
/// reaching it means the behaviour under test is broken, not slow.
pub const HANG: Duration = Duration::from_secs(60);
