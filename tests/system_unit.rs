//! The systemd unit under a real systemd: a Debian 12 tree booted with
//! systemd-nspawn, batv-proxy installed by the commands of
//! docs/operations.md ("From source"), read from the guide itself, then
//! the unit's promises checked one by one: readiness (`Type=notify`), mail
//! relayed and judged on a privileged port as the service user, the key
//! file made by `ExecStartPre`, reload with a good and a broken
//! configuration, a stop that lets an open transaction finish, a
//! configuration error that ends in status 2 without a restart loop, and no
//! file written outside `StateDirectory`.
//!
//! Slow and root-only, so ignored by a plain `cargo test`; .ci/run runs
//! it: `cargo test --test system_unit -- --ignored`.

mod common;
mod system;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use system::*;

const UNIT: &str = "batv-proxy.service";
const CONFIG: &str = "/etc/batv-proxy/batv-proxy.toml";

/// The container's configuration: an inbound listener on a privileged port
/// and an outbound one, both in front of smtp-sink on the host, the ledger,
/// and metrics; `extra` adds listeners.
fn config(port25: u16, submission: u16, metrics: u16, sink: u16, extra: &str) -> String {
    format!(
        "state_dir = \"/var/lib/batv-proxy\"\n\
         [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n\
         [server]\ndrain_timeout = \"20s\"\n\
         [batv]\nkey_file = \"/var/lib/batv-proxy/keys\"\ndomains = [\"example.com\"]\n\
         [ledger]\nstore = \"file\"\n\
         [[listener]]\nrole = \"inbound\"\nlisten = \"127.0.0.1:{port25}\"\nupstream = \"127.0.0.1:{sink}\"\n\
         client_identity = \"none\"\nhostname = \"mx.example.com\"\n\
         [[listener]]\nrole = \"outbound\"\nlisten = \"127.0.0.1:{submission}\"\nupstream = \"127.0.0.1:{sink}\"\n\
         client_identity = \"none\"\nhostname = \"mx.example.com\"\n{extra}"
    )
}

fn accepted(t: &Transaction) -> bool {
    t.end.as_ref().is_some_and(|r| r.is(250))
}

/// A delivery status notification returning the message `original`.
fn dsn(original: &str, to: &str) -> String {
    format!(
        "From: MAILER-DAEMON@remote.test\r\nTo: {to}\r\nSubject: Undelivered Mail\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.remote.test\r\n\r\n\
         Final-Recipient: rfc822; nobody@remote.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         --B\r\nContent-Type: message/rfc822\r\n\r\nFrom: {to}\r\nMessage-ID: {original}\r\n\r\nx\r\n--B--\r\n"
    )
}

