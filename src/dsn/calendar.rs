//! iCalendar (RFC 5545) objects carried by a message, as iTIP (RFC 5546)
//! uses them: an invitation (METHOD REQUEST) goes out, a response (REPLY,
//! COUNTER) or an update (CANCEL, DECLINECOUNTER) comes back, naming the
//! event by its UID and often nothing else: Exchange sends meeting
//! responses with a null sender and no In-Reply-To. So the UIDs of what we
//! send are worth recording, and the UIDs of what comes back worth looking up.
//!
//! Only what iTIP needs is read: the METHOD (from the object, or from the
//! Content-Type's `method` parameter) and each UID property, after
//! unfolding. Parts are found by type (`text/calendar`, `application/ics`)
//! or by an `.ics` file name, in any transfer encoding.

use super::entity::{Entity, Structure};

/// UIDs reported at most; an invitation carries one, a recurring series
/// with exceptions a few.
pub const MAX_CALENDAR_UIDS: usize = 16;

/// Longest UID kept; real ones are UUIDs or Exchange's 100-odd hex digits.
const MAX_UID_LENGTH: usize = 255;

/// Bytes of one calendar part read, decoded; the METHOD and UIDs come first.
const MAX_CALENDAR_PART_BYTES: usize = 64 * 1024;

/// The iTIP methods that answer or update an object someone sent us.
const RESPONSE_METHODS: &[&str] = &["REPLY", "COUNTER", "DECLINECOUNTER", "CANCEL"];

/// The calendar objects one message carries.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Calendar {
    /// Upper-cased METHOD of each calendar part, in order (empty for a
    /// part without one).
    pub(super) methods: Vec<String>,
    /// UIDs of parts with a response method.
    pub(super) response_uids: Vec<String>,
    /// UIDs of all parts, whatever their method.
    pub(super) all_uids: Vec<String>,
}

impl Calendar {
    pub(super) fn is_response(&self) -> bool {
        self.methods.iter().any(|method| RESPONSE_METHODS.contains(&method.as_str()))
    }
}

/// The UIDs of the calendar objects an outbound message carries (any
/// METHOD: an invitation, an update, or a reply to someone else's
/// invitation, all of which can be answered), for recording beside its
/// Message-ID. Reads the message like [`super::inspect`] does, so the
/// header section and the start of the body are enough.
pub fn outbound_calendar_uids(message: &[u8]) -> Vec<String> {
    let message = &message[..message.len().min(super::MAX_INSPECTED_BYTES)];
    let structure = Structure::walk(&super::FIELD_PARSER, message);
    read(&structure).all_uids
}

/// Every calendar part of the message.
pub(super) fn read(structure: &Structure<'_>) -> Calendar {
    let mut calendar = Calendar::default();
    for leaf in structure.leaves().filter(|leaf| is_calendar_part(leaf)) {
        let bytes = leaf.decoded();
        let bytes = &bytes[..bytes.len().min(MAX_CALENDAR_PART_BYTES)];
        let text = String::from_utf8_lossy(bytes);
        let mut method = leaf.parameter("method").unwrap_or_default().to_ascii_uppercase();
        let mut uids = Vec::new();
        for line in unfolded_lines(&text) {
            let Some((name, value)) = property(&line) else { continue };
            if name.eq_ignore_ascii_case("METHOD") && method.is_empty() {
                method = value.trim().to_ascii_uppercase();
            } else if name.eq_ignore_ascii_case("UID") {
                let uid = value.trim();
                if !uid.is_empty() && uid.len() <= MAX_UID_LENGTH && !uids.iter().any(|known| known == uid) {
                    uids.push(uid.to_owned());
                }
            }
        }
        let response = RESPONSE_METHODS.contains(&method.as_str());
        for uid in uids {
            if response {
                add(&mut calendar.response_uids, &uid);
            }
            add(&mut calendar.all_uids, &uid);
        }
        calendar.methods.push(method);
    }
    calendar
}

fn add(uids: &mut Vec<String>, uid: &str) {
    if uids.len() < MAX_CALENDAR_UIDS && !uids.iter().any(|known| known == uid) {
        uids.push(uid.to_owned());
    }
}

fn is_calendar_part(leaf: &Entity<'_>) -> bool {
    let media_type = &leaf.media_type;
    if media_type.is("text", "calendar") || media_type.is("application", "ics") || media_type.is("text", "x-vcalendar")
    {
        return true;
    }
    let named_ics = |name: Option<String>| name.is_some_and(|name| name.to_ascii_lowercase().ends_with(".ics"));
    (media_type.main == "application" || media_type.main == "text")
        && (named_ics(leaf.parameter("name")) || named_ics(leaf.disposition_filename()))
}

