//! BATV tag codec: sign an address, verify a tagged one. Pure: keys come in
//! as a [`KeyRing`], the day as a parameter.
//!
//! Letter case: in `sha256` mode the HMAC covers the lower-cased address, so
//! a tag survives any MTA that folds the case of the local part, the domain
//! or the tag itself. In `sha1` mode the HMAC covers the address exactly as
//! signed, as Exim's `${prvs}` does; verification tries the address as
//! received and then lower-cased, so only a mixed-case address that a remote
//! MTA lower-cased is lost, which Exim's scheme cannot avoid.

pub mod keys;
pub mod keyset;
pub mod tag;

use std::borrow::Cow;
use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::Sha256;

pub use keys::{KeyRing, KeyRole, Secret};
pub use keyset::{KeyDescription, Moment};
pub use tag::{Day, KeyId, Parsed, Tag, TagForm, TaggedMailbox};

use crate::domains::DomainMap;
use crate::smtp::address::{Domain, Mailbox};

use self::keyset::KeySet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlgorithm {
    /// HMAC-SHA256 over the lower-cased address.
    #[default]
    Sha256,
    /// HMAC-SHA1 over the address as given: Exim's `${prvs}`.
    Sha1,
}

/// The longest lifetime that keeps "expired" and "dated in the future"
/// apart on the 1000-day stamp cycle.
pub const MAX_LIFETIME_DAYS: u16 = 365;

/// Why a tag did not verify. The snake-case names go into logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// No tag at all.
    Missing,
    /// Starts like a tag but is not one.
    Malformed,
    /// Key number not in the key file.
    UnknownKey,
    /// Past its expiry day.
    Expired,
    /// Dated further ahead than the lifetime allows (Exim accepts these).
    FutureDated,
    /// The HMAC does not match: forged, or altered in transit.
    BadSignature,
}

impl Failure {
    pub const ALL: [Failure; 6] = [
        Failure::Missing,
        Failure::Malformed,
        Failure::UnknownKey,
        Failure::Expired,
        Failure::FutureDated,
        Failure::BadSignature,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Missing => "missing",
            Failure::Malformed => "malformed",
            Failure::UnknownKey => "unknown_key",
            Failure::Expired => "expired",
            Failure::FutureDated => "future_dated",
            Failure::BadSignature => "bad_signature",
        }
    }

    /// One sentence for people.
    pub fn describe(self) -> &'static str {
        match self {
            Failure::Missing => "the address carries no prvs tag",
            Failure::Malformed => "the address looks tagged but the tag is malformed",
            Failure::UnknownKey => "the tag names a key number that is not in the key file",
            Failure::Expired => "the tag has expired",
            Failure::FutureDated => "the tag is dated further ahead than the lifetime allows",
            Failure::BadSignature => "the tag's signature does not match the address (forged or altered)",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Valid {
    /// The address with the tag removed.
    pub original: Mailbox,
    pub key_id: KeyId,
    /// Verified only after folding the received address to lower case.
    pub case_folded: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub reason: Failure,
    /// The address without its tag, when the tag could be parsed.
    pub original: Option<Mailbox>,
    pub key_id: Option<KeyId>,
}

/// A key's HMAC state after absorbing the key, so signing and verifying
/// only hash the short message.
#[derive(Clone)]
enum KeyedMac {
    Sha256(Hmac<Sha256>),
    Sha1(Hmac<Sha1>),
}

impl KeyedMac {
    fn new(hash: HashAlgorithm, secret: &Secret) -> Self {
        let key = secret.expose();
        match hash {
            HashAlgorithm::Sha256 => {
                KeyedMac::Sha256(Hmac::new_from_slice(key).expect("HMAC takes keys of any length"))
            }
            HashAlgorithm::Sha1 => KeyedMac::Sha1(Hmac::new_from_slice(key).expect("HMAC takes keys of any length")),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            KeyedMac::Sha256(mac) => mac.update(data),
            KeyedMac::Sha1(mac) => mac.update(data),
        }
    }

    fn signature(self) -> [u8; 3] {
        let mut out = [0u8; 3];
        match self {
            KeyedMac::Sha256(mac) => out.copy_from_slice(&mac.finalize().into_bytes()[..3]),
            KeyedMac::Sha1(mac) => out.copy_from_slice(&mac.finalize().into_bytes()[..3]),
        }
        out
    }

    /// Compares in constant time.
    fn verify(self, signature: &[u8; 3]) -> bool {
        match self {
            KeyedMac::Sha256(mac) => mac.verify_truncated_left(signature).is_ok(),
            KeyedMac::Sha1(mac) => mac.verify_truncated_left(signature).is_ok(),
        }
    }
}

impl fmt::Debug for KeyedMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<keyed HMAC state, redacted>")
    }
}

