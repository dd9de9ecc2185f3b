//! The HTTP side: which reply answers a request, and how it is streamed
//! (with the pauses that give replies their timing).

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::reply::{deltas, Reply};
use super::{
    RecordedRequest, Shared, CACHED_INPUT_TOKENS, INPUT_TOKENS, OUTPUT_TOKENS,
    REASONING_OUTPUT_TOKENS,
};

pub(super) async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body_json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (k.as_str().to_string(), value)
        })
        .collect();
    let is_model_call = parts.method == "POST" && parts.uri.path().ends_with("/responses");
    let expired = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| super::super::fake_auth::jwt_expired(v.trim_start_matches("Bearer ")));
    shared.log.lock().unwrap().push(RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        headers,
        body: body_json,
    });
    shared.arrived.notify_waiters();
    if !is_model_call {
        return (StatusCode::NOT_FOUND, "not served by the fake model").into_response();
    }
    if expired && shared.reject_expired.load(Ordering::Relaxed) {
        let body =
            json!({"error": {"message": "the access token has expired", "code": "token_expired"}});
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
    }
    let mut reply = next_reply(&shared, &text);
    while let Reply::Delayed(pause, inner) = reply {
        let now = shared.holding.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_holding.fetch_max(now, Ordering::SeqCst);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shared.stop.cancelled() => {}
        }
        shared.holding.fetch_sub(1, Ordering::SeqCst);
        reply = *inner;
    }
    respond(&shared, reply)
}

fn next_reply(shared: &Shared, body: &str) -> Reply {
    let mut script = shared.script.lock().unwrap();
    if let Some(rule) = script.rules.iter_mut().find(|r| body.contains(&r.needle)) {
        let reply = rule.steps[rule.next.min(rule.steps.len() - 1)].clone();
        rule.next += 1;
        return reply;
    }
    script
        .queue
        .pop_front()
        .unwrap_or_else(|| Reply::text("ok"))
}

/// One server-sent event and the pause before it.
struct Frame {
    after: Duration,
    event: Value,
}

impl Frame {
    fn now(event: Value) -> Self {
        Frame {
            after: Duration::ZERO,
            event,
        }
    }
}

/// The events answering one reply after `response.created`.
struct Events {
    frames: Vec<Frame>,
    /// Ends with `response.completed` (else the stream just closes).
    completes: bool,
    /// Stay open and silent this long after the last frame.
    stall: Option<Duration>,
}

impl Events {
    fn complete(frames: Vec<Frame>) -> Self {
        Events {
            frames,
            completes: true,
            stall: None,
        }
    }
}

fn respond(shared: &Arc<Shared>, reply: Reply) -> Response {
    let n = shared.ids.fetch_add(1, Ordering::Relaxed) + 1;
    let response_id = format!("resp_{n}");
    if let Reply::HttpError(status, body) = reply {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    let events = events(n, reply);
    let mut frames = vec![Frame::now(
        json!({"type": "response.created", "response": {"id": response_id}}),
    )];
    frames.extend(events.frames);
    if events.completes {
        frames.push(Frame::now(json!({
            "type": "response.completed",
            "response": {
                "id": response_id,
                "usage": {
                    "input_tokens": INPUT_TOKENS,
                    "input_tokens_details": {"cached_tokens": CACHED_INPUT_TOKENS},
                    "output_tokens": OUTPUT_TOKENS,
                    "output_tokens_details": {"reasoning_tokens": REASONING_OUTPUT_TOKENS},
                    "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
                }
            }
        })));
    }
    sse_response(shared, frames, events.stall)
}

/// The stream of a reply.
fn events(n: u64, reply: Reply) -> Events {
    match reply {
        Reply::Text(text) => Events::complete(message_frames(n, &text, Duration::ZERO)),
        Reply::Json(value) => {
            Events::complete(message_frames(n, &value.to_string(), Duration::ZERO))
        }
        Reply::Streamed { text, over } => Events::complete(message_frames(n, &text, over)),
        Reply::Exec { cmd } => Events::complete(vec![Frame::now(item_done(json!({
            "type": "function_call",
            "id": format!("fc_{n}"),
            "call_id": format!("call_{n}"),
            "name": "exec_command",
            "arguments": json!({"cmd": cmd}).to_string(),
        })))]),
        Reply::ApplyPatch(patch) => Events::complete(vec![Frame::now(item_done(json!({
            "type": "custom_tool_call",
            "id": format!("ctc_{n}"),
            "call_id": format!("call_{n}"),
            "name": "apply_patch",
            "input": patch,
        })))]),
        Reply::HttpError(..) => {
            panic!("a silent step must be followed by a stream, not an HTTP error")
        }
        Reply::Stall(pause) => Events {
            frames: Vec::new(),
            completes: false,
            stall: Some(pause),
        },
        Reply::Disconnect => Events {
            frames: message_frames(n, "partial", Duration::ZERO)
                .into_iter()
                .take(2)
                .collect(),
            completes: false,
            stall: None,
        },
        Reply::Silent(pause, inner) => {
            let mut events = events(n, *inner);
            match events.frames.first_mut() {
                Some(first) => first.after += pause,
                None => *events.stall.get_or_insert(Duration::ZERO) += pause,
            }
            events
        }
        Reply::Sequence(_) => unreachable!("sequences are flattened when scripted"),
        Reply::Delayed(..) => panic!("a hold comes before the stream, not inside a silent step"),
    }
}

/// An assistant message whose text arrives in deltas spread over `over`.
fn message_frames(n: u64, text: &str, over: Duration) -> Vec<Frame> {
    let item_id = format!("msg_{n}");
    let mut frames = vec![Frame::now(json!({
        "type": "response.output_item.added",
        "output_index": 0,
        "item": {"type": "message", "id": item_id, "role": "assistant", "content": []},
    }))];
    for (after, delta) in deltas(text, over) {
        frames.push(Frame {
            after,
            event: json!({
                "type": "response.output_text.delta",
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "delta": delta,
            }),
        });
    }
    frames.push(Frame::now(item_done(json!({
        "type": "message",
        "id": item_id,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }))));
    frames
}

fn item_done(item: Value) -> Value {
    json!({"type": "response.output_item.done", "output_index": 0, "item": item})
}

/// An event stream of `frames`, each after its pause, optionally held open
/// (silent) for `stall` afterwards. Shutting the server down ends the stream
/// early, so its clients see EOF; a client going away ends it too.
fn sse_response(shared: &Arc<Shared>, frames: Vec<Frame>, stall: Option<Duration>) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let stop = shared.stop.clone();
    tokio::spawn(async move {
        let pause = |d: Duration| {
            let (stop, tx) = (stop.clone(), tx.clone());
            async move {
                tokio::select! {
                    _ = tokio::time::sleep(d) => true,
                    _ = stop.cancelled() => false,
                    _ = tx.closed() => false,
                }
            }
        };
        for frame in frames {
            if !frame.after.is_zero() && !pause(frame.after).await {
                return;
            }
            let kind = frame.event["type"].as_str().unwrap_or("message");
            let data = format!("event: {kind}\ndata: {}\n\n", frame.event);
            if tx.send(Bytes::from(data)).await.is_err() {
                return;
            }
        }
        if let Some(d) = stall {
            pause(d).await;
        }
    });
    let stream = ReceiverStream::new(rx).map(Ok::<_, Infallible>);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .expect("static response parts")
}
