//! Policy settings seen from the wire, against smtp-sink as the upstream
//! (it records each envelope exactly as it received it).

mod common;

use common::*;

fn start_proxy(role: &str, sink: &Sink, policy: &str) -> (Proxy, u16) {
    let port = free_port();
    let config = format!("{BATV_SECTION}{policy}\n{}", listener(role, port, sink.port, "none", ""));
    (Proxy::start(&config, &[port]), port)
}

fn envelope(transaction: &str) -> (String, Vec<String>) {
    let mut sender = String::new();
    let mut recipients = Vec::new();
    for line in transaction.lines() {
        if let Some(rest) = line.strip_prefix("X-Mail-Args: ") {
            sender = rest.split(' ').next().unwrap_or("").trim_matches(['<', '>']).to_owned();
        } else if let Some(rest) = line.strip_prefix("X-Rcpt-Args: ") {
            recipients.push(rest.to_owned());
        }
    }
    (sender, recipients)
}

#[test]
fn monitor_mode_delivers_everything_and_marks_it() {
    let sink = Sink::start();
    let (proxy, port) = start_proxy("inbound", &sink, "[policy]\nmode = \"monitor\"\n");
    let tagged = proxy.sign("alice@example.com");
    let forged = format!("{}000000{}", &tagged[..9], &tagged[15..]);
    let forged = if forged == tagged { format!("{}111111{}", &tagged[..9], &tagged[15..]) } else { forged };
    let cases = [
        (forged.as_str(), "X-Batv-Status: invalid, bad_signature"),
        ("bob@example.com", "X-Batv-Status: missing"),
        (tagged.as_str(), "X-Batv-Status: valid"),
    ];
    for (index, (recipient, header)) in cases.iter().enumerate() {
        let subject = unique("monitored");
        let t = send_mail(port, "", &[recipient], &format!("Subject: {subject}\r\n\r\nbody\r\n"));
        assert!(t.end.as_ref().is_some_and(|r| r.is(250)), "{recipient}: {:?} {:?}", t.rcpts, t.end);
        let last = sink.find(&subject).expect("relayed");
        assert!(last.contains(header), "{recipient}: no `{header}` in\n{last}");
        let (_, recipients) = envelope(&last);
        assert!(
            recipients[0].starts_with(if index == 1 { "<bob@example.com>" } else { "<alice@example.com>" }),
            "{recipients:?}"
        );
    }
    assert!(proxy.log().contains("\"verdict\":\"invalid\""), "verdicts are logged");
    // The untagged bounce was read and judged too, without being refused.
    let log = proxy.log();
    let judged = log.lines().find(|l| l.contains("\"content verdict\"")).expect("a content verdict in monitor mode");
    assert!(judged.contains("\"monitor\":true") && judged.contains("\"verdict\":\"reject\""), "{judged}");
}

#[test]
fn grace_period_accepts_untagged_bounces_until_the_date() {
    let sink = Sink::start();
    let tomorrow = batv_proxy::listener::today().plus(1).to_string();
    let (_proxy, port) = start_proxy("inbound", &sink, &format!("[policy]\nenforce_after = \"{tomorrow}\"\n"));
    let t = send_mail(port, "", &["bob@example.com"], "Subject: old bounce\r\n\r\nx\r\n");
    assert!(t.end.as_ref().is_some_and(|r| r.is(250)), "{:?}", t.data);
    let sink2 = Sink::start();
    let today = batv_proxy::listener::today().to_string();
    let (_proxy2, port2) = start_proxy(
        "inbound",
        &sink2,
        &format!("[policy]\nuntagged_bounce = \"reject\"\nenforce_after = \"{today}\"\n"),
    );
    let t = send_mail(port2, "", &["bob@example.com"], "Subject: old bounce\r\n\r\nx\r\n");
    assert_eq!(t.data.as_ref().unwrap().code, 550);
}

#[test]
fn grace_period_in_days_counts_from_the_first_start() {
    let sink = Sink::start();
    let dir = TestDir::new("batv-proxy-test.");
    write_keys(&dir.join("keys"), 3, b"integration-test-secret");
    let port = free_port();
    let config = format!(
        "state_dir = \"state\"\n{BATV_SECTION}[policy]\nenforce_after = 7\n{}",
        listener("inbound", port, sink.port, "none", "")
    );
    let proxy = Proxy::start_in(dir, &config, &[port]);
    let t = send_mail(port, "", &["bob@example.com"], "Subject: old bounce\r\n\r\nx\r\n");
    assert!(t.end.as_ref().is_some_and(|r| r.is(250)), "{:?}", t.data);
    let first_start = std::fs::read_to_string(proxy.dir.join("state/first-start")).unwrap();
    assert_eq!(first_start.trim(), batv_proxy::listener::today().to_string());
}

#[test]
fn untagged_bounces_can_be_accepted() {
    let sink = Sink::start();
    let (_proxy, port) = start_proxy("inbound", &sink, "[policy]\nuntagged_bounce = \"accept\"\n");
    let t = send_mail(port, "MAILER-DAEMON@remote.test", &["bob@example.com"], "Subject: x\r\n\r\nx\r\n");
    assert!(t.end.as_ref().is_some_and(|r| r.is(250)));
}

