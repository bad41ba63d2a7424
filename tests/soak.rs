//! Soak: mail flows while the upstream is killed and restarted, the proxy
//! is reloaded, then stopped. Every message the client saw accepted is in
//! the sink exactly once, and no message is ever there twice.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// 250 after the final dot.
    Accepted,
    /// Refused before the message was sent: safe to retry.
    Retry,
    /// The message was sent but no 250 came back: the client cannot know.
    Unknown,
}

fn reply(reader: &mut BufReader<TcpStream>) -> Option<u16> {
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return line.get(..3)?.parse().ok();
        }
    }
}

fn try_send(port: u16, id: &str) -> Outcome {
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else { return Outcome::Retry };
    stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut step = |line: &str, want: u16| -> bool {
        writer.write_all(line.as_bytes()).is_ok() && reply(&mut reader) == Some(want)
    };
    if reply_first(&mut step) {
        let body = format!("Subject: {id}\r\nMessage-ID: <{id}@example.com>\r\n\r\nsoak\r\n.\r\n");
        if writer.write_all(body.as_bytes()).is_err() {
            return Outcome::Unknown;
        }
        let outcome = if reply(&mut reader) == Some(250) { Outcome::Accepted } else { Outcome::Unknown };
        let _ = writer.write_all(b"QUIT\r\n");
        return outcome;
    }
    Outcome::Retry
}

/// Greeting, EHLO, MAIL, RCPT, DATA; true when DATA got its 354.
fn reply_first(step: &mut impl FnMut(&str, u16) -> bool) -> bool {
    step("", 220)
        && step("EHLO soak.test\r\n", 250)
        && step("MAIL FROM:<alice@example.com>\r\n", 250)
        && step("RCPT TO:<carol@remote.test>\r\n", 250)
        && step("DATA\r\n", 354)
}

fn start_sink(port: u16, dir: &std::path::Path) -> Running {
    let child = Running::spawn(
        Command::new("/usr/sbin/smtp-sink")
            .args(["-u", "root", "-d"])
            .arg(format!("{}/%M%S.", dir.display()))
            .arg(format!("127.0.0.1:{port}"))
            .arg("1000")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    assert!(wait_port(port, Duration::from_secs(5)));
    child
}

#[test]
fn mail_survives_upstream_restarts_reloads_and_shutdown() {
    provision();
    let dumps = TestDir::new("soak-sink.");
    let sink_port = free_port();
    let mut sink = start_sink(sink_port, &dumps.path);
    let port = free_port();
    let config = format!(
        "[server]\ndrain_timeout = \"5s\"\n{BATV_SECTION}{}",
        listener("outbound", port, sink_port, "none", "upstream_connect_timeout = \"2s\"\nupstream_timeout = \"5s\"")
    );
    let mut proxy = Proxy::start(&config, &[port]);

    let stop = Arc::new(AtomicBool::new(false));
    let client_stop = Arc::clone(&stop);
    let client = std::thread::spawn(move || {
        let mut outcomes: HashMap<String, Outcome> = HashMap::new();
        let mut n = 0;
        while !client_stop.load(Ordering::Relaxed) {
            let id = format!("soak{n}");
            match try_send(port, &id) {
                Outcome::Retry => std::thread::sleep(Duration::from_millis(20)),
                outcome => {
                    outcomes.insert(id, outcome);
                    n += 1;
                }
            }
        }
        outcomes
    });

    for round in 0..3 {
        std::thread::sleep(Duration::from_millis(700));
        // The MTA dies without warning, and comes back.
        sink.signal("KILL");
        sink.wait();
        std::thread::sleep(Duration::from_millis(300));
        sink = start_sink(sink_port, &dumps.path);
        std::thread::sleep(Duration::from_millis(500));
        if round < 2 {
            proxy.signal("HUP");
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    proxy.signal("TERM");
    let status = proxy.wait_exit(Duration::from_secs(15)).expect("the proxy did not stop");
    assert!(status.success(), "{status:?}");
    stop.store(true, Ordering::Relaxed);
    let outcomes = client.join().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    sink.signal("KILL");
    sink.wait();

    let mut copies: HashMap<String, usize> = HashMap::new();
    for entry in std::fs::read_dir(&dumps.path).unwrap().flatten() {
        let text = String::from_utf8_lossy(&std::fs::read(entry.path()).unwrap()).into_owned();
        if let Some(subject) = text.lines().find_map(|l| l.strip_prefix("Subject: ")) {
            *copies.entry(subject.trim().to_owned()).or_default() += 1;
        }
    }
    let accepted: Vec<&String> = outcomes.iter().filter(|(_, o)| **o == Outcome::Accepted).map(|(id, _)| id).collect();
    let unknown = outcomes.values().filter(|o| **o == Outcome::Unknown).count();
    assert!(accepted.len() > 50, "too little traffic to mean anything: {} accepted", accepted.len());
    for id in &accepted {
        assert_eq!(
            copies.get(*id).copied().unwrap_or(0),
            1,
            "{id} was accepted but is in the sink {:?} times",
            copies.get(*id)
        );
    }
    for (id, count) in &copies {
        assert!(*count == 1, "{id} is in the sink {count} times");
        assert!(outcomes.contains_key(id), "{id} in the sink was never sent");
    }
    eprintln!("soak: {} accepted, {unknown} unknown outcomes, {} in the sink", accepted.len(), copies.len());
}
