#!/usr/bin/env bash
# Regenerates manifests/ (for `kubectl apply -f manifests/`) from the Helm
# chart: charts/codex-mcp rendered with its defaults as release codex-mcp in
# namespace codex-mcp by `helm template`, Helm 4 as users run it
# ($CODEX_MCP_CACHE/bin/helm, built by scripts/install-test-deps.sh; HELM
# overrides it). Also `make manifests`.
#
#   scripts/render-manifests.sh        rewrites manifests/
#   scripts/render-manifests.sh DIR    writes into DIR, which must not exist
#
# tests/helm_chart.rs renders into a temporary DIR and fails when manifests/
# differs from it.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${CODEX_MCP_CACHE:-$HOME/.cache/codex-mcp}"
HELM="${HELM:-$CACHE/bin/helm}"
CHART=charts/codex-mcp
RELEASE=codex-mcp
NS=codex-mcp

die() {
  echo "render-manifests.sh: $*" >&2
  exit 1
}

[ -x "$HELM" ] || die "no helm at $HELM; run scripts/install-test-deps.sh"
OUT="${1:-manifests}"
# Only manifests/ itself is ever replaced: a mistyped DIR is never wiped.
[ $# -eq 0 ] || [ ! -e "$OUT" ] || die "$OUT exists"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# Helm reads and writes nothing of the user's own config, cache or repositories.
export HELM_CACHE_HOME="$WORK/cache" HELM_CONFIG_HOME="$WORK/config" HELM_DATA_HOME="$WORK/data"

# No credential or token is committed: the manifests reference Secrets the
# user creates (the header of 02-codex-mcp.yaml says how). Rendered before
# anything is removed, so a failing render leaves manifests/ as it was.
"$HELM" template "$RELEASE" "$CHART" --namespace "$NS" --skip-tests \
  --set "clientTokens.existingSecret=$RELEASE-client-tokens" >"$WORK/helm.yaml" ||
  die "helm template $CHART failed"
# Helm 4 ends a document with the blank line its template leaves, Helm 3
# does not: without them, both majors write the same files.
awk '/^$/ { blank++; next }
  { if ($0 != "---") for (; blank > 0; blank--) print ""; blank = 0; print }' \
  "$WORK/helm.yaml" >"$WORK/release.yaml"

version="$(sed -n 's/^appVersion: "\(.*\)"$/\1/p' "$CHART/Chart.yaml")"
notice() {
  echo "# codex-mcp $version: the chart $CHART rendered with its defaults"
  echo "# (release $RELEASE, namespace $NS) by scripts/render-manifests.sh; do not edit."
}

[ $# -eq 1 ] || rm -rf "$OUT"
mkdir -p "$OUT"
{
  notice
  printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n' "$NS"
} >"$OUT/00-namespace.yaml"
{
  notice
  # The CRDs exactly as Helm installs them from crds/ (`helm template`
  # leaves them out).
  sep=""
  for crd in "$CHART"/crds/*.yaml; do
    printf '%s' "$sep"
    cat "$crd"
    sep="---"$'\n'
  done
} >"$OUT/01-crd.yaml"
{
  notice
  cat <<EOF
#
# Create the two Secrets it references first (none is included, so no
# credential or token is ever committed):
#   kubectl create namespace $NS
#   kubectl -n $NS create secret generic $RELEASE-credentials --from-literal=OPENAI_API_KEY=sk-...
#     (or --from-file=auth.json=\$HOME/.codex/auth.json for a ChatGPT login)
#   kubectl -n $NS create secret generic $RELEASE-client-tokens \\
#     --from-literal=tokens="\$(head -c 32 /dev/urandom | base64 | tr -dc A-Za-z0-9) default"
# then: kubectl apply -f manifests/
EOF
  cat "$WORK/release.yaml"
} >"$OUT/02-codex-mcp.yaml"
echo "render-manifests.sh: wrote" "$OUT"/* >&2
