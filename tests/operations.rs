//! Running it in production: metrics, health, reload, drain, logs, systemd
//! notifications.

mod common;

use std::time::Duration;

use common::fake_upstream::{FakeUpstream, Fault};
use common::*;

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn metrics_count_what_happens_and_healthz_checks_the_upstream() {
    let sink = Sink::start();
    let (inbound, outbound, metrics) = (free_port(), free_port(), free_port());
    let config = format!(
        "{BATV_SECTION}[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n{}{}",
        listener("inbound", inbound, sink.port, "none", ""),
        listener("outbound", outbound, sink.port, "none", "")
    );
    let proxy = Proxy::start(&config, &[inbound, outbound, metrics]);
    let tagged = proxy.sign("alice@example.com");
    let expired = proxy.sign_on("alice@example.com", "2026-01-01");
    assert!(
        send_mail(outbound, "alice@example.com", &["x@remote.test"], "Subject: a\r\n\r\nx\r\n").end.unwrap().is(250)
    );
    assert!(send_mail(inbound, "", &[&tagged], "Subject: b\r\n\r\nx\r\n").end.unwrap().is(250));
    assert_eq!(send_mail(inbound, "", &[&expired], "x").rcpts[0].code, 550);
    // Untagged and not about a message of ours: refused after its content.
    assert_eq!(send_mail(inbound, "", &["bob@example.com"], "Subject: b\r\n\r\nx\r\n").end.unwrap().code, 550);
    // Sessions record their end just after the client has its last reply.
    let completed =
        format!("batv_proxy_sessions_total{{listener=\"inbound@127.0.0.1:{inbound}\",outcome=\"completed\"}}");
    let (status, text) = eventually(Duration::from_secs(5), || {
        let (status, text) = http_get(metrics, "/metrics");
        (metric(&text, &completed) >= 3.0).then_some((status, text))
    })
    .unwrap_or_else(|| http_get(metrics, "/metrics"));
    assert_eq!(status, 200);
    let i = format!("listener=\"inbound@127.0.0.1:{inbound}\"");
    let o = format!("listener=\"outbound@127.0.0.1:{outbound}\"");
    assert_eq!(metric(&text, &format!("batv_proxy_tags_signed_total{{{o}}}")), 1.0, "{text}");
    assert_eq!(
        metric(&text, &format!("batv_proxy_verifications_total{{{i},result=\"valid\",reason=\"ok\"}}")),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, &format!("batv_proxy_verifications_total{{{i},result=\"invalid\",reason=\"expired\"}}")),
        1.0
    );
    assert_eq!(
        metric(&text, &format!("batv_proxy_rejections_total{{{i},stage=\"data\",reason=\"no_original_message_id\"}}")),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            &format!(
                "batv_proxy_inspections_total{{{i},kind=\"none\",result=\"reject\",rule=\"no_original_message_id\"}}"
            )
        ),
        1.0
    );
    assert_eq!(metric(&text, &format!("batv_proxy_messages_total{{{i},outcome=\"accepted\"}}")), 1.0);
    assert!(metric(&text, &format!("batv_proxy_sessions_total{{{i},outcome=\"completed\"}}")) >= 3.0, "{text}");
    assert!(text.contains("batv_proxy_session_duration_seconds_bucket"));
    assert!(text.contains("batv_proxy_command_added_latency_seconds_bucket"));

    let (status, body) = http_get(metrics, "/healthz");
    assert_eq!(status, 200, "{body}");
    drop(sink);
    // A health answer is kept for 5 seconds: the down upstream shows after it.
    let (status, body) = eventually(Duration::from_secs(10), || {
        let (status, body) = http_get(metrics, "/healthz");
        (status != 200).then_some((status, body))
    })
    .expect("/healthz still says ok 10 s after the upstream went away");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("cannot connect"), "{body}");
}

