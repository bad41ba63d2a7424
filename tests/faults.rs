//! Faults on either side: the client always gets a defined reply, and never
//! a 250 for mail the upstream did not accept.

mod common;

use std::time::{Duration, Instant};

use common::fake_upstream::{FakeUpstream, Fault};
use common::*;

fn proxy(upstream: u16, extra: &str) -> (Proxy, u16) {
    let port = free_port();
    let config = format!("{BATV_SECTION}{}", listener("outbound", port, upstream, "none", extra));
    (Proxy::start(&config, &[port]), port)
}

fn body(size: usize) -> String {
    let mut text = String::from("Subject: big\r\n\r\n");
    while text.len() < size {
        text.push_str("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdef\r\n");
    }
    text
}

#[test]
fn unreachable_upstream_gets_421_and_close() {
    let (_proxy, port) = proxy(free_port(), "");
    let mut smtp = Smtp::connect(port);
    assert_eq!(smtp.greeting.code, 421, "{:?}", smtp.greeting);
    assert!(smtp.greeting.text.contains("4.4.0"), "{:?}", smtp.greeting);
    assert!(smtp.closed_within(Duration::from_secs(5)));
}

#[test]
fn silent_upstream_gets_421_after_the_upstream_timeout() {
    let fake = FakeUpstream::start(Fault::StallGreeting);
    let (_proxy, port) = proxy(fake.port, "upstream_timeout = \"1s\"");
    let started = Instant::now();
    let smtp = Smtp::connect(port);
    assert_eq!(smtp.greeting.code, 421, "{:?}", smtp.greeting);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn garbage_from_upstream_gets_421() {
    let fake = FakeUpstream::start(Fault::GarbageEhlo);
    let (_proxy, port) = proxy(fake.port, "");
    let mut smtp = Smtp::connect(port);
    assert!(smtp.greeting.is(220));
    let reply = smtp.command("EHLO client.test");
    assert_eq!(reply.code, 421, "{reply:?}");
    assert!(reply.text.contains("4.4.2"), "{reply:?}");
    assert!(smtp.closed_within(Duration::from_secs(5)));
}

fn start_data(port: u16) -> Smtp {
    let mut smtp = Smtp::connect(port);
    assert!(smtp.command("EHLO client.test").is(250));
    assert!(smtp.command("MAIL FROM:<bob@remote.test>").is(250));
    assert!(smtp.command("RCPT TO:<carol@remote.test>").is(250));
    assert!(smtp.command("DATA").is(354));
    smtp
}

#[test]
fn upstream_reset_mid_data_gets_421_not_250() {
    let fake = FakeUpstream::start(Fault::ResetMidData(2000));
    let (_proxy, port) = proxy(fake.port, "");
    let mut smtp = start_data(port);
    let reply = smtp.data_body(&body(200_000));
    // 421 when the write fails, 451 when the loss shows only at the final reply
    // (the kernel may have buffered the rest): either way a 4.4.2, never a 250.
    assert!(matches!(reply.code, 421 | 451), "{reply:?}");
    assert!(reply.text.contains("4.4.2"), "{reply:?}");
    assert!(fake.record().messages.is_empty());
}

#[test]
fn no_final_reply_after_data_gets_451() {
    for fault in [Fault::NoFinalReply, Fault::CloseAfterData] {
        let fake = FakeUpstream::start(fault);
        let (_proxy, port) = proxy(fake.port, "upstream_data_timeout = \"1s\"");
        let mut smtp = start_data(port);
        let reply = smtp.data_body(&body(1000));
        assert_eq!(reply.code, 451, "{fault:?}: {reply:?}");
        assert!(reply.text.contains("4.4.2"), "{reply:?}");
    }
}

#[test]
fn the_upstreams_refusal_is_relayed() {
    let fake = FakeUpstream::start(Fault::RefuseData(554));
    let (_proxy, port) = proxy(fake.port, "");
    let mut smtp = start_data(port);
    let reply = smtp.data_body(&body(1000));
    assert_eq!(reply.code, 554, "{reply:?}");
}

#[test]
fn a_slow_upstream_still_works() {
    let fake = FakeUpstream::start(Fault::Slow(Duration::from_millis(150)));
    let (_proxy, port) = proxy(fake.port, "");
    let mut smtp = start_data(port);
    let reply = smtp.data_body(&body(1000));
    assert!(reply.is(250), "{reply:?}");
    assert_eq!(fake.record().messages.len(), 1);
}

#[test]
fn a_client_gone_mid_data_leaves_no_message_upstream() {
    let fake = FakeUpstream::start(Fault::None);
    let (proxy, port) = proxy(fake.port, "");
    let mut smtp = start_data(port);
    smtp.send(body(50_000));
    drop(smtp);
    std::thread::sleep(Duration::from_millis(500));
    assert!(fake.record().messages.is_empty(), "a partial message was completed upstream");
    // The proxy is still serving.
    let mut again = start_data(port);
    assert!(again.data_body(&body(100)).is(250));
    assert_eq!(fake.record().messages.len(), 1);
    drop(proxy);
}

#[test]
fn a_stalled_client_is_timed_out_with_421() {
    let fake = FakeUpstream::start(Fault::None);
    let (_proxy, port) = proxy(fake.port, "command_timeout = \"1s\"\ndata_timeout = \"1s\"");
    let mut smtp = Smtp::connect(port);
    smtp.send("EHLO slow");
    let reply = smtp.reply();
    assert_eq!(reply.code, 421, "{reply:?}");
    // Stalling inside DATA: the upstream never gets a complete message.
    let mut smtp = start_data(port);
    smtp.send("Subject: half\r\n");
    let reply = smtp.reply();
    assert_eq!(reply.code, 421, "{reply:?}");
    assert!(fake.record().messages.is_empty());
}

#[test]
fn xclient_falls_back_to_ehlo_when_the_upstream_wants_it_first() {
    let fake = FakeUpstream::start(Fault::XclientAfterEhlo);
    let port = free_port();
    let config = format!("{BATV_SECTION}{}", listener("outbound", port, fake.port, "xclient", ""));
    let _proxy = Proxy::start(&config, &[port]);
    // The first session learns the attributes; later ones try XCLIENT first,
    // are told 503 by this upstream, and fall back to EHLO then XCLIENT.
    for _ in 0..3 {
        let t = send_mail(port, "alice@example.com", &["carol@remote.test"], "Subject: x\r\n\r\nx\r\n");
        assert!(t.end.unwrap().is(250));
    }
    let commands = fake.record().commands;
    let xclients = commands.iter().filter(|c| c.starts_with("XCLIENT ADDR=127.0.0.1")).count();
    assert!(xclients >= 5, "{commands:?}");
    assert_eq!(fake.record().messages.len(), 3);
}

#[test]
fn an_upstream_that_stops_reading_cannot_hold_the_session() {
    let fake = FakeUpstream::start(Fault::StallData);
    let (_proxy, port) = proxy(fake.port, "upstream_timeout = \"1s\"");
    let mut smtp = start_data(port);
    // Far more than the socket buffers hold: the proxy's writes upstream block.
    let started = Instant::now();
    let reply = smtp.data_body(&body(20_000_000));
    assert_eq!(reply.code, 421, "{reply:?}");
    assert!(reply.text.contains("4.4.2"), "{reply:?}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn an_upstream_that_times_out_an_idle_session_is_reported_to_the_client() {
    let fake = FakeUpstream::start(Fault::IdleTimeout);
    let (_proxy, port) = proxy(fake.port, "");
    let mut smtp = Smtp::connect(port);
    assert!(smtp.command("EHLO client.test").is(250));
    let started = Instant::now();
    let notice = smtp.reply();
    assert_eq!(notice.code, 421, "{notice:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(smtp.closed_within(Duration::from_secs(5)));
}

/// Every ERROR line about an upstream that will not take XCLIENT names the
/// session it ended.
#[test]
fn xclient_refusals_are_logged_with_the_session() {
    let fake = FakeUpstream::start(Fault::None);
    let port = free_port();
    let config = format!("{BATV_SECTION}{}", listener("inbound", port, fake.port, "xclient", ""));
    let proxy = Proxy::start(&config, &[port]);
    let mut smtp = Smtp::connect(port);
    let reply = smtp.command("EHLO client.test");
    assert_eq!(reply.code, 421, "{reply:?}");
    let log = eventually(Duration::from_secs(5), || {
        let log = proxy.log();
        (log.matches("\"level\":\"ERROR\"").count() >= 2).then_some(log)
    })
    .expect("two ERROR lines");
    for line in log.lines().filter(|l| l.contains("\"level\":\"ERROR\"")) {
        assert!(line.contains("\"session\":\""), "an ERROR line without its session: {line}");
    }
}
