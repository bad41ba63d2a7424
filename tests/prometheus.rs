//! Prometheus as it really is: `/metrics` answers in the format the
//! `Accept` header asks for, with that format's content type; the classic
//! body passes `promtool check metrics`; a real Prometheus server (Debian's
//! `prometheus`) scrapes the proxy, keeps counter types, and its queries
//! return what the proxy counted, from 0; and dist/prometheus-alerts.yml
//! passes `promtool check rules`, its unit tests, and loads in the server.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn repository_path(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// One HTTP/1.0 exchange: status, lower-cased headers, body.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

fn http(port: u16, method: &str, path: &str, accept: Option<&str>) -> Response {
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    write!(socket, "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{accept}\r\n").unwrap();
    let mut raw = String::new();
    socket.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Response { status, headers, body: body.to_owned() }
}

/// A proxy with an inbound and an outbound listener in front of smtp-sink,
/// the ledger file and `[metrics]`.
struct Setup {
    _sink: Sink,
    _pki: TestPki,
    proxy: Proxy,
    inbound: u16,
    outbound: u16,
    metrics: u16,
}

fn setup() -> Setup {
    let sink = Sink::start();
    let pki = TestPki::new();
    let (inbound, outbound, metrics) = (free_port(), free_port(), free_port());
    // STARTTLS offered on the inbound listener, so its certificate's expiry is there.
    let tls = format!(
        "[listener.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        pki.path("mx.example.com.pem"),
        pki.path("mx.example.com.key")
    );
    let config = format!(
        "state_dir = \"state\"\n[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n{BATV_SECTION}[ledger]\nstore = \"file\"\n{}{}",
        listener("inbound", inbound, sink.port, "none", &tls),
        listener("outbound", outbound, sink.port, "none", ""),
    );
    let proxy = Proxy::start(&config, &[inbound, outbound, metrics]);
    Setup { _sink: sink, _pki: pki, proxy, inbound, outbound, metrics }
}

fn accepted(t: &Transaction) -> bool {
    t.end.as_ref().is_some_and(|r| r.is(250))
}

#[test]
fn metrics_answer_in_the_format_the_accept_header_asks_for() {
    let s = setup();
    const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";
    // What Prometheus 2.x sends, then what curl and older scrapers send.
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
                      text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    for (accept, content_type) in [
        (Some(prometheus), OPENMETRICS),
        (Some("application/openmetrics-text"), OPENMETRICS),
        (None, CLASSIC),
        (Some("*/*"), CLASSIC),
        (Some("text/plain;version=0.0.4"), CLASSIC),
        (Some("text/plain;q=0.9,application/openmetrics-text;q=0.2"), CLASSIC),
    ] {
        let response = http(s.metrics, "GET", "/metrics", accept);
        assert_eq!(response.status, 200, "{accept:?}");
        assert_eq!(response.header("content-type"), Some(content_type), "{accept:?}");
        assert_eq!(response.header("vary"), Some("accept"), "{accept:?}");
        let body = &response.body;
        if content_type == OPENMETRICS {
            assert!(body.ends_with("# EOF\n"), "{accept:?}: an OpenMetrics body ends with # EOF:\n{body}");
            assert!(body.contains("\n# TYPE batv_proxy_sessions counter\n"), "{body}");
            assert!(body.contains("\n# TYPE batv_proxy_build info\n"), "{body}");
        } else {
            assert!(!body.contains("# EOF"), "{accept:?}: # EOF in a classic body:\n{body}");
            assert!(body.contains("\n# TYPE batv_proxy_sessions_total counter\n"), "{body}");
            assert!(body.contains("\n# TYPE batv_proxy_build_info gauge\n"), "{body}");
        }
        let version = format!("batv_proxy_build_info{{version=\"{}\"}} 1\n", env!("CARGO_PKG_VERSION"));
        assert!(body.contains(&version), "{accept:?}: no {version} in\n{body}");
    }
    let head = http(s.metrics, "HEAD", "/metrics", Some("application/openmetrics-text"));
    assert_eq!((head.status, head.header("content-type")), (200, Some(OPENMETRICS)));
    assert!(head.body.is_empty(), "HEAD has no body: {}", head.body);
    drop(s.proxy);
}

