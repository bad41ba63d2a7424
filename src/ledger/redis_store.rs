//! Redis as it is deployed: one server (`redis://`, `rediss://` with the
//! system roots or a CA file and an optional client certificate, both
//! through rustls), the primary of a Sentinel service (asked for again
//! after every connection error, so a failover is followed), or a Redis
//! Cluster. One multiplexed connection is kept and made again when it
//! fails; every command has a deadline.

use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline, RedisFuture, TlsCertificates,
    TlsMode, Value,
};
use tokio::sync::Mutex;

use crate::config::{RedisSettings, RedisTopology};

use super::Entry;

/// How long a connection or a command may take.
pub(super) const TIMEOUT: Duration = Duration::from_secs(2);
pub(super) const PREFIX: &str = "batv-proxy:ledger:";
/// Sorted set: proxy instance → until when (unix seconds) it holds ids
/// that are not in Redis yet. While one is there, a lookup that finds
/// nothing proves nothing.
const BACKLOG: &str = "batv-proxy:backlog";
/// How long a backlog mark lasts without being renewed.
const BACKLOG_SECONDS: u64 = 60;

/// What a write says about this proxy's outage queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Backlog {
    /// Nothing to say.
    Same,
    /// This proxy holds ids Redis lacks: mark it.
    Holding,
    /// The queue has emptied: remove the mark.
    Cleared,
}

/// What a lookup found.
pub(super) enum Found {
    Id(String),
    Nothing,
    /// Nothing, but some proxy is still replaying ids it kept during an outage.
    NothingYet,
}

/// Why Redis did not do what was asked, and which setting to look at.
#[derive(Debug)]
pub(super) struct RedisFailure {
    pub message: String,
    /// `redis_password_file`, `redis_ca_file`, ... or `redis_url`.
    pub key: &'static str,
}

impl RedisFailure {
    fn new(error: &redis::RedisError, settings: &RedisSettings) -> Self {
        let text = error.to_string();
        let lower = text.to_lowercase();
        let key = if matches!(error.kind(), redis::ErrorKind::AuthenticationFailed)
            || ["wrongpass", "noauth", "invalid username-password", "auth"].iter().any(|w| lower.contains(w))
        {
            if settings.password.is_some() { "redis_password_file" } else { "redis_username" }
        } else if ["certificate", "tls", "handshake", "unknownissuer"].iter().any(|w| lower.contains(w)) {
            "redis_ca_file"
        } else {
            "redis_url"
        };
        RedisFailure { message: text, key }
    }

    fn plain(message: impl Into<String>) -> Self {
        RedisFailure { message: message.into(), key: "redis_url" }
    }
}

enum Target {
    Single(Client),
    /// Locked while asking the Sentinels, one question at a time.
    Sentinel(Mutex<SentinelClient>),
    Cluster(redis::cluster::ClusterClient),
}

#[derive(Clone)]
enum Connection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(connection) => connection.req_packed_command(cmd),
            Connection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(connection) => connection.get_db(),
            Connection::Cluster(connection) => connection.get_db(),
        }
    }
}

