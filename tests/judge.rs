//! `batv-proxy judge` answers as the running proxy does: every case of an
//! inbound and an outbound table goes through a running proxy, over SMTP,
//! and through `judge` with the same configuration; recipient by recipient
//! and for the message, both give the same answer.

mod common;

use std::process::Command;

use common::fake_upstream::{FakeUpstream, Fault};
use common::*;

struct Case {
    name: &'static str,
    from: String,
    rcpts: Vec<String>,
    message: Option<String>,
}

fn dsn(original: &str) -> String {
    format!(
        "From: MAILER-DAEMON@remote.test\r\nSubject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n--B\r\n\
         Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.partner.test\r\n\r\n\
         Final-Recipient: rfc822; nobody@remote.test\r\nAction: failed\r\nStatus: 5.1.1\r\n--B\r\n\
         Content-Type: text/rfc822-headers\r\n\r\nFrom: alice@example.com\r\nMessage-ID: {original}\r\n--B--\r\n"
    )
}

const VACATION: &str = "From: bob@remote.test\r\nSubject: Away\r\nAuto-Submitted: auto-replied\r\nIn-Reply-To: <x@spam.test>\r\n\r\nAway.\r\n";
const ORDINARY: &str = "From: bob@remote.test\r\nSubject: hi\r\n\r\nHello.\r\n";

/// The reply codes the running proxy gave: per recipient, and after DATA.
fn over_smtp(port: u16, case: &Case) -> (Vec<u16>, Option<u16>) {
    let mut smtp = Smtp::connect(port);
    smtp.command("EHLO client.test");
    assert!(smtp.command(&format!("MAIL FROM:<{}>", case.from)).is(250), "{}", case.name);
    let rcpts: Vec<u16> = case.rcpts.iter().map(|r| smtp.command(&format!("RCPT TO:<{r}>")).code).collect();
    let mut end = None;
    if let Some(message) = &case.message
        && rcpts.iter().any(|code| *code < 400)
        && smtp.command("DATA").is(354)
    {
        end = Some(smtp.data_body(message).code);
    }
    smtp.quit();
    (rcpts, end)
}

/// What `judge` says, as the same codes, and its exit status.
fn judged(config: &std::path::Path, dir: &TestDir, listener: &str, case: &Case) -> (Vec<u16>, Option<u16>, i32) {
    let mut command = Command::new(proxy_binary());
    command.args(["judge", "--config"]).arg(config).args(["--listener", listener, "--client", "127.0.0.1"]);
    command.arg("--from").arg(&case.from);
    for rcpt in &case.rcpts {
        command.arg("--rcpt").arg(rcpt);
    }
    if let Some(message) = &case.message {
        command.arg(dir.write("message.eml", message));
    }
    let output = command.output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let json: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{}: not JSON: {text}{}", case.name, String::from_utf8_lossy(&output.stderr)));
    let verdicts = &json["verdicts"];
    let rcpts =
        verdicts["recipients"].as_array().unwrap().iter().map(|r| r["reply"].as_u64().unwrap() as u16).collect();
    let end = verdicts["message"]["reply"].as_str().and_then(|reply| reply.get(..3)).and_then(|code| code.parse().ok());
    assert_eq!(
        json["accepted"].as_bool(),
        Some(output.status.code() == Some(0)),
        "{}: accepted vs exit status",
        case.name
    );
    (rcpts, end, output.status.code().unwrap_or(-1))
}

