//! The case tables: one row per protocol behaviour, a table per concern.

mod dialogue;
mod lifecycle;
mod outbound;
mod verdicts;

use std::time::Duration;

use super::fake_mta::{Mta, Record};
use super::{Harness, Step, TestClient, harness};

use Step::*;

/// One behaviour: a listener, an MTA, a client script and what the MTA
/// must have seen.
struct Case {
    name: &'static str,
    role: &'static str,
    sections: &'static str,
    listener: &'static str,
    mta: Mta,
    script: fn(&Harness) -> Vec<Step>,
    check: fn(&Record) -> Result<(), String>,
}

fn nothing(_: &Record) -> Result<(), String> {
    Ok(())
}

fn ensure(condition: bool, what: &str, record: &Record) -> Result<(), String> {
    if condition { Ok(()) } else { Err(format!("{what}; the MTA saw {record:?}")) }
}

fn line(text: impl Into<String>) -> Step {
    Line(text.into())
}

const DSN_UNKNOWN: &str = "From: MAILER-DAEMON@remote.test\r\nSubject: Undelivered Mail Returned to Sender\r\n\
    MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
    --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.remote.test\r\n\r\n\
    Final-Recipient: rfc822; nobody@remote.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\
    --B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: alice@example.com\r\nMessage-ID: <forged.1@spam.test>\r\n--B--\r\n.\r\n";
const DSN_OURS: &str = "From: MAILER-DAEMON@remote.test\r\nSubject: Undelivered Mail Returned to Sender\r\n\
    MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
    --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.remote.test\r\n\r\n\
    Final-Recipient: rfc822; nobody@remote.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\
    --B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: alice@example.com\r\nMessage-ID: <20261125.ab12@mx.example.com>\r\n--B--\r\n.\r\n";
const VACATION: &str = "From: bob@remote.test\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\n\
    In-Reply-To: <forged.2@spam.test>\r\n\r\nI am away.\r\n.\r\n";
const ORDINARY: &str = "From: bob@remote.test\r\nSubject: hello\r\n\r\nHello Alice.\r\n.\r\n";

fn envelope(sender: &str, recipient: &str) -> Vec<Step> {
    vec![
        Expect(220),
        line("EHLO client.test"),
        Expect(250),
        line(format!("MAIL FROM:<{sender}>")),
        Expect(250),
        line(format!("RCPT TO:<{recipient}>")),
        Expect(250),
        line("DATA"),
        Expect(354),
    ]
}

fn with(mut steps: Vec<Step>, more: impl IntoIterator<Item = Step>) -> Vec<Step> {
    steps.extend(more);
    steps
}

/// Every table, in the order a session meets its concerns.
fn all_cases() -> impl Iterator<Item = &'static Case> {
    [dialogue::CASES, outbound::CASES, verdicts::CASES, lifecycle::CASES].into_iter().flatten()
}

#[tokio::test(start_paused = true)]
async fn every_case_of_the_table() {
    assert!(all_cases().count() >= 40, "{} cases", all_cases().count());
    let mut names = std::collections::HashSet::new();
    for case in all_cases() {
        assert!(names.insert(case.name), "{} twice", case.name);
        let harness = harness(case.role, case.sections, case.listener, case.mta).await;
        let mut client = harness.connect().await;
        let script = (case.script)(&harness);
        super::run(&harness, &mut client, case.name, &script).await;
        // The session has settled: let the fake MTA catch up.
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Err(problem) = (case.check)(&harness.record()) {
            panic!("{}: {problem}", case.name);
        }
    }
}

/// Bytes pipelined after STARTTLS are thrown away, what was learnt before
/// TLS is forgotten, and the upstream session is reset.
#[tokio::test(start_paused = true)]
async fn starttls_discards_what_came_before_the_handshake() {
    let listener = "[listener.tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n";
    let harness = harness("inbound", "", listener, Mta::Normal).await;
    let mut client = harness.connect().await;
    super::run(
        &harness,
        &mut client,
        "before TLS",
        &[
            Expect(220),
            line("EHLO client.test"),
            ExpectText(250, "STARTTLS"),
            line("MAIL FROM:<bob@remote.test>"),
            Expect(250),
            Send("STARTTLS\r\nRSET\r\n"),
            ExpectText(220, "Ready to start TLS"),
        ],
    )
    .await;
    let tls = client.start_tls().await;
    let mut client = TestClient::over(tls);
    super::run(
        &harness,
        &mut client,
        "inside TLS",
        &[
            line("RCPT TO:<alice@example.com>"),
            ExpectText(503, "Need MAIL"),
            line("EHLO client.test"),
            ExpectWithout(250, "STARTTLS"),
            line("STARTTLS"),
            Expect(503),
        ],
    )
    .await;
    let record = harness.record();
    let mail = record.commands.iter().position(|c| c.starts_with("MAIL")).unwrap();
    let resets: Vec<&String> = record.commands[mail..].iter().filter(|c| *c == "RSET").collect();
    assert_eq!(resets.len(), 1, "one RSET upstream after STARTTLS, and the pipelined one dropped: {record:?}");
}