#[test]
fn a_rewritten_recipient_keeps_naming_the_given_address_in_orcpt() {
    // smtp-sink offers DSN, so the proxy adds ORCPT when the client gave none.
    let sink = Sink::start();
    let (proxy, port) = start_proxy("inbound", &sink, "");
    let tagged = proxy.sign("alice@example.com");
    let t = send_mail(port, "", &[&tagged], "Subject: orcpt\r\n\r\nx\r\n");
    assert!(t.end.as_ref().is_some_and(|r| r.is(250)));
    let (_, recipients) = envelope(&sink.find("orcpt").unwrap());
    let expected = format!("<alice@example.com> ORCPT=rfc822;{}", tagged.replace('=', "+3D"));
    assert_eq!(recipients, vec![expected]);
}

#[test]
fn outbound_exempt_recipients_see_the_plain_sender() {
    let sink = Sink::start();
    let policy = "[policy]\nexempt_recipients = [\"lists.example.net\"]\nexempt_senders = [\"noreply@example.com\"]\n";
    let (_proxy, port) = start_proxy("outbound", &sink, policy);
    let send = |from: &str, to: &[&str]| {
        let subject = unique("exempt");
        let t = send_mail(port, from, to, &format!("Subject: {subject}\r\n\r\nx\r\n"));
        (t, subject)
    };
    // To an exempt list: unsigned.
    let (t, list) = send("alice@example.com", &["list@lists.example.net"]);
    assert!(t.end.as_ref().is_some_and(|r| r.is(250)));
    // To anyone else: signed.
    let (t, other) = send("alice@example.com", &["carol@remote.test"]);
    assert!(t.end.as_ref().is_some_and(|r| r.is(250)));
    // An exempt sender: never signed.
    let (t, noreply) = send("noreply@example.com", &["carol@remote.test"]);
    assert!(t.end.as_ref().is_some_and(|r| r.is(250)));
    let sender = |subject: &str| envelope(&sink.find(subject).expect("relayed")).0;
    assert_eq!(sender(&list), "alice@example.com");
    let signed = sender(&other);
    assert!(signed.starts_with("prvs=3") && signed.ends_with("=alice@example.com"), "{signed}");
    assert_eq!(sender(&noreply), "noreply@example.com");
    // Mixed recipients: the first decides, the other kind is deferred with 452.
    let (t, mixed) = send("alice@example.com", &["carol@remote.test", "list@lists.example.net", "dave@remote.test"]);
    let codes: Vec<u16> = t.rcpts.iter().map(|r| r.code).collect();
    assert_eq!(codes, vec![250, 452, 250]);
    let (sender, recipients) = envelope(&sink.find(&mixed).expect("relayed"));
    assert!(sender.starts_with("prvs="), "{sender}");
    assert_eq!(recipients.len(), 2);
}

#[test]
fn non_bounce_mail_to_a_tagged_address_is_delivered_stripped_or_refused() {
    let sink = Sink::start();
    let (proxy, port) = start_proxy("inbound", &sink, "");
    let expired = proxy.sign_on("carol@example.com", "2026-01-01");
    let t = send_mail(port, "news@remote.test", &[&expired], "Subject: newsletter\r\n\r\nx\r\n");
    assert!(t.end.as_ref().is_some_and(|r| r.is(250)));
    let (_, recipients) = envelope(&sink.wait_for(1)[0]);
    assert!(recipients[0].starts_with("<carol@example.com>"), "{recipients:?}");
    assert!(proxy.log().contains("non_bounce_strip"), "the stripping is logged");

    let sink = Sink::start();
    let (proxy, port) = start_proxy("inbound", &sink, "[policy]\nnon_bounce_invalid_tag = \"reject\"\n");
    let expired = proxy.sign_on("carol@example.com", "2026-01-01");
    let t = send_mail(port, "news@remote.test", &[&expired], "Subject: newsletter\r\n\r\nx\r\n");
    assert_eq!(t.rcpts[0].code, 550);
}

#[test]
fn subaddress_form_signs_and_both_forms_verify() {
    let sink = Sink::start();
    let port = free_port();
    let config = format!(
        "{}\n{}",
        BATV_SECTION.replace("lifetime_days = 7", "lifetime_days = 7\nsign_form = \"subaddress\""),
        listener("outbound", port, sink.port, "none", "")
    );
    let proxy = Proxy::start(&config, &[port]);
    let t = send_mail(port, "alice@example.com", &["carol@remote.test"], "Subject: x\r\n\r\nx\r\n");
    assert!(t.end.as_ref().is_some_and(|r| r.is(250)));
    let (sender, _) = envelope(&sink.wait_for(1)[0]);
    assert!(sender.starts_with("alice+prvs=3") && sender.ends_with("@example.com"), "{sender}");
    let (code, original, _) = proxy.cli(&["verify", &sender]);
    assert_eq!((code, original.as_str()), (0, "alice@example.com"));
}

#[test]
fn without_client_identity_a_received_field_names_the_client() {
    let sink = Sink::start();
    let (_proxy, port) = start_proxy("inbound", &sink, "");
    let subject = unique("received");
    let t = send_mail_from(
        port,
        Some("127.0.0.9"),
        "carol@remote.test",
        &["bob@example.com"],
        &format!("Subject: {subject}\r\n\r\nx\r\n"),
    );
    assert!(t.end.unwrap().is(250));
    let relayed = sink.find(&subject).unwrap();
    let body = relayed.split_once("\r\n\r\n").map_or(relayed.as_str(), |(_, b)| b).to_owned();
    let received = relayed.lines().find(|l| l.starts_with("Received: from client.test ([127.0.0.9])"));
    assert!(received.is_some(), "no Received field naming the client:\n{relayed}");
    assert!(relayed.contains("by proxy.example.com (batv-proxy) with ESMTP id"), "{relayed}");
    assert!(!body.is_empty());
}
