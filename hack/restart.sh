#!/bin/bash
# Restart the daemons `make up` started so that they run the current code; pods keep running
# (the agent rebuilds its state from CRI labels).
#
#   hack/restart.sh agent|server|all
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
  require_root up
  case ${1:-} in
    agent | server) stop_daemon "$1" "shipmate $1" ;;
    all) stop_daemon agent 'shipmate agent'; stop_daemon server 'shipmate server' ;;
    *) die "usage: hack/restart.sh agent|server|all" ;;
  esac
  "$REPO_ROOT/hack/up.sh"
}

main "$@"
