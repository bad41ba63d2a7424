//! Every limit has a default and a reply; each is hit here.

mod common;

use std::time::Duration;

use common::fake_upstream::{FakeUpstream, Fault};
use common::*;

fn proxy(upstream: u16, extra: &str) -> (Proxy, u16) {
    let port = free_port();
    let config = format!("{BATV_SECTION}{}", listener("outbound", port, upstream, "none", extra));
    (Proxy::start(&config, &[port]), port)
}

#[test]
fn over_long_command_lines_get_500_and_the_session_goes_on() {
    let fake = FakeUpstream::start(Fault::None);
    let (_proxy, port) = proxy(fake.port, "max_command_line = 600");
    let mut smtp = Smtp::connect(port);
    smtp.command("EHLO client.test");
    let reply = smtp.command(&format!("NOOP {}", "x".repeat(5000)));
    assert_eq!(reply.code, 500, "{reply:?}");
    assert!(reply.text.contains("too long"), "{reply:?}");
    assert!(smtp.command("NOOP").is(250));
    assert!(!fake.record().commands.iter().any(|c| c.len() > 600), "an over-long line reached the upstream");
}

#[test]
fn recipients_beyond_the_limit_get_452() {
    let fake = FakeUpstream::start(Fault::None);
    let (_proxy, port) = proxy(fake.port, "max_recipients = 3");
    let mut smtp = Smtp::connect(port);
    smtp.command("EHLO client.test");
    assert!(smtp.command("MAIL FROM:<bob@remote.test>").is(250));
    for n in 0..3 {
        assert!(smtp.command(&format!("RCPT TO:<r{n}@remote.test>")).is(250));
    }
    let reply = smtp.command("RCPT TO:<r4@remote.test>");
    assert_eq!(reply.code, 452, "{reply:?}");
    assert!(reply.text.contains("4.5.3"));
    assert_eq!(fake.record().commands.iter().filter(|c| c.starts_with("RCPT")).count(), 3);
}

#[test]
fn messages_over_the_size_limit_get_552_while_streaming() {
    let fake = FakeUpstream::start(Fault::None);
    let (_proxy, port) = proxy(fake.port, "max_message_size = 10000");
    let mut smtp = Smtp::connect(port);
    let ehlo = smtp.command("EHLO client.test");
    assert!(ehlo.text.contains("SIZE 10000"), "{ehlo:?}");
    // Declared too big: refused at MAIL.
    assert_eq!(smtp.command("MAIL FROM:<bob@remote.test> SIZE=20000").code, 552);
    // Undeclared: refused at the end of DATA, never finished upstream.
    assert!(smtp.command("MAIL FROM:<bob@remote.test>").is(250));
    assert!(smtp.command("RCPT TO:<carol@remote.test>").is(250));
    assert!(smtp.command("DATA").is(354));
    let reply = smtp.data_body(&format!("Subject: big\r\n\r\n{}", "y".repeat(100) + &"\r\nz".repeat(10_000)));
    assert_eq!(reply.code, 552, "{reply:?}");
    // The session goes on, on a fresh upstream session.
    assert!(smtp.command("MAIL FROM:<bob@remote.test>").is(250));
    assert!(smtp.command("RCPT TO:<carol@remote.test>").is(250));
    assert!(smtp.command("DATA").is(354));
    assert!(smtp.data_body("Subject: small\r\n\r\nok\r\n").is(250));
    let record = fake.record();
    assert_eq!(record.messages.len(), 1);
    assert!(String::from_utf8_lossy(&record.messages[0]).contains("small"));
}

#[test]
fn connection_limits_answer_421() {
    let fake = FakeUpstream::start(Fault::None);
    let (_proxy, port) = proxy(fake.port, "max_connections = 2\nmax_connections_per_ip = 2");
    // The startup probe's session may still hold a slot for a moment.
    let (first, _second) = eventually(Duration::from_secs(5), || {
        let (first, second) = (Smtp::connect(port), Smtp::connect(port));
        (first.greeting.is(220) && second.greeting.is(220)).then_some((first, second))
    })
    .expect("two sessions within the limit of two");
    let mut third = Smtp::connect(port);
    assert_eq!(third.greeting.code, 421, "{:?}", third.greeting);
    assert!(third.greeting.text.contains("4.7.0"));
    assert!(third.closed_within(Duration::from_secs(5)));
    drop(first);
    let fourth = eventually(Duration::from_secs(5), || {
        let smtp = Smtp::connect(port);
        smtp.greeting.is(220).then_some(smtp)
    });
    assert!(fourth.is_some(), "a freed slot was not reused");
}