#[test]
#[ignore = "system test: minutes, as root; .ci/run runs it with --ignored"]
fn the_unit_installed_as_documented_runs_under_systemd() {
    // The guide's commands: the build runs here, the rest in the container.
    let blocks = documented_blocks("docs/operations.md", "From source");
    assert_eq!(
        blocks.len(),
        5,
        "docs/operations.md, From source: expected 5 command blocks (build, install, configure, unit, check): {blocks:?}"
    );
    assert_eq!(blocks[0].len(), 1, "one build command: {:?}", blocks[0]);
    let binary = release_binary(&blocks[0][0]);

    let sink = Sink::start();
    let (port25, submission, metrics, added) = (privileged_port(), free_port(), free_port(), free_port());
    eprintln!("system_unit: the inbound listener uses privileged port {port25}");
    let good = config(port25, submission, metrics, sink.port, "");
    let tarball = debian_tree("systemd");
    let container = Booted::boot(&tarball, |root| {
        // The working directory of the guide's commands: the files it names.
        let work = root.join("root");
        std::fs::create_dir_all(work.join("target/release")).unwrap();
        std::fs::create_dir_all(work.join("dist")).unwrap();
        std::fs::copy(&binary, work.join("target/release/batv-proxy")).unwrap();
        std::fs::copy(repository().join("dist/batv-proxy.service"), work.join("dist/batv-proxy.service")).unwrap();
        std::fs::write(work.join("batv-proxy.toml"), &good).unwrap();
    });
    container.ok("touch /before-install");

    // Steps 2, 3 and 5 as written; `enable --now` returns once the unit is
    // ready (Type=notify), so the port must answer at the first attempt.
    for block in &blocks[1..4] {
        for line in block {
            let started = Instant::now();
            container.ok(line);
            if line.contains("enable --now") {
                let mut smtp = Smtp::connect(port25);
                assert!(smtp.greeting.is(220), "first connection after start: {:?}", smtp.greeting);
                smtp.command("QUIT");
                assert!(started.elapsed() < Duration::from_secs(30), "start took {:?}", started.elapsed());
            }
        }
    }
    assert_eq!(container.property(UNIT, "Type"), "notify");
    assert_eq!(container.property(UNIT, "ActiveState"), "active");
    let journal = container.journal(UNIT);
    let ready = journal.find("batv-proxy ready").expect("no `batv-proxy ready` line");
    let started = journal.find("Started batv-proxy.service").expect("systemd did not log the start");
    assert!(ready < started, "systemd reported the start before the proxy was ready:\n{journal}");
    // Step 6: every check command succeeds.
    for line in &blocks[4] {
        container.ok(line);
    }

    // The key file from ExecStartPre, the service user, its capabilities.
    let owner = container.ok("stat -c '%a %U %G' /var/lib/batv-proxy/keys /var/lib/batv-proxy");
    assert_eq!(owner, "600 batv-proxy batv-proxy\n700 batv-proxy batv-proxy\n", "keys and state directory");
    let main_pid = container.property(UNIT, "MainPID");
    let status = container.ok(&format!("cat /proc/{main_pid}/status"));
    let uid = container.ok("id -u batv-proxy").trim().to_owned();
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_default().trim().to_owned();
    assert_eq!(field("Uid:").split_whitespace().collect::<Vec<_>>(), vec![uid.as_str(); 4], "{status}");
    assert_eq!(field("CapEff:"), "0000000000000400", "only CAP_NET_BIND_SERVICE:\n{status}");

    // Mail relayed and judged on the privileged port.
    let outbound_id = format!("<{}@mx.example.com>", unique("unit"));
    let body = format!("Subject: out\r\nMessage-ID: {outbound_id}\r\n\r\nx\r\n");
    assert!(accepted(&send_mail(submission, "alice@example.com", &["carol@remote.test"], &body)));
    let signed = sink.find(&outbound_id).expect("the outbound message did not reach the MTA");
    assert!(signed.contains("prvs="), "the sender was not signed:\n{signed}");
    let tagged = container.ok(&format!("batv-proxy sign --config {CONFIG} bob@example.com")).trim().to_owned();
    let token = unique("tagged-bounce");
    assert!(accepted(&send_mail(port25, "", &[&tagged], &format!("Subject: {token}\r\n\r\nx\r\n"))));
    let relayed = sink.find(&token).expect("the tagged bounce did not reach the MTA");
    assert!(relayed.contains("bob@example.com") && !relayed.contains("prvs="), "tag not stripped:\n{relayed}");
    let digit = if &tagged[9..10] == "0" { "1" } else { "0" };
    let forged = format!("{}{digit}{}", &tagged[..9], &tagged[10..]);
    let t = send_mail(port25, "", &[&forged], "x");
    assert!(t.rcpts[0].is(550) && t.rcpts[0].text.contains("5.7.1"), "forged tag: {:?}", t.rcpts[0]);
    // An untagged bounce of the message sent above passes by the ledger in
    // StateDirectory (the writer commits a moment after the message).
    let by_ledger = eventually(Duration::from_secs(10), || {
        accepted(&send_mail(port25, "", &["alice@example.com"], &dsn(&outbound_id, "alice@example.com"))).then_some(())
    });
    assert!(by_ledger.is_some(), "a bounce of our own message was refused:\n{}", container.journal(UNIT));
    let t = send_mail(port25, "", &["alice@example.com"], &dsn("<spam@elsewhere.test>", "alice@example.com"));
    assert!(t.end.as_ref().is_some_and(|r| r.is(550)), "backscatter passed: {:?}", t.end);

    // Reload with a good configuration: a new listener, the same process.
    let extra = format!(
        "[[listener]]\nrole = \"outbound\"\nlisten = \"127.0.0.1:{added}\"\nupstream = \"127.0.0.1:{}\"\nclient_identity = \"none\"\n",
        sink.port
    );
    container.write(CONFIG, &config(port25, submission, metrics, sink.port, &extra));
    container.ok("systemctl reload batv-proxy");
    assert!(wait_port(added, Duration::from_secs(10)), "the reload did not start the new listener");
    assert_eq!(container.property(UNIT, "MainPID"), main_pid, "a reload must not restart the process");
    container.wait_property(UNIT, "ActiveState", "active", Duration::from_secs(10));
    assert!(container.journal(UNIT).contains("reload applied"));

    // Reload with a broken one: refused, the running configuration stays.
    container.write(CONFIG, "[batv]\nlifetime_days = \"a week\"\n");
    container.ok("systemctl reload batv-proxy");
    let refused =
        eventually(Duration::from_secs(10), || container.journal(UNIT).contains("reload refused").then_some(()));
    assert!(refused.is_some(), "no `reload refused`:\n{}", container.journal(UNIT));
    assert_eq!(container.property(UNIT, "MainPID"), main_pid);
    container.wait_property(UNIT, "ActiveState", "active", Duration::from_secs(10));
    assert!(accepted(&send_mail(port25, "carol@remote.test", &["bob@example.com"], "Subject: after\r\n\r\nx\r\n")));
    assert!(wait_port(added, Duration::from_secs(1)), "the refused reload dropped a listener");
    let metrics_text = http_get(metrics, "/metrics");
    for line in [
        "batv_proxy_reloads_total{listener=\"\",outcome=\"applied\"} 1",
        "batv_proxy_reloads_total{listener=\"\",outcome=\"refused\"} 1",
    ] {
        assert!(metrics_text.contains(line), "{line} not in\n{metrics_text}");
    }
    container.write(CONFIG, &good);

    // Stop while a transaction is open: the listener closes, the message
    // still goes through, then the service ends cleanly.
    let token = unique("drained");
    let mut smtp = Smtp::connect(port25);
    assert!(smtp.command("EHLO client.test").is(250));
    assert!(smtp.command("MAIL FROM:<carol@remote.test>").is(250));
    assert!(smtp.command("RCPT TO:<bob@example.com>").is(250));
    assert!(smtp.command("DATA").is(354));
    smtp.send(format!("Subject: {token}\r\n\r\nfirst half\r\n"));
    let mut stop = Running::spawn(&mut container.command("systemctl stop batv-proxy"));
    let closed =
        eventually(Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", port25)).is_err().then_some(()));
    assert!(closed.is_some(), "the listener stayed open during the stop");
    assert!(stop.try_wait().is_none(), "systemctl stop returned before the open transaction ended");
    assert_eq!(container.property(UNIT, "ActiveState"), "deactivating");
    smtp.send("second half\r\n.\r\n");
    let end = smtp.reply();
    assert!(end.is(250), "the open transaction was cut by the stop: {end:?}");
    let stopped = stop.wait_exit(Duration::from_secs(40)).expect("systemctl stop hangs");
    assert!(stopped.success(), "systemctl stop: {stopped}");
    assert!(sink.find(&token).is_some(), "the drained message did not reach the MTA");
    assert_eq!(container.property(UNIT, "ActiveState"), "inactive");
    assert_eq!(container.property(UNIT, "Result"), "success");
    assert_eq!(container.property(UNIT, "ExecMainStatus"), "0");

    // A configuration error: exit status 2, and no restart loop.
    container.write(
        CONFIG,
        &good.replace("domains = [\"example.com\"]", "domains = [\"example.com\"]\nlifetime_days = 900"),
    );
    let start = container.sh("systemctl start batv-proxy");
    assert!(!start.status.success(), "a broken configuration started");
    container.wait_property(UNIT, "ActiveState", "failed", Duration::from_secs(10));
    assert_eq!(container.property(UNIT, "ExecMainStatus"), "2", "{}", container.journal(UNIT));
    assert_eq!(container.property(UNIT, "Result"), "exit-code");
    std::thread::sleep(Duration::from_secs(6)); // RestartSec=2s, three times over
    assert_eq!(container.property(UNIT, "NRestarts"), "0", "restarted after a configuration error");
    assert_eq!(container.property(UNIT, "ActiveState"), "failed");
    assert!(container.journal(UNIT).contains("lifetime_days"), "the journal does not name the broken key");

    // Nothing written outside StateDirectory: every file the service made
    // belongs to its user, and those are all under /var/lib/batv-proxy.
    let owned = container.ok("find / /tmp /var/tmp /run -xdev \\( -user batv-proxy -o -group batv-proxy \\) \
         -not -path '/var/lib/batv-proxy' -not -path '/var/lib/batv-proxy/*' -print");
    assert!(owned.trim().is_empty(), "the service wrote outside its StateDirectory:\n{owned}");
    let state = container.ok("ls /var/lib/batv-proxy");
    for file in ["keys", "ledger.redb"] {
        assert!(state.lines().any(|l| l == file), "/var/lib/batv-proxy lacks {file}: {state}");
    }
    drop(container);
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(socket, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).unwrap();
    response
}
