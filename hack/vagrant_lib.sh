# Shared by hack/vagrant_box.sh and hack/vagrant.sh (sourced after hack/lib.sh).
# shellcheck shell=bash disable=SC2034

VAGRANT_CACHE=${SHIPMATE_VAGRANT_CACHE:-/var/cache/shipmate/vagrant}
# Vagrant's own state (the added box, plugins' data) stays in the cache, not in ~/.vagrant.d.
export VAGRANT_HOME=$VAGRANT_CACHE/vagrant.d
export VAGRANT_DEFAULT_PROVIDER=libvirt
export VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_NO_COLOR=1
BOX_NAME=shipmate/debian12
BOX_NAME_FILE=shipmate-debian12
# The libvirt storage pool holding the uploaded box and the VMs' disks.
VAGRANT_POOL=shipmate-vagrant
VAGRANT_POOL_DIR=$VAGRANT_CACHE/pool

# Vagrant's public insecure key, from the installed Vagrant (the box trusts it; keys are not rotated).
vagrant_insecure_pubkey() {
  local key
  key=$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub /opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant.pub 2>/dev/null | head -n1)
  [[ -r $key ]] || die "Vagrant's insecure public key (keys/vagrant.pub) not found: is vagrant installed?"
  cat "$key"
}

vagrant_insecure_key() {
  local key
  key=$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant /opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant 2>/dev/null | head -n1)
  [[ -r $key ]] || die "Vagrant's insecure private key not found"
  printf '%s\n' "$key"
}

VAGRANT_APT_PACKAGES=(vagrant vagrant-libvirt libvirt-daemon-system qemu-system-x86 qemu-utils grub-pc-bin
                      debootstrap dnsmasq-base rsync openssh-client zstd python3-venv)

