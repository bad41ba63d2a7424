//! The MIME structure of a message, walked with fixed bounds.
//!
//! `mail-parser` reads the header fields and decodes bodies, but its full
//! `parse` is not used: a message/rfc822 part nested a few thousand levels
//! deep (easy to fit in 256 KiB, and hidden from any pre-scan when it is
//! base64-encoded) makes its recursive conversion and drop overflow the
//! stack. The walk here splits multiparts itself, never descends into an
//! attached message (only that message's header section matters), and stops
//! at a fixed depth and part count, so its work is linear in the input and its
//! stack use is constant.

use std::borrow::Cow;

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::parsers::MessageStream;
use mail_parser::{ContentType, Header, HeaderValue, MessageParser};
use memchr::memmem;

/// Multiparts nested deeper than this are read as opaque leaves. Real
/// bounces nest two or three levels (mixed → report → alternative).
const MAX_DEPTH: usize = 8;

/// Entities (containers and leaves) looked at in one message; later ones are
/// ignored. A report has three parts, a bounce with a long digest of failures
/// a few dozen.
const MAX_ENTITIES: usize = 64;

/// Longest boundary accepted; RFC 2046 allows 70 characters.
const MAX_BOUNDARY_LENGTH: usize = 200;

/// A header section parsed by `mail-parser`, with the raw bytes its offsets
/// point into.
pub(super) struct Headers<'a> {
    raw: &'a [u8],
    fields: Vec<Header<'a>>,
}

impl<'a> Headers<'a> {
    /// Parses the header section at the start of `bytes` and returns it with
    /// the offset where the body starts (`bytes.len()` when the section is
    /// not terminated by an empty line, as in a truncated message).
    pub(super) fn parse(parser: &MessageParser, bytes: &'a [u8]) -> (Headers<'a>, usize) {
        let mut stream = MessageStream::new(bytes);
        let mut fields = Vec::new();
        let terminated = stream.parse_headers(parser, &mut fields);
        let body_start = if terminated { stream.offset() } else { bytes.len() };
        (Headers { raw: bytes, fields }, body_start)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    fn find(&self, name: &str) -> Option<&Header<'a>> {
        self.fields.iter().find(|field| field.name.as_str().eq_ignore_ascii_case(name))
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    /// The unparsed value of the first field called `name` (folding and
    /// comments included).
    pub(super) fn raw(&self, name: &str) -> Option<&'a [u8]> {
        let field = self.find(name)?;
        self.raw.get(field.offset_start as usize..field.offset_end as usize)
    }

    /// The first field called `name`, unfolded and trimmed, for matching
    /// against fixed markers.
    pub(super) fn text(&self, name: &str) -> Option<String> {
        let raw = self.raw(name)?;
        let text = String::from_utf8_lossy(raw);
        Some(text.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    /// The first field called `name` with RFC 2047 encoded words decoded,
    /// for unstructured fields such as Subject.
    pub(super) fn decoded_text(&self, name: &str) -> Option<String> {
        match &self.find(name)?.value {
            HeaderValue::Text(text) => Some(text.to_string()),
            HeaderValue::TextList(list) => Some(list.join(" ")),
            _ => self.text(name),
        }
    }

    pub(super) fn content_type(&self) -> Option<&ContentType<'a>> {
        self.fields.iter().find_map(|field| match &field.value {
            HeaderValue::ContentType(content_type) if field.name.as_str().eq_ignore_ascii_case("Content-Type") => {
                Some(content_type)
            }
            _ => None,
        })
    }

    fn transfer_encoding(&self) -> Option<String> {
        self.text("Content-Transfer-Encoding").map(|value| value.to_ascii_lowercase())
    }
}

/// `type/subtype`, lower-cased, with text/plain as the default RFC 2045
/// gives a part without a Content-Type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MediaType {
    pub(super) main: String,
    pub(super) sub: String,
}

impl MediaType {
    fn of(headers: &Headers<'_>) -> MediaType {
        match headers.content_type() {
            Some(content_type) => MediaType {
                main: content_type.ctype().to_ascii_lowercase(),
                sub: content_type.subtype().unwrap_or_default().to_ascii_lowercase(),
            },
            None => MediaType { main: "text".into(), sub: "plain".into() },
        }
    }

