//! SMTP commands from the client, parsed from one line (without CRLF).
//!
//! Commands the proxy does not change are relayed byte for byte from the
//! raw line; only MAIL and RCPT are rebuilt, with their ESMTP parameters
//! kept exactly as the client wrote them.

use std::fmt;

use thiserror::Error;

use super::address::{AddressError, ForwardPath, ReversePath, split_path};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Helo,
    Ehlo,
    Mail,
    Rcpt,
    Data,
    Bdat,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    StartTls,
    Auth,
    Xclient,
    Xforward,
    Etrn,
    Unknown,
}

impl Verb {
    fn from_word(word: &[u8]) -> Verb {
        const TABLE: &[(&[u8], Verb)] = &[
            (b"HELO", Verb::Helo),
            (b"EHLO", Verb::Ehlo),
            (b"MAIL", Verb::Mail),
            (b"RCPT", Verb::Rcpt),
            (b"DATA", Verb::Data),
            (b"BDAT", Verb::Bdat),
            (b"RSET", Verb::Rset),
            (b"NOOP", Verb::Noop),
            (b"QUIT", Verb::Quit),
            (b"VRFY", Verb::Vrfy),
            (b"EXPN", Verb::Expn),
            (b"HELP", Verb::Help),
            (b"STARTTLS", Verb::StartTls),
            (b"AUTH", Verb::Auth),
            (b"XCLIENT", Verb::Xclient),
            (b"XFORWARD", Verb::Xforward),
            (b"ETRN", Verb::Etrn),
        ];
        TABLE.iter().find(|(name, _)| name.eq_ignore_ascii_case(word)).map_or(Verb::Unknown, |(_, verb)| *verb)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Helo => "HELO",
            Verb::Ehlo => "EHLO",
            Verb::Mail => "MAIL",
            Verb::Rcpt => "RCPT",
            Verb::Data => "DATA",
            Verb::Bdat => "BDAT",
            Verb::Rset => "RSET",
            Verb::Noop => "NOOP",
            Verb::Quit => "QUIT",
            Verb::Vrfy => "VRFY",
            Verb::Expn => "EXPN",
            Verb::Help => "HELP",
            Verb::StartTls => "STARTTLS",
            Verb::Auth => "AUTH",
            Verb::Xclient => "XCLIENT",
            Verb::Xforward => "XFORWARD",
            Verb::Etrn => "ETRN",
            Verb::Unknown => "unknown",
        }
    }
}

/// One ESMTP parameter exactly as written (`SIZE=1000`, `SMTPUTF8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter(String);

impl Parameter {
    pub fn new(keyword: &str, value: Option<&str>) -> Self {
        match value {
            Some(value) => Parameter(format!("{keyword}={value}")),
            None => Parameter(keyword.to_owned()),
        }
    }

    pub fn keyword(&self) -> &str {
        self.0.split('=').next().unwrap_or("")
    }

    pub fn value(&self) -> Option<&str> {
        self.0.split_once('=').map(|(_, value)| value)
    }

    pub fn is(&self, keyword: &str) -> bool {
        self.keyword().eq_ignore_ascii_case(keyword)
    }
}

impl fmt::Display for Parameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parameters(Vec<Parameter>);

