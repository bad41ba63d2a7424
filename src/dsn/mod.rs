//! Bounce and auto-reply recognition, and the Message-IDs a message
//! answers. Pure: bytes in, a verdict out.
//!
//! The proxy uses this for bounces that arrive at an untagged address (see
//! DESIGN.md, "What counts as a bounce"): such a bounce, read receipt or
//! out-of-office reply is accepted only when it answers mail we sent, which
//! it shows by naming the Message-ID of that mail (or the UID of an
//! invitation we sent). So the verdict carries, besides the kind of
//! message, every Message-ID it carries outside its own Message-ID field,
//! with where each stood, whatever the kind: recognising the format must
//! not stand between a ledger hit and acceptance (principle 8).
//!
//! A report that is not about delivery (ARF feedback, TLS reports) is never
//! a bounce. Otherwise recognizers run in a fixed order and the first that
//! matches decides: structured reports first (they are unambiguous), then
//! challenge-response requests (whose text borrows bounce phrasing), then
//! plain-text bounce formats (`formats`), then auto-reply header fields from
//! the most specific to the most generic, then automatic meeting responses.
//! A message nothing matches is a normal message.
//!
//! mail-parser reads header fields and decodes bodies; the MIME walk is our
//! own (`entity`) because real bounces break MIME in ways a strict parser
//! drops (part headers without the empty line, copies pasted as text,
//! misspelled types) and because its recursion is unbounded. There is no
//! maintained Rust bounce parser to build on.
//!
//! Input from the network is untrusted: nothing here panics, the work is
//! linear in the input and bounded (see `entity`), and only the first
//! [`MAX_INSPECTED_BYTES`] are read.

mod auto_reply;
mod calendar;
mod entity;
mod formats;
mod html;
mod inspection;
mod message_id;
mod original;
mod quoted;
mod references;
mod report;

use std::sync::LazyLock;

use mail_parser::{HeaderName, MessageParser};

use entity::Structure;
use original::{Original, Source};
use report::Report;

pub use calendar::{MAX_CALENDAR_UIDS, outbound_calendar_uids};
pub use inspection::{Found, Inspection, Kind, Reference};
pub use references::{MAX_REFERENCED_IDS, MAX_REFERENCES};

/// Bytes of a message looked at; the rest is ignored, as if truncated. The
/// proxy hands over at most 256 KiB, and everything a bounce says about the
/// original sits in its first few kilobytes.
pub const MAX_INSPECTED_BYTES: usize = 1024 * 1024;

/// The rules of [`Kind::Dsn`] verdicts.
pub fn dsn_rules() -> impl Iterator<Item = &'static str> {
    ["rfc3464"].into_iter().chain(formats::rules())
}

/// The rules of [`Kind::AutoReply`] verdicts.
pub const AUTO_REPLY_RULES: &[&str] = &[
    "mdn",
    "challenge_response",
    "calendar_reply",
    "exchange_oof",
    "vacation",
    "auto_submitted",
    "x_autoreply",
    "precedence",
];

/// Parses only the fields whose parsed value inspection reads (the MIME
/// structure and the Subject); every other field keeps just its place in
/// the message, which is all the raw readers need. Parsing each Received
/// field of a returned copy took a sixth of a bounce's inspection.
pub(super) static FIELD_PARSER: LazyLock<MessageParser> = LazyLock::new(|| {
    MessageParser::new()
        .default_header_ignore()
        .header_content_type(HeaderName::ContentType)
        .header_content_type(HeaderName::ContentDisposition)
        .header_text(HeaderName::Subject)
});

