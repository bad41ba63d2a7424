//! Header sections quoted inside a plain-text body.
//!
//! Bounces that predate RFC 3464 (qmail, old Exim, Lotus Notes) paste the
//! returned message below a separator line instead of attaching it. Such a
//! copy is recognised by its shape: consecutive `Name: value` lines with
//! folded continuations, including trace fields (Received, Return-Path) that
//! only a transported message carries and a person quoting a message in a
//! reply does not.

use super::message_id;

/// Field names longer than this are not header fields but prose with a colon.
const MAX_FIELD_NAME_LENGTH: usize = 76;

/// A run of lines shaped like a header section.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct QuotedHeaders {
    /// Byte offset of the run's first line in the text.
    pub(super) start: usize,
    pub(super) fields: usize,
    /// Whether it has Received or Return-Path, i.e. is a transported message.
    pub(super) has_trace: bool,
    pub(super) message_id: Option<String>,
}

/// The first quoted header section at or after byte `from` that has a
/// Message-ID and at least one other field.
pub(super) fn first_with_message_id(text: &str, from: usize) -> Option<QuotedHeaders> {
    runs(text).filter(|run| run.start >= from).find(|run| run.message_id.is_some() && run.fields >= 2)
}

/// Every run of header-shaped lines, in one pass over the text.
pub(super) fn runs(text: &str) -> impl Iterator<Item = QuotedHeaders> + '_ {
    let mut lines = lines_with_offsets(text).peekable();
    std::iter::from_fn(move || {
        // Find the first line of the next run.
        let (start, first_line) = loop {
            let (offset, line) = lines.next()?;
            if field_name(line).is_some() {
                break (offset, line);
            }
        };
        let mut run = QuotedHeaders { start, ..QuotedHeaders::default() };
        let mut field = first_line.to_owned();
        loop {
            let continuation =
                lines.peek().is_some_and(|(_, line)| line.starts_with([' ', '\t']) && !line.trim().is_empty());
            if continuation {
                if let Some((_, line)) = lines.next() {
                    field.push(' ');
                    field.push_str(line.trim());
                }
                continue;
            }
            record(&mut run, &field);
            match lines.peek() {
                Some((_, line)) if field_name(line).is_some() => {
                    field = line.to_string();
                    lines.next();
                }
                _ => return Some(run),
            }
        }
    })
}

fn record(run: &mut QuotedHeaders, field: &str) {
    let Some(name) = field_name(field) else {
        return;
    };
    run.fields += 1;
    if name.eq_ignore_ascii_case("Received") || name.eq_ignore_ascii_case("Return-Path") {
        run.has_trace = true;
    }
    if name.eq_ignore_ascii_case("Message-ID") && run.message_id.is_none() {
        let value = &field[name.len() + 1..];
        run.message_id = message_id::first(value.as_bytes());
    }
}

/// The field name when `line` starts like `Name: value` (RFC 5322 field
/// names are printable ASCII without spaces or colons).
fn field_name(line: &str) -> Option<&str> {
    let colon = line.find(':')?;
    let name = &line[..colon];
    let valid = !name.is_empty()
        && name.len() <= MAX_FIELD_NAME_LENGTH
        && name.bytes().all(|byte| byte.is_ascii_graphic() && byte != b':');
    valid.then_some(name)
}

/// Lines without their CR/LF, each with the byte offset where it starts.
pub(super) fn lines_with_offsets(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut offset = 0;
    text.split('\n').map(move |line| {
        let start = offset;
        offset += line.len() + 1;
        (start, line.strip_suffix('\r').unwrap_or(line))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_sections() {
        // (name, text, expected (start, fields, has_trace, message_id) of the
        // first section with a Message-ID)
        type Expected<'a> = Option<(usize, usize, bool, &'a str)>;
        let cases: &[(&str, &str, Expected)] = &[
            (
                "qmail copy",
                "Sorry.\n\n--- Below this line is a copy of the message.\n\nReturn-Path: <a@x>\nReceived: (qmail 1 invoked by uid 0);\n  24 Apr 2013\nMessage-ID: <orig@x>\nSubject: hi\n\nbody\n",
                Some((55, 4, true, "<orig@x>")),
            ),
            ("folded message-id", "From: a@x\r\nMessage-ID:\r\n <folded@x>\r\n\r\n", Some((0, 2, false, "<folded@x>"))),
            ("lone message-id line is prose", "Message-ID: <alone@x>\n\ntext", None),
            (
                "prose before is skipped",
                "Note: this is prose\nwith more prose\n\nDate: today\nMessage-Id: <m@x>\n",
                Some((37, 2, false, "<m@x>")),
            ),
            ("no section", "Hello,\nhow are you?\n", None),
            ("space in name is prose", "Dear Sir: hi\nMessage ID: <x@y>\n", None),
        ];
        for (name, text, expected) in cases {
            let found = first_with_message_id(text, 0)
                .map(|run| (run.start, run.fields, run.has_trace, run.message_id.unwrap()));
            let expected = expected.map(|(start, fields, trace, id)| (start, fields, trace, id.to_owned()));
            assert_eq!(found, expected, "{name}");
        }
    }

    #[test]
    fn search_starts_at_the_given_offset() {
        let text = "Message-ID: <first@x>\nFrom: a\n\nseparator\n\nMessage-ID: <second@x>\nFrom: b\n";
        let separator = text.find("separator").unwrap();
        assert_eq!(
            first_with_message_id(text, separator).and_then(|run| run.message_id).as_deref(),
            Some("<second@x>")
        );
    }
}
