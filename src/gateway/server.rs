//! The HTTP listener. A client that opens connections and never finishes a
//! request must not starve the others: request headers must arrive within a
//! deadline, silent connections are closed, and the number of connections
//! is capped below the process's file limit. At the cap the oldest
//! connection that is not serving a request makes room, so `/health` and
//! real clients keep getting in while an attacker holds half-sent requests.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use http_body::Frame;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// File descriptors kept for everything but client connections: runs'
/// pipes, state files, the kube client.
const RESERVED_FDS: u64 = 128;

/// What a connection may hold.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl ConnLimits {
    /// Raises the soft file limit to the hard one and keeps the connection
    /// cap below it, so accepting never fails for want of descriptors.
    pub fn fit_to_file_limit(mut self) -> Self {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
            return self;
        };
        let soft = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
            hard
        } else {
            soft
        };
        let fit = usize::try_from(soft.saturating_sub(RESERVED_FDS).max(16)).unwrap_or(usize::MAX);
        if fit < self.max_connections {
            tracing::warn!(
                file_limit = soft,
                max_connections = fit,
                "lowering the connection cap to fit the open-file limit (raise it with ulimit -n)"
            );
            self.max_connections = fit;
        }
        self
    }
}

/// One connection as the cap sees it.
struct Slot {
    opened: Instant,
    in_flight: Arc<AtomicUsize>,
    evict: CancellationToken,
    /// Cancelled once the connection's socket is closed.
    closed: CancellationToken,
}

/// What a newly admitted connection holds, and the connection evicted
/// for it (closed once that token is cancelled).
struct Admitted {
    in_flight: Arc<AtomicUsize>,
    evict: CancellationToken,
    closed: CancellationToken,
    victim_closed: Option<CancellationToken>,
}

#[derive(Default, Clone)]
struct Connections(Arc<Mutex<HashMap<u64, Slot>>>);

impl Connections {
    /// Registers a new connection, evicting the oldest one that is serving
    /// nothing if at `cap`; `None` if every connection is busy.
    fn admit(&self, id: u64, cap: usize) -> Option<Admitted> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut victim_closed = None;
        if map.len() >= cap {
            let victim = map
                .iter()
                .filter(|(_, s)| s.in_flight.load(Ordering::Relaxed) == 0)
                .min_by_key(|(_, s)| s.opened)
                .map(|(id, _)| *id)?;
            if let Some(slot) = map.remove(&victim) {
                slot.evict.cancel();
                victim_closed = Some(slot.closed);
            }
        }
        let slot = Slot {
            opened: Instant::now(),
            in_flight: Arc::default(),
            evict: CancellationToken::new(),
            closed: CancellationToken::new(),
        };
        let admitted = Admitted {
            in_flight: slot.in_flight.clone(),
            evict: slot.evict.clone(),
            closed: slot.closed.clone(),
            victim_closed,
        };
        map.insert(id, slot);
        Some(admitted)
    }

    fn remove(&self, id: u64) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets open
/// connections finish for a few seconds.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let tracker = TaskTracker::new();
    let connections = Connections::default();
    let stop = CancellationToken::new();
    let mut next_id: u64 = 0;
    let mut refused_logged = Instant::now() - Duration::from_secs(60);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = &mut shutdown => break,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of descriptors or a connection reset before accept:
                // wait a moment rather than spin, and keep listening.
                if refused_logged.elapsed() > Duration::from_secs(5) {
                    tracing::warn!(%error, "accepting a connection failed");
                    refused_logged = Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        next_id += 1;
        let Some(admitted) = connections.admit(next_id, limits.max_connections) else {
            if refused_logged.elapsed() > Duration::from_secs(5) {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "connection cap reached with every connection busy: refusing new ones"
                );
                refused_logged = Instant::now();
            }
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let conn = Conn {
            id: next_id,
            tcp,
            peer,
            in_flight: admitted.in_flight,
            evict: admitted.evict,
            closed: admitted.closed,
            stop: stop.clone(),
            connections: connections.clone(),
        };
        tracker.spawn(conn.serve(app.clone(), limits));
        if let Some(victim) = admitted.victim_closed {
            // Accept no more until the evicted connection's descriptor is
            // given back: under a flood of new connections (and a busy
            // machine) evictions could otherwise outrun the closes and
            // exhaust the descriptors the cap was sized to.
            let _ = tokio::time::timeout(Duration::from_secs(1), victim.cancelled()).await;
        }
    }
    stop.cancel();
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
}

