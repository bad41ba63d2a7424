//! No way around the judge (DESIGN.md, principle 7): every spelling of
//! one of our mailboxes that the MTA routes to it is judged as ours, a
//! failing tag is judged like no tag, a tag the proxy made never reaches a
//! client, no client byte changes a header the proxy wrote, and no end of
//! data that a lenient MTA would see passes the proxy.

mod common;

use std::time::Duration;

use common::fake_upstream::{FakeUpstream, Fault};
use common::*;

/// Spellings of alice@example.com to try. Which of them Postfix really
/// delivers to her is measured, not assumed.
const SPELLINGS: &[&str] = &[
    "alice@example.com",
    "ALICE@EXAMPLE.COM",
    "alice@Example.Com.",
    "\"alice\"@example.com",
    "alice%example.com@localhost",
    "alice%example.com@LOCALHOST",
    "alice%example.com@mx.example.net",
    "alice%example.com@localhost.example.net",
    "alice%example.com@[127.0.0.1]",
    "alice%example.com.@localhost",
    "example.com!alice@localhost",
    "example.com!alice@mx.example.net",
    "example.com!alice@[127.0.0.1]",
    "\"alice@example.com\"@localhost",
    "\"alice@example.com\"@[127.0.0.1]",
    "\"alice%example.com\"@mx.example.net",
    "alice%example.com%localhost@localhost",
    "alice%example.com%mx.example.net@[127.0.0.1]",
    "localhost!example.com!alice@localhost",
    "example.com!alice%localhost@mx.example.net",
    "@mx.example.net:alice@example.com",
    "@localhost,@mx.example.net:alice%example.com@localhost",
    "alice%example.com@[IPv6:::1]",
];

/// Postfix as installed, as far as address rewriting goes: its own names
/// in mydestination, the percent hack and bang paths on (the defaults).
fn default_rewriting_postfix() -> Postfix {
    Postfix::start(
        "mydestination = $myhostname, localhost.$mydomain, localhost\n\
         allow_percent_hack = yes\n\
         swap_bangpath = yes\n\
         resolve_dequoted_address = yes\n",
    )
}

fn bounce_to(token: &str) -> String {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@remote.test>\r\nSubject: Undelivered Mail Returned to Sender {token}\r\n\
         Message-ID: <{token}@remote.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.remote.test\r\n\r\n\
         Final-Recipient: rfc822; nobody@remote.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         --B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: alice@example.com\r\nTo: nobody@remote.test\r\n\
         Message-ID: <forged.{token}@example.com>\r\n--B--\r\n"
    )
}

fn auto_reply_to(token: &str) -> String {
    format!(
        "From: carol@remote.test\r\nSubject: Out of office {token}\r\nAuto-Submitted: auto-replied\r\n\
         In-Reply-To: <forged.{token}@example.com>\r\nMessage-ID: <{token}@remote.test>\r\n\r\nI am away.\r\n"
    )
}