    pub(super) fn is(&self, main: &str, sub: &str) -> bool {
        self.main == main && self.sub == sub
    }
}

/// One MIME entity: the message itself, a multipart container or a leaf.
pub(super) struct Entity<'a> {
    pub(super) headers: Headers<'a>,
    pub(super) media_type: MediaType,
    /// The undecoded body.
    pub(super) body: &'a [u8],
    /// Whether the walk split this entity into parts.
    pub(super) is_container: bool,
    /// Whether this is a body part rather than the message itself.
    pub(super) is_part: bool,
}

impl<'a> Entity<'a> {
    fn parse(parser: &MessageParser, bytes: &'a [u8]) -> Entity<'a> {
        let (headers, body_start) = Headers::parse(parser, bytes);
        let media_type = MediaType::of(&headers);
        Entity {
            body: bytes.get(body_start..).unwrap_or_default(),
            headers,
            media_type,
            is_container: false,
            is_part: false,
        }
    }

    /// A body part, whose header section some MTAs end without the empty
    /// line (`Content-Type: text/plain` and the text right below): the
    /// section ends at the first line that is not a field, and mail-parser,
    /// which would skip such lines as broken fields, sees only the fields.
    fn parse_part(parser: &MessageParser, bytes: &'a [u8]) -> Entity<'a> {
        let header_end = part_header_end(bytes);
        let (headers, _) = Headers::parse(parser, &bytes[..header_end]);
        let media_type = MediaType::of(&headers);
        Entity { body: &bytes[header_end..], headers, media_type, is_container: false, is_part: true }
    }

    /// Whether this leaf is a returned copy of a message, and of what: the
    /// whole message, or its header section only. Besides the RFC types,
    /// the names MTAs really write.
    pub(super) fn returned_copy(&self) -> Option<Copy> {
        let media_type = &self.media_type;
        match (media_type.main.as_str(), media_type.sub.as_str()) {
            ("message", "rfc822" | "global" | "partial" | "news") => Some(Copy::Message),
            ("message", "rfc822-headers" | "rfc822-header" | "global-headers" | "headers")
            | ("text", "rfc822-headers" | "rfc822-header" | "x-rfc822-headers" | "headers" | "global-headers") => {
                Some(Copy::Headers)
            }
            // A part whose own header section is a message's: the copy
            // was pasted in without a part header of its own.
            _ if self.is_part
                && self.headers.has("Message-ID")
                && (self.headers.has("Received") || self.headers.has("From")) =>
            {
                Some(Copy::Message)
            }
            _ => None,
        }
    }

    /// A Content-Type parameter, e.g. `report-type` or `charset`.
    pub(super) fn parameter(&self, name: &str) -> Option<String> {
        let content_type = self.headers.content_type()?;
        content_type
            .attributes()?
            .iter()
            .find(|attribute| attribute.name.eq_ignore_ascii_case(name))
            .map(|attribute| attribute.value.trim().to_owned())
    }

    /// The body with its Content-Transfer-Encoding undone; the raw body when
    /// the encoding is unknown or broken.
    pub(super) fn decoded(&self) -> Cow<'a, [u8]> {
        let decoded = match self.headers.transfer_encoding().as_deref() {
            Some("base64") => base64_decode(self.body),
            Some("quoted-printable") => quoted_printable_decode(self.body),
            _ => None,
        };
        match decoded {
            Some(bytes) => Cow::Owned(bytes),
            None => Cow::Borrowed(self.body),
        }
    }

    /// The decoded body as text in its declared charset.
    /// Borrowed from the message when it needs no decoding (the common
    /// case of a UTF-8 or ASCII body), so a long body is not copied.
    pub(super) fn text(&self) -> Cow<'a, str> {
        let charset = self.parameter("charset").unwrap_or_default().to_ascii_lowercase();
        let decoder = match charset.as_str() {
            "" | "utf-8" | "utf8" | "us-ascii" | "ascii" => None,
            other => charset_decoder(other.as_bytes()),
        };
        match (self.decoded(), decoder) {
            (bytes, Some(decode)) => Cow::Owned(decode(&bytes)),
            // The fast validation first; the lossy one only for broken text.
            (Cow::Borrowed(bytes), None) => match std::str::from_utf8(bytes) {
                Ok(text) => Cow::Borrowed(text),
                Err(_) => String::from_utf8_lossy(bytes),
            },
            (Cow::Owned(bytes), None) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
        }
    }

