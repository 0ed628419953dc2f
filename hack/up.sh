#!/bin/bash
# Bring up a one-node shipmate cluster on this host; safe to run again at any time.
#
#   hack/up.sh [--images-only | --host-only] [--test-extras]
#     --images-only  stop after the registry and the images
#     --host-only    stop after containerd, the registry and the images (no server, no agent)
#     --test-extras  also install what the tests need from apt (etcd, systemd-analyze) and push the stand-in
#                    images of tests/peer (nginx, ubuntu, python); the virtualenv
#                    always holds every locked Python dependency (requirements.lock), test and bench too
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

APT_PACKAGES=(containerd runc iptables nftables conntrack iproute2 docker-registry busybox-static skopeo
              gcc libc6-dev python3 python3-venv curl procps util-linux ca-certificates)
SERVER_ARGS=(--bind-address 0.0.0.0 --port "$API_PORT" --data-dir "$SERVER_DIR"
             --cluster-cidr 10.244.0.0/16 --node-cidr-mask-size 24 --admin-kubeconfig "$KUBECONFIG_PATH")
AGENT_ROOT=$STATE_DIR/agent
AGENT_ARGS=(--server "$API_URL" --ca-file "$CLUSTER_CA"
            --container-runtime-endpoint "unix://$CONTAINERD_SOCKET" --root-dir "$AGENT_ROOT"
            --cni-bin-dir /opt/cni/bin --cni-conf-dir /etc/cni/net.d)

ensure_packages() {
  local missing=() package
  for package in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confdef \
    -o Dpkg::Options::=--force-confold "${missing[@]}"
}

# Every dependency comes from requirements.lock (exact versions and hashes; `make lock` refreshes it),
# then the package itself, editable, so the repository's code is what runs. The stamp records which
# checkout and which lock the venv was installed from.
ensure_venv() {
  local lock=$REPO_ROOT/requirements.lock stamp_file=$VENV/.shipmate-install source installed=
  source="$REPO_ROOT $(cat "$REPO_ROOT/pyproject.toml" "$lock" | sha256sum | cut -d' ' -f1)"
  [[ -x $PY ]] || { log "creating $VENV"; python3 -m venv "$VENV"; }
  [[ -r $stamp_file ]] && installed=$(<"$stamp_file")
  [[ $installed == "$source" ]] && return 0
  log "installing the locked dependencies ($lock) and shipmate (editable) into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --require-hashes --no-deps -r "$lock"
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e "$REPO_ROOT"
  "$VENV/bin/pip" check >/dev/null || die "$VENV: $("$VENV/bin/pip" check | head -n 3)"
  printf '%s\n' "$source" >"$stamp_file"
}

ensure_kubectl() {
  "$PY" "$REPO_ROOT/hack/install_kubectl.py" --dest "$KUBECTL"
}

ensure_registry() {
  local config=$ETC_DIR/registry.yml pid
  mkdir -p "$STATE_DIR/registry"
  # Debian's own registry service listens on every address; ours replaces it, on loopback only.
  if systemd_is_init && systemctl is-enabled --quiet docker-registry 2>/dev/null; then
    log "disabling Debian's docker-registry service (shipmate runs its own on $REGISTRY)"
    systemctl disable --now docker-registry
  fi
  if ! cmp -s "$REPO_ROOT/hack/registry.yml" "$config"; then
    install -m 0644 "$REPO_ROOT/hack/registry.yml" "$config"
    if pid=$(daemon_pid registry docker-registry); then
      log "registry config changed; restarting the registry"
      stop_daemon registry docker-registry
    fi
  fi
  if registry_up; then
    return 0
  fi
  log "starting the registry on $REGISTRY"
  start_daemon registry /usr/bin/docker-registry serve "$config"
  wait_for 30 "registry on $REGISTRY" registry registry_up
}

ensure_images() {
  "$PY" "$REPO_ROOT/hack/build_images.py" --registry "$REGISTRY" "${IMAGE_OPTIONS[@]}"
}

# /etc/crictl.yaml → this containerd, so `crictl pods` works as it is (a crictl.yaml of the user's is kept).
ensure_crictl_config() {
  "$VENV/bin/shipmate" crictl-config --endpoint "unix://$CONTAINERD_SOCKET" --out /etc/crictl.yaml
  command -v crictl >/dev/null || log "crictl is not installed (Debian 12 has no package for it); install cri-tools' crictl and it reads /etc/crictl.yaml"
}

# containerd is restarted only when the config it was started with differs from the one on disk.
ensure_containerd() {
  local hash_file=$RUN_DIR/containerd.config.sha256 wanted pid='' backup=$STATE_DIR/containerd.config.toml.orig
  # make purge puts back the config containerd had before shipmate's first make up.
  if [[ -e $CONTAINERD_CONFIG && ! -e $backup ]] && ! grep -q 'shipmate containerd-config' "$CONTAINERD_CONFIG"; then
    cp -p "$CONTAINERD_CONFIG" "$backup"
  fi
  # Without a registries.yaml of the user's, `image: busybox` comes from the local registry.
  "$VENV/bin/shipmate" containerd-config --registries "$ETC_DIR/registries.yaml" --default-mirror "http://$REGISTRY" \
    --out "$CONTAINERD_CONFIG" --certs-dir /etc/containerd/certs.d
  wanted=$(sha256sum "$CONTAINERD_CONFIG" | cut -d' ' -f1)
  mkdir -p /opt/cni/bin /etc/cni/net.d
  ensure_netns_dir_mounted
  if containerd_up && [[ -r $hash_file && $(<"$hash_file") == "$wanted" ]]; then
    return 0
  fi
  if systemd_is_init; then
    log "(re)starting containerd.service with $CONTAINERD_CONFIG"
    systemctl enable --quiet containerd
    systemctl restart containerd
  else
    if containerd_up; then
      pid=$(daemon_pid containerd containerd) || pid=$(pgrep -x containerd | head -n1) || true
      [[ -n $pid ]] || die "containerd answers on $CONTAINERD_SOCKET but its process was not found"
      log "containerd config changed; restarting containerd (running containers are kept)"
      stop_pid "$pid" containerd
    fi
    log "starting containerd"
    start_daemon containerd /usr/bin/containerd --config "$CONTAINERD_CONFIG"
  fi
  printf '%s\n' "$wanted" >"$hash_file"
  wait_for 30 containerd containerd containerd_up
}