/// Every spelling Postfix delivers to alice, sent as an untagged bounce
/// and as an automatic reply through the inbound listener: none arrives.
#[test]
fn address_spelling_matrix_against_postfix_default_rewriting() {
    let postfix = default_rewriting_postfix();
    // What Postfix itself does with each spelling.
    let mut direct = Vec::new();
    for spelling in SPELLINGS {
        let token = unique("direct");
        let mut smtp = Smtp::connect(postfix.port);
        smtp.command("EHLO client.test");
        smtp.command("MAIL FROM:<carol@remote.test>");
        let accepted = smtp.command(&format!("RCPT TO:<{spelling}>")).is(250)
            && smtp.command("DATA").is(354)
            && smtp.data_body(&format!("Subject: {token}\r\n\r\nx\r\n")).is(250);
        smtp.quit();
        direct.push((*spelling, token, accepted));
    }
    let delivered_now = || {
        let mailbox = postfix.mailbox("alice@example.com").join("\n");
        direct
            .iter()
            .filter(|(_, token, _)| mailbox.contains(token.as_str()))
            .map(|(s, _, _)| *s)
            .collect::<Vec<&str>>()
    };
    // Accepted spellings are delivered within seconds, or bounced: wait
    // until all are in, or until no more arrive for three seconds.
    let accepted = direct.iter().filter(|(_, _, accepted)| *accepted).count();
    let (mut count, mut changed) = (0, std::time::Instant::now());
    let _ = eventually(Duration::from_secs(20), || {
        let now = delivered_now().len();
        if now != count {
            (count, changed) = (now, std::time::Instant::now());
        }
        (now == accepted || (now > 0 && changed.elapsed() > Duration::from_secs(3))).then_some(())
    });
    let delivered = delivered_now();
    eprintln!(
        "Postfix accepts {accepted} and delivers {} of {} spellings to alice@example.com: {delivered:#?}",
        delivered.len(),
        SPELLINGS.len()
    );
    for known in [
        "alice%example.com@localhost",
        "example.com!alice@localhost",
        "alice%example.com@[127.0.0.1]",
        "alice%example.com@mx.example.net",
    ] {
        assert!(delivered.contains(&known), "{known}: Postfix no longer delivers it; the matrix proves nothing");
    }

    let inbound = free_port();
    // Default settings: every spelling Postfix delivers holds an address
    // of ours, which the proxy follows whatever the outer domain.
    let config = format!("{BATV_SECTION}{}", listener("inbound", inbound, postfix.port, "xclient", ""));
    let proxy = Proxy::start(&config, &[inbound]);
    // A control: a bounce to a valid tag is still delivered.
    let control = unique("control");
    let tagged = proxy.sign("alice@example.com");
    assert!(send_mail(inbound, "", &[&tagged], &bounce_to(&control)).end.unwrap().is(250));
    let mut outcomes = Vec::new();
    for spelling in &delivered {
        for (kind, sender, message) in
            [("bounce", "", bounce_to as fn(&str) -> String), ("auto-reply", "carol@remote.test", auto_reply_to)]
        {
            let token = unique("matrix");
            let t = send_mail(inbound, sender, &[spelling], &message(&token));
            let refused_at = match (&t.rcpts[0], &t.end) {
                (rcpt, _) if !rcpt.is(250) => format!("RCPT {}", rcpt.code),
                (_, Some(end)) if !end.is(250) => format!("end of data {}", end.code),
                (_, None) => format!("DATA {}", t.data.as_ref().map_or(0, |d| d.code)),
                _ => "delivered".into(),
            };
            outcomes.push((*spelling, kind, token, refused_at));
        }
    }
    assert!(postfix.delivered("alice@example.com", &control).is_some(), "the control bounce was not delivered");
    std::thread::sleep(Duration::from_secs(1));
    let mailbox = postfix.mailbox("alice@example.com").join("\n");
    for (spelling, kind, token, outcome) in &outcomes {
        eprintln!("{spelling:50} {kind:10} {outcome}");
        assert!(!mailbox.contains(token.as_str()), "{kind} to {spelling} was delivered ({outcome})");
        assert_ne!(outcome, "delivered", "{kind} to {spelling} was accepted");
    }
    eprintln!("{} spellings x 2 kinds = {} attempts, none delivered", delivered.len(), outcomes.len());
}

/// An automatic reply to a forged or unknown-key tag is judged exactly as
/// one to the untagged address: refused, in both tag forms; ordinary mail
/// to such an address still arrives, with the tag stripped.
#[test]
fn a_failing_tag_does_not_switch_inspection_off() {
    let postfix = Postfix::shared();
    let inbound = free_port();
    let proxy = Proxy::start(
        &format!("{BATV_SECTION}{}", listener("inbound", inbound, postfix.port, "xclient", "")),
        &[inbound],
    );
    let valid = proxy.sign("frank@example.com");
    let forged = format!("{}000000{}", &valid[..9], &valid[15..]);
    for recipient in [
        "frank@example.com",
        forged.as_str(),
        "prvs=0999abcdef=frank@example.com",
        "prvs=9123abcdef=frank@example.com",
        "frank+prvs=0999abcdef@example.com",
    ] {
        let token = unique("ooo");
        let t = send_mail(inbound, "carol@remote.test", &[recipient], &auto_reply_to(&token));
        assert_eq!(t.rcpts[0].code, 250, "{recipient}: RCPT");
        assert_eq!(t.end.as_ref().map(|r| r.code), Some(550), "{recipient}: an automatic reply must be refused");
        let ordinary = unique("ordinary");
        let t = send_mail(inbound, "carol@remote.test", &[recipient], &format!("Subject: {ordinary}\r\n\r\nhello\r\n"));
        assert!(t.end.unwrap().is(250), "{recipient}: ordinary mail must pass");
        assert!(postfix.delivered("frank@example.com", &ordinary).is_some(), "{recipient}: not delivered stripped");
        assert!(!postfix.mailbox("frank@example.com").iter().any(|m| m.contains(&token)), "{recipient}: delivered");
    }
}