#[test]
fn per_client_limits_answer_421_to_that_client_only() {
    let fake = FakeUpstream::start(Fault::None);
    let (_proxy, port) = proxy(fake.port, "max_connections_per_ip = 1");
    let first = eventually(Duration::from_secs(5), || {
        let smtp = Smtp::connect_from(port, Some("127.0.0.5"));
        smtp.greeting.is(220).then_some(smtp)
    })
    .unwrap();
    assert!(first.greeting.is(220));
    let second = Smtp::connect_from(port, Some("127.0.0.5"));
    assert_eq!(second.greeting.code, 421, "{:?}", second.greeting);
    let other = Smtp::connect_from(port, Some("127.0.0.6"));
    assert!(other.greeting.is(220), "{:?}", other.greeting);
}

#[test]
fn too_many_errors_close_the_session() {
    let fake = FakeUpstream::start(Fault::None);
    let (_proxy, port) = proxy(fake.port, "max_errors = 3");
    let mut smtp = Smtp::connect(port);
    assert_eq!(smtp.command("BOGUS").code, 500);
    assert_eq!(smtp.command("BOGUS").code, 500);
    let last = smtp.command("BOGUS");
    assert_eq!(last.code, 500);
    let closing = smtp.reply();
    assert_eq!(closing.code, 421, "{closing:?}");
    assert!(smtp.closed_within(Duration::from_secs(5)));
}

#[test]
fn bare_line_endings_in_commands_are_refused() {
    let fake = FakeUpstream::start(Fault::None);
    let (_proxy, port) = proxy(fake.port, "");
    let mut smtp = Smtp::connect(port);
    let ehlo = smtp.command("EHLO client.test");
    assert!(ehlo.is(250), "{ehlo:?}");
    smtp.send("NOOP\n");
    let reply = smtp.reply();
    assert_eq!(reply.code, 500, "{reply:?}");
    smtp.send("NOOP\rRSET\r\n");
    let reply = smtp.reply();
    assert_eq!(reply.code, 500, "{reply:?}");
    assert!(smtp.command("NOOP").is(250));
    assert!(!fake.record().commands.iter().any(|c| c.contains("RSET")), "a smuggled command reached the upstream");
}

#[test]
fn client_side_extensions_that_would_spoof_identity_are_refused() {
    let fake = FakeUpstream::start(Fault::None);
    let (_proxy, port) = proxy(fake.port, "");
    let mut smtp = Smtp::connect(port);
    let ehlo = smtp.command("EHLO client.test");
    assert!(!ehlo.text.contains("XCLIENT") && !ehlo.text.contains("CHUNKING"), "{ehlo:?}");
    assert_eq!(smtp.command("XCLIENT ADDR=10.0.0.1").code, 502);
    assert_eq!(smtp.command("XFORWARD ADDR=10.0.0.1").code, 502);
    assert_eq!(smtp.command("BDAT 10 LAST").code, 502);
    assert!(!fake.record().commands.iter().any(|c| c.starts_with("XCLIENT") || c.starts_with("XFORWARD")));
}

#[test]
fn only_allowed_clients_are_served() {
    let fake = FakeUpstream::start(Fault::None);
    let (_proxy, port) = proxy(fake.port, "allowed_clients = [\"127.0.0.1\", \"127.0.1.0/24\"]");
    assert!(Smtp::connect_from(port, Some("127.0.0.1")).greeting.is(220));
    assert!(Smtp::connect_from(port, Some("127.0.1.77")).greeting.is(220));
    let mut refused = Smtp::connect_from(port, Some("127.0.0.8"));
    assert_eq!(refused.greeting.code, 554, "{:?}", refused.greeting);
    assert!(refused.greeting.text.contains("5.7.1"));
    assert!(refused.closed_within(Duration::from_secs(5)));
}
