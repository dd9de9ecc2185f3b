#!/usr/bin/env bash
# Installs the Codex CLI from npm into the cache and links it as $CACHE/bin/codex.
# Idempotent: does nothing when the pinned version is already there.
set -euo pipefail
CACHE="${CODEX_MCP_CACHE:-$HOME/.cache/codex-mcp}"
VERSION="${CODEX_CLI_VERSION:-0.169.0}"
dir="$CACHE/codex-$VERSION"
bin="$dir/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex"
if [ ! -x "$bin" ]; then
  command -v npm >/dev/null || { echo "install-codex: npm is required (apt-get install npm)" >&2; exit 1; }
  echo "install-codex: installing @openai/codex@$VERSION into $dir" >&2
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "@openai/codex@$VERSION" >&2
fi
[ -x "$bin" ] || { echo "install-codex: expected binary missing: $bin" >&2; exit 1; }
mkdir -p "$CACHE/bin"
ln -sfn "$bin" "$CACHE/bin/codex"
"$CACHE/bin/codex" --version >&2
