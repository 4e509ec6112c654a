//! Per-invocation sandbox overhead: instantiate a fresh instance, call a
//! no-op `run`, tear it down. Component and command-module paths, with and
//! without fuel metering.
//!
//! Run with `cargo bench -p wasmjob-tests --bench overhead`; set
//! `WASMJOB_BENCH_ITERS` to change the number of timed invocations (the CI
//! smoke run uses a small number). Prints a table and one JSON line.

use std::sync::{Arc, Mutex};
use std::time::Instant;
use wasmjob::engine::{Engine, EngineConfig, Invocation, Module};
use wasmjob::limits::Limits;
use wasmjob_tests::{guest_bytes, guests, runtime};

const NOOP_COMMAND: &str = r#"(module (memory (export "memory") 1) (func (export "_start")))"#;

struct Row {
    name: &'static str,
    median_us: f64,
    p99_us: f64,
    mean_us: f64,
}

fn main() {
    let iters: usize = std::env::var("WASMJOB_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let component = guest_bytes(guests::NOOP);
    let command = wat::parse_str(NOOP_COMMAND).expect("valid WAT");
    let mut rows = Vec::new();
    for fuel in [true, false] {
        let engine = Engine::new(EngineConfig {
            concurrency: 4,
            fuel_metering: fuel,
            ..EngineConfig::default()
        })
        .expect("engine");
        let comp = engine.load(&component).expect("noop component");
        let cmd = engine.load(&command).expect("noop command");
        rows.push(measure(
            if fuel {
                "component, fuel"
            } else {
                "component, no fuel"
            },
            &engine,
            &comp,
            b"null",
            iters,
        ));
        rows.push(measure(
            if fuel {
                "command, fuel"
            } else {
                "command, no fuel"
            },
            &engine,
            &cmd,
            b"",
            iters,
        ));
    }
    println!(
        "{:<22} {:>12} {:>12} {:>12}",
        "path", "median µs", "p99 µs", "mean µs"
    );
    for row in &rows {
        println!(
            "{:<22} {:>12.1} {:>12.1} {:>12.1}",
            row.name, row.median_us, row.p99_us, row.mean_us
        );
    }
    let json: Vec<_> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "path": r.name, "median_us": r.median_us, "p99_us": r.p99_us, "mean_us": r.mean_us,
                "iterations": iters,
            })
        })
        .collect();
    let cancel = cancel_latency(&component_engine(), 20);
    println!(
        "cancel latency (running guest, cancel() to report): median {:.2} ms, max {:.2} ms",
        cancel.0, cancel.1
    );
    println!(
        "{}",
        serde_json::json!({
            "sandbox_overhead": json,
            "cancel_latency_ms": { "median": cancel.0, "max": cancel.1 },
        })
    );
}

fn component_engine() -> Engine {
    Engine::new(EngineConfig {
        concurrency: 4,
        ..EngineConfig::default()
    })
    .expect("engine")
}

/// Cancels a spinning guest from another thread once it reports progress,
/// and measures the time from `cancel()` to the report: (median, max) ms.
fn cancel_latency(engine: &Engine, runs: usize) -> (f64, f64) {
    let module = engine
        .load(&guest_bytes(guests::INFINITE_LOOP))
        .expect("infinite-loop");
    let rt = runtime();
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let mut invocation = Invocation::new("{}").with_limits(Limits {
            fuel: u64::MAX / 2,
            timeout_ms: 60_000,
            ..Limits::default()
        });
        let cancel = invocation.cancel.clone();
        let cancelled_at = Arc::new(Mutex::new(None));
        let stamp = cancelled_at.clone();
        invocation.progress = Some(Arc::new(move |_| {
            let (cancel, stamp) = (cancel.clone(), stamp.clone());
            std::thread::spawn(move || {
                *stamp.lock().unwrap() = Some(Instant::now());
                cancel.cancel();
            });
        }));
        let report = rt
            .block_on(engine.execute(&module, invocation))
            .expect("host ok");
        let ended = Instant::now();
        assert_eq!(
            report.failure_kind(),
            Some(wasmjob::report::FailureKind::Cancelled)
        );
        let at = cancelled_at.lock().unwrap().expect("cancel was issued");
        samples.push(ended.duration_since(at).as_secs_f64() * 1_000.0);
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (samples[samples.len() / 2], samples[samples.len() - 1])
}

fn measure(
    name: &'static str,
    engine: &Engine,
    module: &Module,
    input: &[u8],
    iters: usize,
) -> Row {
    let rt = runtime();
    let limits = Limits::default();
    let warmup = (iters / 10).max(10);
    let mut samples = Vec::with_capacity(iters);
    rt.block_on(async {
        for i in 0..warmup + iters {
            let invocation = Invocation::new(input.to_vec()).with_limits(limits);
            let start = Instant::now();
            let report = engine.execute(module, invocation).await.expect("host ok");
            let elapsed = start.elapsed();
            assert!(report.is_success(), "{name}: {report:?}");
            if i >= warmup {
                samples.push(elapsed.as_nanos() as f64 / 1_000.0);
            }
        }
    });
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    Row {
        name,
        median_us: pick(0.5),
        p99_us: pick(0.99),
        mean_us: samples.iter().sum::<f64>() / samples.len() as f64,
    }
}
