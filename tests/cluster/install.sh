#!/usr/bin/env bash
# Installs everything the single-node test cluster (tests/cluster/up.sh)
# needs, from Debian's packages only: no prebuilt Kubernetes can be fetched
# here, so the control plane and the kubelet are built from Debian's
# Kubernetes source package, and the pause image from its pause.c.
#
# Idempotent. The built binaries and the pause image are cached in
#   $CODEX_MCP_CACHE/kubernetes-<source version>/{bin,images}
# ($CODEX_MCP_CACHE defaults to ~/.cache/codex-mcp) with the symlink
# $CODEX_MCP_CACHE/kubernetes pointing at the current one. When the packages
# are installed and the cache is complete this returns at once, without even
# an `apt-get update`. A cold run takes about 10 minutes on 2 cores.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${CODEX_MCP_CACHE:-$HOME/.cache/codex-mcp}"
CURRENT="$CACHE/kubernetes"
# Bump when the build recipe below changes (flags, patches, image layout) so
# that caches built by an older recipe are rebuilt rather than trusted.
RECIPE=2
# kubectl is built too rather than taken from Debian's kubernetes-client: the
# machine may already have another kubectl at /usr/bin/kubectl (a package
# conflict), and the harness wants one that matches its server.
COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)
PACKAGES=(
  golang-1.19-go rsync make gcc libc6-dev # building Kubernetes and pause
  etcd-server containerd runc containernetworking-plugins
  buildah busybox-static
  golang-github-modern-go-reflect2-dev # see the reflect2 note below
  openssl socat iproute2 util-linux procps jq
)

log() { echo "install.sh: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -qx 'install ok installed' || echo "$p"
  done
}

cache_complete() { # DIR
  local c
  [ "$(cat "$1/.complete" 2>/dev/null)" = "$RECIPE" ] || return 1
  for c in "${COMPONENTS[@]}"; do [ -x "$1/bin/$c" ] || return 1; done
  [ -s "$1/images/pause.tar" ]
}

if [ -z "$(missing_packages)" ] && cache_complete "$CURRENT"; then
  log "everything present; cluster binaries in $(readlink -f "$CURRENT")"
  exit 0
fi
[ "$(id -u)" = 0 ] || die "must run as root (installs Debian packages and, later, runs a kubelet)"
START=$SECONDS
# Two installs into one cache would build twice and race on the result.
mkdir -p "$CACHE"
exec 9>"$CACHE/.install.lock"
flock 9

# --- Debian packages and the source of Kubernetes -------------------------
# apt-get source needs deb-src entries. Derive them from the machine's own
# deb entries so the same mirror (or snapshot) is used; never name a mirror.
ensure_deb_src() {
  local src=/etc/apt/sources.list.d/debian.sources
  local ours=/etc/apt/sources.list.d/codex-mcp-deb-src.sources
  local legacy=/etc/apt/sources.list.d/codex-mcp-deb-src.list
  [ -e "$ours" ] || [ -e "$legacy" ] && return 0
  if [ -f "$src" ]; then
    sed -e 's/^Types:.*$/Types: deb-src/' "$src" >"$ours.tmp"
    mv "$ours.tmp" "$ours"
  elif [ -f /etc/apt/sources.list ]; then
    sed -n -e 's/^deb \(.*\)$/deb-src \1/p' /etc/apt/sources.list >"$legacy.tmp"
    [ -s "$legacy.tmp" ] || die "no deb lines in /etc/apt/sources.list to derive deb-src from"
    mv "$legacy.tmp" "$legacy"
  else
    die "found neither $src nor /etc/apt/sources.list to derive deb-src entries from"
  fi
}

ensure_deb_src
# Wait for, rather than fail on, another apt or dpkg run holding the lock.
APT_WAIT=(-o DPkg::Lock::Timeout=600)
log "apt-get update"
apt-get "${APT_WAIT[@]}" update -qq
if [ -n "$(missing_packages)" ]; then
  log "installing Debian packages: $(missing_packages | tr '\n' ' ')"
  # policy-rc.d keeps the packages' own services (a system containerd) from
  # being started: the harness runs its own, privately configured one.
  policy=/usr/sbin/policy-rc.d
  [ -e "$policy" ] || {
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  }
  mkdir -p "$CACHE"
  DEBIAN_FRONTEND=noninteractive apt-get "${APT_WAIT[@]}" install -y -q --no-install-recommends \
    "${PACKAGES[@]}" >"$CACHE/apt-install.log" 2>&1 || {
    tail -n 30 "$CACHE/apt-install.log" >&2
    die "apt-get install failed (full output in $CACHE/apt-install.log)"
  }
  rm -f "$policy"
  trap - EXIT
fi
[ -z "$(missing_packages)" ] || die "packages still missing after install: $(missing_packages | tr '\n' ' ')"

VERSION="$(apt-cache showsrc --only-source kubernetes 2>/dev/null | awk '/^Version:/ {print $2}' | sort -V | tail -n1)"
[ -n "$VERSION" ] || die "apt knows no source package 'kubernetes' (are the deb-src entries working?)"
DEST="$CACHE/kubernetes-$VERSION"
if cache_complete "$DEST"; then
  ln -sfn "$(basename "$DEST")" "$CURRENT"
  log "cluster binaries already built in $DEST"
  exit 0
fi