impl Parameters {
    fn parse(text: &str) -> Result<Self, CommandError> {
        let mut parameters = Vec::new();
        for word in text.split(' ').filter(|w| !w.is_empty()) {
            let keyword = word.split('=').next().unwrap_or("");
            let keyword_ok = keyword.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && keyword.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            let value_ok = word
                .split_once('=')
                .is_none_or(|(_, value)| !value.is_empty() && value.chars().all(|c| !c.is_control() && c != ' '));
            if !keyword_ok || !value_ok {
                return Err(CommandError::BadParameter(word.to_owned()));
            }
            parameters.push(Parameter(word.to_owned()));
        }
        Ok(Parameters(parameters))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Parameter> {
        self.0.iter()
    }

    pub fn get(&self, keyword: &str) -> Option<&Parameter> {
        self.0.iter().find(|p| p.is(keyword))
    }

    pub fn push(&mut self, parameter: Parameter) {
        self.0.push(parameter);
    }
}

impl fmt::Display for Parameters {
    /// Each parameter preceded by a space, ready to follow a path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for parameter in &self.0 {
            write!(f, " {parameter}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Hello {
        extended: bool,
        domain: String,
    },
    Mail {
        path: ReversePath,
        parameters: Parameters,
    },
    Rcpt {
        path: ForwardPath,
        parameters: Parameters,
    },
    Data,
    Rset,
    Quit,
    StartTls,
    Auth {
        mechanism: String,
    },
    /// NOOP, VRFY, EXPN, HELP: relayed unchanged.
    Relayed(Verb),
    /// Known but not offered through the proxy (BDAT, XCLIENT, XFORWARD, ETRN).
    NotOffered(Verb),
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandError {
    #[error("syntax: {0}")]
    Syntax(&'static str),
    #[error("bad sender address: {0}")]
    BadSender(AddressError),
    #[error("bad recipient address: {0}")]
    BadRecipient(AddressError),
    #[error("bad ESMTP parameter `{0}`")]
    BadParameter(String),
    #[error("command is not valid UTF-8")]
    InvalidUtf8,
}

impl CommandError {
    /// The reply code and enhanced status for this error (RFC 3463).
    pub fn reply(&self) -> (u16, &'static str) {
        match self {
            CommandError::Syntax(_) => (501, "5.5.4"),
            CommandError::BadSender(_) => (501, "5.1.7"),
            CommandError::BadRecipient(_) => (501, "5.1.3"),
            CommandError::BadParameter(_) => (555, "5.5.4"),
            CommandError::InvalidUtf8 => (553, "5.6.7"),
        }
    }
}

impl Command {
    /// Parses one command line (CRLF already removed).
    pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
        let split = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
        let (word, rest) = (&line[..split], line.get(split + 1..).unwrap_or(b""));
        let verb = Verb::from_word(word);
        let text = || std::str::from_utf8(rest).map_err(|_| CommandError::InvalidUtf8);
        let no_argument = |command: Command| {
            if rest.iter().all(|&b| b == b' ') {
                Ok(command)
            } else {
                Err(CommandError::Syntax("this command takes no argument"))
            }
        };
        match verb {
            Verb::Helo | Verb::Ehlo => {
                let domain = text()?.trim();
                if domain.is_empty() {
                    return Err(CommandError::Syntax("HELO and EHLO need a host name"));
                }
                Ok(Command::Hello { extended: verb == Verb::Ehlo, domain: domain.to_owned() })
            }
            Verb::Mail => {
                let text = text()?;
                let argument = strip_keyword(text, "FROM:").ok_or(CommandError::Syntax("use MAIL FROM:<address>"))?;
                let (inner, rest) = split_path(argument).map_err(CommandError::BadSender)?;
                let path = ReversePath::parse(inner).map_err(CommandError::BadSender)?;
                Ok(Command::Mail { path, parameters: Parameters::parse(rest)? })
            }
            Verb::Rcpt => {
                let text = text()?;
                let argument = strip_keyword(text, "TO:").ok_or(CommandError::Syntax("use RCPT TO:<address>"))?;
                let (inner, rest) = split_path(argument).map_err(CommandError::BadRecipient)?;
                let path = ForwardPath::parse(inner).map_err(CommandError::BadRecipient)?;
                Ok(Command::Rcpt { path, parameters: Parameters::parse(rest)? })
            }
            Verb::Data => no_argument(Command::Data),
            Verb::Rset => no_argument(Command::Rset),
            Verb::Quit => no_argument(Command::Quit),
            Verb::StartTls => no_argument(Command::StartTls),
            Verb::Auth => {
                let mechanism = text()?.split(' ').next().unwrap_or("").to_owned();
                if mechanism.is_empty() {
                    return Err(CommandError::Syntax("AUTH needs a mechanism"));
                }
                Ok(Command::Auth { mechanism })
            }
            Verb::Noop | Verb::Vrfy | Verb::Expn | Verb::Help => Ok(Command::Relayed(verb)),
            Verb::Bdat | Verb::Xclient | Verb::Xforward | Verb::Etrn => Ok(Command::NotOffered(verb)),
            Verb::Unknown => Ok(Command::Unknown),
        }
    }

    pub fn verb(&self) -> Verb {
        match self {
            Command::Hello { extended: true, .. } => Verb::Ehlo,
            Command::Hello { extended: false, .. } => Verb::Helo,
            Command::Mail { .. } => Verb::Mail,
            Command::Rcpt { .. } => Verb::Rcpt,
            Command::Data => Verb::Data,
            Command::Rset => Verb::Rset,
            Command::Quit => Verb::Quit,
            Command::StartTls => Verb::StartTls,
            Command::Auth { .. } => Verb::Auth,
            Command::Relayed(verb) | Command::NotOffered(verb) => *verb,
            Command::Unknown => Verb::Unknown,
        }
    }
}

/// `FROM:` / `TO:` in any case, as RFC 5321 §2.4 requires.
fn strip_keyword<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    let head = text.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword).then(|| &text[keyword.len()..])
}

/// RFC 3461 xtext: `+XX` for `+`, `=`, and bytes outside `!`..`~`.
pub fn xtext_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (b'!'..=b'~').contains(&byte) && byte != b'+' && byte != b'=' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("+{byte:02X}"));
        }
    }
    out
}

