//! Checks a POSTed MCP message before the MCP service reads it, so that a
//! body that is too large, not JSON, or not a JSON-RPC message gets the HTTP
//! status and JSON-RPC error JSON-RPC clients expect (413, or 400 with -32700
//! or -32600), instead of the service's 415 or 500.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::ClientJsonRpcMessage;
use serde_json::{json, Value};

/// JSON-RPC 2.0 error codes used here.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;

/// Why a body was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BodyError {
    #[error("the request body exceeds {0} bytes (the gateway's --max-body-bytes)")]
    TooLarge(usize),
    #[error("the request body could not be read: {0}")]
    Unreadable(String),
    #[error("the request body is not JSON: {0}")]
    NotJson(String),
    #[error("not a JSON-RPC 2.0 message: {0}")]
    InvalidMessage(String),
}

impl BodyError {
    fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn code(&self) -> i64 {
        match self {
            Self::NotJson(_) => PARSE_ERROR,
            _ => INVALID_REQUEST,
        }
    }
}

/// A JSON-RPC error response outside any exchange the MCP service saw:
/// clients read its message whatever the HTTP status.
pub fn error_response(status: StatusCode, code: i64, message: &str, id: Value) -> Response {
    let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    (status, axum::Json(body)).into_response()
}

/// Checks the envelope of one message. Batches were removed from MCP.
pub fn check_message(value: &Value) -> Result<(), BodyError> {
    let invalid = |why: &str| Err(BodyError::InvalidMessage(why.to_owned()));
    let Some(obj) = value.as_object() else {
        return if value.is_array() {
            invalid("batches are not supported; send one message per request")
        } else {
            invalid("expected a JSON object")
        };
    };
    if obj.get("jsonrpc") != Some(&json!("2.0")) {
        return invalid("`jsonrpc` must be \"2.0\"");
    }
    if let Some(id) = obj.get("id") {
        if !(id.is_string() || id.is_i64() || id.is_u64()) {
            return invalid("`id` must be a string or an integer");
        }
    }
    match obj.get("method") {
        Some(Value::String(_)) => {}
        Some(_) => return invalid("`method` must be a string"),
        None if obj.contains_key("id")
            && (obj.contains_key("result") != obj.contains_key("error")) => {}
        None => return invalid("expected `method`, or `id` with `result` or `error`"),
    }
    if let Some(params) = obj.get("params") {
        if !params.is_object() {
            return invalid("`params` must be an object");
        }
    }
    serde_json::from_value::<ClientJsonRpcMessage>(value.clone())
        .map(drop)
        .map_err(|e| BodyError::InvalidMessage(e.to_string()))
}

/// Middleware for the MCP routes: buffers a POST body up to `max_bytes` and
/// answers bad ones itself; everything else passes through unchanged.
pub async fn check_body(State(max_bytes): State<usize>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST || !is_json(&req) {
        // A wrong Content-Type keeps the MCP service's 415.
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, max_bytes).await {
        Ok(b) => b,
        Err(e) => {
            let err = if is_length_limit(&e) {
                BodyError::TooLarge(max_bytes)
            } else {
                BodyError::Unreadable(e.to_string())
            };
            return refuse(&err, Value::Null);
        }
    };
    let value: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return refuse(&BodyError::NotJson(e.to_string()), Value::Null),
    };
    if let Err(err) = check_message(&value) {
        let id = value
            .get("id")
            .filter(|id| id.is_string() || id.is_number())
            .cloned()
            .unwrap_or(Value::Null);
        return refuse(&err, id);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn refuse(err: &BodyError, id: Value) -> Response {
    error_response(err.status(), err.code(), &err.to_string(), id)
}

fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether reading failed on the size limit (ours, or the outer layer's).
fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(v: Value) -> String {
        check_message(&v).unwrap_err().to_string()
    }

    #[test]
    fn envelopes_are_checked_with_the_reason() {
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
        assert_eq!(check_message(&call), Ok(()));
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert_eq!(check_message(&note), Ok(()));
        assert!(reason(json!([call])).contains("batches"));
        assert!(reason(json!("x")).contains("object"));
        assert!(reason(json!({"id": 1, "method": "ping"})).contains("jsonrpc"));
        assert!(reason(json!({"jsonrpc": "1.0", "id": 1, "method": "ping"})).contains("jsonrpc"));
        assert!(reason(json!({"jsonrpc": "2.0", "id": 1, "method": 5})).contains("method"));
        assert!(reason(json!({"jsonrpc": "2.0", "id": [1], "method": "ping"})).contains("id"));
        assert!(reason(json!({"jsonrpc": "2.0", "id": 1})).contains("result"));
        assert!(
            reason(json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": [1]}))
                .contains("params")
        );
    }
}
