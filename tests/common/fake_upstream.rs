//! A fake upstream MTA for fault injection: it behaves like a minimal SMTP
//! server until told to misbehave at a given point. Real mail tests use
//! real Postfix; this one only makes faults happen on cue.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Behaves well.
    None,
    /// Accepts the connection, never greets.
    StallGreeting,
    /// Answers EHLO with garbage.
    GarbageEhlo,
    /// Closes the connection after reading this many bytes of message data.
    ResetMidData(usize),
    /// Reads the whole message, then never answers.
    NoFinalReply,
    /// Takes the whole message, and answers only after this delay.
    SlowFinalReply(Duration),
    /// Reads the whole message, then closes without answering.
    CloseAfterData,
    /// Answers every command after this delay.
    Slow(Duration),
    /// Refuses every message at the end of DATA with this code.
    RefuseData(u16),
    /// Offers XCLIENT, and takes it only after an EHLO in the same session.
    XclientAfterEhlo,
    /// Answers DATA with 354, then stops reading.
    StallData,
    /// After EHLO, times the session out as an idle MTA does: 421 and close.
    IdleTimeout,
    /// Quotes the sender of the transaction in every reply after MAIL,
    /// in multi-line replies too, as sender restrictions and logs do.
    EchoSender,
    /// The receivers of the 2023 SMTP smuggling research: NUL bytes are
    /// dropped and a line ends at CR, LF or CRLF, in commands and data.
    Lenient,
}

/// What the fake saw, for assertions.
#[derive(Debug, Default, Clone)]
pub struct Record {
    pub commands: Vec<String>,
    /// Complete messages (terminator seen), dot-stuffing kept.
    pub messages: Vec<Vec<u8>>,
    pub connections: usize,
}

pub struct FakeUpstream {
    pub port: u16,
    pub record: Arc<Mutex<Record>>,
}

impl FakeUpstream {
    pub fn start(fault: Fault) -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let record = Arc::new(Mutex::new(Record::default()));
        let shared = Arc::clone(&record);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let record = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let _ = serve(stream, fault, record);
                });
            }
        });
        FakeUpstream { port, record }
    }

    pub fn record(&self) -> Record {
        self.record.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, fault: Fault, record: Arc<Mutex<Record>>) -> std::io::Result<()> {
    record.lock().unwrap().connections += 1;
    if fault == Fault::Lenient {
        return serve_lenient(stream, record);
    }
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let delay = if let Fault::Slow(delay) = fault { delay } else { Duration::ZERO };
    let say = |writer: &mut TcpStream, text: &str| -> std::io::Result<()> {
        std::thread::sleep(delay);
        writer.write_all(text.as_bytes())
    };
    if fault == Fault::StallGreeting {
        std::thread::sleep(Duration::from_secs(120));
        return Ok(());
    }
    say(&mut writer, "220 fake.upstream ESMTP\r\n")?;
    let mut greeted = false;
    let mut sender = String::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        record.lock().unwrap().commands.push(text.clone());
        let verb = text.split(' ').next().unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" if fault == Fault::GarbageEhlo => say(&mut writer, "this is not smtp\r\n")?,
            "EHLO" if fault == Fault::IdleTimeout => {
                say(&mut writer, "250 fake.upstream\r\n")?;
                std::thread::sleep(Duration::from_millis(300));
                say(&mut writer, "421 4.4.2 fake.upstream Error: timeout exceeded\r\n")?;
                return Ok(());
            }
            "EHLO" if fault == Fault::XclientAfterEhlo => {
                greeted = true;
                say(
                    &mut writer,
                    "250-fake.upstream\r\n250-PIPELINING\r\n250-XCLIENT ADDR PORT NAME HELO PROTO\r\n250 8BITMIME\r\n",
                )?
            }
            "XCLIENT" if fault == Fault::XclientAfterEhlo && greeted => {
                say(&mut writer, "220 fake.upstream ESMTP\r\n")?
            }
            "XCLIENT" if fault == Fault::XclientAfterEhlo => {
                say(&mut writer, "503 5.5.1 Error: send HELO/EHLO first\r\n")?
            }
            "EHLO" => say(
                &mut writer,
                "250-fake.upstream\r\n250-PIPELINING\r\n250-SIZE 100000000\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n",
            )?,
            "HELO" => say(&mut writer, "250 fake.upstream\r\n")?,
            "MAIL" if fault == Fault::EchoSender => {
                sender = text.get(10..).unwrap_or("").to_owned();
                say(&mut writer, &format!("250-2.1.0 Sender {sender} looks fine\r\n250 2.1.0 {sender} Ok\r\n"))?
            }
            "RCPT" if fault == Fault::EchoSender => say(
                &mut writer,
                &format!("550-5.7.1 {text}: Recipient refused\r\n550-5.7.1 for sender {sender}\r\n550 5.7.1 bye\r\n"),
            )?,
            "MAIL" | "RCPT" | "RSET" | "NOOP" => say(&mut writer, "250 2.0.0 Ok\r\n")?,
            "QUIT" => {
                say(&mut writer, "221 2.0.0 Bye\r\n")?;
                return Ok(());
            }
            "DATA" => {
                say(&mut writer, "354 End data with <CR><LF>.<CR><LF>\r\n")?;
                if fault == Fault::StallData {
                    std::thread::sleep(Duration::from_secs(120));
                    return Ok(());
                }
                let mut message = Vec::new();
                loop {
                    let mut line = Vec::new();
                    if reader.read_until(b'\n', &mut line)? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" {
                        break;
                    }
                    message.extend_from_slice(&line);
                    if let Fault::ResetMidData(limit) = fault
                        && message.len() >= limit
                    {
                        return Ok(());
                    }
                }
                match fault {
                    Fault::NoFinalReply => {
                        std::thread::sleep(Duration::from_secs(120));
                        return Ok(());
                    }
                    Fault::CloseAfterData => return Ok(()),
                    Fault::SlowFinalReply(delay) => {
                        std::thread::sleep(delay);
                        record.lock().unwrap().messages.push(message);
                        say(&mut writer, "250 2.0.0 Ok: queued as SLOW123\r\n")?;
                    }
                    Fault::RefuseData(code) => {
                        say(&mut writer, &format!("{code} {}.7.1 Refused by policy\r\n", code / 100))?;
                    }
                    _ => {
                        record.lock().unwrap().messages.push(message);
                        say(&mut writer, "250 2.0.0 Ok: queued as FAKE123\r\n")?;
                    }
                }
            }
            _ => say(&mut writer, "502 5.5.2 Error: command not recognized\r\n")?,
        }
    }
}