/// Signs and verifies tags with one key ring (and a ring per tenant's
/// domains, if any) and one set of settings.
#[derive(Debug, Clone)]
pub struct Codec {
    hash: HashAlgorithm,
    lifetime_days: u16,
    form: TagForm,
    default: KeySet,
    /// `[[batv.keys]]`: domains that sign and verify with a set of their own.
    tenants: Vec<KeySet>,
    tenant_of: DomainMap<usize>,
}

impl Codec {
    /// `lifetime_days` must be 1..=[`MAX_LIFETIME_DAYS`]; config validation
    /// ensures it.
    pub fn new(keys: &KeyRing, hash: HashAlgorithm, lifetime_days: u16, form: TagForm) -> Self {
        assert!((1..=MAX_LIFETIME_DAYS).contains(&lifetime_days), "lifetime out of range");
        Codec {
            hash,
            lifetime_days,
            form,
            default: KeySet::new(keys, hash, "default"),
            tenants: Vec::new(),
            tenant_of: DomainMap::default(),
        }
    }

    /// Gives `domains` (names or `*.parent` wildcards) keys of their own:
    /// their addresses are signed and verified with `keys` only.
    pub fn with_domain_keys(mut self, domains: &[String], keys: &KeyRing) -> Self {
        let name = domains.first().map_or("tenant", String::as_str);
        self.tenants.push(KeySet::new(keys, self.hash, name));
        for domain in domains {
            self.tenant_of.insert_with(domain, self.tenants.len() - 1);
        }
        self
    }

    fn keys_for(&self, domain: &Domain) -> &KeySet {
        match self.tenant_of.get(domain) {
            Some(&index) => &self.tenants[index],
            None => &self.default,
        }
    }

    pub fn hash(&self) -> HashAlgorithm {
        self.hash
    }

    pub fn lifetime_days(&self) -> u16 {
        self.lifetime_days
    }

    /// The key that signs `domain`'s addresses at `now`.
    pub fn signing_key(&self, domain: &Domain, now: impl Into<Moment>) -> KeyId {
        self.keys_for(domain).signing_key(now.into())
    }

    /// Every key of every set with its role at `now`: the default set
    /// first, then the tenants' in the order configured.
    pub fn key_roles(&self, now: Moment) -> Vec<(KeyDescription, KeyRole)> {
        std::iter::once(&self.default)
            .chain(&self.tenants)
            .flat_map(|set| set.roles(now).map(|(key, role)| (key.clone(), role)))
            .collect()
    }

    /// The tagged form of `mailbox`, signed with the key that signs at
    /// `now` and valid from that day for the lifetime. An address that
    /// already carries a tag (or looks like it) is returned unchanged:
    /// nothing is ever tagged twice. A [`Day`] stands for its noon.
    pub fn sign(&self, mailbox: &Mailbox, now: impl Into<Moment>) -> Mailbox {
        if tag::parse(mailbox) != Parsed::Untagged {
            return mailbox.clone();
        }
        let now = now.into();
        let keys = self.keys_for(mailbox.domain());
        let key_id = keys.signing_key(now);
        let expiry = now.day().plus(u32::from(self.lifetime_days)).stamp();
        let mut mac = keys.macs[usize::from(key_id.number())].clone().expect("the signing key is in the ring");
        mac.update(&Tag::signed_prefix(key_id, expiry));
        mac.update(self.hashed_form(mailbox).as_bytes());
        let tag = Tag { key_id, expiry, signature: mac.signature() };
        tag::compose(mailbox, &tag, self.form)
    }