/// Inspects a message (header section and body, as received after DATA,
/// possibly truncated).
pub fn inspect(message: &[u8]) -> Inspection {
    let message = &message[..message.len().min(MAX_INSPECTED_BYTES)];
    let parser = &*FIELD_PARSER;
    let structure = Structure::walk(parser, message);
    let text = structure.plain_text();
    let runs = quoted::id_runs(&text);
    let copies = structure.returned_copies(parser);
    let context = Context { parser, text, runs, copies, structure: &structure };
    let calendar = calendar::read(&structure);
    let verdict = if let Some(Report::Other(report_type)) = report::classify(&structure) {
        // A feedback (ARF), TLS or other report: automatic, but not about
        // the fate of a message we sent, whatever else it looks like.
        not_automatic(format!(
            "a multipart/report of type {report_type}, which is neither a delivery status nor a disposition notification"
        ))
    } else {
        RECOGNIZERS
            .iter()
            .find_map(|recognize| recognize(&context))
            .or_else(|| calendar_reply(&context, &calendar))
            .unwrap_or_else(|| normal(&context))
    };
    let headers = &structure.top().headers;
    let own_id = headers.raw("Message-ID").and_then(message_id::first);
    let mut original = verdict.original;
    if original.as_ref().is_some_and(|original| Some(&original.id) == own_id.as_ref()) {
        original = None;
    }
    let own = references::Own {
        message_id: own_id.as_deref(),
        original: original.as_ref().map(|original| (original.id.as_str(), original.source.found())),
        in_reply_to: headers.raw("In-Reply-To").map(message_id::all).unwrap_or_default(),
        references: headers.raw("References").map(message_id::all).unwrap_or_default(),
        parent: headers.raw("X-MS-Exchange-Parent-Message-Id").and_then(message_id::first),
    };
    Inspection {
        kind: verdict.kind,
        referenced_ids: references::referenced_ids(&own),
        references: references::all(parser, &structure, &context.copies, &context.runs, &own),
        original_message_id: original.map(|original| original.id),
        rule: verdict.rule,
        reason: verdict.reason,
        calendar_uids: calendar.response_uids,
        reporting_mta: structure.leaves().find_map(|leaf| leaf.reporting_mta()),
    }
}

/// Everything a recognizer may look at.
struct Context<'a> {
    parser: &'a MessageParser,
    structure: &'a Structure<'a>,
    /// The decoded text/plain parts.
    text: std::borrow::Cow<'a, str>,
    /// The returned copies attached as parts.
    copies: Vec<entity::ReturnedCopy>,
    /// The header sections quoted in the text that name ids.
    runs: Vec<quoted::QuotedHeaders>,
}

/// A recognizer's decision, before the referenced ids are gathered.
struct Verdict {
    kind: Kind,
    rule: &'static str,
    reason: String,
    original: Option<Original>,
}

