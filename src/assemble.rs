//! The one build step from a [`Config`] to the parts the server runs: the
//! policy with its codec, each listener's TLS on both sides, the ledger's
//! settings checked, the health probes. Everything that can fail because
//! of the configuration fails here, as [`ConfigErrors`] naming the key and
//! the fix, so `check-config`, `run` and a reload judge a file alike:
//! `check-config` runs exactly this, `run` runs it and then binds, a
//! reload runs it and swaps.
//!
//! Nothing is bound, spawned, created or written here: what takes hold of
//! something (opening the ledger, remembering the first start) is a method
//! of [`Assembly`] that only `run` and a reload call.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::batv::{Codec, Day};
use crate::config::{
    ClientIdentity, Config, ConfigError, ConfigErrors, EnforceAfter, ListenerSettings, UpstreamTlsMode,
};
use crate::ledger::{self, Ledger, LedgerError, LedgerStatus};
use crate::policy::Policy;
use crate::status::Probe;
use crate::tls::{self, ServerTls, UpstreamTls};

/// Where `enforce_after = N` counts from, in `state_dir`.
const FIRST_START_FILE: &str = "first-start";

/// Everything the server needs from one configuration, ready to run.
pub struct Assembly {
    /// What it was built from: the server-wide settings, and warnings.
    pub config: Config,
    /// Shared by every listener.
    pub policy: Policy,
    /// In the order of `config.listeners`.
    pub listeners: Vec<ListenerParts>,
    /// One per distinct upstream, for `/healthz`.
    pub probes: Vec<Probe>,
    first_start: FirstStart,
}

/// One listener's settings with its TLS loaded.
pub struct ListenerParts {
    pub settings: ListenerSettings,
    pub server_tls: Option<ServerTls>,
    pub upstream_tls: Option<UpstreamTls>,
}

/// The day `enforce_after = N` counts from.
enum FirstStart {
    /// `enforce_after` is a date, or not set.
    NotCounted,
    /// Read from `state_dir`.
    Remembered(Day),
    /// Not yet in `state_dir`: today, written there when the proxy runs.
    Today(Day),
}

