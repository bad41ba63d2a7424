//! Shared helpers for the integration tests: real Postfix instances, the
//! real proxy binary, smtp-sink, and a raw SMTP client. Every process a
//! test starts is stopped when its handle drops, and a watchdog stops
//! shared Postfix instances when the test process exits.
#![allow(dead_code)]

pub mod fake_upstream;
pub mod postfix_snippets;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_batv-proxy");

/// The binary [`Proxy`] runs: this build's, or the one `BATV_PROXY_BIN`
/// names, so a regression test can be shown to fail on an older build.
pub fn proxy_binary() -> std::ffi::OsString {
    std::env::var_os("BATV_PROXY_BIN").unwrap_or_else(|| BIN.into())
}

/// Installs missing tools once per test binary (see tests/tools/provision.sh).
pub fn provision() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/provision.sh");
        let output = Command::new(&script).arg(exim_dir()).output().expect("running provision.sh");
        assert!(
            output.status.success(),
            "tests/tools/provision.sh failed (the integration tests need Postfix, swaks, Exim's binary):\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    });
}

pub fn exim_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("exim")
}

/// A temporary directory every user can search (Postfix's daemons and
/// delivery agents run as other users).
pub struct TestDir {
    pub path: PathBuf,
}

impl TestDir {
    pub fn new(prefix: &str) -> Self {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir_in("/tmp").expect("temp dir").keep();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        TestDir { path: dir }
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A loopback port nothing listens on, for a server a test starts later.
///
/// Not a kernel-chosen port (`bind :0`): those come from the ephemeral
/// range that outgoing connections also draw from, so between this call and
/// the server's bind a connection of another test (Postfix relaying, a
/// client) could take it. Ports here come from below that range, each at
/// most once per test process, starting at a place that depends on the
/// process id.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 12_000;
    const COUNT: u32 = 20_000; // 12000..32000, under Linux's default ephemeral range (32768..)
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % COUNT,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..COUNT {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % COUNT) as u16;
        let free = |address: &str| TcpListener::bind((address, port)).is_ok();
        if free("127.0.0.1") && (free("::1") || TcpListener::bind("[::1]:0").is_err()) {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + COUNT);
}

/// A child process that is killed and reaped when this guard drops, also
/// when the test fails: a failing test never leaves a process behind.
pub struct Running {
    child: Child,
}

impl Running {
    pub fn spawn(command: &mut Command) -> Running {
        Running { child: command.spawn().unwrap_or_else(|error| panic!("starting {command:?}: {error}")) }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `HUP`, `KILL`).
    pub fn signal(&self, signal: &str) {
        Command::new("kill").args(["-s", signal, &self.id().to_string()]).status().unwrap();
    }

    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }

