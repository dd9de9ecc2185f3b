//! The images a user builds from the repository's `Dockerfile`, both
//! targets, built by `tests/cluster/build-dockerfile-images.sh` (buildah,
//! nothing pulled) and loaded into the test cluster's containerd. The
//! script builds nothing when its inputs have not changed, so every test
//! process may ask.

use std::process::Command;
use std::sync::OnceLock;

use super::cluster;

/// The tag the tests give both images.
const TAG: &str = "test";

pub struct DockerfileImages {
    /// The default target: the gateway and the operator (distroless, uid 65532).
    pub runtime: String,
    /// `--target agent`: agents' pods (Codex CLI, git, uid 1000).
    pub agent: String,
}

/// Builds (when needed) and loads both images; panics with the script's
/// output when that fails.
pub fn dockerfile_images() -> &'static DockerfileImages {
    static IMAGES: OnceLock<DockerfileImages> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let script = cluster::repo_root().join("tests/cluster/build-dockerfile-images.sh");
        let out = Command::new(&script)
            .args(["--tag", TAG])
            .output()
            .expect("running build-dockerfile-images.sh");
        assert!(
            out.status.success(),
            "building the Dockerfile's images failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        DockerfileImages {
            runtime: format!("codex-mcp:{TAG}"),
            agent: format!("codex-mcp-agent:{TAG}"),
        }
    })
}
