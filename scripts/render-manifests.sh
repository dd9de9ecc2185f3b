#!/usr/bin/env bash
# Regenerates manifests/ (for `kubectl apply -f manifests/`) from the Helm
# chart: charts/codex-mcp rendered with its defaults as release codex-mcp in
# namespace codex-mcp, by the Helm engine in helm-python-sdk (no helm binary;
# scripts/install-test-deps.sh installs it). Also `make manifests`.
# tests/helm_chart.rs fails when manifests/ differs from what this writes.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${CODEX_MCP_CACHE:-$HOME/.cache/codex-mcp}"
PY="${CODEX_MCP_TEST_PYTHON:-$CACHE/venv/bin/python}"
"$PY" -c 'import helm_python' 2>/dev/null || {
  echo "render-manifests.sh: helm-python-sdk is missing from $PY; run scripts/install-test-deps.sh" >&2
  exit 1
}
rm -rf manifests
"$PY" scripts/helm.py manifests charts/codex-mcp manifests >/dev/null
echo "render-manifests.sh: wrote" manifests/* >&2