    /// The header section of an attached message (message/rfc822,
    /// message/global) or of a headers-only part (text/rfc822-headers,
    /// message/global-headers).
    /// When the part's own header section has a Message-ID, the copy's
    /// fields ran into it (no empty line between the part's fields and the
    /// copy's) and are read from there.
    pub(super) fn attached_headers(&self, parser: &MessageParser) -> AttachedHeaders {
        let keep = |headers: &Headers<'_>| AttachedHeaders {
            message_id: headers.raw("Message-ID").map(<[u8]>::to_vec),
            in_reply_to: headers.raw("In-Reply-To").map(<[u8]>::to_vec),
            references: headers.raw("References").map(<[u8]>::to_vec),
        };
        if self.headers.has("Message-ID") {
            return keep(&self.headers);
        }
        let decoded = self.decoded();
        let (headers, _) = Headers::parse(parser, &decoded);
        keep(&headers)
    }
}

impl Entity<'_> {
    /// The `filename` parameter of Content-Disposition.
    pub(super) fn disposition_filename(&self) -> Option<String> {
        self.headers.fields.iter().find_map(|field| match &field.value {
            HeaderValue::ContentType(disposition)
                if field.name.as_str().eq_ignore_ascii_case("Content-Disposition") =>
            {
                disposition.attribute("filename").map(str::to_owned)
            }
            _ => None,
        })
    }
}

/// A returned copy's kind and header fields, read once per message.
pub(super) struct ReturnedCopy {
    pub(super) kind: Copy,
    pub(super) headers: AttachedHeaders,
}

impl Structure<'_> {
    /// Every returned copy among the body parts, in document order.
    pub(super) fn returned_copies(&self, parser: &MessageParser) -> Vec<ReturnedCopy> {
        self.entities
            .iter()
            .skip(1)
            .filter(|entity| !entity.is_container)
            .filter_map(|part| {
                Some(ReturnedCopy { kind: part.returned_copy()?, headers: part.attached_headers(parser) })
            })
            .collect()
    }
}

/// What a returned-copy part holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Copy {
    Message,
    Headers,
}

/// What is kept of an attached message's header section (owned, since the
/// section may have been decoded into a temporary buffer).
pub(super) struct AttachedHeaders {
    pub(super) message_id: Option<Vec<u8>>,
    pub(super) in_reply_to: Option<Vec<u8>>,
    pub(super) references: Option<Vec<u8>>,
}

/// Where the header section of a body part ends: after its empty line, or
/// at the first line that is neither a field nor a continuation.
fn part_header_end(bytes: &[u8]) -> usize {
    let mut offset = 0;
    while offset < bytes.len() {
        let line_end = memchr::memchr(b'\n', &bytes[offset..]).map_or(bytes.len(), |at| offset + at + 1);
        let line = &bytes[offset..line_end];
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.is_empty() {
            return line_end;
        }
        let continuation = offset > 0 && matches!(content[0], b' ' | b'\t');
        if !continuation && !starts_with_field_name(content) {
            return offset;
        }
        offset = line_end;
    }
    bytes.len()
}

/// `Name:` at the start of a line, with a name of printable ASCII.
fn starts_with_field_name(line: &[u8]) -> bool {
    match memchr::memchr(b':', line) {
        Some(colon) => colon > 0 && line[..colon].iter().all(|byte| byte.is_ascii_graphic()),
        None => false,
    }
}

/// A message as a flat list of entities in document order; the first is the
/// message itself.
pub(super) struct Structure<'a> {
    pub(super) entities: Vec<Entity<'a>>,
}

