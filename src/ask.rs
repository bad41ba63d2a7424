//! Asking a running proxy through its status endpoint (`[metrics] listen`):
//! `/healthz` for container health checks, `/verdicts` for `explain`.
//! Plain HTTP/1.0 over a blocking socket with a bounded wait and answer:
//! two GETs to our own endpoint do not warrant an HTTP client crate.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde_json::Value;

/// How long a question may take, connect and answer together.
const PATIENCE: Duration = Duration::from_secs(10);
/// The longest answer read.
const MAX_ANSWER_BYTES: u64 = 16 << 20;

/// Where to ask: a wildcard listen address is reached through loopback.
pub fn reachable(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        ip if ip.is_unspecified() => {
            let loopback: IpAddr = if ip.is_ipv4() { Ipv4Addr::LOCALHOST.into() } else { Ipv6Addr::LOCALHOST.into() };
            SocketAddr::new(loopback, listen.port())
        }
        _ => listen,
    }
}

/// GETs `path` (with its query) and returns the status and the body.
pub fn get(address: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut socket = std::net::TcpStream::connect_timeout(&address, PATIENCE)?;
    socket.set_read_timeout(Some(PATIENCE))?;
    socket.set_write_timeout(Some(PATIENCE))?;
    write!(socket, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
    let mut response = Vec::new();
    socket.take(MAX_ANSWER_BYTES).read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let status = response.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// The `/verdicts` path for what an admin typed: `name=value` pairs as
/// they are, a bare value (a queue id, session, Message-ID, address or
/// client) as `any=`.
pub fn verdicts_path(question: &str) -> String {
    let question = question.trim();
    if question.contains('=') && !question.starts_with('<') {
        let pairs: Vec<String> = question
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, value)) => format!("{name}={}", percent_encode(value)),
                None => pair.to_owned(),
            })
            .collect();
        format!("/verdicts?{}", pairs.join("&"))
    } else {
        format!("/verdicts?any={}", percent_encode(question))
    }
}

fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The records of a `/verdicts` answer, newest first, as an admin reads
/// them: one block per transaction.
pub fn describe(answer: &Value) -> String {
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let mut out = String::new();
    for record in answer["verdicts"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{}  {}  session {}  client {}\n  from {}",
            text(&record["time"]),
            text(&record["listener"]),
            text(&record["session"]),
            text(&record["client"]),
            text(&record["sender"]),
        ));
        if let Some(key) = record["signed_with_key"].as_u64() {
            out.push_str(&format!(", signed with key {key}"));
        } else if let Some(reason) = record["unsigned_reason"].as_str() {
            out.push_str(&format!(", not signed ({reason})"));
        }
        out.push('\n');
        for recipient in record["recipients"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  to {}: {} ({}), rule {}",
                text(&recipient["address"]),
                text(&recipient["verdict"]),
                text(&recipient["reason"]),
                text(&recipient["rule"]),
            ));
            for (name, field) in [("action", "action"), ("exemption", "exemption")] {
                if let Some(value) = recipient[field].as_str() {
                    out.push_str(&format!(", {name} {value}"));
                }
            }
            out.push_str(&format!(" -> {}\n", recipient["reply"]));
        }
        let message = &record["message"];
        if message.is_object() {
            let mut parts = Vec::new();
            if let Some(kind) = message["kind"].as_str() {
                parts.push(format!("{kind} by {}", text(&message["recognizer"])));
            }
            if let Some(verdict) = message["verdict"].as_str() {
                parts.push(format!("{verdict} ({})", text(&message["rule"])));
            }
            for (name, field) in [
                ("action", "action"),
                ("exemption", "exemption"),
                ("answers", "original_message_id"),
                ("ledger knew", "ledger_match"),
                ("found in", "ledger_found"),
                ("Message-ID", "message_id"),
                ("queue id", "queue_id"),
            ] {
                if let Some(value) = message[field].as_str() {
                    parts.push(format!("{name} {value}"));
                }
            }
            if !parts.is_empty() {
                out.push_str(&format!("  message: {}\n", parts.join(", ")));
            }
            out.push_str(&format!("  reply {}\n", text(&message["reply"])));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_become_verdict_queries() {
        assert_eq!(verdicts_path("4bXyZ12abc"), "/verdicts?any=4bXyZ12abc");
        assert_eq!(verdicts_path("<a.1@example.com>"), "/verdicts?any=%3Ca.1%40example.com%3E");
        assert_eq!(verdicts_path("rcpt=alice@example.com"), "/verdicts?rcpt=alice%40example.com");
        assert_eq!(verdicts_path("client=::1&session=x y"), "/verdicts?client=::1&session=x%20y");
        assert_eq!(reachable("0.0.0.0:9100".parse().unwrap()), "127.0.0.1:9100".parse().unwrap());
        assert_eq!(reachable("[::]:9100".parse().unwrap()), "[::1]:9100".parse().unwrap());
    }

    #[test]
    fn records_read_as_blocks() {
        let answer = serde_json::json!({"kept": 1, "verdicts": [{
            "time": "2026-11-25T10:00:00Z", "session": "s1", "listener": "inbound@0.0.0.0:25",
            "client": "192.0.2.7", "sender": "<>",
            "recipients": [{"address": "alice@example.com", "verdict": "missing", "reason": "untagged",
                            "rule": "untagged_inspect", "reply": 250}],
            "message": {"kind": "dsn", "recognizer": "rfc3464", "verdict": "reject", "rule": "not_ours",
                        "action": "reject", "original_message_id": "<x@y>", "reply": "550 5.7.1 Bounce refused"}
        }]});
        let text = describe(&answer);
        for needle in [
            "2026-11-25T10:00:00Z  inbound@0.0.0.0:25  session s1  client 192.0.2.7\n  from <>\n",
            "  to alice@example.com: missing (untagged), rule untagged_inspect -> 250\n",
            "  message: dsn by rfc3464, reject (not_ours), action reject, answers <x@y>\n  reply 550 5.7.1 Bounce refused\n",
        ] {
            assert!(text.contains(needle), "{needle:?} not in\n{text}");
        }
        assert_eq!(describe(&serde_json::json!({"kept": 0, "verdicts": []})), "");
    }
}
