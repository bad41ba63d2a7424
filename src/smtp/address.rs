//! Envelope addresses (RFC 5321 §4.1.2, RFC 6531 for UTF-8).
//!
//! Parsing is deliberately as lenient as Postfix's default
//! (`strict_rfc821_envelopes = no`): the proxy must never refuse an address
//! that the MTA behind it would take. What it parses, it can always print
//! back in canonical form, so a rewritten address is never mangled.

use std::fmt;

use thiserror::Error;

/// Why an address could not be parsed. The texts go into 501 replies.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddressError {
    #[error("address must be enclosed in <>")]
    MissingBrackets,
    #[error("address is not valid UTF-8")]
    InvalidUtf8,
    #[error("address has no @domain")]
    MissingDomain,
    #[error("empty local part")]
    EmptyLocalPart,
    #[error("invalid character in address")]
    InvalidCharacter,
    #[error("unterminated quoted local part")]
    UnterminatedQuote,
    #[error("invalid domain")]
    InvalidDomain,
}

/// A domain as the client wrote it; comparisons are case-insensitive.
#[derive(Debug, Clone)]
pub struct Domain(String);

impl Domain {
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        if text.is_empty() {
            return Err(AddressError::InvalidDomain);
        }
        if let Some(literal) = text.strip_prefix('[') {
            // Address literal: [192.0.2.1], [IPv6:2001:db8::1] or a tagged
            // general literal; only the characters those use, so a literal
            // can never hide path syntax (<, >, ", @, spaces).
            let ok = literal.ends_with(']')
                && literal.len() > 1
                && literal[..literal.len() - 1].chars().all(|c| c.is_ascii_alphanumeric() || ".:-".contains(c));
            return if ok { Ok(Domain(text.to_owned())) } else { Err(AddressError::InvalidDomain) };
        }
        let valid_char = |c: char| c.is_alphanumeric() || c == '-' || c == '.' || c == '_' || !c.is_ascii();
        if text.chars().all(|c| valid_char(c) && !c.is_control() && !c.is_whitespace()) {
            Ok(Domain(text.to_owned()))
        } else {
            Err(AddressError::InvalidDomain)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form used for lookups: lower case, without a trailing dot.
    pub fn canonical(&self) -> String {
        self.0.trim_end_matches('.').to_lowercase()
    }
}

impl PartialEq for Domain {
    fn eq(&self, other: &Self) -> bool {
        self.canonical() == other.canonical()
    }
}
impl Eq for Domain {}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `local@domain`. The local part is kept as its content (quotes removed),
/// so `"john doe"@x` and a tag built around it round-trip. Equality is exact
/// on the local part (RFC 5321: it may be case-sensitive) and
/// case-insensitive on the domain.
#[derive(Debug, Clone)]
pub struct Mailbox {
    local: String,
    domain: Domain,
    /// The canonical text, kept so hashing and printing need not rebuild it.
    text: String,
}

impl Mailbox {
    pub fn new(local: impl Into<String>, domain: Domain) -> Result<Self, AddressError> {
        let local = local.into();
        if local.is_empty() {
            return Err(AddressError::EmptyLocalPart);
        }
        if local.chars().any(|c| c.is_control()) {
            return Err(AddressError::InvalidCharacter);
        }
        let text = canonical_text(&local, &domain);
        Ok(Mailbox { local, domain, text })
    }

    /// Parses `local@domain` without angle brackets.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        let (local, rest) = parse_local_part(text)?;
        let domain = rest.strip_prefix('@').ok_or(AddressError::MissingDomain)?;
        Mailbox::new(local, Domain::parse(domain)?)
    }

    /// The local part's content, unquoted.
    pub fn local_part(&self) -> &str {
        &self.local
    }

    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// `local@domain` in canonical SMTP form (as [`fmt::Display`] prints it).
    pub fn canonical_text(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(&self.text)
    }

    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii() && self.domain.as_str().is_ascii()
    }

    /// Same mailbox with another local part.
    pub fn with_local_part(&self, local: impl Into<String>) -> Result<Self, AddressError> {
        Mailbox::new(local, self.domain.clone())
    }
}

impl PartialEq for Mailbox {
    fn eq(&self, other: &Self) -> bool {
        self.local == other.local && self.domain == other.domain
    }
}
impl Eq for Mailbox {}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Canonical SMTP text: a dot-string when possible, otherwise quoted.
fn canonical_text(local: &str, domain: &Domain) -> String {
    let mut text = String::with_capacity(local.len() + domain.as_str().len() + 3);
    if is_dot_string(local) {
        text.push_str(local);
    } else {
        text.push('"');
        for c in local.chars() {
            if c == '"' || c == '\\' {
                text.push('\\');
            }
            text.push(c);
        }
        text.push('"');
    }
    text.push('@');
    text.push_str(domain.as_str());
    text
}

