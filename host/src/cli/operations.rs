//! `--metrics ADDR`: what an operator scrapes and probes, on one HTTP port. `/metrics` is
//! the Prometheus text exposition of what the library records (`jetstream_pubsub_host::metrics`);
//! `/healthz` answers 200 while the process serves; `/readyz` answers 200 while every NATS
//! connection is up and every subscription pumping, 503 with the reason otherwise.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use jetstream_pubsub_host::Runtime;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::Failure;

/// The `--metrics` flag of the long-running commands.
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct MetricsArgs {
    /// Serves Prometheus metrics at http://ADDR/metrics, with /healthz and /readyz
    /// (for example 127.0.0.1:9464; port 0 takes a free port). The address is printed on
    /// stderr once listening.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
}

/// Histogram buckets of every duration, in seconds: from half a millisecond (a publish
/// round trip on one machine) to ten seconds (a slow handler).
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often the recorder's histograms are compacted (the exporter's upkeep).
const UPKEEP: Duration = Duration::from_secs(5);

/// The installed recorder, waiting for the runtime whose readiness `/readyz` reports.
pub(crate) struct Recorder {
    address: SocketAddr,
    handle: PrometheusHandle,
}

impl MetricsArgs {
    /// Installs the Prometheus recorder, when `--metrics` is given. Call it before the
    /// runtime is built: what the library resolves before a recorder exists records
    /// nothing.
    pub(crate) fn install(&self) -> Result<Option<Recorder>, Failure> {
        let Some(address) = self.metrics else {
            return Ok(None);
        };
        let handle = PrometheusBuilder::new()
            .set_buckets(&DURATION_BUCKETS)
            .and_then(PrometheusBuilder::install_recorder)
            .map_err(|err| Failure::Failed(format!("cannot set up the metrics: {err}")))?;
        jetstream_pubsub_host::metrics::describe();
        Ok(Some(Recorder { address, handle }))
    }
}

impl Recorder {
    /// Listens on the `--metrics` address and serves until the process ends; prints the
    /// address it listens on.
    pub(crate) async fn serve(self, runtime: Runtime) -> Result<SocketAddr, Failure> {
        let listener = tokio::net::TcpListener::bind(self.address)
            .await
            .map_err(|err| Failure::Failed(format!("cannot listen on {}: {err}", self.address)))?;
        let address = listener.local_addr()?;
        eprintln!("metrics: serving /metrics, /healthz and /readyz on http://{address}");
        let upkeep = self.handle.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(UPKEEP);
            loop {
                ticks.tick().await;
                upkeep.run_upkeep();
            }
        });
        let handle = self.handle;
        tokio::spawn(async move {
            loop {
                let (stream, _) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot accept a metrics connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (handle, runtime) = (handle.clone(), runtime.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let response = answer(&request, &handle, &runtime);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Ok(address)
    }
}

/// The answer to one request.
fn answer(
    request: &Request<hyper::body::Incoming>,
    handle: &PrometheusHandle,
    runtime: &Runtime,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
    }
    match request.uri().path() {
        "/metrics" => {
            let mut response = text(StatusCode::OK, handle.render());
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => match runtime.readiness() {
            Ok(()) => text(StatusCode::OK, "ready\n".into()),
            Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: /metrics, /healthz and /readyz are served here\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
