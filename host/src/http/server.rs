//! The HTTP/1.1 server under the router, with the bounds a public endpoint needs: a client has
//! [`HEADER_TIMEOUT`] to send a request's headers (idle keep-alive connections included) and
//! [`BODY_TIMEOUT`] to send its body, and at most [`MAX_CONNECTIONS`] connections are open at once (further
//! ones wait in the kernel's backlog). A slow or idle client thus holds a connection, and its memory, for
//! seconds, not forever. The answers hyper gives by itself to what is not HTTP it accepts (a URI over 64 KiB,
//! headers over its buffer, a malformed request) carry the spec's error body like every other error.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
pub const MAX_CONNECTIONS: usize = 4096;
/// How long a graceful stop waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `stopped` turns true, then lets requests in flight finish.
pub async fn serve(listener: TcpListener, app: Router, mut stopped: watch::Receiver<bool>) {
    let app = app.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        BODY_TIMEOUT,
    ));
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            _ = stopped.wait_for(|stop| *stop) => break,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors, say: back off rather than spin.
                tracing::warn!(error = %err, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // The peer's address, for request logs.
        let with_peer = tower_http::add_extension::AddExtension::new(
            app.clone(),
            axum::extract::ConnectInfo(peer),
        );
        let service = TowerToHyperService::new(with_peer);
        let connection =
            graceful.watch(http.serve_connection(TokioIo::new(ErrorBodies::new(stream)), service));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            drop(slot);
        });
    }
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {DRAIN:?}; stopping anyway");
    }
}

/// A connection whose empty error answers from hyper itself get the spec's error body. hyper answers a
/// request it cannot parse with a bare status line, `connection: close` and `content-length: 0`, then closes;
/// such an answer is rewritten whole as it is written. Every answer of the router has a body, so none
/// is mistaken for one.
struct ErrorBodies<S> {
    inner: S,
    /// What remains to be written of a rewritten answer.
    pending: Vec<u8>,
}

impl<S> ErrorBodies<S> {
    fn new(inner: S) -> Self {
        ErrorBodies {
            inner,
            pending: Vec::new(),
        }
    }
}

/// The answer to write instead of `head` when it is one of hyper's bodiless error answers.
fn with_body(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head.get(..head.len().min(512))?).ok()?;
    let (status, code, message) = match text.get(..13)? {
        "HTTP/1.1 400 " => (400, "bad_request", "the request is not valid HTTP/1.1"),
        "HTTP/1.1 414 " => (
            414,
            "uri_too_long",
            "the request URI is longer than 65534 bytes",
        ),
        "HTTP/1.1 431 " => (
            431,
            "request_header_fields_too_large",
            "the request headers are too large",
        ),
        _ => return None,
    };
    let bare =
        text.contains("\r\ncontent-length: 0\r\n") && text.contains("\r\nconnection: close\r\n");
    if !bare {
        return None;
    }
    let reason = axum::http::StatusCode::from_u16(status)
        .ok()?
        .canonical_reason()
        .unwrap_or_default();
    let body = serde_json::to_string(&super::error::ErrorBody::new(code, message)).ok()?;
    Some(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<S: AsyncWrite + Unpin> ErrorBodies<S> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let written = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..written);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ErrorBodies<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ErrorBodies<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        match with_body(buf) {
            Some(answer) => {
                self.pending = answer;
                // The answer is taken whole; what is left of it goes out on the next write or flush.
                let _ = self.poll_pending(cx)?;
                Poll::Ready(Ok(buf.len()))
            }
            None => Pin::new(&mut self.inner).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        // hyper writes an answer's head as the first slice.
        match bufs.first().and_then(|head| with_body(head)) {
            Some(answer) => {
                self.pending = answer;
                let _ = self.poll_pending(cx)?;
                Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()))
            }
            None => Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
