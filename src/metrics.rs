//! Prometheus metrics. Names are nouns with units
//! (`batv_proxy_..._total`, `..._seconds`); label values come from small
//! fixed sets, never from addresses, so cardinality stays bounded.
//!
//! Each listener resolves its label sets once ([`ListenerMetrics`]), so the
//! hot path only bumps atomics.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
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

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// All metric families, shared by every listener.
pub struct Metrics {
    registry: Registry,
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
    // --- Cluster: ledger and keys (src/cluster_metrics.rs) ---
    pub cluster: crate::cluster_metrics::ClusterMetrics,
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
            registry: Registry::default(),
            // --- Cluster: ledger and keys (src/cluster_metrics.rs) ---
            cluster: crate::cluster_metrics::ClusterMetrics::register(&mut registry),
        };
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
        Metrics { registry, ..metrics }
    }

    /// The text exposition format for `/metrics`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
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
        ListenerMetrics {
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
        }
    }
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

    fn outcome(&self, outcome: &str) -> OutcomeLabels {
        OutcomeLabels { listener: self.listener.clone(), outcome: outcome.to_owned() }
    }

    pub fn session_ended(&self, outcome: SessionOutcome) {
        let outcome = outcome.as_str();
        self.counter(CachedFamily::Sessions, [outcome, "", ""], || {
            self.metrics.sessions.get_or_create_owned(&self.outcome(outcome))
        })
        .inc();
    }

    pub fn message(&self, outcome: MessageOutcome) {
        if outcome == MessageOutcome::Accepted {
            self.messages_accepted.inc();
        } else {
            let result = outcome.as_str();
            self.counter(CachedFamily::Messages, [result, "", ""], || {
                self.metrics.messages.get_or_create_owned(&self.outcome(result))
            })
            .inc();
        }
    }

    pub fn sender_unsigned(&self, reason: Unsigned) {
        let reason = reason.as_str();
        self.counter(CachedFamily::SendersUnsigned, [reason, "", ""], || {
            self.metrics.senders_unsigned.get_or_create_owned(&self.outcome(reason))
        })
        .inc();
    }

    pub fn verification(&self, result: VerdictResult, reason: VerdictReason) {
        let (result, reason) = (result.as_str(), reason.as_str());
        self.counter(CachedFamily::Verifications, [result, reason, ""], || {
            let labels =
                VerificationLabels { listener: self.listener.clone(), result: result.into(), reason: reason.into() };
            self.metrics.verifications.get_or_create_owned(&labels)
        })
        .inc();
    }

    pub fn rejection(&self, stage: Stage, reason: RejectReason) {
        let (stage, reason) = (stage.as_str(), reason.as_str());
        self.counter(CachedFamily::Rejections, [stage, reason, ""], || {
            let labels =
                RejectionLabels { listener: self.listener.clone(), stage: stage.into(), reason: reason.into() };
            self.metrics.rejections.get_or_create_owned(&labels)
        })
        .inc();
    }

    pub fn upstream_error(&self, kind: UpstreamError) {
        let kind = kind.as_str();
        self.counter(CachedFamily::UpstreamErrors, [kind, "", ""], || {
            self.metrics.upstream_errors.get_or_create_owned(&self.outcome(kind))
        })
        .inc();
    }

    pub fn tls_handshake(&self, result: TlsHandshake) {
        let result = result.as_str();
        self.counter(CachedFamily::TlsHandshakes, [result, "", ""], || {
            self.metrics.tls_handshakes.get_or_create_owned(&self.outcome(result))
        })
        .inc();
    }

    pub fn inspection(&self, kind: crate::dsn::Kind, result: ContentResult, rule: ContentRule) {
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
        .inc();
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
        ] {
            assert!(text.contains(needle), "{needle} not in\n{text}");
        }
    }
}
