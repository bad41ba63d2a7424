//! Inputs that the cargo-fuzz targets in `fuzz/` found to break a property,
//! minimised, kept in `fuzz/regressions/<target>/` and checked here with the
//! same property on stable Rust, so CI keeps them fixed once they are.

use batv_proxy::batv::tag::{self, Parsed};
use batv_proxy::batv::{Codec, Day, Failure, HashAlgorithm, KeyRing, TagForm};
use batv_proxy::smtp::address::Mailbox;
use batv_proxy::smtp::command::{Command, mail_line, rcpt_line};

/// The `command` target's property: a parsed MAIL or RCPT, rebuilt, is one
/// CRLF line that parses back to the same command and rebuilds to the same
/// bytes.
fn assert_command_round_trips(line: &[u8]) {
    let rebuild = |command: &Command| match command {
        Command::Mail { path, parameters } => Some(mail_line(path, parameters)),
        Command::Rcpt { path, parameters } => Some(rcpt_line(path, parameters)),
        _ => None,
    };
    let Ok(command) = Command::parse(line) else { return };
    let Some(rebuilt) = rebuild(&command) else { return };
    let shown = String::from_utf8_lossy(&rebuilt).into_owned();
    let body = rebuilt.strip_suffix(b"\r\n").expect("a rebuilt command ends with CRLF");
    assert!(!body.contains(&b'\r') && !body.contains(&b'\n'), "{shown:?} holds a CR or LF");
    let again = Command::parse(body).unwrap_or_else(|error| {
        panic!("{:?} is rebuilt as {shown:?}, which does not parse: {error}", String::from_utf8_lossy(line))
    });
    assert_eq!(again, command, "rebuilt as {shown:?}");
    assert_eq!(rebuild(&again).as_deref(), Some(&rebuilt[..]), "rebuilding is not stable");
}

#[test]
fn command_mail_bare_path_literal_gt() {
    assert_command_round_trips(include_bytes!("../fuzz/regressions/command/mail-bare-path-literal-gt"));
}

#[test]
fn command_rcpt_bare_path_literal_gt() {
    assert_command_round_trips(include_bytes!("../fuzz/regressions/command/rcpt-bare-path-literal-gt"));
}

#[test]
fn command_mail_bare_path_literal_quote() {
    assert_command_round_trips(include_bytes!("../fuzz/regressions/command/mail-bare-path-literal-quote"));
}

#[test]
fn command_rcpt_bare_path_literal_quote() {
    assert_command_round_trips(include_bytes!("../fuzz/regressions/command/rcpt-bare-path-literal-quote"));
}

#[test]
fn command_mail_quoted_local_literal_at() {
    assert_command_round_trips(include_bytes!("../fuzz/regressions/command/mail-quoted-local-literal-at"));
}

const ONE_KEY: &str = "3 c2VjcmV0LWtleS1mb3ItZnV6emluZw==\n";
const TWO_KEYS: &str = "7 bmV3ZXIta2V5LWZvci1mdXp6aW5n\n3 c2VjcmV0LWtleS1mb3ItZnV6emluZw==\n";

fn reparse(text: &str) -> Mailbox {
    Mailbox::parse(text).unwrap_or_else(|error| panic!("{text:?} does not parse again: {error}"))
}

