#!/usr/bin/env bash
# Builds the edge controller the chart's HTTPRoute and Ingress are tested
# behind, and lays out the Gateway API CRDs it serves:
#   $CODEX_MCP_CACHE/bin/traefik     Traefik Proxy v3 (its cmd/traefik), from the
#                                    Go module in tests/cluster/go/edge
#   $CODEX_MCP_CACHE/gateway-api/standard-install.yaml
#                                    the standard channel CRDs of the
#                                    sigs.k8s.io/gateway-api module that go.mod
#                                    pins, for `kubectl apply --server-side`
# Traefik runs as a host process against a kubeconfig (tests/support/edge.rs
# starts it; see there for its flags). The CRDs (1.2 MB) are not committed:
# the module cache holds them, verified by go.sum like the code.
#
# The build needs one module the proxy cannot serve as Traefik pins it:
# go-acme/lego, whose DNS providers import SDK versions the proxy refuses. The
# build uses a copy of lego from the module cache without those providers
# (ACME DNS challenges then fail with a clear error; nothing here uses ACME),
# laid out in a scratch copy of the module, never in the repository.
#
# --tidy runs `go mod tidy` on that scratch copy and writes go.mod and go.sum
# back (after a change to go.mod). Otherwise idempotent: returns at once when
# both files are there from the current module.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${CODEX_MCP_CACHE:-$HOME/.cache/codex-mcp}"
MOD="$HERE/go/edge"
BIN="$CACHE/bin"
OUT="$BIN/traefik"
CRDS_DIR="$CACHE/gateway-api"
CRDS="$CRDS_DIR/standard-install.yaml"
STAMP="$BIN/.edge-build"
RECIPE=1
# The lego that go.mod replaces, as the module proxy serves it (go verifies
# the download against the checksum database; this pins it all the same).
LEGO=github.com/go-acme/lego/v5
LEGO_SUM="h1:Jt6xAP9xQrJ3SLLGgxejfDDd3pzdrmuLCWe4oTqHHQc="

log() { echo "install-edge.sh: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

tidy=0
[ "${1:-}" = --tidy ] && tidy=1

key="$RECIPE $(cat "$MOD/go.mod" "$MOD/go.sum" "$MOD"/ext/* | sha256sum | cut -c1-16)"
if [ "$tidy" = 0 ] && [ -x "$OUT" ] && [ -s "$CRDS" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$key" ]; then
  log "already built: $OUT ($("$OUT" version | awk '/^Version:/ { print $2 }')), $CRDS"
  exit 0
fi
GO="$(command -v go || true)"
[ -n "$GO" ] || GO=/usr/local/go/bin/go
[ -x "$GO" ] || die "no go command on PATH or at /usr/local/go/bin/go"
export GOFLAGS="-trimpath -buildvcs=false" CGO_ENABLED=0

START=$SECONDS
mkdir -p "$BIN" "$CRDS_DIR"
WORK="$(mktemp -d "$CACHE/.edge.XXXXXX")"
# The module cache's copies are read-only; so is Go's build cache.
trap 'chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT
# A build cache of its own, as in install.sh; export GOCACHE to keep one.
export GOCACHE="${GOCACHE:-$WORK/gocache}"

# The scratch copy of the module, with lego beside it where go.mod's
# replace line points.
cp -r "$MOD" "$WORK/mod"
lego_version="$(awk -v m="$LEGO" '$1 == m && $3 == "=>" { print $2 }' "$MOD/go.mod")"
[ -n "$lego_version" ] || die "go.mod has no 'replace $LEGO VERSION => ...' line"
lego_json="$(cd "$WORK" && GOFLAGS=-mod=mod "$GO" mod download -json "$LEGO@$lego_version")" ||
  die "downloading $LEGO@$lego_version failed: $lego_json"
lego_dir="$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' <<<"$lego_json")"
lego_sum="$(sed -n 's/^\t"Sum": "\(.*\)",$/\1/p' <<<"$lego_json")"
[ "$lego_sum" = "$LEGO_SUM" ] || die "$LEGO@$lego_version has checksum $lego_sum, not the pinned $LEGO_SUM"
mkdir "$WORK/mod/lego"
(cd "$lego_dir" && tar --exclude=./providers/dns -cf - .) | tar -C "$WORK/mod/lego" -xf -
chmod -R u+w "$WORK/mod/lego"
mkdir -p "$WORK/mod/lego/providers/dns"
cat >"$WORK/mod/lego/providers/dns/dns.go" <<'EOF'
// Package dns is lego's DNS provider registry without its providers, whose
// SDKs the Go module proxy does not serve (codex-mcp's tests/cluster/install-edge.sh).
package dns

import (
	"fmt"

	"github.com/go-acme/lego/v5/challenge"
)

// NewDNSChallengeProviderByName refuses every provider: none is built in.
func NewDNSChallengeProviderByName(name string) (challenge.Provider, error) {
	return nil, fmt.Errorf("ACME DNS challenge provider %q: this Traefik is built without DNS providers", name)
}
EOF

if [ "$tidy" = 1 ]; then
  log "go mod tidy in a scratch copy of $MOD"
  (cd "$WORK/mod" && nice -n 10 "$GO" mod tidy) || die "go mod tidy failed"
  cp "$WORK/mod/go.mod" "$WORK/mod/go.sum" "$MOD/"
  log "wrote $MOD/go.mod and go.sum"
  exit 0
fi
export GOFLAGS="$GOFLAGS -mod=readonly"

traefik_version="$(cd "$WORK/mod" && "$GO" list -m -f '{{.Version}}' github.com/traefik/traefik/v3)"
log "building Traefik $traefik_version into $OUT"
# Traefik prints its version from this, as its own Makefile sets it.
ldflags="-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$traefik_version"
# Others may be compiling on the same machine; the build can wait for them.
(cd "$WORK/mod" && nice -n 10 "$GO" build -ldflags "$ldflags" -o "$WORK/out" github.com/traefik/traefik/v3/cmd/traefik) ||
  die "building Traefik failed"
"$WORK/out" version | grep -q "^Version: *$traefik_version\$" || die "the built traefik does not run"

# The standard channel as its release's standard-install.yaml has it: every
# file of config/crd/standard (the CRDs and the policy that keeps
# experimental CRDs from replacing them).
gwapi_dir="$(cd "$WORK/mod" && "$GO" mod download -json sigs.k8s.io/gateway-api | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
[ -d "$gwapi_dir/config/crd/standard" ] || die "no config/crd/standard in sigs.k8s.io/gateway-api ($gwapi_dir)"
gwapi_version="$(basename "$gwapi_dir" | sed 's/.*@//')"
{
  echo "# Gateway API $gwapi_version, standard channel: config/crd/standard of the"
  echo "# sigs.k8s.io/gateway-api module (tests/cluster/install-edge.sh)."
  for f in "$gwapi_dir"/config/crd/standard/*.yaml; do
    echo "---"
    cat "$f"
  done
} >"$WORK/crds.yaml"

mv "$WORK/out" "$OUT"
mv "$WORK/crds.yaml" "$CRDS"
echo "$key" >"$STAMP"
log "built $OUT (Traefik $traefik_version) and $CRDS (Gateway API $gwapi_version) in $((SECONDS - START)) s"
