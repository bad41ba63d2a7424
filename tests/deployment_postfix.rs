//! docs/postfix.md, end to end: Postfix instances built from the guide's
//! snippet files (docs/postfix/*) and batv-proxy running the guide's TOML,
//! with only paths and ports substituted.

mod common;

use std::time::Duration;

use common::postfix_snippets::*;
use common::*;

const PASSWORD: &str = "alice-password";

/// The proxy running a guide's TOML, with paths and ports substituted.
fn start_proxy(toml: &str, replacements: &[(&str, String)], ports: &[u16]) -> Proxy {
    let dir = TestDir::new("batv-proxy-guide.");
    write_keys(&dir.join("keys"), 3, b"deployment-guide-secret");
    let mut all: Vec<(&str, String)> = vec![
        ("state_dir = \"/var/lib/batv-proxy\"", format!("state_dir = \"{}\"", dir.join("state").display())),
        ("key_file = \"/var/lib/batv-proxy/keys\"", format!("key_file = \"{}\"", dir.join("keys").display())),
    ];
    all.extend(replacements.iter().cloned());
    let config = substitute(toml, &all);
    Proxy::start_in(dir, &config, ports)
}

/// The envelope sender smtp-sink recorded for the message with `token`.
fn sink_sender(sink: &Sink, token: &str) -> String {
    let dump = sink.find(token).unwrap_or_else(|| panic!("{token} never reached the sink"));
    dump.lines()
        .find_map(|line| line.strip_prefix("X-Mail-Args: <"))
        .and_then(|rest| rest.split('>').next())
        .unwrap_or_else(|| panic!("no sender in\n{dump}"))
        .to_owned()
}

/// The guide's untag-main.cf lines, with its regexp table written into `dir`.
fn untag_main(dir: &TestDir) -> String {
    let table = dir.write("batv-untag.regexp", &repository_file("docs/postfix/batv-untag.regexp"));
    substitute(
        &repository_file("docs/postfix/untag-main.cf"),
        &[("/etc/postfix/batv-untag.regexp", table.display().to_string())],
    )
}

struct Front {
    sink: Sink,
    pki: TestPki,
    _maps: TestDir,
    postfix: SnippetPostfix,
    _auth: FakeDovecotAuth,
    proxy: Proxy,
    inbound: u16,
    submission: u16,
    submissions: u16,
}

/// Topology A: Postfix from front-main.cf and `master` on loopback ports,
/// batv-proxy from batv-proxy-front.toml with `identity` on 25/587/465.
/// Postfix sends other domains' mail to smtp-sink.
fn front(master: &str, identity: &str) -> Front {
    front_relaying_to(master, identity, None)
}

/// [`front`], with other domains' mail relayed to `relay` (a port on
/// 127.0.0.1) instead of smtp-sink when given. Postfix's host name is the
/// guide's MX name, mx.example.com.
fn front_relaying_to(master: &str, identity: &str, relay: Option<u16>) -> Front {
    let sink = Sink::start();
    let pki = TestPki::new();
    let (smtp_at, smtp_port) = loopback_port();
    let (submission_at, submission_port) = loopback_port();
    let master = substitute(
        &repository_file(master),
        &[("127.0.0.1:10025 ", format!("{smtp_at} ")), ("127.0.0.1:10587 ", format!("{submission_at} "))],
    );
    let maps = TestDir::new("postfix-maps.");
    let postfix = SnippetPostfix::start(
        &format!("myhostname = mx.example.com\nrelayhost = [127.0.0.1]:{}", relay.unwrap_or(sink.port)),
        &[repository_file("docs/postfix/front-main.cf"), untag_main(&maps)],
        &[master],
    );
    postfix.wait(smtp_port);
    postfix.wait(submission_port);
    let auth = postfix.start_auth("alice@example.com", PASSWORD);
    let (inbound, submission, submissions, metrics) = (free_port(), free_port(), free_port(), free_port());
    // The guide starts in monitor mode; these tests are the switch to enforcement.
    let mut toml = repository_file("docs/postfix/batv-proxy-front.toml");
    assert!(toml.contains("mode = \"monitor\""), "the guide's snippet starts in monitor mode");
    toml = toml.replace("mode = \"monitor\"", "mode = \"enforce\"");
    if identity != "xclient" {
        assert_eq!(toml.matches("client_identity = \"xclient\"").count(), 3, "three listeners use XCLIENT");
        toml = toml.replace("client_identity = \"xclient\"", &format!("client_identity = \"{identity}\""));
    }
    let certificate = "/etc/letsencrypt/live/mx.example.com/fullchain.pem";
    let key = "/etc/letsencrypt/live/mx.example.com/privkey.pem";
    let proxy = start_proxy(
        &toml,
        &[
            ("\"0.0.0.0:25\"", format!("\"127.0.0.1:{inbound}\"")),
            ("\"0.0.0.0:587\"", format!("\"127.0.0.1:{submission}\"")),
            ("\"0.0.0.0:465\"", format!("\"127.0.0.1:{submissions}\"")),
            ("\"127.0.0.1:10025\"", format!("\"{smtp_at}\"")),
            ("\"127.0.0.1:10587\"", format!("\"{submission_at}\"")),
            ("\"127.0.0.1:9325\"", format!("\"127.0.0.1:{metrics}\"")),
            (certificate, pki.path("mx.example.com.pem")),
            (key, pki.path("mx.example.com.key")),
        ],
        &[inbound, submission, submissions, metrics],
    );
    Front { sink, pki, _maps: maps, postfix, _auth: auth, proxy, inbound, submission, submissions }
}

