//! The Helm chart through the real `helm` command users run: Helm 4
//! (`$CODEX_MCP_CACHE/bin/helm`) and Helm 3 (`bin/helm3`), both built by
//! `scripts/install-test-deps.sh`. Lint and template are offline; installs
//! go to the test cluster. Every run gets empty Helm config, cache and data
//! directories of its own, so no test reads or changes the user's Helm
//! repositories, plugins or registry logins.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::cluster;

pub mod values;

/// The chart, relative to the repository root.
pub const CHART: &str = "charts/codex-mcp";

/// A major version of the `helm` CLI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Helm {
    V4,
    V3,
}

impl Helm {
    /// Both majors users run, the current one first.
    pub const BOTH: [Helm; 2] = [Helm::V4, Helm::V3];

    /// Where `tests/cluster/install-helm.sh` puts it.
    pub fn binary(self) -> PathBuf {
        let name = match self {
            Helm::V4 => "helm",
            Helm::V3 => "helm3",
        };
        super::cache_dir().join("bin").join(name)
    }
}

impl fmt::Display for Helm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Helm::V4 => "Helm 4",
            Helm::V3 => "Helm 3",
        })
    }
}

/// Runs `test` with each major in turn, saying which one in the test's
/// output, so a failure names the Helm it happened with.
pub fn with_each_helm(test: impl Fn(Helm)) {
    for helm in Helm::BOTH {
        eprintln!("--- with {helm} ({})", helm.binary().display());
        test(helm);
    }
}

/// One rendered object.
#[derive(Clone, Debug)]
pub struct Object {
    /// The template it came from.
    pub source: String,
    pub kind: String,
    pub name: String,
    pub object: Value,
    /// Its YAML as rendered.
    pub text: String,
}

/// A rendered release: its objects in Helm's install order (hooks last).
#[derive(Clone, Debug)]
pub struct Rendered {
    pub objects: Vec<Object>,
}

