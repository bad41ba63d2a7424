//! SMTP replies (RFC 5321 §4.2): parsing what the upstream says, and
//! formatting what the proxy says itself.

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

/// One complete reply, possibly multi-line, kept as its CRLF-terminated
/// wire form: an upstream's reply is relayed byte for byte without being
/// rebuilt, and the proxy's own replies are built once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    wire: Bytes,
}

/// Longest reply line accepted from an upstream (RFC 5321 says 512; real
/// MTAs stay far below this).
pub const MAX_REPLY_LINE: usize = 4096;
/// Most lines in one reply (an EHLO reply has a dozen).
pub const MAX_REPLY_LINES: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReplyError {
    #[error("reply line does not start with a 3-digit code")]
    NoCode,
    #[error("reply code {0} is outside 200-599")]
    CodeOutOfRange(u16),
    #[error("lines of one reply carry different codes")]
    MixedCodes,
    #[error("reply line longer than {MAX_REPLY_LINE} bytes")]
    LineTooLong,
    #[error("reply has more than {MAX_REPLY_LINES} lines")]
    TooManyLines,
}

fn encode<'a>(code: u16, lines: impl ExactSizeIterator<Item = &'a [u8]>) -> Bytes {
    let digits = [b'0' + (code / 100) as u8, b'0' + (code / 10 % 10) as u8, b'0' + (code % 10) as u8];
    let last = lines.len().saturating_sub(1);
    let mut wire = Vec::new();
    for (index, line) in lines.enumerate() {
        wire.extend_from_slice(&digits);
        wire.push(if index == last { b' ' } else { b'-' });
        wire.extend_from_slice(line);
        wire.extend_from_slice(b"\r\n");
    }
    Bytes::from(wire)
}

impl Reply {
    /// A reply of the proxy's own; `text` may hold `\n` for several lines.
    pub fn new(code: u16, text: &str) -> Self {
        debug_assert!((200..600).contains(&code));
        let lines: Vec<&[u8]> = text.split('\n').map(str::as_bytes).collect();
        Reply { code, wire: encode(code, lines.into_iter()) }
    }

    pub fn from_lines(code: u16, lines: Vec<String>) -> Self {
        if lines.is_empty() {
            return Reply::new(code, "");
        }
        Reply { code, wire: encode(code, lines.iter().map(String::as_bytes)) }
    }

    pub fn code(&self) -> u16 {
        self.code
    }

    /// The text of each line, after `ddd-` / `ddd `.
    pub fn lines(&self) -> Vec<String> {
        self.wire
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                String::from_utf8_lossy(line.get(4..).unwrap_or_default()).into_owned()
            })
            .collect()
    }

    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    pub fn is_transient_failure(&self) -> bool {
        (400..500).contains(&self.code)
    }

    pub fn is_permanent_failure(&self) -> bool {
        self.code >= 500
    }

    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    /// Whether the reply's lines hold `byte` (codes and separators aside
    /// from the first line's, which are digits, '-' and ' ').
    pub fn text_contains(&self, byte: u8) -> bool {
        memchr::memchr(byte, &self.wire).is_some()
    }

    /// The last line's text (after `ddd `), without allocating.
    pub fn last_line(&self) -> &[u8] {
        let wire = self.wire.strip_suffix(b"\r\n").unwrap_or(&self.wire);
        let start = memchr::memrchr(b'\n', wire).map_or(0, |at| at + 1);
        wire.get(start + 4..).unwrap_or_default()
    }

    /// The text of all lines joined by a space, for logs.
    pub fn text(&self) -> String {
        self.lines().join(" ")
    }

    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.wire);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.wire.to_vec()
    }

    /// The same reply with every occurrence of `needle` (ASCII case
    /// ignored) replaced; `None` when it does not occur. Replacements never
    /// span lines: a needle holds no line break.
    pub fn replaced(&self, needle: &str, replacement: &str) -> Option<Reply> {
        let needle = needle.as_bytes().to_ascii_lowercase();
        if needle.is_empty() || needle.contains(&b'\n') {
            return None;
        }
        let folded = self.wire.to_ascii_lowercase();
        let mut found = memchr::memmem::find_iter(&folded, &needle).peekable();
        found.peek()?;
        let mut wire = Vec::with_capacity(self.wire.len());
        let mut copied = 0;
        for at in found {
            if at < copied {
                continue;
            }
            wire.extend_from_slice(&self.wire[copied..at]);
            wire.extend_from_slice(replacement.as_bytes());
            copied = at + needle.len();
        }
        wire.extend_from_slice(&self.wire[copied..]);
        Some(Reply { code: self.code, wire: Bytes::from(wire) })
    }

    /// Takes one complete reply off the front of `buffer`. `Ok(None)` means
    /// more bytes are needed (a normal outcome, not an error).
    pub fn parse(buffer: &mut BytesMut) -> Result<Option<Reply>, ReplyError> {
        let mut offset = 0;
        let mut code = None;
        let mut lines = 0;
        let mut canonical = true;
        loop {
            let rest = &buffer[offset..];
            let Some(newline) = memchr::memchr(b'\n', rest) else {
                return if rest.len() > MAX_REPLY_LINE { Err(ReplyError::LineTooLong) } else { Ok(None) };
            };
            if newline > MAX_REPLY_LINE {
                return Err(ReplyError::LineTooLong);
            }
            // Tolerate a bare LF from a sloppy upstream; only CRLF is relayed.
            let line = match rest[..newline].strip_suffix(b"\r") {
                Some(line) => line,
                None => {
                    canonical = false;
                    &rest[..newline]
                }
            };
            if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
                return Err(ReplyError::NoCode);
            }
            let line_code = line[..3].iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
            if !(200..600).contains(&line_code) {
                return Err(ReplyError::CodeOutOfRange(line_code));
            }
            if *code.get_or_insert(line_code) != line_code {
                return Err(ReplyError::MixedCodes);
            }
            let more = match line.get(3) {
                Some(b'-') => true,
                Some(b' ') => false,
                None => {
                    // "250" alone: written back as "250 ".
                    canonical = false;
                    false
                }
                Some(_) => return Err(ReplyError::NoCode),
            };
            if line.contains(&b'\r') {
                canonical = false;
            }
            lines += 1;
            offset += newline + 1;
            if !more {
                // A copy, not a split: the read buffer stays unshared and
                // is reused for the next reply instead of reallocated.
                let wire = if canonical {
                    Bytes::copy_from_slice(&buffer[..offset])
                } else {
                    recode(line_code, &buffer[..offset])
                };
                buffer.advance(offset);
                return Ok(Some(Reply { code: line_code, wire }));
            }
            if lines >= MAX_REPLY_LINES {
                return Err(ReplyError::TooManyLines);
            }
        }
    }
}