/// A Python smtplib session through the submission listener (STARTTLS) or
/// the submissions listener (implicit TLS), from `source`.
fn submit(front: &Front, implicit: bool, login: bool, source: &str, to: &str, token: &str) -> String {
    let connect = if implicit {
        format!(
            "s = smtplib.SMTP_SSL('127.0.0.1', {}, source_address=('{source}', 0), context=context)",
            front.submissions
        )
    } else {
        format!(
            "s = smtplib.SMTP('127.0.0.1', {}, source_address=('{source}', 0))\ns.starttls(context=context)",
            front.submission
        )
    };
    let login = if login { format!("s.login('alice@example.com', '{PASSWORD}')") } else { String::new() };
    python(&format!(
        r#"
import smtplib, ssl
context = ssl.create_default_context(cafile="{ca}")
{connect}
s.ehlo("laptop.example.com")
{login}
try:
    s.sendmail("alice@example.com", ["{to}"], "From: alice@example.com\r\nTo: {to}\r\nSubject: {token}\r\nMessage-ID: <{token}@laptop.example.com>\r\n\r\nhello\r\n")
    print("sent")
except smtplib.SMTPRecipientsRefused as refused:
    code, text = refused.recipients["{to}"]
    print("refused", code, text.decode())
s.quit()
"#,
        ca = front.pki.path("ca.pem"),
    ))
}

