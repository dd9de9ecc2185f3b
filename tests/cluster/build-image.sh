#!/usr/bin/env bash
# Builds a container image from files on this machine and loads it into the
# test cluster's containerd, so pods can run it with `imagePullPolicy: Never`
# (or IfNotPresent): nothing is pulled from a registry.
#
# Usage:
#   build-image.sh IMAGE:TAG [options]
#
# Options (each may be repeated where it makes sense):
#   --bin PATH          copy an executable to /usr/local/bin/<name>, with every
#                       shared library `ldd` says it needs (and the dynamic
#                       loader) at the same paths, so a dynamically linked
#                       binary runs in an otherwise empty image
#   --file SRC:DST      copy a file or directory SRC to DST in the image
#   --busybox           add busybox-static as /bin/busybox with all its applets
#                       (sh, ps, cat, ls, id, ...) linked in /bin, /sbin, /usr/bin
#   --user UID          run as this numeric user; adds a passwd/group entry
#                       `app` for it with home /home/app owned by it
#   --entrypoint PATH   the image's entrypoint (default: none)
#   --cmd ARG           append ARG to the image's command
#   --env NAME=VALUE    set an environment variable in the image
#   --workdir DIR       the image's working directory
#   --output FILE       write an OCI archive to FILE instead of loading the
#                       image into containerd (no cluster needed)
#
# IMAGE is normalised as Kubernetes does (`foo/bar:1` is stored as
# `docker.io/foo/bar:1`), so a pod spec can use the short name.
#
# Examples:
#   build-image.sh codex-mcp-test/busybox:1 --busybox --user 1000
#   build-image.sh codex-mcp/agent:dev --busybox --bin target/debug/codex-mcp \
#       --bin "$CODEX_MCP_CACHE/bin/codex" --user 1000
#
# Images are built with buildah (vfs storage, a private throwaway storage
# root, so the machine's own container storage is never touched) and imported
# with the harness's ctr (`ctr -n k8s.io --address <harness socket> images import`).
set -euo pipefail

die() {
  echo "build-image.sh: error: $*" >&2
  exit 1
}
usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -ge 1 ] || usage
case "$1" in -h | --help) usage ;; -*) die "the first argument must be IMAGE:TAG" ;; esac
IMAGE="$1"
shift

BINS=() FILES=() CMD=() ENVS=()
BUSYBOX=0 USER_ID="" ENTRYPOINT="" WORKDIR="" OUTPUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BINS+=("${2:?--bin needs a path}"); shift 2 ;;
    --file) FILES+=("${2:?--file needs SRC:DST}"); shift 2 ;;
    --busybox) BUSYBOX=1; shift ;;
    --user) USER_ID="${2:?--user needs a numeric uid}"; shift 2 ;;
    --entrypoint) ENTRYPOINT="${2:?--entrypoint needs a path}"; shift 2 ;;
    --cmd) CMD+=("${2?--cmd needs an argument}"); shift 2 ;;
    --env) ENVS+=("${2:?--env needs NAME=VALUE}"); shift 2 ;;
    --workdir) WORKDIR="${2:?--workdir needs a directory}"; shift 2 ;;
    --output) OUTPUT="${2:?--output needs a file}"; shift 2 ;;
    -h | --help) usage ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done
if [ -n "$USER_ID" ] && ! [[ "$USER_ID" =~ ^[0-9]+$ ]]; then
  die "--user takes a numeric uid (Kubernetes' runAsNonRoot cannot check a name), got '$USER_ID'"
fi
command -v buildah >/dev/null || die "buildah is not installed; run tests/cluster/install.sh"

# Kubernetes (and so the CRI) looks images up by their fully qualified name.
normalise() {
  local ref="$1" first rest
  case "$ref" in */*) first="${ref%%/*}" rest="${ref#*/}" ;; *) first="" rest="$ref" ;; esac
  if [ -n "$first" ] && { [[ "$first" == *.* ]] || [[ "$first" == *:* ]] || [ "$first" = localhost ]; }; then
    echo "$ref"
  elif [ -n "$first" ]; then
    echo "docker.io/$ref"
  else
    echo "docker.io/library/$ref"
  fi
}
REF="$(normalise "$IMAGE")"
[[ "${REF##*/}" == *:* ]] || REF="$REF:latest"

if [ -z "$OUTPUT" ]; then
  [ -S "$SOCKET" ] || die "the test cluster's containerd is not running ($SOCKET); run tests/cluster/up.sh first"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/codex-mcp-image.XXXXXX")"
