//! Message-IDs taken out of header values, normalised to `<left@right>`.
//!
//! The proxy compares these ids with the ones it recorded or can recognise
//! as its own, so an id is kept exactly as written (the left part is case
//! sensitive) and anything that cannot be a Message-ID is dropped rather
//! than guessed at.

/// Longer ids are not produced by real mail software; the bound keeps a
/// hostile header from turning into a huge log line or ledger lookup.
const MAX_ID_LENGTH: usize = 250;

/// The first Message-ID in a field value such as Message-ID,
/// Original-Message-ID or In-Reply-To. A bare `left@right` without angle
/// brackets is accepted when it is the whole value, as some mailers write it.
pub(super) fn first(value: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(value);
    if let Some(id) = bracketed(&text).next() {
        return Some(id);
    }
    let mut words = text.split_whitespace();
    match (words.next(), words.next()) {
        (Some(word), None) => normalise(word),
        _ => None,
    }
}

/// Every bracketed Message-ID in a field value such as References, in order.
pub(super) fn all(value: &[u8]) -> Vec<String> {
    bracketed(&String::from_utf8_lossy(value)).collect()
}

/// The valid `<...>` tokens of `text`, found in one pass: an unclosed `<`
/// is forgotten when the next one opens, so the scan stays linear.
fn bracketed(text: &str) -> impl Iterator<Item = String> + '_ {
    let mut open: Option<usize> = None;
    text.char_indices().filter_map(move |(index, character)| match character {
        '<' => {
            open = Some(index + 1);
            None
        }
        '>' => open.take().and_then(|start| normalise(&text[start..index])),
        _ => None,
    })
}

/// Header fields and command words whose `<...>` is a mailbox, not a
/// message: an address in a bounce's text is not an id worth looking up.
const ADDRESS_CONTEXTS: &[&[u8]] = &[
    b"from:",
    b"to:",
    b"cc:",
    b"bcc:",
    b"reply-to:",
    b"sender:",
    b"return-path:",
    b"delivered-to:",
    b"x-original-to:",
    b"envelope-to:",
    b"resent-from:",
    b"resent-to:",
    b"mailto:",
];

/// The `<left@right>` tokens of a body, in order, at most `limit`, except
/// those that are plainly mailboxes (after `From:`, `RCPT TO:`, `mailto:`,
/// or followed by a colon as in Postfix's `<rcpt@x>: host said`). One pass:
/// each `<` is looked at up to the next `<`, `>` or space.
pub(super) fn in_text(text: &[u8], limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut from = 0;
    while ids.len() < limit {
        let Some(open) = memchr::memchr(b'<', &text[from..]).map(|at| at + from) else { break };
        let start = open + 1;
        let end = text[start..]
            .iter()
            .take(MAX_ID_LENGTH + 1)
            .position(|&byte| matches!(byte, b'<' | b'>') || byte.is_ascii_whitespace() || byte.is_ascii_control())
            .map(|at| at + start);
        from = end.unwrap_or((start + MAX_ID_LENGTH + 1).min(text.len())).max(start);
        let Some(end) = end.filter(|&end| text[end] == b'>') else { continue };
        let inner = &text[start..end];
        if memchr::memchr(b'@', inner).is_none() || text.get(end + 1) == Some(&b':') || is_address_context(text, open) {
            continue;
        }
        let id = match std::str::from_utf8(inner) {
            Ok(inner) => normalise(inner),
            Err(_) => normalise(&String::from_utf8_lossy(inner)),
        };
        if let Some(id) = id {
            ids.push(id);
        }
    }
    ids
}

/// Whether `open` follows a mailbox field name or command word (whole
/// word: `In-Reply-To:` is not `Reply-To:`).
fn is_address_context(text: &[u8], open: usize) -> bool {
    let mut end = open;
    while end > 0 && text[end - 1] == b' ' {
        end -= 1;
    }
    ADDRESS_CONTEXTS.iter().any(|context| {
        end >= context.len()
            && text[end - context.len()..end].eq_ignore_ascii_case(context)
            && (end == context.len() || {
                let before = text[end - context.len() - 1];
                !before.is_ascii_alphanumeric() && before != b'-'
            })
    })
}