fn topology_a(master: &str, identity: &str) {
    let front = front(master, identity);

    // Clients must use TLS on 587 (require = true): MAIL in the clear is refused.
    let mut clear = Smtp::connect(front.submission);
    clear.command("EHLO laptop.example.com");
    assert_eq!(clear.command("MAIL FROM:<alice@example.com>").code, 530, "{identity}");
    clear.quit();

    // An authenticated user on 587 (STARTTLS) and 465 (implicit TLS), from an
    // address Postfix does not trust: the mail leaves with a tagged sender.
    let remote_token = unique("front-remote");
    let out = submit(&front, false, true, "127.0.0.3", "carol@remote.test", &remote_token);
    assert!(out.contains("sent"), "{identity}: {out}");
    let sender = sink_sender(&front.sink, &remote_token);
    assert!(sender.starts_with("prvs=3") && sender.ends_with("=alice@example.com"), "{identity}: {sender}");
    let (code, original, error) = front.proxy.cli(&["verify", &sender]);
    assert_eq!((code, original.as_str()), (0, "alice@example.com"), "{identity}: {error}");

    let local_token = unique("front-local");
    let out = submit(&front, true, true, "127.0.0.3", "bob@example.com", &local_token);
    assert!(out.contains("sent"), "{identity}: {out}");
    let delivered = front.postfix.delivered("bob@example.com", &local_token).expect("delivered to bob");
    let return_path = delivered.lines().find(|l| l.starts_with("Return-Path:")).unwrap().to_owned();
    let tagged = return_path.trim_start_matches("Return-Path: <").trim_end_matches('>').to_owned();
    assert!(tagged.starts_with("prvs=3") && tagged.ends_with("=alice@example.com"), "{identity}: {return_path}");

    // Without AUTH, the same client may not relay: Postfix judges it, not the proxy.
    let out = submit(&front, false, false, "127.0.0.3", "carol@remote.test", &unique("front-unauth"));
    assert!(out.contains("refused 554"), "{identity}: {out}");

    // The bounce of alice's mail comes back to the tagged address on port 25
    // and is delivered to alice, tag stripped.
    let bounce_token = unique("front-bounce");
    let bounce = message("MAILER-DAEMON@remote.test", &tagged, &bounce_token, "Delivery failed");
    let t = send_mail_from(front.inbound, Some("127.0.0.3"), "", &[&tagged], &bounce);
    assert!(t.end.as_ref().is_some_and(|r| r.is(250)), "{identity}: {:?} {:?}", t.rcpts, t.end);
    let bounced = front.postfix.delivered("alice@example.com", &bounce_token).expect("bounce delivered to alice");
    assert!(bounced.contains("Delivered-To: alice@example.com"), "{identity}: {bounced}");

    // A forged bounce (tag altered) is refused at RCPT.
    let digit = if &tagged[9..10] == "0" { "1" } else { "0" };
    let forged = format!("{}{digit}{}", &tagged[..9], &tagged[10..]);
    let forged_token = unique("front-forged");
    let t = send_mail_from(front.inbound, Some("127.0.0.3"), "", &[&forged], &forged_token);
    assert_eq!(t.rcpts[0].code, 550, "{identity}: {:?}", t.rcpts);
    assert!(t.rcpts[0].text.contains("5.7.1"), "{identity}: {:?}", t.rcpts);
    // An untagged bounce is accepted at RCPT, so sender callouts work, and
    // judged after DATA (untagged_bounce = "inspect", the default): this one
    // names no message at all, so it is refused at the end of DATA and
    // Postfix never gets it.
    let untagged_token = unique("front-untagged");
    let t = send_mail_from(
        front.inbound,
        Some("127.0.0.3"),
        "",
        &["alice@example.com"],
        &message("MAILER-DAEMON@remote.test", "alice@example.com", &untagged_token, "x"),
    );
    assert!(t.rcpts[0].is(250), "{identity}: untagged RCPT must pass for callouts: {:?}", t.rcpts);
    assert_eq!(t.data.as_ref().map(|r| r.code), Some(354), "{identity}: {:?}", t.data);
    let end = t.end.expect("the end of DATA");
    assert_eq!(end.code, 550, "{identity}: {end:?}");
    assert!(end.text.contains("5.7.1 Bounce refused"), "{identity}: {end:?}");
    let verdict = content_verdict(&front.proxy, "<>", "").expect("a content verdict line");
    assert_eq!(
        (verdict["verdict"].as_str(), verdict["rule"].as_str()),
        (Some("reject"), Some("no_original_message_id"))
    );

    // Relaying through port 25: refused for 127.0.0.3 (not in mynetworks),
    // allowed for 127.0.0.1 (in mynetworks). Postfix sees each real address.
    let t = send_mail_from(front.inbound, Some("127.0.0.3"), "alice@example.com", &["dave@remote.test"], "x");
    assert_eq!(t.rcpts[0].code, 554, "{identity}: {:?}", t.rcpts);
    assert!(t.rcpts[0].text.contains("Relay access denied"), "{identity}: {:?}", t.rcpts);
    let trusted_token = unique("front-trusted");
    let t = send_mail_from(
        front.inbound,
        Some("127.0.0.1"),
        "alice@example.com",
        &["dave@remote.test"],
        &format!("Subject: {trusted_token}\r\n\r\nx\r\n"),
    );
    assert!(t.rcpts[0].is(250), "{identity}: {:?}", t.rcpts);
    assert!(front.sink.find(&trusted_token).is_some());
    let log = front.postfix.log();
    assert!(log.contains("client=unknown[127.0.0.3]"), "{identity}: Postfix never saw 127.0.0.3:\n{log}");
    assert!(log.contains("sasl_username=alice@example.com"), "{identity}: no SASL login in\n{log}");
    assert!(!front.proxy.log().contains(PASSWORD), "the password reached the proxy's log");
    let mailbox = front.postfix.mailbox("alice@example.com").join("\n");
    assert!(!mailbox.contains(&untagged_token), "{identity}: a refused bounce was delivered");
}

