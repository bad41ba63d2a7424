//! Bounce and auto-reply recognition, and the original message's
//! Message-ID. Pure: bytes in, a verdict out.
//!
//! The proxy uses this for bounces that arrive at an untagged address (see
//! DESIGN.md, "What counts as a bounce"): such a bounce, read receipt or
//! out-of-office reply is accepted only when it answers mail we sent, which
//! it shows by naming the Message-ID of that mail. So the verdict carries,
//! besides the kind of message, every Message-ID it says it answers.
//!
//! Recognizers run in a fixed order and the first that matches decides:
//! structured reports first (they are unambiguous), then challenge-response
//! requests (whose text borrows bounce phrasing), then plain-text bounce
//! formats, then auto-reply header fields from the most specific to the most
//! generic. A message nothing matches is a normal message.
//!
//! Input from the network is untrusted: nothing here panics, the work is
//! linear in the input and bounded (see `entity`), and only the first
//! [`MAX_INSPECTED_BYTES`] are read.

mod auto_reply;
mod entity;
mod message_id;
mod original;
mod plain;
mod quoted;
mod report;

use mail_parser::MessageParser;
use serde::Serialize;

use entity::Structure;
use original::{Original, Source};
use report::Report;

/// Bytes of a message looked at; the rest is ignored, as if truncated. The
/// proxy hands over at most 256 KiB, and everything a bounce says about the
/// original sits in its first few kilobytes.
pub const MAX_INSPECTED_BYTES: usize = 1024 * 1024;

/// Message-IDs reported in [`Inspection::referenced_ids`] at most. A
/// References field can list hundreds; the ones kept are the original, the
/// In-Reply-To and the latest References.
const MAX_REFERENCED_IDS: usize = 64;

/// What kind of automatic message this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A delivery status notification: a bounce or delay warning.
    Dsn,
    /// An automatic reply: out-of-office, vacation, read receipt,
    /// challenge-response request.
    AutoReply,
    /// A message written by a person or sent in bulk; not an answer from
    /// the mail system.
    None,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dsn => "dsn",
            Kind::AutoReply => "autoreply",
            Kind::None => "none",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The verdict on one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    pub kind: Kind,
    /// Message-ID (with <>) of the message this bounce/reply is about: from the
    /// message/rfc822, text/rfc822-headers or message/global-headers part, from
    /// the Original-Message-ID of an MDN, or from headers quoted in a plain-text
    /// bounce; for an auto-reply, its In-Reply-To. NEVER the bounce's own Message-ID.
    pub original_message_id: Option<String>,
    /// Every Message-ID the message says it answers, best first: the original,
    /// then In-Reply-To, then References (deduplicated). The proxy accepts the
    /// bounce if any of these is one of ours.
    pub referenced_ids: Vec<String>,
    /// Which recognizer decided, a stable snake_case label for logs and metrics:
    /// "rfc3464", "mdn", "qmail", "exim", "postfix_plain", "exchange", "lotus",
    /// "opensmtpd", "sendmail", "plain_bounce", "challenge_response",
    /// "exchange_oof", "vacation",
    /// "auto_submitted", "x_autoreply", "precedence", or "none".
    pub rule: &'static str,
    /// One human sentence explaining the verdict.
    pub reason: String,
}

impl Inspection {
    /// One JSON object; `kind`, `original_message_id` and `reason` come
    /// first and are a fixed interface for scripts.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Json<'a> {
            kind: &'a str,
            original_message_id: Option<&'a str>,
            reason: &'a str,
            rule: &'a str,
            referenced_ids: &'a [String],
        }
        let json = Json {
            kind: self.kind.as_str(),
            original_message_id: self.original_message_id.as_deref(),
            reason: &self.reason,
            rule: self.rule,
            referenced_ids: &self.referenced_ids,
        };
        // Serialising strings and a slice of strings cannot fail.
        serde_json::to_string(&json).unwrap_or_default()
    }
}

/// Inspects a message (header section and body, as received after DATA,
/// possibly truncated).
pub fn inspect(message: &[u8]) -> Inspection {
    let message = &message[..message.len().min(MAX_INSPECTED_BYTES)];
    let parser = MessageParser::new();
    let structure = Structure::walk(&parser, message);
    let context = Context { parser: &parser, text: structure.plain_text(), structure: &structure };
    let verdict = RECOGNIZERS.iter().find_map(|recognize| recognize(&context)).unwrap_or_else(|| normal(&context));
    let headers = &structure.top().headers;
    let own_id = headers.raw("Message-ID").and_then(message_id::first);
    let mut original = verdict.original.map(|original| original.id);
    if original.is_some() && original == own_id {
        original = None;
    }
    let referenced_ids = referenced_ids(
        original.as_deref(),
        headers.raw("In-Reply-To").map(message_id::all).unwrap_or_default(),
        headers.raw("References").map(message_id::all).unwrap_or_default(),
        own_id.as_deref(),
    );
    Inspection {
        kind: verdict.kind,
        original_message_id: original,
        referenced_ids,
        rule: verdict.rule,
        reason: verdict.reason,
    }
}

