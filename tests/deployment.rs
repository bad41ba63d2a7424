//! The shipped deployment files: the systemd unit passes systemd's own
//! checks and its commands work as written; the container's commands are
//! the ones CI runs.

mod common;

use std::process::Command;
use std::time::Duration;

use common::fake_upstream::{FakeUpstream, Fault};
use common::*;

fn repository_file(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The unit with the binary path pointing at the binary under test.
fn unit_copy(dir: &TestDir) -> std::path::PathBuf {
    dir.write(
        "batv-proxy.service",
        &repository_file("dist/batv-proxy.service").replace("/usr/local/bin/batv-proxy", BIN),
    )
}

#[test]
fn the_unit_passes_systemd_analyze_verify_and_security() {
    let dir = TestDir::new("unit.");
    let unit = unit_copy(&dir);
    let verify =
        Command::new("systemd-analyze").arg("verify").arg(&unit).output().expect("systemd-analyze (package systemd)");
    let messages = String::from_utf8_lossy(&verify.stderr).into_owned() + &String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "systemd-analyze verify: {messages}");
    let security = Command::new("systemd-analyze").args(["security", "--offline=true"]).arg(&unit).output().unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    let score: f64 = report
        .lines()
        .find_map(|line| line.split("Overall exposure level for batv-proxy.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|score| score.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{report}"));
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{report}");
    let text = repository_file("dist/batv-proxy.service");
    for line in [
        "Type=notify",
        "RestartPreventExitStatus=2",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "User=batv-proxy",
    ] {
        assert!(text.lines().any(|l| l.trim() == line), "the unit lacks {line}");
    }
}

/// `Key=value` lines of the unit, in order.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines().filter_map(|line| line.strip_prefix(&format!("{key}="))).map(str::to_owned).collect()
}

#[test]
fn the_units_commands_start_reload_and_stop_the_proxy_as_written() {
    let fake = FakeUpstream::start(Fault::None);
    let dir = TestDir::new("unit-run.");
    let (etc, state) = (dir.join("etc"), dir.join("state"));
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    let port = free_port();
    std::fs::write(
        etc.join("batv-proxy.toml"),
        format!(
            "state_dir = \"{}\"\n[batv]\nkey_file = \"{}/keys\"\ndomains = [\"example.com\"]\n{}",
            state.display(),
            state.display(),
            listener("outbound", port, fake.port, "none", "")
        ),
    )
    .unwrap();
    let unit = repository_file("dist/batv-proxy.service")
        .replace("/usr/local/bin/batv-proxy", BIN)
        .replace("/etc/batv-proxy", &etc.display().to_string())
        .replace("/var/lib/batv-proxy", &state.display().to_string());
    let shell = |command: &str| Command::new("sh").arg("-c").arg(command).status().unwrap();
    for pre in unit_values(&unit, "ExecStartPre") {
        assert!(shell(&pre).success(), "{pre}");
    }
    assert!(state.join("keys").exists(), "ExecStartPre made no key");
    let start = unit_values(&unit, "ExecStart").remove(0);
    let mut child =
        Running::spawn(Command::new("sh").arg("-c").arg(format!("exec {start}")).stderr(std::process::Stdio::null()));
    assert!(wait_port(port, Duration::from_secs(10)));
    let t = send_mail(port, "alice@example.com", &["carol@remote.test"], "Subject: unit\r\n\r\nx\r\n");
    assert!(t.end.unwrap().is(250));
    let reload = unit_values(&unit, "ExecReload").remove(0).replace("$MAINPID", &child.id().to_string());
    assert!(shell(&reload).success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().is_none(), "reload killed the proxy");
    assert!(send_mail(port, "alice@example.com", &["carol@remote.test"], "x").end.unwrap().is(250));
    child.signal("TERM");
    assert!(child.wait().success(), "SIGTERM (systemd's stop) must exit 0");
}

#[test]
fn the_container_builds_with_the_ci_command_and_runs_unprivileged_with_a_health_check() {
    let dockerfile = repository_file("Dockerfile");
    assert!(dockerfile.contains("cargo build --release --locked"), "the build stage must run CI's build command");
    let ci = repository_file(".ci/run");
    assert!(ci.contains("cargo build --locked"), ".ci/run builds with --locked");
    assert!(dockerfile.lines().any(|l| l.starts_with("USER batv-proxy")), "the runtime stage must not run as root");
    assert!(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("\"health\""));
    assert!(repository_file("compose.yaml").contains("postfix"));

    // The image's entry point, run here with its own configuration file,
    // pointed at a local upstream instead of the compose service name.
    let fake = FakeUpstream::start(Fault::None);
    let dir = TestDir::new("container.");
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let (inbound, outbound, metrics) = (free_port(), free_port(), free_port());
    let config = repository_file("dist/container/batv-proxy.toml")
        .replace("/var/lib/batv-proxy", &state.display().to_string())
        .replace("postfix:10025", &format!("127.0.0.1:{}", fake.port))
        .replace("postfix:10587", &format!("127.0.0.1:{}", fake.port))
        .replace("\"proxy-v2\"", "\"none\"")
        .replace("0.0.0.0:2525", &format!("127.0.0.1:{inbound}"))
        .replace("0.0.0.0:2587", &format!("127.0.0.1:{outbound}"))
        .replace("0.0.0.0:9325", &format!("127.0.0.1:{metrics}"));
    let config_path = dir.write("batv-proxy.toml", &config);
    let entrypoint = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .and_then(|json| serde_json::from_str::<Vec<String>>(json).ok())
        .expect("an exec-form ENTRYPOINT");
    let command = entrypoint[2]
        .replace("/usr/local/bin/batv-proxy", BIN)
        .replace("/var/lib/batv-proxy", &state.display().to_string())
        .replace("/etc/batv-proxy/batv-proxy.toml", &config_path.display().to_string());
    let mut child = Running::spawn(Command::new("sh").arg("-c").arg(&command).stderr(std::process::Stdio::null()));
    assert!(wait_port(inbound, Duration::from_secs(10)) && wait_port(metrics, Duration::from_secs(10)));
    let health = Command::new(BIN).args(["health", "--config"]).arg(&config_path).output().unwrap();
    assert!(health.status.success(), "health: {}", String::from_utf8_lossy(&health.stderr));
    child.signal("TERM");
    assert!(child.wait().success());
    let health = Command::new(BIN).args(["health", "--config"]).arg(&config_path).output().unwrap();
    assert_eq!(health.status.code(), Some(1), "health must fail when the proxy is down");
}
