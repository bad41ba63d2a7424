//! The relay in front of a real Postfix: signing, verification, callouts,
//! client identity, pipelining, size and smuggling.

mod common;

use std::time::Duration;

use common::*;

struct Setup {
    postfix: &'static Postfix,
    proxy: Proxy,
    inbound: u16,
    outbound: u16,
}

fn setup(identity: &str, policy: &str) -> Setup {
    let postfix = Postfix::shared();
    let (inbound, outbound) = (free_port(), free_port());
    let upstream = if identity == "proxy-v2" { postfix.proxy_port } else { postfix.port };
    let config = format!(
        "{BATV_SECTION}{policy}\n{}{}",
        listener("inbound", inbound, upstream, identity, ""),
        listener("outbound", outbound, upstream, identity, "")
    );
    let proxy = Proxy::start(&config, &[inbound, outbound]);
    Setup { postfix, proxy, inbound, outbound }
}

#[test]
fn outbound_mail_arrives_signed_and_its_bounce_is_delivered() {
    let s = setup("xclient", "");
    let token = unique("outbound");
    // Outbound to a local user of the same Postfix: the sender it records is the tagged one.
    let body = message("alice@example.com", "bob@example.com", &token, "hello");
    let t = send_mail(s.outbound, "alice@example.com", &["bob@example.com"], &body);
    assert!(t.end.as_ref().unwrap().is(250), "{:?}", t.end);
    let delivered = s.postfix.delivered("bob@example.com", &token).expect("delivered to bob");
    let return_path = delivered.lines().find(|l| l.starts_with("Return-Path:")).unwrap().to_owned();
    assert!(return_path.contains("<prvs=3"), "{return_path}");
    let tagged = return_path.trim_start_matches("Return-Path: <").trim_end_matches('>').to_owned();
    assert!(tagged.ends_with("=alice@example.com"), "{tagged}");

    // The bounce of that mail comes back to the tagged address and reaches alice.
    let bounce_token = unique("bounce");
    let bounce = message("MAILER-DAEMON@remote.test", &tagged, &bounce_token, "Delivery failed");
    let t = send_mail(s.inbound, "", &[&tagged], &bounce);
    assert!(t.rcpts[0].is(250), "{:?}", t.rcpts);
    assert!(t.end.as_ref().unwrap().is(250), "{:?}", t.end);
    assert!(s.postfix.delivered("alice@example.com", &bounce_token).is_some(), "bounce not delivered");
}

#[test]
fn forged_and_expired_tags_are_refused_at_rcpt_and_untagged_at_data() {
    let s = setup("xclient", "[policy]\nuntagged_bounce = \"reject\"\n");
    let tagged = s.proxy.sign("carol@example.com");
    let forged = format!("{}000000{}", &tagged[..9], &tagged[15..]);
    let forged = if forged == tagged { format!("{}111111{}", &tagged[..9], &tagged[15..]) } else { forged };
    let expired = s.proxy.sign_on("carol@example.com", "2026-01-01");
    for address in [&forged, &expired] {
        let t = send_mail(s.inbound, "", &[address], "Subject: x\r\n\r\nx\r\n");
        assert_eq!(t.rcpts[0].code, 550, "{address}: {:?}", t.rcpts[0]);
        assert!(t.rcpts[0].text.contains("5.7.1"), "{:?}", t.rcpts[0]);
    }
    let token = unique("untagged");
    let t = send_mail(
        s.inbound,
        "",
        &["carol@example.com"],
        &message("MAILER-DAEMON@remote.test", "carol@example.com", &token, "x"),
    );
    assert!(t.rcpts[0].is(250), "untagged RCPT must be accepted for callouts: {:?}", t.rcpts[0]);
    assert_eq!(t.data.as_ref().unwrap().code, 550, "{:?}", t.data);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        s.postfix.mailbox("carol@example.com").iter().all(|m| !m.contains(&token)),
        "untagged bounce was delivered"
    );
}

#[test]
fn untagged_stage_rcpt_refuses_at_rcpt() {
    let s = setup("xclient", "[policy]\nuntagged_stage = \"rcpt\"\n");
    let t = send_mail(s.inbound, "", &["dave@example.com"], "Subject: x\r\n\r\nx\r\n");
    assert_eq!(t.rcpts[0].code, 550, "{:?}", t.rcpts[0]);
}

