//! Bounce and auto-reply recognition, and the original message's
//! Message-ID. Pure: bytes in, a verdict out.

/// What kind of automatic message this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dsn,
    AutoReply,
    None,
}
