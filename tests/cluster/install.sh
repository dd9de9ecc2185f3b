#!/usr/bin/env bash
# Installs everything the single-node test cluster (tests/cluster/up.sh)
# needs. No prebuilt Kubernetes can be fetched here, so the control plane,
# the kubelet, kubectl, etcd and containerd are built with the go command
# from the Go modules in tests/cluster/go/ (which pin every dependency in
# their go.sum); runc, the CNI plugins and the image tools come from Debian.
#
#   CODEX_MCP_K8S_VERSION   the Kubernetes release to build (default 1.37.2,
#                           the one tests/cluster/go/kubernetes/go.mod pins;
#                           another release, e.g. 1.35.4, gets a module
#                           derived from that one with `go mod tidy`)
#
# Idempotent. Each release is cached side by side in
#   $CODEX_MCP_CACHE/kubernetes-<version>/{bin,images}
# ($CODEX_MCP_CACHE defaults to ~/.cache/codex-mcp) with the symlink
# $CODEX_MCP_CACHE/kubernetes pointing at the selected one, which up.sh runs.
# When the packages are installed and the cache is complete this returns at
# once, without even an `apt-get update`. A cold build takes about 20 minutes
# on 2 cores; with the go command's build cache warm, a rebuild mostly links.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${CODEX_MCP_CACHE:-$HOME/.cache/codex-mcp}"
CURRENT="$CACHE/kubernetes"
MODULES="$HERE/go"
# The release the kubernetes module requires (one-line or in a block).
PINNED="$(awk '$1 == "require" { $0 = substr($0, 9) } $1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print substr($2, 2); exit }' "$MODULES/kubernetes/go.mod")"
[ -n "$PINNED" ] || { echo "install.sh: error: $MODULES/kubernetes/go.mod requires no k8s.io/kubernetes" >&2; exit 1; }
VERSION="${CODEX_MCP_K8S_VERSION:-$PINNED}"
VERSION="${VERSION#v}"
DEST="$CACHE/kubernetes-$VERSION"
# Bump when the build recipe below changes (flags, tags, image layout) so
# that caches built by an older recipe are rebuilt rather than trusted. The
# modules' go.mod and go.sum are part of the key as well.
RECIPE=1
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl
  containerd containerd-shim-runc-v2 ctr)
PACKAGES=(
  gcc libc6-dev # the pause binary
  runc containernetworking-plugins
  buildah busybox-static
  openssl socat iproute2 util-linux procps jq curl python3
)

log() { echo "install.sh: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}
[[ "$VERSION" =~ ^1\.[0-9]+\.[0-9]+$ ]] || die "CODEX_MCP_K8S_VERSION must look like 1.37.2, got '$VERSION'"

cache_key() {
  echo "$RECIPE $(cat "$MODULES"/kubernetes/go.{mod,sum} "$MODULES"/containerd/go.{mod,sum} | sha256sum | cut -c1-16)"
}

missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -qx 'install ok installed' || echo "$p"
  done
}

cache_complete() { # DIR
  local c
  [ "$(cat "$1/.complete" 2>/dev/null)" = "$(cache_key)" ] || return 1
  for c in "${COMPONENTS[@]}"; do [ -x "$1/bin/$c" ] || return 1; done
  [ -s "$1/images/pause.tar" ]
}

if [ -z "$(missing_packages)" ] && cache_complete "$DEST"; then
  [ "$(readlink "$CURRENT" 2>/dev/null)" = "$(basename "$DEST")" ] || ln -sfn "$(basename "$DEST")" "$CURRENT"
  log "everything present; cluster binaries in $DEST"
  exit 0
fi
[ "$(id -u)" = 0 ] || die "must run as root (installs Debian packages and, later, runs a kubelet)"
START=$SECONDS
# Two installs into one cache would build twice and race on the result.
mkdir -p "$CACHE"
exec 9>"$CACHE/.install.lock"
flock 9

# --- Debian packages ----------------------------------------------------------
if [ -n "$(missing_packages)" ]; then
  # Wait for, rather than fail on, another apt or dpkg run holding the lock.
  APT_WAIT=(-o DPkg::Lock::Timeout=600)
  log "apt-get update"
  apt-get "${APT_WAIT[@]}" update -qq
  log "installing Debian packages: $(missing_packages | tr '\n' ' ')"
  # policy-rc.d keeps packages' own services from being started.
  policy=/usr/sbin/policy-rc.d
  [ -e "$policy" ] || {
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  }
  DEBIAN_FRONTEND=noninteractive apt-get "${APT_WAIT[@]}" install -y -q --no-install-recommends \
    "${PACKAGES[@]}" >"$CACHE/apt-install.log" 2>&1 || {
    tail -n 30 "$CACHE/apt-install.log" >&2
    die "apt-get install failed (full output in $CACHE/apt-install.log)"
  }
  rm -f "$policy"
  trap - EXIT
fi
[ -z "$(missing_packages)" ] || die "packages still missing after install: $(missing_packages | tr '\n' ' ')"
if cache_complete "$DEST"; then
  ln -sfn "$(basename "$DEST")" "$CURRENT"
  log "cluster binaries already built in $DEST"
  exit 0
fi

# --- the go command -------------------------------------------------------------
GO="$(command -v go || true)"
[ -n "$GO" ] || GO=/usr/local/go/bin/go
[ -x "$GO" ] || die "no go command on PATH or at /usr/local/go/bin/go (the modules need Go $(sed -n 's/^go //p' "$MODULES/kubernetes/go.mod") or newer)"
# Binaries without paths of this machine, without VCS stamps (the modules
# live in a repository the go command would otherwise inspect), and built
# exactly from the committed go.sum.
export GOFLAGS="-trimpath -buildvcs=false -mod=readonly" CGO_ENABLED=0

