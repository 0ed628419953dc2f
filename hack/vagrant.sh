#!/bin/bash
# shipmate in Vagrant VMs (Vagrantfile, box from hack/vagrant_box.sh), provisioned from this host.
#
#   hack/vagrant.sh smoke-up        box, one VM ("smoke") booted with shipmate installed (no join yet)
#   hack/vagrant.sh smoke-join      that VM joins the host's server (make up) with `shipmate install agent`
#   hack/vagrant.sh smoke-down      destroy it, delete its Node, remove its network
#   hack/vagrant.sh e2e             make e2e-vagrant: server + two agents, tests/e2e/multinode and
#                                   tests/vagrant/test_vm_checks.py, destroy, record the wall times
#   hack/vagrant.sh e2e-up          only bring that cluster up (kubeconfig: $VAGRANT_CACHE/e2e.kubeconfig)
#   hack/vagrant.sh down SET        destroy a set's VMs and network (also after a killed run)
#   hack/vagrant.sh ssh SET NODE [CMD...] | ip SET NODE
#   hack/vagrant.sh record          the latest wall times into bench/results/vagrant.json and docs/benchmarks.md
#
# The VMs' only network is an isolated libvirt network (no NAT, no route out): they reach each other
# and this host. shipmate gets in offline: its locked run-time dependencies are built into wheels on
# this host (cached by requirements.lock), installed with shipmate's own wheel into a venv built here
# with the box's interpreter, which the VMs unpack into /opt/shipmate/venv; images come from this
# host's registry (127.0.0.1:5000) through an SSH reverse tunnel, so
# `127.0.0.1:5000/...` image names work in the VMs as they do here.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=hack/vagrant_lib.sh
source "$REPO_ROOT/hack/vagrant_lib.sh"

export VAGRANT_CWD=$REPO_ROOT

# set_env SET: Vagrant's per-set state outside the repository (both sets can run at once).
set_env() {
  SET=$1
  export SHIPMATE_VAGRANT_SET=$SET
  export VAGRANT_DOTFILE_PATH=$VAGRANT_CACHE/dot-$SET
  SSH_CONFIG=$VAGRANT_CACHE/ssh-config-$SET
  TUNNEL_DIR=$VAGRANT_CACHE/tunnels-$SET
}

# Vagrant draws progress bars with carriage returns; a log wants lines.
vagrant_quiet() { vagrant "$@" 2>&1 | stdbuf -oL tr '\r' '\n' | grep --line-buffered -v -e '^Progress' -e '^\s*$' >&2; return "${PIPESTATUS[0]}"; }

# timing NAME SECONDS: one wall time of this run ($VAGRANT_CACHE/timings-SET.txt; `record` puts the
# latest of each set in bench/results/vagrant.json, which docs/benchmarks.md shows).
timing() {
  mkdir -p "$VAGRANT_CACHE"
  printf '%s %s\n' "$1" "$2" >>"$VAGRANT_CACHE/timings-$SET.txt"
  log "$SET: $1 $2 s"
}

vssh() { local node=$1; shift; ssh -F "$SSH_CONFIG" -o LogLevel=ERROR "$node" -- "$@"; }

# ---------------------------------------------------------------- wheels

