//! Redis as it is deployed (issue 16): TLS through rustls with a CA file,
//! a password from a file, `check-config --connect` finding a wrong
//! password or an untrusted certificate before the deploy, and the outage
//! queue kept across a restart of the proxy and replayed into Redis.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// A real redis-server on loopback, killed on drop.
struct Redis {
    port: u16,
    _child: Running,
}

impl Redis {
    fn plain(port: u16) -> Redis {
        provision();
        let child = Running::spawn(
            Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .stdout(Stdio::null()),
        );
        assert!(wait_port(port, Duration::from_secs(5)), "redis did not start");
        Redis { port, _child: child }
    }

    /// TLS only, with a password.
    fn tls(pki: &TestPki, password: &str) -> Redis {
        provision();
        let port = free_port();
        let child = Running::spawn(
            Command::new("redis-server")
                .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--tls-cert-file", &pki.path("mx.example.com.pem")])
                .args(["--tls-key-file", &pki.path("mx.example.com.key")])
                .args(["--tls-ca-cert-file", &pki.path("ca.pem")])
                .args(["--tls-auth-clients", "no", "--requirepass", password, "--save", "", "--appendonly", "no"])
                .stdout(Stdio::null()),
        );
        assert!(wait_port(port, Duration::from_secs(5)), "redis did not start");
        Redis { port, _child: child }
    }

    fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli").args(["-p", &self.port.to_string()]).args(args).output().unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

fn check_config(dir: &TestDir, config: &str, connect: bool) -> (i32, String, String) {
    let path = dir.write("batv-proxy.toml", config);
    let mut command = Command::new(proxy_binary());
    command.args(["check-config", "--config"]).arg(&path);
    if connect {
        command.arg("--connect");
    }
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn tls_redis_with_a_password_file_and_check_config_connect() {
    let pki = TestPki::new();
    let secret = "correct horse battery staple";
    let redis = Redis::tls(&pki, secret);
    let dir = TestDir::new("redis-tls.");
    write_keys(&dir.join("keys"), 3, b"integration-test-secret");
    dir.write("redis-password", &format!("{secret}\n"));
    dir.write("wrong-password", "not the password\n");
    let (inbound, outbound) = (free_port(), free_port());
    let sink = Sink::start();
    let config = |password_file: &str, ca: bool| {
        let ca = if ca { format!("redis_ca_file = \"{}\"\n", pki.path("ca.pem")) } else { String::new() };
        format!(
            "state_dir = \"state\"\n{BATV_SECTION}[ledger]\nstore = \"redis\"\n\
             redis_url = \"rediss://127.0.0.1:{}/0\"\nredis_password_file = \"{password_file}\"\n{ca}{}{}",
            redis.port,
            listener("inbound", inbound, sink.port, "none", ""),
            listener("outbound", outbound, sink.port, "none", "")
        )
    };

    // Without --connect nothing is tried: a wrong password passes.
    let (code, _, stderr) = check_config(&dir, &config("wrong-password", true), false);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = check_config(&dir, &config("redis-password", true), true);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("connected, wrote and read a test key"), "{stdout}");
    let (code, _, stderr) = check_config(&dir, &config("wrong-password", true), true);
    assert_eq!(code, 2, "a wrong password is a configuration error: {stderr}");
    assert!(stderr.contains("ledger.redis_password_file"), "{stderr}");
    assert!(!stderr.contains("not the password") && !stderr.contains(secret), "a password in the output: {stderr}");
    // The system's roots do not know the test CA.
    let (code, _, stderr) = check_config(&dir, &config("redis-password", false), true);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("ledger.redis_ca_file"), "{stderr}");

    // The proxy records over TLS and finds the id again.
    let proxy = Proxy::start_in(dir, &config("redis-password", true), &[inbound, outbound]);
    let id = format!("<{}@example.com>", unique("tls"));
    let body = format!("Subject: x\r\nMessage-ID: {id}\r\n\r\nx\r\n");
    assert!(send_mail(outbound, "judy@example.com", &["nobody@remote.test"], &body).end.unwrap().is(250));
    let accepted = eventually(Duration::from_secs(10), || {
        let t = send_mail(inbound, "", &["judy@example.com"], &bounce_for(&id, "judy@example.com"));
        t.end.unwrap().is(250).then_some(())
    });
    assert!(accepted.is_some(), "the bounce was not accepted by the ledger over TLS");
    assert!(!proxy.log().contains(secret), "the password is in the log");
}

