//! multipart/report messages (RFC 6522): delivery status notifications
//! (RFC 3464, RFC 6533) and message disposition notifications, i.e. read
//! receipts (RFC 8098).
//!
//! The report type is read from the container's `report-type` parameter
//! (even when the body lost its MIME delimiters on the way) and, because some
//! software omits or misspells it, from the machine-readable part the report
//! carries.

use mail_parser::MessageParser;

use super::entity::{Entity, Headers, Structure};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Report {
    /// A delivery status notification: a bounce, delay warning or relay or
    /// delivery confirmation.
    Delivery,
    /// A read receipt or other disposition notification.
    Disposition,
    /// A report of another type (feedback-report, tlsrpt, …): automatic, but
    /// not about the fate of a message we sent.
    Other(String),
}

pub(super) fn classify(structure: &Structure<'_>) -> Option<Report> {
    let declared = structure
        .entities
        .iter()
        .find(|entity| entity.media_type.is("multipart", "report"))
        .map(|container| container.parameter("report-type").unwrap_or_default().to_ascii_lowercase());
    let has_leaf = |subtypes: &[&str]| {
        structure
            .leaves()
            .any(|leaf| leaf.media_type.main == "message" && subtypes.contains(&leaf.media_type.sub.as_str()))
    };
    let delivery_part = has_leaf(&["delivery-status", "global-delivery-status"]);
    let disposition_part = has_leaf(&["disposition-notification", "global-disposition-notification"]);
    let feedback_part = has_leaf(&["feedback-report"]);
    match declared.as_deref() {
        _ if feedback_part => Some(Report::Other("feedback-report".to_owned())),
        Some("delivery-status" | "global-delivery-status") => Some(Report::Delivery),
        Some("disposition-notification" | "global-disposition-notification") => Some(Report::Disposition),
        _ if delivery_part => Some(Report::Delivery),
        _ if disposition_part => Some(Report::Disposition),
        // No report type and no report part: the text has to tell.
        Some("") | None => None,
        Some(other) => Some(Report::Other(other.to_owned())),
    }
}

/// The fields of a report part that name things outside the message.
impl Entity<'_> {
    /// The `Original-Message-ID` (or `X-Original-Message-ID`) of a report
    /// part: an MDN's disposition-notification (RFC 8098 section 3.2.5), or
    /// the delivery-status part of MTAs that add one.
    pub(super) fn original_message_id_field(&self, parser: &MessageParser) -> Option<String> {
        let media_type = &self.media_type;
        let report_part = media_type.main == "message"
            && matches!(
                media_type.sub.as_str(),
                "disposition-notification"
                    | "global-disposition-notification"
                    | "delivery-status"
                    | "global-delivery-status"
            );
        if !report_part {
            return None;
        }
        let fields = self.decoded();
        // Most delivery-status parts have no such field: look before parsing.
        const NAME: &[u8] = b"original-message-id";
        let mentions_field = memchr::memchr2_iter(b'o', b'O', &fields)
            .any(|at| fields.get(at..at + NAME.len()).is_some_and(|word| word.eq_ignore_ascii_case(NAME)));
        if !mentions_field {
            return None;
        }
        let (headers, _) = Headers::parse(parser, &fields);
        let raw = headers.raw("Original-Message-ID").or_else(|| headers.raw("X-Original-Message-ID"))?;
        super::message_id::first(raw)
    }

    /// The host named by a delivery-status part's `Reporting-MTA` field
    /// (RFC 3464 section 2.2.2), for exemptions by reporting MTA. Only the
    /// `dns` type names a host; its value is kept as written, at most 255
    /// printable characters.
    pub(super) fn reporting_mta(&self) -> Option<String> {
        let media_type = &self.media_type;
        let delivery_part = media_type.main == "message"
            && matches!(media_type.sub.as_str(), "delivery-status" | "global-delivery-status");
        if !delivery_part {
            return None;
        }
        let fields = self.decoded();
        const NAME: &[u8] = b"reporting-mta:";
        // The per-message fields come first, ended by a blank line.
        let value = fields
            .split(|byte| *byte == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .take_while(|line| !line.iter().all(u8::is_ascii_whitespace))
            .find_map(|line| {
                let name = line.get(..NAME.len())?;
                name.eq_ignore_ascii_case(NAME).then(|| &line[NAME.len()..])
            })?;
        let value = std::str::from_utf8(value).ok()?;
        let (kind, host) = value.split_once(';')?;
        let host = host.trim();
        let printable = !host.is_empty() && host.len() <= 255 && host.bytes().all(|byte| byte.is_ascii_graphic());
        (kind.trim().eq_ignore_ascii_case("dns") && printable).then(|| host.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    #[test]
    fn report_types() {
        let report = |report_type: &str, part: &str| {
            format!(
                "Content-Type: multipart/report; {report_type}boundary=b\n\n--b\nContent-Type: text/plain\n\ntext\n\
                 --b\nContent-Type: {part}\n\nField: value\n--b--\n"
            )
        };
        let cases: &[(&str, String, Option<Report>)] = &[
            (
                "delivery-status",
                report("report-type=delivery-status; ", "message/delivery-status"),
                Some(Report::Delivery),
            ),
            (
                "quoted and upper-case report type",
                report("REPORT-TYPE=\"Delivery-Status\"; ", "message/delivery-status"),
                Some(Report::Delivery),
            ),
            (
                "report type missing, part says delivery",
                report("", "message/delivery-status"),
                Some(Report::Delivery),
            ),
            (
                "global delivery status (RFC 6533)",
                report("report-type=delivery-status; ", "message/global-delivery-status"),
                Some(Report::Delivery),
            ),
            (
                "disposition notification",
                report("report-type=disposition-notification; ", "message/disposition-notification"),
                Some(Report::Disposition),
            ),
            (
                "wrong report type, part says disposition",
                report("report-type=foo; ", "message/disposition-notification"),
                Some(Report::Disposition),
            ),
            (
                "feedback report",
                report("report-type=feedback-report; ", "message/feedback-report"),
                Some(Report::Other("feedback-report".into())),
            ),
            (
                "tls report",
                report("report-type=tlsrpt; ", "application/tlsrpt+gzip"),
                Some(Report::Other("tlsrpt".into())),
            ),
            (
                "delivery-status part in a multipart/mixed",
                "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/delivery-status\n\nAction: failed\n--b--\n".into(),
                Some(Report::Delivery),
            ),
            (
                "feedback part under another report type",
                report("report-type=delivery-status; ", "message/feedback-report"),
                Some(Report::Other("feedback-report".into())),
            ),
            ("report without a type or report part", report("", "text/plain"), None),
            (
                "not a report",
                "Content-Type: text/plain\n\nreport-type=delivery-status\n".into(),
                None,
            ),
        ];
        let parser = MessageParser::new();
        for (name, message, expected) in cases {
            let structure = Structure::walk(&parser, message.as_bytes());
            assert_eq!(classify(&structure), *expected, "{name}");
        }
    }
}
