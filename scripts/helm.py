#!/usr/bin/env python3
"""Helm for this repository without a helm binary: the Helm v4 engine that
PyPI's helm-python-sdk carries (scripts/install-test-deps.sh installs it into
$CODEX_MCP_CACHE/venv). Used by scripts/render-manifests.sh and the chart
tests. Every command prints one JSON document on stdout.

  helm.py lint CHART [--values JSON]
  helm.py template CHART --name N --namespace NS [--values JSON] [--kubeconfig K]
      objects in install order: [{"source", "kind", "name", "namespace", "object", "text"}]
      (with --kubeconfig, `lookup` and the API versions come from that cluster)
  helm.py manifests CHART OUTDIR
      writes the chart rendered with its defaults for `kubectl apply -f OUTDIR`
  helm.py install|upgrade CHART --name N --namespace NS --kubeconfig K [--values JSON] [--timeout S]
  helm.py uninstall --name N --namespace NS --kubeconfig K [--timeout S]
"""

import argparse
import json
import os
import re
import sys

import helm_python as helm

# Helm's own install order (pkg/release/util/kind_sorter.go), so a plain
# `kubectl apply` creates accounts and roles before the pods that use them.
KIND_ORDER = [
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
    "PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret",
    "SecretList", "ConfigMap", "StorageClass", "PersistentVolume",
    "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole",
    "ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList", "Role",
    "RoleList", "RoleBinding", "RoleBindingList", "Service", "DaemonSet", "Pod",
    "ReplicationController", "ReplicaSet", "Deployment", "HorizontalPodAutoscaler",
    "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
]

# What the committed manifests are rendered for.
MANIFESTS_RELEASE = "codex-mcp"
MANIFESTS_NAMESPACE = "codex-mcp"
# No credential or token is committed: the manifests reference Secrets the
# user creates (the header of the rendered file says how).
MANIFESTS_VALUES = {"clientTokens": {"existingSecret": "codex-mcp-client-tokens"}}


def parse_docs(source, text):
    """The objects of one YAML stream (comment-only documents skipped)."""
    objects = []
    for doc in re.split(r"(?m)^---\s*$", text):
        found = re.search(r"(?m)^# Source: (.*)$", doc)
        body = [l for l in doc.splitlines() if l.strip() and not l.lstrip().startswith("#")]
        if not body:
            continue
        obj = helm.values_from_yaml(doc)
        meta = obj.get("metadata", {})
        objects.append({
            "source": found.group(1).strip() if found else source,
            "kind": obj.get("kind", ""),
            "name": meta.get("name", ""),
            "namespace": meta.get("namespace", ""),
            "object": obj,
            "text": re.sub(r"(?m)^# Source: .*\n", "", doc).strip("\n") + "\n",
        })
    return objects


def in_install_order(objects):
    rank = {kind: i for i, kind in enumerate(KIND_ORDER)}
    return sorted(objects, key=lambda o: (rank.get(o["kind"], len(KIND_ORDER)), o["kind"], o["name"]))


def render(chart_path, name, namespace, values, kubeconfig=None):
    """(objects in install order, NOTES.txt, CRDs, Chart.yaml). Offline unless
    a kubeconfig is given: then Helm asks that cluster for its version and
    API groups (a server-side dry-run install, which creates nothing), as a
    real install would, and `lookup` sees live objects."""
    with helm.Chart.load(chart_path) as chart:
        rendered = chart.render(values, name=name, namespace=namespace, is_install=True)
        notes = next((t for s, t in rendered.items() if s.endswith("NOTES.txt")), "")
        objects = []
        for source in sorted(rendered):
            if source.endswith((".yaml", ".yml")):
                objects += parse_docs(source, rendered[source])
        if kubeconfig:
            # A dry-run release holds everything but hooks; those come from
            # the offline render.
            hooks = [o for o in objects if "helm.sh/hook" in o["object"].get("metadata", {}).get("annotations", {})]
            with helm.Config(kubeconfig_path=kubeconfig, namespace=namespace) as cfg:
                rel = cfg.install(chart, name, values, namespace=namespace, dry_run="server")
            objects = parse_docs("", rel["manifest"]) + hooks
            notes = rel.get("notes", notes)
        return in_install_order(objects), notes, [crd["data"] for crd in chart.crds], chart.metadata


def write_manifests(chart_path, outdir):
    objects, _, crds, meta = render(chart_path, MANIFESTS_RELEASE, MANIFESTS_NAMESPACE, MANIFESTS_VALUES)
    ns, rel = MANIFESTS_NAMESPACE, MANIFESTS_RELEASE
    notice = (
        f"# codex-mcp {meta['appVersion']}: the chart charts/codex-mcp rendered with its defaults\n"
        f"# (release {rel}, namespace {ns}) by scripts/render-manifests.sh; do not edit.\n"
    )
    files = {
        "00-namespace.yaml": notice + f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n",
        "01-crd.yaml": notice + "---\n".join(crds),
        "02-codex-mcp.yaml": notice
        + "#\n"
        + "# Create the two Secrets it references first (none is included, so no\n"
        + "# credential or token is ever committed):\n"
        + f"#   kubectl create namespace {ns}\n"
        + f"#   kubectl -n {ns} create secret generic {rel}-credentials --from-literal=OPENAI_API_KEY=sk-...\n"
        + f"#     (or --from-file=auth.json=$HOME/.codex/auth.json for a ChatGPT login)\n"
        + f"#   kubectl -n {ns} create secret generic {rel}-client-tokens \\\n"
        + "#     --from-literal=tokens=\"$(head -c 32 /dev/urandom | base64 | tr -dc A-Za-z0-9) default\"\n"
        + "# then: kubectl apply -f manifests/\n"
        + "".join(f"---\n# Source: {o['source']}\n{o['text']}" for o in objects),
    }
    os.makedirs(outdir, exist_ok=True)
    for fname, text in files.items():
        with open(os.path.join(outdir, fname), "w", encoding="utf-8") as f:
            f.write(text)
    return sorted(files)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["lint", "template", "manifests", "install", "upgrade", "uninstall"])
    p.add_argument("paths", nargs="*")
    p.add_argument("--name")
    p.add_argument("--namespace")
    p.add_argument("--values", default="{}", help="values as JSON")
    p.add_argument("--kubeconfig")
    p.add_argument("--timeout", type=int, default=300)
    a = p.parse_args()
    values = json.loads(a.values)

    if a.command == "lint":
        out = helm.lint(a.paths[0], values, strict=True, namespace=a.namespace or "default")
    elif a.command == "template":
        objects, notes, _, _ = render(a.paths[0], a.name, a.namespace, values, a.kubeconfig)
        out = {"objects": objects, "notes": notes}
    elif a.command == "manifests":
        out = {"files": write_manifests(a.paths[0], a.paths[1])}
    else:
        with helm.Config(kubeconfig_path=a.kubeconfig, namespace=a.namespace) as cfg:
            if a.command == "install":
                rel = cfg.install(a.paths[0], a.name, values, namespace=a.namespace,
                                  timeout=a.timeout, wait="watcher")
            elif a.command == "upgrade":
                rel = cfg.upgrade(a.paths[0], a.name, values, namespace=a.namespace,
                                  timeout=a.timeout, wait="watcher")
            else:
                rel = cfg.uninstall(a.name, timeout=a.timeout, wait="watcher")
            # The manifest holds generated Secrets: keep it out of test logs.
            rel = rel.get("release", rel)
            out = {k: v for k, v in rel.items() if k not in ("manifest", "config", "chart")}
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    try:
        main()
    except helm.HelmError as e:
        print(f"helm.py: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