#[test]
fn promtool_check_metrics_passes_and_alerted_counters_start_at_zero() {
    provision();
    let s = setup();
    // Some traffic first, so that histograms and the ledger gauge have samples.
    let t = send_mail(s.outbound, "alice@example.com", &["carol@remote.test"], &message("a", "b", "m", "x"));
    assert!(accepted(&t));
    let body = http(s.metrics, "GET", "/metrics", None).body;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus)");
    promtool.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let output = promtool.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && said.trim().is_empty(), "promtool check metrics:\n{said}\n--- body ---\n{body}");
    // The series the alert rules watch are there before anything happened.
    for needle in [
        format!(
            "batv_proxy_rejections_total{{listener=\"inbound@127.0.0.1:{}\",stage=\"rcpt\",reason=\"bad_signature\"}} 0",
            s.inbound
        ),
        format!(
            "batv_proxy_upstream_errors_total{{listener=\"inbound@127.0.0.1:{}\",outcome=\"connect\"}} 0",
            s.inbound
        ),
        format!(
            "batv_proxy_tls_handshakes_total{{listener=\"outbound@127.0.0.1:{}\",outcome=\"failed\"}} 0",
            s.outbound
        ),
        format!(
            "batv_proxy_inspections_total{{listener=\"inbound@127.0.0.1:{}\",kind=\"dsn\",result=\"tempfail\",rule=\"ledger_unavailable\"}} 0",
            s.inbound
        ),
        "batv_proxy_reloads_total{listener=\"\",outcome=\"refused\"} 0".to_owned(),
    ] {
        assert!(body.contains(&needle), "{needle} not in\n{body}");
    }
    let ledger = eventually(Duration::from_secs(5), || {
        let body = http(s.metrics, "GET", "/metrics", None).body;
        body.contains("batv_proxy_ledger_entries{store=\"file\"} 1\n").then_some(())
    });
    assert!(ledger.is_some(), "the ledger gauge does not count the recorded Message-ID");
}

