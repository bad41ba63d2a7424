//! The TOML configuration: schema, defaults and validation.
//!
//! The file is walked by hand rather than through `serde` derive so that
//! every problem — unknown keys, wrong types, bad values, missing or
//! unreadable files — is collected and reported together, each naming the
//! file, the key and the fix. Each section's module declares its keys once,
//! with parser and default, on a [`section::Section`]; what a section did
//! not ask for is an unknown key.

mod batv;
mod ledger;
mod listener;
mod policy;
mod section;
mod server;
#[cfg(test)]
mod tests;
mod tls;
mod values;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Table;

use crate::batv::KeyRing;

pub use self::batv::{BatvSettings, DEFAULT_LIFETIME_DAYS, DomainKeys, DomainSet};
pub use self::ledger::{
    DEFAULT_LEDGER_FILE, DEFAULT_LEDGER_MAX_ENTRIES, DEFAULT_LEDGER_QUEUE_MAX_ENTRIES, LedgerSettings, LedgerStore,
    RedisPassword, RedisSettings, RedisTopology, redact_url,
};
pub use self::listener::{
    ClientIdentity, ClientNetwork, DEFAULT_COMMAND_TIMEOUT, DEFAULT_DATA_TIMEOUT, DEFAULT_IPV6_CLIENT_PREFIX,
    DEFAULT_MAX_COMMAND_LINE, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_IP, DEFAULT_MAX_ERRORS,
    DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_RECIPIENTS, DEFAULT_UPSTREAM_CONNECT_TIMEOUT, DEFAULT_UPSTREAM_DATA_TIMEOUT,
    DEFAULT_UPSTREAM_TIMEOUT, Limits, ListenerSettings, Role,
};
pub use self::policy::{
    AddressPattern, DEFAULT_BOUNCE_SENDER, DEFAULT_INSPECT_MAX_BYTES, EnforceAfter, Mode, NonBounceInvalidTag,
    PolicySettings, UntaggedBounce, UntaggedStage,
};
pub use self::server::DEFAULT_DRAIN_TIMEOUT;
pub use self::tls::{
    CertificateFiles, DEFAULT_HANDSHAKE_TIMEOUT, TlsMode, TlsSettings, UpstreamTlsMode, UpstreamTlsSettings,
    UpstreamVerify,
};
pub use self::values::parse_size;

use self::section::{Presence, Report, Section};
use self::values::path;

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// Dotted key path, e.g. `listener[2].upstream`; empty for file-level problems.
    pub key: String,
    pub problem: String,
    pub fix: String,
    /// Lines shown under the error as they are, e.g. a TOML parser's
    /// diagram pointing at the column; empty for most errors.
    pub detail: String,
}

impl ConfigError {
    pub fn new(file: &Path, key: &str, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_owned(),
            key: key.to_owned(),
            problem: problem.into(),
            fix: fix.into(),
            detail: String::new(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file.display())?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.problem)?;
        if !self.fix.is_empty() {
            write!(f, "; fix: {}", self.fix)?;
        }
        for line in self.detail.trim_end().lines() {
            write!(f, "\n    {line}")?;
        }
        Ok(())
    }
}

/// Every problem found in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[derive(Debug)]
pub struct Config {
    pub file: PathBuf,
    pub state_dir: PathBuf,
    pub batv: BatvSettings,
    pub keys: KeyRing,
    /// `[[batv.keys]]`: tenants' domains with keys of their own.
    pub domain_keys: Vec<DomainKeys>,
    pub policy: PolicySettings,
    pub listeners: Vec<ListenerSettings>,
    /// Where `/metrics` and `/healthz` are served, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Recent verdicts kept for `/verdicts` and `batv-proxy explain`.
    pub verdicts: usize,
    /// How long transactions in progress may run after SIGTERM.
    pub drain_timeout: Duration,
    /// Runtime worker threads; `None`: one per CPU.
    pub worker_threads: Option<usize>,
    pub ledger: LedgerSettings,
}

/// Key length below which check-config warns. Exim takes short keys, so
/// this is a warning, not a refusal.
pub const MIN_KEY_BYTES: usize = 16;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/batv-proxy/batv-proxy.toml";
/// Where the packages make a directory owned by the service user.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/batv-proxy";

