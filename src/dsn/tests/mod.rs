//! Whole-message tests of [`inspect`]: one case per recognizer and per
//! extraction path, the id rules, the JSON interface, and hostile input;
//! where ids were found and meeting responses in `references`.

mod references;

use super::*;

/// A delivery status notification as Postfix writes it, with `original`
/// as the attached part (its Content-Type and body).
fn report(report_type: &str, machine_part: &str, original: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n\
         To: alice@example.com\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Message-Id: <20260101000000.ABCDEF@mx.example.net>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type={report_type};\r\n\
         \tboundary=\"ABCDEF.1767225600/mx.example.net\"\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n\
         --ABCDEF.1767225600/mx.example.net\r\n\
         Content-Description: Notification\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         This is the mail system at host mx.example.net.\r\n\
         \r\n\
         <nobody@example.org>: unknown user\r\n\
         \r\n\
         --ABCDEF.1767225600/mx.example.net\r\n\
         {machine_part}\r\n\
         --ABCDEF.1767225600/mx.example.net\r\n\
         {original}\r\n\
         --ABCDEF.1767225600/mx.example.net--\r\n"
    )
}

const DELIVERY_STATUS: &str = "Content-Description: Delivery report\r\n\
    Content-Type: message/delivery-status\r\n\
    \r\n\
    Reporting-MTA: dns; mx.example.net\r\n\
    \r\n\
    Final-Recipient: rfc822; nobody@example.org\r\n\
    Action: failed\r\n\
    Status: 5.1.1\r\n";

const ATTACHED_MESSAGE: &str = "Content-Description: Undelivered Message\r\n\
    Content-Type: message/rfc822\r\n\
    \r\n\
    Received: by mx.example.net (Postfix, from userid 0) id ABCDEF;\r\n\
    \tThu,  1 Jan 2026 00:00:00 +0000 (UTC)\r\n\
    From: alice@example.com\r\n\
    To: nobody@example.org\r\n\
    Subject: hello\r\n\
    Message-Id: <original.1@example.com>\r\n\
    \r\n\
    hello\r\n";

const ATTACHED_HEADERS: &str = "Content-Description: Undelivered Message Headers\r\n\
    Content-Type: text/rfc822-headers\r\n\
    \r\n\
    Received: by mx.example.net (Postfix, from userid 0) id ABCDEF;\r\n\
    From: alice@example.com\r\n\
    Message-Id: <original.2@example.com>\r\n";

/// One expected verdict: kind, rule, original Message-ID.
type Expected = (Kind, &'static str, Option<&'static str>);

