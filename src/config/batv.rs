//! `[batv]`: the tag scheme, the key file and our domains.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::batv::{HashAlgorithm, KeyRing, MAX_LIFETIME_DAYS, Moment, TagForm};
use crate::domains::DomainMap;
use crate::keyfile::{self, KeyFileError};
pub use crate::policy::DomainSet;

use super::section::{Presence, Section};
use super::values::{Problem, check_domain_entry, choice, is_host_name, number, path};

/// Bounces come back within days; a week also covers a long weekend's
/// retries.
pub const DEFAULT_LIFETIME_DAYS: u16 = 7;

const HASHES: &[(&str, HashAlgorithm)] = &[("sha256", HashAlgorithm::Sha256), ("sha1", HashAlgorithm::Sha1)];
const SIGN_FORMS: &[(&str, TagForm)] = &[("standard", TagForm::Standard), ("subaddress", TagForm::Subaddress)];

#[derive(Debug, Clone)]
pub struct BatvSettings {
    pub key_file: PathBuf,
    pub hash: HashAlgorithm,
    pub lifetime_days: u16,
    pub domains: DomainSet,
    pub sign_form: TagForm,
    /// Names the MTA takes as its own (its host names, `localhost`): a
    /// recipient there may route to our domains through the MTA's aliases
    /// or rewriting, so bounces to it are judged as ours.
    pub mta_names: DomainSet,
}

/// A `[[batv.keys]]` entry: domains that sign and verify with keys of
/// their own, so one tenant's keys rotate or retire alone.
#[derive(Debug)]
pub struct DomainKeys {
    /// As written: names and `*.parent` wildcards.
    pub domains: Vec<String>,
    pub key_file: PathBuf,
    pub keys: KeyRing,
}

/// What `[batv]` holds: the settings, the default keys, the tenants' keys.
pub(super) struct ReadBatv {
    pub settings: Option<BatvSettings>,
    pub keys: Option<KeyRing>,
    pub domain_keys: Vec<DomainKeys>,
}

/// The settings, and the keys when the key files could be read.
pub(super) fn read_batv(batv: &mut Section, base: &Path) -> ReadBatv {
    let hash = batv.get_or("hash", HashAlgorithm::Sha256, choice(HASHES));
    let lifetime_days = batv.get_or("lifetime_days", DEFAULT_LIFETIME_DAYS, number(1..=MAX_LIFETIME_DAYS));
    let sign_form = batv.get_or("sign_form", TagForm::Standard, choice(SIGN_FORMS));
    let listed = batv.get_each("domains", domain_entry).unwrap_or_default();
    let domains_file = batv.get("domains_file", path(base, "domains_file = \"domains.txt\""));
    let mta_names = batv.get_each("mta_names", mta_name).map_or_else(default_mta_names, DomainSet::from_iter);
    let key_file = batv.require(
        "key_file",
        "set key_file = \"keys\" and create it with: batv-proxy keygen --output keys",
        path(base, "key_file = \"keys\""),
    );
    let domain_keys = read_domain_keys(batv, base, hash);

    let mut domains: DomainSet = listed.into_iter().collect();
    if let Some(file) = &domains_file {
        read_domains_file(batv, file, &mut domains);
    }
    // A domain with keys of its own is one of ours.
    for entry in domain_keys.iter().flat_map(|set| &set.domains) {
        domains.insert(entry);
    }
    if domains.is_empty() && !batv.is_set("domains_file") {
        batv.report(
            "domains",
            "no domains are configured, so nothing would be signed or verified",
            "list your domains: domains = [\"example.com\"]",
        );
    }
    let Some(key_file) = key_file else { return ReadBatv { settings: None, keys: None, domain_keys } };
    let keys = load_keys(batv, &key_file, hash);
    let settings = BatvSettings { key_file, hash, lifetime_days, domains, sign_form, mta_names };
    ReadBatv { settings: Some(settings), keys, domain_keys }
}

/// `[[batv.keys]]`: each entry's domains and key file; a domain in two
/// entries is an error (which keys would sign it?).
fn read_domain_keys(batv: &mut Section, base: &Path, hash: HashAlgorithm) -> Vec<DomainKeys> {
    let example = "[[batv.keys]] with domains = [\"tenant.example\"] and key_file = \"tenant.keys\"";
    let entries = batv.tables("keys", example, Presence::Optional, |entry| {
        let domains = entry.get_each("domains", domain_entry);
        let key_file = entry.require(
            "key_file",
            "set key_file = \"tenant.keys\" and create it with: batv-proxy keygen --output tenant.keys",
            path(base, "key_file = \"tenant.keys\""),
        );
        let domains = match domains {
            Some(domains) if !domains.is_empty() => domains,
            _ => {
                if !entry.is_set("domains") {
                    entry.report(
                        "domains",
                        "missing",
                        "list the domains these keys sign: domains = [\"tenant.example\"]",
                    );
                }
                return None;
            }
        };
        let keys = load_keys(entry, key_file.as_ref()?, hash)?;
        Some(DomainKeys { domains, key_file: key_file?, keys })
    });
    let mut seen: DomainMap<usize> = DomainMap::default();
    let mut sets = Vec::new();
    for (index, entry) in entries.into_iter().enumerate() {
        let Some(entry) = entry else { continue };
        for domain in &entry.domains {
            if let Some(first) = seen.insert_with(domain, index + 1) {
                batv.report(
                    &format!("keys[{}].domains", index + 1),
                    format!("\"{domain}\" is also in keys[{first}]"),
                    "give each domain one key set",
                );
            }
        }
        sets.push(entry);
    }
    sets
}

