#!/bin/bash
# `make test`: bring the cluster up with the test extras installed, then run every test.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

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
  bash "$REPO_ROOT/hack/up.sh" --test-extras
  log "running the test suite"
  local status=0
  # Strict: a component the tests need that is missing is a failure, not a skip.
  (cd "$REPO_ROOT" && SHIPMATE_TEST_STRICT=1 "$VENV/bin/pytest" -v tests/) || status=$?
  case $status in
    0) log "all tests passed" ;;
    5) die "pytest collected no tests" ;;
    *) die "tests failed (pytest exit status $status)" ;;
  esac
}

main "$@"
