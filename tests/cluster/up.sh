#!/usr/bin/env bash
# Starts the single-node Kubernetes cluster the cluster tests run against:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, a private
# containerd and a kubelet, all built or installed by install.sh (which this
# runs first; it returns at once when everything is cached). The release is
# install.sh's: CODEX_MCP_K8S_VERSION (default 1.37.2) selects it.
#
#   tests/cluster/up.sh      start, or reuse the running cluster if healthy
#   tests/cluster/down.sh    stop everything and clean up
#
# When it returns the node is Ready, a probe pod runs and answers exec, the
# default StorageClass `standard` provisions volumes, and the image
# codex-mcp-test/busybox:1 (busybox as uid 1000) is loaded. Then:
#
#   export CODEX_MCP_TEST_KUBECONFIG=$CODEX_MCP_CACHE/cluster/kubeconfig
#   tests/cluster/build-image.sh my/image:1 --bin ./prog   # more images
#   $CODEX_MCP_CACHE/kubernetes/bin/kubectl --kubeconfig $CODEX_MCP_TEST_KUBECONFIG get pods -A
#
# Everything lives in $CODEX_MCP_CACHE/cluster (default
# ~/.cache/codex-mcp/cluster): pids/, logs/, pki/, etcd/, containerd/,
# kubelet/. Pods that need the apiserver reach it at the usual
# https://10.96.0.1:443 (or with hostNetwork at https://127.0.0.1:16443), and
# its certificate verifies against the cluster's CA. Pods cannot reach
# anything off this machine.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

START=$SECONDS
log() { echo "up.sh: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# Shows why a wait failed: the end of the component's log.
show_log() { # NAME [LINES]
  local f="$H/logs/$1.log"
  if [ -f "$f" ]; then
    log "last lines of $f:"
    tail -n "${2:-40}" "$f" | sed 's/^/    /' >&2
  fi
}

# Retries COMMAND until it succeeds; fails early if the process LOG-NAME
# (whose log is shown on failure; `none` for no process) has died.
wait_for() { # WHAT SECONDS LOG-NAME COMMAND...
  local what="$1" secs="$2" logname="$3" deadline
  shift 3
  deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ "$logname" != none ] && ! pid_of "$logname" >/dev/null; then
      show_log "$logname"
      die "$logname exited while waiting for $what"
    fi
    if [ $SECONDS -ge $deadline ]; then
      [ "$logname" = none ] || show_log "$logname"
      die "timed out after ${secs}s waiting for $what"
    fi
    sleep 0.5
  done
}

# The running cluster is reused only if it was started by this very
# configuration (these scripts and these binaries).
config_hash() {
  cat "$HERE/up.sh" "$HERE/lib.sh" "$HERE/dns-stub.py" "$HERE/pv-watcher.py" | sha256sum | cut -c1-16
  readlink -f "$CACHE/kubernetes"
  cat "$CACHE/bin/.netpol-build" 2>/dev/null
}

apiserver_ready() {
  curl -fsS --max-time 5 --cacert "$H/pki/ca.crt" -H "Authorization: Bearer $(cat "$H/pki/admin.token")" \
    "https://127.0.0.1:$APISERVER_PORT/readyz" | grep -qx ok
}