#[test]
fn sender_callouts_still_see_real_users() {
    let s = setup("xclient", "");
    let mut smtp = Smtp::connect(s.inbound);
    assert!(smtp.command("EHLO verifier.remote.test").is(250));
    assert!(smtp.command("MAIL FROM:<>").is(250));
    let known = smtp.command("RCPT TO:<erin@example.com>");
    assert!(known.is(250), "callout for a real user: {known:?}");
    let unknown = smtp.command("RCPT TO:<nobody-here@example.com>");
    assert_eq!(unknown.code, 550, "Postfix still rejects unknown users: {unknown:?}");
    assert!(unknown.text.contains("5.1.1"), "{unknown:?}");
    smtp.quit();
}

#[test]
fn postfix_judges_the_real_client_through_xclient_and_proxy_v2() {
    for identity in ["xclient", "proxy-v2"] {
        let s = setup(identity, "");
        // 127.0.0.3 is not in Postfix's mynetworks: relaying must be refused.
        let t = send_mail_from(s.outbound, Some("127.0.0.3"), "alice@example.com", &["someone@elsewhere.test"], "x");
        assert_eq!(t.rcpts[0].code, 554, "{identity}: {:?}", t.rcpts[0]);
        assert!(t.rcpts[0].text.contains("Relay access denied"), "{identity}: {:?}", t.rcpts[0]);
        // From 127.0.0.1 (trusted) the same relay is allowed: Postfix sees the real address.
        let t = send_mail_from(s.outbound, Some("127.0.0.1"), "alice@example.com", &["someone@elsewhere.test"], "x");
        assert!(t.rcpts[0].is(250), "{identity}: {:?}", t.rcpts[0]);
        let log = s.postfix.log();
        assert!(
            log.contains("client=unknown[127.0.0.3]") || log.contains("[127.0.0.3]"),
            "{identity}: Postfix never saw 127.0.0.3"
        );
    }
}

#[test]
fn pipelined_commands_get_every_reply_in_order() {
    let s = setup("xclient", "");
    let valid = s.proxy.sign("frank@example.com");
    let forged = format!("{}abcdef{}", &valid[..9], &valid[15..]);
    let forged = if forged == valid { format!("{}fedcba{}", &valid[..9], &valid[15..]) } else { forged };
    let unknown_user = s.proxy.sign("nobody-here@example.com");
    let mut smtp = Smtp::connect(s.inbound);
    assert!(smtp.command("EHLO client.test").text.contains("PIPELINING"));
    // Valid tag, forged tag (refused by the proxy), valid tag of an unknown user
    // (refused by Postfix), an untagged bounce recipient (deferred: one fate per
    // transaction), then DATA.
    smtp.send(format!(
        "MAIL FROM:<>\r\nRCPT TO:<{valid}>\r\nRCPT TO:<{forged}>\r\nRCPT TO:<{unknown_user}>\r\nRCPT TO:<judy@example.com>\r\nDATA\r\n"
    ));
    let replies: Vec<Reply> = (0..6).map(|_| smtp.reply()).collect();
    let codes: Vec<u16> = replies.iter().map(|r| r.code).collect();
    assert_eq!(codes, vec![250, 250, 550, 550, 452, 354], "{replies:?}");
    assert!(replies[3].text.contains("5.1.1"), "{:?}", replies[3]);
    assert!(replies[4].text.contains("separate transaction"), "{:?}", replies[4]);
    let token = unique("pipelined");
    let end = smtp.data_body(&message("MAILER-DAEMON@remote.test", &valid, &token, "x"));
    assert!(end.is(250), "{end:?}");
    smtp.quit();
    assert!(s.postfix.delivered("frank@example.com", &token).is_some());
}

#[test]
fn postfix_refuses_a_smuggled_message_through_the_proxy() {
    let s = setup("xclient", "");
    let token = unique("smuggle");
    let mut smtp = Smtp::connect(s.outbound);
    smtp.command("EHLO client.test");
    assert!(smtp.command("MAIL FROM:<grace@example.com>").is(250));
    assert!(smtp.command("RCPT TO:<heidi@example.com>").is(250));
    assert!(smtp.command("DATA").is(354));
    // The classic: \n.\n inside, then a second transaction that must not exist upstream.
    smtp.send(format!(
        "Subject: first {token}\r\n\r\nfirst\n.\nMAIL FROM:<grace@example.com>\r\nRCPT TO:<ivan@example.com>\r\nDATA\r\nSubject: smuggled {token}\r\n\r\nsmuggled\r\n.\r\n"
    ));
    let reply = smtp.reply();
    assert_eq!(reply.code, 550, "{reply:?}");
    // The session stays usable: a clean message goes through afterwards.
    let clean = token.clone() + "-clean";
    assert!(smtp.command("MAIL FROM:<grace@example.com>").is(250));
    assert!(smtp.command("RCPT TO:<heidi@example.com>").is(250));
    assert!(smtp.command("DATA").is(354));
    assert!(smtp.data_body(&message("grace@example.com", "heidi@example.com", &clean, "x")).is(250));
    smtp.quit();
    assert!(s.postfix.delivered("heidi@example.com", &clean).is_some());
    std::thread::sleep(Duration::from_secs(1));
    assert!(s.postfix.mailbox("ivan@example.com").iter().all(|m| !m.contains(&token)), "smuggled message delivered");
    assert!(
        s.postfix.mailbox("heidi@example.com").iter().all(|m| !m.contains(&format!("first {token}"))),
        "refused message delivered"
    );
}