type Recognizer = fn(&Context<'_>) -> Option<Verdict>;

/// In the order they are tried; see the module documentation.
const RECOGNIZERS: &[Recognizer] = &[
    multipart_report,
    challenge_response,
    plain_bounce,
    exchange_out_of_office,
    |context| auto_reply_by(context, auto_reply::vacation),
    |context| auto_reply_by(context, auto_reply::auto_submitted),
    |context| auto_reply_by(context, auto_reply::x_autoreply),
    |context| auto_reply_by(context, auto_reply::precedence),
];

fn multipart_report(context: &Context<'_>) -> Option<Verdict> {
    let structure = context.structure;
    let headers = &structure.top().headers;
    match report::classify(structure)? {
        Report::Delivery => {
            let original = original::attached(&context.copies)
                .or_else(|| original::quoted_in_text(&context.runs, 0))
                .or_else(|| original::quoted_in_other_parts(structure));
            Some(verdict(Kind::Dsn, "rfc3464", "a delivery status notification (multipart/report, RFC 3464)", original))
        }
        Report::Disposition => {
            let original = original::disposition_field(context.parser, structure)
                .or_else(|| original::attached(&context.copies))
                .or_else(|| original::field(headers, "In-Reply-To", Source::InReplyTo));
            Some(verdict(
                Kind::AutoReply,
                "mdn",
                "a read receipt (message disposition notification, RFC 8098)",
                original,
            ))
        }
        // Decided before the recognizers run.
        Report::Other(_) => None,
    }
}

fn challenge_response(context: &Context<'_>) -> Option<Verdict> {
    let found = auto_reply::challenge_response(context.structure)?;
    let headers = &context.structure.top().headers;
    let original = original::field(headers, "In-Reply-To", Source::InReplyTo)
        .or_else(|| original::attached(&context.copies))
        .or_else(|| original::quoted_in_text(&context.runs, 0));
    Some(verdict(Kind::AutoReply, found.rule, found.description, original))
}

fn plain_bounce(context: &Context<'_>) -> Option<Verdict> {
    let found = formats::recognize(context.structure, &context.text, &context.runs)?;
    let original = original::attached(&context.copies)
        .or_else(|| original::quoted_in_text(&context.runs, found.copy_starts_at.unwrap_or(0)))
        .or_else(|| original::quoted_in_other_parts(context.structure));
    Some(verdict(Kind::Dsn, found.rule, found.description, original))
}

fn auto_reply_by(context: &Context<'_>, recognize: fn(&Structure<'_>) -> Option<auto_reply::Found>) -> Option<Verdict> {
    let found = recognize(context.structure)?;
    let original = original::field(&context.structure.top().headers, "In-Reply-To", Source::InReplyTo);
    Some(verdict(Kind::AutoReply, found.rule, found.description, original))
}

/// Exchange names the message it answers in a field of its own, which
/// survives where In-Reply-To was dropped or rewritten.
fn exchange_out_of_office(context: &Context<'_>) -> Option<Verdict> {
    let found = auto_reply::exchange_out_of_office(context.structure)?;
    let headers = &context.structure.top().headers;
    let original = original::field(headers, "X-MS-Exchange-Parent-Message-Id", Source::ExchangeParent)
        .or_else(|| original::field(headers, "In-Reply-To", Source::InReplyTo));
    Some(verdict(Kind::AutoReply, found.rule, found.description, original))
}

/// A meeting response (iTIP REPLY, COUNTER, DECLINECOUNTER, CANCEL) the
/// software sent by itself: the calendar part is the message, and the
/// message is marked automatic or comes from the mail system. One a
/// person sent by clicking "Accept" is the person's mail, and stays
/// [`Kind::None`]; its UIDs are reported either way.
fn calendar_reply(context: &Context<'_>, calendar: &calendar::Calendar) -> Option<Verdict> {
    let headers = &context.structure.top().headers;
    let automatic = headers
        .text("Auto-Submitted")
        .is_some_and(|value| !value.trim().is_empty() && !value.trim().eq_ignore_ascii_case("no"))
        || formats::from_mail_system(headers);
    if !calendar.is_response() || !automatic {
        return None;
    }
    let original = original::field(headers, "In-Reply-To", Source::InReplyTo);
    Some(verdict(
        Kind::AutoReply,
        "calendar_reply",
        "an automatic meeting response (iCalendar METHOD REPLY, COUNTER, DECLINECOUNTER or CANCEL)",
        original,
    ))
}

/// The verdict when no recognizer matched.
fn normal(context: &Context<'_>) -> Verdict {
    let reason = if context.structure.top().headers.is_empty() {
        "no header section".to_owned()
    } else {
        "no delivery report, bounce text or auto-reply marker".to_owned()
    };
    not_automatic(reason)
}

fn not_automatic(reason: String) -> Verdict {
    Verdict { kind: Kind::None, rule: "none", reason, original: None }
}

fn verdict(kind: Kind, rule: &'static str, description: &str, original: Option<Original>) -> Verdict {
    let reason = match &original {
        Some(original) => format!("{description}; the original Message-ID comes from {}", original.source.describe()),
        None => format!("{description}; it names no original Message-ID"),
    };
    Verdict { kind, rule, reason, original }
}

#[cfg(test)]
mod tests;
