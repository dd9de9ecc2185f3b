#!/usr/bin/env bash
# Stops the test cluster that up.sh started and removes what it left on the
# machine: pods (and their processes, network namespaces and mounts), every
# process up.sh started, the containerd shims, mounts under the harness
# directory, the service address and route, the NetworkPolicy chain, the pod
# bridge, and etcd's data.
# Safe to run when nothing is up, and more than once.
#
# Kept for the next up.sh: the CA and tokens, containerd's image store, logs.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
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

CTR=(ctr_k8s)

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
    # Done when the pods are gone, or at least all their containers have
    # stopped (the kubelet confirms deletions to the API many seconds later).
    # What the kubelet has not finished by then is cleaned up below.
    for _ in $(seq 30); do
      sleep 1
      [ -z "$(k get pods -A -o name 2>/dev/null)" ] && break
      "${CTR[@]}" tasks ls 2>/dev/null | awk 'NR > 1 && $3 == "RUNNING" {found = 1} END {exit !found}' || break
    done
  fi
fi

# 2. The kubelet, then whatever containers are left (a pod the kubelet did
#    not get to). Their network namespaces are found from the sandboxes'
#    specs before the containers go.
stop_process kubelet 20
NETNS=()
CONTAINERS=()
if pid_of containerd >/dev/null; then
  mapfile -t CONTAINERS < <("${CTR[@]}" containers ls -q 2>/dev/null || true)
  for c in "${CONTAINERS[@]}"; do
    # A sandbox's network namespace, and the pod's log directory (for pods
    # already gone from the API, e.g. deleted without grace).
    while read -r what path; do
      case "$what" in
        netns) NETNS+=("$path") ;;
        logs) POD_LOG_DIRS+=("/var/log/pods/$path") ;;
      esac
    done < <("${CTR[@]}" containers info "$c" 2>/dev/null | jq -r '
      (.Spec.linux.namespaces[]? | select(.type == "network" and .path) | "netns " + .path),
      (.Labels | select(.["io.kubernetes.pod.uid"]) |
        "logs " + .["io.kubernetes.pod.namespace"] + "_" + .["io.kubernetes.pod.name"] + "_" + .["io.kubernetes.pod.uid"])
    ' 2>/dev/null || true)
  done
  for c in "${CONTAINERS[@]}"; do
    "${CTR[@]}" tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true
  done
  for c in "${CONTAINERS[@]}"; do
    for _ in $(seq 20); do
      "${CTR[@]}" tasks delete "$c" >/dev/null 2>&1 && break
      "${CTR[@]}" tasks ls -q 2>/dev/null | grep -xF "$c" >/dev/null || break
      sleep 0.25
    done
    "${CTR[@]}" containers delete "$c" >/dev/null 2>&1 || true
  done
fi

# 3. The remaining daemons, newest first.
stop_process containerd 20
stop_process service-proxy
stop_process pv-watcher
stop_process dns-stub
stop_process network-policies
stop_process kube-apiserver 20
stop_process etcd 20

# Processes of ours whose pid file is gone (an interrupted up.sh, a deleted
# harness directory): our binaries running with our paths or addresses.
for pid in $(pgrep -f -- "$H/" || true) $(pgrep -f -- "bind=$SERVICE_IP," || true); do
  exe="$(basename "$(readlink "/proc/$pid/exe" 2>/dev/null)")"
  case "$exe" in
    etcd | kube-apiserver | kube-controller-manager | kube-scheduler | kubelet | containerd | socat | python3*)
      log "stopping $exe (pid $pid), which has no pid file"
      kill -KILL "$pid" 2>/dev/null || true
      ;;
  esac
done

# 4. Shims outlive containerd, and pod processes outlive their shim. Ours are
#    the shims started with our socket; their children are the containers'
#    init processes (killing a PID namespace's init ends the namespace).
NETNS_IDS=()
SHIM_SOCKETS=()
for shim in $(pgrep -f -- "-address $SOCKET" || true); do
  # The shim of whichever cached release started it.
  case "$(readlink "/proc/$shim/exe" 2>/dev/null)" in
    "$CACHE"/kubernetes-*/bin/containerd-shim-runc-v2) ;;
    *) continue ;;
  esac
  for child in $(pgrep -P "$shim" || true); do
    # Remember the pod's network namespace, to find its mount below.
    id="$(readlink "/proc/$child/ns/net" 2>/dev/null || true)"
    [ -n "$id" ] && NETNS_IDS+=("$id")
    kill -KILL "$child" 2>/dev/null || true
  done
  # The shim's socket in /run/containerd/s, which it cannot remove if killed.
  for inode in $(find "/proc/$shim/fd" -lname 'socket:*' -printf '%l\n' 2>/dev/null | tr -dc '0-9\n'); do
    path="$(awk -v i="$inode" '$7 == i && $8 ~ /^\/run\/containerd\/s\// {print $8}' /proc/net/unix)"
    [ -n "$path" ] && SHIM_SOCKETS+=("$path")
  done
  kill -KILL "$shim" 2>/dev/null || true
done
for s in "${SHIM_SOCKETS[@]}"; do rm -f "$s"; done

# 5. Mounts: pod volumes, rootfs snapshots, shm, and the pods' network
#    namespaces. Deepest first; lazily if something still holds one.
if [ ${#NETNS_IDS[@]} -gt 0 ]; then
  for m in $(mounts_under /run/netns); do
    ino="$(stat -c %i "$m" 2>/dev/null || true)"
    for id in "${NETNS_IDS[@]}"; do
      [ "$id" = "net:[$ino]" ] && NETNS+=("$m")
    done
  done
fi
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
# CNI's result cache for our network and our containers' loopback.
rm -f /var/lib/cni/results/codex-mcp-*
for c in "${CONTAINERS[@]}"; do rm -f "/var/lib/cni/results/cni-loopback-$c-lo"; done
# Pod logs the kubelet had no chance to remove.
for d in "${POD_LOG_DIRS[@]}"; do rm -rf "$d"; done
# ... and the per-container links to them that now point nowhere.
find /var/log/containers -maxdepth 1 -xtype l -lname '/var/log/pods/*' -delete 2>/dev/null || true

# 6. Host network changes, volumes and data.
if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link delete "$BRIDGE" 2>/dev/null || true; fi
ip route del unreachable "$SERVICE_SUBNET" 2>/dev/null || true
ip addr del "$SERVICE_IP/32" dev lo 2>/dev/null || true
for hook in POSTROUTING INPUT; do
  while iptables -w 10 -t mangle -D "$hook" -j "$NETPOL_CHAIN" 2>/dev/null; do :; done
done
iptables -w 10 -t mangle -F "$NETPOL_CHAIN" 2>/dev/null || true
iptables -w 10 -t mangle -X "$NETPOL_CHAIN" 2>/dev/null || true
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

# The fixed-place directories that up.sh found missing and the programs made.
if [ -f "$H/host-paths" ]; then
  while read -r p; do
    if [ -n "$p" ] && [ -e "$p" ] && [ -z "$(mounts_under "$p")" ]; then rm -rf "$p"; fi
  done <"$H/host-paths"
  rm -f "$H/host-paths"
fi

# Anything of ours still alive is a bug worth hearing about.
for p in "${PROCESSES[@]}"; do
  if pid="$(pid_of "$p")"; then log "warning: $p (pid $pid) is still running"; fi
done
log "cluster stopped"
