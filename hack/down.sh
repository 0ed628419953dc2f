#!/bin/bash
# Stop what `make up` started: the agent, the pods it ran, the server. containerd, the registry and
# the datastore stay (so `make up` afterwards brings the same cluster back).
#
#   hack/down.sh [--delete-state]   also delete the server's datastore and the agent's state
#
# Exit status 3: everything is stopped, but some pod sandboxes could not be removed (listed, with why).
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
  local delete_state=no pods_status=0
  case ${1:-} in
    --delete-state) delete_state=yes ;;
    "") ;;
    *) die "unknown option $1" ;;
  esac
  require_root down
  # The agent goes first so that it does not restart the pods removed next.
  stop_daemon agent 'shipmate agent'
  if containerd_up; then
    "$PY" "$REPO_ROOT/hack/cri_tool.py" remove-pods || pods_status=$?
  fi
  # The proxy's rules lead to the pods just removed: remove them too, whichever mode wrote them (the
  # iptables chains and the nftables table ip shipmate-proxy); `make up` programs them again.
  if [[ -x $VENV/bin/shipmate ]]; then
    "$VENV/bin/shipmate" agent --cleanup-iptables >/dev/null \
      || printf 'warning: the proxy rules could not all be removed (shipmate agent --cleanup-iptables)\n' >&2
  fi
  stop_daemon server 'shipmate server'
  if [[ $delete_state == yes ]]; then
    log "deleting $STATE_DIR/{server,agent,ipam} and $KUBECONFIG_PATH"
    local dir
    for dir in server agent ipam; do
      remove_tree "$STATE_DIR/$dir" || die "could not delete all of $STATE_DIR/$dir (see above)"
    done
    rm -f "$KUBECONFIG_PATH"
  fi
  case $pods_status in
    0) ;;
    3) printf 'error: the agent and the server are stopped, but the pod sandboxes listed above are left in containerd\n' >&2
       exit 3 ;;
    *) die "could not list or remove the pods (cri_tool status $pods_status, see above); the agent and the server are stopped" ;;
  esac
  log "shipmate is down (containerd and the registry keep running)"
}

main "$@"
