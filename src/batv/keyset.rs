//! Which key signs when, and for which domains: a [`KeySet`] is one key
//! file's keys ready to sign and verify, with their activation times; the
//! codec holds the default set and one set per tenant's domains. The time
//! is passed in as a [`Moment`], so the switch to a staged key is tested
//! with fixed instants, and happens in a running proxy at its second
//! without a reload.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;

use super::keys::{KeyRing, KeyRole, signing_index};
use super::{Day, HashAlgorithm, KeyId, KeyedMac};

/// An instant, in whole seconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Moment(i64);

impl Moment {
    pub const EARLIEST: Moment = Moment(i64::MIN);
    pub const LATEST: Moment = Moment(i64::MAX);

    pub const fn from_unix(seconds: i64) -> Self {
        Moment(seconds)
    }

    pub fn unix(self) -> i64 {
        self.0
    }

    /// `2026-03-01T00:00:00Z`, `2026-03-01T01:00:00+01:00`.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        time::OffsetDateTime::parse(text, &Rfc3339).ok().map(|at| Moment(at.unix_timestamp()))
    }

    /// In UTC, like `2026-03-01T00:00:00Z`.
    pub fn rfc3339(self) -> String {
        time::OffsetDateTime::from_unix_timestamp(self.0)
            .ok()
            .and_then(|at| at.format(&Rfc3339).ok())
            .unwrap_or_else(|| format!("@{}", self.0))
    }

    /// The UTC day it falls on.
    pub fn day(self) -> Day {
        Day::from_days_since_epoch(u32::try_from(self.0.div_euclid(86_400)).unwrap_or(0))
    }
}

impl From<SystemTime> for Moment {
    fn from(time: SystemTime) -> Self {
        Moment(time.duration_since(UNIX_EPOCH).map_or(0, |since| i64::try_from(since.as_secs()).unwrap_or(i64::MAX)))
    }
}

/// A day stands for its noon (UTC), as `listener::FixedClock::on` does.
impl From<Day> for Moment {
    fn from(day: Day) -> Self {
        Moment(i64::from(day.days_since_epoch()) * 86_400 + 43_200)
    }
}

/// What is known about one key without its secret: for `keys status` and
/// `batv_proxy_key_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDescription {
    /// `default`, or the first domain of a `[[batv.keys]]` entry.
    pub key_set: String,
    pub id: KeyId,
    pub fingerprint: String,
    pub activates: Option<Moment>,
}

/// One key file's keys, keyed for signing and verifying.
#[derive(Debug, Clone)]
pub(super) struct KeySet {
    pub(super) macs: [Option<KeyedMac>; 10],
    /// Activation times in file order, for choosing the signing key.
    schedule: Arc<[(Option<Moment>, KeyId)]>,
    descriptions: Arc<[KeyDescription]>,
}

impl KeySet {
    pub(super) fn new(ring: &KeyRing, hash: HashAlgorithm, name: &str) -> Self {
        let mut macs: [Option<KeyedMac>; 10] = Default::default();
        for (id, secret) in ring.iter() {
            macs[usize::from(id.number())] = Some(KeyedMac::new(hash, secret));
        }
        let schedule = ring.entries().iter().map(|key| (key.activates, key.id)).collect();
        let descriptions = ring
            .entries()
            .iter()
            .map(|key| KeyDescription {
                key_set: name.to_owned(),
                id: key.id,
                fingerprint: key.fingerprint(),
                activates: key.activates,
            })
            .collect();
        KeySet { macs, schedule, descriptions }
    }

    /// A few comparisons: a file holds at most ten keys.
    pub(super) fn signing_key(&self, now: Moment) -> KeyId {
        let index = signing_index(self.schedule.iter().map(|(at, _)| *at), now).unwrap_or(0);
        self.schedule[index].1
    }

    /// Each key with what it does at `now`.
    pub(super) fn roles(&self, now: Moment) -> impl Iterator<Item = (&KeyDescription, KeyRole)> {
        let signing = self.signing_key(now);
        self.descriptions.iter().map(move |key| (key, KeyRole::of(key.id, key.activates, signing, now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_parse_print_and_fall_on_days() {
        let at = Moment::parse_rfc3339("2026-03-01T01:30:00+02:00").unwrap();
        assert_eq!(at.rfc3339(), "2026-02-28T23:30:00Z");
        assert_eq!(at.day(), Day::parse("2026-02-28").unwrap());
        assert_eq!(Moment::from(Day::parse("2026-02-28").unwrap()).rfc3339(), "2026-02-28T12:00:00Z");
        assert!(Moment::parse_rfc3339("2026-03-01").is_none());
        let now = SystemTime::now();
        let days = now.duration_since(UNIX_EPOCH).unwrap().as_secs() / 86_400;
        assert_eq!(Moment::from(now).day(), Day::from_days_since_epoch(days as u32));
    }
}
