//! Domains as the configuration names them (exact names and `*.parent`
//! wildcards), each with a value: the key set a tenant's domains sign
//! with. Like `policy::DomainSet`, but below `batv`, which uses it. A
//! lookup costs one hash probe per label of the domain, whatever the
//! number of entries.

use std::collections::HashMap;

use crate::smtp::address::Domain;

/// Entries map to values; the exact name wins over a wildcard, and the
/// longest wildcard parent over a shorter one.
#[derive(Debug, Clone)]
pub struct DomainMap<T> {
    exact: HashMap<String, T>,
    /// Parents of `*.parent` entries.
    wildcard_parents: HashMap<String, T>,
}

impl<T> Default for DomainMap<T> {
    fn default() -> Self {
        DomainMap { exact: HashMap::new(), wildcard_parents: HashMap::new() }
    }
}

/// An entry as it is compared: trimmed, lower case, no final dot.
fn canonical_entry(entry: &str) -> String {
    entry.trim().trim_end_matches('.').to_lowercase()
}

impl<T> DomainMap<T> {
    /// Adds `entry` (`example.com` or `*.example.com`); returns the value
    /// it replaced, if the entry was there already.
    pub fn insert_with(&mut self, entry: &str, value: T) -> Option<T> {
        let entry = canonical_entry(entry);
        match entry.strip_prefix("*.") {
            Some(parent) => self.wildcard_parents.insert(parent.to_owned(), value),
            None => self.exact.insert(entry, value),
        }
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard_parents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `*.example.com` matches `a.example.com` and `a.b.example.com`, not
    /// `example.com` itself (list it too if it is meant).
    pub fn get(&self, domain: &Domain) -> Option<&T> {
        let name = domain.canonical();
        if let Some(value) = self.exact.get(&name) {
            return Some(value);
        }
        let mut rest = name.as_str();
        while let Some(dot) = rest.find('.') {
            rest = &rest[dot + 1..];
            if let Some(value) = self.wildcard_parents.get(rest) {
                return Some(value);
            }
        }
        None
    }

    pub fn contains(&self, domain: &Domain) -> bool {
        self.get(domain).is_some()
    }

    /// The entries as written canonically (`*.parent` for wildcards), each with its value.
    pub fn entries(&self) -> impl Iterator<Item = (String, &T)> {
        let exact = self.exact.iter().map(|(name, value)| (name.clone(), value));
        exact.chain(self.wildcard_parents.iter().map(|(parent, value)| (format!("*.{parent}"), value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(text: &str) -> Domain {
        Domain::parse(text).unwrap()
    }

    #[test]
    fn exact_names_win_over_wildcards_and_the_closest_wildcard_wins() {
        let mut map = DomainMap::default();
        map.insert_with("*.example.com", 1);
        map.insert_with("*.deep.example.com", 2);
        map.insert_with("Mail.Example.COM.", 3);
        assert_eq!(map.get(&domain("a.example.com")), Some(&1));
        assert_eq!(map.get(&domain("x.deep.example.com")), Some(&2));
        assert_eq!(map.get(&domain("mail.example.com")), Some(&3));
        assert_eq!(map.get(&domain("example.com")), None, "a wildcard does not cover its parent");
        assert_eq!(map.insert_with("mail.example.com", 4), Some(3), "a second entry for a name is seen");
    }
}
