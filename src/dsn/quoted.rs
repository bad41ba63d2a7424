//! Header sections quoted inside a plain-text body.
//!
//! Bounces that predate RFC 3464 (qmail, old Exim, Lotus Notes) paste the
//! returned message below a separator line instead of attaching it, some
//! indented, some `>`-quoted, some in a MIME part whose header section ran
//! into it. Such a copy is recognised by its shape: consecutive `Name:
//! value` lines with folded continuations, all behind the same prefix of
//! spaces or `>`, including trace fields (Received, Return-Path) that only
//! a transported message carries and a person quoting a message in a reply
//! does not.

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;

use super::message_id;

/// Field names longer than this are not header fields but prose with a colon.
const MAX_FIELD_NAME_LENGTH: usize = 76;

/// Ids kept from the In-Reply-To and References of one quoted section.
const MAX_QUOTED_REFERENCES: usize = 16;

/// Longest quoting prefix (`> > `, indentation) taken as such.
const MAX_PREFIX_LENGTH: usize = 16;

/// A run of lines shaped like a header section.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct QuotedHeaders {
    /// Byte offset of the run's first line in the text.
    pub(super) start: usize,
    pub(super) fields: usize,
    /// Whether it has Received or Return-Path, i.e. is a transported message.
    pub(super) has_trace: bool,
    /// Whether it has From, To, Subject or Date: a message, not a list of
    /// diagnostic fields.
    pub(super) has_message_fields: bool,
    pub(super) message_id: Option<String>,
    /// Ids of its In-Reply-To and References fields.
    pub(super) references: Vec<String>,
}

/// Runs kept of one text; more are not looked at.
const MAX_RUNS: usize = 64;

/// The runs that name an id (Message-ID, In-Reply-To or References), read
/// once per message and shared by the recognizers and the id gathering.
pub(super) fn id_runs(text: &str) -> Vec<QuotedHeaders> {
    runs(text).filter(|run| run.message_id.is_some() || !run.references.is_empty()).take(MAX_RUNS).collect()
}

/// The first quoted header section at or after byte `from` that has a
/// Message-ID and at least one other field.
pub(super) fn first_with_message_id(runs: &[QuotedHeaders], from: usize) -> Option<&QuotedHeaders> {
    runs.iter().filter(|run| run.start >= from).find(|run| run.message_id.is_some() && run.fields >= 2)
}

/// The field names a run is read for; a text without any has no run worth
/// reading, which one fast search tells.
static ID_FIELDS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(["message-id", "in-reply-to", "references"])
        .expect("three fixed names build an automaton")
});

/// Every run of header-shaped lines, in one pass over the text; none when
/// the text names no id-bearing field at all.
pub(super) fn runs(text: &str) -> impl Iterator<Item = QuotedHeaders> + '_ {
    // Past the end of the header block holding the last id field there is
    // no run worth reading: cut there, or everything if there is none.
    let end = ID_FIELDS.find_iter(text).last().map_or(0, |last| {
        let after = last.end();
        memchr::memmem::find(&text.as_bytes()[after..], b"\n\n")
            .or_else(|| memchr::memmem::find(&text.as_bytes()[after..], b"\n\r\n"))
            .map_or(text.len(), |blank| after + blank + 1)
    });
    let text = &text[..end];
    let mut lines = lines_with_offsets(text).peekable();
    std::iter::from_fn(move || {
        // Find the first line of the next run and its quoting prefix.
        let (start, prefix, first_line) = loop {
            let (offset, line) = lines.next()?;
            let prefix = &line[..quote_prefix_length(line)];
            let rest = &line[prefix.len()..];
            if field_name(rest).is_some() {
                break (offset, prefix, rest);
            }
        };
        let mut run = QuotedHeaders { start, ..QuotedHeaders::default() };
        let mut field = first_line.to_owned();
        loop {
            let next = lines.peek().and_then(|(_, line)| line.strip_prefix(prefix));
            let continuation = next.is_some_and(|rest| rest.starts_with([' ', '\t']) && !rest.trim().is_empty())
                // A `>`-quoted continuation often lost its blank: "> \tby x" became ">\tby x".
                || (prefix.ends_with(' ') && lines.peek().and_then(|(_, line)| line.strip_prefix(prefix.trim_end()))
                    .is_some_and(|rest| rest.starts_with('\t') && !rest.trim().is_empty()));
            if continuation {
                if let Some((_, line)) = lines.next() {
                    // Whichever prefix made it a continuation, cut at a
                    // character boundary (found by fuzzing).
                    let rest =
                        line.strip_prefix(prefix).or_else(|| line.strip_prefix(prefix.trim_end())).unwrap_or(line);
                    field.push(' ');
                    field.push_str(rest.trim());
                }
                continue;
            }
            record(&mut run, &field);
            match next {
                Some(rest) if field_name(rest).is_some() => {
                    field = rest.to_owned();
                    lines.next();
                }
                _ => return Some(run),
            }
        }
    })
}

