//! The Debian package, installed as docs/operations.md ("With the Debian
//! package") says, command by command from the guide, into a Debian 12
//! system booted under systemd: what `apt install` puts where, the user and
//! state directory it makes, that it starts nothing by itself, manual pages
//! and completions, the unit started once a configuration is written,
//! relaying and judging mail, a changed configuration kept across a
//! reinstall, `apt remove` keeping the keys, and `apt purge` removing them.
//!
//! Slow and root-only, so ignored by a plain `cargo test`; .ci/run runs
//! it: `cargo test --test system_package -- --ignored`.

mod common;
mod system;

use std::time::Duration;

use common::*;
use system::*;

const UNIT: &str = "batv-proxy.service";
const CONFIG: &str = "/etc/batv-proxy/batv-proxy.toml";

fn accepted(t: &Transaction) -> bool {
    t.end.as_ref().is_some_and(|r| r.is(250))
}

#[test]
#[ignore = "system test: minutes, as root; .ci/run runs it with --ignored"]
fn the_debian_package_installs_starts_upgrades_and_removes_as_documented() {
    let blocks = documented_blocks("docs/operations.md", "With the Debian package");
    assert_eq!(
        blocks.len(),
        3,
        "docs/operations.md, With the Debian package: expected build, install, start: {blocks:?}"
    );
    assert!(blocks[1].iter().any(|l| l.starts_with("apt install ./batv-proxy_")), "{:?}", blocks[1]);
    assert_eq!(blocks[2], ["systemctl enable --now batv-proxy"]);

    // Build the package here, as the guide says.
    let mut package = None;
    for line in &blocks[0] {
        let out = run_ok(&mut admin_shell(line));
        package = out.lines().last().map(|l| repository().join(l.trim()));
    }
    let package = package.filter(|p| p.is_file()).expect("the build printed no package path");
    let name = package.file_name().unwrap().to_string_lossy().into_owned();
    let version = env!("CARGO_PKG_VERSION");
    assert!(name.starts_with(&format!("batv-proxy_{version}")) && name.ends_with("_amd64.deb"), "{name}");
    eprintln!("system_package: {name}, {} bytes", std::fs::metadata(&package).unwrap().len());

    let sink = Sink::start();
    let (port25, submission) = (privileged_port(), free_port());
    let tarball = debian_tree("systemd");
    let container = Booted::boot(&tarball, |root| {
        std::fs::copy(&package, root.join("root").join(&name)).unwrap();
    });

    // apt install, as written.
    for line in &blocks[1] {
        container.ok(line);
    }
    let files = container.ok("dpkg -L batv-proxy");
    for path in [
        "/usr/bin/batv-proxy",
        "/lib/systemd/system/batv-proxy.service",
        CONFIG,
        "/usr/share/doc/batv-proxy/examples/batv-proxy.toml",
        "/usr/share/doc/batv-proxy/examples/prometheus-alerts.yml",
        "/usr/share/doc/batv-proxy/examples/grafana-dashboard.json",
        "/usr/share/doc/batv-proxy/examples/postfix/batv-proxy-front.toml",
        "/usr/share/doc/batv-proxy/operations.md",
        "/usr/share/doc/batv-proxy/copyright",
        "/usr/share/man/man1/batv-proxy.1.gz",
        "/usr/share/bash-completion/completions/batv-proxy",
        "/usr/share/zsh/vendor-completions/_batv-proxy",
        "/usr/share/fish/vendor_completions.d/batv-proxy.fish",
    ] {
        assert!(files.lines().any(|l| l == path), "the package lacks {path}:\n{files}");
    }
    assert!(container.ok("dpkg-query -W -f='${Conffiles}' batv-proxy").contains(CONFIG), "{CONFIG} is no conffile");
    assert_eq!(
        container.ok("cat /etc/passwd | grep '^batv-proxy:' | cut -d: -f6,7").trim(),
        "/var/lib/batv-proxy:/usr/sbin/nologin"
    );
    assert_eq!(container.ok("stat -c '%a %U %G' /var/lib/batv-proxy").trim(), "700 batv-proxy batv-proxy");
    assert_eq!(container.sh("systemctl is-active batv-proxy").stdout, b"inactive\n", "the package started the service");
    assert_eq!(container.sh("systemctl is-enabled batv-proxy").stdout, b"disabled\n");
    assert_eq!(container.ok("command -v batv-proxy").trim(), "/usr/bin/batv-proxy");
    assert!(container.ok("batv-proxy --version").contains(version));

    // Manual pages: one per command, and the unit's Documentation= exists.
    let page = container.ok("man -P cat batv-proxy 2>/dev/null");
    assert!(page.contains("batv-proxy - SMTP proxy that stops backscatter"), "man batv-proxy:\n{page}");
    assert!(page.contains("batv-proxy-run(1)"), "the page does not list the commands:\n{page}");
    for command in ["run", "check-config", "sign", "verify", "keygen", "inspect", "health", "completions"] {
        let page = container.ok(&format!("man -P cat batv-proxy-{command} 2>/dev/null"));
        assert!(page.contains(&format!("batv-proxy-{command}")), "man batv-proxy-{command}:\n{page}");
    }
    for target in container.property(UNIT, "Documentation").split_whitespace() {
        let target = target.trim_matches('"');
        if let Some(page) = target.strip_prefix("man:") {
            container.ok(&format!("man -w '{}'", page.replace("(1)", "")));
        } else {
            let path = target.strip_prefix("file:").unwrap_or_else(|| panic!("{target}: a man: or file: link"));
            container.ok(&format!("test -s {path}"));
        }
    }
    // systemd's own checks of the installed unit: its binary and manual page exist.
    container.ok("systemd-analyze verify /lib/systemd/system/batv-proxy.service");
    // Completions that the shells can load.
    let complete =
        container.ok("bash -c '. /usr/share/bash-completion/completions/batv-proxy && complete -p batv-proxy'");
    assert!(complete.contains("batv-proxy"), "{complete}");
    assert!(container.ok("head -1 /usr/share/zsh/vendor-completions/_batv-proxy").starts_with("#compdef batv-proxy"));
    assert!(
        container.ok("cat /usr/share/fish/vendor_completions.d/batv-proxy.fish").contains("complete -c batv-proxy")
    );

    // The configuration, then the start, as written.
    let config = format!(
        "state_dir = \"/var/lib/batv-proxy\"\n\
         [batv]\nkey_file = \"/var/lib/batv-proxy/keys\"\ndomains = [\"example.com\"]\n\
         [ledger]\nstore = \"file\"\n\
         [[listener]]\nrole = \"inbound\"\nlisten = \"127.0.0.1:{port25}\"\nupstream = \"127.0.0.1:{}\"\nclient_identity = \"none\"\n\
         [[listener]]\nrole = \"outbound\"\nlisten = \"127.0.0.1:{submission}\"\nupstream = \"127.0.0.1:{}\"\nclient_identity = \"none\"\n",
        sink.port, sink.port
    );
    container.write(CONFIG, &config);
    for line in &blocks[2] {
        container.ok(line);
    }
    assert_eq!(container.property(UNIT, "ActiveState"), "active");
    assert_eq!(container.ok("stat -c '%a %U' /var/lib/batv-proxy/keys").trim(), "600 batv-proxy");
    let tagged = container.ok(&format!("batv-proxy sign --config {CONFIG} bob@example.com")).trim().to_owned();
    let token = unique("package");
    assert!(accepted(&send_mail(port25, "", &[&tagged], &format!("Subject: {token}\r\n\r\nx\r\n"))));
    assert!(sink.find(&token).is_some_and(|t| !t.contains("prvs=")), "the tagged bounce was not relayed, untagged");
    assert!(send_mail(port25, "", &["bob@example.com"], "Subject: spam\r\n\r\nx\r\n").end.is_some_and(|r| r.is(550)));
    let t = send_mail(submission, "alice@example.com", &["carol@remote.test"], "Subject: out\r\n\r\nx\r\n");
    assert!(accepted(&t));
    // The reference configuration works once there is a key file.
    container.ok("batv-proxy check-config --config /usr/share/doc/batv-proxy/examples/batv-proxy.toml");

    // A reinstall keeps the changed configuration and restarts the service.
    let keys = container.ok("cat /var/lib/batv-proxy/keys");
    let pid = container.property(UNIT, "MainPID");
    container.ok(&format!("apt-get install -y --reinstall ./{name}"));
    assert_eq!(container.ok(&format!("cat {CONFIG}")), config, "the reinstall replaced the changed configuration");
    container.wait_property(UNIT, "ActiveState", "active", Duration::from_secs(10));
    assert_ne!(container.property(UNIT, "MainPID"), pid, "a running service is restarted on upgrade");
    assert!(wait_port(port25, Duration::from_secs(10)));

    // apt remove: service stopped and disabled, program gone, keys and
    // configuration left.
    container.ok("apt-get remove -y batv-proxy");
    assert_ne!(container.property(UNIT, "ActiveState"), "active");
    assert!(!container.sh("test -e /usr/bin/batv-proxy").status.success(), "the binary stayed");
    assert!(
        container.ok("ls /etc/systemd/system/multi-user.target.wants/").lines().all(|l| l != UNIT),
        "still enabled"
    );
    assert!(
        eventually(Duration::from_secs(5), || std::net::TcpStream::connect(("127.0.0.1", port25))
            .is_err()
            .then_some(()))
        .is_some()
    );
    assert_eq!(container.ok("cat /var/lib/batv-proxy/keys"), keys, "apt remove must keep the keys");
    assert_eq!(container.ok(&format!("cat {CONFIG}")), config, "apt remove must keep the configuration");

    // apt purge: keys, ledger and configuration go; the user stays.
    container.ok("apt-get purge -y batv-proxy");
    assert!(!container.sh("test -e /var/lib/batv-proxy").status.success(), "purge left /var/lib/batv-proxy");
    assert!(!container.sh("test -e /etc/batv-proxy").status.success(), "purge left /etc/batv-proxy");
    container.ok("id batv-proxy");
    drop(container);
}