#[test]
fn recognizers_and_extraction_paths() {
    let cases: Vec<(&str, String, Expected)> = vec![
        (
            "rfc3464 with message/rfc822",
            report("delivery-status", DELIVERY_STATUS, ATTACHED_MESSAGE),
            (Kind::Dsn, "rfc3464", Some("<original.1@example.com>")),
        ),
        (
            "rfc3464 with text/rfc822-headers",
            report("delivery-status", DELIVERY_STATUS, ATTACHED_HEADERS),
            (Kind::Dsn, "rfc3464", Some("<original.2@example.com>")),
        ),
        (
            "rfc3464 with message/global-headers",
            report(
                "delivery-status",
                DELIVERY_STATUS,
                "Content-Type: message/global-headers\r\n\r\nFrom: \u{e9}l\u{e8}ve@example.com\r\nMessage-ID: <original.3@example.com>\r\n",
            ),
            (Kind::Dsn, "rfc3464", Some("<original.3@example.com>")),
        ),
        (
            "rfc3464 whose copy lacks a Message-ID",
            report(
                "delivery-status",
                DELIVERY_STATUS,
                "Content-Type: message/rfc822\r\n\r\nFrom: alice@example.com\r\nSubject: no id\r\n\r\nbody\r\n",
            ),
            (Kind::Dsn, "rfc3464", None),
        ),
        (
            "mdn",
            report(
                "disposition-notification",
                "Content-Type: message/disposition-notification\r\n\r\n\
                 Reporting-UA: bob.example.org; Thunderbird 128.0\r\n\
                 Final-Recipient: rfc822;bob@example.org\r\n\
                 Original-Message-ID: <mdn.original@example.com>\r\n\
                 Disposition: manual-action/MDN-sent-manually; displayed\r\n",
                ATTACHED_HEADERS,
            ),
            (Kind::AutoReply, "mdn", Some("<mdn.original@example.com>")),
        ),
        (
            "mdn without Original-Message-ID falls back to the headers part",
            report(
                "disposition-notification",
                "Content-Type: message/disposition-notification\r\n\r\nDisposition: automatic-action/MDN-sent-automatically; displayed\r\n",
                ATTACHED_HEADERS,
            ),
            (Kind::AutoReply, "mdn", Some("<original.2@example.com>")),
        ),
        (
            "qmail",
            "From: MAILER-DAEMON@mx.example.net\r\nSubject: failure notice\r\nMessage-ID: <qmail.bounce@mx.example.net>\r\n\r\n\
             Hi. This is the qmail-send program at mx.example.net.\r\n\
             I'm afraid I wasn't able to deliver your message to the following addresses.\r\n\
             This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n\
             <nobody@example.org>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n\r\n\
             --- Below this line is a copy of the message.\r\n\r\n\
             Return-Path: <alice@example.com>\r\nReceived: (qmail 1 invoked by uid 0); 1 Jan 2026 00:00:00 -0000\r\n\
             Message-ID: <qmail.original@example.com>\r\nFrom: alice@example.com\r\n\r\nhello\r\n"
                .into(),
            (Kind::Dsn, "qmail", Some("<qmail.original@example.com>")),
        ),
        (
            "exim plain",
            "From: Mail Delivery System <Mailer-Daemon@mx.example.net>\r\n\r\n\
             This message was created automatically by mail delivery software.\r\n\r\n\
             A message that you sent could not be delivered to one or more of its\r\n\
             recipients. This is a permanent error. The following address(es) failed:\r\n\r\n\
             \x20 nobody@example.org\r\n\x20   Unrouteable address\r\n\r\n\
             ------ This is a copy of the message, including all the headers. ------\r\n\r\n\
             Return-path: <alice@example.com>\r\nReceived: from alice by mx.example.net with local (Exim 4.50)\r\n\
             \tid 1ABCDE-000001-AB; Thu, 01 Jan 2026 00:00:00 +0000\r\n\
             Message-Id: <exim.original@example.com>\r\n\r\nhello\r\n"
                .into(),
            (Kind::Dsn, "exim", Some("<exim.original@example.com>")),
        ),
        (
            "postfix without a report",
            "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n\
             Content-Type: multipart/mixed; boundary=b\r\n\r\n\
             --b\r\nContent-Description: Notification\r\nContent-Type: text/plain\r\n\r\n\
             This is the Postfix program at host mx.example.net.\r\n\r\n\
             I'm sorry to have to inform you that the message returned\r\n\
             below could not be delivered to one or more destinations.\r\n\r\n\
             --b\r\nContent-Description: Undelivered Message\r\nContent-Type: message/rfc822\r\n\r\n\
             Message-Id: <postfix.original@example.com>\r\n\r\nhello\r\n--b--\r\n"
                .into(),
            (Kind::Dsn, "postfix_plain", Some("<postfix.original@example.com>")),
        ),
        (
            "exchange 5.5",
            "From: System Administrator <postmaster@example.net>\r\nX-MS-Embedded-Report:\r\n\
             Content-Type: multipart/mixed; boundary=\"----_=_NextPart_000_01\"\r\n\r\n\
             ------_=_NextPart_000_01\r\nContent-Type: text/plain\r\n\r\n\
             Your message\r\n\r\n  To:      nobody@example.net\r\n  Subject: hello\r\n\r\n\
             did not reach the following recipient(s):\r\n\r\nnobody@example.net on 1/1/2026\r\n\r\n\
             ------_=_NextPart_000_01\r\nContent-Type: message/rfc822\r\n\r\n\
             Message-ID: <exchange.original@example.com>\r\nFrom: alice@example.com\r\n\r\nhello\r\n\
             ------_=_NextPart_000_01--\r\n"
                .into(),
            (Kind::Dsn, "exchange", Some("<exchange.original@example.com>")),
        ),
        (
            "lotus notes",
            "From: postmaster@notes.example.net\r\nSubject: Undeliverable message\r\n\r\n\
             ------- Failure Reasons  --------\r\n\r\nUser not listed in public Name & Address Book\r\n\
             nobody@notes.example.net\r\n\r\n------- Returned Message --------\r\n\
             Received: from mx.example.com by notes.example.net\r\n\
             Message-ID: <lotus.original@example.com>\r\nFrom: alice@example.com\r\n\r\nhello\r\n"
                .into(),
            (Kind::Dsn, "lotus", Some("<lotus.original@example.com>")),
        ),
        (
            "generic plain bounce",
            "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n\r\n\
             Ihre Nachricht konnte nicht zugestellt werden.\r\n\r\n\
             Received: from mx.example.com by mx.example.net\r\n\
             Message-ID: <generic.original@example.com>\r\nFrom: alice@example.com\r\n"
                .into(),
            (Kind::Dsn, "plain_bounce", Some("<generic.original@example.com>")),
        ),
        (
            "challenge-response",
            "From: Bob <bob@example.org>\r\nReply-To: bob-confirm-1767225600.1234.abcdef@example.org\r\n\
             In-Reply-To: <challenged@example.com>\r\nAuto-Submitted: auto-replied\r\n\
             X-Delivery-Agent: TMDA/1.1.12 (Ladyburn)\r\n\r\nPlease confirm.\r\n"
                .into(),
            (Kind::AutoReply, "challenge_response", Some("<challenged@example.com>")),
        ),
        (
            "exchange out-of-office prefers the parent id",
            "From: Bob <bob@example.org>\r\nSubject: Automatic reply: hello\r\n\
             In-Reply-To: <reply.parent@example.com>\r\n\
             X-MS-Exchange-Parent-Message-Id: <exchange.parent@example.com>\r\n\
             Auto-Submitted: auto-generated\r\nX-Auto-Response-Suppress: All\r\n\
             X-MS-Exchange-Inbox-Rules-Loop: bob@example.org\r\n\r\nI am away.\r\n"
                .into(),
            (Kind::AutoReply, "exchange_oof", Some("<exchange.parent@example.com>")),
        ),
        (
            "vacation",
            "From: bob@example.org\r\nSubject: I am on vacation\r\n\
             Delivered-By-The-Graces-Of: The Vacation program\r\nPrecedence: bulk\r\n\r\nAway.\r\n"
                .into(),
            (Kind::AutoReply, "vacation", None),
        ),
        (
            "auto-submitted",
            "From: bob@example.org\r\nIn-Reply-To: <asked@example.com>\r\nAuto-Submitted: auto-replied (vacation)\r\n\r\nAway.\r\n"
                .into(),
            (Kind::AutoReply, "auto_submitted", Some("<asked@example.com>")),
        ),
        (
            "x-autoreply",
            "From: bob@example.org\r\nIn-Reply-To: <asked@example.com>\r\nX-Autoreply: yes\r\n\r\nAway.\r\n".into(),
            (Kind::AutoReply, "x_autoreply", Some("<asked@example.com>")),
        ),
        (
            "precedence",
            "From: bob@example.org\r\nPrecedence: auto_reply\r\n\r\nAway.\r\n".into(),
            (Kind::AutoReply, "precedence", None),
        ),
        (
            "a person's reply",
            "From: Bob <bob@example.org>\r\nSubject: Re: hello\r\nMessage-ID: <reply@example.org>\r\n\
             In-Reply-To: <hello@example.com>\r\nReferences: <hello@example.com>\r\n\r\n\
             Sure.\r\n\r\nOn Monday Alice wrote:\r\n> hello\r\n"
                .into(),
            (Kind::None, "none", None),
        ),
        (
            "a person forwarding a bounce as an attachment",
            "From: Bob <bob@example.org>\r\nSubject: Fwd: failure notice\r\n\
             Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nLook at this.\r\n\
             --b\r\nContent-Type: message/rfc822\r\n\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=c\r\n\r\n\
             --c\r\nContent-Type: message/delivery-status\r\n\r\nAction: failed\r\n--c--\r\n--b--\r\n"
                .into(),
            (Kind::None, "none", None),
        ),
        (
            "feedback report is not a bounce",
            "From: <feedback@isp.example>\r\nSubject: FW: hello\r\n\
             Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\
             --b\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nVersion: 1\r\n\
             --b\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: <reported@example.com>\r\n\r\nhello\r\n--b--\r\n"
                .into(),
            (Kind::None, "none", None),
        ),
    ];
    for (name, message, (kind, rule, original)) in cases {
        let inspection = inspect(message.as_bytes());
        assert_eq!(
            (inspection.kind, inspection.rule, inspection.original_message_id.as_deref()),
            (kind, rule, original),
            "{name}: {}",
            inspection.reason
        );
        assert!(!inspection.reason.is_empty(), "{name}");
    }
}

