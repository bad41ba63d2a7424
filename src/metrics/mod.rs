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
use crate::policy::{ContentResult, ContentRule, RejectReason, Stage, VerdictReason, VerdictResult};

mod format;
mod listener;

pub use format::Format;
use format::classic_from_openmetrics;
pub use listener::ListenerMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ListenerLabel {
    listener: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct OutcomeLabels {
    listener: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct VerificationLabels {
    listener: String,
    result: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RejectionLabels {
    listener: String,
    stage: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CommandLabels {
    listener: String,
    command: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ExemptionLabels {
    pub(super) listener: String,
    pub(super) exemption: String,
    pub(super) scope: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct MarkLabels {
    pub(super) listener: String,
    pub(super) stage: String,
    pub(super) rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabels {
    listener: String,
    name: String,
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
    pub(super) exemptions: Family<ExemptionLabels, Counter>,
    pub(super) marked: Family<MarkLabels, Counter>,
    certificate_expiry: Family<CertificateLabels, Gauge>,
    // --- Cluster: ledger and keys (src/cluster_metrics.rs) ---
    pub cluster: crate::cluster_metrics::ClusterMetrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct InspectionLabels {
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
            exemptions: Family::default(),
            marked: Family::default(),
            certificate_expiry: Family::default(),
            samplers: Mutex::default(),
            registry: Registry::default(),
            // --- Cluster: ledger and keys (src/cluster_metrics.rs) ---
            cluster: crate::cluster_metrics::ClusterMetrics::register(&mut registry),
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
        registry.register(
            "exemptions",
            "Mail let through unjudged or unsigned by an exemption, by its name and what it exempts",
            metrics.exemptions.clone(),
        );
        registry.register(
            "marked",
            "Recipients and messages delivered with the mark header instead of refused (action mark, or monitor mode), by stage and rule",
            metrics.marked.clone(),
        );
        registry.register(
            "tls_certificate_expiry_seconds",
            "Unix time at which a certificate served to clients expires, by listener and the name it covers",
            metrics.certificate_expiry.clone(),
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

    /// The certificates the listeners serve now: `(listener, name, not
    /// after)`; what a reload dropped goes.
    pub fn set_certificates<'a>(&self, certificates: impl IntoIterator<Item = (&'a str, &'a str, i64)>) {
        self.certificate_expiry.clear();
        for (listener, name, not_after) in certificates {
            let labels = CertificateLabels { listener: listener.to_owned(), name: name.to_owned() };
            self.certificate_expiry.get_or_create(&labels).set(not_after);
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
        ListenerMetrics::new(self, listener)
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

#[cfg(test)]
mod tests;
