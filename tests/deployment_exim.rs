//! docs/exim.md, end to end with the real Exim binary: a private Exim
//! daemon built from the guide's snippets (docs/exim/*) behind batv-proxy
//! with the PROXY protocol, and the guide's key sharing between
//! batv-proxy (hash = "sha1") and Exim's ${prvs}/${prvscheck}.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::postfix_snippets::{loopback_port, repository_file, substitute};
use common::*;

fn exim_binary() -> PathBuf {
    provision();
    exim_dir().join("usr/sbin/exim4")
}

/// `batv-proxy keygen --printable` into `keys`, as the guide says.
fn keygen_printable(keys: &Path, key_id: u8) {
    let output = Command::new(BIN)
        .args(["keygen", "--printable", "--key-id", &key_id.to_string(), "--output"])
        .arg(keys)
        .output()
        .unwrap();
    assert!(output.status.success(), "keygen: {}", String::from_utf8_lossy(&output.stderr));
}

/// Runs the guide's copy-keys.sh with the paths substituted.
fn copy_keys(from: &Path, to: &Path) {
    let script = substitute(
        &repository_file("docs/exim/copy-keys.sh"),
        &[("/var/lib/batv-proxy/keys", from.display().to_string()), ("/etc/exim4/batv-keys", to.display().to_string())],
    );
    let output = Command::new("sh").arg("-c").arg(&script).output().unwrap();
    assert!(output.status.success(), "copy-keys.sh: {}", String::from_utf8_lossy(&output.stderr));
}

/// The guide's main-section lines with the key copy's path and the ports.
fn exim_main(keys: &Path, smtp: u16, submission: u16) -> String {
    substitute(
        &repository_file("docs/exim/exim-main.conf"),
        &[
            ("daemon_smtp_ports = 10025 : 10587", format!("daemon_smtp_ports = {smtp} : {submission}")),
            ("BATV_KEYS = /etc/exim4/batv-keys", format!("BATV_KEYS = {}", keys.display())),
        ],
    )
}

/// Evaluates expansions with `exim -be` under `config`, one per line.
fn expand(config: &Path, expressions: &[String]) -> Vec<String> {
    let mut child = Command::new(exim_binary())
        .arg("-C")
        .arg(config)
        .arg("-be")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = expressions.join("\n");
    input.push('\n');
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let results: Vec<String> = text.lines().filter_map(|line| line.strip_prefix("> ")).map(str::to_owned).collect();
    let results: Vec<String> = results.into_iter().filter(|r| !r.is_empty()).collect();
    assert_eq!(results.len(), expressions.len(), "exim -be:\n{text}\n{}", String::from_utf8_lossy(&output.stderr));
    results
}

/// The guide's ${prvscheck} with BATV_SECRET, as VALID or INVALID.
fn prvscheck(address: &str) -> String {
    format!("${{prvscheck{{{address}}}{{BATV_SECRET}}{{${{if eq{{$prvscheck_result}}{{1}}{{VALID}}{{INVALID}}}}}}}}")
}

/// A batv-proxy configuration for the CLI with `hash = "sha1"` and `keys`.
fn sha1_config(dir: &TestDir, keys: &Path) -> PathBuf {
    dir.write(
        "cli.toml",
        &format!(
            "[batv]\nkey_file = \"{}\"\nhash = \"sha1\"\ndomains = [\"example.com\", \"example.org\"]\n{}",
            keys.display(),
            listener("inbound", 2525, 10025, "none", "")
        ),
    )
}

