//! Recent verdicts: what happened to each transaction, recipient by
//! recipient and for its message, kept in a bounded ring so an admin can
//! answer "what happened to this email?" by queue id, session, Message-ID,
//! recipient or client (`/verdicts` beside `/metrics`, `batv-proxy
//! explain`). `batv-proxy judge` prints the same records for a message it
//! runs through the real policy. Nothing secret goes in: no keys, and no
//! tag the proxy made (only whether it signed, and with which key).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

/// Records kept by default.
pub const DEFAULT_CAPACITY: usize = 1000;
/// Records one query returns at most.
pub const MAX_ANSWER: usize = 200;

/// What became of one recipient.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RecipientRecord {
    /// As the client gave it.
    pub address: String,
    /// The verdict's result and reason (`valid`/`ok`, `invalid`/`bad_signature`, ...).
    pub verdict: &'static str,
    pub reason: &'static str,
    /// What decided.
    pub rule: &'static str,
    /// `reject`, `tempfail` or `mark`, when a verdict refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exemption: Option<String>,
    /// The reply code the client got for this RCPT.
    pub reply: u16,
}

/// What became of the message, after DATA.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct MessageRecord {
    /// `dsn`, `autoreply` or `none`, when the content was judged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recognizer: Option<&'static str>,
    /// The content verdict (`accept`, `reject`, `tempfail`) and its rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exemption: Option<String>,
    /// The Message-ID of the message it returns or answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_message_id: Option<String>,
    /// The Message-ID the ledger knew, when the ledger decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger_match: Option<String>,
    /// Where the message carried it (`returned_header`, `in_reply_to`,
    /// `quoted_text`, `calendar_uid`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger_found: Option<&'static str>,
    /// Outbound: the Message-ID recorded in the ledger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The MTA's queue id from its final reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_id: Option<String>,
    /// The reply to the final dot, as the client got it.
    pub reply: String,
}

/// One transaction.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VerdictRecord {
    /// RFC 3339, UTC.
    pub time: String,
    pub session: String,
    pub listener: String,
    pub client: IpAddr,
    /// `<address>` or `<>`.
    pub sender: String,
    /// Outbound: whether the sender was signed, and the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_with_key: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsigned_reason: Option<&'static str>,
    pub recipients: Vec<RecipientRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageRecord>,
}

impl VerdictRecord {
    pub fn new(time: SystemTime, session: &str, listener: &str, client: IpAddr, sender: String) -> Self {
        let time =
            time::OffsetDateTime::from(time).format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        VerdictRecord {
            time,
            session: session.to_owned(),
            listener: listener.to_owned(),
            client,
            sender,
            signed_with_key: None,
            unsigned_reason: None,
            recipients: Vec::new(),
            message: None,
        }
    }

    /// Whether some recipient got the message: the upstream's `2xx` after
    /// the final dot.
    pub fn delivered(&self) -> bool {
        self.message.as_ref().is_some_and(|message| message.reply.starts_with('2'))
    }
}

/// What a query asks for; every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub queue_id: Option<String>,
    pub session: Option<String>,
    pub message_id: Option<String>,
    /// Matches any recipient, case ignored.
    pub rcpt: Option<String>,
    pub client: Option<IpAddr>,
    /// Matches any of the above, or the sender: what `explain` asks when
    /// the admin gives a bare value.
    pub any: Option<String>,
}

impl Query {
    /// From a URL query string (`queue_id=ABC&rcpt=alice@example.com`);
    /// `None` names the parameter that is not understood.
    pub fn parse(text: &str) -> Result<Query, String> {
        let mut query = Query::default();
        for pair in text.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value);
            match name {
                "queue_id" => query.queue_id = Some(value),
                "session" => query.session = Some(value),
                "message_id" => query.message_id = Some(value),
                "rcpt" => query.rcpt = Some(value),
                "any" => query.any = Some(value),
                "client" => {
                    query.client = Some(value.parse().map_err(|_| format!("client={value} is not an address"))?)
                }
                other => {
                    return Err(format!(
                        "unknown parameter {other}; use queue_id, session, message_id, rcpt, client or any"
                    ));
                }
            }
        }
        Ok(query)
    }

    fn matches(&self, record: &VerdictRecord) -> bool {
        let message = record.message.as_ref();
        let message_ids =
            || message.into_iter().flat_map(|m| [&m.message_id, &m.original_message_id, &m.ledger_match]).flatten();
        self.queue_id.as_ref().is_none_or(|wanted| message.and_then(|m| m.queue_id.as_ref()) == Some(wanted))
            && self.session.as_ref().is_none_or(|wanted| &record.session == wanted)
            && self.client.is_none_or(|wanted| record.client == wanted)
            && self.rcpt.as_ref().is_none_or(|wanted| {
                record.recipients.iter().any(|recipient| recipient.address.eq_ignore_ascii_case(wanted))
            })
            && self.message_id.as_ref().is_none_or(|wanted| message_ids().any(|id| bare(id) == bare(wanted)))
            && self.any.as_ref().is_none_or(|wanted| {
                let address = bare(wanted);
                message.and_then(|m| m.queue_id.as_ref()) == Some(wanted)
                    || &record.session == wanted
                    || record.client.to_string() == *wanted
                    || bare(&record.sender) == address
                    || record.recipients.iter().any(|recipient| bare(&recipient.address) == address)
                    || message_ids().any(|id| bare(id) == address)
            })
    }
}

