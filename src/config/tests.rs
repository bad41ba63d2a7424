use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::batv::{Day, HashAlgorithm};
use crate::policy::glob_match;
use crate::smtp::address::{Domain, Mailbox};

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        std::fs::write(&keys, "1 MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n").unwrap();
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
        Fixture { dir }
    }

    fn parse(&self, text: &str) -> Result<Config, ConfigErrors> {
        Config::parse(text, &self.dir.path().join("cfg.toml"))
    }
}

const MINIMAL: &str = r#"
[batv]
key_file = "keys"
domains = ["example.com", "*.example.org"]

[[listener]]
role = "inbound"
listen = "127.0.0.1:2525"
upstream = "127.0.0.1:10025"
"#;

#[test]
fn minimal_config_gets_defaults() {
    let fixture = Fixture::new();
    let config = fixture.parse(MINIMAL).unwrap();
    assert_eq!(config.batv.hash, HashAlgorithm::Sha256);
    assert_eq!(config.batv.lifetime_days, 7);
    assert_eq!(config.batv.key_file, fixture.dir.path().join("keys"));
    assert_eq!(config.policy.mode, Mode::Enforce);
    assert_eq!(config.policy.untagged_bounce, UntaggedBounce::Inspect);
    assert_eq!(config.ledger.store, LedgerStore::None);
    assert_eq!(config.policy.untagged_stage, UntaggedStage::Data);
    assert_eq!(config.policy.bounce_senders, vec!["mailer-daemon"]);
    let listener = &config.listeners[0];
    assert_eq!(listener.role, Role::Inbound);
    assert_eq!(listener.client_identity, ClientIdentity::Xclient);
    assert_eq!(listener.limits, Limits::default());
}

#[test]
fn risky_settings_are_warned_about() {
    let fixture = Fixture::new();
    let warnings = fixture.parse(MINIMAL).unwrap().warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("[ledger]"), "{warnings:?}");
    let risky =
        format!("{MINIMAL}client_identity = \"none\"\n[policy]\nmode = \"monitor\"\n[ledger]\nstore = \"file\"\n");
    let warnings = fixture.parse(&risky).unwrap().warnings();
    assert!(warnings.iter().any(|w| w.contains("client_identity")) && warnings.iter().any(|w| w.contains("monitor")));
    assert!(!warnings.iter().any(|w| w.contains("[ledger]")), "{warnings:?}");
}

#[test]
fn short_keys_and_open_outbound_listeners_are_warned_about() {
    let fixture = Fixture::new();
    std::fs::write(fixture.dir.path().join("keys"), "1 MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n4 c2VjcmV0\n")
        .unwrap();
    let warnings = fixture.parse(MINIMAL).unwrap().warnings();
    let short: Vec<&String> = warnings.iter().filter(|w| w.contains("byte")).collect();
    assert_eq!(short.len(), 1, "{warnings:?}");
    assert!(short[0].contains("key 4") && short[0].contains("6 bytes"), "{short:?}");
    assert!(!short[0].contains("c2VjcmV0") && !short[0].contains("secret"), "the key is never printed: {short:?}");
    let open = MINIMAL.replace("role = \"inbound\"", "role = \"outbound\"").replace("127.0.0.1:2525", "0.0.0.0:587");
    let warnings = fixture.parse(&open).unwrap().warnings();
    assert!(warnings.iter().any(|w| w.contains("require_auth")), "{warnings:?}");
    let guarded = format!("{open}require_auth = true\n");
    assert!(!fixture.parse(&guarded).unwrap().warnings().iter().any(|w| w.contains("require_auth")));
}

