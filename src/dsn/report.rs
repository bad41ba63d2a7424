//! multipart/report messages (RFC 6522): delivery status notifications
//! (RFC 3464, RFC 6533) and message disposition notifications, i.e. read
//! receipts (RFC 8098).
//!
//! The report type is read from the container's `report-type` parameter
//! (even when the body lost its MIME delimiters on the way) and, because some
//! software omits or misspells it, from the machine-readable part the report
//! carries.

use super::entity::Structure;

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
