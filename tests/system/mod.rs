//! Shared parts of the system tests (tests/system_*.rs): a Debian 12 tree
//! booted with systemd as PID 1 under systemd-nspawn, the documented
//! commands read from docs/operations.md, and the release build.
//!
//! These tests need root, debootstrap, systemd-nspawn (package
//! systemd-container) and, for the image, buildah: all in .ci/packages.
//! They take minutes, so a plain `cargo test` builds them but ignores them
//! (`#[ignore]`); `.ci/run` runs them by name with `-- --ignored`.
#![allow(dead_code)]

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

/// A guide's command as an admin runs it in the repository: in a shell
/// without what `cargo test` adds to a test's environment (the package's
/// `CARGO_*` variables, `LD_LIBRARY_PATH`, the pinned toolchain), which
/// would make a nested cargo rebuild everything.
pub fn admin_shell(command: &str) -> Command {
    let mut shell = Command::new("sh");
    shell.arg("-c").arg(command).current_dir(repository());
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let added = (name.starts_with("CARGO") && !["CARGO_HOME", "CARGO_TERM_COLOR"].contains(&name.as_ref()))
            || name.starts_with("RUSTUP_TOOLCHAIN")
            || ["LD_LIBRARY_PATH", "RUST_RECURSION_COUNT"].contains(&name.as_ref());
        if added {
            shell.env_remove(name.as_ref());
        }
    }
    shell
}

/// `cargo build --release --locked` as the guide says, in the repository:
/// the binary the system tests install.
pub fn release_binary(command: &str) -> PathBuf {
    assert!(command.starts_with("cargo build --release"), "not a release build: {command}");
    let started = Instant::now();
    run_ok(&mut admin_shell(command));
    eprintln!("{command}: {:.1?}", started.elapsed());
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
        let started = Instant::now();
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
        eprintln!("booted {} in {:.1?}", tarball.display(), started.elapsed());
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

/// Every process below `pid`, children first.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid ...: comm may hold spaces and parentheses.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else { continue };
        if let Some(parent) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            parents.push((child, parent));
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for (child, _) in parents.iter().filter(|(_, p)| *p == parent) {
            found.push(*child);
            frontier.push(*child);
        }
    }
    found.reverse();
    found
}

/// buildah with its own storage under the test cache, so that the base
/// images made here (named like Docker Hub's) never mix with the machine's.
pub struct Buildah {
    root: PathBuf,
    runroot: PathBuf,
}

impl Buildah {
    pub fn new() -> Buildah {
        let cache = std::env::var("BATV_TEST_CACHE").unwrap_or_else(|_| "/var/cache/batv-proxy-tests".into());
        Buildah {
            root: Path::new(&cache).join("containers"),
            runroot: PathBuf::from("/run/batv-proxy-tests/containers"),
        }
    }

    pub fn command(&self) -> Command {
        let mut command = Command::new("buildah");
        command.arg("--root").arg(&self.root).arg("--runroot").arg(&self.runroot);
        command
    }

    pub fn ok(&self, args: &[&str]) -> String {
        run_ok(self.command().args(args))
    }

