#!/usr/bin/env bash
# Runs the whole suite: unit tests, local gateway tests and the cluster tests.
# Brings the test cluster up first (unless CODEX_MCP_TEST_KUBECONFIG names an
# existing cluster) and always tears it down, even when tests fail.
set -euo pipefail
cd "$(dirname "$0")/.."
export CODEX_MCP_CACHE="${CODEX_MCP_CACHE:-$HOME/.cache/codex-mcp}"

scripts/lint.sh
cargo build --all-targets

if [ -z "${CODEX_MCP_TEST_KUBECONFIG:-}" ] && [ -x tests/cluster/up.sh ]; then
  trap 'tests/cluster/down.sh' EXIT
  tests/cluster/up.sh
  export CODEX_MCP_TEST_KUBECONFIG="$CODEX_MCP_CACHE/cluster/kubeconfig"
fi

# Benchmarks are built above but not run: they print figures and take time.
cargo test --no-fail-fast --lib --bins --tests