node_ready() {
  [ "$(k get node localhost -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

pod_dns_answers() {
  local out
  # nslookup fails (as it should) for a name that does not exist.
  out="$(k -n kube-system exec harness-probe -- nslookup codex-mcp-probe.invalid 2>&1 || true)"
  [[ $out == *NXDOMAIN* ]]
}

probe_answers() {
  [ "$(k -n kube-system exec harness-probe -- echo probe-ok 2>/dev/null)" = probe-ok ]
}

healthy() {
  local p
  for p in "${PROCESSES[@]}"; do pid_of "$p" >/dev/null || return 1; done
  [ "$(cat "$H/config.hash" 2>/dev/null)" = "$(config_hash)" ] || return 1
  apiserver_ready && node_ready && probe_answers
}

# ---------------------------------------------------------------------------
write_pki() {
  local d="$H/pki"
  mkdir -p "$d"
  chmod 700 "$d"
  [ -s "$d/ca.crt" ] && [ -s "$d/apiserver.crt" ] && [ -s "$d/sa.pub" ] && [ -s "$d/tokens.csv" ] && [ -s "$d/network-policies.token" ] && return 0
  log "generating the cluster CA, serving certificate and tokens"
  (
    cd "$d"
    openssl genrsa -out ca.key 2048 2>/dev/null
    openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=codex-mcp-test-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -out ca.crt 2>/dev/null
    openssl genrsa -out apiserver.key 2048 2>/dev/null
    openssl req -new -key apiserver.key -subj "/CN=kube-apiserver" -out apiserver.csr 2>/dev/null
    cat >apiserver.ext <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 3650 \
      -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    local who
    for who in admin controller-manager scheduler kubelet network-policies; do openssl rand -hex 24 >"$who.token"; done
    # Components authenticate with static tokens, under the identities
    # RBAC's bootstrap policy (and the Node authorizer) expect.
    cat >tokens.csv <<EOF
$(cat admin.token),admin,admin,"system:masters"
$(cat controller-manager.token),system:kube-controller-manager,system:kube-controller-manager
$(cat scheduler.token),system:kube-scheduler,system:kube-scheduler
$(cat kubelet.token),system:node:localhost,system:node:localhost,"system:nodes"
$(cat network-policies.token),system:kube-network-policies,system:kube-network-policies
EOF
  )
}

write_kubeconfig() { # FILE TOKEN-NAME [SERVER]
  local server="${3:-https://127.0.0.1:$APISERVER_PORT}"
  cat >"$1.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: codex-mcp-test
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 <"$H/pki/ca.crt")
users:
- name: $2
  user:
    token: $(cat "$H/pki/$2.token")
contexts:
- name: codex-mcp-test
  context:
    cluster: codex-mcp-test
    user: $2
    namespace: default
current-context: codex-mcp-test
EOF
  chmod 600 "$1.tmp"
  mv "$1.tmp" "$1"
}

write_configs() {
  mkdir -p "$H/kubeconfigs" "$H/containerd/run" "$H/cni/net.d" "$H/kubelet/root" "$H/bin" "$H/pv"
  write_kubeconfig "$ADMIN_KUBECONFIG" admin
  local c
  for c in controller-manager scheduler kubelet network-policies; do write_kubeconfig "$H/kubeconfigs/$c" "$c"; done

  # runc refuses to start containers here when asked for a negative
  # oom_score_adj (the pause container and Guaranteed pods get one): it fails
  # with "can't get final child's PID from pipe: EOF". Drop negative values
  # from the bundle before handing it to the real runc.
  cat >"$H/bin/runc" <<EOF
#!/bin/sh
bundle=""
prev=""
for a in "\$@"; do
  case "\$prev" in --bundle | -b) bundle="\$a" ;; esac
  case "\$a" in --bundle=*) bundle="\${a#--bundle=}" ;; esac
  prev="\$a"
done
if [ -n "\$bundle" ] && [ -f "\$bundle/config.json" ] && grep -q '"oomScoreAdj":-' "\$bundle/config.json"; then
  jq -c 'del(.process.oomScoreAdj)' "\$bundle/config.json" >"\$bundle/config.json.tmp" &&
    mv "\$bundle/config.json.tmp" "\$bundle/config.json"
fi
exec $(command -v runc) "\$@"
EOF
  chmod 755 "$H/bin/runc"

  cat >"$H/containerd/config.toml" <<EOF
# The harness's own containerd: own root, state, socket and CNI config, so a
# containerd the machine runs itself is never touched.
version = 3
root = "$H/containerd/root"
state = "$H/containerd/state"
[grpc]
  address = "$SOCKET"
[ttrpc]
  address = "$SOCKET.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins.'io.containerd.internal.v1.opt']
  path = "$H/containerd/opt"
# NRI would open a socket under /var/run/nri; nothing here uses it.
[plugins.'io.containerd.nri.v1.nri']
  disable = true
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$PAUSE_IMAGE"
[plugins.'io.containerd.cri.v1.runtime']
  enable_selinux = false
  # Pod network namespaces under the state directory, not /run/netns.
  netns_mounts_under_state_dir = true
  cdi_spec_dirs = []
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "$H/bin/runc"
        Root = "$H/containerd/runc"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$H/cni/net.d"
    max_conf_num = 1
[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
EOF

  cat >"$H/cni/net.d/10-codex-mcp.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "codex-mcp",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "isDefaultGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$H/cni/ipam",
        "ranges": [[{ "subnet": "$POD_SUBNET" }]],
        "routes": [{ "dst": "$SERVICE_SUBNET" }]
      }
    }
  ]
}
EOF

  cat >"$H/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