/// The last `content verdict` line of `proxy` for `sender` whose
/// `original_message_id` is `original`.
fn content_verdict(proxy: &Proxy, sender: &str, original: &str) -> Option<serde_json::Value> {
    proxy.log().lines().rev().filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok()).find(|line| {
        line["message"] == "content verdict" && line["sender"] == sender && line["original_message_id"] == original
    })
}

#[test]
fn topology_a_with_xclient_signs_verifies_and_postfix_judges_the_real_client() {
    topology_a("docs/postfix/front-master.cf", "xclient");
}

#[test]
fn topology_a_with_the_proxy_protocol_signs_verifies_and_postfix_judges_the_real_client() {
    topology_a("docs/postfix/front-proxy-protocol-master.cf", "proxy-v2");
}

/// A remote site's Postfix at `at` that accepts mail for any user of
/// remote.test and bounces it later, for none exists (the way backscatter
/// is made), refuses to relay anywhere else, and sends mail for our
/// domains, bounces included, to batv-proxy's inbound listener.
fn remote_site(at: &str, port: u16, inbound: u16) -> SnippetPostfix {
    let remote = SnippetPostfix::start(
        &format!(
            "myhostname = mx.remote.test\n\
             mydestination = remote.test\n\
             local_recipient_maps =\n\
             virtual_mailbox_domains =\n\
             smtpd_relay_restrictions = reject_unauth_destination\n\
             relayhost = [127.0.0.1]:{inbound}"
        ),
        &[],
        &[format!("{at} inet n - n - - smtpd\n")],
    );
    remote.wait(port);
    remote
}

