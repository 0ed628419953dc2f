#!/bin/bash
# Multi-node shipmate clusters for tests.
#
#   hack/multinode.sh up [N]       N simulated nodes on this machine (netns + own containerd + agent)
#   hack/multinode.sh down         remove them (also the leftovers of a killed run)
#   hack/multinode.sh vagrant-e2e  three Debian 12 VMs and tests/e2e/multinode against them (hack/vagrant.sh e2e)
#   hack/multinode.sh nspawn-rootfs  a Debian 12 tree booted by tests/integration/test_systemd_units.py
#                                    under systemd-nspawn (≈250 MB from the Debian mirror)
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NSPAWN_ROOT=${SHIPMATE_NSPAWN_ROOT:-/var/lib/shipmate-nspawn/rootfs}
# The virtualenv's interpreter (bind-mounted into the container) links these.
NSPAWN_LIBS=(libsqlite3-0 libffi8 libssl3 libbz2-1.0 liblzma5 zlib1g libreadline8 libncursesw6 libuuid1
             libgdbm6 libexpat1 libtirpc3 libkeyutils1 libdb5.3)

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

case ${1:-} in
  up) require_root multinode; "$PY" -m tests.e2e.multinode.harness up --nodes "${2:-3}" ;;
  down) require_root multinode; "$PY" -m tests.e2e.multinode.harness down ;;
  vagrant-e2e) exec bash "$REPO_ROOT/hack/vagrant.sh" e2e ;;
  nspawn-rootfs) nspawn_rootfs ;;
  *) die "usage: hack/multinode.sh up [N] | down | vagrant-e2e | nspawn-rootfs" ;;
esac