pub(super) struct RedisStore {
    settings: RedisSettings,
    /// This process, in the backlog set: host name and a random number.
    instance: String,
    target: Target,
    connection: Mutex<Option<Connection>>,
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, RedisFailure> {
    std::fs::read(path).map_err(|e| RedisFailure::plain(format!("cannot read {}: {e}", path.display())))
}

/// The CA file and client certificate, when the settings name them.
fn certificates(settings: &RedisSettings) -> Result<Option<TlsCertificates>, RedisFailure> {
    if settings.ca_file.is_none() && settings.client_cert.is_none() {
        return Ok(None);
    }
    let root_cert = settings.ca_file.as_deref().map(read).transpose()?;
    let client_tls = match &settings.client_cert {
        None => None,
        Some((cert, key)) => Some(redis::ClientTlsConfig { client_cert: read(cert)?, client_key: read(key)? }),
    };
    Ok(Some(TlsCertificates { client_tls, root_cert }))
}

impl RedisStore {
    /// Builds the client without connecting: errors here are configuration errors.
    pub(super) fn new(settings: &RedisSettings) -> Result<Self, RedisFailure> {
        let fail = |error: redis::RedisError| RedisFailure::new(&error, settings);
        let certificates = certificates(settings)?;
        let target = match &settings.topology {
            RedisTopology::Single(url) => {
                let mut info = url.as_str().into_connection_info().map_err(fail)?;
                let mut redis = info.redis_settings().clone();
                if let Some(username) = &settings.username {
                    redis = redis.set_username(username);
                }
                if let Some(password) = &settings.password {
                    redis = redis.set_password(&password.0);
                }
                info = info.set_redis_settings(redis);
                let client = match certificates {
                    Some(certificates) => Client::build_with_tls(info, certificates),
                    None => Client::open(info),
                };
                Target::Single(client.map_err(fail)?)
            }
            RedisTopology::Sentinel { sentinels, service, db } => {
                let addresses = sentinels.iter().map(|(host, port)| {
                    if settings.tls {
                        ConnectionAddr::TcpTls { host: host.clone(), port: *port, insecure: false, tls_params: None }
                    } else {
                        ConnectionAddr::Tcp(host.clone(), *port)
                    }
                });
                let mut builder =
                    SentinelClientBuilder::new(addresses, service, SentinelServerType::Master).map_err(fail)?;
                builder = builder.set_client_to_redis_db(*db);
                if let Some(username) = &settings.username {
                    builder = builder.set_client_to_redis_username(username);
                }
                if let Some(password) = &settings.password {
                    builder = builder.set_client_to_redis_password(&password.0);
                }
                if settings.tls {
                    builder = builder
                        .set_client_to_redis_tls_mode(TlsMode::Secure)
                        .set_client_to_sentinel_tls_mode(TlsMode::Secure);
                    if let Some(certificates) = certificates {
                        builder = builder
                            .set_client_to_redis_certificates(certificates.clone())
                            .set_client_to_sentinel_certificates(certificates);
                    }
                }
                Target::Sentinel(Mutex::new(builder.build().map_err(fail)?))
            }
            RedisTopology::Cluster { nodes } => {
                let scheme = if settings.tls { "rediss" } else { "redis" };
                let urls: Vec<String> = nodes.iter().map(|(host, port)| format!("{scheme}://{host}:{port}")).collect();
                let mut builder = redis::cluster::ClusterClientBuilder::new(urls)
                    .connection_timeout(TIMEOUT)
                    .response_timeout(TIMEOUT)
                    .retries(1);
                if let Some(username) = &settings.username {
                    builder = builder.username(username);
                }
                if let Some(password) = &settings.password {
                    builder = builder.password(&password.0);
                }
                if settings.tls {
                    builder = builder.tls(TlsMode::Secure);
                    if let Some(certificates) = certificates {
                        builder = builder.certs(certificates);
                    }
                }
                Target::Cluster(builder.build().map_err(fail)?)
            }
        };
        let mut random = [0u8; 4];
        let _ = getrandom::fill(&mut random);
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let instance = format!("{}:{}", host.trim(), random.iter().map(|b| format!("{b:02x}")).collect::<String>());
        Ok(RedisStore { settings: settings.clone(), instance, target, connection: Mutex::new(None) })
    }

    pub(super) fn describe(&self) -> String {
        format!("redis {}", self.settings.describe())
    }

    async fn connect(&self) -> Result<Connection, redis::RedisError> {
        let config =
            AsyncConnectionConfig::new().set_connection_timeout(Some(TIMEOUT)).set_response_timeout(Some(TIMEOUT));
        match &self.target {
            Target::Single(client) => {
                Ok(Connection::Single(client.get_multiplexed_async_connection_with_config(&config).await?))
            }
            Target::Sentinel(sentinel) => {
                // The Sentinels name the primary now; the connection goes to it.
                let client = sentinel.lock().await.async_get_client().await?;
                Ok(Connection::Single(client.get_multiplexed_async_connection_with_config(&config).await?))
            }
            Target::Cluster(client) => Ok(Connection::Cluster(client.get_async_connection().await?)),
        }
    }

    /// The connection, made now if there is none.
    async fn connection(&self) -> Result<Connection, RedisFailure> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let connection = tokio::time::timeout(TIMEOUT * 2, self.connect())
            .await
            .map_err(|_| RedisFailure::plain("timed out connecting"))?
            .map_err(|error| RedisFailure::new(&error, &self.settings))?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Runs `commands` and returns their replies in order: one pipeline
    /// on a single server; each command on its own in a Cluster, whose
    /// pipelines must stay within one slot. A failure drops the
    /// connection, so the next call connects again (to the new primary,
    /// after a failover). A kept connection that turns out dead (the
    /// server went away since) is replaced at once and the commands sent
    /// again: they are all idempotent.
    async fn run(&self, commands: &[Cmd]) -> Result<Vec<Value>, RedisFailure> {
        let reused = self.connection.lock().await.is_some();
        match self.run_once(commands).await {
            Err(failure) if reused => {
                tracing::debug!(error = %failure.message, "redis connection lost; connecting again");
                self.run_once(commands).await
            }
            result => result,
        }
    }

