//! Components built with the guest SDK (the example jobs): success, every
//! failure kind with its figures, bounds on logs and output, cancellation.

use serde_json::json;
use std::sync::Arc;
use wasmjob::engine::{EngineConfig, Invocation, JobInfo, ProgressSink};
use wasmjob::limits::Limits;
use wasmjob::report::{FailureKind, Level, ModuleKind, Report};
use wasmjob_tests::{HANG, engine, engine_with, guests, load, run, run_json, runtime, test_limits};

fn run_with(path: &str, input: serde_json::Value, limits: Limits) -> Report {
    let engine = engine();
    let module = load(&engine, path);
    run(
        &engine,
        &module,
        Invocation::new(input.to_string()).with_limits(limits),
    )
}

#[test]
fn hello_greets_logs_and_reports_progress() {
    let engine = engine();
    let module = load(&engine, guests::HELLO);
    assert_eq!(module.kind(), ModuleKind::Component);
    let report = run_json(&engine, &module, json!({"name": "Ada"}));
    assert!(report.is_success(), "{report:#?}");
    assert_eq!(
        report.output.as_ref().unwrap().value(),
        json!({"greeting": "Hello, Ada!"})
    );
    assert!(
        report.logs.iter().any(|r| r.level == Level::Info),
        "{:?}",
        report.logs
    );
    assert_eq!(report.progress.as_ref().map(|p| p.percent), Some(100));
    assert!(report.fuel.consumed.unwrap() > 0);
    assert!(report.memory.peak_bytes > 0);
    assert!(report.memory.peak_bytes <= report.memory.limit_bytes);
}

#[test]
fn word_freq_counts_words() {
    let report = run_with(
        guests::WORD_FREQ,
        json!({"text": "the cat and the hat, the end", "top": 2}),
        test_limits(),
    );
    assert!(report.is_success(), "{report:#?}");
    let output = report.output.unwrap().value();
    assert_eq!(output["total_words"], 7);
    assert_eq!(output["top"][0], json!(["the", 3]));
}

#[test]
fn fuel_grows_with_the_work() {
    let engine = engine();
    let module = load(&engine, guests::FIB);
    let small = run_json(&engine, &module, json!({"n": 10}));
    let large = run_json(&engine, &module, json!({"n": 20}));
    assert_eq!(large.output.as_ref().unwrap().value()["value"], 6765);
    let (small, large) = (small.fuel.consumed.unwrap(), large.fuel.consumed.unwrap());
    assert!(
        large > small * 10,
        "fib(20) used {large} fuel, fib(10) {small}"
    );
}

#[test]
fn flaky_fails_retryably_until_its_attempt() {
    let engine = engine();
    let module = load(&engine, guests::FLAKY);
    let attempt = |n: u32| {
        let mut invocation =
            Invocation::new(json!({"succeed_on": 3}).to_string()).with_limits(test_limits());
        invocation.info = JobInfo {
            id: "job-1".to_owned(),
            attempt: n,
            max_attempts: 5,
            priority: 2,
        };
        run(&engine, &module, invocation)
    };
    let first = attempt(1);
    let failure = first.failure.expect("attempt 1 fails");
    assert_eq!(failure.kind, FailureKind::GuestError);
    assert!(failure.retryable);
    let third = attempt(3);
    assert!(third.is_success(), "{third:#?}");
    assert_eq!(third.output.unwrap().value()["attempt"], 3);
}

#[test]
fn a_component_that_calls_exit_0_succeeds_with_a_null_output() {
    let report = run_with(guests::EXIT, json!({"code": 0}), test_limits());
    assert!(report.is_success(), "{report:#?}");
    assert_eq!(report.output.unwrap().as_str(), "null");
    assert_eq!(report.logs[0].message, "exiting with code 0");
    // WASI preview 2's exit carries success or failure, not the code.
    let report = run_with(guests::EXIT, json!({"code": 3}), test_limits());
    let failure = report.failure.expect("a failure");
    assert_eq!(failure.kind, FailureKind::ExitCode);
    assert_eq!((failure.exit_code, failure.retryable), (Some(1), true));
}

#[test]
fn fatal_errors_are_not_retryable() {
    let report = run_with(guests::FATAL, json!({}), test_limits());
    let failure = report.failure.expect("failed");
    assert_eq!(failure.kind, FailureKind::FatalError);
    assert!(!failure.retryable);
}

#[test]
fn input_that_does_not_deserialize_is_fatal_and_names_the_field() {
    let report = run_with(guests::FIB, json!({"n": "twenty"}), test_limits());
    let failure = report.failure.expect("failed");
    assert_eq!(failure.kind, FailureKind::FatalError);
    assert!(failure.message.contains('n'), "{}", failure.message);
    assert!(
        failure.message.contains("invalid type"),
        "{}",
        failure.message
    );
}

#[test]
fn a_panic_is_a_trap_with_backtrace_and_message() {
    let report = run_with(guests::PANIC, json!({}), test_limits());
    let failure = report.failure.as_ref().expect("failed");
    assert_eq!(failure.kind, FailureKind::Trap);
    assert!(failure.retryable);
    assert_eq!(
        failure.trap_code.as_deref(),
        Some("unreachable_code_reached")
    );
    assert!(
        failure.backtrace.iter().any(|f| f.function.is_some()),
        "{:?}",
        failure.backtrace
    );
    assert!(
        report.stderr.tail.contains("deliberate panic"),
        "{:?}",
        report.stderr
    );
}

