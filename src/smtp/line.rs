//! Command-line framing: one CRLF-terminated line at a time, with a length
//! limit and no tolerance for bare CR or LF, nor for NUL (a receiver that
//! drops NUL bytes would read another line than the proxy did).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    TooLong,
    BareLf,
    BareCr,
    Nul,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framed {
    /// Need more bytes.
    Incomplete,
    /// A line of `len` bytes (CRLF excluded); `consumed` includes the CRLF.
    Line { len: usize, consumed: usize },
    /// A bad line; drop `consumed` bytes. For [`LineError::TooLong`] without
    /// an LF yet, the caller keeps discarding until the next LF.
    Bad { error: LineError, consumed: usize, line_ended: bool },
}

/// Frames the next line of `buffer`; `max` counts the CRLF.
pub fn next_line(buffer: &[u8], max: usize) -> Framed {
    let window = &buffer[..buffer.len().min(max)];
    match memchr::memchr(b'\n', window) {
        None if buffer.len() >= max => match memchr::memchr(b'\n', &buffer[max..]) {
            Some(offset) => Framed::Bad { error: LineError::TooLong, consumed: max + offset + 1, line_ended: true },
            None => Framed::Bad { error: LineError::TooLong, consumed: buffer.len(), line_ended: false },
        },
        None => Framed::Incomplete,
        Some(newline) => {
            let consumed = newline + 1;
            if newline == 0 || buffer[newline - 1] != b'\r' {
                return Framed::Bad { error: LineError::BareLf, consumed, line_ended: true };
            }
            let len = newline - 1;
            if let Some(at) = memchr::memchr2(b'\r', 0, &buffer[..len]) {
                let error = if buffer[at] == 0 { LineError::Nul } else { LineError::BareCr };
                return Framed::Bad { error, consumed, line_ended: true };
            }
            Framed::Line { len, consumed }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_lines() {
        assert_eq!(next_line(b"NOOP\r\nQUIT\r\n", 512), Framed::Line { len: 4, consumed: 6 });
        assert_eq!(next_line(b"NOOP\r", 512), Framed::Incomplete);
        assert_eq!(next_line(b"", 512), Framed::Incomplete);
        assert_eq!(next_line(b"\r\n", 512), Framed::Line { len: 0, consumed: 2 });
    }

    #[test]
    fn refuses_bad_endings() {
        assert_eq!(
            next_line(b"NOOP\nQUIT\r\n", 512),
            Framed::Bad { error: LineError::BareLf, consumed: 5, line_ended: true }
        );
        assert_eq!(next_line(b"\n", 512), Framed::Bad { error: LineError::BareLf, consumed: 1, line_ended: true });
        assert_eq!(
            next_line(b"NO\rOP\r\n", 512),
            Framed::Bad { error: LineError::BareCr, consumed: 7, line_ended: true }
        );
        assert_eq!(
            next_line(b"RSET\0\r\nQUIT\r\n", 512),
            Framed::Bad { error: LineError::Nul, consumed: 7, line_ended: true }
        );
    }

    #[test]
    fn limits_length() {
        let exact = [b"x".repeat(8), b"\r\n".to_vec()].concat();
        assert_eq!(next_line(&exact, 10), Framed::Line { len: 8, consumed: 10 });
        let long = b"x".repeat(10);
        assert_eq!(next_line(&long, 10), Framed::Bad { error: LineError::TooLong, consumed: 10, line_ended: false });
        let long_then_end = [b"x".repeat(20), b"\r\nNOOP\r\n".to_vec()].concat();
        assert_eq!(
            next_line(&long_then_end, 10),
            Framed::Bad { error: LineError::TooLong, consumed: 22, line_ended: true }
        );
    }
}
