//! The ledger as proof that a message answers mail we sent: whatever the
//! message's format and wherever it carries the id, and for meeting
//! responses by the UID of the invitation we sent. Message-ID patterns,
//! which a forger can imitate, count only where recognition and the id's
//! place vouch for them. An outbound and an inbound listener share one
//! file ledger, as they do in the running proxy.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;

use super::fake_mta::Mta;
use super::{Harness, Step, harness_with_ledger};
use crate::config::LedgerStore;
use crate::ledger::{self, Ledger};

use Step::*;

const PATTERNS: &str = "[policy.message_id_patterns]\n\"example.com\" = [\"*@mx.example.com\"]\n";

fn invitation() -> String {
    let calendar = "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:040000008200E00074C5B7101A82E008-42\r\n\
                    SUMMARY:Planning\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let encoded = base64::engine::general_purpose::STANDARD.encode(calendar);
    format!(
        "From: alice@example.com\r\nTo: bob@remote.test\r\nSubject: Planning\r\n\
         Message-ID: <invitation.1@example.com>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nLet us plan.\r\n\
         --b\r\nContent-Type: text/calendar; method=REQUEST; charset=utf-8\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--b--\r\n.\r\n"
    )
}

fn meeting_response(uid: &str) -> String {
    format!(
        "From: bob@remote.test\r\nTo: alice@example.com\r\nSubject: Accepted: Planning\r\n\
         Message-ID: <response.1@remote.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/calendar; method=REPLY; charset=utf-8\r\n\r\n\
         BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n\
         ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@remote.test\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n.\r\n"
    )
}

/// No recognizer knows this wording; it only mentions the id in its text.
fn unrecognised_notice(id: &str) -> String {
    format!(
        "From: postmaster@remote.test\r\nTo: alice@example.com\r\nSubject: about your mail\r\n\
         Message-ID: <notice.1@remote.test>\r\n\r\n\
         Regarding {id} nothing more could be done here.\r\n.\r\n"
    )
}

fn read_receipt(id: &str) -> String {
    format!(
        "From: bob@remote.test\r\nTo: alice@example.com\r\nSubject: Read: Planning\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=disposition-notification; boundary=\"R\"\r\n\r\n\
         --R\r\nContent-Type: text/plain\r\n\r\nYour message was displayed.\r\n\
         --R\r\nContent-Type: message/disposition-notification\r\n\r\nReporting-UA: mua.remote.test\r\n\
         Final-Recipient: rfc822; bob@remote.test\r\nOriginal-Message-ID: {id}\r\n\
         Disposition: manual-action/MDN-sent-manually; displayed\r\n--R--\r\n.\r\n"
    )
}

/// A bounce whose returned copy names `returned` and whose text mentions
/// `mentioned`.
fn bounce(returned: &str, mentioned: &str) -> String {
    format!(
        "From: MAILER-DAEMON@remote.test\r\nSubject: Undelivered Mail Returned to Sender\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered. See also {mentioned}.\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.remote.test\r\n\r\n\
         Final-Recipient: rfc822; nobody@remote.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         --B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: alice@example.com\r\nMessage-ID: {returned}\r\n--B--\r\n.\r\n"
    )
}

fn deliver(sender: &str, recipient: &str, message: String, code: u16) -> Vec<Step> {
    vec![
        Expect(220),
        Line("EHLO client.test".into()),
        Expect(250),
        Line(format!("MAIL FROM:<{sender}>")),
        Expect(250),
        Line(format!("RCPT TO:<{recipient}>")),
        Expect(250),
        Line("DATA".into()),
        Expect(354),
        Line(message.strip_suffix("\r\n").unwrap_or(&message).to_owned()),
        Expect(code),
        Line("QUIT".into()),
        Expect(221),
    ]
}

async fn run(harness: &Harness, name: &str, steps: Vec<Step>) {
    let mut client = harness.connect().await;
    super::run(harness, &mut client, name, &steps).await;
}

/// Waits until the ledger's writer has committed `key`.
async fn recorded(ledger: &Ledger, key: &str) {
    for _ in 0..200 {
        if ledger.find(&[key.to_owned()]).await.unwrap().is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{key} never reached the ledger");
}

#[tokio::test]
async fn the_ledger_vouches_for_what_answers_our_mail_in_any_form() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    let settings = crate::config::LedgerSettings {
        store: LedgerStore::File(path.clone()),
        max_entries: 10_000,
        path,
        ..Default::default()
    };
    let ledger: Arc<Ledger> = Ledger::open(&settings, Duration::from_secs(7 * 86_400), Arc::default()).await.unwrap();

    let outbound = harness_with_ledger("outbound", "", "", Mta::Normal, Some(Arc::clone(&ledger))).await;
    run(&outbound, "invitation", deliver("alice@example.com", "bob@remote.test", invitation(), 250)).await;
    recorded(&ledger, "<invitation.1@example.com>").await;
    recorded(&ledger, &ledger::calendar_key("040000008200E00074C5B7101A82E008-42")).await;
    let sent = outbound.verdicts();
    assert_eq!(sent[0].message.as_ref().and_then(|m| m.message_id.as_deref()), Some("<invitation.1@example.com>"));

    let inbound = harness_with_ledger("inbound", PATTERNS, "", Mta::Normal, Some(Arc::clone(&ledger))).await;
    // (name, sender, message, reply, content rule, where the ledger found it)
    type Case<'a> = (&'a str, &'a str, String, u16, &'a str, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "a meeting response by the invitation's UID",
            "",
            meeting_response("040000008200E00074C5B7101A82E008-42"),
            250,
            "ledger",
            Some("calendar_uid"),
        ),
        ("a meeting response to an invitation we never sent", "", meeting_response("other-uid"), 550, "not_ours", None),
        (
            "a notice no recognizer knows, naming our id in its text",
            "",
            unrecognised_notice("<invitation.1@example.com>"),
            250,
            "ledger",
            Some("quoted_text"),
        ),
        (
            "the same notice naming an id we never sent",
            "",
            unrecognised_notice("<someone.else@example.com>"),
            550,
            "not_ours",
            None,
        ),
        (
            "a read receipt by its Original-Message-ID",
            "bob@remote.test",
            read_receipt("<invitation.1@example.com>"),
            250,
            "ledger",
            Some("original_message_id_field"),
        ),
        (
            "a bounce naming a pattern id in its returned copy",
            "",
            bounce("<1.2@mx.example.com>", "nothing"),
            250,
            "message_id_pattern",
            None,
        ),
        (
            "a bounce naming a pattern id only in its text",
            "",
            bounce("<forged.9@spam.test>", "<1.2@mx.example.com>"),
            550,
            "not_ours",
            None,
        ),
        (
            "an unrecognised message with a pattern id where software puts one",
            "",
            unrecognised_notice("nothing").replace("Message-ID:", "In-Reply-To: <1.2@mx.example.com>\r\nMessage-ID:"),
            550,
            "not_ours",
            None,
        ),
    ];
    for (name, sender, message, code, rule, found) in cases {
        run(&inbound, name, deliver(sender, "alice@example.com", message, code)).await;
        let records = inbound.verdicts();
        let judged = records[0].message.as_ref().unwrap_or_else(|| panic!("{name}: no message record"));
        assert_eq!(judged.rule, Some(rule), "{name}: {judged:?}");
        assert_eq!(judged.ledger_found, found, "{name}: {judged:?}");
    }
}
