//! The Kubernetes client configuration, loaded the same way by every
//! command: the kubeconfig file given (`--kubeconfig` / `KUBECONFIG`), else
//! in-cluster configuration, else `~/.kube/config`.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};

/// The configuration; the error names the file and what was wrong with it.
pub async fn load(path: Option<&Path>) -> Result<kube::Config, String> {
    match path {
        Some(path) => {
            let kubeconfig =
                Kubeconfig::read_from(path).map_err(|e| format!("{}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| format!("{}: {e}", path.display()))
        }
        None => kube::Config::infer().await.map_err(|e| e.to_string()),
    }
}

/// What an API request does, for counting: the verb (`get`, `list`,
/// `watch`, `create`, `patch`, `delete`, ...) and the resource with its
/// subresource (`codexagents/status`, `pods/exec`). Names and namespaces
/// are left out, so the set of values stays small.
pub fn request_kind(method: &http::Method, uri: &http::Uri) -> (&'static str, String) {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    // /api/v1/... or /apis/GROUP/VERSION/...
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..),
        Some(&"apis") => segments.get(3..),
        _ => None,
    }
    .unwrap_or_default();
    let rest = match rest {
        ["namespaces", _, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let (resource, named, sub) = match rest {
        [] => ("-", false, None),
        [r] => (*r, false, None),
        [r, _] => (*r, true, None),
        [r, _, s, ..] => (*r, true, Some(*s)),
    };
    let watching = uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let verb = match *method {
        http::Method::GET if watching => "watch",
        http::Method::GET if named => "get",
        http::Method::GET => "list",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "other",
    };
    let resource = match sub {
        Some(sub) => format!("{resource}/{sub}"),
        None => resource.to_owned(),
    };
    (verb, resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_known_by_verb_and_resource() {
        let kind = |m: &str, u: &str| {
            let (verb, resource) = request_kind(&m.parse().unwrap(), &u.parse().unwrap());
            format!("{verb} {resource}")
        };
        let agents = "/apis/codexmcp.dev/v1/namespaces/ns/codexagents";
        assert_eq!(kind("GET", &format!("{agents}/a")), "get codexagents");
        assert_eq!(
            kind("GET", &format!("{agents}?limit=1")),
            "list codexagents"
        );
        assert_eq!(
            kind("GET", &format!("{agents}?fieldSelector=x&watch=true")),
            "watch codexagents"
        );
        assert_eq!(
            kind("PATCH", &format!("{agents}/a/status?fieldManager=f")),
            "patch codexagents/status"
        );
        assert_eq!(
            kind("GET", "/api/v1/namespaces/ns/pods/p/exec?command=x"),
            "get pods/exec"
        );
        assert_eq!(
            kind("PUT", "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l"),
            "update leases"
        );
        assert_eq!(kind("GET", "/api/v1/namespaces/ns"), "get namespaces");
        assert_eq!(kind("GET", "/version"), "list -");
    }
}