/// The `tag` target's property, on its input layout: bytes 0..4 the day,
/// 4..6 the lifetime, 6 the settings, the rest the address. See
/// fuzz/fuzz_targets/tag.rs.
fn assert_tag_properties(input: &[u8]) {
    let any_day = Day::from_days_since_epoch(u32::from_le_bytes([input[0], input[1], input[2], input[3]]));
    let today = Day::from_days_since_epoch(any_day.days_since_epoch() % 1_000_000);
    let lifetime = 1 + u16::from_le_bytes([input[4], input[5]]) % 365;
    let settings = input[6];
    let hash = if settings & 1 == 0 { HashAlgorithm::Sha256 } else { HashAlgorithm::Sha1 };
    let form = if settings & 2 == 0 { TagForm::Standard } else { TagForm::Subaddress };
    let ring = if settings & 4 == 0 { ONE_KEY } else { TWO_KEYS };
    let keys = KeyRing::parse(ring, std::path::Path::new("fuzz-keys")).unwrap();
    let codec = Codec::new(&keys, hash, lifetime, form);
    let text = String::from_utf8_lossy(&input[7..]);

    let Ok(mailbox) = Mailbox::parse(&text) else { return };
    assert_eq!(reparse(&mailbox.to_string()), mailbox, "printed as {mailbox}");
    let _ = codec.verify(&mailbox, any_day);
    match tag::parse(&mailbox) {
        Parsed::Malformed => return,
        Parsed::Tagged(tagged) => {
            let composed = tag::compose(&tagged.original, &tagged.tag, tagged.form);
            assert_eq!(tag::parse(&reparse(&composed.to_string())), Parsed::Tagged(tagged));
            return;
        }
        Parsed::Untagged => {}
    }
    let printed = codec.sign(&mailbox, today).to_string();
    let tagged = reparse(&printed);
    for offset in 0..=u32::from(lifetime) {
        let valid = codec
            .verify(&tagged, today.plus(offset))
            .unwrap_or_else(|invalid| panic!("{printed} fails on day +{offset} of {lifetime}: {:?}", invalid.reason));
        assert_eq!(valid.original, mailbox, "{printed} on day +{offset}");
    }
    let after = [1, 2, 3, 30, 250, 499, 500, 501, 700, 998, 999].map(|n| u32::from(lifetime) + n);
    for offset in after.into_iter().filter(|&offset| offset < 1000) {
        let reason = codec.verify(&tagged, today.plus(offset)).err().map(|invalid| invalid.reason);
        if offset <= u32::from(lifetime) + 500 {
            assert_eq!(reason, Some(Failure::Expired), "{printed} on day +{offset}");
        } else {
            assert!(reason.is_some(), "{printed} verifies on day +{offset}");
        }
    }
    if hash == HashAlgorithm::Sha256 {
        for folded in [printed.to_ascii_lowercase(), printed.to_ascii_uppercase()] {
            let valid = codec
                .verify(&reparse(&folded), today)
                .unwrap_or_else(|invalid| panic!("{folded} (signed as {printed}) fails: {:?}", invalid.reason));
            assert!(valid.original.to_string().eq_ignore_ascii_case(&mailbox.to_string()), "{folded}");
        }
    }
}

#[test]
fn tag_sha256_titlecase_ascii_folded() {
    assert_tag_properties(include_bytes!("../fuzz/regressions/tag/sha256-titlecase-ascii-folded"));
}

/// The cause of `command/mail-quoted-local-literal-at` at the level of
/// `Mailbox`, whose printed form must parse back to it.
#[test]
fn tag_mailbox_quoted_local_literal_at() {
    assert_tag_properties(include_bytes!("../fuzz/regressions/tag/mailbox-quoted-local-literal-at"));
}

/// Every file in a folder of `fuzz/`, in name order.
fn inputs(folder: &str) -> Vec<Vec<u8>> {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(folder);
    let mut files: Vec<_> = std::fs::read_dir(&folder).unwrap().map(|entry| entry.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", folder.display());
    files.into_iter().map(|path| std::fs::read(path).unwrap()).collect()
}

/// The seed inputs of the two targets, which hold today, keep holding.
#[test]
fn seeds_keep_their_properties() {
    for line in inputs("seeds/command") {
        assert_command_round_trips(&line);
    }
    for input in inputs("seeds/tag") {
        assert_tag_properties(&input);
    }
}

/// The corpus the fuzzers grew (minimised, one input per coverage feature)
/// reaches corners the seeds do not: replaying it on stable Rust keeps the
/// properties checked there too, between fuzzing runs.
#[test]
fn fuzz_corpus_keeps_its_properties() {
    for line in inputs("corpus/command") {
        assert_command_round_trips(&line);
    }
    for input in inputs("corpus/tag").into_iter().filter(|input| input.len() >= 7) {
        assert_tag_properties(&input);
    }
}

/// Every raw input the fuzzers reported (before minimising; they reduce to
/// the regressions above), replayed as found.
#[test]
fn raw_fuzzer_findings_stay_fixed() {
    for line in inputs("crashers/command") {
        assert_command_round_trips(&line);
    }
    for input in inputs("crashers/tag").into_iter().filter(|input| input.len() >= 7) {
        assert_tag_properties(&input);
    }
}