#[test]
fn mta_names_default_to_this_hosts_names() {
    let fixture = Fixture::new();
    let config = fixture.parse(MINIMAL).unwrap();
    let localhost = crate::smtp::address::Domain::parse("LOCALHOST").unwrap();
    assert!(config.batv.mta_names.contains(&localhost));
    let listed = MINIMAL.replace("domains = [", "mta_names = [\"mx1\", \"mx.example.net\"]\ndomains = [");
    let config = fixture.parse(&listed).unwrap();
    assert!(config.batv.mta_names.contains(&crate::smtp::address::Domain::parse("mx1").unwrap()));
    assert!(!config.batv.mta_names.contains(&localhost), "a list replaces the default");
    let bad = MINIMAL.replace("domains = [", "mta_names = [\"*.x\", \"[127.0.0.1]\"]\ndomains = [");
    let errors = fixture.parse(&bad).unwrap_err();
    assert_eq!(errors.0.iter().filter(|e| e.key == "batv.mta_names").count(), 2, "{errors}");
}

#[test]
fn the_inspection_warning_needs_an_inbound_listener() {
    let fixture = Fixture::new();
    let outbound_only = MINIMAL.replace("role = \"inbound\"", "role = \"outbound\"");
    let warnings = fixture.parse(&outbound_only).unwrap().warnings();
    assert!(!warnings.iter().any(|w| w.contains("[ledger]")), "{warnings:?}");
}

#[test]
fn inspect_max_bytes_is_at_most_what_inspection_reads() {
    let fixture = Fixture::new();
    let config = fixture.parse(&format!("{MINIMAL}[policy]\ninspect_max_bytes = \"1MiB\"\n")).unwrap();
    assert_eq!(config.policy.inspect_max_bytes, crate::dsn::MAX_INSPECTED_BYTES);
    let errors = fixture.parse(&format!("{MINIMAL}[policy]\ninspect_max_bytes = \"2MiB\"\n")).unwrap_err();
    assert!(errors.to_string().contains("policy.inspect_max_bytes"), "{errors}");
    assert!(errors.to_string().contains("1MiB"), "{errors}");
}

#[test]
fn every_error_is_reported_together() {
    let fixture = Fixture::new();
    let text = r#"
nonsense_top = 1
[batv]
key_file = "nokeys"
hash = "md5"
lifetime_days = -3
domains = ["example.com", "bad domain"]
[policy]
mode = "loud"
enforce_after = "soon"
[[listener]]
role = "sideways"
listen = "localhost"
upstream = "nowhere"
max_message_size = "lots"
command_timeout = "forever"
nonsense_key = 1
"#;
    let errors = fixture.parse(text).unwrap_err();
    let keys: Vec<&str> = errors.0.iter().map(|e| e.key.as_str()).collect();
    for expected in [
        "nonsense_top",
        "batv.key_file",
        "batv.hash",
        "batv.lifetime_days",
        "batv.domains",
        "policy.mode",
        "policy.enforce_after",
        "listener[1].role",
        "listener[1].listen",
        "listener[1].upstream",
        "listener[1].max_message_size",
        "listener[1].command_timeout",
        "listener[1].nonsense_key",
    ] {
        assert!(keys.contains(&expected), "{expected} missing from {keys:?}");
    }
    for error in &errors.0 {
        assert!(!error.fix.is_empty(), "{error} has no fix");
        assert!(error.to_string().contains("cfg.toml"), "{error}");
    }
    let text = errors.to_string();
    assert!(text.contains("nokeys") && text.contains("keygen"), "{text}");
}

#[test]
fn typos_get_a_suggestion() {
    let fixture = Fixture::new();
    let errors = fixture.parse(&MINIMAL.replace("domains =", "domian = [\"x.com\"]\ndomains =")).unwrap_err();
    assert!(errors.to_string().contains("did you mean `domains`"), "{errors}");
}

#[test]
fn syntax_errors_keep_the_parsers_diagram_on_lines_of_their_own() {
    let fixture = Fixture::new();
    let errors = fixture.parse("[batv]\nkey_file = keys\n").unwrap_err();
    let text = errors.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("cfg.toml: not valid TOML; fix: correct the syntax"), "{text}");
    let quoted = lines.iter().position(|line| line.contains("2 | key_file = keys")).expect(&text);
    assert!(lines[quoted + 1].trim_end().ends_with('^'), "the caret is under the column:\n{text}");
    assert!(lines[1..].iter().all(|line| line.starts_with("    ")), "indented under the file name:\n{text}");
}

