//! Bounces that are not RFC 3464 reports: the plain-text formats qmail, old
//! Exim, OpenSMTPD, old Sendmail and Postfix, Exchange and Lotus Notes/Domino
//! still send.
//!
//! Each format is recognised by the fixed sentences and separator lines its
//! software writes, several of them together and in order, never by the
//! subject. Sentences that a person could plausibly write ("Your message …
//! was not delivered to: … because:") only count when the message also
//! comes from a mail-system address.

use memchr::memmem;

use super::entity::{Entity, Headers, Structure};
use super::quoted;

/// One plain-text bounce format.
pub(super) struct Format {
    pub(super) rule: &'static str,
    pub(super) description: &'static str,
    /// Alternative signatures; each is a list of sentences that must all
    /// occur, in this order.
    pub(super) signatures: &'static [&'static [&'static str]],
    /// Lines after which the software pastes the returned message.
    pub(super) separators: &'static [&'static str],
    /// Whether the signatures are weak enough to also need a mail-system
    /// sender (see [`from_mail_system`]).
    pub(super) needs_mail_system_sender: bool,
}

pub(super) const FORMATS: &[Format] = &[
    Format {
        rule: "qmail",
        description: "a qmail-send bounce",
        signatures: &[
            &["This is the qmail-send program at", "--- Below this line is"],
            &["This is the qmail-send program at", "--- Enclosed are the original headers"],
            &["This is the qmail-send program at", "I'm afraid I wasn't able to deliver your message"],
            &["This is the qmail-send program at", "I'm not going to try again"],
        ],
        separators: &[
            "--- Below this line is a copy of the message.",
            "--- Below this line is the original bounce.",
            "--- Below this line is the top of the message.",
            "--- Enclosed are the original headers of the message.",
        ],
        needs_mail_system_sender: false,
    },
    Format {
        rule: "exim",
        description: "an Exim bounce in its pre-RFC 3464 plain-text form",
        signatures: &[
            &[
                "This message was created automatically by mail delivery software.",
                "------ This is a copy of the message",
            ],
            &[
                "This message was created automatically by mail delivery software.",
                "could not be delivered to one or more",
            ],
            &[
                "This message was created automatically by mail delivery software.",
                "has not yet been delivered to one or more",
            ],
        ],
        separators: &[
            "------ This is a copy of the message, including all the headers. ------",
            "------ This is a copy of the message's headers. ------",
            "------ The body of the message is",
            // GMX's variant of the Exim text.
            "--- The header of the original message is following. ---",
        ],
        needs_mail_system_sender: false,
    },
    Format {
        rule: "opensmtpd",
        description: "an OpenSMTPD bounce",
        signatures: &[&[
            "This is the MAILER-DAEMON, please DO NOT REPLY to this e-mail.",
            "An error has occurred while attempting to deliver a message",
        ]],
        separators: &["Below is a copy of the original message:"],
        needs_mail_system_sender: false,
    },
    Format {
        rule: "sendmail",
        description: "a Sendmail bounce without a delivery-status report",
        signatures: &[
            &["----- The following addresses had permanent fatal errors -----"],
            &["----- Transcript of session follows -----"],
        ],
        separators: &[
            "----- Original message follows -----",
            "----- Unsent message follows -----",
            "------- Returned mail follows",
            "----- Message header follows -----",
        ],
        needs_mail_system_sender: true,
    },
    Format {
        rule: "postfix_plain",
        description: "a Postfix bounce without a delivery-status report",
        signatures: &[
            &["This is the Postfix program at host", "could not be delivered"],
            &["This is the mail system at host", "The mail system"],
        ],
        separators: &[],
        needs_mail_system_sender: false,
    },
    Format {
        rule: "exchange",
        description: "a Microsoft Exchange non-delivery report in its plain-text form",
        signatures: &[
            &["Your message did not reach some or all of the intended recipients.", "could not be reached"],
            &["Your message", "did not reach the following recipient(s):"],
            &["Delivery has failed to these recipients or groups:"],
        ],
        separators: &[],
        needs_mail_system_sender: true,
    },
    Format {
        rule: "lotus",
        description: "a Lotus Notes/Domino delivery failure report",
        signatures: &[
            &["------- Failure Reasons", "------- Returned Message"],
            &["Your message", "was not delivered to:", "because:"],
        ],
        separators: &["------- Returned Message --------"],
        needs_mail_system_sender: true,
    },
];

