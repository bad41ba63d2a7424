//! The properties the `command` and `tag` fuzz targets check, as plain
//! functions: the targets call them on what libFuzzer generates, and
//! `tests/fuzz_regressions.rs` (`#[path]`-included there) calls them on
//! the committed findings and corpora on stable Rust, so both check the
//! very same thing.

use batv_proxy::batv::tag::{self, Parsed};
use batv_proxy::batv::{Codec, Day, Failure, HashAlgorithm, KeyRing, TagForm};
use batv_proxy::smtp::address::Mailbox;
use batv_proxy::smtp::command::{Command, mail_line, rcpt_line};

/// The rebuilt line without its CRLF, checked to be a single line.
fn single_line(rebuilt: &[u8]) -> &[u8] {
    let body = rebuilt.strip_suffix(b"\r\n").expect("a rebuilt command ends with CRLF");
    assert!(
        !body.contains(&b'\r') && !body.contains(&b'\n'),
        "a rebuilt command holds a CR or LF before its end: {:?}",
        String::from_utf8_lossy(rebuilt)
    );
    body
}

/// `Command::parse` on any bytes: never panics, and a parsed MAIL or RCPT,
/// rebuilt with `mail_line` / `rcpt_line`, is one CRLF-terminated line with
/// no other CR or LF, parses back to the same command, and rebuilds to the
/// same bytes (the canonical form is a fixed point).
pub fn command_round_trips(line: &[u8]) {
    let Ok(command) = Command::parse(line) else { return };
    let rebuilt = match &command {
        Command::Mail { path, parameters } => mail_line(path, parameters),
        Command::Rcpt { path, parameters } => rcpt_line(path, parameters),
        _ => return,
    };
    let again = Command::parse(single_line(&rebuilt)).unwrap_or_else(|error| {
        panic!(
            "the rebuilt line {:?} of {:?} does not parse: {error}",
            String::from_utf8_lossy(&rebuilt),
            String::from_utf8_lossy(line)
        )
    });
    assert_eq!(again, command, "rebuilt as {:?}", String::from_utf8_lossy(&rebuilt));
    let twice = match &again {
        Command::Mail { path, parameters } => mail_line(path, parameters),
        Command::Rcpt { path, parameters } => rcpt_line(path, parameters),
        _ => unreachable!("equal to a MAIL or RCPT"),
    };
    assert_eq!(twice, rebuilt, "rebuilding is not stable");
}

const ONE_KEY: &str = "3 c2VjcmV0LWtleS1mb3ItZnV6emluZw==\n";
const TWO_KEYS: &str = "7 bmV3ZXIta2V5LWZvci1mdXp6aW5n\n3 c2VjcmV0LWtleS1mb3ItZnV6emluZw==\n";

fn parse(text: &str) -> Mailbox {
    Mailbox::parse(text).unwrap_or_else(|error| panic!("{text:?} does not parse again: {error}"))
}

/// Addresses and tags.
///
/// Input layout: bytes 0..4 the day (little-endian, days since 1970, taken
/// modulo 1,000,000 for signing: the year 4707 is far enough), bytes 4..6
/// the lifetime (1..=365), byte 6 the settings (bit 0: SHA-1, bit 1:
/// sub-address form, bit 2: the two-key ring), the rest the address text
/// (lossily made UTF-8).
///
/// - `Mailbox::parse`, `tag::parse` and `Codec::verify` never panic, on any
///   day.
/// - A parsed mailbox prints in a form that parses back to it.
/// - A parsed tag, composed again, parses back to the same tag and original.
/// - An untagged mailbox, signed, printed and parsed again, verifies to the
///   original on every day of the lifetime and fails on each day after, up
///   to the 1000-day wrap of the stamp (expired for the first 500 days).
/// - In SHA-256 mode, the tagged address folded to ASCII lower or upper case
///   still verifies.
pub fn tag_properties(input: &[u8]) {
    if input.len() < 7 {
        return;
    }
    let any_day = Day::from_days_since_epoch(u32::from_le_bytes([input[0], input[1], input[2], input[3]]));
    let today = Day::from_days_since_epoch(any_day.days_since_epoch() % 1_000_000);
    let lifetime = 1 + u16::from_le_bytes([input[4], input[5]]) % 365;
    let settings = input[6];
    let hash = if settings & 1 == 0 { HashAlgorithm::Sha256 } else { HashAlgorithm::Sha1 };
    let form = if settings & 2 == 0 { TagForm::Standard } else { TagForm::Subaddress };
    let ring = if settings & 4 == 0 { ONE_KEY } else { TWO_KEYS };
    let keys = KeyRing::parse(ring, std::path::Path::new("fuzz-keys")).expect("the fuzz key ring parses");
    let codec = Codec::new(&keys, hash, lifetime, form);
    let text = String::from_utf8_lossy(&input[7..]);

    let Ok(mailbox) = Mailbox::parse(&text) else { return };
    assert_eq!(parse(&mailbox.to_string()), mailbox, "printed as {mailbox}");
    let _ = codec.verify(&mailbox, any_day);

    match tag::parse(&mailbox) {
        Parsed::Malformed => return,
        Parsed::Tagged(tagged) => {
            let composed = tag::compose(&tagged.original, &tagged.tag, tagged.form);
            assert_eq!(tag::parse(&parse(&composed.to_string())), Parsed::Tagged(tagged), "composed as {composed}");
            return;
        }
        Parsed::Untagged => {}
    }

    let signed = codec.sign(&mailbox, today);
    let printed = signed.to_string();
    let tagged = parse(&printed);
    for offset in 0..=u32::from(lifetime) {
        match codec.verify(&tagged, today.plus(offset)) {
            Ok(valid) => assert_eq!(valid.original, mailbox, "{printed} on day +{offset}"),
            Err(invalid) => panic!("{printed} fails on day +{offset} of {lifetime}: {:?}", invalid.reason),
        }
    }
    let after = [1, 2, 3, 30, 250, 499, 500, 501, 700, 998, 999].map(|n| u32::from(lifetime) + n);
    for offset in after.into_iter().filter(|&offset| offset < 1000) {
        let result = codec.verify(&tagged, today.plus(offset));
        let reason = result.as_ref().err().map(|invalid| invalid.reason);
        if offset <= u32::from(lifetime) + 500 {
            assert_eq!(reason, Some(Failure::Expired), "{printed} on day +{offset} of {lifetime}");
        } else {
            assert!(reason.is_some(), "{printed} verifies on day +{offset} of {lifetime}");
        }
    }
    if hash == HashAlgorithm::Sha256 {
        for folded in [printed.to_ascii_lowercase(), printed.to_ascii_uppercase()] {
            let valid = codec
                .verify(&parse(&folded), today)
                .unwrap_or_else(|invalid| panic!("{folded} (signed as {printed}) fails: {:?}", invalid.reason));
            assert!(valid.original.to_string().eq_ignore_ascii_case(&mailbox.to_string()), "{folded}");
        }
    }
}