/// Characters that may stand unquoted in a local part. Besides RFC 5321
/// atext we accept any non-ASCII character (SMTPUTF8) and let dots stand
/// anywhere, as real senders write `john..doe@` and Postfix takes it.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~.".contains(c)
        || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
}

fn is_dot_string(local: &str) -> bool {
    !local.is_empty() && local.chars().all(is_atext)
}

/// Splits a local part off the front of `text`; returns its content and the rest.
fn parse_local_part(text: &str) -> Result<(String, &str), AddressError> {
    if let Some(quoted) = text.strip_prefix('"') {
        let mut content = String::new();
        let mut chars = quoted.char_indices();
        while let Some((index, c)) = chars.next() {
            match c {
                '"' => return Ok((content, &quoted[index + 1..])),
                '\\' => match chars.next() {
                    Some((_, escaped)) if !escaped.is_control() || escaped == '\t' => content.push(escaped),
                    _ => return Err(AddressError::InvalidCharacter),
                },
                c if c.is_control() && c != '\t' => return Err(AddressError::InvalidCharacter),
                c => content.push(c),
            }
        }
        Err(AddressError::UnterminatedQuote)
    } else {
        let end = text.rfind('@').ok_or(AddressError::MissingDomain)?;
        let local = &text[..end];
        if local.is_empty() {
            return Err(AddressError::EmptyLocalPart);
        }
        if !local.chars().all(is_atext) {
            return Err(AddressError::InvalidCharacter);
        }
        Ok((local.to_owned(), &text[end..]))
    }
}

/// The reverse-path of `MAIL FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReversePath {
    /// `<>`: the sender of bounces and other notifications.
    Null,
    Mailbox(Mailbox),
}

impl ReversePath {
    pub fn mailbox(&self) -> Option<&Mailbox> {
        match self {
            ReversePath::Null => None,
            ReversePath::Mailbox(mailbox) => Some(mailbox),
        }
    }
}

impl fmt::Display for ReversePath {
    /// With angle brackets, as it stands in a command.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => f.write_str("<>"),
            ReversePath::Mailbox(mailbox) => write!(f, "<{mailbox}>"),
        }
    }
}

/// The forward-path of `RCPT TO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardPath {
    /// `<Postmaster>` without a domain (RFC 5321 §4.1.1.3), kept as written.
    Postmaster(String),
    Mailbox(Mailbox),
}

impl ForwardPath {
    pub fn mailbox(&self) -> Option<&Mailbox> {
        match self {
            ForwardPath::Postmaster(_) => None,
            ForwardPath::Mailbox(mailbox) => Some(mailbox),
        }
    }
}

impl fmt::Display for ForwardPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardPath::Postmaster(name) => write!(f, "<{name}>"),
            ForwardPath::Mailbox(mailbox) => write!(f, "<{mailbox}>"),
        }
    }
}

/// Splits `<path> params` (the text after `FROM:` / `TO:`) into the path's
/// inner text and the rest. Accepts a space after the colon and, like
/// Postfix, a bare address without brackets.
pub fn split_path(text: &str) -> Result<(&str, &str), AddressError> {
    let text = text.trim_start_matches(' ');
    if let Some(inner) = text.strip_prefix('<') {
        // A quoted local part may contain '>', so find the closing bracket
        // outside quotes.
        let mut in_quotes = false;
        let mut escaped = false;
        for (index, c) in inner.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_quotes => escaped = true,
                '"' => in_quotes = !in_quotes,
                '>' if !in_quotes => return Ok((&inner[..index], &inner[index + 1..])),
                _ => {}
            }
        }
        Err(AddressError::MissingBrackets)
    } else if text.is_empty() {
        Err(AddressError::MissingBrackets)
    } else {
        let end = text.find(' ').unwrap_or(text.len());
        Ok((&text[..end], &text[end..]))
    }
}

/// Strips an RFC 5321 source route (`@a,@b:`), which must be accepted and ignored.
fn strip_source_route(inner: &str) -> &str {
    if inner.starts_with('@')
        && let Some(colon) = inner.find(':')
    {
        return &inner[colon + 1..];
    }
    inner
}

