//! The fixed sentences of each bounce-writing program, by family.
//!
//! A format is recognised by sentences its software writes, several of
//! them together and in order, never by the subject. Sentences are
//! matched case-insensitively in the notification text with runs of white
//! space (line breaks included) read as one space, so a template wrapped
//! at another column still matches. Sentences that a person could
//! plausibly write only count when the message also comes from a
//! mail-system address (`needs_mail_system_sender`).
//!
//! Written from the software's templates and documentation: qmail's
//! qmail-send.c, Exim's default bounce text, Sendmail's savemail.c,
//! Postfix's bounce(5) templates, OpenSMTPD's bounce.c, dma's mail.c,
//! Courier's courierdsn, and the vendors' published samples.

/// One plain-text bounce format.
pub(crate) struct Format {
    pub(crate) rule: &'static str,
    pub(crate) description: &'static str,
    /// Alternative signatures; each is a list of sentences that must all
    /// occur, in this order.
    pub(crate) signatures: &'static [&'static [&'static str]],
    /// Lines after which the software pastes the returned message.
    pub(crate) separators: &'static [&'static str],
    pub(crate) needs_mail_system_sender: bool,
}

pub(crate) const FORMATS: &[Format] = &[
    // Unix MTAs.
    Format {
        rule: "qmail",
        description: "a qmail-send bounce",
        signatures: &[
            &["This is the qmail-send program at", "--- Below this line is"],
            &["This is the qmail-send program at", "--- Enclosed are the original headers"],
            &["This is the qmail-send program at", "wasn't able to deliver your message"],
            &["This is the qmail-send program at", "I'm not going to try again"],
            &["This is the qmail-send program at", "This is a permanent error"],
            &["Dies ist das qmail-send Programm"],
            &["qmail-send", "--- Below this line is a copy of the message."],
            &["I'm afraid I wasn't able to deliver your message to the following addresses."],
            // Yahoo!'s and other qmail-derived services' wording.
            &["Sorry, we were unable to deliver your message to the following address."],
            &["Su mensaje no pudo ser entregado"],
            &["unable to deliver your message to the following addresses", "--- Below this line is"],
            &["Unable to deliver message to the following address(es).", "--- Original message follows."],
            &["Unable to deliver message to the following address(es).", "I'm not going to try again"],
        ],
        separators: &[
            "--- Below this line is a copy of the message.",
            "--- Below the next line is a copy of the message.",
            "--- Below this line is the original bounce.",
            "--- Below this line is the top of the message.",
            "--- Enclosed are the original headers of the message.",
            "--- Unterhalb dieser Zeile folgt eine Kopie der Nachricht.",
            "--- Original message follows.",
        ],
        needs_mail_system_sender: false,
    },
    Format {
        rule: "exim",
        description: "an Exim bounce in its plain-text form",
        signatures: &[
            &[
                "This message was created automatically by mail delivery software.",
                "------ This is a copy of the message",
            ],
            &[
                "This message was created automatically by mail delivery software.",
                "could not be delivered to one or more",
            ],
            &[
                "This message was created automatically by mail delivery software.",
                "has not yet been delivered to one or more",
            ],
            &["This message was created automatically by mail delivery software.", "The following address(es) failed"],
            &["Diese Nachricht wurde automatisch von der Mail-Software erstellt"],
            &["Cette notification a été générée automatiquement par le logiciel de distribution"],
            &["------ This is a copy of your message, including all the headers. ------"],
        ],
        separators: &[
            "------ This is a copy of the message, including all the headers. ------",
            "------ This is a copy of the message's headers. ------",
            "------ This is a copy of your message, including all the headers. ------",
            "------ The body of the message is",
            // GMX's and 1&1's variants of the Exim text.
            "--- The header of the original message is following. ---",
            "--- Die Kopfzeilen der Originalnachricht folgen. ---",
        ],
        needs_mail_system_sender: false,
    },
    Format {
        rule: "sendmail",
        description: "a Sendmail bounce without a delivery-status report",
        signatures: &[
            &["----- The following addresses had permanent fatal errors -----"],
            &["----- The following addresses had transient non-fatal errors -----"],
            &["----- Transcript of session follows -----"],
            &["THIS IS A WARNING MESSAGE ONLY", "YOU DO NOT NEED TO RESEND YOUR MESSAGE"],
        ],
        separators: &[
            "----- Original message follows -----",
            "----- Unsent message follows -----",
            "------- Returned mail follows",
            "----- Message header follows -----",
            "----- Original message headers follow -----",
        ],
        needs_mail_system_sender: true,
    },
    Format {
        rule: "postfix_plain",
        description: "a Postfix bounce without a delivery-status report",
        signatures: &[
            &["This is the Postfix program at host", "could not be delivered"],
            &["This is the mail system at host", "The mail system"],
            &["This is the mail system at host", "could not be delivered"],
            &["THIS IS A WARNING ONLY. YOU DO NOT NEED TO RESEND YOUR MESSAGE."],
        ],
        separators: &[],
        needs_mail_system_sender: false,
    },
    Format {
        rule: "courier",
        description: "a Courier mail server delivery status notification",
        signatures: &[
            &["running the Courier mail server"],
            &["This is a delivery status notification from", "UNDELIVERABLE MAIL"],
        ],
        separators: &[],
        needs_mail_system_sender: false,
    },
    Format {
        rule: "opensmtpd",
        description: "an OpenSMTPD bounce",
        signatures: &[
            &[
                "This is the MAILER-DAEMON, please DO NOT REPLY to this e-mail.",
                "An error has occurred while attempting to deliver a message",
            ],
            &[
                "This is the MAILER-DAEMON, please DO NOT REPLY to this email.",
                "An error has occurred while attempting to deliver a message",
            ],
            &["This is the MAILER-DAEMON, please DO NOT REPLY", "Your message was successfully delivered"],
            &["This is the MAILER-DAEMON, please DO NOT REPLY", "Delivery of your message"],
            &["This is the MAILER-DAEMON, please DO NOT REPLY", "A message is delayed for more than"],
        ],
        separators: &["Below is a copy of the original message:"],
        needs_mail_system_sender: false,
    },
    Format {
        rule: "dma",
        description: "a DragonFly Mail Agent (dma) bounce",
        signatures: &[&["This is the DragonFly Mail Agent", "There was an error delivering your mail to"]],
        separators: &["Original message follows.", "Message headers follow."],
        needs_mail_system_sender: false,
    },
    Format {
        rule: "sun_messaging",
        description: "an Oracle/Sun Java Messaging Server delivery report",
        signatures: &[&["This report relates to a message you sent with the following header fields:"]],
        separators: &[],
        needs_mail_system_sender: false,
    },
    // Commercial and groupware servers.
    Format {
        rule: "exchange",
        description: "a Microsoft Exchange non-delivery report",
        signatures: &[
            &["Your message did not reach some or all of the intended recipients.", "could not be reached"],
            &["Your message", "did not reach the following recipient(s):"],
            &["Delivery has failed to these recipients or groups:"],
            &["Die Zustellung an folgende Empfänger oder Gruppen ist fehlgeschlagen:"],
            &["La remise aux destinataires ou groupes suivants a échoué"],
            &["Error al entregar el mensaje a estos destinatarios o grupos:"],
            &["Recapito non riuscito per i destinatari o gruppi seguenti:"],
            &["Falha na entrega para estes destinatários ou grupos:"],
            &["Bezorging is mislukt voor deze ontvangers of groepen:"],
            &["次の受信者またはグループへの配信に失敗しました"],
            &["Не удалось доставить сообщение следующим получателям или группам:"],
            &["Diagnostic information for administrators:", "Original message headers:"],
            &["Diagnoseinformationen für Administratoren:"],
            &["Informations de diagnostic pour les administrateurs"],
            &["Información de diagnóstico para administradores:"],
            &["Informazioni di diagnostica per gli amministratori:"],
            &["Informações de diagnóstico para administradores:"],
            &["Diagnostische gegevens voor beheerders:"],
            &["管理者向け診断情報"],
            &["Диагностические сведения для администраторов:"],
            // Exchange Online's newer notice.
            &["Your message to", "couldn't be delivered."],
            &["Ihre Nachricht an", "konnte nicht übermittelt werden."],
            &["Votre message à", "n’a pas pu être remis."],
            &["Votre message à", "n'a pas pu être remis."],
            &["No se pudo entregar el mensaje a"],
            &["Impossibile recapitare il messaggio a"],
            &["Sua mensagem para", "não pôde ser entregue."],
            &["Uw bericht aan", "kan niet worden bezorgd."],
            &["へのメッセージを配信できませんでした"],
            &["Не удается доставить сообщение для"],
            &["Delivery is delayed to these recipients or groups:"],
        ],
        separators: &[
            "Original message headers:",
            "Ursprüngliche Nachrichtenkopfzeilen:",
            "En-têtes de message d’origine :",
        ],
        needs_mail_system_sender: true,
    },
    Format {
        rule: "lotus",
        description: "a Lotus Notes/Domino delivery failure report",
        signatures: &[
            &["------- Failure Reasons", "------- Returned Message"],
            &["Your message", "was not delivered to:", "because:"],
            &["Ihre Nachricht", "wurde nicht zugestellt an:", "weil:"],
            &["Votre message", "n'a pas été remis à :", "parce que :"],
            &["Su mensaje", "no se ha entregado a:", "debido a:"],
            &["Il messaggio", "non è stato recapitato a:", "perché:"],
            &["not listed in Domino Directory"],
            &["Ihre Nachricht", "wurde nicht zugestellt an", "Grund:"],
        ],
        separators: &["------- Returned Message --------"],
        needs_mail_system_sender: true,
    },
    Format {
        rule: "groupwise",
        description: "a Novell/Micro Focus GroupWise delivery status message",
        signatures: &[
            &["The message that you sent was undeliverable to the following:"],
            &["Possibly truncated original message follows:"],
            &["The message that you sent was not delivered to the following recipients"],
        ],
        separators: &["Possibly truncated original message follows:"],
        needs_mail_system_sender: false,
    },
    Format {
        rule: "mdaemon",
        description: "an MDaemon delivery failure notice",
        signatures: &[
            &["The attached message had PERMANENT fatal delivery errors!"],
            &["YOUR MESSAGE WAS NOT DELIVERED TO ONE OR MORE RECIPIENTS!"],
            &["The attached message has not yet been delivered", "--- Session Transcript ---"],
            &["Die angehängte Nachricht hatte PERMANENTE fatale Zustellfehler!"],
            &["--- Session Transcript ---", "--- End Transcript ---"],
        ],
        separators: &[],
        needs_mail_system_sender: false,
    },
    Format {
        rule: "imail",
        description: "an Ipswitch IMail (smtp32) delivery failure notice",
        signatures: &[
            &["Original message follows.", "Unknown user:"],
            &["generated following response:", "Original message follows."],
            &["Body of message generated response:"],
            &[
                "Unable to deliver message to the following recipients, due to being unable to connect successfully to the destination mail server.",
            ],
            &["Delivery failed", "attempts", "Original message follows."],
        ],
        separators: &["Original message follows."],
        needs_mail_system_sender: true,
    },
    Format {
        rule: "communigate",
        description: "a CommuniGate Pro delivery failure notice",
        signatures: &[&["Failed to deliver to '", "module("], &["Failed to deliver to '", "reports:"]],
        separators: &[],
        needs_mail_system_sender: false,
    },
    Format {
        rule: "hmailserver",
        description: "an hMailServer undeliverable message notice",
        signatures: &[
            &["Your message did not reach some or all of the intended recipients.", "hMailServer"],
            &["The following recipient(s) could not be reached:", "hMailServer"],
        ],
        separators: &[],
        needs_mail_system_sender: false,
    },
    Format {
        rule: "kerio",
        description: "a Kerio Connect delivery status notification",
        signatures: &[
            &["This is a delivery status notification, automatically generated by MTA"],
            &["Kerio Connect", "could not be delivered"],
        ],
        separators: &[],
        needs_mail_system_sender: false,
    },
    // Mail services.
    Format {
        rule: "gmail",
        description: "a Gmail delivery status notification",
        signatures: &[
            &["This is an automatically generated Delivery Status Notification", "Delivery to the following recipient"],
            &["Delivery to the following recipient failed permanently:"],
            &["Delivery to the following recipient has been delayed:"],
            &["Delivery to the following recipients failed permanently:"],
            &["** Address not found **", "Your message wasn't delivered to"],
            &["** Message not delivered **"],
            &["** Message blocked **"],
            &["** Delivery incomplete **"],
            &["** Adresse nicht gefunden **"],
            &["** Adresse introuvable **"],
            &["** No se ha encontrado la dirección **"],
            &["** Indirizzo non trovato **"],
            &["** Endereço não encontrado **"],
            &["** Adres niet gevonden **"],
            &["** アドレスが見つかりません **"],
            &["** Адрес не найден **"],
            &["** Nachricht nicht zugestellt **"],
            &["** Message non distribué **"],
        ],
        separators: &["----- Original message -----", "----- Message truncated -----"],
        needs_mail_system_sender: false,
    },
    Format {
        rule: "james",
        description: "an Apache James delivery failure notice",
        signatures: &[&["Error message below:", "Message details:"]],
        separators: &[],
        needs_mail_system_sender: false,
    },
    Format {
        rule: "amazon_ses",
        description: "an Amazon SES bounce",
        signatures: &[&["An error occurred while trying to deliver the mail to the following recipients:"]],
        separators: &[],
        needs_mail_system_sender: true,
    },
    Format {
        rule: "aol",
        description: "an AOL delivery failure notice",
        signatures: &[&["Your mail to the following recipients could not be delivered"]],
        separators: &[],
        needs_mail_system_sender: true,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_well_formed() {
        let mut rules: Vec<&str> = FORMATS.iter().map(|format| format.rule).collect();
        rules.sort_unstable();
        rules.dedup();
        assert_eq!(rules.len(), FORMATS.len(), "a rule appears twice");
        for format in FORMATS {
            assert!(!format.signatures.is_empty(), "{}", format.rule);
            for sentence in format.signatures.iter().flat_map(|signature| signature.iter()) {
                assert_eq!(sentence.trim(), *sentence, "{}: {sentence:?}", format.rule);
                assert!(!sentence.contains("  ") && !sentence.contains('\n'), "{}: {sentence:?}", format.rule);
            }
        }
    }
}
