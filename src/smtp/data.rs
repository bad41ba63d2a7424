//! Scanning a DATA stream as it passes: where the message ends, how big
//! it is, and whether it holds a bare CR or LF.
//!
//! Only `CRLF . CRLF` ends a message. A bare LF or CR anywhere is a
//! violation: such a message is never forwarded as a boundary, because an
//! MTA behind us that reads `\n.\n` as the end would see a second,
//! smuggled message (SMTP smuggling, SEC Consult 2023). So is a NUL byte:
//! receivers that drop NULs read `\r\n\0.\r\n` as the end. No BINARYMIME
//! is offered, so no message may carry one (RFC 5321 §2.3.8, RFC 6152).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    BareLf,
    BareCr,
    Nul,
}

impl Violation {
    pub fn as_str(self) -> &'static str {
        match self {
            Violation::BareLf => "bare_lf",
            Violation::BareCr => "bare_cr",
            Violation::Nul => "nul",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// After CRLF (or at the very start): a `.` here may begin the terminator.
    LineStart,
    Middle,
    /// A CR mid-line: an LF must follow.
    Cr,
    /// `.` at a line start.
    Dot,
    /// `.` CR at a line start.
    DotCr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// Everything given belongs to the message; more is needed.
    Continue,
    /// The message, terminator included, ends after this many bytes of
    /// the input just scanned.
    End(usize),
}

#[derive(Debug, Clone)]
pub struct DataScanner {
    state: State,
    /// Bytes of the message seen so far, terminator excluded once found.
    size: u64,
    violation: Option<Violation>,
}

impl Default for DataScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl DataScanner {
    /// A scanner at the start of the message: right after the CRLF of the
    /// DATA command, so an immediate `.` CRLF ends an empty message.
    pub fn new() -> Self {
        DataScanner { state: State::LineStart, size: 0, violation: None }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The first bare CR or LF seen, if any.
    pub fn violation(&self) -> Option<Violation> {
        self.violation
    }

    fn violate(&mut self, violation: Violation) {
        self.violation.get_or_insert(violation);
    }

    pub fn scan(&mut self, input: &[u8]) -> Scan {
        let mut index = 0;
        while index < input.len() {
            if input[index] == 0 {
                self.violate(Violation::Nul);
                self.state = State::Middle;
                index += 1;
                continue;
            }
            match self.state {
                State::Middle => match memchr::memchr3(b'\r', b'\n', 0, &input[index..]) {
                    None => index = input.len(),
                    Some(offset) => {
                        let at = index + offset;
                        if input[at] == 0 {
                            // Counted at the top of the loop.
                            index = at;
                            continue;
                        } else if input[at] == b'\r' {
                            self.state = State::Cr;
                        } else {
                            // A bare LF ends nothing: the standard terminator is required.
                            self.violate(Violation::BareLf);
                        }
                        index = at + 1;
                    }
                },
                State::Cr => {
                    if input[index] == b'\n' {
                        self.state = State::LineStart;
                        index += 1;
                    } else {
                        self.violate(Violation::BareCr);
                        self.state = State::Middle;
                    }
                }
                State::LineStart => {
                    if input[index] == b'.' {
                        self.state = State::Dot;
                        index += 1;
                    } else {
                        self.state = State::Middle;
                    }
                }
                State::Dot => {
                    if input[index] == b'\r' {
                        self.state = State::DotCr;
                        index += 1;
                    } else {
                        self.state = State::Middle;
                    }
                }
                State::DotCr => {
                    if input[index] == b'\n' {
                        let end = index + 1;
                        // The size excludes the ".\r\n" (split across inputs or not).
                        self.size = (self.size + end as u64).saturating_sub(3);
                        self.state = State::LineStart;
                        return Scan::End(end);
                    }
                    self.violate(Violation::BareCr);
                    self.state = State::Middle;
                }
            }
        }
        self.size += input.len() as u64;
        Scan::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `piece` bytes; returns (end offset, violation, size).
    fn run(input: &[u8], piece: usize) -> (Option<usize>, Option<Violation>, u64) {
        let mut scanner = DataScanner::new();
        let mut offset = 0;
        for chunk in input.chunks(piece.max(1)) {
            if let Scan::End(len) = scanner.scan(chunk) {
                return (Some(offset + len), scanner.violation(), scanner.size());
            }
            offset += chunk.len();
        }
        (None, scanner.violation(), scanner.size())
    }

    #[test]
    fn finds_the_end_whatever_the_chunking() {
        let message = b"Subject: x\r\n\r\nhello\r\n..dot-stuffed\r\n.\r\nMAIL FROM:<>\r\n";
        let end = message.len() - b"MAIL FROM:<>\r\n".len();
        for piece in 1..message.len() {
            assert_eq!(run(message, piece), (Some(end), None, (end - 3) as u64), "piece {piece}");
        }
    }

    #[test]
    fn empty_message() {
        assert_eq!(run(b".\r\n", 10), (Some(3), None, 0));
    }

    #[test]
    fn smuggling_variants_are_caught_and_never_end_the_message() {
        // (input, first violation); none of these contains the standard terminator.
        let cases: &[(&[u8], Violation)] = &[
            (b"a\n.\nMAIL FROM:<x>\n", Violation::BareLf),
            (b"a\r\n.\nMAIL FROM:<x>\r\n", Violation::BareLf),
            (b"a\n.\r\nMAIL FROM:<x>\r\n", Violation::BareLf),
            (b"a\r.\rMAIL FROM:<x>\r", Violation::BareCr),
            (b"a\r\n.\rMAIL FROM:<x>\r\n", Violation::BareCr),
            (b"a\r.\r\nMAIL FROM:<x>\r\n", Violation::BareCr),
            (b"line\nline\r\n", Violation::BareLf),
            (b"line\rline\r\n", Violation::BareCr),
        ];
        for (input, violation) in cases {
            for piece in 1..=input.len() {
                let (end, seen, _) = run(input, piece);
                assert_eq!(end, None, "{:?} piece {piece}", String::from_utf8_lossy(input));
                assert_eq!(seen, Some(*violation), "{:?} piece {piece}", String::from_utf8_lossy(input));
            }
        }
    }

    #[test]
    fn after_a_violation_only_the_standard_terminator_ends() {
        let input = b"x\ny\r\n.\r\nafter";
        assert_eq!(run(input, 3), (Some(input.len() - 5), Some(Violation::BareLf), (input.len() - 8) as u64));
    }

    #[test]
    fn eight_bit_passes() {
        let input = b"caf\xc3\xa9 \xff\r\n.\r\n";
        assert_eq!(run(input, 4), (Some(input.len()), None, (input.len() - 3) as u64));
    }

    #[test]
    fn nul_is_a_violation_wherever_it_stands() {
        for input in [
            &b"a\x00b\r\n.\r\n"[..],
            b"a\r\n\x00.\r\n.\r\n",
            b"a\r\n.\x00\r\n.\r\n",
            b"a\r\n.\r\x00\n\r\n.\r\n",
            b"a\r\x00\n\r\n.\r\n",
            b"\x00\r\n.\r\n",
        ] {
            for piece in 1..=input.len() {
                let (end, seen, _) = run(input, piece);
                assert_eq!(end, Some(input.len()), "{:?} piece {piece}", String::from_utf8_lossy(input));
                assert_eq!(seen, Some(Violation::Nul), "{:?} piece {piece}", String::from_utf8_lossy(input));
            }
        }
    }
}
