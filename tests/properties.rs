//! The fuzz targets' properties, run in CI with proptest (stable Rust):
//! parsers never panic on any input, and what they parse round-trips.
//! `fuzz/` runs the same properties coverage-guided with cargo-fuzz.

use batv_proxy::batv::{Codec, Day, HashAlgorithm, KeyRing, TagForm};
use batv_proxy::smtp::address::Mailbox;
use batv_proxy::smtp::command::Command;
use batv_proxy::smtp::data::{DataScanner, Scan};
use batv_proxy::smtp::line::{Framed, next_line};
use batv_proxy::smtp::reply::Reply;
use bytes::BytesMut;
use proptest::prelude::*;

fn codec() -> Codec {
    let keys = KeyRing::parse("3 c2VjcmV0LWtleS1mb3ItcHJvcGVydGllcw==\n", std::path::Path::new("keys")).unwrap();
    Codec::new(&keys, HashAlgorithm::Sha256, 7, TagForm::Standard)
}

/// Bytes that look like SMTP more often than random bytes do.
fn smtpish() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            Just(b'\r'),
            Just(b'\n'),
            Just(b'.'),
            Just(b'<'),
            Just(b'>'),
            Just(b'@'),
            Just(b'='),
            Just(b' '),
            Just(b'"'),
            Just(b'\\'),
            Just(b':'),
            any::<u8>(),
            b'a'..=b'z',
        ],
        0..300,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 800, ..ProptestConfig::default() })]

    #[test]
    fn command_parser_never_panics_and_reparses_what_it_builds(line in smtpish()) {
        if let Ok(Command::Mail { path, parameters }) = Command::parse(&line) {
            let rebuilt = batv_proxy::smtp::command::mail_line(&path, &parameters);
            let again = Command::parse(&rebuilt[..rebuilt.len() - 2]).expect("a rebuilt MAIL parses");
            prop_assert_eq!(again, Command::Mail { path, parameters });
        }
        if let Ok(Command::Rcpt { path, parameters }) = Command::parse(&line) {
            let rebuilt = batv_proxy::smtp::command::rcpt_line(&path, &parameters);
            let again = Command::parse(&rebuilt[..rebuilt.len() - 2]).expect("a rebuilt RCPT parses");
            prop_assert_eq!(again, Command::Rcpt { path, parameters });
        }
    }

    #[test]
    fn reply_parser_never_panics_and_round_trips(input in smtpish(), code in 200u16..600, lines in prop::collection::vec("[ -~]{0,40}", 1..5)) {
        let mut buffer = BytesMut::from(&input[..]);
        let _ = Reply::parse(&mut buffer);
        let reply = Reply::from_lines(code, lines);
        let mut encoded = BytesMut::from(&reply.to_bytes()[..]);
        prop_assert_eq!(Reply::parse(&mut encoded).unwrap().unwrap(), reply);
        prop_assert!(encoded.is_empty());
    }

    #[test]
    fn data_scanner_is_independent_of_chunking(input in smtpish(), cut in 1usize..64) {
        let whole = {
            let mut scanner = DataScanner::new();
            (scanner.scan(&input), scanner.violation())
        };
        let mut scanner = DataScanner::new();
        let mut offset = 0;
        let mut chunked = Scan::Continue;
        for chunk in input.chunks(cut) {
            if let Scan::End(length) = scanner.scan(chunk) {
                chunked = Scan::End(offset + length);
                break;
            }
            offset += chunk.len();
        }
        prop_assert_eq!(whole, (chunked, scanner.violation()));
        // An end is only ever the standard terminator.
        if let Scan::End(length) = chunked {
            prop_assert!(length >= 3 && &input[length - 3..length] == b".\r\n");
            prop_assert!(length == 3 || &input[length - 5..length - 3] == b"\r\n");
        }
    }

    #[test]
    fn line_framing_never_lets_a_bare_cr_or_lf_through(input in smtpish(), max in 4usize..128) {
        if let Framed::Line { len, consumed } = next_line(&input, max) {
            prop_assert_eq!(&input[len..consumed], b"\r\n");
            prop_assert!(!input[..len].contains(&b'\r') && !input[..len].contains(&b'\n'));
            prop_assert!(consumed <= max);
        }
    }

    #[test]
    fn tags_verify_after_signing_and_never_panic(local in "[a-zA-Z0-9.+_-]{1,30}", domain in "[a-z0-9-]{1,20}\\.[a-z]{2,6}", days in 0u32..40000, junk in smtpish()) {
        let codec = codec();
        let today = Day::from_days_since_epoch(days);
        if let Ok(mailbox) = Mailbox::parse(&format!("{local}@{domain}")) {
            let tagged = codec.sign(&mailbox, today);
            let reparsed = Mailbox::parse(&tagged.to_string()).unwrap();
            prop_assert_eq!(codec.verify(&reparsed, today).unwrap().original, mailbox.clone());
            prop_assert!(codec.verify(&reparsed, today.plus(8)).is_err());
        }
        if let Ok(text) = std::str::from_utf8(&junk) && let Ok(mailbox) = Mailbox::parse(text) {
            let _ = codec.verify(&mailbox, today);
        }
    }

    #[test]
    fn inspection_never_panics(input in prop::collection::vec(any::<u8>(), 0..4000), structured in smtpish()) {
        let _ = batv_proxy::dsn::inspect(&input);
        let mut report = b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n".to_vec();
        report.extend_from_slice(&structured);
        let _ = batv_proxy::dsn::inspect(&report);
    }
}
