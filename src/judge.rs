//! `batv-proxy judge`: "what would you do with this message?" answered by
//! the proxy itself. The real session runs in process, with the real
//! configuration, keys, exemptions and ledger, over an in-memory pipe to an
//! MTA that accepts everything, and the verdicts it files are the answer.
//! Running the session, rather than asking the policy the same questions
//! again, is what makes the answer the running proxy's.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::watch;

use crate::assemble::Assembly;
use crate::config::{ClientIdentity, Role};
use crate::ledger::Ledger;
use crate::listener::{Clock, Dial, ListenerContext};
use crate::metrics::Metrics;
use crate::session::{self, Endpoints, Phase};
use crate::verdicts::{VerdictLog, VerdictRecord};

/// The client, when none is given: an address of no one (RFC 5737).
pub const DEFAULT_CLIENT: &str = "192.0.2.1";

/// What to judge.
pub struct Question {
    /// The listener by name (`role@address`); the first inbound one by default.
    pub listener: Option<String>,
    /// `MAIL FROM`, without brackets; empty for the null sender.
    pub from: String,
    pub recipients: Vec<String>,
    pub client: IpAddr,
    /// The message, if the verdict after DATA is wanted too.
    pub message: Option<Vec<u8>>,
}

/// The verdicts, as the running proxy would file them.
pub struct Answer {
    pub record: VerdictRecord,
    /// Whether the mail would be taken: delivered after DATA, or, without
    /// a message, taken for at least one recipient.
    pub accepted: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    #[error("no listener {0}; the configuration has {1}")]
    NoListener(String, String),
    #[error("the session ended before it was judged")]
    Unfinished,
}

/// An MTA that takes everything: the upstream the judged session talks to.
struct AcceptingMta;

impl Dial<DuplexStream> for AcceptingMta {
    fn dial<'a>(&'a self, _target: &'a str) -> Pin<Box<dyn Future<Output = io::Result<DuplexStream>> + Send + 'a>> {
        Box::pin(async {
            let (proxy, mta) = tokio::io::duplex(64 * 1024);
            tokio::spawn(accept_everything(mta));
            Ok(proxy)
        })
    }
}

async fn accept_everything(stream: DuplexStream) -> io::Result<()> {
    let (read, mut write) = tokio::io::split(stream);
    let mut reader = BufReader::new(read);
    write.write_all(b"220 judge ESMTP\r\n").await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let verb = line.split(|&b| b == b' ' || b == b'\r').next().unwrap_or_default().to_ascii_uppercase();
        let reply: &[u8] = match verb.as_slice() {
            b"EHLO" => b"250-judge\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 DSN\r\n",
            b"QUIT" => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            b"DATA" => {
                write.write_all(b"354 go ahead\r\n").await?;
                loop {
                    line.clear();
                    if reader.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" {
                        break;
                    }
                }
                b"250 2.0.0 Ok: queued as JUDGED\r\n"
            }
            _ => b"250 2.0.0 Ok\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// Runs the question through the listener's real session.
pub async fn judge(
    assembly: Assembly,
    ledger: Arc<Ledger>,
    clock: Arc<dyn Clock>,
    question: Question,
) -> Result<Answer, JudgeError> {
    let Assembly { policy, listeners, .. } = assembly;
    let names: Vec<String> = listeners.iter().map(|parts| parts.settings.name.clone()).collect();
    let chosen = match &question.listener {
        Some(name) => listeners.into_iter().find(|parts| &parts.settings.name == name),
        None => {
            let first_inbound = listeners.iter().position(|parts| parts.settings.role == Role::Inbound).unwrap_or(0);
            listeners.into_iter().nth(first_inbound)
        }
    };
    let Some(parts) = chosen else {
        return Err(JudgeError::NoListener(question.listener.unwrap_or_default(), names.join(", ")));
    };
    let mut settings = parts.settings;
    // The client is judged as the listener sees it after TLS and AUTH:
    // those gates are the listener's, not the verdict's.
    settings.client_identity = ClientIdentity::None;
    settings.require_auth = false;
    settings.tls = None;
    // Judging records nothing: the ledger is only looked up.
    let ledger = if settings.role == Role::Outbound { Ledger::off() } else { ledger };
    let verdicts = Arc::new(VerdictLog::new(8));
    let context = Arc::new(ListenerContext {
        metrics: Arc::new(Metrics::new()).for_listener(&settings.name),
        settings,
        policy,
        server_tls: None,
        upstream_tls: None,
        ledger,
        xclient_attributes: Default::default(),
        dialler: Arc::new(AcceptingMta),
        clock,
        verdicts: Arc::clone(&verdicts),
    });
    let (client, server) = tokio::io::duplex(64 * 1024);
    let endpoints = Endpoints { peer: SocketAddr::new(question.client, 40000), local: context.settings.listen };
    let (_phase, phase) = watch::channel(Phase::Running);
    let session = tokio::spawn(session::serve(server, endpoints, Arc::clone(&context), phase));
    let accepted = converse(client, &question).await.map_err(|_| JudgeError::Unfinished)?;
    let _ = session.await;
    let mut record = verdicts.find(&Default::default()).into_iter().next().ok_or(JudgeError::Unfinished)?;
    // The accepting MTA's queue id means nothing.
    if let Some(message) = &mut record.message {
        message.queue_id = None;
    }
    let accepted = match &question.message {
        Some(_) => record.delivered(),
        None => accepted,
    };
    Ok(Answer { record, accepted })
}

/// The client's side: envelope, then the message if there is one and a
/// recipient was taken. Returns whether a recipient was taken.
async fn converse(stream: DuplexStream, question: &Question) -> io::Result<bool> {
    let (read, mut write) = tokio::io::split(stream);
    let mut reader = BufReader::new(read);
    read_reply(&mut reader).await?;
    write.write_all(b"EHLO judge.invalid\r\n").await?;
    read_reply(&mut reader).await?;
    write.write_all(format!("MAIL FROM:<{}>\r\n", question.from).as_bytes()).await?;
    if read_reply(&mut reader).await? >= 400 {
        return Ok(false);
    }
    let mut taken = false;
    for recipient in &question.recipients {
        write.write_all(format!("RCPT TO:<{recipient}>\r\n").as_bytes()).await?;
        taken |= read_reply(&mut reader).await? < 400;
    }
    if let Some(message) = &question.message
        && taken
    {
        write.write_all(b"DATA\r\n").await?;
        if read_reply(&mut reader).await? == 354 {
            write.write_all(&dot_stuffed(message)).await?;
            read_reply(&mut reader).await?;
        }
    }
    write.write_all(b"QUIT\r\n").await?;
    let _ = read_reply(&mut reader).await;
    Ok(taken)
}

/// The code of the next reply.
async fn read_reply(reader: &mut (impl AsyncBufReadExt + Unpin)) -> io::Result<u16> {
    let mut code = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(code);
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(code);
        }
    }
}

/// The message as DATA carries it: CRLF line ends, leading dots doubled,
/// the final dot.
fn dot_stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    for line in message.split_inclusive(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_dot_stuffed_with_crlf() {
        assert_eq!(dot_stuffed(b"a\n.b\r\nc"), b"a\r\n..b\r\nc\r\n.\r\n");
        assert_eq!(dot_stuffed(b""), b".\r\n");
    }
}