# Only the apiserver (on loopback) talks to the kubelet.
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
containerRuntimeEndpoint: unix://$SOCKET
runtimeRequestTimeout: 5m
# The machine has cgroup v1 (hybrid), which the kubelet refuses by default
# since 1.35 but still supports.
failCgroupV1: false
cgroupDriver: cgroupfs
# Pods in QoS cgroups, as on every real node: in-place resize needs them
# (1.35-1.37 kubelets crash on a resize without them).
cgroupsPerQOS: true
enforceNodeAllocatable: []
failSwapOn: false
# Leave the machine's iptables alone.
makeIPTablesUtilChains: false
volumePluginDir: $H/kubelet/volume-plugins
clusterDomain: cluster.local
# Mounted Secrets follow their Secret within this period (the default is a
# minute); agents' credentials Secrets are rewritten as tokens are refreshed.
syncFrequency: 10s
# Pods ask the DNS stub, which answers at once (see dns-stub.py).
resolvConf: $H/kubelet/resolv.conf
# Images are imported by hand and cannot be pulled again: never collect
# them, and never evict pods because the machine's disk is fuller than a
# production node's would be (absolute floors: a percentage of a large, busy
# disk can be gigabytes).
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "100Mi"
  nodefs.inodesFree: "1%"
  imagefs.available: "100Mi"
serializeImagePulls: false
EOF
}

# ---------------------------------------------------------------------------
# Directories the kubelet, containerd and CNI create at fixed places: those
# that did not exist before are listed so down.sh can remove them again (the
# list only grows until down.sh has done so).
record_host_paths() {
  local p
  for p in "${HOST_PATHS[@]}"; do
    [ -e "$p" ] || grep -qxF "$p" "$H/host-paths" 2>/dev/null || echo "$p" >>"$H/host-paths"
  done
}

setup_host_network() {
  # The bridge plugin turns on IP forwarding; remember what to restore.
  [ -f "$H/ip_forward.orig" ] || cat /proc/sys/net/ipv4/ip_forward >"$H/ip_forward.orig"
  ip -4 addr show dev lo | grep " $SERVICE_IP/32 " >/dev/null || ip addr add "$SERVICE_IP/32" dev lo
  ip route show table main | grep "^unreachable $SERVICE_SUBNET" >/dev/null ||
    ip route add unreachable "$SERVICE_SUBNET"
  hook_network_policies
  # The hostpath provisioner puts volumes under /tmp/hostpath_pv.
  if [ -L "$PV_LINK" ] || [ ! -e "$PV_LINK" ]; then
    ln -sfn "$H/pv" "$PV_LINK"
  else
    die "$PV_LINK exists and is not the harness's symlink; remove it"
  fi
}

# NetworkPolicies: the first packet of every connection that a pod opens or
# receives goes to the enforcer's netfilter queue, which accepts or drops it
# (and so the whole connection) by the policies. Both directions meet in
# mangle POSTROUTING (bridged pod-to-pod traffic too, through
# br_netfilter) except what pods send to the machine itself (the service
# address, the DNS stub, the host's ports), which INPUT sees. Connections
# the machine opens, like the kubelet's probes, are not policed, as with most
# network plugins. The queue is bypassed while no enforcer listens: a dead
# enforcer shows as policies not holding, not as a cluster without network.
hook_network_policies() {
  local c=(iptables -w 10 -t mangle) hook
  "${c[@]}" -N "$NETPOL_CHAIN" 2>/dev/null || "${c[@]}" -F "$NETPOL_CHAIN"
  "${c[@]}" -A "$NETPOL_CHAIN" -m conntrack ! --ctstate NEW -j RETURN
  "${c[@]}" -A "$NETPOL_CHAIN" -m addrtype --src-type LOCAL -j RETURN
  "${c[@]}" -A "$NETPOL_CHAIN" -s "$POD_SUBNET" -j NFQUEUE --queue-num "$NETPOL_QUEUE" --queue-bypass
  "${c[@]}" -A "$NETPOL_CHAIN" -d "$POD_SUBNET" -j NFQUEUE --queue-num "$NETPOL_QUEUE" --queue-bypass
  for hook in POSTROUTING INPUT; do
    "${c[@]}" -C "$hook" -j "$NETPOL_CHAIN" 2>/dev/null || "${c[@]}" -A "$hook" -j "$NETPOL_CHAIN"
  done
}

# shellcheck disable=SC2317 # called through wait_for
netpol_queue_bound() {
  awk -v q="$NETPOL_QUEUE" '$1 == q { found = 1 } END { exit !found }' /proc/net/netfilter/nfnetlink_queue
}