    /// Checks a tagged address: key known, signature right, not expired,
    /// not dated beyond the lifetime.
    pub fn verify(&self, mailbox: &Mailbox, today: Day) -> Result<Valid, Invalid> {
        let tagged = match tag::parse(mailbox) {
            Parsed::Untagged => {
                return Err(Invalid { reason: Failure::Missing, original: None, key_id: None });
            }
            Parsed::Malformed => {
                return Err(Invalid { reason: Failure::Malformed, original: None, key_id: None });
            }
            Parsed::Tagged(tagged) => tagged,
        };
        let TaggedMailbox { tag, original, .. } = tagged;
        let invalid = |reason, original| Err(Invalid { reason, original: Some(original), key_id: Some(tag.key_id) });
        let Some(keyed) = &self.keys_for(original.domain()).macs[usize::from(tag.key_id.number())] else {
            return invalid(Failure::UnknownKey, original);
        };
        let prefix = Tag::signed_prefix(tag.key_id, tag.expiry);
        let matches = |text: &str| {
            let mut mac = keyed.clone();
            mac.update(&prefix);
            mac.update(text.as_bytes());
            mac.verify(&tag.signature)
        };
        let hashed = self.hashed_form(&original);
        let case_folded = if matches(&hashed) {
            matches!(hashed, Cow::Owned(_))
        } else if self.hash == HashAlgorithm::Sha1 && matches(&hashed.to_lowercase()) {
            true
        } else {
            return invalid(Failure::BadSignature, original);
        };
        let days_left = tag.expiry.days_after(today);
        if days_left > self.lifetime_days {
            // Beyond the lifetime: either in the past (the stamp lies behind
            // today, seen forwards from today it is far ahead) or truly
            // dated into the future. Half the cycle separates the two.
            let reason = if days_left >= 500 { Failure::Expired } else { Failure::FutureDated };
            return invalid(reason, original);
        }
        Ok(Valid { original, key_id: tag.key_id, case_folded })
    }

