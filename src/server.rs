//! Listeners, connection limits, reload and graceful shutdown.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::assemble::{Assembly, ListenerParts, StartError, assemble};
use crate::config::{ClientIdentity, Config, LedgerSettings, ListenerSettings, TlsMode};
use crate::labels::{ReloadOutcome, SessionOutcome};
use crate::ledger::Ledger;
use crate::listener::{ListenerContext, SystemClock, TcpDialler};
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::session::{self, Endpoints, Phase};
use crate::status::{self, Probe};
use crate::verdicts::VerdictLog;

/// Runs what `assembly` describes until SIGTERM; SIGHUP reloads
/// `config_path` through the same build step.
pub fn run(config_path: PathBuf, assembly: Assembly) -> Result<(), StartError> {
    let count =
        assembly.config.worker_threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let workers = Workers::start(count)?;
    // Signals, reload, the status endpoint and the ledger writer run here.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async { Ok(Server::start(config_path, assembly, workers).await?.serve().await?) })
}

/// Worker threads, each with a runtime of its own. A session stays on one
/// thread from accept to close (no work stealing, no wake-ups across
/// threads), and the kernel spreads new connections over the workers'
/// listening sockets (SO_REUSEPORT).
struct Workers {
    handles: Vec<tokio::runtime::Handle>,
}

impl Workers {
    fn start(count: usize) -> anyhow::Result<Self> {
        let mut handles = Vec::with_capacity(count);
        for index in 0..count {
            let (sender, receiver) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name(format!("batv-worker-{index}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                        Ok(runtime) => runtime,
                        Err(error) => {
                            let _ = sender.send(Err(error));
                            return;
                        }
                    };
                    let _ = sender.send(Ok(runtime.handle().clone()));
                    // Lives as long as the process; the main thread decides when it ends.
                    runtime.block_on(std::future::pending::<()>());
                })
                .context("starting a worker thread")?;
            handles.push(receiver.recv().context("a worker thread ended at start")?.context("a worker's runtime")?);
        }
        Ok(Workers { handles })
    }
}

/// Per-listener connection counts, for the total and per-client limits.
struct ConnectionLimits {
    total: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// Held by a session; frees its slot when dropped.
struct Slot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_ip = self.limits.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

impl ConnectionLimits {
    fn new(total: usize) -> Self {
        ConnectionLimits { total: Arc::new(Semaphore::new(total)), per_ip: Mutex::new(HashMap::new()) }
    }