/// An id or address without its angle brackets, case folded.
fn bare(text: &str) -> String {
    text.trim().trim_start_matches('<').trim_end_matches('>').to_ascii_lowercase()
}

fn percent_decode(text: &str) -> String {
    let hex = |byte: u8| (byte as char).to_digit(16).map(|digit| digit as u8);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => match (hex(bytes[index + 1]), hex(bytes[index + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    index += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The ring of recent records, shared by every listener.
#[derive(Debug)]
pub struct VerdictLog {
    capacity: usize,
    records: Mutex<VecDeque<VerdictRecord>>,
}

impl VerdictLog {
    /// A ring of `capacity` records; 0 keeps none.
    pub fn new(capacity: usize) -> Self {
        VerdictLog { capacity, records: Mutex::new(VecDeque::with_capacity(capacity.min(DEFAULT_CAPACITY))) }
    }

    pub fn push(&self, record: VerdictRecord) {
        if self.capacity == 0 {
            return;
        }
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if records.len() == self.capacity {
            records.pop_front();
        }
        records.push_back(record);
    }

    /// The records `query` matches, newest first, at most [`MAX_ANSWER`].
    pub fn find(&self, query: &Query) -> Vec<VerdictRecord> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.iter().rev().filter(|record| query.matches(record)).take(MAX_ANSWER).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(session: &str, rcpt: &str, queue_id: &str) -> VerdictRecord {
        let mut record = VerdictRecord::new(
            SystemTime::UNIX_EPOCH,
            session,
            "inbound@127.0.0.1:25",
            "192.0.2.7".parse().unwrap(),
            "<>".into(),
        );
        record.recipients.push(RecipientRecord {
            address: rcpt.into(),
            verdict: "missing",
            reason: "untagged",
            rule: "untagged_inspect",
            action: None,
            exemption: None,
            reply: 250,
        });
        record.message = Some(MessageRecord {
            queue_id: Some(queue_id.into()),
            original_message_id: Some("<orig.1@example.com>".into()),
            reply: "250 2.0.0 Ok".into(),
            ..MessageRecord::default()
        });
        record
    }

    #[test]
    fn the_ring_keeps_the_newest_and_answers_queries() {
        let log = VerdictLog::new(2);
        log.push(record("s1", "alice@example.com", "Q1"));
        log.push(record("s2", "bob@example.com", "Q2"));
        log.push(record("s3", "Alice@Example.com", "Q3"));
        assert_eq!(log.len(), 2, "bounded");
        let alice = log.find(&Query::parse("rcpt=alice%40example.com").unwrap());
        assert_eq!(alice.iter().map(|r| r.session.as_str()).collect::<Vec<_>>(), ["s3"]);
        assert_eq!(log.find(&Query::parse("queue_id=Q2").unwrap())[0].session, "s2");
        assert_eq!(log.find(&Query::parse("message_id=orig.1@example.com").unwrap()).len(), 2);
        assert_eq!(log.find(&Query::parse("client=192.0.2.7&session=s2").unwrap()).len(), 1);
        assert!(log.find(&Query::parse("client=198.51.100.1").unwrap()).is_empty());
        assert!(Query::parse("secret=x").is_err());
        let any = |value: &str| log.find(&Query::parse(&format!("any={value}")).unwrap()).len();
        assert_eq!(
            [any("Q3"), any("s2"), any("%3Corig.1%40example.com%3E"), any("ALICE%40example.com"), any("192.0.2.7")],
            [1, 1, 2, 1, 2]
        );
        assert_eq!(any("%3C%3E"), 2, "the sender");
        assert_eq!(any("nobody%40example.com"), 0);
        assert!(VerdictLog::new(0).is_empty());
        assert!(log.find(&Query::default())[0].delivered());
    }
}
