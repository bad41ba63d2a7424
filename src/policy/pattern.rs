//! Matching what the configuration names: address and domain patterns,
//! our domains, client networks. The policy decides with these; the
//! configuration only reads them.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;

use crate::smtp::address::{Domain, Mailbox};

/// A `*` wildcard pattern over an address (`*@lists.example.com`,
/// `owner-*`) or, without `@`, over a domain (`example.net`, `*.example.net`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPattern(String);

impl AddressPattern {
    pub fn new(text: &str) -> Self {
        AddressPattern(text.trim().to_lowercase())
    }

    pub fn matches(&self, mailbox: &Mailbox) -> bool {
        if self.0.contains('@') {
            glob_match(&self.0, &mailbox.canonical_text().to_lowercase())
        } else {
            glob_match(&self.0, &mailbox.domain().canonical())
        }
    }
}

impl fmt::Display for AddressPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `*` matches any run of characters (greedy with backtracking, linear in practice).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star, matched)) = backtrack {
            pi = star + 1;
            ti = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Our domains: exact names and `*.parent` wildcards. A lookup costs one
/// hash probe per label of the domain, whatever the number of domains.
#[derive(Debug, Clone, Default)]
pub struct DomainSet {
    exact: HashSet<String>,
    /// Parents of `*.parent` entries.
    wildcard_parents: HashSet<String>,
}

impl DomainSet {
    pub fn insert(&mut self, entry: &str) {
        let entry = entry.trim().trim_end_matches('.').to_lowercase();
        match entry.strip_prefix("*.") {
            Some(parent) => self.wildcard_parents.insert(parent.to_owned()),
            None => self.exact.insert(entry),
        };
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard_parents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `entry` (a domain or `*.parent`) names domains of this set:
    /// for Message-ID pattern keys, which apply only to our domains.
    pub fn may_hold(&self, entry: &str) -> bool {
        let entry = entry.trim().trim_end_matches('.').to_lowercase();
        match entry.strip_prefix("*.") {
            Some(parent) => {
                let under = |name: &String| name.ends_with(&format!(".{parent}"));
                self.wildcard_parents.iter().any(|wildcard| wildcard == parent || under(wildcard))
                    || self.exact.iter().any(under)
            }
            None => Domain::parse(&entry).is_ok_and(|domain| self.contains(&domain)),
        }
    }

    /// `*.example.com` matches `a.example.com` and `a.b.example.com`, not
    /// `example.com` itself (list it too if it is ours).
    pub fn contains(&self, domain: &Domain) -> bool {
        let name = domain.canonical();
        if self.exact.contains(&name) {
            return true;
        }
        let mut rest = name.as_str();
        while let Some(dot) = rest.find('.') {
            rest = &rest[dot + 1..];
            if self.wildcard_parents.contains(rest) {
                return true;
            }
        }
        false
    }
}

impl FromIterator<String> for DomainSet {
    fn from_iter<I: IntoIterator<Item = String>>(entries: I) -> Self {
        let mut set = DomainSet::default();
        for entry in entries {
            set.insert(&entry);
        }
        set
    }
}

/// An address or network in CIDR notation (`192.0.2.0/24`, `2001:db8::/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientNetwork {
    address: IpAddr,
    prefix: u8,
}

impl ClientNetwork {
    pub fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address.parse::<IpAddr>().ok()?, Some(prefix.parse::<u8>().ok()?)),
            None => (text.trim().parse().ok()?, None),
        };
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        (prefix <= bits).then_some(ClientNetwork { address, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let mask = |bits: u32, width: u32| if bits == 0 { 0u128 } else { u128::MAX << (width - bits) };
        match (self.address, ip) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                let mask = mask(u32::from(self.prefix), 32) as u32;
                u32::from(network) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                let mask = mask(u32::from(self.prefix), 128);
                u128::from(network) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}