    /// A slot for a client, or the limit it is over.
    fn admit(self: &Arc<Self>, ip: IpAddr, per_ip_limit: usize) -> Result<Slot, SessionOutcome> {
        let permit = Arc::clone(&self.total).try_acquire_owned().map_err(|_| SessionOutcome::LimitTotal)?;
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let count = per_ip.entry(ip).or_insert(0);
        if *count >= per_ip_limit {
            return Err(SessionOutcome::LimitPerIp);
        }
        *count += 1;
        Ok(Slot { limits: Arc::clone(self), ip, _permit: permit })
    }
}

struct RunningListener {
    context: watch::Sender<Arc<ListenerContext<TcpStream>>>,
    stop: watch::Sender<bool>,
}

struct Server {
    config_path: PathBuf,
    workers: Workers,
    shared: Shared,
    ledger_settings: LedgerSettings,
    /// How long transactions in progress may run after SIGTERM before the
    /// rest are told `421 4.3.2`.
    drain_timeout: Duration,
    probes: watch::Sender<Vec<Probe>>,
    status_stop: watch::Sender<bool>,
    phase: watch::Sender<Phase>,
    listeners: HashMap<SocketAddr, RunningListener>,
    /// Every session holds a clone; when all are dropped, all are done.
    sessions_done: mpsc::Sender<()>,
    sessions_done_wait: mpsc::Receiver<()>,
}

/// What lives as long as the process and every listener shares.
#[derive(Clone)]
struct Shared {
    metrics: Arc<Metrics>,
    /// Opened once: a reload keeps it (a changed [ledger] applies at restart).
    ledger: Arc<Ledger>,
    verdicts: Arc<VerdictLog>,
}

/// Each listener's context: its part of the assembly, with what the
/// process shares.
fn contexts(policy: &Policy, listeners: Vec<ListenerParts>, shared: &Shared) -> Vec<Arc<ListenerContext<TcpStream>>> {
    shared.metrics.cluster.show_keys(policy.codec());
    listeners
        .into_iter()
        .map(|parts| {
            Arc::new(ListenerContext {
                metrics: shared.metrics.for_listener(&parts.settings.name),
                settings: parts.settings,
                policy: policy.clone(),
                server_tls: parts.server_tls,
                upstream_tls: parts.upstream_tls,
                ledger: Arc::clone(&shared.ledger),
                xclient_attributes: Default::default(),
                dialler: Arc::new(TcpDialler),
                clock: Arc::new(SystemClock),
                verdicts: Arc::clone(&shared.verdicts),
            })
        })
        .collect()
}

/// The served certificates' expiry, for `batv_proxy_tls_certificate_expiry_seconds`.
fn publish_certificates(metrics: &Metrics, contexts: &[Arc<ListenerContext<TcpStream>>]) {
    metrics.set_certificates(contexts.iter().flat_map(|context| {
        let served = context.server_tls.iter().flat_map(|tls| tls.certificates.iter());
        served.map(|certificate| (context.settings.name.as_str(), certificate.name.as_str(), certificate.not_after))
    }));
}

fn warn_about_identity(settings: &ListenerSettings) {
    if settings.client_identity == ClientIdentity::None {
        tracing::warn!(
            listener = %settings.name,
            upstream = %settings.upstream,
            "client_identity = \"none\": the MTA will see every client as the proxy's own address. \
             If it trusts that address for relaying (mynetworks, 127.0.0.1), this listener is an OPEN RELAY. \
             Use client_identity = \"xclient\" (Postfix) or \"proxy-v2\" (Postfix, Exim), or make sure the MTA \
             port behind this listener trusts no one"
        );
    }
}

/// Tells systemd (Type=notify) where the service is; a no-op elsewhere.
fn notify(state: &[sd_notify::NotifyState]) {
    let _ = sd_notify::notify(state);
}

impl Server {
    async fn start(config_path: PathBuf, assembly: Assembly, workers: Workers) -> Result<Self, StartError> {
        let metrics = Arc::new(Metrics::new());
        let (phase, _) = watch::channel(Phase::Running);
        let (sessions_done, sessions_done_wait) = mpsc::channel(1);
        let ledger = assembly.open_ledger(Arc::clone(&metrics.cluster.ledger)).await?;
        let sampled = Arc::downgrade(&ledger);
        metrics.sample_on_scrape(move |metrics| {
            metrics.set_ledger_entries("file", sampled.upgrade().and_then(|ledger| ledger.file_entries()))
        });
        assembly.remember_first_start().map_err(StartError::Configuration)?;
        let Assembly { config, policy, listeners, probes, .. } = assembly;
        let shared =
            Shared { metrics: Arc::clone(&metrics), ledger, verdicts: Arc::new(VerdictLog::new(config.verdicts)) };
        let contexts = contexts(&policy, listeners, &shared);
        publish_certificates(&metrics, &contexts);
        let (probes, probes_receiver) = watch::channel(probes);
        let (status_stop, status_stop_receiver) = watch::channel(false);
        if let Some(address) = config.metrics_listen {
            let listener =
                status::bind(address).await.with_context(|| format!("metrics: cannot listen on {address}"))?;
            tracing::info!(listen = %address, "serving /metrics, /healthz and /verdicts");
            tokio::spawn(status::serve(
                listener,
                Arc::clone(&metrics),
                Arc::clone(&shared.verdicts),
                probes_receiver,
                status_stop_receiver,
            ));
        }
        let mut server = Server {
            config_path,
            workers,
            shared,
            ledger_settings: config.ledger.clone(),
            drain_timeout: config.drain_timeout,
            probes,
            status_stop,
            phase,
            listeners: HashMap::new(),
            sessions_done,
            sessions_done_wait,
        };
        let bound = bind_all(&contexts, server.workers.handles.len(), &config)?;
        for (context, sockets) in contexts.into_iter().zip(bound) {
            server.spawn_listener(sockets, context);
        }
        Ok(server)
    }