impl Rendered {
    pub fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects
            .iter()
            .find(|o| o.kind == kind && o.name == name)
            .map(|o| &o.object)
    }

    /// The object; fails with the list of what was rendered (never its
    /// contents, which include Secrets).
    pub fn get(&self, kind: &str, name: &str) -> &Value {
        self.find(kind, name)
            .unwrap_or_else(|| panic!("no {kind} {name} rendered; got: {}", self.summary()))
    }

    pub fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|o| o.kind == kind)
            .map(|o| &o.object)
            .collect()
    }

    /// `Kind/name` of every object.
    pub fn summary(&self) -> String {
        self.objects
            .iter()
            .map(|o| format!("{}/{}", o.kind, o.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Every object as one YAML stream, for `kubectl apply -f`.
    pub fn yaml(&self) -> String {
        self.objects
            .iter()
            .map(|o| format!("---\n{}", o.text))
            .collect()
    }
}

/// `helm ARGS` with `values` as a values file and the environment it may
/// see: its own Helm directories, no HELM_* of the caller's, and no
/// kubeconfig but one named with `--kubeconfig` (so an offline render never
/// reaches the user's cluster). Its output, or why it failed.
pub fn run(helm: Helm, args: &[&str], values: Option<&Value>) -> Result<String, String> {
    run_with_stderr(helm, args, values).map(|(stdout, _)| stdout)
}

/// As [`run`], with what Helm printed on stderr besides: the API server's
/// warnings (deprecations, Pod Security) land there.
pub fn run_with_stderr(
    helm: Helm,
    args: &[&str],
    values: Option<&Value>,
) -> Result<(String, String), String> {
    let bin = helm.binary();
    assert!(
        bin.is_file(),
        "no {helm} at {}: run scripts/install-test-deps.sh (tests/cluster/install-helm.sh builds both majors)",
        bin.display()
    );
    let home = tempfile::tempdir().expect("a tempdir for Helm's directories");
    let mut cmd = Command::new(&bin);
    cmd.args(args).current_dir(cluster::repo_root());
    isolate(&mut cmd, home.path());
    if let Some(values) = values {
        let file = home.path().join("values.json");
        std::fs::write(&file, values.to_string()).expect("writing the values file");
        cmd.arg("--values").arg(file);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
    if !out.status.success() {
        return Err(format!(
            "{helm} {} failed ({}): {}{}",
            args.first().unwrap_or(&""),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    Ok((
        String::from_utf8(out.stdout).expect("helm prints UTF-8"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn isolate(cmd: &mut Command, home: &Path) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HELM_") {
            cmd.env_remove(name);
        }
    }
    for (var, dir) in [
        ("HELM_CACHE_HOME", "cache"),
        ("HELM_CONFIG_HOME", "config"),
        ("HELM_DATA_HOME", "data"),
        ("KUBECONFIG", "no-kubeconfig"),
    ] {
        cmd.env(var, home.join(dir));
    }
}

/// `helm lint --strict` with these values: its warnings and errors.
pub fn lint(helm: Helm, values: &Value) -> Vec<String> {
    match run(helm, &["lint", "--strict", CHART], Some(values)) {
        Ok(report) => problems(&report),
        Err(failed) => {
            let found = problems(&failed);
            if found.is_empty() {
                vec![failed]
            } else {
                found
            }
        }
    }
}

/// The `[WARNING]` and `[ERROR]` lines of a lint report.
fn problems(report: &str) -> Vec<String> {
    report
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("[WARNING]") || l.starts_with("[ERROR]"))
        .map(str::to_owned)
        .collect()
}

/// `helm template`: the chart rendered offline, with the Kubernetes version
/// Helm assumes.
pub fn template(helm: Helm, release: &str, namespace: &str, values: &Value) -> Rendered {
    try_template(helm, release, namespace, values, &[])
        .unwrap_or_else(|e| panic!("helm template: {e}"))
}

/// The chart rendered for the test cluster, as an install there would be
/// (`helm template --dry-run=server`): its version and API versions,
/// `lookup` of live objects. Creates nothing.
pub fn template_for_cluster(
    helm: Helm,
    release: &str,
    namespace: &str,
    values: &Value,
) -> Rendered {
    let kubeconfig = cluster::kubeconfig_path();
    let extra = [
        "--dry-run=server",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ];
    try_template(helm, release, namespace, values, &extra)
        .unwrap_or_else(|e| panic!("helm template for the cluster: {e}"))
}

/// `helm template ... EXTRA`, or why Helm refused.
pub fn try_template(
    helm: Helm,
    release: &str,
    namespace: &str,
    values: &Value,
    extra: &[&str],
) -> Result<Rendered, String> {
    let mut args = vec!["template", release, CHART, "--namespace", namespace];
    args.extend_from_slice(extra);
    run(helm, &args, Some(values)).map(|stream| parse_stream(&stream))
}

/// The objects of a YAML stream as `helm template` prints it, each document
/// headed by `# Source: TEMPLATE`; documents of only comments are skipped.
pub fn parse_stream(stream: &str) -> Rendered {
    let objects = documents(stream)
        .into_iter()
        .filter(|lines| {
            lines
                .iter()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .map(|lines| object(&lines))
        .collect();
    Rendered { objects }
}

/// The lines of each document of a YAML stream.
fn documents(stream: &str) -> Vec<Vec<&str>> {
    let mut docs = vec![Vec::new()];
    for line in stream.lines() {
        if line == "---" {
            docs.push(Vec::new());
        } else {
            docs.last_mut().unwrap().push(line);
        }
    }
    docs
}

fn object(lines: &[&str]) -> Object {
    let source = lines
        .iter()
        .find_map(|l| l.strip_prefix("# Source: "))
        .unwrap_or_default()
        .to_owned();
    let body: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.starts_with("# Source: "))
        .collect();
    let text = body.join("\n").trim_matches('\n').to_owned() + "\n";
    let object: Value = serde_saphyr::from_str(&text)
        .unwrap_or_else(|e| panic!("a document rendered from {source} is not YAML: {e}"));
    let field = |path: &str| {
        object
            .pointer(path)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Object {
        kind: field("/kind"),
        name: field("/metadata/name"),
        source,
        object,
        text,
    }
}

/// The release's NOTES.txt rendered for these values. Helm 4 renders it
/// offline (`helm install --dry-run=client`); Helm 3's install always asks a
/// cluster first, and its `helm template` leaves NOTES.txt out.
pub fn notes(release: &str, namespace: &str, values: &Value) -> String {
    let args = [
        "install",
        release,
        CHART,
        "--namespace",
        namespace,
        "--dry-run=client",
        "--output",
        "json",
    ];
    let answer = run(Helm::V4, &args, Some(values)).unwrap_or_else(|e| panic!("{e}"));
    let release: Value =
        serde_json::from_str(&answer).expect("helm install --output json prints JSON");
    release["info"]["notes"]
        .as_str()
        .expect("the release has notes")
        .to_owned()
}

/// What a release test does to the release on the test cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Install,
    Upgrade,
    Uninstall,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Install => "install",
            Step::Upgrade => "upgrade",
            Step::Uninstall => "uninstall",
        })
    }
}

/// `helm install|upgrade|uninstall --wait` on the test cluster: returns once
/// the release's workloads are ready (or its objects gone), up to
/// `timeout_secs`; fails the test with Helm's error otherwise. Returns what
/// Helm printed on stderr (warnings).
pub fn release(
    helm: Helm,
    step: Step,
    release: &str,
    namespace: &str,
    values: &Value,
    timeout_secs: u64,
) -> String {
    let kubeconfig = cluster::kubeconfig_path();
    let timeout = format!("{timeout_secs}s");
    let command = step.to_string();
    let mut args = vec![command.as_str(), release];
    if step != Step::Uninstall {
        // JSON, so the status can be read; it is never printed, as its
        // manifest holds the generated Secrets.
        args.extend([CHART, "--output", "json"]);
    }
    args.extend([
        "--namespace",
        namespace,
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--wait",
        "--timeout",
        &timeout,
    ]);
    let values = (step != Step::Uninstall).then_some(values);
    let (answer, stderr) = run_with_stderr(helm, &args, values).unwrap_or_else(|e| panic!("{e}"));
    if step != Step::Uninstall {
        let status = serde_json::from_str::<Value>(&answer).map(|r| r["info"]["status"].clone());
        assert_eq!(
            status.ok(),
            Some(Value::from("deployed")),
            "{helm} {step}: the release's status"
        );
    }
    stderr
}

/// The first container's environment of a Deployment, `name -> value`
/// (`valueFrom` entries as their JSON).
pub fn container_env(deployment: &Value) -> std::collections::BTreeMap<String, String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let value = match &e["value"] {
                Value::String(s) => s.clone(),
                _ => e["valueFrom"].to_string(),
            };
            (e["name"].as_str().unwrap_or_default().to_owned(), value)
        })
        .collect()
}

/// The runtime image of the gateway and the operator, as the Dockerfile's
/// default target makes it: this build's `codex-mcp` and the libraries it
/// links, no shell, entrypoint `codex-mcp`.
pub fn runtime_image() -> String {
    super::images::dockerfile_images().runtime.clone()
}

/// `repository` and `tag` of an image reference, as the chart's values take them.
pub fn split_image(image: &str) -> (String, String) {
    let (repo, tag) = image.rsplit_once(':').expect("an image with a tag");
    (repo.to_owned(), tag.to_owned())
}
