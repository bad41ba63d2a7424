//! Walking the TOML table: each key read with its type and range checked,
//! every problem recorded with the key and a fix.

use super::*;

pub(super) struct Reader {
    pub(super) file: PathBuf,
    pub(super) errors: Vec<ConfigError>,
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a number",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}

impl Reader {
    pub(super) fn error(&mut self, key: &str, problem: impl Into<String>, fix: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            key: key.to_owned(),
            problem: problem.into(),
            fix: fix.into(),
        });
    }

    fn unknown_keys(&mut self, table: &Table, prefix: &str, known: &[&str]) {
        for key in table.keys() {
            if !known.contains(&key.as_str()) {
                let fix = match suggestion(key, known) {
                    Some(close) => format!("did you mean `{close}`? Known keys here: {}", known.join(", ")),
                    None => format!("remove it; known keys here: {}", known.join(", ")),
                };
                self.error(&join(prefix, key), "unknown key", fix);
            }
        }
    }

    fn wrong_type(&mut self, key: &str, value: &Value, wanted: &str, example: &str) {
        self.error(key, format!("must be {wanted}, not {}", type_name(value)), format!("write it like {example}"));
    }

    fn string<'t>(&mut self, table: &'t Table, prefix: &str, key: &str, example: &str) -> Option<&'t str> {
        match table.get(key)? {
            Value::String(s) => Some(s),
            other => {
                self.wrong_type(&join(prefix, key), other, "a string", example);
                None
            }
        }
    }

    fn integer(&mut self, table: &Table, prefix: &str, key: &str, range: (i64, i64)) -> Option<i64> {
        let name = join(prefix, key);
        match table.get(key)? {
            Value::Integer(n) if (range.0..=range.1).contains(n) => Some(*n),
            Value::Integer(n) => {
                self.error(
                    &name,
                    format!("{n} is out of range"),
                    format!("use a whole number from {} to {}", range.0, range.1),
                );
                None
            }
            other => {
                self.wrong_type(&name, other, "a whole number", &format!("{key} = {}", range.0.max(1)));
                None
            }
        }
    }

    fn strings(&mut self, table: &Table, prefix: &str, key: &str) -> Option<Vec<String>> {
        let name = join(prefix, key);
        match table.get(key)? {
            Value::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        other => {
                            self.wrong_type(&name, other, "a list of strings", &format!("{key} = [\"...\"]"));
                            return None;
                        }
                    }
                }
                Some(out)
            }
            other => {
                self.wrong_type(&name, other, "a list of strings", &format!("{key} = [\"...\"]"));
                None
            }
        }
    }

    fn choice<T: Copy>(&mut self, table: &Table, prefix: &str, key: &str, options: &[(&str, T)], default: T) -> T {
        let Some(text) = self.string(table, prefix, key, &format!("{key} = \"{}\"", options[0].0)) else {
            return default;
        };
        match options.iter().find(|(name, _)| *name == text) {
            Some((_, value)) => *value,
            None => {
                let names: Vec<String> = options.iter().map(|(name, _)| format!("\"{name}\"")).collect();
                self.error(
                    &join(prefix, key),
                    format!("\"{text}\" is not one of {}", names.join(", ")),
                    format!("use one of {}", names.join(", ")),
                );
                default
            }
        }
    }

    fn duration(&mut self, table: &Table, prefix: &str, key: &str, default: Duration) -> Duration {
        let name = join(prefix, key);
        match table.get(key) {
            None => default,
            Some(Value::Integer(seconds)) if *seconds > 0 => Duration::from_secs(*seconds as u64),
            Some(Value::String(text)) => match humantime::parse_duration(text) {
                Ok(duration) if !duration.is_zero() => duration,
                _ => {
                    self.error(
                        &name,
                        format!("\"{text}\" is not a duration"),
                        "write seconds (300) or a duration like \"5m\", \"90s\"",
                    );
                    default
                }
            },
            Some(other) => {
                self.error(
                    &name,
                    format!("must be a positive duration, not {}", type_name(other)),
                    "write seconds (300) or a duration like \"5m\"",
                );
                default
            }
        }
    }

    fn size(&mut self, table: &Table, prefix: &str, key: &str, default: u64) -> u64 {
        let name = join(prefix, key);
        match table.get(key) {
            None => default,
            Some(Value::Integer(bytes)) if *bytes > 0 => *bytes as u64,
            Some(Value::String(text)) => match parse_size(text) {
                Some(bytes) if bytes > 0 => bytes,
                _ => {
                    self.error(
                        &name,
                        format!("\"{text}\" is not a size"),
                        "write bytes (10240000) or a size like \"50MiB\", \"10MB\"",
                    );
                    default
                }
            },
            Some(other) => {
                self.error(
                    &name,
                    format!("must be a positive size, not {}", type_name(other)),
                    "write bytes or a size like \"50MiB\"",
                );
                default
            }
        }
    }

    fn boolean(&mut self, table: &Table, prefix: &str, key: &str, default: bool) -> bool {
        match table.get(key) {
            None => default,
            Some(Value::Boolean(value)) => *value,
            Some(other) => {
                self.wrong_type(&join(prefix, key), other, "true or false", &format!("{key} = {default}"));
                default
            }
        }
    }

    fn count(&mut self, table: &Table, prefix: &str, key: &str, default: usize) -> usize {
        self.integer(table, prefix, key, (1, 10_000_000)).map_or(default, |n| n as usize)
    }

    fn path(&self, base: &Path, text: &str) -> PathBuf {
        let path = Path::new(text);
        if path.is_absolute() { path.to_owned() } else { base.join(path) }
    }

    pub(super) fn config(&mut self, table: &Table, base: &Path) -> Option<Config> {
        self.unknown_keys(table, "", &["state_dir", "batv", "policy", "listener", "metrics", "server", "ledger"]);
        let metrics_listen = match table.get("metrics") {
            None => None,
            Some(Value::Table(metrics)) => {
                self.unknown_keys(metrics, "metrics", &["listen"]);
                match self.string(metrics, "metrics", "listen", "listen = \"127.0.0.1:9325\"") {
                    Some(text) => match text.parse::<SocketAddr>() {
                        Ok(address) => Some(address),
                        Err(_) => {
                            self.error(
                                "metrics.listen",
                                format!("\"{text}\" is not an IP address and port"),
                                "write listen = \"127.0.0.1:9325\"",
                            );
                            None
                        }
                    },
                    None => None,
                }
            }
            Some(other) => {
                self.wrong_type("metrics", other, "a table", "[metrics]");
                None
            }
        };
        let (drain_timeout, worker_threads) = match table.get("server") {
            None => (Duration::from_secs(30), None),
            Some(Value::Table(server)) => {
                self.unknown_keys(server, "server", &["drain_timeout", "worker_threads"]);
                (
                    self.duration(server, "server", "drain_timeout", Duration::from_secs(30)),
                    self.integer(server, "server", "worker_threads", (1, 1024)).map(|n| n as usize),
                )
            }
            Some(other) => {
                self.wrong_type("server", other, "a table", "[server]");
                (Duration::from_secs(30), None)
            }
        };
        let state_dir = self
            .string(table, "", "state_dir", "state_dir = \"/var/lib/batv-proxy\"")
            .map_or_else(|| PathBuf::from("/var/lib/batv-proxy"), |text| self.path(base, text));

        let empty = Table::new();
        let batv_table = match table.get("batv") {
            Some(Value::Table(t)) => t,
            Some(other) => {
                self.wrong_type("batv", other, "a table", "[batv]");
                &empty
            }
            None => {
                self.error("batv", "the [batv] table is missing", "add [batv] with key_file and domains");
                &empty
            }
        };
        let (batv, keys) = self.batv(batv_table, base);

        let policy_table = match table.get("policy") {
            Some(Value::Table(t)) => t,
            Some(other) => {
                self.wrong_type("policy", other, "a table", "[policy]");
                &empty
            }
            None => &empty,
        };
        let policy = self.policy(policy_table);

        let mut listeners = Vec::new();
        match table.get("listener") {
            Some(Value::Array(items)) => {
                for (index, item) in items.iter().enumerate() {
                    let prefix = format!("listener[{}]", index + 1);
                    match item {
                        Value::Table(t) => listeners.extend(self.listener(t, &prefix, base)),
                        other => self.wrong_type(&prefix, other, "a table", "[[listener]]"),
                    }
                }
            }
            Some(other) => self.wrong_type("listener", other, "a list of tables", "[[listener]]"),
            None => self.error(
                "listener",
                "no [[listener]] is configured",
                "add at least one [[listener]] with role, listen and upstream",
            ),
        }
        let mut seen = HashSet::new();
        for listener in &listeners {
            if !seen.insert(listener.listen) {
                self.error(
                    "listener",
                    format!("two listeners use {}", listener.listen),
                    "give each listener its own listen address",
                );
            }
        }
        if let Some(EnforceAfter::DaysAfterFirstStart(_)) = policy.enforce_after
            && !table.contains_key("state_dir")
            && !Path::new("/var/lib/batv-proxy").exists()
        {
            self.error(
                "state_dir",
                "enforce_after counts days from the first start, which is remembered in state_dir, and /var/lib/batv-proxy does not exist",
                "set state_dir to a writable directory, or give enforce_after as a date",
            );
        }
        let ledger = match table.get("ledger") {
            None => LedgerSettings { store: LedgerStore::None, max_entries: 1_000_000 },
            Some(Value::Table(ledger)) => self.ledger(ledger, &state_dir),
            Some(other) => {
                self.wrong_type("ledger", other, "a table", "[ledger]");
                LedgerSettings { store: LedgerStore::None, max_entries: 1_000_000 }
            }
        };
        if let Some(address) = metrics_listen
            && listeners.iter().any(|l| l.listen == address)
        {
            self.error(
                "metrics.listen",
                format!("{address} is also a listener's address"),
                "give the metrics endpoint its own port",
            );
        }
        Some(Config {
            file: self.file.clone(),
            state_dir,
            batv: batv?,
            keys: keys?,
            policy,
            listeners,
            metrics_listen,
            drain_timeout,
            worker_threads,
            ledger,
        })
    }

    fn ledger(&mut self, table: &Table, state_dir: &Path) -> LedgerSettings {
        let prefix = "ledger";
        self.unknown_keys(table, prefix, &["store", "path", "redis_url", "max_entries"]);
        #[derive(Clone, Copy)]
        enum Kind {
            None,
            File,
            Redis,
        }
        let kind = self.choice(
            table,
            prefix,
            "store",
            &[("none", Kind::None), ("file", Kind::File), ("redis", Kind::Redis)],
            Kind::None,
        );
        let max_entries = self.integer(table, prefix, "max_entries", (1000, 1_000_000_000)).unwrap_or(1_000_000) as u64;
        let store = match kind {
            Kind::None => LedgerStore::None,
            Kind::File => {
                let path = self.string(table, prefix, "path", "path = \"ledger.redb\"").unwrap_or("ledger.redb");
                // Relative to state_dir: the ledger is state, not configuration.
                LedgerStore::File(self.path(state_dir, path))
            }
            Kind::Redis => match self.string(table, prefix, "redis_url", "redis_url = \"redis://127.0.0.1:6379/0\"") {
                Some(url)
                    if url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://") =>
                {
                    LedgerStore::Redis(url.to_owned())
                }
                Some(url) => {
                    self.error(
                        "ledger.redis_url",
                        format!("\"{url}\" is not a Redis URL"),
                        "write redis_url = \"redis://host:6379/0\"",
                    );
                    LedgerStore::None
                }
                None => {
                    self.error("ledger.redis_url", "missing", "add redis_url = \"redis://host:6379/0\"");
                    LedgerStore::None
                }
            },
        };
        LedgerSettings { store, max_entries }
    }

    fn batv(&mut self, table: &Table, base: &Path) -> (Option<BatvSettings>, Option<KeyRing>) {
        let prefix = "batv";
        self.unknown_keys(
            table,
            prefix,
            &["key_file", "hash", "lifetime_days", "domains", "domains_file", "sign_form", "mta_names"],
        );
        let hash = self.choice(
            table,
            prefix,
            "hash",
            &[("sha256", HashAlgorithm::Sha256), ("sha1", HashAlgorithm::Sha1)],
            HashAlgorithm::Sha256,
        );
        let lifetime_days =
            self.integer(table, prefix, "lifetime_days", (1, i64::from(MAX_LIFETIME_DAYS))).unwrap_or(7) as u16;
        let sign_form = self.choice(
            table,
            prefix,
            "sign_form",
            &[("standard", TagForm::Standard), ("subaddress", TagForm::Subaddress)],
            TagForm::Standard,
        );

        let mut domains = DomainSet::default();
        for entry in self.strings(table, prefix, "domains").unwrap_or_default() {
            if let Err(problem) = check_domain_entry(&entry) {
                self.error(
                    "batv.domains",
                    format!("\"{entry}\": {problem}"),
                    "write a domain (example.com) or a wildcard (*.example.com)",
                );
            } else {
                domains.insert(&entry);
            }
        }
        if let Some(text) = self.string(table, prefix, "domains_file", "domains_file = \"domains.txt\"") {
            let path = self.path(base, text);
            match std::fs::read_to_string(&path) {
                Ok(contents) => {
                    for (index, line) in contents.lines().enumerate() {
                        let entry = line.split('#').next().unwrap_or("").trim();
                        if entry.is_empty() {
                            continue;
                        }
                        match check_domain_entry(entry) {
                            Ok(()) => domains.insert(entry),
                            Err(problem) => self.error(
                                "batv.domains_file",
                                format!("{}:{}: \"{entry}\": {problem}", path.display(), index + 1),
                                "one domain or *.wildcard per line, # for comments",
                            ),
                        }
                    }
                }
                Err(error) => self.error(
                    "batv.domains_file",
                    format!("cannot read {}: {error}", path.display()),
                    "check the path (relative paths are relative to this file)",
                ),
            }
        }
        let mta_names = match self.strings(table, prefix, "mta_names") {
            Some(names) => {
                let mut set = DomainSet::default();
                for name in names {
                    if Domain::parse(&name).is_err() || name.contains('*') || name.starts_with('[') || name.is_empty() {
                        self.error(
                            "batv.mta_names",
                            format!("\"{name}\" is not a host name"),
                            "list the names the MTA takes as its own (Postfix: mydestination's host names, Exim: primary_hostname), like mta_names = [\"mx.example.net\", \"localhost\"]",
                        );
                    } else {
                        set.insert(&name);
                    }
                }
                set
            }
            None => default_mta_names(),
        };
        if domains.is_empty() && !table.contains_key("domains_file") {
            self.error(
                "batv.domains",
                "no domains are configured, so nothing would be signed or verified",
                "list your domains: domains = [\"example.com\"]",
            );
        }

        let key_file = match self.string(table, prefix, "key_file", "key_file = \"keys\"") {
            Some(text) => self.path(base, text),
            None => {
                if !table.contains_key("key_file") {
                    self.error(
                        "batv.key_file",
                        "no key file is configured",
                        "set key_file = \"keys\" and create it with: batv-proxy keygen --output keys",
                    );
                }
                return (None, None);
            }
        };
        let keys = match KeyRing::load(&key_file) {
            Ok(keys) => Some(keys),
            Err(error) => {
                let fix = match &error {
                    crate::batv::keys::KeyFileError::Unreadable { source, .. }
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        format!("create it with: batv-proxy keygen --output {}", key_file.display())
                    }
                    crate::batv::keys::KeyFileError::Permissions { .. } => format!("chmod 600 {}", key_file.display()),
                    _ => "correct the key file (one `K base64-secret` per line)".into(),
                };
                let problem = error.to_string();
                let problem = problem.split("; fix:").next().unwrap_or(&problem).to_owned();
                self.error("batv.key_file", problem, fix);
                None
            }
        };
        if let Some(keys) = &keys
            && hash == HashAlgorithm::Sha1
        {
            for (id, secret) in keys.iter() {
                if secret.expose().len() > 64 || secret.expose().contains(&0) {
                    self.error(
                        "batv.key_file",
                        format!("key {id} is longer than 64 bytes or contains a NUL byte, which Exim cannot use, so hash = \"sha1\" would not interoperate"),
                        "use keys of at most 64 bytes without NUL (batv-proxy keygen makes 32 bytes), or hash = \"sha256\"",
                    );
                }
            }
        }
        (Some(BatvSettings { key_file, hash, lifetime_days, domains, sign_form, mta_names }), keys)
    }

    fn policy(&mut self, table: &Table) -> PolicySettings {
        let prefix = "policy";
        self.unknown_keys(
            table,
            prefix,
            &[
                "mode",
                "untagged_bounce",
                "untagged_stage",
                "enforce_after",
                "bounce_senders",
                "non_bounce_invalid_tag",
                "exempt_senders",
                "exempt_recipients",
                "unverified_recipients",
                "message_id_patterns",
                "inspect_max_bytes",
            ],
        );
        let mode = self.choice(
            table,
            prefix,
            "mode",
            &[("enforce", Mode::Enforce), ("monitor", Mode::Monitor)],
            Mode::Enforce,
        );
        let untagged_bounce = self.choice(
            table,
            prefix,
            "untagged_bounce",
            &[
                ("reject", UntaggedBounce::Reject),
                ("accept", UntaggedBounce::Accept),
                ("inspect", UntaggedBounce::Inspect),
            ],
            UntaggedBounce::Inspect,
        );
        let untagged_stage = self.choice(
            table,
            prefix,
            "untagged_stage",
            &[("data", UntaggedStage::Data), ("rcpt", UntaggedStage::Rcpt)],
            UntaggedStage::Data,
        );
        let non_bounce_invalid_tag = self.choice(
            table,
            prefix,
            "non_bounce_invalid_tag",
            &[("strip", NonBounceInvalidTag::Strip), ("reject", NonBounceInvalidTag::Reject)],
            NonBounceInvalidTag::Strip,
        );
        let enforce_after = match table.get("enforce_after") {
            None => None,
            Some(Value::String(text)) => match Day::parse(text) {
                Some(day) => Some(EnforceAfter::Date(day)),
                None => {
                    self.error(
                        "policy.enforce_after",
                        format!("\"{text}\" is not a date"),
                        "write a date \"YYYY-MM-DD\" or a number of days after the first start",
                    );
                    None
                }
            },
            Some(Value::Datetime(datetime)) => {
                match datetime.date.and_then(|d| Day::parse(&format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))) {
                    Some(day) if datetime.time.is_none() => Some(EnforceAfter::Date(day)),
                    _ => {
                        self.error(
                            "policy.enforce_after",
                            "must be a date without a time",
                            "write enforce_after = \"2026-12-01\"",
                        );
                        None
                    }
                }
            }
            Some(Value::Integer(days)) if (0..=3650).contains(days) => {
                Some(EnforceAfter::DaysAfterFirstStart(*days as u32))
            }
            Some(other) => {
                self.error(
                    "policy.enforce_after",
                    format!("must be a date or a number of days, not {}", type_name(other)),
                    "write enforce_after = \"2026-12-01\" or enforce_after = 7",
                );
                None
            }
        };
        let bounce_senders = self
            .strings(table, prefix, "bounce_senders")
            .unwrap_or_else(|| vec!["mailer-daemon".into()])
            .into_iter()
            .map(|s| s.trim().to_lowercase())
            .collect();
        let patterns = |reader: &mut Reader, key: &str| -> Vec<AddressPattern> {
            reader.strings(table, prefix, key).unwrap_or_default().iter().map(|s| AddressPattern::new(s)).collect()
        };
        let exempt_senders = patterns(self, "exempt_senders");
        let exempt_recipients = patterns(self, "exempt_recipients");
        let unverified_recipients = patterns(self, "unverified_recipients");
        let mut message_id_patterns = std::collections::HashMap::new();
        match table.get("message_id_patterns") {
            None => {}
            Some(Value::Table(domains)) => {
                for (domain, value) in domains {
                    let key = format!("policy.message_id_patterns.{domain}");
                    let list = match value {
                        Value::Array(items) => {
                            items.iter().filter_map(Value::as_str).map(str::to_lowercase).collect::<Vec<_>>()
                        }
                        _ => Vec::new(),
                    };
                    let all_strings = matches!(value, Value::Array(items) if items.iter().all(Value::is_str));
                    if !all_strings || list.is_empty() {
                        self.error(
                            &key,
                            "must be a non-empty list of patterns",
                            format!("write \"{domain}\" = [\"*@mx.{domain}\"]"),
                        );
                        continue;
                    }
                    if check_domain_entry(domain.strip_prefix("*.").unwrap_or(domain)).is_err() {
                        self.error(
                            &key,
                            format!("\"{domain}\" is not a domain name"),
                            "use one of your domains as the key",
                        );
                        continue;
                    }
                    message_id_patterns.insert(domain.trim_end_matches('.').to_lowercase(), list);
                }
            }
            Some(other) => self.wrong_type(
                "policy.message_id_patterns",
                other,
                "a table of domain = [patterns]",
                "[policy.message_id_patterns] \"example.com\" = [\"*@mx.example.com\"]",
            ),
        }
        let mut inspect_max_bytes = self.size(table, prefix, "inspect_max_bytes", 256 * 1024);
        let most = crate::dsn::MAX_INSPECTED_BYTES as u64;
        if inspect_max_bytes > most {
            // Inspection reads no further; holding more per session would buy nothing.
            self.error(
                &join(prefix, "inspect_max_bytes"),
                format!("{inspect_max_bytes} bytes is more than inspection reads ({most} bytes)"),
                "write \"1MiB\" or less; a bounce says what it is about in its first few kilobytes",
            );
            inspect_max_bytes = most;
        }
        let inspect_max_bytes = inspect_max_bytes as usize;
        PolicySettings {
            mode,
            untagged_bounce,
            untagged_stage,
            enforce_after,
            bounce_senders,
            non_bounce_invalid_tag,
            exempt_senders,
            exempt_recipients,
            unverified_recipients,
            message_id_patterns,
            inspect_max_bytes,
        }
    }

    fn certificate_files(&mut self, table: &Table, prefix: &str, base: &Path) -> Option<CertificateFiles> {
        let mut path = |key: &str, example: &str| match self.string(table, prefix, key, example) {
            Some(text) => {
                let path = self.path(base, text);
                if let Err(error) = std::fs::metadata(&path) {
                    self.error(
                        &join(prefix, key),
                        format!("cannot read {}: {error}", path.display()),
                        "give the path of a PEM file (relative paths are relative to this file)",
                    );
                    None
                } else {
                    Some(path)
                }
            }
            None => {
                if !table.contains_key(key) {
                    self.error(&join(prefix, key), "missing", format!("add {example}"));
                }
                None
            }
        };
        let cert = path("cert", "cert = \"/etc/ssl/mx.example.com/fullchain.pem\"");
        let key = path("key", "key = \"/etc/ssl/mx.example.com/privkey.pem\"");
        Some(CertificateFiles { cert: cert?, key: key? })
    }

    fn tls(&mut self, table: &Table, prefix: &str, base: &Path) -> Option<TlsSettings> {
        self.unknown_keys(table, prefix, &["mode", "cert", "key", "require", "handshake_timeout", "sni"]);
        let mode = self.choice(
            table,
            prefix,
            "mode",
            &[("starttls", TlsMode::StartTls), ("implicit", TlsMode::Implicit)],
            TlsMode::StartTls,
        );
        let require = match table.get("require") {
            None => false,
            Some(Value::Boolean(value)) => *value,
            Some(other) => {
                self.wrong_type(&join(prefix, "require"), other, "true or false", "require = true");
                false
            }
        };
        let handshake_timeout = self.duration(table, prefix, "handshake_timeout", Duration::from_secs(30));
        let mut certificates = vec![self.certificate_files(table, prefix, base)];
        match table.get("sni") {
            None => {}
            Some(Value::Array(items)) => {
                for (index, item) in items.iter().enumerate() {
                    let item_prefix = format!("{prefix}.sni[{}]", index + 1);
                    match item {
                        Value::Table(entry) => {
                            self.unknown_keys(entry, &item_prefix, &["cert", "key"]);
                            certificates.push(self.certificate_files(entry, &item_prefix, base));
                        }
                        other => self.wrong_type(&item_prefix, other, "a table", "[[listener.tls.sni]]"),
                    }
                }
            }
            Some(other) => self.wrong_type(&join(prefix, "sni"), other, "a list of tables", "[[listener.tls.sni]]"),
        }
        let certificates: Option<Vec<CertificateFiles>> = certificates.into_iter().collect();
        Some(TlsSettings { mode, require, certificates: certificates?, handshake_timeout })
    }

    fn upstream_tls(&mut self, table: &Table, prefix: &str, base: &Path) -> UpstreamTlsSettings {
        let mode = self.choice(
            table,
            prefix,
            "upstream_tls",
            &[
                ("none", UpstreamTlsMode::None),
                ("starttls", UpstreamTlsMode::StartTls),
                ("implicit", UpstreamTlsMode::Implicit),
            ],
            UpstreamTlsMode::None,
        );
        let ca_file = self
            .string(table, prefix, "upstream_tls_ca", "upstream_tls_ca = \"ca.pem\"")
            .map(|text| self.path(base, text));
        if let Some(path) = &ca_file
            && let Err(error) = std::fs::metadata(path)
        {
            self.error(
                &join(prefix, "upstream_tls_ca"),
                format!("cannot read {}: {error}", path.display()),
                "give the path of a PEM file of CA certificates",
            );
        }
        let verify_full = match table.get("upstream_tls_verify") {
            None => true,
            Some(Value::Boolean(value)) => *value,
            Some(other) => {
                self.wrong_type(
                    &join(prefix, "upstream_tls_verify"),
                    other,
                    "true or false",
                    "upstream_tls_verify = true",
                );
                true
            }
        };
        let mut pins = Vec::new();
        let pin_texts = match table.get("upstream_tls_pin") {
            Some(Value::String(one)) => vec![one.clone()],
            Some(_) => self.strings(table, prefix, "upstream_tls_pin").unwrap_or_default(),
            None => Vec::new(),
        };
        for text in pin_texts {
            match parse_fingerprint(&text) {
                Some(pin) => pins.push(pin),
                None => self.error(
                    &join(prefix, "upstream_tls_pin"),
                    format!("\"{text}\" is not a SHA-256 fingerprint"),
                    "write 64 hex digits (colons allowed), e.g. from: openssl x509 -noout -fingerprint -sha256 -in cert.pem",
                ),
            }
        }
        let verify = if !pins.is_empty() {
            UpstreamVerify::Pin(pins)
        } else if verify_full {
            UpstreamVerify::Full
        } else {
            UpstreamVerify::None
        };
        let server_name = self
            .string(table, prefix, "upstream_tls_name", "upstream_tls_name = \"mx.example.com\"")
            .map(str::to_owned);
        UpstreamTlsSettings { mode, ca_file, verify, server_name }
    }

    fn listener(&mut self, table: &Table, prefix: &str, base: &Path) -> Option<ListenerSettings> {
        const KNOWN: &[&str] = &[
            "role",
            "listen",
            "upstream",
            "client_identity",
            "hostname",
            "max_connections",
            "max_connections_per_ip",
            "max_command_line",
            "max_recipients",
            "max_message_size",
            "max_errors",
            "command_timeout",
            "data_timeout",
            "upstream_connect_timeout",
            "upstream_timeout",
            "upstream_data_timeout",
            "tls",
            "upstream_tls",
            "upstream_tls_ca",
            "upstream_tls_verify",
            "upstream_tls_pin",
            "upstream_tls_name",
            "client_name_lookup",
            "allowed_clients",
            "require_auth",
            "ipv6_client_prefix",
        ];
        self.unknown_keys(table, prefix, KNOWN);
        let role = match self.string(table, prefix, "role", "role = \"inbound\"") {
            Some("inbound") => Some(Role::Inbound),
            Some("outbound") => Some(Role::Outbound),
            Some(other) => {
                self.error(
                    &join(prefix, "role"),
                    format!("\"{other}\" is not a role"),
                    "use \"inbound\" (verify bounces) or \"outbound\" (sign senders)",
                );
                None
            }
            None => {
                if !table.contains_key("role") {
                    self.error(&join(prefix, "role"), "missing", "add role = \"inbound\" or role = \"outbound\"");
                }
                None
            }
        };
        let listen = match self.string(table, prefix, "listen", "listen = \"127.0.0.1:2525\"") {
            Some(text) => match text.parse::<SocketAddr>() {
                Ok(address) => Some(address),
                Err(_) => {
                    self.error(
                        &join(prefix, "listen"),
                        format!("\"{text}\" is not an IP address and port"),
                        "write listen = \"0.0.0.0:25\" or \"[::]:25\"",
                    );
                    None
                }
            },
            None => {
                if !table.contains_key("listen") {
                    self.error(&join(prefix, "listen"), "missing", "add listen = \"IP:port\"");
                }
                None
            }
        };
        let upstream = match self.string(table, prefix, "upstream", "upstream = \"127.0.0.1:10025\"") {
            Some(text) if valid_host_port(text) => Some(text.to_owned()),
            Some(text) => {
                self.error(
                    &join(prefix, "upstream"),
                    format!("\"{text}\" is not host:port"),
                    "write upstream = \"127.0.0.1:10025\" (the MTA's port)",
                );
                None
            }
            None => {
                if !table.contains_key("upstream") {
                    self.error(&join(prefix, "upstream"), "missing", "add upstream = \"host:port\" of your MTA");
                }
                None
            }
        };
        let client_identity = self.choice(
            table,
            prefix,
            "client_identity",
            &[
                ("xclient", ClientIdentity::Xclient),
                ("proxy-v2", ClientIdentity::ProxyV2),
                ("none", ClientIdentity::None),
            ],
            ClientIdentity::Xclient,
        );
        let hostname = match self.string(table, prefix, "hostname", "hostname = \"mx.example.com\"") {
            Some(name) if Domain::parse(name).is_ok() && !name.starts_with('[') => name.to_owned(),
            Some(name) => {
                self.error(
                    &join(prefix, "hostname"),
                    format!("\"{name}\" is not a host name"),
                    "write hostname = \"mx.example.com\"",
                );
                system_hostname()
            }
            None => system_hostname(),
        };
        let defaults = Limits::default();
        let limits = Limits {
            max_connections: self.count(table, prefix, "max_connections", defaults.max_connections),
            max_connections_per_ip: self.count(
                table,
                prefix,
                "max_connections_per_ip",
                defaults.max_connections_per_ip,
            ),
            max_command_line: self
                .integer(table, prefix, "max_command_line", (512, 65536))
                .map_or(defaults.max_command_line, |n| n as usize),
            max_recipients: self.count(table, prefix, "max_recipients", defaults.max_recipients),
            max_message_size: self.size(table, prefix, "max_message_size", defaults.max_message_size),
            max_errors: self.count(table, prefix, "max_errors", defaults.max_errors),
            command_timeout: self.duration(table, prefix, "command_timeout", defaults.command_timeout),
            data_timeout: self.duration(table, prefix, "data_timeout", defaults.data_timeout),
            upstream_connect_timeout: self.duration(
                table,
                prefix,
                "upstream_connect_timeout",
                defaults.upstream_connect_timeout,
            ),
            upstream_timeout: self.duration(table, prefix, "upstream_timeout", defaults.upstream_timeout),
            upstream_data_timeout: self.duration(
                table,
                prefix,
                "upstream_data_timeout",
                defaults.upstream_data_timeout,
            ),
        };
        let tls = match table.get("tls") {
            None => None,
            Some(Value::Table(tls)) => self.tls(tls, &join(prefix, "tls"), base),
            Some(other) => {
                self.wrong_type(&join(prefix, "tls"), other, "a table", "[listener.tls]");
                None
            }
        };
        let mut allowed_clients = Vec::new();
        for text in self.strings(table, prefix, "allowed_clients").unwrap_or_default() {
            match ClientNetwork::parse(&text) {
                Some(network) => allowed_clients.push(network),
                None => self.error(
                    &join(prefix, "allowed_clients"),
                    format!("\"{text}\" is not an address or network"),
                    "write addresses or CIDR networks: [\"192.0.2.10\", \"10.0.0.0/8\", \"2001:db8::/32\"]",
                ),
            }
        }
        let client_name_lookup = self.boolean(table, prefix, "client_name_lookup", true);
        let require_auth = self.boolean(table, prefix, "require_auth", false);
        let ipv6_client_prefix = self.integer(table, prefix, "ipv6_client_prefix", (32, 128)).unwrap_or(64) as u8;
        let upstream_tls = self.upstream_tls(table, prefix, base);
        let (role, listen, upstream) = (role?, listen?, upstream?);
        Some(ListenerSettings {
            name: format!("{}@{listen}", role.as_str()),
            role,
            listen,
            upstream,
            client_identity,
            client_name_lookup,
            allowed_clients,
            require_auth,
            ipv6_client_prefix,
            hostname,
            limits,
            tls,
            upstream_tls,
        })
    }
}