impl Config {
    /// Settings that are valid but deserve a second look before production.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        for listener in &self.listeners {
            if listener.client_identity == ClientIdentity::None {
                warnings.push(format!(
                    "listener {}: client_identity = \"none\": the MTA sees every client as the proxy's address; \
                     make sure it does not trust that address for relaying",
                    listener.name
                ));
            }
            if listener.role == Role::Outbound
                && !listener.listen.ip().is_loopback()
                && listener.allowed_clients.is_empty()
                && !listener.require_auth
            {
                warnings.push(format!(
                    "listener {}: an outbound listener on {} with neither allowed_clients nor require_auth signs the \
                     sender of any client that reaches it, so anyone can have mail sent with a valid tag for any of \
                     your addresses; fix: allowed_clients = [\"your networks\"] or require_auth = true",
                    listener.name,
                    listener.listen.ip()
                ));
            }
            if listener.tls.is_none() && listener.listen.port() == 587 {
                warnings.push(format!(
                    "listener {}: a submission port without [listener.tls]: AUTH would travel in clear text",
                    listener.name
                ));
            }
        }
        let key_files = std::iter::once((&self.batv.key_file, &self.keys))
            .chain(self.domain_keys.iter().map(|set| (&set.key_file, &set.keys)));
        for (file, keys) in key_files {
            for (id, secret) in keys.iter() {
                let length = secret.expose().len();
                if length < MIN_KEY_BYTES {
                    warnings.push(format!(
                        "batv.key_file: key {id} in {} is only {length} byte{}: a short key can be guessed from a few \
                         valid tags, and then anyone can forge them; fix: batv-proxy keygen --output {} (32 random \
                         bytes), or at least {MIN_KEY_BYTES} bytes",
                        file.display(),
                        if length == 1 { "" } else { "s" },
                        file.display()
                    ));
                }
            }
        }
        let mut keys: Vec<&String> = self.policy.message_id_patterns.keys().collect();
        keys.sort();
        for key in keys {
            if !self.batv.domains.may_hold(key) {
                warnings.push(format!(
                    "policy.message_id_patterns: \"{key}\" is none of batv.domains, so its patterns are never used \
                     (they apply to bounces to the domain they are listed under); fix: list them under one of your domains"
                ));
            }
        }
        if self.policy.mode == Mode::Monitor {
            warnings.push("policy.mode = \"monitor\": nothing is rejected for BATV reasons".into());
        }
        if self.policy.untagged_bounce == UntaggedBounce::Accept {
            warnings.push("policy.untagged_bounce = \"accept\": bounces to untagged addresses all pass".into());
        }
        // Only inbound listeners judge bounces.
        let inbound = self.listeners.iter().any(|listener| listener.role == Role::Inbound);
        if inbound
            && self.policy.untagged_bounce == UntaggedBounce::Inspect
            && self.ledger.store == LedgerStore::None
            && self.policy.message_id_patterns.is_empty()
        {
            warnings.push(
                "policy.untagged_bounce = \"inspect\" with neither [ledger] nor message_id_patterns: every untagged bounce \
                 and automatic reply will be refused; fix: [ledger] store = \"file\""
                    .into(),
            );
        }
        warnings
    }

    /// Reads, validates and loads everything the file points at (keys,
    /// domain list). Errors are all collected.
    pub fn load(file: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(file).map_err(|error| {
            ConfigErrors(vec![ConfigError::new(
                file,
                "",
                format!("cannot read the configuration file: {error}"),
                "check the path given to --config",
            )])
        })?;
        Self::parse(&text, file)
    }

    /// Parses configuration text; relative paths are relative to `file`'s directory.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigErrors> {
        let table: Table = text.parse().map_err(|error: toml::de::Error| {
            let mut syntax =
                ConfigError::new(file, "", "not valid TOML", "correct the syntax at the position shown below");
            // The parser's own layout: the line, then a caret under the column.
            syntax.detail = error.to_string();
            ConfigErrors(vec![syntax])
        })?;
        let base = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_owned();
        let report = Report::new(file.to_owned());
        let config = Section::read_file(&table, &report, |root| read_config(root, file, &base));
        match config {
            Some(config) if report.is_empty() => Ok(config),
            _ => Err(ConfigErrors(report.into_errors())),
        }
    }
}

