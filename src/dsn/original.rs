//! Where the Message-ID of the message a bounce or reply is about comes
//! from. Every source is inside the bounce's body or names another message;
//! the bounce's own Message-ID is never one of them.

use mail_parser::MessageParser;

use super::entity::{Copy, Headers, ReturnedCopy, Structure};
use super::inspection::Found;
use super::message_id;
use super::quoted::{self, QuotedHeaders};

/// Where an original Message-ID was found, for the verdict's explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    AttachedMessage,
    AttachedHeaders,
    DispositionField,
    QuotedHeaders,
    ExchangeParent,
    InReplyTo,
}

impl Source {
    /// Where, in the terms of the public [`Found`].
    pub(super) fn found(self) -> Found {
        match self {
            Source::AttachedMessage | Source::AttachedHeaders => Found::ReturnedHeader,
            Source::DispositionField => Found::OriginalMessageIdField,
            Source::QuotedHeaders => Found::QuotedHeader,
            Source::ExchangeParent => Found::ParentMessageId,
            Source::InReplyTo => Found::InReplyTo,
        }
    }

    pub(super) fn describe(self) -> &'static str {
        match self {
            Source::AttachedMessage => "the attached copy of the message",
            Source::AttachedHeaders => "the attached header section of the message",
            Source::DispositionField => "the Original-Message-ID field of the notification",
            Source::QuotedHeaders => "the message headers quoted in the text",
            Source::ExchangeParent => "the X-MS-Exchange-Parent-Message-Id field",
            Source::InReplyTo => "the In-Reply-To field",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Original {
    pub(super) id: String,
    pub(super) source: Source,
}

/// The Message-ID of the first returned copy (message/rfc822, a headers
/// part, or their non-standard variants, see `Entity::returned_copy`) that
/// has one.
pub(super) fn attached(copies: &[ReturnedCopy]) -> Option<Original> {
    copies.iter().find_map(|copy| {
        let source = match copy.kind {
            Copy::Message => Source::AttachedMessage,
            Copy::Headers => Source::AttachedHeaders,
        };
        let id = message_id::first(copy.headers.message_id.as_deref()?)?;
        Some(Original { id, source })
    })
}

/// The Original-Message-ID field of an MDN's message/disposition-notification
/// part (RFC 8098 section 3.2.5), or of a delivery-status part that has one.
pub(super) fn disposition_field(parser: &MessageParser, structure: &Structure<'_>) -> Option<Original> {
    structure
        .leaves()
        .find_map(|leaf| leaf.original_message_id_field(parser))
        .map(|id| Original { id, source: Source::DispositionField })
}

/// The Message-ID of the first quoted header section at or after byte
/// `from` of the plain text.
pub(super) fn quoted_in_text(runs: &[QuotedHeaders], from: usize) -> Option<Original> {
    let run = quoted::first_with_message_id(runs, from)?;
    Some(Original { id: run.message_id.clone()?, source: Source::QuotedHeaders })
}

/// The Message-ID of the first header section with trace fields pasted
/// into a part that is not text: where a copy ends up when the MTA botched
/// the MIME delimiters and the copy ran into the report part before it.
pub(super) fn quoted_in_other_parts(structure: &Structure<'_>) -> Option<Original> {
    structure
        .entities
        .iter()
        .skip(1)
        .filter(|entity| !entity.is_container && entity.media_type.main != "text")
        .find_map(|part| {
            let text = String::from_utf8_lossy(&part.decoded()).into_owned();
            let run = quoted::runs(&text).find(|run| run.has_trace && run.message_id.is_some())?;
            Some(Original { id: run.message_id?, source: Source::QuotedHeaders })
        })
}

/// The first id of a reply-type field of the message itself.
pub(super) fn field(headers: &Headers<'_>, name: &str, source: Source) -> Option<Original> {
    let id = message_id::first(headers.raw(name)?)?;
    Some(Original { id, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn structure_of(message: &str) -> (MessageParser, Vec<u8>) {
        (MessageParser::new(), message.as_bytes().to_vec())
    }

    #[test]
    fn sources() {
        type Finder = fn(&MessageParser, &Structure<'_>, &str) -> Option<Original>;
        let attached_finder: Finder = |parser, structure, _| attached(&structure.returned_copies(parser));
        let disposition_finder: Finder = |parser, structure, _| disposition_field(parser, structure);
        let quoted_finder: Finder = |_, _, text| quoted_in_text(&quoted::id_runs(text), 0);
        let in_reply_to_finder: Finder =
            |_, structure, _| field(&structure.top().headers, "In-Reply-To", Source::InReplyTo);
        let own = "Message-ID: <own@bounce>\n";
        type Case<'a> = (&'a str, String, Finder, Option<(&'a str, Source)>);
        let cases: &[Case] = &[
            (
                "message/rfc822",
                format!(
                    "{own}Content-Type: multipart/report; boundary=b\n\n--b\nContent-Type: message/rfc822\n\nMessage-ID: <orig@x>\n\nbody\n--b--\n"
                ),
                attached_finder,
                Some(("<orig@x>", Source::AttachedMessage)),
            ),
            (
                "base64 message/rfc822",
                format!(
                    "{own}Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nTWVzc2FnZS1JRDogPGI2NEB4Pg0KDQpib2R5DQo=\n--b--\n"
                ),
                attached_finder,
                Some(("<b64@x>", Source::AttachedMessage)),
            ),
            (
                "text/rfc822-headers",
                format!(
                    "{own}Content-Type: multipart/report; boundary=b\n\n--b\nContent-Type: text/rfc822-headers\n\nFrom: a\nMessage-Id: <hdr@x>\n--b--\n"
                ),
                attached_finder,
                Some(("<hdr@x>", Source::AttachedHeaders)),
            ),
            (
                "message/global-headers",
                format!(
                    "{own}Content-Type: multipart/report; boundary=b\n\n--b\nContent-Type: message/global-headers\n\nMessage-ID: <gl\u{f6}bal@x>\n--b--\n"
                ),
                attached_finder,
                Some(("<gl\u{f6}bal@x>", Source::AttachedHeaders)),
            ),
            (
                "attachment without a Message-ID is not the bounce's own",
                format!(
                    "{own}Content-Type: multipart/report; boundary=b\n\n--b\nContent-Type: message/rfc822\n\nSubject: no id\n\nbody\n--b--\n"
                ),
                attached_finder,
                None,
            ),
            ("plain message has no attachment", format!("{own}\nMessage-ID: <in-body@x>\n"), attached_finder, None),
            (
                "mdn field",
                format!(
                    "{own}Content-Type: multipart/report; boundary=b\n\n--b\nContent-Type: message/disposition-notification\n\nReporting-UA: x\nOriginal-Message-ID: <mdn@x>\nDisposition: manual-action/MDN-sent-manually; displayed\n--b--\n"
                ),
                disposition_finder,
                Some(("<mdn@x>", Source::DispositionField)),
            ),
            (
                "quoted headers",
                format!("{own}\nSorry.\n\nReceived: by x\nMessage-ID: <quoted@x>\n"),
                quoted_finder,
                Some(("<quoted@x>", Source::QuotedHeaders)),
            ),
            (
                "in-reply-to",
                format!("{own}In-Reply-To: <parent@x>\n\nhi\n"),
                in_reply_to_finder,
                Some(("<parent@x>", Source::InReplyTo)),
            ),
        ];
        for (name, message, finder, expected) in cases {
            let (parser, bytes) = structure_of(message);
            let structure = Structure::walk(&parser, &bytes);
            let text = structure.plain_text();
            let found = finder(&parser, &structure, &text);
            let expected = expected.map(|(id, source)| Original { id: id.to_owned(), source });
            assert_eq!(found, expected, "{name}");
        }
    }
}
