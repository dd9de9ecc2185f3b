//! codex-mcp: an MCP gateway that gives AI agents isolated, persistent
//! environments running OpenAI's Codex CLI, on one machine or on Kubernetes.
#![forbid(unsafe_code)]

pub mod agent;
pub mod backend;
pub mod codex;
pub mod config;
pub mod credentials;
pub mod gateway;
pub mod gateway_kube;
pub mod kubeconfig;
pub mod metrics;
pub mod operator;
pub mod progress;
pub mod runs;
pub mod serve;
pub mod sse;
pub mod telemetry;
pub mod tools;
pub mod workspace;
