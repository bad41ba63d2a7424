//! `[[listener]]`: one address, its role, its upstream MTA and its limits.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use toml::Value;

pub use crate::policy::ClientNetwork;

use super::batv::system_hostname;
use super::section::Section;
use super::tls::{TlsSettings, UpstreamTlsSettings, read_tls, read_upstream_tls};
use super::values::{
    Parsed, Problem, choice, duration, flag, host_port, invalid, is_host_name, number, size, socket_address, text,
};

// Limits: RFC 5321 §4.5.3 and Postfix's defaults.
/// A session costs a few KiB, so a thousand fit any host.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;
/// Postfix's `smtpd_client_connection_count_limit`.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 50;
/// RFC 5321 §4.5.3.1.4 asks for 512; Postfix takes 2048 (`line_length_limit`).
pub const DEFAULT_MAX_COMMAND_LINE: usize = 2048;
/// Postfix's `smtpd_recipient_limit`.
pub const DEFAULT_MAX_RECIPIENTS: usize = 1000;
/// Postfix's `message_size_limit` is 10 MB; today's attachments need more.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 50 * 1024 * 1024;
/// Postfix's `smtpd_hard_error_limit`.
pub const DEFAULT_MAX_ERRORS: usize = 20;
/// RFC 5321 §4.5.3.2.7: five minutes for a server awaiting the next command.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// RFC 5321 §4.5.3.2.5: three minutes for each block of data.
pub const DEFAULT_DATA_TIMEOUT: Duration = Duration::from_secs(180);
/// Postfix's `smtp_connect_timeout`.
pub const DEFAULT_UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// RFC 5321 §4.5.3.2: five minutes for most replies.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(300);
/// RFC 5321 §4.5.3.2.6: ten minutes for the reply to the final dot.
pub const DEFAULT_UPSTREAM_DATA_TIMEOUT: Duration = Duration::from_secs(600);
/// One host is handed a /64.
pub const DEFAULT_IPV6_CLIENT_PREFIX: u8 = 64;
/// The most any count limit takes: beyond, a typo rather than a plan.
const MAX_COUNT: usize = 10_000_000;

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

const ROLES: &[(&str, Role)] = &[("inbound", Role::Inbound), ("outbound", Role::Outbound)];
const CLIENT_IDENTITIES: &[(&str, ClientIdentity)] =
    &[("xclient", ClientIdentity::Xclient), ("proxy-v2", ClientIdentity::ProxyV2), ("none", ClientIdentity::None)];

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
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_command_line: DEFAULT_MAX_COMMAND_LINE,
            max_recipients: DEFAULT_MAX_RECIPIENTS,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_errors: DEFAULT_MAX_ERRORS,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            data_timeout: DEFAULT_DATA_TIMEOUT,
            upstream_connect_timeout: DEFAULT_UPSTREAM_CONNECT_TIMEOUT,
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            upstream_data_timeout: DEFAULT_UPSTREAM_DATA_TIMEOUT,
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

/// One `[[listener]]`; `None` when its role, address or upstream is unusable.
pub(super) fn read_listener(listener: &mut Section, base: &Path) -> Option<ListenerSettings> {
    let role = listener.require("role", "add role = \"inbound\" or role = \"outbound\"", choice(ROLES));
    let listen = listener.require(
        "listen",
        "add listen = \"IP:port\"",
        socket_address("listen = \"0.0.0.0:25\" or \"[::]:25\""),
    );
    let upstream = listener.require(
        "upstream",
        "add upstream = \"host:port\" of your MTA",
        host_port("upstream = \"127.0.0.1:10025\" (the MTA's port)"),
    );
    let client_identity = listener.get_or("client_identity", ClientIdentity::Xclient, choice(CLIENT_IDENTITIES));
    let hostname = listener.get("hostname", host_name).unwrap_or_else(system_hostname);
    let limits = read_limits(listener);
    let tls = listener.table_if_set("tls", "[listener.tls]", |tls| read_tls(tls, base)).flatten();
    let allowed_clients = listener.get_each("allowed_clients", client_network).unwrap_or_default();
    let client_name_lookup = listener.get_or("client_name_lookup", true, flag);
    let require_auth = listener.get_or("require_auth", false, flag);
    let ipv6_client_prefix = listener.get_or("ipv6_client_prefix", DEFAULT_IPV6_CLIENT_PREFIX, number(32..=128));
    let upstream_tls = read_upstream_tls(listener, base);
    let (role, listen, upstream) = (role?, listen?, upstream?);
    Some(ListenerSettings {
        name: format!("{}@{listen}", role.as_str()),
        role,
        listen,
        upstream,
        client_identity,
        client_name_lookup,
        allowed_clients,
        require_auth,
        ipv6_client_prefix,
        hostname,
        limits,
        tls,
        upstream_tls,
    })
}

fn read_limits(listener: &mut Section) -> Limits {
    let count = || number(1..=MAX_COUNT);
    Limits {
        max_connections: listener.get_or("max_connections", DEFAULT_MAX_CONNECTIONS, count()),
        max_connections_per_ip: listener.get_or("max_connections_per_ip", DEFAULT_MAX_CONNECTIONS_PER_IP, count()),
        max_command_line: listener.get_or("max_command_line", DEFAULT_MAX_COMMAND_LINE, number(512..=65_536)),
        max_recipients: listener.get_or("max_recipients", DEFAULT_MAX_RECIPIENTS, count()),
        max_message_size: listener.get_or("max_message_size", DEFAULT_MAX_MESSAGE_SIZE, size),
        max_errors: listener.get_or("max_errors", DEFAULT_MAX_ERRORS, count()),
        command_timeout: listener.get_or("command_timeout", DEFAULT_COMMAND_TIMEOUT, duration),
        data_timeout: listener.get_or("data_timeout", DEFAULT_DATA_TIMEOUT, duration),
        upstream_connect_timeout: listener.get_or(
            "upstream_connect_timeout",
            DEFAULT_UPSTREAM_CONNECT_TIMEOUT,
            duration,
        ),
        upstream_timeout: listener.get_or("upstream_timeout", DEFAULT_UPSTREAM_TIMEOUT, duration),
        upstream_data_timeout: listener.get_or("upstream_data_timeout", DEFAULT_UPSTREAM_DATA_TIMEOUT, duration),
    }
}

fn host_name(key: &str, value: &Value) -> Parsed<String> {
    let name = text("hostname = \"mx.example.com\"")(key, value)?;
    if is_host_name(&name) {
        Ok(name)
    } else {
        invalid(format!("\"{name}\" is not a host name"), "write hostname = \"mx.example.com\"")
    }
}

fn client_network(text: &str) -> Result<ClientNetwork, Problem> {
    ClientNetwork::parse(text).ok_or_else(|| {
        Problem::new(
            format!("\"{text}\" is not an address or network"),
            "write addresses or CIDR networks: [\"192.0.2.10\", \"10.0.0.0/8\", \"2001:db8::/32\"]",
        )
    })
}
