#!/bin/bash
# Multi-node shipmate clusters for tests.
#
#   hack/multinode.sh up [N]       N simulated nodes on this machine (netns + own containerd + agent)
#   hack/multinode.sh down         remove them (also the leftovers of a killed run)
#   hack/multinode.sh vagrant-e2e  three Debian 12 VMs (Vagrantfile) and tests/e2e/multinode against them
#   hack/multinode.sh nspawn-rootfs  a Debian 12 tree booted by tests/integration/test_systemd_units.py
#                                    under systemd-nspawn (≈250 MB from the Debian mirror)
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VAGRANT_SERVER_IP=192.168.56.10
VAGRANT_KUBECONFIG=$REPO_ROOT/_output/vagrant.kubeconfig
NSPAWN_ROOT=${SHIPMATE_NSPAWN_ROOT:-/var/lib/shipmate-nspawn/rootfs}
# The virtualenv's interpreter (bind-mounted into the container) links these.
NSPAWN_LIBS=(libsqlite3-0 libffi8 libssl3 libbz2-1.0 liblzma5 zlib1g libreadline8 libncursesw6 libuuid1
             libgdbm6 libexpat1 libtirpc3 libkeyutils1 libdb5.3)

# The Debian mirror this machine's apt uses (deb822 .sources or one-line sources.list).
debian_mirror() {
  local uri
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' |
        grep -E '/debian/?$' | head -n1)
  [[ -n $uri ]] || uri=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -E '/debian/?$' | head -n1)
  [[ -n $uri ]] || die "no Debian mirror in /etc/apt/sources.list{,.d}: debootstrap needs one"
  printf '%s\n' "$uri"
}

nspawn_rootfs() {
  require_root multinode
  if ! command -v debootstrap >/dev/null || ! command -v systemd-nspawn >/dev/null; then
    die "needs debootstrap and systemd-container: apt-get install debootstrap systemd-container"
  fi
  if [[ ! -x $NSPAWN_ROOT/lib/systemd/systemd ]]; then
    rm -rf "$NSPAWN_ROOT"
    mkdir -p "$(dirname "$NSPAWN_ROOT")"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$NSPAWN_ROOT" "$(debian_mirror)"
  fi
  cp /etc/resolv.conf "$NSPAWN_ROOT/etc/resolv.conf"
  chroot "$NSPAWN_ROOT" apt-get install -y -q --no-install-recommends "${NSPAWN_LIBS[@]}"
  log "nspawn root ready: $NSPAWN_ROOT"
}

vagrant_e2e() {
  command -v vagrant >/dev/null || die "vagrant is not installed"
  cd "$REPO_ROOT"
  vagrant up --provision
  mkdir -p "$(dirname "$VAGRANT_KUBECONFIG")"
  # The server writes its admin kubeconfig for loopback; from here it is reached on its private IP
  # (in its serving certificate through --tls-san, see Vagrantfile).
  vagrant ssh server -c "sudo cat $KUBECONFIG_PATH" |
    sed "s#https://127.0.0.1:$API_PORT#https://$VAGRANT_SERVER_IP:$API_PORT#" >"$VAGRANT_KUBECONFIG"
  SHIPMATE_MULTINODE_KUBECONFIG=$VAGRANT_KUBECONFIG \
  SHIPMATE_MULTINODE_STOP_NODE="vagrant ssh {node} -c 'sudo systemctl stop shipmate-agent containerd'" \
  SHIPMATE_MULTINODE_START_NODE="vagrant ssh {node} -c 'sudo systemctl start containerd shipmate-agent'" \
    "$PY" -m pytest -v tests/e2e/multinode
}

case ${1:-} in
  up) require_root multinode; "$PY" -m tests.e2e.multinode.harness up --nodes "${2:-3}" ;;
  down) require_root multinode; "$PY" -m tests.e2e.multinode.harness down ;;
  vagrant-e2e) vagrant_e2e ;;
  nspawn-rootfs) nspawn_rootfs ;;
  *) die "usage: hack/multinode.sh up [N] | down | vagrant-e2e | nspawn-rootfs" ;;
esac
