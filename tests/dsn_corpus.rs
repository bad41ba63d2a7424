//! Real bounces from real MTAs: a private Postfix and a private Exim are
//! made to bounce (and to delay) messages with known Message-IDs, and
//! `dsn::inspect` must recognise each report they write and name that
//! Message-ID as the original. Each report is also saved under
//! target/tmp/dsn-corpus/ for reading.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use batv_proxy::dsn::{Kind, inspect};
use common::*;

/// A Message-ID no other test uses.
fn original_id(name: &str) -> String {
    format!("<{}@example.com>", unique(name))
}

fn message_with_id(id: &str, to: &str) -> String {
    format!(
        "From: Alice <alice@example.com>\r\nTo: {to}\r\nSubject: corpus test\r\nMessage-ID: {id}\r\n\
         Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\nHello.\r\n"
    )
}

/// Inspects a report a real MTA wrote and checks the verdict.
fn assert_report(report: &str, id: &str, saved_as: &str) {
    let directory = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dsn-corpus");
    std::fs::create_dir_all(&directory).unwrap();
    std::fs::write(directory.join(saved_as), report).unwrap();
    let inspection = inspect(report.as_bytes());
    assert_eq!(inspection.kind, Kind::Dsn, "{saved_as}: {}\n{report}", inspection.reason);
    assert_eq!(inspection.rule, "rfc3464", "{saved_as}: {}", inspection.reason);
    assert_eq!(inspection.original_message_id.as_deref(), Some(id), "{saved_as}: {}\n{report}", inspection.reason);
    assert_eq!(inspection.referenced_ids.first().map(String::as_str), Some(id));
    // The report's own Message-ID is never taken for the original's.
    let own = report
        .lines()
        .find(|line| line.to_ascii_lowercase().starts_with("message-id:"))
        .expect("the report has a Message-ID")
        .split_once(':')
        .unwrap()
        .1
        .trim();
    assert_ne!(own, id);
    assert!(!inspection.referenced_ids.iter().any(|referenced| referenced == own));
}

/// Postfix with English templates. Mail to nowhere.example goes to the
/// local delivery agent, which bounces it because no such Unix user exists
/// (the error transport would not do: smtpd refuses its recipients at RCPT
/// and no bounce is made); mail to remote.example is deferred (smtp is a
/// deferred transport in the test instances) and warned about after a
/// second.
fn postfix() -> &'static Postfix {
    static POSTFIX: OnceLock<Postfix> = OnceLock::new();
    POSTFIX.get_or_init(|| {
        Postfix::start(
            "transport_maps = inline:{ nowhere.example=local: }\n\
             delay_warning_time = 1s\n\
             queue_run_delay = 1s\n\
             minimal_backoff_time = 1s\n\
             maximal_backoff_time = 1s",
        )
    })
}

/// The report in alice's mailbox that mentions `id` and `needle`.
fn postfix_report(postfix: &Postfix, id: &str, needle: &str) -> String {
    eventually(Duration::from_secs(20), || {
        postfix
            .mailbox("alice@example.com")
            .into_iter()
            .find(|message| message.contains(id) && message.contains(needle))
    })
    .unwrap_or_else(|| panic!("no report with {id} and {needle:?}; log:\n{}", postfix.log()))
}

#[test]
fn postfix_bounce_with_the_original_attached() {
    let postfix = postfix();
    let id = original_id("postfix-failed");
    let t = send_mail(
        postfix.port,
        "alice@example.com",
        &["nosuchuser@nowhere.example"],
        &message_with_id(&id, "nosuchuser@nowhere.example"),
    );
    assert!(t.end.as_ref().is_some_and(|reply| reply.is(250)), "{:?}", t.end);
    let report = postfix_report(postfix, &id, "Action: failed");
    assert!(report.contains("Content-Type: message/rfc822"), "{report}");
    assert_report(&report, &id, "postfix-failed.eml");
}

#[test]
fn postfix_bounce_returning_headers_only() {
    let postfix = postfix();
    let id = original_id("postfix-headers");
    let mut smtp = Smtp::connect(postfix.port);
    assert!(smtp.command("EHLO client.test").is(250));
    // RET=HDRS (RFC 3461) asks for the headers only: a text/rfc822-headers part.
    assert!(smtp.command("MAIL FROM:<alice@example.com> RET=HDRS").is(250));
    let rcpt = smtp.command("RCPT TO:<nosuchuser@nowhere.example>");
    assert!(rcpt.is(250), "{rcpt:?}");
    assert!(smtp.command("DATA").is(354));
    assert!(smtp.data_body(&message_with_id(&id, "nosuchuser@nowhere.example")).is(250));
    smtp.quit();
    let report = postfix_report(postfix, &id, "Action: failed");
    assert!(report.contains("Content-Type: text/rfc822-headers"), "{report}");
    assert_report(&report, &id, "postfix-headers.eml");
}

