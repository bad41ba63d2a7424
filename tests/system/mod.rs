//! Shared parts of the system tests (tests/system_*.rs): a Debian 12 tree
//! booted with systemd as PID 1 under systemd-nspawn, the documented
//! commands read from docs/operations.md, and the release build.
//!
//! These tests need root, debootstrap, systemd-nspawn (package
//! systemd-container) and, for the image, buildah: all in .ci/packages.
//! They are not run by a plain `cargo test` (`test = false` in Cargo.toml:
//! they take minutes); `.ci/run` runs them by name.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

pub fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a command and fails the test with its output unless it succeeds.
pub fn run_ok(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The cached tarball of a Debian 12 tree (`slim` or `systemd`), built by
/// tests/tools/debian-tree.sh when missing.
pub fn debian_tree(kind: &str) -> PathBuf {
    provision();
    let script = repository().join("tests/tools/debian-tree.sh");
    PathBuf::from(run_ok(Command::new(script).arg(kind)).trim())
}

/// The fenced code blocks of a `### heading` (or `## heading`) section of
/// a guide, in order, each as its command lines.
pub fn documented_blocks(guide: &str, heading: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(repository().join(guide)).unwrap();
    let start = text
        .lines()
        .position(|l| l.trim_start_matches('#').trim() == heading && l.starts_with('#'))
        .unwrap_or_else(|| panic!("{guide} has no section {heading}"));
    let level = text.lines().nth(start).unwrap().chars().take_while(|c| *c == '#').count();
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in text.lines().skip(start + 1) {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if current.is_none() && hashes > 0 && hashes <= level && line[hashes..].starts_with(' ') {
            break;
        }
        if line.trim_start().starts_with("```") {
            match current.take() {
                Some(block) => blocks.push(block),
                None => current = Some(Vec::new()),
            }
        } else if let Some(block) = current.as_mut()
            && !line.trim().is_empty()
        {
            block.push(line.trim().to_owned());
        }
    }
    blocks
}

/// `cargo build --release --locked` as the guide says, in the repository:
/// the binary the system tests install.
pub fn release_binary(command: &str) -> PathBuf {
    assert!(command.starts_with("cargo build --release"), "not a release build: {command}");
    run_ok(Command::new("sh").arg("-c").arg(command).current_dir(repository()));
    let binary = repository().join("target/release/batv-proxy");
    assert!(binary.is_file(), "{command} made no {}", binary.display());
    binary
}

/// A privileged port nothing listens on: 25 when free, else 587, 465 or
/// another one below 1024. The container shares the host's network.
pub fn privileged_port() -> u16 {
    let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    [25, 587, 465, 24, 26].into_iter().chain(900..1000).find(|port| free(*port)).expect("no free port below 1024")
}

/// A Debian 12 system booted under systemd-nspawn from a fresh copy of a
/// cached tree, sharing the host's network. Dropping it powers it off; if
/// that does not end it within 30 s, its processes are killed.
pub struct Booted {
    // Fields drop in this order: the container ends before its tree goes.
    nspawn: Running,
    dir: TestDir,
    pub root: PathBuf,
    leader: u32,
}

impl Booted {
    /// Unpacks `tarball`, lets `prepare` add files to the tree, and boots it.
    pub fn boot(tarball: &Path, prepare: impl FnOnce(&Path)) -> Booted {
        let dir = TestDir::new("nspawn.");
        let root = dir.join("root");
        std::fs::create_dir(&root).unwrap();
        run_ok(Command::new("tar").arg("-C").arg(&root).args(["--numeric-owner", "-xf"]).arg(tarball));
        prepare(&root);
        let console = std::fs::File::create(dir.join("console.log")).unwrap();
        let nspawn = Running::spawn(
            Command::new("systemd-nspawn")
                .arg("-D")
                .arg(&root)
                .args(["-b", "--keep-unit", "--register=no", "--console=passive", "--quiet"])
                .stdin(Stdio::null())
                .stdout(console.try_clone().unwrap())
                .stderr(console),
        );
        let mut booted = Booted { nspawn, dir, root, leader: 0 };
        booted.leader = eventually(Duration::from_secs(20), || {
            let children =
                Command::new("pgrep").args(["-P", &booted.nspawn.id().to_string(), "-x", "systemd"]).output();
            String::from_utf8_lossy(&children.ok()?.stdout).trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("the container's systemd did not start:\n{}", booted.console()));
        let state = eventually(Duration::from_secs(60), || {
            let output = booted.sh("systemctl is-system-running --wait");
            let state = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            ["running", "degraded"].contains(&state.as_str()).then_some(state)
        });
        assert!(state.is_some(), "the container did not finish booting:\n{}", booted.console());
        if state.as_deref() == Some("degraded") {
            panic!("units failed at boot:\n{}", booted.ok("systemctl --failed --no-pager"));
        }
        booted
    }

    pub fn console(&self) -> String {
        std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default()
    }

    /// A shell script to run inside the container, as root, in `/root`.
    pub fn command(&self, script: &str) -> Command {
        let mut command = Command::new("nsenter");
        command
            .args(["-t", &self.leader.to_string(), "-a", "env", "-i"])
            .args(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"])
            .args(["sh", "-c", &format!("cd /root && {script}")])
            .stdin(Stdio::null());
        command
    }

    /// Runs a shell script inside the container, as root, in `/root`.
    pub fn sh(&self, script: &str) -> Output {
        self.command(script).output().expect("nsenter")
    }

    /// Like [`Booted::sh`], and fails the test unless the script succeeds;
    /// returns its standard output.
    pub fn ok(&self, script: &str) -> String {
        let output = self.sh(script);
        assert!(
            output.status.success(),
            "in the container: {script}\nexit {}:\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// One property of a unit (`systemctl show -P`).
    pub fn property(&self, unit: &str, property: &str) -> String {
        self.ok(&format!("systemctl show -P {property} {unit}")).trim().to_owned()
    }

    /// Waits until `property` of `unit` is `value`.
    pub fn wait_property(&self, unit: &str, property: &str, value: &str, timeout: Duration) {
        let reached = eventually(timeout, || (self.property(unit, property) == value).then_some(()));
        assert!(
            reached.is_some(),
            "{unit}: {property} stays {:?}, not {value:?}\n{}",
            self.property(unit, property),
            self.journal(unit)
        );
    }

    /// The unit's journal, as its messages.
    pub fn journal(&self, unit: &str) -> String {
        String::from_utf8_lossy(&self.sh(&format!("journalctl -u {unit} -o cat --no-pager")).stdout).into_owned()
    }

    /// Writes a file into the container, from the host.
    pub fn write(&self, path: &str, contents: &str) {
        std::fs::write(self.root.join(path.trim_start_matches('/')), contents).unwrap();
    }
}

impl Drop for Booted {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- container console ---\n{}", self.console());
        }
        let _ = self.sh("systemctl poweroff --no-block");
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.nspawn.try_wait().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if self.nspawn.try_wait().is_none() {
            // Killing the container's PID 1 ends every process in it.
            let _ = Command::new("kill").args(["-KILL", &self.leader.to_string()]).status();
        }
        // The Running guard kills and reaps nspawn itself; then the tree goes.
    }
}