#[test]
fn real_clients_swaks_and_python_smtplib() {
    let s = setup("xclient", "");
    let token = unique("swaks");
    let output = std::process::Command::new("swaks")
        .args([
            "--server",
            &format!("127.0.0.1:{}", s.outbound),
            "--from",
            "judy@example.com",
            "--to",
            "mallory@example.com",
        ])
        .args(["--header", &format!("Subject: {token}"), "--pipeline"])
        .output()
        .unwrap();
    assert!(output.status.success(), "swaks: {}", String::from_utf8_lossy(&output.stdout));
    let delivered = s.postfix.delivered("mallory@example.com", &token).expect("swaks mail delivered");
    assert!(delivered.contains("Return-Path: <prvs="), "{delivered}");

    let token = unique("smtplib");
    let script = format!(
        r#"
import smtplib
from email.message import EmailMessage
m = EmailMessage()
m["From"] = "oscar@example.com"; m["To"] = "peggy@example.com"; m["Subject"] = "{token}"
m.set_content("caf\u00e9 from smtplib\n.leading dot\n")
with smtplib.SMTP("127.0.0.1", {port}) as s:
    s.ehlo("python.test")
    assert s.has_extn("pipelining") and s.has_extn("8bitmime") and s.has_extn("smtputf8")
    refused = s.send_message(m, mail_options=["BODY=8BITMIME"])
    assert refused == {{}}, refused
print("sent")
"#,
        port = s.outbound
    );
    let output = std::process::Command::new("python3").arg("-c").arg(&script).output().unwrap();
    assert!(output.status.success(), "smtplib: {}", String::from_utf8_lossy(&output.stderr));
    let delivered = s.postfix.delivered("peggy@example.com", &token).expect("smtplib mail delivered");
    assert!(delivered.contains(".leading dot"), "dot-stuffing lost: {delivered}");
    assert!(delivered.contains("café"), "8-bit content altered: {delivered}");
}

#[test]
fn a_20_mb_message_streams_with_bounded_memory() {
    let s = setup("xclient", "");
    let token = unique("big");
    let mut smtp = Smtp::connect(s.outbound);
    smtp.command("EHLO client.test");
    assert!(smtp.command("MAIL FROM:<trent@example.com> SIZE=21000000").is(250));
    assert!(smtp.command("RCPT TO:<victor@example.com>").is(250));
    assert!(smtp.command("DATA").is(354));
    smtp.send(format!("From: trent@example.com\r\nSubject: {token}\r\n\r\n"));
    let line = "0123456789".repeat(7) + "\r\n";
    let chunk = line.repeat(1000);
    let mut sent = 0;
    while sent < 20_000_000 {
        smtp.send(&chunk);
        sent += chunk.len();
    }
    let end = smtp.data_body("the end");
    assert!(end.is(250), "{end:?}");
    smtp.quit();
    let rss = s.proxy.peak_rss_kib();
    assert!(rss < 40 * 1024, "proxy peak RSS {rss} KiB for a 20 MB message: not streaming?");
    let delivered = s.postfix.delivered("victor@example.com", &token).expect("20 MB message delivered");
    // Maildir stores LF line ends: 72-byte CRLF lines arrive as 71 bytes.
    assert!(delivered.len() > 19_700_000, "delivered {} bytes", delivered.len());
    assert!(delivered.trim_end().ends_with("the end"), "the message was cut");
}