    /// The exit status, if the process ends within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn wait_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A network namespace of the test's own (`ip netns`, as root), deleted
/// when dropped: a host of its own with addresses no other test uses.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A namespace with loopback up.
    pub fn new(prefix: &str) -> Netns {
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name =
            format!("{prefix}-{}-{}", std::process::id(), COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let netns = Netns { name };
        netns.ip(&["netns", "add", &netns.name]);
        netns.ip(&["-n", &netns.name, "link", "set", "lo", "up"]);
        netns
    }

    /// Runs `ip ARGS`, failing the test when it fails.
    pub fn ip(&self, args: &[&str]) {
        let output = Command::new("ip").args(args).output().expect("ip (package iproute2)");
        assert!(output.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    }

    /// Adds an address to the namespace's loopback, usable at once.
    pub fn add_address(&self, cidr: &str) {
        self.ip(&["-n", &self.name, "addr", "add", cidr, "dev", "lo", "nodad"]);
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// One HTTP GET on loopback: the status code and the whole response.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(socket, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, response)
}

/// Polls `check` until it returns Some or the time is up.
pub fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A key file with one key, mode 0600.
pub fn write_keys(path: &Path, key_id: u8, secret: &[u8]) {
    use base64::Engine;
    let text = format!("{key_id} {}\n", base64::engine::general_purpose::STANDARD.encode(secret));
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The proxy binary running with a config written into its own directory.
pub struct Proxy {
    pub dir: TestDir,
    pub child: Child,
    pub config: PathBuf,
}

impl Proxy {
    /// Writes `config` (with `key_file = "keys"`) and a key, starts
    /// `batv-proxy run`, and waits for `ports`.
    pub fn start(config: &str, ports: &[u16]) -> Proxy {
        let dir = TestDir::new("batv-proxy-test.");
        write_keys(&dir.join("keys"), 3, b"integration-test-secret");
        Self::start_in(dir, config, ports)
    }

    pub fn start_in(dir: TestDir, config: &str, ports: &[u16]) -> Proxy {
        let config_path = dir.write("batv-proxy.toml", config);
        let log = std::fs::File::create(dir.join("proxy.log")).unwrap();
        let child = Command::new(proxy_binary())
            .args(["run", "--config"])
            .arg(&config_path)
            .args(["--log-format", "json"])
            .env("RUST_LOG", "debug")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting batv-proxy");
        let mut proxy = Proxy { dir, child, config: config_path };
        for port in ports {
            if !wait_port(*port, Duration::from_secs(10)) {
                let _ = proxy.child.kill();
                panic!("proxy did not listen on {port}; log:\n{}", proxy.log());
            }
        }
        proxy
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("proxy.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: &str) {
        Command::new("kill").args(["-s", signal, &self.pid().to_string()]).status().unwrap();
    }

    /// Runs a CLI subcommand against this proxy's config.
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let (command, rest) = args.split_first().unwrap();
        let output =
            Command::new(proxy_binary()).arg(command).arg("--config").arg(&self.config).args(rest).output().unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        )
    }

    pub fn sign(&self, address: &str) -> String {
        let (code, out, err) = self.cli(&["sign", address]);
        assert_eq!(code, 0, "sign failed: {err}");
        out
    }

    pub fn sign_on(&self, address: &str, date: &str) -> String {
        let (code, out, err) = self.cli(&["sign", "--date", date, address]);
        assert_eq!(code, 0, "sign failed: {err}");
        out
    }

    /// Peak resident memory in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap()
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.signal("TERM");
            if self.wait_exit(Duration::from_secs(3)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!("--- proxy log ---\n{}", self.log());
        }
    }
}

/// A listener block for a proxy config.
pub fn listener(role: &str, port: u16, upstream: u16, identity: &str, extra: &str) -> String {
    format!(
        "\n[[listener]]\nrole = \"{role}\"\nlisten = \"127.0.0.1:{port}\"\nupstream = \"127.0.0.1:{upstream}\"\n\
         client_identity = \"{identity}\"\nhostname = \"proxy.example.com\"\n{extra}\n"
    )
}

pub const BATV_SECTION: &str =
    "[batv]\nkey_file = \"keys\"\nlifetime_days = 7\ndomains = [\"example.com\", \"example.org\"]\n";

/// One SMTP reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    pub fn is(&self, code: u16) -> bool {
        self.code == code
    }
}

/// A raw SMTP client: exact bytes out, exact replies in.
pub struct Smtp {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
    pub greeting: Reply,
}

impl Smtp {
    pub fn connect(port: u16) -> Smtp {
        Self::connect_from(port, None)
    }

    /// Connects from a given loopback source address (e.g. 127.0.0.3).
    pub fn connect_from(port: u16, source: Option<&str>) -> Smtp {
        let stream = match source {
            None => TcpStream::connect(("127.0.0.1", port)).expect("connect"),
            Some(source) => {
                let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
                let source: SocketAddr = format!("{source}:0").parse().unwrap();
                socket.bind(&source.into()).unwrap();
                let target: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
                socket.connect(&target.into()).expect("connect");
                socket.into()
            }
        };
        Self::over(stream)
    }

    /// Connects to any address (one in a test's network namespace, from a
    /// thread inside it).
    pub fn connect_to(target: SocketAddr) -> Smtp {
        Self::over(TcpStream::connect_timeout(&target, Duration::from_secs(10)).expect("connect"))
    }