#[test]
fn topology_a_judges_real_postfix_bounces_to_untagged_addresses_by_the_ledger_and_postfixs_message_ids() {
    let (remote_at, remote_port) = loopback_port();
    let front = front_relaying_to("docs/postfix/front-master.cf", "xclient", Some(remote_port));
    let remote = remote_site(&remote_at, remote_port, front.inbound);

    // alice's mail from 587: signed, its Message-ID recorded in the ledger,
    // relayed by Postfix to the remote site, which bounces it to the tagged
    // sender. The bounce passes by its tag and reaches alice.
    let signed_token = unique("ledger-signed");
    let out = submit(&front, false, true, "127.0.0.3", "gone@remote.test", &signed_token);
    assert!(out.contains("sent"), "{out}");
    let ours = format!("<{signed_token}@laptop.example.com>");
    let recorded = eventually(Duration::from_secs(10), || {
        front.proxy.log().contains(&format!("\"message_id\":\"{ours}\"")).then_some(())
    });
    assert!(recorded.is_some(), "the outbound listener did not record {ours}:\n{}", front.proxy.log());
    let bounce = front.postfix.delivered("alice@example.com", &signed_token).unwrap_or_else(|| {
        panic!("no bounce to the tagged sender:\n{}\n--- remote ---\n{}", front.postfix.log(), remote.log())
    });
    assert!(bounce.contains("Undelivered Mail Returned to Sender"), "{bounce}");
    assert!(bounce.contains("Return-Path: <>"), "{bounce}");

    // A remote server that refuses alice's mail at RCPT: the front Postfix
    // makes the bounce itself, to the tagged sender, and delivers it without
    // batv-proxy; the guide's untag-main.cf gives it alice's own address.
    let refused_token = unique("postfix-own-bounce");
    let out = submit(&front, false, true, "127.0.0.3", "someone@elsewhere.test", &refused_token);
    assert!(out.contains("sent"), "{out}");
    let bounce = front
        .postfix
        .delivered("alice@example.com", &refused_token)
        .unwrap_or_else(|| panic!("Postfix's own bounce did not reach alice:\n{}", front.postfix.log()));
    assert!(bounce.contains("Relay access denied") && bounce.contains("Delivered-To: alice@example.com"), "{bounce}");

    // The remote site bounces the same message to alice's untagged address
    // (sites that bounce to the From: address do, and a forwarder may lose
    // the tag): the bounce names a Message-ID in the ledger, so it passes.
    let ledger_token = unique("ledger-untagged");
    remote.sendmail(
        "alice@example.com",
        "gone@remote.test",
        &format!("From: alice@example.com\r\nTo: gone@remote.test\r\nSubject: {ledger_token}\r\nMessage-ID: {ours}\r\n\r\nhello\r\n"),
    );
    let bounce =
        front.postfix.delivered("alice@example.com", &ledger_token).expect("the untagged bounce named by the ledger");
    assert!(bounce.contains("Undelivered Mail Returned to Sender") && bounce.contains(&ours), "{bounce}");
    let verdict = content_verdict(&front.proxy, "<>", &ours).expect("a content verdict for the ledger's Message-ID");
    assert_eq!(
        (
            verdict["kind"].as_str(),
            verdict["recognizer"].as_str(),
            verdict["verdict"].as_str(),
            verdict["rule"].as_str()
        ),
        (Some("dsn"), Some("rfc3464"), Some("accept"), Some("ledger")),
        "{verdict}"
    );

    // Mail from the sendmail command leaves the front Postfix directly,
    // untagged, with a Message-ID Postfix wrote: <...@mx.example.com>. Its
    // bounce comes back to the untagged sender and passes by the guide's
    // message_id_patterns.
    let pattern_token = unique("pattern-untagged");
    front.postfix.sendmail(
        "bob@example.com",
        "lost@remote.test",
        &format!("Subject: {pattern_token}\r\n\r\nfrom cron\r\n"),
    );
    let bounce = front.postfix.delivered("bob@example.com", &pattern_token).expect("the bounce of sendmail's mail");
    assert!(bounce.contains("Undelivered Mail Returned to Sender"), "{bounce}");
    let verdict = front
        .proxy
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["message"] == "content verdict" && line["rule"] == "message_id_pattern")
        .expect("a bounce accepted by message_id_patterns");
    let original = verdict["original_message_id"].as_str().unwrap();
    assert!(original.ends_with("@mx.example.com>") && bounce.contains(original), "{verdict}");

    // Backscatter: spam that forged alice's address, bounced by the remote
    // site to her untagged address. It names a Message-ID we never wrote:
    // accepted at RCPT, refused at the end of DATA, and the remote Postfix
    // logs why.
    let spam_token = unique("backscatter");
    let spam_id = format!("<{spam_token}@spammer.test>");
    remote.sendmail(
        "alice@example.com",
        "nosuchuser@remote.test",
        &format!("From: alice@example.com\r\nTo: nosuchuser@remote.test\r\nSubject: {spam_token}\r\nMessage-ID: {spam_id}\r\n\r\nbuy now\r\n"),
    );
    let refused = eventually(Duration::from_secs(15), || {
        let log = remote.log();
        log.lines()
            .find(|line| line.contains("550 5.7.1 Bounce refused") && line.contains("end of DATA"))
            .map(str::to_owned)
    });
    assert!(refused.is_some(), "the remote site's bounce was not refused after DATA:\n{}", remote.log());
    let verdict = content_verdict(&front.proxy, "<>", &spam_id).expect("a content verdict for the backscatter");
    assert_eq!(
        (verdict["verdict"].as_str(), verdict["rule"].as_str()),
        (Some("reject"), Some("not_ours")),
        "{verdict}"
    );
    let mailbox = front.postfix.mailbox("alice@example.com").join("\n");
    assert!(!mailbox.contains(&spam_token), "the backscatter was delivered");
}

#[test]
fn topology_a_without_client_identity_is_an_open_relay_as_the_guide_warns() {
    let front = front("docs/postfix/front-master.cf", "none");
    // Every client looks like 127.0.0.1, which is in mynetworks.
    let t = send_mail_from(front.inbound, Some("127.0.0.3"), "spammer@remote.test", &["victim@remote.test"], "x");
    assert!(t.rcpts[0].is(250), "expected the open relay the guide warns about: {:?}", t.rcpts);
    assert!(front.proxy.log().contains("OPEN RELAY"), "no startup warning:\n{}", front.proxy.log());
    assert!(!front.postfix.log().contains("[127.0.0.3]"), "Postfix cannot know the real client without XCLIENT");
}

