//! Where a recipient really goes. MTAs route some spellings of an address
//! elsewhere than its own domain says: Postfix by default takes
//! `alice%example.com@localhost` (the percent hack), `example.com!alice@localhost`
//! (a bang path) and `"alice@example.com"@[127.0.0.1]` to alice@example.com
//! once the outer domain is one of its own names, and older MTAs do so for
//! any domain. A joe-job spammer forges such senders precisely because a
//! judge that looks only at the outer domain lets their bounces through.
//!
//! So the proxy follows these spellings itself, further than any MTA does:
//! whatever the outer domain, a local part that holds another address is
//! followed to that address. Pure: no I/O.

use crate::smtp::address::{Domain, Mailbox};

/// Address hops followed at most; a deeper spelling cannot be judged.
pub const MAX_HOPS: usize = 8;

/// The outcome of following a recipient's spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The address is what it says: its own domain decides.
    AsWritten,
    /// A local part holding another address (percent hack, bang path,
    /// quoted `@`): the address the MTA would end up delivering to.
    Rewritten(Mailbox),
    /// A spelling too deep or broken to follow: it cannot be judged.
    Unresolvable,
}

/// Follows `mailbox` through percent hacks, bang paths and quoted `@`s, in
/// Postfix's order: the rightmost `@` first, then the rightmost `%`, then
/// the first `!` (`site!user` is `user@site`).
pub fn follow(mailbox: &Mailbox) -> Route {
    if !holds_address(mailbox.local_part()) {
        return Route::AsWritten;
    }
    let mut local = mailbox.local_part().to_owned();
    for _ in 0..MAX_HOPS {
        let Some((next_local, next_domain)) = split_embedded(&local) else {
            return Route::Unresolvable;
        };
        let Ok(domain) = Domain::parse(next_domain) else {
            return Route::Unresolvable;
        };
        if !holds_address(next_local) {
            return match Mailbox::new(next_local, domain) {
                Ok(found) => Route::Rewritten(found),
                Err(_) => Route::Unresolvable,
            };
        }
        local = next_local.to_owned();
    }
    Route::Unresolvable
}

/// Whether a local part carries another address.
fn holds_address(local: &str) -> bool {
    local.contains(['@', '%', '!'])
}

/// One hop: the embedded local part and domain, or `None` when a side is empty.
fn split_embedded(local: &str) -> Option<(&str, &str)> {
    let (next_local, domain) = if let Some(at) = local.rfind('@') {
        (&local[..at], &local[at + 1..])
    } else if let Some(percent) = local.rfind('%') {
        (&local[..percent], &local[percent + 1..])
    } else {
        let bang = local.find('!')?;
        (&local[bang + 1..], &local[..bang])
    };
    (!next_local.is_empty() && !domain.is_empty()).then_some((next_local, domain))
}

/// An address literal (`[192.0.2.1]`, `[IPv6:…]`): every MTA takes it for
/// its own when it is one of its addresses, and the proxy cannot know which
/// addresses the MTA has.
pub fn is_address_literal(domain: &Domain) -> bool {
    domain.as_str().starts_with('[')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(text: &str) -> Route {
        follow(&Mailbox::parse(text).unwrap())
    }

    fn rewritten(text: &str) -> String {
        match route(text) {
            Route::Rewritten(mailbox) => mailbox.to_string(),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn spellings_are_followed_to_the_address_they_hold() {
        for (spelling, target) in [
            ("alice%example.com@localhost", "alice@example.com"),
            ("alice%example.com@[127.0.0.1]", "alice@example.com"),
            ("alice%Example.COM@mx.example.net", "alice@Example.COM"),
            ("example.com!alice@localhost", "alice@example.com"),
            ("\"alice@example.com\"@localhost", "alice@example.com"),
            ("\"alice%example.com\"@remote.test", "alice@example.com"),
            // Postfix's order: the rightmost % first, hop by hop.
            ("alice%example.com%localhost@localhost", "alice@example.com"),
            ("localhost!example.com!alice@localhost", "alice@example.com"),
            ("example.com!alice%localhost@mx.example.net", "alice@example.com"),
            ("prvs=0999abcdef=alice%example.com@localhost", "prvs=0999abcdef=alice@example.com"),
        ] {
            assert_eq!(rewritten(spelling), target, "{spelling}");
        }
    }

    #[test]
    fn plain_addresses_stay_as_written() {
        for plain in
            ["alice@example.com", "alice+tag@example.com", "prvs=3123abcdef=alice@example.com", "x@[127.0.0.1]"]
        {
            assert_eq!(route(plain), Route::AsWritten, "{plain}");
        }
    }

    #[test]
    fn broken_or_deep_spellings_cannot_be_judged() {
        for broken in ["%example.com@localhost", "alice%@localhost", "!alice@localhost", "example.com!@localhost"] {
            assert_eq!(route(broken), Route::Unresolvable, "{broken}");
        }
        assert_eq!(route("\"alice%exa mple.com\"@localhost"), Route::Unresolvable, "not a domain");
        let deep = format!("alice{}@localhost", "%localhost".repeat(MAX_HOPS + 1));
        assert_eq!(route(&deep), Route::Unresolvable);
        let just_deep_enough = format!("alice%example.com{}@localhost", "%localhost".repeat(MAX_HOPS - 2));
        assert_eq!(rewritten(&just_deep_enough), "alice@example.com");
    }

    #[test]
    fn literals_are_recognised() {
        assert!(is_address_literal(&Domain::parse("[127.0.0.1]").unwrap()));
        assert!(is_address_literal(&Domain::parse("[IPv6:::1]").unwrap()));
        assert!(!is_address_literal(&Domain::parse("localhost").unwrap()));
    }
}
