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