/// The outbound listener is no tag oracle: Postfix's sender restrictions
/// quote the sender they refuse, at RCPT or (without delayed rejection)
/// at MAIL, also when MAIL is held for recipient exemptions.
#[test]
fn refusals_quoting_the_signed_sender_never_show_the_tag() {
    let postfix = Postfix::start(
        "smtpd_sender_restrictions = check_sender_access inline:{ example.com=REJECT }\nsmtpd_delay_reject = no\n",
    );
    let delayed = Postfix::start("smtpd_sender_restrictions = check_sender_access inline:{ example.com=REJECT }\n");
    for (upstream, exemptions) in
        [(&postfix, ""), (&postfix, "[policy]\nexempt_recipients = [\"lists.example.net\"]\n"), (&delayed, "")]
    {
        let port = free_port();
        let config = format!("{BATV_SECTION}{exemptions}{}", listener("outbound", port, upstream.port, "xclient", ""));
        let proxy = Proxy::start(&config, &[port]);
        let tag = proxy.sign("alice@example.com");
        let mut smtp = Smtp::connect(port);
        smtp.command("EHLO client.test");
        let mut seen = vec![smtp.command("MAIL FROM:<alice@example.com>")];
        seen.push(smtp.command("RCPT TO:<carol@remote.test>"));
        seen.push(smtp.command("RCPT TO:<dave@remote.test>"));
        let text: Vec<String> = seen.iter().map(|r| r.text.clone()).collect();
        assert!(seen.iter().any(|r| r.code >= 500), "Postfix refused nothing: {text:?}");
        assert!(text.iter().any(|t| t.contains("<alice@example.com>")), "the refusal names the sender: {text:?}");
        for reply in &text {
            assert!(!reply.to_lowercase().contains("prvs="), "{exemptions}: a tag reached the client: {reply}");
            assert!(!reply.contains(&tag[5..15]), "{exemptions}: the tag's digits reached the client: {reply}");
        }
        smtp.quit();
    }
}

/// Every reply that quotes the signed sender, multi-line ones and the DATA
/// replies included, reaches the client with the address it gave.
#[test]
fn no_reply_of_a_transaction_carries_the_tag() {
    let fake = FakeUpstream::start(Fault::EchoSender);
    let port = free_port();
    for form in ["standard", "subaddress"] {
        let config =
            format!("{}sign_form = \"{form}\"\n{}", BATV_SECTION, listener("outbound", port, fake.port, "none", ""));
        let proxy = Proxy::start(&config, &[port]);
        let mut smtp = Smtp::connect(port);
        smtp.command("EHLO client.test");
        let mail = smtp.command("MAIL FROM:<Alice@example.com>");
        let rcpt = smtp.command("RCPT TO:<carol@remote.test>");
        for reply in [&mail, &rcpt] {
            assert!(reply.text.contains("<Alice@example.com>"), "{form}: {reply:?}");
            assert!(!reply.text.to_lowercase().contains("prvs"), "{form}: a tag reached the client: {reply:?}");
        }
        assert!(mail.text.lines().count() == 2 && rcpt.text.lines().count() == 3, "{form}: multi-line replies kept");
        smtp.quit();
        drop(proxy);
        let commands = fake.record().commands;
        assert!(commands.iter().any(|c| c.to_lowercase().contains("prvs=")), "{form}: not signed: {commands:?}");
    }
}