pub fn mail_line(path: &ReversePath, parameters: &Parameters) -> Vec<u8> {
    format!("MAIL FROM:{path}{parameters}\r\n").into_bytes()
}

pub fn rcpt_line(path: &ForwardPath, parameters: &Parameters) -> Vec<u8> {
    format!("RCPT TO:{path}{parameters}\r\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::address::Mailbox;

    #[test]
    fn mail_and_rcpt_keep_parameters_exactly() {
        let Command::Mail { path, parameters } =
            Command::parse(b"mail from:<alice@example.com> BODY=8BITMIME RET=HDRS ENVID=QQ314159 SMTPUTF8").unwrap()
        else {
            panic!()
        };
        assert_eq!(path, ReversePath::Mailbox(Mailbox::parse("alice@example.com").unwrap()));
        assert_eq!(parameters.to_string(), " BODY=8BITMIME RET=HDRS ENVID=QQ314159 SMTPUTF8");
        assert_eq!(parameters.get("env-id"), None);
        assert_eq!(parameters.get("envid").and_then(Parameter::value), Some("QQ314159"));
        let Command::Rcpt { path, parameters } =
            Command::parse(b"RCPT TO: <carol@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;carol@remote.test")
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(
            String::from_utf8(rcpt_line(&path, &parameters)).unwrap(),
            "RCPT TO:<carol@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;carol@remote.test\r\n"
        );
        assert!(matches!(Command::parse(b"MAIL FROM:<>").unwrap(), Command::Mail { path: ReversePath::Null, .. }));
        assert!(matches!(
            Command::parse(b"RCPT TO:<Postmaster>").unwrap(),
            Command::Rcpt { path: ForwardPath::Postmaster(_), .. }
        ));
    }

    #[test]
    fn errors_map_to_replies() {
        let code = |line: &[u8]| Command::parse(line).unwrap_err().reply().0;
        assert_eq!(code(b"MAIL TO:<a@b.c>"), 501);
        assert_eq!(code(b"MAIL FROM:<a b@c.d>"), 501);
        assert_eq!(code(b"RCPT TO:<>"), 501);
        assert_eq!(code(b"RCPT TO:<a@b.c> =x"), 555);
        assert_eq!(code(b"RCPT TO:<a@b.c> SIZE="), 555);
        assert_eq!(code(b"MAIL FROM:<\xff@b.c>"), 553);
        assert_eq!(code(b"EHLO"), 501);
        assert_eq!(code(b"DATA now"), 501);
    }

    #[test]
    fn verbs() {
        assert_eq!(
            Command::parse(b"ehlo client.test").unwrap(),
            Command::Hello { extended: true, domain: "client.test".into() }
        );
        assert_eq!(Command::parse(b"QUIT").unwrap(), Command::Quit);
        assert_eq!(Command::parse(b"noop whatever").unwrap(), Command::Relayed(Verb::Noop));
        assert_eq!(Command::parse(b"XCLIENT ADDR=1.2.3.4").unwrap(), Command::NotOffered(Verb::Xclient));
        assert_eq!(Command::parse(b"BDAT 10 LAST").unwrap(), Command::NotOffered(Verb::Bdat));
        assert_eq!(
            Command::parse(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==").unwrap(),
            Command::Auth { mechanism: "PLAIN".into() }
        );
        assert_eq!(Command::parse(b"\x80\x81garbage").unwrap(), Command::Unknown);
        assert_eq!(Command::parse(b"").unwrap(), Command::Unknown);
    }

    /// Inputs the command fuzz target found: each must fail to parse or
    /// rebuild to a line that parses back to the same command.
    #[test]
    fn rebuilt_commands_parse_back() {
        for line in [
            &b"MAIL FROM:=&@[<RS\"T]"[..],
            b"MAIL FROM:<\"Y\\c\"@[@_(BB]>",
            b"MAIL FROM:er@[192.0.<>2.1] BODYBDAT CPSTARTTLS=7@ec.B>IT",
            b"MAIL FROM:<a@[IPv6:2001:db8::1]> SIZE=1",
        ] {
            if let Ok(Command::Mail { path, parameters }) = Command::parse(line) {
                let rebuilt = mail_line(&path, &parameters);
                let again = Command::parse(&rebuilt[..rebuilt.len() - 2]);
                assert_eq!(again, Ok(Command::Mail { path, parameters }), "{}", String::from_utf8_lossy(line));
            }
        }
    }

    #[test]
    fn xtext() {
        assert_eq!(xtext_encode("alice@example.com"), "alice@example.com");
        assert_eq!(xtext_encode("a+b=c d"), "a+2Bb+3Dc+20d");
    }
}
