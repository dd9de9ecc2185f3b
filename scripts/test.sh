#!/usr/bin/env bash
# Runs the whole suite: unit tests, local gateway tests and the cluster tests,
# on the test cluster's newest Kubernetes; then the cluster tests again on
# the oldest supported minor. Brings the test cluster up first (unless
# CODEX_MCP_TEST_KUBECONFIG names an existing cluster, which gets the first
# pass only) and always tears it down, even when tests fail.
set -euo pipefail
cd "$(dirname "$0")/.."
export CODEX_MCP_CACHE="${CODEX_MCP_CACHE:-$HOME/.cache/codex-mcp}"

scripts/lint.sh
cargo build --all-targets

OWN_CLUSTER=0
if [ -z "${CODEX_MCP_TEST_KUBECONFIG:-}" ] && [ -x tests/cluster/up.sh ]; then
  OWN_CLUSTER=1
  trap 'tests/cluster/down.sh' EXIT
  tests/cluster/up.sh
  export CODEX_MCP_TEST_KUBECONFIG="$CODEX_MCP_CACHE/cluster/kubeconfig"
fi

# Benchmarks are built above but not run: they print figures and take time.
status=0
cargo test --no-fail-fast --lib --bins --tests || status=$?

# What changes between minors: admission (Pod Security, CEL), exec, server-
# side apply, the kubelet's resize, the chart's install.
if [ "$OWN_CLUSTER" = 1 ] && [ "${CODEX_MCP_SKIP_OLDEST:-0}" != 1 ]; then
  # shellcheck source=tests/cluster/lib.sh
  OLDEST="$(. tests/cluster/lib.sh && echo "$OLDEST_K8S_VERSION")"
  echo "test.sh: the cluster tests again, on Kubernetes $OLDEST" >&2
  CODEX_MCP_K8S_VERSION="$OLDEST" tests/cluster/up.sh
  cargo test --no-fail-fast --test cluster_smoke --test operator --test operator_resize \
    --test crd_validation --test gateway_kube --test helm_install --test chart_enforcement \
    --test edge_install --test repositories_kube || status=$?
fi
exit "$status"
