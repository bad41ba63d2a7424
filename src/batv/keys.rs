//! The key file: `K base64-secret` per line, `#` comments. The first key
//! signs; every key verifies, so a new key can be put on top while tags made
//! with the old one are still in flight (rotation without a flag day).

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use thiserror::Error;

use super::tag::KeyId;

/// Secret key bytes. `Debug` never shows them, and they are overwritten
/// when dropped.
pub struct Secret(Box<[u8]>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(bytes.into_boxed_slice())
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        for byte in self.0.iter_mut() {
            // Volatile so the wipe is not optimised away as a dead store.
            unsafe { std::ptr::write_volatile(byte, 0) };
        }
    }
}

#[derive(Debug)]
pub struct KeyRing {
    /// In file order; the first signs.
    keys: Vec<(KeyId, Secret)>,
}

#[derive(Debug, Error)]
pub enum KeyFileError {
    #[error("{path}: cannot read key file: {source}")]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("{path}: key file is readable or writable by group or others (mode {mode:04o}); fix: chmod 600 {path}")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{path}:{line}: {problem}")]
    Syntax { path: PathBuf, line: usize, problem: String },
    #[error("{path}: key file holds no key; fix: batv-proxy keygen --output {path}")]
    Empty { path: PathBuf },
    #[error("{path}: {problem}")]
    Write { path: PathBuf, problem: String },
}

impl KeyRing {
    /// Reads a key file, refusing one that group or others can read.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let unreadable = |source| KeyFileError::Unreadable { path: path.to_owned(), source };
        let metadata = std::fs::metadata(path).map_err(unreadable)?;
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Permissions { path: path.to_owned(), mode });
        }
        let text = std::fs::read_to_string(path).map_err(unreadable)?;
        Self::parse(&text, path)
    }

    /// Parses key file text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, KeyFileError> {
        let syntax = |line: usize, problem: String| KeyFileError::Syntax { path: path.to_owned(), line, problem };
        let mut keys: Vec<(KeyId, Secret)> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line_number = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(number), Some(secret), None) = (fields.next(), fields.next(), fields.next()) else {
                return Err(syntax(
                    line_number,
                    "expected `K base64-secret` (key number 0-9, a space, the secret)".into(),
                ));
            };
            let key_id = number
                .parse::<u8>()
                .ok()
                .and_then(KeyId::new)
                .ok_or_else(|| syntax(line_number, format!("key number `{number}` is not a digit 0-9")))?;
            if keys.iter().any(|(existing, _)| *existing == key_id) {
                return Err(syntax(
                    line_number,
                    format!("key number {key_id} appears twice; each key needs its own number"),
                ));
            }
            let bytes = BASE64
                .decode(secret)
                .map_err(|_| syntax(line_number, format!("the secret of key {key_id} is not valid base64")))?;
            if bytes.is_empty() {
                return Err(syntax(line_number, format!("the secret of key {key_id} is empty")));
            }
            keys.push((key_id, Secret::new(bytes)));
        }
        if keys.is_empty() {
            return Err(KeyFileError::Empty { path: path.to_owned() });
        }
        Ok(KeyRing { keys })
    }

    pub fn signing_key(&self) -> KeyId {
        self.keys[0].0
    }

    pub fn iter(&self) -> impl Iterator<Item = (KeyId, &Secret)> {
        self.keys.iter().map(|(id, secret)| (*id, secret))
    }
}

/// What the random secret looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// 32 random bytes.
    Binary,
    /// 43 random letters and digits (~256 bits): a secret that can also be
    /// written as a literal string in Exim's configuration (`hash = "sha1"`).
    Printable,
}

fn random_secret(kind: SecretKind) -> Result<Vec<u8>, getrandom::Error> {
    match kind {
        SecretKind::Binary => {
            // No NUL bytes: Exim ends a key at one, and hash = "sha1" keys
            // may be shared with Exim. Redrawing them costs under 0.05 bit.
            let mut secret = vec![0u8; 32];
            getrandom::fill(&mut secret)?;
            for byte in secret.iter_mut() {
                while *byte == 0 {
                    let mut fresh = [0u8; 1];
                    getrandom::fill(&mut fresh)?;
                    *byte = fresh[0];
                }
            }
            Ok(secret)
        }
        SecretKind::Printable => {
            const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
            let mut secret = Vec::with_capacity(43);
            while secret.len() < 43 {
                let mut byte = [0u8; 1];
                getrandom::fill(&mut byte)?;
                // Rejection sampling keeps the choice uniform over 62 symbols.
                if usize::from(byte[0]) < 256 - 256 % ALPHABET.len() {
                    secret.push(ALPHABET[usize::from(byte[0]) % ALPHABET.len()]);
                }
            }
            Ok(secret)
        }
    }
}

/// Writes a fresh random key to `path`. A new file gets mode 0600; an
/// existing key file keeps its keys, and the new key goes on top so it
/// signs from now on. Returns the new key's number.
pub fn generate(path: &Path, requested: Option<KeyId>) -> Result<KeyId, KeyFileError> {
    generate_kind(path, requested, SecretKind::Binary)
}

