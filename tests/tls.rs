//! TLS with real clients (swaks, Python, openssl s_client) and real
//! Postfix upstream: STARTTLS, implicit TLS, SNI, injection, AUTH gating.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn tls_table(pki: &TestPki, mode: &str, require: bool) -> String {
    format!(
        "[listener.tls]\nmode = \"{mode}\"\nrequire = {require}\ncert = \"{}\"\nkey = \"{}\"\nhandshake_timeout = \"2s\"\n\
         [[listener.tls.sni]]\ncert = \"{}\"\nkey = \"{}\"\n",
        pki.path("mx.example.com.pem"),
        pki.path("mx.example.com.key"),
        pki.path("mail.example.org.pem"),
        pki.path("mail.example.org.key"),
    )
}

#[test]
fn starttls_and_implicit_tls_with_real_clients_reach_postfix() {
    let pki = TestPki::new();
    let postfix = Postfix::shared();
    let (starttls, implicit) = (free_port(), free_port());
    let config = format!(
        "{BATV_SECTION}{}{}{}{}",
        listener("outbound", starttls, postfix.port, "xclient", ""),
        tls_table(&pki, "starttls", false),
        listener("outbound", implicit, postfix.port, "xclient", ""),
        tls_table(&pki, "implicit", false),
    );
    let _proxy = Proxy::start(&config, &[starttls, implicit]);

    let token = unique("swaks-tls");
    let output = Command::new("swaks")
        .args([
            "--server",
            &format!("127.0.0.1:{starttls}"),
            "--tls",
            "--tls-verify",
            "--tls-ca-path",
            &pki.path("ca.pem"),
        ])
        .args(["--tls-sni", "mx.example.com", "--from", "alice@example.com", "--to", "bob@example.com"])
        .args(["--header", &format!("Subject: {token}")])
        .output()
        .unwrap();
    let transcript = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "swaks --tls: {transcript}");
    assert!(transcript.contains("TLS started"), "{transcript}");
    assert!(postfix.delivered("bob@example.com", &token).expect("delivered").contains("Return-Path: <prvs="));

    let (token_starttls, token_implicit) = (unique("py-starttls"), unique("py-implicit"));
    python(&format!(
        r#"
import smtplib, ssl
context = ssl.create_default_context(cafile="{ca}")
with smtplib.SMTP("127.0.0.1", {starttls}) as s:
    s.ehlo("python.test")
    assert s.has_extn("starttls")
    s.starttls(context=context)
    s.ehlo("python.test")
    assert not s.has_extn("starttls")
    s.sendmail("carol@example.com", ["dave@example.com"], "Subject: {token_starttls}\r\n\r\nover starttls\r\n")
with smtplib.SMTP_SSL("127.0.0.1", {implicit}, context=context) as s:
    s.ehlo("python.test")
    s.sendmail("carol@example.com", ["dave@example.com"], "Subject: {token_implicit}\r\n\r\nover implicit tls\r\n")
"#,
        ca = pki.path("ca.pem")
    ));
    assert!(postfix.delivered("dave@example.com", &token_starttls).is_some());
    assert!(postfix.delivered("dave@example.com", &token_implicit).is_some());
}