/// The proxy's own fields cannot be extended or copied by the client: a
/// message starting with a continuation line, and one carrying its own
/// X-Batv-Status, reach the mailbox with only the proxy's.
#[test]
fn client_data_cannot_change_the_proxys_header_fields() {
    let postfix = Postfix::shared();
    let (monitor, no_identity) = (free_port(), free_port());
    let config = format!(
        "{BATV_SECTION}[policy]\nmode = \"monitor\"\n{}{}",
        listener("inbound", monitor, postfix.port, "xclient", ""),
        listener("outbound", no_identity, postfix.port, "none", "")
    );
    let _proxy = Proxy::start(&config, &[monitor, no_identity]);
    let token = unique("folded");
    let forged = format!(
        "\tvalid-by-attacker\r\n verified\r\nX-Batv-Status: valid\r\nx-batv-status : valid\r\n\tagain\r\n\
         Subject: {token}\r\nX-Batv-Status-Note: kept\r\n\r\nX-Batv-Status: in the body\r\n"
    );
    // An untagged bounce in monitor mode: the proxy writes "missing".
    assert!(send_mail(monitor, "", &["grace@example.com"], &forged).end.unwrap().is(250));
    let delivered = postfix.delivered("grace@example.com", &token).expect("delivered");
    let (header, body) = delivered.split_once("\n\n").unwrap_or((&delivered, ""));
    let fields: Vec<&str> = header.lines().filter(|l| l.to_lowercase().starts_with("x-batv-status")).collect();
    assert_eq!(fields, ["X-Batv-Status: missing", "X-Batv-Status-Note: kept"], "{header}");
    let after = header.lines().skip_while(|l| *l != "X-Batv-Status: missing").nth(1).unwrap_or("");
    assert!(!after.starts_with([' ', '\t']), "the proxy's field was continued: {header}");
    assert!(!header.contains("attacker") && !header.contains("again") && !header.contains("verified"), "{header}");
    assert!(body.contains("X-Batv-Status: in the body"), "the body is the client's own: {body}");
    // With client_identity = "none" the proxy writes a Received field first.
    let token = unique("received");
    let message = format!("\tby attacker.test with nothing\r\nSubject: {token}\r\n\r\nx\r\n");
    assert!(send_mail(no_identity, "heidi@example.com", &["ivan@example.com"], &message).end.unwrap().is(250));
    let delivered = postfix.delivered("ivan@example.com", &token).expect("delivered");
    assert!(!delivered.contains("attacker.test"), "the proxy's Received field was continued:\n{delivered}");
}

/// Every end-of-data variant of the 2023 smuggling research, NUL tricks
/// included, against an upstream that drops NULs and ends lines on CR, LF
/// or CRLF: it never sees a second transaction nor a message cut short.
#[test]
fn no_end_of_data_variant_reaches_a_lenient_upstream() {
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
        ("crlf_dot_cr_nul_lf", "\r\n.\r\0\n"),
        ("cr_nul_lf_dot_crlf", "\r\0\n.\r\n"),
        ("crlf_nul_nul_dot_nul_crlf", "\r\n\0\0.\0\r\n"),
    ];
    let lenient = FakeUpstream::start(Fault::Lenient);
    let (inbound, outbound) = (free_port(), free_port());
    let config = format!(
        "{BATV_SECTION}{}{}",
        listener("inbound", inbound, lenient.port, "none", ""),
        listener("outbound", outbound, lenient.port, "none", "")
    );
    let _proxy = Proxy::start(&config, &[inbound, outbound]);
    for port in [inbound, outbound] {
        for (name, variant) in VARIANTS {
            let before = lenient.record();
            let token = unique(name);
            let mut smtp = Smtp::connect(port);
            smtp.command("EHLO client.test");
            assert!(smtp.command("MAIL FROM:<peggy@example.com>").is(250));
            assert!(smtp.command("RCPT TO:<trent@example.com>").is(250));
            assert!(smtp.command("DATA").is(354));
            smtp.send(format!(
                "Subject: carrier {token}\r\n\r\ncarrier{variant}MAIL FROM:<mallory@example.com>\r\n\
                 RCPT TO:<victor@example.com>\r\nDATA\r\nSubject: smuggled {token}\r\n\r\nsmuggled\r\n.\r\n"
            ));
            let reply = smtp.reply();
            assert_eq!(reply.code, 550, "{name} on {port}: {reply:?}");
            assert!(smtp.command("NOOP").is(250), "{name}: the session is not sane");
            smtp.quit();
            let after = lenient.record();
            let commands = &after.commands[before.commands.len()..];
            assert!(
                !commands.iter().any(|c| c.contains("mallory") || c.contains("victor")),
                "{name} on {port}: the lenient upstream read smuggled commands: {commands:?}"
            );
            assert_eq!(
                after.messages.len(),
                before.messages.len(),
                "{name} on {port}: a message was completed upstream"
            );
        }
    }
    // Ordinary mail still passes, and a NUL in a command is refused.
    let t = send_mail(inbound, "carol@remote.test", &["trent@example.com"], "Subject: fine\r\n\r\nfine\r\n");
    assert!(t.end.unwrap().is(250));
    let mut smtp = Smtp::connect(inbound);
    smtp.command("EHLO client.test");
    smtp.send(b"MAIL FROM:<peggy@example.com>\0\r\n");
    assert_eq!(smtp.reply().code, 500);
    smtp.send(b"RSET\0MAIL FROM:<mallory@example.com>\r\n");
    assert_eq!(smtp.reply().code, 500);
    smtp.quit();
    assert!(!lenient.record().commands.iter().any(|c| c.contains("mallory")));
}

