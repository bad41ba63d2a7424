//! rustls configurations: the server side (STARTTLS or implicit TLS, one
//! certificate per name chosen by SNI) and the client side towards the
//! upstream MTA (CA file or system roots, fingerprint pinning, or no
//! verification for a loopback MTA). Built from files by the build step
//! (`crate::assemble`) once at startup and once on every reload, so new
//! certificates apply to new sessions only.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::{
    CertificateFiles, ConfigError, ListenerSettings, TlsMode, TlsSettings, UpstreamTlsMode, UpstreamTlsSettings,
    UpstreamVerify,
};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS towards clients, for one listener.
pub struct ServerTls {
    pub acceptor: TlsAcceptor,
    pub mode: TlsMode,
    pub require: bool,
    pub handshake_timeout: Duration,
    /// The leaf certificates served, for expiry warnings and metrics.
    pub certificates: Vec<Validity>,
}

/// A certificate is warned about this long before it expires.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 86_400);

/// When a served certificate is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validity {
    /// The first name the certificate covers, or its file when it names none.
    pub name: String,
    pub file: std::path::PathBuf,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

impl Validity {
    /// A warning when the certificate expires within [`EXPIRY_WARNING`] of `now`.
    pub fn warning(&self, now: SystemTime) -> Option<String> {
        let now = unix_seconds(now);
        let left = self.not_after - now;
        (left < EXPIRY_WARNING.as_secs() as i64).then(|| {
            format!(
                "the TLS certificate for {} ({}) expires in {} days, on {}; renew it, then systemctl reload batv-proxy",
                self.name,
                self.file.display(),
                left.max(0) / 86_400,
                date(self.not_after)
            )
        })
    }
}

fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    }
}

fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|date| date.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// The validity of a chain's leaf; a leaf outside its validity at `now`
/// is refused, since every client would refuse it.
fn leaf_validity(files: &CertificateFiles, certified: &CertifiedKey, now: SystemTime) -> Result<Validity, String> {
    let leaf = certified.cert.first().ok_or_else(|| format!("{}: holds no certificate", files.cert.display()))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|error| format!("{}: the first certificate cannot be read: {error}", files.cert.display()))?;
    let validity = parsed.validity();
    let name = certificate_names(certified).into_iter().next().unwrap_or_else(|| files.cert.display().to_string());
    let validity = Validity {
        name,
        file: files.cert.clone(),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
    };
    let now = unix_seconds(now);
    if now > validity.not_after {
        return Err(format!(
            "{}: the certificate for {} expired on {}",
            files.cert.display(),
            validity.name,
            date(validity.not_after)
        ));
    }
    if now < validity.not_before {
        return Err(format!(
            "{}: the certificate for {} is not valid before {}",
            files.cert.display(),
            validity.name,
            date(validity.not_before)
        ));
    }
    Ok(validity)
}

/// TLS towards the upstream MTA, for one listener.
pub struct UpstreamTls {
    pub connector: TlsConnector,
    pub mode: UpstreamTlsMode,
    pub server_name: ServerName<'static>,
}

fn load_certified_key(files: &CertificateFiles, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|error| format!("cannot read {}: {error}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|error| format!("{}: not a PEM certificate chain: {error}", files.cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: holds no certificate", files.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|error| format!("{}: no usable PEM private key: {error}", files.key.display()))?;
    CertifiedKey::from_der(chain, key, provider)
        .map_err(|error| format!("{} and {}: {error}", files.cert.display(), files.key.display()))
}

