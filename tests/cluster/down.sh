#!/usr/bin/env bash
# Stops the test cluster that up.sh started and removes what it left on the
# machine: pods (and their processes, network namespaces and mounts), every
# process up.sh started, the containerd shims, mounts under the harness
# directory, the service address and route, the pod bridge, and etcd's data.
# Safe to run when nothing is up, and more than once.
#
# Kept for the next up.sh: the CA and tokens, containerd's image store, logs.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"

log() { echo "down.sh: $*" >&2; }
[ "$(id -u)" = 0 ] || {
  log "error: must run as root"
  exit 1
}
[ -d "$H" ] || exit 0
if [ -z "${CODEX_MCP_CLUSTER_LOCKED:-}" ]; then
  exec 9>"$H/.lock"
  flock 9
fi

CTR=(ctr -n k8s.io --address "$SOCKET")

# 1. Pods, while the apiserver and kubelet can still stop them properly (the
#    kubelet tears down their network through CNI and unmounts volumes).
#    Controllers go first so that nothing recreates what is deleted.
stop_process kube-controller-manager
stop_process kube-scheduler
POD_LOG_DIRS=()
if pid_of kube-apiserver >/dev/null && [ -x "$KUBECTL" ]; then
  while read -r dir; do
    [ -n "$dir" ] && POD_LOG_DIRS+=("/var/log/pods/$dir")
  done < <(k get pods -A -o 'jsonpath={range .items[*]}{.metadata.namespace}_{.metadata.name}_{.metadata.uid}{"\n"}{end}' 2>/dev/null || true)
  if [ ${#POD_LOG_DIRS[@]} -gt 0 ] && pid_of kubelet >/dev/null; then
    log "deleting ${#POD_LOG_DIRS[@]} pod(s)"
    k delete pods -A --all --grace-period 1 --wait=false >/dev/null 2>&1 || true
    # What the kubelet has not finished by then is cleaned up below.
    for _ in $(seq 30); do
      [ -z "$(k get pods -A -o name 2>/dev/null)" ] && break
      sleep 1
    done
  fi
fi

# 2. The kubelet, then whatever containers are left (a pod the kubelet did
#    not get to). Their network namespaces are found from the sandboxes'
#    specs before the containers go.
stop_process kubelet 20
NETNS=()
if pid_of containerd >/dev/null; then
  containers="$("${CTR[@]}" containers ls -q 2>/dev/null || true)"
  for c in $containers; do
    ns="$("${CTR[@]}" containers info "$c" 2>/dev/null |
      jq -r '.Spec.linux.namespaces[]? | select(.type == "network") | .path // empty' 2>/dev/null || true)"
    [ -n "$ns" ] && NETNS+=("$ns")
  done
  for c in $containers; do
    "${CTR[@]}" tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true
  done
  for c in $containers; do
    for _ in $(seq 20); do
      "${CTR[@]}" tasks delete "$c" >/dev/null 2>&1 && break
      "${CTR[@]}" tasks ls -q 2>/dev/null | grep -qxF "$c" || break
      sleep 0.25
    done
    "${CTR[@]}" containers delete "$c" >/dev/null 2>&1 || true
  done
fi

# 3. The remaining daemons, newest first.
stop_process containerd 20
stop_process service-proxy
stop_process kube-apiserver 20
stop_process etcd 20

# 4. Shims outlive containerd, and pod processes outlive their shim. Ours are
#    the shims started with our socket; their children are the containers'
#    init processes (killing a PID namespace's init ends the namespace).
for pid in $(pgrep -f -- "-address $SOCKET" || true); do
  [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(command -v containerd-shim-runc-v2)" ] || continue
  pkill -KILL -P "$pid" 2>/dev/null || true
  kill -KILL "$pid" 2>/dev/null || true
done

# 5. Mounts: pod volumes, rootfs snapshots, shm, and the pods' network
#    namespaces. Deepest first; lazily if something still holds one.
for ns in "${NETNS[@]}"; do
  case "$ns" in /var/run/netns/* | /run/netns/*) ;; *) continue ;; esac
  umount "$ns" 2>/dev/null || umount -l "$ns" 2>/dev/null || true
  rm -f "$ns"
done
for _ in 1 2 3; do
  mapfile -t left < <(mounts_under "$H")
  [ ${#left[@]} -eq 0 ] && break
  for m in "${left[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
done
if [ -n "$(mounts_under "$H")" ]; then
  log "warning: still mounted under $H:"
  mounts_under "$H" >&2
fi
# Pod logs the kubelet had no chance to remove.
for d in "${POD_LOG_DIRS[@]}"; do
  rm -rf "$d"
  find /var/log/containers -maxdepth 1 -xtype l -name "*${d##*/}*" -delete 2>/dev/null || true
done

# 6. Host network changes, volumes and data.
if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link delete "$BRIDGE" 2>/dev/null || true; fi
ip route del unreachable "$SERVICE_SUBNET" 2>/dev/null || true
ip addr del "$SERVICE_IP/32" dev lo 2>/dev/null || true
if [ -f "$H/ip_forward.orig" ]; then
  cat "$H/ip_forward.orig" >/proc/sys/net/ipv4/ip_forward 2>/dev/null || true
  rm -f "$H/ip_forward.orig"
fi
[ -L "$PV_LINK" ] && rm -f "$PV_LINK"
rm -rf "$H/etcd" "$H/pv" "$H/cni/ipam" "$H/config.hash"
# Never delete through a mount point that would not go away.
if [ -z "$(mounts_under "$H")" ]; then
  rm -rf "$H/kubelet/root/pods" "$H/containerd/state"
fi

# Anything of ours still alive is a bug worth hearing about.
for p in "${PROCESSES[@]}"; do
  if pid="$(pid_of "$p")"; then log "warning: $p (pid $pid) is still running"; fi
done
log "cluster stopped"
