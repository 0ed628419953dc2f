#!/bin/bash
# `make test`: bring the cluster up with the test extras installed, then run every test.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PYTEST_TIME_LIMIT=20m
# Extra pytest arguments (make test PYTEST_ARGS=--reverse runs every file and test in reverse order).
PYTEST_ARGS=${PYTEST_ARGS:-}

run_pytest() {
  # Strict: a component the tests need that is missing is a failure, not a skip. The time limit
  # keeps a hung test from eating CI's whole budget.
  # shellcheck disable=SC2086  # PYTEST_ARGS is a list of words
  (cd "$REPO_ROOT" && SHIPMATE_TEST_STRICT=1 timeout --signal=INT --kill-after=60 "$PYTEST_TIME_LIMIT" \
    "$VENV/bin/pytest" -v $PYTEST_ARGS "$@")
}

explain_status() {
  case $1 in
    0) return 0 ;;
    5) echo "pytest collected no tests" ;;
    124) echo "the suite did not finish within $PYTEST_TIME_LIMIT" ;;
    *) echo "tests failed (pytest exit status $1)" ;;
  esac
}

main() {
  require_root test
  local up_status=0 status=0 e2e_status=0
  # Integration tests start their own server and agent against the host containerd, and two
  # agents on one containerd fight over the CNI socket: they run before the cluster's agent.
  bash "$REPO_ROOT/hack/down.sh" || true
  bash "$REPO_ROOT/hack/up.sh" --host-only --test-extras || up_status=$?
  [[ -x $VENV/bin/pytest ]] || die "make up failed before pytest was installed (status $up_status)"
  # The Debian tree tests/integration/test_systemd_units.py boots shipmate's units in (built once).
  bash "$REPO_ROOT/hack/multinode.sh" nspawn-rootfs || up_status=$?
  log "running unit, integration and security tests"
  run_pytest tests/unit tests/integration tests/security || status=$?
  # When the cluster does not come up, the e2e tests still run (and fail) so that the report shows
  # everything; make test fails either way.
  bash "$REPO_ROOT/hack/up.sh" --test-extras || up_status=$?
  log "running end-to-end tests against the cluster"
  run_pytest tests/e2e || e2e_status=$?
  ((up_status == 0)) || die "make up failed (status $up_status; see its output above)"
  [[ $status == 0 ]] || die "unit/integration: $(explain_status "$status")"
  [[ $e2e_status == 0 ]] || die "e2e: $(explain_status "$e2e_status")"
  log "all tests passed"
}

main "$@"
