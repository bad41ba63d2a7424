//! `[ledger]`: where the outbound Message-ID ledger lives: a redb file in
//! `state_dir`, or Redis (one server, Sentinel or Cluster, with TLS and
//! credentials) shared by several proxy hosts, whose outage queue is the
//! same redb file.

use std::path::{Path, PathBuf};

use super::section::Section;
use super::values::{Problem, choice, existing_file, number, relative_to, text};

/// Enough for a week of a busy site's outbound mail in a few hundred MB.
pub const DEFAULT_LEDGER_MAX_ENTRIES: u64 = 1_000_000;
/// The file's name in `state_dir`.
pub const DEFAULT_LEDGER_FILE: &str = "ledger.redb";
/// Ids kept while the store cannot take them (in memory for the file
/// store, in the redb file for Redis).
pub const DEFAULT_LEDGER_QUEUE_MAX_ENTRIES: u64 = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerStore {
    None,
    /// An embedded database file.
    File(PathBuf),
    /// Redis, for several proxy hosts.
    Redis(RedisSettings),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerSettings {
    pub store: LedgerStore,
    pub max_entries: u64,
    /// The redb file: the ledger itself (`store = "file"`) or the queue of
    /// ids waiting for Redis (`store = "redis"`).
    pub path: PathBuf,
    pub queue_max_entries: u64,
}

impl Default for LedgerSettings {
    fn default() -> Self {
        LedgerSettings {
            store: LedgerStore::None,
            max_entries: DEFAULT_LEDGER_MAX_ENTRIES,
            path: PathBuf::from(super::DEFAULT_STATE_DIR).join(DEFAULT_LEDGER_FILE),
            queue_max_entries: DEFAULT_LEDGER_QUEUE_MAX_ENTRIES,
        }
    }
}

/// Which Redis, and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTopology {
    /// `redis://`, `rediss://` or `unix://`, as the redis crate reads it.
    Single(String),
    /// `redis+sentinel://host:port,host:port/service[/db]`: the primary of
    /// `service`, as the Sentinels name it, found again after a failover.
    Sentinel { sentinels: Vec<(String, u16)>, service: String, db: i64 },
    /// `redis+cluster://host:port,host:port`: any nodes of a Redis Cluster.
    Cluster { nodes: Vec<(String, u16)> },
}

/// A password, never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisPassword(pub String);

impl std::fmt::Debug for RedisPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    pub topology: RedisTopology,
    /// `rediss` schemes: TLS to every node (and to the Sentinels).
    pub tls: bool,
    /// PEM roots to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain and key, for servers that ask for one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub username: Option<String>,
    pub password: Option<RedisPassword>,
    /// Replicas that must have each batch (Redis `WAIT`) before its ids
    /// leave the local queue: 1 keeps them through a failover.
    pub wait_replicas: u32,
}

impl RedisSettings {
    /// The topology as a log or error names it: never a password.
    pub fn describe(&self) -> String {
        match &self.topology {
            RedisTopology::Single(url) => redact_url(url),
            RedisTopology::Sentinel { sentinels, service, .. } => {
                format!("service {service} of Sentinels {}", join(sentinels))
            }
            RedisTopology::Cluster { nodes } => format!("cluster of {}", join(nodes)),
        }
    }
}

fn join(hosts: &[(String, u16)]) -> String {
    hosts.iter().map(|(host, port)| format!("{host}:{port}")).collect::<Vec<_>>().join(",")
}

/// `redis://user:secret@host/0` → `redis://user:***@host/0`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{}", &rest[at + 1..])
        }
        None => url.to_owned(),
    }
}

#[derive(Clone, Copy)]
enum Kind {
    None,
    File,
    Redis,
}

const STORES: &[(&str, Kind)] = &[("none", Kind::None), ("file", Kind::File), ("redis", Kind::Redis)];
const URL_EXAMPLE: &str = "redis_url = \"redis://host:6379/0\"";

