//! The TOML configuration: schema, defaults and validation.
//!
//! The file is walked by hand rather than through `serde` derive so that
//! every problem — unknown keys, wrong types, bad values, missing or
//! unreadable files — is collected and reported together, each naming the
//! file, the key and the fix.

mod reader;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};

use crate::batv::{Day, HashAlgorithm, KeyRing, MAX_LIFETIME_DAYS, TagForm};
use crate::smtp::address::{Domain, Mailbox};

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// Dotted key path, e.g. `listener[2].upstream`; empty for file-level problems.
    pub key: String,
    pub problem: String,
    pub fix: String,
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
    pub policy: PolicySettings,
    pub listeners: Vec<ListenerSettings>,
    /// Where `/metrics` and `/healthz` are served, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// How long transactions in progress may run after SIGTERM.
    pub drain_timeout: Duration,
    /// Runtime worker threads; `None`: one per CPU.
    pub worker_threads: Option<usize>,
    pub ledger: LedgerSettings,
}

#[derive(Debug, Clone)]
pub struct BatvSettings {
    pub key_file: PathBuf,
    pub hash: HashAlgorithm,
    pub lifetime_days: u16,
    pub domains: DomainSet,
    pub sign_form: TagForm,
    /// Names the MTA takes as its own (its host names, `localhost`): a
    /// recipient there may route to our domains through the MTA's aliases
    /// or rewriting, so bounces to it are judged as ours.
    pub mta_names: DomainSet,
}

/// Our domains: exact names and `*.parent` wildcards. A lookup costs one
/// hash probe per label of the domain, whatever the number of domains.
#[derive(Debug, Clone, Default)]
pub struct DomainSet {
    exact: HashSet<String>,
    /// Parents of `*.parent` entries.
    wildcard_parents: HashSet<String>,
}

