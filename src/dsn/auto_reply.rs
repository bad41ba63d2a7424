//! Automatic replies (RFC 3834): out-of-office and vacation notices,
//! challenge-response confirmation requests, and the header fields
//! autoresponders mark them with.
//!
//! Only the message's own header section is read, never an attached or
//! quoted message's, and only markers an autoresponder sets: a person's
//! reply has In-Reply-To and a "Re:" subject too, so those prove nothing,
//! and a subject such as "Out of office" counts only together with the
//! header fields of the software that writes it.

use super::entity::{Headers, Structure};

/// A recognised auto-reply: the rule's label and what it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Found {
    pub(super) rule: &'static str,
    pub(super) description: &'static str,
}

fn found(rule: &'static str, description: &'static str) -> Option<Found> {
    Some(Found { rule, description })
}

/// Header fields only challenge-response systems send, with what they mean.
const CHALLENGE_FIELDS: &[(&str, &str)] = &[
    ("X-AskVersion", "an Active Spam Killer (ASK) confirmation request"),
    ("X-Challenge", "a challenge-response confirmation request (X-Challenge)"),
    ("X-Boxtrapper", "a BoxTrapper confirmation request"),
    ("X-Bluebottle-Request", "a Bluebottle confirmation request"),
    ("X-ChoiceMail-Registration-Request", "a ChoiceMail registration request"),
];

/// A challenge-response system asking the sender to prove they are real.
pub(super) fn challenge_response(structure: &Structure<'_>) -> Option<Found> {
    let headers = &structure.top().headers;
    if let Some((_, description)) = CHALLENGE_FIELDS.iter().find(|(name, _)| headers.has(name)) {
        return found("challenge_response", description);
    }
    // TMDA marks its requests with X-Delivery-Agent, Auto-Submitted and a
    // "Confirmation Request" part (TMDA/AutoResponse.py). Released messages
    // carry X-TMDA-Confirmed instead and are not replies.
    let tmda_agent =
        headers.text("X-Delivery-Agent").is_some_and(|agent| agent.to_ascii_lowercase().starts_with("tmda"));
    let confirmation_part = structure.leaves().any(|leaf| {
        leaf.headers
            .text("Content-Description")
            .is_some_and(|description| description.eq_ignore_ascii_case("Confirmation Request"))
    });
    if (tmda_agent && (is_automatic(headers) || confirmation_part)) || (confirmation_part && auto_replied(headers)) {
        return found("challenge_response", "a TMDA confirmation request");
    }
    None
}

/// Subject prefixes Exchange and Outlook give automatic replies, in the
/// languages they ship.
const OUT_OF_OFFICE_SUBJECTS: &[&str] = &[
    "automatic reply:",
    "out of office:",
    "out of office autoreply:",
    "autoreply:",
    "auto reply:",
    "réponse automatique",
    "automatische antwort",
    "abwesenheitsnotiz",
    "respuesta automática",
    "risposta automatica",
    "automatisch antwoord",
    "resposta automática",
    "autosvar",
    "automaattinen vastaus",
    "odpowiedź automatyczna",
];

/// An Exchange or Exchange Online out-of-office reply. Exchange sends them
/// from its inbox-rules agent, which stamps X-MS-Exchange-Inbox-Rules-Loop
/// and X-Auto-Response-Suppress; newer versions also Auto-Submitted:
/// auto-generated (not auto-replied) and X-MS-Exchange-Parent-Message-Id.
/// An inbox rule forwarding mail sets the loop field too, hence the
/// additional requirement of Auto-Submitted or an out-of-office subject.
pub(super) fn exchange_out_of_office(structure: &Structure<'_>) -> Option<Found> {
    let headers = &structure.top().headers;
    if !headers.has("X-MS-Exchange-Inbox-Rules-Loop") || !headers.has("X-Auto-Response-Suppress") {
        return None;
    }
    let subject = headers.decoded_text("Subject").unwrap_or_default().to_lowercase();
    let out_of_office_subject = OUT_OF_OFFICE_SUBJECTS.iter().any(|prefix| subject.trim_start().starts_with(prefix));
    if is_automatic(headers) || out_of_office_subject {
        return found("exchange_oof", "an Exchange out-of-office reply");
    }
    None
}

