//! The case table: one row per protocol behaviour.

use std::time::Duration;

use super::fake_mta::{Mta, Record};
use super::{Harness, Step, TestClient, harness};
use crate::session::Phase;

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

const CASES: &[Case] = &[
    // The dialogue itself.
    Case {
        name: "greeting_and_filtered_ehlo",
        role: "outbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            vec![
                Expect(220),
                line("EHLO client.test"),
                ExpectText(250, "PIPELINING"),
                line("QUIT"),
                Expect(221),
                Closed,
            ]
        },
        check: |record| ensure(record.saw("EHLO client.test") && record.saw("QUIT"), "EHLO and QUIT relayed", record),
    },
    Case {
        name: "ehlo_hides_xclient_etrn_and_upstream_tls",
        role: "outbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            vec![
                Expect(220),
                line("EHLO client.test"),
                ExpectWithout(250, "XCLIENT"),
                line("EHLO again"),
                ExpectWithout(250, "ETRN"),
            ]
        },
        check: nothing,
    },
    Case {
        name: "helo_gets_the_proxys_name",
        role: "inbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| vec![Expect(220), line("HELO client.test"), ExpectText(250, "proxy.example.com")],
        check: |record| ensure(record.saw("HELO client.test"), "HELO relayed", record),
    },
    Case {
        name: "pipelined_transaction_in_one_write",
        role: "outbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            vec![
                Expect(220),
                Send(
                    "EHLO client.test\r\nMAIL FROM:<bob@remote.test>\r\nRCPT TO:<carol@remote.test>\r\nRCPT TO:<dave@remote.test>\r\nDATA\r\n",
                ),
                Expect(250),
                Expect(250),
                Expect(250),
                Expect(250),
                Expect(354),
                Send("Subject: x\r\n\r\nhi\r\n.\r\nNOOP\r\n"),
                ExpectText(250, "queued as FAKE123"),
                Expect(250),
            ]
        },
        check: |record| ensure(record.messages.len() == 1, "one message", record),
    },
    Case {
        name: "unknown_command",
        role: "outbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| vec![Expect(220), line("FROB"), ExpectText(500, "not recognized")],
        check: |record| ensure(!record.saw("FROB"), "never relayed", record),
    },
    Case {
        name: "bdat_and_xclient_are_not_offered",
        role: "inbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| vec![Expect(220), line("BDAT 10 LAST"), Expect(502), line("XCLIENT ADDR=10.0.0.1"), Expect(502)],
        check: |record| ensure(!record.saw("BDAT") && !record.saw("XCLIENT"), "never relayed", record),
    },
    Case {
        name: "rcpt_before_mail",
        role: "inbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| vec![Expect(220), line("EHLO c"), Expect(250), line("RCPT TO:<alice@example.com>"), Expect(503)],
        check: |record| ensure(!record.saw("RCPT"), "never relayed", record),
    },
    Case {
        name: "data_before_mail",
        role: "inbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| vec![Expect(220), line("DATA"), Expect(503)],
        check: |record| ensure(!record.saw("DATA"), "never relayed", record),
    },
    Case {
        name: "nested_mail",
        role: "outbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            vec![
                Expect(220),
                line("MAIL FROM:<bob@remote.test>"),
                Expect(250),
                line("MAIL FROM:<bob@remote.test>"),
                Expect(503),
            ]
        },
        check: |record| {
            ensure(record.commands.iter().filter(|c| c.starts_with("MAIL")).count() == 1, "one MAIL", record)
        },
    },
    Case {
        name: "data_without_an_accepted_recipient",
        role: "inbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            vec![
                Expect(220),
                line("MAIL FROM:<>"),
                Expect(250),
                line("RCPT TO:<prvs=3000000000=alice@example.com>"),
                Expect(550),
                line("DATA"),
                ExpectText(554, "No valid recipients"),
            ]
        },
        check: |record| ensure(!record.saw("DATA"), "DATA never relayed", record),
    },
    Case {
        name: "over_long_command_line",
        role: "outbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            vec![
                Expect(220),
                line(format!("NOOP {}", "x".repeat(3000))),
                ExpectText(500, "too long"),
                line("NOOP"),
                Expect(250),
            ]
        },
        check: |record| ensure(record.commands.iter().all(|c| c.len() < 100), "the long line never relayed", record),
    },
    Case {
        name: "bare_lf_and_bare_cr_in_commands",
        role: "outbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            vec![
                Expect(220),
                Send("NOOP\n"),
                ExpectText(500, "Bare LF"),
                Send("NO\rOP\r\n"),
                ExpectText(500, "Bare CR"),
            ]
        },
        check: |record| ensure(!record.saw("NO"), "never relayed", record),
    },
    Case {
        name: "nul_in_a_command",
        role: "inbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| vec![Expect(220), Send("RSET\0MAIL FROM:<x@y.test>\r\n"), ExpectText(500, "NUL")],
        check: |record| ensure(!record.saw("RSET") && !record.saw("MAIL"), "never relayed", record),
    },
    Case {
        name: "max_errors_closes_the_session",
        role: "outbound",
        sections: "",
        listener: "max_errors = 3\n",
        mta: Mta::Normal,
        script: |_| {
            vec![
                Expect(220),
                line("FROB"),
                Expect(500),
                line("FROB"),
                Expect(500),
                line("FROB"),
                Expect(500),
                ExpectText(421, "Too many errors"),
                Closed,
            ]
        },
        check: nothing,
    },
    Case {
        name: "max_recipients",
        role: "outbound",
        sections: "",
        listener: "max_recipients = 2\n",
        mta: Mta::Normal,
        script: |_| {
            vec![
                Expect(220),
                line("MAIL FROM:<bob@remote.test>"),
                Expect(250),
                line("RCPT TO:<a@remote.test>"),
                Expect(250),
                line("RCPT TO:<b@remote.test>"),
                Expect(250),
                line("RCPT TO:<c@remote.test>"),
                ExpectText(452, "Too many recipients"),
            ]
        },
        check: |record| ensure(!record.saw("RCPT TO:<c@"), "the third never relayed", record),
    },
    Case {
        name: "declared_size_over_the_limit",
        role: "outbound",
        sections: "",
        listener: "max_message_size = 1000\n",
        mta: Mta::Normal,
        script: |_| vec![Expect(220), line("MAIL FROM:<bob@remote.test> SIZE=5000"), ExpectText(552, "5.3.4")],
        check: |record| ensure(!record.saw("MAIL"), "never relayed", record),
    },
    Case {
        name: "message_over_the_limit_while_streaming",
        role: "outbound",
        sections: "",
        listener: "max_message_size = 100\n",
        mta: Mta::Normal,
        script: |_| {
            with(
                envelope("bob@remote.test", "carol@remote.test"),
                [
                    line(format!("Subject: big\r\n\r\n{}\r\n.", "x".repeat(300))),
                    ExpectText(552, "5.3.4"),
                    line("MAIL FROM:<bob@remote.test>"),
                    Expect(250),
                ],
            )
        },
        check: |record| {
            ensure(
                record.messages.is_empty() && record.connections == 2,
                "no message, and a new upstream session",
                record,
            )
        },
    },
    Case {
        name: "bare_lf_in_message_data",
        role: "inbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            with(
                envelope("bob@remote.test", "carol@remote.test"),
                [
                    Send("Subject: x\r\n\r\nline\n.\nMAIL FROM:<x@y.test>\r\n.\r\n"),
                    ExpectText(550, "bare CR or LF"),
                    line("NOOP"),
                    Expect(250),
                ],
            )
        },
        check: |record| ensure(record.messages.is_empty() && !record.saw("MAIL FROM:<x@"), "nothing smuggled", record),
    },
    Case {
        name: "nul_in_message_data",
        role: "outbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            with(
                envelope("bob@remote.test", "carol@remote.test"),
                [Send("Subject: x\r\n\r\nline\r\n\0.\r\nMAIL FROM:<x@y.test>\r\n.\r\n"), ExpectText(550, "5.6.0")],
            )
        },
        check: |record| ensure(record.messages.is_empty() && !record.saw("MAIL FROM:<x@"), "nothing smuggled", record),
    },
    Case {
        name: "command_timeout",
        role: "outbound",
        sections: "",
        listener: "command_timeout = \"10s\"\n",
        mta: Mta::Normal,
        script: |_| vec![Expect(220), ExpectText(421, "Timeout waiting for a command"), Closed],
        check: nothing,
    },
    Case {
        name: "data_timeout",
        role: "outbound",
        sections: "",
        listener: "data_timeout = \"10s\"\n",
        mta: Mta::Normal,
        script: |_| {
            with(
                envelope("bob@remote.test", "carol@remote.test"),
                [Send("Subject: x\r\n"), ExpectText(421, "Timeout reading message data"), Closed],
            )
        },
        check: |record| ensure(record.messages.is_empty(), "no message", record),
    },
    Case {
        name: "vrfy_noop_and_rset_are_relayed",
        role: "outbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            vec![
                Expect(220),
                line("VRFY alice"),
                Expect(250),
                line("MAIL FROM:<bob@remote.test>"),
                Expect(250),
                line("RSET"),
                Expect(250),
                line("RCPT TO:<a@remote.test>"),
                Expect(503),
            ]
        },
        check: |record| ensure(record.saw("VRFY") && record.saw("RSET"), "relayed", record),
    },
    // Outbound signing.
    Case {
        name: "our_sender_is_signed",
        role: "outbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| with(envelope("alice@example.com", "carol@remote.test"), [Send(ORDINARY), Expect(250)]),
        check: |record| ensure(record.saw("MAIL FROM:<prvs=3"), "signed", record),
    },
    Case {
        name: "foreign_and_null_senders_are_not_signed",
        role: "outbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            vec![
                Expect(220),
                line("MAIL FROM:<bob@remote.test>"),
                Expect(250),
                line("RSET"),
                Expect(250),
                line("MAIL FROM:<>"),
                Expect(250),
            ]
        },
        check: |record| {
            ensure(record.saw("MAIL FROM:<bob@remote.test>") && record.saw("MAIL FROM:<>"), "plain", record)
        },
    },
    Case {
        name: "no_reply_carries_the_tag",
        role: "outbound",
        sections: "",
        listener: "",
        mta: Mta::EchoSender,
        script: |_| {
            vec![
                Expect(220),
                line("MAIL FROM:<alice@example.com>"),
                ExpectWithout(250, "prvs"),
                line("RCPT TO:<carol@remote.test>"),
                ExpectWithout(250, "prvs"),
                line("DATA"),
                Expect(354),
                Send(ORDINARY),
                ExpectWithout(250, "prvs"),
            ]
        },
        check: |record| ensure(record.saw("MAIL FROM:<prvs="), "signed", record),
    },
    Case {
        name: "held_mail_is_signed_for_an_ordinary_recipient",
        role: "outbound",
        sections: "[policy]\nexempt_recipients = [\"lists.example.net\"]\n",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            vec![
                Expect(220),
                line("MAIL FROM:<alice@example.com>"),
                Expect(250),
                line("NOOP"),
                Expect(250),
                line("RCPT TO:<carol@remote.test>"),
                Expect(250),
            ]
        },
        check: |record| {
            let noop = record.commands.iter().position(|c| c == "NOOP");
            let mail = record.commands.iter().position(|c| c.starts_with("MAIL FROM:<prvs="));
            ensure(noop.is_some() && mail > noop, "MAIL held until the first RCPT, then signed", record)
        },
    },
    Case {
        name: "held_mail_is_plain_for_an_exempt_recipient",
        role: "outbound",
        sections: "[policy]\nexempt_recipients = [\"lists.example.net\"]\n",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            vec![
                Expect(220),
                line("MAIL FROM:<alice@example.com>"),
                Expect(250),
                line("RCPT TO:<list@lists.example.net>"),
                Expect(250),
            ]
        },
        check: |record| {
            ensure(record.saw("MAIL FROM:<alice@example.com>") && !record.saw("MAIL FROM:<prvs"), "plain", record)
        },
    },
    Case {
        name: "exempt_and_other_recipients_never_share_a_transaction",
        role: "outbound",
        sections: "[policy]\nexempt_recipients = [\"lists.example.net\"]\n",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            vec![
                Expect(220),
                line("MAIL FROM:<alice@example.com>"),
                Expect(250),
                line("RCPT TO:<carol@remote.test>"),
                Expect(250),
                line("RCPT TO:<list@lists.example.net>"),
                ExpectText(452, "separate transaction"),
            ]
        },
        check: |record| ensure(!record.saw("RCPT TO:<list@"), "never relayed", record),
    },
    Case {
        name: "a_refused_held_mail_refuses_every_recipient",
        role: "outbound",
        sections: "[policy]\nexempt_recipients = [\"lists.example.net\"]\n",
        listener: "",
        mta: Mta::RefuseMail,
        script: |_| {
            vec![
                Expect(220),
                line("MAIL FROM:<alice@example.com>"),
                Expect(250),
                line("RCPT TO:<carol@remote.test>"),
                ExpectWithout(553, "prvs"),
                line("RCPT TO:<dave@remote.test>"),
                ExpectText(553, "<alice@example.com>"),
            ]
        },
        check: |record| ensure(!record.saw("RCPT"), "no RCPT after the refused MAIL", record),
    },
    Case {
        name: "require_auth_refuses_mail_before_auth",
        role: "outbound",
        sections: "",
        listener: "require_auth = true\n",
        mta: Mta::Normal,
        script: |_| {
            vec![
                Expect(220),
                line("EHLO c"),
                Expect(250),
                line("MAIL FROM:<alice@example.com>"),
                ExpectText(530, "Authentication required"),
            ]
        },
        check: |record| ensure(!record.saw("MAIL"), "never relayed", record),
    },
    // Inbound verdicts.
    Case {
        name: "a_bounce_to_a_valid_tag_reaches_the_plain_address_with_orcpt",
        role: "inbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |harness| {
            let tag = harness.sign("alice@example.com");
            vec![
                Expect(220),
                line("EHLO c"),
                Expect(250),
                line("MAIL FROM:<>"),
                Expect(250),
                Line(format!("RCPT TO:<{tag}>")),
                Expect(250),
                line("DATA"),
                Expect(354),
                Send(DSN_UNKNOWN),
                Expect(250),
            ]
        },
        check: |record| {
            ensure(
                record.saw("RCPT TO:<alice@example.com> ORCPT=rfc822;prvs+3D") && record.messages.len() == 1,
                "rewritten, with ORCPT, and delivered",
                record,
            )
        },
    },
    Case {
        name: "a_bounce_to_a_forged_tag_is_refused_at_rcpt",
        role: "inbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |harness| {
            let tag = harness.sign("alice@example.com");
            let forged = format!("{}000000{}", &tag[..9], &tag[15..]);
            vec![
                Expect(220),
                line("MAIL FROM:<>"),
                Expect(250),
                Line(format!("RCPT TO:<{forged}>")),
                ExpectText(550, "invalid"),
            ]
        },
        check: |record| ensure(!record.saw("RCPT"), "never relayed", record),
    },
    Case {
        name: "an_untagged_bounce_naming_no_message_of_ours_is_refused_after_data",
        role: "inbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| with(envelope("", "alice@example.com"), [Send(DSN_UNKNOWN), ExpectText(550, "Bounce refused")]),
        check: |record| ensure(record.messages.is_empty(), "the MTA never saw the final dot", record),
    },
    Case {
        name: "an_untagged_bounce_matching_a_pattern_passes",
        role: "inbound",
        sections: "[policy.message_id_patterns]\n\"example.com\" = [\"*@mx.example.com\"]\n",
        listener: "",
        mta: Mta::Normal,
        script: |_| with(envelope("", "alice@example.com"), [Send(DSN_OURS), Expect(250)]),
        check: |record| ensure(record.messages.len() == 1, "delivered", record),
    },
    Case {
        name: "untagged_bounce_reject_refuses_data",
        role: "inbound",
        sections: "[policy]\nuntagged_bounce = \"reject\"\n",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            vec![
                Expect(220),
                line("MAIL FROM:<>"),
                Expect(250),
                line("RCPT TO:<alice@example.com>"),
                Expect(250),
                line("DATA"),
                ExpectText(550, "untagged"),
            ]
        },
        check: |record| ensure(record.saw("RSET") && !record.saw("DATA"), "RSET instead of DATA", record),
    },
    Case {
        name: "untagged_stage_rcpt_refuses_at_rcpt",
        role: "inbound",
        sections: "[policy]\nuntagged_stage = \"rcpt\"\n",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            vec![
                Expect(220),
                line("MAIL FROM:<>"),
                Expect(250),
                line("RCPT TO:<alice@example.com>"),
                ExpectText(550, "untagged"),
            ]
        },
        check: |record| ensure(!record.saw("RCPT"), "never relayed", record),
    },
    Case {
        name: "recipients_judged_now_and_later_never_share_a_transaction",
        role: "inbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |harness| {
            let tag = harness.sign("alice@example.com");
            vec![
                Expect(220),
                line("MAIL FROM:<>"),
                Expect(250),
                Line(format!("RCPT TO:<{tag}>")),
                Expect(250),
                line("RCPT TO:<bob@example.com>"),
                ExpectText(452, "separate transaction"),
            ]
        },
        check: |record| ensure(!record.saw("RCPT TO:<bob@"), "never relayed", record),
    },
    Case {
        name: "an_automatic_reply_naming_no_message_of_ours_is_refused",
        role: "inbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            with(
                envelope("bob@remote.test", "alice@example.com"),
                [Send(VACATION), ExpectText(550, "Automatic reply refused")],
            )
        },
        check: |record| ensure(record.messages.is_empty(), "not delivered", record),
    },
    Case {
        name: "an_automatic_reply_to_a_failing_tag_is_judged_too",
        role: "inbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            with(
                envelope("bob@remote.test", "prvs=0999abcdef=alice@example.com"),
                [Send(VACATION), ExpectText(550, "Automatic reply refused")],
            )
        },
        check: |record| {
            ensure(record.messages.is_empty() && record.saw("RCPT TO:<alice@example.com>"), "stripped, judged", record)
        },
    },
    Case {
        name: "ordinary_mail_passes_untouched",
        role: "inbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| with(envelope("bob@remote.test", "alice@example.com"), [Send(ORDINARY), Expect(250)]),
        check: |record| {
            ensure(
                record.messages.len() == 1 && record.messages[0].ends_with(&ORDINARY[..ORDINARY.len() - 3]),
                "delivered as sent",
                record,
            )
        },
    },
    Case {
        name: "monitor_mode_marks_instead_of_refusing",
        role: "inbound",
        sections: "[policy]\nmode = \"monitor\"\n",
        listener: "",
        mta: Mta::Normal,
        script: |_| with(envelope("", "alice@example.com"), [Send(DSN_UNKNOWN), Expect(250)]),
        check: |record| {
            let marked =
                |m: &String| m.contains("\r\nX-Batv-Status: missing\r\nX-Batv-Mark: refused\r\nFrom: MAILER-DAEMON");
            ensure(record.messages.first().is_some_and(marked), "marked, after the proxy's Received field", record)
        },
    },
    Case {
        name: "a_clients_own_status_field_is_removed",
        role: "inbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            with(
                envelope("bob@remote.test", "alice@example.com"),
                [Send("X-Batv-Status: valid\r\n\tby me\r\nSubject: hi\r\n\r\nbody\r\n.\r\n"), Expect(250)],
            )
        },
        check: |record| {
            let clean = |m: &String| {
                !m.contains("X-Batv") && !m.contains("by me") && m.ends_with("+0000\r\nSubject: hi\r\n\r\nbody\r\n")
            };
            ensure(record.messages.first().is_some_and(clean), "the client's copy removed", record)
        },
    },
    Case {
        name: "a_percent_hack_spelling_is_judged_as_ours",
        role: "inbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            with(envelope("", "alice%example.com@localhost"), [Send(DSN_UNKNOWN), ExpectText(550, "Bounce refused")])
        },
        check: |record| ensure(record.messages.is_empty(), "not delivered", record),
    },
    Case {
        name: "postmaster_takes_every_bounce",
        role: "inbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| with(envelope("", "postmaster@example.com"), [Send(DSN_UNKNOWN), Expect(250)]),
        check: |record| ensure(record.messages.len() == 1, "delivered", record),
    },
    // Actions and exemptions.
    Case {
        name: "tempfail_action_answers_a_forged_tag_with_451",
        role: "inbound",
        sections: "[policy.actions]\nforged_tag = \"tempfail\"\n",
        listener: "",
        mta: Mta::Normal,
        script: |harness| {
            let tag = harness.sign("alice@example.com");
            let forged = format!("{}000000{}", &tag[..9], &tag[15..]);
            vec![
                Expect(220),
                line("MAIL FROM:<>"),
                Expect(250),
                Line(format!("RCPT TO:<{forged}>")),
                ExpectText(451, "4.7.1 Bounce address tag is invalid"),
            ]
        },
        check: |record| ensure(!record.saw("RCPT"), "never relayed", record),
    },
    Case {
        name: "mark_action_delivers_a_forged_tag_marked",
        role: "inbound",
        sections: "[policy.actions]\nforged_tag = \"mark\"\nmark_header = \"X-Spam-Flag: YES\"\n",
        listener: "",
        mta: Mta::Normal,
        script: |harness| {
            let tag = harness.sign("alice@example.com");
            let forged = format!("{}000000{}", &tag[..9], &tag[15..]);
            with(envelope("", &forged), [Send(DSN_UNKNOWN), Expect(250)])
        },
        check: |record| {
            let marked = |m: &String| {
                m.contains("\r\nX-Batv-Status: invalid, bad_signature\r\nX-Spam-Flag: YES\r\nFrom: MAILER")
            };
            ensure(
                record.saw("RCPT TO:<alice@example.com>") && record.messages.first().is_some_and(marked),
                "stripped and marked",
                record,
            )
        },
    },
    Case {
        name: "mark_action_delivers_an_unanswering_automatic_reply_marked",
        role: "inbound",
        sections: "[policy.actions]\nuntagged_autoreply = \"mark\"\n",
        listener: "",
        mta: Mta::Normal,
        script: |_| with(envelope("bob@remote.test", "alice@example.com"), [Send(VACATION), Expect(250)]),
        check: |record| {
            let marked = |m: &String| {
                m.contains("\r\nX-Batv-Status: autoreply, no_pattern_no_ledger\r\nX-Batv-Mark: refused\r\nFrom: bob")
            };
            ensure(record.messages.first().is_some_and(marked), "delivered, marked", record)
        },
    },
    Case {
        name: "tempfail_action_answers_an_unanswering_bounce_with_451_after_data",
        role: "inbound",
        sections: "[policy.actions]\nuntagged_bounce = \"tempfail\"\n",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            with(envelope("", "alice@example.com"), [Send(DSN_UNKNOWN), ExpectText(451, "4.7.1 Bounce refused")])
        },
        check: |record| ensure(record.messages.is_empty(), "not delivered", record),
    },
    Case {
        name: "mark_action_with_untagged_bounce_reject_passes_data",
        role: "inbound",
        sections: "[policy]\nuntagged_bounce = \"reject\"\n[policy.actions]\nuntagged_bounce = \"mark\"\n",
        listener: "",
        mta: Mta::Normal,
        script: |_| with(envelope("", "alice@example.com"), [Send(DSN_UNKNOWN), Expect(250)]),
        check: |record| {
            ensure(
                record.messages.first().is_some_and(|m| m.contains("X-Batv-Status: missing\r\nX-Batv-Mark: refused")),
                "marked",
                record,
            )
        },
    },
    Case {
        name: "a_clients_copy_of_the_mark_header_is_removed",
        role: "inbound",
        sections: "[policy.actions]\nmark_header = \"X-Spam-Flag: YES\"\n",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            with(
                envelope("bob@remote.test", "alice@example.com"),
                [Send("X-Spam-Flag: NO\r\nSubject: hi\r\n\r\nx\r\n.\r\n"), Expect(250)],
            )
        },
        check: |record| ensure(record.messages.first().is_some_and(|m| !m.contains("X-Spam-Flag")), "removed", record),
    },
    Case {
        name: "an_exemption_by_client_network_passes_untagged_bounces",
        role: "inbound",
        sections: "[[policy.exemption]]\nname = \"partner\"\nclients = [\"192.0.2.0/24\"]\nexempts = [\"untagged_bounce\"]\n",
        listener: "",
        mta: Mta::Normal,
        script: |_| with(envelope("", "alice@example.com"), [Send(DSN_UNKNOWN), Expect(250)]),
        check: |record| ensure(record.messages.len() == 1, "delivered unjudged", record),
    },
    Case {
        name: "an_exemption_for_other_clients_does_not_apply",
        role: "inbound",
        sections: "[[policy.exemption]]\nname = \"partner\"\nclients = [\"198.51.100.0/24\"]\nexempts = [\"untagged_bounce\"]\n",
        listener: "",
        mta: Mta::Normal,
        script: |_| with(envelope("", "alice@example.com"), [Send(DSN_UNKNOWN), ExpectText(550, "Bounce refused")]),
        check: |record| ensure(record.messages.is_empty(), "judged and refused", record),
    },
    Case {
        name: "an_exemption_by_reporting_mta_passes_its_bounces",
        role: "inbound",
        sections: "[[policy.exemption]]\nname = \"partner-mx\"\nreporting_mtas = [\"MX.remote.test\"]\nexempts = [\"untagged_bounce\"]\n",
        listener: "",
        mta: Mta::Normal,
        script: |_| with(envelope("", "alice@example.com"), [Send(DSN_UNKNOWN), Expect(250)]),
        check: |record| ensure(record.messages.len() == 1, "delivered: its Reporting-MTA is exempt", record),
    },
    Case {
        name: "an_exemption_by_another_reporting_mta_does_not_apply",
        role: "inbound",
        sections: "[[policy.exemption]]\nname = \"partner-mx\"\nreporting_mtas = [\"mx.partner.test\"]\nexempts = [\"untagged_bounce\"]\n",
        listener: "",
        mta: Mta::Normal,
        script: |_| with(envelope("", "alice@example.com"), [Send(DSN_UNKNOWN), ExpectText(550, "Bounce refused")]),
        check: |record| ensure(record.messages.is_empty(), "judged and refused", record),
    },
    Case {
        name: "an_exemption_by_sender_passes_automatic_replies",
        role: "inbound",
        sections: "[[policy.exemption]]\nname = \"calendar\"\nsenders = [\"*@remote.test\"]\nexempts = [\"auto_reply\"]\n",
        listener: "",
        mta: Mta::Normal,
        script: |_| with(envelope("bob@remote.test", "alice@example.com"), [Send(VACATION), Expect(250)]),
        check: |record| ensure(record.messages.len() == 1, "delivered unjudged", record),
    },
    Case {
        name: "an_exemption_by_client_network_leaves_senders_unsigned",
        role: "outbound",
        sections: "[[policy.exemption]]\nname = \"relay\"\nclients = [\"192.0.2.7\"]\nexempts = [\"signing\"]\n",
        listener: "",
        mta: Mta::Normal,
        script: |_| vec![Expect(220), line("MAIL FROM:<alice@example.com>"), Expect(250)],
        check: |record| ensure(record.saw("MAIL FROM:<alice@example.com>"), "plain", record),
    },
    Case {
        name: "an_exemption_by_recipient_domain_sends_plain_towards_it",
        role: "outbound",
        sections: "[[policy.exemption]]\nname = \"lists\"\nrecipient_domains = [\"lists.example.net\"]\nexempts = [\"signing\"]\n",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            vec![
                Expect(220),
                line("MAIL FROM:<alice@example.com>"),
                Expect(250),
                line("RCPT TO:<list@lists.example.net>"),
                Expect(250),
                line("RCPT TO:<carol@remote.test>"),
                ExpectText(452, "separate transaction"),
            ]
        },
        check: |record| {
            ensure(record.saw("MAIL FROM:<alice@example.com>") && !record.saw("MAIL FROM:<prvs"), "plain", record)
        },
    },
    // The upstream failing at each phase.
    Case {
        name: "upstream_unreachable",
        role: "inbound",
        sections: "",
        listener: "",
        mta: Mta::Unreachable,
        script: |_| vec![ExpectText(421, "4.4.0"), Closed],
        check: nothing,
    },
    Case {
        name: "upstream_refuses_the_session_for_good",
        role: "inbound",
        sections: "",
        listener: "",
        mta: Mta::RefuseGreeting(554),
        script: |_| vec![ExpectText(554, "5.3.2"), Closed],
        check: nothing,
    },
    Case {
        name: "upstream_refuses_the_session_for_now",
        role: "inbound",
        sections: "",
        listener: "",
        mta: Mta::RefuseGreeting(421),
        script: |_| vec![ExpectText(421, "4.3.2"), Closed],
        check: nothing,
    },
    Case {
        name: "upstream_lost_at_mail",
        role: "outbound",
        sections: "",
        listener: "",
        mta: Mta::CloseOn("MAIL"),
        script: |_| {
            vec![
                Expect(220),
                line("EHLO c"),
                Expect(250),
                line("MAIL FROM:<bob@remote.test>"),
                ExpectText(421, "4.4.2"),
                Closed,
            ]
        },
        check: nothing,
    },
    Case {
        name: "upstream_lost_at_data",
        role: "outbound",
        sections: "",
        listener: "",
        mta: Mta::CloseOn("DATA"),
        script: |_| {
            vec![
                Expect(220),
                line("MAIL FROM:<bob@remote.test>"),
                Expect(250),
                line("RCPT TO:<c@remote.test>"),
                Expect(250),
                line("DATA"),
                ExpectText(421, "4.4.2"),
                Closed,
            ]
        },
        check: nothing,
    },
    Case {
        name: "upstream_lost_in_the_middle_of_a_large_message",
        role: "outbound",
        sections: "",
        listener: "",
        mta: Mta::ResetMidData(10),
        script: |_| {
            with(
                envelope("bob@remote.test", "carol@remote.test"),
                [
                    line(format!("Subject: x\r\n\r\n{}\r\n.", "y\r\n".repeat(100_000))),
                    ExpectText(421, "closed the connection"),
                    Closed,
                ],
            )
        },
        check: |record| ensure(record.messages.is_empty(), "no message", record),
    },
    Case {
        name: "upstream_gone_before_its_final_reply",
        role: "outbound",
        sections: "",
        listener: "",
        mta: Mta::ResetMidData(10),
        script: |_| {
            with(
                envelope("bob@remote.test", "carol@remote.test"),
                [line(format!("Subject: x\r\n\r\n{}\r\n.", "y\r\n".repeat(100))), ExpectText(451, "No reply"), Closed],
            )
        },
        check: |record| ensure(record.messages.is_empty(), "no message", record),
    },
    Case {
        name: "no_final_reply_from_the_upstream",
        role: "outbound",
        sections: "",
        listener: "upstream_data_timeout = \"30s\"\n",
        mta: Mta::NoFinalReply,
        script: |_| {
            with(
                envelope("bob@remote.test", "carol@remote.test"),
                [Send(ORDINARY), ExpectText(451, "No reply"), Closed],
            )
        },
        check: nothing,
    },
    Case {
        name: "the_upstreams_refusal_of_a_message_is_relayed",
        role: "outbound",
        sections: "",
        listener: "",
        mta: Mta::RefuseData,
        script: |_| {
            with(
                envelope("bob@remote.test", "carol@remote.test"),
                [Send(ORDINARY), ExpectText(554, "Refused by policy"), line("NOOP"), Expect(250)],
            )
        },
        check: nothing,
    },
    Case {
        name: "an_idle_upstream_that_times_out",
        role: "outbound",
        sections: "",
        listener: "",
        mta: Mta::IdleTimeout,
        script: |_| vec![Expect(220), line("EHLO c"), Expect(250), ExpectText(421, "closed the connection"), Closed],
        check: nothing,
    },
    Case {
        name: "xclient_tells_the_upstream_the_client",
        role: "inbound",
        sections: "",
        listener: "client_identity = \"xclient\"\n",
        mta: Mta::Xclient { accept: true },
        script: |_| vec![Expect(220), line("EHLO client.test"), Expect(250)],
        check: |record| {
            ensure(
                record.saw("XCLIENT ADDR=192.0.2.7 PORT=40000 HELO=client.test PROTO=ESMTP"),
                "XCLIENT first",
                record,
            )
        },
    },
    Case {
        name: "a_refused_xclient_ends_the_session",
        role: "inbound",
        sections: "",
        listener: "client_identity = \"xclient\"\n",
        mta: Mta::Xclient { accept: false },
        script: |_| vec![Expect(220), line("EHLO client.test"), ExpectText(421, "4.3.5"), Closed],
        check: |record| ensure(!record.saw("EHLO client.test"), "the client's EHLO never relayed", record),
    },
    // TLS gates.
    Case {
        name: "starttls_not_offered_without_tls",
        role: "inbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| vec![Expect(220), line("STARTTLS"), Expect(502)],
        check: |record| ensure(!record.saw("STARTTLS"), "never relayed", record),
    },
    Case {
        name: "require_tls_refuses_mail_in_clear",
        role: "outbound",
        sections: "",
        listener: "[listener.tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\nrequire = true\n",
        mta: Mta::Normal,
        script: |_| {
            vec![
                Expect(220),
                line("EHLO c"),
                ExpectText(250, "STARTTLS"),
                line("MAIL FROM:<alice@example.com>"),
                ExpectText(530, "STARTTLS"),
            ]
        },
        check: |record| ensure(!record.saw("MAIL"), "never relayed", record),
    },
    Case {
        name: "auth_needs_tls_when_tls_is_configured",
        role: "outbound",
        sections: "",
        listener: "[listener.tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n",
        mta: Mta::Normal,
        script: |_| vec![Expect(220), line("AUTH PLAIN AGFsaWNlAHNlY3JldA=="), ExpectText(538, "5.7.11")],
        check: |record| ensure(!record.saw("AUTH"), "never relayed", record),
    },
    // Drain.
    Case {
        name: "draining_closes_an_idle_session",
        role: "inbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            vec![Expect(220), line("EHLO c"), Expect(250), Drain(Phase::Draining), ExpectText(421, "4.3.2"), Closed]
        },
        check: nothing,
    },
    Case {
        name: "draining_lets_the_transaction_finish",
        role: "outbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            vec![
                Expect(220),
                line("MAIL FROM:<bob@remote.test>"),
                Expect(250),
                Drain(Phase::Draining),
                line("RCPT TO:<c@remote.test>"),
                Expect(250),
                line("DATA"),
                Expect(354),
                Send(ORDINARY),
                Expect(250),
                ExpectText(421, "4.3.2"),
                Closed,
            ]
        },
        check: |record| ensure(record.messages.len() == 1, "the message made it", record),
    },
    Case {
        name: "stopping_cuts_a_stalled_message_short",
        role: "outbound",
        sections: "",
        listener: "",
        mta: Mta::Normal,
        script: |_| {
            with(
                envelope("bob@remote.test", "carol@remote.test"),
                [
                    Send("Subject: x\r\n"),
                    Wait(Duration::from_secs(5)),
                    Drain(Phase::Stopping),
                    ExpectText(421, "4.3.2"),
                    Closed,
                ],
            )
        },
        check: |record| ensure(record.messages.is_empty(), "never finished upstream", record),
    },
    Case {
        name: "stopping_waits_for_the_reply_to_a_message_the_upstream_has",
        role: "outbound",
        sections: "",
        listener: "",
        mta: Mta::SlowFinalReply(20),
        script: |_| {
            with(
                envelope("bob@remote.test", "carol@remote.test"),
                [
                    Send(ORDINARY),
                    Wait(Duration::from_secs(5)),
                    Drain(Phase::Stopping),
                    ExpectText(250, "queued as SLOW1"),
                    ExpectText(421, "4.3.2"),
                    Closed,
                ],
            )
        },
        check: |record| ensure(record.messages.len() == 1, "delivered once", record),
    },
];

#[tokio::test(start_paused = true)]
async fn every_case_of_the_table() {
    assert!(CASES.len() >= 40, "{} cases", CASES.len());
    let mut names = std::collections::HashSet::new();
    for case in CASES {
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