/// The file's sections, and the checks that involve more than one.
/// Whether two listening addresses cannot both be bound: the same port
/// and either the same address or a wildcard of the other's family (or,
/// where the system maps IPv4 onto IPv6 sockets, the IPv6 wildcard and
/// any IPv4 address).
pub fn overlap(a: SocketAddr, b: SocketAddr, v6_wildcard_takes_v4: bool) -> bool {
    if a.port() != b.port() {
        return false;
    }
    let covers = |wide: SocketAddr, narrow: SocketAddr| {
        wide.ip().is_unspecified()
            && (wide.is_ipv4() == narrow.is_ipv4() || (wide.is_ipv6() && narrow.is_ipv4() && v6_wildcard_takes_v4))
    };
    a.ip() == b.ip() || covers(a, b) || covers(b, a)
}

/// Whether an IPv6 wildcard socket takes IPv4 connections too (Linux's
/// `net.ipv6.bindv6only = 0`, the default).
fn ipv6_wildcard_takes_ipv4() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only").map_or(true, |value| value.trim() == "0")
}

fn read_config(root: &mut Section, file: &Path, base: &Path) -> Option<Config> {
    let state_dir =
        root.get_or("state_dir", PathBuf::from(DEFAULT_STATE_DIR), path(base, "state_dir = \"/var/lib/batv-proxy\""));
    let (metrics_listen, verdicts) = root.table("metrics", "[metrics]", Presence::Optional, server::read_metrics);
    let server = root.table("server", "[server]", Presence::Optional, server::read_server);
    let required_batv = Presence::Required("the [batv] table is missing", "add [batv] with key_file and domains");
    let batv::ReadBatv { settings: batv, keys, domain_keys } =
        root.table("batv", "[batv]", required_batv, |batv| batv::read_batv(batv, base));
    let policy = root.table("policy", "[policy]", Presence::Optional, policy::read_policy);
    let required_listener = Presence::Required(
        "no [[listener]] is configured",
        "add at least one [[listener]] with role, listen and upstream",
    );
    let listeners: Vec<ListenerSettings> = root
        .tables("listener", "[[listener]]", required_listener, |listener| listener::read_listener(listener, base))
        .into_iter()
        .flatten()
        .collect();
    let ledger =
        root.table("ledger", "[ledger]", Presence::Optional, |ledger| ledger::read_ledger(ledger, &state_dir, base));

    let v6_covers_v4 = ipv6_wildcard_takes_ipv4();
    for (index, listener) in listeners.iter().enumerate() {
        if let Some(other) =
            listeners[..index].iter().find(|other| overlap(other.listen, listener.listen, v6_covers_v4))
        {
            let problem = if other.listen == listener.listen {
                format!("two listeners use {}", listener.listen)
            } else {
                format!("{} and {} overlap: one address takes the other's connections", other.listen, listener.listen)
            };
            root.report(
                &format!("listener[{}].listen", index + 1),
                problem,
                "give each listener an address and port of its own (a wildcard address takes every address of its port)",
            );
        }
    }
    if let Some(EnforceAfter::DaysAfterFirstStart(_)) = policy.enforce_after
        && !root.is_set("state_dir")
        && !Path::new(DEFAULT_STATE_DIR).exists()
    {
        root.report(
            "state_dir",
            format!(
                "enforce_after counts days from the first start, which is remembered in state_dir, and {DEFAULT_STATE_DIR} does not exist"
            ),
            "set state_dir to a writable directory, or give enforce_after as a date",
        );
    }
    for (index, exemption) in policy.exemptions.0.iter().enumerate() {
        for name in &exemption.listeners {
            if !listeners.iter().any(|listener| &listener.name == name) {
                let known: Vec<&str> = listeners.iter().map(|listener| listener.name.as_str()).collect();
                root.report(
                    &format!("policy.exemption[{}].listeners", index + 1),
                    format!("\"{name}\" names no listener"),
                    format!("use listener names as role@address: {}", known.join(", ")),
                );
            }
        }
    }
    if let Some(address) = metrics_listen
        && listeners.iter().any(|listener| overlap(listener.listen, address, v6_covers_v4))
    {
        root.report(
            "metrics.listen",
            format!("{address} is also a listener's address"),
            "give the metrics endpoint its own port",
        );
    }
    Some(Config {
        file: file.to_owned(),
        state_dir,
        batv: batv?,
        keys: keys?,
        domain_keys,
        policy,
        listeners,
        metrics_listen,
        verdicts,
        drain_timeout: server.drain_timeout,
        worker_threads: server.worker_threads,
        ledger,
    })
}