/// `<inner>` when `inner` looks like `left@right`: no spaces, controls or
/// brackets, and an `@` with something on both sides.
fn normalise(inner: &str) -> Option<String> {
    let inner = inner.trim();
    if inner.is_empty() || inner.len() > MAX_ID_LENGTH {
        return None;
    }
    if inner
        .chars()
        .any(|character| character.is_whitespace() || character.is_control() || matches!(character, '<' | '>'))
    {
        return None;
    }
    let at = inner.rfind('@')?;
    if at == 0 || at + 1 == inner.len() {
        return None;
    }
    let mut id = String::with_capacity(inner.len() + 2);
    id.push('<');
    id.push_str(inner);
    id.push('>');
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_id_of_a_value() {
        let cases: &[(&str, &[u8], Option<&str>)] = &[
            ("plain", b" <abc@example.com>", Some("<abc@example.com>")),
            ("folded", b"\r\n <abc@example.com>\r\n", Some("<abc@example.com>")),
            ("case kept", b"<AbC.1@Example.COM>", Some("<AbC.1@Example.COM>")),
            ("bare id", b" abc@example.com ", Some("<abc@example.com>")),
            ("bare words", b"abc@example.com and more", None),
            ("comment after", b"<a@b> (Steffen's message of Tue)", Some("<a@b>")),
            ("first of two", b"<one@x> <two@x>", Some("<one@x>")),
            ("no at sign", b"<nothing-here>", None),
            ("at sign at the edge", b"<@x> <x@>", None),
            ("spaces inside", b"<a b@c>", None),
            ("empty", b"", None),
            ("empty brackets", b"<>", None),
            ("unclosed then valid", b"<<<a@b>", Some("<a@b>")),
            ("utf-8", "<ü@exämple.com>".as_bytes(), Some("<ü@exämple.com>")),
            ("invalid utf-8 replaced and kept", b"<a\xff@b>", Some("<a\u{fffd}@b>")),
            ("control character", b"<a\x01@b>", None),
        ];
        for (name, value, expected) in cases {
            assert_eq!(first(value).as_deref(), *expected, "{name}");
        }
    }

    #[test]
    fn overlong_ids_are_dropped() {
        let long = format!("<{}@example.com>", "x".repeat(MAX_ID_LENGTH));
        assert_eq!(first(long.as_bytes()), None);
        let fits = format!("<{}@example.com>", "x".repeat(MAX_ID_LENGTH - 20));
        assert!(first(fits.as_bytes()).is_some());
    }

    #[test]
    fn all_ids_of_a_value() {
        let cases: &[(&str, &[u8], &[&str])] = &[
            ("references", b"<a@x>\r\n <b@x> <c@x>", &["<a@x>", "<b@x>", "<c@x>"]),
            ("junk between", b"<a@x>, junk <not an id> <b@x>", &["<a@x>", "<b@x>"]),
            ("none", b"nothing", &[]),
        ];
        for (name, value, expected) in cases {
            assert_eq!(all(value), *expected, "{name}");
        }
    }

    #[test]
    fn ids_in_text() {
        let text = b"See <a@x> and RCPT TO:<rcpt@x>\nIn-Reply-To: <b@x>\nReply-To: <c@x>\n<d@x>: host said\n\
            <no at> <<e@x> mailto:<f@x> <g@x";
        assert_eq!(in_text(text, 10), ["<a@x>", "<b@x>", "<e@x>"]);
        assert_eq!(in_text(text, 1), ["<a@x>"]);
    }

    #[test]
    fn many_open_brackets_scan_in_linear_time() {
        let mut value = "<".repeat(1 << 20);
        value.push_str("a@b>");
        let started = std::time::Instant::now();
        assert_eq!(all(value.as_bytes()), ["<a@b>"]);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
