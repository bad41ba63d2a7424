//! The dialogue itself: commands, their order, limits and timeouts.

use super::super::Step::{Closed, Expect, ExpectText, ExpectWithout, Send};
use super::super::fake_mta::Mta;
use super::{Case, ensure, envelope, line, nothing, with};

pub(super) const CASES: &[Case] = &[
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
];