#[test]
fn the_outage_queue_outlives_a_restart_and_is_replayed() {
    let port = free_port();
    let sink = Sink::start();
    let dir = TestDir::new("redis-queue.");
    write_keys(&dir.join("keys"), 3, b"integration-test-secret");
    let (inbound, outbound, metrics) = (free_port(), free_port(), free_port());
    let config = format!(
        "state_dir = \"state\"\n[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n{BATV_SECTION}[ledger]\nstore = \"redis\"\n\
         redis_url = \"redis://127.0.0.1:{port}/0\"\n{}{}",
        listener("inbound", inbound, sink.port, "none", ""),
        listener("outbound", outbound, sink.port, "none", "")
    );
    let config_path = dir.write("batv-proxy.toml", &config);
    let start = || {
        let child = Running::spawn(
            Command::new(proxy_binary()).args(["run", "--config"]).arg(&config_path).stderr(Stdio::null()),
        );
        assert!(wait_port(outbound, Duration::from_secs(10)) && wait_port(metrics, Duration::from_secs(10)));
        child
    };
    // Redis is not there: the ids go to the queue in state_dir.
    let mut proxy = start();
    let ids: Vec<String> = (0..30)
        .map(|n| {
            let id = format!("<{}@example.com>", unique(&format!("queued{n}")));
            let body = format!("Subject: x\r\nMessage-ID: {id}\r\n\r\nx\r\n");
            assert!(send_mail(outbound, "judy@example.com", &["nobody@remote.test"], &body).end.unwrap().is(250));
            id
        })
        .collect();
    let queued = eventually(Duration::from_secs(10), || {
        let (_, text) = http_get(metrics, "/metrics");
        (metric_value(&text, "batv_proxy_ledger_queued_total") == Some(30.0)).then_some(())
    });
    assert!(queued.is_some(), "the ids were not queued: {}", http_get(metrics, "/metrics").1);
    let t = send_mail(inbound, "", &["judy@example.com"], &bounce_for(&ids[0], "judy@example.com"));
    assert!(t.end.unwrap().is(250), "an id in this host's queue is found while Redis is away");
    let t = send_mail(inbound, "", &["judy@example.com"], &bounce_for("<never@example.com>", "judy@example.com"));
    assert_eq!(t.end.unwrap().code, 451, "nothing is refused for good while Redis is away");
    proxy.signal("TERM");
    assert!(proxy.wait_exit(Duration::from_secs(15)).is_some());

    // Redis back, the proxy restarted: the queue it left is replayed.
    let redis = Redis::plain(port);
    let _proxy = start();
    let keys: Vec<String> = ids.iter().map(|id| format!("batv-proxy:ledger:{}", id.trim_matches(['<', '>']))).collect();
    let replayed = eventually(Duration::from_secs(15), || {
        let mut args = vec!["EXISTS"];
        args.extend(keys.iter().map(String::as_str));
        (redis.cli(&args) == "30").then_some(())
    });
    assert!(replayed.is_some(), "the queue was not replayed: {}", http_get(metrics, "/metrics").1);
    let ttl: u64 = redis.cli(&["TTL", &keys[0]]).parse().unwrap();
    assert!(ttl > 6 * 86_400 && ttl <= 7 * 86_400, "replayed with the rest of the tag lifetime: {ttl}");
    let (_, text) = http_get(metrics, "/metrics");
    assert_eq!(metric_value(&text, "batv_proxy_ledger_replayed_total"), Some(30.0), "{text}");
    assert_eq!(metric_value(&text, "batv_proxy_ledger_pending"), Some(0.0), "{text}");
    assert_eq!(redis.cli(&["ZCARD", "batv-proxy:backlog"]), "0", "the backlog mark is removed");
    let t = send_mail(inbound, "", &["judy@example.com"], &bounce_for("<never@example.com>", "judy@example.com"));
    assert_eq!(t.end.unwrap().code, 550);
}