# The wheels of the locked run-time dependencies (cached per lock) plus shipmate's own (every run).
WHEELS=$VAGRANT_CACHE/wheels
wheelhouse() {
  local hash deps
  hash=$(cat "$REPO_ROOT/requirements.lock" "$REPO_ROOT/pyproject.toml" | sha256sum | cut -c1-16)
  deps=$VAGRANT_CACHE/wheels-deps-$hash
  if [[ ! -e $deps/.complete ]]; then
    log "building the run-time dependencies' wheels from requirements.lock"
    rm -rf "$deps"
    mkdir -p "$deps"
    "$PY" "$REPO_ROOT/hack/vagrant/runtime_lock.py" "$REPO_ROOT/requirements.lock" "$REPO_ROOT/pyproject.toml" \
      >"$deps/runtime.lock"
    "$VENV/bin/pip" wheel -q --disable-pip-version-check --no-deps --require-hashes -r "$deps/runtime.lock" -w "$deps"
    find "$VAGRANT_CACHE" -maxdepth 1 -name 'wheels-deps-*' ! -name "$(basename "$deps")" -exec rm -rf {} +
    touch "$deps/.complete"
  fi
  rm -rf "$WHEELS"
  mkdir -p "$WHEELS"
  cp "$deps"/*.whl "$WHEELS/"
  "$VENV/bin/pip" wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w "$WHEELS" "$REPO_ROOT"
  rm -rf "$REPO_ROOT/build"
  venv_tarball
}

# The VMs' /opt/shipmate/venv, built here in a private mount namespace (a tmpfs over /opt/shipmate:
# the host's own venv is never touched) with /usr/bin/python3, the box's interpreter (Debian 12's
# python3.11 from the same mirror): the VMs only unpack it, instead of running pip under emulation.
VENV_TARBALL=$VAGRANT_CACHE/venv.tar.gz
venv_tarball() {
  local box_python
  box_python=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || box_python=
  [[ $box_python == 3.11 ]] || die "/usr/bin/python3 is not Debian 12's python3.11: cannot build the VMs' venv here"
  rm -f "$VENV_TARBALL"
  unshare -m sh -ec "mount -t tmpfs tmpfs /opt/shipmate 2>/dev/null || { mkdir -p /opt/shipmate; mount -t tmpfs tmpfs /opt/shipmate; }
    /usr/bin/python3 -m venv --without-pip /opt/shipmate/venv
    pip=\$(ls /usr/share/python-wheels/pip-*.whl | head -n1)
    /opt/shipmate/venv/bin/python \$pip/pip install -q --no-index --no-compile --disable-pip-version-check \
      --find-links '$WHEELS' shipmate
    tar -C / -czf '$VENV_TARBALL.tmp' opt/shipmate/venv"
  mv "$VENV_TARBALL.tmp" "$VENV_TARBALL"
}

# install_shipmate NODE: the venv built by venv_tarball into the VM.
install_shipmate() {
  local node=$1
  vssh "$node" 'sudo sh -ec "rm -rf /opt/shipmate/venv; tar -C / -xzf -; mkdir -p /etc/shipmate /var/log/shipmate"' <"$VENV_TARBALL"
}

# ---------------------------------------------------------------- VMs

# vm_up NODES...: boot (in parallel), then the SSH config the other steps use.
vm_up() {
  local started=$SECONDS
  bash "$REPO_ROOT/hack/vagrant_box.sh" >/dev/null
  timing box_ready $((SECONDS - started))
  started=$SECONDS
  log "vagrant up ($SET: $*)"
  vagrant_quiet up --no-provision --parallel "$@"
  vagrant ssh-config "$@" >"$SSH_CONFIG"
  timing vms_up $((SECONDS - started))
}

# vm_ip NODE: the VM's address on its set's network.
vm_ip() { vssh "$1" "ip -4 -o addr show eth0" | awk '{print $4}' | cut -d/ -f1; }

# tunnel NODE: the host's registry as 127.0.0.1:5000 in the VM (ssh -R), until `untunnel`.
tunnel() {
  local node=$1 pidfile
  mkdir -p "$TUNNEL_DIR"
  pidfile=$TUNNEL_DIR/$node.pid
  untunnel_one "$pidfile"
  ssh -F "$SSH_CONFIG" -o LogLevel=ERROR -o ExitOnForwardFailure=yes -o ServerAliveInterval=15 -N \
    -R "5000:$REGISTRY" "$node" </dev/null >/dev/null 2>&1 &
  printf '%s\n' "$!" >"$pidfile"
  local i
  for ((i = 0; i < 60; i++)); do
    vssh "$node" "python3 -c 'import urllib.request; urllib.request.urlopen(\"http://127.0.0.1:5000/v2/\")'" \
      2>/dev/null && return 0
    sleep 1
  done
  die "the registry tunnel to $node does not answer"
}

untunnel_one() {
  local pidfile=$1 pid
  [[ -r $pidfile ]] || return 0
  pid=$(<"$pidfile")
  if [[ $pid =~ ^[0-9]+$ ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q -- "-R 5000:"; then
    kill "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

untunnel() {
  local pidfile
  for pidfile in "$TUNNEL_DIR"/*.pid; do [[ -e $pidfile ]] && untunnel_one "$pidfile"; done
  return 0
}

# down SET: the VMs, their disks, the set's network; then whatever libvirt left behind.
down() {
  untunnel
  if [[ -d $VAGRANT_DOTFILE_PATH ]]; then
    vagrant_quiet destroy -f || true
  fi
  local domain net=shipmate-$SET volume
  # A killed run's leftovers: domains of this set Vagrant no longer knows, their volumes.
  for domain in $(virsh list --all --name 2>/dev/null | grep "^shipmate-$SET-" || true); do
    virsh -q destroy "$domain" >/dev/null 2>&1 || true
    virsh -q undefine "$domain" --remove-all-storage >/dev/null 2>&1 || virsh -q undefine "$domain" >/dev/null 2>&1 || true
  done
  if virsh pool-info "$VAGRANT_POOL" >/dev/null 2>&1; then
    for volume in $(virsh -q vol-list "$VAGRANT_POOL" 2>/dev/null | awk '{print $1}' | grep "^shipmate-$SET-" || true); do
      virsh -q vol-delete --pool "$VAGRANT_POOL" "$volume" >/dev/null 2>&1 || true
    done
  fi
  if virsh net-info "$net" >/dev/null 2>&1; then
    virsh -q net-destroy "$net" >/dev/null 2>&1 || true
    virsh -q net-undefine "$net" >/dev/null 2>&1 || true
  fi
  rm -rf "$VAGRANT_DOTFILE_PATH" "$SSH_CONFIG" "$TUNNEL_DIR"
  prune_box_volumes
  cleanup_libvirt_firewall
  log "$SET: VMs, volumes and network removed"
}

# ---------------------------------------------------------------- smoke (make test)

SMOKE_NODE=smoke
# The smoke VM joins the cluster of `make up`; tainted so that no other test's pod lands on it.
# The server joined: make up's by default; another one (development) through these.
SMOKE_KUBECONFIG=${SHIPMATE_SMOKE_KUBECONFIG:-$KUBECONFIG_PATH}
SMOKE_PORT=${SHIPMATE_SMOKE_PORT:-$API_PORT}

# Exit status 3 (the tests skip on it): this machine cannot run a VM at all.
UNAVAILABLE=3
check_virtualization() {
  [[ $(uname -m) == x86_64 ]] || { echo "virtualization unavailable: the box is x86_64, this is $(uname -m)" >&2; exit "$UNAVAILABLE"; }
  (ensure_vagrant_host) || { echo "virtualization unavailable: libvirt/QEMU could not be set up here" >&2; exit "$UNAVAILABLE"; }
  virsh domcapabilities --virttype qemu --arch x86_64 >/dev/null 2>&1 ||
    { echo "virtualization unavailable: libvirt has no QEMU x86_64 emulator (not even TCG)" >&2; exit "$UNAVAILABLE"; }
}

# smoke-up's outcome for a waiting test: its exit status in $SMOKE_STATUS when done.
SMOKE_STATUS=$VAGRANT_CACHE/smoke-up.status
smoke_up() {
  set_env smoke
  mkdir -p "$VAGRANT_CACHE"
  rm -f "$SMOKE_STATUS"
  local status
  # Not `(...) || status=$?`: errexit is off in the whole of a ||'d subshell.
  set +e
  (set -e; smoke_up_steps)
  status=$?
  set -e
  printf '%s\n' "$status" >"$SMOKE_STATUS"
  return "$status"
}

smoke_up_steps() {
  rm -f "$VAGRANT_CACHE/timings-$SET.txt"
  check_virtualization
  down >/dev/null 2>&1 || true
  wheelhouse
  vm_up "$SMOKE_NODE"
  local started=$SECONDS
  install_shipmate "$SMOKE_NODE"
  timing shipmate_installed $((SECONDS - started))
}

# The server's advertised address (the `kubernetes` Service's endpoint; in its serving certificate),
# reached from the VM through the set's bridge: the VM has no other route.
host_server_address() {
  "$KUBECTL" --kubeconfig "$SMOKE_KUBECONFIG" get endpoints kubernetes -n default \
    -o jsonpath='{.subsets[0].addresses[0].ip}'  2>/dev/null
}

smoke_join() {
  set_env smoke
  local started=$SECONDS
  local node=$SMOKE_NODE ip gateway server join token hash
  ip=$(vm_ip "$node")
  gateway=$(virsh net-dumpxml "shipmate-$SET" | grep -oE "ip address='[0-9.]+'" | grep -oE '[0-9.]+' | head -n1)
  server=$(host_server_address)
  [[ -n $server ]] || die "no host address in the server's certificate"
  vssh "$node" "sudo ip route replace $server/32 via $gateway"
  tunnel "$node"
  join=$("$VENV/bin/shipmate" token create --ttl 1h --description "hack/vagrant.sh: smoke VM" \
    --kubeconfig "$SMOKE_KUBECONFIG" --print-join-command | tail -n1)
  token=$(sed 's/.*--token \([^ ]*\).*/\1/' <<<"$join")
  hash=$(sed 's/.*--ca-cert-hash \([^ ]*\).*/\1/' <<<"$join")
  printf '%s\n' "${token%%.*}" >"$VAGRANT_CACHE/smoke-token-id"  # deleted by smoke-down
  # The Node exists (tainted) before the agent registers it: nothing else is scheduled there.
  "$KUBECTL" --kubeconfig "$SMOKE_KUBECONFIG" delete node "$node" --ignore-not-found >/dev/null
  "$KUBECTL" --kubeconfig "$SMOKE_KUBECONFIG" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $node
  labels: {shipmate.io/vagrant: smoke}
spec:
  taints: [{key: shipmate.io/vagrant-smoke, value: "true", effect: NoSchedule}]
EOF
  log "installing the agent in the VM (joins https://$server:$SMOKE_PORT as $node, $ip)"
  vssh "$node" "sudo /opt/shipmate/venv/bin/shipmate install agent --server https://$server:$SMOKE_PORT \
    --token $token --ca-cert-hash $hash --node-name $node --node-ip $ip"
  timing agent_installed $((SECONDS - started))
}

