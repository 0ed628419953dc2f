#!/bin/bash
# `make purge`: remove everything shipmate installed or created on this machine, so that the next
# `make up` starts as on a fresh box: the daemons, every pod sandbox our agents made (this node's and
# the test suites' simulated nodes'), the images pushed to the local registry and pulled from it, the
# proxy's iptables chains, the bridge and CNI files, systemd units, containerd's config (the one it
# had before make up comes back), /etc/shipmate, /var/lib/shipmate*, /opt/shipmate, kubectl, logs, and
# the Vagrant VMs, networks, pool and cache (/var/cache/shipmate).
# apt packages stay: other software may use them.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LEFT=()  # what could not be removed, reported at the end

note_left() { LEFT+=("$1"); printf 'warning: %s\n' "$1" >&2; }

stop_test_daemons() {
  local pid
  # Simulated nodes of tests/e2e/multinode and tests/integration/private_node.py: their daemons
  # carry their work dir (/var/lib/shipmate-<something>) on the command line.
  for pid in $(pgrep -f '/var/lib/shipmate-[a-z0-9-]+' || true); do
    [[ $pid == "$$" ]] && continue
    stop_pid "$pid" "test daemon $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-60)"
  done
}

remove_pods_and_images() {
  containerd_up || return 0
  [[ -x $PY ]] || { note_left "no $PY: pods and images in containerd were left as they are"; return 0; }
  "$PY" "$REPO_ROOT/hack/cri_tool.py" remove-pods --all-nodes || note_left "some pod sandboxes remain (see above)"
  "$PY" "$REPO_ROOT/hack/cri_tool.py" remove-images --registry "$REGISTRY" \
    || note_left "some images of $REGISTRY remain in containerd"
}

remove_network_state() {
  local ns
  if [[ -x $VENV/bin/shipmate ]]; then
    # Both proxy modes: the iptables chains and the nftables table ip shipmate-proxy.
    "$VENV/bin/shipmate" agent --cleanup-iptables >/dev/null \
      || note_left "proxy rules remain (iptables chains or the nftables table ip shipmate-proxy)"
  fi
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^(shipmate|smn)-' || true); do
    ip netns delete "$ns" 2>/dev/null || note_left "could not delete netns $ns"
  done
  for link in shipmate0 smn-host; do
    ip link show "$link" >/dev/null 2>&1 && { ip link delete "$link" || note_left "could not delete link $link"; }
  done
  rm -f /etc/cni/net.d/10-shipmate.conflist
  local plugin
  for plugin in /opt/cni/bin/shipmate-cni /opt/cni/bin/loopback; do
    # Only our launchers: a loopback plugin from another package stays.
    [[ -f $plugin ]] && grep -q shipmate "$plugin" 2>/dev/null && rm -f "$plugin"
  done
  return 0
}

restore_containerd() {
  local backup=$STATE_DIR/containerd.config.toml.orig pid
  if [[ -r $backup ]]; then
    log "restoring $CONTAINERD_CONFIG as it was before make up"
    install -m 0644 "$backup" "$CONTAINERD_CONFIG"
  elif grep -q 'shipmate containerd-config' "$CONTAINERD_CONFIG" 2>/dev/null; then
    log "removing $CONTAINERD_CONFIG (written by make up; the containerd package's default comes back)"
    rm -f "$CONTAINERD_CONFIG"
    apt-get install -y -q --reinstall -o Dpkg::Options::=--force-confmiss containerd >/dev/null \
      || note_left "could not reinstall containerd's default $CONTAINERD_CONFIG"
  fi
  grep -l 'shipmate containerd-config' /etc/containerd/certs.d/*/hosts.toml 2>/dev/null | while read -r file; do
    rm -f "$file"; rmdir "$(dirname "$file")" 2>/dev/null || true
  done
  if systemd_is_init; then
    systemctl restart containerd || note_left "could not restart containerd.service"
  elif pid=$(daemon_pid containerd containerd); then
    stop_pid "$pid" containerd  # make up started it with our config; it is not restarted
  fi
  rm -f "$RUN_DIR/containerd.pid" "$RUN_DIR/containerd.config.sha256"
}

remove_units() {
  local unit units=(shipmate-server.service shipmate-agent.service)
  for unit in "${units[@]}"; do
    [[ -e /etc/systemd/system/$unit ]] || continue
    systemd_is_init && systemctl disable --now "$unit" 2>/dev/null
    rm -f "/etc/systemd/system/$unit"
  done
  systemd_is_init && systemctl daemon-reload
  return 0
}

# Vagrant (hack/vagrant.sh, hack/vagrant_box.sh): the VMs of both sets, their networks and volumes, the
# libvirt pool, /var/cache/shipmate (box, debootstrap tree, Vagrant's home) and the qemu.conf lines.
remove_vagrant() {
  local cache=${SHIPMATE_VAGRANT_CACHE:-/var/cache/shipmate/vagrant} vset
  if command -v virsh >/dev/null && virsh -q version >/dev/null 2>&1; then
    for vset in smoke e2e; do
      bash "$REPO_ROOT/hack/vagrant.sh" down "$vset" >/dev/null 2>&1 || note_left "Vagrant set $vset: VMs or network remain"
    done
    if virsh pool-info shipmate-vagrant >/dev/null 2>&1; then
      virsh -q pool-destroy shipmate-vagrant >/dev/null 2>&1 || true
      virsh -q pool-undefine shipmate-vagrant >/dev/null 2>&1 || note_left "libvirt pool shipmate-vagrant remains"
    fi
  fi
  rm -rf "$cache"
  rmdir /var/cache/shipmate 2>/dev/null || true
  if [[ -f /etc/libvirt/qemu.conf ]] && grep -q '^# shipmate (hack/vagrant_lib.sh)' /etc/libvirt/qemu.conf; then
    sed -i '/^# shipmate (hack\/vagrant_lib.sh)/,+2d' /etc/libvirt/qemu.conf
  fi
}

main() {
  require_root purge
  log "stopping shipmate and removing its pods"
  bash "$REPO_ROOT/hack/down.sh" || note_left "make down reported leftovers (see above)"
  [[ -x $PY ]] && { bash "$REPO_ROOT/hack/multinode.sh" down >/dev/null 2>&1 || true; }
  stop_test_daemons
  remove_pods_and_images
  remove_network_state
  stop_daemon registry docker-registry
  restore_containerd
  remove_units
  remove_vagrant
  log "removing /etc/shipmate, /var/lib/shipmate*, /opt/shipmate, $KUBECTL, $LOG_DIR, $RUN_DIR"
  local dir
  for dir in "$STATE_DIR" /var/lib/shipmate-* /opt/shipmate; do
    remove_tree "$dir" || note_left "could not remove all of $dir"
  done
  rm -rf "$ETC_DIR" "$LOG_DIR" "$RUN_DIR" "$REPO_ROOT/_output"
  rm -f "$KUBECTL"
  # /etc/crictl.yaml only when shipmate wrote it (its first line says so).
  if [[ -f /etc/crictl.yaml ]] && head -n1 /etc/crictl.yaml | grep -q '^# Written by shipmate'; then
    rm -f /etc/crictl.yaml
  fi
  if ((${#LEFT[@]})); then
    printf 'error: make purge left %d thing(s) behind:\n' "${#LEFT[@]}" >&2
    printf '  - %s\n' "${LEFT[@]}" >&2
    exit 3
  fi
  log "purged: the next make up starts from scratch"
}

main "$@"