#[test]
fn postfix_killed_mid_data_gives_4xx_and_the_retry_is_delivered() {
    let postfix = Postfix::start("");
    let port = free_port();
    let config = format!("{BATV_SECTION}{}", listener("outbound", port, postfix.port, "xclient", ""));
    let proxy = Proxy::start(&config, &[port]);
    let token = unique("killed");
    let mut smtp = Smtp::connect(port);
    smtp.command("EHLO client.test");
    assert!(smtp.command("MAIL FROM:<walter@example.com>").is(250));
    assert!(smtp.command("RCPT TO:<user1@example.com>").is(250));
    assert!(smtp.command("DATA").is(354));
    smtp.send(format!("Subject: {token}\r\n\r\nfirst half\r\n"));
    std::thread::sleep(Duration::from_millis(300));
    // Kill every smtpd of this instance: the upstream session dies mid-DATA.
    let etc = postfix.dir.join("etc");
    std::process::Command::new("/usr/sbin/postfix").arg("-c").arg(&etc).arg("abort").status().unwrap();
    std::process::Command::new("pkill")
        .args(["-KILL", "-f", &format!("smtpd -n 127.0.0.1:{}", postfix.port)])
        .status()
        .unwrap();
    let reply = smtp.data_body("second half");
    assert!((400..500).contains(&reply.code), "{reply:?}");
    drop(smtp);
    // The client retries later, once the MTA is back: delivered exactly once.
    std::process::Command::new("/usr/sbin/postfix").arg("-c").arg(&etc).arg("start").status().unwrap();
    assert!(wait_port(postfix.port, Duration::from_secs(15)));
    let t =
        send_mail(port, "walter@example.com", &["user1@example.com"], &format!("Subject: {token}\r\n\r\nretry\r\n"));
    assert!(t.end.as_ref().is_some_and(|r| r.is(250)), "{:?}", t.end);
    assert!(postfix.delivered("user1@example.com", &token).is_some());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(postfix.mailbox("user1@example.com").iter().filter(|m| m.contains(&token)).count(), 1);
    drop(proxy);
}

/// "What happened to this email?": the running proxy keeps each
/// transaction's verdicts, `/verdicts` serves them beside `/metrics`, and
/// `batv-proxy explain` finds them by Postfix's queue id, by recipient,
/// by client or by a bare value; nothing in them is a tag.
#[test]
fn explain_finds_what_happened_by_queue_id_recipient_and_client() {
    let metrics = free_port();
    let s = setup("xclient", &format!("[metrics]\nlisten = \"127.0.0.1:{metrics}\"\nverdicts = 50\n"));
    let token = unique("explain");
    let body = message("alice@example.com", "bob@example.com", &token, "hello");
    let sent = send_mail(s.outbound, "alice@example.com", &["bob@example.com"], &body);
    let end = sent.end.expect("DATA");
    let queue_id = end.text.split_whitespace().last().unwrap().to_owned();
    assert!(end.is(250) && end.text.contains("queued as"), "{end:?}");

    let tagged = s.proxy.sign("carol@example.com");
    let forged = format!("{}000000{}", &tagged[..9], &tagged[15..]);
    let forged = if forged == tagged { format!("{}111111{}", &tagged[..9], &tagged[15..]) } else { forged };
    let refused = send_mail(s.inbound, "", &[&forged], "Subject: x\r\n\r\nx\r\n");
    assert_eq!(refused.rcpts[0].code, 550, "{:?}", refused.rcpts);

    // By Postfix's queue id: the outbound transaction, signed, delivered.
    let (code, out, err) = s.proxy.cli(&["explain", &queue_id]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("from <alice@example.com>, signed with key 3"), "{out}");
    assert!(out.contains("to bob@example.com: outbound (signed)"), "{out}");
    assert!(out.contains(&format!("  message: queue id {queue_id}\n  reply 250")), "{out}");
    // By recipient, as a named parameter: the refused bounce and why.
    let (code, out, err) = s.proxy.cli(&["explain", &format!("rcpt={forged}")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("from <>") && out.contains("invalid (bad_signature)") && out.contains("-> 550"), "{out}");
    // By client, as JSON: both, newest first.
    let (code, out, _) = s.proxy.cli(&["explain", "--json", "client=127.0.0.1"]);
    assert_eq!(code, 0);
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    let senders: Vec<&str> =
        answer["verdicts"].as_array().unwrap().iter().map(|r| r["sender"].as_str().unwrap()).collect();
    assert_eq!(senders, ["<>", "<alice@example.com>"], "{out}");
    // The client's own (forged) recipient is there as it gave it; the tag
    // the proxy made for alice is not.
    assert!(!out.contains("=alice@example.com"), "a tag the proxy made is in the answer: {out}");
    // Nothing found: exit 1 and a word on where older verdicts are.
    let (code, out, err) = s.proxy.cli(&["explain", "nobody@nowhere.test"]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("among the 2 the proxy keeps"), "{err}");
    // A question the endpoint does not understand is a 400 with the reason.
    let (status, body) = http_get(metrics, "/verdicts?secret=1");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("unknown parameter secret"), "{body}");
    let (code, _, err) = s.proxy.cli(&["explain", "secret=1"]);
    assert_eq!(code, 2, "{err}");
}
