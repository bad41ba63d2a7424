//! `[listener.tls]` (TLS towards clients) and a listener's `upstream_tls*`
//! keys (TLS towards the MTA). Certificates are only checked to exist
//! here; loading them is the build step's (`crate::assemble`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Value;

use super::section::{Presence, Section};
use super::values::{Parsed, Problem, choice, duration, existing_file, flag, text, texts};

/// A handshake takes milliseconds; this covers a slow link, not an idle client.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

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

const TLS_MODES: &[(&str, TlsMode)] = &[("starttls", TlsMode::StartTls), ("implicit", TlsMode::Implicit)];
const UPSTREAM_TLS_MODES: &[(&str, UpstreamTlsMode)] = &[
    ("none", UpstreamTlsMode::None),
    ("starttls", UpstreamTlsMode::StartTls),
    ("implicit", UpstreamTlsMode::Implicit),
];

/// `[listener.tls]`; `None` when a certificate is missing or unreadable.
pub(super) fn read_tls(tls: &mut Section, base: &Path) -> Option<TlsSettings> {
    let mode = tls.get_or("mode", TlsMode::StartTls, choice(TLS_MODES));
    let require = tls.get_or("require", false, flag);
    let handshake_timeout = tls.get_or("handshake_timeout", DEFAULT_HANDSHAKE_TIMEOUT, duration);
    let default = read_certificate(tls, base);
    let by_name = tls.tables("sni", "[[listener.tls.sni]]", Presence::Optional, |sni| read_certificate(sni, base));
    let certificates = std::iter::once(default).chain(by_name).collect::<Option<Vec<_>>>()?;
    Some(TlsSettings { mode, require, certificates, handshake_timeout })
}

fn read_certificate(table: &mut Section, base: &Path) -> Option<CertificateFiles> {
    const FIX: &str = "give the path of a PEM file (relative paths are relative to this file)";
    let cert = table.require(
        "cert",
        "add cert = \"/etc/ssl/mx.example.com/fullchain.pem\"",
        existing_file(base, "cert = \"/etc/ssl/mx.example.com/fullchain.pem\"", FIX),
    );
    let key = table.require(
        "key",
        "add key = \"/etc/ssl/mx.example.com/privkey.pem\"",
        existing_file(base, "key = \"/etc/ssl/mx.example.com/privkey.pem\"", FIX),
    );
    Some(CertificateFiles { cert: cert?, key: key? })
}

/// The `upstream_tls*` keys of a listener.
pub(super) fn read_upstream_tls(listener: &mut Section, base: &Path) -> UpstreamTlsSettings {
    let mode = listener.get_or("upstream_tls", UpstreamTlsMode::None, choice(UPSTREAM_TLS_MODES));
    let ca_file = listener.get(
        "upstream_tls_ca",
        existing_file(base, "upstream_tls_ca = \"ca.pem\"", "give the path of a PEM file of CA certificates"),
    );
    let verify_chain = listener.get_or("upstream_tls_verify", true, flag);
    let pins = listener.get_or("upstream_tls_pin", Vec::new(), fingerprints);
    let server_name = listener.get("upstream_tls_name", text("upstream_tls_name = \"mx.example.com\""));
    let verify = if !pins.is_empty() {
        UpstreamVerify::Pin(pins)
    } else if verify_chain {
        UpstreamVerify::Full
    } else {
        UpstreamVerify::None
    };
    UpstreamTlsSettings { mode, ca_file, verify, server_name }
}

/// One fingerprint or a list of them.
fn fingerprints(key: &str, value: &Value) -> Parsed<Vec<[u8; 32]>> {
    let texts = match value {
        Value::String(one) => vec![one.clone()],
        list => texts(key, list)?,
    };
    let mut problems = Vec::new();
    let mut pins = Vec::new();
    for text in texts {
        match parse_fingerprint(&text) {
            Some(pin) => pins.push(pin),
            None => problems.push(Problem::new(
                format!("\"{text}\" is not a SHA-256 fingerprint"),
                "write 64 hex digits (colons allowed), e.g. from: openssl x509 -noout -fingerprint -sha256 -in cert.pem",
            )),
        }
    }
    if problems.is_empty() { Ok(pins) } else { Err(problems) }
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
