//! Prometheus metrics. Names are nouns with units
//! (`batv_proxy_..._total`, `..._seconds`); label values come from small
//! fixed sets, never from addresses, so cardinality stays bounded.
//!
//! Each listener resolves its label sets once ([`ListenerMetrics`]), so the
//! hot path only bumps atomics. The series that alerts watch exist from the
//! start, at 0 ([`ALERTED`]), so a rate over them is defined before the
//! first event.
//!
//! `/metrics` speaks both exposition formats ([`Format`]): OpenMetrics,
//! which Prometheus asks for first, and the classic text format 0.0.4.
//!
//! Adding a metric: a field, one `registry.register` line in
//! [`Metrics::new`], a row in docs/operations.md's Metrics table and a panel
//! in dist/grafana-dashboard.json (tests/deployment_docs.rs checks both). A
//! value read at scrape time (a size, an expiry date) is a gauge set by a
//! sampler: [`Metrics::sample_on_scrape`].

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

pub use crate::labels::{CommandLabel, MessageOutcome, ReloadOutcome, SessionOutcome, TlsHandshake, UpstreamError};
use crate::policy::{ContentResult, ContentRule, RejectReason, Stage, Unsigned, VerdictReason, VerdictResult};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabel {
    listener: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    listener: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerificationLabels {
    listener: String,
    result: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectionLabels {
    listener: String,
    stage: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    listener: String,
    command: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabel {
    store: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// A value read when `/metrics` is scraped.
type Sampler = Box<dyn Fn(&Metrics) + Send + Sync>;

/// All metric families, shared by every listener.
pub struct Metrics {
    registry: Registry,
    samplers: Mutex<Vec<Sampler>>,
    sessions: Family<OutcomeLabels, Counter>,
    sessions_active: Family<ListenerLabel, Gauge>,
    messages: Family<OutcomeLabels, Counter>,
    tags_signed: Family<ListenerLabel, Counter>,
    senders_unsigned: Family<OutcomeLabels, Counter>,
    verifications: Family<VerificationLabels, Counter>,
    rejections: Family<RejectionLabels, Counter>,
    upstream_errors: Family<OutcomeLabels, Counter>,
    tls_handshakes: Family<OutcomeLabels, Counter>,
    session_duration: HistogramFamily<ListenerLabel>,
    added_latency: HistogramFamily<CommandLabels>,
    reloads: Family<OutcomeLabels, Counter>,
    inspections: Family<InspectionLabels, Counter>,
    ledger_entries: Family<StoreLabel, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InspectionLabels {
    listener: String,
    kind: String,
    result: String,
    rule: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 10))
}

fn latency_histogram() -> Histogram {
    // 10 µs to ~10 s.
    Histogram::new(exponential_buckets(0.000_01, 4.0, 11))
}

/// The two exposition formats `/metrics` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0: counters as `# TYPE name counter` over `name_total`
    /// samples, `# EOF` at the end.
    OpenMetrics,
    /// Prometheus' classic text format 0.0.4, which `promtool check metrics`
    /// and older scrapers read.
    Classic,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Classic => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// The format an `Accept` header asks for: the supported media type with
    /// the highest q-value, OpenMetrics on a tie; the classic format without
    /// a header, for `*/*`, or when nothing supported is named (as
    /// Prometheus' own client libraries do).
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else { return Format::Classic };
        let mut best: Option<(f32, Format)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media_type = parts.next().unwrap_or_default().to_ascii_lowercase();
            let (mut quality, mut version) = (1.0_f32, None);
            for parameter in parts {
                if let Some((name, value)) = parameter.split_once('=') {
                    let value = value.trim().trim_matches('"');
                    match name.trim().to_ascii_lowercase().as_str() {
                        "q" => quality = value.parse().unwrap_or(0.0),
                        "version" => version = Some(value.to_owned()),
                        _ => {}
                    }
                }
            }
            let format = match (media_type.as_str(), version.as_deref()) {
                ("application/openmetrics-text", None | Some("1.0.0" | "0.0.1")) => Format::OpenMetrics,
                ("text/plain", None | Some("0.0.4")) => Format::Classic,
                _ => continue,
            };
            let better = match best {
                None => true,
                Some((q, chosen)) => quality > q || (quality == q && format == Format::OpenMetrics && chosen != format),
            };
            if quality > 0.0 && better {
                best = Some((quality, format));
            }
        }
        best.map_or(Format::Classic, |(_, format)| format)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("batv_proxy");
        let metrics = Metrics {
            sessions: Family::default(),
            sessions_active: Family::default(),
            messages: Family::default(),
            tags_signed: Family::default(),
            senders_unsigned: Family::default(),
            verifications: Family::default(),
            rejections: Family::default(),
            upstream_errors: Family::default(),
            tls_handshakes: Family::default(),
            session_duration: Family::new_with_constructor(duration_histogram),
            added_latency: Family::new_with_constructor(latency_histogram),
            reloads: Family::default(),
            inspections: Family::default(),
            ledger_entries: Family::default(),
            samplers: Mutex::default(),
            registry: Registry::default(),
        };
        registry.register(
            "build",
            "The running batv-proxy version: one series with value 1",
            Info::new(BuildLabels { version: env!("CARGO_PKG_VERSION").to_owned() }),
        );
        registry.register("sessions", "Client sessions ended, by outcome", metrics.sessions.clone());
        registry.register("sessions_active", "Client sessions in progress", metrics.sessions_active.clone());
        registry.register(
            "messages",
            "Messages by result: accepted (upstream said 250), refused by the upstream, rejected by the proxy",
            metrics.messages.clone(),
        );
        registry.register("tags_signed", "Envelope senders rewritten to a prvs= tag", metrics.tags_signed.clone());
        registry.register(
            "senders_unsigned",
            "Outbound senders left unsigned, by reason",
            metrics.senders_unsigned.clone(),
        );
        registry.register(
            "verifications",
            "Inbound recipient verdicts, by result and reason",
            metrics.verifications.clone(),
        );
        registry.register(
            "rejections",
            "Replies refusing mail for BATV or protocol reasons",
            metrics.rejections.clone(),
        );
        registry.register("upstream_errors", "Failures talking to the upstream MTA", metrics.upstream_errors.clone());
        registry.register("tls_handshakes", "TLS handshakes with clients, by result", metrics.tls_handshakes.clone());
        registry.register("session_duration_seconds", "Duration of client sessions", metrics.session_duration.clone());
        registry.register(
            "command_added_latency_seconds",
            "Time the proxy adds to a command, upstream round trip excluded",
            metrics.added_latency.clone(),
        );
        registry.register("reloads", "Configuration reloads, by result", metrics.reloads.clone());
        registry.register(
            "inspections",
            "Messages to untagged recipients judged by content: kind (dsn, autoreply, none), result and rule",
            metrics.inspections.clone(),
        );
        registry.register(
            "ledger_entries",
            "Message-IDs held in the outbound ledger file, read at scrape time",
            metrics.ledger_entries.clone(),
        );
        for outcome in ReloadOutcome::ALL {
            let labels = OutcomeLabels { listener: String::new(), outcome: outcome.as_str().into() };
            let _ = metrics.reloads.get_or_create(&labels);
        }
        Metrics { registry, ..metrics }
    }

    /// Runs `sample` before each encoding, to set gauges whose value is
    /// read rather than counted (the ledger's size; later a key's age or a
    /// certificate's expiry).
    pub fn sample_on_scrape(&self, sample: impl Fn(&Metrics) + Send + Sync + 'static) {
        self.samplers.lock().unwrap_or_else(|e| e.into_inner()).push(Box::new(sample));
    }

    /// Entries in the ledger of kind `store` (`file`); `None` leaves the
    /// series out (a ledger that cannot be read now).
    pub fn set_ledger_entries(&self, store: &str, entries: Option<u64>) {
        let labels = StoreLabel { store: store.to_owned() };
        match entries {
            Some(entries) => {
                self.ledger_entries.get_or_create(&labels).set(i64::try_from(entries).unwrap_or(i64::MAX));
            }
            None => {
                self.ledger_entries.remove(&labels);
            }
        }
    }

    /// `/metrics` in the given format.
    pub fn encode_as(&self, format: Format) -> String {
        for sample in self.samplers.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            sample(self);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        match format {
            Format::OpenMetrics => out,
            Format::Classic => classic_from_openmetrics(&out),
        }
    }

    /// The classic text format, which every Prometheus version reads.
    pub fn encode(&self) -> String {
        self.encode_as(Format::Classic)
    }

    pub fn reload(&self, outcome: ReloadOutcome) {
        self.reloads.get_or_create(&OutcomeLabels { listener: String::new(), outcome: outcome.as_str().into() }).inc();
    }

    pub fn for_listener(self: &Arc<Self>, listener: &str) -> ListenerMetrics {
        let label = ListenerLabel { listener: listener.to_owned() };
        let latency = |command: CommandLabel| {
            self.added_latency
                .get_or_create_owned(&CommandLabels { listener: listener.to_owned(), command: command.as_str().into() })
        };
        let metrics = ListenerMetrics {
            cache: Arc::default(),
            latency_by_command: std::array::from_fn(|index| latency(CommandLabel::ALL[index])),
            metrics: Arc::clone(self),
            listener: listener.to_owned(),
            sessions_active: self.sessions_active.get_or_create_owned(&label),
            tags_signed: self.tags_signed.get_or_create_owned(&label),
            session_duration: self.session_duration.get_or_create_owned(&label),
            messages_accepted: self
                .messages
                .get_or_create_owned(&OutcomeLabels { listener: listener.to_owned(), outcome: "accepted".into() }),
        };
        let inbound = listener.starts_with("inbound@");
        let every_outcome = UpstreamError::ALL
            .iter()
            .map(|&outcome| Series::UpstreamError(outcome))
            .chain(TlsHandshake::ALL.iter().map(|&outcome| Series::TlsHandshake(outcome)));
        for series in ALERTED.iter().copied().chain(every_outcome).filter(|series| inbound || !series.inbound_only()) {
            metrics.create(series);
        }
        metrics
    }
}

