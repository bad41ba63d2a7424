//! The container image, built from the repository's unchanged Dockerfile as
//! compose.yaml's `batv-proxy` service builds it (buildah, with base images
//! made from a Debian 12 tree since no registry can be reached), and run as
//! that service runs it: the image's own entry point and user, the shipped
//! dist/container/batv-proxy.toml mounted read-only at the path compose.yaml
//! names, adapted only in its addresses, and a state volume. In front of
//! Postfix configured from dist/container/postfix (the compose file's other
//! service), it signs, verifies, passes bounces of its own mail by the
//! ledger in the volume, refuses backscatter; its HEALTHCHECK command
//! answers; it stops cleanly on the image's STOPSIGNAL. The Postfix image
//! builds, and its configuration passes `postfix check` inside it.
//!
//! Slow and root-only, so ignored by a plain `cargo test`; .ci/run runs
//! it: `cargo test --test system_container -- --ignored`.

mod common;
mod system;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use system::*;

/// compose.yaml as JSON (Debian's python3-yaml reads it).
fn compose() -> serde_json::Value {
    let output = run_ok(
        Command::new("/usr/bin/python3")
            .args(["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"])
            .arg(repository().join("compose.yaml")),
    );
    serde_json::from_str(&output).unwrap()
}

fn strings(value: &serde_json::Value) -> Vec<String> {
    value.as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned)).collect()
}

/// A private Postfix run from dist/container/postfix's main.cf and
/// master.cf, adapted to this machine: its own directories and log, the
/// two ports on free loopback ports, no DNS, `mynetworks` the test's
/// loopback client (127.0.0.3 stays outside). Stopped on drop.
struct ComposePostfix {
    dir: TestDir,
    inbound: u16,
    submission: u16,
}