smoke_down() {
  set_env smoke
  local started=$SECONDS k=("$KUBECTL" --kubeconfig "$SMOKE_KUBECONFIG")
  # The VM's pods go while its agent still runs (then forced: a pod of a gone node would stay
  # Terminating in the cluster).
  if "${k[@]}" get node "$SMOKE_NODE" >/dev/null 2>&1; then
    "${k[@]}" delete pods -A --field-selector "spec.nodeName=$SMOKE_NODE" --timeout=90s >/dev/null 2>&1 ||
      "${k[@]}" delete pods -A --field-selector "spec.nodeName=$SMOKE_NODE" --grace-period=0 --force >/dev/null 2>&1 || true
  fi
  down
  if [[ -r $VAGRANT_CACHE/smoke-token-id ]]; then
    "$VENV/bin/shipmate" token delete --kubeconfig "$SMOKE_KUBECONFIG" "$(<"$VAGRANT_CACHE/smoke-token-id")" >/dev/null 2>&1 || true
    rm -f "$VAGRANT_CACHE/smoke-token-id"
  fi
  timing destroy $((SECONDS - started))
  "$KUBECTL" --kubeconfig "$SMOKE_KUBECONFIG" delete node "$SMOKE_NODE" --ignore-not-found --wait=false >/dev/null 2>&1 || true
}