/// Lines as a lenient receiver reads them: up to CR, LF or CRLF, with NUL
/// bytes dropped.
struct LenientLines {
    stream: TcpStream,
    buffer: Vec<u8>,
    closed: bool,
}

impl LenientLines {
    fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 4096];
        let count = std::io::Read::read(&mut self.stream, &mut chunk)?;
        if count == 0 {
            self.closed = true;
        }
        self.buffer.extend(chunk[..count].iter().copied().filter(|&b| b != 0));
        Ok(())
    }

    fn next(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(at) = self.buffer.iter().position(|&b| b == b'\r' || b == b'\n') {
                let crlf = self.buffer[at] == b'\r' && self.buffer.get(at + 1) == Some(&b'\n');
                if self.buffer[at] == b'\r' && at + 1 == self.buffer.len() && !self.closed {
                    // A CR at the end: whether an LF follows decides the ending.
                    self.fill()?;
                    continue;
                }
                let line = self.buffer[..at].to_vec();
                self.buffer.drain(..at + if crlf { 2 } else { 1 });
                return Ok(Some(line));
            }
            if self.closed {
                return Ok((!self.buffer.is_empty()).then(|| std::mem::take(&mut self.buffer)));
            }
            self.fill()?;
        }
    }
}

/// Serves as the lenient receivers do; every message it takes is recorded,
/// with a `MAIL`/`RCPT` line per transaction in `commands`.
fn serve_lenient(stream: TcpStream, record: Arc<Mutex<Record>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut writer = stream.try_clone()?;
    let mut lines = LenientLines { stream, buffer: Vec::new(), closed: false };
    writer.write_all(b"220 lenient.upstream ESMTP\r\n")?;
    while let Some(line) = lines.next()? {
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        record.lock().unwrap().commands.push(text.clone());
        let verb = text.split(' ').next().unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-lenient.upstream\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
            "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 2.0.0 Ok\r\n",
            "QUIT" => {
                writer.write_all(b"221 2.0.0 Bye\r\n")?;
                return Ok(());
            }
            "DATA" => {
                writer.write_all(b"354 go ahead\r\n")?;
                let mut message = Vec::new();
                loop {
                    let Some(line) = lines.next()? else { return Ok(()) };
                    if line == b"." {
                        break;
                    }
                    message.extend_from_slice(&line);
                    message.extend_from_slice(b"\r\n");
                }
                record.lock().unwrap().messages.push(message);
                b"250 2.0.0 Ok: queued\r\n"
            }
            _ => b"502 5.5.2 Error: command not recognized\r\n",
        };
        writer.write_all(reply)?;
    }
    Ok(())
}