impl DomainSet {
    pub fn insert(&mut self, entry: &str) {
        let entry = entry.trim().trim_end_matches('.').to_lowercase();
        match entry.strip_prefix("*.") {
            Some(parent) => self.wildcard_parents.insert(parent.to_owned()),
            None => self.exact.insert(entry),
        };
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard_parents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `*.example.com` matches `a.example.com` and `a.b.example.com`, not
    /// `example.com` itself (list it too if it is ours).
    pub fn contains(&self, domain: &Domain) -> bool {
        let name = domain.canonical();
        if self.exact.contains(&name) {
            return true;
        }
        let mut rest = name.as_str();
        while let Some(dot) = rest.find('.') {
            rest = &rest[dot + 1..];
            if self.wildcard_parents.contains(rest) {
                return true;
            }
        }
        false
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    /// Log and mark verdicts, reject nothing for BATV reasons.
    Monitor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UntaggedBounce {
    Reject,
    Accept,
    /// Judge by the bounce's content (the original Message-ID).
    Inspect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UntaggedStage {
    /// Accept at RCPT (so sender callouts keep working), refuse at DATA.
    Data,
    Rcpt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonBounceInvalidTag {
    /// Deliver with the tag stripped (replies to subscriptions made with a tagged sender).
    Strip,
    Reject,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnforceAfter {
    Date(Day),
    /// Days after the first start, remembered in `state_dir`.
    DaysAfterFirstStart(u32),
}

/// A `*` wildcard pattern over an address (`*@lists.example.com`,
/// `owner-*`) or, without `@`, over a domain (`example.net`, `*.example.net`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPattern(String);

impl AddressPattern {
    pub fn new(text: &str) -> Self {
        AddressPattern(text.trim().to_lowercase())
    }

    pub fn matches(&self, mailbox: &Mailbox) -> bool {
        if self.0.contains('@') {
            glob_match(&self.0, &mailbox.canonical_text().to_lowercase())
        } else {
            glob_match(&self.0, &mailbox.domain().canonical())
        }
    }
}

impl fmt::Display for AddressPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `*` matches any run of characters (greedy with backtracking, linear in practice).
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star, matched)) = backtrack {
            pi = star + 1;
            ti = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[derive(Debug, Clone)]
pub struct PolicySettings {
    pub mode: Mode,
    pub untagged_bounce: UntaggedBounce,
    pub untagged_stage: UntaggedStage,
    pub enforce_after: Option<EnforceAfter>,
    /// Sender local parts that mark a bounce, lower case.
    pub bounce_senders: Vec<String>,
    pub non_bounce_invalid_tag: NonBounceInvalidTag,
    /// Outbound: senders never signed.
    pub exempt_senders: Vec<AddressPattern>,
    /// Outbound: recipients that must not see a tagged sender.
    pub exempt_recipients: Vec<AddressPattern>,
    /// Inbound: recipients whose untagged bounces are let through.
    pub unverified_recipients: Vec<AddressPattern>,
    /// Per domain (lower case): `*` patterns matching the Message-IDs our
    /// mail systems write, without angle brackets.
    pub message_id_patterns: std::collections::HashMap<String, Vec<String>>,
    /// How much of a message `inspect` reads.
    pub inspect_max_bytes: usize,
}

impl PolicySettings {
    /// Whether a Message-ID (brackets optional) matches a pattern of `domain`.
    /// A domain's patterns are those under its own name or under a
    /// `*.parent` key that covers it.
    pub fn matches_message_id(&self, domain: &Domain, message_id: &str) -> bool {
        let id = message_id.trim().trim_start_matches('<').trim_end_matches('>').to_lowercase();
        let matches = |key: &str| {
            self.message_id_patterns.get(key).is_some_and(|patterns| patterns.iter().any(|p| glob_match(p, &id)))
        };
        let name = domain.canonical();
        if matches(&name) {
            return true;
        }
        let mut rest = name.as_str();
        while let Some(dot) = rest.find('.') {
            rest = &rest[dot + 1..];
            if matches(&format!("*.{rest}")) {
                return true;
            }
        }
        false
    }

    /// Recipients whose untagged bounces and automatic replies pass.
    pub fn is_unverified(&self, mailbox: &Mailbox) -> bool {
        self.unverified_recipients.iter().any(|pattern| pattern.matches(mailbox))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerStore {
    None,
    /// An embedded database file.
    File(PathBuf),
    /// A Redis URL, for several proxy hosts.
    Redis(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerSettings {
    pub store: LedgerStore,
    pub max_entries: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Inbound,
    Outbound,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Inbound => "inbound",
            Role::Outbound => "outbound",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientIdentity {
    /// Postfix's XCLIENT command.
    Xclient,
    /// A PROXY protocol v2 header before the SMTP dialogue.
    ProxyV2,
    /// The MTA sees the proxy's address: warned about at startup.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Longest command line, CRLF included.
    pub max_command_line: usize,
    pub max_recipients: usize,
    pub max_message_size: u64,
    pub max_errors: usize,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    pub upstream_connect_timeout: Duration,
    pub upstream_timeout: Duration,
    pub upstream_data_timeout: Duration,
}

impl Default for Limits {
    /// RFC 5321 §4.5.3 and Postfix defaults.
    fn default() -> Self {
        Limits {
            max_connections: 1000,
            max_connections_per_ip: 50,
            max_command_line: 2048,
            max_recipients: 1000,
            max_message_size: 50 * 1024 * 1024,
            max_errors: 20,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(180),
            upstream_connect_timeout: Duration::from_secs(30),
            upstream_timeout: Duration::from_secs(300),
            upstream_data_timeout: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain listener offering STARTTLS (ports 25, 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
}

/// A certificate chain and its key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: TlsMode,
    /// Refuse MAIL (and AUTH) before STARTTLS.
    pub require: bool,
    /// The default certificate first, then those chosen by SNI.
    pub certificates: Vec<CertificateFiles>,
    pub handshake_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamTlsMode {
    None,
    StartTls,
    Implicit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamVerify {
    /// Chain to a trusted root (the CA file, or the system's roots) and the name.
    Full,
    /// The upstream's certificate must have one of these SHA-256 fingerprints.
    Pin(Vec<[u8; 32]>),
    /// No check at all: only for an MTA on loopback or a trusted link.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTlsSettings {
    pub mode: UpstreamTlsMode,
    pub ca_file: Option<PathBuf>,
    pub verify: UpstreamVerify,
    /// Name to verify and send as SNI; default the upstream's host.
    pub server_name: Option<String>,
}

/// An address or network in CIDR notation (`192.0.2.0/24`, `2001:db8::/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientNetwork {
    address: std::net::IpAddr,
    prefix: u8,
}

impl ClientNetwork {
    pub fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address.parse::<std::net::IpAddr>().ok()?, Some(prefix.parse::<u8>().ok()?)),
            None => (text.trim().parse().ok()?, None),
        };
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        (prefix <= bits).then_some(ClientNetwork { address, prefix })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        let mask = |bits: u32, width: u32| if bits == 0 { 0u128 } else { u128::MAX << (width - bits) };
        match (self.address, ip) {
            (std::net::IpAddr::V4(network), std::net::IpAddr::V4(ip)) => {
                let mask = mask(u32::from(self.prefix), 32) as u32;
                u32::from(network) & mask == u32::from(ip) & mask
            }
            (std::net::IpAddr::V6(network), std::net::IpAddr::V6(ip)) => {
                let mask = mask(u32::from(self.prefix), 128);
                u128::from(network) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ListenerSettings {
    /// `role@listen`, for logs and metrics.
    pub name: String,
    pub role: Role,
    pub listen: SocketAddr,
    /// `host:port` of the MTA.
    pub upstream: String,
    pub client_identity: ClientIdentity,
    /// Look up the client's host name (reverse, then forward-confirmed)
    /// for XCLIENT NAME=, as Postfix would itself.
    pub client_name_lookup: bool,
    /// When not empty, only these clients are served; others get 554.
    pub allowed_clients: Vec<ClientNetwork>,
    /// Refuse MAIL until the client has authenticated (a submission port).
    pub require_auth: bool,
    /// IPv6 clients count against `max_connections_per_ip` per network of
    /// this prefix length: one host holds a whole /64.
    pub ipv6_client_prefix: u8,
    pub hostname: String,
    pub limits: Limits,
    pub tls: Option<TlsSettings>,
    pub upstream_tls: UpstreamTlsSettings,
}

/// Key length below which check-config warns. Exim takes short keys, so
/// this is a warning, not a refusal.
pub const MIN_KEY_BYTES: usize = 16;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/batv-proxy/batv-proxy.toml";

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
        for (id, secret) in self.keys.iter() {
            let length = secret.expose().len();
            if length < MIN_KEY_BYTES {
                warnings.push(format!(
                    "batv.key_file: key {id} in {} is only {length} byte{}: a short key can be guessed from a few \
                     valid tags, and then anyone can forge them; fix: batv-proxy keygen --output {} (32 random bytes), \
                     or at least {MIN_KEY_BYTES} bytes",
                    self.batv.key_file.display(),
                    if length == 1 { "" } else { "s" },
                    self.batv.key_file.display()
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
            ConfigErrors(vec![ConfigError {
                file: file.to_owned(),
                key: String::new(),
                problem: format!("cannot read the configuration file: {error}"),
                fix: "check the path given to --config".into(),
            }])
        })?;
        Self::parse(&text, file)
    }

    /// Parses configuration text; relative paths are relative to `file`'s directory.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigErrors> {
        let mut reader = Reader { file: file.to_owned(), errors: Vec::new() };
        let table: Table = match text.parse() {
            Ok(table) => table,
            Err(error) => {
                let problem = error.to_string().replace('\n', " ").trim().to_owned();
                reader.error("", format!("not valid TOML: {problem}"), "correct the syntax at the position shown");
                return Err(ConfigErrors(reader.errors));
            }
        };
        let base = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_owned();
        let config = reader.config(&table, &base);
        match config {
            Some(config) if reader.errors.is_empty() => Ok(config),
            _ => Err(ConfigErrors(reader.errors)),
        }
    }
}

use reader::Reader;
pub use reader::parse_size;
