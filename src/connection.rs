//! Framing over a socket: buffered reads of command lines and replies,
//! batched writes. Idle connections hold no read buffer, so ten thousand
//! idle sessions cost little memory.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use std::future::Future;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::deadline::Deadline;
use crate::smtp::line::{Framed, LineError, next_line};
use crate::smtp::reply::{Reply, ReplyError};

/// Read size: a command batch fits many times; message data streams in
/// few system calls.
const READ_CHUNK: usize = 8 * 1024;

/// A byte stream a session runs over: a TCP socket in production, an
/// in-memory pipe in the protocol tests, either wrapped in TLS.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Reads what is available into `buffer`; `Ok(0)` at end of stream.
    /// Cancel-safe.
    fn fill_buffer(&mut self, buffer: &mut BytesMut) -> impl Future<Output = io::Result<usize>> + Send {
        async move {
            buffer.reserve(READ_CHUNK);
            self.read_buf(buffer).await
        }
    }

    /// Whether ending the session needs a shutdown of its own (TLS's
    /// close_notify); a plain socket's close on drop sends the FIN.
    fn ends_with_shutdown(&self) -> bool {
        false
    }
}

impl Transport for TcpStream {
    /// Takes a read buffer only once the socket is readable, and gives an
    /// empty one back when the readiness was spurious, so an idle
    /// connection holds no read buffer at all.
    ///
    /// The read goes through `poll_read`, not `try_read_buf`: a read that
    /// fills less than the buffer shows that the socket is drained, and
    /// `poll_read` then forgets the readiness. With `try_read_buf` the next
    /// wait began with a read that found nothing, one wasted system call per
    /// command and reply.
    async fn fill_buffer(&mut self, buffer: &mut BytesMut) -> io::Result<usize> {
        loop {
            self.readable().await?;
            buffer.reserve(READ_CHUNK);
            let mut read = std::pin::pin!(self.read_buf(buffer));
            let attempt = std::future::poll_fn(|context| Poll::Ready(read.as_mut().poll(context))).await;
            if let Poll::Ready(result) = attempt {
                return result;
            }
            if buffer.is_empty() {
                *buffer = BytesMut::new();
            }
        }
    }
}

impl Transport for tokio::io::DuplexStream {}

/// A transport, plain or wrapped in TLS.
pub enum Stream<S> {
    Plain(S),
    ServerTls(Box<tokio_rustls::server::TlsStream<S>>),
    ClientTls(Box<tokio_rustls::client::TlsStream<S>>),
    /// Left behind while the transport is handed to a TLS handshake.
    Closed,
}

impl<S> Stream<S> {
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::ServerTls(_) | Stream::ClientTls(_))
    }
}

impl<S: Transport> AsyncRead for Stream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::ServerTls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::ClientTls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Closed => Poll::Ready(Ok(())),
        }
    }
}

impl<S: Transport> AsyncWrite for Stream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::ServerTls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::ClientTls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Closed => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::ServerTls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::ClientTls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Closed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::ServerTls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::ClientTls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Closed => Poll::Ready(Ok(())),
        }
    }
}

impl<S: Transport> Transport for Stream<S> {
    fn ends_with_shutdown(&self) -> bool {
        self.is_tls()
    }

    async fn fill_buffer(&mut self, buffer: &mut BytesMut) -> io::Result<usize> {
        match self {
            Stream::Plain(plain) => plain.fill_buffer(buffer).await,
            stream => {
                buffer.reserve(READ_CHUNK);
                stream.read_buf(buffer).await
            }
        }
    }
}

/// What came in where a command line was expected.
#[derive(Debug)]
pub enum Incoming {
    /// Copied out of the read buffer, which stays unshared and is reused.
    Line(Vec<u8>),
    Bad(LineError),
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("connection closed")]
    Closed,
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("unparsable reply: {0}")]
    Garbage(#[from] ReplyError),
}

pub struct Connection<S> {
    stream: S,
    input: BytesMut,
    output: Vec<u8>,
    /// Inside an over-long line: drop bytes up to the next LF.
    discarding_line: bool,
    /// A peer that stops reading cannot hold a write forever.
    write_timeout: Duration,
    /// Bounds each wait for the peer, with one timer for the connection.
    read_deadline: Deadline,
}

impl<S: Transport> Connection<S> {
    pub fn new(stream: S) -> Self {
        Connection {
            stream,
            input: BytesMut::new(),
            output: Vec::new(),
            discarding_line: false,
            write_timeout: Duration::from_secs(300),
            read_deadline: Deadline::new(),
        }
    }

    pub fn with_write_timeout(mut self, limit: Duration) -> Self {
        self.write_timeout = limit;
        self
    }

    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// Gives the stream back (for a TLS upgrade), with any bytes already read.
    pub fn into_parts(self) -> (S, BytesMut) {
        (self.stream, self.input)
    }