/// Content lines with folding undone (RFC 5545 section 3.1: a line break
/// followed by one space or tab continues the line).
fn unfolded_lines(text: &str) -> impl Iterator<Item = String> + '_ {
    let mut lines = text.split('\n').map(|line| line.strip_suffix('\r').unwrap_or(line)).peekable();
    std::iter::from_fn(move || {
        let mut line = lines.next()?.to_owned();
        while let Some(next) = lines.peek().filter(|next| next.starts_with([' ', '\t'])) {
            line.push_str(&next[1..]);
            lines.next();
        }
        Some(line)
    })
}

/// `NAME;PARAM=x:value` as (NAME, value); a colon inside a quoted
/// parameter value does not end the name.
fn property(line: &str) -> Option<(&str, &str)> {
    let mut quoted = false;
    let mut name_end = None;
    for (index, character) in line.char_indices() {
        match character {
            '"' => quoted = !quoted,
            ';' if name_end.is_none() => name_end = Some(index),
            ':' if !quoted => {
                let name = &line[..name_end.unwrap_or(index)];
                return Some((name.trim(), &line[index + 1..]));
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calendar_of(message: &str) -> Calendar {
        read(&Structure::walk(&crate::dsn::FIELD_PARSER, message.as_bytes()))
    }

    const INVITATION: &str = "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n\
        UID:040000008200E00074C5B7101A82E00800000000D0A3\r\n 1B2C@example.com\r\nSUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn methods_and_uids() {
        let alternative = |part: &str| {
            format!(
                "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\n{part}\r\n--b--\r\n"
            )
        };
        let reply = INVITATION.replace("METHOD:REQUEST", "METHOD:REPLY");
        let base64_reply = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(reply.as_bytes())
        };
        let cases: Vec<(&str, String, &[&str], &[&str])> = vec![
            (
                "folded invitation",
                alternative(&format!("Content-Type: text/calendar; charset=utf-8; method=REQUEST\r\n\r\n{INVITATION}")),
                &["REQUEST"],
                &[],
            ),
            (
                "base64 reply",
                alternative(&format!(
                    "Content-Type: text/calendar; method=REPLY\r\nContent-Transfer-Encoding: base64\r\n\r\n{base64_reply}"
                )),
                &["REPLY"],
                &["040000008200E00074C5B7101A82E00800000000D0A31B2C@example.com"],
            ),
            (
                "method only in the object, .ics attachment",
                alternative(&format!(
                    "Content-Type: application/octet-stream; name=\"invite.ics\"\r\n\r\n{}",
                    INVITATION.replace("METHOD:REQUEST", "METHOD:COUNTER")
                )),
                &["COUNTER"],
                &["040000008200E00074C5B7101A82E00800000000D0A31B2C@example.com"],
            ),
            ("no calendar", "Subject: hi\r\n\r\nUID:not-a-calendar\r\n".into(), &[], &[]),
        ];
        for (name, message, methods, responses) in cases {
            let calendar = calendar_of(&message);
            assert_eq!(calendar.methods, methods, "{name}");
            assert_eq!(calendar.response_uids, responses, "{name}");
            assert_eq!(calendar.is_response(), !responses.is_empty(), "{name}");
        }
    }

    #[test]
    fn outbound_uids() {
        let message = format!("Content-Type: text/calendar; method=REQUEST\r\n\r\n{INVITATION}");
        assert_eq!(
            outbound_calendar_uids(message.as_bytes()),
            ["040000008200E00074C5B7101A82E00800000000D0A31B2C@example.com"]
        );
        let many: String = (0..100).map(|n| format!("UID:{n}\r\n")).collect();
        let message = format!("Content-Type: text/calendar\r\n\r\nMETHOD:PUBLISH\r\n{many}");
        assert_eq!(outbound_calendar_uids(message.as_bytes()).len(), MAX_CALENDAR_UIDS);
    }

    #[test]
    fn properties() {
        assert_eq!(property("UID:a:b"), Some(("UID", "a:b")));
        assert_eq!(property("ATTENDEE;CN=\"a:b\":mailto:x"), Some(("ATTENDEE", "mailto:x")));
        assert_eq!(property("no colon"), None);
    }
}
