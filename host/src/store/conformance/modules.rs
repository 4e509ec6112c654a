//! Modules: content-addressed bytes, names, deletion.

use super::*;
use crate::store::Error;

fn module_bytes(n: u8) -> (String, Vec<u8>) {
    let bytes = vec![0, b'a', b's', b'm', n];
    (blake3::hash(&bytes).to_hex().to_string(), bytes)
}

pub(crate) async fn uploading_the_same_bytes_twice_is_idempotent(open: OpenFn) {
    let f = fixture(open).await;
    let (hash, bytes) = module_bytes(1);
    let first = f
        .store
        .put_module(&hash, ModuleKind::Component, &bytes, None, T0)
        .await
        .unwrap();
    let again = f
        .store
        .put_module(&hash, ModuleKind::Component, &bytes, Some("named"), T0 + 5)
        .await
        .unwrap();
    assert_eq!((first.size, first.created_at), (5, T0));
    assert_eq!(again.created_at, T0, "the first upload's time stays");
    assert_eq!(again.name.as_deref(), Some("named"), "a new name is added");
    assert_eq!(f.store.module_bytes(&hash).await.unwrap(), bytes);
    assert_eq!(f.store.modules().await.unwrap().len(), 2);
}

pub(crate) async fn a_name_resolves_to_the_module_that_was_given_it_last(open: OpenFn) {
    let f = fixture(open).await;
    let (old, old_bytes) = module_bytes(1);
    let (new, new_bytes) = module_bytes(2);
    let put = |hash: &str, bytes: &[u8], at| {
        let store = f.store.clone();
        let (hash, bytes) = (hash.to_owned(), bytes.to_vec());
        async move {
            store
                .put_module(&hash, ModuleKind::Command, &bytes, Some("job"), at)
                .await
                .unwrap()
        }
    };
    put(&old, &old_bytes, T0).await;
    put(&new, &new_bytes, T0 + 1).await;
    assert_eq!(f.store.module("job").await.unwrap().unwrap().hash, new);
    // Giving the name back to the older module makes it the newest again.
    put(&old, &old_bytes, T0 + 2).await;
    assert_eq!(f.store.module("job").await.unwrap().unwrap().hash, old);
    assert_eq!(f.store.module(&new).await.unwrap().unwrap().hash, new);
    assert!(f.store.module("nothing").await.unwrap().is_none());
}

pub(crate) async fn bytes_that_do_not_hash_to_their_name_are_refused(open: OpenFn) {
    let f = fixture(open).await;
    let (hash, _) = module_bytes(1);
    let err = f
        .store
        .put_module(&hash, ModuleKind::Command, b"other bytes", None, T0)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    assert!(f.store.module(&hash).await.unwrap().is_none());
}

pub(crate) async fn delete_is_refused_while_a_waiting_job_needs_the_module(open: OpenFn) {
    let f = fixture(open).await;
    let id = f.submit(f.job(5, T0)).await.id;
    let err = f
        .store
        .delete_module_unless_needed(&f.module)
        .await
        .unwrap_err();
    match &err {
        Error::Conflict(message) => assert!(message.contains(&format!("job {id}")), "{message}"),
        other => panic!("{other:?}"),
    }
    f.store.cancel_unless_final(id, T0).await.unwrap();
    f.store
        .delete_module_unless_needed(&f.module)
        .await
        .unwrap();
    assert!(f.store.module(&f.module).await.unwrap().is_none());
    // The final job keeps the hash of the module it ran.
    assert_eq!(f.get(id).await.job.module.hash, f.module);
    // Uploaded again, it is whole again.
    let bytes = b"\0asm\x01\0\0\0".to_vec();
    f.store
        .put_module(&f.module, ModuleKind::Command, &bytes, None, T0 + 1)
        .await
        .unwrap();
    assert_eq!(f.store.module_bytes(&f.module).await.unwrap(), bytes);
}

pub(crate) async fn unknown_modules_are_not_found_with_one_clear_message(open: OpenFn) {
    let f = fixture(open).await;
    let (hash, _) = module_bytes(9);
    let err = f.store.module_bytes(&hash).await.unwrap_err();
    assert_eq!(err.to_string(), format!("module `{hash}` not found"));
    let err = f
        .store
        .delete_module_unless_needed(&hash)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), format!("module `{hash}` not found"));
    // Not even a hash: never a path, just not found.
    let err = f.store.module_bytes("../../etc/passwd").await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
}
