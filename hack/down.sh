#!/bin/bash
# Stop what `make up` started: the agent, the pods it ran, the server. containerd, the registry and
# the datastore stay (so `make up` afterwards brings the same cluster back).
#
#   hack/down.sh [--delete-state]   also delete the server's datastore and the agent's state
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
  local delete_state=no pods_removed=yes
  case ${1:-} in
    --delete-state) delete_state=yes ;;
    "") ;;
    *) die "unknown option $1" ;;
  esac
  require_root down
  # The agent goes first so that it does not restart the pods removed next.
  stop_daemon agent 'shipmate agent'
  if containerd_up; then
    "$PY" "$REPO_ROOT/hack/cri_tool.py" remove-pods || pods_removed=no
  fi
  stop_daemon server 'shipmate server'
  [[ $pods_removed == yes ]] || die "some pods could not be removed (see above); the daemons are stopped"
  if [[ $delete_state == yes ]]; then
    log "deleting $STATE_DIR/{server,agent,ipam} and $KUBECONFIG_PATH"
    rm -rf "$STATE_DIR/server" "$STATE_DIR/agent" "$STATE_DIR/ipam" "$KUBECONFIG_PATH"
  fi
  log "shipmate is down (containerd and the registry keep running)"
}

main "$@"
