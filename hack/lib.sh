# Shared helpers of hack/up.sh, hack/down.sh and hack/test.sh (sourced, not run).
# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts sourcing this file

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=/opt/shipmate/venv
PY=$VENV/bin/python
LOG_DIR=${SHIPMATE_LOG_DIR:-/var/log/shipmate}
RUN_DIR=${SHIPMATE_RUN_DIR:-/run/shipmate}
ETC_DIR=/etc/shipmate
STATE_DIR=/var/lib/shipmate
KUBECONFIG_PATH=$ETC_DIR/admin.kubeconfig
CONTAINERD_SOCKET=/run/containerd/containerd.sock
CONTAINERD_CONFIG=/etc/containerd/config.toml
REGISTRY=127.0.0.1:5000
API_PORT=6443
API_URL=https://127.0.0.1:$API_PORT
SERVER_DIR=$STATE_DIR/server
CLUSTER_CA=$SERVER_DIR/pki/ca.crt  # the cluster CA the server writes out at start
KUBECTL=/usr/local/bin/kubectl

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

require_root() {
  [[ $EUID -eq 0 ]] || die "must run as root (try: sudo make ${1:-up})"
  mkdir -p "$LOG_DIR" "$RUN_DIR" "$ETC_DIR" "$STATE_DIR"
}

# daemon_pid NAME PATTERN: prints the pid recorded in /run/shipmate/NAME.pid when that process is
# alive and its command line contains PATTERN (a recycled pid is not taken for our daemon).
daemon_pid() {
  local pidfile=$RUN_DIR/$1.pid pid
  [[ -r $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2" || return 1
  printf '%s\n' "$pid"
}

# start_daemon NAME CMD...: runs CMD in its own session (it outlives make), appending to
# /var/log/shipmate/NAME.log, and records its pid in /run/shipmate/NAME.pid.
start_daemon() {
  local name=$1
  shift
  printf '\n--- %s starting: %s\n' "$(date -u +%FT%TZ)" "$*" >>"$LOG_DIR/$name.log"
  # A script's background job is not a process-group leader, so setsid does not fork: $! is the daemon.
  setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
  local pid=$! i cmdline ours
  printf '%s\n' "$pid" >"$RUN_DIR/$name.pid"
  # Until the fork has exec'd setsid, and setsid the daemon, /proc shows this script's or setsid's
  # command line; daemon_pid needs the daemon's.
  ours=$(tr '\0' ' ' <"/proc/$$/cmdline")
  for ((i = 0; i < 100; i++)); do
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || true
    [[ -n $cmdline && $cmdline != "$ours" && $cmdline != setsid\ * ]] && return 0
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
}

# stop_pid PID NAME: SIGTERM, then SIGKILL after 20 s.
stop_pid() {
  local pid=$1 name=$2 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2>/dev/null || { log "stopped $name (pid $pid)"; return 0; }
    sleep 0.1
  done
  log "$name (pid $pid) ignored SIGTERM for 20 s; killing"
  kill -KILL "$pid" 2>/dev/null || true
}

# stop_daemon NAME PATTERN
stop_daemon() {
  local pid
  if pid=$(daemon_pid "$1" "$2"); then
    stop_pid "$pid" "$1"
  fi
  rm -f "$RUN_DIR/$1.pid"
}

# wait_for SECONDS DESCRIPTION "LOGNAME..." CMD...: polls CMD every 0.5 s until it succeeds. When
# CMD returns $GAVE_UP (the daemon it waits for died) or time runs out, dies with the tail of each
# /var/log/shipmate/LOGNAME.log.
GAVE_UP=125
wait_for() {
  local seconds=$1 what=$2 lognames=$3 deadline logname status
  shift 3
  deadline=$((SECONDS + seconds))
  while true; do
    status=0
    "$@" >/dev/null 2>&1 || status=$?
    ((status == 0)) && return 0
    if ((status == GAVE_UP)); then
      printf 'error: %s: the daemon exited\n' "$what" >&2
    elif ((SECONDS >= deadline)); then
      printf 'error: %s not ready after %s s\n' "$what" "$seconds" >&2
    else
      sleep 0.5
      continue
    fi
    for logname in $lognames; do
      printf -- '--- last lines of %s:\n' "$LOG_DIR/$logname.log" >&2
      tail -n 30 "$LOG_DIR/$logname.log" >&2 2>/dev/null || true
    done
    exit 1
  done
}

# systemd manages services only when it is PID 1 (then /run/systemd/system exists).
systemd_is_init() { [[ -d /run/systemd/system ]]; }

registry_up() { curl -fs -o /dev/null "http://$REGISTRY/v2/"; }
containerd_up() { [[ -S $CONTAINERD_SOCKET ]] && ctr --address "$CONTAINERD_SOCKET" version >/dev/null 2>&1; }

# remove_tree DIR: unmount everything below DIR (deepest first), so that removing it never reaches
# into a bind-mounted host path, then remove it without crossing file systems. Fails when something
# stayed.
remove_tree() {
  local dir=$1 target status=0
  [[ -e $dir ]] || return 0
  while read -r target; do
    umount -l "$target" 2>/dev/null || { printf 'warning: could not unmount %s\n' "$target" >&2; status=1; }
  done < <(findmnt -rn -o TARGET | awk -v d="$dir/" 'index($0, d) == 1' | sort -r)
  rm -rf --one-file-system "$dir" || status=1
  return "$status"
}

# Network namespaces (containerd's /run/netns/cni-*, ip netns) are mount points in /run/netns. That
# directory must be a shared mount point of its own BEFORE the first one is made: when it becomes one
# later (the first `ip netns add` bind-mounts it onto itself), the mounts made before stay hidden
# underneath, and those sandboxes can never be removed (EBUSY) until a reboot.
ensure_netns_dir_mounted() {
  local dir=/run/netns
  mkdir -p "$dir"
  if ! mountpoint -q "$dir"; then
    if findmnt -rn -o TARGET | grep -q "^$dir/"; then
      log "warning: $dir holds network namespace mounts but is no mount point of its own; leaving it as it is"
      return 0
    fi
    mount --bind "$dir" "$dir"
  fi
  mount --make-shared "$dir"
}

# The Debian mirror this machine's apt uses (deb822 .sources or one-line sources.list).
debian_mirror() {
  local uri
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' |
        grep -E '/debian/?$' | head -n1)
  [[ -n $uri ]] || uri=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -E '/debian/?$' | head -n1)
  [[ -n $uri ]] || die "no Debian mirror in /etc/apt/sources.list{,.d}: debootstrap needs one"
  printf '%s\n' "$uri"
}