impl<'a> Structure<'a> {
    pub(super) fn walk(parser: &MessageParser, message: &'a [u8]) -> Structure<'a> {
        let mut entities: Vec<Entity<'a>> = Vec::new();
        // Entities still to read, with their depth; reversed so that popping
        // yields document order.
        let mut pending: Vec<(&'a [u8], usize)> = vec![(message, 0)];
        while let Some((bytes, depth)) = pending.pop() {
            if entities.len() >= MAX_ENTITIES {
                break;
            }
            let mut entity =
                if entities.is_empty() { Entity::parse(parser, bytes) } else { Entity::parse_part(parser, bytes) };
            if entity.media_type.main == "multipart"
                && depth < MAX_DEPTH
                && let Some(boundary) = entity.parameter("boundary")
            {
                let parts = split_multipart(entity.body, boundary.as_bytes());
                if !parts.is_empty() {
                    entity.is_container = true;
                    let room = MAX_ENTITIES.saturating_sub(entities.len() + 1 + pending.len());
                    for part in parts.into_iter().take(room).rev() {
                        pending.push((part, depth + 1));
                    }
                }
            }
            entities.push(entity);
        }
        Structure { entities }
    }

    pub(super) fn top(&self) -> &Entity<'a> {
        &self.entities[0]
    }

    /// Leaves in document order, the message itself included when it is not
    /// a multipart.
    pub(super) fn leaves(&self) -> impl Iterator<Item = &Entity<'a>> {
        self.entities.iter().filter(|entity| !entity.is_container)
    }

    /// The text of the text/plain leaves, joined; where plain-text bounces
    /// keep their explanation and, often, a copy of the original headers. A
    /// multipart whose delimiters are missing (flattened by some gateway) is
    /// read as text too.
    /// A message with only HTML text (some webmail bounces) is read from
    /// its HTML, with the markup taken out.
    pub(super) fn plain_text(&self) -> Cow<'a, str> {
        let is_text = |leaf: &&Entity<'a>| {
            (leaf.media_type.main == "text"
                && !leaf.media_type.sub.contains("html")
                && leaf.media_type.sub != "calendar"
                && leaf.returned_copy().is_none())
                || leaf.media_type.main == "multipart"
        };
        let mut texts = self.leaves().filter(is_text).map(Entity::text);
        let mut text = match (texts.next(), texts.next()) {
            (Some(only), None) if !only.trim().is_empty() => return only,
            (None, _) => Cow::Borrowed(""),
            (Some(first), None) => first,
            (Some(first), Some(second)) => {
                let mut joined = first.into_owned();
                for next in std::iter::once(second).chain(texts) {
                    joined.push('\n');
                    joined.push_str(&next);
                }
                Cow::Owned(joined)
            }
        };
        if text.trim().is_empty() {
            let mut from_html = text.into_owned();
            for leaf in self.leaves().filter(|leaf| leaf.media_type.is("text", "html")) {
                super::html::append_text(&leaf.text(), &mut from_html);
            }
            text = Cow::Owned(from_html);
        }
        text
    }
}

/// The body parts of a multipart body, between `--boundary` delimiter lines
/// (RFC 2046 section 5.1.1). The preamble and epilogue are dropped; a part cut
/// off by truncation runs to the end of the input.
pub(super) fn split_multipart<'a>(body: &'a [u8], boundary: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    if boundary.is_empty() || boundary.len() > MAX_BOUNDARY_LENGTH {
        return parts;
    }
    let mut delimiter = Vec::with_capacity(boundary.len() + 2);
    delimiter.extend_from_slice(b"--");
    delimiter.extend_from_slice(boundary);
    let finder = memmem::Finder::new(&delimiter);

    let mut part_start: Option<usize> = None;
    let mut search_from = 0;
    while let Some(found) = finder.find(&body[search_from..]).map(|at| at + search_from) {
        let after = found + delimiter.len();
        search_from = after;
        let at_line_start = found == 0 || body[found - 1] == b'\n';
        let rest = &body[after..];
        let is_closing = rest.starts_with(b"--");
        // A longer boundary that merely starts with this one is not a delimiter.
        let ends_cleanly = is_closing || rest.first().is_none_or(|byte| matches!(byte, b'\r' | b'\n' | b' ' | b'\t'));
        if !at_line_start || !ends_cleanly {
            continue;
        }
        if let Some(start) = part_start.take() {
            parts.push(&body[start..line_break_before(body, start, found)]);
            if parts.len() >= MAX_ENTITIES {
                return parts;
            }
        }
        if is_closing {
            return parts;
        }
        match memchr::memchr(b'\n', rest) {
            Some(newline) => {
                part_start = Some(after + newline + 1);
                search_from = after + newline + 1;
            }
            None => return parts,
        }
    }
    if let Some(start) = part_start {
        parts.push(&body[start..]);
    }
    parts
}

