"""Test-suite wide rules: which tests can run here.

`integration` and `e2e` tests need root; without it they are skipped with the reason. When a
component they need is absent (containerd, the local registry, the cluster), they are skipped too —
except under `make test` (SHIPMATE_TEST_STRICT=1) or in CI, where everything was started for them
and an absent component is a failure.
"""
from __future__ import annotations

import os
import socket
import ssl
import urllib.request

import pytest

CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
LOCAL_REGISTRY = "127.0.0.1:5000"
ADMIN_KUBECONFIG = "/etc/shipmate/admin.kubeconfig"
API_READYZ = "https://127.0.0.1:6443/readyz"  # unauthenticated, like /healthz and /livez
STRICT = os.environ.get("SHIPMATE_TEST_STRICT") == "1" or os.environ.get("CI") == "true"
ROOT_ONLY_MARKERS = ("integration", "e2e")


def _unix_socket_answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _unverified_tls() -> ssl.SSLContext:
    # Only asks whether something answers: the server's certificate is not checked here.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3, context=_unverified_tls()) as response:
            return response.status == 200
    except OSError:
        return False


def _absent(what: str, how: str) -> None:
    message = f"{what} is not available ({how})"
    if STRICT:
        pytest.fail(message + "; make test starts it, so this is a failure", pytrace=False)
    pytest.skip(message)


def pytest_configure(config: pytest.Config) -> None:
    # `integration` and `e2e` are declared in pyproject.toml.
    config.addinivalue_line("markers", "disruptive: restarts the cluster (make down / make up); runs last")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root and the real components: run `sudo make test`")
    for item in items:
        if any(item.get_closest_marker(marker) for marker in ROOT_ONLY_MARKERS):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def containerd_socket() -> str:
    """The host containerd's socket (make up starts containerd)."""
    if not _unix_socket_answers(CONTAINERD_SOCKET):
        _absent("containerd", f"no answer on {CONTAINERD_SOCKET}; run `sudo make up`")
    return CONTAINERD_SOCKET


@pytest.fixture(scope="session")
def local_registry() -> str:
    """host:port of the local image registry holding the offline images (make images)."""
    if not _http_ok(f"http://{LOCAL_REGISTRY}/v2/"):
        _absent("the local registry", f"no answer on http://{LOCAL_REGISTRY}/v2/; run `sudo make images`")
    return LOCAL_REGISTRY


@pytest.fixture(scope="session")
def running_cluster() -> str:
    """The admin kubeconfig of the cluster make up started, once its API server answers."""
    if not (os.path.exists(ADMIN_KUBECONFIG) and _http_ok(API_READYZ)):
        _absent("the cluster", f"{ADMIN_KUBECONFIG} or {API_READYZ} missing; run `sudo make up`")
    return ADMIN_KUBECONFIG
