//! Modules: content-addressed files, names, corruption and deletion.

use super::*;
use crate::job::JobState;
use crate::store::Error;

fn module_bytes(n: u8) -> (String, Vec<u8>) {
    let bytes = vec![0, b'a', b's', b'm', n];
    (blake3::hash(&bytes).to_hex().to_string(), bytes)
}

fn file(f: &Fixture, hash: &str) -> std::path::PathBuf {
    f.dir.path().join("modules").join(format!("{hash}.wasm"))
}

#[tokio::test]
async fn uploading_the_same_bytes_twice_is_idempotent() {
    let f = fixture().await;
    let (hash, bytes) = module_bytes(1);
    let first = f
        .store
        .put_module(&hash, ModuleKind::Component, &bytes, None, T0)
        .await
        .unwrap();
    let second = f
        .store
        .put_module(&hash, ModuleKind::Component, &bytes, None, T0 + 1)
        .await
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(
        (first.size, first.created_at, first.kind),
        (5, T0, ModuleKind::Component)
    );
    assert_eq!(f.store.module_bytes(&hash).await.unwrap(), bytes);
    assert_eq!(
        f.store.modules().await.unwrap().len(),
        2,
        "with the fixture's"
    );
    let files = std::fs::read_dir(f.dir.path().join("modules"))
        .unwrap()
        .count();
    assert_eq!(files, 2);
}

#[tokio::test]
async fn a_name_resolves_to_the_module_that_was_given_it_last() {
    let f = fixture().await;
    let (a, a_bytes) = module_bytes(1);
    let (b, b_bytes) = module_bytes(2);
    let put = |hash: String, bytes: Vec<u8>, now| {
        let store = &f.store;
        async move {
            store
                .put_module(&hash, ModuleKind::Command, &bytes, Some("resize"), now)
                .await
                .unwrap()
        }
    };
    put(a.clone(), a_bytes.clone(), T0).await;
    put(b.clone(), b_bytes, T0 + 1).await;
    let named = f.store.module("resize").await.unwrap().unwrap();
    assert_eq!(
        (named.hash.as_str(), named.name.as_deref()),
        (b.as_str(), Some("resize"))
    );
    let by_hash = f.store.module(&a).await.unwrap().unwrap();
    assert_eq!(by_hash.hash, a);
    // Giving the name back to the older module makes it the newest again.
    put(a.clone(), a_bytes, T0 + 2).await;
    assert_eq!(f.store.module("resize").await.unwrap().unwrap().hash, a);
    assert!(f.store.module("nothing").await.unwrap().is_none());
    let newest_first: Vec<_> = f
        .store
        .modules()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.hash)
        .collect();
    assert_eq!(newest_first, [b, a, f.module.clone()]);
}

#[tokio::test]
async fn bytes_that_do_not_hash_to_the_name_are_refused() {
    let f = fixture().await;
    let (hash, _) = module_bytes(1);
    let err = f
        .store
        .put_module(&hash, ModuleKind::Command, b"other", None, T0)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    assert!(f.store.module(&hash).await.unwrap().is_none());
}

#[tokio::test]
async fn a_damaged_file_is_reported_corrupt() {
    let f = fixture().await;
    let path = file(&f, &f.module);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let err = f.store.module_bytes(&f.module).await.unwrap_err();
    assert!(matches!(&err, Error::Corrupt(h) if *h == f.module), "{err}");
}

#[tokio::test]
async fn delete_is_refused_while_a_waiting_job_needs_the_module() {
    let f = fixture().await;
    let id = f.submit(f.job(5, T0)).await.id;
    let err = f.store.delete_module(&f.module).await.unwrap_err();
    match err {
        Error::Conflict(message) => assert!(message.contains(&format!("job {id}")), "{message}"),
        other => panic!("{other}"),
    }
    assert!(file(&f, &f.module).exists());
    assert_eq!(
        f.store.cancel(id, T0).await.unwrap().state,
        JobState::Cancelled
    );
    f.store.delete_module(&f.module).await.unwrap();
    assert!(!file(&f, &f.module).exists());
    assert!(f.store.module(&f.module).await.unwrap().is_none());
    assert!(
        f.store.module("test").await.unwrap().is_none(),
        "its names go too"
    );
    assert!(matches!(
        f.store.module_bytes(&f.module).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        f.store.delete_module(&f.module).await,
        Err(Error::NotFound(_))
    ));
    // The final job keeps the hash of its deleted module.
    assert_eq!(f.get(id).await.job.module, f.module);
}

#[tokio::test]
async fn a_module_uploaded_again_after_delete_gets_its_file_back() {
    let f = fixture().await;
    let bytes = b"\0asm\x01\0\0\0".to_vec();
    f.store.delete_module(&f.module).await.unwrap();
    f.store
        .put_module(&f.module, ModuleKind::Command, &bytes, None, T0 + 1)
        .await
        .unwrap();
    assert_eq!(f.store.module_bytes(&f.module).await.unwrap(), bytes);
}

#[tokio::test]
async fn names_that_are_not_hashes_never_become_paths() {
    let f = fixture().await;
    for name in ["../wasmjob.db", "test"] {
        assert!(matches!(
            f.store.module_bytes(name).await,
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            f.store.delete_module(name).await,
            Err(Error::NotFound(_))
        ));
    }
}
