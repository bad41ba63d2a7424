use super::*;

#[test]
fn exposes_prefixed_names_with_labels() {
    let metrics = Arc::new(Metrics::new());
    let listener = metrics.for_listener("inbound@127.0.0.1:25");
    listener.verification(VerdictResult::Invalid, VerdictReason::Expired);
    listener.message(MessageOutcome::Accepted);
    listener.tags_signed.inc();
    listener.session_ended(SessionOutcome::Completed);
    let text = metrics.encode();
    for needle in [
        "batv_proxy_verifications_total{listener=\"inbound@127.0.0.1:25\",result=\"invalid\",reason=\"expired\"} 1",
        "batv_proxy_messages_total{listener=\"inbound@127.0.0.1:25\",outcome=\"accepted\"} 1",
        "batv_proxy_tags_signed_total{listener=\"inbound@127.0.0.1:25\"} 1",
        "batv_proxy_sessions_total{listener=\"inbound@127.0.0.1:25\",outcome=\"completed\"} 1",
        "# TYPE batv_proxy_session_duration_seconds histogram",
        "# TYPE batv_proxy_sessions_total counter",
        "# TYPE batv_proxy_build_info gauge",
        "batv_proxy_build_info{version=\"",
    ] {
        assert!(text.contains(needle), "{needle} not in\n{text}");
    }
    assert!(!text.contains("# EOF") && !text.contains("# UNIT"), "{text}");
}

#[test]
fn both_formats_carry_the_same_samples() {
    let metrics = Arc::new(Metrics::new());
    metrics.for_listener("outbound@127.0.0.1:587").tags_signed.inc();
    let open = metrics.encode_as(Format::OpenMetrics);
    let classic = metrics.encode_as(Format::Classic);
    assert!(open.ends_with("# EOF\n"), "{open}");
    assert!(open.contains("# TYPE batv_proxy_tags_signed counter\n"), "{open}");
    assert!(open.contains("# TYPE batv_proxy_build info\n"), "{open}");
    assert!(classic.contains("# HELP batv_proxy_tags_signed_total Envelope senders"), "{classic}");
    let samples =
        |text: &str| -> Vec<String> { text.lines().filter(|l| !l.starts_with('#')).map(str::to_owned).collect() };
    assert_eq!(samples(&open), samples(&classic));
}

#[test]
fn alerted_series_exist_at_zero_per_role() {
    let metrics = Arc::new(Metrics::new());
    metrics.for_listener("inbound@0.0.0.0:25");
    metrics.for_listener("outbound@0.0.0.0:587");
    let text = metrics.encode();
    for needle in [
        "batv_proxy_upstream_errors_total{listener=\"outbound@0.0.0.0:587\",outcome=\"connect\"} 0",
        "batv_proxy_tls_handshakes_total{listener=\"inbound@0.0.0.0:25\",outcome=\"failed\"} 0",
        "batv_proxy_rejections_total{listener=\"inbound@0.0.0.0:25\",stage=\"rcpt\",reason=\"bad_signature\"} 0",
        "batv_proxy_reloads_total{listener=\"\",outcome=\"refused\"} 0",
    ] {
        assert!(text.contains(needle), "{needle} not in\n{text}");
    }
    assert!(!text.contains("rejections_total{listener=\"outbound"), "outbound listeners verify nothing:\n{text}");
}

#[test]
fn scrape_time_samplers_set_gauges() {
    let metrics = Metrics::new();
    let entries = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = Arc::clone(&entries);
    metrics
        .sample_on_scrape(move |m| m.set_ledger_entries("file", Some(seen.load(std::sync::atomic::Ordering::Relaxed))));
    entries.store(42, std::sync::atomic::Ordering::Relaxed);
    assert!(metrics.encode().contains("batv_proxy_ledger_entries{store=\"file\"} 42"));
    metrics.sample_on_scrape(|m| m.set_ledger_entries("file", None));
    assert!(!metrics.encode().contains("batv_proxy_ledger_entries{"));
}

#[test]
fn accept_headers_choose_the_format() {
    use Format::*;
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
                      text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    for (accept, format) in [
        (None, Classic),
        (Some(prometheus), OpenMetrics),
        (Some("application/openmetrics-text"), OpenMetrics),
        (Some("application/openmetrics-text; version=0.0.1"), OpenMetrics),
        (Some("text/plain"), Classic),
        (Some("text/plain;version=0.0.4"), Classic),
        (Some("*/*"), Classic),
        (Some("application/json"), Classic),
        (Some("text/plain;q=0.9, application/openmetrics-text;q=0.5"), Classic),
        (Some("text/plain, application/openmetrics-text"), OpenMetrics),
        (Some("application/openmetrics-text;q=0, text/plain;q=0.1"), Classic),
        (Some("application/openmetrics-text; version=2.0.0"), Classic),
        (Some("Application/OpenMetrics-Text; Version=1.0.0; charset=utf-8"), OpenMetrics),
    ] {
        assert_eq!(Format::negotiate(accept), format, "{accept:?}");
    }
    assert!(OpenMetrics.content_type().starts_with("application/openmetrics-text; version=1.0.0"));
    assert!(Classic.content_type().starts_with("text/plain; version=0.0.4"));
}
