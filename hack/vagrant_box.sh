#!/bin/bash
# `make vagrant-box`: an offline Debian 12 Vagrant box for the libvirt provider, built from this
# machine's apt mirror (no box download), cached and rebuilt only when its inputs change.
#
#   hack/vagrant_box.sh            build (when needed) and `vagrant box add` it; prints the box file
#   hack/vagrant_box.sh --check    exit 0 when the cached box is current and added, 1 otherwise
#
# The box: Debian 12 with the cloud kernel, a small initramfs (only the virtio modules the root disk
# needs), GRUB installed by hand (this host kernel has no partition-table support and no nbd: the
# root partition is formatted through a loop device at its byte offset, GRUB's boot and core images
# are written with dd), systemd, OpenSSH (ed25519 host keys made at first boot), sudo, a `vagrant`
# user with Vagrant's public insecure key, ifupdown with a DHCP eth0 (Vagrant's later interfaces
# non-fatal at boot), and what shipmate needs from apt: containerd, runc, iptables, conntrack,
# iproute2, python3-venv. shipmate itself is not in the box: it is installed per run from wheels built
# on the host (hack/vagrant.sh).
#
# Everything lives under $SHIPMATE_VAGRANT_CACHE (/var/cache/shipmate/vagrant): the debootstrap tree,
# the box, Vagrant's home (boxes) and the libvirt storage pool the VMs' disks are made in.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=hack/vagrant_lib.sh
source "$REPO_ROOT/hack/vagrant_lib.sh"

PACKAGES=(systemd-sysv udev dbus kmod e2fsprogs linux-image-cloud-amd64 initramfs-tools
          openssh-server sudo ifupdown isc-dhcp-client iproute2 iptables conntrack
          containerd runc python3 python3-venv ca-certificates procps rsync util-linux)
DISK_GB=8
SUITE=bookworm

# The inputs of the box: what this script puts in it (the functions that build it, the packages), the
# box's Vagrantfile and the mirror.
box_inputs_hash() {
  { declare -f build_rootfs configure_rootfs apt_clean write_mbr build_image package_box
    printf '%s\n' "$SUITE" "${PACKAGES[*]}" "$DISK_GB"; cat "$REPO_ROOT/hack/vagrant/box.Vagrantfile"; debian_mirror
  } | sha256sum | cut -c1-16
}

# The inputs of the debootstrap tree alone.
rootfs_inputs_hash() {
  printf '%s\n' "$SUITE" "${PACKAGES[*]}" "$(debian_mirror)" | sha256sum | cut -c1-16
}

# The debootstrap tree, cached on its own (the slow, network-bound part).
build_rootfs() {
  local rootfs=$1 mirror started=$SECONDS
  # What the box build's wall time below includes: 0 = the cached tree, else debootstrap's seconds.
  printf '0\n' >"$VAGRANT_CACHE/box-build-debootstrap-seconds"
  [[ -e $rootfs/.complete ]] && return 0
  mirror=$(debian_mirror)
  rm -rf "$rootfs"
  mkdir -p "$rootfs"
  log "debootstrap $SUITE from $mirror into $rootfs"
  # Kernel postinst hooks must not build an initramfs yet (configured below).
  debootstrap --variant=minbase --include="$(IFS=,; echo "${PACKAGES[*]}")" "$SUITE" "$rootfs" "$mirror"
  touch "$rootfs/.complete"
  printf '%s\n' "$((SECONDS - started))" >"$VAGRANT_CACHE/box-build-debootstrap-seconds"
}

