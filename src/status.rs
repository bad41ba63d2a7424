//! The HTTP status endpoint: `/metrics` (Prometheus text format) and
//! `/healthz` (200 when every upstream MTA greets, 503 otherwise).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::health::HealthCheck;
pub use crate::health::Probe;
use crate::metrics::Metrics;

/// Serves until `stop` turns true. `upstreams` follows reloads.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    upstreams: watch::Receiver<Vec<Probe>>,
    mut stop: watch::Receiver<bool>,
) {
    let health = Arc::new(HealthCheck::default());
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
        let (metrics, upstreams, health) = (Arc::clone(&metrics), upstreams.clone(), Arc::clone(&health));
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let (metrics, upstreams, health) = (Arc::clone(&metrics), upstreams.clone(), Arc::clone(&health));
                async move { Ok::<_, Infallible>(respond(request, &metrics, upstreams, &health).await) }
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
    health: &HealthCheck,
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
        "/metrics" => reply(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", metrics.encode()),
        "/healthz" => {
            let targets = upstreams.borrow().clone();
            let mut report = health.report(&targets).await;
            // The ledger's line (cluster_metrics): failing writes make the host unhealthy.
            if let Some((healthy, line)) = metrics.cluster.ledger.health() {
                report.healthy &= healthy;
                report.text.push_str(&line);
            }
            let status = if report.healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            reply(status, "text/plain", report.text)
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "try /metrics or /healthz\n".into()),
    }
}

/// Binds the status endpoint's socket (at startup, so errors stop the start).
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}