/// `/healthz` probes the upstreams once for a burst of requests.
#[test]
fn a_burst_of_health_checks_opens_one_upstream_session() {
    let fake = FakeUpstream::start(Fault::None);
    let (port, metrics) = (free_port(), free_port());
    let config = format!(
        "{BATV_SECTION}[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n{}",
        listener("inbound", port, fake.port, "none", "")
    );
    let _proxy = Proxy::start(&config, &[port, metrics]);
    let before = fake.record().connections;
    let burst: Vec<_> = (0..40).map(|_| std::thread::spawn(move || http_get(metrics, "/healthz").0)).collect();
    let statuses: Vec<u16> = burst.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let probes = fake.record().connections - before;
    assert!(probes <= 2, "40 health checks opened {probes} upstream sessions");
}

/// After STARTTLS the upstream session is reset: nothing of a transaction
/// begun in clear text survives there.
#[test]
fn starttls_resets_the_upstream_session() {
    let pki = TestPki::new();
    let fake = FakeUpstream::start(Fault::None);
    let port = free_port();
    let config = format!(
        "{BATV_SECTION}{}[listener.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        listener("inbound", port, fake.port, "none", ""),
        pki.path("mx.example.com.pem"),
        pki.path("mx.example.com.key"),
    );
    let _proxy = Proxy::start(&config, &[port]);
    let out = python(&format!(
        r#"
import smtplib, ssl
s = smtplib.SMTP("127.0.0.1", {port}, timeout=10)
s.ehlo("client.test")
print("mail", s.mail("carol@remote.test")[0])
print("starttls", s.starttls(context=ssl.create_default_context(cafile="{ca}"))[0])
s.ehlo("client.test")
print("mail", s.mail("dave@remote.test")[0])
s.quit()
"#,
        ca = pki.path("ca.pem")
    ));
    assert!(out.contains("starttls 220") && out.matches("mail 250").count() == 2, "{out}");
    let commands = fake.record().commands;
    let first_mail = commands.iter().position(|c| c.contains("carol@remote.test")).expect("the first MAIL");
    let second_mail = commands.iter().position(|c| c.contains("dave@remote.test")).expect("the second MAIL");
    assert!(
        commands[first_mail..second_mail].iter().any(|c| c == "RSET"),
        "no RSET between the clear-text MAIL and TLS: {commands:?}"
    );
}

