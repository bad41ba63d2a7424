//! Every id a message carries and where it stood, for recognised and
//! unrecognised messages; meeting responses; reports that are not about
//! delivery.

use super::super::*;
use super::{ATTACHED_MESSAGE, DELIVERY_STATUS, report};

#[test]
fn references_say_where_each_id_was_found() {
    let copy = "Content-Type: message/rfc822\r\n\r\nMessage-Id: <copy@example.com>\r\n\
        In-Reply-To: <copy-parent@example.org>\r\nReferences: <copy-root@example.org> <copy-parent@example.org>\r\n\r\n\
        Earlier we talked about <in-body@example.org>.\r\n";
    let message = report("delivery-status", DELIVERY_STATUS, copy).replace(
        "Auto-Submitted: auto-replied\r\n",
        "In-Reply-To: <own-parent@example.com>\r\nReferences: <own-root@example.com>\r\n",
    );
    let inspection = inspect(message.as_bytes());
    let found: Vec<(&str, Found)> =
        inspection.references.iter().map(|reference| (reference.id.as_str(), reference.found)).collect();
    assert_eq!(
        found,
        [
            ("<copy@example.com>", Found::ReturnedHeader),
            ("<own-parent@example.com>", Found::InReplyTo),
            ("<own-root@example.com>", Found::References),
            ("<copy-parent@example.org>", Found::ReturnedReferences),
            ("<copy-root@example.org>", Found::ReturnedReferences),
            ("<in-body@example.org>", Found::QuotedText),
        ]
    );
    assert!(found.iter().all(|(id, _)| *id != "<20260101000000.ABCDEF@mx.example.net>"), "never its own id");
}

#[test]
fn an_unrecognised_message_still_reports_the_ids_it_carries() {
    // No recognizer takes it, but a ledger hit on the pasted copy's id must
    // still be possible.
    let message = "From: someone@example.org\r\nSubject: hello\r\nMessage-ID: <own@example.org>\r\n\r\n\
        Here is what came back:\r\n\r\n    Received: from mx.example.com\r\n    Message-ID: <ours@example.com>\r\n\
        \x20   Subject: Quarterly report\r\n";
    let inspection = inspect(message.as_bytes());
    assert_eq!(inspection.kind, Kind::None);
    assert_eq!(inspection.referenced_ids, Vec::<String>::new());
    assert_eq!(
        inspection.references,
        [Reference { id: "<ours@example.com>".into(), found: Found::QuotedHeader }],
        "{}",
        inspection.to_json()
    );
    assert!(Found::QuotedHeader.is_structural() && !Found::QuotedText.is_structural());
}

#[test]
fn mdn_original_message_id_field_is_reported() {
    let message = report(
        "disposition-notification",
        "Content-Type: message/disposition-notification\r\n\r\nOriginal-Message-ID: <read@example.com>\r\n\
         Disposition: manual-action/MDN-sent-manually; displayed\r\n",
        "Content-Type: text/plain\r\n\r\nno copy\r\n",
    );
    let inspection = inspect(message.as_bytes());
    assert_eq!((inspection.kind, inspection.rule), (Kind::AutoReply, "mdn"));
    assert_eq!(
        inspection.references[0],
        Reference { id: "<read@example.com>".into(), found: Found::OriginalMessageIdField }
    );
}

#[test]
fn meeting_responses() {
    let response = |headers: &str, method: &str| {
        format!(
            "From: Room <room@example.net>\r\n{headers}Content-Type: multipart/alternative; boundary=c\r\n\r\n\
             --c\r\nContent-Type: text/plain\r\n\r\nAccepted.\r\n\
             --c\r\nContent-Type: text/calendar; method={method}\r\n\r\nBEGIN:VCALENDAR\r\nMETHOD:{method}\r\n\
             BEGIN:VEVENT\r\nUID:event-1@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n--c--\r\n"
        )
    };
    let cases: &[(&str, String, Kind, &str, &[&str])] = &[
        (
            "automatic reply",
            response("Auto-Submitted: auto-generated\r\n", "REPLY"),
            Kind::AutoReply,
            "calendar_reply",
            &["event-1@example.com"],
        ),
        (
            "automatic counter",
            response("Auto-Submitted: auto-replied\r\n", "COUNTER"),
            Kind::AutoReply,
            "auto_submitted",
            &["event-1@example.com"],
        ),
        ("a person accepting", response("", "REPLY"), Kind::None, "none", &["event-1@example.com"]),
        (
            "a cancellation",
            response("Auto-Submitted: auto-generated\r\n", "CANCEL"),
            Kind::AutoReply,
            "calendar_reply",
            &["event-1@example.com"],
        ),
        (
            "an invitation is not a response",
            response("Auto-Submitted: auto-generated\r\n", "REQUEST"),
            Kind::None,
            "none",
            &[],
        ),
    ];
    for (name, message, kind, rule, uids) in cases {
        let inspection = inspect(message.as_bytes());
        assert_eq!((inspection.kind, inspection.rule), (*kind, *rule), "{name}: {}", inspection.reason);
        assert_eq!(inspection.calendar_uids, *uids, "{name}");
    }
}

#[test]
fn reports_that_are_not_about_delivery_are_not_bounces() {
    for (name, report_type, part) in [
        ("feedback report from the mailer-daemon", "feedback-report", "message/feedback-report"),
        ("feedback part under a wrong report type", "delivery-status", "message/feedback-report"),
        ("tls report", "tlsrpt", "application/tlsrpt+gzip"),
    ] {
        let message =
            report(report_type, &format!("Content-Type: {part}\r\n\r\nFeedback-Type: abuse\r\n"), ATTACHED_MESSAGE);
        let inspection = inspect(message.as_bytes());
        assert_eq!(inspection.kind, Kind::None, "{name}: {}", inspection.reason);
        // Its ids are still reported, for whoever wants them.
        assert!(inspection.references.iter().any(|reference| reference.id == "<original.1@example.com>"), "{name}");
    }
}
