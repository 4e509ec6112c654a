//! Compilation as a bounded resource: concurrent compiles capped (uploads
//! past the cap refused with 503 and `Retry-After`), identical loads
//! compiled once, artifacts written only for accepted modules and deleted
//! with their module or when nothing needs them.

use crate::api::{Api, error_code};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Barrier};
use wasmjob::api::{ApiConfig, router};
use wasmjob::engine::{Engine, EngineConfig, LoadError};
use wasmjob::queue::QueueConfig;
use wasmjob_tests::guests;
use wasmjob_tests::host::Host;

/// The artifact files in `dir`, by name.
fn artifacts(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_refused_module_leaves_no_artifact_and_an_accepted_one_does() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(EngineConfig {
        concurrency: 1,
        cache_dir: Some(dir.path().to_owned()),
        ..EngineConfig::default()
    })
    .unwrap();
    // Both compile, then fail the checks that follow the compile.
    let not_a_job = wat::parse_str("(component)").unwrap();
    assert!(
        matches!(engine.load(&not_a_job), Err(LoadError::NotAJob(_))),
        "a component without `run`"
    );
    let unknown_import =
        wat::parse_str(r#"(module (import "env" "nothing" (func)) (func (export "_start")))"#)
            .unwrap();
    assert!(matches!(
        engine.load(&unknown_import),
        Err(LoadError::UnknownImport(_))
    ));
    assert_eq!(artifacts(dir.path()), Vec::<String>::new());

    let hello = engine
        .load(&wasmjob_tests::guest_bytes(guests::HELLO))
        .unwrap();
    let files = artifacts(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].starts_with(&hello.hash().to_hex().to_string()));
}

#[test]
fn identical_loads_at_the_same_time_compile_once() {
    let engine = Engine::new(EngineConfig {
        concurrency: 1,
        ..EngineConfig::default()
    })
    .unwrap();
    let bytes = Arc::new(wasmjob_tests::guest_bytes(guests::HELLO));
    let start = Arc::new(Barrier::new(4));
    let loads: Vec<_> = (0..4)
        .map(|_| {
            let (engine, bytes, start) = (engine.clone(), bytes.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                engine.load(&bytes).map(|module| module.hash())
            })
        })
        .collect();
    let hashes: HashSet<_> = loads
        .into_iter()
        .map(|load| load.join().unwrap().unwrap())
        .collect();
    assert_eq!(hashes.len(), 1);
    assert_eq!(engine.compiles_finished(), 1, "four loads, one compile");
}

#[tokio::test]
async fn an_upload_past_the_compile_bound_is_refused_busy_and_nothing_is_stored() {
    let api = Api {
        host: Host::with_engine(QueueConfig::default(), |engine| EngineConfig {
            max_concurrent_compiles: 1,
            ..engine
        }),
        config: ApiConfig::default(),
    };
    let slot = api.host.queue.engine().occupy_compile_slot().unwrap();
    let app = router(api.host.queue.clone(), api.config.clone());
    let upload = || {
        Request::post("/v1/modules?name=hello")
            .body(Body::from(wasmjob_tests::guest_bytes(guests::HELLO)))
            .unwrap()
    };
    use tower::ServiceExt;
    let response = app.clone().oneshot(upload()).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let (_, body) = api.call(upload()).await;
    assert_eq!(error_code(&body), "busy", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 at once"),
        "{body}"
    );
    let (_, modules) = api.get("/v1/modules").await;
    assert_eq!(
        modules["modules"].as_array().map(Vec::len),
        Some(0),
        "{modules}"
    );

    drop(slot);
    let (status, body) = api.call(upload()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn deleting_a_module_deletes_its_artifact_and_start_up_collects_the_rest() {
    let host = Host::new(QueueConfig::default());
    let dir = host.dir.path().join("artifacts");
    let hello = host.upload(guests::HELLO).await;
    let files = artifacts(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    host.queue.delete_module(&hello).await.unwrap();
    assert_eq!(artifacts(&dir), Vec::<String>::new());

    // What a crash, a deleted module's leftover or an older wasmtime leaves.
    let hello = host.upload(guests::HELLO).await;
    let kept = artifacts(&dir);
    let compat = kept[0]
        .split_once('-')
        .unwrap()
        .1
        .split_once('.')
        .unwrap()
        .0;
    let unknown = "0".repeat(64);
    for junk in [
        format!("{unknown}-{compat}.component.cwasm"),
        format!("{hello}-0123456789abcdef.component.cwasm"),
        ".tmpAbC123".to_owned(),
    ] {
        std::fs::write(dir.join(junk), b"junk").unwrap();
    }
    assert_eq!(host.queue.collect_artifacts().await.unwrap(), 3);
    assert_eq!(artifacts(&dir), kept);
    // The kept artifact still loads after a restart's cache lookup.
    assert_eq!(host.queue.collect_artifacts().await.unwrap(), 0);
}
