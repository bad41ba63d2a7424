//! One case per format and per generic rule, with the look-alikes each must not take.

use super::*;
use crate::dsn::entity::Headers;
use mail_parser::MessageParser;

fn recognized(message: &str) -> Option<&'static str> {
    let parser = MessageParser::new();
    let structure = Structure::walk(&parser, message.as_bytes());
    let text = structure.plain_text();
    recognize(&structure, &text, &crate::dsn::quoted::id_runs(&text)).map(|found| found.rule)
}

#[test]
fn formats() {
    let daemon = "From: MAILER-DAEMON@mx.example.net\n";
    let person = "From: Bob <bob@example.net>\n";
    let cases: &[(&str, String, Option<&str>)] = &[
        (
            "qmail",
            format!("{daemon}\nHi. This is the qmail-send program at mx.example.net.\nI'm afraid I wasn't able to deliver your message to the following addresses.\n"),
            Some("qmail"),
        ),
        (
            "qmail from a person's address still counts",
            format!("{person}\nHi. This is the qmail-send program at x.\n\n--- Below this line is a copy of the message.\n"),
            Some("qmail"),
        ),
        ("qmail greeting alone", format!("{daemon}\nHi. This is the qmail-send program at x.\n"), None),
        (
            "sentences out of order",
            format!("{daemon}\n--- Below this line is a copy of the message.\nThis is the qmail-send program at x\n"),
            None,
        ),
        (
            "exim",
            format!("{daemon}\nThis message was created automatically by mail delivery software.\n\nA message that you sent could not be delivered to one or more of its\nrecipients.\n"),
            Some("exim"),
        ),
        (
            "tmda's sentence is not exim's",
            format!("{person}\nThis message was created automatically by mail delivery software (TMDA).\n------ This is a copy of the message\n"),
            None,
        ),
        (
            "postfix 1.x",
            format!("{daemon}\nThis is the Postfix program at host mx.\n\nI'm sorry to have to inform you that the message returned\nbelow could not be delivered to one or more destinations.\n"),
            Some("postfix_plain"),
        ),
        (
            "exchange 5.5",
            "From: System Administrator <postmaster@example.net>\n\nYour message\n\n  To: a\n\ndid not reach the following recipient(s):\n".to_owned(),
            Some("exchange"),
        ),
        (
            "exchange sentences from a person",
            format!("{person}\nYour message\ndid not reach the following recipient(s):\n"),
            None,
        ),
        (
            "exchange header",
            "From: x@example.net\nX-MS-Exchange-Message-Is-Ndr:\n\ntext\n".to_owned(),
            Some("exchange"),
        ),
        (
            "domino",
            "From: Postmaster@example.jp\n\nYour message\n\n  Subject: Test\n\nwas not delivered to:\n\n  a@example.jp\n\nbecause:\n\n  User a not listed\n".to_owned(),
            Some("lotus"),
        ),
        (
            "domino sentences from a person",
            format!("{person}\nYour message was not delivered to: me because: I was away\n"),
            None,
        ),
        (
            "generic: daemon returning quoted trace headers",
            format!("{daemon}\nUnzustellbar.\n\nReceived: from a by b\nMessage-ID: <o@x>\nFrom: a\n"),
            Some("plain_bounce"),
        ),
        (
            "generic: a person forwarding headers is not a bounce",
            format!("{person}\nFYI\n\nReceived: from a by b\nMessage-ID: <o@x>\nFrom: a\n"),
            None,
        ),
        (
            "generic: daemon without a copy is not enough",
            format!("{daemon}\nSomething happened.\n"),
            None,
        ),
    ];
    for (name, message, expected) in cases {
        assert_eq!(recognized(message), *expected, "{name}");
    }
}

#[test]
fn postfix_parts_are_recognised_in_any_language() {
    let message = "From: MAILER-DAEMON@mx (Mail Delivery System)\nContent-Type: multipart/mixed; boundary=b\n\n\
        --b\nContent-Description: Notification\nContent-Type: text/plain\n\nDies ist das Mailsystem.\n\
        --b\nContent-Description: Undelivered Message\nContent-Type: message/rfc822\n\nMessage-ID: <o@x>\n\n\
        --b--\n";
    assert_eq!(recognized(message), Some("postfix_plain"));
}

#[test]
fn mail_system_senders() {
    let cases: &[(&str, bool)] = &[
        ("MAILER-DAEMON@mx.example.net", true),
        ("Mail Delivery System <MAILER-DAEMON@example.net>", true),
        ("postmaster@example.net", true),
        ("System Administrator <admin@example.net>", true),
        ("Bob <bob@example.net>", false),
    ];
    for (from, expected) in cases {
        let message = format!("From: {from}\n\n");
        let parser = MessageParser::new();
        let (headers, _) = Headers::parse(&parser, message.as_bytes());
        assert_eq!(from_mail_system(&headers), *expected, "{from}");
    }
}
