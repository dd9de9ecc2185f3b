//! `spec.source`: the repository an agent works on. Cloned into the
//! agent's workspace by its pod's `source` init container on first start
//! (see the `source` module); the `SourceReady` condition says how that went.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A branch, tag or commit id: never an option (`-x`), no spaces, no `..`
/// or other characters git refuses in ref names.
pub const REF_PATTERN: &str = r"^[A-Za-z0-9_./+@][A-Za-z0-9_./+@-]*$";

/// Where the agent's workspace comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceSpec {
    /// A git repository, cloned into the workspace on the agent's first
    /// start on a branch `codex/<agent>` (`codex/<tenant>/<agent>` beyond
    /// the default tenant). Fixed once set: the workspace was cloned from it.
    pub git: GitSource,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSource {
    /// `https://`, `http://` or `ssh://` URL, or `user@host:path`. Never
    /// with a password or token in it: credentials come from `secretRef`.
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// Branch, tag or full commit id to start from; the repository's
    /// default branch when empty.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255), pattern(REF_PATTERN))]
    pub ref_: Option<String>,
    /// A Secret in the agent's namespace with the credentials: `token`
    /// (HTTPS, with an optional `username`, `x-access-token` by default),
    /// `username` and `password` (a `kubernetes.io/basic-auth` Secret), or
    /// `ssh-privatekey` and `known_hosts` (a `kubernetes.io/ssh-auth`
    /// Secret plus the server's host keys). Mounted read-only into the
    /// agent's pod; never put into its environment, URL, status or events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<GitSecretRef>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSecretRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}