pull_images() {
  "$PY" "$REPO_ROOT/hack/cri_tool.py" pull "$REGISTRY/shipmate/pause:1.0" "$REGISTRY/library/busybox:latest"
}

# /readyz needs no credentials; -k: this only asks whether a server answers (kubectl verifies the CA).
server_up() { curl -fsk -o /dev/null "$API_URL/readyz"; }
started_server_up() { daemon_pid server 'shipmate server' || return "$GAVE_UP"; server_up; }

ensure_server() {
  daemon_pid server 'shipmate server' >/dev/null && return 0
  if server_up; then
    log "an API server not started by make up answers on port $API_PORT; using it"
    return 0
  fi
  log "starting shipmate server"
  start_daemon server "$VENV/bin/shipmate" server "${SERVER_ARGS[@]}"
  wait_for 60 "shipmate server" server started_server_up
}

# kubeadm's addon phase: the cluster DNS Deployment and its kube-dns Service (idempotent: every start).
ensure_addons() {
  "$VENV/bin/shipmate" addons apply --kubeconfig "$KUBECONFIG_PATH" >/dev/null || die "could not apply the addons"
}

# Pods resolve names once the DNS pods serve (the agent gives them the kube-dns Service's address).
wait_cluster_dns() {
  log "waiting for the cluster DNS (kube-system/coredns)"
  "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" -n kube-system rollout status deployment/coredns --timeout=120s \
    || die "the cluster DNS did not become available; see kubectl -n kube-system describe pods -l k8s-app=kube-dns"
}

# The first start joins the cluster with a fresh bootstrap token (1 h); later starts (hack/restart.sh)
# use the client certificate that join left in the agent's root dir and need no token.
new_join_token() {
  wait_for 30 "admin kubeconfig $KUBECONFIG_PATH" server test -r "$KUBECONFIG_PATH"
  "$VENV/bin/shipmate" token create --ttl 1h --description "hack/up.sh: join of $(node_name)" \
    --kubeconfig "$KUBECONFIG_PATH" || die "could not create a bootstrap token for the agent"
}

ensure_agent() {
  daemon_pid agent 'shipmate agent' >/dev/null && return 0
  if pgrep -f "$VENV/bin/shipmate agent|shipmate agent " >/dev/null; then
    die "a shipmate agent not started by make up is running ($(pgrep -af 'shipmate agent' | head -n1)); stop it first"
  fi
  local token=
  if [[ ! -r $AGENT_ROOT/kubelet.kubeconfig ]]; then
    token=$(new_join_token) || exit 1
    log "starting shipmate agent (joining the cluster with a bootstrap token)"
  else
    log "starting shipmate agent (with its client certificate from $AGENT_ROOT)"
  fi
  # shellcheck disable=SC2086  # ${token:+...} expands to two words or none
  # SHIPMATE_PROXY_MODE (iptables|nftables; default: the agent's choice) lets the e2e tests run both modes.
  start_daemon agent "$VENV/bin/shipmate" agent "${AGENT_ARGS[@]}" ${token:+--token "$token"} \
    ${SHIPMATE_PROXY_MODE:+--proxy-mode "$SHIPMATE_PROXY_MODE"}
}

# The agent registers the node under the hostname (lower-cased, as the kubelet does).
node_name() { hostname | tr '[:upper:]' '[:lower:]'; }

node_ready() {
  daemon_pid agent 'shipmate agent' || return "$GAVE_UP"
  [[ $("$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" get node "$(node_name)" \
       -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]]
}

wait_node_ready() {
  log "waiting for the node to be Ready"
  wait_for 120 "node $(node_name) Ready" "server agent" node_ready
  "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" get nodes -o wide
  cat <<EOF

shipmate is up. Use it with:
  export KUBECONFIG=$KUBECONFIG_PATH
  kubectl get nodes
Logs: $LOG_DIR/{server,agent,containerd,registry}.log   Stop: sudo make down
EOF
}

IMAGE_OPTIONS=()

main() {
  local until=cluster
  while (($#)); do
    case $1 in
      --images-only) until=images ;;
      --host-only) until=host ;;
      # etcd: tests/integration/test_etcd_*; systemd-analyze, systemd-nspawn, debootstrap: test_systemd_units
      # and the stand-ins of the public images clients' own test suites use (tests/peer)
      --test-extras) APT_PACKAGES+=(etcd-server etcd-client systemd systemd-container debootstrap)
        IMAGE_OPTIONS+=(--stand-ins) ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  require_root up
  ensure_packages
  ensure_venv
  ensure_kubectl
  ensure_registry
  ensure_images
  [[ $until == images ]] && return 0
  ensure_containerd
  ensure_crictl_config
  pull_images
  [[ $until == host ]] && { log "host containerd, registry and images are up"; return 0; }
  ensure_server
  ensure_addons
  ensure_agent
  wait_node_ready
  wait_cluster_dns
}

main "$@"