/// Rebuilds a reply that arrived with bare LFs, stray CRs or bare codes.
fn recode(code: u16, raw: &[u8]) -> Bytes {
    let texts: Vec<Vec<u8>> = raw
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| line.get(4..).unwrap_or_default().iter().copied().filter(|&b| b != b'\r').collect())
        .collect();
    encode(code, texts.iter().map(Vec::as_slice))
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> (Result<Option<Reply>, ReplyError>, usize) {
        let mut buffer = BytesMut::from(bytes);
        let result = Reply::parse(&mut buffer);
        (result, buffer.len())
    }

    #[test]
    fn single_and_multi_line() {
        let (reply, left) = parse(b"250 2.1.0 Ok\r\nextra");
        assert_eq!(reply.unwrap().unwrap(), Reply::new(250, "2.1.0 Ok"));
        assert_eq!(left, 5);
        let (reply, left) = parse(b"250-mx.example.com\r\n250-PIPELINING\r\n250 ");
        assert_eq!(reply, Ok(None));
        assert_eq!(left, 40);
        let (reply, _) = parse(b"250-mx.example.com\r\n250-PIPELINING\r\n250 \r\n");
        let reply = reply.unwrap().unwrap();
        assert_eq!(reply.lines(), ["mx.example.com", "PIPELINING", ""]);
        // A bare code line (smtp-sink ends EHLO with "250 ") and a code alone.
        assert_eq!(parse(b"250\r\n").0.unwrap().unwrap().lines(), [""]);
    }

    #[test]
    fn garbage_is_an_error() {
        assert_eq!(parse(b"hello\r\n").0, Err(ReplyError::NoCode));
        assert_eq!(parse(b"250x\r\n").0, Err(ReplyError::NoCode));
        assert_eq!(parse(b"199 what\r\n").0, Err(ReplyError::CodeOutOfRange(199)));
        assert_eq!(parse(b"250-a\r\n550 b\r\n").0, Err(ReplyError::MixedCodes));
        assert_eq!(parse(&[b'2'; MAX_REPLY_LINE + 2]).0, Err(ReplyError::LineTooLong));
        let many = "250-x\r\n".repeat(MAX_REPLY_LINES + 1);
        assert_eq!(parse(many.as_bytes()).0, Err(ReplyError::TooManyLines));
    }

    #[test]
    fn relays_verbatim_and_repairs_sloppy_endings() {
        let (reply, _) = parse(b"250-first\r\n250 2.0.0 Ok: queued as ABC\r\n");
        assert_eq!(reply.unwrap().unwrap().to_bytes(), b"250-first\r\n250 2.0.0 Ok: queued as ABC\r\n");
        let (reply, _) = parse(b"250-bare\n250 lf\n");
        assert_eq!(reply.unwrap().unwrap().to_bytes(), b"250-bare\r\n250 lf\r\n");
        let (reply, _) = parse(b"550 a\rb\r\n");
        assert_eq!(reply.unwrap().unwrap().to_bytes(), b"550 ab\r\n");
    }

    #[test]
    fn replacing_text_keeps_the_framing() {
        let reply =
            Reply::new(554, "5.7.1 <PRVS=3789B4A285=alice@example.com>: Sender rejected\nsee prvs=3789b4a285=alice");
        let clean = reply.replaced("prvs=3789b4a285=alice", "alice").unwrap();
        assert_eq!(clean.to_bytes(), b"554-5.7.1 <alice@example.com>: Sender rejected\r\n554 see alice\r\n");
        assert_eq!(clean.code(), 554);
        assert_eq!(reply.replaced("absent", "x"), None);
        assert_eq!(Reply::new(250, "aaa").replaced("aa", "b").unwrap().to_bytes(), b"250 ba\r\n");
    }

    #[test]
    fn formats_with_continuation_marks() {
        assert_eq!(Reply::new(250, "a\nb\nc").to_bytes(), b"250-a\r\n250-b\r\n250 c\r\n");
        assert_eq!(Reply::new(421, "4.4.0 gone").to_bytes(), b"421 4.4.0 gone\r\n");
    }
}