    /// The text the HMAC covers after `KDDD`. Borrowed when no case
    /// folding is needed, so the common path does not allocate.
    fn hashed_form<'a>(&self, mailbox: &'a Mailbox) -> Cow<'a, str> {
        let text = mailbox.canonical_text();
        match self.hash {
            HashAlgorithm::Sha1 => text,
            HashAlgorithm::Sha256 if text.is_ascii() => {
                if text.bytes().any(|b| b.is_ascii_uppercase()) {
                    Cow::Owned(text.to_ascii_lowercase())
                } else {
                    text
                }
            }
            // Not only upper-case letters fold: title-case ones (ǋ) do too.
            HashAlgorithm::Sha256 => {
                let lower = text.to_lowercase();
                if lower == *text { text } else { Cow::Owned(lower) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const SECRET: &str = "c2VjcmV0"; // "secret"

    fn ring(text: &str) -> KeyRing {
        KeyRing::parse(text, Path::new("keys")).unwrap()
    }

    fn codec(hash: HashAlgorithm) -> Codec {
        Codec::new(&ring(&format!("3 {SECRET}\n")), hash, 7, TagForm::Standard)
    }

    fn mailbox(text: &str) -> Mailbox {
        Mailbox::parse(text).unwrap()
    }

    fn day(text: &str) -> Day {
        Day::parse(text).unwrap()
    }

    fn reason(result: Result<Valid, Invalid>) -> Option<Failure> {
        result.err().map(|invalid| invalid.reason)
    }

    #[test]
    fn sha1_matches_exim_bytes() {
        // Values printed by Exim 4.96: exim4 -be '${prvs{ADDR}{secret}{3}}' on 2026-11-25.
        let codec = codec(HashAlgorithm::Sha1);
        let today = day("2026-11-25");
        assert_eq!(codec.sign(&mailbox("alice@example.com"), today).to_string(), "prvs=37894e943a=alice@example.com");
        assert_eq!(codec.sign(&mailbox("Alice@Example.com"), today).to_string(), "prvs=3789b4a285=Alice@Example.com");
    }

    #[test]
    fn sign_then_verify_every_day_of_the_lifetime() {
        for hash in [HashAlgorithm::Sha256, HashAlgorithm::Sha1] {
            let codec = codec(hash);
            let signed_on = day("2026-11-24");
            let tagged = codec.sign(&mailbox("alice@example.com"), signed_on);
            for offset in 0..=7 {
                let valid = codec.verify(&tagged, signed_on.plus(offset)).unwrap();
                assert_eq!(valid.original, mailbox("alice@example.com"));
                assert_eq!(valid.key_id.number(), 3);
            }
            assert_eq!(reason(codec.verify(&tagged, signed_on.plus(8))), Some(Failure::Expired));
            assert_eq!(reason(codec.verify(&tagged, signed_on.plus(400))), Some(Failure::Expired));
        }
    }

    #[test]
    fn the_2027_07_01_wrap_is_seamless() {
        // Stamps run ..., 998, 999, 000, 001, ... around 2027-07-01 (day 21000).
        let codec = codec(HashAlgorithm::Sha256);
        let address = mailbox("alice@example.com");
        for signed in ["2027-06-20", "2027-06-24", "2027-06-25", "2027-06-28", "2027-06-30", "2027-07-01"] {
            let signed_on = day(signed);
            let tagged = codec.sign(&address, signed_on);
            for offset in 0..=7 {
                assert!(
                    codec.verify(&tagged, signed_on.plus(offset)).is_ok(),
                    "signed {signed}, +{offset} days: {tagged}"
                );
            }
            assert_eq!(reason(codec.verify(&tagged, signed_on.plus(8))), Some(Failure::Expired), "signed {signed}");
        }
        let tagged = codec.sign(&address, day("2027-06-28"));
        assert!(tagged.local_part().starts_with("prvs=3004"), "{tagged}");
    }

    #[test]
    fn tags_dated_beyond_the_lifetime_are_refused() {
        let codec = codec(HashAlgorithm::Sha1);
        let today = day("2026-11-25");
        // Signed correctly, but made as if 30 days from now (Exim would accept it).
        let ahead = codec.sign(&mailbox("alice@example.com"), today.plus(30));
        assert_eq!(reason(codec.verify(&ahead, today)), Some(Failure::FutureDated));
        let just_inside = codec.sign(&mailbox("alice@example.com"), today);
        assert!(codec.verify(&just_inside, today).is_ok());
        let one_too_far = codec.sign(&mailbox("alice@example.com"), today.plus(1));
        assert_eq!(reason(codec.verify(&one_too_far, today)), Some(Failure::FutureDated));
    }

    #[test]
    fn every_failure_reason() {
        let codec = codec(HashAlgorithm::Sha256);
        let today = day("2026-11-25");
        let tagged = codec.sign(&mailbox("alice@example.com"), today).to_string();
        let table = [
            ("alice@example.com", Failure::Missing),
            ("prvs=37xx000000=alice@example.com", Failure::Malformed),
            (&tagged.replacen("prvs=3", "prvs=5", 1), Failure::UnknownKey),
            (&tagged.replace("=alice@", "=bob@"), Failure::BadSignature),
            (&format!("{}000000{}", &tagged[..9], &tagged[15..]), Failure::BadSignature),
        ];
        for (address, expected) in table {
            assert_eq!(reason(codec.verify(&mailbox(address), today)), Some(expected), "{address}");
        }
        let past = codec.sign(&mailbox("alice@example.com"), day("2026-10-01"));
        assert_eq!(reason(codec.verify(&past, today)), Some(Failure::Expired));
    }

    #[test]
    fn sha256_tags_survive_case_folding() {
        let codec = codec(HashAlgorithm::Sha256);
        let today = day("2026-11-25");
        let tagged = codec.sign(&mailbox("Alice.Smith@Example.com"), today).to_string();
        for variant in [tagged.clone(), tagged.to_lowercase(), tagged.to_uppercase()] {
            let valid = codec.verify(&mailbox(&variant), today).unwrap_or_else(|e| panic!("{variant}: {e:?}"));
            assert!(valid.original.to_string().eq_ignore_ascii_case("alice.smith@example.com"));
        }
    }

    #[test]
    fn title_case_letters_fold_like_the_rest() {
        // Found by fuzzing: 'ǋ' is neither upper nor lower case, yet lower-cases to 'ǌ'.
        let codec = codec(HashAlgorithm::Sha256);
        let today = day("2026-11-25");
        let tagged = codec.sign(&mailbox("ǋn@n"), today).to_string();
        for variant in [tagged.clone(), tagged.to_ascii_uppercase(), tagged.to_lowercase()] {
            assert!(codec.verify(&mailbox(&variant), today).is_ok(), "{variant}");
        }
    }

    #[test]
    fn sha1_tags_verify_as_exim_writes_them() {
        let codec = codec(HashAlgorithm::Sha1);
        let today = day("2026-11-25");
        assert!(codec.verify(&mailbox("prvs=37894e943a=alice@example.com"), today).is_ok());
        assert!(codec.verify(&mailbox("PRVS=37894E943A=alice@example.com"), today).is_ok());
        assert!(codec.verify(&mailbox("prvs=3789b4a285=Alice@Example.com"), today).is_ok());
        // Exim's scheme binds the case: the lower-cased form of a mixed-case tag is lost.
        assert_eq!(
            reason(codec.verify(&mailbox("prvs=3789b4a285=alice@example.com"), today)),
            Some(Failure::BadSignature)
        );
    }

    #[test]
    fn rotation_signs_with_the_first_key_and_verifies_with_all() {
        let today = day("2026-11-25");
        let old = Codec::new(&ring(&format!("1 {SECRET}\n")), HashAlgorithm::Sha256, 7, TagForm::Standard);
        let old_tag = old.sign(&mailbox("alice@example.com"), today);
        let rotated = Codec::new(
            &ring(&format!("2 bmV3LXNlY3JldA==\n1 {SECRET}\n")),
            HashAlgorithm::Sha256,
            7,
            TagForm::Standard,
        );
        let new_tag = rotated.sign(&mailbox("alice@example.com"), today);
        assert!(new_tag.local_part().starts_with("prvs=2"));
        assert_eq!(rotated.verify(&old_tag, today).unwrap().key_id.number(), 1);
        assert_eq!(rotated.verify(&new_tag, today).unwrap().key_id.number(), 2);
        assert_eq!(reason(old.verify(&new_tag, today)), Some(Failure::UnknownKey));
        // Same key number, different secret: a forgery.
        let impostor = Codec::new(&ring("1 b3RoZXI=\n"), HashAlgorithm::Sha256, 7, TagForm::Standard);
        assert_eq!(reason(impostor.verify(&old_tag, today)), Some(Failure::BadSignature));
    }

    #[test]
    fn never_tagged_twice_and_odd_addresses_round_trip() {
        let codec = codec(HashAlgorithm::Sha256);
        let today = day("2026-11-25");
        let once = codec.sign(&mailbox("alice@example.com"), today);
        assert_eq!(codec.sign(&once, today), once);
        let subaddressed = Codec::new(&ring(&format!("3 {SECRET}\n")), HashAlgorithm::Sha256, 7, TagForm::Subaddress);
        let sub = subaddressed.sign(&mailbox("alice@example.com"), today);
        assert!(sub.to_string().starts_with("alice+prvs=3"), "{sub}");
        assert_eq!(codec.sign(&sub, today), sub);
        // Both spellings verify whichever form signs.
        assert!(codec.verify(&sub, today).is_ok());
        for address in [
            "user+tag@example.com",
            "first.last@example.com",
            r#""john doe"@example.com"#,
            r#""odd\"quote"@example.com"#,
            "josé@exämple.com",
            "用户@例子.广告",
        ] {
            for signer in [&codec, &subaddressed] {
                let tagged = signer.sign(&mailbox(address), today);
                let reparsed = Mailbox::parse(&tagged.to_string()).unwrap();
                assert_eq!(codec.verify(&reparsed, today).unwrap().original, mailbox(address), "{tagged}");
            }
        }
    }
}