#[test]
fn an_infinite_loop_runs_out_of_fuel_exactly_at_the_limit() {
    let limits = Limits {
        fuel: 10_000_000,
        ..test_limits()
    };
    let report = run_with(guests::INFINITE_LOOP, json!({}), limits);
    assert_eq!(report.failure_kind(), Some(FailureKind::OutOfFuel));
    assert_eq!(report.fuel.consumed, Some(10_000_000));
    assert_eq!(report.fuel.limit, 10_000_000);
}

#[test]
fn an_infinite_loop_without_fuel_metering_times_out() {
    let engine = engine_with(EngineConfig {
        fuel_metering: false,
        ..EngineConfig::default()
    });
    let module = load(&engine, guests::INFINITE_LOOP);
    let limits = Limits {
        timeout_ms: 150,
        ..test_limits()
    };
    let report = run(&engine, &module, Invocation::new("{}").with_limits(limits));
    assert_eq!(report.failure_kind(), Some(FailureKind::Timeout));
    assert!(report.duration_us >= 150_000);
}

#[test]
fn memory_exhaustion_that_aborts_is_memory_limit() {
    let report = run_with(guests::MEMORY_HOG, json!({"mode": "abort"}), test_limits());
    let failure = report.failure.as_ref().expect("failed");
    assert_eq!(failure.kind, FailureKind::MemoryLimit, "{report:#?}");
    assert!(report.memory.peak_bytes <= report.memory.limit_bytes);
    assert!(
        report.memory.peak_bytes > report.memory.limit_bytes / 2,
        "the hog got close to the limit: {:?}",
        report.memory
    );
}

#[test]
fn memory_exhaustion_that_then_spins_is_still_memory_limit() {
    let limits = Limits {
        fuel: 50_000_000,
        ..test_limits()
    };
    let report = run_with(guests::MEMORY_HOG, json!({"mode": "spin"}), limits);
    assert_eq!(
        report.failure_kind(),
        Some(FailureKind::MemoryLimit),
        "{report:#?}"
    );
    assert_eq!(
        report.fuel.consumed,
        Some(50_000_000),
        "it did spin until fuel ran out"
    );
}

#[test]
fn deep_recursion_on_the_wasm_stack_is_stack_overflow() {
    let report = run_with(guests::STACK_OVERFLOW, json!({}), test_limits());
    let failure = report.failure.expect("failed");
    assert_eq!(failure.kind, FailureKind::StackOverflow);
    assert_eq!(failure.trap_code.as_deref(), Some("stack_overflow"));
}

#[test]
fn deep_recursion_on_the_shadow_stack_is_stack_overflow() {
    let report = run_with(
        guests::STACK_OVERFLOW,
        json!({"mode": "shadow"}),
        test_limits(),
    );
    let failure = report.failure.expect("failed");
    assert_eq!(failure.kind, FailureKind::StackOverflow, "{failure:#?}");
    assert!(
        failure.message.contains("shadow stack"),
        "{}",
        failure.message
    );
}

#[test]
fn logs_and_stderr_are_bounded() {
    let limits = Limits {
        log_records: 100,
        stdio_tail_bytes: 1024,
        ..test_limits()
    };
    let input =
        json!({"lines": 1000, "bytes_per_line": 50, "progress_steps": 10, "output_bytes": 0});
    let report = run_with(guests::CHATTY, input, limits);
    assert!(report.is_success(), "{report:#?}");
    assert_eq!(report.logs.len(), 100);
    assert_eq!(report.logs_dropped, 900);
    assert!(report.stderr.tail.len() <= 1024);
    assert!(report.stderr.total_bytes >= 1000 * 50);
}

#[test]
fn output_past_the_limit_is_output_limit() {
    let limits = Limits {
        output_bytes: 1000,
        ..test_limits()
    };
    let input = json!({"lines": 0, "bytes_per_line": 0, "progress_steps": 0, "output_bytes": 5000});
    let report = run_with(guests::CHATTY, input, limits);
    assert_eq!(report.failure_kind(), Some(FailureKind::OutputLimit));
}

#[test]
fn a_memory_limit_below_the_initial_memory_fails_the_component() {
    let limits = Limits {
        memory_bytes: 64 * 1024,
        ..test_limits()
    };
    let report = run_with(guests::HELLO, json!({"name": "x"}), limits);
    assert_eq!(
        report.failure_kind(),
        Some(FailureKind::MemoryLimit),
        "{report:#?}"
    );
}

#[test]
fn a_running_job_is_cancelled_from_another_thread() {
    let engine = engine();
    let module = load(&engine, guests::INFINITE_LOOP);
    let mut invocation = Invocation::new("{}").with_limits(Limits {
        fuel: u64::MAX / 2,
        timeout_ms: HANG.as_millis() as u64 * 2,
        ..test_limits()
    });
    // The guest reports progress once it is running; cancel from another
    // thread at that moment.
    let cancel = invocation.cancel.clone();
    let sink: ProgressSink = Arc::new(move |_| {
        let cancel = cancel.clone();
        std::thread::spawn(move || cancel.cancel());
    });
    invocation.progress = Some(sink);
    let report = runtime()
        .block_on(async { tokio::time::timeout(HANG, engine.execute(&module, invocation)).await })
        .expect("the job stopped")
        .unwrap();
    assert_eq!(
        report.failure_kind(),
        Some(FailureKind::Cancelled),
        "{report:#?}"
    );
    assert!(report.progress.is_some(), "it was running when cancelled");
}
