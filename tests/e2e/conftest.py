"""Fixtures for end-to-end tests: they drive the running cluster with the real kubectl."""
from __future__ import annotations

import os
from typing import Iterator

import pytest

from tests.e2e.cluster import ADMIN_KUBECONFIG, KUBECTL, Kubectl, unique_name


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that restart the cluster (marker `disruptive`) run after every other test."""
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)


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
