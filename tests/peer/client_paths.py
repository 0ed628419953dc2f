"""Lets the official Python client's e2e tests import themselves as they do in their repository
(`from kubernetes.e2e_test import base`): the peer copy's `kubernetes/e2e_test` and `kubernetes/aio/e2e_test` join
the installed `kubernetes` package's search path. The files stay where they are, unchanged. Loaded with
`pytest -p tests.peer.client_paths`; SHIPMATE_PEER_CLIENT_DIR names the copy."""
from __future__ import annotations

import os
from pathlib import Path

import kubernetes
import kubernetes.aio

_PEER = Path(os.environ["SHIPMATE_PEER_CLIENT_DIR"]) / "kubernetes"
for package, directory in ((kubernetes, _PEER), (kubernetes.aio, _PEER / "aio")):
    if str(directory) not in package.__path__:
        package.__path__.append(str(directory))
