//! The session protocol, in process: a client and a fake MTA on in-memory
//! pipes, tokio's clock paused so timeouts pass in no time. Each case is a
//! script of what the client sends and what it must get back, and what
//! the MTA must (or must not) have seen. The real MTAs and clients are the
//! integration layer, in tests/.

mod cases;
mod fake_mta;
mod ledger_cases;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::watch;

use super::{Endpoints, Phase, serve};
use crate::batv::{Codec, Day};
use crate::config::Config;
use crate::ledger::Ledger;
use crate::listener::{FixedClock, ListenerContext};
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::smtp::address::Mailbox;
use crate::verdicts::{VerdictLog, VerdictRecord};
use fake_mta::{MemoryDialler, Mta, Record};

/// The day every case runs on.
const TODAY: &str = "2026-11-25";
/// Longer than any timeout a case runs into; only paused time gets there.
const CLIENT_PATIENCE: Duration = Duration::from_secs(24 * 3600);

pub(super) struct Harness {
    context: Arc<ListenerContext<DuplexStream>>,
    record: Arc<Mutex<Record>>,
    phase: watch::Sender<Phase>,
    metrics: Arc<Metrics>,
    dir: tempfile::TempDir,
}

/// A listener of `role` in front of a fake MTA behaving as `mta`.
/// `sections` go before the listener (e.g. `[policy]`), `listener` into it.
pub(super) async fn harness(role: &str, sections: &str, listener: &str, mta: Mta) -> Harness {
    harness_with_ledger(role, sections, listener, mta, None).await
}

/// As [`harness`], with `ledger` instead of the one `sections` configure,
/// so that an outbound and an inbound listener can share one.
pub(super) async fn harness_with_ledger(
    role: &str,
    sections: &str,
    listener: &str,
    mta: Mta,
    shared_ledger: Option<Arc<Ledger>>,
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keys"), "3 aW50ZWdyYXRpb24tdGVzdC1zZWNyZXQ=\n").unwrap();
    let private = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600);
    std::fs::set_permissions(dir.path().join("keys"), private).unwrap();
    std::fs::write(dir.path().join("cert.pem"), include_str!("cert.pem")).unwrap();
    std::fs::write(dir.path().join("key.pem"), include_str!("key.pem")).unwrap();
    let text = format!(
        "state_dir = \"state\"\n[batv]\nkey_file = \"keys\"\ndomains = [\"example.com\", \"example.org\"]\n\
         mta_names = [\"mx.example.net\", \"localhost\"]\n{sections}\n\
         [[listener]]\nrole = \"{role}\"\nlisten = \"127.0.0.1:2525\"\nupstream = \"mta.test:25\"\n\
         hostname = \"proxy.example.com\"\nclient_name_lookup = false\n{}{listener}\n",
        if listener.contains("client_identity") { "" } else { "client_identity = \"none\"\n" }
    );
    let file = dir.path().join("batv-proxy.toml");
    let config = Config::parse(&text, &file).unwrap_or_else(|errors| panic!("{errors}\n{text}"));
    let day = Day::parse(TODAY).unwrap();
    let codec = Codec::new(&config.keys, config.batv.hash, config.batv.lifetime_days, config.batv.sign_form);
    let policy = Policy::new(
        config.policy.clone(),
        config.batv.domains.clone(),
        config.batv.mta_names.clone(),
        codec,
        Some(day),
    );
    let metrics = Arc::new(Metrics::new());
    let settings = config.listeners[0].clone();
    let (server_tls, upstream_tls) = crate::tls::for_listener(&settings, 1, &file).unwrap_or_else(|e| panic!("{e:?}"));
    let retention = Duration::from_secs(86_400 * 7);
    let ledger = match shared_ledger {
        Some(ledger) => ledger,
        None => Ledger::open(&config.ledger, retention, Arc::default()).await.unwrap(),
    };
    let record = Arc::new(Mutex::new(Record::default()));
    let context = Arc::new(ListenerContext {
        metrics: metrics.for_listener(&settings.name),
        settings,
        policy,
        server_tls,
        upstream_tls,
        ledger,
        xclient_attributes: Default::default(),
        dialler: Arc::new(MemoryDialler { mta, record: Arc::clone(&record) }),
        clock: Arc::new(FixedClock::on(day)),
        verdicts: Arc::new(VerdictLog::new(100)),
    });
    let (phase, _) = watch::channel(Phase::Running);
    Harness { context, record, phase, metrics, dir }
}

impl Harness {
    /// A client connected to a new session (its greeting not yet read).
    pub(super) async fn connect(&self) -> TestClient {
        let (client, server) = tokio::io::duplex(1 << 16);
        let endpoints =
            Endpoints { peer: "192.0.2.7:40000".parse().unwrap(), local: "127.0.0.1:2525".parse().unwrap() };
        tokio::spawn(serve(server, endpoints, Arc::clone(&self.context), self.phase.subscribe()));
        TestClient::over(client)
    }

    pub(super) fn record(&self) -> Record {
        self.record.lock().unwrap().clone()
    }

    pub(super) fn set_phase(&self, phase: Phase) {
        let _ = self.phase.send(phase);
    }

    /// A tag for `address`, as the proxy signs it today.
    pub(super) fn sign(&self, address: &str) -> String {
        self.context.policy.codec().sign(&Mailbox::parse(address).unwrap(), Day::parse(TODAY).unwrap()).to_string()
    }