# --- build ------------------------------------------------------------------
mkdir -p "$CACHE"
WORK="$(mktemp -d "$CACHE/.build.XXXXXX")"
LOG="$WORK/build.log"
cleanup() {
  local rc=$?
  if [ $rc -ne 0 ] && [ -f "$LOG" ]; then
    log "build failed; last lines of $LOG:"
    tail -n 40 "$LOG" >&2
  fi
  # Should anything in the tree be read-only, make it removable and retry.
  rm -rf "$WORK" 2>/dev/null || { chmod -R u+w "$WORK" && rm -rf "$WORK"; }
}
trap cleanup EXIT
step() { log "$* ($((SECONDS - START)) s)"; }

step "fetching the kubernetes $VERSION source package"
(cd "$WORK" && apt-get "${APT_WAIT[@]}" source --download-only "kubernetes=$VERSION" >>"$LOG" 2>&1)
ORIGS=("$WORK"/kubernetes_*.orig.tar.*)
ORIG="${ORIGS[0]}"
[ -f "$ORIG" ] || die "apt-get source did not fetch an orig tarball (see $LOG)"
mkdir -p "$WORK/gopath/src/k8s.io" "$WORK/unpack"
tar -xf "$ORIG" -C "$WORK/unpack"
mv "$WORK"/unpack/kubernetes-* "$WORK/gopath/src/k8s.io/kubernetes"
SRC="$WORK/gopath/src/k8s.io/kubernetes"
[ -d "$SRC/vendor" ] || die "the orig tarball has no vendor/ directory; cannot build offline"
UPSTREAM="$(sed -n -e 's/^\([0-9][0-9.]*\)-.*/\1/p' <<<"${VERSION##*really}")"
[ -n "$UPSTREAM" ] || UPSTREAM="${VERSION%%-*}"

# The controller-manager's hostpath provisioner makes each volume directory
# 0750 root, which a non-root pod cannot write (hostPath volumes get no
# fsGroup). Make them 0777 like kind's local-path provisioner, and give them a
# harness-owned base (/tmp/codex-mcp-pv, a symlink up.sh points at its own
# directory; the deleter only accepts paths under /tmp).
HP="$SRC/pkg/volume/hostpath/host_path.go"
if ! grep -q 'return pv, os.MkdirAll(pv.Spec.HostPath.Path, 0750)' "$HP" ||
  ! grep -q 'basePath: "hostpath_pv"' "$HP"; then
  die "unexpected $HP: the provisioner patch no longer applies"
fi
sed -i \
  -e 's|return pv, os.MkdirAll(pv.Spec.HostPath.Path, 0750)|if err := os.MkdirAll(pv.Spec.HostPath.Path, 0777); err != nil { return pv, err }; return pv, os.Chmod(pv.Spec.HostPath.Path, 0777)|' \
  -e 's|basePath: "hostpath_pv"|basePath: "codex-mcp-pv"|' "$HP"

# Kubernetes 1.20 vendors reflect2 1.0.1, whose map iteration is broken
# under Go 1.18+: the apiserver dies (SIGSEGV in mapiterinit) as soon as it
# encodes a custom resource's metadata. Debian's reflect2 1.0.2 is the fix.
R2=/usr/share/gocode/src/github.com/modern-go/reflect2
[ -f "$R2/go_above_118.go" ] || die "$R2 lacks the Go 1.18 fix (golang-github-modern-go-reflect2-dev)"
rm -rf "$SRC/vendor/github.com/modern-go/reflect2"
cp -r "$R2" "$SRC/vendor/github.com/modern-go/reflect2"

export PATH="/usr/lib/go-1.19/bin:$PATH" GO111MODULE=off GOFLAGS="" CGO_ENABLED=1
export GOPATH="$WORK/gopath" GOCACHE="$WORK/gocache" GOTMPDIR="" KUBE_VERBOSE=0
go version >>"$LOG"

step "generating code (make generated_files)"
make -C "$SRC" generated_files >>"$LOG" 2>&1

step "building ${COMPONENTS[*]} (the longest step)"
V=k8s.io/kubernetes/vendor/k8s.io
LDFLAGS="-s -w"
for pkg in component-base/version client-go/pkg/version; do
  LDFLAGS+=" -X $V/$pkg.gitVersion=v$UPSTREAM -X $V/$pkg.gitMajor=${UPSTREAM%%.*}"
  LDFLAGS+=" -X $V/$pkg.gitMinor=$(cut -d. -f2 <<<"$UPSTREAM") -X $V/$pkg.gitTreeState=clean"
  LDFLAGS+=" -X $V/$pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
done
mkdir -p "$WORK/out/bin" "$WORK/out/images"
PKGS=()
for c in "${COMPONENTS[@]}"; do PKGS+=("./cmd/$c"); done
(cd "$SRC" && go build -ldflags "$LDFLAGS" -o "$WORK/out/bin/" "${PKGS[@]}") >>"$LOG" 2>&1
"$WORK/out/bin/kube-apiserver" --version >>"$LOG"

step "building the pause image"
gcc -Os -static -DVERSION="v$UPSTREAM-codex-mcp" -o "$WORK/pause" "$SRC/build/pause/linux/pause.c" >>"$LOG" 2>&1
strip "$WORK/pause"
"$HERE/build-image.sh" localhost/codex-mcp/pause:3.4 --file "$WORK/pause:/pause" \
  --entrypoint /pause --user 65535 --output "$WORK/out/images/pause.tar" >>"$LOG" 2>&1

echo "$RECIPE" >"$WORK/out/.complete"
rm -rf "$DEST"
mv "$WORK/out" "$DEST"
ln -sfn "$(basename "$DEST")" "$CURRENT"
step "done: cluster binaries and pause image in $DEST; cold build took $((SECONDS - START)) s"
