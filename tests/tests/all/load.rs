//! Load-time rejections: each with its own clear message.

use crate::wat;
use std::time::Duration;
use wasmjob::engine::{EngineConfig, LoadError};
use wasmjob::report::ModuleKind;
use wasmjob_tests::{engine, engine_with, guest_bytes, guests};

#[test]
fn bytes_that_are_not_wasm_are_refused() {
    let error = engine().load(b"#!/bin/sh\necho hi\n").unwrap_err();
    assert!(matches!(error, LoadError::NotWasm(_)), "{error}");
    assert!(
        error.to_string().contains("not a WebAssembly module"),
        "{error}"
    );
}

#[test]
fn native_artifacts_are_refused() {
    let wasmtime = wasmtime::Engine::default();
    let artifact = wasmtime.precompile_module(&wat::spin()).unwrap();
    let error = engine().load(&artifact).unwrap_err();
    assert!(matches!(error, LoadError::NativeArtifact), "{error}");
    assert!(
        error.to_string().contains("precompiled native artifacts"),
        "{error}"
    );
}

#[test]
fn a_component_without_the_job_world_says_what_is_missing() {
    let error = engine().load(&wat::empty_component()).unwrap_err();
    assert!(matches!(error, LoadError::NotAJob(_)), "{error}");
    let message = error.to_string();
    assert!(message.contains("missing export `run"), "{message}");
    assert!(message.contains("it exports nothing"), "{message}");
}

#[test]
fn a_component_with_the_wrong_run_signature_is_refused() {
    let error = engine().load(&wat::component_with_wrong_run()).unwrap_err();
    assert!(matches!(error, LoadError::NotAJob(_)), "{error}");
    assert!(error.to_string().contains("run"), "{error}");
}

#[test]
fn an_unknown_import_is_named() {
    let error = engine().load(&wat::unknown_import()).unwrap_err();
    assert!(matches!(error, LoadError::UnknownImport(_)), "{error}");
    assert!(error.to_string().contains("launch_missiles"), "{error}");
}

#[test]
fn initial_memory_above_the_limit_is_refused() {
    let engine = engine_with(EngineConfig {
        max_memory_bytes: 64 * 1024 * 1024,
        ..EngineConfig::default()
    });
    let error = engine.load(&wat::big_memory(2000)).unwrap_err();
    match error {
        LoadError::InitialMemory { initial, limit } => {
            assert_eq!(initial, 2000 * 65536);
            assert_eq!(limit, 64 * 1024 * 1024);
        }
        other => panic!("expected InitialMemory, got {other}"),
    }
    // Just under the limit loads.
    engine.load(&wat::big_memory(1024)).unwrap();
}

#[test]
fn a_core_module_without_start_is_not_a_command() {
    let error = engine().load(&wat::reactor()).unwrap_err();
    assert!(matches!(error, LoadError::NotACommand(_)), "{error}");
    assert!(error.to_string().contains("_start"), "{error}");
}

#[test]
fn modules_over_the_size_limit_are_refused() {
    let engine = engine_with(EngineConfig {
        max_module_bytes: 16,
        ..EngineConfig::default()
    });
    let error = engine.load(&wat::echo()).unwrap_err();
    assert!(
        matches!(error, LoadError::TooLarge { max: 16, .. }),
        "{error}"
    );
}

#[test]
fn compiling_past_the_time_limit_is_refused() {
    let slow = wat::many_functions(3_000);
    let engine = engine_with(EngineConfig {
        compile_timeout: Duration::from_micros(1),
        ..EngineConfig::default()
    });
    let error = engine.load(&slow).unwrap_err();
    assert!(matches!(error, LoadError::CompileTimeout(_)), "{error}");
    // The same module loads with the default limit.
    assert_eq!(
        wasmjob_tests::engine().load(&slow).unwrap().kind(),
        ModuleKind::Command
    );
}

#[test]
fn invalid_wasm_is_refused_with_the_validator_message() {
    let mut bytes = wat::echo();
    bytes.truncate(bytes.len() - 3);
    let error = engine().load(&bytes).unwrap_err();
    assert!(matches!(error, LoadError::Invalid(_)), "{error}");
}

#[test]
fn kinds_are_detected_and_loading_is_idempotent() {
    let engine = engine();
    let component = engine.load(&guest_bytes(guests::HELLO)).unwrap();
    assert_eq!(component.kind(), ModuleKind::Component);
    let command = engine.load(&wat::echo()).unwrap();
    assert_eq!(command.kind(), ModuleKind::Command);
    let again = engine.load(&guest_bytes(guests::HELLO)).unwrap();
    assert_eq!(again.hash(), component.hash());
    assert_eq!(
        component.hash().to_hex().as_str(),
        blake3::hash(&guest_bytes(guests::HELLO)).to_hex().as_str()
    );
}

#[test]
fn compiled_artifacts_are_reused_across_engines() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        cache_dir: Some(dir.path().to_owned()),
        ..EngineConfig::default()
    };
    let first = engine_with(config.clone())
        .load(&guest_bytes(guests::HELLO))
        .unwrap();
    assert!(!first.from_artifact_cache());
    let artifacts = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(artifacts, 1, "one artifact written");
    let engine = engine_with(config);
    let second = engine.load(&guest_bytes(guests::HELLO)).unwrap();
    assert!(second.from_artifact_cache());
    let report = wasmjob_tests::run_json(&engine, &second, serde_json::json!({"name": "Cache"}));
    assert!(report.is_success(), "{report:?}");
}
