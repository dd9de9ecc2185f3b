//! Resuming a streamable-HTTP event stream (`GET` with `Last-Event-ID`).
//!
//! rmcp 3.11's session store replays its cache from the event whose id the
//! client sent, not from the one after it, so a resuming client received
//! the last event it had already seen a second time. Until rmcp resumes
//! after the id, the id is advanced here by one: rmcp's event ids are
//! `INDEX` or `INDEX/STREAM`, and the event after `I/S` is `I+1/S`.

use axum::extract::Request;
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;

const LAST_EVENT_ID: &str = "last-event-id";

/// The id of the event after `id`, if `id` is one of rmcp's.
pub fn next_event_id(id: &str) -> Option<String> {
    let (index, stream) = match id.split_once('/') {
        Some((index, stream)) => (index, Some(stream)),
        None => (id, None),
    };
    let next = index.parse::<u64>().ok()?.checked_add(1)?;
    Some(match stream {
        Some(stream) => format!("{next}/{stream}"),
        None => next.to_string(),
    })
}

/// Middleware: makes a resuming `GET` start after the event it names.
pub async fn resume_after_last_event(mut req: Request, next: Next) -> Response {
    if req.method() == Method::GET {
        let next_id = req
            .headers()
            .get(LAST_EVENT_ID)
            .and_then(|v| v.to_str().ok())
            .and_then(next_event_id)
            .and_then(|id| HeaderValue::from_str(&id).ok());
        if let Some(id) = next_id {
            req.headers_mut().insert(LAST_EVENT_ID, id);
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_event_keeps_its_stream() {
        assert_eq!(next_event_id("1/0").as_deref(), Some("2/0"));
        assert_eq!(next_event_id("41/7").as_deref(), Some("42/7"));
        assert_eq!(next_event_id("9").as_deref(), Some("10"));
        assert_eq!(next_event_id("x/0"), None);
        assert_eq!(next_event_id(""), None);
        assert_eq!(next_event_id(&u64::MAX.to_string()), None);
    }
}