    /// One accept loop per worker, each on its own socket of the address.
    fn spawn_listener(&mut self, sockets: Vec<std::net::TcpListener>, context: Arc<ListenerContext<TcpStream>>) {
        let settings = &context.settings;
        warn_about_identity(settings);
        tracing::info!(listener = %settings.name, listen = %settings.listen, upstream = %settings.upstream, role = settings.role.as_str(), "listening");
        let address = settings.listen;
        let limits = Arc::new(ConnectionLimits::new(settings.limits.max_connections));
        let (context_sender, context_receiver) = watch::channel(context);
        let (stop_sender, stop_receiver) = watch::channel(false);
        for (socket, worker) in sockets.into_iter().zip(&self.workers.handles) {
            let (context, stop, limits) = (context_receiver.clone(), stop_receiver.clone(), Arc::clone(&limits));
            let (phase, done) = (self.phase.subscribe(), self.sessions_done.clone());
            worker.spawn(async move {
                match TcpListener::from_std(socket) {
                    Ok(listener) => accept_loop(listener, context, stop, limits, phase, done).await,
                    Err(error) => {
                        tracing::error!(listen = %address, error = %error, "cannot register a listening socket")
                    }
                }
            });
        }
        self.listeners.insert(address, RunningListener { context: context_sender, stop: stop_sender });
    }

    async fn serve(mut self) -> anyhow::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        tracing::info!(version = env!("CARGO_PKG_VERSION"), "batv-proxy ready");
        notify(&[sd_notify::NotifyState::Ready]);
        loop {
            tokio::select! {
                _ = hangup.recv() => self.reload(),
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
            }
        }
        self.shut_down().await;
        Ok(())
    }

    /// Re-reads the configuration, keys and certificates. A broken
    /// configuration is refused and the running one stays; sessions in
    /// flight keep the settings they started with.
    fn reload(&mut self) {
        tracing::info!(config = %self.config_path.display(), "reloading");
        let mut reloading = vec![sd_notify::NotifyState::Reloading];
        reloading.extend(sd_notify::NotifyState::monotonic_usec_now().ok());
        notify(&reloading);
        self.apply_reload();
        notify(&[sd_notify::NotifyState::Ready]);
    }

    fn apply_reload(&mut self) {
        let built = Config::load(&self.config_path)
            .and_then(assemble)
            .and_then(|assembly| assembly.remember_first_start().map(|()| assembly));
        let assembly = match built {
            Ok(assembly) => assembly,
            Err(errors) => {
                for error in &errors.0 {
                    tracing::error!(error = %error, "reload refused: configuration error; the running configuration stays");
                }
                self.shared.metrics.reload(ReloadOutcome::Refused);
                return;
            }
        };
        for warning in assembly.warnings() {
            tracing::warn!(warning, "check the configuration");
        }
        let Assembly { config, policy, listeners, probes, .. } = assembly;
        if config.ledger != self.ledger_settings {
            tracing::warn!("the [ledger] settings changed; they take effect at the next restart");
        }
        let contexts = contexts(&policy, listeners, &self.shared);
        // Every new address is bound before anything changes: a reload
        // that cannot take them all changes nothing.
        let new: Vec<&Arc<ListenerContext<TcpStream>>> =
            contexts.iter().filter(|context| !self.listeners.contains_key(&context.settings.listen)).collect();
        let mut bound = HashMap::new();
        for context in new {
            let address = context.settings.listen;
            match bind(address, self.workers.handles.len()) {
                Ok(sockets) => {
                    bound.insert(address, sockets);
                }
                Err(error) => {
                    tracing::error!(
                        listener = %context.settings.name,
                        listen = %address,
                        error = %error,
                        "reload refused: cannot listen on the new address; every running listener stays"
                    );
                    self.shared.metrics.reload(ReloadOutcome::Refused);
                    return;
                }
            }
        }
        self.drain_timeout = config.drain_timeout;
        let _ = self.probes.send(probes);
        publish_certificates(&self.shared.metrics, &contexts);
        let wanted: Vec<SocketAddr> = contexts.iter().map(|c| c.settings.listen).collect();
        let removed: Vec<SocketAddr> = self.listeners.keys().filter(|a| !wanted.contains(a)).copied().collect();
        for address in removed {
            if let Some(listener) = self.listeners.remove(&address) {
                let _ = listener.stop.send(true);
                tracing::info!(listen = %address, "listener removed");
            }
        }
        for context in contexts {
            let address = context.settings.listen;
            if let Some(sockets) = bound.remove(&address) {
                self.spawn_listener(sockets, context);
            } else if let Some(running) = self.listeners.get(&address) {
                warn_about_identity(&context.settings);
                let _ = running.context.send(context);
            }
        }
        self.shared.metrics.reload(ReloadOutcome::Applied);
        tracing::info!("reload applied");
    }