#[test]
fn never_the_bounce_own_message_id() {
    let own = "<20260101000000.ABCDEF@mx.example.net>";
    let cases: Vec<(&str, String)> = vec![
        (
            "attached copy carries the bounce's own id",
            report(
                "delivery-status",
                DELIVERY_STATUS,
                &format!("Content-Type: message/rfc822\r\n\r\nMessage-Id: {own}\r\n\r\nbody\r\n"),
            ),
        ),
        ("no attached copy", report("delivery-status", DELIVERY_STATUS, "Content-Type: text/plain\r\n\r\nno copy\r\n")),
        (
            "auto-reply whose In-Reply-To and References name itself",
            format!(
                "Message-Id: {own}\r\nIn-Reply-To: {own}\r\nReferences: {own}\r\nAuto-Submitted: auto-replied\r\n\r\nAway.\r\n"
            ),
        ),
        (
            "quoted headers repeat the bounce's own id",
            format!(
                "From: MAILER-DAEMON@mx.example.net\r\nMessage-Id: {own}\r\n\r\n\
                 Hi. This is the qmail-send program at mx.example.net.\r\n\r\n\
                 --- Below this line is a copy of the message.\r\n\r\n\
                 Received: by x\r\nMessage-Id: {own}\r\n"
            ),
        ),
    ];
    for (name, message) in cases {
        let inspection = inspect(message.as_bytes());
        assert_ne!(inspection.kind, Kind::None, "{name}");
        assert_eq!(inspection.original_message_id, None, "{name}");
        assert!(!inspection.referenced_ids.iter().any(|id| id == own), "{name}: {:?}", inspection.referenced_ids);
    }
}

