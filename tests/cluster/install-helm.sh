#!/usr/bin/env bash
# Builds the real helm CLI, both majors, from the Go module in
# tests/cluster/go/helm (its go.sum pins them and every dependency):
#   $CODEX_MCP_CACHE/bin/helm    Helm 4
#   $CODEX_MCP_CACHE/bin/helm3   Helm 3
# ($CODEX_MCP_CACHE defaults to ~/.cache/codex-mcp). Idempotent: returns at
# once when both are built from the current go.mod and go.sum.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${CODEX_MCP_CACHE:-$HOME/.cache/codex-mcp}"
MOD="$HERE/go/helm"
BIN="$CACHE/bin"
STAMP="$BIN/.helm-build"
RECIPE=1

log() { echo "install-helm.sh: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

key="$RECIPE $(cat "$MOD/go.mod" "$MOD/go.sum" | sha256sum | cut -c1-16)"
if [ -x "$BIN/helm" ] && [ -x "$BIN/helm3" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$key" ]; then
  log "helm already built: $BIN/helm ($("$BIN/helm" version --short)), $BIN/helm3 ($("$BIN/helm3" version --short))"
  exit 0
fi
GO="$(command -v go || true)"
[ -n "$GO" ] || GO=/usr/local/go/bin/go
[ -x "$GO" ] || die "no go command on PATH or at /usr/local/go/bin/go"
export GOFLAGS="-trimpath -buildvcs=false -mod=readonly" CGO_ENABLED=0

START=$SECONDS
mkdir -p "$BIN"
WORK="$(mktemp -d "$CACHE/.helm.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
# A build cache of its own, as in install.sh; export GOCACHE to keep one.
export GOCACHE="${GOCACHE:-$WORK/gocache}"
# helm prints its version from these; the module system knows the real one.
ldflags() { # MODULE-PATH
  local v minor p
  v="$(cd "$MOD" && "$GO" list -m -f '{{.Version}}' "$1")"
  echo -n "-s -w -X $1/internal/version.version=$v -X $1/internal/version.gitTreeState=clean"
  # Helm 3 takes the Kubernetes version it assumes for `helm template` and
  # lint (.Capabilities.KubeVersion) from the linker too, as its Makefile
  # does; without it, it assumes 1.20, which the chart's kubeVersion refuses.
  if [ "$1" = helm.sh/helm/v3 ]; then
    minor="$(cd "$MOD" && "$GO" list -m -f '{{.Version}}' k8s.io/client-go | cut -d. -f2)"
    for p in pkg/lint/rules pkg/chartutil; do
      echo -n " -X $1/$p.k8sVersionMajor=1 -X $1/$p.k8sVersionMinor=$minor"
    done
  fi
  echo
}
build() { # MODULE-PATH OUTPUT
  log "building $1/cmd/helm into $2"
  # Others may be compiling on the same machine; the build can wait for them.
  (cd "$MOD" && nice -n 10 "$GO" build -ldflags "$(ldflags "$1")" -o "$WORK/out" "$1/cmd/helm") ||
    die "building $1/cmd/helm failed"
  "$WORK/out" version --short >/dev/null || die "the built $2 does not run"
  mv "$WORK/out" "$BIN/$2"
}
build helm.sh/helm/v4 helm
build helm.sh/helm/v3 helm3
echo "$key" >"$STAMP"
log "built $BIN/helm ($("$BIN/helm" version --short)) and $BIN/helm3 ($("$BIN/helm3" version --short)) in $((SECONDS - START)) s"
