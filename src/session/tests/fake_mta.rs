//! A scripted MTA on the far end of an in-memory pipe, and the dialler
//! that hands sessions to it. It behaves like a small SMTP server until
//! its behaviour says otherwise, and records what it saw.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

use crate::listener::Dial;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mta {
    /// Behaves well; offers DSN.
    Normal,
    /// Nothing listens.
    Unreachable,
    /// Greets with this code and closes.
    RefuseGreeting(u16),
    /// Closes the connection when this verb arrives.
    CloseOn(&'static str),
    /// Closes after reading this many bytes of message data.
    ResetMidData(usize),
    /// Refuses every message at the final dot.
    RefuseData,
    /// Reads the message and never answers.
    NoFinalReply,
    /// Takes the message, and answers after this many seconds.
    SlowFinalReply(u64),
    /// After its EHLO reply, times the session out as an idle MTA does.
    IdleTimeout,
    /// Quotes the sender in every reply after MAIL.
    EchoSender,
    /// Refuses every MAIL, quoting the sender.
    RefuseMail,
    /// Offers XCLIENT and takes it, or refuses it.
    Xclient { accept: bool },
}

/// What the MTA saw, for assertions.
#[derive(Debug, Default, Clone)]
pub(crate) struct Record {
    pub connections: usize,
    pub commands: Vec<String>,
    /// Complete messages (final dot seen).
    pub messages: Vec<String>,
}

impl Record {
    /// Whether a command starting with `prefix` (case ignored) arrived.
    pub fn saw(&self, prefix: &str) -> bool {
        self.commands.iter().any(|c| c.to_ascii_uppercase().starts_with(&prefix.to_ascii_uppercase()))
    }
}

pub(crate) struct MemoryDialler {
    pub mta: Mta,
    pub record: Arc<Mutex<Record>>,
}

impl Dial<DuplexStream> for MemoryDialler {
    fn dial<'a>(&'a self, _target: &'a str) -> Pin<Box<dyn Future<Output = io::Result<DuplexStream>> + Send + 'a>> {
        Box::pin(async move {
            if self.mta == Mta::Unreachable {
                return Err(io::ErrorKind::ConnectionRefused.into());
            }
            let (proxy, mta) = tokio::io::duplex(1 << 16);
            self.record.lock().unwrap().connections += 1;
            tokio::spawn(serve(mta, self.mta, Arc::clone(&self.record)));
            Ok(proxy)
        })
    }
}

async fn serve(stream: DuplexStream, mta: Mta, record: Arc<Mutex<Record>>) -> io::Result<()> {
    let (read, mut writer) = tokio::io::split(stream);
    let mut reader = BufReader::new(read);
    if let Mta::RefuseGreeting(code) = mta {
        writer.write_all(format!("{code} {}.3.2 go away\r\n", code / 100).as_bytes()).await?;
        return Ok(());
    }
    writer.write_all(b"220 mta.test ESMTP\r\n").await?;
    let mut sender = String::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        record.lock().unwrap().commands.push(text.clone());
        let verb = text.split([' ', ':']).next().unwrap_or("").to_ascii_uppercase();
        if mta
            == Mta::CloseOn(match verb.as_str() {
                "EHLO" => "EHLO",
                "MAIL" => "MAIL",
                "RCPT" => "RCPT",
                "DATA" => "DATA",
                _ => "",
            })
        {
            return Ok(());
        }
        let reply = match verb.as_str() {
            "EHLO" => match mta {
                Mta::Xclient { .. } => "250-mta.test\r\n250-PIPELINING\r\n250-XCLIENT ADDR PORT HELO PROTO\r\n250 8BITMIME\r\n".into(),
                _ => "250-mta.test\r\n250-PIPELINING\r\n250-SIZE 100000000\r\n250-DSN\r\n250-XCLIENT ADDR\r\n250-ETRN\r\n250 ENHANCEDSTATUSCODES\r\n".into(),
            },
            "XCLIENT" if mta == (Mta::Xclient { accept: false }) => "550 5.7.0 Error: insufficient authorization\r\n".into(),
            "XCLIENT" => "220 mta.test ESMTP\r\n".into(),
            "HELO" => "250 mta.test\r\n".into(),
            "MAIL" => {
                sender = text.get(10..).unwrap_or("").to_owned();
                match mta {
                    Mta::EchoSender => format!("250-2.1.0 Sender {sender} looks fine\r\n250 2.1.0 {sender} Ok\r\n"),
                    Mta::RefuseMail => format!("553 5.7.1 {sender}: Sender address rejected\r\n"),
                    _ => "250 2.1.0 Ok\r\n".into(),
                }
            }
            "RCPT" if mta == Mta::EchoSender => format!("250-2.1.5 {text}\r\n250 2.1.5 for sender {sender}\r\n"),
            "RCPT" | "RSET" | "NOOP" | "VRFY" => "250 2.0.0 Ok\r\n".into(),
            "QUIT" => {
                writer.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            "DATA" => {
                writer.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                let mut message = Vec::new();
                loop {
                    let mut line = Vec::new();
                    if reader.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" {
                        break;
                    }
                    message.extend_from_slice(&line);
                    if let Mta::ResetMidData(limit) = mta
                        && message.len() >= limit
                    {
                        return Ok(());
                    }
                }
                match mta {
                    Mta::NoFinalReply => {
                        tokio::time::sleep(Duration::from_secs(100_000)).await;
                        return Ok(());
                    }
                    Mta::RefuseData => "554 5.7.1 Refused by policy\r\n".into(),
                    Mta::SlowFinalReply(seconds) => {
                        tokio::time::sleep(Duration::from_secs(seconds)).await;
                        record.lock().unwrap().messages.push(String::from_utf8_lossy(&message).into_owned());
                        "250 2.0.0 Ok: queued as SLOW1\r\n".into()
                    }
                    Mta::EchoSender => format!("250 2.0.0 Ok: queued as ECHO1 for {sender}\r\n"),
                    _ => {
                        record.lock().unwrap().messages.push(String::from_utf8_lossy(&message).into_owned());
                        "250 2.0.0 Ok: queued as FAKE123\r\n".into()
                    }
                }
            }
            _ => "502 5.5.2 Error: command not recognized\r\n".into(),
        };
        writer.write_all(reply.as_bytes()).await?;
        if mta == Mta::IdleTimeout && verb == "EHLO" {
            tokio::time::sleep(Duration::from_secs(5)).await;
            writer.write_all(b"421 4.4.2 mta.test Error: timeout exceeded\r\n").await?;
            return Ok(());
        }
    }
}