/// Every key the README documents, each set, so none has gone missing
/// from its section's reader.
#[test]
fn every_documented_key_is_read() {
    let fixture = Fixture::new();
    for name in ["cert.pem", "key.pem", "ca.pem", "domains.txt"] {
        std::fs::write(fixture.dir.path().join(name), "example.net\n").unwrap();
    }
    let text = r#"
state_dir = "state"
[metrics]
listen = "127.0.0.1:9325"
[server]
drain_timeout = "10s"
worker_threads = 2
[batv]
key_file = "keys"
hash = "sha1"
lifetime_days = 9
domains = ["example.com"]
domains_file = "domains.txt"
sign_form = "subaddress"
mta_names = ["mx.example.com"]
[policy]
mode = "monitor"
untagged_bounce = "reject"
untagged_stage = "rcpt"
enforce_after = 3
bounce_senders = ["Postmaster"]
non_bounce_invalid_tag = "reject"
exempt_senders = ["*@lists.example.com"]
exempt_recipients = ["*@example.net"]
unverified_recipients = ["noreply@example.com"]
inspect_max_bytes = "64KiB"
[policy.message_id_patterns]
"example.com" = ["*@mx.example.com"]
[ledger]
store = "redis"
path = "other.redb"
redis_url = "redis://127.0.0.1:6379/1"
max_entries = 5000
[[listener]]
role = "outbound"
listen = "127.0.0.1:2587"
upstream = "mta.example.com:10587"
client_identity = "proxy-v2"
client_name_lookup = false
allowed_clients = ["10.0.0.0/8"]
require_auth = true
ipv6_client_prefix = 56
hostname = "mx.example.com"
max_connections = 10
max_connections_per_ip = 2
max_command_line = 1024
max_recipients = 5
max_message_size = "1MiB"
max_errors = 3
command_timeout = "1m"
data_timeout = "2m"
upstream_connect_timeout = "3s"
upstream_timeout = "4m"
upstream_data_timeout = "5m"
upstream_tls = "implicit"
upstream_tls_ca = "ca.pem"
upstream_tls_verify = false
upstream_tls_pin = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
upstream_tls_name = "mta.example.com"
[listener.tls]
mode = "implicit"
cert = "cert.pem"
key = "key.pem"
require = true
handshake_timeout = "5s"
[[listener.tls.sni]]
cert = "cert.pem"
key = "key.pem"
"#;
    let config = fixture.parse(text).unwrap_or_else(|errors| panic!("{errors}"));
    let listener = &config.listeners[0];
    assert_eq!((config.worker_threads, config.batv.lifetime_days, config.ledger.max_entries), (Some(2), 9, 5000));
    let LedgerStore::Redis(redis) = &config.ledger.store else { panic!("{:?}", config.ledger.store) };
    assert_eq!(redis.topology, crate::config::RedisTopology::Single("redis://127.0.0.1:6379/1".into()));
    assert_eq!(config.policy.bounce_senders, ["postmaster"]);
    assert_eq!((listener.ipv6_client_prefix, listener.limits.max_command_line), (56, 1024));
    assert_eq!(listener.upstream_tls.verify, UpstreamVerify::Pin(vec![[0; 32]]));
    let tls = listener.tls.as_ref().unwrap();
    assert_eq!(
        (tls.mode, tls.certificates.len(), tls.handshake_timeout),
        (TlsMode::Implicit, 2, Duration::from_secs(5))
    );
}

