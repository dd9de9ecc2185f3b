#!/usr/bin/env bash
# Builds the test cluster's NetworkPolicy enforcer,
#   $CODEX_MCP_CACHE/bin/kube-network-policies
# from the Go module in tests/cluster/go/netpol: a command of the harness's
# own around the policy engine of sigs.k8s.io/kube-network-policies (see its
# main.go for why it is not the upstream command). up.sh runs it and hooks it
# into the kernel. Idempotent: returns at once when the binary is built from
# the current module.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${CODEX_MCP_CACHE:-$HOME/.cache/codex-mcp}"
MOD="$HERE/go/netpol"
BIN="$CACHE/bin"
OUT="$BIN/kube-network-policies"
STAMP="$BIN/.netpol-build"
RECIPE=1

log() { echo "install-netpol.sh: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

key="$RECIPE $(cat "$MOD/go.mod" "$MOD/go.sum" "$MOD/main.go" | sha256sum | cut -c1-16)"
if [ -x "$OUT" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$key" ]; then
  log "already built: $OUT"
  exit 0
fi
GO="$(command -v go || true)"
[ -n "$GO" ] || GO=/usr/local/go/bin/go
[ -x "$GO" ] || die "no go command on PATH or at /usr/local/go/bin/go"
export GOFLAGS="-trimpath -buildvcs=false -mod=readonly" CGO_ENABLED=0

START=$SECONDS
mkdir -p "$BIN"
WORK="$(mktemp -d "$CACHE/.netpol.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
# A build cache of its own, as in install.sh; export GOCACHE to keep one.
export GOCACHE="${GOCACHE:-$WORK/gocache}"
log "building $OUT"
# Others may be compiling on the same machine; the build can wait for them.
(cd "$MOD" && nice -n 10 "$GO" build -ldflags "-s -w" -o "$WORK/out" .) || die "building $MOD failed"
"$WORK/out" --help >/dev/null 2>&1 || [ $? -eq 2 ] || die "the built $OUT does not run"
mv "$WORK/out" "$OUT"
echo "$key" >"$STAMP"
log "built $OUT in $((SECONDS - START)) s"