# --- build ------------------------------------------------------------------------
WORK="$(mktemp -d "$CACHE/.build.XXXXXX")"
LOG="$WORK/build.log"
cleanup() {
  local rc=$?
  if [ $rc -ne 0 ] && [ -f "$LOG" ]; then
    log "build failed; last lines of $LOG:"
    tail -n 40 "$LOG" >&2
  fi
  rm -rf "$WORK" 2>/dev/null || { chmod -R u+w "$WORK" && rm -rf "$WORK"; }
}
trap cleanup EXIT
# A build cache of its own, removed with the work directory: the go command's
# shared one would keep about 5 GB per release for rebuilds that the cache of
# binaries makes rare. Export GOCACHE to keep one anyway.
export GOCACHE="${GOCACHE:-$WORK/gocache}"
step() { log "$* ($((SECONDS - START)) s)"; }
# Others may be compiling on the same machine; the build can wait for them.
gobuild() { (cd "$1" && shift && nice -n 10 "$GO" build "$@") >>"$LOG" 2>&1; }
"$GO" version >>"$LOG"
mkdir -p "$WORK/out/bin" "$WORK/out/images"

# The kubernetes module pins one release. Any other is built from a copy
# that requires that release instead, with k8s.io/kubernetes's staging
# modules replaced by their published versions and etcd at the version that
# release itself depends on; `go mod tidy` resolves the rest.
KMOD="$MODULES/kubernetes"
KSRC="$(cd "$KMOD" && GOFLAGS=-mod=mod "$GO" mod download -json "k8s.io/kubernetes@v$VERSION" | jq -r '.Dir // empty')"
[ -d "$KSRC" ] || die "the Go module proxy did not serve k8s.io/kubernetes@v$VERSION"
if [ "$VERSION" != "$PINNED" ]; then
  step "deriving a module for Kubernetes $VERSION"
  KMOD="$WORK/kubernetes-module"
  mkdir -p "$KMOD"
  ETCD="$(awk '$1 == "go.etcd.io/etcd/client/v3" {print $2; exit}' "$KSRC/go.mod")"
  [ -n "$ETCD" ] || die "k8s.io/kubernetes@v$VERSION's go.mod names no go.etcd.io/etcd/client/v3"
  {
    sed -n -e '/^module /p' -e '/^go /p' "$MODULES/kubernetes/go.mod"
    printf 'require (\n\tk8s.io/kubernetes v%s\n\tgo.etcd.io/etcd/server/v3 %s\n)\n' "$VERSION" "$ETCD"
    echo "replace ("
    awk -v v="v0.${VERSION#1.}" '$1 ~ /^k8s\.io\// && $2 == "=>" && $3 ~ /^\.\/staging\// {print "\t" $1 " => " $1 " " v}' "$KSRC/go.mod"
    echo ")"
    sed -n '/^tool (/,/^)/p' "$MODULES/kubernetes/go.mod"
  } >"$KMOD/go.mod"
  (cd "$KMOD" && GOFLAGS=-mod=mod "$GO" mod tidy) >>"$LOG" 2>&1 || die "could not derive a module for Kubernetes $VERSION"
fi

MINOR="$(cut -d. -f2 <<<"$VERSION")"
BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
LDFLAGS="-s -w"
# What `kubectl version` and /version report, as the release build sets them.
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDFLAGS+=" -X $pkg.gitVersion=v$VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$MINOR"
  LDFLAGS+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$BUILD_DATE"
done
step "building Kubernetes $VERSION and etcd (the longest step)"
PKGS=()
for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do PKGS+=("k8s.io/kubernetes/cmd/$c"); done
gobuild "$KMOD" -ldflags "$LDFLAGS" -o "$WORK/out/bin/" "${PKGS[@]}"
gobuild "$KMOD" -ldflags "-s -w" -o "$WORK/out/bin/etcd" go.etcd.io/etcd/server/v3
"$WORK/out/bin/kube-apiserver" --version >>"$LOG"
"$WORK/out/bin/etcd" --version >>"$LOG"

step "building containerd"
# Only the overlayfs and native snapshotters are used; the others need cgo
# or devices this cluster has no use for.
CTAGS="urfave_cli_no_docs osusergo netgo no_btrfs no_devmapper no_zfs no_tracing"
CMOD="$MODULES/containerd"
CVERSION="$(cd "$CMOD" && "$GO" list -m -f '{{.Version}}' github.com/containerd/containerd/v2)"
CLDFLAGS="-s -w -X github.com/containerd/containerd/v2/version.Version=${CVERSION#v}"
gobuild "$CMOD" -tags "$CTAGS" -ldflags "$CLDFLAGS" -o "$WORK/out/bin/" \
  github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/ctr
gobuild "$CMOD" -tags "$CTAGS no_grpc" -ldflags "$CLDFLAGS" -o "$WORK/out/bin/" \
  github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
"$WORK/out/bin/containerd" --version >>"$LOG"

step "building the pause image"
gcc -Os -static -DVERSION="v$VERSION-codex-mcp" -o "$WORK/pause" "$KSRC/build/pause/linux/pause.c" >>"$LOG" 2>&1
strip "$WORK/pause"
"$HERE/build-image.sh" localhost/codex-mcp/pause:1 --file "$WORK/pause:/pause" \
  --entrypoint /pause --user 65535 --output "$WORK/out/images/pause.tar" >>"$LOG" 2>&1

cache_key >"$WORK/out/.complete"
rm -rf "$DEST"
mv "$WORK/out" "$DEST"
ln -sfn "$(basename "$DEST")" "$CURRENT"
step "done: cluster binaries and pause image in $DEST ($(du -sh "$DEST" | cut -f1))"
