//! Inbound verdicts, the actions that soften them, and exemptions.

use super::super::Step::{Expect, ExpectText, Line, Send};
use super::super::fake_mta::Mta;
use super::{Case, DSN_OURS, DSN_UNKNOWN, ORDINARY, VACATION, ensure, envelope, line, with};

pub(super) const CASES: &[Case] = &[
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
];
