//! Private Postfix instances built from the configuration snippets the
//! deployment guides quote (docs/postfix/*), so a guide cannot describe a
//! setup that does not work. Only paths and ports are substituted, and
//! each substitution must match, so a changed snippet fails loudly.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{
    POSTFIX_SERVICES, TestDir, eventually, free_port, postfix_base_main, postfix_check_and_start, postfix_mailbox,
    postfix_tree, provision, wait_port,
};

/// A file of the repository, e.g. `docs/postfix/front-main.cf`.
pub fn repository_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|error| panic!("{}: {error}", full.display()))
}

/// Replaces each `from` with `to`; every `from` must occur, so a snippet
/// that changed under the test fails here instead of testing something else.
pub fn substitute(text: &str, replacements: &[(&str, String)]) -> String {
    let mut out = text.to_owned();
    for (from, to) in replacements {
        assert!(out.contains(from), "the snippet no longer contains {from:?}:\n{text}");
        out = out.replace(from, to);
    }
    out
}

/// `(name, type)` of each service a master.cf text defines.
fn services(master: &str) -> Vec<(String, String)> {
    master
        .lines()
        .filter(|line| !line.starts_with('#') && !line.starts_with(char::is_whitespace) && !line.is_empty())
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            Some((fields.next()?.to_owned(), fields.next()?.to_owned()))
        })
        .collect()
}

/// A private Postfix instance: the site's own settings (paths, virtual
/// mailboxes for example.com and example.org, mynetworks = 127.0.0.1/32)
/// plus the snippets under test.
pub struct SnippetPostfix {
    pub dir: TestDir,
    pub etc: PathBuf,
}

impl SnippetPostfix {
    /// `site_main`: extra site settings (e.g. relayhost); `main_snippets`
    /// and `master_snippets`: the guide's files, ports already substituted.
    pub fn start(site_main: &str, main_snippets: &[String], master_snippets: &[String]) -> SnippetPostfix {
        provision();
        let dir = TestDir::new("postfix-snippet.");
        let root = postfix_tree(&dir);
        let main = format!(
            "{}smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination\n",
            postfix_base_main(&root)
        );
        // A site setting replaces the default above instead of repeating it
        // (Postfix would warn about every repeated parameter).
        let set_by_site: Vec<&str> =
            site_main.lines().filter_map(|line| line.split_once('=')).map(|(name, _)| name.trim()).collect();
        let mut main: String = main
            .lines()
            .filter(|line| line.split_once('=').is_none_or(|(name, _)| !set_by_site.contains(&name.trim())))
            .map(|line| format!("{line}\n"))
            .collect();
        main.push_str(site_main);
        main.push('\n');
        for snippet in main_snippets {
            main.push_str(snippet);
            main.push('\n');
        }
        dir.write("etc/main.cf", &main);
        let defined: Vec<(String, String)> = master_snippets.iter().flat_map(|s| services(s)).collect();
        let mut master = String::new();
        for service in POSTFIX_SERVICES {
            let (name, kind) = services(service).remove(0);
            if !defined.contains(&(name, kind)) {
                master.push_str(service);
                master.push('\n');
            }
        }
        for snippet in master_snippets {
            master.push_str(snippet);
            master.push('\n');
        }
        dir.write("etc/master.cf", &master);
        postfix_check_and_start(&root);
        let etc = dir.join("etc");
        SnippetPostfix { dir, etc }
    }

    /// Waits until Postfix listens on `port`.
    pub fn wait(&self, port: u16) {
        assert!(wait_port(port, Duration::from_secs(15)), "postfix did not listen on {port}:\n{}", self.log());
    }

    pub fn queue_dir(&self) -> PathBuf {
        self.dir.join("queue")
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

    /// `postqueue -p` of this instance.
    pub fn queue(&self) -> String {
        let output = Command::new("/usr/sbin/postqueue").arg("-c").arg(&self.etc).arg("-p").output().unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Submits a message with this instance's sendmail command (pickup).
    pub fn sendmail(&self, sender: &str, recipient: &str, message: &str) {
        let mut child = Command::new("/usr/sbin/sendmail")
            .arg("-C")
            .arg(&self.etc)
            .args(["-f", sender, "-i", recipient])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(message.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "sendmail: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// Serves Dovecot's authentication protocol at `private/auth` (the
    /// guide's `smtpd_sasl_path`) with one user.
    pub fn start_auth(&self, user: &str, password: &str) -> FakeDovecotAuth {
        FakeDovecotAuth::start(&self.queue_dir().join("private/auth"), user, password)
    }
}

impl Drop for SnippetPostfix {
    fn drop(&mut self) {
        let _ = Command::new("/usr/sbin/postfix").arg("-c").arg(&self.etc).arg("stop").output();
    }
}

/// Dovecot's SASL server side, as much as Postfix's `smtpd_sasl_type =
/// dovecot` client uses (PLAIN with an initial response).
pub struct FakeDovecotAuth {
    path: PathBuf,
}

impl FakeDovecotAuth {
    pub fn start(path: &Path, user: &str, password: &str) -> FakeDovecotAuth {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).expect("binding the auth socket");
        // Postfix's smtpd runs as the postfix user.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let expected = format!("\0{user}\0{password}");
        let user = user.to_owned();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (expected, user) = (expected.clone(), user.clone());
                std::thread::spawn(move || serve_auth(stream, &expected, &user));
            }
        });
        FakeDovecotAuth { path: path.to_owned() }
    }
}

impl Drop for FakeDovecotAuth {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve_auth(stream: UnixStream, expected: &str, user: &str) {
    use base64::Engine;
    let mut writer = stream.try_clone().unwrap();
    if writer.write_all(b"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nSPID\t1\nCUID\t1\nCOOKIE\t00\nDONE\n").is_err() {
        return;
    }
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.first() != Some(&"AUTH") || fields.len() < 3 {
            continue;
        }
        let id = fields[1];
        let response = fields.iter().find_map(|f| f.strip_prefix("resp=")).unwrap_or("");
        let decoded = base64::engine::general_purpose::STANDARD.decode(response).unwrap_or_default();
        let reply = if fields[2].eq_ignore_ascii_case("PLAIN") && decoded == expected.as_bytes() {
            format!("OK\t{id}\tuser={user}\n")
        } else {
            format!("FAIL\t{id}\treason=Authentication failed\n")
        };
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// A free loopback port, as the string `127.0.0.1:PORT`, with the port.
pub fn loopback_port() -> (String, u16) {
    let port = free_port();
    (format!("127.0.0.1:{port}"), port)
}