fn cli(config: &Path, args: &[&str]) -> (i32, String) {
    let (command, rest) = args.split_first().unwrap();
    let output = Command::new(BIN).arg(command).arg("--config").arg(config).args(rest).output().unwrap();
    let text =
        String::from_utf8_lossy(&output.stdout).trim().to_owned() + String::from_utf8_lossy(&output.stderr).trim();
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn tags_from_batv_proxy_verify_in_exims_prvscheck_across_a_key_rotation() {
    let dir = TestDir::new("exim-keys.");
    let keys = dir.join("keys");
    let exim_keys = dir.join("batv-keys");
    let config = sha1_config(&dir, &keys);
    keygen_printable(&keys, 1);
    let old = cli(&config, &["sign", "alice@example.com"]).1;
    assert!(old.starts_with("prvs=1"), "{old}");
    // Rotation as docs/operations.md describes it: a new key on top.
    keygen_printable(&keys, 2);
    let new = cli(&config, &["sign", "alice@example.com"]).1;
    assert!(new.starts_with("prvs=2"), "{new}");
    let yesterday = cli(&config, &["sign", "--date", &yesterday(), "bob@example.org"]).1;
    copy_keys(&keys, &exim_keys);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&exim_keys).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o640);

    let exim_config = dir.write("exim.conf", &exim_main(&exim_keys, 10025, 10587));
    let digit = if &new[9..10] == "0" { "1" } else { "0" };
    let forged = format!("{}{digit}{}", &new[..9], &new[10..]);
    let unknown_key = new.replacen("prvs=2", "prvs=7", 1);
    let results = expand(
        &exim_config,
        &[
            prvscheck(&old),
            prvscheck(&new),
            prvscheck(&yesterday),
            prvscheck(&forged),
            prvscheck(&unknown_key),
            format!("${{prvscheck{{{new}}}{{BATV_SECRET}}}}"),
            // The guide's way to make a tag with Exim: the same as batv-proxy's.
            "${prvs{carol@example.com}{${base64d:${lookup{2}lsearch{BATV_KEYS}}}}{2}}".into(),
        ],
    );
    assert_eq!(results[..5], ["VALID", "VALID", "VALID", "INVALID", "INVALID"], "{results:?}");
    assert_eq!(results[5], "alice@example.com");
    assert_eq!(results[6], cli(&config, &["sign", "carol@example.com"]).1);
    let (code, original) = cli(&config, &["verify", &results[6]]);
    assert_eq!((code, original.as_str()), (0, "carol@example.com"));
}

/// A delivery status notification (RFC 3464) to alice@example.com that
/// returns the message `original`, with `token` in its text.
fn dsn(original: &str, token: &str) -> String {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@remote.test>\r\nTo: alice@example.com\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <{token}@remote.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\n{token}: your message could not be delivered.\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.remote.test\r\n\r\n\
         Final-Recipient: rfc822; carol@remote.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         --B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: alice@example.com\r\nTo: carol@remote.test\r\n\
         Message-ID: {original}\r\n--B--\r\n"
    )
}

fn yesterday() -> String {
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 86_400;
    let output = Command::new("date").args(["-u", "-d", &format!("@{seconds}"), "+%Y-%m-%d"]).output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A private Exim daemon: the site's own settings (spool, log, user,
/// domains, relay hosts, local mailboxes, a smarthost for remote mail)
/// around the guide's snippets.
struct Exim {
    dir: TestDir,
    child: Child,
}

impl Exim {
    fn start(main: &str, sink: u16) -> Exim {
        let exim = exim_binary();
        let dir = TestDir::new("exim-daemon.");
        for sub in ["spool", "log", "mail"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
            Command::new("chown").arg("Debian-exim:Debian-exim").arg(dir.join(sub)).status().unwrap();
        }
        dir.write("users", &USERS.iter().map(|u| format!("{u}: {u}\n")).collect::<String>());
        let root = dir.path.display().to_string();
        let config = format!(
            "exim_path = {exim}\n\
             spool_directory = {root}/spool\n\
             log_file_path = {root}/log/%slog\n\
             pid_file_path = {root}/exim.pid\n\
             primary_hostname = mx.example.com\n\
             domainlist local_domains = example.com : example.org\n\
             hostlist relay_from_hosts = <; 127.0.0.1\n\
             acl_smtp_rcpt = acl_check_rcpt\n\
             log_selector = +received_recipients +proxy\n\
             keep_environment =\n\
             {main}\n\
             begin acl\n\
             acl_check_rcpt:\n\
             {acl}\n\
             \x20 accept  hosts = +relay_from_hosts\n\
             \x20 require message = relay not permitted\n\
             \x20         domains = +local_domains\n\
             \x20 require verify = recipient\n\
             \x20 accept\n\
             begin routers\n\
             {router}\n\
             local_user:\n\
             \x20 driver = accept\n\
             \x20 domains = +local_domains\n\
             \x20 local_parts = lsearch;{root}/users\n\
             \x20 transport = mailbox\n\
             remote:\n\
             \x20 driver = manualroute\n\
             \x20 domains = ! +local_domains\n\
             \x20 route_list = * 127.0.0.1\n\
             \x20 self = send\n\
             \x20 transport = sink\n\
             begin transports\n\
             mailbox:\n\
             \x20 driver = appendfile\n\
             \x20 file = {root}/mail/$local_part_data\n\
             \x20 user = Debian-exim\n\
             \x20 envelope_to_add\n\
             \x20 return_path_add\n\
             sink:\n\
             \x20 driver = smtp\n\
             \x20 port = {sink}\n\
             \x20 allow_localhost\n",
            exim = exim.display(),
            acl = repository_file("docs/exim/exim-acl-rcpt.conf"),
            router = repository_file("docs/exim/exim-router.conf"),
        );
        let config_path = dir.write("exim.conf", &config);
        let child = Command::new(&exim)
            .arg("-C")
            .arg(&config_path)
            .arg("-bdf")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting exim");
        Exim { dir, child }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log/mainlog")).unwrap_or_default()
    }

    fn mailbox(&self, user: &str) -> String {
        std::fs::read_to_string(self.dir.join("mail").join(user)).unwrap_or_default()
    }

    fn delivered(&self, user: &str, needle: &str) -> bool {
        eventually(Duration::from_secs(15), || self.mailbox(user).contains(needle).then_some(())).is_some()
    }
}

impl Drop for Exim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- exim mainlog ---\n{}", self.log());
        }
    }
}

