//! The key file's text: `K base64-secret` per line, `#` comments, and an
//! optional activation time (`K base64-secret activate=2026-03-01T00:00:00Z`).
//! Of the keys whose time has come, the one activated last signs; lines
//! without a time count as active since always, and among those the first
//! line signs. Every key verifies, whatever its time, so a file with a key
//! staged for later can be copied to every host ahead of time and all hosts
//! switch at the same second (rotation without a flag day).
//!
//! Text in, text out: reading and writing the file, with its permission
//! checks, is `crate::keyfile`'s, so that `batv` stays free of file I/O.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::keyset::Moment;
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

/// One line of the key file.
#[derive(Debug)]
pub struct KeyEntry {
    pub id: KeyId,
    pub secret: Secret,
    /// When it starts signing; `None`: since always.
    pub activates: Option<Moment>,
}

impl KeyEntry {
    /// A short hash that tells keys apart without revealing them: the
    /// first 6 bytes of SHA-256 over a fixed label and the secret, in hex.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.secret.expose())
    }
}

pub fn fingerprint(secret: &[u8]) -> String {
    let digest = Sha256::new().chain_update(b"batv-proxy key fingerprint\0").chain_update(secret).finalize();
    digest[..6].iter().map(|byte| format!("{byte:02x}")).collect()
}

/// What a key does at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    /// Signs new tags (and verifies).
    Signing,
    /// Active, superseded by a later key: verifies tags made with it.
    Verifying,
    /// Activates later; verifies already, so hosts that switched first are understood.
    Staged,
}

impl KeyRole {
    pub const ALL: [KeyRole; 3] = [KeyRole::Signing, KeyRole::Verifying, KeyRole::Staged];

    /// The role of key `id`, activating at `activates`, when `signing` signs at `now`.
    pub fn of(id: KeyId, activates: Option<Moment>, signing: KeyId, now: Moment) -> KeyRole {
        if id == signing {
            KeyRole::Signing
        } else if activates.is_some_and(|at| at > now) {
            KeyRole::Staged
        } else {
            KeyRole::Verifying
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyRole::Signing => "signing",
            KeyRole::Verifying => "verifying",
            KeyRole::Staged => "staged",
        }
    }
}

#[derive(Debug)]
pub struct KeyRing {
    /// In file order.
    keys: Vec<KeyEntry>,
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
        let mut keys: Vec<KeyEntry> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line_number = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(number), Some(secret), activation, None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(syntax(
                    line_number,
                    "expected `K base64-secret` (key number 0-9, a space, the secret), optionally followed by \
                     `activate=2026-03-01T00:00:00Z`"
                        .into(),
                ));
            };
            let key_id = number
                .parse::<u8>()
                .ok()
                .and_then(KeyId::new)
                .ok_or_else(|| syntax(line_number, format!("key number `{number}` is not a digit 0-9")))?;
            if keys.iter().any(|existing| existing.id == key_id) {
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
            let activates = match activation {
                None => None,
                Some(field) => {
                    Some(field.strip_prefix("activate=").and_then(Moment::parse_rfc3339).ok_or_else(|| {
                        syntax(
                            line_number,
                            format!(
                                "`{field}` after the secret of key {key_id}: expected activate= and an RFC 3339 \
                                     time, like activate=2026-03-01T00:00:00Z"
                            ),
                        )
                    })?)
                }
            };
            keys.push(KeyEntry { id: key_id, secret: Secret::new(bytes), activates });
        }
        if keys.is_empty() {
            return Err(KeyError::Empty { path: path.to_owned() });
        }
        Ok(KeyRing { keys })
    }

    /// The key that signs at `now`: of the keys whose time has come, the
    /// one activated last (among keys without a time, the first line).
    /// Before any key's time, the first to come.
    pub fn signing_key_at(&self, now: Moment) -> KeyId {
        signing_index(self.keys.iter().map(|key| key.activates), now)
            .map_or(self.keys[0].id, |index| self.keys[index].id)
    }

    /// What each key does at `now`, in file order.
    pub fn roles_at(&self, now: Moment) -> impl Iterator<Item = (&KeyEntry, KeyRole)> {
        let signing = self.signing_key_at(now);
        self.keys.iter().map(move |key| (key, KeyRole::of(key.id, key.activates, signing, now)))
    }

    /// Whether some key's time has come at `now`.
    pub fn any_active_at(&self, now: Moment) -> bool {
        self.keys.iter().any(|key| key.activates.is_none_or(|at| at <= now))
    }

    pub fn entries(&self) -> &[KeyEntry] {
        &self.keys
    }

    pub fn iter(&self) -> impl Iterator<Item = (KeyId, &Secret)> {
        self.keys.iter().map(|key| (key.id, &key.secret))
    }
}