/// A Redis Cluster of three primaries on loopback, killed on drop.
struct RedisCluster {
    ports: Vec<u16>,
    _nodes: Vec<Running>,
    _dir: TestDir,
}

impl RedisCluster {
    fn start() -> RedisCluster {
        provision();
        let dir = TestDir::new("redis-cluster.");
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let nodes = ports
            .iter()
            .map(|port| {
                let node = Running::spawn(
                    Command::new("redis-server")
                        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                        .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
                        .arg("--cluster-config-file")
                        .arg(dir.join(&format!("nodes-{port}.conf")))
                        .arg("--dir")
                        .arg(&dir.path)
                        .stdout(Stdio::null()),
                );
                assert!(wait_port(*port, Duration::from_secs(5)), "redis did not start");
                node
            })
            .collect();
        let addresses: Vec<String> = ports.iter().map(|port| format!("127.0.0.1:{port}")).collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap();
        assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stdout));
        let ready = eventually(Duration::from_secs(15), || {
            let info =
                Command::new("redis-cli").args(["-p", &ports[0].to_string(), "CLUSTER", "INFO"]).output().ok()?;
            String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok").then_some(())
        });
        assert!(ready.is_some(), "the cluster did not form");
        RedisCluster { ports, _nodes: nodes, _dir: dir }
    }
}

#[test]
fn a_redis_cluster_holds_the_ledger_across_its_slots() {
    let cluster = RedisCluster::start();
    let sink = Sink::start();
    let (inbound, outbound) = (free_port(), free_port());
    let config = format!(
        "state_dir = \"state\"\n{BATV_SECTION}[ledger]\nstore = \"redis\"\n\
         redis_url = \"redis+cluster://127.0.0.1:{},127.0.0.1:{}\"\n{}{}",
        cluster.ports[0],
        cluster.ports[1],
        listener("inbound", inbound, sink.port, "none", ""),
        listener("outbound", outbound, sink.port, "none", "")
    );
    let dir = TestDir::new("redis-cluster-proxy.");
    write_keys(&dir.join("keys"), 3, b"integration-test-secret");
    let (code, stdout, stderr) = check_config(&dir, &config, true);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let _proxy = Proxy::start_in(dir, &config, &[inbound, outbound]);
    let ids: Vec<String> = (0..20)
        .map(|n| {
            let id = format!("<{}@example.com>", unique(&format!("cluster{n}")));
            let body = format!("Subject: x\r\nMessage-ID: {id}\r\n\r\nx\r\n");
            assert!(send_mail(outbound, "judy@example.com", &["nobody@remote.test"], &body).end.unwrap().is(250));
            id
        })
        .collect();
    // Spread over the three primaries' slots.
    let per_node: Vec<usize> = cluster
        .ports
        .iter()
        .map(|port| {
            eventually(Duration::from_secs(10), || {
                let output = Command::new("redis-cli").args(["-p", &port.to_string(), "DBSIZE"]).output().ok()?;
                let size: usize = String::from_utf8_lossy(&output.stdout).trim().parse().ok()?;
                (size > 0).then_some(size)
            })
            .unwrap_or(0)
        })
        .collect();
    assert!(per_node.iter().all(|size| *size > 0), "keys on each node: {per_node:?}");
    for id in ids.iter().step_by(4) {
        let accepted = eventually(Duration::from_secs(10), || {
            let t = send_mail(inbound, "", &["judy@example.com"], &bounce_for(id, "judy@example.com"));
            t.end.unwrap().is(250).then_some(())
        });
        assert!(accepted.is_some(), "{id}: a bounce for mail recorded in the cluster was refused");
    }
    let t = send_mail(inbound, "", &["judy@example.com"], &bounce_for("<never@example.com>", "judy@example.com"));
    assert_eq!(t.end.unwrap().code, 550);
}