fn check_domain_entry(entry: &str) -> Result<(), &'static str> {
    let name = entry.strip_prefix("*.").unwrap_or(entry);
    if name.contains('*')
        || name.contains('@')
        || name.starts_with('[')
        || Domain::parse(name).is_err()
        || !name.contains('.') && name != "localhost"
    {
        Err("not a domain name")
    } else {
        Ok(())
    }
}

fn valid_host_port(text: &str) -> bool {
    if text.parse::<SocketAddr>().is_ok() {
        return true;
    }
    match text.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !host.contains(':')
                && port.parse::<u16>().is_ok_and(|p| p > 0)
                && Domain::parse(host).is_ok()
        }
        None => false,
    }
}

/// A SHA-256 fingerprint: 64 hex digits, colons and a `sha256:` prefix allowed.
fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let text = text.strip_prefix("sha256:").or_else(|| text.strip_prefix("SHA256:")).unwrap_or(text);
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b':').collect();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (index, pair) in digits.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[index] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// `10240000`, `50MiB`, `10MB`, `512k`: binary and decimal units.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1024,
        "m" | "mb" => 1000 * 1000,
        "mib" => 1024 * 1024,
        "g" | "gb" => 1000 * 1000 * 1000,
        "gib" => 1024 * 1024 * 1024,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// The names a default Postfix takes as its own (`mydestination =
/// $myhostname, localhost.$mydomain, localhost`), from this host's name.
fn default_mta_names() -> DomainSet {
    let mut names = DomainSet::default();
    let host = system_hostname();
    names.insert(&host);
    names.insert("localhost");
    names.insert("localhost.localdomain");
    if let Some((_, parent)) = host.split_once('.') {
        names.insert(&format!("localhost.{parent}"));
    }
    names
}

fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The closest known key, for "did you mean" hints.
fn suggestion<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|candidate| (edit_distance(key, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 4))
        .min()
        .map(|(_, candidate)| candidate)
}

/// Optimal string alignment distance: edits plus swaps of neighbours, the
/// commonest typos in hand-written keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut table = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in table.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in table[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (table[i - 1][j] + 1).min(table[i][j - 1] + 1).min(table[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(table[i - 2][j - 2] + 1);
            }
            table[i][j] = best;
        }
    }
    table[a.len()][b.len()]
}
