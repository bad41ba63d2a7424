//! `Reply::parse` on any bytes: never panics; `Ok(None)` leaves the buffer
//! untouched; a reply takes exactly its own bytes off the front, every
//! shorter prefix of them is `Ok(None)` (the reply does not depend on how
//! the upstream's bytes arrive), its wire form is CRLF lines of
//! `ddd-`/`ddd ` only, and `to_bytes` parses back to the same reply with
//! nothing left over.

#![no_main]

use batv_proxy::smtp::reply::Reply;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

/// Checks that `wire` is what the proxy may relay: CRLF-terminated lines,
/// each `ddd-` or `ddd ` with the same code, only the last one `ddd `.
fn assert_canonical(wire: &[u8], code: u16) {
    let digits = format!("{code:03}");
    let body = wire.strip_suffix(b"\r\n").expect("a reply ends with CRLF");
    let lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    for (index, line) in lines.iter().enumerate() {
        let line = if index + 1 < lines.len() { line.strip_suffix(b"\r").expect("CRLF between lines") } else { line };
        assert!(!line.contains(&b'\r'), "a bare CR in a reply line: {:?}", String::from_utf8_lossy(wire));
        assert!(line.starts_with(digits.as_bytes()), "a line without the code: {:?}", String::from_utf8_lossy(wire));
        let mark = if index + 1 == lines.len() { b' ' } else { b'-' };
        assert_eq!(line.get(3), Some(&mark), "wrong continuation mark: {:?}", String::from_utf8_lossy(wire));
    }
}

fuzz_target!(|input: &[u8]| {
    let mut buffer = BytesMut::from(input);
    let result = Reply::parse(&mut buffer);
    let reply = match result {
        Ok(None) => {
            assert_eq!(&buffer[..], input, "Ok(None) consumed bytes");
            return;
        }
        Err(_) => return,
        Ok(Some(reply)) => reply,
    };
    let consumed = input.len() - buffer.len();
    assert!(consumed > 0, "a reply from no bytes");
    assert_eq!(&buffer[..], &input[consumed..], "the bytes after the reply changed");
    assert!(input[..consumed].ends_with(b"\n"), "a reply that does not end at a line end");
    assert!((200..600).contains(&reply.code()));
    assert_eq!(input[..3], *format!("{:03}", reply.code()).as_bytes(), "the code is not the first line's");

    // Bytes arriving in pieces: no prefix of the reply is a reply yet.
    let step = (consumed / 64).max(1);
    for cut in (0..consumed).step_by(step).chain([consumed - 1]) {
        let mut prefix = BytesMut::from(&input[..cut]);
        match Reply::parse(&mut prefix) {
            Ok(None) => assert_eq!(&prefix[..], &input[..cut], "Ok(None) consumed bytes of a prefix"),
            other => panic!("the prefix of {cut} bytes of a {consumed}-byte reply gave {other:?}"),
        }
    }

    let wire = reply.to_bytes();
    assert_canonical(&wire, reply.code());
    let mut encoded = BytesMut::from(&wire[..]);
    let again = Reply::parse(&mut encoded).expect("a re-encoded reply parses").expect("a re-encoded reply is complete");
    assert_eq!(again, reply, "re-encoded as {:?}", String::from_utf8_lossy(&wire));
    assert!(encoded.is_empty(), "bytes left after a re-encoded reply");
    assert_eq!(again.lines(), reply.lines());
});