#[test]
fn s_client_sees_the_chain_and_the_sni_choice() {
    let pki = TestPki::new();
    let sink = Sink::start();
    let port = free_port();
    let config = format!(
        "{BATV_SECTION}{}{}",
        listener("inbound", port, sink.port, "none", ""),
        tls_table(&pki, "starttls", false)
    );
    let _proxy = Proxy::start(&config, &[port]);
    let s_client = |servername: Option<&str>| {
        let mut command = Command::new("openssl");
        command.args([
            "s_client",
            "-starttls",
            "smtp",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-CAfile",
            &pki.path("ca.pem"),
            "-showcerts",
        ]);
        if let Some(name) = servername {
            command.args(["-servername", name]);
        }
        let output = command.stdin(std::process::Stdio::null()).output().unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let default = s_client(None);
    assert!(default.contains("CN=mx.example.com") || default.contains("CN = mx.example.com"), "{default}");
    assert!(default.contains("Verify return code: 0 (ok)"), "{default}");
    assert!(default.contains("batv-proxy test CA"), "the chain should include the CA: {default}");
    let org = s_client(Some("mail.example.org"));
    assert!(org.contains("CN=mail.example.org") || org.contains("CN = mail.example.org"), "{org}");
    let wildcard = s_client(Some("smtp.example.net"));
    assert!(wildcard.contains("CN=mail.example.org") || wildcard.contains("CN = mail.example.org"), "{wildcard}");
    let unknown = s_client(Some("other.test"));
    assert!(unknown.contains("CN=mx.example.com") || unknown.contains("CN = mx.example.com"), "{unknown}");
}

#[test]
fn bytes_pipelined_after_starttls_are_discarded_and_state_is_reset() {
    let pki = TestPki::new();
    let sink = Sink::start();
    let port = free_port();
    let config = format!(
        "{BATV_SECTION}{}{}",
        listener("inbound", port, sink.port, "none", ""),
        tls_table(&pki, "starttls", false)
    );
    let _proxy = Proxy::start(&config, &[port]);
    let out = python(&format!(
        r#"
import socket, ssl
s = socket.create_connection(("127.0.0.1", {port}), timeout=5)
f = s.makefile("rb")
def reply(f):
    lines = []
    while True:
        line = f.readline().decode()
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return "".join(lines)
print("greeting", reply(f)[:3])
s.sendall(b"EHLO client.test\r\n"); reply(f)
s.sendall(b"MAIL FROM:<>\r\n"); print("mail", reply(f)[:3])
s.sendall(b"STARTTLS\r\nRSET\r\n")
print("starttls", reply(f)[:3])
context = ssl.create_default_context(cafile="{ca}")
t = context.wrap_socket(s, server_hostname="mx.example.com")
t.settimeout(1.0)
try:
    data = t.recv(4096)
    print("injected", repr(data))
except socket.timeout:
    print("injected none")
t.settimeout(5)
g = t.makefile("rb")
t.sendall(b"RCPT TO:<bob@example.com>\r\n"); print("rcpt", reply(g)[:3])
t.sendall(b"EHLO client.test\r\n"); print("ehlo", reply(g)[:3])
"#,
        ca = pki.path("ca.pem")
    ));
    assert!(out.contains("starttls 220"), "{out}");
    assert!(out.contains("injected none"), "a reply to the pipelined RSET leaked into TLS: {out}");
    assert!(out.contains("rcpt 503"), "the transaction begun before TLS survived: {out}");
    assert!(out.contains("ehlo 250"), "{out}");
}

#[test]
fn require_tls_refuses_mail_and_auth_in_clear_and_relays_auth_inside() {
    let pki = TestPki::new();
    let sink = Sink::start();
    let port = free_port();
    let config = format!(
        "{BATV_SECTION}{}{}",
        listener("outbound", port, sink.port, "none", ""),
        tls_table(&pki, "starttls", true)
    );
    let proxy = Proxy::start(&config, &[port]);
    let mut smtp = Smtp::connect(port);
    let ehlo = smtp.command("EHLO client.test");
    assert!(ehlo.text.contains("STARTTLS") && !ehlo.text.contains("AUTH"), "{ehlo:?}");
    let mail = smtp.command("MAIL FROM:<alice@example.com>");
    assert_eq!(mail.code, 530, "{mail:?}");
    assert!(mail.text.contains("5.7.0"));
    // "alice\0alice\0s3cret-password"
    let credentials = "AGFsaWNlAHMzY3JldC1wYXNzd29yZA==";
    assert_eq!(smtp.command(&format!("AUTH PLAIN {credentials}")).code, 538);
    smtp.quit();
    let out = python(&format!(
        r#"
import smtplib, ssl
context = ssl.create_default_context(cafile="{ca}")
with smtplib.SMTP("127.0.0.1", {port}) as s:
    s.starttls(context=context)
    s.ehlo("python.test")
    assert s.has_extn("auth"), s.esmtp_features
    code, text = s.docmd("AUTH", "PLAIN {credentials}")
    print("auth", code)
    s.sendmail("alice@example.com", ["carol@remote.test"], "Subject: submitted\r\n\r\nx\r\n")
    print("sent")
"#,
        ca = pki.path("ca.pem")
    ));
    // smtp-sink answers AUTH with a 2xx of its own; the proxy relays it as it is.
    assert!(out.contains("auth 2") && out.contains("sent"), "{out}");
    let relayed = sink.find("submitted").expect("relayed");
    assert!(relayed.contains("X-Mail-Args: <prvs="), "{relayed}");
    std::thread::sleep(Duration::from_millis(200));
    let log = proxy.log();
    assert!(!log.contains(credentials) && !log.contains("s3cret"), "AUTH data reached the log");
}

/// An inbound listener with implicit TLS in front of `upstream`; `extra`:
/// more listener settings.
fn implicit_tls_inbound(pki: &TestPki, upstream: u16, extra: &str) -> (Proxy, u16) {
    let port = free_port();
    let config = format!(
        "{BATV_SECTION}{}{}",
        listener("inbound", port, upstream, "none", extra),
        tls_table(pki, "implicit", false)
    );
    (Proxy::start(&config, &[port]), port)
}

#[test]
fn failed_handshakes_are_logged_with_a_reason() {
    let pki = TestPki::new();
    let sink = Sink::start();
    let (proxy, port) = implicit_tls_inbound(&pki, sink.port, "");
    let mut garbage = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(&mut garbage, b"EHLO this is not tls\r\n").unwrap();
    let _silent = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let logged = eventually(Duration::from_secs(5), || {
        let log = proxy.log();
        (log.matches("TLS handshake failed").count() >= 2 && log.contains("timeout")).then_some(log)
    });
    assert!(logged.is_some(), "{}", proxy.log());
}

#[test]
fn an_implicit_tls_listener_refuses_without_plaintext() {
    let pki = TestPki::new();
    let sink = Sink::start();
    let (proxy, port) = implicit_tls_inbound(&pki, sink.port, "allowed_clients = [\"192.0.2.0/24\"]");
    let mut refused = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    refused.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut received = Vec::new();
    let read = std::io::Read::read_to_end(&mut refused, &mut received);
    assert!(read.is_ok(), "the refused session was not closed: {read:?}");
    assert!(received.is_empty(), "a TLS client got text: {:?}", String::from_utf8_lossy(&received));
    assert!(proxy.log().contains("client not in allowed_clients"), "{}", proxy.log());
}

fn postfix_with_tls(pki: &TestPki) -> Postfix {
    Postfix::start(&format!(
        "smtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}\nsmtpd_tls_security_level = may\nsmtpd_tls_loglevel = 1\n",
        pki.path("mx.example.com.pem"),
        pki.path("mx.example.com.key")
    ))
}

#[test]
fn upstream_tls_starttls_and_implicit_with_verification_and_pinning() {
    let pki = TestPki::new();
    let postfix = postfix_with_tls(&pki);
    let fingerprint = pki.fingerprint("mx.example.com.leaf");
    let cases = [
        ("starttls", postfix.port, format!("upstream_tls_ca = \"{}\"", pki.path("ca.pem")), true),
        ("implicit", postfix.tls_port, format!("upstream_tls_pin = \"{fingerprint}\""), true),
        ("starttls", postfix.port, "upstream_tls_verify = false".to_owned(), true),
        ("implicit", postfix.tls_port, format!("upstream_tls_pin = \"{}\"", "00".repeat(32)), false),
        ("starttls", postfix.port, String::new(), false), // the system roots do not know the test CA
    ];
    for (mode, upstream, trust, works) in cases {
        let port = free_port();
        let extra = format!("upstream_tls = \"{mode}\"\n{trust}\n");
        let config = format!("{BATV_SECTION}{}", listener("outbound", port, upstream, "xclient", &extra));
        let _proxy = Proxy::start(&config, &[port]);
        let token = unique("upstream-tls");
        let smtp = Smtp::connect(port);
        if !works {
            assert_eq!(smtp.greeting.code, 421, "{mode} {trust}: {:?}", smtp.greeting);
            continue;
        }
        assert!(smtp.greeting.is(220), "{mode} {trust}: {:?}", smtp.greeting);
        drop(smtp);
        let t = send_mail(port, "erin@example.com", &["frank@example.com"], &format!("Subject: {token}\r\n\r\nx\r\n"));
        assert!(t.end.as_ref().is_some_and(|r| r.is(250)), "{mode} {trust}: {:?}", t.end);
        assert!(postfix.delivered("frank@example.com", &token).is_some(), "{mode} {trust}");
    }
    let log = postfix.log();
    assert!(log.matches("TLS connection established from").count() >= 3, "Postfix saw no TLS sessions:\n{log}");
}

#[test]
fn proxy_v2_tells_the_upstream_the_client_used_tls() {
    let pki = TestPki::new();
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_port = upstream.local_addr().unwrap().port();
    let port = free_port();
    let config = format!(
        "{BATV_SECTION}{}{}",
        listener("inbound", port, upstream_port, "proxy-v2", ""),
        tls_table(&pki, "implicit", false)
    );
    let _proxy = Proxy::start(&config, &[port]);
    let client = std::thread::spawn(move || {
        python(&format!(
            "import socket, ssl\nc = ssl.create_default_context(cafile=\"{}\")\ns = c.wrap_socket(socket.create_connection((\"127.0.0.1\", {port}), timeout=5), server_hostname=\"mx.example.com\")\ntry:\n    s.recv(100)\nexcept Exception:\n    pass\n",
            pki.path("ca.pem")
        ))
    });
    let (mut socket, _) = upstream.accept().unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = [0u8; 16];
    std::io::Read::read_exact(&mut socket, &mut head).unwrap();
    assert_eq!(&head[..12], b"\r\n\r\n\0\r\nQUIT\n");
    assert_eq!(head[12], 0x21);
    let length = u16::from_be_bytes([head[14], head[15]]) as usize;
    let mut rest = vec![0u8; length];
    std::io::Read::read_exact(&mut socket, &mut rest).unwrap();
    let tlvs = &rest[12..];
    assert_eq!(tlvs[0], 0x20, "no PP2_TYPE_SSL TLV: {tlvs:?}");
    assert_eq!(tlvs[3] & 0x01, 0x01, "PP2_CLIENT_SSL not set");
    assert!(String::from_utf8_lossy(tlvs).contains("TLSv1."), "{tlvs:?}");
    drop(socket);
    let _ = client.join();
}

#[test]
fn certificates_reload_on_sighup_without_dropping_tls_sessions() {
    let pki = TestPki::new();
    let sink = Sink::start();
    let port = free_port();
    let dir = TestDir::new("tls-reload.");
    // The listener's certificate files, replaced in place later.
    std::fs::copy(pki.path("mx.example.com.pem"), dir.join("cert.pem")).unwrap();
    std::fs::copy(pki.path("mx.example.com.key"), dir.join("key.pem")).unwrap();
    write_keys(&dir.join("keys"), 3, b"integration-test-secret");
    let tls = format!(
        "[listener.tls]\nmode = \"implicit\"\ncert = \"{}\"\nkey = \"{}\"\n",
        dir.join("cert.pem").display(),
        dir.join("key.pem").display()
    );
    let config = format!("{BATV_SECTION}{}{tls}", listener("inbound", port, sink.port, "none", ""));
    let proxy = Proxy::start_in(dir, &config, &[port]);
    let subject = |servername: &str| {
        let output = Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", servername])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).lines().find(|l| l.starts_with("subject=")).unwrap_or("").to_owned()
    };
    assert!(subject("x.test").contains("mx.example.com"));
    // A TLS session open across the reload keeps working.
    let script = format!(
        r#"
import smtplib, ssl, sys
c = ssl.create_default_context(cafile="{ca}")
s = smtplib.SMTP_SSL("127.0.0.1", {port}, context=c)
s.ehlo("python.test")
sys.stdout.write("open\n"); sys.stdout.flush()
sys.stdin.readline()
s.sendmail("carol@remote.test", ["bob@example.com"], "Subject: across-reload\r\n\r\nx\r\n")
s.quit()
print("sent")
"#,
        ca = pki.path("ca.pem")
    );
    let mut client = Running::spawn(
        Command::new("python3")
            .arg("-c")
            .arg(&script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped()),
    );
    let mut stdout = std::io::BufReader::new(client.child().stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line.trim(), "open");
    std::fs::copy(pki.path("mail.example.org.pem"), proxy.dir.join("cert.pem")).unwrap();
    std::fs::copy(pki.path("mail.example.org.key"), proxy.dir.join("key.pem")).unwrap();
    proxy.signal("HUP");
    assert!(eventually(Duration::from_secs(5), || proxy.log().contains("reload applied").then_some(())).is_some());
    assert!(subject("x.test").contains("mail.example.org"), "new connections get the new certificate");
    std::io::Write::write_all(client.child().stdin.as_mut().unwrap(), b"go\n").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(client.wait().success() && rest.contains("sent"), "the session open across the reload broke");
    assert!(sink.find("across-reload").is_some());
}

/// A certificate made with openssl as if the clock said `when`, valid
/// `days`: `name.pem` and `name.key` in `dir`.
fn dated_certificate(dir: &TestDir, name: &str, when: &str, days: u32) {
    let output = Command::new("faketime")
        .arg(when)
        .args(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"])
        .args(["-subj", "/CN=mx.example.com", "-addext", "subjectAltName=DNS:mx.example.com"])
        .arg("-days")
        .arg(days.to_string())
        .arg("-keyout")
        .arg(dir.join(&format!("{name}.key")))
        .arg("-out")
        .arg(dir.join(&format!("{name}.pem")))
        .output()
        .expect("faketime and openssl");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// Expired and not yet valid certificates are refused at check-config, at
/// start and at reload; one expiring within 14 days is warned about.
#[test]
fn expired_certificates_are_refused_and_expiring_ones_warned_about() {
    provision();
    let dir = TestDir::new("dated-certs.");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let day = |offset: i64| {
        let seconds = now as i64 + offset * 86_400;
        let output = Command::new("date")
            .arg("-u")
            .arg("-d")
            .arg(format!("@{seconds}"))
            .arg("+%Y-%m-%d %H:%M:%S")
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    dated_certificate(&dir, "expired", &day(-30), 10);
    dated_certificate(&dir, "future", &day(30), 10);
    dated_certificate(&dir, "expiring", &day(-80), 85);
    dated_certificate(&dir, "good", &day(-1), 365);
    let fake = common::fake_upstream::FakeUpstream::start(common::fake_upstream::Fault::None);
    let (port, metrics) = (free_port(), free_port());
    let config = |name: &str| {
        format!(
            "{BATV_SECTION}[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n{}[listener.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            listener("inbound", port, fake.port, "none", ""),
            dir.join(&format!("{name}.pem")).display(),
            dir.join(&format!("{name}.key")).display()
        )
    };
    let check = |name: &str| {
        let path = dir.write(&format!("{name}.toml"), &config(name));
        let output = Command::new(proxy_binary()).args(["check-config", "--config"]).arg(&path).output().unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    write_keys(&dir.join("keys"), 3, b"dated-certificate-secret");
    let (code, stderr) = check("expired");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("expired on"), "{stderr}");
    let (code, stderr) = check("future");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("not valid before"), "{stderr}");
    let (code, stderr) = check("expiring");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("expires in 4 days") || stderr.contains("expires in 5 days"), "{stderr}");
    let (code, stderr) = check("good");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("expires in"), "{stderr}");
    // The served certificate's expiry is a metric, in Unix seconds, and
    // follows reloads.
    let expiry = || {
        let (_, text) = http_get(metrics, "/metrics");
        let line =
            text.lines().find(|line| line.starts_with("batv_proxy_tls_certificate_expiry_seconds{")).map(str::to_owned);
        line.map(|line| {
            assert!(line.contains(&format!("listener=\"inbound@127.0.0.1:{port}\"")), "{line}");
            assert!(line.contains("name=\"mx.example.com\""), "{line}");
            line.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as i64 - now as i64
        })
    };
    let days = |seconds: Option<i64>| seconds.map(|seconds| seconds.div_euclid(86_400));
    // Running on a good certificate, a reload onto an expired one is refused.
    let run_dir = TestDir::new("dated-run.");
    write_keys(&run_dir.join("keys"), 3, b"dated-certificate-secret");
    let proxy = Proxy::start_in(run_dir, &config("good"), &[port, metrics]);
    assert_eq!(days(expiry()), Some(364), "valid from yesterday for 365 days");
    std::fs::write(&proxy.config, config("expiring")).unwrap();
    proxy.signal("HUP");
    assert!(
        eventually(Duration::from_secs(5), || (days(expiry()) == Some(5)).then_some(())).is_some(),
        "{}",
        proxy.log()
    );
    std::fs::write(&proxy.config, config("expired")).unwrap();
    proxy.signal("HUP");
    assert!(eventually(Duration::from_secs(5), || proxy.log().contains("reload refused").then_some(())).is_some());
    assert!(proxy.log().contains("expired on"), "{}", proxy.log());
    assert!(Smtp::connect(port).greeting.is(220), "the running listener stays");
    assert_eq!(days(expiry()), Some(5), "the refused reload changed nothing");
}