    async fn shut_down(mut self) {
        notify(&[sd_notify::NotifyState::Stopping]);
        tracing::info!(
            drain_seconds = self.drain_timeout.as_secs(),
            "stopping: no new sessions; finishing transactions in progress"
        );
        let _ = self.status_stop.send(true);
        for listener in self.listeners.values() {
            let _ = listener.stop.send(true);
        }
        let _ = self.phase.send(Phase::Draining);
        drop(self.sessions_done);
        if tokio::time::timeout(self.drain_timeout, self.sessions_done_wait.recv()).await.is_err() {
            // Sessions waiting on their client end now with 421; one whose
            // message the MTA has waits for its reply (upstream_data_timeout).
            tracing::info!("drain time over: closing the remaining sessions with 421");
            let _ = self.phase.send(Phase::Stopping);
            let _ = self.sessions_done_wait.recv().await;
        }
        tracing::info!("stopped");
    }
}
/// Binds every listener's address at start. An address this host does not
/// have, or a port the service may not bind, is a configuration problem
/// (exit 2); one in use may be free at the next try (exit 1).
fn bind_all(
    contexts: &[Arc<ListenerContext<TcpStream>>],
    count: usize,
    config: &Config,
) -> Result<Vec<Vec<std::net::TcpListener>>, StartError> {
    let mut bound = Vec::new();
    let mut problems = Vec::new();
    for (index, context) in contexts.iter().enumerate() {
        let address = context.settings.listen;
        match bind(address, count) {
            Ok(sockets) => bound.push(sockets),
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(StartError::Runtime(anyhow::anyhow!(
                    "listener {}: cannot listen on {address}: {error}; another process (the MTA, or another batv-proxy) holds it",
                    context.settings.name
                )));
            }
            Err(error) => problems.push(crate::config::ConfigError::new(
                &config.file,
                &format!("listener[{}].listen", index + 1),
                format!("cannot listen on {address}: {error}"),
                if error.kind() == std::io::ErrorKind::PermissionDenied {
                    "ports below 1024 need CAP_NET_BIND_SERVICE (the unit grants it) or root"
                } else {
                    "use an address of this host, or 0.0.0.0 / [::] for all of them"
                },
            )),
        }
    }
    if problems.is_empty() { Ok(bound) } else { Err(StartError::Configuration(crate::config::ConfigErrors(problems))) }
}

/// `count` listening sockets on one address (SO_REUSEPORT), non-blocking,
/// ready to be registered with the workers' runtimes.
fn bind(address: SocketAddr, count: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let domain = if address.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    // First without SO_REUSEPORT: fails if anything (another batv-proxy
    // too) already listens there, which sharing the port would hide.
    let probe = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    probe.set_reuse_address(true)?;
    probe.bind(&address.into())?;
    drop(probe);
    (0..count)
        .map(|_| {
            let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
            socket.set_reuse_address(true)?;
            socket.set_reuse_port(true)?;
            socket.set_nonblocking(true)?;
            socket.bind(&address.into())?;
            socket.listen(1024)?;
            Ok(socket.into())
        })
        .collect()
}

