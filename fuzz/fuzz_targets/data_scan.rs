//! `DataScanner` and `next_line`, the two places where the proxy decides
//! where something ends.
//!
//! Input layout: byte 0 and 1 choose the `next_line` limit, bytes 2..6 the
//! chunk sizes (cycled), the rest is the DATA stream / command buffer.
//!
//! DATA: the end offset, the first violation and the size are the same
//! whether the stream comes whole, one byte at a time or in the fuzzed
//! chunks; they agree with a plain reference model (the end is the first
//! `CRLF . CRLF`, counting the start of the stream as a line start, and a
//! bare CR or LF is a violation); after each chunk the size is the bytes
//! seen so far.
//!
//! Lines: `next_line` never returns a line holding a CR or LF, a line ends
//! in CRLF and fits the limit, and framing a buffer line after line always
//! makes progress.

#![no_main]

use batv_proxy::smtp::data::{DataScanner, Scan, Violation};
use batv_proxy::smtp::line::{Framed, LineError, next_line};
use libfuzzer_sys::fuzz_target;

/// (end offset, first violation, size) after feeding `chunks` until an end.
fn run<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> (Option<usize>, Option<Violation>, u64) {
    let mut scanner = DataScanner::new();
    let mut offset = 0;
    for chunk in chunks {
        match scanner.scan(chunk) {
            Scan::End(length) => {
                assert!((1..=chunk.len()).contains(&length), "end {length} outside a {}-byte chunk", chunk.len());
                return (Some(offset + length), scanner.violation(), scanner.size());
            }
            Scan::Continue => {
                offset += chunk.len();
                assert_eq!(scanner.size(), offset as u64, "size after {offset} bytes");
            }
        }
    }
    (None, scanner.violation(), scanner.size())
}

/// What the scanner should say, computed the obvious way.
fn reference(stream: &[u8]) -> (Option<usize>, Option<Violation>, u64) {
    let end = if stream.starts_with(b".\r\n") {
        Some(3)
    } else {
        stream.windows(5).position(|w| w == b"\r\n.\r\n").map(|at| at + 5)
    };
    let scanned = &stream[..end.unwrap_or(stream.len())];
    // A bare LF is seen where it stands, a bare CR when the next byte comes.
    let mut violation = None;
    for (index, &byte) in scanned.iter().enumerate() {
        if byte == b'\n' && (index == 0 || scanned[index - 1] != b'\r') {
            violation = Some(Violation::BareLf);
            break;
        }
        if index > 0 && scanned[index - 1] == b'\r' && byte != b'\n' {
            violation = Some(Violation::BareCr);
            break;
        }
    }
    let size = match end {
        Some(end) => end as u64 - 3,
        None => stream.len() as u64,
    };
    (end, violation, size)
}

fn check_lines(buffer: &[u8], max: usize) {
    let mut rest = buffer;
    while !rest.is_empty() {
        match next_line(rest, max) {
            Framed::Incomplete => {
                assert!(rest.len() < max, "incomplete with {} bytes for a limit of {max}", rest.len());
                assert!(!rest.contains(&b'\n'), "incomplete, yet an LF is buffered");
                return;
            }
            Framed::Line { len, consumed } => {
                assert_eq!(consumed, len + 2);
                assert!(consumed <= max, "a {consumed}-byte line passed a limit of {max}");
                assert_eq!(&rest[len..consumed], b"\r\n");
                let line = &rest[..len];
                assert!(!line.contains(&b'\r') && !line.contains(&b'\n'), "a line with a CR or LF: {line:?}");
                rest = &rest[consumed..];
            }
            Framed::Bad { error, consumed, line_ended } => {
                assert!(consumed > 0 && consumed <= rest.len(), "bad line consumed {consumed} of {}", rest.len());
                assert_eq!(line_ended, rest[consumed - 1] == b'\n', "line_ended disagrees with the bytes");
                if line_ended {
                    assert!(!rest[..consumed - 1].contains(&b'\n'), "a bad line ran past an LF");
                }
                match error {
                    LineError::TooLong => assert!(consumed >= max.min(rest.len())),
                    LineError::BareLf => assert!(consumed == 1 || rest[consumed - 2] != b'\r'),
                    LineError::BareCr => assert!(rest[..consumed - 2].contains(&b'\r')),
                }
                rest = &rest[consumed..];
            }
        }
    }
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 6 {
        return;
    }
    let max = 1 + usize::from(u16::from_le_bytes([input[0], input[1]]) % 1024);
    let sizes: Vec<usize> = input[2..6]
        .iter()
        .map(|&b| if b < 0x80 { 1 + usize::from(b % 16) } else { 1 + usize::from(b & 0x7f) * 4 })
        .collect();
    let stream = &input[6..];

    let expected = reference(stream);
    let whole = run(std::iter::once(stream));
    assert_eq!(whole, expected, "whole stream");
    assert_eq!(run(stream.chunks(1)), expected, "one byte at a time");
    let mut rest = stream;
    let chunks = sizes.iter().cycle().map_while(move |&size| {
        if rest.is_empty() {
            return None;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        Some(chunk)
    });
    assert_eq!(run(chunks), expected, "chunks of {sizes:?}");
    if let (Some(end), _, _) = expected {
        assert!(stream[..end].ends_with(b".\r\n") && (end == 3 || stream[..end - 3].ends_with(b"\r\n")));
    }

    check_lines(stream, max);
});
