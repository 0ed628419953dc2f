#!/bin/bash
# `make lock`: re-resolve requirements.lock (exact versions + hashes of every dependency of shipmate
# and its test and bench extras) from pyproject.toml. Run it after changing a dependency in
# pyproject.toml, or to take newer releases, then commit requirements.lock; `make up` and `make test`
# install exactly what it lists (pip --require-hashes).
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PIP_TOOLS_VERSION=7.7.0
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools"
"$tools/bin/pip" install -q --disable-pip-version-check "pip-tools==$PIP_TOOLS_VERSION"
cd "$REPO_ROOT"
CUSTOM_COMPILE_COMMAND="make lock" "$tools/bin/pip-compile" -q --extra test --extra bench --generate-hashes --strip-extras --allow-unsafe \
  --no-emit-index-url --no-emit-find-links \
  ${LOCK_UPGRADE:+--upgrade} -o requirements.lock pyproject.toml
log "wrote $REPO_ROOT/requirements.lock ($(grep -c '==' requirements.lock) pinned packages)"