/// A counter series that exists from the start, at 0.
#[derive(Clone, Copy, Debug)]
pub enum Series {
    Session(SessionOutcome),
    Message(MessageOutcome),
    UpstreamError(UpstreamError),
    TlsHandshake(TlsHandshake),
    Verification(VerdictResult, VerdictReason),
    Rejection(Stage, RejectReason),
    Inspection(crate::dsn::Kind, ContentResult, ContentRule),
}

impl Series {
    fn inbound_only(self) -> bool {
        matches!(self, Series::Verification(..) | Series::Rejection(..) | Series::Inspection(..))
    }
}

/// The series dist/prometheus-alerts.yml and the dashboard watch, beyond
/// every `upstream_errors` and `tls_handshakes` outcome, made at 0 when a
/// listener starts: `rate()` and `increase()` over a series that appears
/// only with its first event miss that event.
pub const ALERTED: &[Series] = {
    use crate::dsn::Kind;
    use Series::*;
    &[
        Session(SessionOutcome::Completed),
        Session(SessionOutcome::UpstreamUnavailable),
        Session(SessionOutcome::UpstreamLost),
        Session(SessionOutcome::TlsFailed),
        Message(MessageOutcome::RefusedUpstream),
        Message(MessageOutcome::Rejected),
        Message(MessageOutcome::FailedUpstream),
        Verification(VerdictResult::Valid, VerdictReason::Ok),
        Verification(VerdictResult::Invalid, VerdictReason::BadSignature),
        Verification(VerdictResult::Invalid, VerdictReason::Expired),
        Verification(VerdictResult::Invalid, VerdictReason::UnknownKey),
        Verification(VerdictResult::Missing, VerdictReason::Untagged),
        Rejection(Stage::Rcpt, RejectReason::BadSignature),
        Rejection(Stage::Rcpt, RejectReason::Expired),
        Rejection(Stage::Rcpt, RejectReason::UnknownKey),
        Rejection(Stage::Rcpt, RejectReason::Untagged),
        Rejection(Stage::Data, RejectReason::Untagged),
        Rejection(Stage::Data, RejectReason::NotOurs),
        Rejection(Stage::Data, RejectReason::NoOriginalMessageId),
        Rejection(Stage::Data, RejectReason::NoPatternNoLedger),
        Rejection(Stage::Data, RejectReason::LedgerUnavailable),
        Inspection(Kind::Dsn, ContentResult::TempFail, ContentRule::LedgerUnavailable),
        Inspection(Kind::AutoReply, ContentResult::TempFail, ContentRule::LedgerUnavailable),
    ]
};

