#!/usr/bin/env bash
# Installs the Codex CLI from npm into the cache and links it as $CACHE/bin/codex.
# Also installs bubblewrap (bwrap), which isolates each local run, when it is
# missing and this runs as root (otherwise it says what to install).
# Idempotent: does nothing when the pinned version is already there.
set -euo pipefail
if ! command -v bwrap >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "install-codex: installing bubblewrap (isolates each local run)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bubblewrap >&2 ||
      { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bubblewrap >&2; }
  else
    echo "install-codex: bwrap is missing: install the package bubblewrap (apt-get install bubblewrap); codex-mcp serve refuses to run agents without it" >&2
  fi
fi
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
