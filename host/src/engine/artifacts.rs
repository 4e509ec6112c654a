//! Compiled artifacts on disk, so a restart does not recompile.
//!
//! Artifacts are keyed by the module's blake3 hash and by the engine's
//! compatibility hash, so upgrading wasmtime or changing a setting that
//! affects code generation recompiles instead of loading stale code.
//! Deserializing native code is only safe for bytes this host wrote itself:
//! the cache directory belongs to the host, and files are only ever created
//! here, atomically.

use crate::report::ModuleKind;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

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
        if !path.exists() {
            return None;
        }
        // SAFETY: the file was written by `store` below from wasmtime's own
        // serialization, under a name that includes the engine's
        // compatibility hash; nothing else writes to this directory.
        #[allow(unsafe_code)]
        let loaded = unsafe { wasmtime::component::Component::deserialize_file(engine, &path) };
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
        if !path.exists() {
            return None;
        }
        // SAFETY: as for `component`: only artifacts this host wrote.
        #[allow(unsafe_code)]
        let loaded = unsafe { wasmtime::Module::deserialize_file(engine, &path) };
        loaded
            .inspect_err(|e| tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable artifact"))
            .ok()
    }

    /// Writes an artifact atomically: temp file, fsync, rename.
    pub fn store(
        &self,
        hash: &blake3::Hash,
        kind: ModuleKind,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        let path = self.path(hash, kind);
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        file.write_all(bytes)?;
        file.as_file().sync_all()?;
        file.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }
}
