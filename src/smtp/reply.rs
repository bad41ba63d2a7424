//! SMTP replies (RFC 5321 §4.2): parsing what the upstream says, and
//! formatting what the proxy says itself.

use std::fmt;

use bytes::BytesMut;
use thiserror::Error;

/// One complete reply, possibly multi-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    /// Text of each line, after `ddd-` / `ddd `.
    lines: Vec<String>,
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

impl Reply {
    /// A reply of the proxy's own; `text` may hold `\n` for several lines.
    pub fn new(code: u16, text: &str) -> Self {
        debug_assert!((200..600).contains(&code));
        Reply { code, lines: text.split('\n').map(str::to_owned).collect() }
    }

    pub fn from_lines(code: u16, lines: Vec<String>) -> Self {
        Reply { code, lines: if lines.is_empty() { vec![String::new()] } else { lines } }
    }

    pub fn code(&self) -> u16 {
        self.code
    }

    pub fn lines(&self) -> &[String] {
        &self.lines
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

    /// The text of all lines joined by a space, for logs.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }

    pub fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len() - 1;
        for (index, line) in self.lines.iter().enumerate() {
            let separator = if index == last { ' ' } else { '-' };
            out.extend_from_slice(format!("{}{}{}\r\n", self.code, separator, line).as_bytes());
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }

    /// Takes one complete reply off the front of `buffer`. `Ok(None)` means
    /// more bytes are needed (a normal outcome, not an error).
    pub fn parse(buffer: &mut BytesMut) -> Result<Option<Reply>, ReplyError> {
        let mut offset = 0;
        let mut code = None;
        let mut lines = Vec::new();
        loop {
            let rest = &buffer[offset..];
            let Some(newline) = memchr::memchr(b'\n', rest) else {
                return if rest.len() > MAX_REPLY_LINE { Err(ReplyError::LineTooLong) } else { Ok(None) };
            };
            if newline > MAX_REPLY_LINE {
                return Err(ReplyError::LineTooLong);
            }
            // Tolerate a bare LF from a sloppy upstream; we only re-emit CRLF.
            let line = rest[..newline].strip_suffix(b"\r").unwrap_or(&rest[..newline]);
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
            let (more, text) = match line.get(3) {
                Some(b'-') => (true, &line[4..]),
                Some(b' ') => (false, &line[4..]),
                None => (false, &line[3..]),
                Some(_) => return Err(ReplyError::NoCode),
            };
            lines.push(String::from_utf8_lossy(text).into_owned());
            offset += newline + 1;
            if !more {
                let _ = buffer.split_to(offset);
                return Ok(Some(Reply { code: line_code, lines }));
            }
            if lines.len() >= MAX_REPLY_LINES {
                return Err(ReplyError::TooManyLines);
            }
        }
    }
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
    fn formats_with_continuation_marks() {
        assert_eq!(Reply::new(250, "a\nb\nc").to_bytes(), b"250-a\r\n250-b\r\n250 c\r\n");
        assert_eq!(Reply::new(421, "4.4.0 gone").to_bytes(), b"421 4.4.0 gone\r\n");
    }
}