# ---------------------------------------------------------------- e2e (make e2e-vagrant)

E2E_NODES=(server agent1 agent2)
E2E_KUBECONFIG=$VAGRANT_CACHE/e2e.kubeconfig
# The installed server's node lifecycle, shorter than the defaults (tests/e2e/multinode waits for it).
E2E_GRACE=40
E2E_EVICTION=30

# parallel CMD NODE...: CMD NODE for every node at once; fails when one failed.
parallel() {
  local cmd=$1 node pids=() status=0 pid
  shift
  for node in "$@"; do "$cmd" "$node" & pids+=($!); done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  return "$status"
}

e2e_agent() {
  local node=$1 ip
  ip=$(vm_ip "$node")
  vssh "$node" "sudo /opt/shipmate/venv/bin/shipmate install agent --server https://$E2E_SERVER_IP:$API_PORT \
    --token $E2E_TOKEN --ca-cert-hash $E2E_HASH --node-name $node --node-ip $ip" >/dev/null
}

e2e_up() {
  set_env e2e
  mkdir -p "$VAGRANT_CACHE"
  [[ ${E2E_KEEP_TIMINGS:-0} == 1 ]] || rm -f "$VAGRANT_CACHE/timings-$SET.txt"
  check_virtualization
  down >/dev/null 2>&1 || true
  wheelhouse
  vm_up "${E2E_NODES[@]}"
  local started=$SECONDS node
  parallel install_shipmate "${E2E_NODES[@]}"
  for node in "${E2E_NODES[@]}"; do tunnel "$node"; done
  timing shipmate_installed $((SECONDS - started))
  E2E_SERVER_IP=$(vm_ip server)
  vssh server "sudo /opt/shipmate/venv/bin/shipmate install server --bind-address 0.0.0.0 --port $API_PORT \
    --extra-args '--advertise-address $E2E_SERVER_IP --tls-san $E2E_SERVER_IP --node-monitor-grace-period ${E2E_GRACE}s --pod-eviction-timeout ${E2E_EVICTION}s'"
  local join
  join=$(vssh server "until sudo /opt/shipmate/venv/bin/shipmate token create --ttl 2h --print-join-command 2>/dev/null; do sleep 2; done" | tail -n1)
  E2E_TOKEN=$(sed 's/.*--token \([^ ]*\).*/\1/' <<<"$join")
  E2E_HASH=$(sed 's/.*--ca-cert-hash \([^ ]*\).*/\1/' <<<"$join")
  parallel e2e_agent "${E2E_NODES[@]}"
  # The admin kubeconfig is written for loopback; from here the server is its private address.
  vssh server "sudo cat $KUBECONFIG_PATH" | sed "s#https://127.0.0.1:$API_PORT#https://$E2E_SERVER_IP:$API_PORT#" >"$E2E_KUBECONFIG"
  chmod 0600 "$E2E_KUBECONFIG"
  local deadline=$((SECONDS + 600))
  until [[ $("$KUBECTL" --kubeconfig "$E2E_KUBECONFIG" get nodes --no-headers 2>/dev/null | grep -c ' Ready ') == 3 ]]; do
    ((SECONDS < deadline)) || die "the three nodes are not Ready after 600 s"
    sleep 3
  done
  "$KUBECTL" --kubeconfig "$E2E_KUBECONFIG" get nodes -o wide
  timing cluster_ready_after_boot $((SECONDS - started))
}

