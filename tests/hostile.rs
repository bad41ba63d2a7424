//! Hostile input: every SMTP smuggling variant against real Postfix, and
//! the oddities scanners send. Each has a defined reply and leaves the
//! proxy serving.

mod common;

use std::time::Duration;

use common::fake_upstream::{FakeUpstream, Fault};
use common::*;

fn proxy_to(upstream: u16, role: &str, identity: &str) -> (Proxy, u16) {
    let port = free_port();
    let config = format!("{BATV_SECTION}{}", listener(role, port, upstream, identity, ""));
    (Proxy::start(&config, &[port]), port)
}

/// SEC Consult's end-of-data variants (2023), plus NUL tricks.
const VARIANTS: &[(&str, &str)] = &[
    ("lf_dot_lf", "\n.\n"),
    ("lf_dot_crlf", "\n.\r\n"),
    ("crlf_dot_lf", "\r\n.\n"),
    ("cr_dot_cr", "\r.\r"),
    ("cr_dot_crlf", "\r.\r\n"),
    ("crlf_dot_cr", "\r\n.\r"),
    ("lf_dot_cr", "\n.\r"),
    ("crlf_nul_dot_crlf", "\r\n\0.\r\n"),
    ("crlf_dot_nul_crlf", "\r\n.\0\r\n"),
];

#[test]
fn no_smuggling_variant_produces_a_second_message_in_postfix() {
    let postfix = Postfix::shared();
    let (proxy, port) = proxy_to(postfix.port, "outbound", "xclient");
    for (name, variant) in VARIANTS {
        let token = unique(name);
        let mut smtp = Smtp::connect(port);
        smtp.command("EHLO client.test");
        assert!(smtp.command("MAIL FROM:<peggy@example.com>").is(250));
        assert!(smtp.command("RCPT TO:<trent@example.com>").is(250));
        assert!(smtp.command("DATA").is(354));
        smtp.send(format!(
            "Subject: carrier {token}\r\n\r\ncarrier{variant}MAIL FROM:<peggy@example.com>\r\nRCPT TO:<victor@example.com>\r\nDATA\r\n\
             Subject: smuggled {token}\r\n\r\nsmuggled\r\n.\r\n"
        ));
        let reply = smtp.reply();
        assert!(reply.is(250) || reply.code == 550, "{name}: {reply:?}");
        // Whatever the client sends next is a command of this session, not of another message.
        let next = smtp.command("NOOP");
        assert!(next.is(250), "{name}: session not sane: {next:?}");
        smtp.quit();
        std::thread::sleep(Duration::from_millis(700));
        let victor = postfix.mailbox("victor@example.com");
        assert!(!victor.iter().any(|m| m.contains(&token)), "{name}: a smuggled message reached victor");
        let carriers = postfix.mailbox("trent@example.com").iter().filter(|m| m.contains(&token)).count();
        assert!(carriers <= 1, "{name}: {carriers} messages");
        if reply.is(250) {
            assert_eq!(carriers, 1, "{name}: accepted but not delivered");
        }
    }
    assert!(proxy.log().contains("bare_lf") && proxy.log().contains("bare_cr"));
}

#[test]
fn garbage_before_ehlo_and_invalid_utf8_addresses_get_defined_replies() {
    let fake = FakeUpstream::start(Fault::None);
    let (_proxy, port) = proxy_to(fake.port, "outbound", "none");
    let mut smtp = Smtp::connect(port);
    smtp.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\xff\xfe\r\n");
    assert_eq!(smtp.reply().code, 500);
    smtp.send(b"\xc3\x28\xa0\xa1 HELO\r\n");
    assert_eq!(smtp.reply().code, 500);
    assert!(smtp.command("EHLO client.test").is(250));
    smtp.send(b"MAIL FROM:<\xff\xfe@example.com> SMTPUTF8\r\n");
    let reply = smtp.reply();
    assert_eq!(reply.code, 553, "{reply:?}");
    assert!(reply.text.contains("5.6.7"));
    assert!(smtp.command("MAIL FROM:<josé@example.com> SMTPUTF8").is(250));
    smtp.send(b"RCPT TO:<\xe9t\xe9@example.org>\r\n");
    assert_eq!(smtp.reply().code, 553);
    assert!(smtp.command("RCPT TO:<zoë@example.org>").is(250));
    assert!(smtp.command("DATA").is(354));
    assert!(smtp.data_body("Subject: utf8\r\n\r\nok\r\n").is(250));
    let record = fake.record();
    assert!(
        record.commands.iter().any(|c| c.starts_with("MAIL FROM:<prvs=") && c.contains("=josé@example.com>")),
        "{:?}",
        record.commands
    );
}

#[test]
fn a_thousand_recipients_pipelined() {
    let fake = FakeUpstream::start(Fault::None);
    let (_proxy, port) = proxy_to(fake.port, "outbound", "none");
    let mut smtp = Smtp::connect(port);
    smtp.command("EHLO client.test");
    let mut batch = String::from("MAIL FROM:<alice@example.com>\r\n");
    for n in 0..1001 {
        batch.push_str(&format!("RCPT TO:<r{n}@remote.test>\r\n"));
    }
    batch.push_str("DATA\r\n");
    smtp.send(batch);
    assert!(smtp.reply().is(250));
    let codes: Vec<u16> = (0..1001).map(|_| smtp.reply().code).collect();
    assert!(codes[..1000].iter().all(|c| *c == 250));
    assert_eq!(codes[1000], 452, "the 1001st recipient is over the default limit");
    assert!(smtp.reply().is(354));
    assert!(smtp.data_body("Subject: many\r\n\r\nx\r\n").is(250));
}

#[test]
fn megabyte_header_lines_and_deeply_nested_bounces() {
    let postfix = Postfix::shared();
    let port = free_port();
    let config = format!(
        "state_dir = \"state\"\n{BATV_SECTION}[ledger]\nstore = \"file\"\n{}{}",
        listener("inbound", port, postfix.port, "xclient", ""),
        listener("outbound", free_port(), postfix.port, "xclient", "")
    );
    let proxy = Proxy::start(&config, &[port]);
    // A 1 MB header line in a normal message: relayed.
    let token = unique("longheader");
    let body = format!("Subject: {token}\r\nX-Long: {}\r\n\r\nbody\r\n", "a".repeat(1 << 20));
    let t = send_mail(port, "carol@remote.test", &["walter@example.com"], &body);
    assert!(t.end.unwrap().is(250));
    // A bounce nested 5000 message/rfc822 levels deep: judged, refused, no crash.
    let mut nested = String::from("Subject: core\r\n\r\ncore\r\n");
    for _ in 0..5000 {
        nested = format!("Content-Type: message/rfc822\r\n\r\n{nested}");
    }
    let bounce = format!(
        "From: MAILER-DAEMON@remote.test\r\nSubject: failure\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"X\"\r\n\r\n--X\r\n{nested}\r\n--X--\r\n"
    );
    let t = send_mail(port, "", &["walter@example.com"], &bounce);
    assert_eq!(t.end.unwrap().code, 550);
    // Still serving.
    let t = send_mail(port, "carol@remote.test", &["walter@example.com"], "Subject: after\r\n\r\nx\r\n");
    assert!(t.end.unwrap().is(250));
    assert!(proxy.peak_rss_kib() < 64 * 1024, "peak RSS {} KiB", proxy.peak_rss_kib());
    assert!(postfix.delivered("walter@example.com", &token).is_some());
}