/// `end` moved back over the CRLF or LF that belongs to the delimiter line
/// following a part, never before `start`.
fn line_break_before(body: &[u8], start: usize, end: usize) -> usize {
    let mut end = end;
    if end > start && body[end - 1] == b'\n' {
        end -= 1;
        if end > start && body[end - 1] == b'\r' {
            end -= 1;
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_multipart_cases() {
        let cases: &[(&str, &[u8], &[&str])] = &[
            ("crlf", b"preamble\r\n--b\r\nA\r\n--b\r\nB\r\n--b--\r\nepilogue", &["A", "B"]),
            ("lf", b"--b\nA\n--b\nB\n--b--\n", &["A", "B"]),
            ("truncated last part", b"--b\nA\n--b\nB is cut", &["A", "B is cut"]),
            ("padding after delimiter", b"--b  \nA\n--b--", &["A"]),
            ("longer boundary is not ours", b"--b\nA\n--bc\nstill A\n--b--", &["A\n--bc\nstill A"]),
            ("delimiter not at line start", b"--b\nA --b\n--b--", &["A --b"]),
            ("no delimiter", b"just text", &[]),
            ("empty part", b"--b\n\n--b--", &[""]),
            ("delimiter at the very end", b"--b\nA\n--b", &["A"]),
        ];
        for (name, body, expected) in cases {
            let parts: Vec<String> =
                split_multipart(body, b"b").iter().map(|part| String::from_utf8_lossy(part).into_owned()).collect();
            assert_eq!(parts, *expected, "{name}");
        }
    }

    #[test]
    fn split_multipart_rejects_unusable_boundaries() {
        assert!(split_multipart(b"--\nA\n----\n", b"").is_empty());
        let long = vec![b'x'; MAX_BOUNDARY_LENGTH + 1];
        assert!(split_multipart(b"--x\nA", &long).is_empty());
    }

    #[test]
    fn walk_lists_entities_in_document_order() {
        let message = b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n\
            --outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n\
            --inner\r\nContent-Type: text/plain\r\n\r\none\r\n\
            --inner\r\nContent-Type: text/html\r\n\r\n<p>two</p>\r\n--inner--\r\n\
            --outer\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: <a@b>\r\n\r\nthree\r\n\
            --outer--\r\n";
        let parser = MessageParser::new();
        let structure = Structure::walk(&parser, message);
        let types: Vec<String> = structure
            .entities
            .iter()
            .map(|entity| format!("{}/{}", entity.media_type.main, entity.media_type.sub))
            .collect();
        assert_eq!(types, ["multipart/mixed", "multipart/alternative", "text/plain", "text/html", "message/rfc822"]);
        let leaf = structure.leaves().find(|leaf| leaf.media_type.is("message", "rfc822")).unwrap();
        assert_eq!(leaf.attached_headers(&parser).message_id.as_deref(), Some(&b" <a@b>\r\n"[..]));
        assert_eq!(structure.plain_text(), "one");
    }

    #[test]
    fn walk_stops_at_the_depth_and_entity_limits() {
        let mut deep = String::new();
        for level in 0..1000 {
            deep.push_str(&format!("Content-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n--b{level}\r\n"));
        }
        let parser = MessageParser::new();
        let structure = Structure::walk(&parser, deep.as_bytes());
        assert_eq!(structure.entities.len(), MAX_DEPTH + 1);

        let mut wide = String::from("Content-Type: multipart/mixed; boundary=b\r\n\r\n");
        for _ in 0..1000 {
            wide.push_str("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n");
        }
        let structure = Structure::walk(&parser, wide.as_bytes());
        assert_eq!(structure.entities.len(), MAX_ENTITIES);
    }

    #[test]
    fn decoding_follows_the_transfer_encoding_and_charset() {
        let parser = MessageParser::new();
        let cases: &[(&str, &[u8], &str)] = &[
            ("base64", b"Content-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8=\r\n", "hello"),
            (
                "quoted-printable latin-1",
                b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe",
                "Gr\u{fc}\u{df}e",
            ),
            ("broken base64 stays raw", b"Content-Transfer-Encoding: base64\r\n\r\n!!!", "!!!"),
            ("invalid utf-8 is replaced", b"\r\nab\xffcd", "ab\u{fffd}cd"),
        ];
        for (name, bytes, expected) in cases {
            let entity = Entity::parse(&parser, bytes);
            assert_eq!(entity.text(), *expected, "{name}");
        }
    }
}
