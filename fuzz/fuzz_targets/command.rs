//! `Command::parse` on any bytes: never panics, and a parsed MAIL or RCPT,
//! rebuilt with `mail_line` / `rcpt_line`, is one CRLF-terminated line with
//! no other CR or LF, parses back to the same command, and rebuilds to the
//! same bytes (the canonical form is a fixed point).

#![no_main]

use batv_proxy::smtp::command::{Command, mail_line, rcpt_line};
use libfuzzer_sys::fuzz_target;

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

fuzz_target!(|line: &[u8]| {
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
});
