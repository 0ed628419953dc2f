#!/bin/bash
# `make test`: bring the cluster up with the test extras installed, then run every test.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PYTEST_TIME_LIMIT=25m

# Tests prove registry mirrors with this file; a box's own registries.yaml is never overwritten.
write_test_registries() {
  [[ -e $ETC_DIR/registries.yaml ]] && return 0
  log "writing $ETC_DIR/registries.yaml (docker.io -> http://$REGISTRY)"
  cat >"$ETC_DIR/registries.yaml" <<YAML
# Written by shipmate's make test: pulls of docker.io images go to the local registry.
mirrors:
  docker.io:
    endpoint:
      - "http://$REGISTRY"
YAML
}

main() {
  require_root test
  write_test_registries
  local up_status=0 status=0
  # When the cluster does not come up, the suite still runs (its e2e tests fail) so that the
  # report shows everything else too; make test fails either way.
  bash "$REPO_ROOT/hack/up.sh" --test-extras || up_status=$?
  [[ -x $VENV/bin/pytest ]] || die "make up failed before pytest was installed (status $up_status)"
  log "running the test suite"
  # Strict: a component the tests need that is missing is a failure, not a skip. The time limit
  # keeps a hung test from eating CI's whole budget.
  (cd "$REPO_ROOT" && SHIPMATE_TEST_STRICT=1 timeout --signal=INT --kill-after=60 "$PYTEST_TIME_LIMIT" \
    "$VENV/bin/pytest" -v tests/) || status=$?
  ((up_status == 0)) || die "make up failed (status $up_status; see its output above); pytest exit status $status"
  case $status in
    0) log "all tests passed" ;;
    5) die "pytest collected no tests" ;;
    124) die "the test suite did not finish within $PYTEST_TIME_LIMIT" ;;
    *) die "tests failed (pytest exit status $status)" ;;
  esac
}

main "$@"