#[test]
fn referenced_ids_are_ordered_and_deduplicated() {
    let message = report("delivery-status", DELIVERY_STATUS, ATTACHED_MESSAGE).replace(
        "Auto-Submitted: auto-replied\r\n",
        "In-Reply-To: <parent@example.com> <original.1@example.com>\r\n\
         References: <root@example.com>\r\n <parent@example.com> <original.1@example.com>\r\n",
    );
    let inspection = inspect(message.as_bytes());
    assert_eq!(inspection.referenced_ids, ["<original.1@example.com>", "<parent@example.com>", "<root@example.com>"]);

    let normal = "From: a@example.org\r\nIn-Reply-To: <b@x>\r\nReferences: <a@x> <b@x>\r\n\r\nhi\r\n";
    let inspection = inspect(normal.as_bytes());
    assert_eq!(inspection.kind, Kind::None);
    assert_eq!(inspection.original_message_id, None);
    assert_eq!(inspection.referenced_ids, ["<b@x>", "<a@x>"]);
}

#[test]
fn referenced_ids_keep_the_latest_references() {
    let references: Vec<String> = (0..500).map(|n| format!("<ref{n}@example.com>")).collect();
    let message = format!(
        "In-Reply-To: <parent@example.com>\r\nReferences: {}\r\nAuto-Submitted: auto-replied\r\n\r\nAway.\r\n",
        references.join("\r\n ")
    );
    let inspection = inspect(message.as_bytes());
    assert_eq!(inspection.referenced_ids.len(), MAX_REFERENCED_IDS);
    assert_eq!(inspection.referenced_ids[0], "<parent@example.com>");
    assert_eq!(inspection.referenced_ids.last().unwrap(), "<ref499@example.com>");
    assert!(!inspection.referenced_ids.contains(&"<ref0@example.com>".to_owned()));
}