    fn over(stream: TcpStream) -> Smtp {
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let mut smtp = Smtp { stream, reader, greeting: Reply { code: 0, text: String::new() } };
        smtp.greeting = smtp.reply();
        smtp
    }

    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).unwrap();
    }

    pub fn try_reply(&mut self) -> std::io::Result<Reply> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("closed after {lines:?}")));
            }
            let line = line.trim_end_matches(['\r', '\n']).to_owned();
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line);
            if !more {
                break;
            }
        }
        let code = lines.last().and_then(|l| l.get(..3)).and_then(|c| c.parse().ok()).unwrap_or(0);
        Ok(Reply { code, text: lines.join("\n") })
    }

    pub fn reply(&mut self) -> Reply {
        self.try_reply().expect("reading a reply")
    }

    pub fn command(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n"));
        self.reply()
    }

    /// Sends a message body (dot-stuffed here) and the terminator.
    pub fn data_body(&mut self, body: &str) -> Reply {
        let mut stuffed = String::new();
        for line in body.split_inclusive("\r\n") {
            if line.starts_with('.') {
                stuffed.push('.');
            }
            stuffed.push_str(line);
        }
        if !stuffed.ends_with("\r\n") {
            stuffed.push_str("\r\n");
        }
        stuffed.push_str(".\r\n");
        self.send(stuffed);
        self.reply()
    }

    /// Whether the server has closed the connection (EOF within `timeout`).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        let mut byte = [0u8; 1];
        let closed = matches!(self.reader.read(&mut byte), Ok(0) | Err(_));
        self.stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        closed
    }

    pub fn quit(mut self) {
        let _ = self.stream.write_all(b"QUIT\r\n");
        let _ = self.try_reply();
    }
}

/// A simple message with a unique Message-ID.
pub fn message(from: &str, to: &str, subject: &str, body: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{}.{n}.{}@test.example.com>\r\n\r\n{body}\r\n",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    )
}

/// One full transaction; returns the replies to MAIL, each RCPT, DATA and the end of data.
pub struct Transaction {
    pub mail: Reply,
    pub rcpts: Vec<Reply>,
    pub data: Option<Reply>,
    pub end: Option<Reply>,
}

pub fn send_mail(port: u16, from: &str, to: &[&str], body: &str) -> Transaction {
    send_mail_from(port, None, from, to, body)
}

pub fn send_mail_from(port: u16, source: Option<&str>, from: &str, to: &[&str], body: &str) -> Transaction {
    transaction(Smtp::connect_from(port, source), from, to, body)
}

/// One transaction with a server at any address.
pub fn send_mail_to(target: SocketAddr, from: &str, to: &[&str], body: &str) -> Transaction {
    transaction(Smtp::connect_to(target), from, to, body)
}

fn transaction(mut smtp: Smtp, from: &str, to: &[&str], body: &str) -> Transaction {
    assert!(smtp.greeting.is(220), "greeting {:?}", smtp.greeting);
    let ehlo = smtp.command("EHLO client.test");
    assert!(ehlo.is(250), "EHLO {ehlo:?}");
    let mail = smtp.command(&format!("MAIL FROM:<{from}>"));
    let rcpts: Vec<Reply> = to.iter().map(|r| smtp.command(&format!("RCPT TO:<{r}>"))).collect();
    let (mut data, mut end) = (None, None);
    if rcpts.iter().any(|r| r.is(250)) {
        let reply = smtp.command("DATA");
        if reply.is(354) {
            end = Some(smtp.data_body(body));
        }
        data = Some(reply);
    }
    smtp.quit();
    Transaction { mail, rcpts, data, end }
}

/// Postfix's smtp-sink, dumping each transaction into a directory.
pub struct Sink {
    pub port: u16,
    pub dir: TestDir,
    child: Child,
}