configure_rootfs() {
  local root=$1 pubkey
  pubkey=$(vagrant_insecure_pubkey)
  printf 'vagrant\n' >"$root/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tvagrant\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
  printf '/dev/vda1\t/\text4\tdefaults,noatime,errors=remount-ro\t0\t1\n' >"$root/etc/fstab"
  # The mirror's sources for the record (the guests never run apt: everything they need is here).
  printf 'deb %s %s main\n' "$(debian_mirror)" "$SUITE" >"$root/etc/apt/sources.list"
  cat >"$root/etc/network/interfaces" <<'EOF'
# The box's NAT/management interface; Vagrant appends the private networks it configures.
source /etc/network/interfaces.d/*
auto lo
iface lo inet loopback
allow-hotplug eth0
iface eth0 inet dhcp
EOF
  # Vagrant writes eth1's configuration after boot: a failing ifup at boot must not fail the boot.
  mkdir -p "$root/etc/systemd/system/ifup@.service.d" "$root/etc/systemd/system/networking.service.d"
  printf '[Service]\nExecStart=\nExecStart=-/bin/sh -c '"'"'ifup --allow=hotplug %%I; ifquery --state %%I'"'"'\n' \
    >"$root/etc/systemd/system/ifup@.service.d/non-fatal.conf"
  printf '[Service]\nExecStart=\nExecStart=-/sbin/ifup -a --read-environment\nTimeoutStartSec=60\n' \
    >"$root/etc/systemd/system/networking.service.d/non-fatal.conf"
  # dhclient: give up after 20 s rather than 60.
  sed -i 's/^#\?timeout .*/timeout 20;/' "$root/etc/dhcp/dhclient.conf"
  grep -q '^timeout' "$root/etc/dhcp/dhclient.conf" || echo 'timeout 20;' >>"$root/etc/dhcp/dhclient.conf"

  # The vagrant user: password-less sudo, Vagrant's public insecure key (the Vagrantfile keeps it).
  chroot "$root" id vagrant >/dev/null 2>&1 || chroot "$root" useradd -m -s /bin/bash -U vagrant
  echo 'vagrant:vagrant' | chroot "$root" chpasswd
  echo 'root:vagrant' | chroot "$root" chpasswd
  printf 'vagrant ALL=(ALL) NOPASSWD: ALL\nDefaults:vagrant !requiretty\n' >"$root/etc/sudoers.d/vagrant"
  chmod 0440 "$root/etc/sudoers.d/vagrant"
  install -d -m 0700 -o 1000 -g 1000 "$root/home/vagrant/.ssh"
  printf '%s\n' "$pubkey" >"$root/home/vagrant/.ssh/authorized_keys"
  chroot "$root" chown -R vagrant:vagrant /home/vagrant/.ssh
  chmod 0600 "$root/home/vagrant/.ssh/authorized_keys"

  # sshd: one ed25519 host key, made at first boot (every VM its own; RSA keys cost seconds under
  # emulation), no DNS lookups of clients.
  rm -f "$root"/etc/ssh/ssh_host_*
  cat >"$root/etc/ssh/sshd_config.d/box.conf" <<'EOF'
HostKey /etc/ssh/ssh_host_ed25519_key
UseDNS no
GSSAPIAuthentication no
EOF
  cat >"$root/etc/systemd/system/ssh-hostkey.service" <<'EOF'
[Unit]
Description=ed25519 SSH host key of this VM (first boot)
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key

[Install]
WantedBy=multi-user.target
EOF
  chroot "$root" systemctl enable ssh-hostkey.service ssh.service >/dev/null 2>&1
  # Emulated boots are slow enough: nothing waits for a network that is not there, no timers.
  chroot "$root" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
    systemd-networkd-wait-online.service >/dev/null 2>&1 || true
  # A reboot under emulation need not wait 90 s for containers' processes (shims outlive their units).
  mkdir -p "$root/etc/systemd/system.conf.d"
  printf '[Manager]\nDefaultTimeoutStopSec=15s\n' >"$root/etc/systemd/system.conf.d/box.conf"
  # Bridged pod traffic through iptables (the agent's service proxy) and containerd's snapshotter.
  printf 'br_netfilter\noverlay\n' >"$root/etc/modules-load.d/shipmate.conf"
  # containerd comes up with shipmate's config (shipmate install agent writes it and restarts it).
  chroot "$root" systemctl enable containerd.service >/dev/null 2>&1 || true
  # The first boot's machine-id is the VM's own.
  : >"$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id"

  # A small initramfs: the modules the root disk needs, not every driver (MODULES=most).
  printf 'MODULES=list\nCOMPRESS=zstd\n' >"$root/etc/initramfs-tools/conf.d/box.conf"
  printf 'virtio_pci\nvirtio_blk\nvirtio_net\next4\n' >"$root/etc/initramfs-tools/modules"
  local kernel
  kernel=$(basename "$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n1)")
  kernel=${kernel#vmlinuz-}
  chroot "$root" update-initramfs -c -k "$kernel" >/dev/null 2>&1 || chroot "$root" update-initramfs -u -k "$kernel"
  mkdir -p "$root/boot/grub"
  cat >"$root/boot/grub/grub.cfg" <<EOF
set timeout=0
set default=0
menuentry "Debian 12" {
  linux /boot/vmlinuz-$kernel root=/dev/vda1 ro console=tty0 console=ttyS0,115200 net.ifnames=0 biosdevname=0 quiet systemd.show_status=0
  initrd /boot/initrd.img-$kernel
}
EOF
  apt_clean "$root"
}

apt_clean() {
  local root=$1
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/var/log/*.log
}

# An MBR with one Linux partition from sector 2048 to the end of the disk.
write_mbr() {
  python3 - "$1" "$2" <<'EOF'
import struct, sys
path, sectors = sys.argv[1], int(sys.argv[2])
start = 2048
entry = struct.pack("<B3sB3sII", 0x80, b"\xfe\xff\xff", 0x83, b"\xfe\xff\xff", start, sectors - start)
with open(path, "r+b") as disk:
    disk.seek(446)
    disk.write(entry + b"\0" * 48 + b"\x55\xaa")
EOF
}

build_image() {
  local rootfs=$1 out=$2 raw=$2.raw loop='' mnt sectors offset=$((2048 * 512))
  sectors=$((DISK_GB * 1024 * 1024 * 2))
  mnt=$(mktemp -d)
  rm -f "$raw"
  truncate -s "${DISK_GB}G" "$raw"
  write_mbr "$raw" "$sectors"
  # No partition devices on this kernel: the partition is a loop device at its byte offset.
  loop=$(losetup -f --show -o "$offset" --sizelimit $(((sectors - 2048) * 512)) "$raw")
  # shellcheck disable=SC2064
  trap "umount '$mnt' 2>/dev/null; losetup -d '$loop' 2>/dev/null; rmdir '$mnt'" EXIT
  mkfs.ext4 -q -L root -O ^metadata_csum_seed "$loop"
  mount "$loop" "$mnt"
  tar -C "$rootfs" --exclude=./.complete -cf - . | tar -C "$mnt" -xpf -
  # GRUB for BIOS by hand: core.img (root = partition 1) right after the MBR, boot.img in the MBR.
  grub-mkimage -O i386-pc -o "$out.core.img" -p '(hd0,msdos1)/boot/grub' \
    biosdisk part_msdos ext2 normal linux configfile search echo test
  umount "$mnt"
  losetup -d "$loop"
  trap - EXIT
  rmdir "$mnt"
  local core_sectors
  core_sectors=$((($(stat -c %s "$out.core.img") + 511) / 512))
  ((core_sectors < 2048)) || die "GRUB core image too large ($core_sectors sectors)"
  dd if=/usr/lib/grub/i386-pc/boot.img of="$raw" bs=440 count=1 conv=notrunc status=none
  dd if="$out.core.img" of="$raw" bs=512 seek=1 conv=notrunc status=none
  rm -f "$out.core.img"
  qemu-img convert -c -O qcow2 "$raw" "$out"
  rm -f "$raw"
}

# box.img + metadata.json + Vagrantfile (the libvirt driver: kvm when usable, qemu otherwise).
package_box() {
  local image=$1 box=$2 dir
  dir=$(mktemp -d)
  mv "$image" "$dir/box.img"
  printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %d}\n' "$DISK_GB" >"$dir/metadata.json"
  cp "$REPO_ROOT/hack/vagrant/box.Vagrantfile" "$dir/Vagrantfile"
  tar -C "$dir" -cf "$box.tmp" metadata.json Vagrantfile box.img
  mv "$box.tmp" "$box"
  rm -rf "$dir"
}

main() {
  require_root vagrant-box
  local check=0
  [[ ${1:-} == --check ]] && check=1
  local hash box_dir box rootfs
  hash=$(box_inputs_hash)
  box_dir=$VAGRANT_CACHE/box
  box=$box_dir/$BOX_NAME_FILE-$hash.box
  rootfs=$VAGRANT_CACHE/rootfs-$(rootfs_inputs_hash)
  if ((check)); then
    [[ -r $box ]] && box_added "$hash"
    return
  fi
  ensure_vagrant_host
  if [[ ! -r $box ]]; then
    local started=$SECONDS
    mkdir -p "$box_dir"
    build_rootfs "$rootfs"
    log "configuring the box tree"
    # A copy: the debootstrap tree stays as debootstrap left it (a change here rebuilds from it).
    local work=$VAGRANT_CACHE/work
    rm -rf "$work"
    cp -a "$rootfs" "$work"
    configure_rootfs "$work"
    log "writing the disk image"
    build_image "$work" "$box_dir/box-$hash.img"
    rm -rf "$work"
    package_box "$box_dir/box-$hash.img" "$box"
    # Older boxes and trees (other inputs) go.
    find "$box_dir" -maxdepth 1 -name "$BOX_NAME_FILE-*.box" ! -name "$(basename "$box")" -delete
    find "$VAGRANT_CACHE" -maxdepth 1 -name 'rootfs-*' ! -name "$(basename "$rootfs")" -exec rm -rf {} +
    log "box built in $((SECONDS - started)) s: $box ($(du -h "$box" | cut -f1))"
    printf '%s\n' "$((SECONDS - started))" >"$VAGRANT_CACHE/box-build-seconds"
  fi
  if ! box_added "$hash"; then
    log "adding $box as $BOX_NAME"
    # vagrant-libvirt uploads a box into the pool once under a fixed name: a new box replaces it.
    remove_box_volumes
    vagrant box add --force --name "$BOX_NAME" "$box" >/dev/null
    printf '%s\n' "$hash" >"$VAGRANT_HOME/shipmate-box.hash"
  fi
  printf '%s\n' "$box"
}

main "$@"