#[test]
fn sighup_reloads_listeners_keys_and_policy_without_dropping_sessions() {
    let fake = FakeUpstream::start(Fault::None);
    let (first, second) = (free_port(), free_port());
    let config = format!("{BATV_SECTION}{}", listener("outbound", first, fake.port, "none", ""));
    let mut proxy = Proxy::start(&config, &[first]);
    // A session in flight, mid-transaction, across the reload.
    let mut in_flight = Smtp::connect(first);
    in_flight.command("EHLO client.test");
    assert!(in_flight.command("MAIL FROM:<alice@example.com>").is(250));

    // Rotate the key and move the listener.
    let keygen = std::process::Command::new(BIN)
        .args(["keygen", "--output"])
        .arg(proxy.dir.join("keys"))
        .args(["--key-id", "5"])
        .status()
        .unwrap();
    assert!(keygen.success());
    let new_config = format!("{BATV_SECTION}{}", listener("outbound", second, fake.port, "none", ""));
    std::fs::write(&proxy.config, new_config).unwrap();
    proxy.signal("HUP");
    assert!(wait_port(second, Duration::from_secs(5)), "the new listener did not start");
    assert!(
        eventually(Duration::from_secs(5), || std::net::TcpStream::connect(("127.0.0.1", first))
            .is_err()
            .then_some(()))
        .is_some(),
        "the removed listener still accepts"
    );

    assert!(in_flight.command("RCPT TO:<carol@remote.test>").is(250));
    assert!(in_flight.command("DATA").is(354));
    assert!(in_flight.data_body("Subject: in flight\r\n\r\nx\r\n").is(250));
    in_flight.quit();

    let t = send_mail(second, "alice@example.com", &["carol@remote.test"], "Subject: after\r\n\r\nx\r\n");
    assert!(t.end.unwrap().is(250));
    let mails: Vec<String> = fake.record().commands.into_iter().filter(|c| c.starts_with("MAIL")).collect();
    assert!(mails[0].contains("prvs=3"), "before the reload key 3 signs: {mails:?}");
    assert!(mails.last().unwrap().contains("prvs=5"), "after the reload the new key 5 signs: {mails:?}");

    // A broken configuration is refused; the running one stays.
    std::fs::write(&proxy.config, "[batv]\nkey_file = \"nokeys\"\n").unwrap();
    proxy.signal("HUP");
    assert!(eventually(Duration::from_secs(5), || proxy.log().contains("reload refused").then_some(())).is_some());
    let t = send_mail(second, "alice@example.com", &["carol@remote.test"], "Subject: still\r\n\r\nx\r\n");
    assert!(t.end.unwrap().is(250));
    assert!(proxy.wait_exit(Duration::from_millis(100)).is_none());
}

#[test]
fn sigterm_lets_transactions_finish_then_answers_421_and_exits_0() {
    let fake = FakeUpstream::start(Fault::None);
    let port = free_port();
    let config = format!(
        "[server]\ndrain_timeout = \"3s\"\n{BATV_SECTION}{}",
        listener("outbound", port, fake.port, "none", "")
    );
    let mut proxy = Proxy::start(&config, &[port]);
    let mut busy = Smtp::connect(port);
    busy.command("EHLO client.test");
    assert!(busy.command("MAIL FROM:<alice@example.com>").is(250));
    assert!(busy.command("RCPT TO:<carol@remote.test>").is(250));
    let mut idle = Smtp::connect(port);
    idle.command("EHLO idle.test");
    let mut stuck = Smtp::connect(port);
    stuck.command("EHLO stuck.test");
    assert!(stuck.command("MAIL FROM:<alice@example.com>").is(250));

    proxy.signal("TERM");
    // The idle session is told at once; new connections are refused.
    assert_eq!(idle.reply().code, 421);
    assert!(
        eventually(Duration::from_secs(3), || std::net::TcpStream::connect(("127.0.0.1", port)).is_err().then_some(()))
            .is_some()
    );
    // The busy one finishes its message, then is told 421 4.3.2.
    assert!(busy.command("DATA").is(354));
    assert!(busy.data_body("Subject: drained\r\n\r\nx\r\n").is(250));
    let closing = busy.command("MAIL FROM:<alice@example.com>");
    assert_eq!(closing.code, 421, "{closing:?}");
    assert!(closing.text.contains("4.3.2"));
    // The one that never finishes is told 421 when the drain time is over.
    let last = stuck.reply();
    assert_eq!(last.code, 421, "{last:?}");
    let status = proxy.wait_exit(Duration::from_secs(10)).expect("the proxy did not exit");
    assert!(status.success(), "{status:?}");
    assert_eq!(fake.record().messages.len(), 1);
}

