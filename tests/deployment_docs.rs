//! The documentation cannot drift from the program: the deployment guides
//! quote their snippet files verbatim, every snippet configuration passes
//! `check-config`, every command line shown parses, every metric, label
//! value, log message, log field, rule and reply that docs/operations.md
//! names is one the program produces (and the reverse for metrics, rules
//! and label values), and the Grafana dashboard queries only real metrics.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use batv_proxy::dsn::Kind;
use batv_proxy::metrics::{MessageOutcome, ReloadOutcome, SessionOutcome, TlsHandshake, UpstreamError};
use batv_proxy::policy::{
    ContentResult, ContentRule, RecipientRule, RejectReason, Stage, Unsigned, VerdictReason, VerdictResult,
};
use common::fake_upstream::{FakeUpstream, Fault};
use common::postfix_snippets::repository_file;
use common::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The guides: README.md and docs/*.md.
fn guides() -> Vec<PathBuf> {
    let mut guides: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    guides.sort();
    guides.insert(0, root().join("README.md"));
    guides
}

/// Snippet files: every file under docs/<subdirectory>/.
fn snippet_files() -> Vec<String> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root().join("docs")).unwrap().flatten() {
        if entry.path().is_dir() {
            for file in std::fs::read_dir(entry.path()).unwrap().flatten() {
                let path = file.path();
                files.push(path.strip_prefix(root()).unwrap().display().to_string());
            }
        }
    }
    files.sort();
    files
}

fn source_text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let mut text = String::new();
        let mut stack = vec![root().join("src")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    text.push_str(&std::fs::read_to_string(&path).unwrap());
                    text.push('\n');
                }
            }
        }
        text
    })
}

/// Whether the source has a string literal starting with `text`.
fn literal_in_source(text: &str) -> bool {
    source_text().contains(&format!("\"{text}"))
}

/// A markdown text without its fenced code blocks.
fn without_fences(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The lines of fenced code blocks.
fn fenced_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if fenced {
            out.push(line.to_owned());
        }
    }
    out
}

/// Inline code spans, outside fenced blocks.
fn code_spans(text: &str) -> Vec<String> {
    without_fences(text).split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// The text of a `## heading` section, up to the next `## `.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text.find(&format!("\n## {heading}\n")).unwrap_or_else(|| panic!("no section {heading}"));
    let rest = &text[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

#[test]
fn guides_quote_their_snippet_files_verbatim() {
    let mut quoted = BTreeSet::new();
    for guide in guides() {
        let text = std::fs::read_to_string(&guide).unwrap();
        let mut rest = text.as_str();
        while let Some(index) = rest.find("<!-- snippet: ") {
            rest = &rest[index + 14..];
            let path = rest[..rest.find(" -->").unwrap()].to_owned();
            let after = &rest[rest.find("-->\n").unwrap() + 4..];
            assert!(after.starts_with("```"), "{}: a fenced block must follow the marker of {path}", guide.display());
            let body_start = after.find('\n').unwrap() + 1;
            let body_end = after[body_start..].find("\n```").map(|i| body_start + i + 1).unwrap();
            let quoted_text = &after[body_start..body_end];
            let file = repository_file(&path);
            assert!(
                quoted_text == file,
                "{} quotes {path}, but the file differs; copy the file into the guide.\n--- guide ---\n{quoted_text}\n--- file ---\n{file}",
                guide.display()
            );
            quoted.insert(path);
        }
    }
    for file in snippet_files() {
        assert!(quoted.contains(&file), "{file} is not quoted in any guide");
    }
    assert!(quoted.len() >= 12, "{quoted:?}");
}

/// A guide's TOML with paths pointing into `dir` (keys, state, certificates).
fn runnable_config(path: &str, dir: &TestDir, pki: &TestPki) -> PathBuf {
    let mut text = repository_file(path)
        .replace("/var/lib/batv-proxy", &dir.join("state").display().to_string())
        .replace("/etc/batv-proxy/exchange-ca.pem", &pki.path("ca.pem"));
    for name in ["fullchain.pem", "privkey.pem"] {
        let target =
            if name == "fullchain.pem" { pki.path("mx.example.com.pem") } else { pki.path("mx.example.com.key") };
        text = text.replace(&format!("/etc/letsencrypt/live/mx.example.com/{name}"), &target);
    }
    std::fs::create_dir_all(dir.join("state")).unwrap();
    write_keys(&dir.join("state/keys"), 1, b"printable-secret-for-the-docs-test");
    dir.write(&path.replace('/', "_"), &text)
}

#[test]
fn every_configuration_in_the_guides_passes_check_config() {
    let pki = TestPki::new();
    let tomls: Vec<String> = snippet_files().into_iter().filter(|f| f.ends_with(".toml")).collect();
    assert!(tomls.len() >= 4, "{tomls:?}");
    for path in tomls {
        let dir = TestDir::new("docs-config.");
        let config = runnable_config(&path, &dir, &pki);
        let output = Command::new(BIN).args(["check-config", "--config"]).arg(&config).output().unwrap();
        assert!(
            output.status.success(),
            "{path}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The TOML fences of docs/operations.md, each added to a minimal working
/// configuration, pass check-config: the examples admins copy are valid.
#[test]
fn every_toml_example_in_operations_passes_check_config() {
    let doc = repository_file("docs/operations.md");
    let mut examples = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        let trimmed = line.trim_start();
        match (&mut current, trimmed) {
            (None, "```toml") => current = Some(String::new()),
            (Some(_), "```") => examples.extend(current.take()),
            (Some(text), _) => {
                text.push_str(trimmed);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(examples.len() >= 5, "{examples:?}");
    assert!(
        examples.iter().any(|e| e.contains("[[policy.exemption]]"))
            && examples.iter().any(|e| e.contains("[policy.actions]"))
    );
    for example in examples {
        let dir = TestDir::new("docs-example.");
        write_keys(&dir.join("keys"), 1, b"printable-secret-for-the-docs-test");
        let config = format!(
            "state_dir = \"{}\"\n[batv]\nkey_file = \"keys\"\ndomains = [\"example.com\", \"example.org\"]\n{example}\n{}",
            dir.join("state").display(),
            listener("inbound", 2525, 10025, "xclient", "")
        );
        let path = dir.write("example.toml", &config);
        let output = Command::new(BIN).args(["check-config", "--config"]).arg(&path).output().unwrap();
        assert!(
            output.status.success(),
            "{example}\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// `(subcommand, flags)` for every `batv-proxy SUBCOMMAND ...` in the
/// guides' code, inline or fenced, and in the shell snippets.
fn command_lines() -> Vec<(String, String, Vec<String>)> {
    let mut lines: Vec<(String, String)> = Vec::new();
    for guide in guides() {
        let text = std::fs::read_to_string(&guide).unwrap();
        let name = guide.strip_prefix(root()).unwrap().display().to_string();
        for line in fenced_lines(&text).into_iter().chain(code_spans(&text)) {
            lines.push((name.clone(), line));
        }
    }
    for file in snippet_files().into_iter().filter(|f| f.ends_with(".sh")) {
        for line in repository_file(&file).lines() {
            lines.push((file.clone(), line.to_owned()));
        }
    }
    let mut commands = Vec::new();
    for (file, line) in lines {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let tokens: Vec<String> =
            line.split_whitespace().map(|t| t.trim_matches(|c| "[]()'\"".contains(c)).to_owned()).collect();
        for (index, token) in tokens.iter().enumerate() {
            let Some(next) = tokens.get(index + 1) else { continue };
            // A command starts the line, or follows `--` (runuser), `&&`, `;`, `exec`, `sudo`.
            let starts_command = index == 0 || ["--", "&&", ";", "exec", "sudo"].contains(&tokens[index - 1].as_str());
            if token != "batv-proxy" || !starts_command || next.starts_with('-') || next.is_empty() {
                continue;
            }
            if !next.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
                continue;
            }
            let flags = tokens[index + 2..]
                .iter()
                .take_while(|t| !["&&", "|", ";", "\\|"].contains(&t.as_str()))
                .filter(|t| t.starts_with("--"))
                .map(|t| t.split(['=', '\\']).next().unwrap().to_owned())
                .collect();
            commands.push((file.clone(), next.clone(), flags));
        }
    }
    commands
}

#[test]
fn every_command_line_in_the_guides_parses() {
    let commands = command_lines();
    let subcommands: BTreeSet<&str> = commands.iter().map(|(_, s, _)| s.as_str()).collect();
    for expected in ["run", "check-config", "sign", "verify", "keygen", "health", "inspect"] {
        assert!(subcommands.contains(expected), "no guide shows `batv-proxy {expected}`: {subcommands:?}");
    }
    let mut help = BTreeMap::new();
    for (file, subcommand, flags) in &commands {
        let text = help.entry(subcommand.clone()).or_insert_with(|| {
            let output = Command::new(BIN).arg(subcommand).arg("--help").output().unwrap();
            assert!(
                output.status.success(),
                "{file}: `batv-proxy {subcommand} --help` fails: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8_lossy(&output.stdout).into_owned()
        });
        for flag in flags {
            assert!(text.contains(flag.as_str()), "{file}: `batv-proxy {subcommand}` has no {flag}:\n{text}");
        }
    }
}

/// What a running proxy produced: /metrics text and JSON log lines.
struct Observed {
    metrics: String,
    logs: Vec<serde_json::Value>,
}

fn http_get(port: u16, path: &str) -> String {
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(socket, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).unwrap();
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default()
}

/// A delivery status notification (RFC 3464) returning a message whose
/// Message-ID is `original`.
fn dsn(original: &str, to: &str) -> String {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@remote.test>\r\nTo: {to}\r\nSubject: Undelivered Mail Returned to Sender\r\n\
         Message-ID: <{}@remote.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nThe mail system could not deliver your message.\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.remote.test\r\n\r\n\
         Final-Recipient: rfc822; nobody@remote.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         --B\r\nContent-Type: message/rfc822\r\n\r\nFrom: {to}\r\nTo: nobody@remote.test\r\nSubject: the original\r\n\
         Message-ID: {original}\r\n\r\noriginal body\r\n--B--\r\n",
        unique("dsn")
    )
}

/// An out-of-office reply to the message `in_reply_to`.
fn vacation(in_reply_to: &str, to: &str) -> String {
    format!(
        "From: carol@remote.test\r\nTo: {to}\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\n\
         In-Reply-To: {in_reply_to}\r\nMessage-ID: <{}@remote.test>\r\n\r\nI am away until Monday.\r\n",
        unique("vacation")
    )
}

/// Drives a proxy through every kind of event the metrics count, with
/// `untagged_bounce = "inspect"` (the default) and the ledger on; and a
/// second proxy with `untagged_bounce = "reject"`, for its log line.
fn observed() -> &'static Observed {
    static OBSERVED: OnceLock<Observed> = OnceLock::new();
    OBSERVED.get_or_init(|| {
        let fake = FakeUpstream::start(Fault::None);
        let pki = TestPki::new();
        let (inbound, outbound, dead, implicit, metrics) =
            (free_port(), free_port(), free_port(), free_port(), free_port());
        let tls = format!(
            "[listener.tls]\nmode = \"implicit\"\ncert = \"{}\"\nkey = \"{}\"\nhandshake_timeout = \"2s\"\n",
            pki.path("mx.example.com.pem"),
            pki.path("mx.example.com.key")
        );
        let config = format!(
            "state_dir = \"state\"\n[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n{BATV_SECTION}\
             [policy.message_id_patterns]\n\"example.com\" = [\"*@mx.example.com\"]\n\
             [policy.actions]\nexpired_tag = \"mark\"\n\
             [[policy.exemption]]\nname = \"relay-dave\"\nsenders = [\"dave@example.com\"]\nexempts = [\"signing\"]\n\
             [ledger]\nstore = \"file\"\n{}{}{}{}",
            listener("inbound", inbound, fake.port, "none", ""),
            listener("outbound", outbound, fake.port, "none", ""),
            listener("outbound", dead, free_port(), "none", ""),
            listener("outbound", implicit, fake.port, "none", &tls),
        );
        let proxy = Proxy::start(&config, &[inbound, outbound, dead, metrics]);
        let ok = |t: &Transaction| t.end.as_ref().is_some_and(|r| r.is(250));
        let ours = format!("<{}@laptop.example.com>", unique("ours"));
        let body = format!("Subject: a\r\nMessage-ID: {ours}\r\n\r\nx\r\n");
        assert!(ok(&send_mail(outbound, "alice@example.com", &["carol@remote.test"], &body)));
        assert!(ok(&send_mail(outbound, "erin@remote.test", &["carol@remote.test"], "Subject: b\r\n\r\nx\r\n")));
        // An exempt sender stays unsigned; a bounce to an expired tag is delivered marked.
        assert!(ok(&send_mail(outbound, "dave@example.com", &["carol@remote.test"], "Subject: d\r\n\r\nx\r\n")));
        let month_ago = std::process::Command::new("date").args(["-u", "-d", "30 days ago", "+%F"]).output().unwrap();
        let expired = proxy.sign_on("bob@example.com", String::from_utf8_lossy(&month_ago.stdout).trim());
        assert!(ok(&send_mail(inbound, "", &[&expired], "Subject: e\r\n\r\nx\r\n")));
        let tagged = proxy.sign("bob@example.com");
        assert!(ok(&send_mail(inbound, "", &[&tagged], "Subject: c\r\n\r\nx\r\n")));
        let forged = format!("{}{}", &tagged[..9], &tagged[9..].replacen(&tagged[9..10], "x", 1));
        assert_eq!(send_mail(inbound, "", &[&forged], "x").rcpts[0].code, 550);
        // Untagged bounces and automatic replies: accepted at RCPT, judged after DATA.
        let refused_after_data = |t: Transaction, text: &str| {
            assert_eq!((t.rcpts[0].code, t.data.as_ref().map(|r| r.code)), (250, Some(354)));
            let end = t.end.unwrap();
            assert!(end.is(550) && end.text.contains(text), "{end:?}");
        };
        refused_after_data(send_mail(inbound, "", &["bob@example.com"], "x"), "5.7.1 Bounce refused");
        refused_after_data(
            send_mail(inbound, "", &["bob@example.com"], &dsn("<never@spammer.test>", "bob@example.com")),
            "5.7.1 Bounce refused",
        );
        refused_after_data(
            send_mail(
                inbound,
                "carol@remote.test",
                &["bob@example.com"],
                &vacation("<x@spammer.test>", "bob@example.com"),
            ),
            "5.7.1 Automatic reply refused",
        );
        assert!(ok(&send_mail(inbound, "", &["bob@example.com"], &dsn("<1.2@mx.example.com>", "bob@example.com"))));
        assert!(
            eventually(Duration::from_secs(5), || proxy
                .log()
                .contains(&format!("\"message_id\":\"{ours}\""))
                .then_some(()))
            .is_some(),
            "the outbound listener did not log the Message-ID"
        );
        // The ledger commits in batches, a moment after the message.
        let from_ledger = eventually(Duration::from_secs(5), || {
            let t =
                send_mail(inbound, "carol@remote.test", &["alice@example.com"], &vacation(&ours, "alice@example.com"));
            ok(&t).then_some(())
        });
        assert!(from_ledger.is_some(), "an automatic reply to a message in the ledger was refused");
        assert!(ok(&send_mail(inbound, "carol@remote.test", &["bob@example.com"], "Subject: d\r\n\r\nx\r\n")));
        let mut smtp = Smtp::connect(outbound);
        smtp.command("EHLO client.test");
        assert!(smtp.command("MAIL FROM:<alice@example.com>").is(250));
        assert!(smtp.command("RCPT TO:<carol@remote.test>").is(250));
        assert!(smtp.command("DATA").is(354));
        smtp.send("Subject: bare\r\n\r\nbare\nline\r\n.\r\n");
        assert_eq!(smtp.reply().code, 550);
        smtp.quit();
        let refused = Smtp::connect(dead);
        assert_eq!(refused.greeting.code, 421);
        let mut plain = std::net::TcpStream::connect(("127.0.0.1", implicit)).unwrap();
        plain.write_all(b"EHLO not-tls.test\r\n").unwrap();
        let _ = plain.read(&mut [0u8; 64]);
        proxy.signal("HUP");
        assert!(eventually(Duration::from_secs(5), || proxy.log().contains("reload applied").then_some(())).is_some());
        let metrics = http_get(metrics, "/metrics");
        let mut logs: Vec<serde_json::Value> =
            proxy.log().lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let port = free_port();
        let rejecting = Proxy::start(
            &format!(
                "{BATV_SECTION}[policy]\nuntagged_bounce = \"reject\"\n{}",
                listener("inbound", port, fake.port, "none", "")
            ),
            &[port],
        );
        let t = send_mail(port, "", &["bob@example.com"], &dsn("<1.2@mx.example.com>", "bob@example.com"));
        assert_eq!((t.rcpts[0].code, t.data.map(|r| r.code)), (250, Some(550)), "untagged_bounce = \"reject\"");
        logs.extend(rejecting.log().lines().filter_map(|l| serde_json::from_str(l).ok()));
        Observed { metrics, logs }
    })
}

/// Metric families in the exposition: name → (type, sample names, label names).
fn families(metrics: &str) -> BTreeMap<String, (String, BTreeSet<String>, BTreeSet<String>)> {
    let mut families = BTreeMap::new();
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            families.insert(name.to_owned(), (kind.to_owned(), BTreeSet::new(), BTreeSet::new()));
        } else if !line.starts_with('#') && !line.is_empty() {
            let sample = line.split(['{', ' ']).next().unwrap();
            let family = families
                .iter_mut()
                .filter(|(name, _)| sample.starts_with(name.as_str()))
                .max_by_key(|(name, _)| name.len())
                .unwrap_or_else(|| panic!("sample {sample} outside a family"))
                .1;
            family.1.insert(sample.to_owned());
            if let Some(labels) = line.split_once('{').map(|(_, l)| l.split_once('}').unwrap().0) {
                for pair in labels.split("\",") {
                    family.2.insert(pair.split('=').next().unwrap().to_owned());
                }
            }
        }
    }
    families
}

fn sample_names(metrics: &str) -> BTreeSet<String> {
    families(metrics).values().flat_map(|(_, samples, _)| samples.clone()).collect()
}

/// Label names of each sample name.
fn sample_labels(metrics: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for (_, samples, labels) in families(metrics).values() {
        for sample in samples {
            let mut labels = labels.clone();
            if sample.ends_with("_bucket") {
                labels.insert("le".into());
            }
            out.insert(sample.clone(), labels);
        }
    }
    out
}

#[test]
fn the_proxy_exposes_every_metric_family() {
    let families = families(&observed().metrics);
    // One family per registration in src/metrics.rs.
    let registered = source_text().matches("registry.register(").count();
    assert_eq!(families.len(), registered, "{:?}", families.keys());
}

/// Reply codes like `421 4.4.0`: the enhanced code starts a string
/// literal and the code is used in a reply, or both start one literal.
fn reply_in_source(code: &str, enhanced: &str) -> bool {
    let source = source_text();
    source.contains(&format!("\"{code} {enhanced} "))
        || (source.contains(&format!("\"{enhanced} "))
            && [format!(" {code},"), format!("({code},")].iter().any(|call| source.contains(call.as_str())))
}

#[test]
fn operations_doc_names_only_what_the_program_produces() {
    let doc = repository_file("docs/operations.md");
    let observed = observed();
    let samples = sample_names(&observed.metrics);
    let families = families(&observed.metrics);
    let labels: BTreeSet<String> = sample_labels(&observed.metrics).into_values().flatten().collect();
    let log_keys: BTreeSet<String> =
        observed.logs.iter().flat_map(|l| l.as_object().unwrap().keys().cloned()).collect();
    let mut checked = 0;
    for heading in [
        "Metrics",
        "Logs",
        "Troubleshooting",
        "Grace period",
        "From monitor mode to enforcement",
        "Untagged bounces and automatic replies",
    ] {
        // The troubleshooting table also names the MTAs' settings.
        let names_only_ours = heading != "Troubleshooting";
        for span in code_spans(section(&doc, heading)) {
            let span = span.trim();
            let words: Vec<&str> = span.split_whitespace().collect();
            if words.len() >= 2
                && words[0].len() == 3
                && words[0].chars().all(|c| c.is_ascii_digit())
                && words[1].chars().next().is_some_and(|c| c.is_ascii_digit())
            {
                for reply in span.split(" / ") {
                    let (code, enhanced) = reply.trim().split_once(' ').unwrap();
                    let enhanced = enhanced.split_whitespace().next().unwrap();
                    assert!(reply_in_source(code, enhanced), "{heading}: reply `{reply}` is not one batv-proxy gives");
                }
                checked += 1;
            } else if let Some(metric) = span.strip_prefix("batv_proxy_") {
                let (name, matchers) = match metric.split_once('{') {
                    Some((name, matchers)) => (format!("batv_proxy_{name}"), matchers.trim_end_matches('}')),
                    None => (span.to_owned(), ""),
                };
                assert!(
                    samples.contains(&name) || families.contains_key(&name),
                    "{heading}: metric `{name}` is not exposed:\n{}",
                    observed.metrics
                );
                for matcher in matchers.split(',').filter(|m| !m.is_empty()) {
                    let (label, value) = matcher.split_once('=').unwrap();
                    assert!(labels.contains(label), "{heading}: no label {label} ({span})");
                    let value = value.trim_start_matches('~').trim_matches('"');
                    assert!(
                        value.contains('*') || literal_in_source(value),
                        "{heading}: no label value {value} ({span})"
                    );
                }
                checked += 1;
            } else if let Some((key, value)) = span.split_once(" = ") {
                let value = value.trim_matches('"');
                assert!(literal_in_source(key), "{heading}: no configuration key {key}");
                assert!(
                    value.chars().all(|c| c.is_ascii_digit() || "-.:".contains(c))
                        || ["true", "false"].contains(&value)
                        || literal_in_source(value),
                    "{heading}: `{span}`: no value {value}"
                );
                checked += 1;
            } else if names_only_ours
                && span.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && span.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            {
                // A log field of a line the drive cannot provoke (a failing ledger) is one the source sets.
                let log_field_in_source = source_text().contains(&format!("{span} = "));
                assert!(
                    literal_in_source(span) || labels.contains(span) || log_keys.contains(span) || log_field_in_source,
                    "{heading}: `{span}` is neither a label, a log field nor a value in the source"
                );
                checked += 1;
            } else if names_only_ours && span.len() >= 4 && span.chars().all(|c| c.is_ascii_uppercase()) {
                assert!(literal_in_source(span), "{heading}: `{span}` is not a verb the source knows");
                checked += 1;
            }
        }
    }
    assert!(checked > 150, "only {checked} names checked: did the doc's format change?");
}

#[test]
fn operations_doc_log_table_matches_the_log_lines() {
    let doc = repository_file("docs/operations.md");
    let logs = &observed().logs;
    let mut rows = 0;
    // A line belongs to the row with the longest message it starts with.
    let row_messages: Vec<&str> = section(&doc, "Logs")
        .lines()
        .filter_map(|line| line.split('|').nth(1))
        .map(|cell| cell.trim())
        .filter(|cell| cell.starts_with('`'))
        .map(|cell| cell.trim_matches('`'))
        .collect();
    let row_of =
        |logged: &str| row_messages.iter().filter(|row| logged.starts_with(**row)).max_by_key(|row| row.len()).copied();
    for line in section(&doc, "Logs").lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 5 || !cells[1].starts_with('`') {
            continue;
        }
        if !["INFO", "WARN", "ERROR", "DEBUG"].contains(&cells[2]) {
            continue;
        }
        rows += 1;
        let message = cells[1].trim_matches('`');
        assert!(literal_in_source(message), "no log message starts with `{message}`");
        let fields: Vec<&str> = cells[3].split(',').map(|f| f.trim().trim_matches('`')).collect();
        let seen: Vec<&serde_json::Value> =
            logs.iter().filter(|l| l["message"].as_str().is_some_and(|m| row_of(m) == Some(message))).collect();
        for record in &seen {
            assert_eq!(record["level"].as_str(), Some(cells[2]), "level of `{message}`: {record}");
        }
        if let Some(record) = seen.first() {
            for field in &fields {
                assert!(!record[field].is_null(), "`{message}` has no field {field}: {record}");
            }
        } else {
            for field in &fields {
                let source = source_text();
                assert!(
                    source.contains(&format!("{field} = ")) || source.contains(&format!(" {field},")),
                    "`{message}`: no field {field} in the source"
                );
            }
        }
    }
    assert!(rows >= 15, "only {rows} log rows found");
    for message in [
        "recipient verdict",
        "bounce refused at DATA",
        "content verdict",
        "message relayed",
        "message refused",
        "sender signed",
    ] {
        assert!(logs.iter().any(|l| l["message"] == message), "the drive made no `{message}` line");
    }
}

/// The `rule` of each recognizer in src/dsn, as the module lists them
/// (its own tests hold every verdict to those lists).
fn recognizer_rules() -> BTreeSet<String> {
    batv_proxy::dsn::dsn_rules()
        .chain(batv_proxy::dsn::AUTO_REPLY_RULES.iter().copied())
        .chain(["none"])
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_label_value_and_rule_of_the_program_is_documented() {
    let doc = repository_file("docs/operations.md");
    let spans: BTreeSet<String> =
        code_spans(section(&doc, "Metrics")).into_iter().chain(code_spans(section(&doc, "Logs"))).collect();
    // Every label value and rule the program has: its closed label sets.
    let mut values = BTreeSet::new();
    let mut add = |labels: &mut dyn Iterator<Item = &'static str>| values.extend(labels.map(str::to_owned));
    add(&mut SessionOutcome::ALL.iter().map(|v| v.as_str()));
    add(&mut MessageOutcome::ALL.iter().map(|v| v.as_str()));
    add(&mut UpstreamError::ALL.iter().map(|v| v.as_str()));
    add(&mut TlsHandshake::ALL.iter().map(|v| v.as_str()));
    add(&mut ReloadOutcome::ALL.iter().map(|v| v.as_str()));
    add(&mut RecipientRule::ALL.iter().map(|v| v.as_str()));
    add(&mut ContentRule::ALL.iter().map(|v| v.as_str()));
    add(&mut ContentResult::ALL.iter().map(|v| v.as_str()));
    add(&mut RejectReason::ALL.iter().map(|v| v.as_str()));
    add(&mut Stage::ALL.iter().map(|v| v.as_str()));
    add(&mut Unsigned::ALL.iter().map(|v| v.as_str()));
    add(&mut VerdictResult::ALL.iter().map(|v| v.as_str()));
    add(&mut VerdictReason::ALL.iter().map(|v| v.as_str()));
    add(&mut [Kind::Dsn, Kind::AutoReply, Kind::None].into_iter().map(Kind::as_str));
    add(&mut batv_proxy::cluster_metrics::KeyRoleLabel::ALL.iter().map(|v| v.as_str()));
    let recognizers = recognizer_rules();
    for expected in ["rfc3464", "mdn", "postfix_plain", "exchange_oof", "vacation", "auto_submitted", "none"] {
        assert!(recognizers.contains(expected), "recognizer {expected} not found in src/dsn: {recognizers:?}");
    }
    values.extend(recognizers);
    assert!(values.len() > 80, "{values:?}");
    let missing: Vec<&String> = values.iter().filter(|v| !spans.contains(*v)).collect();
    assert!(missing.is_empty(), "docs/operations.md does not explain {missing:?}");
    // And every metric family.
    for family in families(&observed().metrics).keys() {
        assert!(doc.contains(&format!("`{family}")), "docs/operations.md does not list {family}");
    }
}

#[test]
fn grafana_dashboard_queries_only_metrics_and_labels_that_exist() {
    let text = repository_file("dist/grafana-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dist/grafana-dashboard.json is JSON");
    let mut expressions = Vec::new();
    fn walk(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    if ["expr", "definition"].contains(&key.as_str()) {
                        out.extend(value.as_str().map(str::to_owned));
                    }
                    walk(value, out);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(&dashboard, &mut expressions);
    assert!(expressions.len() >= 12, "{expressions:?}");
    let observed = observed();
    let labels = sample_labels(&observed.metrics);
    let mut used = BTreeSet::new();
    for expression in &expressions {
        let names: Vec<String> = expression
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("batv_proxy_"))
            .map(str::to_owned)
            .collect();
        assert!(!names.is_empty(), "no batv-proxy metric in {expression}");
        let mut available = BTreeSet::new();
        for name in &names {
            let Some(names_labels) = labels.get(name) else {
                panic!("{expression}: {name} is not a metric batv-proxy exposes:\n{}", observed.metrics)
            };
            available.extend(names_labels.iter().cloned());
            used.insert(name.clone());
        }
        // Labels in `by (...)` and in matchers must exist on those metrics.
        let mut referenced = Vec::new();
        for part in expression.split("by (").skip(1) {
            referenced.extend(part.split(')').next().unwrap().split(',').map(|l| l.trim().to_owned()));
        }
        for part in expression.split('{').skip(1) {
            for matcher in part.split('}').next().unwrap().split(',') {
                let label: String =
                    matcher.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                referenced.push(label);
            }
        }
        for label in referenced.iter().filter(|l| !l.is_empty() && !l.starts_with("__")) {
            assert!(available.contains(label), "{expression}: no label {label} on {names:?}");
        }
    }
    // Every family is on the dashboard.
    for (family, (_, samples, _)) in families(&observed.metrics) {
        assert!(samples.iter().any(|s| used.contains(s)), "the dashboard does not show {family}");
    }
    let panels = dashboard["panels"].as_array().unwrap();
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        assert!(panel["title"].as_str().is_some_and(|t| !t.is_empty()) && panel["targets"].is_array(), "{panel}");
    }
}

/// GitHub's anchor for a heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn links_between_the_guides_resolve() {
    let mut links = 0;
    for guide in guides() {
        let text = std::fs::read_to_string(&guide).unwrap();
        let prose = without_fences(&text);
        for part in prose.split("](").skip(1) {
            let target = part.split(')').next().unwrap();
            if target.starts_with("http") {
                continue;
            }
            links += 1;
            let (file, fragment) = target.split_once('#').unwrap_or((target, ""));
            let path = if file.is_empty() { guide.clone() } else { guide.parent().unwrap().join(file) };
            assert!(path.exists(), "{}: broken link {target}", guide.display());
            if !fragment.is_empty() {
                let headings: Vec<String> = std::fs::read_to_string(&path)
                    .unwrap()
                    .lines()
                    .filter(|l| l.starts_with('#'))
                    .map(|l| anchor(l.trim_start_matches('#')))
                    .collect();
                assert!(headings.iter().any(|h| h == fragment), "{}: no heading for #{fragment}", guide.display());
            }
        }
    }
    assert!(links >= 5, "only {links} links");
}

/// Keys the guides tell admins to make are printable, like the unit's
/// first key, so Exim's configuration can hold them and rotations do not
/// change the kind of key.
#[test]
fn every_keygen_into_the_state_directory_is_printable() {
    let mut checked = 0;
    for guide in guides() {
        let text = std::fs::read_to_string(&guide).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (index, line) in lines.iter().enumerate() {
            if line.contains("keygen") && line.contains("/var/lib/batv-proxy/keys") {
                // A command wrapped in prose may go on on the next line.
                let command = format!("{line} {}", lines.get(index + 1).unwrap_or(&""));
                assert!(command.contains("--printable"), "{}: {line}", guide.display());
                checked += 1;
            }
        }
    }
    assert!(checked >= 2, "{checked}");
}