impl Sink {
    pub fn start() -> Sink {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Sink {
        provision();
        let port = free_port();
        let dir = TestDir::new("sink.");
        let child = Command::new("/usr/sbin/smtp-sink")
            .args(["-u", "root"])
            .args(extra)
            .arg("-d")
            .arg(format!("{}/%M%S.", dir.path.display()))
            .arg(format!("127.0.0.1:{port}"))
            .arg("1000")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("smtp-sink");
        assert!(wait_port(port, Duration::from_secs(5)), "smtp-sink did not start");
        Sink { port, dir, child }
    }

    /// Dumped transactions, oldest first, as text.
    pub fn transactions(&self) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(&self.dir.path).unwrap().flatten().map(|e| e.path()).collect();
        files.sort();
        files.iter().map(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned()).collect()
    }

    /// Waits for the transaction whose text contains `needle`.
    pub fn find(&self, needle: &str) -> Option<String> {
        eventually(Duration::from_secs(5), || self.transactions().into_iter().find(|t| t.contains(needle)))
    }

    pub fn wait_for(&self, count: usize) -> Vec<String> {
        eventually(Duration::from_secs(5), || {
            let all = self.transactions();
            (all.len() >= count).then_some(all)
        })
        .unwrap_or_else(|| self.transactions())
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private Postfix instance on loopback with virtual mailboxes for
/// example.com and example.org.
pub struct Postfix {
    pub dir: TestDir,
    /// Plain smtpd, trusting XCLIENT from 127.0.0.1.
    pub port: u16,
    /// smtpd expecting a PROXY protocol header.
    pub proxy_port: u16,
    /// smtpd with TLS from the first byte (works when main.cf sets a certificate).
    pub tls_port: u16,
}

/// The services every private Postfix needs (Postfix's stock master.cf,
/// chroot off).
pub const POSTFIX_SERVICES: &[&str] = &[
    "pickup unix n - n 60 1 pickup",
    "cleanup unix n - n - 0 cleanup",
    "qmgr unix n - n 300 1 qmgr",
    "tlsmgr unix - - n 1000? 1 tlsmgr",
    "rewrite unix - - n - - trivial-rewrite",
    "bounce unix - - n - 0 bounce",
    "defer unix - - n - 0 bounce",
    "trace unix - - n - 0 bounce",
    "verify unix - - n - 1 verify",
    "flush unix n - n 1000? 0 flush",
    "proxymap unix - - n - - proxymap",
    "proxywrite unix - - n - 1 proxymap",
    "smtp unix - - n - - smtp",
    "relay unix - - n - - smtp",
    "showq unix n - n - - showq",
    "error unix - - n - - error",
    "retry unix - - n - - error",
    "discard unix - - n - - discard",
    "local unix - n n - - local",
    "virtual unix - n n - - virtual",
    "lmtp unix - - n - - lmtp",
    "anvil unix - - n - 1 anvil",
    "scache unix - - n - 1 scache",
    "postlog unix-dgram n - n - 1 postlogd",
];

pub const USERS: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar", "peggy",
    "trent", "victor", "walter", "user1", "user2", "user3", "user4", "user5", "user6", "user7", "user8", "user9",
];

impl Postfix {
    /// Starts an instance with extra `main.cf` lines.
    pub fn start(extra_main: &str) -> Postfix {
        provision();
        let dir = TestDir::new("postfix.");
        let (port, proxy_port, tls_port) = (free_port(), free_port(), free_port());
        let root = postfix_tree(&dir);
        dir.write(
            "etc/main.cf",
            &format!(
                "{}\
                 defer_transports = smtp\n\
                 smtpd_authorized_xclient_hosts = 127.0.0.1\n\
                 smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n\
                 smtputf8_enable = yes\n\
                 message_size_limit = 40000000\n\
                 {extra_main}\n",
                postfix_base_main(&root)
            ),
        );
        let mut master = format!(
            "127.0.0.1:{port} inet n - n - - smtpd\n\
             127.0.0.1:{proxy_port} inet n - n - - smtpd -o smtpd_upstream_proxy_protocol=haproxy\n\
             127.0.0.1:{tls_port} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes\n"
        );
        for service in POSTFIX_SERVICES {
            master.push_str(service);
            master.push('\n');
        }
        dir.write("etc/master.cf", &master);
        postfix_check_and_start(&root);
        assert!(wait_port(port, Duration::from_secs(15)), "postfix did not listen");
        Postfix { dir, port, proxy_port, tls_port }
    }

