//! Session answers that are ready at once go out whole.
//!
//! rmcp answers every POST of a handshake-era session (2025-11-25) with an
//! event stream: a priming event, then the answer, then the end, in
//! separate writes. A proxy built on Go's `net/http` (Traefik, Caddy)
//! sometimes closes its upstream connection just after forwarding a POST's
//! body (golang/go#40747); what the gateway had written by then reaches the
//! client and the rest is lost, the answer included. So an answer whose
//! stream ends within a moment is sent as one body of known length, in one
//! write, which such a cut cannot reach. A stream still open after that
//! moment (a Codex run, progress) goes out as a stream, nothing held back.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::Response;
use futures::StreamExt;

/// How long an answer may take to be sent whole; longer ones stream.
pub const WHOLE_WITHIN: Duration = Duration::from_millis(1000);
/// The largest answer held back to be sent whole.
pub const WHOLE_AT_MOST: usize = 4 << 20;

/// `resp` with its body read whole if the body ends within `within` and
/// `at_most` bytes; otherwise the same stream, what was read first.
/// Dropping the future drops the body, as dropping the response would.
pub async fn whole_if_quick(resp: Response, within: Duration, at_most: usize) -> Response {
    let (mut parts, body) = resp.into_parts();
    let mut stream = body.into_data_stream();
    let mut read: Vec<Bytes> = Vec::new();
    let mut len = 0;
    let deadline = tokio::time::Instant::now() + within;
    let mut failed = None;
    while len <= at_most {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => {
                len += chunk.len();
                read.push(chunk);
            }
            Ok(None) => {
                parts.headers.remove(header::TRANSFER_ENCODING);
                parts.headers.remove(header::CONTENT_LENGTH);
                return Response::from_parts(parts, Body::from(read.concat()));
            }
            Ok(Some(Err(e))) => {
                failed = Some(e);
                break;
            }
            Err(_still_open) => break,
        }
    }
    // The stream as it is: what was read, then its error or the rest.
    let head = futures::stream::iter(read.into_iter().map(Ok).chain(failed.map(Err)));
    Response::from_parts(parts, Body::from_stream(head.chain(stream)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    fn streamed(chunks: Vec<(u64, &'static str)>) -> Response {
        let stream = futures::stream::iter(chunks).then(|(ms, s)| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, std::io::Error>(Bytes::from_static(s.as_bytes()))
        });
        Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .body(Body::from_stream(stream))
            .unwrap()
    }

    async fn text(resp: Response) -> String {
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_stream_that_ends_at_once_becomes_one_body_of_known_length() {
        let resp = streamed(vec![(0, "data: \n\n"), (5, "data: {}\n\n")]);
        let resp = whole_if_quick(resp, WHOLE_WITHIN, WHOLE_AT_MOST).await;
        assert_eq!(resp.body().size_hint().exact(), Some(18));
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
        assert_eq!(text(resp).await, "data: \n\ndata: {}\n\n");
    }

    #[tokio::test]
    async fn a_stream_still_open_streams_with_nothing_lost() {
        let resp = streamed(vec![(0, "a"), (300, "b"), (10, "c")]);
        let resp = whole_if_quick(resp, Duration::from_millis(100), WHOLE_AT_MOST).await;
        assert_eq!(resp.body().size_hint().exact(), None);
        assert_eq!(text(resp).await, "abc");
    }

    #[tokio::test]
    async fn a_large_answer_streams() {
        let resp = streamed(vec![(0, "0123456789"), (0, "abc")]);
        let resp = whole_if_quick(resp, WHOLE_WITHIN, 8).await;
        assert_eq!(resp.body().size_hint().exact(), None);
        assert_eq!(text(resp).await, "0123456789abc");
    }

    #[tokio::test]
    async fn an_error_is_passed_on_after_what_came_before() {
        let stream = futures::stream::iter([
            Ok(Bytes::from_static(b"data: \n\n")),
            Err(std::io::Error::other("the handler failed")),
        ]);
        let resp = Response::new(Body::from_stream(stream));
        let mut body = whole_if_quick(resp, WHOLE_WITHIN, WHOLE_AT_MOST)
            .await
            .into_body()
            .into_data_stream();
        assert_eq!(body.next().await.unwrap().unwrap(), "data: \n\n");
        let error = body.next().await.unwrap().unwrap_err();
        assert!(error.to_string().contains("the handler failed"), "{error}");
    }
}