#[test]
fn defaults_are_the_named_constants() {
    let fixture = Fixture::new();
    let config = fixture.parse(MINIMAL).unwrap();
    assert_eq!(config.drain_timeout, DEFAULT_DRAIN_TIMEOUT);
    assert_eq!(config.state_dir, Path::new(DEFAULT_STATE_DIR));
    assert_eq!(config.batv.lifetime_days, DEFAULT_LIFETIME_DAYS);
    assert_eq!(config.policy.inspect_max_bytes as u64, DEFAULT_INSPECT_MAX_BYTES);
    assert_eq!(config.ledger, LedgerSettings::default());
    let listener = &config.listeners[0];
    assert_eq!(listener.limits.max_message_size, 50 * 1024 * 1024, "Limits::default() is unchanged");
    assert_eq!(
        (listener.limits.command_timeout, listener.limits.data_timeout),
        (DEFAULT_COMMAND_TIMEOUT, DEFAULT_DATA_TIMEOUT)
    );
    assert_eq!(listener.ipv6_client_prefix, DEFAULT_IPV6_CLIENT_PREFIX);
    assert!(listener.client_name_lookup && !listener.require_auth && listener.tls.is_none());
    let with_file_ledger =
        fixture.parse(&format!("state_dir = \"/srv\"\n{MINIMAL}[ledger]\nstore = \"file\"\n")).unwrap();
    assert_eq!(with_file_ledger.ledger.store, LedgerStore::File(Path::new("/srv").join(DEFAULT_LEDGER_FILE)));
}

