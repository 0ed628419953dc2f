"""The official Python client's apps/v1 end-to-end flows (tests/apps_client_flows.py) through the `kubernetes`
package against a `shipmate server` of this module; skipped where the package is not installed."""
import pytest

from tests import apps_client_flows as flows

pytestmark = [pytest.mark.integration]
kubernetes = pytest.importorskip("kubernetes")


def test_create_deployment(module_server):
    flows.create_deployment(flows.sync_configuration(module_server.kubeconfig))


def test_create_daemonset(module_server):
    flows.create_daemonset(flows.sync_configuration(module_server.kubeconfig))


def test_aio_create_daemonset(module_server):
    flows.aio_create_daemonset(module_server.kubeconfig)


def test_aio_create_deployment(module_server):
    flows.aio_create_deployment(module_server.kubeconfig)


def test_aio_create_deployment_from_yaml_file(module_server):
    flows.aio_create_deployment_from_yaml_file(module_server.kubeconfig)
