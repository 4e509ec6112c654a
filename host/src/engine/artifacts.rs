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