/// What a plain-text bounce recognizer found.
pub(super) struct Found {
    pub(super) rule: &'static str,
    pub(super) description: &'static str,
    /// Where in the text the returned message is pasted, if a separator
    /// says so.
    pub(super) copy_starts_at: Option<usize>,
}

/// The first format of [`FORMATS`] the message matches, then the
/// MTA-specific structural checks, then the generic one.
pub(super) fn recognize(structure: &Structure<'_>, text: &str) -> Option<Found> {
    let top = &structure.top().headers;
    let mail_system = from_mail_system(top);
    for format in FORMATS {
        if format.needs_mail_system_sender && !mail_system {
            continue;
        }
        if format.signatures.iter().any(|signature| in_order(text, signature)) {
            return Some(Found {
                rule: format.rule,
                description: format.description,
                copy_starts_at: format
                    .separators
                    .iter()
                    .filter_map(|separator| memmem::find(text.as_bytes(), separator.as_bytes()))
                    .min(),
            });
        }
    }
    if top.has("X-MS-Exchange-Message-Is-Ndr") || top.has("X-MS-Embedded-Report") {
        return Some(Found {
            rule: "exchange",
            description: "a message Microsoft Exchange marks as a non-delivery report",
            copy_starts_at: None,
        });
    }
    if has_postfix_parts(structure) {
        return Some(Found {
            rule: "postfix_plain",
            description: "a Postfix bounce (Notification and Undelivered Message parts) without a delivery-status report",
            copy_starts_at: None,
        });
    }
    if mail_system && returns_original(structure, text) {
        return Some(Found {
            rule: "plain_bounce",
            description: "a message from a mail-system address returning a copy of a transported message",
            copy_starts_at: None,
        });
    }
    None
}

/// Whether every sentence occurs in `text`, each after the previous one.
fn in_order(text: &str, sentences: &[&str]) -> bool {
    let mut from = 0;
    for sentence in sentences {
        match memmem::find(&text.as_bytes()[from..], sentence.as_bytes()) {
            Some(at) => from += at + sentence.len(),
            None => return false,
        }
    }
    true
}

/// Whether From names the mail system rather than a person: MAILER-DAEMON,
/// postmaster, Exchange's `MicrosoftExchange<hex>` system mailbox, or the
/// display names MTAs give them.
pub(super) fn from_mail_system(headers: &Headers<'_>) -> bool {
    const MARKERS: &[&str] = &[
        "mailer-daemon",
        "mailer_daemon",
        "mailerdaemon",
        "postmaster",
        "mail delivery subsystem",
        "mail delivery system",
        "mail administrator",
        "system administrator",
        "microsoftexchange",
    ];
    headers.text("From").is_some_and(|from| {
        let from = from.to_ascii_lowercase();
        MARKERS.iter().any(|marker| from.contains(marker))
    })
}

/// Postfix labels its bounce parts with fixed Content-Descriptions whatever
/// language the template is in: "Notification" for the text and
/// "Undelivered Message" (or "… Headers") for the returned copy.
fn has_postfix_parts(structure: &Structure<'_>) -> bool {
    let described = |entity: &Entity<'_>, wanted: &str| {
        entity.headers.text("Content-Description").is_some_and(|description| description.eq_ignore_ascii_case(wanted))
    };
    let leaves: Vec<_> = structure.leaves().collect();
    leaves.iter().any(|leaf| described(leaf, "Notification"))
        && leaves
            .iter()
            .any(|leaf| described(leaf, "Undelivered Message") || described(leaf, "Undelivered Message Headers"))
}

/// Whether the message carries a copy of a transported message: attached,
/// or as a quoted header section with trace fields.
fn returns_original(structure: &Structure<'_>, text: &str) -> bool {
    let attached = structure.leaves().any(|leaf| {
        let media_type = &leaf.media_type;
        media_type.is("message", "rfc822")
            || media_type.is("message", "global")
            || media_type.is("text", "rfc822-headers")
            || media_type.is("message", "global-headers")
    });
    attached || quoted::runs(text).any(|run| run.has_trace && run.message_id.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn recognized(message: &str) -> Option<&'static str> {
        let parser = MessageParser::new();
        let structure = Structure::walk(&parser, message.as_bytes());
        let text = structure.plain_text();
        recognize(&structure, &text).map(|found| found.rule)
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
}
