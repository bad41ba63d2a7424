//! The `prvs=` tag itself: its fields, its two spellings in an address, and
//! the calendar arithmetic of its expiry stamp. Pure; no keys, no clock.

use std::fmt;

use crate::smtp::address::Mailbox;

/// Key number 0–9, the `K` of `prvs=KDDDSSSSSS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(u8);

impl KeyId {
    pub fn new(number: u8) -> Option<Self> {
        (number <= 9).then_some(KeyId(number))
    }

    pub fn number(self) -> u8 {
        self.0
    }

    fn digit(self) -> u8 {
        b'0' + self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A calendar day as days since 1970-01-01 (UTC). The codec never reads the
/// clock: callers pass `today`, so expiry logic is tested with fixed dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(u32);

impl Day {
    pub const fn from_days_since_epoch(days: u32) -> Self {
        Day(days)
    }

    pub fn days_since_epoch(self) -> u32 {
        self.0
    }

    pub fn from_date(date: time::Date) -> Option<Self> {
        let days = date.to_julian_day() - time::macros::date!(1970 - 01 - 01).to_julian_day();
        u32::try_from(days).ok().map(Day)
    }

    /// Parses `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Option<Self> {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(text, &format).ok().and_then(Day::from_date)
    }

    pub fn to_date(self) -> time::Date {
        time::macros::date!(1970 - 01 - 01) + time::Duration::days(i64::from(self.0))
    }

    pub fn plus(self, days: u32) -> Day {
        Day(self.0 + days)
    }

    /// The 3-digit stamp of a tag that expires on this day.
    pub fn stamp(self) -> DayStamp {
        DayStamp((self.0 % 1000) as u16)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let date = self.to_date();
        write!(f, "{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day())
    }
}

/// `DDD`: an expiry day modulo 1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayStamp(u16);

impl DayStamp {
    pub fn new(value: u16) -> Option<Self> {
        (value < 1000).then_some(DayStamp(value))
    }

    pub fn value(self) -> u16 {
        self.0
    }

    /// Days from `today` until this stamp's day, counted forwards around the
    /// 1000-day cycle (0 = expires today). Working modulo 1000 is what makes
    /// the wrap (e.g. day 20999 → stamp 999, day 21000 → stamp 000) harmless.
    pub fn days_after(self, today: Day) -> u16 {
        (self.0 + 1000 - today.stamp().0) % 1000
    }

    fn digits(self) -> [u8; 3] {
        let v = self.0;
        [b'0' + (v / 100) as u8, b'0' + (v / 10 % 10) as u8, b'0' + (v % 10) as u8]
    }
}

/// The ten characters `KDDDSSSSSS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    pub key_id: KeyId,
    pub expiry: DayStamp,
    /// First three bytes of the HMAC.
    pub signature: [u8; 3],
}

impl Tag {
    /// The bytes a tag's HMAC covers before the address: `K` then `DDD`.
    pub fn signed_prefix(key_id: KeyId, expiry: DayStamp) -> [u8; 4] {
        let [a, b, c] = expiry.digits();
        [key_id.digit(), a, b, c]
    }