/// Loads a key file named by `key_file` in `section`, reporting what stops it from working.
fn load_keys(section: &Section, key_file: &Path, hash: HashAlgorithm) -> Option<KeyRing> {
    let keys = match keyfile::load(key_file) {
        Ok(keys) => keys,
        Err(error) => {
            let (problem, fix) = key_file_problem(&error, key_file);
            section.report("key_file", problem, fix);
            return None;
        }
    };
    if hash == HashAlgorithm::Sha1 {
        for (id, secret) in keys.iter() {
            if secret.expose().len() > 64 || secret.expose().contains(&0) {
                section.report(
                    "key_file",
                    format!("key {id} is longer than 64 bytes or contains a NUL byte, which Exim cannot use, so hash = \"sha1\" would not interoperate"),
                    "use keys of at most 64 bytes without NUL (batv-proxy keygen makes 32 bytes), or hash = \"sha256\"",
                );
            }
        }
    }
    if !keys.any_active_at(Moment::from(SystemTime::now())) {
        section.report(
            "key_file",
            format!(
                "no key in {} is active yet: every key line has an activation time in the future",
                key_file.display()
            ),
            "keep the key that signs now as a line without activate= (or with a past time) beside the staged one",
        );
    }
    Some(keys)
}

fn domain_entry(entry: &str) -> Result<String, Problem> {
    match check_domain_entry(entry) {
        Ok(()) => Ok(entry.to_owned()),
        Err(problem) => Err(Problem::new(
            format!("\"{entry}\": {problem}"),
            "write a domain (example.com) or a wildcard (*.example.com)",
        )),
    }
}

fn mta_name(name: &str) -> Result<String, Problem> {
    if is_host_name(name) {
        Ok(name.to_owned())
    } else {
        Err(Problem::new(
            format!("\"{name}\" is not a host name"),
            "list the names the MTA takes as its own (Postfix: mydestination's host names, Exim: primary_hostname), like mta_names = [\"mx.example.net\", \"localhost\"]",
        ))
    }
}

/// One domain or `*.wildcard` per line, `#` comments.
fn read_domains_file(batv: &Section, file: &Path, domains: &mut DomainSet) {
    let contents = match std::fs::read_to_string(file) {
        Ok(contents) => contents,
        Err(error) => {
            batv.report(
                "domains_file",
                format!("cannot read {}: {error}", file.display()),
                "check the path (relative paths are relative to this file)",
            );
            return;
        }
    };
    for (index, line) in contents.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        match check_domain_entry(entry) {
            Ok(()) => domains.insert(entry),
            Err(problem) => batv.report(
                "domains_file",
                format!("{}:{}: \"{entry}\": {problem}", file.display(), index + 1),
                "one domain or *.wildcard per line, # for comments",
            ),
        }
    }
}

/// The problem with a key file and its fix, for `batv.key_file`.
fn key_file_problem(error: &KeyFileError, path: &Path) -> (String, String) {
    let path = path.display();
    let fix = match error {
        KeyFileError::Unreadable { source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound => format!("create it with: batv-proxy keygen --output {path}"),
            std::io::ErrorKind::PermissionDenied => {
                format!("make it readable by the user batv-proxy runs as (chown batv-proxy {path})")
            }
            _ => format!("check that {path} is a readable file"),
        },
        KeyFileError::Permissions { .. } => format!("chmod 600 {path}"),
        _ => "correct the key file (one `K base64-secret [activate=RFC3339]` per line)".into(),
    };
    let problem = error.to_string();
    let problem = problem.split("; fix:").next().unwrap_or(&problem).to_owned();
    (problem, fix)
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

pub(super) fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_problems_say_how_to_fix_them() {
        let path = Path::new("/etc/batv-proxy/keys");
        let unreadable = |kind| KeyFileError::Unreadable { path: path.to_owned(), source: std::io::Error::from(kind) };
        for (error, fix) in [
            (unreadable(std::io::ErrorKind::NotFound), "batv-proxy keygen --output /etc/batv-proxy/keys"),
            (unreadable(std::io::ErrorKind::PermissionDenied), "chown batv-proxy /etc/batv-proxy/keys"),
            (KeyFileError::Permissions { path: path.to_owned(), mode: 0o644 }, "chmod 600 /etc/batv-proxy/keys"),
        ] {
            let (problem, found) = key_file_problem(&error, path);
            assert!(found.contains(fix), "{error}: {found}");
            assert!(!problem.contains("fix:"), "the fix is not said twice: {problem}");
        }
    }
}