    async fn run_once(&self, commands: &[Cmd]) -> Result<Vec<Value>, RedisFailure> {
        let connection = self.connection().await?;
        let replies = async {
            match connection {
                Connection::Single(mut connection) => {
                    let mut pipeline = redis::pipe();
                    for command in commands {
                        pipeline.add_command(command.clone());
                    }
                    pipeline.query_async::<Vec<Value>>(&mut connection).await
                }
                Connection::Cluster(connection) => {
                    let mut running = tokio::task::JoinSet::new();
                    for (index, command) in commands.iter().cloned().enumerate() {
                        let mut connection = connection.clone();
                        running.spawn(async move { (index, command.query_async::<Value>(&mut connection).await) });
                    }
                    let mut replies = vec![Value::Nil; commands.len()];
                    while let Some(done) = running.join_next().await {
                        let (index, reply) = done.map_err(|e| redis::RedisError::from(std::io::Error::other(e)))?;
                        replies[index] = reply?;
                    }
                    Ok(replies)
                }
            }
        };
        match tokio::time::timeout(TIMEOUT, replies).await {
            Ok(Ok(replies)) => Ok(replies),
            Ok(Err(error)) => {
                self.connection.lock().await.take();
                Err(RedisFailure::new(&error, &self.settings))
            }
            Err(_) => {
                self.connection.lock().await.take();
                Err(RedisFailure::plain("timed out"))
            }
        }
    }

    /// Writes `entries` with their remaining lifetime, and the backlog
    /// mark; with `redis_wait_replicas`, done only when that many replicas
    /// have them.
    pub(super) async fn write(&self, entries: &[Entry], backlog: Backlog) -> Result<(), RedisFailure> {
        let now = super::redb_store::now();
        let mut commands = Vec::new();
        match backlog {
            Backlog::Same => {}
            Backlog::Holding => {
                commands.push(redis::cmd("ZADD").arg(BACKLOG).arg(now + BACKLOG_SECONDS).arg(&self.instance).clone())
            }
            Backlog::Cleared => commands.push(redis::cmd("ZREM").arg(BACKLOG).arg(&self.instance).clone()),
        }
        for entry in entries.iter().filter(|entry| entry.expiry > now) {
            let key = format!("{PREFIX}{}", entry.id);
            commands.push(redis::cmd("SET").arg(key).arg(1).arg("EX").arg(entry.expiry - now).clone());
        }
        if commands.is_empty() {
            return Ok(());
        }
        let wanted = self.settings.wait_replicas;
        if wanted > 0 {
            commands.push(redis::cmd("WAIT").arg(wanted).arg(TIMEOUT.as_millis() as u64 / 2).clone());
        }
        let replies = self.run(&commands).await?;
        if wanted > 0 {
            let confirmed = replies.last().cloned().map_or(Ok(0), redis::from_redis_value::<u32>).unwrap_or(0);
            if confirmed < wanted {
                return Err(RedisFailure::plain(format!(
                    "only {confirmed} of {wanted} replicas confirmed the write (redis_wait_replicas)"
                )));
            }
        }
        Ok(())
    }

    /// The first of `ids` that Redis holds; when none, whether some proxy
    /// has marked a backlog.
    pub(super) async fn find(&self, ids: &[String]) -> Result<Found, RedisFailure> {
        let mut commands: Vec<Cmd> =
            ids.iter().map(|id| redis::cmd("EXISTS").arg(format!("{PREFIX}{id}")).clone()).collect();
        commands.push(redis::cmd("ZCOUNT").arg(BACKLOG).arg(super::redb_store::now()).arg("+inf").clone());
        let counts: Vec<i64> =
            self.run(&commands).await?.into_iter().map(|reply| redis::from_redis_value(reply).unwrap_or(0)).collect();
        let (backlog, found) = counts.split_last().map_or((0, &[][..]), |(last, rest)| (*last, rest));
        if let Some((id, _)) = ids.iter().zip(found).find(|(_, count)| **count > 0) {
            return Ok(Found::Id(id.clone()));
        }
        Ok(if backlog > 0 { Found::NothingYet } else { Found::Nothing })
    }

    /// `check-config --connect`: write, read and delete a key of our own;
    /// says where it got to.
    pub(super) async fn probe(&self) -> Result<String, RedisFailure> {
        let key = format!("{PREFIX}check-config:{}", std::process::id());
        let set = redis::cmd("SET").arg(&key).arg(1).arg("EX").arg(60).clone();
        self.run(&[set]).await?;
        // One at a time: a Cluster runs the commands of one call side by side.
        let replies = self.run(&[redis::cmd("GET").arg(&key).clone()]).await?;
        self.run(&[redis::cmd("DEL").arg(&key).clone()]).await?;
        let value = replies.into_iter().next().and_then(|reply| redis::from_redis_value::<Option<String>>(reply).ok());
        if value.flatten().as_deref() != Some("1") {
            return Err(RedisFailure::plain("a key written could not be read back"));
        }
        Ok(format!("ledger {}: connected, wrote and read a test key", self.describe()))
    }
}