pub fn generate_kind(path: &Path, requested: Option<KeyId>, kind: SecretKind) -> Result<KeyId, KeyFileError> {
    let write_error = |problem: String| KeyFileError::Write { path: path.to_owned(), problem };
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(KeyFileError::Unreadable { path: path.to_owned(), source });
        }
    };
    let ring = existing.as_deref().map(|text| KeyRing::parse(text, path)).transpose()?;
    let used: Vec<KeyId> = ring.iter().flat_map(|ring| ring.iter().map(|(id, _)| id)).collect();
    let key_id = match requested {
        Some(id) if used.contains(&id) => {
            return Err(write_error(format!(
                "key number {id} is already in the file; pick another --key-id (removing a key invalidates its tags)"
            )));
        }
        Some(id) => id,
        None => {
            let start = ring.as_ref().map_or(0, |ring| ring.signing_key().number() + 1);
            (0..10)
                .map(|offset| KeyId::new((start + offset) % 10).expect("digit"))
                .find(|id| !used.contains(id))
                .ok_or_else(|| write_error("all ten key numbers are in use; remove the oldest key first".into()))?
        }
    };
    let secret =
        Secret::new(random_secret(kind).map_err(|error| write_error(format!("no randomness available: {error}")))?);

    let mut text = String::new();
    match &existing {
        None => {
            text.push_str("# batv-proxy keys: `number base64-secret`. The first key signs; all keys verify.\n");
            text.push_str(&format!("{key_id} {}\n", BASE64.encode(secret.expose())));
        }
        Some(old) => {
            // The new key goes before the first key line; comments above it stay on top.
            let mut inserted = false;
            for line in old.lines() {
                let trimmed = line.trim();
                if !inserted && !trimmed.is_empty() && !trimmed.starts_with('#') {
                    text.push_str(&format!("{key_id} {}\n", BASE64.encode(secret.expose())));
                    inserted = true;
                }
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    write_private(path, text.as_bytes()).map_err(|error| write_error(error.to_string()))?;
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
            use std::os::unix::fs::MetadataExt;
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
    fn parses_keys_in_order_with_comments() {
        let ring = KeyRing::parse("# header\n\n3 c2VjcmV0\n  1 b2xk  \n", Path::new("k")).unwrap();
        assert_eq!(ring.signing_key(), id(3));
        let keys: Vec<_> = ring.iter().map(|(id, secret)| (id, secret.expose().to_vec())).collect();
        assert_eq!(keys, vec![(id(3), b"secret".to_vec()), (id(1), b"old".to_vec())]);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        for (text, needle) in [
            ("3", "expected"),
            ("3 a b", "expected"),
            ("x c2VjcmV0", "not a digit"),
            ("12 c2VjcmV0", "not a digit"),
            ("3 !!!", "base64"),
            ("3 c2VjcmV0\n3 b2xk", "twice"),
        ] {
            let error = KeyRing::parse(text, Path::new("k")).unwrap_err().to_string();
            assert!(error.contains(needle), "{text:?}: {error}");
            assert!(error.starts_with("k:"), "{error}");
        }
        assert!(matches!(KeyRing::parse("# nothing\n", Path::new("k")), Err(KeyFileError::Empty { .. })));
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let ring = KeyRing::parse("3 c2VjcmV0LXZhbHVl\n", Path::new("k")).unwrap();
        let debug = format!("{ring:?}");
        assert!(!debug.contains("secret-value") && !debug.contains("c2VjcmV0LXZhbHVl"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn world_readable_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, "1 c2VjcmV0\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let error = KeyRing::load(&path).unwrap_err().to_string();
        assert!(error.contains("chmod 600") && error.contains("0640"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(KeyRing::load(&path).is_ok());
    }

    #[test]
    fn generate_creates_then_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        assert_eq!(generate(&path, None).unwrap(), id(0));
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let first = KeyRing::load(&path).unwrap();
        assert_eq!(first.iter().next().unwrap().1.expose().len(), 32);
        assert!(!first.iter().next().unwrap().1.expose().contains(&0), "NUL bytes would break Exim interop");
        assert_eq!(generate(&path, Some(id(5))).unwrap(), id(5));
        assert_eq!(generate(&path, None).unwrap(), id(6));
        let ring = KeyRing::load(&path).unwrap();
        let ids: Vec<_> = ring.iter().map(|(id, _)| id.number()).collect();
        assert_eq!(ids, vec![6, 5, 0]);
        // The original key is kept byte for byte.
        assert_eq!(ring.iter().last().unwrap().1.expose(), first.iter().next().unwrap().1.expose());
        assert!(generate(&path, Some(id(5))).unwrap_err().to_string().contains("already"));
        assert_eq!(generate_kind(&path, None, SecretKind::Printable).unwrap(), id(7));
        let printable = KeyRing::load(&path).unwrap();
        let secret = printable.iter().next().unwrap().1.expose().to_vec();
        assert_eq!(secret.len(), 43);
        assert!(secret.iter().all(u8::is_ascii_alphanumeric), "{secret:?}");
    }
}
