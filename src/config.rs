//! The TOML configuration: schema, defaults and validation.
//!
//! The file is walked by hand rather than through `serde` derive so that
//! every problem — unknown keys, wrong types, bad values, missing or
//! unreadable files — is collected and reported together, each naming the
//! file, the key and the fix.

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
    pub hostname: String,
    pub limits: Limits,
    pub tls: Option<TlsSettings>,
    pub upstream_tls: UpstreamTlsSettings,
}

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
            if listener.tls.is_none() && listener.listen.port() == 587 {
                warnings.push(format!(
                    "listener {}: a submission port without [listener.tls]: AUTH would travel in clear text",
                    listener.name
                ));
            }
        }
        if self.policy.mode == Mode::Monitor {
            warnings.push("policy.mode = \"monitor\": nothing is rejected for BATV reasons".into());
        }
        if self.policy.untagged_bounce == UntaggedBounce::Accept {
            warnings.push("policy.untagged_bounce = \"accept\": bounces to untagged addresses all pass".into());
        }
        if self.policy.untagged_bounce == UntaggedBounce::Inspect
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

struct Reader {
    file: PathBuf,
    errors: Vec<ConfigError>,
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a number",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}

impl Reader {
    fn error(&mut self, key: &str, problem: impl Into<String>, fix: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            key: key.to_owned(),
            problem: problem.into(),
            fix: fix.into(),
        });
    }

    fn unknown_keys(&mut self, table: &Table, prefix: &str, known: &[&str]) {
        for key in table.keys() {
            if !known.contains(&key.as_str()) {
                let fix = match suggestion(key, known) {
                    Some(close) => format!("did you mean `{close}`? Known keys here: {}", known.join(", ")),
                    None => format!("remove it; known keys here: {}", known.join(", ")),
                };
                self.error(&join(prefix, key), "unknown key", fix);
            }
        }
    }

    fn wrong_type(&mut self, key: &str, value: &Value, wanted: &str, example: &str) {
        self.error(key, format!("must be {wanted}, not {}", type_name(value)), format!("write it like {example}"));
    }

    fn string<'t>(&mut self, table: &'t Table, prefix: &str, key: &str, example: &str) -> Option<&'t str> {
        match table.get(key)? {
            Value::String(s) => Some(s),
            other => {
                self.wrong_type(&join(prefix, key), other, "a string", example);
                None
            }
        }
    }

    fn integer(&mut self, table: &Table, prefix: &str, key: &str, range: (i64, i64)) -> Option<i64> {
        let name = join(prefix, key);
        match table.get(key)? {
            Value::Integer(n) if (range.0..=range.1).contains(n) => Some(*n),
            Value::Integer(n) => {
                self.error(
                    &name,
                    format!("{n} is out of range"),
                    format!("use a whole number from {} to {}", range.0, range.1),
                );
                None
            }
            other => {
                self.wrong_type(&name, other, "a whole number", &format!("{key} = {}", range.0.max(1)));
                None
            }
        }
    }

    fn strings(&mut self, table: &Table, prefix: &str, key: &str) -> Option<Vec<String>> {
        let name = join(prefix, key);
        match table.get(key)? {
            Value::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        other => {
                            self.wrong_type(&name, other, "a list of strings", &format!("{key} = [\"...\"]"));
                            return None;
                        }
                    }
                }
                Some(out)
            }
            other => {
                self.wrong_type(&name, other, "a list of strings", &format!("{key} = [\"...\"]"));
                None
            }
        }
    }

    fn choice<T: Copy>(&mut self, table: &Table, prefix: &str, key: &str, options: &[(&str, T)], default: T) -> T {
        let Some(text) = self.string(table, prefix, key, &format!("{key} = \"{}\"", options[0].0)) else {
            return default;
        };
        match options.iter().find(|(name, _)| *name == text) {
            Some((_, value)) => *value,
            None => {
                let names: Vec<String> = options.iter().map(|(name, _)| format!("\"{name}\"")).collect();
                self.error(
                    &join(prefix, key),
                    format!("\"{text}\" is not one of {}", names.join(", ")),
                    format!("use one of {}", names.join(", ")),
                );
                default
            }
        }
    }

    fn duration(&mut self, table: &Table, prefix: &str, key: &str, default: Duration) -> Duration {
        let name = join(prefix, key);
        match table.get(key) {
            None => default,
            Some(Value::Integer(seconds)) if *seconds > 0 => Duration::from_secs(*seconds as u64),
            Some(Value::String(text)) => match humantime::parse_duration(text) {
                Ok(duration) if !duration.is_zero() => duration,
                _ => {
                    self.error(
                        &name,
                        format!("\"{text}\" is not a duration"),
                        "write seconds (300) or a duration like \"5m\", \"90s\"",
                    );
                    default
                }
            },
            Some(other) => {
                self.error(
                    &name,
                    format!("must be a positive duration, not {}", type_name(other)),
                    "write seconds (300) or a duration like \"5m\"",
                );
                default
            }
        }
    }

    fn size(&mut self, table: &Table, prefix: &str, key: &str, default: u64) -> u64 {
        let name = join(prefix, key);
        match table.get(key) {
            None => default,
            Some(Value::Integer(bytes)) if *bytes > 0 => *bytes as u64,
            Some(Value::String(text)) => match parse_size(text) {
                Some(bytes) if bytes > 0 => bytes,
                _ => {
                    self.error(
                        &name,
                        format!("\"{text}\" is not a size"),
                        "write bytes (10240000) or a size like \"50MiB\", \"10MB\"",
                    );
                    default
                }
            },
            Some(other) => {
                self.error(
                    &name,
                    format!("must be a positive size, not {}", type_name(other)),
                    "write bytes or a size like \"50MiB\"",
                );
                default
            }
        }
    }

    fn count(&mut self, table: &Table, prefix: &str, key: &str, default: usize) -> usize {
        self.integer(table, prefix, key, (1, 10_000_000)).map_or(default, |n| n as usize)
    }

    fn path(&self, base: &Path, text: &str) -> PathBuf {
        let path = Path::new(text);
        if path.is_absolute() { path.to_owned() } else { base.join(path) }
    }

    fn config(&mut self, table: &Table, base: &Path) -> Option<Config> {
        self.unknown_keys(table, "", &["state_dir", "batv", "policy", "listener", "metrics", "server", "ledger"]);
        let metrics_listen = match table.get("metrics") {
            None => None,
            Some(Value::Table(metrics)) => {
                self.unknown_keys(metrics, "metrics", &["listen"]);
                match self.string(metrics, "metrics", "listen", "listen = \"127.0.0.1:9325\"") {
                    Some(text) => match text.parse::<SocketAddr>() {
                        Ok(address) => Some(address),
                        Err(_) => {
                            self.error(
                                "metrics.listen",
                                format!("\"{text}\" is not an IP address and port"),
                                "write listen = \"127.0.0.1:9325\"",
                            );
                            None
                        }
                    },
                    None => None,
                }
            }
            Some(other) => {
                self.wrong_type("metrics", other, "a table", "[metrics]");
                None
            }
        };
        let (drain_timeout, worker_threads) = match table.get("server") {
            None => (Duration::from_secs(30), None),
            Some(Value::Table(server)) => {
                self.unknown_keys(server, "server", &["drain_timeout", "worker_threads"]);
                (
                    self.duration(server, "server", "drain_timeout", Duration::from_secs(30)),
                    self.integer(server, "server", "worker_threads", (1, 1024)).map(|n| n as usize),
                )
            }
            Some(other) => {
                self.wrong_type("server", other, "a table", "[server]");
                (Duration::from_secs(30), None)
            }
        };
        let state_dir = self
            .string(table, "", "state_dir", "state_dir = \"/var/lib/batv-proxy\"")
            .map_or_else(|| PathBuf::from("/var/lib/batv-proxy"), |text| self.path(base, text));

        let empty = Table::new();
        let batv_table = match table.get("batv") {
            Some(Value::Table(t)) => t,
            Some(other) => {
                self.wrong_type("batv", other, "a table", "[batv]");
                &empty
            }
            None => {
                self.error("batv", "the [batv] table is missing", "add [batv] with key_file and domains");
                &empty
            }
        };
        let (batv, keys) = self.batv(batv_table, base);

        let policy_table = match table.get("policy") {
            Some(Value::Table(t)) => t,
            Some(other) => {
                self.wrong_type("policy", other, "a table", "[policy]");
                &empty
            }
            None => &empty,
        };
        let policy = self.policy(policy_table);

        let mut listeners = Vec::new();
        match table.get("listener") {
            Some(Value::Array(items)) => {
                for (index, item) in items.iter().enumerate() {
                    let prefix = format!("listener[{}]", index + 1);
                    match item {
                        Value::Table(t) => listeners.extend(self.listener(t, &prefix, base)),
                        other => self.wrong_type(&prefix, other, "a table", "[[listener]]"),
                    }
                }
            }
            Some(other) => self.wrong_type("listener", other, "a list of tables", "[[listener]]"),
            None => self.error(
                "listener",
                "no [[listener]] is configured",
                "add at least one [[listener]] with role, listen and upstream",
            ),
        }
        let mut seen = HashSet::new();
        for listener in &listeners {
            if !seen.insert(listener.listen) {
                self.error(
                    "listener",
                    format!("two listeners use {}", listener.listen),
                    "give each listener its own listen address",
                );
            }
        }
        if let Some(EnforceAfter::DaysAfterFirstStart(_)) = policy.enforce_after
            && !table.contains_key("state_dir")
            && !Path::new("/var/lib/batv-proxy").exists()
        {
            self.error(
                "state_dir",
                "enforce_after counts days from the first start, which is remembered in state_dir, and /var/lib/batv-proxy does not exist",
                "set state_dir to a writable directory, or give enforce_after as a date",
            );
        }
        let ledger = match table.get("ledger") {
            None => LedgerSettings { store: LedgerStore::None, max_entries: 1_000_000 },
            Some(Value::Table(ledger)) => self.ledger(ledger, &state_dir),
            Some(other) => {
                self.wrong_type("ledger", other, "a table", "[ledger]");
                LedgerSettings { store: LedgerStore::None, max_entries: 1_000_000 }
            }
        };
        if let Some(address) = metrics_listen
            && listeners.iter().any(|l| l.listen == address)
        {
            self.error(
                "metrics.listen",
                format!("{address} is also a listener's address"),
                "give the metrics endpoint its own port",
            );
        }
        Some(Config {
            file: self.file.clone(),
            state_dir,
            batv: batv?,
            keys: keys?,
            policy,
            listeners,
            metrics_listen,
            drain_timeout,
            worker_threads,
            ledger,
        })
    }

    fn ledger(&mut self, table: &Table, state_dir: &Path) -> LedgerSettings {
        let prefix = "ledger";
        self.unknown_keys(table, prefix, &["store", "path", "redis_url", "max_entries"]);
        #[derive(Clone, Copy)]
        enum Kind {
            None,
            File,
            Redis,
        }
        let kind = self.choice(
            table,
            prefix,
            "store",
            &[("none", Kind::None), ("file", Kind::File), ("redis", Kind::Redis)],
            Kind::None,
        );
        let max_entries = self.integer(table, prefix, "max_entries", (1000, 1_000_000_000)).unwrap_or(1_000_000) as u64;
        let store = match kind {
            Kind::None => LedgerStore::None,
            Kind::File => {
                let path = self.string(table, prefix, "path", "path = \"ledger.redb\"").unwrap_or("ledger.redb");
                // Relative to state_dir: the ledger is state, not configuration.
                LedgerStore::File(self.path(state_dir, path))
            }
            Kind::Redis => match self.string(table, prefix, "redis_url", "redis_url = \"redis://127.0.0.1:6379/0\"") {
                Some(url)
                    if url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://") =>
                {
                    LedgerStore::Redis(url.to_owned())
                }
                Some(url) => {
                    self.error(
                        "ledger.redis_url",
                        format!("\"{url}\" is not a Redis URL"),
                        "write redis_url = \"redis://host:6379/0\"",
                    );
                    LedgerStore::None
                }
                None => {
                    self.error("ledger.redis_url", "missing", "add redis_url = \"redis://host:6379/0\"");
                    LedgerStore::None
                }
            },
        };
        LedgerSettings { store, max_entries }
    }

    fn batv(&mut self, table: &Table, base: &Path) -> (Option<BatvSettings>, Option<KeyRing>) {
        let prefix = "batv";
        self.unknown_keys(
            table,
            prefix,
            &["key_file", "hash", "lifetime_days", "domains", "domains_file", "sign_form"],
        );
        let hash = self.choice(
            table,
            prefix,
            "hash",
            &[("sha256", HashAlgorithm::Sha256), ("sha1", HashAlgorithm::Sha1)],
            HashAlgorithm::Sha256,
        );
        let lifetime_days =
            self.integer(table, prefix, "lifetime_days", (1, i64::from(MAX_LIFETIME_DAYS))).unwrap_or(7) as u16;
        let sign_form = self.choice(
            table,
            prefix,
            "sign_form",
            &[("standard", TagForm::Standard), ("subaddress", TagForm::Subaddress)],
            TagForm::Standard,
        );

        let mut domains = DomainSet::default();
        for entry in self.strings(table, prefix, "domains").unwrap_or_default() {
            if let Err(problem) = check_domain_entry(&entry) {
                self.error(
                    "batv.domains",
                    format!("\"{entry}\": {problem}"),
                    "write a domain (example.com) or a wildcard (*.example.com)",
                );
            } else {
                domains.insert(&entry);
            }
        }
        if let Some(text) = self.string(table, prefix, "domains_file", "domains_file = \"domains.txt\"") {
            let path = self.path(base, text);
            match std::fs::read_to_string(&path) {
                Ok(contents) => {
                    for (index, line) in contents.lines().enumerate() {
                        let entry = line.split('#').next().unwrap_or("").trim();
                        if entry.is_empty() {
                            continue;
                        }
                        match check_domain_entry(entry) {
                            Ok(()) => domains.insert(entry),
                            Err(problem) => self.error(
                                "batv.domains_file",
                                format!("{}:{}: \"{entry}\": {problem}", path.display(), index + 1),
                                "one domain or *.wildcard per line, # for comments",
                            ),
                        }
                    }
                }
                Err(error) => self.error(
                    "batv.domains_file",
                    format!("cannot read {}: {error}", path.display()),
                    "check the path (relative paths are relative to this file)",
                ),
            }
        }
        if domains.is_empty() && !table.contains_key("domains_file") {
            self.error(
                "batv.domains",
                "no domains are configured, so nothing would be signed or verified",
                "list your domains: domains = [\"example.com\"]",
            );
        }

        let key_file = match self.string(table, prefix, "key_file", "key_file = \"keys\"") {
            Some(text) => self.path(base, text),
            None => {
                if !table.contains_key("key_file") {
                    self.error(
                        "batv.key_file",
                        "no key file is configured",
                        "set key_file = \"keys\" and create it with: batv-proxy keygen --output keys",
                    );
                }
                return (None, None);
            }
        };
        let keys = match KeyRing::load(&key_file) {
            Ok(keys) => Some(keys),
            Err(error) => {
                let fix = match &error {
                    crate::batv::keys::KeyFileError::Unreadable { source, .. }
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        format!("create it with: batv-proxy keygen --output {}", key_file.display())
                    }
                    crate::batv::keys::KeyFileError::Permissions { .. } => format!("chmod 600 {}", key_file.display()),
                    _ => "correct the key file (one `K base64-secret` per line)".into(),
                };
                let problem = error.to_string();
                let problem = problem.split("; fix:").next().unwrap_or(&problem).to_owned();
                self.error("batv.key_file", problem, fix);
                None
            }
        };
        if let Some(keys) = &keys
            && hash == HashAlgorithm::Sha1
        {
            for (id, secret) in keys.iter() {
                if secret.expose().len() > 64 || secret.expose().contains(&0) {
                    self.error(
                        "batv.key_file",
                        format!("key {id} is longer than 64 bytes or contains a NUL byte, which Exim cannot use, so hash = \"sha1\" would not interoperate"),
                        "use keys of at most 64 bytes without NUL (batv-proxy keygen makes 32 bytes), or hash = \"sha256\"",
                    );
                }
            }
        }
        (Some(BatvSettings { key_file, hash, lifetime_days, domains, sign_form }), keys)
    }

    fn policy(&mut self, table: &Table) -> PolicySettings {
        let prefix = "policy";
        self.unknown_keys(
            table,
            prefix,
            &[
                "mode",
                "untagged_bounce",
                "untagged_stage",
                "enforce_after",
                "bounce_senders",
                "non_bounce_invalid_tag",
                "exempt_senders",
                "exempt_recipients",
                "unverified_recipients",
                "message_id_patterns",
                "inspect_max_bytes",
            ],
        );
        let mode = self.choice(
            table,
            prefix,
            "mode",
            &[("enforce", Mode::Enforce), ("monitor", Mode::Monitor)],
            Mode::Enforce,
        );
        let untagged_bounce = self.choice(
            table,
            prefix,
            "untagged_bounce",
            &[
                ("reject", UntaggedBounce::Reject),
                ("accept", UntaggedBounce::Accept),
                ("inspect", UntaggedBounce::Inspect),
            ],
            UntaggedBounce::Inspect,
        );
        let untagged_stage = self.choice(
            table,
            prefix,
            "untagged_stage",
            &[("data", UntaggedStage::Data), ("rcpt", UntaggedStage::Rcpt)],
            UntaggedStage::Data,
        );
        let non_bounce_invalid_tag = self.choice(
            table,
            prefix,
            "non_bounce_invalid_tag",
            &[("strip", NonBounceInvalidTag::Strip), ("reject", NonBounceInvalidTag::Reject)],
            NonBounceInvalidTag::Strip,
        );
        let enforce_after = match table.get("enforce_after") {
            None => None,
            Some(Value::String(text)) => match Day::parse(text) {
                Some(day) => Some(EnforceAfter::Date(day)),
                None => {
                    self.error(
                        "policy.enforce_after",
                        format!("\"{text}\" is not a date"),
                        "write a date \"YYYY-MM-DD\" or a number of days after the first start",
                    );
                    None
                }
            },
            Some(Value::Datetime(datetime)) => {
                match datetime.date.and_then(|d| Day::parse(&format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))) {
                    Some(day) if datetime.time.is_none() => Some(EnforceAfter::Date(day)),
                    _ => {
                        self.error(
                            "policy.enforce_after",
                            "must be a date without a time",
                            "write enforce_after = \"2026-12-01\"",
                        );
                        None
                    }
                }
            }
            Some(Value::Integer(days)) if (0..=3650).contains(days) => {
                Some(EnforceAfter::DaysAfterFirstStart(*days as u32))
            }
            Some(other) => {
                self.error(
                    "policy.enforce_after",
                    format!("must be a date or a number of days, not {}", type_name(other)),
                    "write enforce_after = \"2026-12-01\" or enforce_after = 7",
                );
                None
            }
        };
        let bounce_senders = self
            .strings(table, prefix, "bounce_senders")
            .unwrap_or_else(|| vec!["mailer-daemon".into()])
            .into_iter()
            .map(|s| s.trim().to_lowercase())
            .collect();
        let patterns = |reader: &mut Reader, key: &str| -> Vec<AddressPattern> {
            reader.strings(table, prefix, key).unwrap_or_default().iter().map(|s| AddressPattern::new(s)).collect()
        };
        let exempt_senders = patterns(self, "exempt_senders");
        let exempt_recipients = patterns(self, "exempt_recipients");
        let unverified_recipients = patterns(self, "unverified_recipients");
        let mut message_id_patterns = std::collections::HashMap::new();
        match table.get("message_id_patterns") {
            None => {}
            Some(Value::Table(domains)) => {
                for (domain, value) in domains {
                    let key = format!("policy.message_id_patterns.{domain}");
                    let list = match value {
                        Value::Array(items) => {
                            items.iter().filter_map(Value::as_str).map(str::to_lowercase).collect::<Vec<_>>()
                        }
                        _ => Vec::new(),
                    };
                    let all_strings = matches!(value, Value::Array(items) if items.iter().all(Value::is_str));
                    if !all_strings || list.is_empty() {
                        self.error(
                            &key,
                            "must be a non-empty list of patterns",
                            format!("write \"{domain}\" = [\"*@mx.{domain}\"]"),
                        );
                        continue;
                    }
                    if check_domain_entry(domain.strip_prefix("*.").unwrap_or(domain)).is_err() {
                        self.error(
                            &key,
                            format!("\"{domain}\" is not a domain name"),
                            "use one of your domains as the key",
                        );
                        continue;
                    }
                    message_id_patterns.insert(domain.trim_end_matches('.').to_lowercase(), list);
                }
            }
            Some(other) => self.wrong_type(
                "policy.message_id_patterns",
                other,
                "a table of domain = [patterns]",
                "[policy.message_id_patterns] \"example.com\" = [\"*@mx.example.com\"]",
            ),
        }
        let inspect_max_bytes =
            self.size(table, prefix, "inspect_max_bytes", 256 * 1024).min(16 * 1024 * 1024) as usize;
        PolicySettings {
            mode,
            untagged_bounce,
            untagged_stage,
            enforce_after,
            bounce_senders,
            non_bounce_invalid_tag,
            exempt_senders,
            exempt_recipients,
            unverified_recipients,
            message_id_patterns,
            inspect_max_bytes,
        }
    }

    fn certificate_files(&mut self, table: &Table, prefix: &str, base: &Path) -> Option<CertificateFiles> {
        let mut path = |key: &str, example: &str| match self.string(table, prefix, key, example) {
            Some(text) => {
                let path = self.path(base, text);
                if let Err(error) = std::fs::metadata(&path) {
                    self.error(
                        &join(prefix, key),
                        format!("cannot read {}: {error}", path.display()),
                        "give the path of a PEM file (relative paths are relative to this file)",
                    );
                    None
                } else {
                    Some(path)
                }
            }
            None => {
                if !table.contains_key(key) {
                    self.error(&join(prefix, key), "missing", format!("add {example}"));
                }
                None
            }
        };
        let cert = path("cert", "cert = \"/etc/ssl/mx.example.com/fullchain.pem\"");
        let key = path("key", "key = \"/etc/ssl/mx.example.com/privkey.pem\"");
        Some(CertificateFiles { cert: cert?, key: key? })
    }

    fn tls(&mut self, table: &Table, prefix: &str, base: &Path) -> Option<TlsSettings> {
        self.unknown_keys(table, prefix, &["mode", "cert", "key", "require", "handshake_timeout", "sni"]);
        let mode = self.choice(
            table,
            prefix,
            "mode",
            &[("starttls", TlsMode::StartTls), ("implicit", TlsMode::Implicit)],
            TlsMode::StartTls,
        );
        let require = match table.get("require") {
            None => false,
            Some(Value::Boolean(value)) => *value,
            Some(other) => {
                self.wrong_type(&join(prefix, "require"), other, "true or false", "require = true");
                false
            }
        };
        let handshake_timeout = self.duration(table, prefix, "handshake_timeout", Duration::from_secs(30));
        let mut certificates = vec![self.certificate_files(table, prefix, base)];
        match table.get("sni") {
            None => {}
            Some(Value::Array(items)) => {
                for (index, item) in items.iter().enumerate() {
                    let item_prefix = format!("{prefix}.sni[{}]", index + 1);
                    match item {
                        Value::Table(entry) => {
                            self.unknown_keys(entry, &item_prefix, &["cert", "key"]);
                            certificates.push(self.certificate_files(entry, &item_prefix, base));
                        }
                        other => self.wrong_type(&item_prefix, other, "a table", "[[listener.tls.sni]]"),
                    }
                }
            }
            Some(other) => self.wrong_type(&join(prefix, "sni"), other, "a list of tables", "[[listener.tls.sni]]"),
        }
        let certificates: Option<Vec<CertificateFiles>> = certificates.into_iter().collect();
        Some(TlsSettings { mode, require, certificates: certificates?, handshake_timeout })
    }

    fn upstream_tls(&mut self, table: &Table, prefix: &str, base: &Path) -> UpstreamTlsSettings {
        let mode = self.choice(
            table,
            prefix,
            "upstream_tls",
            &[
                ("none", UpstreamTlsMode::None),
                ("starttls", UpstreamTlsMode::StartTls),
                ("implicit", UpstreamTlsMode::Implicit),
            ],
            UpstreamTlsMode::None,
        );
        let ca_file = self
            .string(table, prefix, "upstream_tls_ca", "upstream_tls_ca = \"ca.pem\"")
            .map(|text| self.path(base, text));
        if let Some(path) = &ca_file
            && let Err(error) = std::fs::metadata(path)
        {
            self.error(
                &join(prefix, "upstream_tls_ca"),
                format!("cannot read {}: {error}", path.display()),
                "give the path of a PEM file of CA certificates",
            );
        }
        let verify_full = match table.get("upstream_tls_verify") {
            None => true,
            Some(Value::Boolean(value)) => *value,
            Some(other) => {
                self.wrong_type(
                    &join(prefix, "upstream_tls_verify"),
                    other,
                    "true or false",
                    "upstream_tls_verify = true",
                );
                true
            }
        };
        let mut pins = Vec::new();
        let pin_texts = match table.get("upstream_tls_pin") {
            Some(Value::String(one)) => vec![one.clone()],
            Some(_) => self.strings(table, prefix, "upstream_tls_pin").unwrap_or_default(),
            None => Vec::new(),
        };
        for text in pin_texts {
            match parse_fingerprint(&text) {
                Some(pin) => pins.push(pin),
                None => self.error(
                    &join(prefix, "upstream_tls_pin"),
                    format!("\"{text}\" is not a SHA-256 fingerprint"),
                    "write 64 hex digits (colons allowed), e.g. from: openssl x509 -noout -fingerprint -sha256 -in cert.pem",
                ),
            }
        }
        let verify = if !pins.is_empty() {
            UpstreamVerify::Pin(pins)
        } else if verify_full {
            UpstreamVerify::Full
        } else {
            UpstreamVerify::None
        };
        let server_name = self
            .string(table, prefix, "upstream_tls_name", "upstream_tls_name = \"mx.example.com\"")
            .map(str::to_owned);
        UpstreamTlsSettings { mode, ca_file, verify, server_name }
    }

    fn listener(&mut self, table: &Table, prefix: &str, base: &Path) -> Option<ListenerSettings> {
        const KNOWN: &[&str] = &[
            "role",
            "listen",
            "upstream",
            "client_identity",
            "hostname",
            "max_connections",
            "max_connections_per_ip",
            "max_command_line",
            "max_recipients",
            "max_message_size",
            "max_errors",
            "command_timeout",
            "data_timeout",
            "upstream_connect_timeout",
            "upstream_timeout",
            "upstream_data_timeout",
            "tls",
            "upstream_tls",
            "upstream_tls_ca",
            "upstream_tls_verify",
            "upstream_tls_pin",
            "upstream_tls_name",
            "client_name_lookup",
            "allowed_clients",
        ];
        self.unknown_keys(table, prefix, KNOWN);
        let role = match self.string(table, prefix, "role", "role = \"inbound\"") {
            Some("inbound") => Some(Role::Inbound),
            Some("outbound") => Some(Role::Outbound),
            Some(other) => {
                self.error(
                    &join(prefix, "role"),
                    format!("\"{other}\" is not a role"),
                    "use \"inbound\" (verify bounces) or \"outbound\" (sign senders)",
                );
                None
            }
            None => {
                if !table.contains_key("role") {
                    self.error(&join(prefix, "role"), "missing", "add role = \"inbound\" or role = \"outbound\"");
                }
                None
            }
        };
        let listen = match self.string(table, prefix, "listen", "listen = \"127.0.0.1:2525\"") {
            Some(text) => match text.parse::<SocketAddr>() {
                Ok(address) => Some(address),
                Err(_) => {
                    self.error(
                        &join(prefix, "listen"),
                        format!("\"{text}\" is not an IP address and port"),
                        "write listen = \"0.0.0.0:25\" or \"[::]:25\"",
                    );
                    None
                }
            },
            None => {
                if !table.contains_key("listen") {
                    self.error(&join(prefix, "listen"), "missing", "add listen = \"IP:port\"");
                }
                None
            }
        };
        let upstream = match self.string(table, prefix, "upstream", "upstream = \"127.0.0.1:10025\"") {
            Some(text) if valid_host_port(text) => Some(text.to_owned()),
            Some(text) => {
                self.error(
                    &join(prefix, "upstream"),
                    format!("\"{text}\" is not host:port"),
                    "write upstream = \"127.0.0.1:10025\" (the MTA's port)",
                );
                None
            }
            None => {
                if !table.contains_key("upstream") {
                    self.error(&join(prefix, "upstream"), "missing", "add upstream = \"host:port\" of your MTA");
                }
                None
            }
        };
        let client_identity = self.choice(
            table,
            prefix,
            "client_identity",
            &[
                ("xclient", ClientIdentity::Xclient),
                ("proxy-v2", ClientIdentity::ProxyV2),
                ("none", ClientIdentity::None),
            ],
            ClientIdentity::Xclient,
        );
        let hostname = match self.string(table, prefix, "hostname", "hostname = \"mx.example.com\"") {
            Some(name) if Domain::parse(name).is_ok() && !name.starts_with('[') => name.to_owned(),
            Some(name) => {
                self.error(
                    &join(prefix, "hostname"),
                    format!("\"{name}\" is not a host name"),
                    "write hostname = \"mx.example.com\"",
                );
                system_hostname()
            }
            None => system_hostname(),
        };
        let defaults = Limits::default();
        let limits = Limits {
            max_connections: self.count(table, prefix, "max_connections", defaults.max_connections),
            max_connections_per_ip: self.count(
                table,
                prefix,
                "max_connections_per_ip",
                defaults.max_connections_per_ip,
            ),
            max_command_line: self
                .integer(table, prefix, "max_command_line", (512, 65536))
                .map_or(defaults.max_command_line, |n| n as usize),
            max_recipients: self.count(table, prefix, "max_recipients", defaults.max_recipients),
            max_message_size: self.size(table, prefix, "max_message_size", defaults.max_message_size),
            max_errors: self.count(table, prefix, "max_errors", defaults.max_errors),
            command_timeout: self.duration(table, prefix, "command_timeout", defaults.command_timeout),
            data_timeout: self.duration(table, prefix, "data_timeout", defaults.data_timeout),
            upstream_connect_timeout: self.duration(
                table,
                prefix,
                "upstream_connect_timeout",
                defaults.upstream_connect_timeout,
            ),
            upstream_timeout: self.duration(table, prefix, "upstream_timeout", defaults.upstream_timeout),
            upstream_data_timeout: self.duration(
                table,
                prefix,
                "upstream_data_timeout",
                defaults.upstream_data_timeout,
            ),
        };
        let tls = match table.get("tls") {
            None => None,
            Some(Value::Table(tls)) => self.tls(tls, &join(prefix, "tls"), base),
            Some(other) => {
                self.wrong_type(&join(prefix, "tls"), other, "a table", "[listener.tls]");
                None
            }
        };
        let mut allowed_clients = Vec::new();
        for text in self.strings(table, prefix, "allowed_clients").unwrap_or_default() {
            match ClientNetwork::parse(&text) {
                Some(network) => allowed_clients.push(network),
                None => self.error(
                    &join(prefix, "allowed_clients"),
                    format!("\"{text}\" is not an address or network"),
                    "write addresses or CIDR networks: [\"192.0.2.10\", \"10.0.0.0/8\", \"2001:db8::/32\"]",
                ),
            }
        }
        let client_name_lookup = match table.get("client_name_lookup") {
            None => true,
            Some(Value::Boolean(value)) => *value,
            Some(other) => {
                self.wrong_type(
                    &join(prefix, "client_name_lookup"),
                    other,
                    "true or false",
                    "client_name_lookup = true",
                );
                true
            }
        };
        let upstream_tls = self.upstream_tls(table, prefix, base);
        let (role, listen, upstream) = (role?, listen?, upstream?);
        Some(ListenerSettings {
            name: format!("{}@{listen}", role.as_str()),
            role,
            listen,
            upstream,
            client_identity,
            client_name_lookup,
            allowed_clients,
            hostname,
            limits,
            tls,
            upstream_tls,
        })
    }
}

