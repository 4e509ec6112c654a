//! Compiled artifacts on disk, so a restart does not recompile.
//!
//! Artifacts are keyed by the module's blake3 hash and by the engine's
//! compatibility hash, so upgrading wasmtime or changing a setting that
//! affects code generation recompiles instead of loading stale code.
//! Deserializing native code is only safe for bytes this host wrote itself:
//! the cache directory belongs to the host, and files are only ever created
//! here, atomically. Each file ends with the blake3 hash of the artifact
//! before it, checked before anything is deserialized: a file damaged on
//! disk (a bad sector, a stray write) is deleted and the module compiled
//! again from its bytes (which the store checks against their own hash),
//! never loaded as native code.

use crate::report::ModuleKind;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Bytes of the checksum at the end of every artifact file.
const CHECKSUM: usize = blake3::OUT_LEN;

/// A directory of compiled artifacts for one engine configuration.
pub struct ArtifactCache {
    dir: PathBuf,
    compat: String,
}

impl ArtifactCache {
    /// Opens (creating if needed) the cache directory.
    pub fn open(dir: &Path, engine: &wasmtime::Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(ArtifactCache {
            dir: dir.to_owned(),
            compat: format!("{:016x}", hasher.finish()),
        })
    }

    fn path(&self, hash: &blake3::Hash, kind: ModuleKind) -> PathBuf {
        self.dir
            .join(format!("{}-{}.{kind}.cwasm", hash.to_hex(), self.compat))
    }

    /// Loads the compiled component for `hash`, if it was cached.
    pub fn component(
        &self,
        engine: &wasmtime::Engine,
        hash: &blake3::Hash,
    ) -> Option<wasmtime::component::Component> {
        let path = self.path(hash, ModuleKind::Component);
        let artifact = self.verified(&path)?;
        // SAFETY: the bytes are what `store` below wrote from wasmtime's own
        // serialization (their checksum matched), under a name that
        // includes the engine's compatibility hash; nothing else writes to
        // this directory.
        #[allow(unsafe_code)]
        let loaded = unsafe { wasmtime::component::Component::deserialize(engine, &artifact) };
        loaded
            .inspect_err(|e| tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable artifact"))
            .ok()
    }

    /// Loads the compiled core module for `hash`, if it was cached.
    pub fn module(
        &self,
        engine: &wasmtime::Engine,
        hash: &blake3::Hash,
    ) -> Option<wasmtime::Module> {
        let path = self.path(hash, ModuleKind::Command);
        let artifact = self.verified(&path)?;
        // SAFETY: as for `component`: only artifacts this host wrote, their
        // checksum matched.
        #[allow(unsafe_code)]
        let loaded = unsafe { wasmtime::Module::deserialize(engine, &artifact) };
        loaded
            .inspect_err(|e| tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable artifact"))
            .ok()
    }

    /// The artifact in the file at `path` without its checksum, or `None`
    /// when there is no such file, or its checksum does not match (the
    /// file is then deleted, so the module is compiled and stored again).
    fn verified(&self, path: &Path) -> Option<Vec<u8>> {
        let mut bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "ignoring an unreadable artifact");
                return None;
            }
        };
        let intact = bytes.len() > CHECKSUM && {
            let (artifact, sum) = bytes.split_at(bytes.len() - CHECKSUM);
            blake3::hash(artifact).as_bytes() == sum
        };
        if !intact {
            tracing::warn!(
                path = %path.display(),
                "an artifact does not match its checksum (damaged on disk): deleted, the module is compiled again"
            );
            if let Err(error) = std::fs::remove_file(path) {
                tracing::warn!(path = %path.display(), %error, "cannot delete an artifact");
            }
            return None;
        }
        bytes.truncate(bytes.len() - CHECKSUM);
        Some(bytes)
    }

    /// Deletes the artifacts of `hash` (both kinds; a missing file is
    /// fine).
    pub fn remove(&self, hash: &blake3::Hash) {
        for kind in [ModuleKind::Component, ModuleKind::Command] {
            let path = self.path(hash, kind);
            if let Err(error) = std::fs::remove_file(&path)
                && error.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), %error, "cannot delete an artifact");
            }
        }
    }

    /// Deletes every file but the artifacts of this engine configuration
    /// for the modules in `keep` (hex hashes): artifacts of deleted modules
    /// or of another wasmtime version or setting, and temporary files an
    /// interrupted write left. Returns how many it deleted.
    pub fn sweep(&self, keep: &std::collections::HashSet<String>) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut deleted = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let kept = name
                .strip_suffix(".cwasm")
                .and_then(|stem| stem.split_once('-'))
                .is_some_and(|(hash, rest)| {
                    keep.contains(hash)
                        && rest
                            .split_once('.')
                            .is_some_and(|(compat, _kind)| compat == self.compat)
                });
            if kept || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => deleted += 1,
                Err(error) => {
                    tracing::warn!(path = %entry.path().display(), %error, "cannot delete an artifact")
                }
            }
        }
        deleted
    }

    /// Writes an artifact atomically (temp file, fsync, rename), followed
    /// by its checksum.
    pub fn store(
        &self,
        hash: &blake3::Hash,
        kind: ModuleKind,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        let path = self.path(hash, kind);
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        file.write_all(bytes)?;
        file.write_all(blake3::hash(bytes).as_bytes())?;
        file.as_file().sync_all()?;
        file.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest core module: the wasm header and nothing else.
    const EMPTY_MODULE: &[u8] = b"\0asm\x01\0\0\0";

    fn cached(dir: &Path) -> (wasmtime::Engine, ArtifactCache, blake3::Hash, PathBuf) {
        let engine = wasmtime::Engine::default();
        let cache = ArtifactCache::open(dir, &engine).unwrap();
        let hash = blake3::hash(EMPTY_MODULE);
        let module = wasmtime::Module::new(&engine, EMPTY_MODULE).unwrap();
        cache
            .store(&hash, ModuleKind::Command, &module.serialize().unwrap())
            .unwrap();
        let path = cache.path(&hash, ModuleKind::Command);
        (engine, cache, hash, path)
    }

    #[test]
    fn an_intact_artifact_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, cache, hash, _) = cached(dir.path());
        assert!(cache.module(&engine, &hash).is_some());
    }

    #[test]
    fn a_damaged_artifact_is_never_deserialized_and_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, cache, hash, path) = cached(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        // A flipped byte in the middle: wasmtime's own header checks would
        // not notice a change in the code.
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        assert!(cache.module(&engine, &hash).is_none());
        assert!(!path.exists(), "the damaged file is deleted");
        // A file cut short, and one from before checksums (no trailer).
        let (engine, cache, hash, path) = cached(dir.path());
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(cache.module(&engine, &hash).is_none());
        std::fs::write(&path, &bytes[..bytes.len() - CHECKSUM]).unwrap();
        assert!(cache.module(&engine, &hash).is_none());
    }
}