/// The metric names an expression uses.
fn metric_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("batv_proxy_"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_alert_rules_pass_promtool_and_name_only_real_series() {
    provision();
    let rules = repository_path("dist/prometheus-alerts.yml");
    let check = Command::new("promtool").args(["check", "rules"]).arg(&rules).output().expect("promtool");
    let said = String::from_utf8_lossy(&check.stdout).into_owned() + &String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "promtool check rules:\n{said}");
    assert!(said.contains(&format!("SUCCESS: {} rules found", alert_count())), "{said}");
    let test = Command::new("promtool")
        .args(["test", "rules"])
        .arg(repository_path("tests/prometheus/alerts.test.yml"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&test.stdout).into_owned() + &String::from_utf8_lossy(&test.stderr);
    assert!(test.status.success(), "promtool test rules:\n{said}");
    // Every metric, label and label value the rules name is one the proxy exposes.
    let s = setup();
    let body = http(s.metrics, "GET", "/metrics", None).body;
    let text = std::fs::read_to_string(&rules).unwrap();
    let names = metric_names(&text);
    for name in &names {
        assert!(body.contains(&format!("\n{name}{{")), "the rules use {name}, which /metrics lacks:\n{body}");
    }
    for wanted in ["rejections_total", "upstream_errors_total", "inspections_total", "tls_handshakes_total"] {
        assert!(names.contains(&format!("batv_proxy_{wanted}")), "no rule watches batv_proxy_{wanted}");
    }
    for matcher in text.split('{').skip(1).map(|m| m.split('}').next().unwrap()) {
        for pair in matcher.split(',').filter(|p| p.contains('=')) {
            let (label, values) = pair.split_once('=').unwrap();
            let label = label.trim().trim_end_matches(['!', '~']);
            if label == "job" || label.starts_with('$') {
                continue;
            }
            for value in values.trim_start_matches('~').trim_matches('"').split('|') {
                let documented = std::fs::read_to_string(repository_path("docs/operations.md")).unwrap();
                assert!(
                    body.contains(&format!("{label}=\"{value}\"")) || documented.contains(&format!("`{value}`")),
                    "the rules match {label}=\"{value}\", which neither /metrics nor docs/operations.md knows"
                );
            }
        }
    }
}

/// The Prometheus server, on its own port and storage, killed on drop.
struct PrometheusServer {
    _dir: TestDir,
    _process: Running,
    port: u16,
}

impl PrometheusServer {
    fn start(target: u16) -> PrometheusServer {
        provision();
        let dir = TestDir::new("prometheus.");
        let port = free_port();
        let config = dir.write(
            "prometheus.yml",
            &format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: batv-proxy\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n",
                repository_path("dist/prometheus-alerts.yml").display()
            ),
        );
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let process = Running::spawn(
            Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdout(log.try_clone().unwrap())
                .stderr(log),
        );
        assert!(wait_port(port, Duration::from_secs(30)), "prometheus did not listen on {port}");
        // 503 until the storage is open and the rules are loaded.
        let ready =
            eventually(Duration::from_secs(30), || (http(port, "GET", "/-/ready", None).status == 200).then_some(()));
        let log = || std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
        assert!(ready.is_some(), "prometheus never became ready:\n{}", log());
        PrometheusServer { _dir: dir, _process: process, port }
    }

    fn api(&self, path: &str) -> serde_json::Value {
        let response = http(self.port, "GET", path, None);
        assert_eq!(response.status, 200, "{path}: {}", response.body);
        serde_json::from_str(&response.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", response.body))
    }

    /// The instant vector a PromQL query returns.
    fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let answer = self.api(&format!("/api/v1/query?query={encoded}"));
        answer["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The single value of a query, once it satisfies `wanted`.
    fn wait_value(&self, promql: &str, wanted: impl Fn(f64) -> bool) -> f64 {
        let mut last = Vec::new();
        let found = eventually(Duration::from_secs(20), || {
            last = self.query(promql);
            let value: f64 = last.first()?["value"][1].as_str()?.parse().ok()?;
            wanted(value).then_some(value)
        });
        found.unwrap_or_else(|| panic!("{promql}: got {last:?}"))
    }
}

#[test]
fn a_prometheus_server_scrapes_the_proxy_and_its_queries_return_the_counts() {
    let s = setup();
    let prometheus = PrometheusServer::start(s.metrics);
    let up = eventually(Duration::from_secs(20), || {
        let targets = prometheus.api("/api/v1/targets");
        let target = targets["data"]["activeTargets"].as_array()?.first()?.clone();
        (target["health"] == "up").then_some(target)
    });
    assert!(up.is_some(), "the target never came up: {}", prometheus.api("/api/v1/targets"));
    // Scraped at 0 before anything happened...
    let forged_rcpt = "batv_proxy_rejections_total{stage=\"rcpt\",reason=\"bad_signature\"}";
    prometheus.wait_value(forged_rcpt, |v| v == 0.0);
    // ...so the first refusal shows as an increase.
    for n in 0..2 {
        let body = message("alice@example.com", "carol@remote.test", &format!("scrape {n}"), "x");
        assert!(accepted(&send_mail(s.outbound, "alice@example.com", &["carol@remote.test"], &body)));
    }
    let tagged = s.proxy.sign("bob@example.com");
    // Another hex digit in the signature: a well-formed tag that does not verify.
    let digit = if &tagged[9..10] == "0" { "1" } else { "0" };
    let forged = format!("{}{digit}{}", &tagged[..9], &tagged[10..]);
    assert_eq!(send_mail(s.inbound, "", &[&forged], "x").rcpts[0].code, 550);
    assert_eq!(prometheus.wait_value("sum(batv_proxy_tags_signed_total)", |v| v == 2.0), 2.0);
    let increase = prometheus.wait_value(&format!("increase({forged_rcpt}[1m])"), |v| v > 0.0);
    assert!(increase >= 1.0, "increase {increase}");
    prometheus.wait_value("batv_proxy_ledger_entries{store=\"file\"}", |v| v == 2.0);
    let build = prometheus.query("batv_proxy_build_info");
    assert_eq!(build.len(), 1, "{build:?}");
    assert_eq!(build[0]["metric"]["version"], env!("CARGO_PKG_VERSION"), "{build:?}");
    assert_eq!(build[0]["value"][1], "1", "{build:?}");
    // Prometheus negotiated OpenMetrics and kept the types.
    let metadata = prometheus.api("/api/v1/targets/metadata?match_target=%7Bjob%3D%22batv-proxy%22%7D");
    let types: Vec<(String, String)> = metadata["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["metric"].as_str().unwrap_or("").to_owned(), m["type"].as_str().unwrap_or("").to_owned()))
        .collect();
    for (metric, kind) in [
        ("batv_proxy_tags_signed", "counter"),
        ("batv_proxy_rejections", "counter"),
        ("batv_proxy_sessions_active", "gauge"),
        ("batv_proxy_session_duration_seconds", "histogram"),
        ("batv_proxy_build", "info"),
    ] {
        assert!(
            types.iter().any(|(m, k)| m == metric && k == kind),
            "Prometheus does not know {metric} as a {kind}: {types:?}"
        );
    }
    // The alert rules load and evaluate against the real series.
    let rules = eventually(Duration::from_secs(20), || {
        let answer = prometheus.api("/api/v1/rules");
        let rules: Vec<serde_json::Value> = answer["data"]["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        (rules.len() == alert_count() && rules.iter().all(|r| r["health"] == "ok")).then_some(rules)
    });
    assert!(rules.is_some(), "the alert rules did not all load and evaluate: {}", prometheus.api("/api/v1/rules"));
}

/// The alerts dist/prometheus-alerts.yml defines.
fn alert_count() -> usize {
    let rules = std::fs::read_to_string(repository_path("dist/prometheus-alerts.yml")).unwrap();
    rules.lines().filter(|line| line.trim_start().starts_with("- alert:")).count()
}
