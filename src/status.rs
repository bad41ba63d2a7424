//! The HTTP status endpoint: `/metrics` (OpenMetrics or Prometheus' classic
//! text format, as the `Accept` header asks), `/healthz` (200 when every
//! upstream MTA greets, 503 otherwise) and `/verdicts` (recent verdicts as
//! JSON, for `batv-proxy explain`).

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
use crate::metrics::{Format, Metrics};
use crate::verdicts::{Query, VerdictLog};

/// Serves until `stop` turns true. `upstreams` follows reloads.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    verdicts: Arc<VerdictLog>,
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
        let shared = Endpoints {
            metrics: Arc::clone(&metrics),
            verdicts: Arc::clone(&verdicts),
            upstreams: upstreams.clone(),
            health: Arc::clone(&health),
        };
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(respond(request, &shared).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(socket), service);
            let _ = tokio::time::timeout(Duration::from_secs(60), connection).await;
        });
    }
}

/// What the endpoint answers from.
#[derive(Clone)]
struct Endpoints {
    metrics: Arc<Metrics>,
    verdicts: Arc<VerdictLog>,
    upstreams: watch::Receiver<Vec<Probe>>,
    health: Arc<HealthCheck>,
}

async fn respond(request: Request<Incoming>, shared: &Endpoints) -> Response<Full<Bytes>> {
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
            let mut response = reply(StatusCode::OK, format.content_type(), shared.metrics.encode_as(format));
            response.headers_mut().insert(hyper::header::VARY, hyper::header::HeaderValue::from_static("accept"));
            response
        }
        "/healthz" => {
            let targets = shared.upstreams.borrow().clone();
            let mut report = shared.health.report(&targets).await;
            // The ledger's line (cluster_metrics): failing writes make the host unhealthy.
            if let Some((healthy, line)) = shared.metrics.cluster.ledger.health() {
                report.healthy &= healthy;
                report.text.push_str(&line);
            }
            let status = if report.healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            reply(status, "text/plain", report.text)
        }
        "/verdicts" => match Query::parse(request.uri().query().unwrap_or_default()) {
            Ok(query) => {
                let answer = serde_json::json!({
                    "kept": shared.verdicts.len(),
                    "verdicts": shared.verdicts.find(&query),
                });
                reply(StatusCode::OK, "application/json", format!("{answer}\n"))
            }
            Err(problem) => reply(StatusCode::BAD_REQUEST, "text/plain", format!("{problem}\n")),
        },
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "try /metrics, /healthz or /verdicts\n".into()),
    }
}

/// Binds the status endpoint's socket (at startup, so errors stop the start).
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}
