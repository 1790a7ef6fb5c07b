//! A fault-injecting HTTP proxy in front of a test's Azurite, on free loopback ports (one per
//! service), for the everyday faults of cloud storage. While faults are on, each request has, in
//! equal shares of `percent` each:
//!
//! - `503 ServerBusy`, not forwarded;
//! - `500 InternalError`, not forwarded;
//! - forwarded, then the connection dropped before the answer (the request took effect, its answer
//!   is lost);
//! - 0.5 to 2 s of added latency, then forwarded.
//!
//! Every request is forwarded as it came (headers included, so Shared Key signatures still hold).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use super::azurite::Azurite;

/// What the proxy did, by kind.
#[derive(Debug, Default)]
pub struct Counts {
    pub forwarded: AtomicUsize,
    pub busy: AtomicUsize,
    pub internal: AtomicUsize,
    pub dropped: AtomicUsize,
    pub delayed: AtomicUsize,
}

/// Requests refused with 503 whatever the fault setting: (method, a part of the path, how many more).
type Refusals = Arc<std::sync::Mutex<Vec<(String, String, usize)>>>;

struct State {
    target: u16,
    refusals: Refusals,
    percent: u32,
    enabled: Arc<AtomicBool>,
    counts: Arc<Counts>,
    http: reqwest::Client,
}

pub struct FaultProxy {
    refusals: Refusals,
    pub blob_port: u16,
    pub queue_port: u16,
    pub table_port: u16,
    enabled: Arc<AtomicBool>,
    pub counts: Arc<Counts>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl FaultProxy {
    /// A proxy for `azurite`, faults on, each kind at `percent` percent of requests.
    pub async fn start(azurite: &Azurite, percent: u32) -> FaultProxy {
        let enabled = Arc::new(AtomicBool::new(true));
        let counts = Arc::new(Counts::default());
        let refusals = Refusals::default();
        let mut ports = Vec::new();
        let mut tasks = Vec::new();
        for target in [azurite.blob_port, azurite.queue_port, azurite.table_port] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            ports.push(listener.local_addr().unwrap().port());
            let state = Arc::new(State {
                target,
                refusals: refusals.clone(),
                percent,
                enabled: enabled.clone(),
                counts: counts.clone(),
                http: reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap(),
            });
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((socket, _)) = listener.accept().await else { continue };
                    let state = state.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(socket), service)
                            .await;
                    });
                }
            }));
        }
        FaultProxy { refusals, blob_port: ports[0], queue_port: ports[1], table_port: ports[2], enabled, counts, tasks }
    }

    /// Answers the next `times` requests with `method` whose path contains `path_part` with 503,
    /// without forwarding them.
    pub fn refuse(&self, method: &str, path_part: &str, times: usize) {
        self.refusals.lock().unwrap().push((method.to_owned(), path_part.to_owned(), times));
    }

    /// Forgets every refusal still pending.
    pub fn stop_refusing(&self) {
        self.refusals.lock().unwrap().clear();
    }

    /// Turns the faults on or off (requests are forwarded either way).
    pub fn set_faults(&self, on: bool) {
        self.enabled.store(on, Ordering::SeqCst);
    }

    /// The connection string that goes through the proxy.
    pub fn connection_string(&self) -> String {
        super::azurite::connection_string([self.blob_port, self.queue_port, self.table_port])
    }

    /// What was injected, as one line.
    pub fn summary(&self) -> String {
        let c = &self.counts;
        format!(
            "forwarded {}, 503 {}, 500 {}, answer dropped {}, delayed {}",
            c.forwarded.load(Ordering::Relaxed),
            c.busy.load(Ordering::Relaxed),
            c.internal.load(Ordering::Relaxed),
            c.dropped.load(Ordering::Relaxed),
            c.delayed.load(Ordering::Relaxed)
        )
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A number in 0..100 from the OS's randomness (through a v4 UUID).
fn roll() -> u32 {
    let b = uuid::Uuid::new_v4();
    let b = b.as_bytes();
    u32::from(u16::from_le_bytes([b[0], b[1]])) % 100
}

fn error(status: u16, code: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("x-ms-error-code", code)
        .header("content-type", "application/xml")
        .body(Full::new(Bytes::from(format!(
            "<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>injected</Message></Error>"
        ))))
        .unwrap()
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let refused = {
        let mut refusals = state.refusals.lock().unwrap();
        let rule = refusals.iter_mut().find(|(m, part, left)| {
            *left > 0 && req.method().as_str() == m && req.uri().path().contains(part.as_str())
        });
        rule.map(|(_, _, left)| *left -= 1).is_some()
    };
    if refused {
        state.counts.busy.fetch_add(1, Ordering::Relaxed);
        return Ok(error(503, "ServerBusy"));
    }
    let fault = if state.enabled.load(Ordering::SeqCst) { roll() / state.percent.max(1) } else { u32::MAX };
    match fault {
        0 => {
            state.counts.busy.fetch_add(1, Ordering::Relaxed);
            return Ok(error(503, "ServerBusy"));
        }
        1 => {
            state.counts.internal.fetch_add(1, Ordering::Relaxed);
            return Ok(error(500, "InternalError"));
        }
        3 => {
            state.counts.delayed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(500 + u64::from(roll()) * 15)).await;
        }
        _ => {}
    }
    let answer = forward(&state, req).await;
    state.counts.forwarded.fetch_add(1, Ordering::Relaxed);
    if fault == 2 {
        // The request took effect; its answer never arrives (hyper closes the connection when the
        // service fails).
        state.counts.dropped.fetch_add(1, Ordering::Relaxed);
        return Err(std::io::Error::other("answer dropped by the fault proxy"));
    }
    Ok(answer)
}

async fn forward(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut out = state.http.request(parts.method.clone(), format!("http://127.0.0.1:{}{path}", state.target));
    for (name, value) in &parts.headers {
        if !matches!(name.as_str(), "host" | "content-length" | "connection" | "transfer-encoding") {
            out = out.header(name, value);
        }
    }
    let res = match out.body(body).send().await {
        Ok(res) => res,
        Err(e) => return error(502, &format!("ProxyError{}", e.is_connect() as u8)),
    };
    let mut answer = Response::builder().status(res.status().as_u16());
    for (name, value) in res.headers() {
        if !matches!(name.as_str(), "content-length" | "connection" | "transfer-encoding") {
            answer = answer.header(name, value);
        }
    }
    let bytes = res.bytes().await.unwrap_or_default();
    answer.body(Full::new(bytes)).unwrap()
}