# Packages, libvirtd and virtlogd (started by hand when systemd is not PID 1), QEMU run as root
# (no udev here: /dev/kvm is root-only, and libvirt re-probes QEMU on every call otherwise), the pool.
ensure_vagrant_host() {
  local missing=() package
  for package in "${VAGRANT_APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
  done
  if ((${#missing[@]})); then
    log "installing apt packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
  fi
  local conf=/etc/libvirt/qemu.conf restart=0
  if ! grep -q '^user = "root"' "$conf"; then
    printf '\n# shipmate (hack/vagrant_lib.sh): QEMU as root\nuser = "root"\ngroup = "root"\n' >>"$conf"
    restart=1
  fi
  if systemd_is_init; then
    ((restart)) && systemctl restart libvirtd
    systemctl start virtlogd libvirtd
  else
    pgrep -x virtlogd >/dev/null || virtlogd -d
    ((restart)) && restart_libvirtd
    pgrep -x libvirtd >/dev/null || libvirtd -d
  fi
  wait_libvirtd
  # libvirtd makes its top-level LIBVIRT_* chains when it starts, and only then; after
  # cleanup_libvirt_firewall removed them, a restart (with no network of its own active) brings them back.
  if [[ -e $VAGRANT_CACHE/libvirt-firewall-removed && -z $(virsh net-list --name | tr -d '[:space:]') ]]; then
    restart_libvirtd
    rm -f "$VAGRANT_CACHE/libvirt-firewall-removed"
  fi
  if ! virsh pool-info "$VAGRANT_POOL" >/dev/null 2>&1; then
    mkdir -p "$VAGRANT_POOL_DIR"
    virsh -q pool-define-as "$VAGRANT_POOL" dir --target "$VAGRANT_POOL_DIR" >/dev/null
  fi
  [[ $(virsh pool-info "$VAGRANT_POOL") == *running* ]] || virsh -q pool-start "$VAGRANT_POOL" >/dev/null
  mkdir -p "$VAGRANT_HOME"
}

wait_libvirtd() {
  local i
  for ((i = 0; i < 60; i++)); do virsh -q version >/dev/null 2>&1 && return 0; sleep 0.5; done
  die "libvirtd does not answer"
}

restart_libvirtd() {
  log "restarting libvirtd"
  if systemd_is_init; then
    systemctl restart libvirtd
  else
    local pid i
    pid=$(pgrep -x libvirtd) && kill "$pid"
    for ((i = 0; i < 100; i++)); do pgrep -x libvirtd >/dev/null || break; sleep 0.1; done
    libvirtd -d
  fi
  wait_libvirtd
}

# Earlier boxes' images in the pool (each box added gets its own, named after its timestamp): all but
# the newest go once no VM of ours is left (the newest is the cache of the box in use).
prune_box_volumes() {
  local volume
  virsh pool-info "$VAGRANT_POOL" >/dev/null 2>&1 || return 0
  [[ -z $(virsh list --all --name 2>/dev/null | grep '^shipmate-') ]] || return 0
  for volume in $(virsh -q vol-list "$VAGRANT_POOL" 2>/dev/null | awk '{print $1}' | grep '_vagrant_box_image_' | sort | head -n -1); do
    virsh -q vol-delete --pool "$VAGRANT_POOL" "$volume" >/dev/null 2>&1 || true
  done
}

# The added box is the one built from these inputs.
box_added() {
  [[ $(cat "$VAGRANT_HOME/shipmate-box.hash" 2>/dev/null) == "$1" ]] &&
    [[ $(vagrant box list 2>/dev/null) == *"$BOX_NAME "* ]]
}

# The box's image uploaded into the pool by an earlier box (vagrant-libvirt names it after the box and
# its timestamp).
remove_box_volumes() {
  local volume
  virsh pool-info "$VAGRANT_POOL" >/dev/null 2>&1 || return 0
  # VMs of ours still run on it (their disks are overlays of it): a later box change removes it.
  [[ -z $(virsh list --all --name 2>/dev/null | grep '^shipmate-') ]] || return 0
  virsh -q pool-refresh "$VAGRANT_POOL" >/dev/null 2>&1 || true
  for volume in $(virsh -q vol-list "$VAGRANT_POOL" 2>/dev/null | awk '{print $1}' | grep '_vagrant_box_image_'); do
    virsh -q vol-delete --pool "$VAGRANT_POOL" "$volume" >/dev/null || true
  done
}

# libvirt leaves its LIBVIRT_* chains (and the jumps to them) after its last network goes, and makes
# ip6 tables of its own: once no libvirt network is active, remove them; an ip6 table left without a
# single rule goes too (it filters nothing).
cleanup_libvirt_firewall() {
  [[ -z $(virsh net-list --name 2>/dev/null | tr -d '[:space:]') ]] || return 0
  local tool table rule chain
  for tool in iptables ip6tables; do
    command -v "$tool" >/dev/null || continue
    for table in filter nat mangle; do
      # (no LIBVIRT_ rule left is fine: grep's status 1 must not end the script under pipefail)
      { "$tool" -t "$table" -S 2>/dev/null | grep -E '^-A [A-Z]+ .*-j LIBVIRT_' || true; } | while read -r rule; do
        # shellcheck disable=SC2086  # the rule is a list of words
        "$tool" -t "$table" ${rule/-A/-D} 2>/dev/null || true
      done
      for chain in $("$tool" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^LIBVIRT_/ {print $2}'); do
        "$tool" -t "$table" -F "$chain" 2>/dev/null || true
        "$tool" -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
  mkdir -p "$VAGRANT_CACHE"
  touch "$VAGRANT_CACHE/libvirt-firewall-removed"
  command -v nft >/dev/null || return 0
  for table in filter nat mangle; do
    nft list table ip6 "$table" >/dev/null 2>&1 || continue
    # No rule and only accepting base chains: nothing in it does anything.
    if ! nft list table ip6 "$table" 2>/dev/null | grep -vE '^\s*(table|chain|type|policy|\}|$)' | grep -q .; then
      if ! nft list table ip6 "$table" | grep -q 'policy drop'; then
        nft delete table ip6 "$table" 2>/dev/null || true
      fi
    fi
  done
}