#[test]
fn world_readable_keys_are_a_config_error() {
    let fixture = Fixture::new();
    std::fs::set_permissions(fixture.dir.path().join("keys"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let errors = fixture.parse(MINIMAL).unwrap_err();
    assert!(errors.to_string().contains("chmod 600"), "{errors}");
}

#[test]
fn domains_match_exactly_and_by_wildcard() {
    let mut set = DomainSet::default();
    set.insert("Example.com");
    set.insert("*.example.org");
    let check = |name: &str| set.contains(&Domain::parse(name).unwrap());
    assert!(check("example.com") && check("EXAMPLE.COM") && check("example.com."));
    assert!(check("mail.example.org") && check("a.b.example.org"));
    assert!(!check("example.org") && !check("sub.example.com") && !check("badexample.org") && !check("example.net"));
}

#[test]
fn domains_file_is_read() {
    let fixture = Fixture::new();
    std::fs::write(fixture.dir.path().join("domains.txt"), "# ours\nexample.net\n*.example.io # all subdomains\n\n")
        .unwrap();
    let config = fixture.parse(&MINIMAL.replace("domains = [", "domains_file = \"domains.txt\"\ndomains = [")).unwrap();
    assert!(config.batv.domains.contains(&Domain::parse("example.net").unwrap()));
    assert!(config.batv.domains.contains(&Domain::parse("x.example.io").unwrap()));
    assert!(config.batv.domains.contains(&Domain::parse("example.com").unwrap()));
    std::fs::write(fixture.dir.path().join("domains.txt"), "not a domain\n").unwrap();
    let errors =
        fixture.parse(&MINIMAL.replace("domains = [", "domains_file = \"domains.txt\"\ndomains = [")).unwrap_err();
    assert!(errors.to_string().contains("domains.txt:1"), "{errors}");
}

#[test]
fn values_parse() {
    let fixture = Fixture::new();
    let text = format!(
        "{MINIMAL}max_message_size = \"20MiB\"\ncommand_timeout = \"2m\"\ndata_timeout = 60\nclient_identity = \"proxy-v2\"\nhostname = \"mx.example.com\"\n[policy]\nenforce_after = \"2026-12-01\"\nexempt_senders = [\"*@lists.example.com\"]\n"
    );
    let config = fixture.parse(&format!("[server]\nworker_threads = 1\ndrain_timeout = \"10s\"\n{text}")).unwrap();
    assert_eq!(config.worker_threads, Some(1));
    assert_eq!(config.drain_timeout, Duration::from_secs(10));
    let limits = &config.listeners[0].limits;
    assert_eq!(limits.max_message_size, 20 * 1024 * 1024);
    assert_eq!(limits.command_timeout, Duration::from_secs(120));
    assert_eq!(limits.data_timeout, Duration::from_secs(60));
    assert_eq!(config.listeners[0].client_identity, ClientIdentity::ProxyV2);
    assert_eq!(config.policy.enforce_after, Some(EnforceAfter::Date(Day::parse("2026-12-01").unwrap())));
    assert!(config.policy.exempt_senders[0].matches(&Mailbox::parse("News@Lists.Example.com").unwrap()));
}

#[test]
fn patterns() {
    let mailbox = |text| Mailbox::parse(text).unwrap();
    assert!(!AddressPattern::new("owner-*").matches(&mailbox("owner-x@example.com")));
    assert!(AddressPattern::new("owner-*@*").matches(&mailbox("owner-x@example.com")));
    assert!(AddressPattern::new("*.example.net").matches(&mailbox("a@lists.example.net")));
    assert!(!AddressPattern::new("*.example.net").matches(&mailbox("a@example.net")));
    assert!(AddressPattern::new("example.net").matches(&mailbox("a@EXAMPLE.net")));
    assert!(AddressPattern::new("*-bounces+*@*").matches(&mailbox("list-bounces+a=b.c@example.com")));
    assert!(glob_match("a*b*c", "axxbyyc") && !glob_match("a*b*c", "axxbyy"));
}

#[test]
fn message_id_patterns_by_domain_and_wildcard() {
    let fixture = Fixture::new();
    let text = format!(
        "{MINIMAL}[policy.message_id_patterns]\n\"example.com\" = [\"*@mx.example.com\"]\n\"*.example.org\" = [\"*.javamail.*@*\"]\n"
    );
    let policy = fixture.parse(&text).unwrap().policy;
    let domain = |name: &str| Domain::parse(name).unwrap();
    assert!(policy.matches_message_id(&domain("EXAMPLE.com"), "<ABC.123@MX.example.com>"));
    assert!(!policy.matches_message_id(&domain("example.com"), "<abc@other.test>"));
    assert!(policy.matches_message_id(&domain("lists.example.org"), "<1.JavaMail.app@host>"));
    assert!(!policy.matches_message_id(&domain("example.org"), "<1.JavaMail.app@host>"));
}

#[test]
fn client_networks() {
    let ip = |text: &str| text.parse::<std::net::IpAddr>().unwrap();
    let net = ClientNetwork::parse("10.0.0.0/8").unwrap();
    assert!(net.contains(ip("10.1.2.3")) && !net.contains(ip("11.0.0.1")));
    assert!(net.contains(ip("::ffff:10.9.9.9")), "IPv4 clients on a dual-stack socket");
    let single = ClientNetwork::parse("192.0.2.7").unwrap();
    assert!(single.contains(ip("192.0.2.7")) && !single.contains(ip("192.0.2.8")));
    let v6 = ClientNetwork::parse("2001:db8::/32").unwrap();
    assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")));
    assert!(ClientNetwork::parse("0.0.0.0/0").unwrap().contains(ip("203.0.113.1")));
    assert_eq!(ClientNetwork::parse("10.0.0.0/33"), None);
    assert_eq!(ClientNetwork::parse("ten"), None);
}

#[test]
fn sizes() {
    assert_eq!(parse_size("10240000"), Some(10_240_000));
    assert_eq!(parse_size("50MiB"), Some(50 * 1024 * 1024));
    assert_eq!(parse_size("10 MB"), Some(10_000_000));
    assert_eq!(parse_size("lots"), None);
    assert_eq!(parse_size("5TB"), None);
}

/// The `key: problem` pairs of a configuration that must not load.
fn problems(fixture: &Fixture, text: &str) -> Vec<String> {
    match fixture.parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(errors) => errors.0.iter().map(|e| format!("{}: {}", e.key, e.problem)).collect(),
    }
}

#[test]
fn redis_settings_are_checked_key_by_key() {
    let fixture = Fixture::new();
    std::fs::write(fixture.dir.path().join("ca.pem"), "x").unwrap();
    std::fs::write(fixture.dir.path().join("password"), "s3cret\n").unwrap();
    let ledger = |keys: &str| format!("{MINIMAL}[ledger]\nstore = \"redis\"\n{keys}\n");
    let config = fixture
        .parse(&ledger(
            "redis_url = \"rediss+sentinel://10.0.0.1:26379,10.0.0.2/batv/2\"\nredis_username = \"proxy\"\n\
             redis_password_file = \"password\"\nredis_ca_file = \"ca.pem\"\nredis_wait_replicas = 1\n",
        ))
        .unwrap_or_else(|errors| panic!("{errors}"));
    let LedgerStore::Redis(redis) = &config.ledger.store else { panic!("{:?}", config.ledger.store) };
    assert!(redis.tls && redis.wait_replicas == 1 && redis.username.as_deref() == Some("proxy"));
    assert_eq!(redis.password, Some(RedisPassword("s3cret".into())), "the final newline is not part of it");
    assert!(!format!("{config:?}").contains("s3cret"), "the password is never in Debug output");
    assert!(matches!(&redis.topology, RedisTopology::Sentinel { service, db: 2, .. } if service == "batv"));
    assert_eq!(config.ledger.path, Path::new(DEFAULT_STATE_DIR).join(DEFAULT_LEDGER_FILE), "the outage queue");
    for (keys, wanted) in [
        ("redis_url = \"http://x\"", "ledger.redis_url: \"http://x\" is not a Redis URL"),
        ("redis_url = \"redis+sentinel://a:1\"", "ledger.redis_url: the Sentinel URL names no service"),
        (
            "redis_url = \"redis://h\"\nredis_password_file = \"password\"\nredis_password_env = \"HOME\"",
            "ledger.redis_password_env: both redis_password_file and redis_password_env are set",
        ),
        (
            "redis_url = \"redis://h\"\nredis_password_env = \"BATV_TEST_SURELY_UNSET\"",
            "ledger.redis_password_env: the environment variable BATV_TEST_SURELY_UNSET is not set",
        ),
        ("redis_url = \"redis://h\"\nredis_ca_file = \"ca.pem\"", "ledger.redis_ca_file: is only used with TLS"),
        ("redis_url = \"rediss://h\"\nredis_client_cert = \"ca.pem\"", "ledger.redis_client_key: missing"),
        (
            "redis_url = \"redis+cluster://a,b\"\nredis_wait_replicas = 1",
            "ledger.redis_wait_replicas: is not supported with Redis Cluster",
        ),
        (
            "redis_url = \"redis://:pw@h\"\nredis_password_file = \"password\"",
            "ledger.redis_url: the URL carries a password and redis_password_file/_env gives one too",
        ),
        ("", "ledger.redis_url: missing"),
    ] {
        let found = problems(&fixture, &ledger(keys));
        assert!(found.iter().any(|p| p == wanted), "{keys}: {found:?}");
    }
    let found = problems(&fixture, &ledger("redis_url = \"redis://h\"\nredis_ca_file = \"missing.pem\""));
    assert!(found.iter().any(|p| p.starts_with("ledger.redis_ca_file: cannot read")), "{found:?}");
}

#[test]
fn per_domain_key_sets_and_staged_keys() {
    let fixture = Fixture::new();
    let write = |name: &str, text: &str| {
        let path = fixture.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    write("tenant.keys", "4 dGVuYW50LWtleS0wMTIzNDU2Nzg5YWJjZGVm\n");
    write("future.keys", "5 ZnV0dXJlLWtleS0wMTIzNDU2Nzg5YWJjZGVm activate=2099-01-01T00:00:00Z\n");
    let batv = |tables: &str| {
        format!(
            "[batv]\nkey_file = \"keys\"\ndomains = [\"example.com\"]\n{tables}\n[[listener]]\nrole = \"inbound\"\n\
             listen = \"127.0.0.1:2525\"\nupstream = \"127.0.0.1:10025\"\n"
        )
    };
    let config = fixture
        .parse(&batv(
            "[[batv.keys]]\ndomains = [\"tenant.example\", \"*.tenant.example\"]\nkey_file = \"tenant.keys\"\n",
        ))
        .unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(config.domain_keys.len(), 1);
    assert!(
        config.batv.domains.contains(&Domain::parse("mail.tenant.example").unwrap()),
        "a tenant's domains are ours"
    );
    let set = &config.domain_keys[0];
    let codec = crate::batv::Codec::new(&config.keys, config.batv.hash, 7, config.batv.sign_form)
        .with_domain_keys(&set.domains, &set.keys);
    let now = crate::batv::Moment::from(std::time::SystemTime::now());
    let tenant = Domain::parse("tenant.example").unwrap();
    assert_eq!(codec.signing_key(&tenant, now).number(), 4);
    assert_eq!(codec.signing_key(&Domain::parse("example.com").unwrap(), now).number(), 1);
    for (tables, wanted) in [
        (
            "[[batv.keys]]\ndomains = [\"t.example\"]\nkey_file = \"tenant.keys\"\n\
             [[batv.keys]]\ndomains = [\"T.example\"]\nkey_file = \"tenant.keys\"\n",
            "batv.keys[2].domains: \"T.example\" is also in keys[1]",
        ),
        ("[[batv.keys]]\nkey_file = \"tenant.keys\"\n", "batv.keys[1].domains: missing"),
        ("[[batv.keys]]\ndomains = [\"t.example\"]\n", "batv.keys[1].key_file: missing"),
        ("[[batv.keys]]\ndomains = [\"t.example\"]\nkey_file = \"future.keys\"\n", "batv.keys[1].key_file: no key in"),
    ] {
        let found = problems(&fixture, &batv(tables));
        assert!(found.iter().any(|p| p.starts_with(wanted)), "{tables}: {found:?}");
    }
}

#[test]
fn message_id_pattern_keys_outside_our_domains_are_warned_about() {
    let fixture = Fixture::new();
    let text = format!(
        "{MINIMAL}[policy.message_id_patterns]\n\"example.com\" = [\"*@mx.example.com\"]\n\"*.example.org\" = [\"*@a\"]\n\
         \"example.net\" = [\"*@mx.example.net\"]\n\"*.example.com\" = [\"*@b\"]\n"
    );
    let warnings = fixture.parse(&text).unwrap().warnings();
    let unused: Vec<&String> = warnings.iter().filter(|w| w.contains("message_id_patterns")).collect();
    assert_eq!(unused.len(), 2, "{unused:?}");
    assert!(unused[0].contains("\"*.example.com\"") && unused[1].contains("\"example.net\""), "{unused:?}");
}

#[test]
fn exemptions_are_read_and_checked() {
    let fixture = Fixture::new();
    let good = format!(
        "{MINIMAL}[[policy.exemption]]\nname = \"partner\"\nclients = [\"192.0.2.0/24\"]\nclient_names = [\".partner.example\"]\n\
         exempts = [\"untagged_bounce\", \"auto_reply\"]\nlisteners = [\"inbound@127.0.0.1:2525\"]\n\
         [policy.actions]\nuntagged_autoreply = \"mark\"\nmark_header = \"X-Spam-Flag: YES\"\n"
    );
    let config = fixture.parse(&good).unwrap();
    let exemption = &config.policy.exemptions.0[0];
    assert_eq!(
        (exemption.name.as_str(), exemption.scopes.len(), exemption.client_names[0].as_str()),
        ("partner", 2, ".partner.example")
    );
    assert_eq!(config.policy.actions.untagged_autoreply, crate::policy::Action::Mark);
    assert_eq!(config.policy.actions.mark_header.name, "X-Spam-Flag");
    let bad = format!(
        "{MINIMAL}[[policy.exemption]]\nname = \"everything\"\nexempts = [\"untagged_bounce\"]\n\
         [[policy.exemption]]\nname = \"typo\"\nclients = [\"192.0.2.0/33\"]\nexempts = [\"bounces\"]\nlisteners = [\"inbound@1.2.3.4:25\"]\n\
         [policy.actions]\nforged_tag = \"drop\"\nmark_header = \"no colon\"\n"
    );
    let errors = fixture.parse(&bad).unwrap_err();
    for key in [
        "policy.exemption[1].exempts",
        "policy.exemption[2].clients",
        "policy.exemption[2].exempts",
        "policy.actions.forged_tag",
        "policy.actions.mark_header",
    ] {
        assert!(errors.0.iter().any(|e| e.key == key), "{key} not reported:\n{errors}");
    }
}
