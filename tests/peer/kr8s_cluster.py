"""What kr8s's tests take from kr8s's repository-root conftest, which is not in the wheel and creates a kind
cluster: the session `k8s_cluster` (here the `make up` cluster) and `ensure_gc`. Everything else the tests use
(namespaces, manifests, tokens, `kubectl proxy`) comes from the conftest the wheel ships (`kr8s/conftest.py`),
unchanged. Loaded with `pytest -p tests.peer.kr8s_cluster`.

The images their manifests name (gcr.io/google_containers/pause, nginx, ubuntu) are served by the local
registry through make up's default mirrors (hack/build_images.py --stand-ins)."""
from __future__ import annotations

import gc
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

ADMIN_KUBECONFIG = Path(os.environ.get("SHIPMATE_PEER_KUBECONFIG", "/etc/shipmate/admin.kubeconfig"))


class Cluster:
    """What the tests use of pytest-kind's KindCluster, for a cluster that is already running."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig_path = kubeconfig
        self.kubectl_path = Path(shutil.which("kubectl") or "/usr/local/bin/kubectl")

    def kubectl(self, *args: str) -> str:
        result = subprocess.run([str(self.kubectl_path), "--kubeconfig", str(self.kubeconfig_path), *args],
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout


@pytest.fixture(scope="session", autouse=True)
def k8s_cluster() -> Iterator[Cluster]:
    cluster = Cluster(ADMIN_KUBECONFIG)
    previous = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig_path)
    deadline = time.monotonic() + 60
    while True:  # the default ServiceAccount is made by a controller shortly after its namespace
        try:
            cluster.kubectl("get", "serviceaccount", "default")
            break
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    yield cluster
    if previous is None:
        os.environ.pop("KUBECONFIG", None)
    else:
        os.environ["KUBECONFIG"] = previous


@pytest.fixture
def ensure_gc() -> Iterator[None]:
    gc.collect()
    yield
    gc.collect()
