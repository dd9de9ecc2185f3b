//! codex-mcp: an MCP gateway that gives AI agents isolated, persistent
//! environments running OpenAI's Codex CLI, on one machine or on Kubernetes.
#![forbid(unsafe_code)]

pub mod sse;
