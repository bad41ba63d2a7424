//! The HTTP status endpoint: `/metrics` (OpenMetrics or Prometheus' classic
//! text format, as the `Accept` header asks) and `/healthz` (200 when every
//! upstream MTA greets, 503 otherwise).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::metrics::{Format, Metrics};

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How to check one upstream MTA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub target: String,
    /// Send a PROXY v2 LOCAL header first (the MTA expects one).
    pub proxy_v2: bool,
    /// The greeting comes inside TLS: a TCP connect is all that is checked.
    pub implicit_tls: bool,
}

/// Serves until `stop` turns true. `upstreams` follows reloads.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    upstreams: watch::Receiver<Vec<Probe>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let socket = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let (metrics, upstreams) = (Arc::clone(&metrics), upstreams.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let (metrics, upstreams) = (Arc::clone(&metrics), upstreams.clone());
                async move { Ok::<_, Infallible>(respond(request, &metrics, upstreams).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(socket), service);
            let _ = tokio::time::timeout(Duration::from_secs(60), connection).await;
        });
    }
}

async fn respond(
    request: Request<Incoming>,
    metrics: &Metrics,
    upstreams: watch::Receiver<Vec<Probe>>,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .expect("static response parts are valid")
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n".into());
    }
    match request.uri().path() {
        "/metrics" => {
            let accept = request.headers().get(hyper::header::ACCEPT).and_then(|value| value.to_str().ok());
            let format = Format::negotiate(accept);
            let mut response = reply(StatusCode::OK, format.content_type(), metrics.encode_as(format));
            response.headers_mut().insert(hyper::header::VARY, hyper::header::HeaderValue::from_static("accept"));
            response
        }
        "/healthz" => {
            let targets = upstreams.borrow().clone();
            let mut lines = String::new();
            let mut healthy = true;
            for target in targets {
                match probe(&target).await {
                    Ok(()) => lines.push_str(&format!("upstream {}: ok\n", target.target)),
                    Err(problem) => {
                        healthy = false;
                        lines.push_str(&format!("upstream {}: {problem}\n", target.target));
                    }
                }
            }
            let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            reply(status, "text/plain", lines)
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "try /metrics or /healthz\n".into()),
    }
}

/// Connects to an upstream and waits for its 220 greeting.
async fn probe(probe: &Probe) -> Result<(), String> {
    let attempt = async {
        let mut socket = TcpStream::connect(&probe.target).await.map_err(|e| format!("cannot connect: {e}"))?;
        if probe.implicit_tls {
            return Ok(());
        }
        if probe.proxy_v2 {
            // A LOCAL command: a health check, not a relayed client.
            const LOCAL: [u8; 16] =
                [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x20, 0x00, 0, 0];
            socket.write_all(&LOCAL).await.map_err(|e| format!("cannot write: {e}"))?;
        }
        let mut greeting = [0u8; 512];
        let count = socket.read(&mut greeting).await.map_err(|e| format!("no greeting: {e}"))?;
        let _ = socket.write_all(b"QUIT\r\n").await;
        if greeting[..count].starts_with(b"220") {
            Ok(())
        } else {
            Err(format!("greeted with {:?}", String::from_utf8_lossy(&greeting[..count.min(60)]).trim()))
        }
    };
    tokio::time::timeout(PROBE_TIMEOUT, attempt).await.unwrap_or_else(|_| Err("timed out".into()))
}

/// Binds the status endpoint's socket (at startup, so errors stop the start).
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}