    /// The image's configuration as `buildah inspect` prints it.
    pub fn inspect(&self, image: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["inspect", "--type", "image", image])).unwrap()
    }

    fn label(&self, image: &str, label: &str) -> Option<String> {
        let output = self.command().args(["inspect", "--type", "image", image]).output().ok()?;
        let value: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
        value["Docker"]["config"]["Labels"][label].as_str().map(str::to_owned)
    }

    /// The Dockerfiles' base images, made here since no registry can be
    /// reached: `debian:bookworm-slim` from the slim tree, and
    /// `rust:1-bookworm` from it with gcc and libc6-dev, whose Rust
    /// toolchain is the host's, mounted at build time (`toolchain_volumes`).
    /// Kept between runs while the tree is the same.
    pub fn base_images(&self) {
        let tree = debian_tree("slim");
        let tree_name = tree.file_name().unwrap().to_string_lossy().into_owned();
        const LABEL: &str = "batv-proxy-tests.tree";
        if self.label("docker.io/library/debian:bookworm-slim", LABEL).as_deref() != Some(tree_name.as_str()) {
            let container = self.ok(&["from", "scratch"]).trim().to_owned();
            self.ok(&["add", &container, &tree.display().to_string(), "/"]);
            self.ok(&["config", "--cmd", "bash", "--label", &format!("{LABEL}={tree_name}"), &container]);
            self.ok(&["commit", "-q", "--rm", &container, "docker.io/library/debian:bookworm-slim"]);
        }
        if self.label("docker.io/library/rust:1-bookworm", LABEL).as_deref() != Some(tree_name.as_str()) {
            let container = self.ok(&["from", "docker.io/library/debian:bookworm-slim"]).trim().to_owned();
            self.ok(&[
                "run",
                "--isolation",
                "chroot",
                &container,
                "--",
                "sh",
                "-c",
                "export DEBIAN_FRONTEND=noninteractive && apt-get update -qq && \
                 apt-get install -y -qq --no-install-recommends gcc libc6-dev ca-certificates >/dev/null && \
                 rm -rf /var/lib/apt/lists/*",
            ]);
            self.ok(&[
                "config",
                "--env",
                "RUSTUP_HOME=/usr/local/rustup",
                "--env",
                "CARGO_HOME=/usr/local/cargo",
                "--env",
                "PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--label",
                &format!("{LABEL}={tree_name}"),
                &container,
            ]);
            self.ok(&["commit", "-q", "--rm", &container, "docker.io/library/rust:1-bookworm"]);
        }
    }

    /// `-v` arguments that give a build the host's Rust toolchain and cargo
    /// registry where the official rust image keeps them.
    pub fn toolchain_volumes() -> Vec<String> {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        let rustup = std::env::var("RUSTUP_HOME").unwrap_or_else(|_| format!("{home}/.rustup"));
        let cargo = std::env::var("CARGO_HOME").unwrap_or_else(|_| format!("{home}/.cargo"));
        vec!["-v".into(), format!("{rustup}:/usr/local/rustup:ro"), "-v".into(), format!("{cargo}:/usr/local/cargo")]
    }
}

/// A working container of an image, removed on drop.
pub struct WorkingContainer<'a> {
    pub buildah: &'a Buildah,
    pub name: String,
}

impl<'a> WorkingContainer<'a> {
    pub fn from(buildah: &'a Buildah, image: &str) -> WorkingContainer<'a> {
        let name = format!("batv-proxy-test-{}", std::process::id());
        let _ = buildah.command().args(["rm", &name]).output();
        buildah.ok(&["from", "--name", &name, image]);
        WorkingContainer { buildah, name }
    }

    /// `buildah run` in this container, as the image's user, with
    /// `volumes` (`-v` values) mounted; the host's network.
    pub fn run(&self, volumes: &[String], command: &[String]) -> Command {
        let mut run = self.buildah.command();
        run.args(["run", "--isolation", "chroot"]);
        for volume in volumes {
            run.arg("-v").arg(volume);
        }
        run.arg(&self.name).arg("--").args(command).stdin(Stdio::null());
        run
    }
}

impl Drop for WorkingContainer<'_> {
    fn drop(&mut self) {
        let _ = self.buildah.command().args(["rm", &self.name]).output();
    }
}

/// A process running in a container (`buildah run`): on drop, it and
/// everything it started are killed.
pub struct ContainerProcess {
    pub process: Running,
}

impl ContainerProcess {
    pub fn spawn(command: &mut Command) -> ContainerProcess {
        ContainerProcess { process: Running::spawn(command) }
    }

    /// The pid of the process below `buildah run` whose command line starts with `program`.
    pub fn find(&self, program: &str) -> Option<u32> {
        descendants(self.process.id()).into_iter().find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|line| line.split(|b| *b == 0).next().is_some_and(|first| first == program.as_bytes()))
        })
    }
}

impl Drop for ContainerProcess {
    fn drop(&mut self) {
        if self.process.try_wait().is_none() {
            for pid in descendants(self.process.id()) {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
        }
    }
}