impl ComposePostfix {
    fn start() -> ComposePostfix {
        provision();
        let dir = TestDir::new("compose-postfix.");
        let root = dir.path.display().to_string();
        for sub in ["etc", "queue", "data", "log", "mail"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        run_ok(Command::new("chown").args(["postfix:postfix", &format!("{root}/data")]));
        run_ok(Command::new("chown").args(["65534:65534", &format!("{root}/mail")]));
        let (inbound, submission) = (free_port(), free_port());
        let shipped =
            |name: &str| std::fs::read_to_string(repository().join("dist/container/postfix").join(name)).unwrap();
        let main = shipped("main.cf")
            .replace("virtual_mailbox_base = /var/mail/vhosts", &format!("virtual_mailbox_base = {root}/mail"))
            .replace("maillog_file = /dev/stdout", &format!("maillog_file = {root}/log/maillog"))
            .replace("mynetworks = 127.0.0.0/8", "mynetworks = 127.0.0.1/32");
        assert!(
            main.contains(&format!("{root}/mail")) && main.contains("127.0.0.1/32"),
            "main.cf changed shape:\n{main}"
        );
        dir.write(
            "etc/main.cf",
            &format!(
                "{main}\nqueue_directory = {root}/queue\ndata_directory = {root}/data\nmail_owner = postfix\n\
                 inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nmaillog_file_prefixes = {root}/log\n\
                 smtpd_peername_lookup = no\nsmtp_dns_support_level = disabled\nsmtp_host_lookup = native\n\
                 defer_transports = smtp\nalias_maps =\nalias_database =\n"
            ),
        );
        let master = shipped("master.cf");
        assert!(master.contains("\n10025 ") && master.contains("\n10587 "), "master.cf changed shape:\n{master}");
        let master = master
            .replace("\n10025 ", &format!("\n127.0.0.1:{inbound} "))
            .replace("\n10587 ", &format!("\n127.0.0.1:{submission} "));
        dir.write("etc/master.cf", &master);
        let etc = format!("{root}/etc");
        run_ok(Command::new("/usr/sbin/postfix").args(["-c", &etc, "check"]));
        run_ok(Command::new("/usr/sbin/postfix").args(["-c", &etc, "start"]));
        let postfix = ComposePostfix { dir, inbound, submission };
        assert!(wait_port(inbound, Duration::from_secs(15)), "postfix did not listen:\n{}", postfix.log());
        postfix
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log/maillog")).unwrap_or_default()
    }

    /// A delivered message for `user@example.com` containing `needle`.
    fn delivered(&self, user: &str, needle: &str) -> Option<String> {
        let new = self.dir.join("mail/example.com").join(user).join("new");
        eventually(Duration::from_secs(15), || {
            let entries = std::fs::read_dir(&new).ok()?;
            entries
                .flatten()
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .find(|m| m.contains(needle))
        })
    }
}

impl Drop for ComposePostfix {
    fn drop(&mut self) {
        let _ = Command::new("/usr/sbin/postfix").arg("-c").arg(self.dir.join("etc")).arg("stop").output();
    }
}

fn accepted(t: &Transaction) -> bool {
    t.end.as_ref().is_some_and(|r| r.is(250))
}

/// A delivery status notification returning the message `original`.
fn dsn(original: &str, to: &str, token: &str) -> String {
    format!(
        "From: MAILER-DAEMON@remote.test\r\nTo: {to}\r\nSubject: Undelivered {token}\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.remote.test\r\n\r\n\
         Final-Recipient: rfc822; nobody@remote.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         --B\r\nContent-Type: message/rfc822\r\n\r\nFrom: {to}\r\nMessage-ID: {original}\r\n\r\nx\r\n--B--\r\n"
    )
}

#[test]
#[ignore = "system test: minutes, as root; .ci/run runs it with --ignored"]
fn the_image_builds_from_the_dockerfile_and_runs_as_compose_says() {
    let compose = compose();
    let service = &compose["services"]["batv-proxy"];
    let context = service["build"].as_str().expect("services.batv-proxy.build is a context directory");
    let volumes = strings(&service["volumes"]);
    let config_mount = volumes.iter().find(|v| v.contains("/etc/batv-proxy")).expect("a configuration volume");
    let (config_source, config_target) = {
        let parts: Vec<&str> = config_mount.split(':').collect();
        assert_eq!(parts.get(2), Some(&"ro"), "the configuration is mounted read-only: {config_mount}");
        (parts[0], parts[1])
    };
    let state_mount = volumes.iter().find(|v| v.ends_with(":/var/lib/batv-proxy")).expect("a state volume");
    assert!(!state_mount.starts_with('.') && !state_mount.starts_with('/'), "state is a named volume: {state_mount}");
    // A stop drains open transactions for drain_timeout (30 s by default).
    let grace = service["stop_grace_period"].as_str().and_then(|g| g.strip_suffix('s')?.parse::<u32>().ok());
    assert!(grace.is_some_and(|g| g > 30), "compose.yaml: stop_grace_period must exceed the 30 s drain: {grace:?}");
    let ports = strings(&service["ports"]);
    for inside in ["2525", "2587", "9325"] {
        assert!(
            ports.iter().any(|p| p.ends_with(&format!(":{inside}"))),
            "compose publishes no port to {inside}: {ports:?}"
        );
    }

    // Build, as `docker compose build` would, from the unchanged Dockerfile.
    let buildah = Buildah::new();
    let started = Instant::now();
    buildah.base_images();
    eprintln!("system_container: base images ready in {:.0?}", started.elapsed());
    let image = "localhost/batv-proxy-test:latest";
    // Earlier runs' images, which this run's tags replace.
    buildah.ok(&["rmi", "--prune"]);
    let started = Instant::now();
    let mut build = buildah.command();
    build.args(["bud", "--isolation", "chroot", "--format", "docker", "--layers=false"]);
    build.args(Buildah::toolchain_volumes()).args(["-t", image]).arg(repository().join(context));
    run_ok(&mut build);
    let inspected = buildah.inspect(image);
    let size = buildah.ok(&["images", "--format", "{{.Size}}", image]);
    eprintln!("system_container: image built in {:.0?}, {}", started.elapsed(), size.trim());
    let config = &inspected["Docker"]["config"];
    assert_eq!(config["User"], "batv-proxy", "the image must not run as root");
    assert_eq!(config["StopSignal"], "SIGTERM");
    let entrypoint = strings(&config["Entrypoint"]);
    let healthcheck = strings(&config["Healthcheck"]["Test"]);
    assert_eq!(healthcheck.first().map(String::as_str), Some("CMD"), "an exec-form HEALTHCHECK: {healthcheck:?}");
    assert!(config["Volumes"].get("/var/lib/batv-proxy").is_some(), "the state directory is a volume");

    // The shipped configuration, adapted only in its addresses.
    let postfix = ComposePostfix::start();
    let (inbound, submission, metrics) = (free_port(), free_port(), free_port());
    let shipped = std::fs::read_to_string(repository().join(config_source)).unwrap();
    let mut adapted = shipped.clone();
    for (from, to) in [
        ("0.0.0.0:2525", format!("127.0.0.1:{inbound}")),
        ("0.0.0.0:2587", format!("127.0.0.1:{submission}")),
        ("0.0.0.0:9325", format!("127.0.0.1:{metrics}")),
        ("postfix:10025", format!("127.0.0.1:{}", postfix.inbound)),
        ("postfix:10587", format!("127.0.0.1:{}", postfix.submission)),
    ] {
        assert!(adapted.contains(from), "{config_source} has no {from}");
        adapted = adapted.replace(from, &to);
    }
    let dir = TestDir::new("container.");
    let config_file = dir.write("batv-proxy.toml", &adapted);
    // A named volume starts as the image's directory: same owner and mode.
    let container = WorkingContainer::from(&buildah, image);
    // The volume below takes the place of the image's VOLUME, as a named
    // volume does under Docker. buildah 1.28 mounts an anonymous volume of
    // its own there too, in random order with ours, unless the working
    // container forgets the declaration.
    buildah.ok(&["config", "--volume", "/var/lib/batv-proxy-", &container.name]);
    let owner =
        run_ok(&mut container.run(&[], &["stat".into(), "-c".into(), "%u:%g %a".into(), "/var/lib/batv-proxy".into()]));
    let (ids, mode) = owner.trim().split_once(' ').unwrap();
    let state = dir.join("batv-state");
    std::fs::create_dir(&state).unwrap();
    run_ok(Command::new("chown").arg(ids).arg(&state));
    run_ok(Command::new("chmod").arg(mode).arg(&state));
    let mounts = vec![
        format!("{}:{config_target}:ro", config_file.display()),
        format!("{}:/var/lib/batv-proxy", state.display()),
    ];

    // The image's own entry point, as its own user.
    let log = std::fs::File::create(dir.join("container.log")).unwrap();
    let mut running =
        ContainerProcess::spawn(container.run(&mounts, &entrypoint).stdout(log.try_clone().unwrap()).stderr(log));
    let container_log = || std::fs::read_to_string(dir.join("container.log")).unwrap_or_default();
    for port in [inbound, submission, metrics] {
        assert!(
            wait_port(port, Duration::from_secs(20)),
            "the container does not listen on {port}:\n{}",
            container_log()
        );
    }
    let proxy = running.find("/usr/local/bin/batv-proxy").expect("no batv-proxy process in the container");
    let status = std::fs::read_to_string(format!("/proc/{proxy}/status")).unwrap();
    let uid =
        status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap().split_whitespace().next().unwrap().to_owned();
    assert_eq!(uid, "10025", "the proxy runs as root");
    let mounted = std::fs::read_to_string(format!("/proc/{proxy}/mountinfo")).unwrap();
    assert!(
        mounted.lines().any(|l| l.contains(&format!(" {} /var/lib/batv-proxy ", state.display()))),
        "the state volume is not mounted on /var/lib/batv-proxy:\n{mounted}"
    );
    let health = container.run(&mounts, &healthcheck[1..]).output().unwrap();
    assert!(
        health.status.success(),
        "HEALTHCHECK: {}{}",
        String::from_utf8_lossy(&health.stdout),
        String::from_utf8_lossy(&health.stderr)
    );
    assert!(String::from_utf8_lossy(&health.stdout).contains("ok"), "{}", String::from_utf8_lossy(&health.stdout));

    // Submission from the users' network: signed, and relayed by Postfix.
    let outbound_id = format!("<{}@laptop.example.com>", unique("container"));
    let body = format!("From: alice@example.com\r\nSubject: out\r\nMessage-ID: {outbound_id}\r\n\r\nhello\r\n");
    let t = send_mail(submission, "alice@example.com", &["alice@example.com", "carol@remote.test"], &body);
    assert!(accepted(&t), "submission from mynetworks: {:?} {:?}\n{}", t.rcpts, t.end, postfix.log());
    let delivered =
        postfix.delivered("alice", &outbound_id).unwrap_or_else(|| panic!("not delivered:\n{}", postfix.log()));
    assert!(delivered.contains("Return-Path: <prvs="), "the sender was not signed:\n{delivered}");
    // A client outside mynetworks may not submit: Postfix sees it through the PROXY header.
    let t = send_mail_from(submission, Some("127.0.0.3"), "alice@example.com", &["carol@remote.test"], "x");
    assert!(t.rcpts[0].code >= 500, "submission from outside mynetworks: {:?}", t.rcpts[0]);

    // Inbound: a bounce to a tagged address passes, untagged; a forged tag
    // and backscatter are refused; a bounce of our own message passes by
    // the ledger in the volume.
    let (code, out, err) = {
        let output = container
            .run(
                &mounts,
                &[
                    "/usr/local/bin/batv-proxy".into(),
                    "sign".into(),
                    "--config".into(),
                    config_target.into(),
                    "alice@example.com".into(),
                ],
            )
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    assert_eq!(code, Some(0), "sign in the container: {err}");
    let token = unique("tagged");
    assert!(accepted(&send_mail(inbound, "", &[&out], &format!("Subject: {token}\r\n\r\nx\r\n"))));
    let bounce = postfix
        .delivered("alice", &token)
        .unwrap_or_else(|| panic!("the tagged bounce was not delivered:\n{}", postfix.log()));
    assert!(!bounce.contains("prvs="), "the tag reached the mailbox:\n{bounce}");
    let digit = if &out[9..10] == "0" { "1" } else { "0" };
    let forged = format!("{}{digit}{}", &out[..9], &out[10..]);
    assert_eq!(send_mail(inbound, "", &[&forged], "x").rcpts[0].code, 550, "a forged tag");
    let token = unique("ledger");
    let by_ledger = eventually(Duration::from_secs(10), || {
        accepted(&send_mail(inbound, "", &["alice@example.com"], &dsn(&outbound_id, "alice@example.com", &token)))
            .then_some(())
    });
    assert!(by_ledger.is_some(), "a bounce of our own message was refused:\n{}", container_log());
    let t = send_mail(inbound, "", &["alice@example.com"], &dsn("<spam@elsewhere.test>", "alice@example.com", "spam"));
    assert!(t.end.as_ref().is_some_and(|r| r.is(550)), "backscatter passed: {:?}", t.end);
    // Port 25 does not relay, and Postfix still judges recipients.
    let t = send_mail_from(
        inbound,
        Some("127.0.0.3"),
        "spammer@remote.test",
        &["victim@remote.test", "nobody@example.com"],
        "x",
    );
    assert!(t.rcpts.iter().all(|r| r.code >= 500), "inbound relay or unknown user accepted: {:?}", t.rcpts);

    // The TLS roots an upstream_tls listener falls back to are in the image.
    let tls_config = dir.write(
        "tls.toml",
        &adapted.replace(
            "client_identity = \"proxy-v2\"\n",
            "client_identity = \"proxy-v2\"\nupstream_tls = \"starttls\"\n",
        ),
    );
    let check = container
        .run(
            &[format!("{}:/tmp/tls.toml:ro", tls_config.display()), mounts[1].clone()],
            &["/usr/local/bin/batv-proxy".into(), "check-config".into(), "--config".into(), "/tmp/tls.toml".into()],
        )
        .output()
        .unwrap();
    assert!(check.status.success(), "upstream TLS with the system roots: {}", String::from_utf8_lossy(&check.stderr));

    // docker stop: the STOPSIGNAL to the proxy, a clean exit, and the health check fails after.
    run_ok(Command::new("kill").args(["-s", "TERM", &proxy.to_string()]));
    let exit = running.process.wait_exit(Duration::from_secs(40)).expect("the container does not stop");
    assert!(exit.success(), "stop: {exit}\n{}", container_log());
    let health = container.run(&mounts, &healthcheck[1..]).output().unwrap();
    assert_eq!(health.status.code(), Some(1), "HEALTHCHECK of a stopped proxy");
    let keys = std::fs::metadata(state.join("keys")).expect("the entry point made no key file in the volume");
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!((keys.uid(), keys.permissions().mode() & 0o777), (10025, 0o600));
    assert!(state.join("ledger.redb").is_file(), "no ledger in the state volume");
    drop(container);

    // The compose file's Postfix image builds, and its configuration is valid there.
    let postfix_service = &compose["services"]["postfix"];
    let postfix_context = postfix_service["build"].as_str().expect("services.postfix.build");
    let postfix_image = "localhost/batv-proxy-test-postfix:latest";
    let started = Instant::now();
    run_ok(
        buildah
            .command()
            .args(["bud", "--isolation", "chroot", "--format", "docker", "--layers=false", "-t", postfix_image])
            .arg(repository().join(postfix_context)),
    );
    eprintln!("system_container: Postfix image built in {:.0?}", started.elapsed());
    let postfix_container = WorkingContainer::from(&buildah, postfix_image);
    let checked = run_ok(&mut postfix_container.run(
        &[],
        &[
            "sh".into(),
            "-c".into(),
            "postfix check && postconf -h smtpd_upstream_proxy_protocol && stat -c '%u' /var/mail/vhosts".into(),
        ],
    ));
    assert_eq!(checked.split_whitespace().collect::<Vec<_>>(), ["haproxy", "65534"], "{checked}");
}