e2e() {
  local status=0
  set_env e2e
  rm -f "$VAGRANT_CACHE/timings-e2e.txt"
  # Globals: the EXIT trap runs after this function has returned.
  E2E_STARTED=$SECONDS
  trap 'set_env e2e; E2E_DOWN=$SECONDS; down; timing destroy $((SECONDS - E2E_DOWN)); timing total $((SECONDS - E2E_STARTED)); record' EXIT
  E2E_KEEP_TIMINGS=1 e2e_up
  local tests_started=$SECONDS
  log "running tests/e2e/multinode and tests/vagrant/test_vm_checks.py against the VMs"
  (cd "$REPO_ROOT" && SHIPMATE_MULTINODE_KUBECONFIG=$E2E_KUBECONFIG \
    SHIPMATE_MULTINODE_NODE_MONITOR_GRACE=$E2E_GRACE SHIPMATE_MULTINODE_POD_EVICTION_TIMEOUT=$E2E_EVICTION \
    SHIPMATE_MULTINODE_STOP_NODE="bash hack/vagrant.sh ssh e2e {node} sudo systemctl stop shipmate-agent containerd" \
    SHIPMATE_MULTINODE_START_NODE="bash hack/vagrant.sh ssh e2e {node} sudo systemctl start containerd shipmate-agent" \
    SHIPMATE_VAGRANT_E2E_KUBECONFIG=$E2E_KUBECONFIG \
    "$VENV/bin/pytest" -v -p no:cacheprovider tests/e2e/multinode tests/vagrant/test_vm_checks.py) || status=$?
  timing tests $((SECONDS - tests_started))
  printf 'tests_status %s\n' "$status" >>"$VAGRANT_CACHE/timings-$SET.txt"
  return "$status"
}