/// A reply from vacation(1) or a similar program naming itself.
pub(super) fn vacation(structure: &Structure<'_>) -> Option<Found> {
    let headers = &structure.top().headers;
    let mentions_vacation =
        |name: &str| headers.text(name).is_some_and(|value| value.to_ascii_lowercase().contains("vacation"));
    if mentions_vacation("X-Mailer") || mentions_vacation("User-Agent") {
        return found("vacation", "a reply from a vacation program (X-Mailer)");
    }
    if mentions_vacation("Delivered-By-The-Graces-Of") || mentions_vacation("X-Delivered-By-The-Graces-Of") {
        return found("vacation", "a reply from vacation(1) (Delivered-By-The-Graces-Of)");
    }
    if headers.text("X-Apple-Action").is_some_and(|action| action.eq_ignore_ascii_case("vacation")) {
        return found("vacation", "an iCloud vacation reply (X-Apple-Action)");
    }
    None
}

/// RFC 3834 section 5: `Auto-Submitted: auto-replied`.
pub(super) fn auto_submitted(structure: &Structure<'_>) -> Option<Found> {
    if auto_replied(&structure.top().headers) {
        return found("auto_submitted", "an automatic reply (Auto-Submitted: auto-replied)");
    }
    None
}

/// Header fields autoresponders add besides Auto-Submitted.
const AUTOREPLY_FIELDS: &[&str] =
    &["X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-AutoReply-From", "X-Mail-Autoreply"];

pub(super) fn x_autoreply(structure: &Structure<'_>) -> Option<Found> {
    let headers = &structure.top().headers;
    let set = |name: &str| {
        headers
            .text(name)
            .is_some_and(|value| !matches!(value.to_ascii_lowercase().as_str(), "no" | "false" | "0" | "off"))
    };
    if AUTOREPLY_FIELDS.iter().any(|name| set(name))
        || headers.text("X-Autogenerated").is_some_and(|value| value.eq_ignore_ascii_case("reply"))
    {
        return found("x_autoreply", "an automatic reply (X-Autoreply or a similar field)");
    }
    None
}

/// `Precedence: auto_reply`, which some autoresponders use; `bulk`, `junk`
/// and `list` mark mass mail, not replies.
pub(super) fn precedence(structure: &Structure<'_>) -> Option<Found> {
    let value = structure.top().headers.text("Precedence")?.to_ascii_lowercase();
    if value == "auto_reply" || value == "auto-reply" {
        return found("precedence", "an automatic reply (Precedence: auto_reply)");
    }
    None
}

/// The Auto-Submitted keyword, without parameters or comments.
fn auto_submitted_keyword(headers: &Headers<'_>) -> Option<String> {
    let value = headers.text("Auto-Submitted")?;
    let keyword = value.split([';', '(', ' ']).next().unwrap_or_default().to_ascii_lowercase();
    Some(keyword)
}

fn auto_replied(headers: &Headers<'_>) -> bool {
    auto_submitted_keyword(headers).is_some_and(|keyword| keyword == "auto-replied")
}