    /// One instance shared by the tests of a test binary.
    pub fn shared() -> &'static Postfix {
        static SHARED: OnceLock<Postfix> = OnceLock::new();
        SHARED.get_or_init(|| Postfix::start(""))
    }

    /// Messages delivered to `user@domain`, as text.
    pub fn mailbox(&self, address: &str) -> Vec<String> {
        postfix_mailbox(&self.dir, address)
    }

    /// Waits until a message containing `needle` reaches `address`.
    pub fn delivered(&self, address: &str, needle: &str) -> Option<String> {
        eventually(Duration::from_secs(15), || self.mailbox(address).into_iter().find(|m| m.contains(needle)))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log/maillog")).unwrap_or_default()
    }
}

/// Lays out a private Postfix instance in `dir`: configuration, queue and
/// data directories, a log directory, and a virtual mailbox for each of
/// [`USERS`] at example.com and example.org. Returns the root path.
fn postfix_tree(dir: &TestDir) -> String {
    let root = dir.path.display().to_string();
    for sub in ["etc", "queue", "data", "mail", "log"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    Command::new("chown").args(["postfix:postfix", &format!("{root}/data")]).status().unwrap();
    Command::new("chmod").args(["700", &format!("{root}/data")]).status().unwrap();
    Command::new("chown").args(["65534:65534", &format!("{root}/mail")]).status().unwrap();
    let mut users = String::new();
    for domain in ["example.com", "example.org"] {
        for user in USERS {
            users.push_str(&format!("{user}@{domain} {domain}/{user}/\n"));
        }
    }
    dir.write("etc/vmailbox", &users);
    root
}

/// The `main.cf` lines every private instance shares: its own paths, no
/// DNS, loopback only, and the virtual mailboxes of [`postfix_tree`].
fn postfix_base_main(root: &str) -> String {
    format!(
        "compatibility_level = 3.6\n\
         queue_directory = {root}/queue\n\
         data_directory = {root}/data\n\
         mail_owner = postfix\n\
         myhostname = mx.example.net\n\
         mydomain = example.net\n\
         myorigin = example.net\n\
         mydestination =\n\
         inet_interfaces = 127.0.0.1\n\
         inet_protocols = ipv4\n\
         mynetworks = 127.0.0.1/32\n\
         smtpd_peername_lookup = no\n\
         smtp_dns_support_level = disabled\n\
         smtp_host_lookup = native\n\
         virtual_mailbox_domains = example.com example.org\n\
         virtual_mailbox_base = {root}/mail\n\
         virtual_mailbox_maps = texthash:{root}/etc/vmailbox\n\
         virtual_uid_maps = static:65534\n\
         virtual_gid_maps = static:65534\n\
         maillog_file = {root}/log/maillog\n\
         maillog_file_prefixes = {root}/log\n\
         alias_maps =\n\
         alias_database =\n"
    )
}

/// Runs `postfix check` and `postfix start` on the instance at `root`, and
/// has it stopped and removed when this test process ends, even without
/// unwinding.
fn postfix_check_and_start(root: &str) {
    let etc = format!("{root}/etc");
    let check = Command::new("/usr/sbin/postfix").args(["-c", &etc, "check"]).output().unwrap();
    assert!(check.status.success(), "postfix check: {}", String::from_utf8_lossy(&check.stderr));
    let start = Command::new("/usr/sbin/postfix").args(["-c", &etc, "start"]).output().unwrap();
    assert!(start.status.success(), "postfix start: {}", String::from_utf8_lossy(&start.stderr));
    // The watchdog outlives this process on purpose, so it is not waited for.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; /usr/sbin/postfix -c {etc} stop >/dev/null 2>&1; rm -rf {root}",
            std::process::id()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
}

/// Messages a private instance delivered to `user@domain`, as text.
fn postfix_mailbox(dir: &TestDir, address: &str) -> Vec<String> {
    let (user, domain) = address.split_once('@').unwrap();
    let new = dir.path.join("mail").join(domain).join(user).join("new");
    let Ok(entries) = std::fs::read_dir(new) else {
        return Vec::new();
    };
    entries.flatten().map(|e| std::fs::read_to_string(e.path()).unwrap_or_default()).collect()
}

/// Runs a Python 3 script and returns what it printed; fails the test,
/// with its output, when the script fails.
pub fn python(script: &str) -> String {
    let output = Command::new("python3").arg("-c").arg(script).output().unwrap();
    assert!(
        output.status.success(),
        "python: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let etc = self.dir.join("etc");
        let _ = Command::new("/usr/sbin/postfix").arg("-c").arg(etc).arg("stop").output();
    }
}

/// A test CA and certificates made with the openssl command line.
pub struct TestPki {
    pub dir: TestDir,
}

impl TestPki {
    /// A CA, `mx.example.com` (+ localhost, 127.0.0.1) and `mail.example.org`
    /// (+ `*.example.net`), each as `NAME.pem` (leaf then CA) and `NAME.key`.
    pub fn new() -> TestPki {
        provision();
        let dir = TestDir::new("pki.");
        let run = |args: &str| {
            let output = Command::new("sh").arg("-c").arg(args).current_dir(&dir.path).output().unwrap();
            assert!(output.status.success(), "{args}: {}", String::from_utf8_lossy(&output.stderr));
        };
        run(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 3 -subj '/CN=batv-proxy test CA' 2>/dev/null",
        );
        for (name, sans) in [
            ("mx.example.com", "DNS:mx.example.com,DNS:localhost,IP:127.0.0.1"),
            ("mail.example.org", "DNS:mail.example.org,DNS:*.example.net"),
        ] {
            run(&format!(
                "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {name}.key -out {name}.csr -subj '/CN={name}' 2>/dev/null && \
                 printf 'subjectAltName={sans}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' > {name}.ext && \
                 openssl x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3 -extfile {name}.ext -out {name}.leaf 2>/dev/null && \
                 cat {name}.leaf ca.pem > {name}.pem && chmod 644 {name}.key"
            ));
        }
        TestPki { dir }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// SHA-256 fingerprint of a certificate, as openssl prints it.
    pub fn fingerprint(&self, name: &str) -> String {
        let output = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(self.path(name))
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().rsplit('=').next().unwrap().to_owned()
    }
}

/// A unique token for a test message.
pub fn unique(name: &str) -> String {
    format!(
        "{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    )
}

/// A private Exim: Debian's exim4 binary (unpacked by provision.sh) run with
/// a configuration of its own, without a daemon: messages are submitted on
/// the command line and delivered at once (`-odi`). The users of [`USERS`]
/// at example.com get maildirs; `routers` (Exim router definitions) come
/// first, so they can send other domains elsewhere.
pub struct Exim {
    pub dir: TestDir,
    pub config: PathBuf,
}

impl Exim {
    pub fn new(extra_main: &str, routers: &str) -> Exim {
        provision();
        let dir = TestDir::new("exim.");
        let root = dir.path.display().to_string();
        for sub in ["spool", "log", "mail"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
            Command::new("chown").args(["Debian-exim:Debian-exim", &format!("{root}/{sub}")]).status().unwrap();
        }
        let binary = exim_dir().join("usr/sbin/exim4");
        let config = dir.write(
            "exim.conf",
            &format!(
                "exim_path = {binary}\n\
                 primary_hostname = mx.example.net\n\
                 qualify_domain = example.com\n\
                 domainlist local_domains = example.com\n\
                 spool_directory = {root}/spool\n\
                 log_file_path = {root}/log/%slog\n\
                 exim_user = Debian-exim\n\
                 exim_group = Debian-exim\n\
                 keep_environment =\n\
                 {extra_main}\n\
                 begin routers\n\
                 {routers}\n\
                 local_users:\n  driver = accept\n  domains = +local_domains\n  local_parts = {users}\n  transport = maildir_delivery\n\
                 begin transports\n\
                 remote_smtp:\n  driver = smtp\n\
                 maildir_delivery:\n  driver = appendfile\n  directory = {root}/mail/$local_part_data\n  maildir_format\n  create_directory\n  user = Debian-exim\n  group = Debian-exim\n  mode = 0644\n\
                 begin retry\n\
                 *  *  F,1h,1m\n",
                binary = binary.display(),
                users = USERS.join(" : "),
            ),
        );
        Exim { dir, config }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(exim_dir().join("usr/sbin/exim4"));
        command.arg("-C").arg(&self.config);
        command
    }

    /// Submits `message` from `sender` and waits for the delivery attempt.
    pub fn submit(&self, sender: &str, recipients: &[&str], message: &str) {
        let mut child = self
            .command()
            .args(["-odi", "-f", sender])
            .args(recipients)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting exim4");
        child.stdin.take().unwrap().write_all(message.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "exim4 -odi failed: {}\nlog:\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
    }

    /// One queue run that retries every deferred message (`-qff`).
    pub fn run_queue(&self) {
        let output = self.command().arg("-qff").output().unwrap();
        assert!(output.status.success(), "exim4 -qff: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// Messages delivered to `user`'s maildir, as text.
    pub fn mailbox(&self, user: &str) -> Vec<String> {
        let new = self.dir.join("mail").join(user).join("new");
        let Ok(entries) = std::fs::read_dir(new) else {
            return Vec::new();
        };
        entries.flatten().map(|e| std::fs::read_to_string(e.path()).unwrap_or_default()).collect()
    }

    /// Waits until a message containing every one of `needles` reaches `user`.
    pub fn delivered(&self, user: &str, needles: &[&str]) -> Option<String> {
        eventually(Duration::from_secs(15), || {
            self.mailbox(user).into_iter().find(|m| needles.iter().all(|needle| m.contains(needle)))
        })
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log/mainlog")).unwrap_or_default()
    }
}

/// Runs `postqueue -f` for a private Postfix instance: every deferred message
/// is tried again now.
pub fn postfix_flush(postfix: &Postfix) {
    let output = Command::new("/usr/sbin/postqueue").arg("-c").arg(postfix.dir.join("etc")).arg("-f").output().unwrap();
    assert!(output.status.success(), "postqueue -f: {}", String::from_utf8_lossy(&output.stderr));
}

/// A delivery status notification (RFC 3464) returning the message
/// `original_id` that `to` sent: an untagged bounce only the ledger can accept.
pub fn bounce_for(original_id: &str, to: &str) -> String {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@remote.test>\r\nTo: {to}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <bounce.{}@remote.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nThe mail system could not deliver your message.\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.remote.test\r\n\r\n\
         Final-Recipient: rfc822; nobody@remote.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         --B\r\nContent-Type: message/rfc822\r\n\r\nFrom: {to}\r\nTo: nobody@remote.test\r\nSubject: the original\r\n\
         Message-ID: {original_id}\r\n\r\noriginal body\r\n--B--\r\n",
        unique("b")
    )
}

/// One sample of a `/metrics` text, by its name with labels as exposed
/// (`batv_proxy_ledger_pending`); `None` when absent.
pub fn metric_value(metrics: &str, sample: &str) -> Option<f64> {
    metrics.lines().find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A tmpfs of `size` mounted on `path` (as root), unmounted when dropped.
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(path)
            .status()
            .expect("mount");
        assert!(status.success(), "mount -t tmpfs on {} (needs root)", path.display());
        Tmpfs { path: path.to_owned() }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        // A test directory removed while mounted keeps the empty mount point (and its parent).
        let _ = std::fs::remove_dir(&self.path);
        if let Some(parent) = self.path.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}
