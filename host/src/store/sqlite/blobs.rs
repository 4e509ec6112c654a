//! Module bytes on disk, content-addressed: `<dir>/<blake3 hex>.wasm`.
//!
//! Files are written atomically (a temporary file in the same directory,
//! fsync, rename, fsync of the directory), so a file under its final name
//! is always complete, and read back only after checking the bytes still
//! hash to the name. Knows nothing of the database.

use crate::store::{Error, Result};
use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// Prefix of temporary files; leftovers of a crash are removed at open.
const TEMP_PREFIX: &str = ".upload-";

/// The directory of module files.
#[derive(Clone, Debug)]
pub(super) struct Blobs {
    dir: PathBuf,
}

impl Blobs {
    /// Opens (creating if needed) `dir` and removes temporary files left by
    /// an interrupted write.
    pub(super) fn open(dir: PathBuf) -> Result<Blobs> {
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(Blobs { dir })
    }

    fn path(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}.wasm"))
    }

    /// Makes sure the file for `hash` holds `bytes`: kept if it already
    /// does, (re)written atomically otherwise. The caller has checked that
    /// `bytes` hash to `hash`.
    pub(super) fn ensure(&self, hash: &str, bytes: &[u8]) -> Result<()> {
        match self.read(hash) {
            Ok(_) => Ok(()),
            Err(Error::Corrupt(_) | Error::Missing(_)) => self.write(hash, bytes),
            Err(e) => Err(e),
        }
    }

    fn write(&self, hash: &str, bytes: &[u8]) -> Result<()> {
        let mut temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&self.dir)?;
        temp.write_all(bytes)?;
        temp.as_file().sync_all()?;
        temp.persist(self.path(hash)).map_err(|e| e.error)?;
        sync_dir(&self.dir)
    }

    /// Whether a file for `hash` exists (not checking its bytes).
    pub(super) fn exists(&self, hash: &str) -> bool {
        self.path(hash).exists()
    }

    /// The bytes for `hash`, checked against it: [`Error::Missing`] when
    /// the file is gone, [`Error::Corrupt`] when its bytes changed.
    pub(super) fn read(&self, hash: &str) -> Result<Vec<u8>> {
        let bytes = match std::fs::read(self.path(hash)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::Missing(hash.to_owned()));
            }
            Err(e) => return Err(e.into()),
        };
        if blake3::hash(&bytes).to_hex().as_str() != hash {
            return Err(Error::Corrupt(hash.to_owned()));
        }
        Ok(bytes)
    }

    /// Removes the file for `hash`, if there is one.
    pub(super) fn remove(&self, hash: &str) -> Result<()> {
        match std::fs::remove_file(self.path(hash)) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Whether `text` is a blake3 hash as the store names files: 64 lowercase
/// hex digits. Anything else could escape the directory, so it is never
/// turned into a path.
pub(super) fn is_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lowercase_hex_of_the_right_length_is_a_hash() {
        let hash = blake3::hash(b"x").to_hex().to_string();
        assert!(is_hash(&hash));
        assert!(!is_hash(&hash.to_uppercase()));
        assert!(!is_hash("../../etc/passwd"));
        assert!(!is_hash(&hash[1..]));
    }

    #[test]
    fn a_damaged_file_is_rewritten_by_ensure() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path().join("modules")).unwrap();
        let bytes = b"\0asm module".to_vec();
        let hash = blake3::hash(&bytes).to_hex().to_string();
        blobs.ensure(&hash, &bytes).unwrap();
        std::fs::write(blobs.path(&hash), b"garbage").unwrap();
        assert!(matches!(blobs.read(&hash), Err(Error::Corrupt(_))));
        blobs.ensure(&hash, &bytes).unwrap();
        assert_eq!(blobs.read(&hash).unwrap(), bytes);
    }

    #[test]
    fn leftover_temporary_files_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let modules = dir.path().join("modules");
        std::fs::create_dir_all(&modules).unwrap();
        std::fs::write(modules.join(".upload-abc"), b"partial").unwrap();
        Blobs::open(modules.clone()).unwrap();
        assert_eq!(std::fs::read_dir(&modules).unwrap().count(), 0);
    }
}
