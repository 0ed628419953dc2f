"""Fixtures for end-to-end tests: they drive the running cluster with the real kubectl."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.cluster import ADMIN_KUBECONFIG, KUBECTL, Kubectl, unique_name


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that restart the cluster (marker `disruptive`) run after every other test."""
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def cluster_back_up_after_disruption(request: pytest.FixtureRequest) -> Iterator[None]:
    """A disruptive test that fails half-way (a make down that did not finish) must not leave the tests
    after it without a cluster: when the API server no longer answers, make up brings it back."""
    yield
    if request.node.get_closest_marker("disruptive") is None:
        return
    probe = subprocess.run([KUBECTL, "--kubeconfig", ADMIN_KUBECONFIG, "get", "--raw", "/readyz"],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        up = subprocess.run(["bash", str(REPO / "hack" / "up.sh"), "--test-extras"], capture_output=True,
                            text=True, timeout=600)
        assert up.returncode == 0, f"make up after {request.node.name} failed:\n{up.stderr[-3000:]}"


@pytest.fixture(scope="session")
def kubectl() -> Kubectl:
    if not os.path.exists(ADMIN_KUBECONFIG):
        pytest.fail(f"{ADMIN_KUBECONFIG} is missing: e2e tests need the cluster from `make up`")
    if not os.access(KUBECTL, os.X_OK):
        pytest.fail(f"{KUBECTL} is missing: `make up` installs kubectl v1.35")
    client = Kubectl()
    client.run("get", "--raw", "/readyz", timeout=20)
    return client


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    name = unique_name("e2e")
    kubectl.run("create", "namespace", name)
    yield name
    kubectl.run("delete", "pods", "--all", "-n", name, "--grace-period=1", "--wait=true",
                check=False, timeout=120)
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def node_name(kubectl: Kubectl) -> str:
    nodes = kubectl.json("get", "nodes")["items"]
    assert nodes, "the cluster has no node"
    return nodes[0]["metadata"]["name"]
