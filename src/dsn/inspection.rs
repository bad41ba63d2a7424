//! The verdict `inspect` returns, and its JSON form for `batv-proxy inspect`.

use serde::Serialize;

/// What kind of automatic message this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A delivery status notification: a bounce or delay warning.
    Dsn,
    /// An automatic reply: out-of-office, vacation, read receipt,
    /// challenge-response request, automatic meeting response.
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

/// Where a referenced Message-ID was found. The places differ in how much
/// they prove: an id in a returned copy or an `Original-Message-ID` field
/// was put there by the reporting software, while an id anywhere in the
/// text may have been typed by whoever wrote the message. A ledger hit is
/// proof wherever the id stood; a match of a Message-ID *pattern* (which a
/// forger can imitate) should only count in the stronger places, see
/// [`Found::is_structural`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Found {
    /// The Message-ID field of a returned copy attached as a MIME part
    /// (message/rfc822, text/rfc822-headers and their variants).
    ReturnedHeader,
    /// An `Original-Message-ID` field of a report part (RFC 8098 MDNs, and
    /// the delivery-status parts of MTAs that add one).
    OriginalMessageIdField,
    /// Exchange's `X-MS-Exchange-Parent-Message-Id` on an out-of-office reply.
    ParentMessageId,
    /// The message's own `In-Reply-To` field.
    InReplyTo,
    /// The message's own `References` field.
    References,
    /// The Message-ID field of a header section pasted into the text of a
    /// plain-text bounce (after a separator line, indented or `>`-quoted).
    QuotedHeader,
    /// `In-Reply-To` or `References` of a returned or quoted copy: messages
    /// the original answered.
    ReturnedReferences,
    /// Any other `<left@right>` token in the body.
    QuotedText,
}

impl Found {
    /// A stable snake_case label for logs, metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Found::ReturnedHeader => "returned_header",
            Found::OriginalMessageIdField => "original_message_id_field",
            Found::ParentMessageId => "parent_message_id",
            Found::InReplyTo => "in_reply_to",
            Found::References => "references",
            Found::QuotedHeader => "quoted_header",
            Found::ReturnedReferences => "returned_references",
            Found::QuotedText => "quoted_text",
        }
    }

    /// Whether the id sits where mail software, not a person typing text,
    /// put it: the places `referenced_ids` is made of.
    pub fn is_structural(self) -> bool {
        !matches!(self, Found::ReturnedReferences | Found::QuotedText)
    }
}

/// One Message-ID the message carries outside its own Message-ID field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// With angle brackets, exactly as written.
    pub id: String,
    /// The first (strongest) place it was found.
    pub found: Found,
}

/// The verdict on one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    pub kind: Kind,
    /// Message-ID (with <>) of the message this bounce/reply is about: from the
    /// returned copy or headers part, from the Original-Message-ID of an MDN,
    /// or from headers quoted in a plain-text bounce; for an auto-reply, its
    /// In-Reply-To. NEVER the bounce's own Message-ID.
    pub original_message_id: Option<String>,
    /// The Message-IDs the message says it answers, best first: the original,
    /// then In-Reply-To, then References (deduplicated, at most 64). Ids only
    /// mentioned in the text are in [`Inspection::references`], not here.
    pub referenced_ids: Vec<String>,
    /// Which recognizer decided, a stable snake_case label for logs and
    /// metrics: one of [`super::dsn_rules`] for a bounce, of
    /// [`super::AUTO_REPLY_RULES`] for an automatic reply, or "none".
    pub rule: &'static str,
    /// One human sentence explaining the verdict.
    pub reason: String,
    /// Every Message-ID the message carries outside its own Message-ID
    /// field, with where it was found, each once: the `referenced_ids` first
    /// and in their order, then the ids found in the content, strongest
    /// places first; at most [`super::MAX_REFERENCES`]. Whatever the `kind`,
    /// a ledger hit on any of these answers our mail.
    pub references: Vec<Reference>,
    /// The iCalendar UIDs of a meeting response (METHOD REPLY, COUNTER,
    /// DECLINECOUNTER or CANCEL) the message carries; empty otherwise.
    pub calendar_uids: Vec<String>,
    /// The host a delivery status notification's `Reporting-MTA` field
    /// names (`dns` type only), for exemptions by reporting MTA.
    pub reporting_mta: Option<String>,
}

impl Inspection {
    /// One JSON object; `kind`, `original_message_id` and `reason` come
    /// first and are a fixed interface for scripts, newer members are added
    /// at the end.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct JsonReference<'a> {
            id: &'a str,
            found: &'a str,
        }
        #[derive(Serialize)]
        struct Json<'a> {
            kind: &'a str,
            original_message_id: Option<&'a str>,
            reason: &'a str,
            rule: &'a str,
            referenced_ids: &'a [String],
            references: Vec<JsonReference<'a>>,
            calendar_uids: &'a [String],
            reporting_mta: Option<&'a str>,
        }
        let json = Json {
            kind: self.kind.as_str(),
            original_message_id: self.original_message_id.as_deref(),
            reason: &self.reason,
            rule: self.rule,
            referenced_ids: &self.referenced_ids,
            references: self
                .references
                .iter()
                .map(|reference| JsonReference { id: &reference.id, found: reference.found.as_str() })
                .collect(),
            calendar_uids: &self.calendar_uids,
            reporting_mta: self.reporting_mta.as_deref(),
        };
        // Serialising strings and slices of strings cannot fail.
        serde_json::to_string(&json).unwrap_or_default()
    }
}