/// A relative `path` is taken in `state_dir`: the ledger is state, not configuration.
pub(super) fn read_ledger(ledger: &mut Section, state_dir: &Path, base: &Path) -> LedgerSettings {
    let kind = ledger.get_or("store", Kind::None, choice(STORES));
    let file = ledger.get_or("path", DEFAULT_LEDGER_FILE.to_owned(), text("path = \"ledger.redb\""));
    let max_entries = ledger.get_or("max_entries", DEFAULT_LEDGER_MAX_ENTRIES, number(1000..=1_000_000_000));
    let queue_max_entries =
        ledger.get_or("queue_max_entries", DEFAULT_LEDGER_QUEUE_MAX_ENTRIES, number(100..=100_000_000));
    let redis = read_redis(ledger, base);
    let path = relative_to(state_dir, &file);
    let store = match kind {
        Kind::None => LedgerStore::None,
        Kind::File => LedgerStore::File(path.clone()),
        Kind::Redis => match redis {
            Some(redis) => LedgerStore::Redis(redis),
            None => {
                if !ledger.is_set("redis_url") {
                    ledger.report("redis_url", "missing", format!("add {URL_EXAMPLE}"));
                }
                LedgerStore::None
            }
        },
    };
    LedgerSettings { store, max_entries, path, queue_max_entries }
}

/// The `redis_*` keys; `None` without a valid `redis_url`.
fn read_redis(ledger: &mut Section, base: &Path) -> Option<RedisSettings> {
    let url = ledger.get("redis_url", text(URL_EXAMPLE));
    let username = ledger.get("redis_username", text("redis_username = \"batv-proxy\""));
    let password_file = ledger.get(
        "redis_password_file",
        existing_file(
            base,
            "redis_password_file = \"/etc/batv-proxy/redis-password\"",
            "write the password into that file (mode 0600, readable by the user batv-proxy runs as)",
        ),
    );
    let password_env = ledger.get("redis_password_env", text("redis_password_env = \"BATV_REDIS_PASSWORD\""));
    let ca_file = ledger.get(
        "redis_ca_file",
        existing_file(
            base,
            "redis_ca_file = \"redis-ca.pem\"",
            "point it at the PEM file of the CA that signed Redis's certificate",
        ),
    );
    let cert_fix = "point it at a PEM file; redis_client_cert and redis_client_key go together";
    let client_cert =
        ledger.get("redis_client_cert", existing_file(base, "redis_client_cert = \"client.pem\"", cert_fix));
    let client_key = ledger.get("redis_client_key", existing_file(base, "redis_client_key = \"client.key\"", cert_fix));
    let wait_replicas = ledger.get_or("redis_wait_replicas", 0, number(0..=16));

    let url = url?;
    let (topology, tls) = match parse_url(&url) {
        Ok(parsed) => parsed,
        Err(problem) => {
            ledger.report("redis_url", problem.problem, problem.fix);
            return None;
        }
    };
    let password = match (password_file, password_env) {
        (Some(_), Some(_)) => {
            ledger.report(
                "redis_password_env",
                "both redis_password_file and redis_password_env are set",
                "keep one of them",
            );
            None
        }
        (Some(file), None) => match std::fs::read_to_string(&file) {
            Ok(text) => Some(RedisPassword(text.trim_end_matches(['\r', '\n']).to_owned())),
            Err(error) => {
                ledger.report(
                    "redis_password_file",
                    format!("cannot read {}: {error}", file.display()),
                    "make it readable by the user batv-proxy runs as",
                );
                None
            }
        },
        (None, Some(variable)) => match std::env::var(&variable) {
            Ok(value) if !value.is_empty() => Some(RedisPassword(value)),
            _ => {
                ledger.report(
                    "redis_password_env",
                    format!("the environment variable {variable} is not set"),
                    format!("set {variable} in the service's environment (systemd: EnvironmentFile=), or use redis_password_file"),
                );
                None
            }
        },
        (None, None) => None,
    };
    if password.is_some() && url_has_password(&url) {
        ledger.report(
            "redis_url",
            "the URL carries a password and redis_password_file/_env gives one too",
            "keep the password out of redis_url",
        );
    }
    if !tls {
        for key in ["redis_ca_file", "redis_client_cert", "redis_client_key"] {
            if ledger.is_set(key) {
                ledger.report(
                    key,
                    "is only used with TLS",
                    "use a rediss:// (or rediss+sentinel://, rediss+cluster://) URL, or remove it",
                );
            }
        }
    }
    let client_cert = match (client_cert, client_key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => {
            let missing = if ledger.is_set("redis_client_cert") { "redis_client_key" } else { "redis_client_cert" };
            if !(ledger.is_set("redis_client_cert") && ledger.is_set("redis_client_key")) {
                ledger.report(missing, "missing", "redis_client_cert and redis_client_key go together");
            }
            None
        }
    };
    if wait_replicas > 0 && matches!(topology, RedisTopology::Cluster { .. }) {
        ledger.report("redis_wait_replicas", "is not supported with Redis Cluster", "remove it, or use Sentinel");
    }
    Some(RedisSettings { topology, tls, ca_file, client_cert, username, password, wait_replicas })
}