    /// Parses `KDDDSSSSSS`, hex digits in either case.
    fn parse(text: &str) -> Option<Tag> {
        let bytes = text.as_bytes();
        if bytes.len() != 10 || !bytes[..4].iter().all(u8::is_ascii_digit) {
            return None;
        }
        let key_id = KeyId(bytes[0] - b'0');
        let expiry =
            DayStamp(u16::from(bytes[1] - b'0') * 100 + u16::from(bytes[2] - b'0') * 10 + u16::from(bytes[3] - b'0'));
        let mut signature = [0u8; 3];
        for (index, pair) in bytes[4..].chunks(2).enumerate() {
            signature[index] = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        }
        Some(Tag { key_id, expiry, signature })
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Tag {
    /// Lower-case hex, as Exim and the draft write it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:03}", self.key_id, self.expiry.0)?;
        for byte in self.signature {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// Where the tag stands in the local part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TagForm {
    /// `prvs=TAG=local@domain` (draft-levine-smtp-batv).
    #[default]
    Standard,
    /// `local+prvs=TAG@domain`: survives a backup MX that knows sub-addresses
    /// but not BATV.
    Subaddress,
}

/// An address that carries a tag, split into the tag and the address it signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedMailbox {
    pub tag: Tag,
    pub original: Mailbox,
    pub form: TagForm,
}

/// What an address's local part says about tagging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Untagged,
    Tagged(TaggedMailbox),
    /// It starts like a tag (`prvs=`) but is not one.
    Malformed,
}

const PREFIX: &str = "prvs=";
const SUBADDRESS_MARKER: &str = "+prvs=";

/// Recognises both spellings; `prvs=` and hex digits match in any case.
pub fn parse(mailbox: &Mailbox) -> Parsed {
    let local = mailbox.local_part();
    if starts_with_ignore_case(local, PREFIX) {
        let rest = &local[PREFIX.len()..];
        let tag = rest.get(..10).and_then(Tag::parse);
        let original = rest.get(10..).and_then(|after| after.strip_prefix('='));
        return match (tag, original) {
            (Some(tag), Some(original)) if !original.is_empty() => match mailbox.with_local_part(original) {
                Ok(original) => Parsed::Tagged(TaggedMailbox { tag, original, form: TagForm::Standard }),
                Err(_) => Parsed::Malformed,
            },
            _ => Parsed::Malformed,
        };
    }
    if let Some(marker) = rfind_ignore_case(local, SUBADDRESS_MARKER) {
        let original = &local[..marker];
        let tag = Tag::parse(&local[marker + SUBADDRESS_MARKER.len()..]);
        return match (tag, original.is_empty()) {
            (Some(tag), false) => match mailbox.with_local_part(original) {
                Ok(original) => Parsed::Tagged(TaggedMailbox { tag, original, form: TagForm::Subaddress }),
                Err(_) => Parsed::Malformed,
            },
            _ => Parsed::Malformed,
        };
    }
    Parsed::Untagged
}

/// Builds the tagged address.
pub fn compose(original: &Mailbox, tag: &Tag, form: TagForm) -> Mailbox {
    let local = match form {
        TagForm::Standard => format!("{PREFIX}{tag}={}", original.local_part()),
        TagForm::Subaddress => format!("{}{SUBADDRESS_MARKER}{tag}", original.local_part()),
    };
    original.with_local_part(local).expect("a tagged local part is non-empty and adds no control characters")
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len() && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn rfind_ignore_case(text: &str, needle: &str) -> Option<usize> {
    let (text, needle) = (text.as_bytes(), needle.as_bytes());
    (0..=text.len().checked_sub(needle.len())?)
        .rev()
        .find(|&start| text[start..start + needle.len()].eq_ignore_ascii_case(needle))
}

/// The key number of a tagged address; `None` when it carries no tag.
pub fn key_of(mailbox: &Mailbox) -> Option<KeyId> {
    match parse(mailbox) {
        Parsed::Tagged(tagged) => Some(tagged.tag.key_id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(text: &str) -> Mailbox {
        Mailbox::parse(text).unwrap()
    }

    #[test]
    fn days_and_stamps() {
        assert_eq!(Day::parse("1970-01-01"), Some(Day(0)));
        assert_eq!(Day::parse("2026-11-25"), Some(Day(20782)));
        assert_eq!(Day::parse("2027-07-01").unwrap().stamp().value(), 0);
        assert_eq!(Day::parse("2027-06-30").unwrap().stamp().value(), 999);
        assert_eq!(Day(20782).to_string(), "2026-11-25");
        assert_eq!(Day::parse("2026-13-01"), None);
        assert_eq!(Day::parse("26-11-25"), None);
        // Counting forwards across the wrap.
        assert_eq!(DayStamp(4).days_after(Day(20997)), 7);
        assert_eq!(DayStamp(997).days_after(Day(21000)), 997);
    }

    #[test]
    fn tag_text_round_trips_and_hex_case_is_ignored() {
        let tag = Tag::parse("3789ABcdef").unwrap();
        assert_eq!(tag.key_id.number(), 3);
        assert_eq!(tag.expiry.value(), 789);
        assert_eq!(tag.signature, [0xab, 0xcd, 0xef]);
        assert_eq!(tag.to_string(), "3789abcdef");
        assert_eq!(Tag::parse("0004000000").unwrap().to_string(), "0004000000");
        for bad in ["3789abcde", "3789abcdefa", "a789abcdef", "37x9abcdef", "3789abcdeg"] {
            assert_eq!(Tag::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn both_spellings_parse() {
        let Parsed::Tagged(standard) = parse(&mailbox("prvs=3789abcdef=alice@example.com")) else { panic!() };
        assert_eq!(standard.original, mailbox("alice@example.com"));
        assert_eq!(standard.form, TagForm::Standard);
        let Parsed::Tagged(upper) = parse(&mailbox("PRVS=3789ABCDEF=ALICE@example.com")) else { panic!() };
        assert_eq!(upper.original.local_part(), "ALICE");
        let Parsed::Tagged(sub) = parse(&mailbox("alice+news+prvs=3789abcdef@example.com")) else { panic!() };
        assert_eq!(sub.original, mailbox("alice+news@example.com"));
        assert_eq!(sub.form, TagForm::Subaddress);
        // A tagged address whose original needs quoting.
        let Parsed::Tagged(quoted) = parse(&mailbox(r#""prvs=3789abcdef=john doe"@example.com"#)) else { panic!() };
        assert_eq!(quoted.original.local_part(), "john doe");
    }

    #[test]
    fn look_alikes() {
        assert_eq!(parse(&mailbox("alice@example.com")), Parsed::Untagged);
        assert_eq!(parse(&mailbox("prvsfan@example.com")), Parsed::Untagged);
        for malformed in [
            "prvs=@example.com",
            "prvs=3789abcdef@example.com",
            "prvs=3789abcdef=@example.com",
            "prvs=3789abcxyz=alice@example.com",
            "prvs=789abcdef=alice@example.com",
            "alice+prvs=3789abc@example.com",
            "+prvs=3789abcdef@example.com",
        ] {
            assert_eq!(parse(&mailbox(malformed)), Parsed::Malformed, "{malformed}");
        }
    }

    #[test]
    fn compose_round_trips_through_parse() {
        let tag = Tag { key_id: KeyId(7), expiry: DayStamp(5), signature: [1, 2, 0xff] };
        for original in ["alice@example.com", r#""john doe"@example.com"#, "josé+x@exämple.com", "a.b@[192.0.2.1]"] {
            for form in [TagForm::Standard, TagForm::Subaddress] {
                let tagged = compose(&mailbox(original), &tag, form);
                let reparsed = Mailbox::parse(&tagged.to_string()).unwrap();
                assert_eq!(parse(&reparsed), Parsed::Tagged(TaggedMailbox { tag, original: mailbox(original), form }));
            }
        }
        assert_eq!(
            compose(&mailbox("alice@example.com"), &tag, TagForm::Standard).to_string(),
            "prvs=70050102ff=alice@example.com"
        );
        assert_eq!(
            compose(&mailbox("alice@example.com"), &tag, TagForm::Subaddress).to_string(),
            "alice+prvs=70050102ff@example.com"
        );
    }
}