/// Everything a recognizer may look at.
struct Context<'a> {
    parser: &'a MessageParser,
    structure: &'a Structure<'a>,
    /// The decoded text/plain parts.
    text: String,
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
    |context| auto_reply_by(context, auto_reply::exchange_out_of_office),
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
            let original =
                original::attached(context.parser, structure).or_else(|| original::quoted_in_text(&context.text, 0));
            Some(verdict(Kind::Dsn, "rfc3464", "a delivery status notification (multipart/report, RFC 3464)", original))
        }
        Report::Disposition => {
            let original = original::disposition_field(context.parser, structure)
                .or_else(|| original::attached(context.parser, structure))
                .or_else(|| original::field(headers, "In-Reply-To", Source::InReplyTo));
            Some(verdict(
                Kind::AutoReply,
                "mdn",
                "a read receipt (message disposition notification, RFC 8098)",
                original,
            ))
        }
        // Not about a message's fate; let the other recognizers look.
        Report::Other(_) => None,
    }
}

fn challenge_response(context: &Context<'_>) -> Option<Verdict> {
    let found = auto_reply::challenge_response(context.structure)?;
    let headers = &context.structure.top().headers;
    let original = original::field(headers, "In-Reply-To", Source::InReplyTo)
        .or_else(|| original::attached(context.parser, context.structure))
        .or_else(|| original::quoted_in_text(&context.text, 0));
    Some(verdict(Kind::AutoReply, found.rule, found.description, original))
}

fn plain_bounce(context: &Context<'_>) -> Option<Verdict> {
    let found = plain::recognize(context.structure, &context.text)?;
    let original = original::attached(context.parser, context.structure)
        .or_else(|| original::quoted_in_text(&context.text, found.copy_starts_at.unwrap_or(0)));
    Some(verdict(Kind::Dsn, found.rule, found.description, original))
}

fn auto_reply_by(context: &Context<'_>, recognize: fn(&Structure<'_>) -> Option<auto_reply::Found>) -> Option<Verdict> {
    let found = recognize(context.structure)?;
    let headers = &context.structure.top().headers;
    let parent = if found.rule == "exchange_oof" {
        original::field(headers, "X-MS-Exchange-Parent-Message-Id", Source::ExchangeParent)
    } else {
        None
    };
    let original = parent.or_else(|| original::field(headers, "In-Reply-To", Source::InReplyTo));
    Some(verdict(Kind::AutoReply, found.rule, found.description, original))
}

/// The verdict when no recognizer matched.
fn normal(context: &Context<'_>) -> Verdict {
    let reason = match report::classify(context.structure) {
        Some(Report::Other(report_type)) if !report_type.is_empty() => format!(
            "a multipart/report of type {report_type}, which is neither a delivery status nor a disposition notification, and no auto-reply markers"
        ),
        _ if context.structure.top().headers.is_empty() => "no header section".to_owned(),
        _ => "no delivery report, bounce text or auto-reply marker".to_owned(),
    };
    Verdict { kind: Kind::None, rule: "none", reason, original: None }
}

fn verdict(kind: Kind, rule: &'static str, description: &str, original: Option<Original>) -> Verdict {
    let reason = match &original {
        Some(original) => format!("{description}; the original Message-ID comes from {}", original.source.describe()),
        None => format!("{description}; it names no original Message-ID"),
    };
    Verdict { kind, rule, reason, original }
}

/// The original first, then In-Reply-To, then References, without
/// duplicates or the message's own id, at most [`MAX_REFERENCED_IDS`] (the
/// oldest References are the ones dropped).
fn referenced_ids(
    original: Option<&str>,
    in_reply_to: Vec<String>,
    references: Vec<String>,
    own_id: Option<&str>,
) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    let add = |id: String, ids: &mut Vec<String>| {
        if ids.len() < MAX_REFERENCED_IDS && Some(id.as_str()) != own_id && !ids.contains(&id) {
            ids.push(id);
        }
    };
    if let Some(original) = original {
        add(original.to_owned(), &mut ids);
    }
    for id in in_reply_to {
        add(id, &mut ids);
    }
    let references_room = MAX_REFERENCED_IDS.saturating_sub(ids.len());
    let skip = references.len().saturating_sub(references_room);
    for id in references.into_iter().skip(skip) {
        add(id, &mut ids);
    }
    ids
}

#[cfg(test)]
mod tests;
