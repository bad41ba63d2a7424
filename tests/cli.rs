//! The command line as admins and scripts use it: outputs and exit codes.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::*;

fn run(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(BIN).args(args).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn config_dir() -> (TestDir, String) {
    let dir = TestDir::new("cli.");
    write_keys(&dir.join("keys"), 3, b"cli-test-secret");
    let config = dir.write("cfg.toml", &format!("{BATV_SECTION}{}", listener("inbound", 2525, 10025, "none", "")));
    (dir, config.display().to_string())
}

#[test]
fn verify_prints_each_reason_and_exits_1() {
    let (_dir, config) = config_dir();
    let (code, tagged, _) = run(&["sign", "--config", &config, "--date", "2026-11-24", "alice@example.com"]);
    assert_eq!(code, 0);
    let tagged = tagged.trim();
    let (code, original, _) = run(&["verify", "--config", &config, "--date", "2026-11-25", tagged]);
    assert_eq!((code, original.trim()), (0, "alice@example.com"));
    let forged =
        format!("{}{}{}", &tagged[..9], if &tagged[9..15] == "000000" { "111111" } else { "000000" }, &tagged[15..]);
    for (address, date, reason) in [
        ("alice@example.com", "2026-11-25", "missing"),
        ("prvs=3xyz=alice@example.com", "2026-11-25", "malformed"),
        (&tagged.replacen("prvs=3", "prvs=8", 1), "2026-11-25", "unknown_key"),
        (tagged, "2026-12-15", "expired"),
        (tagged, "2026-11-01", "future_dated"),
        (&forged, "2026-11-25", "bad_signature"),
    ] {
        let (code, out, err) = run(&["verify", "--config", &config, "--date", date, address]);
        assert_eq!(code, 1, "{address}");
        assert!(out.is_empty(), "{address}: stdout {out}");
        assert!(err.contains(reason), "{address}: expected {reason}, got {err}");
    }
}

#[test]
fn check_config_exit_codes_and_messages() {
    let (dir, config) = config_dir();
    let (code, out, _) = run(&["check-config", "--config", &config]);
    assert_eq!(code, 0);
    assert!(out.contains("ok"));
    std::fs::set_permissions(dir.join("keys"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = run(&["check-config", "--config", &config]);
    assert_eq!(code, 2);
    assert!(err.contains("chmod 600") && err.contains("keys"), "{err}");
    let (code, _, err) = run(&["check-config", "--config", "/nonexistent/batv.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/batv.toml"), "{err}");
    // `run` refuses a bad configuration with the same status.
    let (code, _, _) = run(&["run", "--config", "/nonexistent/batv.toml"]);
    assert_eq!(code, 2);
}

/// The problems only the build step finds (a ledger file that cannot be
/// made) stop `run` with the same status as `check-config`, so systemd does
/// not restart into the same failure.
#[test]
fn a_broken_ledger_is_a_configuration_error_at_check_and_at_start() {
    let (dir, _) = config_dir();
    std::fs::write(dir.join("a-file"), "").unwrap();
    let config = dir.write(
        "ledger.toml",
        &format!(
            "state_dir = \".\"\n{BATV_SECTION}[ledger]\nstore = \"file\"\npath = \"a-file/ledger.redb\"\n{}",
            listener("inbound", free_port(), free_port(), "none", "")
        ),
    );
    let config = config.display().to_string();
    for command in ["check-config", "run"] {
        let (code, _, err) = run(&[command, "--config", &config]);
        assert_eq!(code, 2, "{command}: {err}");
        assert!(err.contains("ledger.path") && err.contains("a-file is not a directory"), "{command}: {err}");
    }
}

#[test]
fn toml_syntax_errors_show_the_line_and_column() {
    let dir = TestDir::new("cli.");
    let config = dir.write("cfg.toml", "[batv]\ndomains = [\"example.com\"\n").display().to_string();
    let (code, _, err) = run(&["check-config", "--config", &config]);
    assert_eq!(code, 2);
    assert!(err.starts_with(&format!("{config}: not valid TOML")), "{err}");
    assert!(err.lines().any(|line| line.trim_end().ends_with('^') && line.starts_with("    ")), "{err}");
}

/// The usual slip on a first install: root made the key file, and the
/// service user cannot read it. The fix names the owner to give it.
#[test]
fn a_key_file_the_service_user_cannot_read_says_whom_to_give_it() {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self").is_ok_and(|process| process.uid() == 0);
    if !root || !std::path::Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipped: acting as another user needs root and setpriv");
        return;
    }
    let (_dir, config) = config_dir();
    let output = Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN, "check-config", "--config", &config])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(said.contains("Permission denied") && said.contains("chown batv-proxy"), "{said}");
}

