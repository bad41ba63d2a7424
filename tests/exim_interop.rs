//! `hash = "sha1"` is Exim's `${prvs}`: the real Exim binary and batv-proxy
//! must make the same tags byte for byte, and each must verify the other's.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use batv_proxy::batv::{Codec, Day, HashAlgorithm, KeyRing, TagForm};
use batv_proxy::smtp::address::Mailbox;
use common::*;

/// Evaluates expansions with `exim -be`, one per line, optionally at a faked date.
fn exim(expressions: &[String], date: Option<&str>) -> Vec<String> {
    provision();
    let dir = TestDir::new("exim.");
    let config = dir.write("exim.conf", "");
    let binary = exim_dir().join("usr/sbin/exim4");
    let mut command = match date {
        Some(date) => {
            let mut command = Command::new("faketime");
            command.arg(format!("{date} 12:00:00")).arg(&binary);
            command
        }
        None => Command::new(&binary),
    };
    let mut child = command
        .arg("-C")
        .arg(&config)
        .arg("-be")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running exim");
    let mut input = expressions.join("\n");
    input.push('\n');
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let results: Vec<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("> "))
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    assert_eq!(results.len(), expressions.len(), "exim output:\n{text}\n{}", String::from_utf8_lossy(&output.stderr));
    results
}

/// Secrets Exim can take as literal strings: printable, no expansion syntax.
fn secrets() -> Vec<(u8, String)> {
    (0..10u8)
        .map(|id| {
            let secret: String = (0..(8 + id as usize * 5))
                .map(|i| {
                    let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:;!";
                    alphabet[(i * 7 + id as usize * 13) % alphabet.len()] as char
                })
                .collect();
            (id, secret)
        })
        .collect()
}

fn addresses() -> Vec<String> {
    let locals = [
        "alice",
        "Alice",
        "ALICE",
        "bob.smith",
        "Bob.Smith",
        "x",
        "user+tag",
        "first.last+news",
        "o'brien",
        "a_b-c",
        "12345",
        "MiXeD.CaSe",
        "very.long.local.part.with.many.dots.and.more.dots",
        "support-team",
        "noreply",
    ];
    let domains = ["example.com", "Example.COM", "mail.example.org", "sub.domain.example.net", "x.io"];
    locals.iter().flat_map(|l| domains.iter().map(move |d| format!("{l}@{d}"))).collect()
}

fn codec(id: u8, secret: &str) -> Codec {
    use base64::Engine;
    let text = format!("{id} {}\n", base64::engine::general_purpose::STANDARD.encode(secret));
    let keys = KeyRing::parse(&text, std::path::Path::new("keys")).unwrap();
    Codec::new(&keys, HashAlgorithm::Sha1, 7, TagForm::Standard)
}

fn check_day(date: Option<&str>, today: Day) {
    let addresses = addresses();
    let mut expressions = Vec::new();
    let mut ours = Vec::new();
    for (id, secret) in secrets() {
        let codec = codec(id, &secret);
        for address in &addresses {
            expressions.push(format!("${{prvs{{{address}}}{{{secret}}}{{{id}}}}}"));
            ours.push(codec.sign(&Mailbox::parse(address).unwrap(), today).to_string());
        }
    }
    let theirs = exim(&expressions, date);
    let mismatches: Vec<_> = ours.iter().zip(&theirs).filter(|(a, b)| a != b).take(5).collect();
    assert!(mismatches.is_empty(), "batv-proxy vs Exim (first mismatches): {mismatches:?}");
    assert_eq!(ours.len(), 10 * addresses.len());

    // Exim's tags verify here, and ours verify in Exim's ${prvscheck}.
    let mut index = 0;
    let mut checks = Vec::new();
    for (id, secret) in secrets() {
        let codec = codec(id, &secret);
        for _ in &addresses {
            let tagged = &theirs[index];
            let valid = codec.verify(&Mailbox::parse(tagged).unwrap(), today);
            assert!(valid.is_ok(), "Exim's tag {tagged} refused: {valid:?}");
            checks.push(format!(
                "${{prvscheck{{{tagged}}}{{{secret}}}{{${{if eq{{$prvscheck_result}}{{1}}{{VALID}}{{INVALID}}}}}}}}"
            ));
            index += 1;
        }
    }
    let verdicts = exim(&checks, date);
    assert!(
        verdicts.iter().all(|v| v == "VALID"),
        "Exim refused some of our tags: {:?}",
        verdicts.iter().filter(|v| *v != "VALID").count()
    );
}

#[test]
fn sha1_tags_are_byte_for_byte_exims_today() {
    let today = batv_proxy::listener::today();
    check_day(None, today);
}

#[test]
fn sha1_tags_match_exim_across_the_2027_wrap() {
    for date in ["2027-06-24", "2027-06-28", "2027-07-01"] {
        check_day(Some(date), Day::parse(date).unwrap());
    }
}

#[test]
fn exim_detects_our_forgeries_too() {
    // A tag altered by one hex digit must fail in both implementations.
    let (id, secret) = secrets().remove(3);
    let codec = codec(id, &secret);
    let today = batv_proxy::listener::today();
    let tagged = codec.sign(&Mailbox::parse("alice@example.com").unwrap(), today).to_string();
    let digit = if tagged.as_bytes()[9] == b'0' { "1" } else { "0" };
    let forged = format!("{}{digit}{}", &tagged[..9], &tagged[10..]);
    assert!(codec.verify(&Mailbox::parse(&forged).unwrap(), today).is_err());
    let verdict = exim(
        &[format!(
            "${{prvscheck{{{forged}}}{{{secret}}}{{${{if eq{{$prvscheck_result}}{{1}}{{VALID}}{{INVALID}}}}}}}}"
        )],
        None,
    );
    assert_eq!(verdict, ["INVALID"]);
}