fn url_has_password(url: &str) -> bool {
    url.split_once("://").is_some_and(|(_, rest)| {
        let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
        authority.rfind('@').is_some_and(|at| authority[..at].contains(':'))
    })
}

/// The topology and whether it speaks TLS.
fn parse_url(url: &str) -> Result<(RedisTopology, bool), Problem> {
    let not_url = || {
        Problem::new(
            format!("\"{}\" is not a Redis URL", redact_url(url)),
            "write redis://host:6379/0, rediss://host:6380/0, unix:///run/redis.sock, \
             redis+sentinel://host:26379,host:26379/service or redis+cluster://host:6379,host:6379",
        )
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(not_url)?;
    match scheme {
        "redis" | "unix" | "redis+unix" => Ok((RedisTopology::Single(url.to_owned()), false)),
        "rediss" => Ok((RedisTopology::Single(url.to_owned()), true)),
        "redis+sentinel" | "rediss+sentinel" => {
            let mut parts = rest.split('/');
            let sentinels = hosts(parts.next().unwrap_or(""), 26379).ok_or_else(not_url)?;
            let service = parts.next().filter(|s| !s.is_empty()).ok_or_else(|| {
                Problem::new(
                    "the Sentinel URL names no service",
                    "write redis+sentinel://host:26379,host:26379/SERVICE (the name in sentinel monitor)",
                )
            })?;
            let db = match parts.next().filter(|s| !s.is_empty()) {
                None => 0,
                Some(db) => db.parse().map_err(|_| not_url())?,
            };
            let tls = scheme.starts_with("rediss");
            Ok((RedisTopology::Sentinel { sentinels, service: service.to_owned(), db }, tls))
        }
        "redis+cluster" | "rediss+cluster" => {
            let nodes = hosts(rest.trim_end_matches('/'), 6379).ok_or_else(not_url)?;
            Ok((RedisTopology::Cluster { nodes }, scheme.starts_with("rediss")))
        }
        _ => Err(not_url()),
    }
}

/// `a:1,b,[::1]:3` with a default port; no credentials.
fn hosts(text: &str, default_port: u16) -> Option<Vec<(String, u16)>> {
    let mut hosts = Vec::new();
    for entry in text.split(',') {
        if entry.is_empty() || entry.contains('@') {
            return None;
        }
        let (host, port) = match entry.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(':') && (!host.contains(':') || host.starts_with('[')) => {
                (host, port.parse().ok().filter(|p| *p > 0)?)
            }
            _ => (entry, default_port),
        };
        hosts.push((host.trim_start_matches('[').trim_end_matches(']').to_owned(), port));
    }
    Some(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_the_topology() {
        let single = parse_url("rediss://user@redis.example:6380/2").unwrap();
        assert_eq!(single, (RedisTopology::Single("rediss://user@redis.example:6380/2".into()), true));
        let (sentinel, tls) = parse_url("redis+sentinel://10.0.0.1:26380,s2/batv/3").unwrap();
        assert!(!tls);
        assert_eq!(
            sentinel,
            RedisTopology::Sentinel {
                sentinels: vec![("10.0.0.1".into(), 26380), ("s2".into(), 26379)],
                service: "batv".into(),
                db: 3
            }
        );
        let (cluster, tls) = parse_url("rediss+cluster://a:7000,[::1]:7001").unwrap();
        assert!(tls);
        assert_eq!(cluster, RedisTopology::Cluster { nodes: vec![("a".into(), 7000), ("::1".into(), 7001)] });
        for bad in ["http://x", "redis+sentinel://a:1", "redis+sentinel://u:p@a/svc", "redis+cluster://", "x"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert_eq!(redact_url("redis://u:secret@h:1/0"), "redis://u:***@h:1/0");
        assert!(url_has_password("redis://:pw@h") && !url_has_password("redis://user@h"));
    }
}