fn check_domain_entry(entry: &str) -> Result<(), &'static str> {
    let name = entry.strip_prefix("*.").unwrap_or(entry);
    if name.contains('*')
        || name.contains('@')
        || name.starts_with('[')
        || Domain::parse(name).is_err()
        || !name.contains('.') && name != "localhost"
    {
        Err("not a domain name")
    } else {
        Ok(())
    }
}

fn valid_host_port(text: &str) -> bool {
    if text.parse::<SocketAddr>().is_ok() {
        return true;
    }
    match text.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !host.contains(':')
                && port.parse::<u16>().is_ok_and(|p| p > 0)
                && Domain::parse(host).is_ok()
        }
        None => false,
    }
}

/// A SHA-256 fingerprint: 64 hex digits, colons and a `sha256:` prefix allowed.
fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let text = text.strip_prefix("sha256:").or_else(|| text.strip_prefix("SHA256:")).unwrap_or(text);
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b':').collect();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (index, pair) in digits.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[index] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// `10240000`, `50MiB`, `10MB`, `512k`: binary and decimal units.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1024,
        "m" | "mb" => 1000 * 1000,
        "mib" => 1024 * 1024,
        "g" | "gb" => 1000 * 1000 * 1000,
        "gib" => 1024 * 1024 * 1024,
        _ => return None,
    };
    number.checked_mul(factor)
}

fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The closest known key, for "did you mean" hints.
fn suggestion<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|candidate| (edit_distance(key, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 4))
        .min()
        .map(|(_, candidate)| candidate)
}

/// Optimal string alignment distance: edits plus swaps of neighbours, the
/// commonest typos in hand-written keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut table = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in table.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in table[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (table[i - 1][j] + 1).min(table[i][j - 1] + 1).min(table[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(table[i - 2][j - 2] + 1);
            }
            table[i][j] = best;
        }
    }
    table[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let keys = dir.path().join("keys");
            std::fs::write(&keys, "1 c2VjcmV0\n").unwrap();
            std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
            Fixture { dir }
        }

        fn parse(&self, text: &str) -> Result<Config, ConfigErrors> {
            Config::parse(text, &self.dir.path().join("cfg.toml"))
        }
    }

    const MINIMAL: &str = r#"
[batv]
key_file = "keys"
domains = ["example.com", "*.example.org"]

[[listener]]
role = "inbound"
listen = "127.0.0.1:2525"
upstream = "127.0.0.1:10025"
"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let fixture = Fixture::new();
        let config = fixture.parse(MINIMAL).unwrap();
        assert_eq!(config.batv.hash, HashAlgorithm::Sha256);
        assert_eq!(config.batv.lifetime_days, 7);
        assert_eq!(config.batv.key_file, fixture.dir.path().join("keys"));
        assert_eq!(config.policy.mode, Mode::Enforce);
        assert_eq!(config.policy.untagged_bounce, UntaggedBounce::Inspect);
        assert_eq!(config.ledger.store, LedgerStore::None);
        assert_eq!(config.policy.untagged_stage, UntaggedStage::Data);
        assert_eq!(config.policy.bounce_senders, vec!["mailer-daemon"]);
        let listener = &config.listeners[0];
        assert_eq!(listener.role, Role::Inbound);
        assert_eq!(listener.client_identity, ClientIdentity::Xclient);
        assert_eq!(listener.limits, Limits::default());
    }

    #[test]
    fn risky_settings_are_warned_about() {
        let fixture = Fixture::new();
        let warnings = fixture.parse(MINIMAL).unwrap().warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("[ledger]"), "{warnings:?}");
        let risky =
            format!("{MINIMAL}client_identity = \"none\"\n[policy]\nmode = \"monitor\"\n[ledger]\nstore = \"file\"\n");
        let warnings = fixture.parse(&risky).unwrap().warnings();
        assert!(
            warnings.iter().any(|w| w.contains("client_identity")) && warnings.iter().any(|w| w.contains("monitor"))
        );
        assert!(!warnings.iter().any(|w| w.contains("[ledger]")), "{warnings:?}");
    }

    #[test]
    fn every_error_is_reported_together() {
        let fixture = Fixture::new();
        let text = r#"
nonsense_top = 1
[batv]
key_file = "nokeys"
hash = "md5"
lifetime_days = -3
domains = ["example.com", "bad domain"]
[policy]
mode = "loud"
enforce_after = "soon"
[[listener]]
role = "sideways"
listen = "localhost"
upstream = "nowhere"
max_message_size = "lots"
command_timeout = "forever"
nonsense_key = 1
"#;
        let errors = fixture.parse(text).unwrap_err();
        let keys: Vec<&str> = errors.0.iter().map(|e| e.key.as_str()).collect();
        for expected in [
            "nonsense_top",
            "batv.key_file",
            "batv.hash",
            "batv.lifetime_days",
            "batv.domains",
            "policy.mode",
            "policy.enforce_after",
            "listener[1].role",
            "listener[1].listen",
            "listener[1].upstream",
            "listener[1].max_message_size",
            "listener[1].command_timeout",
            "listener[1].nonsense_key",
        ] {
            assert!(keys.contains(&expected), "{expected} missing from {keys:?}");
        }
        for error in &errors.0 {
            assert!(!error.fix.is_empty(), "{error} has no fix");
            assert!(error.to_string().contains("cfg.toml"), "{error}");
        }
        let text = errors.to_string();
        assert!(text.contains("nokeys") && text.contains("keygen"), "{text}");
    }

    #[test]
    fn typos_get_a_suggestion() {
        let fixture = Fixture::new();
        let errors = fixture.parse(&MINIMAL.replace("domains =", "domian = [\"x.com\"]\ndomains =")).unwrap_err();
        assert!(errors.to_string().contains("did you mean `domains`"), "{errors}");
    }

    #[test]
    fn syntax_errors_are_reported() {
        let fixture = Fixture::new();
        let errors = fixture.parse("[batv\nkey_file=").unwrap_err();
        assert!(errors.to_string().contains("not valid TOML"), "{errors}");
    }

    #[test]
    fn world_readable_keys_are_a_config_error() {
        let fixture = Fixture::new();
        std::fs::set_permissions(fixture.dir.path().join("keys"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let errors = fixture.parse(MINIMAL).unwrap_err();
        assert!(errors.to_string().contains("chmod 600"), "{errors}");
    }

    #[test]
    fn domains_match_exactly_and_by_wildcard() {
        let mut set = DomainSet::default();
        set.insert("Example.com");
        set.insert("*.example.org");
        let check = |name: &str| set.contains(&Domain::parse(name).unwrap());
        assert!(check("example.com") && check("EXAMPLE.COM") && check("example.com."));
        assert!(check("mail.example.org") && check("a.b.example.org"));
        assert!(
            !check("example.org") && !check("sub.example.com") && !check("badexample.org") && !check("example.net")
        );
    }

    #[test]
    fn domains_file_is_read() {
        let fixture = Fixture::new();
        std::fs::write(
            fixture.dir.path().join("domains.txt"),
            "# ours\nexample.net\n*.example.io # all subdomains\n\n",
        )
        .unwrap();
        let config =
            fixture.parse(&MINIMAL.replace("domains = [", "domains_file = \"domains.txt\"\ndomains = [")).unwrap();
        assert!(config.batv.domains.contains(&Domain::parse("example.net").unwrap()));
        assert!(config.batv.domains.contains(&Domain::parse("x.example.io").unwrap()));
        assert!(config.batv.domains.contains(&Domain::parse("example.com").unwrap()));
        std::fs::write(fixture.dir.path().join("domains.txt"), "not a domain\n").unwrap();
        let errors =
            fixture.parse(&MINIMAL.replace("domains = [", "domains_file = \"domains.txt\"\ndomains = [")).unwrap_err();
        assert!(errors.to_string().contains("domains.txt:1"), "{errors}");
    }

    #[test]
    fn values_parse() {
        let fixture = Fixture::new();
        let text = format!(
            "{MINIMAL}max_message_size = \"20MiB\"\ncommand_timeout = \"2m\"\ndata_timeout = 60\nclient_identity = \"proxy-v2\"\nhostname = \"mx.example.com\"\n[policy]\nenforce_after = \"2026-12-01\"\nexempt_senders = [\"*@lists.example.com\"]\n"
        );
        let config = fixture.parse(&format!("[server]\nworker_threads = 1\ndrain_timeout = \"10s\"\n{text}")).unwrap();
        assert_eq!(config.worker_threads, Some(1));
        assert_eq!(config.drain_timeout, Duration::from_secs(10));
        let limits = &config.listeners[0].limits;
        assert_eq!(limits.max_message_size, 20 * 1024 * 1024);
        assert_eq!(limits.command_timeout, Duration::from_secs(120));
        assert_eq!(limits.data_timeout, Duration::from_secs(60));
        assert_eq!(config.listeners[0].client_identity, ClientIdentity::ProxyV2);
        assert_eq!(config.policy.enforce_after, Some(EnforceAfter::Date(Day::parse("2026-12-01").unwrap())));
        assert!(config.policy.exempt_senders[0].matches(&Mailbox::parse("News@Lists.Example.com").unwrap()));
    }

    #[test]
    fn patterns() {
        let mailbox = |text| Mailbox::parse(text).unwrap();
        assert!(!AddressPattern::new("owner-*").matches(&mailbox("owner-x@example.com")));
        assert!(AddressPattern::new("owner-*@*").matches(&mailbox("owner-x@example.com")));
        assert!(AddressPattern::new("*.example.net").matches(&mailbox("a@lists.example.net")));
        assert!(!AddressPattern::new("*.example.net").matches(&mailbox("a@example.net")));
        assert!(AddressPattern::new("example.net").matches(&mailbox("a@EXAMPLE.net")));
        assert!(AddressPattern::new("*-bounces+*@*").matches(&mailbox("list-bounces+a=b.c@example.com")));
        assert!(glob_match("a*b*c", "axxbyyc") && !glob_match("a*b*c", "axxbyy"));
    }

    #[test]
    fn message_id_patterns_by_domain_and_wildcard() {
        let fixture = Fixture::new();
        let text = format!(
            "{MINIMAL}[policy.message_id_patterns]\n\"example.com\" = [\"*@mx.example.com\"]\n\"*.example.org\" = [\"*.javamail.*@*\"]\n"
        );
        let policy = fixture.parse(&text).unwrap().policy;
        let domain = |name: &str| Domain::parse(name).unwrap();
        assert!(policy.matches_message_id(&domain("EXAMPLE.com"), "<ABC.123@MX.example.com>"));
        assert!(!policy.matches_message_id(&domain("example.com"), "<abc@other.test>"));
        assert!(policy.matches_message_id(&domain("lists.example.org"), "<1.JavaMail.app@host>"));
        assert!(!policy.matches_message_id(&domain("example.org"), "<1.JavaMail.app@host>"));
    }

    #[test]
    fn client_networks() {
        let ip = |text: &str| text.parse::<std::net::IpAddr>().unwrap();
        let net = ClientNetwork::parse("10.0.0.0/8").unwrap();
        assert!(net.contains(ip("10.1.2.3")) && !net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.9.9.9")), "IPv4 clients on a dual-stack socket");
        let single = ClientNetwork::parse("192.0.2.7").unwrap();
        assert!(single.contains(ip("192.0.2.7")) && !single.contains(ip("192.0.2.8")));
        let v6 = ClientNetwork::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")));
        assert!(ClientNetwork::parse("0.0.0.0/0").unwrap().contains(ip("203.0.113.1")));
        assert_eq!(ClientNetwork::parse("10.0.0.0/33"), None);
        assert_eq!(ClientNetwork::parse("ten"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10240000"), Some(10_240_000));
        assert_eq!(parse_size("50MiB"), Some(50 * 1024 * 1024));
        assert_eq!(parse_size("10 MB"), Some(10_000_000));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("5TB"), None);
    }
}