/// The DNS names a certificate covers (its subjectAltName entries).
fn certificate_names(certified: &CertifiedKey) -> Vec<String> {
    let Some(end_entity) = certified.cert.first() else {
        return Vec::new();
    };
    match webpki::EndEntityCert::try_from(end_entity) {
        Ok(cert) => cert.valid_dns_names().map(|name| name.to_ascii_lowercase()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Chooses the certificate by SNI: exact name, then `*.parent`
/// wildcard, else the first (default) certificate.
struct SniResolver {
    default: Arc<CertifiedKey>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver").field("names", &self.by_name.keys().collect::<Vec<_>>()).finish()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            return Some(Arc::clone(&self.default));
        };
        let name = name.to_ascii_lowercase();
        if let Some(key) = self.by_name.get(&name) {
            return Some(Arc::clone(key));
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(key) = self.by_name.get(&format!("*.{parent}"))
        {
            return Some(Arc::clone(key));
        }
        Some(Arc::clone(&self.default))
    }
}

pub fn server(settings: &TlsSettings) -> Result<ServerTls, String> {
    let provider = provider();
    let mut by_name = HashMap::new();
    let mut default = None;
    let mut certificates = Vec::new();
    for files in &settings.certificates {
        let certified = Arc::new(load_certified_key(files, &provider)?);
        certificates.push(leaf_validity(files, &certified, SystemTime::now())?);
        for name in certificate_names(&certified) {
            by_name.entry(name).or_insert_with(|| Arc::clone(&certified));
        }
        default.get_or_insert(certified);
    }
    let default = default.ok_or("no certificate configured")?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { default, by_name }));
    Ok(ServerTls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        mode: settings.mode,
        require: settings.require,
        handshake_timeout: settings.handshake_timeout,
        certificates,
    })
}

/// Accepts the upstream's certificate by its SHA-256 fingerprint, or
/// (with no pins) any certificate; handshake signatures are still checked.
#[derive(Debug)]
struct FingerprintVerifier {
    pins: Vec<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for FingerprintVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fingerprint: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if self.pins.is_empty() || self.pins.contains(&fingerprint) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("the upstream's certificate matches no upstream_tls_pin".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

fn root_store(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|error| format!("cannot read {}: {error}", path.display()))?
            {
                let cert = cert.map_err(|error| format!("{}: {error}", path.display()))?;
                roots.add(cert).map_err(|error| format!("{}: {error}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
        }
    }
    if roots.is_empty() {
        return Err("no trusted CA certificate found; set upstream_tls_ca".into());
    }
    Ok(roots)
}

pub fn upstream(settings: &UpstreamTlsSettings, upstream: &str) -> Result<Option<UpstreamTls>, String> {
    if settings.mode == UpstreamTlsMode::None {
        return Ok(None);
    }
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?;
    let config = match &settings.verify {
        UpstreamVerify::Full => {
            builder.with_root_certificates(root_store(settings.ca_file.as_deref())?).with_no_client_auth()
        }
        UpstreamVerify::Pin(pins) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(FingerprintVerifier { pins: pins.clone(), provider }))
            .with_no_client_auth(),
        UpstreamVerify::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(FingerprintVerifier { pins: Vec::new(), provider }))
            .with_no_client_auth(),
    };
    let host = settings.server_name.clone().unwrap_or_else(|| {
        let (host, _) = upstream.rsplit_once(':').unwrap_or((upstream, ""));
        host.trim_start_matches('[').trim_end_matches(']').to_owned()
    });
    let server_name =
        ServerName::try_from(host.clone()).map_err(|_| format!("\"{host}\" is not a valid TLS server name"))?;
    Ok(Some(UpstreamTls { connector: TlsConnector::from(Arc::new(config)), mode: settings.mode, server_name }))
}

/// Builds both sides for a listener; errors name the configuration keys.
pub fn for_listener(
    settings: &ListenerSettings,
    index: usize,
    file: &Path,
) -> Result<(Option<ServerTls>, Option<UpstreamTls>), Vec<ConfigError>> {
    let mut errors = Vec::new();
    let error = |key: &str, problem: String, fix: &str| {
        ConfigError::new(file, &format!("listener[{index}].{key}"), problem, fix)
    };
    let server = match &settings.tls {
        None => None,
        Some(tls) => match server(tls) {
            Ok(server) => Some(server),
            Err(problem) => {
                errors.push(error("tls", problem, "point cert at a PEM chain (leaf first) and key at its private key"));
                None
            }
        },
    };
    let upstream = match upstream(&settings.upstream_tls, &settings.upstream) {
        Ok(upstream) => upstream,
        Err(problem) => {
            errors.push(error(
                "upstream_tls",
                problem,
                "check upstream_tls_ca, upstream_tls_pin and upstream_tls_name",
            ));
            None
        }
    };
    if errors.is_empty() { Ok((server, upstream)) } else { Err(errors) }
}