    /// Swaps the stream (for a TLS upgrade) and returns the old one.
    /// Whatever the peer sent ahead of the handshake is dropped: bytes
    /// pipelined after STARTTLS must never be read as if they came through
    /// TLS (CVE-2011-0411).
    pub fn replace_stream(&mut self, stream: S) -> S {
        self.input.clear();
        self.discarding_line = false;
        std::mem::replace(&mut self.stream, stream)
    }

    pub fn input(&self) -> &[u8] {
        &self.input
    }

    pub fn consume(&mut self, count: usize) {
        self.input.advance(count);
    }

    /// Drops whatever the peer sent ahead (bytes pipelined before a TLS handshake).
    pub fn discard_input(&mut self) {
        self.input.clear();
    }

    /// Reads more bytes; `Ok(0)` at end of stream. Cancel-safe.
    pub async fn fill(&mut self) -> io::Result<usize> {
        self.stream.fill_buffer(&mut self.input).await
    }

    /// Reads more bytes, waiting at most `limit`. Cancel-safe.
    pub async fn fill_within(&mut self, limit: Duration) -> Result<usize, ReadError> {
        self.read_deadline_in(limit);
        self.fill_before_deadline().await
    }

    /// Waits for the peer from now on end `limit` from now.
    pub fn read_deadline_in(&mut self, limit: Duration) {
        self.read_deadline.set_in(limit);
    }

    /// Reads more bytes before the deadline last set. Cancel-safe.
    pub async fn fill_before_deadline(&mut self) -> Result<usize, ReadError> {
        match self.read_deadline.within(self.stream.fill_buffer(&mut self.input)).await {
            None => Err(ReadError::Timeout),
            Some(Ok(0)) => Err(ReadError::Closed),
            Some(result) => Ok(result?),
        }
    }

    /// Frees the read buffer of an idle connection.
    pub fn release_idle_buffers(&mut self) {
        if self.input.is_empty() && self.input.capacity() > 0 {
            self.input = BytesMut::new();
        }
        if self.output.is_empty() && self.output.capacity() > 0 {
            self.output = Vec::new();
        }
    }

    /// The next command line from what is buffered, or `None` if incomplete.
    pub fn take_line(&mut self, max: usize) -> Option<Incoming> {
        loop {
            if self.discarding_line {
                let newline = memchr::memchr(b'\n', &self.input)?;
                self.input.advance(newline + 1);
                self.discarding_line = false;
                continue;
            }
            return match next_line(&self.input, max) {
                Framed::Incomplete => None,
                Framed::Line { len, consumed } => {
                    let line = self.input[..len].to_vec();
                    self.input.advance(consumed);
                    Some(Incoming::Line(line))
                }
                Framed::Bad { error, consumed, line_ended } => {
                    self.input.advance(consumed);
                    self.discarding_line = !line_ended;
                    Some(Incoming::Bad(error))
                }
            };
        }
    }

    /// A complete reply from what is buffered, reading more as needed.
    pub async fn read_reply(&mut self, limit: Duration) -> Result<Reply, ReadError> {
        self.read_deadline.set_in(limit);
        loop {
            if let Some(reply) = Reply::parse(&mut self.input)? {
                return Ok(reply);
            }
            self.fill_before_deadline().await?;
        }
    }

    pub fn queue(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
    }

    pub fn queue_reply(&mut self, reply: &Reply) {
        reply.write_to(&mut self.output);
    }

    pub fn has_queued_output(&self) -> bool {
        !self.output.is_empty()
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        let limit = self.write_timeout;
        let write = async {
            if !self.output.is_empty() {
                self.stream.write_all(&self.output).await?;
                self.output.clear();
            }
            self.stream.flush().await
        };
        tokio::time::timeout(limit, write).await.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
    }

    /// Writes bytes at once, bypassing the queue (DATA streaming).
    pub async fn write_now(&mut self, bytes: &[u8]) -> io::Result<()> {
        let limit = self.write_timeout;
        tokio::time::timeout(limit, self.stream.write_all(bytes))
            .await
            .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
    }

    /// Writes a command line and its CRLF in one write.
    pub async fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if line.ends_with(b"\r\n") {
            return self.write_now(line).await;
        }
        let mut buffer = Vec::with_capacity(line.len() + 2);
        buffer.extend_from_slice(line);
        buffer.extend_from_slice(b"\r\n");
        self.write_now(&buffer).await
    }

    pub fn has_unread_input(&self) -> bool {
        !self.input.is_empty()
    }

    /// Sends what is queued and ends the session: TLS says close_notify;
    /// a plain socket needs nothing more, its close on drop sends the FIN.
    pub async fn shutdown(&mut self) {
        let _ = self.flush().await;
        if self.stream.ends_with_shutdown() {
            let _ = self.stream.shutdown().await;
        }
    }
}