# The latest timings of each set into bench/results/vagrant.json (docs/benchmarks.md's Vagrant block).
record() {
  "$PY" - "$VAGRANT_CACHE" "$REPO_ROOT/bench/results/vagrant.json" <<'EOF'
import datetime, json, os, pathlib, sys
cache, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
data = json.loads(out.read_text()) if out.exists() else {}
for vset in ("smoke", "e2e"):
    path = cache / f"timings-{vset}.txt"
    if not path.exists():
        continue
    stamp = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
    entry = {"measured": stamp.strftime("%Y-%m-%d %H:%M UTC"), "cores": os.cpu_count(),
             "driver": "kvm" if os.path.isdir("/sys/module/kvm_intel") or os.path.isdir("/sys/module/kvm_amd") else "qemu (TCG)"}
    for line in path.read_text().splitlines():
        name, value = line.split()
        entry[name] = int(value)
    data[vset] = entry  # notes of an earlier run do not describe this one
build, debootstrap = cache / "box-build-seconds", cache / "box-build-debootstrap-seconds"
if build.exists():
    data["box_build_seconds"] = int(build.read_text())
    # the debootstrap part of that build (0: from the cached tree); a figure of an earlier build goes
    data.pop("debootstrap_seconds", None)
    if debootstrap.exists():
        data["debootstrap_seconds"] = int(debootstrap.read_text())
out.write_text(json.dumps(data, indent=1) + "\n")
EOF
  # docs/benchmarks.md's Vagrant block now (make bench rewrites the page with it too).
  (cd "$REPO_ROOT/bench" && "$PY" -c 'from report import DOC, replace_block, vagrant_section
DOC.write_text(replace_block(DOC.read_text(), "vagrant", vagrant_section()))')
}

# ---------------------------------------------------------------- main

case ${1:-} in
  smoke-up) require_root vagrant; smoke_up ;;
  smoke-join) require_root vagrant; smoke_join ;;
  smoke-down) require_root vagrant; smoke_down ;;
  e2e) require_root vagrant; e2e ;;
  record) record ;;
  e2e-up) require_root vagrant; e2e_up ;;
  down) require_root vagrant; set_env "${2:?set: smoke or e2e}"; down ;;
  ssh) set_env "${2:?set}"; node=${3:?node}; shift 3; vssh "$node" "$@" ;;
  ip) set_env "${2:?set}"; vm_ip "${3:?node}" ;;
  *) die "usage: hack/vagrant.sh e2e | e2e-up | smoke-up | smoke-join | smoke-down | down SET | ssh SET NODE [CMD] | ip SET NODE" ;;
esac
