"""The official Python client's apps/v1 end-to-end flows (tests/apps_client_flows.py: DaemonSets and
Deployments created, read and deleted through the `kubernetes` package, sync and asyncio) against the `make up`
cluster, in a namespace of their own."""
from __future__ import annotations

import pytest

from tests import apps_client_flows as flows
from tests.e2e.cluster import ADMIN_KUBECONFIG, Kubectl

pytestmark = pytest.mark.e2e
kubernetes = pytest.importorskip("kubernetes")


def test_create_deployment(kubectl: Kubectl, namespace: str) -> None:
    flows.create_deployment(flows.sync_configuration(ADMIN_KUBECONFIG), namespace)


def test_create_daemonset(kubectl: Kubectl, namespace: str) -> None:
    flows.create_daemonset(flows.sync_configuration(ADMIN_KUBECONFIG), namespace)


def test_aio_create_daemonset(kubectl: Kubectl, namespace: str) -> None:
    flows.aio_create_daemonset(ADMIN_KUBECONFIG, namespace)


def test_aio_create_deployment(kubectl: Kubectl, namespace: str) -> None:
    flows.aio_create_deployment(ADMIN_KUBECONFIG, namespace)


def test_aio_create_deployment_from_yaml_file(kubectl: Kubectl, namespace: str) -> None:
    flows.aio_create_deployment_from_yaml_file(ADMIN_KUBECONFIG, namespace)
