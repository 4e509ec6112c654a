//! WASI preview 1 command modules not built with our SDK: input on stdin,
//! output from stdout, exit code 0 is success.

use crate::wat;
use wasmjob::engine::{Engine, EngineConfig, Invocation, Module};
use wasmjob::limits::Limits;
use wasmjob::report::{FailureKind, ModuleKind, Report};
use wasmjob_tests::{HANG, engine, engine_with, run, runtime, test_limits};

fn invocation(input: &[u8]) -> Invocation {
    Invocation::new(input.to_vec()).with_limits(test_limits())
}

/// Runs `module` with empty stdin under `limits`.
fn run_empty(engine: &Engine, module: &Module, limits: Limits) -> Report {
    run(engine, module, Invocation::new(vec![]).with_limits(limits))
}

#[test]
fn stdin_in_stdout_out() {
    let engine = engine();
    let module = engine.load(&wat::echo()).unwrap();
    assert_eq!(module.kind(), ModuleKind::Command);
    let report = run(&engine, &module, invocation(br#"{"hello":"world"}"#));
    assert!(report.is_success(), "{report:?}");
    assert_eq!(report.output.unwrap().as_str(), r#"{"hello":"world"}"#);
    assert_eq!(report.kind, ModuleKind::Command);
    assert!(report.fuel.consumed.unwrap() > 0);
}

#[test]
fn non_zero_exit_is_a_retryable_failure_with_the_code() {
    let engine = engine();
    let module = engine.load(&wat::exit_with(3)).unwrap();
    let report = run(&engine, &module, invocation(b""));
    let failure = report.failure.as_ref().expect("failed");
    assert_eq!(failure.kind, FailureKind::ExitCode);
    assert_eq!(failure.exit_code, Some(3));
    assert!(failure.retryable);
    assert_eq!(report.stderr.tail, "bye");
}

#[test]
fn exit_zero_is_success() {
    let engine = engine();
    let module = engine.load(&wat::exit_with(0)).unwrap();
    let report = run(&engine, &module, invocation(b""));
    assert!(report.is_success(), "{report:?}");
}

#[test]
fn a_spinning_command_runs_out_of_fuel_exactly() {
    let engine = engine();
    let module = engine.load(&wat::spin()).unwrap();
    let limits = Limits {
        fuel: 5_000_000,
        ..test_limits()
    };
    let report = run_empty(&engine, &module, limits);
    assert_eq!(report.failure_kind(), Some(FailureKind::OutOfFuel));
    assert_eq!(report.fuel.consumed, Some(5_000_000));
    assert_eq!(report.fuel.limit, 5_000_000);
    assert_eq!(
        report.failure.unwrap().trap_code.as_deref(),
        Some("out_of_fuel")
    );
}

#[test]
fn stdout_past_the_output_limit_is_output_limit() {
    let engine = engine();
    let module = engine.load(&wat::flood(4)).unwrap();
    let limits = Limits {
        output_bytes: 100_000,
        ..test_limits()
    };
    let report = run_empty(&engine, &module, limits);
    assert_eq!(report.failure_kind(), Some(FailureKind::OutputLimit));
    assert_eq!(report.stdout.total_bytes, 4 * 65536);
}

#[test]
fn a_spinning_command_without_fuel_metering_times_out() {
    let engine = engine_with(EngineConfig {
        fuel_metering: false,
        ..EngineConfig::default()
    });
    let module = engine.load(&wat::spin()).unwrap();
    let limits = Limits {
        timeout_ms: 200,
        ..test_limits()
    };
    let report = run_empty(&engine, &module, limits);
    assert_eq!(report.failure_kind(), Some(FailureKind::Timeout));
    assert_eq!(report.fuel.consumed, None);
    assert!(report.duration_us >= 200_000, "stopped before the deadline");
}

#[test]
fn time_spent_sleeping_in_a_host_call_still_times_out() {
    let engine = engine();
    let module = engine.load(&wat::sleep_an_hour()).unwrap();
    let limits = Limits {
        timeout_ms: 200,
        ..test_limits()
    };
    let report = run_empty(&engine, &module, limits);
    assert_eq!(report.failure_kind(), Some(FailureKind::Timeout));
}

#[test]
fn a_command_sleeping_in_a_host_call_can_be_cancelled() {
    let engine = engine();
    let module = engine.load(&wat::sleep_an_hour()).unwrap();
    let invocation = Invocation::new(vec![]).with_limits(Limits {
        timeout_ms: HANG.as_millis() as u64 * 2,
        ..test_limits()
    });
    let cancel = invocation.cancel.clone();
    let canceller = std::thread::spawn(move || cancel.cancel());
    let report = runtime()
        .block_on(async { tokio::time::timeout(HANG, engine.execute(&module, invocation)).await })
        .expect("cancellation stops the job")
        .unwrap();
    canceller.join().unwrap();
    let failure = report.failure.expect("failed");
    assert_eq!(failure.kind, FailureKind::Cancelled);
    assert!(!failure.retryable);
}

#[test]
fn a_division_by_zero_is_a_retryable_trap_with_its_code() {
    let engine = engine();
    let module = engine.load(&wat::divide_by_zero()).unwrap();
    let report = run_empty(&engine, &module, test_limits());
    let failure = report.failure.expect("failed");
    assert_eq!(failure.kind, FailureKind::Trap);
    assert_eq!(
        failure.trap_code.as_deref(),
        Some("integer_division_by_zero")
    );
    assert!(failure.retryable);
    assert!(failure.message.contains("divi"), "{}", failure.message);
    assert!(!failure.backtrace.is_empty(), "where it trapped");
}

#[test]
fn a_memory_limit_below_the_initial_memory_fails_at_instantiation() {
    let engine = engine();
    let module = engine.load(&wat::big_memory(16)).unwrap();
    let limits = Limits {
        memory_bytes: 8 * 65536,
        ..test_limits()
    };
    let report = run_empty(&engine, &module, limits);
    assert_eq!(report.failure_kind(), Some(FailureKind::MemoryLimit));
    assert!(report.memory.peak_bytes <= report.memory.limit_bytes);
}
