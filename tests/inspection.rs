//! `untagged_bounce = "inspect"` end to end: bounces and automatic replies
//! to untagged addresses pass only when they answer mail we sent, known from
//! the outbound ledger (a redb file or a real Redis) or the Message-ID
//! patterns; everything else is refused after DATA, and normal mail is
//! never touched.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

fn dsn(original_id: &str, to: &str) -> String {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@remote.test>\r\n\
         To: {to}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Message-ID: <bounce.{}@remote.test>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\
         \r\n\
         --B\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         The mail system could not deliver your message.\r\n\
         --B\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.remote.test\r\n\
         \r\n\
         Final-Recipient: rfc822; nobody@remote.test\r\n\
         Action: failed\r\n\
         Status: 5.1.1\r\n\
         --B\r\n\
         Content-Type: message/rfc822\r\n\
         \r\n\
         From: {to}\r\n\
         To: nobody@remote.test\r\n\
         Subject: the original\r\n\
         Message-ID: {original_id}\r\n\
         \r\n\
         original body\r\n\
         --B--\r\n",
        unique("b")
    )
}

fn vacation(in_reply_to: &str, to: &str, subject: &str) -> String {
    format!(
        "From: carol@remote.test\r\nTo: {to}\r\nSubject: {subject}\r\nAuto-Submitted: auto-replied\r\n\
         In-Reply-To: {in_reply_to}\r\nMessage-ID: <{}@remote.test>\r\n\r\nI am away until Monday.\r\n",
        unique("v")
    )
}

struct Setup {
    postfix: &'static Postfix,
    proxy: Proxy,
    inbound: u16,
    outbound: u16,
}

fn setup(ledger: &str, policy: &str) -> Setup {
    let postfix = Postfix::shared();
    let (inbound, outbound) = (free_port(), free_port());
    let config = format!(
        "state_dir = \"state\"\n{BATV_SECTION}{policy}\n{ledger}\n{}{}",
        listener("inbound", inbound, postfix.port, "xclient", ""),
        listener("outbound", outbound, postfix.port, "xclient", "")
    );
    let proxy = Proxy::start(&config, &[inbound, outbound]);
    Setup { postfix, proxy, inbound, outbound }
}

/// Sends a message through the outbound listener; returns its Message-ID.
fn send_ours(s: &Setup, from: &str, to: &str) -> String {
    let id = format!("<{}@example.com>", unique("ours"));
    let body = format!("From: {from}\r\nTo: {to}\r\nSubject: ours\r\nMessage-ID: {id}\r\n\r\nhello\r\n");
    let t = send_mail(s.outbound, from, &[to], &body);
    assert!(t.end.unwrap().is(250));
    id
}