#[test]
fn postfix_delay_warning() {
    let postfix = postfix();
    let id = original_id("postfix-delayed");
    let t = send_mail(
        postfix.port,
        "alice@example.com",
        &["bob@remote.example"],
        &message_with_id(&id, "bob@remote.example"),
    );
    assert!(t.end.as_ref().is_some_and(|reply| reply.is(250)), "{:?}", t.end);
    std::thread::sleep(Duration::from_millis(1500));
    postfix_flush(postfix);
    let report = postfix_report(postfix, &id, "Action: delayed");
    assert_report(&report, &id, "postfix-delayed.eml");
}

/// Postfix's failure template in German (bounce(5)); the report structure
/// is the same, only the text differs, and recognition must not depend on it.
const GERMAN_TEMPLATE: &str = "failure_template = <<EOF
Charset: utf-8
From: MAILER-DAEMON (Mail-Zustellsystem)
Subject: Unzustellbare Nachricht
Postmaster-Subject: Postmaster-Kopie: Unzustellbare Nachricht

Dies ist das Mailsystem auf dem Rechner $myhostname.

Leider konnte Ihre Nachricht an einen oder mehrere Empfänger nicht
zugestellt werden. Sie ist unten angehängt.

Bei Fragen wenden Sie sich bitte an den Postmaster.

                   Das Mailsystem
EOF
";

#[test]
fn postfix_bounce_from_a_german_template() {
    let templates = TestDir::new("postfix-templates.");
    let template = templates.write("bounce.de.cf", GERMAN_TEMPLATE);
    let postfix = Postfix::start(&format!(
        "transport_maps = inline:{{ nowhere.example=local: }}\n\
         bounce_template_file = {}",
        template.display()
    ));
    let id = original_id("postfix-german");
    let t = send_mail(
        postfix.port,
        "alice@example.com",
        &["nosuchuser@nowhere.example"],
        &message_with_id(&id, "nosuchuser@nowhere.example"),
    );
    assert!(t.end.as_ref().is_some_and(|reply| reply.is(250)), "{:?}", t.end);
    let report = postfix_report(&postfix, &id, "Action: failed");
    assert!(report.contains("Das Mailsystem"), "the German template was not used:\n{report}");
    assert_report(&report, &id, "postfix-german.eml");
}

/// An Exim router sending remote.example to a closed port, so that mail
/// there is deferred.
const UNREACHABLE_ROUTER: &str = "unreachable:\n  driver = manualroute\n  domains = remote.example\n  \
    route_list = * 127.0.0.1::1\n  transport = remote_smtp\n  self = send\n";

#[test]
fn exim_bounce_for_an_unknown_user() {
    let exim = Exim::new("", "");
    let id = original_id("exim-failed");
    exim.submit("alice@example.com", &["nobody@example.com"], &message_with_id(&id, "nobody@example.com"));
    let report =
        exim.delivered("alice", &[&id, "Action: failed"]).unwrap_or_else(|| panic!("no bounce; log:\n{}", exim.log()));
    assert!(report.contains("Content-type: message/rfc822"), "{report}");
    assert_report(&report, &id, "exim-failed.eml");
}

#[test]
fn exim_bounce_returning_headers_only() {
    let exim = Exim::new("bounce_return_body = false", "");
    let id = original_id("exim-headers");
    exim.submit("alice@example.com", &["nobody@example.com"], &message_with_id(&id, "nobody@example.com"));
    let report =
        exim.delivered("alice", &[&id, "Action: failed"]).unwrap_or_else(|| panic!("no bounce; log:\n{}", exim.log()));
    assert!(report.contains("Content-type: text/rfc822-headers"), "{report}");
    assert_report(&report, &id, "exim-headers.eml");
}

#[test]
fn exim_delay_warning() {
    let exim = Exim::new("delay_warning = 1s", UNREACHABLE_ROUTER);
    let id = original_id("exim-delayed");
    exim.submit("alice@example.com", &["bob@remote.example"], &message_with_id(&id, "bob@remote.example"));
    std::thread::sleep(Duration::from_millis(1500));
    exim.run_queue();
    let report = exim
        .delivered("alice", &[&id, "Action: delayed"])
        .unwrap_or_else(|| panic!("no delay warning; log:\n{}", exim.log()));
    assert_report(&report, &id, "exim-delayed.eml");
}