async fn accept_loop(
    listener: TcpListener,
    context: watch::Receiver<Arc<ListenerContext<TcpStream>>>,
    mut stop: watch::Receiver<bool>,
    limits: Arc<ConnectionLimits>,
    phase: watch::Receiver<Phase>,
    sessions_done: mpsc::Sender<()>,
) {
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or similar: back off instead of spinning.
                    tracing::warn!(error = %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let context = context.borrow().clone();
        let implicit_tls = context.server_tls.as_ref().is_some_and(|tls| tls.mode == TlsMode::Implicit);
        let allowed = &context.settings.allowed_clients;
        if !allowed.is_empty() && !allowed.iter().any(|network| network.contains(peer.ip())) {
            context.metrics.session_ended(SessionOutcome::NotAllowed);
            tracing::info!(listener = %context.settings.name, client = %peer.ip(), "client not in allowed_clients: refused");
            tokio::spawn(refuse(
                socket,
                format!("554 5.7.1 {} Access denied\r\n", context.settings.hostname),
                implicit_tls,
            ));
            continue;
        }
        let client = client_network(peer.ip(), context.settings.ipv6_client_prefix);
        let slot = match limits.admit(client, context.settings.limits.max_connections_per_ip) {
            Ok(slot) => slot,
            Err(limit) => {
                context.metrics.session_ended(limit);
                let reply =
                    format!("421 4.7.0 {} Too many connections; try again later\r\n", context.settings.hostname);
                tokio::spawn(refuse(socket, reply, implicit_tls));
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        // The local address matters only for a PROXY header; asking costs a system call.
        let local = match context.settings.client_identity {
            ClientIdentity::ProxyV2 => socket.local_addr().unwrap_or(context.settings.listen),
            _ => context.settings.listen,
        };
        let endpoints = Endpoints { peer, local };
        let phase = phase.clone();
        let done = sessions_done.clone();
        tokio::spawn(async move {
            session::serve(socket, endpoints, context, phase).await;
            drop(slot);
            drop(done);
        });
    }
}

/// The address a client is counted under for `max_connections_per_ip`:
/// an IPv4 address, or an IPv6 address cut to its network (a host is
/// handed a /64, so counting per /128 would let one host take every slot).
fn client_network(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let bits = u32::from(ipv6_prefix.min(128));
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            IpAddr::V6((u128::from(v6) & mask).into())
        }
        IpAddr::V6(v6) => IpAddr::V4(v6.to_ipv4_mapped().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED)),
        v4 => v4,
    }
}

/// Over a connection limit or not allowed: say so and close, without an
/// upstream session. A client of an implicit-TLS listener expects a TLS
/// handshake, not text, and a handshake only to refuse would spend the
/// CPU the limit protects: it is just closed.
async fn refuse(mut socket: TcpStream, reply: String, implicit_tls: bool) {
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        if !implicit_tls {
            let _ = socket.write_all(reply.as_bytes()).await;
        }
        let _ = socket.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_per_network() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert_eq!(client_network(ip("2001:db8:1:2:aaaa::1"), 64), ip("2001:db8:1:2::"));
        assert_eq!(client_network(ip("2001:db8:1:2:ffff::9"), 64), client_network(ip("2001:db8:1:2::7"), 64));
        assert_ne!(client_network(ip("2001:db8:1:3::7"), 64), client_network(ip("2001:db8:1:2::7"), 64));
        assert_eq!(client_network(ip("2001:db8::1"), 128), ip("2001:db8::1"));
        assert_eq!(client_network(ip("192.0.2.7"), 64), ip("192.0.2.7"));
        assert_eq!(client_network(ip("::ffff:192.0.2.7"), 64), ip("192.0.2.7"));
    }
}