start_network_policies() {
  log "starting the NetworkPolicy enforcer"
  k apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:kube-network-policies
rules:
- apiGroups: [""]
  resources: [pods, namespaces]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:kube-network-policies
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:kube-network-policies
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: system:kube-network-policies
EOF
  launch network-policies -- "$NETPOL_BIN" --kubeconfig "$H/kubeconfigs/network-policies" \
    --node-name localhost --nfqueue-id "$NETPOL_QUEUE" --v=1
  wait_for "the NetworkPolicy enforcer to take its queue" 60 network-policies netpol_queue_bound
}

start_etcd() {
  log "starting etcd"
  rm -rf "$H/etcd"
  mkdir -p "$H/etcd"
  chmod 700 "$H/etcd"
  launch etcd -- "$KBIN/etcd" --name codex-mcp-test --data-dir "$H/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "codex-mcp-test=http://127.0.0.1:$ETCD_PEER_PORT" \
    --quota-backend-bytes 4294967296
  wait_for "etcd to answer" 60 etcd curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"
}

start_apiserver() {
  log "starting kube-apiserver"
  local p="$H/pki"
  launch kube-apiserver -- "$KBIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
    --advertise-address "$SERVICE_IP" --endpoint-reconciler-type none \
    --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" \
    --client-ca-file "$p/ca.crt" --token-auth-file "$p/tokens.csv" \
    --requestheader-client-ca-file "$p/ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range "$SERVICE_SUBNET" \
    --kubelet-preferred-address-types Hostname \
    --allow-privileged=true --profiling=false --v=1
  wait_for "kube-apiserver to be ready" 120 kube-apiserver apiserver_ready
}

start_service_proxy() {
  # Stands in for kube-proxy for the one service pods use: kubernetes:443.
  launch service-proxy -- socat "TCP-LISTEN:443,bind=$SERVICE_IP,reuseaddr,fork" \
    "TCP:127.0.0.1:$APISERVER_PORT"
  wait_for "the service proxy on $SERVICE_IP:443" 20 service-proxy \
    curl -fsS --max-time 2 --cacert "$H/pki/ca.crt" -H "Authorization: Bearer $(cat "$H/pki/admin.token")" \
    "https://$SERVICE_IP/readyz"
}

start_dns_stub() {
  cp "$HERE/dns-stub.py" "$H/bin/dns-stub.py"
  echo "nameserver $POD_GATEWAY" >"$H/kubelet/resolv.conf"
  launch dns-stub -- python3 "$H/bin/dns-stub.py" "$POD_GATEWAY"
  wait_for "the DNS stub" 20 dns-stub grep -q answering "$H/logs/dns-stub.log"
}

start_pv_watcher() {
  cp "$HERE/pv-watcher.py" "$H/bin/pv-watcher.py"
  launch pv-watcher -- python3 "$H/bin/pv-watcher.py" "$H/pv"
  wait_for "the volume watcher" 20 pv-watcher grep -q watching "$H/logs/pv-watcher.log"
}

start_containerd() {
  log "starting containerd"
  mkdir -p "$H/containerd/root" "$H/containerd/state"
  # A proxy that refuses everything: an image missing locally fails at once
  # instead of being pulled from a registry off this machine.
  # PATH: containerd looks its runc shim up there.
  launch containerd HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY= \
    PATH="$KBIN:$PATH" -- "$KBIN/containerd" --config "$H/containerd/config.toml"
  wait_for "containerd to answer" 60 containerd ctr_k8s version
  if ! has_image "$PAUSE_IMAGE"; then
    ctr_k8s images import "$CACHE/kubernetes/images/pause.tar" >/dev/null
    has_image "$PAUSE_IMAGE" ||
      die "importing the pause image did not register $PAUSE_IMAGE"
  fi
}

start_controllers() {
  log "starting kube-controller-manager and kube-scheduler"
  local p="$H/pki" kc="$H/kubeconfigs"
  launch kube-controller-manager -- "$KBIN/kube-controller-manager" \
    --kubeconfig "$kc/controller-manager" \
    --authentication-kubeconfig "$kc/controller-manager" --authorization-kubeconfig "$kc/controller-manager" \
    --bind-address 127.0.0.1 --secure-port "$CONTROLLER_MANAGER_PORT" \
    --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file "$p/sa.key" --root-ca-file "$p/ca.crt" \
    --cluster-signing-cert-file "$p/ca.crt" --cluster-signing-key-file "$p/ca.key" \
    --enable-hostpath-provisioner --controllers '*' --profiling=false --v=1 \
    --flex-volume-plugin-dir "$H/kubelet/volume-plugins"
  launch kube-scheduler -- "$KBIN/kube-scheduler" \
    --kubeconfig "$kc/scheduler" \
    --authentication-kubeconfig "$kc/scheduler" --authorization-kubeconfig "$kc/scheduler" \
    --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" \
    --leader-elect=false --profiling=false --v=1
}