/// The drain keeps its promise at the end of the drain time: a client
/// stalled in the middle of its message gets `421 4.3.2` at once and the
/// MTA never finishes that message; a client whose message the MTA already
/// has gets the MTA's `250`, however slow, before the process exits.
#[test]
fn sigterm_cuts_a_stalled_message_and_relays_the_reply_to_a_delivered_one() {
    let normal = FakeUpstream::start(Fault::None);
    let slow = FakeUpstream::start(Fault::SlowFinalReply(Duration::from_secs(4)));
    let (stalling, waiting) = (free_port(), free_port());
    let config = format!(
        "[server]\ndrain_timeout = \"2s\"\n{BATV_SECTION}{}{}",
        listener("outbound", stalling, normal.port, "none", ""),
        listener("outbound", waiting, slow.port, "none", "")
    );
    let mut proxy = Proxy::start(&config, &[stalling, waiting]);
    let mut stalled = Smtp::connect(stalling);
    stalled.command("EHLO stalled.test");
    assert!(stalled.command("MAIL FROM:<alice@example.com>").is(250));
    assert!(stalled.command("RCPT TO:<carol@remote.test>").is(250));
    assert!(stalled.command("DATA").is(354));
    stalled.send("Subject: half a message\r\n\r\nthe first half\r\n");
    let mut delivered = Smtp::connect(waiting);
    delivered.command("EHLO waiting.test");
    assert!(delivered.command("MAIL FROM:<alice@example.com>").is(250));
    assert!(delivered.command("RCPT TO:<carol@remote.test>").is(250));
    assert!(delivered.command("DATA").is(354));
    delivered.send("Subject: whole\r\n\r\nthe whole message\r\n.\r\n");
    std::thread::sleep(Duration::from_millis(500));
    let stopped = std::time::Instant::now();
    proxy.signal("TERM");
    let cut = stalled.reply();
    assert_eq!((cut.code, cut.text.contains("4.3.2")), (421, true), "{cut:?}");
    assert!(stopped.elapsed() < Duration::from_secs(4), "the stalled client waited {:?}", stopped.elapsed());
    let queued = delivered.reply();
    assert!(queued.is(250) && queued.text.contains("SLOW123"), "the delivered message's reply: {queued:?}");
    let closing = delivered.reply();
    assert_eq!(closing.code, 421, "{closing:?}");
    let status = proxy.wait_exit(Duration::from_secs(10)).expect("the proxy did not exit");
    assert!(status.success(), "{status:?}");
    assert!(normal.record().messages.is_empty(), "the cut message was finished upstream");
    assert_eq!(slow.record().messages.len(), 1);
}

#[test]
fn logs_are_json_with_decisions_and_queue_ids_and_never_hold_secrets() {
    let postfix = Postfix::shared();
    let port = free_port();
    let config = format!("{BATV_SECTION}{}", listener("inbound", port, postfix.port, "xclient", ""));
    let proxy = Proxy::start(&config, &[port]);
    let tagged = proxy.sign("alice@example.com");
    let t = send_mail(port, "", &[&tagged], "Subject: logged\r\n\r\nx\r\n");
    assert!(t.end.as_ref().unwrap().is(250));
    std::thread::sleep(Duration::from_millis(200));
    let log = proxy.log();
    let lines: Vec<serde_json::Value> = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(!lines.is_empty() && lines.len() == log.lines().count(), "every log line is JSON:\n{log}");
    let verdict = lines.iter().find(|l| l["message"] == "recipient verdict").expect("a verdict line");
    for field in ["session", "client", "sender", "recipient", "verdict", "reason", "key_id", "rule"] {
        assert!(!verdict[field].is_null(), "verdict line lacks {field}: {verdict}");
    }
    let relayed = lines.iter().find(|l| l["message"] == "message relayed").expect("a message line");
    assert_eq!(relayed["session"], verdict["session"]);
    // Postfix's queue id, so the message can be followed into the MTA's log.
    let queue_id = relayed["queue_id"].as_str().unwrap_or("").to_owned();
    assert!(!queue_id.is_empty(), "{relayed}");
    assert!(
        eventually(Duration::from_secs(5), || postfix.log().contains(&queue_id).then_some(())).is_some(),
        "queue id {queue_id} not in the MTA log"
    );
    use base64::Engine;
    let secret_b64 = base64::engine::general_purpose::STANDARD.encode(b"integration-test-secret");
    assert!(!log.contains("integration-test-secret") && !log.contains(&secret_b64), "the key reached the log");
}

#[test]
fn systemd_notifications_ready_reloading_stopping() {
    let fake = FakeUpstream::start(Fault::None);
    let dir = TestDir::new("notify.");
    let socket_path = dir.join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let port = free_port();
    let keys = dir.join("keys");
    write_keys(&keys, 1, b"notify-secret");
    let config = dir.write("cfg.toml", &format!("{BATV_SECTION}{}", listener("outbound", port, fake.port, "none", "")));
    let mut child = Running::spawn(
        std::process::Command::new(BIN)
            .args(["run", "--config"])
            .arg(&config)
            .env("NOTIFY_SOCKET", &socket_path)
            .stderr(std::process::Stdio::null()),
    );
    let receive = || {
        let mut buffer = [0u8; 256];
        let count = socket.recv(&mut buffer).expect("a notification");
        String::from_utf8_lossy(&buffer[..count]).into_owned()
    };
    assert!(receive().contains("READY=1"));
    std::process::Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap();
    let reloading = receive();
    assert!(reloading.contains("RELOADING=1") && reloading.contains("MONOTONIC_USEC="), "{reloading}");
    assert!(receive().contains("READY=1"));
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(receive().contains("STOPPING=1"));
    assert!(child.wait().success());
}

