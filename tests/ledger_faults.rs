//! The file ledger heals (issue 18, item 2): after a commit fails with
//! ENOSPC redb refuses every write until it is reopened. The proxy keeps
//! the ids in memory, reopens the file with backoff, and meanwhile answers
//! bounces that only the ledger could accept with 451, never 550; once
//! space returns, everything recorded meanwhile is committed and such
//! bounces pass. The ledger lives on a 1 MiB tmpfs the test mounts (root).

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Sends a message with a fresh Message-ID through the outbound listener.
fn send_ours(outbound: u16) -> String {
    let id = format!("<{}@example.com>", unique("ours"));
    let body = format!("From: judy@example.com\r\nSubject: ours\r\nMessage-ID: {id}\r\n\r\nhello\r\n");
    let t = send_mail(outbound, "judy@example.com", &["nobody@remote.test"], &body);
    assert!(t.end.unwrap().is(250));
    id
}

/// The reply to the end of DATA of a bounce for `original`.
fn bounce_reply(inbound: u16, original: &str) -> Reply {
    let t = send_mail(inbound, "", &["judy@example.com"], &bounce_for(original, "judy@example.com"));
    assert_eq!(t.rcpts[0].code, 250, "untagged recipients are judged after DATA");
    t.end.unwrap()
}

fn metric(port: u16, sample: &str) -> f64 {
    let (_, text) = http_get(port, "/metrics");
    metric_value(&text, sample).unwrap_or_else(|| panic!("no {sample} in\n{text}"))
}

#[test]
fn the_file_ledger_recovers_after_the_disk_fills_and_bounces_wait_meanwhile() {
    let started = Instant::now();
    let sink = Sink::start();
    let dir = TestDir::new("ledger-full.");
    write_keys(&dir.join("keys"), 3, b"integration-test-secret");
    // Outside the proxy's directory, so that it is unmounted before either is removed.
    let state_parent = TestDir::new("ledger-full-state.");
    let state = Tmpfs::mount(&state_parent.join("mnt"), "1m");
    let (inbound, outbound, metrics) = (free_port(), free_port(), free_port());
    let config = format!(
        "state_dir = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n{BATV_SECTION}[ledger]\nstore = \"file\"\n{}{}",
        state.path.display(),
        listener("inbound", inbound, sink.port, "none", ""),
        listener("outbound", outbound, sink.port, "none", "")
    );
    let mut proxy = Proxy::start_in(dir, &config, &[inbound, outbound, metrics]);
    let committed = |proxy: &Proxy| {
        eventually(Duration::from_secs(10), || (metric(metrics, "batv_proxy_ledger_pending") == 0.0).then_some(()))
            .unwrap_or_else(|| panic!("the ledger did not commit; log:\n{}", proxy.log()))
    };
    let before = send_ours(outbound);
    let recorded = eventually(Duration::from_secs(10), || bounce_reply(inbound, &before).is(250).then_some(()));
    assert!(recorded.is_some(), "a bounce for mail just sent was refused");

    // Fill the disk: the next commit fails with ENOSPC.
    let filler = state.path.join("filler");
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=4k", "count=1024", &format!("of={}", filler.display())])
        .output()
        .unwrap();
    let during: Vec<String> = (0..5).map(|_| send_ours(outbound)).collect();
    let failed = eventually(Duration::from_secs(10), || proxy.log().contains("ledger write failed").then_some(()));
    assert!(failed.is_some(), "no write failed on a full disk; log:\n{}", proxy.log());

    // Meanwhile: what the ledger cannot vouch for waits (451), never 550;
    // ids it kept in memory and ids committed before still pass.
    assert!(bounce_reply(inbound, &during[0]).is(250), "an id kept in memory");
    let unknown = bounce_reply(inbound, "<never-sent@example.com>");
    assert!(unknown.text.starts_with("451 4.3.0"), "{unknown:?}");
    assert!(bounce_reply(inbound, &before).is(250), "an id committed before");
    // And the operator sees it.
    assert!(metric(metrics, "batv_proxy_ledger_write_errors_total") > 0.0);
    assert!(metric(metrics, "batv_proxy_ledger_pending") >= 5.0, "the ids are kept");
    let (status, health) = http_get(metrics, "/healthz");
    assert_eq!(status, 503, "{health}");
    assert!(health.contains("ledger file") && health.contains("failing"), "{health}");
    // Still failing after a while: every retry reopens and fails again.
    std::thread::sleep(Duration::from_secs(1));
    assert!(metric(metrics, "batv_proxy_ledger_write_errors_total") >= 2.0, "retried with backoff");
    let outage_started = Instant::now();

    // Space returns: the writer reopens the file and commits what it kept.
    std::fs::remove_file(&filler).unwrap();
    committed(&proxy);
    let recovered_in = outage_started.elapsed();
    assert!(recovered_in < Duration::from_secs(8), "recovered in {recovered_in:?}");
    let (status, health) = http_get(metrics, "/healthz");
    assert_eq!(status, 200, "{health}");
    assert!(proxy.log().contains("ledger writes work again"));
    assert_eq!(bounce_reply(inbound, "<never-sent@example.com>").code, 550, "a definite answer again");
    assert!(bounce_reply(inbound, &during[1]).is(250));

    // What was kept is on disk: a new process on the same file finds it.
    proxy.signal("TERM");
    assert!(proxy.wait_exit(Duration::from_secs(15)).is_some_and(|status| status.success()));
    let restarted = Running::spawn(
        std::process::Command::new(proxy_binary())
            .args(["run", "--config"])
            .arg(&proxy.config)
            .stderr(std::process::Stdio::null()),
    );
    assert!(wait_port(inbound, Duration::from_secs(10)));
    for id in &during {
        assert!(bounce_reply(inbound, id).is(250), "{id} was lost");
    }
    drop(restarted);
    drop(state);
    eprintln!(
        "ledger on a full tmpfs: recovered {recovered_in:?} after space returned; test took {:?}",
        started.elapsed()
    );
}