start_kubelet() {
  log "starting kubelet"
  launch kubelet -- "$KBIN/kubelet" \
    --config "$H/kubelet/config.yaml" --kubeconfig "$H/kubeconfigs/kubelet" \
    --root-dir "$H/kubelet/root" --cert-dir "$H/kubelet/pki" \
    --hostname-override localhost --v=1
  wait_for "the node to register" 90 kubelet k get node localhost
  wait_for "the node to be Ready" 120 kubelet node_ready
  # The node lifecycle controller lifts this taint once the node is Ready;
  # do it ourselves so pods schedule at once.
  if k get node localhost -o jsonpath='{.spec.taints[*].key}' | grep -q node.kubernetes.io/not-ready; then
    k taint node localhost node.kubernetes.io/not-ready- >/dev/null 2>&1 || true
  fi
}

create_defaults() {
  k apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
EOF
  if ! has_image "$BUSYBOX_REF"; then
    log "building $BUSYBOX_IMAGE"
    "$HERE/build-image.sh" "$BUSYBOX_IMAGE" --busybox --user 1000 >/dev/null
  fi
}

# shellcheck disable=SC2317 # called through wait_for
sa_ready() { # NAMESPACE
  k -n "$1" get serviceaccount default
}

start_probe() {
  log "starting the probe pod"
  wait_for "the kube-system service account" 60 kube-controller-manager sa_ready kube-system
  k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: harness-probe
  namespace: kube-system
spec:
  terminationGracePeriodSeconds: 1
  automountServiceAccountToken: false
  containers:
  - name: probe
    image: $BUSYBOX_IMAGE
    imagePullPolicy: Never
    command: ["sleep", "2147483647"]
EOF
  wait_for "the probe pod to run" 120 kubelet \
    sh -c "[ \"\$('$KUBECTL' --kubeconfig '$ADMIN_KUBECONFIG' -n kube-system get pod harness-probe -o jsonpath='{.status.phase}')\" = Running ]"
  wait_for "the probe pod to answer exec" 60 kubelet probe_answers
  pod_dns_answers || die "the probe pod got no answer from the DNS stub on $POD_GATEWAY"
}

start_cluster() {
  mkdir -p "$H/logs"
  # Keep the previous run's logs for comparison, start fresh ones.
  rm -rf "$H/logs/previous"
  mkdir -p "$H/logs/previous"
  find "$H/logs" -maxdepth 1 -name '*.log' -exec mv {} "$H/logs/previous/" \;
  write_pki
  write_configs
  record_host_paths
  setup_host_network
  start_etcd
  start_apiserver
  start_service_proxy
  start_network_policies
  start_dns_stub
  start_pv_watcher
  start_containerd
  start_controllers
  start_kubelet
  create_defaults
  start_probe
  config_hash >"$H/config.hash"
}

# ---------------------------------------------------------------------------
if [ "${1:-}" = --start-once ]; then
  start_cluster
  exit 0
fi

[ "$(id -u)" = 0 ] || die "must run as root (the kubelet and containerd need it)"
"$HERE/install.sh"
"$HERE/install-netpol.sh"
# One up.sh or down.sh at a time (down.sh knows when we already hold it).
mkdir -p "$H"
exec 9>"$H/.lock"
flock 9
export CODEX_MCP_CLUSTER_LOCKED=1
[ -x "$NETPOL_BIN" ] || die "$NETPOL_BIN is missing; run tests/cluster/install-netpol.sh"
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl containerd ctr; do
  [ -x "$KBIN/$b" ] || die "$KBIN/$b is missing; run tests/cluster/install.sh"
done

if healthy; then
  log "reusing the running cluster ($((SECONDS - START)) s); kubeconfig: $ADMIN_KUBECONFIG"
  exit 0
fi

# One retry from a clean slate: a first start can trip over leftovers of a
# run that was killed (a port still held, a stale mount).
for attempt in 1 2; do
  "$HERE/down.sh" >/dev/null 2>&1 || "$HERE/down.sh"
  if "$0" --start-once; then
    log "cluster up in $((SECONDS - START)) s; kubeconfig: $ADMIN_KUBECONFIG"
    exit 0
  fi
  [ $attempt = 2 ] || log "start failed; cleaning up and trying once more"
done
die "the cluster did not come up (logs in $H/logs; tests/cluster/down.sh cleans up)"