#[test]
fn json_interface() {
    let inspection = inspect(report("delivery-status", DELIVERY_STATUS, ATTACHED_MESSAGE).as_bytes());
    let json = inspection.to_json();
    assert!(json.starts_with(r#"{"kind":"dsn","original_message_id":"<original.1@example.com>","reason":""#), "{json}");
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["rule"], "rfc3464");
    assert_eq!(value["referenced_ids"][0], "<original.1@example.com>");
    assert_eq!(value["reason"], inspection.reason.as_str());

    let none = inspect(b"Subject: hi\r\n\r\nhello\r\n").to_json();
    let value: serde_json::Value = serde_json::from_str(&none).unwrap();
    assert_eq!(value["kind"], "none");
    assert!(value["original_message_id"].is_null());
    assert_eq!(value["referenced_ids"], serde_json::json!([]));
}

#[test]
fn reporting_mta_is_read_from_the_delivery_status_part() {
    let inspection = inspect(report("delivery-status", DELIVERY_STATUS, ATTACHED_MESSAGE).as_bytes());
    assert_eq!(inspection.reporting_mta.as_deref(), Some("mx.example.net"));
    let value: serde_json::Value = serde_json::from_str(&inspection.to_json()).unwrap();
    assert_eq!(value["reporting_mta"], "mx.example.net");

    let part = |fields: &str| format!("Content-Type: message/delivery-status\r\n\r\n{fields}");
    let cases: &[(&str, String, Option<&str>)] = &[
        (
            "upper case, no space",
            part("REPORTING-MTA:dns;MX.Example.NET\r\n\r\nAction: failed\r\n"),
            Some("MX.Example.NET"),
        ),
        (
            "LF only, after other fields",
            part("Original-Envelope-Id: x\nReporting-MTA: dns; a.example\n\nAction: failed\n"),
            Some("a.example"),
        ),
        ("not a DNS name", part("Reporting-MTA: x-local-hostname; a.example\r\n"), None),
        ("in a per-recipient block only", part("Arrival-Date: x\r\n\r\nReporting-MTA: dns; late.example\r\n"), None),
        ("empty", part("Reporting-MTA: dns;\r\n"), None),
        ("spaces inside", part("Reporting-MTA: dns; a b\r\n"), None),
    ];
    for (name, machine_part, expected) in cases {
        let inspection = inspect(report("delivery-status", machine_part, ATTACHED_MESSAGE).as_bytes());
        assert_eq!(inspection.reporting_mta.as_deref(), *expected, "{name}");
    }
    // A read receipt names a user agent, not an MTA.
    let receipt = "Content-Type: message/disposition-notification\r\n\r\nReporting-UA: mua.example\r\nReporting-MTA: dns; mta.example\r\n";
    assert_eq!(inspect(report("disposition-notification", receipt, ATTACHED_MESSAGE).as_bytes()).reporting_mta, None);
    assert_eq!(inspect(b"Subject: hi\r\n\r\nReporting-MTA: dns; a.example\r\n").reporting_mta, None);
}

#[test]
fn kind_labels() {
    let cases = [(Kind::Dsn, "dsn"), (Kind::AutoReply, "autoreply"), (Kind::None, "none")];
    for (kind, label) in cases {
        assert_eq!(kind.as_str(), label);
        assert_eq!(kind.to_string(), label);
    }
}

/// Runs `inspect` on a thread with a small stack, so that recursion that
/// grows with the input shows up as a crash here rather than in production.
fn inspect_on_small_stack(message: Vec<u8>) -> Inspection {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || inspect(&message))
        .unwrap()
        .join()
        .expect("inspect panicked or overflowed")
}