impl ReversePath {
    /// Parses the inside of the brackets (see [`split_path`]).
    pub fn parse(inner: &str) -> Result<Self, AddressError> {
        let inner = strip_source_route(inner);
        if inner.is_empty() { Ok(ReversePath::Null) } else { Mailbox::parse(inner).map(ReversePath::Mailbox) }
    }
}

impl ForwardPath {
    pub fn parse(inner: &str) -> Result<Self, AddressError> {
        let inner = strip_source_route(inner);
        if inner.eq_ignore_ascii_case("postmaster") {
            Ok(ForwardPath::Postmaster(inner.to_owned()))
        } else if inner.is_empty() {
            Err(AddressError::EmptyLocalPart)
        } else {
            Mailbox::parse(inner).map(ForwardPath::Mailbox)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_addresses_round_trip() {
        for text in [
            "alice@example.com",
            "Alice.Smith@Example.COM",
            "user+tag@example.com",
            "john..doe@example.com",
            "o'brien@example.ie",
            "prvs=3789abcdef=alice@example.com",
            "用户@例子.广告",
            "josé@exámple.com",
            "x@[192.0.2.1]",
            "x@[IPv6:2001:db8::1]",
        ] {
            let mailbox = Mailbox::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(mailbox.to_string(), text);
        }
    }

    #[test]
    fn quoted_local_parts_keep_their_content() {
        let mailbox = Mailbox::parse(r#""john doe"@example.com"#).unwrap();
        assert_eq!(mailbox.local_part(), "john doe");
        assert_eq!(mailbox.to_string(), r#""john doe"@example.com"#);
        let escaped = Mailbox::parse(r#""a\"b\\c"@example.com"#).unwrap();
        assert_eq!(escaped.local_part(), r#"a"b\c"#);
        assert_eq!(escaped.to_string(), r#""a\"b\\c"@example.com"#);
        // Needlessly quoted local parts print in canonical form.
        assert_eq!(Mailbox::parse(r#""alice"@example.com"#).unwrap().to_string(), "alice@example.com");
        let at_inside = Mailbox::parse(r#""a@b"@example.com"#).unwrap();
        assert_eq!(at_inside.local_part(), "a@b");
        assert_eq!(at_inside.domain().as_str(), "example.com");
    }

    #[test]
    fn bad_addresses_are_refused_with_a_reason() {
        assert_eq!(Mailbox::parse("alice"), Err(AddressError::MissingDomain));
        assert_eq!(Mailbox::parse("@example.com"), Err(AddressError::EmptyLocalPart));
        assert_eq!(Mailbox::parse("a b@example.com"), Err(AddressError::InvalidCharacter));
        assert_eq!(Mailbox::parse("alice@"), Err(AddressError::InvalidDomain));
        assert_eq!(Mailbox::parse("alice@exa mple.com"), Err(AddressError::InvalidDomain));
        assert_eq!(Mailbox::parse("\"open@example.com"), Err(AddressError::UnterminatedQuote));
        assert_eq!(Mailbox::parse("a\u{0}b@example.com"), Err(AddressError::InvalidCharacter));
        // Address literals hold addresses, never path syntax.
        for literal in ["x@[<RS\"T]", "x@[@_(BB]", "x@[192.0.<>2.1]", "x@[a b]", "x@[]"] {
            assert!(Mailbox::parse(literal).is_err(), "{literal}");
        }
    }

    #[test]
    fn domains_compare_case_insensitively() {
        assert_eq!(Domain::parse("Example.COM").unwrap(), Domain::parse("example.com.").unwrap());
        assert_eq!(Domain::parse("EXAMPLE.com").unwrap().canonical(), "example.com");
    }

    #[test]
    fn paths() {
        assert_eq!(split_path("<alice@example.com> SIZE=10"), Ok(("alice@example.com", " SIZE=10")));
        assert_eq!(split_path(" <>"), Ok(("", "")));
        assert_eq!(split_path("alice@example.com BODY=8BITMIME"), Ok(("alice@example.com", " BODY=8BITMIME")));
        assert_eq!(split_path(r#"<"a>b"@example.com>"#), Ok((r#""a>b"@example.com"#, "")));
        assert_eq!(split_path("<alice@example.com"), Err(AddressError::MissingBrackets));
        assert_eq!(ReversePath::parse("").unwrap(), ReversePath::Null);
        assert_eq!(
            ReversePath::parse("@relay.test,@other.test:bob@example.com").unwrap().to_string(),
            "<bob@example.com>"
        );
        assert!(matches!(ForwardPath::parse("Postmaster").unwrap(), ForwardPath::Postmaster(_)));
        assert!(ForwardPath::parse("").is_err());
    }
}
