//! Scenario 1: sandbox overhead per invocation of a no-op job (a fresh
//! instance, the call, the teardown), component and command-module paths,
//! with and without fuel metering; and how long a cancel takes to stop a
//! running guest; and compute: the `fib` example job (naive recursion) with
//! fuel on and off against the same function compiled natively into this
//! binary, interleaved in one run. In-process: this is the engine alone.

use crate::Settings;
use crate::report::{Section, Stats, Target};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wasmjob::engine::{Engine, EngineConfig, Invocation, Module};
use wasmjob::limits::Limits;
use wasmjob_tests::{guest_bytes, guests, runtime};

const NOOP_COMMAND: &str = r#"(module (memory (export "memory") 1) (func (export "_start")))"#;

pub fn run(settings: &Settings) -> Section {
    let iterations = settings.pick(20_000, 50);
    let mut section = Section::new("1 sandbox overhead (in-process engine)");
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
        let metering = if fuel { "fuel" } else { "no fuel" };
        for (path, bytes, input) in [
            ("component", &component, &b"null"[..]),
            ("command module", &command, &b""[..]),
        ] {
            let module = engine.load(bytes).expect("noop module");
            let stats = measure(&engine, &module, input, iterations);
            let name = format!("{path}, {metering}: median");
            if path == "component" && fuel {
                section.target(name, stats.p50, "µs", Target::AtMost(20.0));
            } else {
                section.figure(name, stats.p50, "µs");
            }
            section.figure(format!("{path}, {metering}: p99"), stats.p99, "µs");
            let mut row = stats.json("us");
            row["path"] = format!("{path}, {metering}").into();
            rows.push(row);
        }
    }
    section.set("invocations", rows.into());
    let cancel = cancel_latency(settings.pick(20, 3));
    section.figure("cancel() to report: median", cancel.p50, "ms");
    section.figure("cancel() to report: max", cancel.max, "ms");
    section.set("cancel_latency", cancel.json("ms"));
    compute(settings, &mut section);
    section
}

/// The `fib` example job's function, compiled natively.
fn native_fib(n: u32) -> u64 {
    if n < 2 {
        u64::from(n)
    } else {
        native_fib(n - 1).wrapping_add(native_fib(n - 2))
    }
}

/// `fib(n)` natively, in wasm with fuel, in wasm without, one after the
/// other in each round: the medians (ms) and the ratios.
fn compute(settings: &Settings, section: &mut Section) {
    let n = settings.pick(32, 20) as u32;
    let rounds = settings.pick(15, 2);
    let engines: Vec<(Engine, Module)> = [true, false]
        .into_iter()
        .map(|fuel| {
            let engine = Engine::new(EngineConfig {
                concurrency: 4,
                fuel_metering: fuel,
                ..EngineConfig::default()
            })
            .expect("engine");
            let module = engine.load(&guest_bytes(guests::FIB)).expect("fib");
            (engine, module)
        })
        .collect();
    let input = format!("{{\"n\": {n}}}");
    let limits = Limits {
        fuel: u64::MAX / 2,
        timeout_ms: 600_000,
        ..Limits::default()
    };
    let rt = runtime();
    let (mut native, mut fuel, mut no_fuel) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..=rounds {
        let start = Instant::now();
        let value = native_fib(std::hint::black_box(n));
        let native_ms = start.elapsed().as_secs_f64() * 1e3;
        std::hint::black_box(value);
        let mut wasm_ms = [0.0; 2];
        for (i, (engine, module)) in engines.iter().enumerate() {
            let invocation = Invocation::new(input.clone().into_bytes()).with_limits(limits);
            let start = Instant::now();
            let report = rt
                .block_on(engine.execute(module, invocation))
                .expect("host ok");
            wasm_ms[i] = start.elapsed().as_secs_f64() * 1e3;
            assert!(report.is_success(), "{report:?}");
        }
        // The first round warms caches and the pool's slots.
        if round > 0 {
            native.push(native_ms);
            fuel.push(wasm_ms[0]);
            no_fuel.push(wasm_ms[1]);
        }
    }
    let (native, fuel, no_fuel) = (Stats::of(native), Stats::of(fuel), Stats::of(no_fuel));
    section.figure(format!("fib({n}) native: median"), native.p50, "ms");
    section.figure(format!("fib({n}) wasm, fuel on: median"), fuel.p50, "ms");
    section.figure(
        format!("fib({n}) wasm, fuel off: median"),
        no_fuel.p50,
        "ms",
    );
    section.figure("  wasm fuel on ÷ native", fuel.p50 / native.p50, "×");
    section.figure("  wasm fuel off ÷ native", no_fuel.p50 / native.p50, "×");
    section.figure("  fuel on ÷ fuel off", fuel.p50 / no_fuel.p50, "×");
    section.set(
        "compute",
        serde_json::json!({
            "n": n, "rounds": rounds, "native": native.json("ms"),
            "wasm_fuel": fuel.json("ms"), "wasm_no_fuel": no_fuel.json("ms"),
        }),
    );
}

/// µs per invocation after a warm-up.
fn measure(engine: &Engine, module: &Module, input: &[u8], iterations: usize) -> Stats {
    let rt = runtime();
    let warmup = (iterations / 10).max(10);
    let mut samples = Vec::with_capacity(iterations);
    rt.block_on(async {
        for i in 0..warmup + iterations {
            let invocation = Invocation::new(input.to_vec()).with_limits(Limits::default());
            let start = Instant::now();
            let report = engine.execute(module, invocation).await.expect("host ok");
            let elapsed = start.elapsed();
            assert!(report.is_success(), "{report:?}");
            if i >= warmup {
                samples.push(elapsed.as_nanos() as f64 / 1_000.0);
            }
        }
    });
    Stats::of(samples)
}

/// Cancels a spinning guest from another thread once it reports progress;
/// ms from `cancel()` to the report.
fn cancel_latency(runs: usize) -> Stats {
    let engine = Engine::new(EngineConfig {
        concurrency: 4,
        ..EngineConfig::default()
    })
    .expect("engine");
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
    Stats::of(samples)
}