#[test]
fn exim_daemon_behind_batv_proxy_sees_the_real_client_through_the_proxy_protocol() {
    let sink = Sink::start();
    let pki = TestPki::new();
    let proxy_dir = TestDir::new("batv-proxy-exim.");
    let keys = proxy_dir.join("keys");
    keygen_printable(&keys, 1);
    let exim_keys = proxy_dir.join("exim-batv-keys");
    copy_keys(&keys, &exim_keys);

    let (smtp_at, smtp) = loopback_port();
    let (submission_at, submission) = loopback_port();
    let exim = Exim::start(&exim_main(&exim_keys, smtp, submission), sink.port);
    assert!(wait_port(smtp, Duration::from_secs(15)), "exim did not listen:\n{}", exim.log());
    assert!(wait_port(submission, Duration::from_secs(15)), "exim did not listen:\n{}", exim.log());

    let (inbound, outbound, implicit, metrics) = (free_port(), free_port(), free_port(), free_port());
    let config = substitute(
        &repository_file("docs/exim/batv-proxy-front.toml"),
        &[
            // The guide starts in monitor mode; this test is the switch to enforcement.
            ("mode = \"monitor\"", "mode = \"enforce\"".to_owned()),
            ("state_dir = \"/var/lib/batv-proxy\"", format!("state_dir = \"{}\"", proxy_dir.join("state").display())),
            ("key_file = \"/var/lib/batv-proxy/keys\"", format!("key_file = \"{}\"", keys.display())),
            ("\"0.0.0.0:25\"", format!("\"127.0.0.1:{inbound}\"")),
            ("\"0.0.0.0:587\"", format!("\"127.0.0.1:{outbound}\"")),
            ("\"0.0.0.0:465\"", format!("\"127.0.0.1:{implicit}\"")),
            ("\"127.0.0.1:10025\"", format!("\"{smtp_at}\"")),
            ("\"127.0.0.1:10587\"", format!("\"{submission_at}\"")),
            ("\"127.0.0.1:9325\"", format!("\"127.0.0.1:{metrics}\"")),
            ("/etc/letsencrypt/live/mx.example.com/fullchain.pem", pki.path("mx.example.com.pem")),
            ("/etc/letsencrypt/live/mx.example.com/privkey.pem", pki.path("mx.example.com.key")),
        ],
    );
    let proxy = Proxy::start_in(proxy_dir, &config, &[inbound, outbound, implicit, metrics]);

    // (i) Mail relayed by batv-proxy: Exim logs the real client, 127.0.0.3.
    let token = unique("exim-regular");
    let t = send_mail_from(
        inbound,
        Some("127.0.0.3"),
        "carol@remote.test",
        &["alice@example.com"],
        &format!("Subject: {token}\r\n\r\nx\r\n"),
    );
    assert!(t.end.as_ref().is_some_and(|r| r.is(250)), "{:?} {:?}", t.rcpts, t.end);
    assert!(exim.delivered("alice", &token), "not delivered:\n{}", exim.log());
    let log = exim.log();
    let received = log.lines().find(|l| l.contains("<= carol@remote.test")).expect("a reception line").to_owned();
    assert!(received.contains("[127.0.0.3]") && received.contains("PRX=127.0.0.1"), "{received}");
    // The proxy logs Exim's message id, so a message can be followed across.
    let queue_id = proxy
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "message relayed")
        .and_then(|l| l["queue_id"].as_str().map(str::to_owned))
        .expect("a message relayed line");
    assert!(!queue_id.is_empty() && received.contains(&queue_id), "{queue_id} vs {received}");

    // Exim's relay control judges 127.0.0.3, not the proxy's 127.0.0.1.
    let t = send_mail_from(inbound, Some("127.0.0.3"), "alice@example.com", &["dave@remote.test"], "x");
    assert_eq!(t.rcpts[0].code, 550, "{:?}", t.rcpts);
    assert!(t.rcpts[0].text.contains("relay not permitted"), "{:?}", t.rcpts);

    // A user on 587 (STARTTLS required) from a trusted address: the mail
    // leaves through Exim with batv-proxy's sha1 tag, which Exim verifies.
    let signed_token = unique("exim-signed");
    let script = format!(
        r#"
import smtplib, ssl
context = ssl.create_default_context(cafile="{ca}")
s = smtplib.SMTP("127.0.0.1", {outbound}, source_address=("127.0.0.1", 0))
s.starttls(context=context)
s.sendmail("alice@example.com", ["carol@remote.test"], "Subject: {signed_token}\r\nMessage-ID: <{signed_token}@laptop.example.com>\r\n\r\nx\r\n")
s.quit()
"#,
        ca = pki.path("ca.pem")
    );
    let output = Command::new("python3").arg("-c").arg(&script).output().unwrap();
    assert!(output.status.success(), "python: {}", String::from_utf8_lossy(&output.stderr));
    let dump = sink.find(&signed_token).expect("the signed mail reached the sink");
    let sender = dump
        .lines()
        .find_map(|l| l.strip_prefix("X-Mail-Args: <"))
        .and_then(|rest| rest.split('>').next())
        .unwrap()
        .to_owned();
    assert!(sender.starts_with("prvs=1") && sender.ends_with("=alice@example.com"), "{sender}");
    let be_config = exim.dir.write("be.conf", &exim_main(&exim_keys, 10025, 10587));
    assert_eq!(expand(&be_config, &[prvscheck(&sender)]), ["VALID"]);

    // The bounce of that mail, through batv-proxy: tag stripped, delivered.
    let bounce_token = unique("exim-bounce");
    let t = send_mail_from(
        inbound,
        Some("127.0.0.3"),
        "",
        &[&sender],
        &message("MAILER-DAEMON@remote.test", &sender, &bounce_token, "failed"),
    );
    assert!(t.end.as_ref().is_some_and(|r| r.is(250)), "{:?} {:?}", t.rcpts, t.end);
    assert!(exim.delivered("alice", &bounce_token), "bounce not delivered:\n{}", exim.log());
    let log = exim.log();
    let bounce = log.lines().find(|l| l.contains("<= <> ") && l.contains("PRX=127.0.0.1")).expect("the bounce");
    assert!(bounce.ends_with("for alice@example.com"), "Exim must see the address without the tag: {bounce}");

    // A bounce of the same message to alice's untagged address: judged after
    // DATA (untagged_bounce = "inspect"), it names a Message-ID the
    // outbound listener recorded in the guide's ledger, so Exim gets it.
    let ours = format!("<{signed_token}@laptop.example.com>");
    let ledger_token = unique("exim-ledger");
    let accepted = eventually(Duration::from_secs(10), || {
        let t = send_mail_from(inbound, Some("127.0.0.3"), "", &["alice@example.com"], &dsn(&ours, &ledger_token));
        t.end.filter(|r| r.is(250))
    });
    assert!(accepted.is_some(), "the untagged bounce of a recorded message was refused:\n{}", proxy.log());
    assert!(exim.delivered("alice", &ledger_token), "not delivered:\n{}", exim.log());
    // One naming a message never sent is refused at the end of DATA, and
    // Exim never accepts it.
    let forged_token = unique("exim-backscatter");
    let t = send_mail_from(
        inbound,
        Some("127.0.0.3"),
        "",
        &["alice@example.com"],
        &dsn("<never-sent@spammer.test>", &forged_token),
    );
    assert_eq!((t.rcpts[0].code, t.data.as_ref().map(|r| r.code)), (250, Some(354)), "{:?}", t.rcpts);
    let end = t.end.unwrap();
    assert!(end.is(550) && end.text.contains("5.7.1 Bounce refused"), "{end:?}");
    std::thread::sleep(Duration::from_secs(1));
    assert!(!exim.mailbox("alice").contains(&forged_token), "Exim delivered a refused bounce");

    // Straight to Exim, without batv-proxy (as at a backup MX): the guide's
    // ACL refuses a forged tag and its router delivers a valid one.
    let digit = if &sender[9..10] == "0" { "1" } else { "0" };
    let forged = format!("{}{digit}{}", &sender[..9], &sender[10..]);
    let t = send_mail_from(smtp, Some("127.0.0.3"), "", &[&forged], "x");
    assert_eq!(t.rcpts[0].code, 550, "{:?}", t.rcpts);
    assert!(t.rcpts[0].text.contains("Bounce address tag is invalid"), "{:?}", t.rcpts);
    let direct_token = unique("exim-direct");
    let t = send_mail_from(
        smtp,
        Some("127.0.0.3"),
        "",
        &[&sender],
        &message("MAILER-DAEMON@remote.test", &sender, &direct_token, "failed"),
    );
    assert!(t.end.as_ref().is_some_and(|r| r.is(250)), "{:?} {:?}", t.rcpts, t.end);
    assert!(exim.delivered("alice", &direct_token), "not delivered:\n{}", exim.log());
    assert!(exim.log().lines().any(|l| l.contains(" => ") && l.contains(&format!("<{sender}>"))), "{}", exim.log());
}