/// Any Auto-Submitted value but `no` (RFC 3834 section 5.1).
fn is_automatic(headers: &Headers<'_>) -> bool {
    auto_submitted_keyword(headers).is_some_and(|keyword| !keyword.is_empty() && keyword != "no")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    type Recognizer = fn(&Structure<'_>) -> Option<Found>;

    const RECOGNIZERS: &[(&str, Recognizer)] = &[
        ("challenge_response", challenge_response),
        ("exchange_oof", exchange_out_of_office),
        ("vacation", vacation),
        ("auto_submitted", auto_submitted),
        ("x_autoreply", x_autoreply),
        ("precedence", precedence),
    ];

    /// The rules that fire for a message, in recognizer order.
    fn rules(message: &str) -> Vec<&'static str> {
        let parser = MessageParser::new();
        let structure = Structure::walk(&parser, message.as_bytes());
        RECOGNIZERS
            .iter()
            .filter_map(|(name, recognize)| {
                let found = recognize(&structure)?;
                assert_eq!(found.rule, *name);
                Some(found.rule)
            })
            .collect()
    }

    #[test]
    fn recognizers() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("auto-replied", "Auto-Submitted: auto-replied\n\n", &["auto_submitted"]),
            (
                "auto-replied with parameter",
                "Auto-Submitted: Auto-Replied; owner-email=\"a@x\"\n\n",
                &["auto_submitted"],
            ),
            ("auto-submitted no", "Auto-Submitted: no\n\n", &[]),
            ("auto-generated is not a reply", "Auto-Submitted: auto-generated\n\n", &[]),
            ("x-autoreply yes", "X-Autoreply: yes\n\n", &["x_autoreply"]),
            ("x-autorespond", "X-Autorespond: vacation\n\n", &["x_autoreply"]),
            ("x-autoreply no", "X-Autoreply: no\n\n", &[]),
            ("x-autogenerated reply", "X-Autogenerated: Reply\n\n", &["x_autoreply"]),
            ("precedence auto_reply", "Precedence: auto_reply\n\n", &["precedence"]),
            ("precedence bulk", "Precedence: bulk\n\n", &[]),
            ("vacation x-mailer", "X-Mailer: vacation 1.46\nPrecedence: junk\n\n", &["vacation"]),
            (
                "vacation(1) graces",
                "Delivered-By-The-Graces-Of: The Vacation program\nPrecedence: bulk\n\n",
                &["vacation"],
            ),
            ("icloud vacation", "X-Apple-Action: VACATION\n\n", &["vacation"]),
            (
                "exchange oof, old style",
                "Subject: Automatic reply: hello\nX-Auto-Response-Suppress: All\nX-MS-Exchange-Inbox-Rules-Loop: a@x\n\n",
                &["exchange_oof"],
            ),
            (
                "exchange oof, encoded localised subject",
                "Subject: =?utf-8?Q?R=C3=A9ponse_automatique=C2=A0:_hello?=\nX-Auto-Response-Suppress: All\nX-MS-Exchange-Inbox-Rules-Loop: a@x\n\n",
                &["exchange_oof"],
            ),
            (
                "exchange oof, new style",
                "Subject: anything\nAuto-Submitted: auto-generated\nX-Auto-Response-Suppress: All\nX-MS-Exchange-Inbox-Rules-Loop: a@x\n\n",
                &["exchange_oof"],
            ),
            (
                "exchange rule forward is not an oof",
                "Subject: FW: hello\nX-Auto-Response-Suppress: All\nX-MS-Exchange-Inbox-Rules-Loop: a@x\n\n",
                &[],
            ),
            ("out-of-office subject alone is a guess", "Subject: Out of Office: hello\nIn-Reply-To: <a@x>\n\n", &[]),
            ("ask", "X-AskVersion: 2.5.3 (http://www.paganini.net/ask)\n\n", &["challenge_response"]),
            ("x-challenge", "X-Challenge: please confirm\n\n", &["challenge_response"]),
            (
                "tmda request",
                "X-Delivery-Agent: TMDA/1.1.12 (Ladyburn)\nAuto-Submitted: auto-replied\nPrecedence: bulk\n\n",
                &["challenge_response", "auto_submitted"],
            ),
            ("tmda released message", "X-TMDA-Confirmed: Tue, 08 Jan 2008 10:11:42 +0100\n\n", &[]),
            (
                "human reply",
                "Subject: Re: lunch\nIn-Reply-To: <a@x>\nReferences: <a@x>\nX-Mailer: Microsoft Outlook 16.0\n\n",
                &[],
            ),
        ];
        for (name, message, expected) in cases {
            assert_eq!(rules(message), *expected, "{name}");
        }
    }
}
