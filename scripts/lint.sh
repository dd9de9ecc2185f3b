#!/usr/bin/env bash
# The checks every change must pass, run by `make lint` and first thing by
# scripts/test.sh: formatting, clippy with warnings as errors, shellcheck.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "lint: cargo fmt --check" >&2
cargo fmt --all -- --check
echo "lint: cargo clippy --all-targets -- -D warnings" >&2
cargo clippy --quiet --all-targets -- -D warnings
command -v shellcheck >/dev/null ||
  { echo "lint: shellcheck is missing (scripts/install-test-deps.sh installs it)" >&2; exit 1; }
echo "lint: shellcheck" >&2
git ls-files -z '*.sh' | xargs -0 shellcheck -x
