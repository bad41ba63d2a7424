//! Every Message-ID a message carries outside its own Message-ID field,
//! with where it stood. Gathered whatever the verdict, so that a bounce or
//! reply in a format nobody recognises still passes when it names a
//! message we sent (DESIGN.md, principle 8).

use mail_parser::MessageParser;

use super::entity::{ReturnedCopy, Structure};
use super::inspection::{Found, Reference};
use super::message_id;
use super::quoted::QuotedHeaders;

/// Ids reported at most in [`super::Inspection::referenced_ids`]. A
/// References field can list hundreds; the latest are the ones kept.
pub const MAX_REFERENCED_IDS: usize = 64;

/// Ids reported at most in [`super::Inspection::references`]: the
/// referenced ids, and as many again found in the content.
pub const MAX_REFERENCES: usize = 2 * MAX_REFERENCED_IDS;

/// Bytes of one part scanned for ids in its text.
const MAX_SCANNED_PART_BYTES: usize = 256 * 1024;

/// Ids of the message's own header section, and the one it is about.
pub(super) struct Own<'a> {
    pub(super) message_id: Option<&'a str>,
    pub(super) original: Option<(&'a str, Found)>,
    pub(super) in_reply_to: Vec<String>,
    pub(super) references: Vec<String>,
    pub(super) parent: Option<String>,
}

/// The list, strongest places first, each id once, never the message's own.
struct Collector<'a> {
    own_id: Option<&'a str>,
    references: Vec<Reference>,
    limit: usize,
}

impl Collector<'_> {
    fn add(&mut self, id: String, found: Found) {
        if self.references.len() < self.limit
            && Some(id.as_str()) != self.own_id
            && !self.references.iter().any(|reference| reference.id == id)
        {
            self.references.push(Reference { id, found });
        }
    }

    fn is_full(&self) -> bool {
        self.references.len() >= self.limit
    }
}

/// The original, then In-Reply-To, then References (the latest kept when
/// there are too many), without the message's own id.
pub(super) fn referenced_ids(own: &Own<'_>) -> Vec<String> {
    answered(own).references.into_iter().map(|reference| reference.id).collect()
}

/// The ids the message says it answers, with where each stood.
fn answered<'a>(own: &Own<'a>) -> Collector<'a> {
    let mut collector = Collector { own_id: own.message_id, references: Vec::new(), limit: MAX_REFERENCED_IDS };
    if let Some((original, found)) = own.original {
        collector.add(original.to_owned(), found);
    }
    add_own_fields(&mut collector, own);
    collector
}

fn add_own_fields(collector: &mut Collector<'_>, own: &Own<'_>) {
    for id in &own.in_reply_to {
        collector.add(id.clone(), Found::InReplyTo);
    }
    let room = MAX_REFERENCED_IDS.saturating_sub(collector.references.len());
    let skip = own.references.len().saturating_sub(room);
    for id in own.references.iter().skip(skip) {
        collector.add(id.clone(), Found::References);
    }
}

/// Every id outside the message's own Message-ID field: first the ids of
/// `referenced_ids` (the original, In-Reply-To, References), then what
/// the report parts and returned copies name, quoted header sections, the
/// copies' own reply fields, and any other id in the text.
pub(super) fn all(
    parser: &MessageParser,
    structure: &Structure<'_>,
    copies: &[ReturnedCopy],
    runs: &[QuotedHeaders],
    own: &Own<'_>,
) -> Vec<Reference> {
    let mut collector = answered(own);
    collector.limit = MAX_REFERENCES;
    let parts = || structure.entities.iter().skip(1).filter(|entity| !entity.is_container);
    let mut returned_references = Vec::new();
    for copy in copies {
        let headers = &copy.headers;
        if let Some(id) = headers.message_id.as_deref().and_then(message_id::first) {
            collector.add(id, Found::ReturnedHeader);
        }
        for field in [&headers.in_reply_to, &headers.references].into_iter().flatten() {
            returned_references.extend(message_id::all(field));
        }
    }
    for part in parts() {
        if let Some(id) = part.original_message_id_field(parser) {
            collector.add(id, Found::OriginalMessageIdField);
        }
    }
    if let Some(parent) = &own.parent {
        collector.add(parent.clone(), Found::ParentMessageId);
    }
    for run in runs {
        if collector.is_full() {
            break;
        }
        if let Some(id) = run.message_id.clone().filter(|_| run.fields >= 2) {
            collector.add(id, Found::QuotedHeader);
        }
        returned_references.extend(run.references.iter().cloned());
    }
    for id in returned_references {
        collector.add(id, Found::ReturnedReferences);
    }
    for part in std::iter::once(structure.top()).filter(|top| !top.is_container).chain(parts()) {
        if collector.is_full() {
            break;
        }
        let body = part.decoded();
        let room = MAX_REFERENCES - collector.references.len();
        // Enough candidates that duplicates of ids already found leave room.
        for id in message_id::in_text(&body[..body.len().min(MAX_SCANNED_PART_BYTES)], room + MAX_REFERENCES) {
            collector.add(id, Found::QuotedText);
        }
    }
    collector.references
}