#[test]
fn keygen_creates_rotates_and_respects_if_missing() {
    let dir = TestDir::new("cli.");
    let keys = dir.join("keys").display().to_string();
    assert_eq!(run(&["keygen", "--output", &keys]).0, 0);
    let first = std::fs::read_to_string(&keys).unwrap();
    assert_eq!(std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(run(&["keygen", "--output", &keys, "--if-missing"]).0, 0);
    assert_eq!(std::fs::read_to_string(&keys).unwrap(), first, "--if-missing changed the file");
    let (code, _, said) = run(&["keygen", "--output", &keys, "--key-id", "7"]);
    assert_eq!(code, 0);
    assert!(said.contains("systemctl reload batv-proxy") && !said.contains("from now on"), "{said}");
    let rotated = std::fs::read_to_string(&keys).unwrap();
    let numbers: Vec<&str> = rotated.lines().filter(|l| !l.starts_with('#')).map(|l| &l[..1]).collect();
    assert_eq!(numbers, ["7", "0"]);
    let (code, _, err) = run(&["keygen", "--output", &keys, "--key-id", "7"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(run(&["keygen", "--output", &keys, "--key-id", "12"]).0, 2, "clap refuses out-of-range ids");
}

#[test]
fn help_is_written_for_admins() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for needle in ["run", "check-config", "sign", "verify", "keygen", "Examples:", "Exit status"] {
        assert!(out.contains(needle), "--help lacks {needle}");
    }
}

/// The README's run command, on a copy of the shipped config/ whose
/// addresses are moved to free ports (a mail host often has something on
/// 10025 already, and a parallel test may hold 2525): it must start.
#[test]
fn the_shipped_config_runs() {
    let dir = TestDir::new("quickstart.");
    let shipped =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/batv-proxy.toml"))
            .unwrap();
    let readme = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(readme.contains("run --config config/batv-proxy.toml"), "README lost its run command");
    let (inbound, outbound) = (free_port(), free_port());
    // Upstream ports nothing listens on: taken from the same pool, never bound.
    let (inbound_mta, outbound_mta) = (free_port(), free_port());
    let mut moved = shipped.clone();
    for (from, to) in [
        ("127.0.0.1:2525", inbound),
        ("127.0.0.1:2587", outbound),
        ("127.0.0.1:10025", inbound_mta),
        ("127.0.0.1:10587", outbound_mta),
    ] {
        assert!(
            moved.contains(&format!("\"{from}\"")),
            "the shipped config no longer uses {from}; README says it does"
        );
        moved = moved.replace(&format!("\"{from}\""), &format!("\"127.0.0.1:{to}\""));
    }
    let config = dir.write("batv-proxy.toml", &moved).display().to_string();
    let keys = dir.join("keys").display().to_string();
    assert_eq!(run(&["keygen", "--output", &keys, "--if-missing"]).0, 0);
    let (code, out, err) = run(&["check-config", "--config", &config]);
    assert_eq!(code, 0, "{out}{err}");
    let mut proxy = Running::spawn(Command::new(BIN).args(["run", "--config", &config]));
    assert!(wait_port(inbound, Duration::from_secs(10)) && wait_port(outbound, Duration::from_secs(10)));
    // No MTA behind it: clients are told to come back later.
    let smtp = Smtp::connect(inbound);
    assert_eq!(smtp.greeting.code, 421);
    proxy.signal("TERM");
    let status = proxy.wait_exit(Duration::from_secs(10)).expect("the proxy did not stop on SIGTERM");
    assert!(status.success(), "SIGTERM must end the proxy with status 0");
}

/// `sign` and `inspect` exit 1 when there is nothing to sign or read, as
/// the README says.
#[test]
fn sign_and_inspect_exit_1_on_what_they_cannot_take() {
    let (dir, config) = config_dir();
    let (code, _, err) = run(&["sign", "--config", &config, "<>"]);
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = run(&["inspect", &dir.join("no-such.eml").display().to_string()]);
    assert_eq!(code, 1, "{err}");
    let readme = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let row =
        |command: &str| readme.lines().find(|l| l.starts_with(&format!("| `batv-proxy {command}"))).unwrap().to_owned();
    assert!(row("sign").contains("1 not an address"), "{}", row("sign"));
    assert!(row("inspect").contains("1 when the file cannot be read"), "{}", row("inspect"));
}

/// `--help` puts the key file where the unit and the install guide do.
#[test]
fn help_names_the_key_file_the_unit_makes() {
    let (_, out, _) = run(&["--help"]);
    let unit =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/batv-proxy.service"))
            .unwrap();
    let made = unit.lines().find_map(|l| l.strip_prefix("ExecStartPre=")).unwrap();
    let path = made.split_whitespace().skip_while(|w| *w != "--output").nth(1).unwrap();
    assert!(out.contains(&format!("--output {path}")), "--help does not use {path}:\n{out}");
    assert!(!out.contains("/etc/batv-proxy/keys"), "{out}");
}