BUILDAH=(buildah --root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs)
CTR_NAME=""
cleanup() {
  if [ -n "$CTR_NAME" ]; then "${BUILDAH[@]}" rm "$CTR_NAME" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

ROOTFS="$WORK/rootfs"
mkdir -p "$ROOTFS"/{etc,tmp,usr/local/bin,root}
chmod 1777 "$ROOTFS/tmp"
chmod 700 "$ROOTFS/root"

# Copies a file to the same absolute path inside the image, following symlinks
# so the image holds the real bytes.
copy_abs() {
  mkdir -p "$ROOTFS$(dirname "$1")"
  cp -L "$1" "$ROOTFS$1"
}

for bin in "${BINS[@]}"; do
  [ -f "$bin" ] || die "--bin $bin: no such file"
  [ -x "$bin" ] || die "--bin $bin: not executable"
  cp -L "$bin" "$ROOTFS/usr/local/bin/$(basename "$bin")"
  chmod 755 "$ROOTFS/usr/local/bin/$(basename "$bin")"
  # ldd prints "name => /path (addr)" for libraries and "/path (addr)" for the
  # loader; a static binary makes it print a notice and fail, which is fine.
  while read -r lib; do
    copy_abs "$lib"
  done < <(ldd "$bin" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u)
done

for spec in "${FILES[@]}"; do
  src="${spec%%:*}" dst="${spec#*:}"
  if [ "$src" = "$spec" ] || [ -z "$dst" ]; then die "--file takes SRC:DST, got '$spec'"; fi
  [ -e "$src" ] || die "--file $spec: no such file $src"
  [[ "$dst" == /* ]] || die "--file $spec: DST must be an absolute path"
  mkdir -p "$ROOTFS$(dirname "$dst")"
  cp -a -L "$src" "$ROOTFS$dst"
done

if [ "$BUSYBOX" = 1 ]; then
  [ -x /bin/busybox ] || die "busybox-static is not installed; run tests/cluster/install.sh"
  # Only the static build runs in an image without libc.
  if ldd /bin/busybox >/dev/null 2>&1; then die "/bin/busybox is not statically linked; install busybox-static"; fi
  mkdir -p "$ROOTFS"/{bin,sbin,usr/bin,usr/sbin}
  cp /bin/busybox "$ROOTFS/bin/busybox"
  while read -r applet; do
    [ -e "$ROOTFS/$applet" ] || [ -L "$ROOTFS/$applet" ] || ln -s /bin/busybox "$ROOTFS/$applet"
  done < <(/bin/busybox --list-full)
fi

# Programs (and Kubernetes' runAsNonRoot with a named user) want passwd and
# group entries; keep any the caller supplied with --file.
[ -e "$ROOTFS/etc/passwd" ] || printf 'root:x:0:0:root:/root:/bin/sh\n' >"$ROOTFS/etc/passwd"
[ -e "$ROOTFS/etc/group" ] || printf 'root:x:0:\n' >"$ROOTFS/etc/group"
if [ -n "$USER_ID" ] && [ "$USER_ID" != 0 ]; then
  printf 'app:x:%s:%s:app:/home/app:/bin/sh\n' "$USER_ID" "$USER_ID" >>"$ROOTFS/etc/passwd"
  printf 'app:x:%s:\n' "$USER_ID" >>"$ROOTFS/etc/group"
  mkdir -p "$ROOTFS/home/app"
  chown "$USER_ID:$USER_ID" "$ROOTFS/home/app"
fi

CTR_NAME="$("${BUILDAH[@]}" from scratch)"
MNT="$("${BUILDAH[@]}" mount "$CTR_NAME")"
# cp -a keeps ownership and modes exactly (buildah copy would reset owners).
cp -a "$ROOTFS/." "$MNT/"
"${BUILDAH[@]}" umount "$CTR_NAME" >/dev/null

# buildah takes exec-form entrypoints and commands as JSON arrays.
json_array() {
  local out="[" sep="" a
  for a; do
    a="${a//\\/\\\\}"
    a="${a//\"/\\\"}"
    out+="$sep\"$a\""
    sep=","
  done
  echo "$out]"
}

CONFIG=(--os linux --arch amd64 --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
for e in "${ENVS[@]}"; do CONFIG+=(--env "$e"); done
if [ -n "$USER_ID" ]; then
  CONFIG+=(--user "$USER_ID")
  [ "$USER_ID" = 0 ] || CONFIG+=(--env HOME=/home/app)
fi
[ -z "$WORKDIR" ] || CONFIG+=(--workingdir "$WORKDIR")
if [ -n "$ENTRYPOINT" ]; then
  CONFIG+=(--entrypoint "$(json_array "$ENTRYPOINT")")
fi
if [ ${#CMD[@]} -gt 0 ]; then
  CONFIG+=(--cmd "$(json_array "${CMD[@]}")")
elif [ "$BUSYBOX" = 1 ] && [ -z "$ENTRYPOINT" ]; then
  CONFIG+=(--cmd '["/bin/sh"]')
fi
"${BUILDAH[@]}" config "${CONFIG[@]}" "$CTR_NAME"

ARCHIVE="${OUTPUT:-$WORK/image.tar}"
mkdir -p "$(dirname "$ARCHIVE")"
rm -f "$ARCHIVE"
"${BUILDAH[@]}" commit --quiet --format oci "$CTR_NAME" "oci-archive:$ARCHIVE:$REF" >/dev/null

if [ -n "$OUTPUT" ]; then
  echo "build-image.sh: wrote $REF to $OUTPUT"
  exit 0
fi
ctr_k8s images import "$ARCHIVE" >/dev/null
has_image "$REF" ||
  die "containerd did not register $REF after the import"
echo "build-image.sh: loaded $REF"
