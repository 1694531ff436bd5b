//! A real HTTP/1.1 server (hyper) standing in for a Dapr app, for the tests that deliver
//! with `--app-url`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request as the app received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the app answers: an HTTP status, a body, and how long it takes first.
#[derive(Clone, Copy)]
pub struct Reply {
    pub status: u16,
    pub body: &'static str,
    pub delay: Duration,
}

pub fn reply(status: u16, body: &'static str) -> Reply {
    Reply {
        status,
        body,
        delay: Duration::ZERO,
    }
}

pub type Script = dyn Fn(&Received, usize) -> Reply + Send + Sync;

/// A real HTTP/1.1 server (hyper) standing in for a Dapr app: records requests, counts how
/// many are in flight at once, answers by `script(request, nth delivery of this body)`.
pub struct App {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    max_in_flight: Arc<AtomicUsize>,
    server: JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl App {
    pub async fn start(script: impl Fn(&Received, usize) -> Reply + Send + Sync + 'static) -> App {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        App::serve(listener, script)
    }

    pub fn serve(
        listener: TcpListener,
        script: impl Fn(&Received, usize) -> Reply + Send + Sync + 'static,
    ) -> App {
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let script: Arc<Script> = Arc::new(script);
        let server = {
            let received = received.clone();
            let max_in_flight = max_in_flight.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (received, in_flight, max_in_flight, script) = (
                        received.clone(),
                        in_flight.clone(),
                        max_in_flight.clone(),
                        script.clone(),
                    );
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (received, in_flight, max_in_flight, script) = (
                            received.clone(),
                            in_flight.clone(),
                            max_in_flight.clone(),
                            script.clone(),
                        );
                        async move {
                            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                            max_in_flight.fetch_max(now, Ordering::SeqCst);
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            let request = Received {
                                method: parts.method.to_string(),
                                path: parts.uri.path().to_string(),
                                headers: parts.headers,
                                body: String::from_utf8_lossy(&body).into_owned(),
                            };
                            let answer = {
                                let mut seen = received.lock().unwrap();
                                let nth = seen
                                    .iter()
                                    .filter(|r: &&Received| r.body == request.body)
                                    .count()
                                    + 1;
                                seen.push(request.clone());
                                script(&request, nth)
                            };
                            tokio::time::sleep(answer.delay).await;
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(StatusCode::from_u16(answer.status).unwrap())
                                    .body(Full::new(Bytes::from_static(answer.body.as_bytes())))
                                    .unwrap(),
                            )
                        }
                    });
                    tokio::spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        App {
            addr,
            received,
            max_in_flight,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// How many requests carried `body`.
    pub fn count_of(&self, body: &str) -> usize {
        self.received().iter().filter(|r| r.body == body).count()
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }
}