/// Length of the leading `>`, space and tab characters that quote a line,
/// when followed by something; indentation deeper than
/// [`MAX_PREFIX_LENGTH`] is not a quote.
fn quote_prefix_length(line: &str) -> usize {
    let length = line.bytes().take_while(|byte| matches!(byte, b'>' | b' ' | b'\t')).count();
    if length > MAX_PREFIX_LENGTH { 0 } else { length }
}

fn record(run: &mut QuotedHeaders, field: &str) {
    let Some(name) = field_name(field) else {
        return;
    };
    run.fields += 1;
    let value = &field[name.len() + 1..];
    let is = |wanted: &str| name.eq_ignore_ascii_case(wanted);
    if is("Received") || is("Return-Path") {
        run.has_trace = true;
    } else if is("From") || is("To") || is("Subject") || is("Date") {
        run.has_message_fields = true;
    } else if is("Message-ID") && run.message_id.is_none() {
        run.message_id = message_id::first(value.as_bytes());
    } else if (is("In-Reply-To") || is("References")) && run.references.len() < MAX_QUOTED_REFERENCES {
        let room = MAX_QUOTED_REFERENCES - run.references.len();
        run.references.extend(message_id::all(value.as_bytes()).into_iter().take(room));
    }
}

/// The field name when `line` starts like `Name: value` (RFC 5322 field
/// names are printable ASCII without spaces or colons).
fn field_name(line: &str) -> Option<&str> {
    // Prose lines are the common case: reject them without a full scan.
    if !line.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) {
        return None;
    }
    let head = &line.as_bytes()[..line.len().min(MAX_FIELD_NAME_LENGTH + 1)];
    let colon = memchr::memchr(b':', head)?;
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
            (
                "indented copy",
                "Copy:\n\n    Received: from a\n    \tby b\n    Message-ID: <ind@x>\n",
                Some((7, 2, true, "<ind@x>")),
            ),
            (
                "quoted continuation that lost its blank, before a multi-byte character",
                "> Received: from a\n>\t\u{fffd}by b\n> Message-ID: <m@x>\n",
                Some((0, 2, true, "<m@x>")),
            ),
            (
                "quoted copy",
                "> Received: from a\n>\tby b\n> Message-ID: <q@x>\n> Subject: s\n",
                Some((0, 3, true, "<q@x>")),
            ),
        ];
        for (name, text, expected) in cases {
            let runs = id_runs(text);
            let found = first_with_message_id(&runs, 0)
                .map(|run| (run.start, run.fields, run.has_trace, run.message_id.clone().unwrap()));
            let expected = expected.map(|(start, fields, trace, id)| (start, fields, trace, id.to_owned()));
            assert_eq!(found, expected, "{name}");
        }
    }

    #[test]
    fn search_starts_at_the_given_offset() {
        let text = "Message-ID: <first@x>\nFrom: a\n\nseparator\n\nMessage-ID: <second@x>\nFrom: b\n";
        let separator = text.find("separator").unwrap();
        let runs = id_runs(text);
        assert_eq!(
            first_with_message_id(&runs, separator).and_then(|run| run.message_id.as_deref()),
            Some("<second@x>")
        );
    }
}