/// Which of a list of activation times signs at `now` (see
/// [`KeyRing::signing_key_at`]); `None` for an empty list.
pub(super) fn signing_index(activations: impl Iterator<Item = Option<Moment>>, now: Moment) -> Option<usize> {
    let mut active: Option<(usize, Option<Moment>)> = None;
    let mut earliest: Option<(usize, Moment)> = None;
    for (index, activates) in activations.enumerate() {
        match activates {
            Some(at) if at > now => {
                if earliest.is_none_or(|(_, first)| at < first) {
                    earliest = Some((index, at));
                }
            }
            // Later activation wins; among equals (and among "always") the first line.
            _ => {
                if active.is_none_or(|(_, best)| activates > best) {
                    active = Some((index, activates));
                }
            }
        }
    }
    active.map(|(index, _)| index).or(earliest.map(|(index, _)| index))
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
    activates: Option<Moment>,
) -> Result<(KeyId, String), KeyError> {
    let ring = existing.map(|text| KeyRing::parse(text, path)).transpose()?;
    let used: Vec<KeyId> = ring.iter().flat_map(|ring| ring.iter().map(|(id, _)| id)).collect();
    // After the number of the key that signs last, when every staged key has come.
    let key_id = match requested {
        Some(id) if used.contains(&id) => return Err(KeyError::NumberInUse { path: path.to_owned(), id }),
        Some(id) => id,
        None => {
            let start = ring.as_ref().map_or(0, |ring| ring.signing_key_at(Moment::LATEST).number() + 1);
            (0..10)
                .map(|offset| KeyId::new((start + offset) % 10).expect("digit"))
                .find(|id| !used.contains(id))
                .ok_or_else(|| KeyError::AllNumbersInUse { path: path.to_owned() })?
        }
    };
    let secret =
        Secret::new(random_secret(kind).map_err(|source| KeyError::NoRandomness { path: path.to_owned(), source })?);
    let key_line = match activates {
        None => format!("{key_id} {}\n", BASE64.encode(secret.expose())),
        Some(at) => format!("{key_id} {} activate={}\n", BASE64.encode(secret.expose()), at.rfc3339()),
    };
    let mut text = String::new();
    match existing {
        None => {
            text.push_str(
                "# batv-proxy keys: `number base64-secret [activate=RFC3339]`. Of the keys whose time has come, the \
                 one activated last signs (a line without a time: since always; among those, the first); all keys \
                 verify.\n",
            );
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
        assert_eq!(ring.signing_key_at(Moment::EARLIEST), id(3));
        let keys: Vec<_> = ring.iter().map(|(id, secret)| (id, secret.expose().to_vec())).collect();
        assert_eq!(keys, vec![(id(3), b"secret".to_vec()), (id(1), b"old".to_vec())]);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        for (text, needle) in [
            ("3", "expected"),
            ("3 YQ== b c", "expected"),
            ("3 YQ== b", "RFC 3339"),
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
        let (first, text) = add_key(None, path, None, SecretKind::Binary, None).unwrap();
        assert_eq!(first, id(0));
        let ring = KeyRing::parse(&text, path).unwrap();
        let secret = ring.iter().next().unwrap().1.expose().to_vec();
        assert_eq!(secret.len(), 32);
        assert!(!secret.contains(&0), "NUL bytes would break Exim interop");
        let (fifth, text) = add_key(Some(&text), path, Some(id(5)), SecretKind::Binary, None).unwrap();
        assert_eq!(fifth, id(5));
        let (next, text) = add_key(Some(&text), path, None, SecretKind::Binary, None).unwrap();
        assert_eq!(next, id(6), "the number after the signing key's");
        let ring = KeyRing::parse(&text, path).unwrap();
        let ids: Vec<_> = ring.iter().map(|(id, _)| id.number()).collect();
        assert_eq!(ids, vec![6, 5, 0]);
        assert_eq!(ring.iter().last().unwrap().1.expose(), secret.as_slice(), "old keys are kept byte for byte");
        assert!(text.starts_with("# batv-proxy keys"), "comments above the keys stay on top");
        let taken = add_key(Some(&text), path, Some(id(5)), SecretKind::Binary, None).unwrap_err();
        assert!(taken.to_string().contains("already"), "{taken}");
        let (_, text) = add_key(Some(&text), path, None, SecretKind::Printable, None).unwrap();
        let printable = KeyRing::parse(&text, path).unwrap().iter().next().unwrap().1.expose().to_vec();
        assert_eq!(printable.len(), 43);
        assert!(printable.iter().all(u8::is_ascii_alphanumeric), "{printable:?}");
    }

    fn at(text: &str) -> Moment {
        Moment::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn the_key_activated_last_signs_and_every_key_verifies() {
        let text = "0 a2V5LXplcm8=\n1 a2V5LW9uZQ== activate=2026-03-01T00:00:00Z\n\
                    2 a2V5LXR3bw== activate=2026-06-01T00:00:00+02:00\n";
        let ring = KeyRing::parse(text, Path::new("k")).unwrap();
        let before = at("2026-02-28T23:59:59Z");
        assert_eq!(ring.signing_key_at(before), id(0), "untimed keys sign until a timed one comes");
        assert_eq!(ring.signing_key_at(at("2026-03-01T00:00:00Z")), id(1), "at the second it activates");
        assert_eq!(ring.signing_key_at(at("2026-05-31T21:59:59Z")), id(1));
        assert_eq!(ring.signing_key_at(at("2026-05-31T22:00:00Z")), id(2), "offsets are honoured");
        let roles: Vec<(u8, KeyRole)> = ring.roles_at(before).map(|(key, role)| (key.id.number(), role)).collect();
        assert_eq!(roles, [(0, KeyRole::Signing), (1, KeyRole::Staged), (2, KeyRole::Staged)]);
        let roles: Vec<KeyRole> = ring.roles_at(at("2026-07-01T00:00:00Z")).map(|(_, role)| role).collect();
        assert_eq!(roles, [KeyRole::Verifying, KeyRole::Verifying, KeyRole::Signing]);
        assert_eq!(ring.iter().count(), 3, "all keys verify");
        // Only future keys: the first to come signs (check-config refuses such a file).
        let future = KeyRing::parse(
            "4 YQ== activate=2099-01-01T00:00:00Z\n5 Yg== activate=2098-01-01T00:00:00Z\n",
            Path::new("k"),
        )
        .unwrap();
        assert!(!future.any_active_at(before));
        assert_eq!(future.signing_key_at(before), id(5));
        // Plain lines: the first signs, as always.
        let plain = KeyRing::parse("7 YQ==\n3 Yg==\n", Path::new("k")).unwrap();
        assert_eq!(plain.signing_key_at(before), id(7));
        for bad in ["1 YQ== activate=tomorrow", "1 YQ== after=2026-03-01T00:00:00Z", "1 YQ== activate=2026-03-01"] {
            let error = KeyRing::parse(bad, Path::new("k")).unwrap_err().to_string();
            assert!(error.contains("RFC 3339"), "{bad}: {error}");
        }
    }

    #[test]
    fn fingerprints_tell_keys_apart_without_showing_them() {
        let ring = KeyRing::parse("1 c2VjcmV0\n2 b3RoZXI=\n", Path::new("k")).unwrap();
        let prints: Vec<String> = ring.entries().iter().map(KeyEntry::fingerprint).collect();
        assert_eq!(prints[0].len(), 12);
        assert_ne!(prints[0], prints[1]);
        assert!(!prints[0].contains("c2VjcmV0") && prints[0] != "736563726574", "{prints:?}");
        assert_eq!(prints[0], fingerprint(b"secret"), "stable: the same on every host");
    }

    #[test]
    fn keygen_stages_a_key() {
        let path = Path::new("keys");
        let (_, text) = add_key(None, path, None, SecretKind::Binary, None).unwrap();
        let (staged, text) =
            add_key(Some(&text), path, None, SecretKind::Binary, Some(at("2030-01-01T00:00:00Z"))).unwrap();
        assert_eq!(staged, id(1));
        assert!(text.contains(" activate=2030-01-01T00:00:00Z\n"), "{text}");
        let ring = KeyRing::parse(&text, path).unwrap();
        assert_eq!(ring.signing_key_at(at("2029-12-31T23:59:59Z")), id(0));
        assert_eq!(ring.signing_key_at(at("2030-01-01T00:00:00Z")), id(1));
    }
}
