//! OAuth 2.0 Protected Resource Metadata (RFC 9728) for the MCP endpoints,
//! as MCP's authorization asks of a server that takes bearer tokens: what
//! the resource is and how to send a token. The gateway's tokens are issued
//! by whoever runs it, not by an authorization server, so the metadata
//! names none, and there is no OAuth discovery or registration beyond it.
//!
//! The resource is named by the URL the client used: the Host it sent (an
//! accepted one) and the scheme the edge in front says it was reached with,
//! never the pod's own address.

use axum::extract::{Path, Request};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// The well-known prefix (RFC 9728 3.1).
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// `scheme://host` as the client reached the gateway. The scheme is the
/// edge's `X-Forwarded-Proto` (TLS usually ends there), else plain HTTP.
pub fn public_origin(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?.trim();
    if host.is_empty() || host.contains(['/', '\\', '"', ' ', '@']) {
        return None;
    }
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| v == "https" || v == "http")
        .unwrap_or_else(|| "http".to_owned());
    Some(format!("{scheme}://{host}"))
}

/// The MCP endpoint a request path belongs to, as a resource path: the
/// streamable endpoint itself, or `/sse` for the legacy transport's
/// message route. `None` for a path that is no MCP endpoint.
pub fn resource_path(path: &str) -> Option<String> {
    let path = path.trim_end_matches('/');
    let (prefix, endpoint) = match path.strip_prefix("/agents/") {
        Some(rest) => {
            let (name, endpoint) = rest.split_once('/')?;
            crate::agent::AgentName::parse(name).ok()?;
            (format!("/agents/{name}"), format!("/{endpoint}"))
        }
        None => (String::new(), path.to_owned()),
    };
    let endpoint = match endpoint.as_str() {
        "/mcp" => "/mcp",
        "/sse" | "/message" => "/sse",
        _ => return None,
    };
    Some(format!("{prefix}{endpoint}"))
}

/// The `resource_metadata` URL for a request to `path`, for the 401's
/// challenge.
pub fn metadata_url(headers: &HeaderMap, path: &str) -> Option<String> {
    Some(format!(
        "{}{WELL_KNOWN}{}",
        public_origin(headers)?,
        resource_path(path)?
    ))
}

fn document(origin: &str, resource_path: &str) -> Response {
    Json(json!({
        "resource": format!("{origin}{resource_path}"),
        "bearer_methods_supported": ["header"],
        "resource_name": "codex-mcp",
    }))
    .into_response()
}

/// `GET /.well-known/oauth-protected-resource/{endpoint}`.
pub async fn for_endpoint(Path(rest): Path<String>, req: Request) -> Response {
    match (
        public_origin(req.headers()),
        resource_path(&format!("/{rest}")),
    ) {
        (Some(origin), Some(path)) if path == format!("/{}", rest.trim_end_matches('/')) => {
            document(&origin, &path)
        }
        _ => super::not_found(req.uri().clone()).await,
    }
}

/// `GET /.well-known/oauth-protected-resource`: the gateway as a whole,
/// for clients that look there first.
pub async fn for_origin(req: Request) -> Response {
    match public_origin(req.headers()) {
        Some(origin) => document(&origin, ""),
        None => super::not_found(req.uri().clone()).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(host: &str, proto: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(p) = proto {
            h.insert("x-forwarded-proto", HeaderValue::from_str(p).unwrap());
        }
        h
    }

    #[test]
    fn the_origin_is_the_one_the_client_used() {
        assert_eq!(
            public_origin(&headers("codex.example.com", Some("https"))).as_deref(),
            Some("https://codex.example.com")
        );
        assert_eq!(
            public_origin(&headers("127.0.0.1:8210", None)).as_deref(),
            Some("http://127.0.0.1:8210")
        );
        assert_eq!(
            public_origin(&headers("codex.test", Some("https, http"))).as_deref(),
            Some("https://codex.test")
        );
        assert_eq!(
            public_origin(&headers("codex.test", Some("javascript"))).as_deref(),
            Some("http://codex.test")
        );
        assert_eq!(public_origin(&headers("evil.example/x", None)), None);
        assert_eq!(public_origin(&HeaderMap::new()), None);
    }

    #[test]
    fn resources_are_the_mcp_endpoints() {
        for (path, want) in [
            ("/mcp", Some("/mcp")),
            ("/mcp/", Some("/mcp")),
            ("/sse", Some("/sse")),
            ("/message", Some("/sse")),
            ("/agents/alice/mcp", Some("/agents/alice/mcp")),
            ("/agents/alice/message", Some("/agents/alice/sse")),
            ("/agents//mcp", None),
            ("/agents/a/b/mcp", None),
            ("/health", None),
            ("/register", None),
        ] {
            assert_eq!(resource_path(path).as_deref(), want, "{path}");
        }
        assert_eq!(
            metadata_url(&headers("codex.test", Some("https")), "/agents/a/mcp").as_deref(),
            Some("https://codex.test/.well-known/oauth-protected-resource/agents/a/mcp")
        );
    }
}