fn wait_recorded(s: &Setup, id: &str) {
    let found = eventually(Duration::from_secs(5), || {
        s.proxy.log().contains(&format!("\"message_id\":\"{id}\"")).then_some(())
    });
    assert!(found.is_some(), "{id} was not recorded");
    // The ledger commits in batches, a moment after the message.
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn ledger_hits_pass_everything_else_is_refused_after_data() {
    let s = setup("[ledger]\nstore = \"file\"\n", "");
    let ours = send_ours(&s, "grace@example.com", "nobody-there@remote.test");
    wait_recorded(&s, &ours);

    // A DSN for mail we sent, to the untagged address: accepted and delivered.
    let token = unique("dsn-ours");
    let body = dsn(&ours, "grace@example.com").replace("the original", &token);
    let t = send_mail(s.inbound, "", &["grace@example.com"], &body);
    assert!(t.end.as_ref().unwrap().is(250), "{:?}", t.end);
    assert!(s.postfix.delivered("grace@example.com", &token).is_some());

    // A DSN for mail we never sent: refused after DATA.
    let token = unique("dsn-forged");
    let t = send_mail(
        s.inbound,
        "",
        &["grace@example.com"],
        &dsn("<never-sent@example.com>", "grace@example.com").replace("the original", &token),
    );
    assert_eq!(t.rcpts[0].code, 250, "callouts still work");
    assert_eq!(t.data.as_ref().unwrap().code, 354);
    let end = t.end.unwrap();
    assert_eq!(end.code, 550, "{end:?}");
    assert!(end.text.contains("5.7.1"));

    // A vacation reply from a real sender to a message we never sent: refused.
    let t = send_mail(
        s.inbound,
        "carol@remote.test",
        &["grace@example.com"],
        &vacation("<never-sent@example.com>", "grace@example.com", "Out of office"),
    );
    assert_eq!(t.end.unwrap().code, 550);
    // ... and to one we did send: accepted.
    let token = unique("vacation-ours");
    let t = send_mail(
        s.inbound,
        "carol@remote.test",
        &["grace@example.com"],
        &vacation(&ours, "grace@example.com", &token),
    );
    assert!(t.end.unwrap().is(250));
    assert!(s.postfix.delivered("grace@example.com", &token).is_some());

    // A normal message is never touched: delivered byte for byte.
    let token = unique("normal");
    let body = format!(
        "From: carol@remote.test\r\nTo: grace@example.com\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\nSubject: {token}\r\nMessage-ID: <{token}@remote.test>\r\n\r\nline one\r\n.dotted line\r\n\r\nlast line\r\n"
    );
    let t = send_mail(s.inbound, "carol@remote.test", &["grace@example.com"], &body);
    assert!(t.end.unwrap().is(250));
    let delivered = s.postfix.delivered("grace@example.com", &token).unwrap();
    assert!(delivered.replace("\r\n", "\n").contains(&body.replace("\r\n", "\n")), "altered:\n{delivered}");
    std::thread::sleep(Duration::from_secs(1));
    let mailbox = s.postfix.mailbox("grace@example.com").join("\n");
    assert!(!mailbox.contains("never-sent"), "a refused message was delivered");
    let log = s.proxy.log();
    assert!(log.contains("\"rule\":\"ledger\"") && log.contains("\"rule\":\"not_ours\""), "decisions name their rule");
}

#[test]
fn read_receipts_and_patterns() {
    let s = setup("", "[policy.message_id_patterns]\n\"example.com\" = [\"*@mail.example.com\"]\n");
    let mdn = |original: &str, subject: &str| {
        format!(
            "From: heidi@remote.test\r\nTo: ivan@example.com\r\nSubject: {subject}\r\nMessage-ID: <{}@remote.test>\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=disposition-notification; boundary=\"R\"\r\n\r\n\
             --R\r\nContent-Type: text/plain\r\n\r\nYour message was displayed.\r\n\
             --R\r\nContent-Type: message/disposition-notification\r\n\r\nReporting-UA: mua.remote.test\r\n\
             Final-Recipient: rfc822; heidi@remote.test\r\nOriginal-Message-ID: {original}\r\nDisposition: manual-action/MDN-sent-manually; displayed\r\n\
             --R--\r\n",
            unique("mdn")
        )
    };
    // A read receipt from a null sender, for a message written by our mail system.
    let token = unique("mdn-ours");
    let t = send_mail(s.inbound, "", &["ivan@example.com"], &mdn("<123.abc@mail.example.com>", &token));
    assert!(t.end.unwrap().is(250), "the false positive other BATV products have");
    assert!(s.postfix.delivered("ivan@example.com", &token).is_some());
    let t = send_mail(s.inbound, "", &["ivan@example.com"], &mdn("<123.abc@spammer.test>", "x"));
    assert_eq!(t.end.unwrap().code, 550);
}

/// A real redis-server on loopback, stopped on drop.
struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    fn start() -> Redis {
        provision();
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server");
        assert!(wait_port(port, Duration::from_secs(5)), "redis did not start");
        Redis { port, child }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_shared_redis_ledger_and_what_happens_when_it_is_gone() {
    let redis = Redis::start();
    let ledger = format!("[ledger]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:{}/0\"\n", redis.port);
    // Two proxy hosts share the ledger: one sends, the other receives the bounce.
    let sender = setup(&ledger, "");
    let receiver = setup(&ledger, "");
    let ours = send_ours(&sender, "judy@example.com", "nobody-there@remote.test");
    wait_recorded(&sender, &ours);
    let t = send_mail(receiver.inbound, "", &["judy@example.com"], &dsn(&ours, "judy@example.com"));
    assert!(t.end.unwrap().is(250), "a bounce for mail sent through the other proxy");
    let t = send_mail(receiver.inbound, "", &["judy@example.com"], &dsn("<never@example.com>", "judy@example.com"));
    assert_eq!(t.end.unwrap().code, 550);

    drop(redis);
    // Redis gone: the bounce cannot be checked and gets a 451 (the sender retries);
    // outbound mail and normal inbound mail keep flowing.
    let t = send_mail(receiver.inbound, "", &["judy@example.com"], &dsn(&ours, "judy@example.com"));
    let end = t.end.unwrap();
    assert_eq!(end.code, 451, "{end:?}");
    send_ours(&sender, "judy@example.com", "nobody-there@remote.test");
    let t = send_mail(receiver.inbound, "carol@remote.test", &["judy@example.com"], "Subject: hi\r\n\r\nnormal\r\n");
    assert!(t.end.unwrap().is(250));
    assert!(
        eventually(Duration::from_secs(5), || receiver.proxy.log().contains("ledger cannot answer").then_some(()))
            .is_some()
    );
}

#[test]
fn the_ledger_file_survives_kill_minus_9() {
    let postfix = Postfix::shared();
    let dir = TestDir::new("ledger-kill.");
    write_keys(&dir.join("keys"), 3, b"integration-test-secret");
    let (inbound, outbound) = (free_port(), free_port());
    let config = format!(
        "state_dir = \"state\"\n{BATV_SECTION}[ledger]\nstore = \"file\"\n{}{}",
        listener("inbound", inbound, postfix.port, "xclient", ""),
        listener("outbound", outbound, postfix.port, "xclient", "")
    );
    let config_path = dir.write("batv-proxy.toml", &config);
    let start = || {
        let child = Running::spawn(Command::new(BIN).args(["run", "--config"]).arg(&config_path).stderr(Stdio::null()));
        assert!(wait_port(outbound, Duration::from_secs(10)));
        child
    };
    let mut proxy = start();
    // A recorded id, given time to be committed.
    let first = format!("<{}@example.com>", unique("kept"));
    let body = format!("Subject: x\r\nMessage-ID: {first}\r\n\r\nx\r\n");
    assert!(send_mail(outbound, "judy@example.com", &["nobody@remote.test"], &body).end.unwrap().is(250));
    std::thread::sleep(Duration::from_millis(500));
    // Traffic in flight while the process is killed.
    let writer = std::thread::spawn(move || {
        for n in 0..500 {
            let body = format!("Subject: x\r\nMessage-ID: <burst{n}@example.com>\r\n\r\nx\r\n");
            let sent =
                std::panic::catch_unwind(|| send_mail(outbound, "judy@example.com", &["nobody@remote.test"], &body));
            if sent.is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    proxy.signal("KILL");
    let _ = proxy.wait();
    let _ = writer.join();
    // Restarted on the same file: it opens, and what was committed is there.
    let mut proxy = start();
    let t = send_mail(inbound, "", &["judy@example.com"], &dsn(&first, "judy@example.com"));
    assert!(t.end.unwrap().is(250), "the ledger lost a committed id or did not reopen");
    proxy.signal("TERM");
    assert!(proxy.wait().success());
}

#[test]
fn inspect_command_prints_the_json_interface() {
    let dir = TestDir::new("inspect.");
    let file = dir.write("bounce.eml", &dsn("<orig.1@example.com>", "alice@example.com"));
    let output = Command::new(BIN).arg("inspect").arg(&file).output().unwrap();
    assert!(output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["kind"], "dsn");
    assert_eq!(json["original_message_id"], "<orig.1@example.com>");
    assert!(json["reason"].as_str().is_some_and(|r| !r.is_empty()));
    let mut child =
        Command::new(BIN).args(["inspect", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"From: a@b.c\r\nSubject: hi\r\n\r\nhello\r\n").unwrap();
    let output = child.wait_with_output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["kind"], "none");
    assert!(json["original_message_id"].is_null());
}

#[test]
fn grace_period_and_unverified_recipients_let_automatic_replies_through() {
    let tomorrow = batv_proxy::listener::today().plus(1).to_string();
    let s = setup("", &format!("[policy]\nenforce_after = \"{tomorrow}\"\n"));
    let token = unique("grace-vacation");
    let t = send_mail(
        s.inbound,
        "carol@remote.test",
        &["oscar@example.com"],
        &vacation("<before-deployment@example.com>", "oscar@example.com", &token),
    );
    assert!(t.end.unwrap().is(250), "an answer to mail sent before deployment, during the grace period");
    assert!(s.proxy.log().contains("\"grace\":true"));

    let s = setup("", "[policy]\nunverified_recipients = [\"peggy@example.com\"]\n");
    let t = send_mail(
        s.inbound,
        "carol@remote.test",
        &["peggy@example.com"],
        &vacation("<unknown@example.com>", "peggy@example.com", "away"),
    );
    assert!(t.end.unwrap().is(250), "unverified recipients take automatic replies too");
    let t = send_mail(
        s.inbound,
        "carol@remote.test",
        &["oscar@example.com"],
        &vacation("<unknown@example.com>", "oscar@example.com", "away"),
    );
    assert_eq!(t.end.unwrap().code, 550);
}