struct Conn {
    id: u64,
    tcp: TcpStream,
    peer: SocketAddr,
    in_flight: Arc<AtomicUsize>,
    evict: CancellationToken,
    closed: CancellationToken,
    stop: CancellationToken,
    connections: Connections,
}

impl Conn {
    async fn serve(self, app: Router, limits: ConnLimits) {
        // Declared first, so dropped last: after the socket.
        let _closed = self.closed.clone().drop_guard();
        let epoch = Instant::now();
        let last_io = Arc::new(AtomicU64::new(0));
        let io = TokioIo::new(Watched {
            inner: self.tcp,
            epoch,
            last_io: last_io.clone(),
        });
        let peer = self.peer;
        let in_flight = self.in_flight.clone();
        let service =
            hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                let busy = InFlight::new(in_flight.clone());
                let app = app.clone();
                async move {
                    let resp = app
                        .oneshot(req.map(Body::new))
                        .await
                        .unwrap_or_else(|never: Infallible| match never {});
                    Ok::<_, Infallible>(resp.map(|inner| Tracked { inner, _busy: busy }))
                }
            });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        let mut tick = tokio::time::interval(limits.idle_timeout.min(Duration::from_secs(5)));
        let mut stopping = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                    break;
                }
                () = self.evict.cancelled() => {
                    tracing::debug!("closing an idle connection to admit a new one");
                    break;
                }
                () = self.stop.cancelled(), if !stopping => {
                    conn.as_mut().graceful_shutdown();
                    stopping = true;
                }
                _ = tick.tick() => {
                    let idle = epoch.elapsed().saturating_sub(Duration::from_millis(last_io.load(Ordering::Relaxed)));
                    if idle >= limits.idle_timeout {
                        tracing::debug!(idle_seconds = idle.as_secs(), "closing a silent connection");
                        break;
                    }
                }
            }
        }
        self.connections.remove(self.id);
    }
}

/// Counts a request as in flight until its response body is done.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(counter: Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request counted while it streams.
struct Tracked {
    inner: Body,
    _busy: InFlight,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A socket that notes when bytes last moved, for the idle timeout.
struct Watched {
    inner: TcpStream,
    epoch: Instant,
    last_io: Arc<AtomicU64>,
}

impl Watched {
    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_io.store(ms, Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.touch();
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_evicts_the_oldest_idle_connection_only() {
        let conns = Connections::default();
        let first = conns.admit(1, 2).unwrap();
        first.in_flight.fetch_add(1, Ordering::Relaxed);
        let second = conns.admit(2, 2).unwrap();
        assert!(first.victim_closed.is_none() && second.victim_closed.is_none());
        let third = conns.admit(3, 2).unwrap();
        assert!(second.evict.is_cancelled(), "the idle connection made room");
        assert!(!third.evict.is_cancelled());
        // The one to wait for before accepting more is the evicted one.
        second.closed.cancel();
        assert!(third.victim_closed.as_ref().unwrap().is_cancelled());
        third.in_flight.fetch_add(1, Ordering::Relaxed);
        assert!(conns.admit(4, 2).is_none(), "every connection is busy");
        first.in_flight.fetch_sub(1, Ordering::Relaxed);
        assert!(conns.admit(5, 2).is_some(), "the first one went idle");
    }
}
