//! The contract: what the gateway, `agent-run`, the `source` init
//! container, the operator and `auth import` agree on. The `CodexAgent`
//! types and their CRD schema, the agent's pod layout, labels and
//! annotations, the `agent-run` request and result, the run log the status
//! holds and the `SourceReady` reasons. No IO, and nothing above it.

pub mod crd;
pub mod crd_schema;
pub mod crd_source;
pub mod labels;
pub mod layout;
pub mod request;
pub mod run_log;
pub mod source_ready;