/// Why `run` could not start serving.
#[derive(Debug, Error)]
pub enum StartError {
    /// The configuration cannot work: exit status 2, which systemd does
    /// not restart (`RestartPreventExitStatus=2`).
    #[error("{0}")]
    Configuration(ConfigErrors),
    /// Something outside the configuration is in the way (an address or
    /// the ledger in use by another process): exit status 1, and a
    /// restart may succeed.
    #[error(transparent)]
    Runtime(#[from] anyhow::Error),
}

impl Assembly {
    /// Valid but risky settings, and certificates about to expire.
    pub fn warnings(&self) -> Vec<String> {
        let now = std::time::SystemTime::now();
        let mut warnings = self.config.warnings();
        let served = self.listeners.iter().filter_map(|listener| listener.server_tls.as_ref());
        warnings
            .extend(served.flat_map(|tls| tls.certificates.iter().filter_map(|certificate| certificate.warning(now))));
        warnings
    }
}

/// Builds everything `config` describes, or reports every problem found.
pub fn assemble(config: Config) -> Result<Assembly, ConfigErrors> {
    let mut errors = Vec::new();
    let mut listeners = Vec::new();
    for (index, settings) in config.listeners.iter().enumerate() {
        match tls::for_listener(settings, index + 1, &config.file) {
            Ok((server_tls, upstream_tls)) => {
                listeners.push(ListenerParts { settings: settings.clone(), server_tls, upstream_tls })
            }
            Err(tls_errors) => errors.extend(tls_errors),
        }
    }
    if let Err(error) = ledger::check(&config.ledger) {
        errors.push(ledger_problem(&config.file, &error));
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let first_start = first_start(&config);
    let counted_from = match first_start {
        FirstStart::NotCounted => None,
        FirstStart::Remembered(day) | FirstStart::Today(day) => Some(day),
    };
    let codec = codec(&config);
    let policy = Policy::new(
        config.policy.clone(),
        config.batv.domains.clone(),
        config.batv.mta_names.clone(),
        codec,
        counted_from,
    );
    let probes = probes(&config.listeners);
    Ok(Assembly { config, policy, listeners, probes, first_start })
}

impl Assembly {
    /// Opens the ledger (taking the redb file's lock, or preparing the
    /// Redis connection). Once per process: a reload keeps the ledger open.
    pub async fn open_ledger(&self, status: Arc<LedgerStatus>) -> Result<Arc<Ledger>, StartError> {
        let settings = &self.config.ledger;
        // Ids are kept as long as a tag on them could come back.
        let retention = Duration::from_secs(u64::from(self.config.batv.lifetime_days) * 86_400);
        match Ledger::open(settings, retention, status).await {
            Ok(ledger) => Ok(ledger),
            Err(error @ LedgerError::Locked { .. }) => Err(StartError::Runtime(anyhow::anyhow!(
                "{error}; fix: stop the other one, or give this proxy its own ledger.path \
                 (store = \"redis\" shares one ledger between proxies)"
            ))),
            Err(error) => Err(StartError::Configuration(ConfigErrors(vec![ledger_problem(&self.config.file, &error)]))),
        }
    }

    /// Writes today as the first start day into `state_dir`, when
    /// `enforce_after` counts days and none is remembered yet.
    pub fn remember_first_start(&self) -> Result<(), ConfigErrors> {
        let FirstStart::Today(today) = self.first_start else { return Ok(()) };
        let state_dir = &self.config.state_dir;
        let file = state_dir.join(FIRST_START_FILE);
        std::fs::create_dir_all(state_dir).and_then(|()| std::fs::write(&file, format!("{today}\n"))).map_err(|error| {
            ConfigErrors(vec![ConfigError::new(
                &self.config.file,
                "state_dir",
                format!("cannot write {}: {error}", file.display()),
                "make state_dir a directory the user batv-proxy runs as can write, or give enforce_after as a date",
            )])
        })
    }
}

/// The tag codec: the default keys, and each `[[batv.keys]]` set for its domains.
pub fn codec(config: &Config) -> Codec {
    let batv = &config.batv;
    let default = Codec::new(&config.keys, batv.hash, batv.lifetime_days, batv.sign_form);
    config.domain_keys.iter().fold(default, |codec, set| codec.with_domain_keys(&set.domains, &set.keys))
}

fn first_start(config: &Config) -> FirstStart {
    if !matches!(config.policy.enforce_after, Some(EnforceAfter::DaysAfterFirstStart(_))) {
        return FirstStart::NotCounted;
    }
    let remembered =
        std::fs::read_to_string(config.state_dir.join(FIRST_START_FILE)).ok().and_then(|text| Day::parse(text.trim()));
    match remembered {
        Some(day) => FirstStart::Remembered(day),
        None => FirstStart::Today(crate::listener::today()),
    }
}

/// A ledger that cannot be used, as the configuration key that chose it.
fn ledger_problem(file: &Path, error: &LedgerError) -> ConfigError {
    error.config_error(file)
}

fn probes(listeners: &[ListenerSettings]) -> Vec<Probe> {
    let mut probes: Vec<Probe> = listeners
        .iter()
        .map(|settings| Probe {
            target: settings.upstream.clone(),
            proxy_v2: settings.client_identity == ClientIdentity::ProxyV2,
            implicit_tls: settings.upstream_tls.mode == UpstreamTlsMode::Implicit,
        })
        .collect();
    probes.dedup();
    probes
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn directory_with_keys() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        std::fs::write(&keys, "1 MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n").unwrap();
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
        dir
    }

    fn config(dir: &Path, extra: &str) -> Config {
        let text = format!(
            "state_dir = \"state\"\n[batv]\nkey_file = \"keys\"\ndomains = [\"example.com\"]\n{extra}\n\
             [[listener]]\nrole = \"inbound\"\nlisten = \"127.0.0.1:2525\"\nupstream = \"127.0.0.1:10025\"\n"
        );
        Config::parse(&text, &dir.join("cfg.toml")).unwrap_or_else(|errors| panic!("{errors}"))
    }

    #[test]
    fn the_first_start_is_written_only_when_asked() {
        let dir = directory_with_keys();
        let assembly = assemble(config(dir.path(), "[policy]\nenforce_after = 7\n")).unwrap();
        let remembered = dir.path().join("state").join(FIRST_START_FILE);
        assert!(!remembered.exists(), "building writes nothing, so check-config leaves no trace");
        assert!(matches!(assembly.first_start, FirstStart::Today(_)));
        assembly.remember_first_start().unwrap();
        std::fs::write(&remembered, "2026-01-05\n").unwrap();
        let again = assemble(config(dir.path(), "[policy]\nenforce_after = 7\n")).unwrap();
        assert!(matches!(again.first_start, FirstStart::Remembered(day) if day == Day::parse("2026-01-05").unwrap()));
        let dated = assemble(config(dir.path(), "[policy]\nenforce_after = \"2026-02-01\"\n")).unwrap();
        assert!(matches!(dated.first_start, FirstStart::NotCounted));
    }

    #[test]
    fn tls_material_and_the_ledger_are_checked_with_the_rest() {
        let dir = directory_with_keys();
        std::fs::write(dir.path().join("not-pem"), "not a certificate").unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        std::fs::write(dir.path().join("state/a-file"), "").unwrap();
        let mut config = config(dir.path(), "[ledger]\nstore = \"file\"\npath = \"a-file/ledger.redb\"\n");
        config.listeners[0].tls = Some(crate::config::TlsSettings {
            mode: crate::config::TlsMode::StartTls,
            require: false,
            certificates: vec![crate::config::CertificateFiles {
                cert: dir.path().join("not-pem"),
                key: dir.path().join("not-pem"),
            }],
            handshake_timeout: Duration::from_secs(30),
        });
        let Err(errors) = assemble(config) else { panic!("a listener without a usable certificate was built") };
        let keys: Vec<&str> = errors.0.iter().map(|error| error.key.as_str()).collect();
        assert_eq!(keys, ["listener[1].tls", "ledger.path"], "{errors}");
        assert!(errors.0.iter().all(|error| !error.fix.is_empty()), "{errors}");
    }

    #[test]
    fn probes_are_one_per_upstream() {
        let dir = directory_with_keys();
        let mut config = config(dir.path(), "");
        let mut second = config.listeners[0].clone();
        second.listen = "127.0.0.1:2526".parse().unwrap();
        config.listeners.push(second);
        let assembly = assemble(config).unwrap();
        assert_eq!((assembly.listeners.len(), assembly.probes.len()), (2, 1));
    }
}