/// docs/operations.md, "Moving from Exim's prvs": the secret of an Exim
/// `${prvs}` imported with the guide's script signs exactly as Exim does,
/// and tags Exim made verify in batv-proxy.
#[test]
fn an_exim_secret_imported_as_the_guide_says_signs_as_exim_does() {
    let dir = TestDir::new("exim-import.");
    let keys = dir.join("keys");
    let secret = "Our old exim prvs secret, 2019";
    let script = substitute(
        &repository_file("docs/exim/import-exim-secret.sh"),
        &[
            ("secret='the secret from exim.conf'", format!("secret='{secret}'")),
            ("key=0", "key=4".to_owned()),
            ("/var/lib/batv-proxy/keys", keys.display().to_string()),
            ("chown batv-proxy:batv-proxy", "chown root:root".to_owned()),
        ],
    );
    let output = Command::new("sh").arg("-c").arg(&script).output().unwrap();
    assert!(output.status.success(), "the import script: {}", String::from_utf8_lossy(&output.stderr));
    let config = sha1_config(&dir, &keys);
    let (code, check) = cli(&config, &["check-config"]);
    assert_eq!(code, 0, "the imported key file is refused: {check}");
    let empty = dir.write("empty.conf", "");
    for address in ["alice@example.com", "Bob.Smith@example.org"] {
        let ours = cli(&config, &["sign", address]).1;
        let exims = expand(&empty, &[format!("${{prvs{{{address}}}{{{secret}}}{{4}}}}")]).remove(0);
        assert_eq!(ours, exims, "{address}: batv-proxy and Exim sign differently");
        assert_eq!(cli(&config, &["verify", &exims]), (0, address.to_owned()), "{address}");
    }
}