#[test]
fn hostile_structures_neither_panic_nor_overflow_the_stack() {
    use base64::Engine;
    let size = 256 * 1024;
    let repeat = |unit: &str| {
        let mut message = String::from("From: a@example.com\r\n");
        while message.len() < size {
            message.push_str(unit);
        }
        message
    };
    let nested_messages = repeat("Content-Type: message/rfc822\r\n\r\n");
    let mut nested_multiparts = String::from("From: a@example.com\r\n");
    for level in 0.. {
        if nested_multiparts.len() >= size {
            break;
        }
        nested_multiparts
            .push_str(&format!("Content-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n--b{level}\r\n"));
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(nested_messages.as_bytes());
    let mut encoded_nesting = String::from(
        "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n\
         --b\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n",
    );
    for line in encoded.as_bytes().chunks(76) {
        encoded_nesting.push_str(std::str::from_utf8(line).unwrap());
        encoded_nesting.push_str("\r\n");
    }
    let digests = repeat("Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n");
    let mut long_header = String::from("Subject: ");
    long_header.push_str(&"x".repeat(1024 * 1024));
    long_header.push_str("\r\n\r\nbody\r\n");
    let mut long_message_id = String::from("Message-ID: <");
    long_message_id.push_str(&"x".repeat(1024 * 1024));
    long_message_id.push_str("@example.com>\r\nAuto-Submitted: auto-replied\r\n\r\n");
    let many_brackets = format!("References: {}\r\n\r\n", "<".repeat(size));
    let many_parts = {
        let mut message = String::from("Content-Type: multipart/report; boundary=b\r\n\r\n");
        while message.len() < size {
            message.push_str("--b\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: <a@b>\r\n\r\n");
        }
        message
    };
    let parameter_continuations = {
        let mut message = String::from("Content-Type: multipart/report; report-type=delivery-status");
        for index in 0.. {
            if message.len() >= size {
                break;
            }
            message.push_str(&format!(";\r\n boundary*{index}=\"abc\""));
        }
        message.push_str("\r\n\r\n--abc\r\n");
        message
    };
    let encoded_words = format!("Subject: {}\r\n\r\n", "=?utf-8?q?R=C3=A9ponse?= ".repeat(size / 25));
    let many_fields = "X-Field: value\r\n".repeat(size / 16);
    let long_received = format!("Received: from {} by x\r\n\r\n", "(a [1.2.3.4] ".repeat(size / 13));
    let colons = ":".repeat(size);
    let newlines = "\n".repeat(size);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("only newlines", newlines.into_bytes()),
        ("only colons", colons.into_bytes()),
        ("invalid utf-8", vec![0xff; size]),
        ("nested message/rfc822", nested_messages.into_bytes()),
        ("nested multiparts", nested_multiparts.into_bytes()),
        ("nesting hidden in base64", encoded_nesting.into_bytes()),
        ("nested digests", digests.into_bytes()),
        ("1 MB header line", long_header.into_bytes()),
        ("1 MB Message-ID", long_message_id.into_bytes()),
        ("unclosed brackets", many_brackets.into_bytes()),
        ("many parts", many_parts.into_bytes()),
        ("many RFC 2231 continuations", parameter_continuations.into_bytes()),
        ("many encoded words", encoded_words.into_bytes()),
        ("many header fields", many_fields.into_bytes()),
        ("long Received field", long_received.into_bytes()),
    ];
    for (name, message) in cases {
        let started = std::time::Instant::now();
        let inspection = inspect_on_small_stack(message);
        // Generous for an unoptimised build on a loaded machine; a quadratic
        // scan of 256 KiB takes minutes.
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{name} took {:?}", started.elapsed());
        assert!(!inspection.reason.is_empty(), "{name}");
        assert!(inspection.referenced_ids.len() <= MAX_REFERENCED_IDS, "{name}");
    }
}

