//! Proof across hosts (issue 16): three proxy hosts and a Redis primary
//! with a replica and three Sentinels, each host in a network namespace of
//! its own on one bridge (10.213.0.0/24, which exists only inside this
//! test's namespaces), each proxy in front of its own smtp-sink.
//!
//! - Mail signed on A: its tagged bounces and its untagged DSNs (by the
//!   ledger) arrive at B and C and pass.
//! - The Redis primary is killed mid-run and Sentinel promotes the replica:
//!   every Message-ID recorded before or during the failover is in the new
//!   primary afterwards, and no bounce for one of them gets a 550.
//! - C cut off from Redis answers 451 for ledger-dependent verdicts, keeps
//!   what it records in its outage queue and replays it when Redis is back.
//! - A key staged for a second activates on all three hosts at that second;
//!   tags made with the old key keep verifying.
//!
//! Every process and namespace is removed when the test ends, also on
//! failure (guards). The figures it measures are printed at the end.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

const NET: &str = "10.213.0";
const SERVICE: &str = "batv";
const KEY0: &[u8] = b"cluster-key-zero-0123456789abcdef";
const KEY1: &[u8] = b"cluster-key-one-0123456789abcdefg";

/// Runs `work` on a thread inside network namespace `ns`.
fn inside<T: Send + 'static>(ns: &str, work: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        enter(&ns);
        work()
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Moves the calling thread into network namespace `ns`.
fn enter(ns: &str) {
    let file = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("the namespace exists");
    let result = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(result, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}

fn address(octet: u8, port: u16) -> SocketAddr {
    format!("{NET}.{octet}:{port}").parse().unwrap()
}

/// A namespace on the bridge with one address.
struct Host {
    ns: Netns,
    octet: u8,
}

impl Host {
    fn new(prefix: &str, octet: u8, switch: &Netns) -> Host {
        let ns = Netns::new(prefix);
        let peer = format!("p{octet}");
        ns.ip(&["-n", &ns.name, "link", "add", "eth0", "type", "veth", "peer", "name", &peer, "netns", &switch.name]);
        switch.ip(&["-n", &switch.name, "link", "set", &peer, "master", "br0", "up"]);
        ns.ip(&["-n", &ns.name, "addr", "add", &format!("{NET}.{octet}/24"), "dev", "eth0"]);
        ns.ip(&["-n", &ns.name, "link", "set", "eth0", "up"]);
        Host { ns, octet }
    }

    fn ip(&self) -> String {
        format!("{NET}.{}", self.octet)
    }

    fn spawn(&self, program: &str, args: &[&str], log: Option<&PathBuf>) -> Running {
        let mut command = self.ns.command(program);
        command.args(args).stdin(Stdio::null());
        match log {
            Some(path) => {
                let file = std::fs::File::create(path).unwrap();
                command.stdout(file.try_clone().unwrap()).stderr(file);
            }
            None => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        Running::spawn(&mut command)
    }
}

fn wait_listening(ns: &str, target: SocketAddr) {
    let up = inside(ns, move || {
        eventually(Duration::from_secs(15), || {
            std::net::TcpStream::connect_timeout(&target, Duration::from_millis(300)).ok()
        })
        .is_some()
    });
    assert!(up, "nothing listens on {target}");
}

fn redis_server(host: &Host, dir: &TestDir, replica_of: Option<&str>) -> Running {
    let ip = host.ip();
    let mut args = vec![
        "--bind",
        &ip,
        "--port",
        "6379",
        "--protected-mode",
        "no",
        "--save",
        "",
        "--appendonly",
        "no",
        "--repl-diskless-sync-delay",
        "0",
    ];
    let data = dir.join(&format!("redis-{}", host.octet));
    std::fs::create_dir_all(&data).unwrap();
    let data = data.display().to_string();
    args.extend(["--dir", &data]);
    if let Some(primary) = replica_of {
        args.extend(["--replicaof", primary, "6379"]);
    }
    let running = host.spawn("redis-server", &args, Some(&dir.join(&format!("redis-{}.log", host.octet))));
    wait_listening(&host.ns.name, address(host.octet, 6379));
    running
}

fn sentinel(host: &Host, dir: &TestDir, primary: &str) -> Running {
    let config = dir.write(
        &format!("sentinel-{}.conf", host.octet),
        &format!(
            "bind {ip}\nport 26379\nprotected-mode no\nsentinel resolve-hostnames no\n\
             sentinel monitor {SERVICE} {primary} 6379 2\nsentinel down-after-milliseconds {SERVICE} 1000\n\
             sentinel failover-timeout {SERVICE} 3000\nsentinel parallel-syncs {SERVICE} 1\n",
            ip = host.ip()
        ),
    );
    let running = host.spawn(
        "redis-sentinel",
        &[&config.display().to_string()],
        Some(&dir.join(&format!("sentinel-{}.log", host.octet))),
    );
    wait_listening(&host.ns.name, address(host.octet, 26379));
    running
}

/// `redis-cli` against a node, from inside the client namespace.
fn redis_cli(client: &str, node: &str, port: u16, args: &[&str]) -> String {
    let output = Command::new("ip")
        .args(["netns", "exec", client, "redis-cli", "-h", node, "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// One proxy host: its namespace, sink and proxy, and its directory.
struct ProxyHost {
    host: Host,
    dir: TestDir,
    _sink: Running,
    proxy: Option<Running>,
}

impl ProxyHost {
    fn start(host: Host, sentinels: &str) -> ProxyHost {
        let dir = TestDir::new("cluster-host.");
        write_keys(&dir.join("keys"), 0, KEY0);
        std::fs::create_dir_all(dir.join("sink")).unwrap();
        let sink_dump = format!("{}/%M%S.", dir.join("sink").display());
        let sink = host.spawn("/usr/sbin/smtp-sink", &["-u", "root", "-d", &sink_dump, "127.0.0.1:2525", "1000"], None);
        let ip = host.ip();
        let config = format!(
            "state_dir = \"state\"\n[metrics]\nlisten = \"{ip}:9100\"\n\
             [batv]\nkey_file = \"keys\"\nlifetime_days = 7\ndomains = [\"example.com\"]\n\
             [ledger]\nstore = \"redis\"\nredis_url = \"redis+sentinel://{sentinels}/{SERVICE}\"\nredis_wait_replicas = 1\n\
             [[listener]]\nrole = \"inbound\"\nlisten = \"{ip}:25\"\nupstream = \"127.0.0.1:2525\"\n\
             client_identity = \"none\"\nhostname = \"mx{octet}.example.com\"\n\
             [[listener]]\nrole = \"outbound\"\nlisten = \"{ip}:587\"\nupstream = \"127.0.0.1:2525\"\n\
             client_identity = \"none\"\nhostname = \"mx{octet}.example.com\"\nallowed_clients = [\"{NET}.0/24\"]\n",
            octet = host.octet
        );
        let config = dir.write("batv-proxy.toml", &config);
        let log = dir.join("proxy.log");
        let file = std::fs::File::create(&log).unwrap();
        let mut command = host.ns.command(proxy_binary());
        command
            .args(["run", "--log-format", "json", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info,batv_proxy::ledger=debug")
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let proxy = Running::spawn(&mut command);
        for port in [25, 587, 9100] {
            wait_listening(&host.ns.name, address(host.octet, port));
        }
        ProxyHost { host, dir, _sink: sink, proxy: Some(proxy) }
    }

    fn inbound(&self) -> SocketAddr {
        address(self.host.octet, 25)
    }

    fn outbound(&self) -> SocketAddr {
        address(self.host.octet, 587)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("proxy.log")).unwrap_or_default()
    }

    fn metrics(&self, client: &str) -> String {
        let target = address(self.host.octet, 9100);
        inside(client, move || {
            let mut socket = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(5)).unwrap();
            socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            std::io::Write::write_all(&mut socket, b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut socket, &mut text).unwrap();
            text
        })
    }

    fn metric(&self, client: &str, sample: &str) -> f64 {
        metric_value(&self.metrics(client), sample).unwrap_or(0.0)
    }

    /// The signed sender of the sink's transaction that carries `token`.
    fn signed_sender(&self, token: &str) -> Option<String> {
        for entry in std::fs::read_dir(self.dir.join("sink")).ok()?.flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            if text.contains(token) {
                return text
                    .lines()
                    .find_map(|l| l.strip_prefix("X-Mail-Args: <"))
                    .map(|rest| rest.split('>').next().unwrap().to_owned());
            }
        }
        None
    }
}

impl Drop for ProxyHost {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- proxy {} log (tail) ---", self.host.ip());
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            for line in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{line}");
            }
        }
        self.proxy.take();
    }
}

/// Sends a message through `host`'s outbound listener; its Message-ID.
fn send_ours(client: &str, host: SocketAddr, token: &str) -> String {
    let id = format!("<{token}@example.com>");
    let body = format!("From: alice@example.com\r\nSubject: {token}\r\nMessage-ID: {id}\r\n\r\n{token}\r\n");
    let t = inside(client, move || send_mail_to(host, "alice@example.com", &["carol@remote.test"], &body));
    assert!(t.end.as_ref().is_some_and(|r| r.is(250)), "sending {token} through {host}: {:?}", t.end);
    id
}

/// An untagged DSN for `original` sent to `host`: the code after DATA.
fn dsn_code(client: &str, host: SocketAddr, original: &str) -> u16 {
    let body = bounce_for(original, "alice@example.com");
    let t = inside(client, move || send_mail_to(host, "", &["alice@example.com"], &body));
    assert_eq!(t.rcpts[0].code, 250);
    t.end.map_or(0, |r| r.code)
}

/// A bounce to a tagged address sent to `host`: the RCPT code and the end of DATA.
fn tagged_bounce(client: &str, host: SocketAddr, tagged: &str) -> (u16, u16) {
    let to = tagged.to_owned();
    let t = inside(client, move || {
        send_mail_to(host, "", &[&to], "From: MAILER-DAEMON@remote.test\r\nSubject: Undelivered\r\n\r\nSorry.\r\n")
    });
    (t.rcpts[0].code, t.end.map_or(0, |r| r.code))
}

/// What each Sentinel names as the primary of the service.
fn hosts_sentinels(client: &str, sentinels: &[String]) -> Vec<String> {
    sentinels
        .iter()
        .map(|ip| redis_cli(client, ip, 26379, &["SENTINEL", "get-master-addr-by-name", SERVICE]).replace('\n', ":"))
        .collect()
}

/// How many of `ids` the Redis node holds.
fn present_in(client: &str, node: &str, ids: &[String]) -> usize {
    ids.chunks(200)
        .map(|chunk| {
            let keys: Vec<String> =
                chunk.iter().map(|id| format!("batv-proxy:ledger:{}", id.trim_matches(['<', '>']))).collect();
            let mut args = vec!["EXISTS"];
            args.extend(keys.iter().map(String::as_str));
            redis_cli(client, node, 6379, &args).parse::<usize>().unwrap_or(0)
        })
        .sum()
}

/// The longest time 451 was the answer, in a series of (when asked,
/// code): from asking the first of a run of 451s to asking the question
/// answered otherwise next (or to the last sample).
fn longest_451(samples: &[(Instant, u16)]) -> Duration {
    let mut longest = Duration::ZERO;
    let mut start: Option<Instant> = None;
    for (at, code) in samples {
        match (code, start) {
            (451, None) => start = Some(*at),
            (451, Some(_)) => {}
            (_, Some(first)) => {
                longest = longest.max(*at - first);
                start = None;
            }
            (_, None) => {}
        }
    }
    if let (Some(first), Some((last, _))) = (start, samples.last()) {
        longest = longest.max(*last - first);
    }
    longest
}

#[test]
fn three_hosts_share_a_ledger_through_a_failover_and_rotate_keys_in_step() {
    provision();
    let started = Instant::now();
    let switch = Netns::new("bsw");
    switch.ip(&["-n", &switch.name, "link", "add", "br0", "type", "bridge"]);
    switch.ip(&["-n", &switch.name, "link", "set", "br0", "up"]);
    let client_host = Host::new("bcl", 5, &switch);
    let client = client_host.ns.name.clone();
    let r1 = Host::new("br1", 21, &switch);
    let r2 = Host::new("br2", 22, &switch);
    let dir = TestDir::new("cluster.");
    let mut primary = Some(redis_server(&r1, &dir, None));
    let _replica = redis_server(&r2, &dir, Some(&r1.ip()));
    // The Sentinels run beside each Redis and on a third, monitoring host
    // (the client's): a proxy host cut off from Redis takes none with it.
    let sentinel_hosts = [&r1, &r2, &client_host];
    let _sentinels: Vec<Running> = sentinel_hosts.iter().map(|host| sentinel(host, &dir, &r1.ip())).collect();
    let sentinels = sentinel_hosts.iter().map(|h| format!("{}:26379", h.ip())).collect::<Vec<_>>().join(",");
    let sentinel_ips: Vec<String> = sentinel_hosts.iter().map(|h| h.ip()).collect();
    let hosts: Vec<Host> = [11, 12, 13].iter().map(|octet| Host::new(&format!("bh{octet}"), *octet, &switch)).collect();
    let mut hosts = hosts.into_iter();
    let a = ProxyHost::start(hosts.next().unwrap(), &sentinels);
    let b = ProxyHost::start(hosts.next().unwrap(), &sentinels);
    let c = ProxyHost::start(hosts.next().unwrap(), &sentinels);
    // The replica has synchronised with the primary before anything is recorded.
    let in_sync = |replica: &Host| {
        let replica = replica.ip();
        let client = client.clone();
        move || {
            redis_cli(&client, &replica, 6379, &["INFO", "replication"]).contains("master_link_status:up").then_some(())
        }
    };
    assert!(eventually(Duration::from_secs(15), in_sync(&r2)).is_some(), "the replica did not synchronise");
    let mut sent = 0usize;
    let mut judged_elsewhere = 0usize;

    // 1. Mail signed on A; its bounces arrive at B and C.
    let mut before: Vec<String> = Vec::new();
    let mut tags: Vec<String> = Vec::new();
    for n in 0..20 {
        let token = unique(&format!("before{n}"));
        before.push(send_ours(&client, a.outbound(), &token));
        sent += 1;
        let tag = a.signed_sender(&token).expect("A's sink got the message");
        assert!(tag.starts_with("prvs=0"), "{tag}");
        tags.push(tag);
    }
    let recorded =
        eventually(Duration::from_secs(10), || (present_in(&client, &r1.ip(), &before) == before.len()).then_some(()));
    assert!(recorded.is_some(), "A's ids did not reach Redis");
    for (n, (id, tag)) in before.iter().zip(&tags).enumerate() {
        let other = if n % 2 == 0 { &b } else { &c };
        assert_eq!(tagged_bounce(&client, other.inbound(), tag), (250, 250), "tagged bounce for {tag}");
        assert_eq!(dsn_code(&client, other.inbound(), id), 250, "untagged DSN for {id}");
        judged_elsewhere += 2;
    }
    assert_eq!(dsn_code(&client, b.inbound(), "<never-sent@example.com>"), 550, "the ledger still refuses");

    for host in [&a, &b, &c] {
        assert_eq!(host.metric(&client, "batv_proxy_ledger_pending"), 0.0, "{}", host.metrics(&client));
    }

    // 2. The primary dies mid-run; Sentinel promotes the replica.
    let stop = Arc::new(AtomicBool::new(false));
    let during = Arc::new(Mutex::new(Vec::<String>::new()));
    let traffic = {
        let (stop, during, client) = (Arc::clone(&stop), Arc::clone(&during), client.clone());
        let targets = [a.outbound(), b.outbound()];
        std::thread::spawn(move || {
            enter(&client);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let token = unique(&format!("during{n}"));
                let id = format!("<{token}@example.com>");
                let body = format!("Subject: {token}\r\nMessage-ID: {id}\r\n\r\nx\r\n");
                let t = send_mail_to(targets[n % 2], "alice@example.com", &["carol@remote.test"], &body);
                assert!(t.end.is_some_and(|r| r.is(250)), "relaying stops during the failover");
                during.lock().unwrap().push(id);
                n += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let probe = |target: SocketAddr, id: String, stop: Arc<AtomicBool>| {
        let client = client.clone();
        std::thread::spawn(move || {
            enter(&client);
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let body = bounce_for(&id, "alice@example.com");
                let asked = Instant::now();
                let t = send_mail_to(target, "", &["alice@example.com"], &body);
                samples.push((asked, t.end.map_or(0, |r| r.code)));
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        })
    };
    let prober = probe(b.inbound(), before[0].clone(), Arc::clone(&stop));
    std::thread::sleep(Duration::from_secs(2));
    let killed_at = Instant::now();
    primary.take(); // SIGKILL
    let promoted = eventually(Duration::from_secs(30), || {
        redis_cli(&client, &r2.ip(), 6379, &["ROLE"]).starts_with("master").then_some(())
    });
    assert!(promoted.is_some(), "Sentinel did not promote the replica");
    // Every Sentinel names the new primary.
    let switched = eventually(Duration::from_secs(30), || {
        hosts_sentinels(&client, &sentinel_ips).iter().all(|answer| answer.starts_with(&r2.ip())).then_some(())
    });
    assert!(switched.is_some(), "the Sentinels did not switch to the new primary");
    let failover_took = killed_at.elapsed();
    // The old primary comes back as a replica of the new one. (Started as
    // a primary without persistence it would be an empty primary that the
    // Sentinels name until they notice: Redis's documented hazard.)
    let _old_primary = redis_server(&r1, &dir, Some(&r2.ip()));
    assert!(eventually(Duration::from_secs(30), in_sync(&r1)).is_some(), "the old primary did not rejoin");
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();
    let failover_samples = prober.join().unwrap();
    let during = during.lock().unwrap().clone();
    sent += during.len();
    for host in [&a, &b] {
        let drained = eventually(Duration::from_secs(30), || {
            (host.metric(&client, "batv_proxy_ledger_pending") == 0.0).then_some(())
        });
        assert!(drained.is_some(), "host {} kept ids queued:\n{}", host.host.ip(), host.metrics(&client));
    }
    let mut all: Vec<String> = before.clone();
    all.extend(during.iter().cloned());
    let found_after = present_in(&client, &r2.ip(), &all);
    assert_eq!(found_after, all.len(), "ids lost in the failover");
    if failover_samples.iter().any(|(_, code)| *code != 250 && *code != 451) {
        for name in ["redis-21.log", "redis-22.log", "sentinel-5.log"] {
            eprintln!("--- {name} ---\n{}", std::fs::read_to_string(dir.join(name)).unwrap_or_default());
        }
        let first = failover_samples[0].0;
        let series: Vec<(u128, u16)> =
            failover_samples.iter().map(|(at, code)| ((*at - first).as_millis(), *code)).collect();
        eprintln!("samples (ms since first): {series:?}; killed at {} ms", (killed_at - first).as_millis());
    }
    assert!(
        failover_samples.iter().all(|(_, code)| *code == 250 || *code == 451),
        "a bounce for a recorded id got another answer during the failover: {:?}",
        failover_samples.iter().map(|(_, c)| c).collect::<Vec<_>>()
    );
    judged_elsewhere += failover_samples.len();
    for id in during.iter().step_by(5) {
        assert_eq!(dsn_code(&client, c.inbound(), id), 250, "{id}, recorded during the failover, on C");
        judged_elsewhere += 1;
    }
    let queued_in_failover =
        a.metric(&client, "batv_proxy_ledger_queued_total") + b.metric(&client, "batv_proxy_ledger_queued_total");

    // 3. C is cut off from Redis: 451 for what needs the ledger, its own
    //    records queued, replayed when Redis is back.
    let probe_stop = Arc::new(AtomicBool::new(false));
    let c_prober = probe(c.inbound(), before[1].clone(), Arc::clone(&probe_stop));
    std::thread::sleep(Duration::from_millis(500));
    for node in [r1.ip(), r2.ip()] {
        c.host.ns.ip(&["-n", &c.host.ns.name, "route", "add", "unreachable", &format!("{node}/32")]);
    }
    let cut_at = Instant::now();
    let answered_451 =
        eventually(Duration::from_secs(15), || (dsn_code(&client, c.inbound(), &before[2]) == 451).then_some(()));
    assert!(answered_451.is_some(), "C cut off from Redis did not answer 451");
    assert_eq!(dsn_code(&client, c.inbound(), "<never-sent@example.com>"), 451, "never a 550 while cut off");
    let mut cut_off: Vec<String> = Vec::new();
    for n in 0..10 {
        cut_off.push(send_ours(&client, c.outbound(), &unique(&format!("cut{n}"))));
        sent += 1;
    }
    let queued = eventually(Duration::from_secs(15), || {
        (c.metric(&client, "batv_proxy_ledger_queued_total") >= 10.0).then_some(())
    });
    assert!(queued.is_some(), "C did not queue its ids:\n{}", c.metrics(&client));
    assert_eq!(dsn_code(&client, c.inbound(), &cut_off[0]), 250, "C finds its own queued ids");
    std::thread::sleep(Duration::from_secs(1));
    for node in [r1.ip(), r2.ip()] {
        c.host.ns.ip(&["-n", &c.host.ns.name, "route", "del", "unreachable", &format!("{node}/32")]);
    }
    let restored_at = Instant::now();
    let caught_up = eventually(Duration::from_secs(30), || {
        (c.metric(&client, "batv_proxy_ledger_pending") == 0.0
            && c.metric(&client, "batv_proxy_ledger_replayed_total") >= 10.0)
            .then_some(())
    });
    assert!(caught_up.is_some(), "C did not replay its queue:\n{}", c.metrics(&client));
    let catch_up_took = restored_at.elapsed();
    let back =
        eventually(Duration::from_secs(15), || (dsn_code(&client, c.inbound(), &before[2]) == 250).then_some(()));
    assert!(back.is_some(), "C still answers 451");
    probe_stop.store(true, Ordering::Relaxed);
    let cut_samples = c_prober.join().unwrap();
    let first = cut_samples[0].0;
    let series: Vec<(u128, u16)> = cut_samples.iter().map(|(at, code)| ((*at - first).as_millis(), *code)).collect();
    eprintln!(
        "cluster: C's probe (ms, code), cut at {} ms, restored at {} ms: {series:?}",
        (cut_at - first).as_millis(),
        (restored_at - first).as_millis()
    );
    assert!(cut_samples.iter().all(|(_, code)| *code == 250 || *code == 451), "C gave a 550 while cut off");
    judged_elsewhere += cut_samples.len();
    for id in &cut_off {
        assert_eq!(dsn_code(&client, b.inbound(), id), 250, "{id}, sent through C while cut off, on B");
        judged_elsewhere += 1;
    }
    let cut_window = cut_at.elapsed();

    // 4. A staged key activates on all three hosts at its second.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let activation = now + 4;
    let stamp = time::OffsetDateTime::from_unix_timestamp(activation as i64)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    use base64::Engine;
    let encode = |key: &[u8]| base64::engine::general_purpose::STANDARD.encode(key);
    let staged = format!("0 {}\n1 {} activate={stamp}\n", encode(KEY0), encode(KEY1));
    for host in [&a, &b, &c] {
        std::fs::write(host.dir.join("keys"), &staged).unwrap();
        host.proxy.as_ref().unwrap().signal("HUP");
    }
    for host in [&a, &b, &c] {
        let reloaded = eventually(Duration::from_secs(10), || host.log().contains("reload applied").then_some(()));
        assert!(reloaded.is_some(), "{} did not reload", host.host.ip());
    }
    let sign_key = |host: &ProxyHost| {
        let token = unique("keycheck");
        send_ours(&client, host.outbound(), &token);
        host.signed_sender(&token).unwrap().chars().nth(5).unwrap()
    };
    let wait_until = |unix: f64| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        if unix > now {
            std::thread::sleep(Duration::from_secs_f64(unix - now));
        }
    };
    wait_until(activation as f64 - 1.0);
    let before_switch: Vec<char> = [&a, &b, &c].iter().map(|h| sign_key(h)).collect();
    wait_until(activation as f64 + 0.05);
    let switched_at = Instant::now();
    let after_switch: Vec<char> = [&a, &b, &c].iter().map(|h| sign_key(h)).collect();
    let switch_spread = switched_at.elapsed();
    sent += 6;
    assert_eq!(before_switch, ['0', '0', '0'], "a host signed with the staged key early");
    assert_eq!(after_switch, ['1', '1', '1'], "a host did not switch at the activation second");
    assert!(switch_spread < Duration::from_secs(1), "{switch_spread:?}");
    for host in [&b, &c] {
        assert!(
            host.metrics(&client).contains("key_id=\"1\"") && host.metrics(&client).contains("role=\"signing\""),
            "key_info does not show the switch"
        );
        for tag in tags.iter().take(3) {
            assert_eq!(tagged_bounce(&client, host.inbound(), tag), (250, 250), "an old-key tag no longer verifies");
            judged_elsewhere += 1;
        }
    }

    let mut figures = BTreeMap::new();
    figures.insert("messages sent", format!("{sent}"));
    figures.insert("bounces judged on hosts other than the signing one", format!("{judged_elsewhere}"));
    figures.insert("ids recorded during the failover", format!("{}", during.len()));
    figures.insert("ids found in the new primary after it", format!("{found_after} of {}", all.len()));
    figures.insert("ids queued locally during the failover (A+B)", format!("{queued_in_failover}"));
    figures.insert("failover (kill to promotion)", format!("{failover_took:.1?}"));
    figures.insert("longest 451 window, failover (B)", format!("{:.1?}", longest_451(&failover_samples)));
    figures.insert("longest 451 window, C cut off", format!("{:.1?}", longest_451(&cut_samples)));
    figures.insert("C: cut off, then caught up in", format!("{cut_window:.1?} / {catch_up_took:.1?}"));
    figures.insert("test duration", format!("{:.1?}", started.elapsed()));
    for (name, value) in &figures {
        eprintln!("cluster: {name}: {value}");
    }
}
