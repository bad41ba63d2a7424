//! One listener's handle on the metrics: its label sets resolved once, so
//! the hot path bumps atomics.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use super::{
    ALERTED, CommandLabels, ExemptionLabels, InspectionLabels, ListenerLabel, MarkLabels, Metrics, OutcomeLabels,
    RejectionLabels, Series, VerificationLabels,
};
use crate::labels::{CommandLabel, MessageOutcome, SessionOutcome, TlsHandshake, UpstreamError};
use crate::policy::{ContentResult, ContentRule, RejectReason, Scope, Stage, Unsigned, VerdictReason, VerdictResult};

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
    pub(super) fn new(registry: &Arc<Metrics>, listener: &str) -> ListenerMetrics {
        let label = ListenerLabel { listener: listener.to_owned() };
        let latency = |command: CommandLabel| {
            registry
                .added_latency
                .get_or_create_owned(&CommandLabels { listener: listener.to_owned(), command: command.as_str().into() })
        };
        let metrics = ListenerMetrics {
            cache: Arc::default(),
            latency_by_command: std::array::from_fn(|index| latency(CommandLabel::ALL[index])),
            metrics: Arc::clone(registry),
            listener: listener.to_owned(),
            sessions_active: registry.sessions_active.get_or_create_owned(&label),
            tags_signed: registry.tags_signed.get_or_create_owned(&label),
            session_duration: registry.session_duration.get_or_create_owned(&label),
            messages_accepted: registry
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
    pub(super) fn create(&self, series: Series) {
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

    /// An exemption let mail through unjudged or unsigned.
    pub fn exemption(&self, name: &str, scope: Scope) {
        let labels = ExemptionLabels {
            listener: self.listener.clone(),
            exemption: name.to_owned(),
            scope: scope.as_str().into(),
        };
        self.metrics.exemptions.get_or_create(&labels).inc();
    }

    /// A recipient or message was delivered marked instead of refused.
    pub fn marked(&self, stage: Stage, rule: &'static str) {
        let labels = MarkLabels { listener: self.listener.clone(), stage: stage.as_str().into(), rule: rule.into() };
        self.metrics.marked.get_or_create(&labels).inc();
    }

    pub fn added_latency(&self, command: CommandLabel, seconds: f64) {
        let index = CommandLabel::ALL.iter().position(|known| *known == command).unwrap_or(CommandLabel::ALL.len() - 1);
        self.latency_by_command[index].observe(seconds);
    }
}