#[test]
fn judge_agrees_with_the_running_proxy_on_every_case() {
    let fake = FakeUpstream::start(Fault::None);
    let (inbound, outbound) = (free_port(), free_port());
    let config = format!(
        "state_dir = \"state\"\n{BATV_SECTION}[ledger]\nstore = \"file\"\n[policy]\nuntagged_bounce = \"inspect\"\n\
         [policy.message_id_patterns]\n\"example.com\" = [\"*@mx.example.com\"]\n\
         [policy.actions]\nuntagged_autoreply = \"mark\"\n\
         [[policy.exemption]]\nname = \"partner\"\nsenders = [\"*@partner.test\"]\nexempts = [\"auto_reply\"]\n\
         [[policy.exemption]]\nname = \"lists\"\nrecipient_domains = [\"lists.example.net\"]\nexempts = [\"signing\"]\n{}{}",
        listener("inbound", inbound, fake.port, "none", ""),
        listener("outbound", outbound, fake.port, "none", "")
    );
    let proxy = Proxy::start(&config, &[inbound, outbound]);
    let tagged = proxy.sign("alice@example.com");
    let forged = format!("{}000000{}", &tagged[..9], &tagged[15..]);
    let expired = proxy.sign_on("alice@example.com", "2020-01-01");
    let case = |name, from: &str, rcpts: &[&str], message: Option<String>| Case {
        name,
        from: from.to_owned(),
        rcpts: rcpts.iter().map(|r| (*r).to_owned()).collect(),
        message,
    };
    // A message sent through the outbound listener: the running proxy's
    // ledger, which judge reads beside it, knows its Message-ID.
    let sent = format!("<{}@laptop.example.com>", unique("judge-ledger"));
    let body = format!("From: alice@example.com\r\nMessage-ID: {sent}\r\nSubject: hi\r\n\r\nhello\r\n");
    assert!(send_mail(outbound, "alice@example.com", &["bob@remote.test"], &body).end.is_some_and(|r| r.is(250)));
    let dir = TestDir::new("judge.");
    let in_ledger = case("untagged, in the ledger", "", &["bob@example.com"], Some(dsn(&sent)));
    let listener_name = format!("inbound@127.0.0.1:{inbound}");
    let committed = eventually(std::time::Duration::from_secs(5), || {
        (judged(&proxy.config, &dir, &listener_name, &in_ledger).1 == Some(250)).then_some(())
    });
    assert!(committed.is_some(), "judge never found {sent} in the running proxy's ledger");
    let inbound_cases = vec![
        in_ledger,
        case("valid tag", "", &[&tagged], Some(dsn("<x@spam.test>"))),
        case("forged tag", "", &[&forged], Some(dsn("<x@spam.test>"))),
        case("expired tag", "", &[&expired], Some(dsn("<x@spam.test>"))),
        case("untagged, not ours", "", &["bob@example.com"], Some(dsn("<x@spam.test>"))),
        case("untagged, our pattern", "", &["bob@example.com"], Some(dsn("<1.2@mx.example.com>"))),
        case("mixed recipients", "", &[&tagged, "bob@example.com"], Some(dsn("<x@spam.test>"))),
        case("percent hack", "", &["alice%example.com@localhost"], Some(dsn("<x@spam.test>"))),
        case("postmaster", "", &["postmaster@example.com"], Some(dsn("<x@spam.test>"))),
        case("foreign", "", &["someone@remote.test"], Some(dsn("<x@spam.test>"))),
        case("vacation, marked", "bob@remote.test", &["alice@example.com"], Some(VACATION.to_owned())),
        case("vacation, exempt sender", "calendar@partner.test", &["alice@example.com"], Some(VACATION.to_owned())),
        case("ordinary mail", "bob@remote.test", &["alice@example.com"], Some(ORDINARY.to_owned())),
        case("envelope only", "", &[&forged, "carol@example.com"], None),
    ];
    let outbound_cases = vec![
        case("signed", "alice@example.com", &["bob@remote.test"], Some(ORDINARY.to_owned())),
        case("exempt recipient domain", "alice@example.com", &["list@lists.example.net", "bob@remote.test"], None),
        case("foreign sender", "bob@remote.test", &["carol@remote.test"], None),
    ];
    let mut compared = 0;
    for (port, listener, cases) in [
        (inbound, format!("inbound@127.0.0.1:{inbound}"), inbound_cases),
        (outbound, format!("outbound@127.0.0.1:{outbound}"), outbound_cases),
    ] {
        for case in &cases {
            let (rcpts, end) = over_smtp(port, case);
            let (judged_rcpts, judged_end, status) = judged(&proxy.config, &dir, &listener, case);
            assert_eq!((&judged_rcpts, judged_end), (&rcpts, end), "{}: judge and the running proxy differ", case.name);
            let taken = match end {
                Some(code) => code < 400,
                None => rcpts.iter().any(|code| *code < 400),
            };
            assert_eq!(status == 0, taken, "{}: judge's exit status", case.name);
            compared += 1;
        }
    }
    assert_eq!(compared, 17);
}
