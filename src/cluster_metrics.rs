//! Metrics of what several proxy hosts share: the Message-ID ledger's
//! writes, outage queue and health, and the keys each host signs and
//! verifies with (so a dashboard shows drift between hosts). Kept apart
//! from `metrics` so the two grow without touching each other; `Metrics`
//! registers these through [`ClusterMetrics::register`].

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::batv::{Codec, KeyRole, Moment};
use crate::labels::label_enum;
use crate::ledger_status::LedgerStatus;

label_enum! {
    /// What a key does now (`role` of `batv_proxy_key_info`).
    pub enum KeyRoleLabel {
        Signing => "signing",
        Verifying => "verifying",
        Staged => "staged",
    }
}

impl From<KeyRole> for KeyRoleLabel {
    fn from(role: KeyRole) -> Self {
        match role {
            KeyRole::Signing => KeyRoleLabel::Signing,
            KeyRole::Verifying => KeyRoleLabel::Verifying,
            KeyRole::Staged => KeyRoleLabel::Staged,
        }
    }
}

pub struct ClusterMetrics {
    /// Handed to the ledger when it opens.
    pub ledger: Arc<LedgerStatus>,
    keys: Arc<Mutex<Option<Codec>>>,
}

/// Seconds since the ledger's last successful write, computed when scraped.
#[derive(Debug)]
struct LastWriteAge(Arc<LedgerStatus>);

impl EncodeMetric for LastWriteAge {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.0.last_commit_age().unwrap_or(0))
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    key_set: String,
    key_id: String,
    fingerprint: String,
    role: String,
}

/// One sample per key, with its role at the moment of the scrape: a key
/// staged for 10:00 shows `signing` from 10:00 on, without a reload.
#[derive(Debug)]
struct KeyInfo(Arc<Mutex<Option<Codec>>>);

impl EncodeMetric for KeyInfo {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let codec = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(codec) = codec else { return Ok(()) };
        for (key, role) in codec.key_roles(Moment::from(SystemTime::now())) {
            let labels = KeyLabels {
                key_set: key.key_set,
                key_id: key.id.to_string(),
                fingerprint: key.fingerprint,
                role: KeyRoleLabel::from(role).as_str().to_owned(),
            };
            encoder.encode_family(&labels)?.encode_gauge(&1i64)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

impl ClusterMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let ledger = Arc::new(LedgerStatus::default());
        let keys = Arc::new(Mutex::new(None));
        registry.register(
            "ledger_write_errors",
            "Ledger writes (a commit to the file, a batch to Redis) that failed; the ids are kept and written again",
            ledger.write_errors.clone(),
        );
        registry.register(
            "ledger_pending",
            "Recorded Message-IDs not yet in the ledger's store: in memory, or in the outage queue",
            ledger.pending.clone(),
        );
        registry.register(
            "ledger_last_write_age_seconds",
            "Seconds since the ledger's last successful write (or since it opened)",
            LastWriteAge(Arc::clone(&ledger)),
        );
        registry.register(
            "ledger_queued",
            "Message-IDs put in the outage queue (the redb file in state_dir) because Redis could not take them",
            ledger.queued.clone(),
        );
        registry.register(
            "ledger_replayed",
            "Queued Message-IDs written to Redis once it took writes again",
            ledger.replayed.clone(),
        );
        registry.register(
            "ledger_dropped",
            "Message-IDs that were not recorded: the queue was full or the writer behind",
            ledger.dropped.clone(),
        );
        registry.register(
            "ledger_write_duration_seconds",
            "Time one batch of Message-IDs took to reach the ledger's store",
            ledger.write_seconds.clone(),
        );
        registry.register(
            "key_info",
            "Each key of the key files, with its fingerprint and its role now (signing, verifying, staged)",
            KeyInfo(Arc::clone(&keys)),
        );
        ClusterMetrics { ledger, keys }
    }

    /// The keys to show from now on (at start and after each reload).
    pub fn show_keys(&self, codec: &Codec) {
        *self.keys.lock().unwrap_or_else(|e| e.into_inner()) = Some(codec.clone());
    }
}