#[test]
fn a_second_proxy_on_the_same_address_refuses_to_start() {
    let fake = FakeUpstream::start(Fault::None);
    let port = free_port();
    let config = format!("{BATV_SECTION}{}", listener("outbound", port, fake.port, "none", ""));
    let first = Proxy::start(&config, &[port]);
    let second = std::process::Command::new(BIN).args(["run", "--config"]).arg(&first.config).output().unwrap();
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("cannot listen"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    // The first one still serves alone.
    let t = send_mail(port, "alice@example.com", &["carol@remote.test"], "Subject: x\r\n\r\nx\r\n");
    assert!(t.end.unwrap().is(250));
}

#[test]
fn a_second_proxy_on_the_same_ledger_file_says_who_holds_it() {
    let (first_port, second_port, upstream) = (free_port(), free_port(), free_port());
    let config = |port| {
        format!(
            "state_dir = \"state\"\n{BATV_SECTION}[ledger]\nstore = \"file\"\n{}",
            listener("outbound", port, upstream, "none", "")
        )
    };
    let first = Proxy::start(&config(first_port), &[first_port]);
    let second_config = first.dir.write("second.toml", &config(second_port));
    let second = std::process::Command::new(BIN)
        .args(["run", "--log-format", "human", "--config"])
        .arg(&second_config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "in use is not a configuration error: {said}");
    let ledger = first.dir.join("state/ledger.redb").display().to_string();
    assert!(said.contains("held by another batv-proxy") && said.contains(&ledger), "{said}");
    assert!(!said.contains('\u{1b}'), "colour codes written into a pipe: {said:?}");
}

/// A reload that cannot bind a new address changes nothing: the old
/// listener keeps serving, and the refusal is logged and counted.
#[test]
fn a_reload_onto_a_held_port_keeps_the_old_listener() {
    let fake = FakeUpstream::start(Fault::None);
    let (old, metrics) = (free_port(), free_port());
    let config = |listen: u16, extra: &str| {
        format!(
            "[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n{BATV_SECTION}{}{extra}",
            listener("outbound", listen, fake.port, "none", "")
        )
    };
    let proxy = Proxy::start(&config(old, ""), &[old, metrics]);
    // Another process holds the port the new configuration moves to.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap().port();
    let second = free_port();
    std::fs::write(&proxy.config, config(taken, &listener("inbound", second, fake.port, "none", ""))).unwrap();
    proxy.signal("HUP");
    assert!(
        eventually(Duration::from_secs(5), || proxy.log().contains("reload refused: cannot listen").then_some(()))
            .is_some(),
        "{}",
        proxy.log()
    );
    let (_, text) = http_get(metrics, "/metrics");
    assert_eq!(metric(&text, "batv_proxy_reloads_total{listener=\"\",outcome=\"refused\"}"), 1.0, "{text}");
    assert_eq!(metric(&text, "batv_proxy_reloads_total{listener=\"\",outcome=\"applied\"}"), 0.0, "{text}");
    // The old listener still serves, and the other new one was not started.
    let t = send_mail(old, "alice@example.com", &["carol@remote.test"], "Subject: still here\r\n\r\nx\r\n");
    assert!(t.end.unwrap().is(250));
    assert!(std::net::TcpStream::connect(("127.0.0.1", second)).is_err(), "half a reload was applied");
    drop(held);
}

/// Listeners whose addresses overlap cannot both listen: check-config and
/// run refuse them with status 2, so systemd does not restart in a loop.
#[test]
fn overlapping_listeners_are_a_configuration_error() {
    let dir = TestDir::new("overlap.");
    write_keys(&dir.join("keys"), 3, b"overlap-secret");
    let port = free_port();
    let config = dir.write(
        "cfg.toml",
        &format!(
            "{BATV_SECTION}{}{}",
            listener("inbound", port, 10025, "none", "").replace("127.0.0.1:", "0.0.0.0:"),
            listener("outbound", port, 10587, "none", "")
        )
        .replace("upstream = \"0.0.0.0:10025\"", "upstream = \"127.0.0.1:10025\""),
    );
    for command in ["check-config", "run"] {
        let output =
            std::process::Command::new(proxy_binary()).args([command, "--config"]).arg(&config).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
        assert!(stderr.contains("overlap") && stderr.contains("listener[2].listen"), "{command}: {stderr}");
    }
}