/// Added latency and outcomes reach the metrics under their labels.
#[tokio::test(start_paused = true)]
async fn metrics_count_under_closed_labels() {
    let harness = harness("inbound", "", "", Mta::Normal).await;
    let mut client = harness.connect().await;
    let script = with(envelope("", "alice@example.com"), [Send(DSN_UNKNOWN), Expect(550), line("QUIT"), Expect(221)]);
    super::run(&harness, &mut client, "metrics", &script).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let text = harness.metrics();
    for needle in [
        "rejections_total{listener=\"inbound@127.0.0.1:2525\",stage=\"data\",reason=\"no_pattern_no_ledger\"} 1",
        "inspections_total{listener=\"inbound@127.0.0.1:2525\",kind=\"dsn\",result=\"reject\",rule=\"no_pattern_no_ledger\"} 1",
        "messages_total{listener=\"inbound@127.0.0.1:2525\",outcome=\"rejected\"} 1",
        "sessions_total{listener=\"inbound@127.0.0.1:2525\",outcome=\"completed\"} 1",
        "command_added_latency_seconds_count{listener=\"inbound@127.0.0.1:2525\",command=\"MAIL\"} 1",
    ] {
        assert!(text.contains(needle), "{needle} not in\n{text}");
    }
    let _ = harness.path("keys");
}

/// Exemptions are counted by name and what they exempt; recipients and
/// messages delivered marked instead of refused, by stage and rule.
#[tokio::test(start_paused = true)]
async fn exemptions_and_marks_are_counted() {
    let sections = "[policy.actions]\nforged_tag = \"mark\"\nuntagged_autoreply = \"mark\"\n\
                    [[policy.exemption]]\nname = \"partner\"\nclients = [\"192.0.2.0/24\"]\nexempts = [\"untagged_bounce\"]\n";
    let harness = harness("inbound", sections, "", Mta::Normal).await;
    let tag = harness.sign("alice@example.com");
    let forged = format!("{}000000{}", &tag[..9], &tag[15..]);
    let scripts = [
        with(envelope("", "alice@example.com"), [Send(DSN_UNKNOWN), Expect(250), line("QUIT"), Expect(221)]),
        with(envelope("", &forged), [Send(ORDINARY), Expect(250), line("QUIT"), Expect(221)]),
        with(
            envelope("bob@remote.test", "alice@example.com"),
            [Send(VACATION), Expect(250), line("QUIT"), Expect(221)],
        ),
    ];
    for script in &scripts {
        let mut client = harness.connect().await;
        super::run(&harness, &mut client, "counted", script).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let text = harness.metrics();
    for needle in [
        "exemptions_total{listener=\"inbound@127.0.0.1:2525\",exemption=\"partner\",scope=\"untagged_bounce\"} 1",
        "marked_total{listener=\"inbound@127.0.0.1:2525\",stage=\"rcpt\",rule=\"invalid_tag\"} 1",
        "marked_total{listener=\"inbound@127.0.0.1:2525\",stage=\"data\",rule=\"no_pattern_no_ledger\"} 1",
    ] {
        assert!(text.contains(needle), "{needle} not in\n{text}");
    }
}

/// Every transaction is filed in the verdict log: its recipients' verdicts
/// and rules, the content's verdict with the Message-ID it named, the
/// reply the client got; outbound, whether the sender was signed (never
/// the tag).
#[tokio::test(start_paused = true)]
async fn transactions_are_filed_in_the_verdict_log() {
    let harness = harness("inbound", "", "", Mta::Normal).await;
    let mut client = harness.connect().await;
    let tag = harness.sign("alice@example.com");
    let forged = format!("{}000000{}", &tag[..9], &tag[15..]);
    let script = vec![
        Expect(220),
        line("MAIL FROM:<>"),
        Expect(250),
        Line(format!("RCPT TO:<{forged}>")),
        Expect(550),
        line("RCPT TO:<bob@example.com>"),
        Expect(250),
        line("DATA"),
        Expect(354),
        Send(DSN_UNKNOWN),
        Expect(550),
        line("QUIT"),
        Expect(221),
    ];
    super::run(&harness, &mut client, "verdict log", &script).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let records = harness.verdicts();
    assert_eq!(records.len(), 1, "{records:#?}");
    let record = &records[0];
    assert_eq!((record.sender.as_str(), record.client.to_string().as_str()), ("<>", "192.0.2.7"));
    let rules: Vec<(&str, &str, u16)> = record.recipients.iter().map(|r| (r.rule, r.reason, r.reply)).collect();
    assert_eq!(rules, [("invalid_tag", "bad_signature", 550), ("untagged_inspect", "untagged", 250)]);
    assert_eq!(record.recipients[0].action, Some("reject"));
    let message = record.message.as_ref().expect("the message");
    assert_eq!(
        (message.kind, message.verdict, message.rule),
        (Some("dsn"), Some("reject"), Some("no_pattern_no_ledger"))
    );
    assert_eq!(message.original_message_id.as_deref(), Some("<forged.1@spam.test>"));
    assert!(message.reply.starts_with("550 5.7.1"), "{message:?}");
    assert!(!record.delivered());

    let outbound = harness_outbound_signed().await;
    assert_eq!(outbound.signed_with_key, Some(3));
    assert!(outbound.delivered());
    assert!(!serde_json::to_string(&outbound).unwrap().contains("prvs="), "a tag in the log: {outbound:?}");
}

async fn harness_outbound_signed() -> crate::verdicts::VerdictRecord {
    let harness = harness("outbound", "", "", Mta::Normal).await;
    let mut client = harness.connect().await;
    let script = with(
        envelope("alice@example.com", "carol@remote.test"),
        [Send(ORDINARY), Expect(250), line("QUIT"), Expect(221)],
    );
    super::run(&harness, &mut client, "outbound log", &script).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    harness.verdicts().remove(0)
}
