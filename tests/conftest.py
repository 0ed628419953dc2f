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


# Phase 1 of `make test` runs two pytest processes side by side (hack/test.sh). A test module may run
# beside another only when everything it touches is its own: a `shipmate server` subprocess on a spare
# port with a temporary data dir, etcd members on spare loopback ports, the real kubectl, in-process
# code. Those modules are listed here and run, with the unit tests, in one process. Every other
# integration and security module shares the host's containerd, CNI socket, iptables chains, network
# namespaces, node agents or systemd-nspawn: they are marked `host` and run serially in the other
# process, as before. A new module is a `host` one until it is added here.
PARALLEL_SAFE = frozenset({
    "tests/integration/test_admission_caches.py", "tests/integration/test_apiserver_hostile.py",
    "tests/integration/test_apiserver_kubectl.py", "tests/integration/test_apiserver_service_api.py",
    "tests/integration/test_apiserver_services.py", "tests/integration/test_apiserver_storage.py",
    "tests/integration/test_apiservices_kubectl.py", "tests/integration/test_apps_client.py",
    "tests/integration/test_apps_sets_kubectl.py", "tests/integration/test_auth_node.py",
    "tests/integration/test_batch_kubectl.py", "tests/integration/test_batch_python_client.py",
    "tests/integration/test_chart_release.py", "tests/integration/test_client_failover.py",
    "tests/integration/test_crd_kopf.py", "tests/integration/test_crd_kubectl.py",
    "tests/integration/test_csr_tokens.py", "tests/integration/test_disruption_kubectl.py",
    "tests/integration/test_etcd_cluster.py", "tests/integration/test_etcd_storage.py",
    "tests/integration/test_get_all_kubectl.py", "tests/integration/test_ha.py",
    "tests/integration/test_ha_allocation.py", "tests/integration/test_helm_release.py",
    "tests/integration/test_kubectl_fidelity.py", "tests/integration/test_limits_kubectl.py",
    "tests/integration/test_metrics_endpoints.py", "tests/integration/test_netkinds_kubectl.py",
    "tests/integration/test_openapi_kubectl.py", "tests/integration/test_preemption_kubectl.py",
    "tests/integration/test_rbac_kubectl.py", "tests/integration/test_scheduling_kubectl.py",
    "tests/integration/test_service_accounts.py", "tests/integration/test_sqlite_durability.py",
    "tests/integration/test_storage_kubectl.py", "tests/integration/test_webhooks_kubectl.py",
    "tests/integration/test_workloads_kubectl.py",
    "tests/security/test_bounds.py", "tests/security/test_clusterrole_aggregation.py",
    "tests/security/test_csr_two_blocks.py",
    "tests/security/test_endpoint_addresses.py", "tests/security/test_field_types.py",
    "tests/security/test_node_pod_cidr.py", "tests/security/test_node_serving_certificate.py",
    "tests/security/test_pod_security.py",
})
# Modules (or single tests, "path::name") whose verdict depends on having the CPU: the server's own
# latency (the hostile-input soak's p99, answers that must come within a second or two, a second's
# sleep that must be enough for the server to take two requests in), a client that must SIGKILL a
# server in the middle of a burst (a starved client sees every create acknowledged first), a lease
# handover deadline. Marked `solo`: make test runs them after the parallel part, alone, as before (it
# looks for them in tests/integration and tests/security only).
SOLO = frozenset({
    "tests/security/test_soak.py", "tests/integration/test_apiserver_hostile.py",
    "tests/integration/test_sqlite_durability.py", "tests/integration/test_ha.py",
    "tests/security/test_bounds.py::test_amplifying_patches_are_refused_before_the_result_is_built",
    "tests/security/test_bounds.py::test_pathological_selectors_are_answered_400_at_once_and_others_stay_served",
    "tests/security/test_bounds.py::test_requests_past_the_inflight_limits_get_429_and_system_masters_still_gets_through",
    # Restarting containerd under load is what it tests; it runs with the machine to itself. (Its failures
    # this session came from an interrupted run's leftover shims of the private node, not from the load.)
    "tests/integration/test_agent_node_restart.py::test_containerd_restart_loses_no_pod_and_the_agent_reconnects",
})
REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_configure(config: pytest.Config) -> None:
    # `integration` and `e2e` are declared in pyproject.toml.
    config.addinivalue_line("markers", "disruptive: restarts the cluster (make down / make up); runs last")
    config.addinivalue_line("markers", "solo: needs the machine to itself (latency bounds); make test runs it "
                                       "after the parallel part of phase 1")
    config.addinivalue_line("markers", "host: shares the host's containerd, iptables, netns or agents; make test runs "
                                       "these serially, beside the self-contained modules")


def _shares_the_host(item: pytest.Item) -> bool:
    module = os.path.relpath(str(item.path), REPO_DIR)
    return module.startswith(("tests/integration/", "tests/security/")) and module not in PARALLEL_SAFE


@pytest.hookimpl(tryfirst=True)  # before -m deselects by the markers added here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = os.path.relpath(str(item.path), REPO_DIR)
        if module in SOLO or f"{module}::{item.originalname}" in SOLO:
            item.add_marker(pytest.mark.solo)
        if _shares_the_host(item):
            item.add_marker(pytest.mark.host)
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