#[test]
fn without_smtpd_authorized_xclient_hosts_every_session_gets_421_4_3_5() {
    // docs/operations.md, Troubleshooting: Postfix without front-main.cf.
    let (smtp_at, smtp_port) = loopback_port();
    let (submission_at, _) = loopback_port();
    let master = substitute(
        &repository_file("docs/postfix/front-master.cf"),
        &[("127.0.0.1:10025 ", format!("{smtp_at} ")), ("127.0.0.1:10587 ", format!("{submission_at} "))],
    );
    let postfix = SnippetPostfix::start("", &[], &[master]);
    postfix.wait(smtp_port);
    let port = free_port();
    let proxy =
        Proxy::start(&format!("{BATV_SECTION}{}", listener("inbound", port, smtp_port, "xclient", "")), &[port]);
    let mut smtp = Smtp::connect(port);
    let reply = smtp.command("EHLO client.test");
    assert_eq!(reply.code, 421, "{reply:?}");
    assert!(reply.text.contains("4.3.5"), "{reply:?}");
    assert!(proxy.log().contains("smtpd_authorized_xclient_hosts"), "the log must name the fix:\n{}", proxy.log());
    assert!(!postfix.log().contains("client=unknown[127.0.0.1]"), "no mail may pass anonymously");
}

#[test]
fn topology_b_content_filter_signs_submitted_and_sendmail_mail_once_without_loops() {
    let sink = Sink::start();
    let (submission_at, submission_port) = loopback_port();
    let (filter_at, filter_port) = loopback_port();
    let (reinject_at, reinject_port) = loopback_port();
    let master = substitute(
        &repository_file("docs/postfix/content-filter-master.cf"),
        &[
            ("submission inet", format!("{submission_at} inet")),
            ("batv:[127.0.0.1]:10026", format!("batv:[127.0.0.1]:{filter_port}")),
            ("127.0.0.1:10027 ", format!("{reinject_at} ")),
        ],
    );
    let maps = TestDir::new("postfix-maps.");
    let postfix =
        SnippetPostfix::start(&format!("relayhost = [127.0.0.1]:{}", sink.port), &[untag_main(&maps)], &[master]);
    postfix.wait(submission_port);
    postfix.wait(reinject_port);
    let metrics = free_port();
    let proxy = start_proxy(
        &repository_file("docs/postfix/batv-proxy-content-filter.toml"),
        &[
            ("\"127.0.0.1:10026\"", format!("\"{filter_at}\"")),
            ("\"127.0.0.1:10027\"", format!("\"{reinject_at}\"")),
            ("\"127.0.0.1:9325\"", format!("\"127.0.0.1:{metrics}\"")),
        ],
        &[filter_port, metrics],
    );
    // The warning the guide tells readers to expect.
    assert!(proxy.log().contains("client_identity = \\\"none\\\""), "{}", proxy.log());

    // Through the submission service.
    let submitted = unique("filter-submission");
    let t = send_mail(
        submission_port,
        "alice@example.com",
        &["carol@remote.test"],
        &format!("Subject: {submitted}\r\n\r\nx\r\n"),
    );
    assert!(t.end.as_ref().is_some_and(|r| r.is(250)), "{:?}", t.end);
    // Through the sendmail command (pickup).
    let picked = unique("filter-pickup");
    postfix.sendmail("bob@example.org", "dave@remote.test", &format!("Subject: {picked}\r\n\r\nx\r\n"));
    // A foreign sender passes the filter unsigned.
    let foreign = unique("filter-foreign");
    postfix.sendmail("erin@remote.test", "frank@remote.test", &format!("Subject: {foreign}\r\n\r\nx\r\n"));

    let sender = sink_sender(&sink, &submitted);
    assert!(sender.starts_with("prvs=3") && sender.ends_with("=alice@example.com"), "{sender}");
    let sender = sink_sender(&sink, &picked);
    assert!(sender.starts_with("prvs=3") && sender.ends_with("=bob@example.org"), "{sender}");
    assert_eq!(sink_sender(&sink, &foreign), "erin@remote.test");

    // Nothing loops: each message reached the sink once, went through the
    // filter once, and the queue is empty.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sink.transactions().len(), 3, "{:#?}", sink.transactions());
    let log = postfix.log();
    let filtered = log.matches(&format!("relay=127.0.0.1[127.0.0.1]:{filter_port}")).count();
    assert_eq!(filtered, 3, "each message passes the filter once:\n{log}");
    assert!(!log.contains("loops back to myself"), "{log}");
    let signed = proxy.log().matches("\"sender signed\"").count();
    assert_eq!(signed, 2, "{}", proxy.log());
    let queue = eventually(Duration::from_secs(10), || {
        let queue = postfix.queue();
        queue.contains("Mail queue is empty").then_some(queue)
    });
    assert!(queue.is_some(), "mail stuck in the queue:\n{}", postfix.queue());
}