#[test]
fn only_the_first_bytes_are_inspected() {
    let mut message = report("delivery-status", DELIVERY_STATUS, ATTACHED_MESSAGE).into_bytes();
    let kept = inspect(&message);
    message.extend(std::iter::repeat_n(b'x', 2 * MAX_INSPECTED_BYTES));
    assert_eq!(inspect(&message).original_message_id, kept.original_message_id);

    let mut late = vec![b'\n'; MAX_INSPECTED_BYTES];
    late.splice(0..0, b"Subject: hi\r\n\r\n".iter().copied());
    late.extend_from_slice(
        b"Hi. This is the qmail-send program at x.\n--- Below this line is a copy of the message.\n",
    );
    assert_eq!(inspect(&late).kind, Kind::None);
}

#[test]
fn every_truncation_of_a_report_is_handled() {
    let message = report("delivery-status", DELIVERY_STATUS, ATTACHED_MESSAGE);
    let bytes = message.as_bytes();
    let original_at = message.find("Message-Id: <original.1@example.com>").unwrap();
    for end in 0..=bytes.len() {
        let inspection = inspect(&bytes[..end]);
        // Once the original's Message-ID line is complete, truncation loses nothing.
        if end > original_at + "Message-Id: <original.1@example.com>\r\n".len() {
            assert_eq!(inspection.kind, Kind::Dsn, "cut at {end}");
            assert_eq!(inspection.original_message_id.as_deref(), Some("<original.1@example.com>"), "cut at {end}");
        }
    }
}

#[test]
fn mutated_messages_never_panic() {
    // A small deterministic generator: the same mutations on every run.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let seeds = [
        report("delivery-status", DELIVERY_STATUS, ATTACHED_MESSAGE),
        report("disposition-notification", DELIVERY_STATUS, ATTACHED_HEADERS),
        "From: MAILER-DAEMON@x\r\n\r\nHi. This is the qmail-send program at x.\r\n--- Below this line is a copy of the message.\r\n\r\nReceived: x\r\nMessage-ID: <a@b>\r\n".to_owned(),
    ];
    let interesting: &[&[u8]] = &[b"\r\n", b"--", b"<", b">", b":", b"\xff", b"=", b"\r\n\r\n", b"\t"];
    for seed in &seeds {
        for _ in 0..400 {
            let mut bytes = seed.as_bytes().to_vec();
            for _ in 0..(next() % 8 + 1) {
                let at = (next() as usize) % (bytes.len() + 1);
                match next() % 3 {
                    0 => {
                        let insert = interesting[(next() as usize) % interesting.len()];
                        bytes.splice(at..at, insert.iter().copied());
                    }
                    1 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => {
                        if let Some(byte) = bytes.get_mut(at) {
                            *byte = next() as u8;
                        }
                    }
                }
            }
            let inspection = inspect(&bytes);
            if let Some(id) = &inspection.original_message_id {
                assert!(id.starts_with('<') && id.ends_with('>') && id.contains('@'), "{id}");
            }
        }
    }
}
