//! The key file on disk: read only when no one but its owner can read it,
//! written atomically with mode 0600. What the text means is
//! `batv::keys`'s; this module owns the file.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::batv::keys::{self, KeyError, SecretKind};
use crate::batv::{KeyId, KeyRing, Moment};

#[derive(Debug, Error)]
pub enum KeyFileError {
    #[error("{path}: cannot read key file: {source}")]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("{path}: key file is readable or writable by group or others (mode {mode:04o}); fix: chmod 600 {path}")]
    Permissions { path: PathBuf, mode: u32 },
    #[error(transparent)]
    Invalid(#[from] KeyError),
    #[error("{path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Reads a key file, refusing one that group or others can read: anyone
/// who has the key can forge tags.
pub fn load(path: &Path) -> Result<KeyRing, KeyFileError> {
    let unreadable = |source| KeyFileError::Unreadable { path: path.to_owned(), source };
    let metadata = std::fs::metadata(path).map_err(unreadable)?;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions { path: path.to_owned(), mode });
    }
    let text = std::fs::read_to_string(path).map_err(unreadable)?;
    Ok(KeyRing::parse(&text, path)?)
}

/// Writes a fresh random key to `path`: a new file gets mode 0600; an
/// existing key file keeps its keys, and the new key goes on top, so a
/// proxy that reloads the file signs with it. Returns the new key's number.
pub fn generate(
    path: &Path,
    requested: Option<KeyId>,
    kind: SecretKind,
    activates: Option<Moment>,
) -> Result<KeyId, KeyFileError> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(KeyFileError::Unreadable { path: path.to_owned(), source }),
    };
    let (key_id, text) = keys::add_key(existing.as_deref(), path, requested, kind, activates)?;
    write_private(path, text.as_bytes()).map_err(|source| KeyFileError::Write { path: path.to_owned(), source })?;
    Ok(key_id)
}

/// Replaces `path` atomically with a file that only its owner can read.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let directory = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("keys");
    let temporary = directory.join(format!(".{file_name}.new.{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temporary)?;
        // A rotated key file keeps its owner (e.g. the service user when root
        // runs keygen); a new one belongs to whoever made it.
        if let Ok(existing) = std::fs::metadata(path) {
            std::os::unix::fs::fchown(&file, Some(existing.uid()), Some(existing.gid()))?;
        }
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(number: u8) -> KeyId {
        KeyId::new(number).unwrap()
    }

    #[test]
    fn world_readable_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, "1 c2VjcmV0\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let error = load(&path).unwrap_err().to_string();
        assert!(error.contains("chmod 600") && error.contains("0640"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load(&path).is_ok());
    }

    #[test]
    fn generate_creates_then_rotates_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        assert_eq!(generate(&path, None, SecretKind::Binary, None).unwrap(), id(0));
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let first = load(&path).unwrap();
        assert_eq!(generate(&path, Some(id(5)), SecretKind::Binary, None).unwrap(), id(5));
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let ring = load(&path).unwrap();
        let ids: Vec<_> = ring.iter().map(|(id, _)| id.number()).collect();
        assert_eq!(ids, vec![5, 0]);
        assert_eq!(ring.iter().last().unwrap().1.expose(), first.iter().next().unwrap().1.expose());
        let taken = generate(&path, Some(id(5)), SecretKind::Binary, None).unwrap_err();
        assert!(matches!(taken, KeyFileError::Invalid(KeyError::NumberInUse { .. })), "{taken}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("keys")], "no temporary file is left behind");
    }
}
