//! Guarding the header fields the proxy writes, on a DATA stream as it
//! passes (sans I/O, like the DATA scanner).
//!
//! The proxy prepends fields of its own (`X-Batv-Status`, a `Received:`
//! naming the client) right before the client's first line, and admins
//! file mail on them. Two things must not reach the MTA: a copy of such a
//! field written by the client, which would stand beside the proxy's, and
//! a client first line starting with a space or tab, which would fold
//! into the proxy's last field and change its value (RFC 5322 §2.2.3).

/// Longest run of bytes held back at a line start while deciding whether
/// the line begins a guarded field: the longest name, a colon and some
/// white space before it (obsolete syntax that parsers still accept).
const MAX_PENDING: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a header line; `pending` holds what is known of it.
    LineStart,
    /// Passing a header line through.
    Keep,
    /// Dropping a guarded field, with its continuation lines.
    Drop,
    /// Past the header section: everything passes.
    Body,
}

/// Removes guarded fields from the header section of a dot-stuffed DATA
/// stream, and (when the proxy prepends fields) continuation lines that
/// would attach to them.
#[derive(Debug, Clone)]
pub struct HeaderGuard {
    /// Lower-case names of the fields only the proxy may write.
    names: Vec<Vec<u8>>,
    state: State,
    /// The field being dropped continues on lines that start with white space.
    dropping: bool,
    /// Before the first line: a continuation here would fold into the proxy's field.
    first_line: bool,
    pending: Vec<u8>,
    removed: usize,
}

impl HeaderGuard {
    /// `names`: the guarded field names. `prepended`: whether the proxy
    /// writes fields in front of the client's first line.
    pub fn new(names: &[&str], prepended: bool) -> Self {
        HeaderGuard {
            names: names.iter().map(|name| name.as_bytes().to_ascii_lowercase()).collect(),
            state: State::LineStart,
            dropping: false,
            first_line: prepended,
            pending: Vec::new(),
            removed: 0,
        }
    }

    /// Lines removed so far, for the log.
    pub fn removed(&self) -> usize {
        self.removed
    }

    /// Whether the header section has ended: the rest passes untouched.
    pub fn done(&self) -> bool {
        self.state == State::Body
    }

    /// Appends to `out` what of `input` may pass.
    pub fn filter(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut index = 0;
        while index < input.len() {
            match self.state {
                State::Body => {
                    out.extend_from_slice(&input[index..]);
                    return;
                }
                State::Keep | State::Drop => {
                    let rest = &input[index..];
                    let (line, ended) = match memchr::memchr(b'\n', rest) {
                        Some(newline) => (&rest[..=newline], true),
                        None => (rest, false),
                    };
                    if self.state == State::Keep {
                        out.extend_from_slice(line);
                    }
                    index += line.len();
                    if ended {
                        self.state = State::LineStart;
                    }
                }
                State::LineStart => {
                    let byte = input[index];
                    if self.pending.is_empty() {
                        let first_line = std::mem::replace(&mut self.first_line, false);
                        match byte {
                            b'\r' | b'\n' => {
                                // The empty line that ends the header section (or the
                                // end of data: both leave the header section).
                                self.state = State::Body;
                                continue;
                            }
                            b' ' | b'\t' => {
                                self.dropping |= first_line;
                                self.start_line(self.dropping);
                                continue;
                            }
                            _ => {}
                        }
                    }
                    self.pending.push(byte);
                    index += 1;
                    if let Some(guarded) = self.classify() {
                        let pending = std::mem::take(&mut self.pending);
                        self.dropping = guarded;
                        if !guarded {
                            out.extend_from_slice(&pending);
                        }
                        self.start_line(guarded);
                    }
                }
            }
        }
    }

    fn start_line(&mut self, drop: bool) {
        if drop {
            self.removed += 1;
            self.state = State::Drop;
        } else {
            self.state = State::Keep;
        }
    }

    /// Whether the pending start of a line begins a guarded field; `None`
    /// while it could still go either way.
    fn classify(&self) -> Option<bool> {
        let pending = &self.pending;
        let mut undecided = false;
        for name in &self.names {
            let shared = pending.len().min(name.len());
            if !pending[..shared].eq_ignore_ascii_case(&name[..shared]) {
                continue;
            }
            if pending.len() <= name.len() {
                undecided = true;
                continue;
            }
            // The name is complete: white space may stand before the colon.
            let after = &pending[name.len()..];
            let blanks = after.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
            match after.get(blanks) {
                Some(b':') => return Some(true),
                Some(_) => {}
                None if pending.len() >= MAX_PENDING => return Some(true),
                None => undecided = true,
            }
        }
        if undecided { None } else { Some(false) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `input` through a guard in pieces of `piece` bytes.
    fn run(input: &[u8], piece: usize, prepended: bool) -> Vec<u8> {
        let mut guard = HeaderGuard::new(&["X-Batv-Status", "Received"], prepended);
        let mut out = Vec::new();
        for chunk in input.chunks(piece.max(1)) {
            guard.filter(chunk, &mut out);
        }
        out
    }

    fn each_chunking(input: &[u8], prepended: bool, expected: &[u8]) {
        for piece in 1..=input.len() {
            assert_eq!(
                String::from_utf8_lossy(&run(input, piece, prepended)),
                String::from_utf8_lossy(expected),
                "piece {piece}"
            );
        }
    }

    #[test]
    fn client_copies_of_guarded_fields_are_removed_with_their_continuations() {
        each_chunking(
            b"Subject: hi\r\nx-batv-status: valid\r\n\tmore\r\nX-BATV-Status  : valid\r\nTo: a@b\r\n\r\nX-Batv-Status: body\r\n.\r\n",
            false,
            b"Subject: hi\r\nTo: a@b\r\n\r\nX-Batv-Status: body\r\n.\r\n",
        );
    }

    #[test]
    fn other_fields_pass_untouched() {
        let input = b"X-Batv-Statusx: a\r\nX-Batv: b\r\nX-Batv-Status-Seen: c\r\nReceivedBy: d\r\n\r\nbody\r\n.\r\n";
        each_chunking(input, false, input);
        each_chunking(b".\r\n", false, b".\r\n");
        each_chunking(b"\r\n.\r\n", true, b"\r\n.\r\n");
    }

    #[test]
    fn a_first_line_cannot_fold_into_the_proxys_field() {
        each_chunking(
            b"\tvalid-by-attacker\r\n more\r\nSubject: x\r\n\r\n body\r\n.\r\n",
            true,
            b"Subject: x\r\n\r\n body\r\n.\r\n",
        );
        // Without a field of the proxy's in front, nothing is folded into.
        each_chunking(b" x\r\nSubject: x\r\n\r\nb\r\n.\r\n", false, b" x\r\nSubject: x\r\n\r\nb\r\n.\r\n");
    }

    #[test]
    fn pending_bytes_are_bounded() {
        let mut guard = HeaderGuard::new(&["X-Batv-Status"], false);
        let mut out = Vec::new();
        let mut line = b"X-Batv-Status".to_vec();
        line.extend(std::iter::repeat_n(b' ', 10_000));
        line.extend_from_slice(b": x\r\n\r\n");
        guard.filter(&line, &mut out);
        assert_eq!(out, b"\r\n");
        assert!(guard.done());
    }
}