    /// The verdict records the sessions filed, newest first.
    pub(super) fn verdicts(&self) -> Vec<VerdictRecord> {
        self.context.verdicts.find(&Default::default())
    }

    pub(super) fn metrics(&self) -> String {
        self.metrics.encode()
    }

    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// One reply as the client sees it.
#[derive(Debug, Clone)]
pub(super) struct Reply {
    pub code: u16,
    pub text: String,
}

pub(super) struct TestClient<T = DuplexStream> {
    reader: BufReader<ReadHalf<T>>,
    writer: WriteHalf<T>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> TestClient<T> {
    pub(super) fn over(stream: T) -> Self {
        let (read, write) = tokio::io::split(stream);
        TestClient { reader: BufReader::new(read), writer: write }
    }

    pub(super) async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        // A session that closed takes no more input; its replies tell why.
        let _ = self.writer.write_all(bytes.as_ref()).await;
    }

    /// The next reply; `None` when the session closed.
    pub(super) async fn reply(&mut self) -> Option<Reply> {
        let read = async {
            let mut lines = Vec::new();
            loop {
                let mut line = Vec::new();
                if self.reader.read_until(b'\n', &mut line).await.ok()? == 0 {
                    return None;
                }
                let line = String::from_utf8_lossy(&line).trim_end().to_owned();
                let more = line.as_bytes().get(3) == Some(&b'-');
                lines.push(line);
                if !more {
                    let code = lines.last()?.get(..3)?.parse().ok()?;
                    return Some(Reply { code, text: lines.join("\n") });
                }
            }
        };
        tokio::time::timeout(CLIENT_PATIENCE, read).await.ok().flatten()
    }
}

impl TestClient<DuplexStream> {
    /// The TLS handshake after `220 Ready to start TLS`.
    pub(super) async fn start_tls(self) -> tokio_rustls::client::TlsStream<DuplexStream> {
        let stream = self.reader.into_inner().unsplit(self.writer);
        let mut roots = rustls::RootCertStore::empty();
        let pem = include_str!("cert.pem");
        for certificate in rustls_pki_types_certificates(pem) {
            roots.add(certificate).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = rustls::pki_types::ServerName::try_from("mx.example.com").unwrap();
        connector.connect(name, stream).await.unwrap()
    }
}

fn rustls_pki_types_certificates(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()).map(Result::unwrap).collect()
}

/// What a script step does.
#[derive(Debug, Clone)]
pub(super) enum Step {
    /// Send bytes as they are.
    Send(&'static str),
    /// Send a formatted line (CRLF added).
    Line(String),
    /// The next reply has this code.
    Expect(u16),
    /// The next reply has this code and contains this text.
    ExpectText(u16, &'static str),
    /// The next reply has this code and does not contain this text (case ignored).
    ExpectWithout(u16, &'static str),
    /// The process moves to this phase (a drain, a stop).
    Drain(Phase),
    /// The session has closed.
    Closed,
    /// Let virtual time pass.
    Wait(Duration),
}

/// Runs a script; on a mismatch, says which step and what came.
pub(super) async fn run<T: AsyncRead + AsyncWrite + Unpin>(
    harness: &Harness,
    client: &mut TestClient<T>,
    name: &str,
    steps: &[Step],
) {
    for (index, step) in steps.iter().enumerate() {
        match step {
            Step::Send(bytes) => client.send(bytes).await,
            Step::Line(line) => client.send(format!("{line}\r\n")).await,
            Step::Expect(code) => {
                let reply = client.reply().await;
                assert_eq!(reply.as_ref().map(|r| r.code), Some(*code), "{name}: step {index}: {reply:?}");
            }
            Step::ExpectText(code, text) => {
                let reply = client.reply().await;
                assert!(
                    reply.as_ref().is_some_and(|r| r.code == *code && r.text.contains(text)),
                    "{name}: step {index}: want {code} with {text:?}, got {reply:?}"
                );
            }
            Step::ExpectWithout(code, text) => {
                let reply = client.reply().await;
                assert!(
                    reply
                        .as_ref()
                        .is_some_and(|r| r.code == *code && !r.text.to_lowercase().contains(&text.to_lowercase())),
                    "{name}: step {index}: want {code} without {text:?}, got {reply:?}"
                );
            }
            Step::Drain(phase) => harness.set_phase(*phase),
            Step::Closed => {
                let reply = client.reply().await;
                assert!(reply.is_none(), "{name}: step {index}: want the session closed, got {reply:?}");
            }
            Step::Wait(duration) => tokio::time::sleep(*duration).await,
        }
    }
}

/// Every idle session holds its future, which is as large as the largest
/// future it awaits: boxing the steps of a command keeps it small (the
/// load bench's memory per idle session follows this figure).
#[tokio::test]
async fn a_sessions_future_stays_small() {
    let harness = harness("inbound", "", "", Mta::Normal).await;
    let (_client, server) = tokio::io::duplex(64);
    let endpoints = Endpoints { peer: "192.0.2.7:40000".parse().unwrap(), local: "127.0.0.1:2525".parse().unwrap() };
    let session = serve(server, endpoints, Arc::clone(&harness.context), harness.phase.subscribe());
    let size = std::mem::size_of_val(&session);
    assert!(size <= 3 * 1024, "a session's future takes {size} bytes");
}