/// `require_auth` refuses MAIL until the client authenticated; check-config
/// warns about an outbound listener anyone can reach, and about short keys.
#[test]
fn outbound_listeners_for_anyone_and_short_keys_are_warned_about() {
    let fake = FakeUpstream::start(Fault::None);
    let port = free_port();
    let config = format!("{BATV_SECTION}{}", listener("outbound", port, fake.port, "none", "require_auth = true"));
    let proxy = Proxy::start(&config, &[port]);
    let mut smtp = Smtp::connect(port);
    smtp.command("EHLO client.test");
    let mail = smtp.command("MAIL FROM:<alice@example.com>");
    assert_eq!(mail.code, 530, "{mail:?}");
    assert!(!fake.record().commands.iter().any(|c| c.starts_with("MAIL")), "MAIL reached the upstream");
    smtp.quit();
    let open = proxy.dir.write(
        "open.toml",
        &format!(
            "{BATV_SECTION}{}",
            listener("outbound", port, fake.port, "none", "").replace("127.0.0.1:", "0.0.0.0:")
        ),
    );
    let check = std::process::Command::new(BIN).args(["check-config", "--config"]).arg(&open).output().unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{stderr}");
    assert!(stderr.contains("allowed_clients") && stderr.contains("require_auth"), "no warning: {stderr}");
    write_keys(&proxy.dir.join("keys"), 3, b"k");
    let check = std::process::Command::new(BIN).args(["check-config", "--config"]).arg(&proxy.config).output().unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "a short key is a warning, not an error: {stderr}");
    assert!(stderr.contains("key 3") && stderr.contains("1 byte"), "no short-key warning: {stderr}");
    assert!(!stderr.contains("aw=="), "the key itself was printed: {stderr}");
}

/// `max_connections_per_ip` counts an IPv6 client per /64 (a host gets a
/// whole /64), in a network namespace with addresses of its own.
#[test]
fn ipv6_clients_are_counted_per_64() {
    provision();
    let netns = Netns::new("batv-v6");
    for address in ["2001:db8:1:2::1/64", "2001:db8:1:2::10/64", "2001:db8:1:2::11/64", "2001:db8:1:2::12/64"] {
        netns.add_address(address);
    }
    netns.add_address("2001:db8:1:3::10/64");
    let dir = TestDir::new("batv-v6.");
    write_keys(&dir.join("keys"), 3, b"integration-test-secret");
    // Inside a namespace of its own, every port is free.
    let sink = Running::spawn(
        netns
            .command("/usr/sbin/smtp-sink")
            .args(["-u", "root", "[::1]:10025", "100"])
            .stderr(std::process::Stdio::null()),
    );
    let config = dir.write(
        "batv-proxy.toml",
        &format!(
            "{BATV_SECTION}[[listener]]\nrole = \"inbound\"\nlisten = \"[2001:db8:1:2::1]:2525\"\nupstream = \"[::1]:10025\"\n\
             client_identity = \"none\"\nmax_connections_per_ip = 2\n"
        ),
    );
    let _proxy = Running::spawn(
        netns.command(proxy_binary()).args(["run", "--config"]).arg(&config).stderr(std::process::Stdio::null()),
    );
    let script = r#"
import socket, time
def greet(source):
    deadline = time.time() + 10
    while True:
        s = socket.socket(socket.AF_INET6)
        s.bind((source, 0))
        try:
            s.connect(("2001:db8:1:2::1", 2525))
            break
        except OSError:
            s.close()
            if time.time() > deadline:
                raise
            time.sleep(0.05)
    s.settimeout(5)
    return s, s.recv(200).decode().strip()
held = []
for source in ["2001:db8:1:2::10", "2001:db8:1:2::11", "2001:db8:1:2::12", "2001:db8:1:3::10"]:
    s, greeting = greet(source)
    held.append(s)
    print(source, greeting[:9])
"#;
    let output = netns.command("python3").args(["-c", script]).output().unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{out}{}", String::from_utf8_lossy(&output.stderr));
    assert!(out.contains("2001:db8:1:2::10 220") && out.contains("2001:db8:1:2::11 220"), "{out}");
    assert!(out.contains("2001:db8:1:2::12 421 4.7.0"), "a third host of one /64 got in: {out}");
    assert!(out.contains("2001:db8:1:3::10 220"), "another /64 must not be limited: {out}");
    sink.signal("KILL");
}
