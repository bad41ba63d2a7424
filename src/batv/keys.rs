//! The key file's text: `K base64-secret` per line, `#` comments. The first
//! key signs; every key verifies, so a new key can be put on top while tags
//! made with the old one are still in flight (rotation without a flag day).
//!
//! Text in, text out: reading and writing the file, with its permission
//! checks, is `crate::keyfile`'s, so that `batv` stays free of file I/O.

use std::fmt;
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

/// What is wrong with a key file's text, or with the key asked for.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("{path}:{line}: {problem}")]
    Syntax { path: PathBuf, line: usize, problem: String },
    #[error("{path}: key file holds no key; fix: batv-proxy keygen --output {path}")]
    Empty { path: PathBuf },
    #[error(
        "{path}: key number {id} is already in the file; pick another --key-id (removing a key invalidates its tags)"
    )]
    NumberInUse { path: PathBuf, id: KeyId },
    #[error("{path}: all ten key numbers are in use; remove the oldest key first")]
    AllNumbersInUse { path: PathBuf },
    #[error("{path}: no randomness available: {source}")]
    NoRandomness { path: PathBuf, source: getrandom::Error },
}

impl KeyRing {
    /// Parses key file text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, KeyError> {
        let syntax = |line: usize, problem: String| KeyError::Syntax { path: path.to_owned(), line, problem };
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
            return Err(KeyError::Empty { path: path.to_owned() });
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

/// The text of a key file with a fresh random key added: on top of
/// `existing` (whose keys and comments stay as they are), so that it signs,
/// or as the only key of a new file. `path` only names the file in errors.
/// Returns the new key's number and the text.
pub fn add_key(
    existing: Option<&str>,
    path: &Path,
    requested: Option<KeyId>,
    kind: SecretKind,
) -> Result<(KeyId, String), KeyError> {
    let ring = existing.map(|text| KeyRing::parse(text, path)).transpose()?;
    let used: Vec<KeyId> = ring.iter().flat_map(|ring| ring.iter().map(|(id, _)| id)).collect();
    let key_id = match requested {
        Some(id) if used.contains(&id) => return Err(KeyError::NumberInUse { path: path.to_owned(), id }),
        Some(id) => id,
        None => {
            let start = ring.as_ref().map_or(0, |ring| ring.signing_key().number() + 1);
            (0..10)
                .map(|offset| KeyId::new((start + offset) % 10).expect("digit"))
                .find(|id| !used.contains(id))
                .ok_or_else(|| KeyError::AllNumbersInUse { path: path.to_owned() })?
        }
    };
    let secret =
        Secret::new(random_secret(kind).map_err(|source| KeyError::NoRandomness { path: path.to_owned(), source })?);
    let key_line = format!("{key_id} {}\n", BASE64.encode(secret.expose()));
    let mut text = String::new();
    match existing {
        None => {
            text.push_str("# batv-proxy keys: `number base64-secret`. The first key signs; all keys verify.\n");
            text.push_str(&key_line);
        }
        Some(old) => {
            // The new key goes before the first key line; comments above it stay on top.
            let mut inserted = false;
            for line in old.lines() {
                let trimmed = line.trim();
                if !inserted && !trimmed.is_empty() && !trimmed.starts_with('#') {
                    text.push_str(&key_line);
                    inserted = true;
                }
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    Ok((key_id, text))
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
        assert!(matches!(KeyRing::parse("# nothing\n", Path::new("k")), Err(KeyError::Empty { .. })));
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let ring = KeyRing::parse("3 c2VjcmV0LXZhbHVl\n", Path::new("k")).unwrap();
        let debug = format!("{ring:?}");
        assert!(!debug.contains("secret-value") && !debug.contains("c2VjcmV0LXZhbHVl"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn add_key_creates_then_puts_new_keys_on_top() {
        let path = Path::new("keys");
        let (first, text) = add_key(None, path, None, SecretKind::Binary).unwrap();
        assert_eq!(first, id(0));
        let ring = KeyRing::parse(&text, path).unwrap();
        let secret = ring.iter().next().unwrap().1.expose().to_vec();
        assert_eq!(secret.len(), 32);
        assert!(!secret.contains(&0), "NUL bytes would break Exim interop");
        let (fifth, text) = add_key(Some(&text), path, Some(id(5)), SecretKind::Binary).unwrap();
        assert_eq!(fifth, id(5));
        let (next, text) = add_key(Some(&text), path, None, SecretKind::Binary).unwrap();
        assert_eq!(next, id(6), "the number after the signing key's");
        let ring = KeyRing::parse(&text, path).unwrap();
        let ids: Vec<_> = ring.iter().map(|(id, _)| id.number()).collect();
        assert_eq!(ids, vec![6, 5, 0]);
        assert_eq!(ring.iter().last().unwrap().1.expose(), secret.as_slice(), "old keys are kept byte for byte");
        assert!(text.starts_with("# batv-proxy keys"), "comments above the keys stay on top");
        let taken = add_key(Some(&text), path, Some(id(5)), SecretKind::Binary).unwrap_err();
        assert!(taken.to_string().contains("already"), "{taken}");
        let (_, text) = add_key(Some(&text), path, None, SecretKind::Printable).unwrap();
        let printable = KeyRing::parse(&text, path).unwrap().iter().next().unwrap().1.expose().to_vec();
        assert_eq!(printable.len(), 43);
        assert!(printable.iter().all(u8::is_ascii_alphanumeric), "{printable:?}");
    }
}
