"""The official Python client's own Job flows (kubernetes-client/python e2e_test/test_batch.py and its aio twin,
written against real Kubernetes) through the `kubernetes` package, asserting what they assert, against the
cluster `make up` started. tests/integration/test_batch_python_client.py runs the same flows against a server
of the branch under test."""
from __future__ import annotations

import uuid

import pytest

from tests.e2e.cluster import ADMIN_KUBECONFIG

kubernetes = pytest.importorskip("kubernetes", reason="the kubernetes Python client is not installed")

pytestmark = pytest.mark.e2e


def configuration(kubeconfig: str):
    """What the client's e2e base does with a kubeconfig: load it into a fresh Configuration."""
    from kubernetes.client.configuration import Configuration
    from kubernetes.config import kube_config
    config = Configuration()
    kube_config.load_kube_config(config_file=kubeconfig, client_configuration=config)
    config.assert_hostname = False
    return config


async def async_configuration(kubeconfig: str):
    from kubernetes.aio.client.configuration import Configuration
    from kubernetes.aio.config import kube_config
    config = Configuration()
    await kube_config.load_kube_config(config_file=kubeconfig, client_configuration=config)
    config.assert_hostname = False
    return config


def job_manifest(name: str) -> dict:
    return {'kind': 'Job',
            'spec': {'template': {'spec': {'containers': [{'image': 'busybox', 'name': name,
                                                           'command': ["sh", "-c", "sleep 5"]}],
                                           'restartPolicy': 'Never'},
                                  'metadata': {'name': name}}},
            'apiVersion': 'batch/v1',
            'metadata': {'name': name}}


def check_deleted(deleted, name: str) -> None:
    assert isinstance(deleted, dict)
    assert deleted['kind'] in ('Job', 'Status')
    if deleted['kind'] == 'Job':
        assert deleted['metadata']['name'] == name
    else:
        assert deleted['status'] == 'Success'
        if 'details' in deleted:
            assert deleted['details']['name'] == name


def job_apis_flow(config) -> None:
    """test_batch.TestClientBatch.test_job_apis."""
    from kubernetes.client import api_client
    from kubernetes.client.api import batch_v1_api
    client = api_client.ApiClient(configuration=config)
    api = batch_v1_api.BatchV1Api(client)
    name = 'test-job-' + str(uuid.uuid4())
    create_job_resp = api.create_namespaced_job(body=job_manifest(name), namespace='default')
    assert create_job_resp.metadata.name == name
    resp = api.read_namespaced_job(name=name, namespace='default')
    assert resp.metadata.name == name
    assert resp.spec.template.spec.containers[0].name == name
    assert resp.spec.template.spec.containers[0].image == 'busybox'
    assert resp.spec.template.spec.containers[0].command[0] == 'sh'
    assert resp.spec.template.spec.containers[0].command[1] == '-c'
    assert resp.spec.template.spec.containers[0].command[2] == 'sleep 5'
    assert resp.spec.template.spec.restart_policy == 'Never'
    deleted = api.delete_namespaced_job(name=name, namespace='default', body={'propagationPolicy': 'Background'})
    check_deleted(deleted, name)


async def async_job_apis_flow(config) -> None:
    """aio/e2e_test/test_batch.TestClientBatch.test_job_apis."""
    from kubernetes.aio.client import api_client
    from kubernetes.aio.client.api import batch_v1_api
    async with api_client.ApiClient(configuration=config) as client:
        api = batch_v1_api.BatchV1Api(client)
        name = 'test-job-' + str(uuid.uuid4())
        resp = await api.create_namespaced_job(body=job_manifest(name), namespace='default')
        assert resp.metadata.name == name
        resp = await api.read_namespaced_job(name=name, namespace='default')
        assert resp.metadata.name == name
        resp = await api.delete_namespaced_job(name=name, body={'propagationPolicy': 'Background'},
                                               namespace='default')
        check_deleted(resp, name)


def test_job_apis() -> None:
    job_apis_flow(configuration(ADMIN_KUBECONFIG))


async def test_job_apis_aio() -> None:
    pytest.importorskip("kubernetes.aio", reason="this kubernetes client has no aio package")
    await async_job_apis_flow(await async_configuration(ADMIN_KUBECONFIG))
