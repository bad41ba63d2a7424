//! Messages per second `dsn::inspect` handles: a typical 20 KB delivery
//! status notification (Postfix's multipart/report with the original
//! attached), a plain-text qmail bounce, a German prose bounce that only
//! the generic recognizer takes, and a normal message of the same size,
//! which the proxy inspects too when it arrives at an untagged address.
//!
//! Run with `cargo bench --bench inspect`; criterion reports elements/s.

use std::hint::black_box;

use batv_proxy::dsn::{Kind, inspect};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const SIZE: usize = 20 * 1024;

/// Filler text for message bodies, cut to `length` bytes.
fn body(length: usize) -> String {
    let line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n";
    line.repeat(length / line.len() + 1)[..length].to_owned()
}

fn original_message(body_length: usize) -> String {
    format!(
        "Return-Path: <alice@example.com>\r\n\
         Received: from laptop.example.com (laptop.example.com [203.0.113.77])\r\n\
         \tby mx.example.com (Postfix) with ESMTPSA id 4F2A11C0123\r\n\
         \tfor <bob@example.org>; Mon, 12 Jan 2026 09:14:01 +0100 (CET)\r\n\
         DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=mail;\r\n\
         \tt=1768205641; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n\
         \th=Date:From:To:Subject:From;\r\n\
         \tb=Xx0ZfF7m3kQq6bW2u9yL1eN4rT8sV5cH2jP0aD7gK3nM6wE9xR1tY4uI8oB5vC2lZ\r\n\
         Date: Mon, 12 Jan 2026 09:14:01 +0100\r\n\
         From: Alice <alice@example.com>\r\n\
         To: Bob <bob@example.org>\r\n\
         Subject: Minutes of Thursday's meeting\r\n\
         Message-ID: <20260112081401.GA4242@mx.example.com>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n{}",
        body(body_length)
    )
}

/// A Postfix delivery status notification of about [`SIZE`] bytes.
fn delivery_status_notification() -> String {
    let head = "Return-Path: <>\r\n\
        Received: by mx.example.net (Postfix) id 8C1D21C0456; Mon, 12 Jan 2026 09:14:03 +0100 (CET)\r\n\
        Date: Mon, 12 Jan 2026 09:14:03 +0100 (CET)\r\n\
        From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n\
        Subject: Undelivered Mail Returned to Sender\r\n\
        To: alice@example.com\r\n\
        Auto-Submitted: auto-replied\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: multipart/report; report-type=delivery-status;\r\n\
        \tboundary=\"4F2A11C0123.1768205643/mx.example.net\"\r\n\
        Message-Id: <20260112081403.8C1D21C0456@mx.example.net>\r\n\
        \r\n\
        This is a MIME-encapsulated message.\r\n\
        \r\n\
        --4F2A11C0123.1768205643/mx.example.net\r\n\
        Content-Description: Notification\r\n\
        Content-Type: text/plain; charset=us-ascii\r\n\
        \r\n\
        This is the mail system at host mx.example.net.\r\n\
        \r\n\
        I'm sorry to have to inform you that your message could not\r\n\
        be delivered to one or more recipients. It's attached below.\r\n\
        \r\n\
        \x20                  The mail system\r\n\
        \r\n\
        <bob@example.org>: host mx.example.org[192.0.2.25] said: 550 5.1.1 <bob@example.org>:\r\n\
        \x20   Recipient address rejected: User unknown (in reply to RCPT TO command)\r\n\
        \r\n\
        --4F2A11C0123.1768205643/mx.example.net\r\n\
        Content-Description: Delivery report\r\n\
        Content-Type: message/delivery-status\r\n\
        \r\n\
        Reporting-MTA: dns; mx.example.net\r\n\
        X-Postfix-Queue-ID: 4F2A11C0123\r\n\
        Arrival-Date: Mon, 12 Jan 2026 09:14:01 +0100 (CET)\r\n\
        \r\n\
        Final-Recipient: rfc822; bob@example.org\r\n\
        Action: failed\r\n\
        Status: 5.1.1\r\n\
        Remote-MTA: dns; mx.example.org\r\n\
        Diagnostic-Code: smtp; 550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown\r\n\
        \r\n\
        --4F2A11C0123.1768205643/mx.example.net\r\n\
        Content-Description: Undelivered Message\r\n\
        Content-Type: message/rfc822\r\n\
        \r\n";
    let tail = "\r\n--4F2A11C0123.1768205643/mx.example.net--\r\n";
    let skeleton = head.len() + original_message(0).len() + tail.len();
    format!("{head}{}{tail}", original_message(SIZE - skeleton))
}

fn qmail_bounce() -> String {
    let head = "From: MAILER-DAEMON@mail.example.net\r\n\
        To: alice@example.com\r\n\
        Subject: failure notice\r\n\
        \r\n\
        Hi. This is the qmail-send program at mail.example.net.\r\n\
        I'm afraid I wasn't able to deliver your message to the following addresses.\r\n\
        This is a permanent error; I've given up. Sorry it didn't work out.\r\n\
        \r\n\
        <bob@example.org>:\r\n\
        Sorry, no mailbox here by that name. (#5.1.1)\r\n\
        \r\n\
        --- Below this line is a copy of the message.\r\n\
        \r\n";
    format!("{head}{}", original_message(SIZE - head.len() - original_message(0).len()))
}

/// A bounce no MTA-specific format matches: German prose from the mail
/// system, the copy pasted below a separator.
fn prose_bounce() -> String {
    let head = "From: Mail Delivery System <MAILER-DAEMON@mail.example.net>\r\n\
        To: alice@example.com\r\n\
        Subject: Unzustellbar: Minutes of Thursday's meeting\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\
        Content-Transfer-Encoding: 8bit\r\n\
        \r\n\
        Ihre Nachricht konnte nicht zugestellt werden.\r\n\
        Die Zustellung an folgende Empfänger ist fehlgeschlagen:\r\n\
        \r\n\
        \x20 bob@example.org\r\n\
        \r\n\
        ------ Original message ------\r\n\
        \r\n";
    format!("{head}{}", original_message(SIZE - head.len() - original_message(0).len()))
}

fn bench(criterion: &mut Criterion) {
    let cases = [
        ("dsn_20k", delivery_status_notification(), Kind::Dsn),
        ("qmail_20k", qmail_bounce(), Kind::Dsn),
        ("prose_20k", prose_bounce(), Kind::Dsn),
        ("normal_20k", original_message(SIZE - original_message(0).len()), Kind::None),
    ];
    let mut group = criterion.benchmark_group("inspect");
    group.throughput(Throughput::Elements(1));
    for (name, message, kind) in &cases {
        assert_eq!(message.len(), SIZE, "{name}");
        let inspection = inspect(message.as_bytes());
        assert_eq!(inspection.kind, *kind, "{name}: {}", inspection.reason);
        if *kind != Kind::None {
            assert_eq!(
                inspection.original_message_id.as_deref(),
                Some("<20260112081401.GA4242@mx.example.com>"),
                "{name}"
            );
        }
        group.bench_function(*name, |bencher| bencher.iter(|| inspect(black_box(message.as_bytes()))));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