/// Rewrites OpenMetrics text as the classic text format: a counter family
/// is named after its `_total` samples, an info family after its `_info`
/// sample and typed gauge, and `# UNIT` and `# EOF` go.
fn classic_from_openmetrics(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut help: Option<&str> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest);
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "gauge" | "histogram" | "summary" => (name.to_owned(), kind),
                _ => (name.to_owned(), "untyped"),
            };
            if let Some(help) = help.take() {
                let text = help.split_once(' ').map_or("", |(_, text)| text);
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
        } else if line.starts_with("# UNIT ") || line == "# EOF" {
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The counter families whose label sets are cached per listener.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum CachedFamily {
    Sessions,
    Messages,
    SendersUnsigned,
    Verifications,
    Rejections,
    UpstreamErrors,
    TlsHandshakes,
    Inspections,
}

type CounterCache = std::sync::RwLock<std::collections::HashMap<(CachedFamily, [&'static str; 3]), Counter>>;

/// One listener's view of the metrics, with its hot counters resolved.
#[derive(Clone)]
pub struct ListenerMetrics {
    cache: Arc<CounterCache>,
    /// Indexed like [`CommandLabel::ALL`].
    latency_by_command: [Histogram; CommandLabel::ALL.len()],
    metrics: Arc<Metrics>,
    listener: String,
    pub sessions_active: Gauge,
    pub tags_signed: Counter,
    pub session_duration: Histogram,
    pub messages_accepted: Counter,
}

impl ListenerMetrics {
    /// The counter for a label combination, created on first use and then
    /// found without building label strings (label values are static).
    fn counter(&self, family: CachedFamily, labels: [&'static str; 3], create: impl FnOnce() -> Counter) -> Counter {
        let key = (family, labels);
        if let Some(counter) = self.cache.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return counter.clone();
        }
        let counter = create();
        self.cache.write().unwrap_or_else(|e| e.into_inner()).insert(key, counter.clone());
        counter
    }

    /// Makes a series exist, at 0.
    fn create(&self, series: Series) {
        match series {
            Series::Session(outcome) => self.session_counter(outcome),
            Series::Message(outcome) => self.message_counter(outcome),
            Series::UpstreamError(outcome) => self.upstream_error_counter(outcome),
            Series::TlsHandshake(outcome) => self.tls_handshake_counter(outcome),
            Series::Verification(result, reason) => self.verification_counter(result, reason),
            Series::Rejection(stage, reason) => self.rejection_counter(stage, reason),
            Series::Inspection(kind, result, rule) => self.inspection_counter(kind, result, rule),
        };
    }

    fn outcome(&self, outcome: &str) -> OutcomeLabels {
        OutcomeLabels { listener: self.listener.clone(), outcome: outcome.to_owned() }
    }

    fn session_counter(&self, outcome: SessionOutcome) -> Counter {
        let outcome = outcome.as_str();
        self.counter(CachedFamily::Sessions, [outcome, "", ""], || {
            self.metrics.sessions.get_or_create_owned(&self.outcome(outcome))
        })
    }

    fn message_counter(&self, outcome: MessageOutcome) -> Counter {
        if outcome == MessageOutcome::Accepted {
            return self.messages_accepted.clone();
        }
        let result = outcome.as_str();
        self.counter(CachedFamily::Messages, [result, "", ""], || {
            self.metrics.messages.get_or_create_owned(&self.outcome(result))
        })
    }

    fn verification_counter(&self, result: VerdictResult, reason: VerdictReason) -> Counter {
        let (result, reason) = (result.as_str(), reason.as_str());
        self.counter(CachedFamily::Verifications, [result, reason, ""], || {
            let labels =
                VerificationLabels { listener: self.listener.clone(), result: result.into(), reason: reason.into() };
            self.metrics.verifications.get_or_create_owned(&labels)
        })
    }

    fn rejection_counter(&self, stage: Stage, reason: RejectReason) -> Counter {
        let (stage, reason) = (stage.as_str(), reason.as_str());
        self.counter(CachedFamily::Rejections, [stage, reason, ""], || {
            let labels =
                RejectionLabels { listener: self.listener.clone(), stage: stage.into(), reason: reason.into() };
            self.metrics.rejections.get_or_create_owned(&labels)
        })
    }

    fn upstream_error_counter(&self, kind: UpstreamError) -> Counter {
        let kind = kind.as_str();
        self.counter(CachedFamily::UpstreamErrors, [kind, "", ""], || {
            self.metrics.upstream_errors.get_or_create_owned(&self.outcome(kind))
        })
    }

    fn tls_handshake_counter(&self, result: TlsHandshake) -> Counter {
        let result = result.as_str();
        self.counter(CachedFamily::TlsHandshakes, [result, "", ""], || {
            self.metrics.tls_handshakes.get_or_create_owned(&self.outcome(result))
        })
    }

    fn inspection_counter(&self, kind: crate::dsn::Kind, result: ContentResult, rule: ContentRule) -> Counter {
        let (kind, result, rule) = (kind.as_str(), result.as_str(), rule.as_str());
        self.counter(CachedFamily::Inspections, [kind, result, rule], || {
            let labels = InspectionLabels {
                listener: self.listener.clone(),
                kind: kind.into(),
                result: result.into(),
                rule: rule.into(),
            };
            self.metrics.inspections.get_or_create_owned(&labels)
        })
    }

    pub fn session_ended(&self, outcome: SessionOutcome) {
        self.session_counter(outcome).inc();
    }

    pub fn message(&self, outcome: MessageOutcome) {
        self.message_counter(outcome).inc();
    }

    pub fn sender_unsigned(&self, reason: Unsigned) {
        let reason = reason.as_str();
        self.counter(CachedFamily::SendersUnsigned, [reason, "", ""], || {
            self.metrics.senders_unsigned.get_or_create_owned(&self.outcome(reason))
        })
        .inc();
    }

    pub fn verification(&self, result: VerdictResult, reason: VerdictReason) {
        self.verification_counter(result, reason).inc();
    }

    pub fn rejection(&self, stage: Stage, reason: RejectReason) {
        self.rejection_counter(stage, reason).inc();
    }

    pub fn upstream_error(&self, kind: UpstreamError) {
        self.upstream_error_counter(kind).inc();
    }

    pub fn tls_handshake(&self, result: TlsHandshake) {
        self.tls_handshake_counter(result).inc();
    }

    pub fn inspection(&self, kind: crate::dsn::Kind, result: ContentResult, rule: ContentRule) {
        self.inspection_counter(kind, result, rule).inc();
    }

    pub fn added_latency(&self, command: CommandLabel, seconds: f64) {
        let index = CommandLabel::ALL.iter().position(|known| *known == command).unwrap_or(CommandLabel::ALL.len() - 1);
        self.latency_by_command[index].observe(seconds);
    }
}

#[cfg(test)]
mod tests {
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
        metrics.sample_on_scrape(move |m| {
            m.set_ledger_entries("file", Some(seen.load(std::sync::atomic::Ordering::Relaxed)))
        });
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
}
