//! The upstream failing at each phase, TLS gates and drain.

use std::time::Duration;

use super::super::Step::{Closed, Drain, Expect, ExpectText, Send, Wait};
use super::super::fake_mta::Mta;
use super::{Case, ORDINARY, ensure, envelope, line, nothing, with};
use crate::session::Phase;

pub(super) const CASES: &[Case] = &[
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
