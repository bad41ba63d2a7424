//! Outbound signing: which senders are signed, held MAIL, no tag in a reply.

use super::super::Step::{Expect, ExpectText, ExpectWithout, Send};
use super::super::fake_mta::Mta;
use super::{Case, ORDINARY, ensure, envelope, line, with};

pub(super) const CASES: &[Case] = &[
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
];
