//! Accepting the host's connections and serving HTTP/1.1 on them, until a shutdown signal; then
//! the in-flight requests finish before [`serve`] returns.
//!
//! This is what `axum::serve` does, with one difference: each connection's task is wrapped in
//! [`InlineWake`], which saves a scheduler round trip on every invocation (see that module).

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tower::Service as _;

use crate::inline_wake::InlineWake;
use crate::server::CustomHandler;

/// Serves `handler` on every connection `listener` accepts until `shutdown` completes; then stops
/// accepting, lets each connection finish the request it is serving, and returns once all are closed.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    handler: CustomHandler,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let handler = handler.clone();
        let service =
            hyper::service::service_fn(move |req: hyper::Request<Incoming>| handler.clone().call(req.map(Body::new)));
        let connection = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(InlineWake::new(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection closed with an error: {e}");
            }
        }));
    }
    drop(listener);
    graceful.shutdown().await;
}

/// After a failed `accept`: a connection that was reset before it was taken is skipped; anything
/// else (e.g. out of file descriptors) is logged, and accepting resumes after a second.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        return;
    }
    tracing::error!("cannot accept a connection: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
